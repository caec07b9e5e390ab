//! Transactions: what a signer asks the consortium to do.
//!
//! An [`Operation`] is two-level: the domain, then the domain's own operation (declared once in
//! that domain's module with [`crate::operations!`]). The wire form is the domain tag byte
//! ([`Domain`]), then the operation's tag byte, then its fields.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::{domain, tagged, Hash};
use crate::keys::{Keypair, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use crate::audit::{AccessOutcome, AuditOp};
pub use crate::care::CareOp;
pub use crate::consent::{action, ConsentOp, ConsentTerms, Grantee, Purpose, Scope};
pub use crate::drugs::DrugsOp;
pub use crate::identity::{CredentialSpec, IdentityOp, Role};
pub use crate::limits;
pub use crate::records::RecordsOp;

/// The domains, in tag order. The tag byte is the position in [`Domain::ALL`]; never reorder,
/// and give a new domain the next free tag. Tags of domains that are planned but not yet built
/// are reserved in [`Domain::RESERVED`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Identity,
    Consent,
    Records,
    Audit,
    Drugs,
    Care,
}

impl Domain {
    pub const ALL: [Domain; 6] =
        [Domain::Identity, Domain::Consent, Domain::Records, Domain::Audit, Domain::Drugs, Domain::Care];
    /// Planned domains and the tags kept for them.
    pub const RESERVED: [(&'static str, u8); 2] = [("resources", 6), ("wallet", 7)];
    pub fn tag(self) -> u8 {
        self as u8
    }
    pub fn name(self) -> &'static str {
        match self {
            Domain::Identity => "identity",
            Domain::Consent => "consent",
            Domain::Records => "records",
            Domain::Audit => "audit",
            Domain::Drugs => "drugs",
            Domain::Care => "care",
        }
    }
    /// The operation kinds of this domain, in tag order.
    pub fn kinds(self) -> &'static [OpKind] {
        match self {
            Domain::Identity => IdentityOp::KINDS,
            Domain::Consent => ConsentOp::KINDS,
            Domain::Records => RecordsOp::KINDS,
            Domain::Audit => AuditOp::KINDS,
            Domain::Drugs => DrugsOp::KINDS,
            Domain::Care => CareOp::KINDS,
        }
    }
}

/// The operations a transaction can carry, by domain. JSON keeps one flat object tagged by
/// `type` (operation names are unique across domains).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operation {
    Identity(IdentityOp),
    Consent(ConsentOp),
    Records(RecordsOp),
    Audit(AuditOp),
    Drugs(DrugsOp),
    Care(CareOp),
}

impl From<IdentityOp> for Operation {
    fn from(op: IdentityOp) -> Self {
        Operation::Identity(op)
    }
}
impl From<ConsentOp> for Operation {
    fn from(op: ConsentOp) -> Self {
        Operation::Consent(op)
    }
}
impl From<RecordsOp> for Operation {
    fn from(op: RecordsOp) -> Self {
        Operation::Records(op)
    }
}
impl From<AuditOp> for Operation {
    fn from(op: AuditOp) -> Self {
        Operation::Audit(op)
    }
}
impl From<DrugsOp> for Operation {
    fn from(op: DrugsOp) -> Self {
        Operation::Drugs(op)
    }
}
impl From<CareOp> for Operation {
    fn from(op: CareOp) -> Self {
        Operation::Care(op)
    }
}

/// Operation kinds, the columns of the permission table. Names are unique across domains.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    AddInstitution,
    IssueCredential,
    RevokeCredential,
    RegisterPatient,
    Attest,
    RotatePatientKey,
    SetRegion,
    GrantConsent,
    RevokeConsent,
    RequestAccess,
    RespondAccess,
    AnchorRecord,
    ReviewAmendment,
    LogAccess,
    RequestErasure,
    ConfirmErasure,
    BindPrefix,
    RegisterProduct,
    Commission,
    Aggregate,
    Disaggregate,
    Ship,
    Receive,
    Dispense,
    UndoDispense,
    Recall,
    Report,
    Verify,
    Capture,
    ProposeReferral,
    ApproveReferral,
    ConfirmReferral,
    AcceptReferral,
    RejectReferral,
    StartReferral,
    CompleteReferral,
    FailReferral,
    CancelReferral,
    RegisterDevice,
    RevokeDevice,
    SetMonitoring,
    SetOnCall,
    AnchorReadings,
    RaiseAlarm,
    AcknowledgeAlarm,
    EscalateAlarm,
    UnbindPrefix,
}

impl OpKind {
    pub const ALL: [OpKind; 47] = [
        OpKind::AddInstitution,
        OpKind::IssueCredential,
        OpKind::RevokeCredential,
        OpKind::RegisterPatient,
        OpKind::Attest,
        OpKind::RotatePatientKey,
        OpKind::SetRegion,
        OpKind::GrantConsent,
        OpKind::RevokeConsent,
        OpKind::RequestAccess,
        OpKind::RespondAccess,
        OpKind::AnchorRecord,
        OpKind::ReviewAmendment,
        OpKind::LogAccess,
        OpKind::RequestErasure,
        OpKind::ConfirmErasure,
        OpKind::BindPrefix,
        OpKind::RegisterProduct,
        OpKind::Commission,
        OpKind::Aggregate,
        OpKind::Disaggregate,
        OpKind::Ship,
        OpKind::Receive,
        OpKind::Dispense,
        OpKind::UndoDispense,
        OpKind::Recall,
        OpKind::Report,
        OpKind::Verify,
        OpKind::Capture,
        OpKind::UnbindPrefix,
        OpKind::ProposeReferral,
        OpKind::ApproveReferral,
        OpKind::ConfirmReferral,
        OpKind::AcceptReferral,
        OpKind::RejectReferral,
        OpKind::StartReferral,
        OpKind::CompleteReferral,
        OpKind::FailReferral,
        OpKind::CancelReferral,
        OpKind::RegisterDevice,
        OpKind::RevokeDevice,
        OpKind::SetMonitoring,
        OpKind::SetOnCall,
        OpKind::AnchorReadings,
        OpKind::RaiseAlarm,
        OpKind::AcknowledgeAlarm,
        OpKind::EscalateAlarm,
    ];
    pub fn name(self) -> &'static str {
        match self {
            OpKind::AddInstitution => "add_institution",
            OpKind::IssueCredential => "issue_credential",
            OpKind::RevokeCredential => "revoke_credential",
            OpKind::RegisterPatient => "register_patient",
            OpKind::Attest => "attest",
            OpKind::RotatePatientKey => "rotate_patient_key",
            OpKind::SetRegion => "set_region",
            OpKind::GrantConsent => "grant_consent",
            OpKind::RevokeConsent => "revoke_consent",
            OpKind::RequestAccess => "request_access",
            OpKind::RespondAccess => "respond_access",
            OpKind::AnchorRecord => "anchor_record",
            OpKind::ReviewAmendment => "review_amendment",
            OpKind::LogAccess => "log_access",
            OpKind::RequestErasure => "request_erasure",
            OpKind::ConfirmErasure => "confirm_erasure",
            OpKind::BindPrefix => "bind_prefix",
            OpKind::UnbindPrefix => "unbind_prefix",
            OpKind::RegisterProduct => "register_product",
            OpKind::Commission => "commission",
            OpKind::Aggregate => "aggregate",
            OpKind::Disaggregate => "disaggregate",
            OpKind::Ship => "ship",
            OpKind::Receive => "receive",
            OpKind::Dispense => "dispense",
            OpKind::UndoDispense => "undo_dispense",
            OpKind::Recall => "recall",
            OpKind::Report => "report",
            OpKind::Verify => "verify",
            OpKind::Capture => "capture",
            OpKind::ProposeReferral => "propose_referral",
            OpKind::ApproveReferral => "approve_referral",
            OpKind::ConfirmReferral => "confirm_referral",
            OpKind::AcceptReferral => "accept_referral",
            OpKind::RejectReferral => "reject_referral",
            OpKind::StartReferral => "start_referral",
            OpKind::CompleteReferral => "complete_referral",
            OpKind::FailReferral => "fail_referral",
            OpKind::CancelReferral => "cancel_referral",
            OpKind::RegisterDevice => "register_device",
            OpKind::RevokeDevice => "revoke_device",
            OpKind::SetMonitoring => "set_monitoring",
            OpKind::SetOnCall => "set_on_call",
            OpKind::AnchorReadings => "anchor_readings",
            OpKind::RaiseAlarm => "raise_alarm",
            OpKind::AcknowledgeAlarm => "acknowledge_alarm",
            OpKind::EscalateAlarm => "escalate_alarm",
        }
    }
    /// The domain that owns this kind.
    pub fn domain(self) -> Domain {
        match self {
            OpKind::AddInstitution
            | OpKind::IssueCredential
            | OpKind::RevokeCredential
            | OpKind::RegisterPatient
            | OpKind::Attest
            | OpKind::RotatePatientKey
            | OpKind::SetRegion => Domain::Identity,
            OpKind::GrantConsent | OpKind::RevokeConsent | OpKind::RequestAccess | OpKind::RespondAccess => {
                Domain::Consent
            }
            OpKind::AnchorRecord | OpKind::ReviewAmendment | OpKind::RequestErasure | OpKind::ConfirmErasure => {
                Domain::Records
            }
            OpKind::LogAccess => Domain::Audit,
            OpKind::BindPrefix
            | OpKind::RegisterProduct
            | OpKind::Commission
            | OpKind::Aggregate
            | OpKind::Disaggregate
            | OpKind::Ship
            | OpKind::Receive
            | OpKind::Dispense
            | OpKind::UndoDispense
            | OpKind::Recall
            | OpKind::Report
            | OpKind::Verify
            | OpKind::Capture
            | OpKind::UnbindPrefix => Domain::Drugs,
            OpKind::ProposeReferral
            | OpKind::ApproveReferral
            | OpKind::ConfirmReferral
            | OpKind::AcceptReferral
            | OpKind::RejectReferral
            | OpKind::StartReferral
            | OpKind::CompleteReferral
            | OpKind::FailReferral
            | OpKind::CancelReferral
            | OpKind::RegisterDevice
            | OpKind::RevokeDevice
            | OpKind::SetMonitoring
            | OpKind::SetOnCall
            | OpKind::AnchorReadings
            | OpKind::RaiseAlarm
            | OpKind::AcknowledgeAlarm
            | OpKind::EscalateAlarm => Domain::Care,
        }
    }
}

impl Operation {
    pub fn domain(&self) -> Domain {
        match self {
            Operation::Identity(_) => Domain::Identity,
            Operation::Consent(_) => Domain::Consent,
            Operation::Records(_) => Domain::Records,
            Operation::Audit(_) => Domain::Audit,
            Operation::Drugs(_) => Domain::Drugs,
            Operation::Care(_) => Domain::Care,
        }
    }

    pub fn kind(&self) -> OpKind {
        match self {
            Operation::Identity(op) => op.kind(),
            Operation::Consent(op) => op.kind(),
            Operation::Records(op) => op.kind(),
            Operation::Audit(op) => op.kind(),
            Operation::Drugs(op) => op.kind(),
            Operation::Care(op) => op.kind(),
        }
    }

    /// The work of executing this operation, in units of about one state object written: 1 for
    /// most operations, the items an operation names for those that name many (see
    /// [`crate::block::MAX_BLOCK_WEIGHT`]).
    pub fn weight(&self) -> u64 {
        match self {
            Operation::Drugs(op) => op.weight(),
            Operation::Audit(AuditOp::LogAccess { events }) => events.len().max(1) as u64,
            Operation::Identity(_) | Operation::Consent(_) | Operation::Records(_) | Operation::Care(_) => 1,
        }
    }

    /// Field limits, checked before encoding (the decoder enforces the same limits), and the
    /// operation's work ([`Operation::weight`], at most [`limits::MAX_TX_WEIGHT`]).
    pub fn check_limits(&self) -> Result<(), String> {
        match self {
            Operation::Identity(op) => op.check_limits(),
            Operation::Consent(op) => op.check_limits(),
            Operation::Records(op) => op.check_limits(),
            Operation::Audit(op) => op.check_limits(),
            Operation::Drugs(op) => op.check_limits(),
            Operation::Care(op) => op.check_limits(),
        }?;
        let w = self.weight();
        if w > limits::MAX_TX_WEIGHT {
            return Err(format!(
                "the operation's work is {w} units (items it reaches, a case or pallet counting {}), above the limit of {} per transaction; split it",
                crate::drugs::limits::MAX_REACHED,
                limits::MAX_TX_WEIGHT
            ));
        }
        Ok(())
    }
}

impl Canonical for Operation {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(self.domain().tag());
        match self {
            Operation::Identity(op) => op.encode_to(w),
            Operation::Consent(op) => op.encode_to(w),
            Operation::Records(op) => op.encode_to(w),
            Operation::Audit(op) => op.encode_to(w),
            Operation::Drugs(op) => op.encode_to(w),
            Operation::Care(op) => op.encode_to(w),
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8("domain")?;
        let d = Domain::ALL.get(t as usize).copied().ok_or(DecodeError::UnknownTag("domain", t))?;
        Ok(match d {
            Domain::Identity => Operation::Identity(IdentityOp::decode_from(r)?),
            Domain::Consent => Operation::Consent(ConsentOp::decode_from(r)?),
            Domain::Records => Operation::Records(RecordsOp::decode_from(r)?),
            Domain::Audit => Operation::Audit(AuditOp::decode_from(r)?),
            Domain::Drugs => Operation::Drugs(DrugsOp::decode_from(r)?),
            Domain::Care => Operation::Care(CareOp::decode_from(r)?),
        })
    }
}

/// The signed part of a transaction.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    pub signer: PublicKey,
    pub nonce: u64,
    pub op: Operation,
}

impl Canonical for Transaction {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.chain_id);
        self.signer.encode_to(w);
        w.u64(self.nonce);
        self.op.encode_to(w);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Transaction {
            chain_id: r.string("chain id", limits::MAX_CHAIN_ID)?,
            signer: PublicKey::decode_from(r)?,
            nonce: r.u64("nonce")?,
            op: Operation::decode_from(r)?,
        })
    }
}

#[derive(Debug)]
struct TxInner {
    body: Transaction,
    signature: Signature,
    /// The exact bytes received (or produced by signing): `body || signature`.
    raw: Vec<u8>,
    /// Length of the signed body within `raw`.
    body_len: usize,
    id: Hash,
}

/// A signed transaction. Cheap to clone; keeps the exact bytes it was decoded from, which are
/// what is hashed (its id) and what the signature covers.
#[derive(Clone, Debug)]
pub struct Tx(Arc<TxInner>);

impl PartialEq for Tx {
    fn eq(&self, other: &Self) -> bool {
        self.0.raw == other.0.raw
    }
}
impl Eq for Tx {}

/// Why a transaction could not even be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxDecodeError {
    #[error("transaction is {0} bytes, above the limit of {1}")]
    Oversize(usize, usize),
    #[error("malformed transaction: {0}")]
    Malformed(#[from] DecodeError),
}

impl Tx {
    /// Signs `body` with `key`. Panics if `key` is not `body.signer` (a programming error).
    pub fn sign(body: Transaction, key: &Keypair) -> Tx {
        assert_eq!(body.signer, key.public(), "signer field must match the signing key");
        let bytes = body.to_bytes();
        let signature = key.sign(domain::TX_SIGNATURE, &bytes);
        let body_len = bytes.len();
        let mut raw = bytes;
        raw.extend_from_slice(&signature.0);
        let id = tagged(domain::TX_ID, &[&raw]);
        Tx(Arc::new(TxInner { body, signature, raw, body_len, id }))
    }

    /// Decodes a signed transaction from its exact bytes (signature not checked here).
    pub fn decode(raw: &[u8]) -> Result<Tx, TxDecodeError> {
        if raw.len() > limits::MAX_TX_BYTES {
            return Err(TxDecodeError::Oversize(raw.len(), limits::MAX_TX_BYTES));
        }
        let mut r = Reader::new(raw);
        let body = Transaction::decode_from(&mut r)?;
        let body_len = raw.len() - r.remaining();
        let signature = Signature::decode_from(&mut r)?;
        r.finish()?;
        let id = tagged(domain::TX_ID, &[raw]);
        Ok(Tx(Arc::new(TxInner { body, signature, raw: raw.to_vec(), body_len, id })))
    }

    pub fn body(&self) -> &Transaction {
        &self.0.body
    }
    pub fn signature(&self) -> &Signature {
        &self.0.signature
    }
    pub fn id(&self) -> Hash {
        self.0.id
    }
    pub fn raw(&self) -> &[u8] {
        &self.0.raw
    }
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.0.raw[..self.0.body_len]
    }
    /// Checks the signature alone.
    pub fn verify_signature(&self) -> bool {
        crate::keys::verify(&self.0.body.signer, domain::TX_SIGNATURE, self.signed_bytes(), &self.0.signature)
    }
}

/// Verifies the signatures of many transactions at once (batched, ZIP-215), one verdict per tx.
pub fn verify_signatures(txs: &[&Tx]) -> Vec<bool> {
    let items: Vec<crate::keys::BatchItem> = txs
        .iter()
        .map(|t| crate::keys::BatchItem {
            public_key: &t.0.body.signer,
            message: t.signed_bytes(),
            signature: &t.0.signature,
        })
        .collect();
    crate::keys::verify_many(domain::TX_SIGNATURE, &items)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample(k: &Keypair) -> Transaction {
        Transaction {
            chain_id: "test".into(),
            signer: k.public(),
            nonce: 3,
            op: IdentityOp::Attest { digest: Hash([7; 32]), label: "lab".into() }.into(),
        }
    }

    /// One of every operation of every domain.
    pub(crate) fn all_ops() -> Vec<Operation> {
        let mut v: Vec<Operation> = Vec::new();
        v.extend(crate::identity::tests::samples().into_iter().map(Operation::from));
        v.extend(crate::consent::tests::samples().into_iter().map(Operation::from));
        v.extend(crate::records::tests::samples().into_iter().map(Operation::from));
        v.extend(crate::audit::tests::samples().into_iter().map(Operation::from));
        v.extend(crate::drugs::tests::samples().into_iter().map(Operation::from));
        v.extend(crate::care::tests::samples().into_iter().map(Operation::from));
        v
    }

    #[test]
    fn round_trip_keeps_exact_bytes_and_id() {
        let k = Keypair::from_seed(1);
        let tx = Tx::sign(sample(&k), &k);
        assert!(tx.verify_signature());
        let back = Tx::decode(tx.raw()).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.id(), tx.id());
        assert_eq!(back.body(), tx.body());
    }

    #[test]
    fn malformed_inputs_are_specific_errors() {
        let k = Keypair::from_seed(1);
        let tx = Tx::sign(sample(&k), &k);
        let raw = tx.raw();
        assert!(matches!(Tx::decode(&raw[..raw.len() - 1]), Err(TxDecodeError::Malformed(DecodeError::EndOfInput(_)))));
        let mut extra = raw.to_vec();
        extra.push(0);
        assert!(matches!(Tx::decode(&extra), Err(TxDecodeError::Malformed(DecodeError::TrailingBytes(1)))));
        assert!(matches!(Tx::decode(&vec![0u8; limits::MAX_TX_BYTES + 1]), Err(TxDecodeError::Oversize(..))));
        // chain id "test" = 4 + 4 bytes, signer 32, nonce 8 => domain tag at 48, operation tag at 49
        let mut bad_domain = raw.to_vec();
        bad_domain[48] = 99;
        assert!(matches!(
            Tx::decode(&bad_domain),
            Err(TxDecodeError::Malformed(DecodeError::UnknownTag("domain", 99)))
        ));
        let mut bad_tag = raw.to_vec();
        bad_tag[49] = 99;
        assert!(matches!(
            Tx::decode(&bad_tag),
            Err(TxDecodeError::Malformed(DecodeError::UnknownTag("identity operation", 99)))
        ));
    }

    #[test]
    fn tampered_body_fails_signature() {
        let k = Keypair::from_seed(1);
        let tx = Tx::sign(sample(&k), &k);
        let mut raw = tx.raw().to_vec();
        raw[47] ^= 1; // last nonce byte
        let t2 = Tx::decode(&raw).unwrap();
        assert!(!t2.verify_signature());
        assert_eq!(verify_signatures(&[&tx, &t2]), vec![true, false]);
    }

    #[test]
    fn every_operation_round_trips() {
        let ops = all_ops();
        assert_eq!(ops.len(), OpKind::ALL.len(), "one sample per operation kind");
        for op in ops {
            let b = op.to_bytes();
            assert_eq!(b[0], op.domain().tag());
            assert_eq!(Operation::from_bytes(&b).unwrap(), op);
            let json = serde_json::to_value(&op).unwrap();
            assert_eq!(json["type"], op.kind().name(), "JSON is tagged by the operation name");
            assert_eq!(serde_json::from_value::<Operation>(json).unwrap(), op);
        }
    }

    /// Every kind belongs to exactly one domain, domains list their kinds in tag order, and tags
    /// are dense from zero (so the tag registry has no gaps or duplicates).
    #[test]
    fn domain_and_kind_registries_agree() {
        let mut seen = Vec::new();
        for d in Domain::ALL {
            assert_eq!(Domain::ALL[d.tag() as usize], d);
            for k in d.kinds() {
                assert_eq!(k.domain(), d, "{} is listed under {}", k.name(), d.name());
                seen.push(*k);
            }
        }
        let mut all = OpKind::ALL.to_vec();
        all.sort();
        seen.sort();
        assert_eq!(seen, all, "every kind is in exactly one domain");
        for op in all_ops() {
            let d = op.domain();
            let pos = d.kinds().iter().position(|k| *k == op.kind()).unwrap();
            assert_eq!(op.to_bytes()[1] as usize, pos, "{}: tag = position in its domain", op.kind().name());
        }
        for (name, tag) in Domain::RESERVED {
            assert!(tag as usize >= Domain::ALL.len(), "reserved tag {tag} of {name} is in use");
            assert!(Domain::ALL.iter().all(|d| d.name() != name));
        }
    }
}
