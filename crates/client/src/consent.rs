//! Consent from the user's side: reading a patient's consents, and re-wrapping data keys for a
//! new grantee (the patient's client does it; nodes never see a plaintext key).

use crate::records::{covers, open_response};
use crate::session::{hash_arg, Session};
use crate::tx::now_ms;
use medledger_state::queries;
use medledger_types::read::ReadRequest;
use medledger_types::{
    action, Canonical, ConsentOp, ConsentTerms, Grantee, Hash, Keypair, Operation, PublicKey, Purpose, Role, Scope,
    SealedNote, Tx,
};
use medledger_vault::envelope::{self, context, WrappedKey};
use serde_json::json;

impl Session {
    /// A patient's consents with whether each is in force, as proven on chain.
    pub fn consents(&self, patient: &Hash) -> Result<Vec<(Hash, ConsentTerms, bool)>, String> {
        let a = self.proven(&format!("/v1/proofs/patients/{}/consents", patient.to_hex()))?;
        let list = a.replay(|s, at| queries::consents(s, patient, at))?;
        Ok(list.into_iter().map(|(c, active)| (c.id, c.terms, active)).collect())
    }

    /// Patient: wraps the data key of every version a consent covers for its person grantee.
    /// Returns how many versions were re-wrapped.
    pub fn rewrap(&self, terms: &ConsentTerms) -> Result<usize, String> {
        let grantee = match &terms.grantee {
            Grantee::Person(pk) => *pk,
            // An institution's copy is wrapped for its key; its node re-wraps for its staff.
            Grantee::Institution(id) => self.holder_key(id)?,
        };
        if terms.actions & action::READ == 0 {
            return Ok(0);
        }
        let me = self.me()?;
        let pid = hash_arg(me["credential"]["pseudonym"].as_str().ok_or("only a patient re-wraps keys")?, "pseudonym")?;
        let list = self.client.get(&format!("/v1/patients/{}/records", pid.to_hex()))?;
        let mut n = 0;
        for r in list["records"].as_array().into_iter().flatten() {
            let head = &r["record"];
            if !head["erased_at"].is_null() || !head["erasure_requested_at"].is_null() {
                continue;
            }
            let id = hash_arg(head["id"].as_str().unwrap_or(""), "record id")?;
            if !covers(&terms.scope, &id, head["resource_type"].as_str().unwrap_or("")) {
                continue;
            }
            for v in r["versions"].as_array().into_iter().flatten() {
                if v["status"] == "rejected" {
                    continue;
                }
                let version = v["version"].as_u64().unwrap_or(0) as u32;
                // Vouch only for content that matches its anchor as proven on chain.
                let (_, proven) = self.record(&id)?;
                let content_hash = proven
                    .iter()
                    .find(|p| p.version == version)
                    .map(|p| p.content_hash)
                    .ok_or_else(|| format!("record {id} has no version {version} on chain"))?;
                // The patient's own read (logged like any other) returns the patient's wrapped key.
                let rq = ReadRequest {
                    chain_id: self.chain_id.clone(),
                    record_id: id,
                    version,
                    requester: self.key.public(),
                    purpose: terms.purpose,
                    issued_ms: now_ms(),
                    nonce: crate::tx::request_nonce(),
                    break_glass: None,
                };
                let resp = self.client.post(
                    "/v1/records/read",
                    &json!({ "request": hex::encode(rq.to_bytes()), "signature": hex::encode(rq.sign(&self.key).0) }),
                )?;
                // Check the content before vouching for it with a new key.
                open_response(&resp, &self.key, &id, version, &content_hash)?;
                let mine: WrappedKey =
                    serde_json::from_value(resp["wrapped"].clone()).map_err(|e| format!("wrapped key: {e}"))?;
                let ctx = context(&id, version);
                let wrapped = envelope::rewrap(&mine, &self.key, &grantee, &ctx)
                    .map_err(|e| format!("cannot re-wrap {id} v{version} for the grantee: {e}"))?;
                let issued_ms = now_ms();
                let msg = envelope::add_key_message(&id, version, &grantee, &wrapped, issued_ms);
                let sig = self.key.sign(medledger_types::hash::domain::ADD_KEY_SIGNATURE, &msg);
                self.client.post_empty(
                    &format!("/v1/records/{}/{version}/keys", id.to_hex()),
                    &json!({ "recipient": grantee.to_hex(), "wrapped": wrapped, "issued_ms": issued_ms, "signature": hex::encode(sig.0) }),
                )?;
                n += 1;
                crate::progress::report(crate::progress::Step::Note(format!("re-wrapped {n} record version(s)")));
            }
        }
        Ok(n)
    }
}

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// Consent terms as people give them: the CLI's flags and the web UI's form.
#[derive(Clone, Debug, Default)]
pub struct TermsInput {
    /// A hex public key, or `institution:<id>`.
    pub grantee: String,
    /// `read`, `write` or `read,write`.
    pub actions: String,
    /// treatment, research, insurance or audit.
    pub purpose: String,
    /// Only these FHIR resource types (comma-separated).
    pub types: Option<String>,
    /// Only these record ids (comma-separated hex).
    pub records: Option<String>,
    /// Expiry in milliseconds since the Unix epoch.
    pub expires_ms: Option<u64>,
    /// For an institution grantee: the staff roles covered (comma-separated).
    pub roles: Option<String>,
}

/// Checks `t` and builds the terms. Every error names the field at fault.
pub fn parse_terms(t: &TermsInput) -> Result<ConsentTerms, String> {
    let grantee = match t.grantee.trim().strip_prefix("institution:") {
        Some(id) if !id.trim().is_empty() => Grantee::Institution(id.trim().to_string()),
        Some(_) => return Err("grantee: `institution:` needs an institution id".into()),
        None => Grantee::Person(
            PublicKey::from_hex(t.grantee.trim()).map_err(|e| format!("grantee `{}`: {e}", t.grantee.trim()))?,
        ),
    };
    let mut actions = 0u8;
    for a in t.actions.split(',').map(str::trim) {
        actions |= match a {
            "read" => action::READ,
            "write" => action::WRITE,
            other => return Err(format!("actions: unknown action `{other}` (read, write)")),
        };
    }
    let nonempty = |o: &Option<String>| o.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let scope = match (nonempty(&t.types), nonempty(&t.records)) {
        (Some(_), Some(_)) => return Err("scope: give resource types or record ids, not both".into()),
        (Some(ty), None) => Scope::ResourceTypes(ty.split(',').map(|s| s.trim().to_string()).collect()),
        (None, Some(r)) => Scope::Records(
            r.split(',')
                .map(|h| Hash::from_hex(h.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("records: {e}"))?,
        ),
        (None, None) => Scope::All,
    };
    let purpose = Purpose::parse(t.purpose.trim())?;
    let roles = match (&grantee, nonempty(&t.roles)) {
        (_, Some(r)) => r
            .split(',')
            .map(|r| Role::parse(r.trim()).map_err(|e| format!("roles: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        (Grantee::Institution(_), None) => ConsentTerms::default_roles(purpose),
        (Grantee::Person(_), None) => Vec::new(),
    };
    let terms = ConsentTerms { grantee, actions, scope, purpose, expires_ms: t.expires_ms, roles };
    terms.check_limits()?;
    Ok(terms)
}

impl Session {
    /// Patient: grants a consent under `terms`, waits for the commit, then re-wraps the data
    /// keys of the covered record versions for the grantee. Returns the consent id, the
    /// transaction and how many versions were re-wrapped.
    pub fn grant_consent(&self, terms: &ConsentTerms) -> Result<(Hash, Tx, usize), String> {
        let id = crate::tx::new_id();
        let (tx, _) =
            self.transact(Operation::Consent(ConsentOp::GrantConsent { consent_id: id, terms: terms.clone() }))?;
        let rewrapped = self.rewrap(terms)?;
        Ok((id, tx, rewrapped))
    }

    /// Asks `patient` for access under `terms`; the reason is sealed for the patient, the
    /// regulators and the requester, never plaintext on chain. Returns the request id.
    pub fn request_access(&self, patient: &Hash, terms: ConsentTerms, reason: &str) -> Result<(Hash, Tx), String> {
        let id = crate::tx::new_id();
        let reason = self.seal_reason(reason, patient, &id, &[self.key.public()])?;
        let (tx, _) = self.transact(Operation::Consent(ConsentOp::RequestAccess {
            request_id: id,
            patient: *patient,
            terms,
            reason,
        }))?;
        Ok((id, tx))
    }

    /// Patient: approves (then re-wraps keys under the new consent, which takes the request's
    /// id) or declines an access request. Returns the transaction and the re-wrapped count.
    pub fn respond_access(&self, request: &Hash, approve: bool) -> Result<(Tx, usize), String> {
        let (tx, _) = self.transact(Operation::Consent(ConsentOp::RespondAccess { request_id: *request, approve }))?;
        if !approve {
            return Ok((tx, 0));
        }
        let pid = self.my_credential()?.pseudonym.ok_or("only a patient answers access requests")?;
        let terms = self
            .consents(&pid)?
            .into_iter()
            .find(|(c, _, _)| c == request)
            .map(|(_, t, _)| t)
            .ok_or("the approved consent is not on chain")?;
        Ok((tx, self.rewrap(&terms)?))
    }
}

impl Session {
    /// The regulators with a valid credential (readers of every sealed reason), as proven on chain.
    pub fn regulators(&self) -> Result<Vec<PublicKey>, String> {
        let a = self.proven("/v1/proofs/regulators")?;
        a.replay(|s, at| queries::regulators(s, at))
    }

    /// Seals `text` (an on-chain reason about `patient`, belonging to `subject`) for the patient,
    /// every regulator and `also`. The node only ever sees the sealed note.
    pub fn seal_reason(
        &self,
        text: &str,
        patient: &Hash,
        subject: &Hash,
        also: &[PublicKey],
    ) -> Result<SealedNote, String> {
        let mut text = text.to_string();
        medledger_types::limits::truncate_utf8(&mut text, medledger_types::limits::MAX_REASON);
        if text.is_empty() {
            return Ok(SealedNote::default());
        }
        let mut readers = vec![self.patient_key(patient)?];
        readers.extend(self.regulators()?);
        readers.extend_from_slice(also);
        envelope::seal_note(&text, &readers, subject).map_err(|e| format!("cannot seal the reason: {e}"))
    }
}

/// Opens a sealed reason with `me`, or says why not (for display).
pub fn open_reason(note: &serde_json::Value, subject: &str, me: &Keypair) -> String {
    let Ok(note) = serde_json::from_value::<SealedNote>(note.clone()) else {
        return "(malformed sealed reason)".into();
    };
    if note.is_empty() {
        return String::new();
    }
    let Ok(subject) = Hash::from_hex(subject) else { return "(sealed)".into() };
    envelope::open_note(&note, me, &subject).unwrap_or_else(|_| "(sealed; not for this key)".into())
}
