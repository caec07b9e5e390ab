//! Record sharing through the node API (single-node harness, real store and vault): upload with
//! write consent, reads checked against consent and logged on chain, patient re-wrapping for a
//! grantee, revocation, break-glass, tampering detected by the client.

mod common;

use axum::http::StatusCode;
use common::records::*;
use common::*;
use medledger_node::records::{add_key_message, ADD_KEY_SIGNATURE};
use medledger_types::read::AuditQuery;
use medledger_types::{
    action, AccessOutcome, ConsentTerms, CredentialSpec, Grantee, Hash, Keypair, Operation, Purpose, Role, Scope,
};
use medledger_types::{ConsentOp, IdentityOp, RecordsOp};
use medledger_vault::envelope::{self, context, unwrap, wrap, WrappedKey};
use serde_json::{json, Value};

#[tokio::test]
async fn consented_reads_are_served_and_everything_is_logged() {
    let n = node_with(true);
    let ca = n.ca.clone();
    let admin0 = n.admins[0].clone();
    let doc_a = n.credential(60, Role::Doctor, T0 + 1_000_000_000).await;
    let doc_b = Keypair::from_seed(61);
    ok_tx(
        &n,
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: doc_b.public(),
                role: Role::Doctor,
                institution: "h1".into(),
                display_name: "Dr B".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + 1_000_000_000,
            },
        }),
    )
    .await;
    n.commit();
    let doc_c = n.credential(62, Role::Doctor, T0 + 1_000_000_000).await;
    let patient = n.credential(70, Role::Patient, T0 + 1_000_000_000).await;
    let pid = Hash([70; 32]);
    n.commit();
    let grant = |id: u8, who: &Keypair, actions: u8| {
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([id; 32]),
            terms: ConsentTerms {
                grantee: Grantee::Person(who.public()),
                actions,
                scope: Scope::All,
                purpose: Purpose::Treatment,
                expires_ms: None,
                roles: vec![],
            },
        })
    };
    ok_tx(&n, &patient, grant(1, &doc_a, action::ALL)).await;
    n.commit();

    // Doctor A writes: FHIR checked, sealed, wrapped for the patient and the holder, anchored.
    let fhir = observation(&pid);
    assert_eq!(medledger_vault::fhir::check(&fhir, &pid).unwrap(), "Observation");
    let (_, _, upload) = upload_body(&n, &doc_a, pid, &fhir, &[patient.public(), admin0.public()]);
    let ctx = context(&REC, 1);
    let (s, v) = n.call("POST", "/v1/records", Some(upload.clone())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    n.commit();
    let (_, rec) = n.call("GET", &format!("/v1/records/{}", REC.to_hex()), None).await;
    assert_eq!(rec["versions"][0]["content_hash"], envelope::content_hash(&fhir).to_hex());
    assert_eq!(rec["versions"][0]["holder"], "h0");

    // Doctor B: no consent → denied and logged.
    let (s, v) = read(&n, &doc_b, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    // The patient reads their own record and checks it against the chain.
    let (s, v) = read(&n, &patient, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let plain = decrypt(&v, &patient).unwrap();
    assert_eq!(plain, fhir);
    assert_eq!(envelope::content_hash(&plain).to_hex(), v["content_hash"].as_str().unwrap());

    // Consent for B, then the patient's client re-wraps the key for B.
    ok_tx(&n, &patient, grant(2, &doc_b, action::READ)).await;
    n.commit();
    let (s, v) = read(&n, &doc_b, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "key_not_wrapped"), "{v}");
    let (_, own) = read(&n, &patient, Purpose::Treatment, None).await;
    let own_w: WrappedKey = serde_json::from_value(own["wrapped"].clone()).unwrap();
    let k = unwrap(&own_w, &patient, &ctx).unwrap();
    let for_b = wrap(&k, &doc_b.public(), &ctx).unwrap();
    let issued = n.chain.now_ms();
    let sig = patient.sign(ADD_KEY_SIGNATURE, &add_key_message(&REC, 1, &doc_b.public(), &for_b, issued));
    let add = json!({ "recipient": doc_b.public().to_hex(), "wrapped": for_b, "issued_ms": issued, "signature": hex::encode(sig.0) });
    // Only the patient may add keys.
    let forged = doc_b.sign(ADD_KEY_SIGNATURE, &add_key_message(&REC, 1, &doc_b.public(), &for_b, issued));
    let mut bad = add.clone();
    bad["signature"] = json!(hex::encode(forged.0));
    let (s, v) = n.call("POST", &format!("/v1/records/{}/1/keys", REC.to_hex()), Some(bad)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "bad_signature"));
    let (s, v) = n.call("POST", &format!("/v1/records/{}/1/keys", REC.to_hex()), Some(add)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = read(&n, &doc_b, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(decrypt(&v, &doc_b).unwrap(), fhir);
    // Wrong purpose is denied.
    let (s, _) = read(&n, &doc_b, Purpose::Research, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Break-glass: doctor C has no consent but states an emergency.
    let (s, v) = read(&n, &doc_c, Purpose::Treatment, Some("unconscious patient in the emergency room")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "break_glass");
    assert_eq!(decrypt(&v, &doc_c).unwrap(), fhir);

    // Revocation denies B from the next block.
    ok_tx(&n, &patient, Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([2; 32]) })).await;
    n.commit();
    let (s, _) = read(&n, &doc_b, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    n.commit();

    // Every read attempt is on chain, break-glass flagged. The patient audits their records.
    let (s, all) = audit(&n, &patient, AuditQuery::default(), "json").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let got = outcomes(&all);
    for want in ["denied", "served", "break_glass"] {
        assert!(got.iter().any(|o| o == want), "{want} missing from {got:?}");
    }
    assert_eq!(got.iter().filter(|o| *o == "denied").count(), 4, "{got:?}");
    let bg = all["events"].as_array().unwrap().iter().find(|e| e["outcome"] == "break_glass").unwrap();
    assert_eq!(bg["requester"], doc_c.public().to_hex());
    // The reason is on chain sealed for the patient and the holding institution (and the
    // regulators of the day: none yet), never in plaintext.
    assert!(!all.to_string().contains("unconscious"), "{all}");
    let sealed: medledger_types::SealedNote = serde_json::from_value(bg["reason"].clone()).unwrap();
    let subject = Hash::from_hex(bg["request_id"].as_str().unwrap()).unwrap();
    for reader in [&patient, &n.admins[0]] {
        let text = medledger_vault::envelope::open_note(&sealed, reader, &subject).unwrap();
        assert_eq!(text, "unconscious patient in the emergency room");
    }
    assert!(medledger_vault::envelope::open_note(&sealed, &doc_c, &subject).is_err());
    assert_eq!(bg["break_glass"], true);
    assert_eq!(bg["patient"], pid.to_hex());
    // Newest first.
    let heights: Vec<u64> = all["events"].as_array().unwrap().iter().map(|e| e["height"].as_u64().unwrap()).collect();
    assert!(heights.windows(2).all(|w| w[0] >= w[1]), "{heights:?}");
    // A regulator filters across the chain by outcome, purpose, institution and time.
    let regulator = n.credential(64, Role::Regulator, T0 + 1_000_000_000).await;
    n.commit();
    let q =
        AuditQuery { outcome: Some(AccessOutcome::Denied), institution: Some("h0".into()), ..AuditQuery::default() };
    let (s, denied) = audit(&n, &regulator, q, "json").await;
    assert_eq!(s, StatusCode::OK, "{denied}");
    assert_eq!(outcomes(&denied), vec!["denied"; 4]);
    let q = AuditQuery { institution: Some("h1".into()), ..AuditQuery::default() };
    assert!(outcomes(&audit(&n, &regulator, q, "json").await.1).is_empty());
    let q = AuditQuery { purpose: Some(Purpose::Research), ..AuditQuery::default() };
    assert_eq!(outcomes(&audit(&n, &regulator, q, "json").await.1), vec!["denied"]);
    let q = AuditQuery { from_ms: Some(n.chain.now_ms() + 1), ..AuditQuery::default() };
    assert!(outcomes(&audit(&n, &regulator, q, "json").await.1).is_empty());
    let q = AuditQuery { limit: 2, ..AuditQuery::default() };
    assert_eq!(outcomes(&audit(&n, &regulator, q, "json").await.1).len(), 2);
    // Exported as FHIR AuditEvents, break-glass marked BTG.
    let q = AuditQuery { outcome: Some(AccessOutcome::BreakGlass), ..AuditQuery::default() };
    let (s, fhir_b) = audit(&n, &regulator, q, "fhir").await;
    assert_eq!(s, StatusCode::OK, "{fhir_b}");
    assert_eq!((fhir_b["resourceType"].as_str(), fhir_b["total"].as_u64()), (Some("Bundle"), Some(1)));
    let ae = &fhir_b["entry"][0]["resource"];
    assert_eq!(medledger_vault::fhir::check_resource_type(ae).unwrap(), "AuditEvent");
    assert_eq!(ae["action"], "R");
    assert_eq!(ae["agent"][0]["who"]["identifier"]["value"], doc_c.public().to_hex());
    assert!(ae["purposeOfEvent"].as_array().unwrap().iter().any(|p| p["coding"][0]["code"] == "BTG"));
    assert!(ae["recorded"].as_str().unwrap().ends_with('Z'));
    let details = ae["entity"][0]["detail"].as_array().unwrap();
    let sealed_reason = details.iter().find(|d| d["type"] == "sealedReason").expect("the sealed reason travels along");
    let note = hex::decode(sealed_reason["valueString"].as_str().unwrap()).unwrap();
    let note = <medledger_types::SealedNote as medledger_types::Canonical>::from_bytes(&note).unwrap();
    assert_eq!(
        medledger_vault::envelope::open_note(&note, &patient, &subject).unwrap(),
        "unconscious patient in the emergency room"
    );
    // Doctors see no audit metadata; a patient sees no one else's; a bad signature is refused.
    let (s, v) = audit(&n, &doc_b, AuditQuery::default(), "json").await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"));
    let q = AuditQuery { patient: Some(Hash([9; 32])), ..AuditQuery::default() };
    let (s, v) = audit(&n, &patient, q, "json").await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    let mut q = AuditQuery {
        chain_id: "api-test".into(),
        requester: Some(regulator.public()),
        issued_ms: n.chain.now_ms(),
        nonce: next_nonce(),
        limit: 5,
        ..AuditQuery::default()
    };
    let sig = q.sign(&regulator);
    q.limit = 6;
    let body =
        json!({ "query": hex::encode(medledger_types::Canonical::to_bytes(&q)), "signature": hex::encode(sig.0) });
    let (s, v) = n.call("POST", "/v1/audit", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "bad_signature"));

    // A write without consent is refused before it reaches the vault.
    let stranger_doc = n.credential(63, Role::Doctor, T0 + 1_000_000_000).await;
    let anchor2 = n.tx(
        &stranger_doc,
        Operation::Records(RecordsOp::AnchorRecord {
            record_id: Hash([0x43; 32]),
            version: 1,
            patient: pid,
            resource_type: "Observation".into(),
            content_hash: Hash([1; 32]),
            locator: "vault://h0".into(),
        }),
    );
    let mut up2 = upload.clone();
    up2["anchor_tx"] = json!(hex::encode(anchor2.raw()));
    n.commit();
    let (s, v) = n.call("POST", "/v1/records", Some(up2)).await;
    // Admission passes the permission table (doctors may anchor); execution then rejects the
    // write for lack of consent, and the record never exists on chain.
    assert!(s == StatusCode::ACCEPTED || s == StatusCode::FORBIDDEN, "{v}");
    n.commit();
    let (s, _) = n.call("GET", &format!("/v1/records/{}", Hash([0x43; 32]).to_hex()), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tampered_ciphertext_is_detected_by_the_reader() {
    let n = node_with(true);
    let h = held_record(&n).await;
    let (doc, sealed) = (h.doc, h.sealed);
    // Corrupt the stored ciphertext on disk.
    let object = medledger_types::hash::sha256(&[&sealed]);
    let path = n._dir.path().join("vault/objects").join(object.to_hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (s, v) = read(&n, &doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(decrypt(&v, &doc).unwrap_err(), envelope::EnvelopeError::Open);
}

#[tokio::test]
async fn erasure_destroys_the_vault_copy_and_keeps_the_hash() {
    let n = node_with(true);
    let Held { doc, patient, fhir, sealed, keys } = held_record(&n).await;
    assert_eq!(read(&n, &doc, Purpose::Treatment, None).await.0, StatusCode::OK);

    // The patient asks; once that block finalizes, the holder erases and confirms on chain.
    ok_tx(&n, &patient, Operation::Records(RecordsOp::RequestErasure { record_id: REC })).await;
    n.commit();
    // Reads stop as soon as erasure is requested.
    let (s, v) = read(&n, &doc, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::GONE, "erased"), "{v}");
    // A crash right after the tombstone was written, before anything was deleted: the files
    // are still there, and the next run (at start-up, or after any block) finishes the job.
    let vault_dir = n._dir.path().join("vault");
    std::fs::create_dir_all(vault_dir.join("erased")).unwrap();
    std::fs::write(vault_dir.join(format!("erased/{}", REC.to_hex())), b"erased").unwrap();
    assert!(vault_files(&n).keys().any(|p| p.to_string_lossy().contains("objects/")));
    let svc = n.records.clone().unwrap();
    assert_eq!(svc.reconcile_erasures().len(), 1);
    // Run again before the confirmation commits: nothing new is submitted.
    assert!(svc.reconcile_erasures().is_empty());
    n.commit();
    assert!(svc.reconcile_erasures().is_empty(), "the queue is empty once confirmed");
    let (_, rec) = n.call("GET", &format!("/v1/records/{}", REC.to_hex()), None).await;
    assert!(rec["record"]["erased_at"].is_u64(), "{rec}");
    assert_eq!(rec["versions"][0]["content_hash"], envelope::content_hash(&fhir).to_hex(), "the hash stays on chain");
    let (s, v) = read(&n, &doc, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::GONE, "erased"));
    // No ciphertext and no wrapped key remain in any vault file.
    let mut files = Vec::new();
    let mut stack = vec![n._dir.path().join("vault")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path())
            } else {
                files.push(e.path())
            }
        }
    }
    let needles: Vec<Vec<u8>> = std::iter::once(sealed[..32].to_vec()).chain(keys_bytes(&keys)).collect();
    for f in &files {
        let b = std::fs::read(f).unwrap();
        for nd in &needles {
            assert!(!b.windows(nd.len()).any(|w| w == nd.as_slice()), "erased bytes remain in {}", f.display());
        }
    }
}

fn keys_bytes(keys: &[Value]) -> Vec<Vec<u8>> {
    keys.iter()
        .map(|k| {
            let w: WrappedKey = serde_json::from_value(k["wrapped"].clone()).unwrap();
            w.to_bytes()[..32].to_vec()
        })
        .collect()
}

/// Every file under the node's vault, with its bytes.
fn vault_files(n: &Node) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(&n._dir.path().join("vault"), &mut out);
    out
}

/// Trust boundary: an upload whose anchor is unsigned, whose author has no write consent, or
/// whose version is not latest + 1, or whose record the patient asked to erase, is refused
/// before it reaches the vault, and the vault is byte for byte what it was. The patient's own
/// read still works afterwards (until the erasure request).
#[tokio::test]
async fn forged_or_unauthorised_uploads_leave_the_vault_unchanged() {
    let n = node_with(true);
    let h = held_record(&n).await;
    let pid = Hash([70; 32]);
    let before = vault_files(&n);
    assert!(!before.is_empty());
    let recipients = [h.patient.public(), n.admins[0].public()];

    // 1. The upload `record put --amend` sends, turned into version 1 of the existing record
    //    with its signature zeroed.
    let (_, _, mut forged) = upload_body_v(&n, &h.doc, pid, b"{}", &recipients, 1);
    let mut raw = hex::decode(forged["anchor_tx"].as_str().unwrap()).unwrap();
    let len = raw.len();
    raw[len - 64..].fill(0);
    forged["anchor_tx"] = json!(hex::encode(&raw));
    let (s, v) = n.call("POST", "/v1/records", Some(forged)).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_signature"), "{v}");
    assert_eq!(vault_files(&n), before, "an unsigned upload must not touch the vault");

    // 2. Signed, but version 1 exists (not latest + 1).
    let (_, _, again) = upload_body_v(&n, &h.doc, pid, &observation(&pid), &recipients, 1);
    let (s, v) = n.call("POST", "/v1/records", Some(again)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(vault_files(&n), before, "a version that is not latest + 1 must not touch the vault");

    // 3. Signed by a doctor of the same institution without the patient's write consent.
    let stranger = n.credential(61, Role::Doctor, T0 + 1_000_000_000).await;
    n.commit();
    let (_, _, body) = upload_body_v(&n, &stranger, pid, &observation(&pid), &recipients, 2);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert_eq!(vault_files(&n), before, "an upload without write consent must not touch the vault");

    // 4. Too many wrapped keys.
    let (_, _, mut body) = upload_body_v(&n, &h.doc, pid, &observation(&pid), &recipients, 2);
    let k = body["keys"][0].clone();
    body["keys"] = json!(vec![k; medledger_types::limits::MAX_RECIPIENTS + 1]);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"), "{v}");
    assert_eq!(vault_files(&n), before);

    // The patient still reads version 1.
    let (s, v) = read(&n, &h.patient, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(decrypt(&v, &h.patient).unwrap(), h.fhir);

    // 5. A well-formed amendment by the consented author, once the patient has asked for the
    //    record's erasure: no copy is added that the erasure was not asked of.
    ok_tx(&n, &h.patient, Operation::Records(RecordsOp::RequestErasure { record_id: REC })).await;
    n.commit();
    let before = vault_files(&n);
    let (_, _, body) = upload_body_v(&n, &h.doc, pid, &observation(&pid), &recipients, 2);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("erased"), "{v}");
    assert_eq!(vault_files(&n), before, "an upload to a record being erased must not touch the vault");
    let (_, rec) = n.call("GET", &format!("/v1/records/{}", REC.to_hex()), None).await;
    assert_eq!(rec["versions"].as_array().unwrap().len(), 1, "{rec}");
}

/// A pending amendment is readable by the patient and its author only, whatever consent or
/// break-glass another reader has; a rejected one by the patient only. The current version stays
/// readable under consent.
#[tokio::test]
async fn pending_and_rejected_amendments_are_withheld() {
    let n = node_with(true);
    let h = held_record(&n).await;
    let pid = Hash([70; 32]);
    let reader = n.credential(62, Role::Doctor, T0 + 1_000_000_000).await;
    n.commit();
    ok_tx(
        &n,
        &h.patient,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([2; 32]),
            terms: ConsentTerms {
                grantee: Grantee::Person(reader.public()),
                actions: action::READ,
                scope: Scope::All,
                purpose: Purpose::Treatment,
                expires_ms: None,
                roles: vec![],
            },
        }),
    )
    .await;
    n.commit();
    let recipients = [h.patient.public(), n.admins[0].public(), h.doc.public(), reader.public()];
    let (_, _, body) = upload_body_v(&n, &h.doc, pid, &observation(&pid), &recipients, 2);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    n.commit();

    let (s, v) = read_v(&n, &reader, 2, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("pending"));
    let (s, _) = read_v(&n, &reader, 2, Purpose::Treatment, Some("unconscious patient")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "break-glass does not open a pending amendment");
    assert_eq!(read_v(&n, &h.doc, 2, Purpose::Treatment, None).await.0, StatusCode::OK, "the author reads it");
    assert_eq!(read_v(&n, &h.patient, 2, Purpose::Treatment, None).await.0, StatusCode::OK, "the patient reads it");
    // v1 is current: the reader's consent covers it (its data key was not re-wrapped for the
    // reader in this harness, which the answer says), while v2 was withheld for its status.
    let (s, v) = read(&n, &reader, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "key_not_wrapped"), "{v}");

    ok_tx(&n, &h.patient, Operation::Records(RecordsOp::ReviewAmendment { record_id: REC, version: 2, accept: false }))
        .await;
    n.commit();
    let (s, v) = read_v(&n, &h.doc, 2, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("rejected"));
    assert_eq!(read_v(&n, &h.patient, 2, Purpose::Treatment, None).await.0, StatusCode::OK);
}

/// An upload checked against committed state while the patient's erasure request waits for its
/// block passes, and its anchor is refused when executed after the request. The copy it left is
/// named by no erasure queue (this institution holds no version): the next reconciliation
/// destroys it.
#[tokio::test]
async fn a_copy_uploaded_while_an_erasure_request_waits_is_destroyed() {
    let n = node_with(true);
    let ca = n.ca.clone();
    let until = T0 + 1_000_000_000;
    let doc_h1 = Keypair::from_seed(61);
    ok_tx(
        &n,
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: doc_h1.public(),
                role: Role::Doctor,
                institution: "h1".into(),
                display_name: "Dr H1".into(),
                valid_from_ms: T0,
                valid_until_ms: until,
            },
        }),
    )
    .await;
    n.commit();
    let doc_h0 = n.credential(60, Role::Doctor, until).await;
    let patient = n.credential(70, Role::Patient, until).await;
    let pid = Hash([70; 32]);
    n.commit();
    for (id, doc) in [(1, &doc_h1), (2, &doc_h0)] {
        grant_all(&n, &patient, id, doc).await;
        n.commit();
    }
    // Version 1 is held by h1 (its vault is elsewhere).
    let anchor = RecordsOp::AnchorRecord {
        record_id: REC,
        version: 1,
        patient: pid,
        resource_type: "Observation".into(),
        content_hash: envelope::content_hash(&observation(&pid)),
        locator: "vault://h1".into(),
    };
    ok_tx(&n, &doc_h1, Operation::Records(anchor)).await;
    n.commit();
    let before = vault_files(&n);

    // The erasure request waits in the mempool; h0's doctor uploads version 2 meanwhile.
    ok_tx(&n, &patient, Operation::Records(RecordsOp::RequestErasure { record_id: REC })).await;
    let (sealed, keys, body) =
        upload_body_v(&n, &doc_h0, pid, &observation(&pid), &[patient.public(), n.admins[0].public()], 2);
    let (s, v) = n.call("POST", "/v1/records", Some(body)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_ne!(vault_files(&n), before, "the upload wrote its copy");
    n.commit();
    let snap = n.chain.store.snapshot().unwrap();
    assert!(medledger_state::records::version(&snap, &REC, 2).is_none(), "refused after the request");
    assert_eq!(medledger_state::records::erasure_holders(&snap, &REC), ["h1"], "h0 is asked nothing");
    drop(snap);

    let svc = n.records.clone().unwrap();
    assert!(svc.reconcile_erasures().is_empty(), "nothing to confirm: h0 holds no version");
    let needles: Vec<Vec<u8>> = std::iter::once(sealed[..32].to_vec()).chain(keys_bytes(&keys)).collect();
    for (f, b) in vault_files(&n) {
        for nd in &needles {
            assert!(!b.windows(nd.len()).any(|w| w == nd.as_slice()), "the refused copy remains in {}", f.display());
        }
    }
}
