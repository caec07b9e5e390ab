//! Telemedicine in a medical alliance (the `care` domain): referrals, remote consultations and
//! remote monitoring.
//!
//! On chain so far: the referral workflow ([`CareOp`]). A referral is shaped as a FHIR
//! `ServiceRequest` (who refers whom to which institution, naming which records), followed by a
//! `Task` whose status only the receiving institution moves ([`task`]). The patient applies or
//! approves, the treating doctor proposes or confirms, and on acceptance the state grants the
//! receiving doctor a consent scoped to the named records that ends when the referral closes.
//! Clinical content never goes on chain: the records are named by id, the report is a record
//! version in the vault, and the specialty is a code of a fixed value set ([`specialty`]).
//!
//! Off chain, in this crate: the NEWS2 early-warning score ([`news2`]), readings as FHIR
//! Observations ([`vitals`]) and what raises an alarm ([`alarm`]); devices, readings and alarms
//! are not on chain yet.

pub mod alarm;
pub mod news2;
pub mod specialty;
pub mod task;
pub mod vitals;

use crate::keys::PublicKey;
use crate::Hash;
use serde::{Deserialize, Serialize};
pub use task::TaskStatus;

/// Field limits of this domain (re-exported by [`crate::limits`]).
pub mod limits {
    /// Records one referral may name (the scope of its consent).
    pub const MAX_REFERRAL_RECORDS: usize = 64;
    /// The requested specialty: a code of [`super::specialty::ALL`] (SNOMED CT, at most 18
    /// digits), never clinical content.
    pub const MAX_SPECIALTY: usize = 18;
    /// A rejection, failure or cancellation reason.
    pub const MAX_REFERRAL_REASON: usize = super::task::MAX_REASON_BYTES;
    /// An appointment may be at most this far after the acceptance (one year).
    pub const MAX_APPOINTMENT_AHEAD_MS: u64 = 366 * 24 * 60 * 60 * 1000;
    /// A device's model (FHIR `Device.type` text).
    pub const MAX_DEVICE_MODEL: usize = 64;
    /// Threshold rules per patient.
    pub const MAX_RULES: usize = 16;
    /// A rule's or an alarm cause's text (`pulse > 130`, `news2 high`).
    pub const MAX_RULE_TEXT: usize = 48;
    /// Readings one anchor may cover.
    pub const MAX_ANCHOR_READINGS: u32 = 1_000_000;
    /// Escalation waits at least a minute and at most a day.
    pub const MIN_ESCALATE_AFTER_MS: u64 = 60_000;
    pub const MAX_ESCALATE_AFTER_MS: u64 = 24 * 60 * 60 * 1000;
}
use crate::limits::MAX_INSTITUTION_ID;
use limits::{
    MAX_ANCHOR_READINGS, MAX_DEVICE_MODEL, MAX_ESCALATE_AFTER_MS, MAX_REFERRAL_REASON, MAX_REFERRAL_RECORDS, MAX_RULES,
    MAX_RULE_TEXT, MAX_SPECIALTY, MIN_ESCALATE_AFTER_MS,
};

/// How the receiving hospital sees the patient.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A remote consultation.
    Remote,
    /// A visit at the receiving institution.
    OnSite,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Remote, Mode::OnSite];
    pub fn name(self) -> &'static str {
        match self {
            Mode::Remote => "remote",
            Mode::OnSite => "on-site",
        }
    }
    pub fn parse(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown consultation mode `{s}` (expected remote or on-site)"))
    }
}

crate::canonical_enum!(Mode, "consultation mode");

/// A per-patient threshold rule as the chain keeps it: its text (`pulse > 130`), checked with
/// [`alarm::Rule`]'s parser.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleText(pub String);

impl RuleText {
    pub fn rule(&self) -> Result<alarm::Rule, String> {
        self.0.parse()
    }
}

impl crate::codec::Field for RuleText {
    fn put(&self, w: &mut crate::codec::Writer) {
        w.str(&self.0);
    }
    fn take(r: &mut crate::codec::Reader<'_>, what: &'static str, _: usize) -> Result<Self, crate::DecodeError> {
        Ok(RuleText(r.string(what, MAX_RULE_TEXT)?))
    }
}
crate::canonical_enum!(TaskStatus, "referral status");

crate::operations! {
    /// Referral operations: the `ServiceRequest` and the `Task` that fulfils it.
    pub enum CareOp ("care operation") {
        /// Patient (applying, naming their treating doctor) or treating doctor (proposing): a
        /// referral of `patient` to institution `to`, naming the records the receiving doctor
        /// may read. The referral id is chosen by the client and unique.
        0 => ProposeReferral {
            referral_id: Hash = "referral id",
            patient: Hash = "patient",
            /// The treating doctor, who confirms (or, by proposing, already has).
            doctor: PublicKey = "treating doctor",
            to: String = "receiving institution" max MAX_INSTITUTION_ID,
            specialty: String = "specialty" max MAX_SPECIALTY,
            records: Vec<Hash> = "referral records" max MAX_REFERRAL_RECORDS,
        },
        /// Patient: approve a referral the doctor proposed.
        1 => ApproveReferral { referral_id: Hash = "referral id" },
        /// Treating doctor: confirm a referral the patient applied for.
        2 => ConfirmReferral { referral_id: Hash = "referral id" },
        /// Receiving institution: accept, choosing the mode, the appointment and the receiving
        /// doctor, who is granted the referral's consent.
        3 => AcceptReferral {
            referral_id: Hash = "referral id",
            mode: Mode = "mode",
            appointment_ms: u64 = "appointment",
            doctor: PublicKey = "receiving doctor",
        },
        /// Receiving institution: reject, with a reason.
        4 => RejectReferral { referral_id: Hash = "referral id", reason: String = "reason" max MAX_REFERRAL_REASON },
        /// Receiving institution: the consultation has begun.
        5 => StartReferral { referral_id: Hash = "referral id" },
        /// Receiving doctor: complete, naming the consultation report (a record of the patient).
        6 => CompleteReferral { referral_id: Hash = "referral id", report: Hash = "report record" },
        /// Receiving institution: the consultation failed, with a reason.
        7 => FailReferral { referral_id: Hash = "referral id", reason: String = "reason" max MAX_REFERRAL_REASON },
        /// The referring side (the patient or the treating doctor): cancel, with a reason.
        8 => CancelReferral { referral_id: Hash = "referral id", reason: String = "reason" max MAX_REFERRAL_REASON },
        /// Staff of the patient's institution: register a monitoring device (FHIR `Device`) to
        /// the patient, with the device's own key, which signs its readings.
        9 => RegisterDevice {
            device_id: Hash = "device id",
            patient: Hash = "patient",
            key: PublicKey = "device key",
            model: String = "device model" max MAX_DEVICE_MODEL,
        },
        /// The patient, or staff of the registering institution: revoke a device; its readings
        /// are refused from the next block on.
        10 => RevokeDevice { device_id: Hash = "device id" },
        /// A doctor of the patient's institution, who becomes the responsible doctor: the
        /// NEWS2 SpO₂ scale (1, or 2 for hypercapnic respiratory failure), threshold rules, and
        /// how long an alarm may wait for acknowledgement before it escalates.
        11 => SetMonitoring {
            patient: Hash = "patient",
            spo2_scale: u32 = "SpO2 scale",
            rules: Vec<RuleText> = "rules" max MAX_RULES,
            escalate_after_ms: u64 = "escalation delay",
        },
        /// Institution admin: the institution's on-call doctor, to whom alarms escalate.
        12 => SetOnCall { doctor: PublicKey = "on-call doctor" },
        /// The monitoring institution's node: one anchor per device per interval, the RFC 9162
        /// Merkle root of the interval's reading digests. No value goes on chain.
        13 => AnchorReadings {
            device_id: Hash = "device id",
            first_ms: u64 = "first reading time",
            last_ms: u64 = "last reading time",
            count: u32 = "reading count",
            root: Hash = "readings root",
        },
        /// The monitoring institution's node: an alarm (FHIR `Flag`) with its cause and the
        /// digest of the reading that raised it, never the values.
        14 => RaiseAlarm {
            alarm_id: Hash = "alarm id",
            device_id: Hash = "device id",
            reading: Hash = "reading digest",
            cause: String = "alarm cause" max MAX_RULE_TEXT,
        },
        /// The responsible doctor, or the on-call doctor it escalated to: acknowledge an alarm.
        15 => AcknowledgeAlarm { alarm_id: Hash = "alarm id" },
        /// The monitoring institution's node: an alarm nobody acknowledged in time goes to the
        /// institution's on-call doctor.
        16 => EscalateAlarm { alarm_id: Hash = "alarm id" },
    }
}

impl CareOp {
    /// The referral an operation is about (`None` for monitoring operations).
    pub fn referral_id(&self) -> Option<&Hash> {
        Some(match self {
            CareOp::ProposeReferral { referral_id, .. }
            | CareOp::ApproveReferral { referral_id }
            | CareOp::ConfirmReferral { referral_id }
            | CareOp::AcceptReferral { referral_id, .. }
            | CareOp::RejectReferral { referral_id, .. }
            | CareOp::StartReferral { referral_id }
            | CareOp::CompleteReferral { referral_id, .. }
            | CareOp::FailReferral { referral_id, .. }
            | CareOp::CancelReferral { referral_id, .. } => referral_id,
            _ => return None,
        })
    }

    /// The workflow action of a status change (`None` for the ServiceRequest's own steps:
    /// proposing, approving, confirming).
    pub fn action(&self) -> Option<task::Action> {
        use task::Action;
        Some(match self {
            CareOp::AcceptReferral { .. } => Action::Accept,
            CareOp::RejectReferral { reason, .. } => Action::Reject { reason: reason.clone() },
            CareOp::StartReferral { .. } => Action::Start,
            CareOp::CompleteReferral { report, .. } => Action::Complete { output: *report },
            CareOp::FailReferral { reason, .. } => Action::Fail { reason: reason.clone() },
            CareOp::CancelReferral { reason, .. } => Action::Cancel { reason: reason.clone() },
            _ => return None,
        })
    }

    /// Field limits, checked before encoding and again by the state machine.
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::limits::check_len;
        let reason = |r: &str, what: &str| -> Result<(), String> {
            if r.trim().is_empty() {
                return Err(format!("to {what} a referral, give a reason"));
            }
            check_len("reason", r, MAX_REFERRAL_REASON)
        };
        match self {
            CareOp::ProposeReferral { to, specialty, records, .. } => {
                if to.trim().is_empty() {
                    return Err("the receiving institution must be named".into());
                }
                check_len("receiving institution", to, MAX_INSTITUTION_ID)?;
                if specialty::display(specialty).is_none() {
                    // A code, never free text: nothing clinical can ride on it.
                    return Err(match specialty::parse(specialty) {
                        Ok(code) => {
                            format!("the specialty goes on chain as its code: {code}, not {:?}", specialty.trim())
                        }
                        Err(e) => e,
                    });
                }
                if records.is_empty() {
                    return Err("a referral names at least one record for the receiving doctor".into());
                }
                if records.len() > MAX_REFERRAL_RECORDS {
                    return Err(format!(
                        "{} records in one referral, above the limit of {MAX_REFERRAL_RECORDS}",
                        records.len()
                    ));
                }
                if records.iter().enumerate().any(|(i, r)| records[..i].contains(r)) {
                    return Err("the referral names a record twice".into());
                }
                Ok(())
            }
            CareOp::RejectReferral { reason: r, .. } => reason(r, "reject"),
            CareOp::FailReferral { reason: r, .. } => reason(r, "fail"),
            CareOp::CancelReferral { reason: r, .. } => reason(r, "cancel"),
            CareOp::CompleteReferral { report, .. } if *report == Hash::ZERO => {
                Err("a completed referral needs its output: the consultation report's record id".into())
            }
            CareOp::AcceptReferral { appointment_ms: 0, .. } => Err("the appointment time must be set".into()),
            CareOp::RegisterDevice { model, .. } => {
                if model.trim().is_empty() {
                    return Err("the device model must be named (for example wrist pulse oximeter)".into());
                }
                if model.chars().any(char::is_control) {
                    return Err("the device model must not contain control characters".into());
                }
                check_len("device model", model, MAX_DEVICE_MODEL)
            }
            CareOp::SetMonitoring { spo2_scale, rules, escalate_after_ms, .. } => {
                if !matches!(spo2_scale, 1 | 2) {
                    return Err(format!(
                        "the SpO2 scale is 1 or 2 (2 for hypercapnic respiratory failure), not {spo2_scale}"
                    ));
                }
                if rules.len() > MAX_RULES {
                    return Err(format!("{} rules, above the limit of {MAX_RULES}", rules.len()));
                }
                for r in rules {
                    check_len("rule", &r.0, MAX_RULE_TEXT)?;
                    r.rule().map_err(|e| format!("rule `{}`: {e}", r.0))?;
                }
                if !(MIN_ESCALATE_AFTER_MS..=MAX_ESCALATE_AFTER_MS).contains(escalate_after_ms) {
                    return Err(format!(
                        "the escalation delay is {escalate_after_ms} ms; it must be between {MIN_ESCALATE_AFTER_MS} (a minute) and {MAX_ESCALATE_AFTER_MS} (a day)"
                    ));
                }
                Ok(())
            }
            CareOp::AnchorReadings { first_ms, last_ms, count, .. } => {
                if *count == 0 || *count > MAX_ANCHOR_READINGS {
                    return Err(format!("an anchor covers 1 to {MAX_ANCHOR_READINGS} readings, not {count}"));
                }
                if first_ms > last_ms {
                    return Err("the interval's first reading is after its last".into());
                }
                Ok(())
            }
            CareOp::RaiseAlarm { cause, .. } => {
                check_len("alarm cause", cause, MAX_RULE_TEXT)?;
                alarm::check_cause(cause).map_err(|e| format!("alarm cause: {e}"))
            }
            CareOp::ApproveReferral { .. }
            | CareOp::ConfirmReferral { .. }
            | CareOp::AcceptReferral { .. }
            | CareOp::StartReferral { .. }
            | CareOp::CompleteReferral { .. }
            | CareOp::RevokeDevice { .. }
            | CareOp::SetOnCall { .. }
            | CareOp::AcknowledgeAlarm { .. }
            | CareOp::EscalateAlarm { .. } => Ok(()),
        }
    }

    /// A well-formed operation of `kind` (`None` for another domain's kind), varied by `n`, for
    /// tests that walk the permission table (checked before any state).
    pub fn example(kind: crate::OpKind, n: u8, now_ms: u64) -> Option<CareOp> {
        use crate::OpKind as K;
        let referral_id = Hash([n; 32]);
        let someone = crate::Keypair::from_seed(u64::from(n) + 7_000).public();
        Some(match kind {
            K::ProposeReferral => CareOp::ProposeReferral {
                referral_id,
                patient: Hash([1; 32]),
                doctor: someone,
                to: "hospital-1".into(),
                specialty: "394579002".into(),
                records: vec![Hash([2; 32])],
            },
            K::ApproveReferral => CareOp::ApproveReferral { referral_id },
            K::ConfirmReferral => CareOp::ConfirmReferral { referral_id },
            K::AcceptReferral => CareOp::AcceptReferral {
                referral_id,
                mode: Mode::Remote,
                appointment_ms: now_ms + 86_400_000,
                doctor: someone,
            },
            K::RejectReferral => CareOp::RejectReferral { referral_id, reason: "no capacity".into() },
            K::StartReferral => CareOp::StartReferral { referral_id },
            K::CompleteReferral => CareOp::CompleteReferral { referral_id, report: Hash([3; 32]) },
            K::FailReferral => CareOp::FailReferral { referral_id, reason: "patient unreachable".into() },
            K::CancelReferral => CareOp::CancelReferral { referral_id, reason: "no longer needed".into() },
            K::RegisterDevice => CareOp::RegisterDevice {
                device_id: Hash([n; 32]),
                patient: Hash([1; 32]),
                key: someone,
                model: "wrist pulse oximeter".into(),
            },
            K::RevokeDevice => CareOp::RevokeDevice { device_id: Hash([n; 32]) },
            K::SetMonitoring => CareOp::SetMonitoring {
                patient: Hash([1; 32]),
                spo2_scale: 1,
                rules: vec![RuleText("pulse > 130".into())],
                escalate_after_ms: 300_000,
            },
            K::SetOnCall => CareOp::SetOnCall { doctor: someone },
            K::AnchorReadings => CareOp::AnchorReadings {
                device_id: Hash([n; 32]),
                first_ms: now_ms - 60_000,
                last_ms: now_ms,
                count: 60,
                root: Hash([4; 32]),
            },
            K::RaiseAlarm => CareOp::RaiseAlarm {
                alarm_id: Hash([n; 32]),
                device_id: Hash([n; 32]),
                reading: Hash([5; 32]),
                cause: "news2 medium".into(),
            },
            K::AcknowledgeAlarm => CareOp::AcknowledgeAlarm { alarm_id: Hash([n; 32]) },
            K::EscalateAlarm => CareOp::EscalateAlarm { alarm_id: Hash([n; 32]) },
            _ => return None,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Canonical;

    pub(crate) fn samples() -> Vec<CareOp> {
        crate::Domain::Care
            .kinds()
            .iter()
            .map(|k| CareOp::example(*k, 9, 1_795_305_600_000).expect("a care kind"))
            .collect()
    }

    #[test]
    fn every_operation_round_trips_and_passes_its_limits() {
        let ops = samples();
        assert_eq!(ops.len(), CareOp::KINDS.len());
        for op in ops {
            op.check_limits().unwrap_or_else(|e| panic!("{}: {e}", op.kind().name()));
            assert_eq!(CareOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn bad_fields_name_the_field_and_the_rule() {
        let propose = samples().remove(0);
        let with = |f: &dyn Fn(&mut CareOp)| {
            let mut op = propose.clone();
            f(&mut op);
            op.check_limits().unwrap_err()
        };
        let e = with(&|op| {
            if let CareOp::ProposeReferral { records, .. } = op {
                records.clear()
            }
        });
        assert!(e.contains("at least one record"), "{e}");
        let e = with(&|op| {
            if let CareOp::ProposeReferral { records, .. } = op {
                records.push(records[0])
            }
        });
        assert!(e.contains("twice"), "{e}");
        let e = with(&|op| {
            if let CareOp::ProposeReferral { specialty, .. } = op {
                *specialty = "x".repeat(MAX_SPECIALTY + 1)
            }
        });
        assert!(e.contains("specialty"), "{e}");
        // A code of the value set only: no free text, not even a display name, rides on chain.
        let e = with(&|op| {
            if let CareOp::ProposeReferral { specialty, .. } = op {
                *specialty = "HIV+, chest pain".into()
            }
        });
        assert!(e.contains("unknown specialty") && e.contains("practice setting"), "{e}");
        let e = with(&|op| {
            if let CareOp::ProposeReferral { specialty, .. } = op {
                *specialty = "Cardiology".into()
            }
        });
        assert_eq!(e, "the specialty goes on chain as its code: 394579002, not \"Cardiology\"");
        let e = CareOp::RejectReferral { referral_id: Hash([1; 32]), reason: " ".into() }.check_limits().unwrap_err();
        assert_eq!(e, "to reject a referral, give a reason");
        let e = CareOp::CompleteReferral { referral_id: Hash([1; 32]), report: Hash::ZERO }.check_limits().unwrap_err();
        assert!(e.contains("report"), "{e}");
        // The decoder enforces the same limits.
        let long = CareOp::CancelReferral { referral_id: Hash([1; 32]), reason: "x".repeat(MAX_REFERRAL_REASON + 1) };
        assert!(CareOp::from_bytes(&long.to_bytes()).is_err());
        // Monitoring: the scale, the rules, the delay, the causes.
        let monitoring = |scale: u32, rule: &str, delay: u64| CareOp::SetMonitoring {
            patient: Hash([1; 32]),
            spo2_scale: scale,
            rules: vec![RuleText(rule.into())],
            escalate_after_ms: delay,
        };
        assert!(monitoring(3, "pulse > 130", 300_000).check_limits().unwrap_err().contains("SpO2 scale is 1 or 2"));
        assert!(monitoring(1, "mood > 3", 300_000).check_limits().unwrap_err().contains("not a monitored parameter"));
        assert!(monitoring(1, "pulse > 130", 1_000).check_limits().unwrap_err().contains("escalation delay"));
        monitoring(2, "spo2 < 88", 600_000).check_limits().unwrap();
        let alarm = |cause: &str| CareOp::RaiseAlarm {
            alarm_id: Hash([1; 32]),
            device_id: Hash([2; 32]),
            reading: Hash([3; 32]),
            cause: cause.into(),
        };
        assert!(alarm("news2 low").check_limits().unwrap_err().contains("raises no alarm"));
        alarm("news2 high").check_limits().unwrap();
        alarm("pulse > 130").check_limits().unwrap();
        let anchor =
            CareOp::AnchorReadings { device_id: Hash([1; 32]), first_ms: 2, last_ms: 1, count: 1, root: Hash([2; 32]) };
        assert!(anchor.check_limits().unwrap_err().contains("after its last"));
    }

    #[test]
    fn status_changes_map_to_task_actions() {
        for op in samples() {
            let is_status_change = op.referral_id().is_some()
                && !matches!(
                    op,
                    CareOp::ProposeReferral { .. } | CareOp::ApproveReferral { .. } | CareOp::ConfirmReferral { .. }
                );
            assert_eq!(op.action().is_some(), is_status_change, "{}", op.kind().name());
        }
    }
}
