//! Real processes: `medledger devnet` starts 4 validator processes; transactions commit; one
//! validator is SIGKILLed while submissions continue; it restarts and catches up to the same
//! state root; stored chain data holds none of the demo patients' identifiers; Ctrl-C stops
//! everything and a second start resumes from disk; `medledger verify` checks every store.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn devnet_survives_a_killed_validator_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let base = free_base_port();
    let mut dn = start_devnet(&dir, base, true);
    let apis: Vec<String> =
        dn.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();
    assert_eq!(apis.len(), 4);
    let alice = key(&dir.join("demo/dr-alice.key"));
    let bob = key(&dir.join("demo/dr-bob.key"));
    let ca = key(&dir.join("ca.key"));

    let mut ids = submit_attests(&apis[0], &alice, 1, 50);
    wait_committed(&apis[0], &ca, &ids, Duration::from_secs(60));

    // SIGKILL clinic-c's validator, keep submitting through the others.
    let node_dir = dir.join("nodes/clinic-c");
    let pid: u32 = std::fs::read_to_string(node_dir.join("pid")).unwrap().trim().parse().unwrap();
    // A validator runs with transparent huge pages off (each refault of a huge page made the
    // kernel zero 2 MiB; see BENCHMARKS.md), whatever the machine's setting.
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // (Kernels before 5.0 do not report it.)
        assert!(
            !status.contains("THP_enabled") || status.contains("THP_enabled:\t0"),
            "the validator has huge pages on:\n{status}"
        );
    }
    kill(pid, 9);
    std::thread::sleep(Duration::from_millis(500));
    ids.extend(submit_attests(&apis[1], &bob, 2, 50));
    wait_committed(&apis[1], &ca, &ids, Duration::from_secs(60));
    let ids2 = submit_attests(&apis[0], &alice, 3, 30);
    wait_committed(&apis[3], &ca, &ids2, Duration::from_secs(60));
    ids.extend(ids2);

    // Restart it by hand: it replays what it needs and catches up.
    let mut restarted = restart_node(&node_dir);
    wait_committed_by(&apis[2], &ca, &ids, Duration::from_secs(120), &mut restarted, &node_dir.join("node.log"));
    let target = get(&apis[0], "/v1/status").unwrap()["height"].as_u64().unwrap();
    let start = Instant::now();
    loop {
        let h = get(&apis[2], "/v1/status").map(|s| s["height"].as_u64().unwrap()).unwrap_or(0);
        if h >= target {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "restarted validator stuck at {h} < {target}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = get_as(&apis[0], &ca, &format!("/v1/blocks/{target}")).unwrap();
    let c = get_as(&apis[2], &ca, &format!("/v1/blocks/{target}")).unwrap();
    assert_eq!(a["hash"], c["hash"]);
    assert_eq!(a["header"]["state_root"], c["header"]["state_root"]);

    // Stop: the restarted node by SIGTERM, the devnet by SIGINT (Ctrl-C).
    kill(restarted.id(), 15);
    assert!(restarted.wait().unwrap().success());
    kill(dn.child.id(), 2);
    assert!(dn.child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    for inst in ["hospital-a", "hospital-b", "clinic-c", "health-authority"] {
        let pid: u32 = std::fs::read_to_string(dir.join(format!("nodes/{inst}/pid"))).unwrap().trim().parse().unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z")),
            "{inst} still running"
        );
    }

    // PHI scan: the demo patients' national ids and record numbers, and the clinical values of
    // their demo records, appear in no stored byte (chain, consensus journal or vault).
    let mut files = Vec::new();
    files_under(&dir.join("nodes"), &mut files);
    assert!(files.len() > 8);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for needle in [
            "NID-1985-0001",
            "MRN-A-000917",
            "NID-1972-0042",
            "MRN-B-004411",
            "persistent dry cough",
            "Systolic blood pressure",
            "atrial fibrillation",
        ] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in {}", f.display());
        }
    }

    // Every store verifies offline.
    for inst in ["hospital-a", "clinic-c"] {
        let out = Command::new(BIN)
            .args(["--json", "verify", "--genesis"])
            .arg(dir.join("genesis.json"))
            .arg("--data-dir")
            .arg(dir.join(format!("nodes/{inst}/data")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["height"].as_u64().unwrap() >= target);
        assert!(v["transactions"].as_u64().unwrap() >= 130);
    }

    // A second start resumes from disk.
    let mut dn2 = start_devnet(&dir, base, false);
    assert!(dn2.ready["height"].as_u64().unwrap() >= target);
    let apis2: Vec<String> =
        dn2.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();
    let more = submit_attests(&apis2[1], &alice, 4, 5);
    wait_committed(&apis2[2], &ca, &more, Duration::from_secs(60));

    // Consent through the CLI: patient-1 grants dr-bob read access; dr-alice asks patient-2,
    // who approves.
    let cli = |args: &[&str]| -> Value {
        let out = Command::new(BIN)
            .env("MEDLEDGER_CA_CERT", dir.join("tls/ca.pem"))
            .env("MEDLEDGER_GENESIS", dir.join("genesis.json"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let node = apis2[0].trim_start_matches("https://").to_string();
    let demo = |f: &str| dir.join("demo").join(f).to_str().unwrap().to_string();
    let v = cli(&[
        "tx",
        "--node",
        &node,
        "--key",
        &demo("patient-1.key"),
        "--wait",
        "grant-consent",
        "--grantee",
        &demo("dr-bob.key"),
        "--purpose",
        "treatment",
        "--types",
        "Observation",
    ]);
    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
    let seeded: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo/seeded.json")).unwrap()).unwrap();
    let p2 = seeded["identities"]["patient-2"]["pseudonym"].as_str().unwrap().to_string();
    let v = cli(&[
        "tx",
        "--node",
        &node,
        "--key",
        &demo("dr-alice.key"),
        "request-access",
        "--patient",
        &p2,
        "--grantee",
        &demo("dr-alice.key"),
        "--reason",
        "referral",
    ]);
    let request = v["request_id"].as_str().unwrap().to_string();
    wait_committed(&apis2[0], &ca, &[v["tx_id"].as_str().unwrap().to_string()], Duration::from_secs(60));
    let v = cli(&[
        "tx",
        "--node",
        &node,
        "--key",
        &demo("patient-2.key"),
        "--wait",
        "respond-access",
        "--id",
        &request,
        "--approve",
    ]);
    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
    assert_eq!(v["receipt"]["outcome"]["events"][0]["kind"], "access_approved");
    kill(dn2.child.id(), 2);
    assert!(dn2.child.wait().unwrap().success());
}

/// Only the genesis validators can join: a node whose key is not in the consortium's genesis
/// file (here, one that forged a genesis file naming itself) gets no connection and no blocks.
#[test]
fn a_key_outside_genesis_cannot_join() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let base = free_base_port();
    let mut dn = start_devnet(&dir, base, true);
    let apis: Vec<String> =
        dn.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();

    // A second node for clinic-c, with its own data directory, finds clinic-c's ports taken: it
    // exits at once and says which address it could not bind, instead of hanging.
    let twin_dir = tmp.path().join("twin");
    std::fs::create_dir_all(&twin_dir).unwrap();
    let genesis_path = dir.join("genesis.json");
    let key_path = dir.join("nodes/clinic-c/validator.key");
    std::fs::write(
        twin_dir.join("node.toml"),
        format!("genesis = {:?}\nkey = {:?}\ndata_dir = \"data\"\n", genesis_path, key_path),
    )
    .unwrap();
    let started = Instant::now();
    let twin = Command::new(BIN).args(["node", "--config"]).arg(twin_dir.join("node.toml")).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "a node that cannot bind must exit at once");
    let err = String::from_utf8_lossy(&twin.stderr);
    assert_eq!(twin.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot listen on") && err.contains("(API)"), "{err}");

    // The rogue copies the genesis file and puts its own key in place of clinic-c's.
    let rogue_dir = tmp.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    let rogue = medledger_types::Keypair::generate();
    medledger_client::keys::write_key(&rogue_dir.join("validator.key"), &rogue).unwrap();
    let mut g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
    let rogue_p2p = format!("127.0.0.1:{}", base + 50);
    let rogue_api = format!("127.0.0.1:{}", base + 150);
    g["institutions"][2]["validator_key"] = json!(rogue.public().to_hex());
    g["institutions"][2]["p2p_address"] = json!(rogue_p2p);
    g["institutions"][2]["api_address"] = json!(rogue_api);
    std::fs::write(rogue_dir.join("genesis.json"), g.to_string()).unwrap();
    std::fs::write(
        rogue_dir.join("node.toml"),
        "genesis = \"genesis.json\"\nkey = \"validator.key\"\ndata_dir = \"data\"\n",
    )
    .unwrap();
    let rogue_log = rogue_dir.join("node.log");
    let rogue_out = std::fs::File::create(&rogue_log).unwrap();
    let mut rogue_proc = Command::new(BIN)
        .args(["node", "--config"])
        .arg(rogue_dir.join("node.toml"))
        .stdout(Stdio::from(rogue_out.try_clone().unwrap()))
        .stderr(Stdio::from(rogue_out))
        .spawn()
        .unwrap();

    // The consortium keeps committing while the rogue tries to connect.
    let alice = key(&dir.join("demo/dr-alice.key"));
    let ca = key(&dir.join("ca.key"));
    let ids = submit_attests(&apis[0], &alice, 7, 20);
    wait_committed(&apis[0], &ca, &ids, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let rogue_api_url = format!("http://{rogue_api}");
    let rs = get(&rogue_api_url, "/v1/status").unwrap_or_else(|| {
        let state = match rogue_proc.try_wait() {
            Ok(Some(status)) => format!("it exited ({status})"),
            _ => "it is still running".to_string(),
        };
        panic!("rogue node does not serve its API on {rogue_api}; {state}; its log ends:\n{}", log_tail(&rogue_log, 40))
    });
    assert_eq!(rs["height"], 0, "the rogue received no blocks");
    assert!(rs["peers"].as_array().unwrap().is_empty(), "no validator talked to the rogue: {rs}");
    for api in &apis {
        let s = get(api, "/v1/status").unwrap();
        let peers: Vec<&str> = s["peers"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(!peers.contains(&rogue.public().to_hex().as_str()), "{api} accepted the rogue");
    }
    let _ = rogue_proc.kill();
    let _ = rogue_proc.wait();
    kill(dn.child.id(), 2);
    assert!(dn.child.wait().unwrap().success());
}

/// A 202 is durable: hospital A acknowledges transactions while every other validator is
/// stopped (SIGSTOP, so nothing can be gossiped or committed), is SIGKILLed, and restarts; it
/// re-admits them from its mempool log, and once the others resume they commit.
#[test]
fn an_acknowledged_transaction_survives_sigkill_of_the_node_that_acknowledged_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let mut dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let alice = key(&dir.join("demo/dr-alice.key"));
    let ca = key(&dir.join("ca.key"));
    let pid_of = |inst: &str| -> u32 {
        std::fs::read_to_string(dir.join(format!("nodes/{inst}/pid"))).unwrap().trim().parse().unwrap()
    };
    let others = ["hospital-b", "clinic-c", "health-authority"];
    for inst in others {
        kill(pid_of(inst), 19); // SIGSTOP
    }
    let ids = submit_attests(&apis[0], &alice, 9, 5);
    let a_dir = dir.join("nodes/hospital-a");
    kill(pid_of("hospital-a"), 9);
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::fs::metadata(a_dir.join("data/mempool.wal")).unwrap().len() > 0);
    // Restart A alone: the others are still stopped, so only its log can bring them back.
    let log_path = a_dir.join("node.log");
    let mut restarted = restart_node(&a_dir);
    let start = Instant::now();
    while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("re-admitted 5 pending transactions") {
        assert!(start.elapsed() < Duration::from_secs(60), "no re-admission; log ends:\n{}", log_tail(&log_path, 20));
        std::thread::sleep(Duration::from_millis(200));
    }
    for inst in others {
        kill(pid_of(inst), 18); // SIGCONT
    }
    wait_committed_by(&apis[0], &ca, &ids, Duration::from_secs(120), &mut restarted, &log_path);
    kill(restarted.id(), 15);
    assert!(restarted.wait().unwrap().success());
    kill(dn.child.id(), 2);
    let _ = dn.child.wait();
}

/// A validator whose stored state holds a value the ledger cannot have written (a damaged disk,
/// a careless hand) does not panic and serves nothing computed over it: its API answers that its
/// state is corrupt, naming the value; it stops with an error at the next finalized block
/// (exit status non-zero, the reason in its log, no panic); the three others go on committing.
#[test]
fn a_validator_with_damaged_state_stops_with_an_error_and_the_others_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    let alice = key(&dir.join("demo/dr-alice.key"));
    let ca = key(&dir.join("ca.key"));

    // Once clinic-c's validator holds the seeded pack, stop it and damage the pack's record in
    // its store.
    let verify = "/v1/drugs/verify?id=%2801%2910614141073464%2821%29A0006";
    let start = Instant::now();
    while get(&apis[2], verify).is_none_or(|v| v["verification"]["code"] != "sellable") {
        assert!(start.elapsed() < Duration::from_secs(60), "clinic-c never held the seeded pack");
        std::thread::sleep(Duration::from_millis(100));
    }
    let node_dir = dir.join("nodes/clinic-c");
    let pid: u32 = std::fs::read_to_string(node_dir.join("pid")).unwrap().trim().parse().unwrap();
    kill(pid, 15);
    let ledger = node_dir.join("data/ledger.redb");
    let start = Instant::now();
    let db = loop {
        // The store opens once the validator has let it go.
        match redb::Database::open(&ledger) {
            Ok(db) => break db,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(30), "{}: {e}", ledger.display()),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let pack = medledger_types::drugs::Epc::sgtin("10614141073464", "A0006");
    let w = db.begin_write().unwrap();
    {
        let mut state = w.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("state")).unwrap();
        let key = medledger_state::drugs::key::item(&pack);
        assert!(state.insert(key.as_slice(), [0xff_u8; 3].as_slice()).unwrap().is_some(), "the pack was seeded");
    }
    w.commit().unwrap();
    drop(db);

    let log = node_dir.join("node.log");
    let mut node = restart_node(&node_dir);
    let start = Instant::now();
    while get(&apis[2], "/v1/status").is_none() {
        if let Ok(Some(status)) = node.try_wait() {
            panic!("the damaged validator exited ({status}) before its API answered:\n{}", log_tail(&log, 30));
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no API:\n{}", log_tail(&log, 30));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Verifying the pack reads the damaged value: the answer says so, and is nothing else.
    match agent().get(&format!("{}{verify}", apis[2])).call() {
        Err(ureq::Error::Status(500, r)) => {
            let body: Value = r.into_json().unwrap();
            let msg = body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(body["error"]["code"], "internal", "{body}");
            assert!(
                msg.contains("stored state is corrupt") && msg.contains("stored drug item does not decode"),
                "{body}"
            );
        }
        other => panic!("verifying the damaged pack answered {other:?}"),
    }
    // The same pack verifies on a healthy validator.
    assert_eq!(get(&apis[0], verify).unwrap()["verification"]["code"], "sellable");

    // It stops at the next finalized block, with the reason and without a panic.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the damaged validator kept running:\n{}",
            log_tail(&log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "it stopped with {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    let after = &text[text.rfind("medledger node").unwrap_or(0)..];
    assert!(after.contains("medledger: error:") && after.contains("stored drug item does not decode"), "{after}");
    assert!(!after.contains("panicked"), "{after}");

    // The other three go on.
    let ids = submit_attests(&apis[0], &alice, 7, 20);
    wait_committed(&apis[1], &ca, &ids, Duration::from_secs(60));
}
