//! Telemedicine in a medical alliance (the `care` domain): referrals, remote consultations and
//! remote monitoring. So far: the NEWS2 early-warning score that monitoring computes for every
//! complete observation set ([`news2`]), and the referral's workflow as a FHIR `Task`
//! ([`task`]); neither is an on-chain operation yet.

pub mod news2;
pub mod task;
pub mod vitals;
