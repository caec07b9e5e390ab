//! Erasure across holders and crashes, on the multi-process devnet: a record with a version at
//! hospital A and an amendment at hospital B; B's node is SIGKILLed before the patient asks for
//! erasure; A erases and confirms, but the record is not erased until B, restarted, reconciles
//! from chain state, destroys its copy and confirms too. Neither vault keeps anything but the
//! tombstone.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Files in `node`'s vault that belong to `record`.
fn vault_files(dir: &std::path::Path, node: &str, record: &str) -> Vec<String> {
    let mut files = Vec::new();
    files_under(&dir.join(format!("nodes/{node}/data/vault")), &mut files);
    files.iter().map(|f| f.to_string_lossy().to_string()).filter(|f| f.contains(record)).collect()
}

#[test]
fn every_holder_erases_its_copy_even_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let mut dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let node = |i: usize| apis[i].trim_start_matches("https://").to_string();
    let (node_a, node_b) = (node(0), node(1));
    let cli = Cli { dir: dir.clone() };
    let seeded = &dn.ready["demo"];
    let a_obs = seeded["records"]["hospital_a_observation"].as_str().unwrap().to_string();
    let p1 = seeded["identities"]["patient-1"]["pseudonym"].as_str().unwrap().to_string();
    let (bob, p1_key, reg) = (cli.demo("dr-bob"), cli.demo("patient-1"), cli.demo("regulator-rita"));

    // Dr. Bob (hospital B, write consent from patient-1) amends hospital A's record: v2 is held
    // by hospital B.
    let mut obs: Value =
        cli.ok(&["record", "get", "--node", &node_b, "--key", &bob, "--id", &a_obs])["resource"].clone();
    obs["valueQuantity"]["value"] = json!(141);
    let amended = tmp.path().join("amended.json");
    std::fs::write(&amended, obs.to_string()).unwrap();
    let put = cli.ok(&[
        "record",
        "put",
        "--node",
        &node_b,
        "--key",
        &bob,
        "--patient",
        &p1,
        "--file",
        amended.to_str().unwrap(),
        "--amend",
        &a_obs,
    ]);
    assert_eq!(put["holder"], "hospital-b", "{put}");
    let history = |node: &str| cli.ok(&["record", "history", "--node", node, "--key", &reg, "--id", &a_obs]);
    let h = history(&node_a);
    assert_eq!(
        (h["versions"][0]["holder"].as_str(), h["versions"][1]["holder"].as_str()),
        (Some("hospital-a"), Some("hospital-b"))
    );
    assert!(!vault_files(&dir, "hospital-b", &a_obs).is_empty());
    // The content-addressed objects each holder keeps for its version.
    let object = |holder: &str, v: u32| {
        let vault = dir.join(format!("nodes/{holder}/data/vault"));
        let name = std::fs::read_to_string(vault.join(format!("records/{a_obs}/{v}/object"))).unwrap();
        vault.join(format!("objects/{}", name.trim()))
    };
    let (object_a, object_b) = (object("hospital-a", 1), object("hospital-b", 2));
    assert!(object_a.exists() && object_b.exists());

    // Hospital B's node dies; the patient asks for erasure through hospital A's.
    let b_dir = dir.join("nodes/hospital-b");
    let b_pid: u32 = std::fs::read_to_string(b_dir.join("pid")).unwrap().trim().parse().unwrap();
    kill(b_pid, 9);
    std::thread::sleep(Duration::from_millis(500));
    cli.ok(&["erase", "--node", &node_a, "--key", &p1_key, "--id", &a_obs]);
    // A destroys its copy and confirms; the record waits for B.
    wait_until("hospital A's confirmation", Duration::from_secs(60), || {
        vault_files(&dir, "hospital-a", &a_obs).iter().all(|f| f.contains("/erased/"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let h = history(&node_a);
    assert!(h["record"]["erasure_requested_at"].is_u64(), "{h}");
    assert!(h["record"]["erased_at"].is_null(), "erased while hospital B still holds a copy: {h}");
    cli.fails(&["record", "get", "--node", &node_a, "--key", &p1_key, "--id", &a_obs], "erased");

    // B restarts, reconciles from chain state, erases and confirms: now the record is erased.
    let mut restarted = restart_node(&b_dir);
    wait_until("the record's erasure after hospital B's restart", Duration::from_secs(120), || {
        history(&node_a)["record"]["erased_at"].is_u64()
    });
    for holder in ["hospital-a", "hospital-b"] {
        let left = vault_files(&dir, holder, &a_obs);
        assert_eq!(left.len(), 1, "{holder}: {left:?}");
        assert!(left[0].ends_with(&format!("erased/{a_obs}")), "{holder}: {left:?}");
    }
    assert!(!object_a.exists() && !object_b.exists(), "no ciphertext is left with either holder");
    kill(restarted.id(), 15);
    assert!(restarted.wait().unwrap().success());
    kill(dn.child.id(), 2);
    let _ = dn.child.wait();
}
