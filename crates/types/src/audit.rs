//! Audit: the holder's log of every read attempt on a record it holds (served, denied or
//! break-glass). Regulators, patients and institutions query it; see `read::AuditQuery`.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::consent::Purpose;
use crate::keys::PublicKey;
use crate::note::SealedNote;
use crate::Hash;
use serde::{Deserialize, Serialize};

/// What happened to a read attempt (FHIR AuditEvent `outcome`, simplified).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessOutcome {
    /// Served under a consent.
    Served,
    /// Refused.
    Denied,
    /// Served without consent in an emergency; flagged for the patient and regulators.
    BreakGlass,
}

impl AccessOutcome {
    pub const ALL: [AccessOutcome; 3] = [AccessOutcome::Served, AccessOutcome::Denied, AccessOutcome::BreakGlass];
    pub fn name(self) -> &'static str {
        match self {
            AccessOutcome::Served => "served",
            AccessOutcome::Denied => "denied",
            AccessOutcome::BreakGlass => "break_glass",
        }
    }
    pub fn parse(s: &str) -> Result<AccessOutcome, String> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        AccessOutcome::ALL
            .iter()
            .copied()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown outcome `{s}` (expected served, denied or break_glass)"))
    }
}

impl Canonical for AccessOutcome {
    fn encode_to(&self, w: &mut Writer) {
        // The tag is the position in `ALL`; `as u8` on this fieldless enum is that position.
        w.u8(*self as u8);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8("access outcome")?;
        AccessOutcome::ALL.get(t as usize).copied().ok_or(DecodeError::UnknownTag("access outcome", t))
    }
}

crate::canonical_field!(AccessOutcome);

/// Limits of this domain.
pub mod limits {
    /// Most access events one `log_access` transaction carries.
    pub const MAX_ACCESS_BATCH: usize = 64;
    /// Encoded size of an access event without a reason (ids, version, requester, purpose,
    /// outcome, the empty note's two lengths).
    pub const ACCESS_NOTE_BASE_BYTES: usize = 32 + 32 + 4 + 32 + 1 + 1 + 8;
}
use limits::MAX_ACCESS_BATCH;

crate::canonical_struct! {
    /// One read attempt, as the holder logs it. `request_id` is the id of the requester's signed
    /// read request: each is logged at most once, so a batch re-sent after a crash is harmless.
    pub struct AccessNote {
        request_id: Hash = "request id",
        record_id: Hash = "record id",
        version: u32 = "version",
        requester: PublicKey = "requester",
        purpose: Purpose = "purpose",
        outcome: AccessOutcome = "access outcome",
        /// Why it was denied, or the break-glass reason, sealed for the patient, the holding
        /// institution and every regulator; empty for an ordinary served read.
        reason: SealedNote = "reason",
    }
}

crate::operations! {
    /// Audit operations.
    pub enum AuditOp ("audit operation") {
        /// The holding institution records read attempts (served, denied or break-glass), many
        /// per transaction, so that a read does not cost a transaction.
        0 => LogAccess {
            events: Vec<AccessNote> = "access events" max MAX_ACCESS_BATCH,
        },
    }
}

impl AuditOp {
    /// Field limits, checked before encoding (the decoder enforces the same limits).
    pub fn check_limits(&self) -> Result<(), String> {
        match self {
            AuditOp::LogAccess { events } => {
                if events.is_empty() || events.len() > MAX_ACCESS_BATCH {
                    return Err(format!("a log_access carries 1..={MAX_ACCESS_BATCH} events, not {}", events.len()));
                }
                events.iter().try_for_each(|e| e.reason.check_limits())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Keypair;

    pub(crate) fn samples() -> Vec<AuditOp> {
        vec![AuditOp::LogAccess {
            events: vec![
                AccessNote {
                    request_id: Hash([6; 32]),
                    record_id: Hash([7; 32]),
                    version: 1,
                    requester: Keypair::from_seed(2).public(),
                    purpose: Purpose::Audit,
                    outcome: AccessOutcome::BreakGlass,
                    reason: SealedNote {
                        ciphertext: vec![5; 40],
                        recipients: vec![crate::NoteKey {
                            recipient: Keypair::from_seed(3).public(),
                            wrapped: [4; 80],
                        }],
                    },
                },
                AccessNote {
                    request_id: Hash([8; 32]),
                    record_id: Hash([7; 32]),
                    version: 1,
                    requester: Keypair::from_seed(2).public(),
                    purpose: Purpose::Treatment,
                    outcome: AccessOutcome::Served,
                    reason: SealedNote::default(),
                },
            ],
        }]
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = samples();
        assert_eq!(ops.len(), AuditOp::KINDS.len());
        for op in ops {
            assert_eq!(AuditOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn outcome_tags_follow_all() {
        for (i, o) in AccessOutcome::ALL.iter().enumerate() {
            assert_eq!(o.to_bytes(), vec![i as u8]);
        }
        assert_eq!(AccessOutcome::from_bytes(&[3]), Err(DecodeError::UnknownTag("access outcome", 3)));
    }
}
