//! Telemedicine referrals end to end on the multi-process devnet, through the `medledger` CLI:
//! the seeded referral (Clinic C to hospital A, accepted as a remote consultation) is proven on
//! chain; a new referral of patient-2 from Clinic C to hospital A goes through proposal,
//! approval, acceptance, the patient's key sharing, the receiving doctor's read (enforced by
//! the ordinary consent checks of the holder's node), the report, completion, and the end of
//! the consent; lists and statistics answer per role; bad input is refused with its rule.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn a_referral_runs_from_a_clinic_to_a_hospital_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let node = |i: usize| apis[i].trim_start_matches("https://").to_string();
    let (n0, n1, n2) = (node(0), node(1), node(2));
    let cli = Cli { dir: dir.clone() };
    let demo = &dn.ready["demo"];
    let (dara, alice, bob, reg) =
        (cli.demo("dr-dara"), cli.demo("dr-alice"), cli.demo("dr-bob"), cli.demo("regulator-rita"));
    let (p1_key, p2_key) = (cli.demo("patient-1"), cli.demo("patient-2"));
    let p2 = demo["identities"]["patient-2"]["pseudonym"].as_str().unwrap().to_string();
    let b_cond = demo["records"]["hospital_b_condition"].as_str().unwrap().to_string();

    // The seeded referral, as proven on chain, for its patient.
    let seeded = demo["care"]["referral"].as_str().unwrap().to_string();
    let r = cli.ok(&["referral", "show", "--node", &n1, "--key", &p1_key, "--id", &seeded]);
    assert_eq!((r["status"].as_str(), r["mode"].as_str()), (Some("accepted"), Some("remote")), "{r}");
    assert_eq!((r["from"].as_str(), r["to"].as_str()), (Some("clinic-c"), Some("hospital-a")));
    // A doctor who is party to neither side sees nothing of it.
    cli.fails(&["referral", "show", "--node", &n1, "--key", &bob, "--id", &seeded], "not_permitted");

    // Dr. Alice at hospital A cannot read patient-2's condition (held by hospital B) yet.
    cli.fails(&["record", "get", "--node", &n0, "--key", &alice, "--id", &b_cond], "not_permitted");

    // Dr. Dara at Clinic C proposes; patient-2 approves.
    let v = cli.ok(&[
        "referral",
        "propose",
        "--node",
        &n2,
        "--key",
        &dara,
        "--patient",
        &p2,
        "--to",
        "hospital-a",
        "--specialty",
        "cardiology",
        "--record",
        &b_cond,
    ]);
    let id = v["referral"].as_str().unwrap().to_string();
    let r = cli.ok(&["referral", "show", "--node", &n2, "--key", &dara, "--id", &id]);
    assert_eq!(r["awaiting"], "the patient's approval");
    // Hospital A cannot act before the patient agrees.
    cli.fails(
        &["referral", "accept", "--node", &n0, "--key", &alice, "--id", &id, "--appointment", "2099-01-01T09:00:00Z"],
        "awaits the patient's approval",
    );
    cli.ok(&["referral", "approve", "--node", &n1, "--key", &p2_key, "--id", &id]);
    let inbox =
        cli.ok(&["referral", "list", "--node", &n0, "--key", &alice, "--institution", "hospital-a", "--box", "inbox"]);
    assert!(inbox["referrals"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "{inbox}");
    let outbox =
        cli.ok(&["referral", "list", "--node", &n2, "--key", &dara, "--institution", "clinic-c", "--box", "outbox"]);
    assert!(outbox["referrals"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "{outbox}");
    // Another institution's inbox is not Dr. Dara's to see.
    cli.fails(
        &["referral", "list", "--node", &n2, "--key", &dara, "--institution", "hospital-a", "--box", "inbox"],
        "not_permitted",
    );

    // Bad input: another institution's doctor accepts; an appointment in the past; an unknown id.
    cli.fails(
        &["referral", "accept", "--node", &n1, "--key", &bob, "--id", &id, "--appointment", "2099-01-01T09:00:00Z"],
        "party to neither side",
    );
    cli.fails(
        &["referral", "accept", "--node", &n0, "--key", &alice, "--id", &id, "--appointment", "2001-01-01T09:00:00Z"],
        "in the past",
    );
    cli.fails(&["referral", "start", "--node", &n0, "--key", &alice, "--id", &"ab".repeat(32)], "no referral");
    cli.fails(&["referral", "reject", "--node", &n0, "--key", &alice, "--id", &id, "--reason", " "], "give a reason");

    // Hospital A accepts as a remote consultation; the patient shares the record's key.
    let appointment = medledger_types::time::rfc3339_ms(medledger_client::tx::now_ms() + 86_400_000);
    cli.ok(&[
        "referral",
        "accept",
        "--node",
        &n0,
        "--key",
        &alice,
        "--id",
        &id,
        "--mode",
        "remote",
        "--appointment",
        &appointment,
    ]);
    let shared = cli.ok(&["referral", "share", "--node", &n1, "--key", &p2_key, "--id", &id]);
    assert!(shared["shared_versions"].as_u64().unwrap() >= 1, "{shared}");
    // The receiving doctor reads the named record from hospital B's vault, through hospital A's
    // node, under the referral's consent.
    let got = cli.ok(&["record", "get", "--node", &n0, "--key", &alice, "--id", &b_cond]);
    assert_eq!(got["outcome"], "served", "{got}");
    assert_eq!(got["holder"], "hospital-b");

    // The consultation: started, the report written, completed.
    cli.ok(&["referral", "start", "--node", &n0, "--key", &alice, "--id", &id]);
    let report = tmp.path().join("report.json");
    std::fs::write(
        &report,
        json!({
            "resourceType": "Composition",
            "status": "final",
            "type": { "coding": [{ "system": "http://loinc.org", "code": "11488-4", "display": "Consult note" }] },
            "subject": { "reference": format!("Patient/{p2}") },
            "date": "2026-12-04T10:00:00Z",
            "title": "Cardiology consultation",
            "author": [{ "display": "Dr. Alice Martin" }]
        })
        .to_string(),
    )
    .unwrap();
    let put = cli.ok(&[
        "record",
        "put",
        "--node",
        &n0,
        "--key",
        &alice,
        "--patient",
        &p2,
        "--file",
        report.to_str().unwrap(),
    ]);
    let report_id = put["record_id"].as_str().unwrap().to_string();
    // Completing with a record that is not a report is refused.
    cli.fails(
        &["referral", "complete", "--node", &n0, "--key", &alice, "--id", &id, "--report", &b_cond],
        "Composition",
    );
    cli.ok(&["referral", "complete", "--node", &n0, "--key", &alice, "--id", &id, "--report", &report_id]);
    let r = cli.ok(&["referral", "show", "--node", &n1, "--key", &p2_key, "--id", &id]);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["report"], report_id.as_str());
    let steps: Vec<&str> = r["history"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(steps, ["proposed", "approved", "accept", "start", "complete"]);

    // The referral closed, so its consent ended: the receiving doctor reads no more.
    wait_for_refusal(&cli, &["record", "get", "--node", &n0, "--key", &alice, "--id", &b_cond]);
    cli.fails(
        &["referral", "cancel", "--node", &n1, "--key", &p2_key, "--id", &id, "--reason", "late"],
        "cannot cancel",
    );

    // The regulator's statistics name institutions, never a patient.
    let stats = cli.ok(&["referral", "stats", "--node", &n0, "--key", &reg]);
    let pair = stats["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["from"] == "clinic-c" && p["to"] == "hospital-a")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!((pair["requested"].as_u64(), pair["completed"].as_u64()), (Some(2), Some(1)), "{stats}");
    assert!(!stats.to_string().contains(&p2));
    cli.fails(&["referral", "stats", "--node", &n0, "--key", &dara], "not_permitted");

    monitoring_on_chain(&cli, &dir, &dn, &p2, &p2_key, &bob);
}

/// Remote monitoring's chain path: hospital B registers patient-2's wearable and sets the
/// monitoring; its node anchors readings and raises an alarm (signed with the node's service
/// key, as the monitoring service does); the responsible doctor acknowledges; the patient
/// revokes the device and its anchors are refused.
fn monitoring_on_chain(cli: &Cli, dir: &std::path::Path, dn: &Devnet, p2: &str, p2_key: &str, bob: &str) {
    use medledger_types::care::CareOp;
    use medledger_types::Hash;
    let apis = apis(dn);
    let n1 = apis[1].trim_start_matches("https://").to_string();
    let device = dir.join("wearable.key");
    cli.ok(&["keygen", "--out", device.to_str().unwrap()]);
    let dev = device.to_str().unwrap();
    let alice = cli.demo("dr-alice");
    cli.fails(
        &[
            "device",
            "register",
            "--node",
            &n1,
            "--key",
            &alice,
            "--patient",
            p2,
            "--device-key",
            dev,
            "--model",
            "wrist pulse oximeter",
        ],
        "patient's institution",
    );
    let reg = cli.ok(&[
        "device",
        "register",
        "--node",
        &n1,
        "--key",
        bob,
        "--patient",
        p2,
        "--device-key",
        dev,
        "--model",
        "wrist pulse oximeter",
    ]);
    let device_id = reg["id"].as_str().unwrap().to_string();
    cli.fails(
        &["device", "monitor", "--node", &n1, "--key", bob, "--patient", p2, "--spo2-scale", "3"],
        "SpO2 scale is 1 or 2",
    );
    cli.ok(&[
        "device",
        "monitor",
        "--node",
        &n1,
        "--key",
        bob,
        "--patient",
        p2,
        "--rule",
        "pulse > 130",
        "--escalate-after-min",
        "1",
    ]);
    let listed = cli.ok(&["device", "list", "--node", &n1, "--key", p2_key, "--patient", p2]);
    // The seeded wearable, then this one.
    assert!(listed["devices"].as_array().unwrap().iter().any(|d| d["id"] == device_id.as_str()), "{listed}");
    assert_eq!(listed["monitoring"]["rules"][0], "pulse > 130");

    // The monitoring institution's node anchors a batch and raises an alarm.
    medledger_client::http::trust_consortium_ca(&dir.join("tls/ca.pem")).unwrap();
    let genesis = medledger_client::keys::read_genesis(&dir.join("genesis.json")).unwrap();
    let service = key(&dir.join("nodes/hospital-b/service.key"));
    let node_b = medledger_client::Session::for_genesis(&n1, service, &genesis);
    let id = Hash::from_hex(&device_id).unwrap();
    let now = medledger_client::tx::now_ms();
    node_b
        .care(CareOp::AnchorReadings {
            device_id: id,
            first_ms: now - 60_000,
            last_ms: now,
            count: 60,
            root: Hash([0xAB; 32]),
        })
        .unwrap();
    let alarm_id = medledger_client::tx::new_id();
    node_b
        .care(CareOp::RaiseAlarm { alarm_id, device_id: id, reading: Hash([0xCD; 32]), cause: "pulse > 130".into() })
        .unwrap();
    let alarms = cli.ok(&["alarm", "list", "--node", &n1, "--key", bob]);
    assert_eq!(alarms["alarms"][0]["cause"], "pulse > 130", "{alarms}");
    assert!(alarms["alarms"][0]["acknowledged_by"].is_null());
    // The alarm carries no value, only its cause and the reading's digest.
    assert_eq!(alarms["alarms"][0]["reading"], Hash([0xCD; 32]).to_hex());
    cli.fails(
        &["alarm", "ack", "--node", &n1, "--key", &alice, "--id", &alarm_id.to_hex()],
        "only the responsible doctor",
    );
    cli.ok(&["alarm", "ack", "--node", &n1, "--key", bob, "--id", &alarm_id.to_hex()]);
    let mine = cli.ok(&["alarm", "list", "--node", &n1, "--key", p2_key, "--patient", p2]);
    assert!(!mine["alarms"][0]["acknowledged_by"].is_null(), "{mine}");
    // The same as FHIR: Flags (acknowledged, so inactive) and Devices about the patient.
    let flags = cli.ok(&["alarm", "list", "--node", &n1, "--key", p2_key, "--patient", p2, "--fhir"]);
    let flag = &flags["entry"][0]["resource"];
    assert_eq!((flag["resourceType"].as_str(), flag["status"].as_str()), (Some("Flag"), Some("inactive")), "{flags}");
    assert_eq!(flag["subject"]["reference"], format!("Patient/{p2}"));
    let devices = cli.ok(&["device", "list", "--node", &n1, "--key", p2_key, "--patient", p2, "--fhir"]);
    assert!(
        devices["entry"].as_array().unwrap().iter().all(|e| e["resource"]["resourceType"] == "Device"),
        "{devices}"
    );

    wearable_alarm_reaches_the_doctor_then_escalates(cli, dir, dn);

    // The patient revokes the wearable; its next anchor is refused.
    cli.ok(&["device", "revoke", "--node", &n1, "--key", p2_key, "--id", &device_id]);
    let later = medledger_client::tx::now_ms();
    let err = node_b
        .care(CareOp::AnchorReadings {
            device_id: id,
            first_ms: later,
            last_ms: later + 1,
            count: 1,
            root: Hash([1; 32]),
        })
        .unwrap_err();
    assert!(err.contains("revoked"), "{err}");
}

/// The consent ends from the block after the one that closed the referral.
fn wait_for_refusal(cli: &Cli, args: &[&str]) {
    let start = std::time::Instant::now();
    while cli.run(args).0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "still served 30 s after the referral closed");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    cli.fails(args, "not_permitted");
}

/// The seeded wearable (patient-2 at hospital B, Dr. Bob responsible, Dr. Erin on call) streams
/// NEWS2 sets through `medledger device simulate`: the deteriorating set's alarm reaches Dr.
/// Bob's SSE subscription and he acknowledges it; a pulse above the rule, left unacknowledged,
/// escalates to Dr. Erin's subscription after its minute. No reading value is in any byte the
/// validators store outside their vaults.
fn wearable_alarm_reaches_the_doctor_then_escalates(cli: &Cli, dir: &std::path::Path, dn: &Devnet) {
    use std::time::Duration;
    let apis = apis(dn);
    let n1 = apis[1].trim_start_matches("https://").to_string();
    let w = &dn.ready["demo"]["care"]["wearable"];
    let key_file = w["key_file"].as_str().unwrap().to_string();
    let (bob, erin) = (key(&dir.join("demo/dr-bob.key")), key(&dir.join("demo/dr-erin.key")));
    let bob_events = sse_as(&apis[1], &bob, "/v1/care/alarms/stream", Duration::from_secs(150));
    let erin_events = sse_as(&apis[1], &erin, "/v1/care/alarms/stream", Duration::from_secs(150));

    // Three sets, the third deteriorating: NEWS2 medium.
    let out = cli.ok(&[
        "device",
        "simulate",
        "--node",
        &n1,
        "--device-key",
        &key_file,
        "--sets",
        "3",
        "--interval-ms",
        "200",
        "--deteriorate-every",
        "3",
    ]);
    assert_eq!(out["news2_risk"], "medium", "{out}");
    let ev =
        bob_events.recv_timeout(Duration::from_secs(30)).expect("the alarm reaches the responsible doctor's stream");
    assert_eq!((ev["cause"].as_str(), ev["escalated"].as_bool()), (Some("news2 medium"), Some(false)), "{ev}");
    let bob_key = cli.demo("dr-bob");
    cli.ok(&["alarm", "ack", "--node", &n1, "--key", &bob_key, "--id", ev["alarm"].as_str().unwrap()]);

    // A pulse above the rule (and a distinctive temperature that scores nothing); nobody acknowledges it.
    let obs = dir.join("tachycardia.json");
    let at = medledger_client::tx::now_ms();
    std::fs::write(
        &obs,
        medledger_types::care::vitals::observation_json(&medledger_types::care::vitals::Vital::HeartRate(143.0), at)
            .to_string(),
    )
    .unwrap();
    let r = cli.ok(&["reading", "send", "--node", &n1, "--device-key", &key_file, "--file", obs.to_str().unwrap()]);
    assert_eq!(r["alarms"], json!(["pulse > 130"]), "{r}");
    let fever = dir.join("fever.json");
    std::fs::write(
        &fever,
        medledger_types::care::vitals::observation_json(
            &medledger_types::care::vitals::Vital::Temperature(37.73),
            at + 1,
        )
        .to_string(),
    )
    .unwrap();
    cli.ok(&["reading", "send", "--node", &n1, "--device-key", &key_file, "--file", fever.to_str().unwrap()]);
    let ev = bob_events.recv_timeout(Duration::from_secs(30)).expect("the rule's alarm reaches Dr. Bob");
    assert_eq!(ev["cause"], "pulse > 130", "{ev}");
    // The values themselves: from the monitoring node, to the responsible doctor, not to a
    // doctor elsewhere.
    let p2 = dn.ready["demo"]["identities"]["patient-2"]["pseudonym"].as_str().unwrap().to_string();
    let latest = cli.ok(&["reading", "latest", "--node", &n1, "--key", &bob_key, "--patient", &p2]);
    let texts: Vec<&str> = latest["readings"].as_array().unwrap().iter().filter_map(|r| r["text"].as_str()).collect();
    assert_eq!(texts[..2], ["37.73 Cel", "143 /min"], "{latest}");
    cli.fails(
        &["reading", "latest", "--node", &n1, "--key", &cli.demo("dr-alice"), "--patient", &p2],
        "the patient, the responsible and the on-call doctor only",
    );
    let mine = cli.ok(&["device", "patients", "--node", &n1, "--key", &bob_key]);
    assert!(mine["patients"].as_array().unwrap().iter().any(|m| m["patient"] == p2.as_str()), "{mine}");
    let esc =
        erin_events.recv_timeout(Duration::from_secs(100)).expect("unacknowledged, it escalates to the on-call doctor");
    assert_eq!((esc["alarm"].clone(), esc["escalated"].as_bool()), (ev["alarm"].clone(), Some(true)), "{esc}");
    let erin_key = cli.demo("dr-erin");
    cli.ok(&["alarm", "ack", "--node", &n1, "--key", &erin_key, "--id", esc["alarm"].as_str().unwrap()]);

    // Readings stay off chain: the fever's value is in no byte the validators store outside
    // their vaults (where it is encrypted).
    let mut files = Vec::new();
    files_under(&dir.join("nodes"), &mut files);
    let leaks: Vec<_> = files
        .iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "vault"))
        .filter(|p| std::fs::read(p).map(|b| b.windows(5).any(|w| w == b"37.73")).unwrap_or(false))
        .collect();
    assert!(leaks.is_empty(), "a reading value in stored bytes: {leaks:?}");
}
