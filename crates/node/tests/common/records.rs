//! Record-sharing helpers shared by the node's integration tests: a held record, signed reads
//! and audit queries, upload bodies.

use super::*;
use axum::http::StatusCode;
use medledger_types::read::{AuditQuery, ReadRequest};
use medledger_types::{action, ConsentTerms, Grantee, Purpose, Scope};
use medledger_types::{ConsentOp, RecordsOp};
use medledger_vault::envelope::{self, context, seal, unwrap, wrap, DataKey, WrappedKey};

pub const REC: Hash = Hash([0x42; 32]);

pub fn observation(pid: &Hash) -> Vec<u8> {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
        "subject": { "reference": medledger_vault::fhir::patient_reference(pid) },
        "valueQuantity": { "value": 72, "unit": "beats/minute" }
    })
    .to_string()
    .into_bytes()
}

pub async fn ok_tx(n: &Node, k: &Keypair, op: Operation) {
    let (s, v) = n.submit(&n.tx(k, op)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

pub async fn read(n: &Node, who: &Keypair, purpose: Purpose, break_glass: Option<&str>) -> (StatusCode, Value) {
    read_v(n, who, 1, purpose, break_glass).await
}

/// A fresh nonce for each signed request.
pub fn next_nonce() -> u64 {
    fresh_nonce()
}

pub async fn read_v(
    n: &Node,
    who: &Keypair,
    version: u32,
    purpose: Purpose,
    break_glass: Option<&str>,
) -> (StatusCode, Value) {
    let r = ReadRequest {
        chain_id: "api-test".into(),
        record_id: REC,
        version,
        requester: who.public(),
        purpose,
        issued_ms: n.chain.now_ms(),
        nonce: next_nonce(),
        break_glass: break_glass.map(str::to_string),
    };
    let body = json!({ "request": hex::encode(medledger_types::Canonical::to_bytes(&r)), "signature": hex::encode(r.sign(who).0) });
    n.call("POST", "/v1/records/read", Some(body)).await
}

pub fn decrypt(v: &Value, me: &Keypair) -> Result<Vec<u8>, envelope::EnvelopeError> {
    let w: WrappedKey = serde_json::from_value(v["wrapped"].clone()).unwrap();
    let key = unwrap(&w, me, &context(&REC, 1))?;
    envelope::open(&key, &hex::decode(v["sealed"].as_str().unwrap()).unwrap(), &context(&REC, 1))
}

/// A record held by h0: doctor (with full consent) and patient, version 1 uploaded and committed.
pub struct Held {
    pub doc: Keypair,
    pub patient: Keypair,
    pub fhir: Vec<u8>,
    pub sealed: Vec<u8>,
    pub keys: Vec<Value>,
}

/// The patient consents (`consent_id` = `[id; 32]`) to everything `doctor` may do, for
/// treatment, without expiry.
pub async fn grant_all(n: &Node, patient: &Keypair, id: u8, doctor: &Keypair) {
    let terms = ConsentTerms {
        grantee: Grantee::Person(doctor.public()),
        actions: action::ALL,
        scope: Scope::All,
        purpose: Purpose::Treatment,
        expires_ms: None,
        roles: vec![],
    };
    ok_tx(n, patient, Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([id; 32]), terms })).await;
}

pub async fn held_record(n: &Node) -> Held {
    let doc = n.credential(60, Role::Doctor, T0 + 1_000_000_000).await;
    let patient = n.credential(70, Role::Patient, T0 + 1_000_000_000).await;
    let pid = Hash([70; 32]);
    n.commit();
    grant_all(n, &patient, 1, &doc).await;
    n.commit();
    let fhir = observation(&pid);
    let (sealed, keys, body) =
        upload_body(n, &doc, pid, &fhir, &[patient.public(), n.admins[0].public(), doc.public()]);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    n.commit();
    Held { doc, patient, fhir, sealed, keys }
}

/// Seals `fhir` as version 1 of REC, wraps its key for `recipients`, and builds the upload body
/// with `author`'s anchor transaction.
pub fn upload_body(
    n: &Node,
    author: &Keypair,
    pid: Hash,
    fhir: &[u8],
    recipients: &[medledger_types::PublicKey],
) -> (Vec<u8>, Vec<Value>, Value) {
    upload_body_v(n, author, pid, fhir, recipients, 1)
}

/// Like [`upload_body`], for `version` of REC.
pub fn upload_body_v(
    n: &Node,
    author: &Keypair,
    pid: Hash,
    fhir: &[u8],
    recipients: &[medledger_types::PublicKey],
    version: u32,
) -> (Vec<u8>, Vec<Value>, Value) {
    let ctx = context(&REC, version);
    let key = DataKey::generate();
    let sealed = seal(&key, fhir, &ctx);
    let keys: Vec<Value> = recipients
        .iter()
        .map(|pk| json!({ "recipient": pk.to_hex(), "wrapped": wrap(&key, pk, &ctx).unwrap() }))
        .collect();
    let anchor = n.tx(
        author,
        Operation::Records(RecordsOp::AnchorRecord {
            record_id: REC,
            version,
            patient: pid,
            resource_type: "Observation".into(),
            content_hash: envelope::content_hash(fhir),
            locator: "vault://h0".into(),
        }),
    );
    let body = json!({ "anchor_tx": hex::encode(anchor.raw()), "sealed": hex::encode(&sealed.0), "keys": keys });
    (sealed.0, keys, body)
}

pub fn outcomes(v: &Value) -> Vec<String> {
    v["events"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap().to_string()).collect()
}

/// A signed audit query by `who`.
pub async fn audit(n: &Node, who: &Keypair, mut q: AuditQuery, format: &str) -> (StatusCode, Value) {
    q.chain_id = "api-test".into();
    q.requester = Some(who.public());
    q.issued_ms = n.chain.now_ms();
    q.nonce = next_nonce();
    if q.limit == 0 {
        q.limit = 100;
    }
    let body = json!({ "query": hex::encode(medledger_types::Canonical::to_bytes(&q)), "signature": hex::encode(q.sign(who).0), "format": format });
    n.call("POST", "/v1/audit", Some(body)).await
}
