//! Records: anchors of FHIR record versions held encrypted in an institution's vault,
//! amendments reviewed by the patient, and erasure.

use crate::Hash;

/// Field limits of this domain (re-exported by [`crate::limits`]).
pub mod limits {
    pub const MAX_RESOURCE_TYPE: usize = 64;
    pub const MAX_LOCATOR: usize = 256;
}
use limits::{MAX_LOCATOR, MAX_RESOURCE_TYPE};

crate::operations! {
    /// Record operations.
    pub enum RecordsOp ("records operation") {
        /// Doctor with the patient's write consent: anchor a record version (hash, type,
        /// locator). Version 1 creates the record; a later version is an amendment, pending
        /// until the patient reviews it.
        0 => AnchorRecord {
            record_id: Hash = "record id",
            version: u32 = "version",
            patient: Hash = "patient",
            resource_type: String = "resource type" max MAX_RESOURCE_TYPE,
            content_hash: Hash = "content hash",
            locator: String = "locator" max MAX_LOCATOR,
        },
        /// Patient: accept or reject a pending amendment.
        1 => ReviewAmendment { record_id: Hash = "record id", version: u32 = "version", accept: bool = "accept" },
        /// Patient: ask the holder to erase a record.
        2 => RequestErasure { record_id: Hash = "record id" },
        /// The holding institution confirms it destroyed the ciphertext and keys; the hashes remain.
        3 => ConfirmErasure { record_id: Hash = "record id" },
    }
}

impl RecordsOp {
    /// Field limits, checked before encoding (the decoder enforces the same limits).
    pub fn check_limits(&self) -> Result<(), String> {
        match self {
            RecordsOp::AnchorRecord { resource_type, locator, version, .. } => {
                if *version == 0 {
                    return Err("record versions start at 1".into());
                }
                if resource_type.is_empty() {
                    return Err("resource type must not be empty".into());
                }
                crate::limits::check_len("resource type", resource_type, MAX_RESOURCE_TYPE)?;
                crate::limits::check_len("locator", locator, MAX_LOCATOR)
            }
            RecordsOp::ReviewAmendment { .. } | RecordsOp::RequestErasure { .. } | RecordsOp::ConfirmErasure { .. } => {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codec::Canonical;
    use crate::DecodeError;

    pub(crate) fn samples() -> Vec<RecordsOp> {
        vec![
            RecordsOp::AnchorRecord {
                record_id: Hash([7; 32]),
                version: 2,
                patient: Hash([5; 32]),
                resource_type: "Observation".into(),
                content_hash: Hash([8; 32]),
                locator: "vault://h1/abc".into(),
            },
            RecordsOp::ReviewAmendment { record_id: Hash([7; 32]), version: 2, accept: false },
            RecordsOp::RequestErasure { record_id: Hash([7; 32]) },
            RecordsOp::ConfirmErasure { record_id: Hash([7; 32]) },
        ]
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = samples();
        assert_eq!(ops.len(), RecordsOp::KINDS.len());
        for op in ops {
            assert_eq!(RecordsOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn version_zero_and_empty_type_are_refused() {
        let mut op = samples().remove(0);
        if let RecordsOp::AnchorRecord { version, .. } = &mut op {
            *version = 0;
        }
        assert_eq!(op.check_limits().unwrap_err(), "record versions start at 1");
        assert!(matches!(RecordsOp::from_bytes(&[0, 1]), Err(DecodeError::EndOfInput("record id"))));
    }
}
