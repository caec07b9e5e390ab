//! The care API on a real store: who sees a referral, an institution's inbox and outbox, a
//! patient's list and the statistics; bad queries get specific errors.

mod common;

use axum::http::StatusCode;
use common::records::*;
use common::*;
use medledger_types::care::CareOp;
use medledger_types::{CredentialSpec, Hash, IdentityOp, Keypair, Operation, Role};

async fn staff(n: &Node, seed: u64, role: Role, institution: &str) -> Keypair {
    let k = Keypair::from_seed(seed);
    let spec = CredentialSpec {
        subject: k.public(),
        role,
        institution: institution.into(),
        display_name: format!("{} {seed}", role.name()),
        valid_from_ms: T0,
        valid_until_ms: T0 + 1_000_000_000,
    };
    ok_tx(n, &n.ca, Operation::Identity(IdentityOp::IssueCredential { spec })).await;
    n.commit();
    k
}

#[tokio::test]
async fn referrals_are_shown_to_their_parties_only() {
    let n = node_with(true);
    let held = held_record(&n).await;
    let pid = Hash([70; 32]);
    let receiving = staff(&n, 81, Role::Doctor, "h1").await;
    let stranger = staff(&n, 82, Role::Doctor, "h2").await;
    let regulator = staff(&n, 83, Role::Regulator, "h3").await;
    let id = Hash([0x5A; 32]);
    let propose = CareOp::ProposeReferral {
        referral_id: id,
        patient: pid,
        doctor: held.doc.public(),
        to: "h1".into(),
        specialty: "cardiology".into(),
        records: vec![REC],
    };
    ok_tx(&n, &held.doc, Operation::Care(propose)).await;
    n.commit();
    let path = format!("/v1/care/referrals/{}", id.to_hex());
    // Before the patient approves, the receiving institution does not see it.
    let (s, v) = n.call_as(Some(&receiving), "GET", &path, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    ok_tx(&n, &held.patient, Operation::Care(CareOp::ApproveReferral { referral_id: id })).await;
    n.commit();

    for (who, k) in [
        ("patient", &held.patient),
        ("treating doctor", &held.doc),
        ("receiving staff", &receiving),
        ("regulator", &regulator),
    ] {
        let (s, v) = n.call_as(Some(k), "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{who}: {v}");
        assert_eq!(v["status"], "requested", "{who}");
        assert!(v["awaiting"].is_null(), "{who}: {v}");
    }
    let (s, v) = n.call_as(Some(&stranger), "GET", &path, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    let (s, _) = n.call_as(None, "GET", &path, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Lists: filtered to what the caller may see, or refused for another institution.
    let patient_list = format!("/v1/care/patients/{}/referrals", pid.to_hex());
    let (_, v) = n.call_as(Some(&held.patient), "GET", &patient_list, None).await;
    assert_eq!(v["referrals"].as_array().unwrap().len(), 1);
    let (s, v) = n.call_as(Some(&stranger), "GET", &patient_list, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["referrals"].as_array().unwrap().is_empty(), "a stranger sees none of the patient's referrals: {v}");
    let (_, v) = n.call_as(Some(&receiving), "GET", "/v1/care/institutions/h1/referrals?box=inbox", None).await;
    assert_eq!(v["referrals"][0]["id"], id.to_hex());
    let (_, v) = n.call_as(Some(&held.doc), "GET", "/v1/care/institutions/h0/referrals?box=outbox", None).await;
    assert_eq!(v["referrals"][0]["id"], id.to_hex());
    let (s, v) = n.call_as(Some(&stranger), "GET", "/v1/care/institutions/h1/referrals?box=inbox", None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"));
    let (s, v) = n.call_as(Some(&receiving), "GET", "/v1/care/institutions/h1/referrals?box=sideways", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = n.call_as(Some(&receiving), "GET", "/v1/care/institutions/nowhere/referrals?box=inbox", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = n
        .call_as(Some(&held.doc), "GET", &format!("/v1/care/doctors/{}/referrals", held.doc.public().to_hex()), None)
        .await;
    assert_eq!(v["referrals"].as_array().unwrap().len(), 1);

    // Statistics: regulators (and admins) only, and no patient in them.
    let (s, v) = n.call_as(Some(&held.doc), "GET", "/v1/care/stats", None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"));
    let (s, v) = n.call_as(Some(&regulator), "GET", "/v1/care/stats", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((v["pairs"][0]["from"].as_str(), v["pairs"][0]["requested"].as_u64()), (Some("h0"), Some(1)));
    assert!(!v.to_string().contains(&pid.to_hex()));

    // Monitoring: the patient, the patient's institution and regulators; nobody else.
    let monitoring = format!("/v1/care/patients/{}/monitoring", pid.to_hex());
    let alarms = format!("/v1/care/patients/{}/alarms", pid.to_hex());
    for (who, k, expect) in [
        ("patient", &held.patient, StatusCode::OK),
        ("doctor of the patient's institution", &held.doc, StatusCode::OK),
        ("regulator", &regulator, StatusCode::OK),
        ("stranger", &stranger, StatusCode::FORBIDDEN),
    ] {
        for path in [&monitoring, &alarms] {
            let (s, v) = n.call_as(Some(k), "GET", path, None).await;
            assert_eq!(s, expect, "{who} {path}: {v}");
        }
    }
    let (_, v) = n.call_as(Some(&held.patient), "GET", &monitoring, None).await;
    assert!(v["devices"].as_array().unwrap().is_empty() && v["monitoring"].is_null(), "{v}");
    let doctor_alarms = format!("/v1/care/doctors/{}/alarms", held.doc.public().to_hex());
    let (s, _) = n.call_as(Some(&held.doc), "GET", &doctor_alarms, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = n.call_as(Some(&stranger), "GET", &doctor_alarms, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"));
    let (s, _) =
        n.call_as(Some(&regulator), "GET", &format!("/v1/care/patients/{}/alarms", "77".repeat(32)), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Proofs follow the same rule.
    let proof = format!("/v1/proofs/care/referrals/{}", id.to_hex());
    let (s, _) = n.call_as(Some(&stranger), "GET", &proof, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
