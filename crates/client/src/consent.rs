//! Consent from the user's side: reading a patient's consents, and re-wrapping data keys for a
//! new grantee (the patient's client does it; nodes never see a plaintext key).

use crate::records::{covers, open_response};
use crate::session::{hash_arg, Session};
use crate::tx::now_ms;
use medledger_state::queries;
use medledger_types::read::ReadRequest;
use medledger_types::{action, Canonical, ConsentTerms, Grantee, Hash, Keypair, PublicKey, SealedNote};
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
            }
        }
        Ok(n)
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
