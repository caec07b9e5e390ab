//! Identity and membership: institutions, credentials (issue, revoke), patients and attestations.
//!
//! ## Permissions
//!
//! | principal          | add_institution | issue_credential | revoke_credential | register_patient | attest | rotate_patient_key | set_region |
//! |--------------------|:---:|:---:|:---:|:---:|:---:|:---:|:---:|
//! | ca                 |  ✓  |  ✓  |  ✓  |     |     |  ✓  |  ✓  |
//! | patient            |     |     |     |     |     |  ✓  |     |
//! | doctor             |     |     |     |     |  ✓  |     |     |
//! | institution_admin  |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
//! | regulator          |     |     |     |     |  ✓  |     |  ✓  |
//! | researcher         |     |     |     |     |  ✓  |     |     |
//! | insurer            |     |     |     |     |  ✓  |     |     |
//! | manufacturer       |     |     |     |     |  ✓  |     |     |
//! | distributor        |     |     |     |     |  ✓  |     |     |
//! | pharmacy           |     |     |     |     |  ✓  |     |     |
//! | node_service       |     |     |     |     |     |     |     |
//!
//! Scope rules on top: an institution admin revokes only its own institution's credentials and
//! registers patients only at its own institution; a patient rotates only their own key, an
//! admin only its own institution's patients' keys (recovery), and the new key must prove
//! possession. An institution admin sets only its own institution's region; a region is a
//! code of `[a-z0-9-]`, so statistics grouped by it carry nothing else.

use crate::principal::Principal;
use crate::principal::{Rows, N, Y};
use crate::store::{Overlay, StateRead, WriteSet};
use crate::{read_stored, BlockEnv, Rejection};
use medledger_types::codec::{DecodeError, Reader, Writer};
use medledger_types::{Canonical, CredentialSpec, Event, Genesis, Hash, IdentityOp, PublicKey, RejectCode, Role};
use serde::{Deserialize, Serialize};

/// Admin credentials created at genesis are valid for ten years.
pub const GENESIS_ADMIN_VALIDITY_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<7> = [
    // add iss rvk reg att rot rgn
    [Y, Y, Y, N, N, Y, Y], // ca
    [N, N, N, N, N, Y, N], // patient
    [N, N, N, N, Y, N, N], // doctor
    [N, N, Y, Y, Y, Y, Y], // institution_admin
    [N, N, N, N, Y, N, Y], // regulator
    [N, N, N, N, Y, N, N], // researcher
    [N, N, N, N, Y, N, N], // insurer
    [N, N, N, N, Y, N, N], // manufacturer
    [N, N, N, N, Y, N, N], // distributor
    [N, N, N, N, Y, N, N], // pharmacy
    [N, N, N, N, N, N, N], // node_service
];

pub mod key {
    use crate::keys::{compose, ATTESTATION, CREDENTIAL, INSTITUTION, NONCE, PATIENT, REGION};
    pub use crate::keys::{CA, CHAIN_ID, REGULATORS, VALIDATORS};
    use medledger_types::{Hash, PublicKey};
    pub fn nonce(pk: &PublicKey) -> Vec<u8> {
        compose(NONCE, &[&pk.0])
    }
    pub fn credential(pk: &PublicKey) -> Vec<u8> {
        compose(CREDENTIAL, &[&pk.0])
    }
    pub fn institution(id: &str) -> Vec<u8> {
        compose(INSTITUTION, &[id.as_bytes()])
    }
    /// The region of an institution.
    pub fn region(institution: &str) -> Vec<u8> {
        compose(REGION, &[institution.as_bytes()])
    }
    pub fn patient(pseudonym: &Hash) -> Vec<u8> {
        compose(PATIENT, &[&pseudonym.0])
    }
    pub fn attestation(digest: &Hash) -> Vec<u8> {
        compose(ATTESTATION, &[&digest.0])
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub subject: PublicKey,
    pub role: Role,
    pub institution: String,
    /// Empty for patients: real names never go on chain.
    pub display_name: String,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    pub issued_at_height: u64,
    pub issuer: PublicKey,
    /// Set for patients only.
    pub pseudonym: Option<Hash>,
    pub revoked: Option<Revocation>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at_height: u64,
    pub by: PublicKey,
    pub reason: String,
}

impl Canonical for Credential {
    fn encode_to(&self, w: &mut Writer) {
        self.subject.encode_to(w);
        self.role.encode_to(w);
        w.str(&self.institution).str(&self.display_name);
        w.u64(self.valid_from_ms).u64(self.valid_until_ms).u64(self.issued_at_height);
        self.issuer.encode_to(w);
        match &self.pseudonym {
            Some(p) => w.u8(1).fixed(&p.0),
            None => w.u8(0),
        };
        match &self.revoked {
            Some(r) => {
                w.u8(1).u64(r.at_height);
                r.by.encode_to(w);
                w.str(&r.reason);
            }
            None => {
                w.u8(0);
            }
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Credential {
            subject: PublicKey::decode_from(r)?,
            role: Role::decode_from(r)?,
            institution: r.string("institution", 64)?,
            display_name: r.string("display name", 128)?,
            valid_from_ms: r.u64("valid from")?,
            valid_until_ms: r.u64("valid until")?,
            issued_at_height: r.u64("issued at")?,
            issuer: PublicKey::decode_from(r)?,
            pseudonym: if r.bool("pseudonym flag")? { Some(Hash(r.array("pseudonym")?)) } else { None },
            revoked: if r.bool("revoked flag")? {
                Some(Revocation {
                    at_height: r.u64("revoked at")?,
                    by: PublicKey::decode_from(r)?,
                    reason: r.string("reason", 256)?,
                })
            } else {
                None
            },
        })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Institution {
    pub id: String,
    pub name: String,
    pub added_at_height: u64,
}

impl Canonical for Institution {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.id).str(&self.name).u64(self.added_at_height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Institution {
            id: r.string("institution id", 64)?,
            name: r.string("institution name", 128)?,
            added_at_height: r.u64("added at")?,
        })
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub digest: Hash,
    pub label: String,
    pub attester: PublicKey,
    pub height: u64,
}

impl Canonical for Attestation {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.digest.0).str(&self.label);
        self.attester.encode_to(w);
        w.u64(self.height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Attestation {
            digest: Hash(r.array("digest")?),
            label: r.string("label", 128)?,
            attester: PublicKey::decode_from(r)?,
            height: r.u64("height")?,
        })
    }
}

pub fn ca_key(state: &dyn StateRead) -> Option<PublicKey> {
    read_stored(state, key::CA, "CA key")
}

pub fn credential(state: &dyn StateRead, pk: &PublicKey) -> Option<Credential> {
    read_stored(state, &key::credential(pk), "credential")
}

/// The prefix of every credential key, and the credential a stored value holds: for node-local
/// listings (a storage scan), which cannot be proven.
pub const CREDENTIAL_PREFIX: &[u8] = crate::keys::CREDENTIAL;

pub fn decode_credential(stored: &[u8]) -> Result<Credential, String> {
    Credential::from_bytes(stored).map_err(|e| format!("stored credential does not decode ({e})"))
}

pub fn institution(state: &dyn StateRead, id: &str) -> Option<Institution> {
    read_stored(state, &key::institution(id), "institution")
}

/// The region an institution was placed in, if any.
pub fn region_of(state: &dyn StateRead, institution: &str) -> Option<String> {
    let b = state.get(&key::region(institution))?;
    String::from_utf8(b).map_err(|_| state.corrupt("stored region is not UTF-8")).ok()
}

pub fn patient_key(state: &dyn StateRead, pseudonym: &medledger_types::Hash) -> Option<PublicKey> {
    read_stored(state, &key::patient(pseudonym), "patient key")
}

pub fn attestation(state: &dyn StateRead, digest: &medledger_types::Hash) -> Option<Attestation> {
    read_stored(state, &key::attestation(digest), "attestation")
}

/// Why a credential is not usable at (`now_ms`, `height`), if it is not.
pub fn credential_problem(c: &Credential, now_ms: u64, height: u64) -> Option<Rejection> {
    if let Some(r) = &c.revoked {
        // Revocation takes effect from the block after the one that recorded it.
        if r.at_height < height {
            return Some(Rejection::new(
                RejectCode::CredentialRevoked,
                format!("credential revoked at height {}: {}", r.at_height, r.reason),
            ));
        }
    }
    if now_ms < c.valid_from_ms {
        return Some(Rejection::new(
            RejectCode::CredentialNotYetValid,
            format!("credential valid from {} ms, now is {now_ms}", c.valid_from_ms),
        ));
    }
    if now_ms > c.valid_until_ms {
        return Some(Rejection::new(
            RejectCode::CredentialExpired,
            format!("credential expired at {} ms, now is {now_ms}", c.valid_until_ms),
        ));
    }
    None
}

/// Resolves who is signing: the CA, or the role of a valid credential.
pub fn principal(state: &dyn StateRead, signer: &PublicKey, now_ms: u64, height: u64) -> Result<Principal, Rejection> {
    if ca_key(state).as_ref() == Some(signer) {
        return Ok(Principal::Ca);
    }
    let c = credential(state, signer).ok_or_else(|| {
        Rejection::new(RejectCode::UnknownSigner, format!("no credential for key {}", signer.short()))
    })?;
    match credential_problem(&c, now_ms, height) {
        Some(r) => Err(r),
        None => Ok(Principal::Role(c.role)),
    }
}

pub(crate) fn genesis(g: &Genesis) -> WriteSet {
    let mut w = WriteSet::new();
    w.insert(key::CA.to_vec(), Some(g.ca_key.to_bytes()));
    w.insert(key::CHAIN_ID.to_vec(), Some(g.chain_id.as_bytes().to_vec()));
    w.insert(key::VALIDATORS.to_vec(), Some(g.institutions.iter().flat_map(|i| i.validator_key.0).collect()));
    for i in &g.institutions {
        let inst = Institution { id: i.id.clone(), name: i.name.clone(), added_at_height: 0 };
        w.insert(key::institution(&i.id), Some(inst.to_bytes()));
        let c = Credential {
            subject: i.admin_key,
            role: Role::InstitutionAdmin,
            institution: i.id.clone(),
            display_name: format!("{} administrator", i.name),
            valid_from_ms: g.genesis_time_ms,
            valid_until_ms: g.genesis_time_ms.saturating_add(GENESIS_ADMIN_VALIDITY_MS),
            issued_at_height: 0,
            issuer: g.ca_key,
            pseudonym: None,
            revoked: None,
        };
        w.insert(key::credential(&i.admin_key), Some(c.to_bytes()));
    }
    w
}

fn invalid(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, msg)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The genesis validators' keys, in genesis order.
pub fn validators(state: &dyn StateRead) -> Vec<PublicKey> {
    crate::read_keys(state, key::VALIDATORS, "validator list")
}

/// Every key on the regulator list, valid or not (at most a few more than [`MAX_REGULATORS`]).
fn regulator_list(state: &dyn StateRead) -> Vec<PublicKey> {
    crate::read_keys(state, key::REGULATORS, "regulator list")
}

/// The regulators whose credentials are valid now: every sealed reason must be readable by each.
pub fn regulators(state: &dyn StateRead, now_ms: u64, height: u64) -> Vec<PublicKey> {
    regulator_list(state)
        .into_iter()
        .filter(|pk| {
            credential(state, pk)
                .is_some_and(|c| c.role == Role::Regulator && credential_problem(&c, now_ms, height).is_none())
        })
        .collect()
}

/// Checks a sealed note's shape and that every reader in `required` can open it (the state
/// machine cannot decrypt, but it can refuse a note not sealed for those who may read it).
pub fn require_readers(note: &medledger_types::SealedNote, required: &[(&str, PublicKey)]) -> Result<(), Rejection> {
    note.check_limits().map_err(invalid)?;
    if note.is_empty() {
        return Ok(());
    }
    for (who, pk) in required {
        if !note.readable_by(pk) {
            return Err(invalid(format!("the reason must be sealed for {who} ({})", pk.short())));
        }
    }
    Ok(())
}

/// The readers every sealed reason about `patient_key` needs: the patient and each regulator.
pub fn reason_readers(
    state: &dyn StateRead,
    patient_key: PublicKey,
    now_ms: u64,
    height: u64,
) -> Vec<(&'static str, PublicKey)> {
    let mut v = vec![("the patient", patient_key)];
    v.extend(regulators(state, now_ms, height).into_iter().map(|r| ("every regulator", r)));
    v
}

/// Keeps the regulator list to valid regulator credentials (run whenever a credential of a
/// listed key changes); then adds `subject` if it is a valid regulator.
fn update_regulators(o: &mut Overlay<'_>, env: &BlockEnv, subject: &PublicKey) -> Result<(), Rejection> {
    let mut list = regulators(o, env.timestamp_ms, env.height);
    list.retain(|pk| pk != subject);
    let is_regulator = credential(o, subject)
        .is_some_and(|c| c.role == Role::Regulator && c.revoked.is_none() && c.valid_until_ms > env.timestamp_ms);
    if is_regulator {
        if list.len() >= medledger_types::limits::MAX_REGULATORS {
            return Err(Rejection::new(
                RejectCode::InvalidArgument,
                format!(
                    "the consortium already has {} regulators, the limit (every sealed reason is sealed for each)",
                    list.len()
                ),
            ));
        }
        list.push(*subject);
    }
    let old = regulator_list(o);
    if old != list {
        o.put(key::REGULATORS.to_vec(), list.iter().flat_map(|pk| pk.0).collect());
    }
    Ok(())
}

/// Applies an identity operation. The permission table was already checked; this adds scope rules.
pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    op: &IdentityOp,
) -> Result<Vec<Event>, Rejection> {
    match op {
        IdentityOp::AddInstitution { id, name } => {
            if !valid_id(id) {
                return Err(invalid(format!("institution id `{id}` must be non-empty [A-Za-z0-9._-]")));
            }
            if institution(o, id).is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("institution `{id}` already exists")));
            }
            let inst = Institution { id: id.clone(), name: name.clone(), added_at_height: env.height };
            o.put(key::institution(id), inst.to_bytes());
            Ok(vec![Event::new("institution_added").with("institution", id)])
        }
        IdentityOp::IssueCredential { spec } => issue(o, env, signer, spec),
        IdentityOp::SetRegion { institution: id, region } => {
            if institution(o, id).is_none() {
                return Err(Rejection::new(RejectCode::NotFound, format!("unknown institution `{id}`")));
            }
            if let Principal::Role(Role::InstitutionAdmin) = principal {
                let own = credential(o, signer).map(|c| c.institution).unwrap_or_default();
                if *id != own {
                    return Err(Rejection::new(
                        RejectCode::NotPermitted,
                        format!("an admin of `{own}` sets only its own institution's region, not `{id}`'s"),
                    ));
                }
            }
            let code = region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if region.is_empty() || !code {
                return Err(invalid(format!("region `{region}` must be a non-empty code of [a-z0-9-]")));
            }
            o.put(key::region(id), region.as_bytes().to_vec());
            Ok(vec![Event::new("region_set").with("institution", id).with("region", region)])
        }
        IdentityOp::RevokeCredential { subject, reason } => {
            let mut c = credential(o, subject).ok_or_else(|| {
                Rejection::new(RejectCode::NotFound, format!("no credential for key {}", subject.short()))
            })?;
            if let Principal::Role(Role::InstitutionAdmin) = principal {
                let own = credential(o, signer).map(|c| c.institution).unwrap_or_default();
                if c.institution != own {
                    return Err(Rejection::new(
                        RejectCode::NotPermitted,
                        format!("an admin of `{own}` may not revoke a credential of `{}`", c.institution),
                    ));
                }
            }
            if c.revoked.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "credential is already revoked"));
            }
            c.revoked = Some(Revocation { at_height: env.height, by: *signer, reason: reason.clone() });
            o.put(key::credential(subject), c.to_bytes());
            update_regulators(o, env, subject)?;
            Ok(vec![Event::new("credential_revoked")
                .with("subject", subject)
                .with("effective_from_height", env.height + 1)])
        }
        IdentityOp::RegisterPatient { subject, pseudonym, valid_until_ms } => {
            // (Read before, to resolve the principal; absent now only if storage failed, and
            // then the block is never committed.)
            let Some(admin) = credential(o, signer) else {
                return Err(Rejection::new(RejectCode::NotPermitted, "the signer's credential could not be read"));
            };
            if credential(o, subject).is_some() || ca_key(o).as_ref() == Some(subject) {
                return Err(Rejection::new(RejectCode::AlreadyExists, "key already holds a credential"));
            }
            if patient_key(o, pseudonym).is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "patient pseudonym already registered"));
            }
            if *valid_until_ms <= env.timestamp_ms {
                return Err(invalid("patient credential would already be expired"));
            }
            let c = Credential {
                subject: *subject,
                role: Role::Patient,
                institution: admin.institution.clone(),
                display_name: String::new(),
                valid_from_ms: env.timestamp_ms,
                valid_until_ms: *valid_until_ms,
                issued_at_height: env.height,
                issuer: *signer,
                pseudonym: Some(*pseudonym),
                revoked: None,
            };
            o.put(key::credential(subject), c.to_bytes());
            o.put(key::patient(pseudonym), subject.to_bytes());
            Ok(vec![Event::new("patient_registered")
                .with("pseudonym", pseudonym)
                .with("institution", &admin.institution)])
        }
        IdentityOp::RotatePatientKey { pseudonym, new_key, proof } => {
            rotate(o, env, signer, principal, pseudonym, new_key, proof)
        }
        IdentityOp::Attest { digest, label } => {
            if attestation(o, digest).is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, format!("digest {digest} already attested")));
            }
            let a = Attestation { digest: *digest, label: label.clone(), attester: *signer, height: env.height };
            o.put(key::attestation(digest), a.to_bytes());
            Ok(vec![Event::new("attested").with("digest", digest)])
        }
    }
}

/// Moves patient `pseudonym` to `new_key`: the old credential is revoked, the new one carries the
/// same pseudonym, institution and validity. Consents, records and requests are keyed by the
/// pseudonym, so they follow; holders re-wrap data keys for the new key when the patient reads.
fn rotate(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    pseudonym: &Hash,
    new_key: &PublicKey,
    proof: &medledger_types::Signature,
) -> Result<Vec<Event>, Rejection> {
    let old_key = patient_key(o, pseudonym)
        .ok_or_else(|| Rejection::new(RejectCode::NotFound, "no patient with this pseudonym"))?;
    let mut old = credential(o, &old_key)
        .ok_or_else(|| Rejection::new(RejectCode::NotFound, "the patient's key holds no credential"))?;
    match principal {
        Principal::Role(Role::Patient) if *signer != old_key => {
            return Err(Rejection::new(RejectCode::NotPermitted, "a patient may rotate only their own key"));
        }
        Principal::Role(Role::InstitutionAdmin) => {
            let own = credential(o, signer).map(|c| c.institution).unwrap_or_default();
            if own != old.institution {
                return Err(Rejection::new(
                    RejectCode::NotPermitted,
                    format!("an admin of `{own}` may not recover a patient of `{}`", old.institution),
                ));
            }
        }
        _ => {}
    }
    if *new_key == old_key || credential(o, new_key).is_some() || ca_key(o).as_ref() == Some(new_key) {
        return Err(Rejection::new(RejectCode::AlreadyExists, "the new key already holds (or held) a credential"));
    }
    let msg = medledger_types::identity::rotation_message(&env.chain_id, pseudonym, &old_key, new_key);
    if !medledger_types::keys::verify(new_key, medledger_types::hash::domain::KEY_ROTATION_SIGNATURE, &msg, proof) {
        return Err(Rejection::new(
            RejectCode::BadSignature,
            "the possession proof does not verify: the new key must sign the rotation",
        ));
    }
    let mut new = old.clone();
    new.subject = *new_key;
    new.issued_at_height = env.height;
    new.issuer = *signer;
    new.revoked = None;
    if old.revoked.is_none() {
        old.revoked = Some(Revocation {
            at_height: env.height,
            by: *signer,
            reason: format!("key rotated to {}", new_key.short()),
        });
    }
    o.put(key::credential(&old_key), old.to_bytes());
    o.put(key::credential(new_key), new.to_bytes());
    o.put(key::patient(pseudonym), new_key.to_bytes());
    Ok(vec![Event::new("patient_key_rotated").with("pseudonym", pseudonym).with("new_key", new_key)])
}

fn issue(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    spec: &CredentialSpec,
) -> Result<Vec<Event>, Rejection> {
    if spec.role == Role::Patient {
        return Err(invalid("patients are registered by their hospital with register_patient, not issued by name"));
    }
    if spec.display_name.trim().is_empty() {
        return Err(invalid("display name must not be empty"));
    }
    if spec.valid_until_ms <= spec.valid_from_ms {
        return Err(invalid("valid_until must be after valid_from"));
    }
    if institution(o, &spec.institution).is_none() {
        return Err(Rejection::new(RejectCode::NotFound, format!("unknown institution `{}`", spec.institution)));
    }
    if ca_key(o).as_ref() == Some(&spec.subject) {
        return Err(invalid("the CA key cannot hold a credential"));
    }
    if let Some(existing) = credential(o, &spec.subject) {
        if existing.revoked.is_none() && existing.valid_until_ms >= env.timestamp_ms {
            return Err(Rejection::new(RejectCode::AlreadyExists, "key already holds a valid credential"));
        }
    }
    let c = Credential {
        subject: spec.subject,
        role: spec.role,
        institution: spec.institution.clone(),
        display_name: spec.display_name.clone(),
        valid_from_ms: spec.valid_from_ms,
        valid_until_ms: spec.valid_until_ms,
        issued_at_height: env.height,
        issuer: *signer,
        pseudonym: None,
        revoked: None,
    };
    o.put(key::credential(&spec.subject), c.to_bytes());
    update_regulators(o, env, &spec.subject)?;
    Ok(vec![Event::new("credential_issued")
        .with("subject", spec.subject)
        .with("role", spec.role.name())
        .with("institution", &spec.institution)])
}

#[cfg(test)]
mod permission_tests {
    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("identity.rs"), medledger_types::Domain::Identity);
    }
}
