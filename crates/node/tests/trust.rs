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

/// Access events waiting to be proposed: what a read has written towards the chain.
fn pending(n: &Node) -> usize {
    n.chain.mempool_len()
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
