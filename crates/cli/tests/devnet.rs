//! Real processes: `medledger devnet` starts 4 validator processes; transactions commit; one
//! validator is SIGKILLed while submissions continue; it restarts and catches up to the same
//! state root; stored chain data holds none of the demo patients' identifiers; Ctrl-C stops
//! everything and a second start resumes from disk; `medledger verify` checks every store.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// A base port whose p2p (base..base+3) and API (base+100..) ports are free. Each call in this
/// process takes a different range, so tests running in parallel never pick the same one.
fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 100) as u16 * 200;
    for _ in 0..200 {
        let base = start + NEXT.fetch_add(1, Ordering::SeqCst) % 100 * 200;
        let ok = (0..4).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        }) && std::net::TcpListener::bind(("127.0.0.1", base + 50)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", base + 150)).is_ok();
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

struct Devnet {
    child: Child,
    ready: Value,
}

fn start_devnet(dir: &Path, base: u16, reset: bool) -> Devnet {
    let mut cmd = Command::new(BIN);
    cmd.args(["--json", "devnet", "--dir"]).arg(dir).args(["--base-port", &base.to_string()]);
    if reset {
        cmd.arg("--reset");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(180)).expect("devnet did not become ready");
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "ready");
    Devnet { child, ready }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build()
}

fn get(api: &str, path: &str) -> Option<Value> {
    agent().get(&format!("{api}{path}")).call().ok()?.into_json().ok()
}

fn key(path: &Path) -> medledger_types::Keypair {
    medledger_node::run::read_key(path).unwrap()
}

fn submit_attests(api: &str, k: &medledger_types::Keypair, tag: u8, count: u64) -> Vec<String> {
    let ident = get(api, &format!("/v1/identities/{}", k.public().to_hex())).unwrap();
    let start = ident["next_nonce"].as_u64().unwrap();
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for n in start..start + count {
        let mut d = [tag; 32];
        d[..8].copy_from_slice(&n.to_be_bytes());
        let tx = medledger_types::Tx::sign(
            medledger_types::Transaction {
                chain_id: "medledger-devnet".into(),
                signer: k.public(),
                nonce: n,
                op: medledger_types::Operation::Attest { digest: medledger_types::Hash(d), label: format!("e2e-{tag}") },
            },
            k,
        );
        ids.push(tx.id().to_hex());
        batch.push(hex::encode(tx.raw()));
    }
    let r: Value = agent().post(&format!("{api}/v1/txs/batch")).send_json(json!({ "txs": batch })).unwrap().into_json().unwrap();
    assert_eq!(r["accepted"], count, "{r}");
    ids
}

fn wait_committed(api: &str, ids: &[String], limit: Duration) {
    let start = Instant::now();
    for id in ids {
        loop {
            if let Some(v) = get(api, &format!("/v1/txs/{id}")) {
                if v["status"] == "committed" {
                    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
                    break;
                }
            }
            assert!(start.elapsed() < limit, "tx {id} not committed on {api}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn kill(pid: u32, sig: i32) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn devnet_survives_a_killed_validator_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let base = free_base_port();
    let mut dn = start_devnet(&dir, base, true);
    let apis: Vec<String> = dn.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();
    assert_eq!(apis.len(), 4);
    let alice = key(&dir.join("demo/dr-alice.key"));
    let bob = key(&dir.join("demo/dr-bob.key"));

    let mut ids = submit_attests(&apis[0], &alice, 1, 50);
    wait_committed(&apis[0], &ids, Duration::from_secs(60));

    // SIGKILL clinic-c's validator, keep submitting through the others.
    let node_dir = dir.join("nodes/clinic-c");
    let pid: u32 = std::fs::read_to_string(node_dir.join("pid")).unwrap().trim().parse().unwrap();
    kill(pid, 9);
    std::thread::sleep(Duration::from_millis(500));
    ids.extend(submit_attests(&apis[1], &bob, 2, 50));
    wait_committed(&apis[1], &ids, Duration::from_secs(60));
    let ids2 = submit_attests(&apis[0], &alice, 3, 30);
    wait_committed(&apis[3], &ids2, Duration::from_secs(60));
    ids.extend(ids2);

    // Restart it by hand: it replays what it needs and catches up.
    let log = std::fs::OpenOptions::new().append(true).open(node_dir.join("node.log")).unwrap();
    let mut restarted = Command::new(BIN)
        .args(["node", "--config"])
        .arg(node_dir.join("node.toml"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    wait_committed(&apis[2], &ids, Duration::from_secs(120));
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
    let a = get(&apis[0], &format!("/v1/blocks/{target}")).unwrap();
    let c = get(&apis[2], &format!("/v1/blocks/{target}")).unwrap();
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
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z")), "{inst} still running");
    }

    // PHI scan: the demo patients' national ids and record numbers appear in no stored byte.
    let mut files = Vec::new();
    files_under(&dir.join("nodes"), &mut files);
    assert!(files.len() > 8);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for needle in ["NID-1985-0001", "MRN-A-000917", "NID-1972-0042", "MRN-B-004411"] {
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
    let apis2: Vec<String> = dn2.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();
    let more = submit_attests(&apis2[1], &alice, 4, 5);
    wait_committed(&apis2[2], &more, Duration::from_secs(60));

    // Consent through the CLI: patient-1 grants dr-bob read access; dr-alice asks patient-2,
    // who approves.
    let cli = |args: &[&str]| -> Value {
        let out = Command::new(BIN).arg("--json").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let node = apis2[0].trim_start_matches("http://").to_string();
    let demo = |f: &str| dir.join("demo").join(f).to_str().unwrap().to_string();
    let v = cli(&["tx", "--node", &node, "--key", &demo("patient-1.key"), "--wait", "grant-consent", "--grantee", &demo("dr-bob.key"), "--purpose", "treatment", "--types", "Observation"]);
    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
    let seeded: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo/seeded.json")).unwrap()).unwrap();
    let p2 = seeded["identities"]["patient-2"]["pseudonym"].as_str().unwrap().to_string();
    let v = cli(&["tx", "--node", &node, "--key", &demo("dr-alice.key"), "request-access", "--patient", &p2, "--grantee", &demo("dr-alice.key"), "--reason", "referral"]);
    let request = v["request_id"].as_str().unwrap().to_string();
    wait_committed(&apis2[0], &[v["tx_id"].as_str().unwrap().to_string()], Duration::from_secs(60));
    let v = cli(&["tx", "--node", &node, "--key", &demo("patient-2.key"), "--wait", "respond-access", "--id", &request, "--approve"]);
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
    let apis: Vec<String> = dn.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect();

    // The rogue copies the genesis file and puts its own key in place of clinic-c's.
    let rogue_dir = tmp.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    let rogue = medledger_types::Keypair::generate();
    medledger_node::run::write_key(&rogue_dir.join("validator.key"), &rogue).unwrap();
    let mut g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
    let rogue_p2p = format!("127.0.0.1:{}", base + 50);
    let rogue_api = format!("127.0.0.1:{}", base + 150);
    g["institutions"][2]["validator_key"] = json!(rogue.public().to_hex());
    g["institutions"][2]["p2p_address"] = json!(rogue_p2p);
    g["institutions"][2]["api_address"] = json!(rogue_api);
    std::fs::write(rogue_dir.join("genesis.json"), g.to_string()).unwrap();
    std::fs::write(rogue_dir.join("node.toml"), "genesis = \"genesis.json\"\nkey = \"validator.key\"\ndata_dir = \"data\"\n").unwrap();
    let mut rogue_proc = Command::new(BIN)
        .args(["node", "--config"])
        .arg(rogue_dir.join("node.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The consortium keeps committing while the rogue tries to connect.
    let alice = key(&dir.join("demo/dr-alice.key"));
    let ids = submit_attests(&apis[0], &alice, 7, 20);
    wait_committed(&apis[0], &ids, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let rogue_api_url = format!("http://{rogue_api}");
    let rs = get(&rogue_api_url, "/v1/status").expect("rogue node serves its API");
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
