//! The REST API against a real node core (store, mempool, execution), blocks committed directly:
//! the bad-input suite (every rejection before the mempool has a specific error) and the read
//! endpoints.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt as _;
use medledger_state::permissions::{allowed, Principal};
use medledger_types::{AuditOp, ConsentOp, IdentityOp, RecordsOp};
use medledger_types::{CredentialSpec, Hash, Keypair, OpKind, Operation, Role, Transaction, Tx};
use serde_json::json;
use std::sync::atomic::Ordering;
use tower::ServiceExt as _;

fn terms(grantee: medledger_types::PublicKey) -> medledger_types::ConsentTerms {
    medledger_types::ConsentTerms {
        grantee: medledger_types::Grantee::Person(grantee),
        actions: medledger_types::action::READ,
        scope: medledger_types::Scope::All,
        purpose: medledger_types::Purpose::Treatment,
        expires_ms: None,
        roles: vec![],
    }
}

fn attest(n: u8) -> Operation {
    Operation::Identity(IdentityOp::Attest { digest: Hash([n; 32]), label: "x".into() })
}

#[tokio::test]
async fn bad_inputs_get_specific_errors_and_change_nothing() {
    let n = node();
    let admin = n.admins[0].clone();
    let good = n.tx(&admin, attest(1));

    // Malformed bytes, non-hex, bad JSON.
    let (s, v) = n.submit_raw(&[1, 2, 3]).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    let (s, v) = n.call("POST", "/v1/txs", Some(json!({ "tx": "zz" }))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    let (s, v) = n.call("POST", "/v1/txs", Some(json!({ "nope": 1 }))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    // Oversize.
    let (s, v) = n.submit_raw(&vec![0u8; medledger_types::tx::limits::MAX_TX_BYTES + 1]).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "oversize"));
    // Wrong chain id.
    let wrong =
        Tx::sign(Transaction { chain_id: "other".into(), signer: admin.public(), nonce: 0, op: attest(2) }, &admin);
    let (s, v) = n.submit(&wrong).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "wrong_chain"));
    // Bad signature: flip a bit of the signature.
    let mut raw = good.raw().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let (s, v) = n.submit_raw(&raw).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_signature"));
    // Unknown signer.
    let stranger = Keypair::from_seed(999);
    let (s, v) = n.submit(&n.tx(&stranger, attest(3))).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "unknown_signer"));
    // Nothing above reached the mempool.
    assert_eq!(n.chain.mempool_len(), 0);

    // The good one is accepted; submitting it again is a duplicate; after commit it is a replay.
    assert_eq!(n.submit(&good).await.0, StatusCode::ACCEPTED);
    let (s, v) = n.submit(&good).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "duplicate"));
    n.commit();
    let (s, v) = n.submit(&good).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "replay"));
    let (s, v) = n.call("GET", &format!("/v1/txs/{}", good.id().to_hex()), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "committed");
    assert_eq!(v["receipt"]["outcome"]["status"], "applied");
}

#[tokio::test]
async fn expired_and_revoked_credentials_are_refused() {
    let n = node();
    let short = n.credential(50, Role::Doctor, T0 + 5_000).await;
    let doc = n.credential(51, Role::Doctor, T0 + 10_000_000).await;
    n.clock.fetch_add(10_000, Ordering::SeqCst);
    let (s, v) = n.submit(&n.tx(&short, attest(5))).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "credential_expired"));
    let revoke = n.tx(
        &n.ca,
        Operation::Identity(IdentityOp::RevokeCredential { subject: doc.public(), reason: "left the hospital".into() }),
    );
    assert_eq!(n.submit(&revoke).await.0, StatusCode::ACCEPTED);
    n.commit();
    // Effective from the next block, which is what admission checks against.
    let (s, v) = n.submit(&n.tx(&doc, attest(6))).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "credential_revoked"));
    let (_, ident) = n.call("GET", &format!("/v1/identities/{}", doc.public().to_hex()), None).await;
    assert!(ident["problem"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn every_disallowed_cell_is_refused_at_the_api() {
    let n = node();
    let mut signers: Vec<(Principal, Keypair)> = vec![(Principal::Ca, n.ca.clone())];
    for (i, role) in Role::ALL.iter().enumerate() {
        let k = match role {
            Role::InstitutionAdmin => n.admins[1].clone(),
            r => n.credential(300 + i as u64, *r, T0 + 1_000_000_000).await,
        };
        signers.push((Principal::Role(*role), k));
    }
    let victim = Keypair::from_seed(300 + 1).public();
    let mut refused = 0;
    for (p, k) in &signers {
        for (j, kind) in OpKind::ALL.iter().enumerate() {
            if allowed(*p, *kind) {
                continue;
            }
            let op = match kind {
                OpKind::AddInstitution => {
                    Operation::Identity(IdentityOp::AddInstitution { id: "x".into(), name: "X".into() })
                }
                OpKind::IssueCredential => Operation::Identity(IdentityOp::IssueCredential {
                    spec: CredentialSpec {
                        subject: Keypair::from_seed(777).public(),
                        role: Role::Doctor,
                        institution: "h0".into(),
                        display_name: "X".into(),
                        valid_from_ms: T0,
                        valid_until_ms: T0 + 1_000_000,
                    },
                }),
                OpKind::RevokeCredential => {
                    Operation::Identity(IdentityOp::RevokeCredential { subject: victim, reason: "r".into() })
                }
                OpKind::RegisterPatient => Operation::Identity(IdentityOp::RegisterPatient {
                    subject: Keypair::from_seed(778).public(),
                    pseudonym: Hash([9; 32]),
                    valid_until_ms: T0 + 1_000_000,
                }),
                OpKind::Attest => attest(100 + j as u8),
                OpKind::RotatePatientKey => Operation::Identity(IdentityOp::RotatePatientKey {
                    pseudonym: Hash([1; 32]),
                    new_key: Keypair::from_seed(9000 + j as u64).public(),
                    proof: medledger_types::Signature([0; 64]),
                }),
                OpKind::SetRegion => Operation::Identity(IdentityOp::SetRegion {
                    institution: "h0".into(),
                    region: format!("region-{j}"),
                }),
                OpKind::GrantConsent => Operation::Consent(ConsentOp::GrantConsent {
                    consent_id: Hash([j as u8; 32]),
                    terms: terms(victim),
                }),
                OpKind::RevokeConsent => {
                    Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([j as u8; 32]) })
                }
                OpKind::RequestAccess => Operation::Consent(ConsentOp::RequestAccess {
                    request_id: Hash([j as u8; 32]),
                    patient: Hash([1; 32]),
                    terms: terms(victim),
                    reason: Default::default(),
                }),
                OpKind::RespondAccess => {
                    Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([j as u8; 32]), approve: false })
                }
                OpKind::AnchorRecord => Operation::Records(RecordsOp::AnchorRecord {
                    record_id: Hash([j as u8; 32]),
                    version: 1,
                    patient: Hash([1; 32]),
                    resource_type: "Observation".into(),
                    content_hash: Hash([2; 32]),
                    locator: "vault://x".into(),
                }),
                OpKind::ReviewAmendment => Operation::Records(RecordsOp::ReviewAmendment {
                    record_id: Hash([j as u8; 32]),
                    version: 2,
                    accept: true,
                }),
                OpKind::LogAccess => Operation::Audit(AuditOp::LogAccess {
                    events: vec![medledger_types::audit::AccessNote {
                        request_id: Hash([j as u8; 32]),
                        record_id: Hash([j as u8; 32]),
                        version: 1,
                        requester: victim,
                        purpose: medledger_types::Purpose::Treatment,
                        outcome: medledger_types::AccessOutcome::Denied,
                        reason: Default::default(),
                    }],
                }),
                OpKind::RequestErasure => {
                    Operation::Records(RecordsOp::RequestErasure { record_id: Hash([j as u8; 32]) })
                }
                OpKind::ConfirmErasure => {
                    Operation::Records(RecordsOp::ConfirmErasure { record_id: Hash([j as u8; 32]) })
                }
                later => medledger_types::DrugsOp::example(*later, j as u8, T0)
                    .map(Operation::Drugs)
                    .or_else(|| medledger_types::CareOp::example(*later, j as u8, T0).map(Operation::Care))
                    .unwrap_or_else(|| panic!("{} has no example", later.name())),
            };
            let (s, v) = n.submit(&n.tx(k, op)).await;
            assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{} × {}", p.name(), kind.name());
            refused += 1;
        }
    }
    assert!(refused >= 30);
    assert_eq!(n.chain.mempool_len(), 0);
}

#[tokio::test]
async fn read_endpoints_and_proofs() {
    let n = node();
    let admin = n.admins[0].clone();
    let txs: Vec<Tx> = (0..5u64).map(|i| n.tx_n(&admin, i, attest(40 + i as u8))).collect();
    let (s, v) = n
        .call(
            "POST",
            "/v1/txs/batch",
            Some(json!({ "txs": txs.iter().map(|t| hex::encode(t.raw())).collect::<Vec<_>>() })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["accepted"], 5);
    let (_, pending) = n.call("GET", &format!("/v1/txs/{}", txs[0].id().to_hex()), None).await;
    assert_eq!(pending["status"], "pending");
    let block = n.commit();
    assert_eq!(block.txs.len(), 5);

    let (s, b) = n.call("GET", &format!("/v1/blocks/{}", block.height()), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["hash"], block.digest().to_hex());
    let (_, by_hash) = n.call("GET", &format!("/v1/blocks/by-hash/{}", block.digest().to_hex()), None).await;
    assert_eq!(by_hash["header"]["height"], block.height());
    let (s, v) = n.call("GET", "/v1/blocks/99999", None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = n.call("GET", "/v1/blocks/abc", None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let (s, v) = n.call("GET", "/v1/txs/00", None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"));

    // No certificate in this harness: the proof endpoint says so instead of inventing one.
    let (s, v) = n.call("GET", &format!("/v1/txs/{}/proof", txs[2].id().to_hex()), None).await;
    assert_eq!((s, code(&v)), (StatusCode::SERVICE_UNAVAILABLE, "not_yet_certified"));

    let (s, st) = n.call("GET", "/v1/status", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["height"], block.height());
    assert_eq!(st["validators"].as_array().unwrap().len(), 4);
    let (_, att) = n.call("GET", &format!("/v1/attestations/{}", Hash([42; 32]).to_hex()), None).await;
    assert_eq!(att["attester"], admin.public().to_hex());

    // The OpenAPI document lists every route the router serves.
    let (_, doc) = n.call("GET", "/openapi.json", None).await;
    for path in [
        "/v1/txs",
        "/v1/txs/batch",
        "/v1/txs/{id}",
        "/v1/txs/{id}/proof",
        "/v1/blocks",
        "/v1/blocks/{height}",
        "/v1/blocks/by-hash/{hash}",
        "/v1/identities/{key}",
        "/v1/patients/{pseudonym}",
        "/v1/attestations/{digest}",
        "/v1/permissions",
        "/v1/status",
        "/v1/events/blocks",
        "/metrics",
        "/v1/records",
        "/v1/records/read",
        "/v1/records/{id}",
        "/v1/records/{id}/{version}/keys",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    let req = Request::builder().uri("/metrics").body(Body::empty()).unwrap();
    let resp = n.router.clone().oneshot(req).await.unwrap();
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains(&format!("medledger_height {}", block.height())));
    assert!(text.contains("medledger_committed_transactions_total 5"));
    // Each block was executed once, when built: finalizing it reused that execution.
    let committed = n.chain.metrics.committed_blocks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(committed > 0);
    assert!(text.contains(&format!("medledger_executed_blocks_total {committed}\n")), "{text}");
}

/// The OpenAPI document is the contract: typed schemas only, hex fields with their patterns,
/// one tag per namespace, and every error status documented with the error body.
#[tokio::test]
async fn openapi_document_is_typed_tagged_and_complete() {
    let n = node();
    let (_, doc) = n.call("GET", "/openapi.json", None).await;
    // No untyped object anywhere.
    fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("type").and_then(|t| t.as_str()) == Some("object")
                    && !["properties", "additionalProperties", "allOf", "oneOf", "anyOf"]
                        .iter()
                        .any(|k| m.contains_key(*k))
                {
                    bad.push(path.to_string());
                }
                for (k, x) in m {
                    walk(x, &format!("{path}/{k}"), bad);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}/{i}"), bad);
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(&doc, "", &mut bad);
    assert!(bad.is_empty(), "untyped objects at {bad:?}");
    // Hex newtypes state their pattern.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Hash"]["pattern"], "^[0-9a-fA-F]{64}$");
    assert_eq!(schemas["PublicKey"]["pattern"], "^[0-9a-fA-F]{64}$");
    assert_eq!(schemas["SignedRead"]["properties"]["signature"]["pattern"], "^[0-9a-fA-F]{128}$");
    // Every operation has exactly one tag, a known namespace, and documents 400 with the error body
    // (except the few that cannot fail).
    let tags: Vec<&str> = doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tags, ["ledger", "identity", "consent", "records", "audit", "drugs", "care", "proofs"]);
    let infallible = ["/v1/permissions", "/v1/status", "/v1/events/blocks", "/metrics"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let t = op["tags"].as_array().unwrap();
            assert_eq!(t.len(), 1, "{method} {path}");
            assert!(tags.contains(&t[0].as_str().unwrap()), "{method} {path}");
            if !infallible.contains(&path.as_str()) {
                let r = &op["responses"]["400"];
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }
    // Query parameters are in the query, with their bounds.
    let params = doc["paths"]["/v1/blocks"]["get"]["parameters"].as_array().unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!((limit["in"].as_str(), limit["schema"]["maximum"].as_u64()), (Some("query"), Some(100)));
}

/// Extractor rejections are API errors with the JSON body, not axum's plain text.
#[tokio::test]
async fn rejections_are_json_errors_with_registry_codes() {
    let n = node();
    let (s, v) = n.call("GET", "/v1/blocks?limit=101", None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let (s, v) = n.call("GET", "/v1/blocks?limit=9223372036854775808", None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let (s, v) = n.call("POST", "/v1/records/read", Some(json!({ "request": 5 }))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    let (s, v) = n.call("POST", "/v1/txs/batch", Some(json!({ "txs": ["zz"] }))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
    assert!(v["error"]["message"].as_str().unwrap().contains("txs[0]"));
    let (s, v) = n.call("POST", "/v1/audit", Some(json!({ "query": "00", "signature": "00", "format": "xml" }))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed"));
}

#[tokio::test]
async fn each_route_has_its_own_body_limit() {
    use medledger_types::limits::{
        MAX_BATCH_BODY_BYTES, MAX_SIGNED_REQUEST_BODY_BYTES, MAX_TX_BODY_BYTES, MAX_UPLOAD_BODY_BYTES,
    };
    let n = node_with(true);
    let filler = |bytes: usize| json!({ "pad": "x".repeat(bytes) });
    let keys_route = format!("/v1/records/{}/1/keys", "ab".repeat(32));
    for (route, limit) in [
        ("/v1/txs", MAX_TX_BODY_BYTES),
        ("/v1/records/read", MAX_SIGNED_REQUEST_BODY_BYTES),
        ("/v1/audit", MAX_SIGNED_REQUEST_BODY_BYTES),
        (keys_route.as_str(), MAX_SIGNED_REQUEST_BODY_BYTES),
        ("/v1/records", MAX_UPLOAD_BODY_BYTES),
    ] {
        // Just over the route's limit: refused before the handler runs.
        let (s, v) = n.call("POST", route, Some(filler(limit))).await;
        assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "oversize"), "{route}");
        // Under it: the handler runs and judges the (wrong) body.
        let (s, v) = n.call("POST", route, Some(filler(limit / 2))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{route}: {v}");
    }
    // The limits are ordered as their contents are.
    const { assert!(MAX_SIGNED_REQUEST_BODY_BYTES < MAX_TX_BODY_BYTES) };
    const { assert!(MAX_TX_BODY_BYTES < MAX_UPLOAD_BODY_BYTES && MAX_UPLOAD_BODY_BYTES < MAX_BATCH_BODY_BYTES) };
}
