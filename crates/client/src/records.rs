//! Records from the user's side: FHIR checks, sealing with a fresh data key, wrapping it for
//! every recipient, uploading with the anchor; signed reads, unwrapping, decrypting and checking
//! the plaintext against the hash anchored on chain; FHIR Bundle export.

use crate::session::{hash_arg, Session, COMMIT_TIMEOUT};
use crate::tx::{applied, new_id, now_ms, wait_committed};
use medledger_types::read::ReadRequest;
use medledger_types::{action, Canonical, Grantee, Hash, Keypair, Operation, Purpose, RecordsOp, Scope, Tx};
use medledger_vault::envelope::{self, context, DataKey, WrappedKey};
use serde_json::{json, Value};

impl Session {
    /// Seals `fhir` for `patient`, wraps its key for the patient, the holder and every current
    /// person grantee with read access, uploads it with its anchor and waits for the commit.
    pub fn put(&self, patient: &Hash, fhir: &[u8], amend: Option<Hash>) -> Result<Value, String> {
        let resource_type = medledger_vault::fhir::check(fhir, patient).map_err(|e| format!("not accepted: {e}"))?;
        // Every key this data key is wrapped for comes from verified state: the author's
        // institution and the patient's key proven on chain, the holder's key from the genesis
        // file, and the consents proven below.
        let institution = self.my_credential()?.institution;
        let holder_key = self.holder_key(&institution)?;
        let patient_key = self.patient_key(patient)?;
        let (record_id, version) = match amend {
            None => (new_id(), 1),
            Some(id) => {
                let (head, _) = self.record(&id)?;
                if head.resource_type != resource_type {
                    return Err(format!("record {id} is a {}, not a {resource_type}", head.resource_type));
                }
                (id, head.latest_version + 1)
            }
        };
        let mut recipients = vec![patient_key, holder_key];
        for (_, terms, active) in self.consents(patient)? {
            if !active || terms.actions & action::READ == 0 || !covers(&terms.scope, &record_id, &resource_type) {
                continue;
            }
            // A person grantee gets its own copy; an institution grantee a copy for its key
            // (its node re-wraps for its staff), if it runs a node.
            let pk = match &terms.grantee {
                Grantee::Person(pk) => Some(*pk),
                Grantee::Institution(id) => self.holder_key(id).ok(),
            };
            if let Some(pk) = pk.filter(|pk| !recipients.contains(pk)) {
                recipients.push(pk);
            }
        }
        let ctx = context(&record_id, version);
        let key = DataKey::generate();
        let sealed = envelope::seal(&key, fhir, &ctx);
        let mut keys = Vec::new();
        for pk in &recipients {
            let w =
                envelope::wrap(&key, pk, &ctx).map_err(|e| format!("cannot wrap the key for {}: {e}", pk.short()))?;
            keys.push(json!({ "recipient": pk.to_hex(), "wrapped": w }));
        }
        let nonce = self.me()?["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
        let op = Operation::Records(RecordsOp::AnchorRecord {
            record_id,
            version,
            patient: *patient,
            resource_type: resource_type.clone(),
            content_hash: envelope::content_hash(fhir),
            locator: format!("vault://{institution}/{}/{version}", record_id.to_hex()),
        });
        op.check_limits()?;
        let tx = Tx::sign(
            medledger_types::Transaction { chain_id: self.chain_id.clone(), signer: self.key.public(), nonce, op },
            &self.key,
        );
        self.client.post(
            "/v1/records",
            &json!({ "anchor_tx": hex::encode(tx.raw()), "sealed": hex::encode(&sealed.0), "keys": keys }),
        )?;
        let committed = applied(wait_committed(&self.client, &tx.id(), COMMIT_TIMEOUT)?)?;
        Ok(json!({
            "record_id": record_id.to_hex(),
            "version": version,
            "resource_type": resource_type,
            "holder": institution,
            "content_hash": envelope::content_hash(fhir).to_hex(),
            "recipients": recipients.iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
            "anchor_tx": tx.id().to_hex(),
            "height": committed["height"],
            "status": if version == 1 { "current" } else { "pending the patient's review" },
        }))
    }

    /// Sends a signed read (any node forwards it to the holder), decrypts with the user's key
    /// and checks the plaintext against the hash anchored on chain.
    pub fn get(
        &self,
        id: &Hash,
        version: Option<u32>,
        purpose: Purpose,
        break_glass: Option<String>,
    ) -> Result<(Vec<u8>, Value), String> {
        // The anchor the plaintext must match is proven on chain, not taken from a node.
        let (head, versions) = self.record(id)?;
        let version = version.unwrap_or(head.current_version);
        let anchored = versions
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| format!("record {id} has no version {version}"))?;
        let anchored_hash = anchored.content_hash;
        let r = ReadRequest {
            chain_id: self.chain_id.clone(),
            record_id: *id,
            version,
            requester: self.key.public(),
            purpose,
            issued_ms: now_ms(),
            nonce: crate::tx::request_nonce(),
            break_glass,
        };
        let resp = self.client.post(
            "/v1/records/read",
            &json!({ "request": hex::encode(r.to_bytes()), "signature": hex::encode(r.sign(&self.key).0) }),
        )?;
        if let Some(inst) = resp["custodian"].as_str() {
            return Err(format!(
                "the read is allowed by a consent to your institution `{inst}`, whose node holds the key: send the read through that node (--node)"
            ));
        }
        let plaintext = open_response(&resp, &self.key, id, version, &anchored_hash)?;
        Ok((
            plaintext,
            json!({
                "record_id": id.to_hex(),
                "version": version,
                "content_hash": anchored_hash.to_hex(),
                "holder": anchored.holder,
                "outcome": resp["outcome"],
                "access_event": resp["access_event"],
            }),
        ))
    }

    /// Patient: requests the erasure of record `id`. With `wait`, waits (up to
    /// [`COMMIT_TIMEOUT`]) until the holder confirms on chain that it destroyed the ciphertext
    /// and its keys, as proven against a finalized state root.
    pub fn erase(&self, id: &Hash, wait: bool) -> Result<Tx, String> {
        let (tx, _) = self.transact(Operation::Records(RecordsOp::RequestErasure { record_id: *id }))?;
        if wait {
            crate::progress::report(crate::progress::Step::Note("waiting for the holder to destroy the data".into()));
            let deadline = std::time::Instant::now() + COMMIT_TIMEOUT;
            while self.record(id)?.0.erased_at.is_none() {
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "erasure requested ({}) but the holder has not confirmed it within {}s",
                        tx.id(),
                        COMMIT_TIMEOUT.as_secs()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        Ok(tx)
    }

    /// Every record of `patient` this user may read, as a FHIR `collection` Bundle.
    pub fn export(&self, patient: &Hash, purpose: Purpose) -> Result<(Value, Vec<String>), String> {
        let list = self.client.get(&format!("/v1/patients/{}/records", patient.to_hex()))?;
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for r in list["records"].as_array().into_iter().flatten() {
            let head = &r["record"];
            let id = hash_arg(head["id"].as_str().unwrap_or(""), "record id")?;
            if !head["erased_at"].is_null() {
                skipped.push(format!("{id}: erased"));
                continue;
            }
            match self.get(&id, None, purpose, None) {
                Ok((plain, meta)) => {
                    let resource: Value =
                        serde_json::from_slice(&plain).map_err(|e| format!("record {id} is not JSON: {e}"))?;
                    entries.push(json!({
                        "fullUrl": format!("urn:medledger:record:{}:{}", id.to_hex(), meta["version"]),
                        "resource": resource,
                    }));
                }
                Err(e) => skipped.push(format!("{id}: {e}")),
            }
        }
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": medledger_types::time::rfc3339_ms(now_ms()),
            "identifier": { "system": "urn:medledger:patient", "value": patient.to_hex() },
            "entry": entries,
        });
        Ok((bundle, skipped))
    }
}

/// Unwraps, decrypts and checks a read response against the anchored hash.
pub(crate) fn open_response(
    resp: &Value,
    me: &Keypair,
    id: &Hash,
    version: u32,
    anchored: &Hash,
) -> Result<Vec<u8>, String> {
    let wrapped: WrappedKey =
        serde_json::from_value(resp["wrapped"].clone()).map_err(|e| format!("bad wrapped key in the response: {e}"))?;
    let sealed = hex::decode(resp["sealed"].as_str().unwrap_or(""))
        .map_err(|e| format!("bad ciphertext encoding in the response: {e}"))?;
    let ctx = context(id, version);
    let key =
        envelope::unwrap(&wrapped, me, &ctx).map_err(|e| format!("cannot unwrap the data key with your key: {e}"))?;
    let plain = envelope::open(&key, &sealed, &ctx)
        .map_err(|e| format!("tampering detected: the ciphertext does not authenticate ({e})"))?;
    let got = envelope::content_hash(&plain);
    if got != *anchored {
        return Err(format!(
            "tampering detected: plaintext hash {got} differs from the hash anchored on chain {anchored}"
        ));
    }
    Ok(plain)
}

/// Does `scope` cover this record?
pub fn covers(scope: &Scope, id: &Hash, resource_type: &str) -> bool {
    match scope {
        Scope::All => true,
        Scope::ResourceTypes(t) => t.iter().any(|t| t == resource_type),
        Scope::Records(ids) => ids.contains(id),
    }
}
