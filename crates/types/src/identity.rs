//! Identity: member institutions, credentials that bind keys to roles, patient pseudonyms and
//! attestations (notarised digests).

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::keys::PublicKey;
use crate::Hash;
use serde::{Deserialize, Serialize};

/// Field limits of this domain (re-exported by [`crate::limits`]).
pub mod limits {
    pub const MAX_INSTITUTION_ID: usize = 64;
    pub const MAX_NAME: usize = 128;
    pub const MAX_LABEL: usize = 128;
    /// A region code (`[a-z0-9-]`, e.g. `rural-east`): what statistics group institutions by.
    pub const MAX_REGION: usize = 32;
    /// Most regulators with a valid credential at once: every sealed reason is sealed for each.
    pub const MAX_REGULATORS: usize = 8;
}
use crate::limits::{MAX_INSTITUTION_ID, MAX_LABEL, MAX_NAME, MAX_REASON, MAX_REGION};

/// The roles a credential can bind to a key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Doctor,
    InstitutionAdmin,
    Regulator,
    Researcher,
    Insurer,
    Manufacturer,
    Distributor,
    Pharmacy,
    /// A validator node's own service key: signs the access events and erasure confirmations of
    /// its institution's vault, and nothing else.
    NodeService,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Patient,
        Role::Doctor,
        Role::InstitutionAdmin,
        Role::Regulator,
        Role::Researcher,
        Role::Insurer,
        Role::Manufacturer,
        Role::Distributor,
        Role::Pharmacy,
        Role::NodeService,
    ];
    pub fn tag(self) -> u8 {
        self as u8
    }
    pub fn from_tag(t: u8) -> Option<Role> {
        Role::ALL.get(t as usize).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::InstitutionAdmin => "institution_admin",
            Role::Regulator => "regulator",
            Role::Researcher => "researcher",
            Role::Insurer => "insurer",
            Role::Manufacturer => "manufacturer",
            Role::Distributor => "distributor",
            Role::Pharmacy => "pharmacy",
            Role::NodeService => "node_service",
        }
    }
    /// The role's name with its indefinite article, for messages: "an insurer", "a doctor".
    pub fn a(self) -> String {
        let n = self.name();
        let article = if n.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {n}")
    }
    pub fn parse(s: &str) -> Result<Role, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Role::ALL.iter().copied().find(|r| r.name() == norm).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            format!("unknown role `{s}` (expected one of: {})", names.join(", "))
        })
    }
}

impl Canonical for Role {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(self.tag());
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8("role")?;
        Role::from_tag(t).ok_or(DecodeError::UnknownTag("role", t))
    }
}

crate::canonical_field!(Role, PublicKey, crate::Signature);

crate::canonical_struct! {
    /// What the CA binds to a key (other than patients, see [`IdentityOp::RegisterPatient`]).
    pub struct CredentialSpec {
        subject: PublicKey = "subject",
        role: Role = "role",
        institution: String = "institution id" max MAX_INSTITUTION_ID,
        display_name: String = "display name" max MAX_NAME,
        valid_from_ms: u64 = "valid from",
        valid_until_ms: u64 = "valid until",
    }
}

crate::operations! {
    /// Identity operations.
    pub enum IdentityOp ("identity operation") {
        /// CA: admit a new member institution.
        0 => AddInstitution {
            id: String = "institution id" max MAX_INSTITUTION_ID,
            name: String = "institution name" max MAX_NAME,
        },
        /// CA: bind a key to a (non-patient) role at an institution.
        1 => IssueCredential { #[serde(flatten)] spec: CredentialSpec = "credential" },
        /// CA, or an institution admin for its own institution: revoke a credential from the next block.
        2 => RevokeCredential { subject: PublicKey = "subject", reason: String = "reason" max MAX_REASON },
        /// An institution admin registers a patient key under a pseudonymous id derived by the CA.
        3 => RegisterPatient { subject: PublicKey = "subject", pseudonym: Hash = "pseudonym", valid_until_ms: u64 = "valid until" },
        /// Anchor a document digest with a label (notarisation of off-chain data).
        4 => Attest { digest: Hash = "digest", label: String = "label" max MAX_LABEL },
        /// Move a patient to a new key: the patient (rotation), or the CA or an admin of the
        /// patient's institution (recovery of a lost key). The old key's credential is revoked;
        /// `proof` is the new key's signature over [`rotation_message`], so nobody can move a
        /// patient to a key they do not hold.
        5 => RotatePatientKey {
            pseudonym: Hash = "pseudonym",
            new_key: PublicKey = "new key",
            proof: crate::Signature = "possession proof",
        },
        /// CA, a regulator, or an institution admin for its own institution: place an
        /// institution in a region (a code such as `rural-east`; statistics group by it).
        6 => SetRegion {
            institution: String = "institution id" max MAX_INSTITUTION_ID,
            region: String = "region" max MAX_REGION,
        },
    }
}

/// What a new patient key signs (namespace `KEY_ROTATION_SIGNATURE`) to prove its holder asked to
/// become `pseudonym`'s key on chain `chain_id`, replacing `old_key`.
pub fn rotation_message(chain_id: &str, pseudonym: &Hash, old_key: &PublicKey, new_key: &PublicKey) -> Vec<u8> {
    let mut w = crate::codec::Writer::new();
    w.str(chain_id).fixed(&pseudonym.0).fixed(&old_key.0).fixed(&new_key.0);
    w.finish()
}

impl IdentityOp {
    /// Field limits, checked before encoding (the decoder enforces the same limits).
    pub fn check_limits(&self) -> Result<(), String> {
        use crate::limits::check_len as check;
        match self {
            IdentityOp::AddInstitution { id, name } => {
                check("institution id", id, MAX_INSTITUTION_ID)?;
                check("institution name", name, MAX_NAME)
            }
            IdentityOp::IssueCredential { spec } => {
                check("institution id", &spec.institution, MAX_INSTITUTION_ID)?;
                check("display name", &spec.display_name, MAX_NAME)
            }
            IdentityOp::RevokeCredential { reason, .. } => check("reason", reason, MAX_REASON),
            IdentityOp::RegisterPatient { .. } | IdentityOp::RotatePatientKey { .. } => Ok(()),
            IdentityOp::Attest { label, .. } => check("label", label, MAX_LABEL),
            IdentityOp::SetRegion { institution, region } => {
                check("institution id", institution, MAX_INSTITUTION_ID)?;
                check("region", region, MAX_REGION)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Keypair;

    /// One of every identity operation (shared with the conformance fixtures).
    pub(crate) fn samples() -> Vec<IdentityOp> {
        let k = Keypair::from_seed(2);
        vec![
            IdentityOp::AddInstitution { id: "h1".into(), name: "Hospital".into() },
            IdentityOp::IssueCredential {
                spec: CredentialSpec {
                    subject: k.public(),
                    role: Role::Doctor,
                    institution: "h1".into(),
                    display_name: "Dr A".into(),
                    valid_from_ms: 1,
                    valid_until_ms: 2,
                },
            },
            IdentityOp::RevokeCredential { subject: k.public(), reason: "left".into() },
            IdentityOp::RegisterPatient { subject: k.public(), pseudonym: Hash([1; 32]), valid_until_ms: 5 },
            IdentityOp::Attest { digest: Hash([2; 32]), label: "x".into() },
            IdentityOp::RotatePatientKey {
                pseudonym: Hash([1; 32]),
                new_key: Keypair::from_seed(3).public(),
                proof: crate::Signature([9; 64]),
            },
            IdentityOp::SetRegion { institution: "h1".into(), region: "rural-east".into() },
        ]
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = samples();
        assert_eq!(ops.len(), IdentityOp::KINDS.len());
        for op in ops {
            assert_eq!(IdentityOp::from_bytes(&op.to_bytes()).unwrap(), op);
        }
    }

    #[test]
    fn over_limit_fields_are_refused_on_decode() {
        let op = IdentityOp::Attest { digest: Hash([2; 32]), label: "x".repeat(MAX_LABEL + 1) };
        assert!(op.check_limits().unwrap_err().contains("label"));
        assert_eq!(
            IdentityOp::from_bytes(&op.to_bytes()),
            Err(DecodeError::TooLong("label", MAX_LABEL + 1, MAX_LABEL))
        );
    }

    #[test]
    fn unknown_tag_is_refused() {
        assert_eq!(IdentityOp::from_bytes(&[9]), Err(DecodeError::UnknownTag("identity operation", 9)));
    }

    #[test]
    fn credential_json_is_flat() {
        let v = serde_json::to_value(&samples()[1]).unwrap();
        assert_eq!(v["type"], "issue_credential");
        assert_eq!(v["role"], "doctor");
    }

    #[test]
    fn role_parse_errors_list_choices() {
        assert_eq!(Role::parse("Institution-Admin").unwrap(), Role::InstitutionAdmin);
        let e = Role::parse("nurse").unwrap_err();
        assert!(e.contains("unknown role `nurse`") && e.contains("pharmacy"));
    }
}
