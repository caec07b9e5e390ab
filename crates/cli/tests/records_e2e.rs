//! Record sharing end to end on the multi-process devnet, driven through the `medledger` CLI:
//! a doctor at hospital B reads a record held by hospital A (forwarded by B's node, consent
//! checked and logged by A's), and is denied without consent, after revocation and after
//! expiry; writes need consent; amendments wait for the patient; break-glass is flagged in the
//! audit; revoked credentials cannot read; tampering is caught by the reader; erasure leaves no
//! ciphertext or key in the holder's vault; no clinical value reaches any stored byte.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn audit_events(cli: &Cli, node: &str, key: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--node", node, "--key", key];
    args.extend_from_slice(extra);
    cli.ok(&args)["events"].as_array().unwrap().clone()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn vault_files_of(node_dir: &Path, record: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&node_dir.join("data/vault"), &mut files);
    files.into_iter().filter(|f| f.to_string_lossy().contains(record)).collect()
}

#[test]
fn records_are_shared_under_consent_audited_and_erased_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let mut dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let node = |i: usize| apis[i].trim_start_matches("https://").to_string();
    let (node_a, node_b, node_c) = (node(0), node(1), node(2));
    let cli = Cli { dir: dir.clone() };
    let seeded = &dn.ready["demo"];
    let rec = |k: &str| seeded["records"][k].as_str().unwrap().to_string();
    let ident = |k: &str, f: &str| seeded["identities"][k][f].as_str().unwrap().to_string();
    let (a_obs, b_enc, b_cond) =
        (rec("hospital_a_observation"), rec("hospital_b_encounter"), rec("hospital_b_condition"));
    let (p1, p2) = (ident("patient-1", "pseudonym"), ident("patient-2", "pseudonym"));
    let bob_key = ident("dr-bob", "key");

    // Demo data: records at two hospitals, and Dr. Bob's (hospital B) read of hospital A's record
    // on chain. A regulator sees it.
    let reg = cli.demo("regulator-rita");
    let h = cli.ok(&["record", "history", "--node", &node_c, "--key", &reg, "--id", &a_obs]);
    assert_eq!(h["versions"][0]["holder"], "hospital-a");
    assert_eq!(
        cli.ok(&["record", "history", "--node", &node_c, "--key", &reg, "--id", &b_enc])["versions"][0]["holder"],
        "hospital-b"
    );
    // Chain metadata is not public: without a signature, or signed by a key without a
    // credential, the access log and the record index are refused.
    let access_event = rec("bob_read_access_event");
    for path in [
        format!("/v1/access-events/{access_event}"),
        "/v1/blocks?limit=5".to_string(),
        format!("/v1/patients/{p1}/consents"),
        format!("/v1/patients/{p1}/requests"),
        format!("/v1/records/{a_obs}"),
    ] {
        match agent().get(&format!("{}{path}", apis[1])).call() {
            Err(ureq::Error::Status(401, resp)) => {
                assert_eq!(resp.into_json::<Value>().unwrap()["error"]["code"], "unauthenticated", "{path}")
            }
            other => panic!("unsigned GET {path} answered {other:?}"),
        }
        assert!(get_as(&apis[1], &medledger_types::Keypair::generate(), &path).is_none(), "{path}");
    }
    cli.fails(&["query", "--node", &node_b, "access-event", &access_event], "give --key");
    // The regulator sees it: signed by hospital A's node service key, not by its admin key.
    let logged = cli.ok(&["query", "--node", &node_b, "--key", &reg, "access-event", &access_event]);
    let service = medledger_client::keys::read_key(&dir.join("nodes/hospital-a/service.key")).unwrap();
    assert_eq!(logged["recorded_by"], service.public().to_hex(), "{logged}");
    // Another patient may not see patient-1's consents.
    let p2_early = cli.demo("patient-2");
    cli.fails(&["consent", "list", "--node", &node_b, "--key", &p2_early, "--patient", &p1], "not_permitted");
    let ev = audit_events(&cli, &node_c, &reg, &["--institution", "hospital-a", "--outcome", "served"]);
    assert!(ev.iter().any(|e| e["requester"] == bob_key.as_str() && e["record_id"] == a_obs.as_str()), "{ev:?}");

    // Bob reads it again through hospital B's node: forwarded to A, decrypted and hash-checked
    // on his side.
    let bob = cli.demo("dr-bob");
    let v = cli.ok(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs]);
    assert_eq!(v["resource"]["code"]["coding"][0]["display"], "Systolic blood pressure");
    assert_eq!(v["outcome"], "served");
    assert_eq!(v["holder"], "hospital-a");

    // Dr. Carol at hospital B, without consent: denied, and the denial is on chain.
    let carol = dir.join("demo/dr-carol.key").to_str().unwrap().to_string();
    cli.ok(&["keygen", "--out", &carol]);
    let ca = dir.join("ca.key").to_str().unwrap().to_string();
    cli.ok(&[
        "tx",
        "--node",
        &node_a,
        "--key",
        &ca,
        "--wait",
        "issue-credential",
        "--subject",
        &carol,
        "--role",
        "doctor",
        "--institution",
        "hospital-b",
        "--name",
        "Dr. Carol Diaz",
    ]);
    let carol_key = medledger_client::keys::read_key(Path::new(&carol)).unwrap().public().to_hex();
    cli.fails(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs], "not_permitted");
    let p1_key = cli.demo("patient-1");
    wait_for("the denial on chain", Duration::from_secs(30), || {
        audit_events(&cli, &node_c, &p1_key, &["--outcome", "denied"])
            .iter()
            .any(|e| e["requester"] == carol_key.as_str())
    });

    // A consent that expires in 15 seconds: served before, denied after.
    let expires = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
        + 15_000)
        .to_string();
    let g = cli.ok(&[
        "consent",
        "grant",
        "--node",
        &node_a,
        "--key",
        &p1_key,
        "--grantee",
        &carol,
        "--types",
        "Observation",
        "--expires-at-ms",
        &expires,
    ]);
    assert!(g["rewrapped_versions"].as_u64().unwrap() >= 1, "{g}");
    cli.ok(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs]);
    wait_for("the consent to expire", Duration::from_secs(45), || {
        !cli.run(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs]).0
    });
    cli.fails(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs], "not_permitted");

    // A consent without expiry, then revoked: denied from the next block on.
    let g = cli.ok(&[
        "consent",
        "grant",
        "--node",
        &node_a,
        "--key",
        &p1_key,
        "--grantee",
        &carol,
        "--types",
        "Observation",
    ]);
    let consent = g["consent_id"].as_str().unwrap().to_string();
    cli.ok(&["record", "get", "--node", &node_c, "--key", &carol, "--id", &a_obs]);
    let list = cli.ok(&["consent", "list", "--node", &node_b, "--key", &p1_key, "--patient", &p1]);
    assert!(list["consents"].as_array().unwrap().iter().any(|c| c["id"] == consent.as_str() && c["active"] == true));
    cli.ok(&["consent", "revoke", "--node", &node_a, "--key", &p1_key, "--id", &consent]);
    cli.fails(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs], "not_permitted");

    // A write without the patient's write consent is refused before anything is stored.
    let cond = tmp.path().join("condition.json");
    let fhir = |subject: &str| {
        json!({ "resourceType": "Condition", "subject": { "reference": format!("Patient/{subject}") }, "code": { "text": "Hypertension" } }).to_string()
    };
    std::fs::write(&cond, fhir(&p2)).unwrap();
    cli.fails(
        &["record", "put", "--node", &node_b, "--key", &carol, "--patient", &p2, "--file", cond.to_str().unwrap()],
        "not_permitted",
    );

    // Bad input from the client: wrong subject, not FHIR, not JSON, oversize, unknown record.
    std::fs::write(&cond, fhir(&p1)).unwrap();
    cli.fails(
        &["record", "put", "--node", &node_b, "--key", &bob, "--patient", &p2, "--file", cond.to_str().unwrap()],
        "not this patient",
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"resourceType":"NotAThing","subject":{"reference":"Patient/x"}}"#).unwrap();
    cli.fails(
        &["record", "put", "--node", &node_b, "--key", &bob, "--patient", &p2, "--file", bad.to_str().unwrap()],
        "resourceType",
    );
    std::fs::write(&bad, "{ not json").unwrap();
    cli.fails(
        &["record", "put", "--node", &node_b, "--key", &bob, "--patient", &p2, "--file", bad.to_str().unwrap()],
        "JSON",
    );
    std::fs::write(&bad, vec![b' '; 1024 * 1024 + 1]).unwrap();
    cli.fails(
        &["record", "put", "--node", &node_b, "--key", &bob, "--patient", &p2, "--file", bad.to_str().unwrap()],
        "limit",
    );
    // The CLI reads through the light client: an unknown record is proven absent at a
    // certified height, not merely reported missing by the node.
    cli.fails(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &"ab".repeat(32)], "proven absent");

    // An amendment by Dr. Alice stays pending until patient-1 accepts it; Bob keeps reading v1.
    let alice = cli.demo("dr-alice");
    let amended = tmp.path().join("obs-v2.json");
    let mut obs: Value =
        cli.ok(&["record", "get", "--node", &node_a, "--key", &alice, "--id", &a_obs])["resource"].clone();
    obs["valueQuantity"]["value"] = json!(138);
    std::fs::write(&amended, obs.to_string()).unwrap();
    let put = cli.ok(&[
        "record",
        "put",
        "--node",
        &node_c,
        "--key",
        &alice,
        "--patient",
        &p1,
        "--file",
        amended.to_str().unwrap(),
        "--amend",
        &a_obs,
    ]);
    assert_eq!(put["version"], 2);
    let h = cli.ok(&["record", "history", "--node", &node_a, "--key", &p1_key, "--id", &a_obs]);
    assert_eq!(
        (h["record"]["current_version"].as_u64(), h["versions"][1]["status"].as_str()),
        (Some(1), Some("pending"))
    );
    assert_eq!(cli.ok(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs])["version"], 1);
    // Bob's read consent does not open the pending amendment; only the patient and Alice may.
    cli.fails(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs, "--version", "2"], "not_permitted");
    cli.ok(&["record", "review", "--node", &node_a, "--key", &p1_key, "--id", &a_obs, "--version", "2", "--accept"]);
    let v2 = cli.ok(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs]);
    assert_eq!((v2["version"].as_u64(), v2["resource"]["valueQuantity"]["value"].as_u64()), (Some(2), Some(138)));
    // The old version stays readable and provable.
    assert_eq!(
        cli.ok(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs, "--version", "1"])["resource"]
            ["valueQuantity"]["value"],
        141
    );

    // Break-glass by Carol (no consent any more): served, flagged for the patient and regulators.
    let bg = cli.ok(&[
        "record",
        "get",
        "--node",
        &node_b,
        "--key",
        &carol,
        "--id",
        &a_obs,
        "--break-glass",
        "unconscious patient in the emergency room",
    ]);
    assert_eq!(bg["outcome"], "break_glass");
    wait_for("the break-glass event", Duration::from_secs(30), || {
        audit_events(&cli, &node_c, &p1_key, &["--outcome", "break_glass"])
            .iter()
            .any(|e| e["requester"] == carol_key.as_str() && e["break_glass"] == true)
    });
    let fhir_audit = cli.ok(&["audit", "--node", &node_c, "--key", &reg, "--outcome", "break_glass", "--fhir"]);
    assert_eq!(fhir_audit["resourceType"], "Bundle");
    let ae = &fhir_audit["entry"][0]["resource"];
    assert_eq!(ae["resourceType"], "AuditEvent");
    assert!(ae["purposeOfEvent"].as_array().unwrap().iter().any(|p| p["coding"][0]["code"] == "BTG"), "{ae}");
    // Patients see only their own records; doctors have no audit view.
    cli.fails(&["audit", "--node", &node_c, "--key", &p1_key, "--patient", &p2], "own records");
    cli.fails(&["audit", "--node", &node_c, "--key", &bob], "not_permitted");

    // A revoked doctor credential cannot read, even with a consent and even with break-glass.
    cli.ok(&["consent", "grant", "--node", &node_a, "--key", &p1_key, "--grantee", &carol]);
    let admin_b = dir.join("nodes/hospital-b/admin.key").to_str().unwrap().to_string();
    cli.ok(&[
        "tx",
        "--node",
        &node_b,
        "--key",
        &admin_b,
        "--wait",
        "revoke",
        "--subject",
        &carol,
        "--reason",
        "left the hospital",
    ]);
    cli.fails(&["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs], "revoked");
    cli.fails(
        &["record", "get", "--node", &node_b, "--key", &carol, "--id", &a_obs, "--break-glass", "emergency"],
        "revoked",
    );

    // Access request and approval through the CLI: the approval re-wraps keys for Alice.
    let p2_key = cli.demo("patient-2");
    let req = cli.ok(&[
        "access",
        "request",
        "--node",
        &node_a,
        "--key",
        &alice,
        "--patient",
        &p2,
        "--grantee",
        &alice,
        "--reason",
        "referral to cardiology",
    ]);
    let rid = req["request_id"].as_str().unwrap().to_string();
    let pending = cli.ok(&["access", "list", "--node", &node_b, "--key", &p2_key, "--patient", &p2]);
    assert!(pending["pending"].as_array().unwrap().iter().any(|r| r["id"] == rid.as_str()));
    cli.fails(&["record", "get", "--node", &node_a, "--key", &alice, "--id", &b_cond], "not_permitted");
    let ap = cli.ok(&["access", "approve", "--node", &node_b, "--key", &p2_key, "--id", &rid]);
    assert!(ap["rewrapped_versions"].as_u64().unwrap() >= 1, "{ap}");
    assert!(cli.ok(&["record", "get", "--node", &node_a, "--key", &alice, "--id", &b_cond])["resource"]["note"][0]
        ["text"]
        .as_str()
        .unwrap()
        .contains("dry cough"));

    // A consent to a whole institution: hospital A's researcher reads patient-2's record held by
    // hospital B. B serves A's copy of the key; A's node re-wraps it for its own staff member.
    let rui = cli.demo("researcher-rui");
    cli.fails(
        &["record", "get", "--node", &node_a, "--key", &rui, "--id", &b_cond, "--purpose", "research"],
        "not_permitted",
    );
    let g = cli.ok(&[
        "consent",
        "grant",
        "--node",
        &node_b,
        "--key",
        &p2_key,
        "--grantee",
        "institution:hospital-a",
        "--purpose",
        "research",
        "--types",
        "Condition",
    ]);
    assert!(g["rewrapped_versions"].as_u64().unwrap() >= 1, "{g}");
    let v = cli.ok(&["record", "get", "--node", &node_a, "--key", &rui, "--id", &b_cond, "--purpose", "research"]);
    assert!(v["resource"]["note"][0]["text"].as_str().unwrap().contains("dry cough"), "{v}");
    // Through another institution's node the key stays with hospital A.
    cli.fails(
        &["record", "get", "--node", &node_c, "--key", &rui, "--id", &b_cond, "--purpose", "research"],
        "send the read through that node",
    );
    // A hospital B doctor is not covered by hospital A's consent.
    cli.fails(
        &["record", "get", "--node", &node_b, "--key", &bob, "--id", &b_cond, "--purpose", "research"],
        "not_permitted",
    );

    // The patient's accessible history as a FHIR Bundle.
    let export = tmp.path().join("export.json");
    let (ok, _, err) = cli.run(&[
        "record",
        "export",
        "--node",
        &node_c,
        "--key",
        &p1_key,
        "--patient",
        &p1,
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let types: Vec<&str> =
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["resourceType"].as_str().unwrap()).collect();
    assert!(types.contains(&"Observation") && types.contains(&"Encounter"), "{types:?}");

    // Tampering with hospital B's stored ciphertext is caught by the reader.
    let b_dir = dir.join("nodes/hospital-b");
    let pointer = b_dir.join(format!("data/vault/records/{b_enc}/1/object"));
    let object = std::fs::read_to_string(&pointer).unwrap();
    let object_path = b_dir.join(format!("data/vault/objects/{}", object.trim()));
    let mut bytes = std::fs::read(&object_path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(&object_path, &bytes).unwrap();
    cli.fails(&["record", "get", "--node", &node_a, "--key", &p1_key, "--id", &b_enc], "tampering detected");

    // patient-2 loses their device. The new device makes a key and proves possession offline;
    // hospital B (where patient-2 is registered) recovers them to it. The lost key is refused,
    // and the new one reads the record: hospital B wraps its own copy of the data key for it.
    let new_p2 = dir.join("patient-2-new.key");
    cli.ok(&["keygen", "--out", new_p2.to_str().unwrap()]);
    let current = ident("patient-2", "key");
    let proof = cli.ok(&[
        "rotation-proof",
        "--key",
        new_p2.to_str().unwrap(),
        "--chain-id",
        "medledger-devnet",
        "--pseudonym",
        &p2,
        "--current",
        &current,
    ]);
    let admin_b = dir.join("nodes/hospital-b/admin.key");
    let v = cli.ok(&[
        "tx",
        "--node",
        &node_c,
        "--key",
        admin_b.to_str().unwrap(),
        "--wait",
        "rotate-patient-key",
        "--pseudonym",
        &p2,
        "--new-public",
        proof["new_public"].as_str().unwrap(),
        "--proof",
        proof["proof"].as_str().unwrap(),
    ]);
    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
    cli.fails(&["record", "get", "--node", &node_c, "--key", &p2_key, "--id", &b_cond], "credential_revoked");
    let p2_key = new_p2.to_str().unwrap().to_string();
    let got = cli.ok(&["record", "get", "--node", &node_c, "--key", &p2_key, "--id", &b_cond]);
    assert_eq!(got["resource"]["resourceType"], "Condition", "{got}");

    // Erasure: patient-2 (with the new key) erases the condition; hospital B's vault keeps no
    // trace of it, reads say erased, and the hashes stay on chain.
    assert!(!vault_files_of(&b_dir, &b_cond).is_empty());
    let cond_object = std::fs::read_to_string(b_dir.join(format!("data/vault/records/{b_cond}/1/object"))).unwrap();
    cli.ok(&["erase", "--node", &node_c, "--key", &p2_key, "--id", &b_cond, "--wait"]);
    // Only the tombstone that makes later reads say "erased" remains, and it holds nothing else.
    let left = vault_files_of(&b_dir, &b_cond);
    assert_eq!(left, vec![b_dir.join(format!("data/vault/erased/{b_cond}"))], "{left:?}");
    assert_eq!(std::fs::read(&left[0]).unwrap(), b"erased");
    assert!(!b_dir.join(format!("data/vault/objects/{}", cond_object.trim())).exists());
    cli.fails(&["record", "get", "--node", &node_a, "--key", &alice, "--id", &b_cond], "erased");
    let h = cli.ok(&["record", "history", "--node", &node_a, "--key", &reg, "--id", &b_cond]);
    assert!(!h["record"]["erased_at"].is_null());
    assert_eq!(h["versions"][0]["content_hash"].as_str().unwrap().len(), 64);

    // A read signed by a key other than the one it names is refused.
    let r = medledger_types::read::ReadRequest {
        chain_id: "medledger-devnet".into(),
        record_id: medledger_types::Hash::from_hex(&a_obs).unwrap(),
        version: 1,
        requester: medledger_types::PublicKey::from_hex(&bob_key).unwrap(),
        purpose: medledger_types::Purpose::Treatment,
        issued_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
        nonce: 1,
        break_glass: None,
    };
    let forged = r.sign(&medledger_types::Keypair::generate());
    let body =
        json!({ "request": hex::encode(medledger_types::Canonical::to_bytes(&r)), "signature": hex::encode(forged.0) });
    match agent().post(&format!("{}/v1/records/read", apis[1])).send_json(body) {
        Err(ureq::Error::Status(403, resp)) => {
            assert_eq!(resp.into_json::<Value>().unwrap()["error"]["code"], "bad_signature")
        }
        other => panic!("forged read answered {other:?}"),
    }

    // Stop, then scan every stored byte of every validator: no clinical value, no identifier.
    kill(dn.child.id(), 2);
    assert!(dn.child.wait().unwrap().success());
    for needle in [
        "Systolic blood pressure",
        "persistent dry cough",
        "atrial fibrillation",
        "Hypertension",
        "NID-1985-0001",
        "MRN-B-004411",
    ] {
        let hits = files_containing(&dir.join("nodes"), needle.as_bytes());
        assert!(hits.is_empty(), "`{needle}` found in {hits:?}");
    }
}
