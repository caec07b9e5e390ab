//! Transactions: what a signer asks the consortium to do.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::{domain, tagged, Hash};
use crate::keys::{Keypair, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Explicit limits on every field a transaction carries.
pub mod limits {
    /// Largest encoded signed transaction the node accepts.
    pub const MAX_TX_BYTES: usize = 8 * 1024;
    pub const MAX_CHAIN_ID: usize = 64;
    pub const MAX_INSTITUTION_ID: usize = 64;
    pub const MAX_NAME: usize = 128;
    pub const MAX_REASON: usize = 256;
    pub const MAX_LABEL: usize = 128;
    pub const MAX_SCOPE_ITEMS: usize = 64;
    pub const MAX_RESOURCE_TYPE: usize = 64;
    pub const MAX_LOCATOR: usize = 256;
}

/// The roles a credential can bind to a key.
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
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Patient,
        Role::Doctor,
        Role::InstitutionAdmin,
        Role::Regulator,
        Role::Researcher,
        Role::Insurer,
        Role::Manufacturer,
        Role::Distributor,
        Role::Pharmacy,
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
        }
    }
    pub fn parse(s: &str) -> Result<Role, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.name() == norm)
            .ok_or_else(|| {
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

/// What the CA binds to a key (other than patients, see [`Operation::RegisterPatient`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSpec {
    pub subject: PublicKey,
    pub role: Role,
    pub institution: String,
    pub display_name: String,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
}

/// Who a consent is granted to: one person (by key) or every credential holder of an institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    Person(PublicKey),
    Institution(String),
}

/// Which of a patient's records a consent covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "items", rename_all = "snake_case")]
pub enum Scope {
    All,
    /// FHIR resource types, e.g. `Observation`.
    ResourceTypes(Vec<String>),
    /// Record ids.
    Records(Vec<Hash>),
}

/// Why access is granted (FHIR Consent `purpose`, simplified).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Treatment,
    Research,
    Insurance,
    Audit,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [Purpose::Treatment, Purpose::Research, Purpose::Insurance, Purpose::Audit];
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Treatment => "treatment",
            Purpose::Research => "research",
            Purpose::Insurance => "insurance",
            Purpose::Audit => "audit",
        }
    }
    pub fn parse(s: &str) -> Result<Purpose, String> {
        Purpose::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown purpose `{s}` (expected treatment, research, insurance or audit)"))
    }
}

impl Canonical for Purpose {
    fn encode_to(&self, w: &mut Writer) {
        w.u8(Purpose::ALL.iter().position(|p| p == self).expect("every purpose is listed") as u8);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8("purpose")?;
        Purpose::ALL.get(t as usize).copied().ok_or(DecodeError::UnknownTag("purpose", t))
    }
}

/// Consent actions, as a bit set.
pub mod action {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const ALL: u8 = READ | WRITE;
}

/// Terms of a consent (granted directly, or requested by a grantee and approved by the patient).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTerms {
    pub grantee: Grantee,
    /// [`action`] bits.
    pub actions: u8,
    pub scope: Scope,
    pub purpose: Purpose,
    /// No expiry when `None`.
    pub expires_ms: Option<u64>,
}

/// What happened to a read attempt (FHIR AuditEvent `outcome`, simplified).
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
        w.u8(AccessOutcome::ALL.iter().position(|o| o == self).expect("every outcome is listed") as u8);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.u8("access outcome")?;
        AccessOutcome::ALL.get(t as usize).copied().ok_or(DecodeError::UnknownTag("access outcome", t))
    }
}

/// The operations a transaction can carry. The tag byte is the index in this list; never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    /// CA: admit a new member institution.
    AddInstitution { id: String, name: String },
    /// CA: bind a key to a (non-patient) role at an institution.
    IssueCredential(CredentialSpec),
    /// CA, or an institution admin for its own institution: revoke a credential from the next block.
    RevokeCredential { subject: PublicKey, reason: String },
    /// An institution admin registers a patient key under a pseudonymous id derived by the CA.
    RegisterPatient { subject: PublicKey, pseudonym: Hash, valid_until_ms: u64 },
    /// Anchor a document digest with a label (notarisation of off-chain data).
    Attest { digest: Hash, label: String },
    /// Patient: grant a consent under a client-chosen unique id.
    GrantConsent { consent_id: Hash, terms: ConsentTerms },
    /// Patient: revoke one of their consents, effective from the next block.
    RevokeConsent { consent_id: Hash },
    /// A would-be grantee asks a patient (by pseudonym) for access; the request id becomes the
    /// consent id if approved.
    RequestAccess { request_id: Hash, patient: Hash, terms: ConsentTerms, reason: String },
    /// Patient: approve (creating the consent) or decline a request.
    RespondAccess { request_id: Hash, approve: bool },
    /// Doctor with the patient's write consent: anchor a record version (hash, type, locator).
    /// Version 1 creates the record; a later version is an amendment, pending until the patient
    /// reviews it.
    AnchorRecord {
        record_id: Hash,
        version: u32,
        patient: Hash,
        resource_type: String,
        content_hash: Hash,
        locator: String,
    },
    /// Patient: accept or reject a pending amendment.
    ReviewAmendment { record_id: Hash, version: u32, accept: bool },
    /// The holding institution records a read attempt (served, denied or break-glass).
    LogAccess {
        record_id: Hash,
        version: u32,
        requester: PublicKey,
        purpose: Purpose,
        outcome: AccessOutcome,
        reason: String,
    },
    /// Patient: ask the holder to erase a record.
    RequestErasure { record_id: Hash },
    /// The holding institution confirms it destroyed the ciphertext and keys; the hashes remain.
    ConfirmErasure { record_id: Hash },
}

/// Operation kinds, the columns of the permission table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    AddInstitution,
    IssueCredential,
    RevokeCredential,
    RegisterPatient,
    Attest,
    GrantConsent,
    RevokeConsent,
    RequestAccess,
    RespondAccess,
    AnchorRecord,
    ReviewAmendment,
    LogAccess,
    RequestErasure,
    ConfirmErasure,
}

impl OpKind {
    pub const ALL: [OpKind; 14] = [
        OpKind::AddInstitution,
        OpKind::IssueCredential,
        OpKind::RevokeCredential,
        OpKind::RegisterPatient,
        OpKind::Attest,
        OpKind::GrantConsent,
        OpKind::RevokeConsent,
        OpKind::RequestAccess,
        OpKind::RespondAccess,
        OpKind::AnchorRecord,
        OpKind::ReviewAmendment,
        OpKind::LogAccess,
        OpKind::RequestErasure,
        OpKind::ConfirmErasure,
    ];
    pub fn name(self) -> &'static str {
        match self {
            OpKind::AddInstitution => "add_institution",
            OpKind::IssueCredential => "issue_credential",
            OpKind::RevokeCredential => "revoke_credential",
            OpKind::RegisterPatient => "register_patient",
            OpKind::Attest => "attest",
            OpKind::GrantConsent => "grant_consent",
            OpKind::RevokeConsent => "revoke_consent",
            OpKind::RequestAccess => "request_access",
            OpKind::RespondAccess => "respond_access",
            OpKind::AnchorRecord => "anchor_record",
            OpKind::ReviewAmendment => "review_amendment",
            OpKind::LogAccess => "log_access",
            OpKind::RequestErasure => "request_erasure",
            OpKind::ConfirmErasure => "confirm_erasure",
        }
    }
}

impl Operation {
    pub fn kind(&self) -> OpKind {
        match self {
            Operation::AddInstitution { .. } => OpKind::AddInstitution,
            Operation::IssueCredential(_) => OpKind::IssueCredential,
            Operation::RevokeCredential { .. } => OpKind::RevokeCredential,
            Operation::RegisterPatient { .. } => OpKind::RegisterPatient,
            Operation::Attest { .. } => OpKind::Attest,
            Operation::GrantConsent { .. } => OpKind::GrantConsent,
            Operation::RevokeConsent { .. } => OpKind::RevokeConsent,
            Operation::RequestAccess { .. } => OpKind::RequestAccess,
            Operation::RespondAccess { .. } => OpKind::RespondAccess,
            Operation::AnchorRecord { .. } => OpKind::AnchorRecord,
            Operation::ReviewAmendment { .. } => OpKind::ReviewAmendment,
            Operation::LogAccess { .. } => OpKind::LogAccess,
            Operation::RequestErasure { .. } => OpKind::RequestErasure,
            Operation::ConfirmErasure { .. } => OpKind::ConfirmErasure,
        }
    }

    /// Field limits, checked before encoding (the decoder enforces the same limits).
    pub fn check_limits(&self) -> Result<(), String> {
        use limits::*;
        let check = |what: &str, s: &str, max: usize| {
            if s.len() > max {
                Err(format!("{what} is {} bytes, above the limit of {max}", s.len()))
            } else {
                Ok(())
            }
        };
        match self {
            Operation::AddInstitution { id, name } => {
                check("institution id", id, MAX_INSTITUTION_ID)?;
                check("institution name", name, MAX_NAME)
            }
            Operation::IssueCredential(c) => {
                check("institution id", &c.institution, MAX_INSTITUTION_ID)?;
                check("display name", &c.display_name, MAX_NAME)
            }
            Operation::RevokeCredential { reason, .. } => check("reason", reason, MAX_REASON),
            Operation::RegisterPatient { .. } => Ok(()),
            Operation::Attest { label, .. } => check("label", label, MAX_LABEL),
            Operation::GrantConsent { terms, .. } => terms.check_limits(),
            Operation::RevokeConsent { .. }
            | Operation::RespondAccess { .. }
            | Operation::ReviewAmendment { .. }
            | Operation::RequestErasure { .. }
            | Operation::ConfirmErasure { .. } => Ok(()),
            Operation::AnchorRecord { resource_type, locator, version, .. } => {
                if *version == 0 {
                    return Err("record versions start at 1".into());
                }
                if resource_type.is_empty() {
                    return Err("resource type must not be empty".into());
                }
                check("resource type", resource_type, MAX_RESOURCE_TYPE)?;
                check("locator", locator, MAX_LOCATOR)
            }
            Operation::LogAccess { reason, .. } => check("reason", reason, MAX_REASON),
            Operation::RequestAccess { terms, reason, .. } => {
                terms.check_limits()?;
                check("reason", reason, MAX_REASON)
            }
        }
    }
}

fn hash_enc(h: &Hash, w: &mut Writer) {
    w.fixed(&h.0);
}
fn hash_dec(r: &mut Reader<'_>, what: &'static str) -> Result<Hash, DecodeError> {
    Ok(Hash(r.array(what)?))
}

impl ConsentTerms {
    pub fn check_limits(&self) -> Result<(), String> {
        use limits::*;
        if self.actions == 0 || self.actions & !action::ALL != 0 {
            return Err(format!("actions must be a non-empty combination of read and write, got {:#04b}", self.actions));
        }
        match &self.scope {
            Scope::All => Ok(()),
            Scope::ResourceTypes(v) => {
                if v.is_empty() || v.len() > MAX_SCOPE_ITEMS {
                    return Err(format!("scope must list 1..={MAX_SCOPE_ITEMS} resource types"));
                }
                match v.iter().find(|t| t.is_empty() || t.len() > MAX_RESOURCE_TYPE) {
                    Some(t) => Err(format!("resource type `{t}` must be 1..={MAX_RESOURCE_TYPE} bytes")),
                    None => Ok(()),
                }
            }
            Scope::Records(v) if v.is_empty() || v.len() > MAX_SCOPE_ITEMS => {
                Err(format!("scope must list 1..={MAX_SCOPE_ITEMS} records"))
            }
            Scope::Records(_) => Ok(()),
        }
    }
}

impl Canonical for ConsentTerms {
    fn encode_to(&self, w: &mut Writer) {
        match &self.grantee {
            Grantee::Person(pk) => {
                w.u8(0);
                pk.encode_to(w);
            }
            Grantee::Institution(id) => {
                w.u8(1).str(id);
            }
        }
        w.u8(self.actions);
        match &self.scope {
            Scope::All => {
                w.u8(0);
            }
            Scope::ResourceTypes(v) => {
                w.u8(1).u32(v.len() as u32);
                for t in v {
                    w.str(t);
                }
            }
            Scope::Records(v) => {
                w.u8(2).u32(v.len() as u32);
                for h in v {
                    hash_enc(h, w);
                }
            }
        }
        self.purpose.encode_to(w);
        match self.expires_ms {
            Some(t) => w.u8(1).u64(t),
            None => w.u8(0),
        };
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use limits::*;
        let grantee = match r.u8("grantee")? {
            0 => Grantee::Person(PublicKey::decode_from(r)?),
            1 => Grantee::Institution(r.string("grantee institution", MAX_INSTITUTION_ID)?),
            t => return Err(DecodeError::UnknownTag("grantee", t)),
        };
        let actions = r.u8("actions")?;
        let scope = match r.u8("scope")? {
            0 => Scope::All,
            1 => {
                let n = r.len("scope resource types", MAX_SCOPE_ITEMS)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(r.string("resource type", MAX_RESOURCE_TYPE)?);
                }
                Scope::ResourceTypes(v)
            }
            2 => {
                let n = r.len("scope records", MAX_SCOPE_ITEMS)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(hash_dec(r, "record id")?);
                }
                Scope::Records(v)
            }
            t => return Err(DecodeError::UnknownTag("scope", t)),
        };
        let purpose = Purpose::decode_from(r)?;
        let expires_ms = if r.bool("expiry flag")? { Some(r.u64("expiry")?) } else { None };
        Ok(ConsentTerms { grantee, actions, scope, purpose, expires_ms })
    }
}

impl Canonical for Operation {
    fn encode_to(&self, w: &mut Writer) {
        match self {
            Operation::AddInstitution { id, name } => {
                w.u8(0).str(id).str(name);
            }
            Operation::IssueCredential(c) => {
                w.u8(1);
                c.subject.encode_to(w);
                c.role.encode_to(w);
                w.str(&c.institution).str(&c.display_name).u64(c.valid_from_ms).u64(c.valid_until_ms);
            }
            Operation::RevokeCredential { subject, reason } => {
                w.u8(2);
                subject.encode_to(w);
                w.str(reason);
            }
            Operation::RegisterPatient { subject, pseudonym, valid_until_ms } => {
                w.u8(3);
                subject.encode_to(w);
                hash_enc(pseudonym, w);
                w.u64(*valid_until_ms);
            }
            Operation::Attest { digest, label } => {
                w.u8(4);
                hash_enc(digest, w);
                w.str(label);
            }
            Operation::GrantConsent { consent_id, terms } => {
                w.u8(5);
                hash_enc(consent_id, w);
                terms.encode_to(w);
            }
            Operation::RevokeConsent { consent_id } => {
                w.u8(6);
                hash_enc(consent_id, w);
            }
            Operation::RequestAccess { request_id, patient, terms, reason } => {
                w.u8(7);
                hash_enc(request_id, w);
                hash_enc(patient, w);
                terms.encode_to(w);
                w.str(reason);
            }
            Operation::RespondAccess { request_id, approve } => {
                w.u8(8);
                hash_enc(request_id, w);
                w.bool(*approve);
            }
            Operation::AnchorRecord { record_id, version, patient, resource_type, content_hash, locator } => {
                w.u8(9);
                hash_enc(record_id, w);
                w.u32(*version);
                hash_enc(patient, w);
                w.str(resource_type);
                hash_enc(content_hash, w);
                w.str(locator);
            }
            Operation::ReviewAmendment { record_id, version, accept } => {
                w.u8(10);
                hash_enc(record_id, w);
                w.u32(*version).bool(*accept);
            }
            Operation::LogAccess { record_id, version, requester, purpose, outcome, reason } => {
                w.u8(11);
                hash_enc(record_id, w);
                w.u32(*version);
                requester.encode_to(w);
                purpose.encode_to(w);
                outcome.encode_to(w);
                w.str(reason);
            }
            Operation::RequestErasure { record_id } => {
                w.u8(12);
                hash_enc(record_id, w);
            }
            Operation::ConfirmErasure { record_id } => {
                w.u8(13);
                hash_enc(record_id, w);
            }
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use limits::*;
        Ok(match r.u8("operation")? {
            0 => Operation::AddInstitution {
                id: r.string("institution id", MAX_INSTITUTION_ID)?,
                name: r.string("institution name", MAX_NAME)?,
            },
            1 => Operation::IssueCredential(CredentialSpec {
                subject: PublicKey::decode_from(r)?,
                role: Role::decode_from(r)?,
                institution: r.string("institution id", MAX_INSTITUTION_ID)?,
                display_name: r.string("display name", MAX_NAME)?,
                valid_from_ms: r.u64("valid from")?,
                valid_until_ms: r.u64("valid until")?,
            }),
            2 => Operation::RevokeCredential {
                subject: PublicKey::decode_from(r)?,
                reason: r.string("reason", MAX_REASON)?,
            },
            3 => Operation::RegisterPatient {
                subject: PublicKey::decode_from(r)?,
                pseudonym: hash_dec(r, "pseudonym")?,
                valid_until_ms: r.u64("valid until")?,
            },
            4 => Operation::Attest { digest: hash_dec(r, "digest")?, label: r.string("label", MAX_LABEL)? },
            5 => Operation::GrantConsent { consent_id: hash_dec(r, "consent id")?, terms: ConsentTerms::decode_from(r)? },
            6 => Operation::RevokeConsent { consent_id: hash_dec(r, "consent id")? },
            7 => Operation::RequestAccess {
                request_id: hash_dec(r, "request id")?,
                patient: hash_dec(r, "patient")?,
                terms: ConsentTerms::decode_from(r)?,
                reason: r.string("reason", MAX_REASON)?,
            },
            8 => Operation::RespondAccess { request_id: hash_dec(r, "request id")?, approve: r.bool("approve")? },
            9 => Operation::AnchorRecord {
                record_id: hash_dec(r, "record id")?,
                version: r.u32("version")?,
                patient: hash_dec(r, "patient")?,
                resource_type: r.string("resource type", MAX_RESOURCE_TYPE)?,
                content_hash: hash_dec(r, "content hash")?,
                locator: r.string("locator", MAX_LOCATOR)?,
            },
            10 => Operation::ReviewAmendment {
                record_id: hash_dec(r, "record id")?,
                version: r.u32("version")?,
                accept: r.bool("accept")?,
            },
            11 => Operation::LogAccess {
                record_id: hash_dec(r, "record id")?,
                version: r.u32("version")?,
                requester: PublicKey::decode_from(r)?,
                purpose: Purpose::decode_from(r)?,
                outcome: AccessOutcome::decode_from(r)?,
                reason: r.string("reason", MAX_REASON)?,
            },
            12 => Operation::RequestErasure { record_id: hash_dec(r, "record id")? },
            13 => Operation::ConfirmErasure { record_id: hash_dec(r, "record id")? },
            t => return Err(DecodeError::UnknownTag("operation", t)),
        })
    }
}

/// The signed part of a transaction.
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
mod tests {
    use super::*;

    fn sample(k: &Keypair) -> Transaction {
        Transaction {
            chain_id: "test".into(),
            signer: k.public(),
            nonce: 3,
            op: Operation::Attest { digest: Hash([7; 32]), label: "lab".into() },
        }
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
        let mut bad_tag = raw.to_vec();
        // chain id "test" = 4 + 4 bytes, signer 32, nonce 8 => op tag at 48
        bad_tag[48] = 99;
        assert!(matches!(Tx::decode(&bad_tag), Err(TxDecodeError::Malformed(DecodeError::UnknownTag("operation", 99)))));
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
        let k = Keypair::from_seed(2);
        let ops = vec![
            Operation::AddInstitution { id: "h1".into(), name: "Hospital".into() },
            Operation::IssueCredential(CredentialSpec {
                subject: k.public(),
                role: Role::Doctor,
                institution: "h1".into(),
                display_name: "Dr A".into(),
                valid_from_ms: 1,
                valid_until_ms: 2,
            }),
            Operation::RevokeCredential { subject: k.public(), reason: "left".into() },
            Operation::RegisterPatient { subject: k.public(), pseudonym: Hash([1; 32]), valid_until_ms: 5 },
            Operation::Attest { digest: Hash([2; 32]), label: "x".into() },
            Operation::GrantConsent {
                consent_id: Hash([3; 32]),
                terms: ConsentTerms {
                    grantee: Grantee::Person(k.public()),
                    actions: action::READ,
                    scope: Scope::ResourceTypes(vec!["Observation".into(), "Condition".into()]),
                    purpose: Purpose::Treatment,
                    expires_ms: Some(99),
                },
            },
            Operation::RevokeConsent { consent_id: Hash([3; 32]) },
            Operation::RequestAccess {
                request_id: Hash([4; 32]),
                patient: Hash([5; 32]),
                terms: ConsentTerms {
                    grantee: Grantee::Institution("h1".into()),
                    actions: action::ALL,
                    scope: Scope::Records(vec![Hash([6; 32])]),
                    purpose: Purpose::Research,
                    expires_ms: None,
                },
                reason: "follow-up".into(),
            },
            Operation::RespondAccess { request_id: Hash([4; 32]), approve: true },
            Operation::AnchorRecord {
                record_id: Hash([7; 32]),
                version: 2,
                patient: Hash([5; 32]),
                resource_type: "Observation".into(),
                content_hash: Hash([8; 32]),
                locator: "vault://h1/abc".into(),
            },
            Operation::ReviewAmendment { record_id: Hash([7; 32]), version: 2, accept: false },
            Operation::LogAccess {
                record_id: Hash([7; 32]),
                version: 1,
                requester: k.public(),
                purpose: Purpose::Audit,
                outcome: AccessOutcome::BreakGlass,
                reason: "unconscious patient".into(),
            },
            Operation::RequestErasure { record_id: Hash([7; 32]) },
            Operation::ConfirmErasure { record_id: Hash([7; 32]) },
        ];
        for op in ops {
            let b = op.to_bytes();
            assert_eq!(Operation::from_bytes(&b).unwrap(), op);
        }
    }

    #[test]
    fn role_parse_errors_list_choices() {
        assert_eq!(Role::parse("Institution-Admin").unwrap(), Role::InstitutionAdmin);
        let e = Role::parse("nurse").unwrap_err();
        assert!(e.contains("unknown role `nurse`") && e.contains("pharmacy"));
    }
}
