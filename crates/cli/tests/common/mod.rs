//! Helpers shared by the real-process tests: free port ranges, starting a devnet, HTTP calls,
//! waiting for commits, signals and file scans.

#![allow(dead_code)]

use medledger_types::IdentityOp;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_medledger");

/// Test ports stay below this, out of Linux's default ephemeral range (32768–60999): a port
/// in that range can be taken by any outgoing connection between our check and the node's bind.
pub const TEST_PORT_CEILING: u16 = 32_000;
const TEST_PORT_FLOOR: u16 = 20_000;
const RANGE: u16 = 200;

/// A base port whose p2p (base..base+3) and API (base+100..) ports are free, and which stays
/// below [`TEST_PORT_CEILING`]. Each call in this process takes a different range, and test
/// binaries start at different ranges (by pid), so parallel tests rarely contend; a range in use
/// is skipped.
pub fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slots = (TEST_PORT_CEILING - TEST_PORT_FLOOR) / RANGE;
    let first = (std::process::id() % slots as u32) as u16;
    for _ in 0..slots {
        let slot = (first + NEXT.fetch_add(1, Ordering::SeqCst)) % slots;
        let base = TEST_PORT_FLOOR + slot * RANGE;
        debug_assert!(base + RANGE <= TEST_PORT_CEILING);
        let ok = (0..4).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        }) && std::net::TcpListener::bind(("127.0.0.1", base + 50)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", base + 150)).is_ok();
        if ok {
            return base;
        }
    }
    panic!("no free port range below {TEST_PORT_CEILING}");
}

/// The last `n` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Like [`wait_committed`], for a node this test started itself: if the node exits or the
/// transactions do not commit in time, the failure quotes the node's log.
pub fn wait_committed_by(
    api: &str,
    reader: &medledger_types::Keypair,
    ids: &[String],
    limit: Duration,
    node: &mut Child,
    log: &Path,
) {
    let start = Instant::now();
    for id in ids {
        loop {
            if let Some(v) = get_as(api, reader, &format!("/v1/txs/{id}")) {
                if v["status"] == "committed" {
                    assert_eq!(v["receipt"]["outcome"]["status"], "applied", "{v}");
                    break;
                }
            }
            if let Ok(Some(status)) = node.try_wait() {
                panic!("the node behind {api} exited ({status}); its log ends:\n{}", log_tail(log, 40));
            }
            if start.elapsed() >= limit {
                panic!("tx {id} not committed on {api} within {limit:?}; the node's log ends:\n{}", log_tail(log, 40));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub struct Devnet {
    pub child: Child,
    pub ready: Value,
}

impl Drop for Devnet {
    /// A failing test must not leave validators behind: Ctrl-C the devnet (it stops its
    /// validators), then SIGKILL it if it has not exited within 10 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-2").arg(self.child.id().to_string()).status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn start_devnet(dir: &Path, base: u16, reset: bool) -> Devnet {
    let mut cmd = Command::new(BIN);
    // The web UI has its own browser tests; these devnets run without it.
    cmd.args(["--json", "devnet", "--no-ui", "--dir"]).arg(dir).args(["--base-port", &base.to_string()]);
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
    let line = rx.recv_timeout(Duration::from_secs(180)).unwrap_or_else(|e| {
        // Say why: the end of every validator's log.
        let mut logs = String::new();
        for entry in std::fs::read_dir(dir.join("nodes")).into_iter().flatten().flatten() {
            let log = entry.path().join("node.log");
            logs.push_str(&format!("\n--- {} ---\n{}", log.display(), log_tail(&log, 15)));
        }
        panic!("devnet did not become ready: {e}{logs}")
    });
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "ready");
    trust(&dir.join("tls/ca.pem"));
    Devnet { child, ready }
}

/// Consortium CA certificates of the devnets this test process started: its HTTP agents trust
/// them (and nothing else) for HTTPS.
static ROOTS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Trusts the consortium CA at `ca_pem` for this process's agents.
pub fn trust(ca_pem: &Path) {
    let pem = std::fs::read(ca_pem).unwrap_or_else(|e| panic!("no consortium CA at {}: {e}", ca_pem.display()));
    ROOTS.lock().unwrap().extend_from_slice(&pem);
}

pub fn agent() -> ureq::Agent {
    let b = ureq::AgentBuilder::new().timeout(Duration::from_secs(10));
    let roots = ROOTS.lock().unwrap().clone();
    if roots.is_empty() {
        return b.build();
    }
    b.tls_config(medledger_tls::client_config_from_pem(&roots).unwrap()).build()
}

/// An unsigned GET: only node status and the API document answer it.
pub fn get(api: &str, path: &str) -> Option<Value> {
    agent().get(&format!("{api}{path}")).call().ok()?.into_json().ok()
}

/// The signed-request header body of a `GET` of `path` on the devnet's chain, now.
fn signed_get(path: &str) -> medledger_types::auth::ApiRequest {
    medledger_types::auth::ApiRequest {
        chain_id: "medledger-devnet".into(),
        method: "GET".into(),
        path: path.into(),
        issued_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
        nonce: medledger_client::tx::request_nonce(),
    }
}

/// A GET signed by `reader` (`Authorization: MedLedger …`), answered with what it may see.
pub fn get_as(api: &str, reader: &medledger_types::Keypair, path: &str) -> Option<Value> {
    let signed = signed_get(path);
    agent()
        .get(&format!("{api}{path}"))
        .set("authorization", &signed.authorization(reader))
        .call()
        .ok()?
        .into_json()
        .ok()
}

pub fn key(path: &Path) -> medledger_types::Keypair {
    medledger_client::keys::read_key(path).unwrap()
}

pub fn submit_attests(api: &str, k: &medledger_types::Keypair, tag: u8, count: u64) -> Vec<String> {
    let ident = get_as(api, k, &format!("/v1/identities/{}", k.public().to_hex())).unwrap();
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
                op: medledger_types::Operation::Identity(IdentityOp::Attest {
                    digest: medledger_types::Hash(d),
                    label: format!("e2e-{tag}"),
                }),
            },
            k,
        );
        ids.push(tx.id().to_hex());
        batch.push(hex::encode(tx.raw()));
    }
    let r: Value =
        agent().post(&format!("{api}/v1/txs/batch")).send_json(json!({ "txs": batch })).unwrap().into_json().unwrap();
    assert_eq!(r["accepted"], count, "{r}");
    ids
}

/// Waits until every one of `ids` is committed and applied on `api`, as seen by `reader`.
pub fn wait_committed(api: &str, reader: &medledger_types::Keypair, ids: &[String], limit: Duration) {
    let start = Instant::now();
    for id in ids {
        loop {
            if let Some(v) = get_as(api, reader, &format!("/v1/txs/{id}")) {
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

/// Starts `medledger node` for the node directory `node_dir` by hand (its own config), its
/// output appended to the node's log.
pub fn restart_node(node_dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new().append(true).create(true).open(node_dir.join("node.log")).unwrap();
    Command::new(BIN)
        .args(["node", "--config"])
        .arg(node_dir.join("node.toml"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

pub fn kill(pid: u32, sig: i32) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file under `dir` containing `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files.into_iter().filter(|f| std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))).collect()
}

/// The validators' API URLs from a devnet's ready line.
pub fn apis(dn: &Devnet) -> Vec<String> {
    dn.ready["validators"].as_array().unwrap().iter().map(|v| v["api"].as_str().unwrap().to_string()).collect()
}

/// Runs the `medledger` binary against a devnet directory.
pub struct Cli {
    pub dir: PathBuf,
}

impl Cli {
    pub fn demo(&self, name: &str) -> String {
        self.dir.join("demo").join(format!("{name}.key")).to_str().unwrap().to_string()
    }

    /// Runs `medledger --json ARGS`; returns (success, parsed stdout or Null, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, Value, String) {
        // The devnet's nodes serve HTTPS under its consortium CA.
        let out = Command::new(BIN)
            .env("MEDLEDGER_CA_CERT", self.dir.join("tls/ca.pem"))
            .env("MEDLEDGER_GENESIS", self.dir.join("genesis.json"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let v = serde_json::from_str(&stdout)
            .ok()
            .or_else(|| stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()))
            .unwrap_or(Value::Null);
        (out.status.success(), v, String::from_utf8_lossy(&out.stderr).to_string())
    }

    pub fn ok(&self, args: &[&str]) -> Value {
        let (ok, v, err) = self.run(args);
        assert!(ok, "medledger {args:?} failed: {err}");
        v
    }

    pub fn fails(&self, args: &[&str], expect: &str) -> String {
        let (ok, v, err) = self.run(args);
        assert!(!ok, "medledger {args:?} should fail, printed {v}");
        assert!(err.contains(expect), "medledger {args:?}: expected `{expect}` in: {err}");
        err
    }
}

/// Subscribes to a server-sent event stream as `reader` (signed like [`get_as`]); each `data:`
/// line arrives on the channel as JSON. The stream ends after `limit`.
pub fn sse_as(
    api: &str,
    reader: &medledger_types::Keypair,
    path: &str,
    limit: Duration,
) -> std::sync::mpsc::Receiver<Value> {
    let signed = signed_get(path);
    let mut b = ureq::AgentBuilder::new().timeout(limit);
    let roots = ROOTS.lock().unwrap().clone();
    if !roots.is_empty() {
        b = b.tls_config(medledger_tls::client_config_from_pem(&roots).unwrap());
    }
    let resp = b
        .build()
        .get(&format!("{api}{path}"))
        .set("authorization", &signed.authorization(reader))
        .call()
        .unwrap_or_else(|e| panic!("cannot subscribe to {path}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(resp.into_reader()).lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str(data.trim()) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}
