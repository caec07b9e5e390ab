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
        specialty: "394579002".into(),
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
    assert_eq!(
        (v["regions"][0]["from"].as_str(), v["regions"][0]["requested"].as_u64()),
        (Some("unassigned"), Some(1))
    );
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

/// Every file under `dir`, with its bytes (to check a refusal wrote nothing).
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

async fn send(n: &Node, device: &Keypair, obs: &str) -> (StatusCode, serde_json::Value) {
    let sig = device.sign(
        medledger_types::hash::domain::READING_SIGNATURE,
        &medledger_types::care::vitals::reading_message("api-test", obs.as_bytes()),
    );
    let body = serde_json::json!({ "device_key": device.public().to_hex(), "observation": obs, "signature": hex::encode(sig.0) });
    n.call_as(None, "POST", "/v1/care/readings", Some(body)).await
}

/// A patient (70) monitored by a doctor (60) under the rule `pulse > 130`, with a device (key
/// seed 91, id 0xDE…) registered at h0, whose node signs with `service`.
struct Monitored {
    doc: Keypair,
    patient: Keypair,
    pid: Hash,
    device: Keypair,
    device_id: Hash,
}

async fn monitored(n: &Node, service: &Keypair) -> Monitored {
    use medledger_types::care::RuleText;
    staff_key(n, service, Role::NodeService, "h0").await;
    let doc = n.credential(60, Role::Doctor, T0 + 1_000_000_000).await;
    let patient = n.credential(70, Role::Patient, T0 + 1_000_000_000).await;
    let pid = Hash([70; 32]);
    let device = Keypair::from_seed(91);
    let device_id = Hash([0xDE; 32]);
    ok_tx(
        n,
        &doc,
        Operation::Care(CareOp::RegisterDevice {
            device_id,
            patient: pid,
            key: device.public(),
            model: "wrist pulse oximeter".into(),
        }),
    )
    .await;
    n.commit();
    ok_tx(
        n,
        &doc,
        Operation::Care(CareOp::SetMonitoring {
            patient: pid,
            spo2_scale: 1,
            rules: vec![RuleText("pulse > 130".into())],
            escalate_after_ms: 60_000,
        }),
    )
    .await;
    n.commit();
    Monitored { doc, patient, pid, device, device_id }
}

#[tokio::test]
async fn readings_acknowledged_before_a_crash_are_anchored_after_the_restart() {
    use medledger_state::care::monitoring::anchor;
    use medledger_types::care::vitals::{observation_json, Vital};
    use medledger_types::merkle::root;
    use std::sync::atomic::Ordering;
    let service = Keypair::from_seed(90);
    let n = node_with_service_key(&service);
    let m = monitored(&n, &service).await;
    let now = |n: &Node| n.clock.load(Ordering::SeqCst);
    let digest = |v: &serde_json::Value| Hash::from_hex(v["digest"].as_str().unwrap()).unwrap().0;
    let reading = |at: u64| observation_json(&Vital::HeartRate(70.0 + (at % 10) as f64), at).to_string();
    let (mut sent, mut texts) = (Vec::new(), Vec::new());
    for back in [3_000, 2_000, 1_000] {
        let text = reading(now(&n) - back);
        let (s, v) = send(&n, &m.device, &text).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        sent.push(digest(&v));
        texts.push(text);
    }
    // The first anchor is on its way (in the mempool's log, not in a block) when two more
    // readings arrive; then the node crashes.
    n.clock.fetch_add(11_000, Ordering::SeqCst);
    n.records.as_ref().unwrap().monitor.tick(n.records.as_ref().unwrap());
    assert_eq!(n.chain.mempool_len(), 1);
    for back in [500, 400] {
        let text = reading(now(&n) - back);
        let (s, v) = send(&n, &m.device, &text).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        sent.push(digest(&v));
        texts.push(text);
    }
    let n = n.crash_and_restart_with_service_key(&service);
    let svc = n.records.clone().unwrap();
    // The anchor came back from the log; the two later readings from the vault.
    assert_eq!(n.chain.mempool_len(), 1);
    n.commit();
    n.clock.fetch_add(11_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let snap = n.chain.store.snapshot().unwrap();
    let (a0, a1) = (anchor(&snap, &m.device_id, 0).unwrap(), anchor(&snap, &m.device_id, 1).expect("recovered"));
    assert_eq!((a0.count, a0.root), (3, root(&sent[..3])), "the anchor sent before the crash");
    assert_eq!((a1.count, a1.root), (2, root(&sent[3..])), "the readings acknowledged after it");
    assert!(anchor(&snap, &m.device_id, 2).is_none(), "nothing anchored twice");
    // Resent after the restart (no key epoch in memory yet), each of them is a duplicate, and
    // the vault gets nothing: not even a new epoch key.
    let vault = tree(&n._dir.path().join("vault"));
    for text in &texts {
        let (s, v) = send(&n, &m.device, text).await;
        assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "duplicate"), "{v}");
    }
    assert_eq!(tree(&n._dir.path().join("vault")), vault, "a duplicate reached the vault");

    // A crash with readings not anchored at all: they are anchored after the restart.
    let (s, v) = send(&n, &m.device, &reading(now(&n) - 100)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let last = digest(&v);
    drop(svc);
    let n = n.crash_and_restart_with_service_key(&service);
    let svc = n.records.clone().unwrap();
    assert_eq!(n.chain.mempool_len(), 0);
    n.clock.fetch_add(11_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let a2 = anchor(&n.chain.store.snapshot().unwrap(), &m.device_id, 2).expect("recovered");
    assert_eq!((a2.count, a2.root), (1, root(&[last])));
}

#[tokio::test]
async fn readings_are_checked_before_the_vault_then_stored_anchored_and_scored() {
    use medledger_types::care::vitals::{observation_json, Vital};
    use std::sync::atomic::Ordering;
    let service = Keypair::from_seed(90);
    let n = node_with_service_key(&service);
    let svc = n.records.clone().unwrap();
    let Monitored { doc, patient, pid, device, device_id } = monitored(&n, &service).await;
    let now = || n.clock.load(Ordering::SeqCst);
    let obs = |v: Vital, at: u64| observation_json(&v, at).to_string();
    let vault_dir = n._dir.path().join("vault");

    // Each refusal names its rule and writes nothing to the vault.
    let before = tree(&vault_dir);
    let stranger = Keypair::from_seed(92);
    let good = obs(Vital::HeartRate(72.0), now() - 1_000);
    let forged = {
        let sig = stranger.sign(
            medledger_types::hash::domain::READING_SIGNATURE,
            &medledger_types::care::vitals::reading_message("api-test", good.as_bytes()),
        );
        serde_json::json!({ "device_key": device.public().to_hex(), "observation": good, "signature": hex::encode(sig.0) })
    };
    let (s, v) = n.call_as(None, "POST", "/v1/care/readings", Some(forged)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "bad_signature"), "{v}");
    let (s, v) = send(&n, &stranger, &good).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("unknown device"));
    let mut hz: serde_json::Value = serde_json::from_str(&good).unwrap();
    hz["valueQuantity"]["code"] = "Hz".into();
    let (s, v) = send(&n, &device, &hz.to_string()).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("$.valueQuantity.code"), "{v}");
    let (s, v) = send(&n, &device, &obs(Vital::SpO2(99.0), now()).replace("99.0", "140.0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "SpO2 140 %: {v}");
    let (s, v) = send(&n, &device, &obs(Vital::HeartRate(72.0), now() + 3_600_000)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("future"), "{v}");
    let (s, v) = send(&n, &device, &format!("{}{}", good, " ".repeat(8_192))).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_argument"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("above the limit of 8192"), "{v}");
    let (s, _) = send(&n, &device, &format!("{}{}", good, " ".repeat(300_000))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(tree(&vault_dir), before, "a refused reading reached the vault");
    assert_eq!(n.chain.mempool_len(), 0, "a refused reading reached the chain");

    // A good reading is stored encrypted (the value is not in any vault byte) and answered
    // once; a second copy is a duplicate.
    let (s, r1) = send(&n, &device, &good).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r1}");
    assert!(r1["alarms"].as_array().unwrap().is_empty());
    assert_ne!(tree(&vault_dir), before);
    assert!(
        tree(&vault_dir).iter().all(|(_, b)| !b.windows(6).any(|w| w == b"\"value".as_slice())),
        "plaintext in the vault"
    );
    let (s, v) = send(&n, &device, &good).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "duplicate"), "{v}");
    let d1 = Hash::from_hex(r1["digest"].as_str().unwrap()).unwrap();
    assert!(svc.vault.reading(&device_id, &d1).unwrap().is_some(), "stored under its device");

    // A pulse above the patient's rule raises one alarm (edge-triggered: a second one does not).
    let (_, r2) = send(&n, &device, &obs(Vital::HeartRate(140.0), now() - 500)).await;
    assert_eq!(r2["alarms"], serde_json::json!(["pulse > 130"]), "{r2}");
    let (_, r3) = send(&n, &device, &obs(Vital::HeartRate(141.0), now() - 400)).await;
    assert!(r3["alarms"].as_array().unwrap().is_empty(), "{r3}");
    // The device's readings of one key epoch share one data key, wrapped once for the
    // institution and the patient; the patient opens each reading, bound to its own digest.
    {
        use medledger_vault::envelope::{open, reading_context, reading_key_context, unwrap};
        let d2 = Hash::from_hex(r2["digest"].as_str().unwrap()).unwrap();
        let (s1, s2) = (
            svc.vault.reading(&device_id, &d1).unwrap().unwrap(),
            svc.vault.reading(&device_id, &d2).unwrap().unwrap(),
        );
        assert_eq!(s1.epoch, s2.epoch, "one key epoch");
        let readers: Vec<_> = s2.keys.iter().map(|(pk, _)| *pk).collect();
        assert_eq!(readers, vec![svc.institution_key.public(), patient.public()]);
        let key = unwrap(&s2.keys[1].1, &patient, &reading_key_context(&device_id, &s2.epoch)).unwrap();
        let plain = open(&key, &s2.sealed, &reading_context(&device_id, &d2)).unwrap();
        assert!(String::from_utf8(plain).unwrap().contains("140"), "the patient reads the value");
        assert!(open(&key, &s2.sealed, &reading_context(&device_id, &d1)).is_err(), "bound to its digest");
        let key_objects = tree(&vault_dir).iter().filter(|(p, _)| p.to_string_lossy().contains("/keys/")).count();
        assert_eq!(key_objects, 1, "one wrapped key for the epoch, not one per reading");
    }
    n.commit();
    let alarms = medledger_state::care::monitoring::alarms_of_doctor(&n.chain.store.snapshot().unwrap(), &doc.public());
    assert_eq!((alarms.len(), alarms[0].cause.as_str()), (1, "pulse > 130"));
    assert_eq!(alarms[0].reading.to_hex(), r2["digest"].as_str().unwrap());

    // After the interval, the node anchors the device's readings: their Merkle root, in order.
    n.clock.fetch_add(11_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let snap = n.chain.store.snapshot().unwrap();
    let a = medledger_state::care::monitoring::anchor(&snap, &device_id, 0).expect("anchored");
    let digests: Vec<[u8; 32]> =
        [&r1, &r2, &r3].iter().map(|r| Hash::from_hex(r["digest"].as_str().unwrap()).unwrap().0).collect();
    assert_eq!((a.count, a.root), (3, medledger_types::merkle::root(&digests)));
    // A reading from before the anchored interval is refused.
    let (s, v) = send(&n, &device, &obs(Vital::HeartRate(80.0), a.first_ms + 1)).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "duplicate"), "{v}");

    // Unacknowledged past its delay, with an on-call doctor named, the alarm escalates.
    let on_call = staff(&n, 93, Role::Doctor, "h0").await;
    ok_tx(&n, &n.admins[0], Operation::Care(CareOp::SetOnCall { doctor: on_call.public() })).await;
    n.commit();
    n.clock.fetch_add(61_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let a = medledger_state::care::monitoring::alarm(&n.chain.store.snapshot().unwrap(), &alarms[0].id).unwrap();
    assert_eq!(a.escalated_to, Some(on_call.public()));

    // The live readings (values) go to the patient, the responsible and the on-call doctor
    // only: not to another doctor of the institution, nor to a regulator.
    let live = format!("/v1/care/patients/{}/readings", pid.to_hex());
    for who in [&patient, &doc, &on_call] {
        let (s, v) = n.call_as(Some(who), "GET", &live, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let texts: Vec<&str> = v["readings"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["141 /min", "140 /min", "72 /min"], "newest first: {v}");
        assert!(v["news2"].is_null(), "a pulse alone is no complete NEWS2 set: {v}");
    }
    let colleague = staff(&n, 94, Role::Doctor, "h0").await;
    let regulator = staff(&n, 95, Role::Regulator, "h0").await;
    for who in [&colleague, &regulator] {
        let (s, v) = n.call_as(Some(who), "GET", &live, None).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    }
    let (s, v) = n.call_as(Some(&doc), "GET", &format!("/v1/care/patients/{}/readings", "77".repeat(32)), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    // The doctor's monitored patients: the doctor sees them, a colleague does not.
    let mine = format!("/v1/care/doctors/{}/patients", doc.public().to_hex());
    let (s, v) = n.call_as(Some(&doc), "GET", &mine, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["patients"][0]["patient"], pid.to_hex(), "{v}");
    assert_eq!(v["patients"][0]["devices"][0]["id"], device_id.to_hex(), "{v}");
    let (s, v) = n.call_as(Some(&colleague), "GET", &mine, None).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");

    // Readings sent at once are written to the vault in parallel (outside the monitor's lock);
    // every one is stored before its sender hears back.
    let at = now();
    let sends = (0..24u64).map(|i| {
        let o = obs(Vital::Temperature(36.0 + i as f64 / 10.0), at + 10 + i);
        let (n, device) = (&n, &device);
        async move { send(n, device, &o).await }
    });
    let receipts = futures::future::join_all(sends).await;
    for (s, r) in &receipts {
        assert_eq!(*s, StatusCode::ACCEPTED, "{r}");
        let d = Hash::from_hex(r["digest"].as_str().unwrap()).unwrap();
        assert!(svc.vault.reading(&device_id, &d).unwrap().is_some(), "answered before it was stored: {r}");
    }

    // A revoked device is refused.
    ok_tx(&n, &doc, Operation::Care(CareOp::RevokeDevice { device_id })).await;
    n.commit();
    let (s, v) = send(&n, &device, &obs(Vital::HeartRate(75.0), now())).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_permitted"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"), "{v}");
}

/// Issues a credential for an existing key.
async fn staff_key(n: &Node, k: &Keypair, role: Role, institution: &str) {
    let spec = CredentialSpec {
        subject: k.public(),
        role,
        institution: institution.into(),
        display_name: format!("{} service", role.name()),
        valid_from_ms: T0,
        valid_until_ms: T0 + 1_000_000_000,
    };
    ok_tx(n, &n.ca, Operation::Identity(IdentityOp::IssueCredential { spec })).await;
    n.commit();
}

/// What only memory held before a restart is rebuilt from the vault and the chain: the latest
/// readings, so a patient still past a rule raises no second alarm for it; and the alarms nobody
/// acknowledged, raised in a block or still in the mempool at the crash, which escalate when
/// their delay passes.
#[tokio::test]
async fn after_a_restart_a_standing_alarm_is_not_raised_again_and_still_escalates() {
    use medledger_state::care::monitoring::{alarm, alarms_of_patient};
    use medledger_types::care::vitals::{observation_json, Vital};
    use std::sync::atomic::Ordering;
    let service = Keypair::from_seed(90);
    let n = node_with_service_key(&service);
    let m = monitored(&n, &service).await;
    let on_call = staff(&n, 93, Role::Doctor, "h0").await;
    ok_tx(&n, &n.admins[0], Operation::Care(CareOp::SetOnCall { doctor: on_call.public() })).await;
    n.commit();
    let now = |n: &Node| n.clock.load(Ordering::SeqCst);
    let pulse = |v: f64, at: u64| observation_json(&Vital::HeartRate(v), at).to_string();
    let alarms = |n: &Node| alarms_of_patient(&n.chain.store.snapshot().unwrap(), &m.pid);
    let live = format!("/v1/care/patients/{}/readings", m.pid.to_hex());
    let texts = |v: &serde_json::Value| -> Vec<String> {
        v["readings"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap().to_string()).collect()
    };

    // 1. The alarm is raised, and the node crashes before any block holds it.
    for (value, back) in [(72.0, 2_000), (140.0, 1_000)] {
        let (s, v) = send(&n, &m.device, &pulse(value, now(&n) - back)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    assert_eq!(n.chain.mempool_len(), 1, "the alarm waits in the mempool");
    let n = n.crash_and_restart_with_service_key(&service);
    let svc = n.records.clone().unwrap();
    let (s, v) = n.call_as(Some(&m.patient), "GET", &live, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(texts(&v), ["140 /min", "72 /min"], "the latest readings, from the vault: {v}");
    let (_, v) = send(&n, &m.device, &pulse(142.0, now(&n) - 500)).await;
    assert_eq!(v["alarms"], serde_json::json!([]), "still past the rule: not raised again: {v}");
    n.commit();
    let first = alarms(&n);
    assert_eq!(first.len(), 1, "{first:?}");
    n.clock.fetch_add(61_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let escalated = alarm(&n.chain.store.snapshot().unwrap(), &first[0].id).unwrap();
    assert_eq!(escalated.escalated_to, Some(on_call.public()), "escalated after the restart");

    // 2. The rule stops holding and holds again: a second alarm, in a block this time, then a
    //    crash; it escalates after the restart too.
    for (value, back, raised) in [(80.0, 2_000, 0), (150.0, 1_000, 1)] {
        let (_, v) = send(&n, &m.device, &pulse(value, now(&n) - back)).await;
        assert_eq!(v["alarms"].as_array().unwrap().len(), raised, "{v}");
    }
    n.commit();
    let second = alarms(&n).into_iter().find(|a| a.id != first[0].id).expect("a second alarm");
    drop(svc);
    let n = n.crash_and_restart_with_service_key(&service);
    let svc = n.records.clone().unwrap();
    n.clock.fetch_add(61_000, Ordering::SeqCst);
    svc.monitor.tick(&svc);
    n.commit();
    let escalated = alarm(&n.chain.store.snapshot().unwrap(), &second.id).unwrap();
    assert_eq!(escalated.escalated_to, Some(on_call.public()), "escalated after the restart");

    // 3. The node stopped after storing a reading and before raising its alarm: the reading is
    //    in the vault, no alarm for it anywhere. The rule stopped holding first (80), then
    //    that reading (160) is stored as `ingest` stores it. After the restart the edge is not
    //    taken as raised: the next reading past the rule raises the alarm.
    let (_, v) = send(&n, &m.device, &pulse(80.0, now(&n) - 3_000)).await;
    assert_eq!(v["alarms"], serde_json::json!([]), "{v}");
    {
        use medledger_types::care::vitals::reading_digest;
        use medledger_vault::envelope::{reading_context, reading_key_context, seal, wrap, DataKey};
        let text = pulse(160.0, now(&n) - 2_000);
        let digest = reading_digest(&m.device_id, text.as_bytes());
        let (key, epoch) = (DataKey::generate(), Hash([0xE9; 32]));
        let kctx = reading_key_context(&m.device_id, &epoch);
        let keys: Vec<_> =
            [svc.institution_key.public(), m.patient.public()].map(|pk| (pk, wrap(&key, &pk, &kctx).unwrap())).into();
        svc.vault.put_reading_key(&m.device_id, &epoch, &keys).unwrap();
        let sealed = seal(&key, text.as_bytes(), &reading_context(&m.device_id, &digest));
        svc.vault.put_reading(&m.device_id, &digest, now(&n) - 2_000, &epoch, &sealed.0).unwrap();
    }
    drop(svc);
    let n = n.crash_and_restart_with_service_key(&service);
    let (_, v) = n.call_as(Some(&m.patient), "GET", &live, None).await;
    assert_eq!(texts(&v)[..2], ["160 /min", "80 /min"], "{v}");
    let (_, v) = send(&n, &m.device, &pulse(161.0, now(&n) - 1_000)).await;
    assert_eq!(v["alarms"], serde_json::json!(["pulse > 130"]), "the alarm the stop lost is raised: {v}");
}
