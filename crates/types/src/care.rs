//! Telemedicine in a medical alliance (the `care` domain): referrals, remote consultations and
//! remote monitoring. So far: the NEWS2 early-warning score that monitoring computes for every
//! complete observation set ([`news2`]), readings as FHIR Observations ([`vitals`]), what raises
//! an alarm ([`alarm`]), and the referral's workflow as a FHIR `Task` ([`task`]); none is an
//! on-chain operation yet.

pub mod alarm;
pub mod news2;
pub mod task;
pub mod vitals;
