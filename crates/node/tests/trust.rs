//! The trust boundary of the read and audit services and of transaction acknowledgement:
//! keys without a credential write nothing, replays and floods are refused before any side
//! effect, and a 202 survives a crash of the node that gave it.

mod common;

use axum::http::StatusCode;
use common::records::*;
use common::*;
use medledger_node::guard::RateLimit;
use medledger_types::read::AuditQuery;
use medledger_types::{Canonical, IdentityOp, Keypair, Operation, Purpose, Role};
use serde_json::json;

/// What reads have written towards the chain: access events in the holder's journal, and
/// transactions in the mempool (the harness batches events only when it commits a block).
fn pending(n: &Node) -> usize {
    n.chain.mempool_len() + n.records.as_ref().and_then(|r| r.journal()).map_or(0, |j| j.backlog())
}

#[tokio::test]
async fn reads_by_keys_without_a_valid_credential_write_nothing() {
    let n = node_with(true);
    let held = held_record(&n).await;
    assert_eq!(pending(&n), 0);
    // A key the CA never certified.
    let stranger = Keypair::from_seed(999);
    for _ in 0..20 {
        let (s, v) = read(&n, &stranger, Purpose::Treatment, None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "unknown_signer"), "{v}");
    }
    // A doctor whose credential was revoked, even with a consent and with break-glass.
    let ca = n.ca.clone();
    let (s, _) = n
        .submit(&n.tx(
            &ca,
            Operation::Identity(IdentityOp::RevokeCredential { subject: held.doc.public(), reason: "left".into() }),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    n.commit();
    assert_eq!(pending(&n), 0);
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, Some("cardiac arrest")).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "credential_revoked"), "{v}");
    // Nothing reached the mempool, so nothing can reach the chain.
    assert_eq!(pending(&n), 0, "refused requests must not be logged on chain");
    // A credentialed requester without consent is denied, and that denial is logged.
    let nosy = n.credential(81, Role::Doctor, T0 + 1_000_000_000).await;
    let (s, v) = read(&n, &nosy, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert_eq!(pending(&n), 1);
}

/// A signed read as JSON, ready to send twice.
fn signed_read(n: &Node, who: &Keypair, nonce: u64) -> serde_json::Value {
    let r = medledger_types::read::ReadRequest {
        chain_id: "api-test".into(),
        record_id: REC,
        version: 1,
        requester: who.public(),
        purpose: Purpose::Treatment,
        issued_ms: n.chain.now_ms(),
        nonce,
        break_glass: None,
    };
    json!({ "request": hex::encode(r.to_bytes()), "signature": hex::encode(r.sign(who).0) })
}

#[tokio::test]
async fn a_replayed_read_or_audit_query_is_refused_and_logged_once() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let body = signed_read(&n, &held.doc, 4242);
    let (s, v) = n.call("POST", "/v1/records/read", Some(body.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(pending(&n), 1, "the served read is logged");
    let (s, v) = n.call("POST", "/v1/records/read", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "replayed_request"), "{v}");
    assert_eq!(pending(&n), 1, "the replay is not logged again");
    // Same request with a fresh nonce: a new read.
    let (s, _) = n.call("POST", "/v1/records/read", Some(signed_read(&n, &held.doc, 4243))).await;
    assert_eq!(s, StatusCode::OK);

    // Audit queries too.
    let regulator = n.credential(82, Role::Regulator, T0 + 1_000_000_000).await;
    let q = AuditQuery {
        chain_id: "api-test".into(),
        requester: Some(regulator.public()),
        issued_ms: n.chain.now_ms(),
        nonce: 7,
        limit: 10,
        ..AuditQuery::default()
    };
    let body = json!({ "query": hex::encode(q.to_bytes()), "signature": hex::encode(q.sign(&regulator).0) });
    let (s, v) = n.call("POST", "/v1/audit", Some(body.clone())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = n.call("POST", "/v1/audit", Some(body)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "replayed_request"), "{v}");
}

#[tokio::test]
async fn requesters_over_their_rate_get_429_and_no_access_event() {
    let n = node_limited(true, RateLimit { per_second: 1, burst: 3 });
    let held = held_record(&n).await;
    let stranger_to_the_record = n.credential(83, Role::Doctor, T0 + 1_000_000_000).await;
    let before = pending(&n);
    // The burst is served (or denied and logged); the rest are refused before any work.
    for _ in 0..3 {
        let (s, _) = read(&n, &stranger_to_the_record, Purpose::Treatment, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert_eq!(pending(&n), before + 3);
    for _ in 0..50 {
        let (s, v) = read(&n, &stranger_to_the_record, Purpose::Treatment, None).await;
        assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{v}");
    }
    assert_eq!(pending(&n), before + 3, "a flood writes nothing past the allowance");
    // The doctor with consent has an allowance of its own.
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A second later, one more.
    n.clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    let (s, _) = read(&n, &stranger_to_the_record, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_acknowledged_transaction_survives_a_crash_of_the_node_that_acknowledged_it() {
    let n = node();
    let ca = n.ca.clone();
    let subject = Keypair::from_seed(501);
    let tx = n.tx(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: medledger_types::CredentialSpec {
                subject: subject.public(),
                role: Role::Doctor,
                institution: "h0".into(),
                display_name: "Dr Durable".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + 1_000_000_000,
            },
        }),
    );
    let (s, v) = n.submit(&tx).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    // Killed before any block or gossip: only the write-ahead log has it.
    let n = n.crash_and_restart();
    assert!(n.chain.is_pending(&tx.id()), "the acknowledged transaction is pending again");
    let b = n.commit();
    assert_eq!(b.txs.len(), 1);
    let (s, v) = n.call("GET", &format!("/v1/txs/{}", tx.id().to_hex()), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "committed", "{v}");
    // Once committed, it is not replayed again after another crash, and the log is empty.
    let n = n.crash_and_restart();
    assert_eq!(n.chain.mempool_len(), 0);
}

/// A path with its parameters filled by well-formed values.
fn concrete(path: &str) -> String {
    path.replace("{id}", &"11".repeat(32))
        .replace("{key}", &"22".repeat(32))
        .replace("{pseudonym}", &"33".repeat(32))
        .replace("{digest}", &"44".repeat(32))
        .replace("{hash}", &"55".repeat(32))
        .replace("{height}", "1")
        .replace("{request_id}", &"66".repeat(32))
        .replace("{capture_id}", &"77".repeat(32))
        .replace("{gtin}", "10614141073464")
        .replace("{institution}", "hospital-0")
}

/// Node status, liveness, the API document and drug verification (and its proof) are the only
/// reads open to anyone.
const PUBLIC: [&str; 5] = medledger_node::api::PUBLIC_READS;

#[tokio::test]
async fn every_chain_read_needs_a_valid_signature_from_a_credential_holder() {
    let n = node_with(true);
    let (_, doc) = n.call("GET", "/openapi.json", None).await;
    let gets: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, ops)| ops.get("get").is_some() && !PUBLIC.contains(&p.as_str()))
        .map(|(p, _)| concrete(p))
        .collect();
    assert!(gets.len() >= 12, "{gets:?}");
    // The document says so: each of them requires the signed-request scheme.
    for (p, ops) in doc["paths"].as_object().unwrap() {
        if let Some(get) = ops.get("get") {
            assert_eq!(get.get("security").is_some(), !PUBLIC.contains(&p.as_str()), "{p}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["medledger"].is_object());
    let stranger = Keypair::from_seed(4040);
    for path in &gets {
        // No header.
        let (s, v) = n.call_as(None, "GET", path, None).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{path}: {v}");
        // A valid signature, but no credential behind the key.
        let (s, v) = n.call_as(Some(&stranger), "GET", path, None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "unknown_signer"), "{path}: {v}");
    }
    for path in PUBLIC {
        // Verification needs the scanned identifier.
        let full = if path.ends_with("/drugs/verify") {
            format!("{path}?id=urn:epc:id:sgtin:0614141.107346.1")
        } else {
            path.to_string()
        };
        let (s, v) = n.call_as(None, "GET", &full, None).await;
        if path.starts_with("/v1/proofs/") {
            // Past authentication: this harness certifies nothing, and the route says so.
            assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "not_yet_certified"), "{path} stays public");
        } else {
            assert_eq!(s, StatusCode::OK, "{path} stays public");
        }
    }
    // A header signed for another path, a stale one, a garbled one, and a replayed one.
    let ca = n.ca.clone();
    let now = n.clock.load(std::sync::atomic::Ordering::SeqCst);
    let header = |path: &str, issued_ms: u64, nonce: u64| {
        medledger_types::auth::ApiRequest {
            chain_id: "api-test".into(),
            method: "GET".into(),
            path: path.into(),
            issued_ms,
            nonce,
        }
        .authorization(&ca)
    };
    let send = |value: String| {
        let router = n.router.clone();
        async move {
            use http_body_util::BodyExt as _;
            use tower::ServiceExt as _;
            let req = axum::http::Request::builder()
                .method("GET")
                .uri("/v1/blocks?limit=1")
                .header("authorization", value)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    for (value, why) in [
        (header("/v1/blocks?limit=2", now, 1), "does not verify"),
        (header("/v1/blocks?limit=1", now - 120_000, 2), "too far"),
        ("MedLedger key=zz".to_string(), "Authorization key"),
        ("Basic abc".to_string(), "scheme"),
    ] {
        let (s, v) = send(value).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{why}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(why), "{why}: {v}");
    }
    let once = header("/v1/blocks?limit=1", now, 3);
    assert_eq!(send(once.clone()).await.0, StatusCode::OK);
    let (s, v) = send(once).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "replayed_request"), "{v}");
}

#[tokio::test]
async fn chain_reads_show_each_role_only_what_it_may_see() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let pid = medledger_types::Hash([70; 32]);
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let access_event = v["access_event"].as_str().unwrap().to_string();
    let regulator = n.credential(90, Role::Regulator, T0 + 1_000_000_000).await;
    let other_doc = n.credential(91, Role::Doctor, T0 + 1_000_000_000).await;
    let researcher = n.credential(92, Role::Researcher, T0 + 1_000_000_000).await;
    let nosy = n.credential(93, Role::Researcher, T0 + 1_000_000_000).await;
    // A researcher asks the patient for access (a reason others must not read).
    let ask = n.tx(
        &researcher,
        Operation::Consent(medledger_types::ConsentOp::RequestAccess {
            request_id: medledger_types::Hash([77; 32]),
            patient: pid,
            terms: medledger_types::ConsentTerms {
                grantee: medledger_types::Grantee::Person(researcher.public()),
                actions: medledger_types::action::READ,
                scope: medledger_types::Scope::All,
                purpose: Purpose::Research,
                expires_ms: None,
                roles: vec![],
            },
            // Sealed for the patient, the requester and the regulator: never plaintext on chain.
            reason: medledger_vault::envelope::seal_note(
                "cohort study on sleep apnoea",
                &[held.patient.public(), researcher.public(), regulator.public()],
                &medledger_types::Hash([77; 32]),
            )
            .unwrap(),
        }),
    );
    assert!(!String::from_utf8_lossy(ask.raw()).contains("sleep apnoea"));
    assert_eq!(n.submit(&ask).await.0, StatusCode::ACCEPTED);
    let block = n.commit();
    // The read's event went on chain in a batch signed by the holder (in the block the next
    // credential was committed in).
    let (_, ev) = n.call("GET", &format!("/v1/access-events/{access_event}"), None).await;
    let at = n.chain.store.block(ev["height"].as_u64().unwrap()).unwrap().unwrap();
    let batch = at
        .txs
        .iter()
        .find(|t| matches!(t.body().op, Operation::Audit(medledger_types::AuditOp::LogAccess { .. })))
        .expect("the access event's batch is in its block");
    let access_tx = batch.id().to_hex();
    let get = |who: &Keypair, path: String| {
        let who = who.clone();
        let n = &n;
        async move { n.call_as(Some(&who), "GET", &path, None).await }
    };

    // The access event: the patient, the reader it records and the regulator see it; another
    // doctor does not.
    let event_path = format!("/v1/access-events/{access_event}");
    for who in [&held.patient, &held.doc, &regulator] {
        let (s, v) = get(who, event_path.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["requester"], held.doc.public().to_hex(), "{v}");
        assert_eq!(v["request_id"], access_event, "{v}");
    }
    let (s, v) = get(&other_doc, event_path.clone()).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    // The batch carrying it holds other patients' events too: the regulator sees it, the
    // patient and the reader do not (they see their own events above).
    let tx_path = format!("/v1/txs/{access_tx}");
    let (s, v) = get(&regulator, tx_path.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["tx"]["op"]["events"][0]["requester"], held.doc.public().to_hex(), "{v}");
    for who in [&held.patient, &held.doc, &other_doc] {
        let (s, v) = get(who, tx_path.clone()).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    }
    let (s, _) = get(&other_doc, format!("{tx_path}/proof")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The block: everyone credentialed sees its header; receipts only of what they may see.
    let block_path = format!("/v1/blocks/{}", block.height());
    let (_, all) = get(&regulator, block_path.clone()).await;
    assert_eq!(all["hidden_receipts"], 0);
    assert_eq!(all["receipts"].as_array().unwrap().len(), block.txs.len());
    let (s, some) = get(&other_doc, block_path.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(some["hidden_receipts"].as_u64().unwrap() as usize, block.txs.len());
    assert!(some["receipts"].as_array().unwrap().is_empty());
    assert_eq!(some["header"], all["header"]);
    assert!(!some.to_string().contains(&held.doc.public().to_hex()), "no reader key leaks in a redacted block");

    // The request's reason: the patient and the requester see it; another researcher sees an
    // empty queue; a doctor without consent sees nothing of the patient.
    let req_path = format!("/v1/patients/{}/requests", pid.to_hex());
    let (_, mine) = get(&researcher, req_path.clone()).await;
    assert_eq!(mine["pending"].as_array().unwrap().len(), 1);
    let (_, theirs) = get(&held.patient, req_path.clone()).await;
    assert!(!theirs.to_string().contains("sleep apnoea"), "the node never holds the plaintext");
    let sealed: medledger_types::SealedNote = serde_json::from_value(theirs["pending"][0]["reason"].clone()).unwrap();
    for reader in [&held.patient, &researcher, &regulator] {
        let text = medledger_vault::envelope::open_note(&sealed, reader, &medledger_types::Hash([77; 32])).unwrap();
        assert_eq!(text, "cohort study on sleep apnoea");
    }
    assert!(medledger_vault::envelope::open_note(&sealed, &nosy, &medledger_types::Hash([77; 32])).is_err());
    let (s, other) = get(&nosy, req_path.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(other["pending"].as_array().unwrap().is_empty(), "{other}");
    assert!(!other.to_string().contains("sleep apnoea"));

    // Consents and the record index: the patient, the consent holder and the regulator.
    for path in [format!("/v1/patients/{}/consents", pid.to_hex()), format!("/v1/patients/{}/records", pid.to_hex())] {
        for who in [&held.patient, &held.doc, &regulator] {
            assert_eq!(get(who, path.clone()).await.0, StatusCode::OK, "{path}");
        }
        let (s, v) = get(&nosy, path.clone()).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{path}: {v}");
    }
    // A patient's identity is theirs; staff identities are a directory.
    let patient_ident = format!("/v1/identities/{}", held.patient.public().to_hex());
    assert_eq!(get(&held.patient, patient_ident.clone()).await.0, StatusCode::OK);
    assert_eq!(get(&nosy, patient_ident).await.0, StatusCode::FORBIDDEN);
    assert_eq!(get(&nosy, format!("/v1/identities/{}", held.doc.public().to_hex())).await.0, StatusCode::OK);
    // Patients' keys by pseudonym: staff (doctors wrap data keys for them, requesters seal
    // reasons for them), not other patients.
    let by_pseudonym = format!("/v1/patients/{}", pid.to_hex());
    assert_eq!(get(&other_doc, by_pseudonym.clone()).await.0, StatusCode::OK);
    assert_eq!(get(&nosy, by_pseudonym.clone()).await.0, StatusCode::OK);
    let other_patient = n.credential(95, Role::Patient, T0 + 1_000_000_000).await;
    assert_eq!(get(&other_patient, by_pseudonym).await.0, StatusCode::FORBIDDEN);
    // The regulators, whom every sealed reason must name, are listed for every credential.
    let (s, v) = get(&nosy, "/v1/regulators".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["regulators"], json!([regulator.public().to_hex()]));
    // An institution's staff directory: staff and regulators list it, with no patient in it;
    // patients may not list it; an unknown institution is not found.
    let (s, v) = get(&nosy, "/v1/institutions/h0/staff".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let staff: Vec<&str> = v["staff"].as_array().unwrap().iter().map(|c| c["subject"].as_str().unwrap()).collect();
    for k in [&other_doc, &researcher, &nosy] {
        assert!(staff.contains(&k.public().to_hex().as_str()), "{v}");
    }
    assert!(v["staff"].as_array().unwrap().iter().all(|c| c["role"] != "patient" && c["institution"] == "h0"));
    assert!(!staff.contains(&held.patient.public().to_hex().as_str()));
    assert_eq!(get(&regulator, "/v1/institutions/h0/staff".into()).await.0, StatusCode::OK);
    let (s, v) = get(&other_patient, "/v1/institutions/h0/staff".into()).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    let (s, v) = get(&nosy, "/v1/institutions/nowhere/staff".into()).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    // A record's head (hashes and holders, for checking a break-glass read): doctors who know
    // its id, the patient, consent holders, the holding institution's staff; not a researcher
    // of another institution without consent.
    let record = format!("/v1/records/{}", REC.to_hex());
    for who in [&other_doc, &held.patient, &held.doc, &regulator, &nosy] {
        assert_eq!(get(who, record.clone()).await.0, StatusCode::OK);
    }
    // Another patient registered at the holding institution is not its staff.
    let (s, v) = get(&other_patient, record.clone()).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    let outsider = Keypair::from_seed(94);
    let ca = n.ca.clone();
    let issue = n.tx(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: medledger_types::CredentialSpec {
                subject: outsider.public(),
                role: Role::Researcher,
                institution: "h1".into(),
                display_name: "Outside researcher".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + 1_000_000_000,
            },
        }),
    );
    assert_eq!(n.submit(&issue).await.0, StatusCode::ACCEPTED);
    n.commit();
    let (s, v) = get(&outsider, record).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
}

#[tokio::test]
async fn the_node_signs_access_events_with_its_own_service_key() {
    let service = Keypair::from_seed(777);
    let n = common::node_with_service_key(&service);
    let ca = n.ca.clone();
    let issue = n.tx(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: medledger_types::CredentialSpec {
                subject: service.public(),
                role: Role::NodeService,
                institution: "h0".into(),
                display_name: "h0 node service".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + 1_000_000_000,
            },
        }),
    );
    assert_eq!(n.submit(&issue).await.0, StatusCode::ACCEPTED);
    n.commit();
    let held = held_record(&n).await;
    // A person at hospital h0 picks the admin key's next nonce, then the node logs a read.
    let admin = n.admins[0].clone();
    let mut d = [0u8; 32];
    d[0] = 9;
    let attest = n.tx(
        &admin,
        Operation::Identity(IdentityOp::Attest { digest: medledger_types::Hash(d), label: "admin's own".into() }),
    );
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The access event is the service key's, so the admin's transaction keeps its nonce.
    let event = v["access_event"].as_str().unwrap().to_string();
    let (s, v) = n.submit(&attest).await;
    assert_eq!(s, StatusCode::ACCEPTED, "the admin's nonce was not taken by the node: {v}");
    let block = n.commit();
    let logged = block
        .txs
        .iter()
        .find(|t| matches!(t.body().op, Operation::Audit(medledger_types::AuditOp::LogAccess { .. })))
        .expect("the access event's batch is in the block");
    let access = logged.id();
    assert_eq!(logged.body().signer, service.public());
    assert_eq!(n.call("GET", &format!("/v1/access-events/{event}"), None).await.0, StatusCode::OK);
    assert!(block.txs.iter().any(|t| t.id() == attest.id()));
    let (_, status) = n.call("GET", &format!("/v1/txs/{}", access.to_hex()), None).await;
    assert_eq!(status["receipt"]["outcome"]["status"], "applied", "{status}");
    // The service key may do nothing else.
    let other = n.tx(
        &service,
        Operation::Identity(IdentityOp::Attest { digest: medledger_types::Hash([8; 32]), label: "x".into() }),
    );
    let (s, v) = n.submit(&other).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
}

#[tokio::test]
async fn a_patients_audit_reads_only_as_many_events_as_it_returns() {
    let n = node_with(true);
    let held = held_record(&n).await;
    for _ in 0..5 {
        let (s, _) = read(&n, &held.doc, Purpose::Treatment, None).await;
        assert_eq!(s, StatusCode::OK);
        n.commit();
    }
    let q = AuditQuery { limit: 2, ..AuditQuery::default() };
    let (s, v) = audit(&n, &held.patient, q, "json").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let heights: Vec<u64> = v["events"].as_array().unwrap().iter().map(|e| e["height"].as_u64().unwrap()).collect();
    assert_eq!(heights.len(), 2);
    assert!(heights[0] > heights[1], "newest first: {heights:?}");
    assert_eq!(v["scanned"], 2, "the scan stops at the limit: {v}");
    // `truncated` is for a scan that hit its budget, not for a full answer.
    assert_eq!(v["truncated"], false, "{v}");
    // Without a limit below the count, everything comes back and nothing is left.
    let (_, all) = audit(&n, &held.patient, AuditQuery { limit: 100, ..AuditQuery::default() }, "json").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 5);
    assert_eq!(all["truncated"], false);
}

#[tokio::test]
async fn reads_are_logged_in_batches_not_one_transaction_each() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let mut ids = Vec::new();
    for _ in 0..100 {
        let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        ids.push(v["access_event"].as_str().unwrap().to_string());
    }
    assert_eq!(n.chain.mempool_len(), 0, "a read costs no transaction of its own");
    let block = n.commit();
    let batches: Vec<usize> = block
        .txs
        .iter()
        .filter_map(|t| match &t.body().op {
            Operation::Audit(medledger_types::AuditOp::LogAccess { events }) => Some(events.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![64, 36], "100 events in two transactions of at most 64");
    for id in &ids {
        let (s, v) = n.call("GET", &format!("/v1/access-events/{id}"), None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["outcome"], "served");
    }
    let (s, v) = n.call("GET", &format!("/v1/access-events/{}", "77".repeat(32)), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
}

#[tokio::test]
async fn an_answered_read_is_logged_even_if_the_holder_crashes_right_after() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let stranger = n.credential(84, Role::Doctor, T0 + 1_000_000_000).await;
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let served = v["access_event"].as_str().unwrap().to_string();
    let (s, v) = read(&n, &stranger, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    // Killed before any batch was sent: only the access journal has the two events.
    assert_eq!(n.chain.mempool_len(), 0);
    let n = n.crash_and_restart();
    assert_eq!(n.records.as_ref().unwrap().journal().unwrap().backlog(), 2, "both events are queued again");
    n.commit();
    let (s, v) = n.call("GET", &format!("/v1/access-events/{served}"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, all) = audit(&n, &held.patient, AuditQuery::default(), "json").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let outcomes: Vec<&str> =
        all["events"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["denied", "served"]);
    // Committed events are not queued again by a later restart; a batch re-sent anyway would
    // be skipped by the state machine.
    let n = n.crash_and_restart();
    assert!(n.records.as_ref().unwrap().journal().unwrap().is_idle());
}

#[tokio::test]
async fn a_patient_who_lost_their_key_is_recovered_and_reads_their_records_with_the_new_one() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let pid = medledger_types::Hash([70; 32]);
    // The patient's device is lost. A new device makes a key and proves possession; the
    // patient's institution (h0) recovers them to it.
    let new_key = Keypair::from_seed(7070);
    let msg = medledger_types::identity::rotation_message("api-test", &pid, &held.patient.public(), &new_key.public());
    let proof = new_key.sign(medledger_types::hash::domain::KEY_ROTATION_SIGNATURE, &msg);
    let admin = n.admins[0].clone();
    ok_tx(
        &n,
        &admin,
        Operation::Identity(IdentityOp::RotatePatientKey { pseudonym: pid, new_key: new_key.public(), proof }),
    )
    .await;
    n.commit();
    let (_, v) = n.call("GET", &format!("/v1/patients/{}", pid.to_hex()), None).await;
    assert_eq!(v["key"], new_key.public().to_hex(), "{v}");
    // The lost key can no longer read.
    let (s, v) = read(&n, &held.patient, Purpose::Treatment, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "credential_revoked"), "{v}");
    // Nothing was wrapped for the new key at upload; the holder wraps its own copy for it on
    // the patient's first read, and the new key opens the record.
    let vault_has_new_key = |n: &Node| {
        let svc = n.records.as_ref().unwrap();
        svc.vault.get(&REC, 1, &new_key.public()).is_ok()
    };
    assert!(!vault_has_new_key(&n));
    let (s, v) = read(&n, &new_key, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(decrypt(&v, &new_key).unwrap(), held.fhir);
    assert!(decrypt(&v, &held.patient).is_err(), "the answer is wrapped for the new key only");
    assert!(vault_has_new_key(&n), "the re-wrapped key is kept");
    // The doctor's consent, keyed by the pseudonym, still holds.
    let (s, v) = read(&n, &held.doc, Purpose::Treatment, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Serves `n`'s API over TLS on a loopback port, with a certificate from `n`'s CA (for
/// 127.0.0.1 and localhost); returns the address, the server task and a client configuration
/// that trusts that CA.
async fn serve_tls(
    n: &Node,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
    std::sync::Arc<medledger_tls::rustls::ClientConfig>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) =
        medledger_tls::node_certificate(&n.ca, "api-test", "h0", &["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.path().join("tls.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key).unwrap();
    let server = medledger_tls::server_config(&dir.path().join("tls.pem"), &dir.path().join("tls.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(medledger_node::tls::serve(listener, n.router.clone(), server));
    let client =
        medledger_tls::client_config_from_pem(medledger_tls::ca_certificate(&n.ca, "api-test").unwrap().as_bytes())
            .unwrap();
    (addr, served, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_tls_answers_only_clients_that_trust_the_consortium_ca() {
    let n = node_with(true);
    let (addr, served, ours) = serve_tls(&n).await;
    let theirs = medledger_tls::client_config_from_pem(
        medledger_tls::ca_certificate(&Keypair::from_seed(4242), "api-test").unwrap().as_bytes(),
    )
    .unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        let get = |agent: ureq::Agent, url: String| match agent.get(&url).call() {
            Ok(r) => Ok(r.into_string().unwrap()),
            Err(e) => Err(e.to_string()),
        };
        let https = format!("https://{addr}/v1/status");
        (
            get(ureq::AgentBuilder::new().tls_config(ours).build(), https.clone()),
            get(ureq::AgentBuilder::new().tls_config(theirs).build(), https),
            get(ureq::AgentBuilder::new().build(), format!("http://{addr}/v1/status")),
        )
    })
    .await
    .unwrap();
    let (trusted, other_ca, plain) = answers;
    assert!(trusted.unwrap().contains("api-test"), "a client trusting the consortium CA is served");
    assert!(other_ca.unwrap_err().contains("certificate"), "a certificate from another CA is refused");
    assert!(plain.is_err(), "plain HTTP gets no answer from a TLS node");
    served.abort();
}

#[tokio::test]
async fn proof_routes_decide_visibility_before_proving_and_prove_only_certified_state() {
    let n = node();
    let far = T0 + 10_000_000_000;
    let patient = n.credential(41, Role::Patient, far).await;
    let researcher = n.credential(42, Role::Researcher, far).await;
    let pseudonym = medledger_types::Hash([41; 32]);
    // Another patient's consents are refused before anything is proven (a researcher may see
    // the patient's key, to seal a request's reason for it, but not whom the patient consents to).
    let path = format!("/v1/proofs/patients/{}/consents", pseudonym.to_hex());
    let (s, b) = n.call_as(Some(&researcher), "GET", &path, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {b}");
    assert_eq!(b["error"]["code"], "not_permitted");
    let (s, b) = n.call_as(Some(&researcher), "GET", "/v1/proofs/patients/zz", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_argument")), "{b}");
    let unknown = medledger_types::Hash([9; 32]).to_hex();
    let (s, _) = n.call_as(Some(&patient), "GET", &format!("/v1/proofs/patients/{unknown}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The patient may see its own key; this harness commits blocks without finalization
    // certificates, so the state is not provable yet: a clear 503, never an unproven answer.
    let (s, b) = n.call_as(Some(&patient), "GET", &format!("/v1/proofs/patients/{}", pseudonym.to_hex()), None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_yet_certified")), "{b}");
    let (s, _) = n.call_as(None, "GET", "/v1/proofs/validators", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "proofs are signed reads like any other");
}

/// `finalize` commits the store before it publishes the new tip. A block verified in that gap
/// (a sibling of the block being finalized) used to execute on the newer state, find the older
/// state tree pruned, and stop the validator with a panic. Now it waits for the tip.
#[test]
fn verification_in_the_gap_between_commit_and_tip_waits_instead_of_stopping_the_validator() {
    use medledger_node::chain::VerifyLater;
    let n = node();
    n.commit();
    let tip = n.chain.tip();
    let parent = n.chain.store.block(tip.height).unwrap().unwrap();
    n.clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    let next = n.chain.build(&parent).unwrap();
    let env = |ts| medledger_state::BlockEnv {
        chain_id: "api-test".into(),
        height: next.height(),
        timestamp_ms: ts,
        proposer: next.header.proposer,
    };
    let snap = n.chain.store.snapshot().unwrap();
    let executed = medledger_state::execute_block(&snap, &env(next.header.timestamp_ms), &next.txs);
    // A sibling at the same height, on the same parent: another proposer's block for the view.
    let ts = next.header.timestamp_ms + 1;
    let sibling_root = medledger_state::execute_block(&snap, &env(ts), &[]).state_root;
    let sibling =
        medledger_types::Block::new(next.height(), parent.digest(), ts, next.header.proposer, sibling_root, vec![]);
    drop(snap);
    // The gap: the store holds the next block, the tip does not name it yet.
    n.chain.store.commit_block(&next, None, &executed.writes, &executed.receipts).unwrap();
    assert_eq!(n.chain.tip(), tip);
    let verdict = n.chain.verify(&parent, &sibling, &next.header.proposer);
    assert_eq!(verdict, Err(VerifyLater::UnknownParent), "the sibling is judged later, once the tip moves");
    assert!(n.chain.build(&parent).is_none(), "no proposal on a state the tip does not name");
}

/// `finalize` keeps a block's speculative state until the tip names it. It used to drop it
/// before the commit: a child proposed while the commit ran then found its parent unknown (not
/// speculative, not the tip), and consensus executed the parent a second time to catch up.
#[test]
fn a_child_verified_while_its_parent_commits_is_judged_at_once_on_the_parents_state() {
    let n = node();
    n.commit();
    let parent = n.chain.store.block(n.chain.tip().height).unwrap().unwrap();
    n.clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    let next = n.chain.build(&parent).unwrap();
    n.clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    // A child this node has not seen (not kept as speculative), as another leader proposes it.
    let now = n.clock.load(std::sync::atomic::Ordering::SeqCst);
    let child = n.chain.block_on(&next, now, vec![]).unwrap();
    // The commit of `next` stalls just before the store, as a long commit would.
    let (reached_tx, reached) = std::sync::mpsc::channel::<()>();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    // A `Receiver` is not `Sync`, as a fault hook must be: it waits behind a lock.
    let release_rx = std::sync::Mutex::new(release_rx);
    let stall: medledger_node::chain::CommitFault = Box::new(move |_| {
        let _ = reached_tx.send(());
        let _ = release_rx.lock().map(|rx| rx.recv());
    });
    assert!(n.chain.commit_fault.set(stall).is_ok());
    let executed = || n.chain.metrics.executed_blocks.load(std::sync::atomic::Ordering::Relaxed);
    let before = executed();
    let finalizing = {
        let (chain, next) = (n.chain.clone(), next.clone());
        std::thread::spawn(move || chain.finalize(next, None))
    };
    reached.recv_timeout(std::time::Duration::from_secs(30)).expect("finalize reaches the commit");
    assert_eq!(n.chain.tip().hash, parent.digest(), "the tip moves only after the commit");
    assert_eq!(executed(), before, "finalize reused `next`'s kept execution");
    assert_eq!(n.chain.verify(&next, &child, &child.header.proposer), Ok(true), "judged on `next`'s kept state");
    release.send(()).unwrap();
    finalizing.join().unwrap().unwrap();
    assert_eq!(executed(), before + 1, "the child was executed once, and `next` not again");
    assert_eq!(n.chain.tip().hash, next.digest());
    assert!(n.chain.knows(&child.digest()), "the child's state is kept, built on the committed tip");
}

/// One HTTP/1.1 response from `r`: its status and body (`Content-Length` framing, as the API
/// answers).
fn read_response(r: &mut impl std::io::Read) -> std::io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_before_its_body_is_read_leaves_the_connection_usable() {
    use std::io::Write as _;
    let n = node();
    let (addr, served, client) = serve_tls(&n).await;
    let answers = tokio::task::spawn_blocking(move || {
        use medledger_tls::rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let conn = ClientConnection::new(client, ServerName::try_from("127.0.0.1").unwrap().to_owned()).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut answers = Vec::new();
        // Refused before the body is read: a wrong media type, a body above the route's limit.
        let over = medledger_types::limits::MAX_TX_BODY_BYTES + 1;
        for (path, ctype, len) in [("/v1/care/readings", "text/plain", 12_000), ("/v1/txs", "application/json", over)] {
            let body = vec![b'0'; len];
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\n\r\n"
            );
            tls.write_all(head.as_bytes()).and_then(|_| tls.write_all(&body)).unwrap();
            answers.push(read_response(&mut tls).map_err(|e| e.to_string()));
        }
        // The same connection still answers.
        tls.write_all(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        answers.push(read_response(&mut tls).map_err(|e| e.to_string()));
        answers
    })
    .await
    .unwrap();
    let (media, oversize) = (answers[0].clone().unwrap(), answers[1].clone().unwrap());
    assert_eq!(media.0, 415, "{media:?}");
    assert!(media.1.contains("unsupported_media_type"), "{media:?}");
    assert_eq!(oversize.0, 413, "{oversize:?}");
    assert!(oversize.1.contains("oversize"), "{oversize:?}");
    let status = answers[2].clone().expect("the connection is still open after the refusals");
    assert_eq!(status.0, 200, "{status:?}");
    served.abort();
}

/// Once the store found damaged state, the validator gives no verdict (at once: "unknown
/// parent" would send consensus catching up and asking again, in a loop), proposes nothing,
/// commits nothing (the block it had verified stays uncommitted), admits no transaction, and
/// its API answers every request with the fault.
#[tokio::test]
async fn a_faulted_store_gives_no_verdict_no_proposal_no_commit_and_answers_with_the_fault() {
    use medledger_node::chain::VerifyLater;
    let n = node();
    n.commit();
    let tip = n.chain.tip();
    let parent = n.chain.store.block(tip.height).unwrap().unwrap();
    n.clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    let next = n.chain.build(&parent).expect("a healthy node proposes");
    assert_eq!(n.chain.verify(&parent, &next, &next.header.proposer), Ok(true));
    let (s, _) = n.call("GET", "/v1/status", None).await;
    assert_eq!(s, StatusCode::OK);

    let tx = n.tx(
        &n.ca,
        Operation::Identity(IdentityOp::Attest { digest: medledger_types::Hash([7; 32]), label: "x".into() }),
    );
    n.chain.store.inject_fault("stored credential does not decode (test)");
    assert!(n.chain.build(&parent).is_none());
    match n.chain.verify(&parent, &next, &next.header.proposer) {
        Err(VerifyLater::StoreFault(f)) => assert!(f.contains("(test)"), "{f}"),
        other => panic!("a verdict over damaged state: {other:?}"),
    }
    let err = n.chain.finalize(next.clone(), None).unwrap_err().to_string();
    assert!(err.contains("stored data is corrupt") && err.contains("(test)"), "{err}");
    assert_eq!(n.chain.tip(), tip);
    assert_eq!(n.chain.store.tip().unwrap().unwrap().height, tip.height, "nothing committed");
    let pending = n.chain.mempool_len();
    assert!(n.chain.submit(vec![tx]).remove(0).is_err());
    assert_eq!(n.chain.mempool_len(), pending, "nothing admitted");
    for path in ["/v1/status", "/v1/drugs/verify?id=%2801%2910614141073464%2821%29A1"] {
        let (s, b) = n.call("GET", path, None).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {b}");
        let msg = b["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("stored state is corrupt") && msg.contains("(test)"), "{path}: {b}");
    }
}
