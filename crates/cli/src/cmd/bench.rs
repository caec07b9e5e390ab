//! `medledger bench`: load generator against a running devnet, plus raw ed25519 rates.

use clap::Args;
use medledger_client::keys::{read_genesis, read_key};
use medledger_client::tx::now_ms;
use medledger_client::Client;
use medledger_types::hash::domain;
use medledger_types::keys::{verify, verify_many, BatchItem};
use medledger_types::IdentityOp;
use medledger_types::{CredentialSpec, Hash, Keypair, Operation, Role, Transaction, Tx};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Devnet directory (for the genesis file and the CA key).
    #[arg(long, default_value = ".devnet")]
    pub dir: PathBuf,
    /// Transactions to submit.
    #[arg(long, default_value_t = 40_000)]
    pub txs: usize,
    /// Distinct signers (credentialed by the CA during setup).
    #[arg(long, default_value_t = 40)]
    pub signers: usize,
    /// Transactions per API batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Submitting threads.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Offered load in tx/s (0 = as fast as possible). Latency is only meaningful below capacity.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Only measure ed25519 verification rates.
    #[arg(long)]
    pub crypto_only: bool,
    /// Consent-checked record reads instead of transactions, at `--rate` reads/s (default 1000).
    #[arg(long, conflicts_with = "vault")]
    pub reads: bool,
    /// Seconds of read load.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Size of the record read, in bytes of FHIR JSON.
    #[arg(long, default_value_t = 4096)]
    pub record_bytes: usize,
    /// Send reads to this validator (index in genesis; 0 is the holder, others forward).
    #[arg(long, default_value_t = 0)]
    pub via: usize,
    /// Measure the vault's write and read throughput on local disk (no devnet needed).
    #[arg(long)]
    pub vault: bool,
    /// Measure the authenticated state in memory (no devnet needed): commit time, proof size,
    /// proof and verification time, for a state of `--keys` keys.
    #[arg(long, conflicts_with_all = ["vault", "reads"])]
    pub state_proofs: bool,
    /// State size for `--state-proofs`.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: usize,
    /// Time pack verification in process against a ledger of `--events` custody events.
    #[arg(long, conflicts_with_all = ["vault", "reads", "state_proofs"])]
    pub drug_verify: bool,
    /// Custody events for `--drug-verify`.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: usize,
    /// With `--drug-verify`: full commissioning blocks to execute and commit to a store, one
    /// after another (8,000 serials each), for the block timings.
    #[arg(long, requires = "drug_verify", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub blocks: u64,
    /// With `--drug-verify`: also store that ledger in a node's store (redb, in a temporary
    /// directory) and time public verifications through the node's HTTPS API.
    #[arg(long, requires = "drug_verify")]
    pub api: bool,
    /// On the devnet: commission `--serials` serials, capture `--captures` EPCIS documents of 40
    /// events, and time public verifications through the API.
    #[arg(long, conflicts_with_all = ["vault", "reads", "state_proofs", "drug_verify"])]
    pub drug_load: bool,
    #[arg(long, default_value_t = 200_000)]
    pub serials: usize,
    #[arg(long, default_value_t = 500)]
    pub captures: usize,
    /// EPCIS capture lines sending at once in `--drug-load`: manufacturer keys the CA
    /// credentials at the maker's institution, each sending its own documents in turn.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub capture_lines: u16,
    /// In process: `N` full blocks of commissioning, then `N` of EPCIS capture, each executed
    /// over a node's store and committed to it, as one validator does.
    #[arg(long, value_name = "N", conflicts_with_all = ["vault", "reads", "state_proofs", "drug_verify", "drug_load", "referrals", "readings"], value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub drug_blocks: Option<u64>,
    /// With `--drug-blocks`: also replay the same blocks' domain writes into Commonware's
    /// append-only authenticated databases (`qmdb::current`: ordered, unordered and a hybrid)
    /// and time them, to size the storage redesign (a measurement only: the node keeps its
    /// state tree).
    #[arg(long, requires = "drug_blocks")]
    pub replay_qmdb: bool,
    /// Time the referral workflow in process: `N` referrals from proposal to completion, state
    /// tree included.
    #[arg(long, value_name = "N", conflicts_with_all = ["vault", "reads", "state_proofs", "drug_verify", "drug_load"])]
    pub referrals: Option<usize>,
    /// On the devnet: send `N` readings from `--devices` devices of patient-2 to hospital B's
    /// node and time the ingest and the alarm latency (start the devnet with a high
    /// `--requester-rate`).
    #[arg(long, value_name = "N", conflicts_with_all = ["vault", "reads", "state_proofs", "drug_verify", "drug_load", "referrals"])]
    pub readings: Option<usize>,
    /// Devices sending at once in `--readings` (each with one reading in flight). They are
    /// registered to patient-2, who may have 64: one run per fresh devnet.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=48))]
    pub devices: u16,
}

/// Single and batched ed25519 verification rates on one core.
pub fn ed25519_rates(n: usize) -> (f64, f64) {
    let keys: Vec<Keypair> = (0..64).map(|i| Keypair::from_seed(i as u64)).collect();
    let msgs: Vec<Vec<u8>> =
        (0..n).map(|i| format!("message {i} of the verification benchmark").into_bytes()).collect();
    let sigs: Vec<_> = msgs.iter().enumerate().map(|(i, m)| keys[i % 64].sign(domain::TX_SIGNATURE, m)).collect();
    let pks: Vec<_> = (0..n).map(|i| keys[i % 64].public()).collect();
    let t = Instant::now();
    for i in 0..n {
        assert!(verify(&pks[i], domain::TX_SIGNATURE, &msgs[i], &sigs[i]));
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    let items: Vec<BatchItem> =
        (0..n).map(|i| BatchItem { public_key: &pks[i], message: &msgs[i], signature: &sigs[i] }).collect();
    let t = Instant::now();
    for chunk in items.chunks(1024) {
        assert!(verify_many(domain::TX_SIGNATURE, chunk).iter().all(|v| *v));
    }
    let batched = n as f64 / t.elapsed().as_secs_f64();
    (single, batched)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn post_batch(client: &Client, txs: &[Tx]) -> Result<usize, String> {
    let body = json!({ "txs": txs.iter().map(|t| hex::encode(t.raw())).collect::<Vec<_>>() });
    let r = client.post("/v1/txs/batch", &body)?;
    Ok(r["accepted"].as_u64().unwrap_or(0) as usize)
}

/// Credentials `keys` through the CA for a day (one transaction each, posted as one batch) and
/// waits until the last is committed. `spec(i)` gives the i-th key's role, institution and
/// display name. `api` must sign as the CA (it reads the CA's nonce and its transactions).
pub(super) fn credential_keys(
    api: &Client,
    ca: &Keypair,
    chain_id: &str,
    keys: &[Keypair],
    spec: impl Fn(usize) -> (Role, String, String),
) -> Result<(), String> {
    let ca_nonce = api.get(&format!("/v1/identities/{}", ca.public().to_hex()))?["next_nonce"]
        .as_u64()
        .ok_or("the node did not give the CA's next nonce")?;
    let now = now_ms();
    let txs: Vec<Tx> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (role, institution, display_name) = spec(i);
            let op = Operation::Identity(IdentityOp::IssueCredential {
                spec: CredentialSpec {
                    subject: k.public(),
                    role,
                    institution,
                    display_name,
                    valid_from_ms: now.saturating_sub(60_000),
                    valid_until_ms: now + 86_400_000,
                },
            });
            Tx::sign(
                Transaction { chain_id: chain_id.to_string(), signer: ca.public(), nonce: ca_nonce + i as u64, op },
                ca,
            )
        })
        .collect();
    let accepted = post_batch(api, &txs)?;
    if accepted != txs.len() {
        return Err(format!("the node accepted {accepted} of {} credentials", txs.len()));
    }
    let last = txs.last().map(Tx::id).ok_or("no keys to credential")?;
    medledger_client::tx::wait_committed(api, &last, Duration::from_secs(60))?;
    Ok(())
}

pub fn run(args: BenchArgs, json_out: bool) -> Result<(), String> {
    // A devnet serves HTTPS under its consortium CA: trust it unless told otherwise.
    let ca_pem = args.dir.join("tls/ca.pem");
    if !medledger_client::http::tls_enabled() && ca_pem.exists() {
        medledger_client::http::trust_consortium_ca(&ca_pem)?;
    }
    if let Some(n) = args.readings {
        let v = super::carebench::readings_load(&args.dir, n, usize::from(args.devices))?;
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if let Some(n) = args.referrals {
        let v = super::carebench::referrals(n)?;
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if let Some(n) = args.drug_blocks {
        let v = super::drugbench::validator_blocks(n as usize, args.replay_qmdb);
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if args.drug_verify || args.drug_load {
        let v = if args.drug_verify {
            super::drugbench::verify_in_process(args.events, args.blocks as usize, args.api)?
        } else {
            super::drugbench::load(&args.dir, args.serials, args.captures, usize::from(args.capture_lines))?
        };
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if args.state_proofs {
        let v = super::statebench::state_proofs(args.keys)?;
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if args.vault {
        std::fs::create_dir_all(&args.dir).map_err(|e| e.to_string())?;
        let v = super::readbench::vault(&args.dir, 5_000, args.record_bytes)?;
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    if args.reads {
        let rate = if args.rate == 0 { 1000 } else { args.rate };
        let v =
            super::readbench::reads(&args.dir, rate, args.seconds, args.threads.max(8), args.record_bytes, args.via)?;
        println!("{}", if json_out { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() });
        return Ok(());
    }
    let (single, batched) = ed25519_rates(16_384);
    let mut report = json!({
        "ed25519_single_per_s": single.round(),
        "ed25519_batched_per_s": batched.round(),
        "batch_speedup": (batched / single * 100.0).round() / 100.0,
    });
    if args.crypto_only {
        println!(
            "{}",
            if json_out {
                report.to_string()
            } else {
                format!("ed25519 verify: {single:.0}/s single, {batched:.0}/s batched ({:.2}x)", batched / single)
            }
        );
        return Ok(());
    }
    let genesis = read_genesis(&args.dir.join("genesis.json"))?;
    let ca = read_key(&args.dir.join("ca.key"))?;
    // The CA signs the bench's reads: it may see every transaction.
    // Each client starts at its own node and fails over to the others when it is unreachable.
    let addrs: Vec<String> = genesis.institutions.iter().map(|i| i.api_address.clone()).collect();
    let rotated = |i: usize| -> Vec<String> { addrs[i..].iter().chain(&addrs[..i]).cloned().collect() };
    let apis: Vec<Client> = (0..addrs.len()).map(|i| Client::with_nodes(&rotated(i)).with_key(ca.clone())).collect();
    let chain_id = genesis.chain_id.clone();
    let sign = |k: &Keypair, nonce: u64, op: Operation| {
        Tx::sign(Transaction { chain_id: chain_id.clone(), signer: k.public(), nonce, op }, k)
    };

    // Setup: credential the signers.
    let signers: Vec<Keypair> = (0..args.signers).map(|_| Keypair::generate()).collect();
    let now = now_ms();
    credential_keys(&apis[0], &ca, &chain_id, &signers, |i| {
        (Role::Doctor, genesis.institutions[i % genesis.institutions.len()].id.clone(), format!("bench signer {i}"))
    })?;

    // Pre-sign the load.
    let per_signer = args.txs.div_ceil(args.signers);
    let mut load: Vec<Vec<Tx>> = Vec::new();
    let tag = now.to_be_bytes();
    for (s, k) in signers.iter().enumerate() {
        let txs: Vec<Tx> = (0..per_signer as u64)
            .map(|n| {
                let mut d = [0u8; 32];
                d[..8].copy_from_slice(&tag);
                d[8..16].copy_from_slice(&(s as u64).to_be_bytes());
                d[16..24].copy_from_slice(&n.to_be_bytes());
                sign(k, n, Operation::Identity(IdentityOp::Attest { digest: Hash(d), label: String::new() }))
            })
            .collect();
        load.push(txs);
    }
    let total: usize = load.iter().map(Vec::len).sum();

    // Commit times, observed through the SSE stream of the first validator.
    let committed: Arc<Mutex<HashMap<Hash, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let blocks: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
    {
        let committed = committed.clone();
        let blocks = blocks.clone();
        let api = addrs.clone();
        let ca = ca.clone();
        std::thread::spawn(move || {
            let client = Client::with_nodes(&api).with_key(ca);
            let Ok(resp) = client.get_stream("/v1/events/blocks") else { return };
            let reader = std::io::BufReader::new(resp.into_reader());
            for line in reader.lines().map_while(Result::ok) {
                let Some(data) = line.strip_prefix("data:") else { continue };
                let t = Instant::now();
                let Ok(ev) = serde_json::from_str::<Value>(data.trim()) else { continue };
                let h = ev["height"].as_u64().unwrap_or(0);
                if ev["tx_count"].as_u64().unwrap_or(0) == 0 {
                    continue;
                }
                if let Ok(b) = client.get(&format!("/v1/blocks/{h}")) {
                    let ids: Vec<Hash> = b["tx_ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| Hash::from_hex(v.as_str()?).ok())
                        .collect();
                    blocks.lock().unwrap().push(ids.len());
                    let mut c = committed.lock().unwrap();
                    for id in ids {
                        c.insert(id, t);
                    }
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));

    // Submit: threads take signers round-robin; batches go to validators round-robin.
    let submitted: Arc<Mutex<Vec<(Hash, Instant)>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let mut handles = Vec::new();
    let load = Arc::new(load);
    for t in 0..args.threads {
        let load = load.clone();
        let submitted = submitted.clone();
        let addrs: Vec<String> = genesis.institutions.iter().map(|i| i.api_address.clone()).collect();
        let batch = args.batch;
        let threads = args.threads;
        let per_thread_rate = args.rate as f64 / args.threads as f64;
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let clients: Vec<Client> = (0..addrs.len())
                .map(|i| Client::with_nodes(&addrs[i..].iter().chain(&addrs[..i]).cloned().collect::<Vec<_>>()))
                .collect();
            let mine: Vec<&Vec<Tx>> = load.iter().skip(t).step_by(threads).collect();
            // Interleave signers so each batch spans several of them.
            let mut queue: Vec<&Tx> = Vec::new();
            let max = mine.iter().map(|v| v.len()).max().unwrap_or(0);
            for n in 0..max {
                for v in &mine {
                    if let Some(tx) = v.get(n) {
                        queue.push(tx);
                    }
                }
            }
            for (i, chunk) in queue.chunks(batch).enumerate() {
                let txs: Vec<Tx> = chunk.iter().map(|t| (*t).clone()).collect();
                let at = Instant::now();
                let client = &clients[(i + t) % clients.len()];
                let mut tries = 0;
                loop {
                    match post_batch(client, &txs) {
                        Ok(_) => break,
                        Err(e) if tries < 50 && e.contains("mempool_full") => {
                            tries += 1;
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => return Err(e),
                    }
                }
                submitted.lock().unwrap().extend(txs.iter().map(|t| (t.id(), at)));
                if per_thread_rate > 0.0 {
                    let due = start + Duration::from_secs_f64(((i + 1) * batch) as f64 / per_thread_rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.join().map_err(|_| "submitter panicked")??;
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = committed.lock().unwrap().len();
        if done >= total || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sub = submitted.lock().unwrap().clone();
    let com = committed.lock().unwrap().clone();
    let mut lat: Vec<f64> = Vec::new();
    let mut last_commit = start;
    for (id, at) in &sub {
        if let Some(c) = com.get(id) {
            lat.push(c.duration_since(*at).as_secs_f64() * 1000.0);
            if *c > last_commit {
                last_commit = *c;
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let window = last_commit.duration_since(start).as_secs_f64();
    let bl = blocks.lock().unwrap().clone();
    report["offered_tx_per_s"] = json!(args.rate);
    report["submitted"] = json!(sub.len());
    report["committed"] = json!(lat.len());
    report["submit_seconds"] = json!((submit_secs * 100.0).round() / 100.0);
    report["window_seconds"] = json!((window * 100.0).round() / 100.0);
    report["committed_tx_per_s"] = json!((lat.len() as f64 / window).round());
    report["latency_ms"] = json!({
        "p50": percentile(&lat, 0.5).round(),
        "p90": percentile(&lat, 0.9).round(),
        "p99": percentile(&lat, 0.99).round(),
        "max": lat.last().copied().unwrap_or(f64::NAN).round(),
    });
    report["blocks_with_txs"] = json!(bl.len());
    report["avg_txs_per_block"] = json!(if bl.is_empty() { 0 } else { bl.iter().sum::<usize>() / bl.len() });
    if json_out {
        println!("{report}");
    } else {
        println!("ed25519 verify (1 core): {single:.0}/s single, {batched:.0}/s batched ({:.2}x)", batched / single);
        println!(
            "{} submitted, {} committed in {:.2}s: {:.0} committed tx/s",
            sub.len(),
            lat.len(),
            window,
            lat.len() as f64 / window
        );
        println!(
            "commit latency ms: p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}  ({} blocks, {} txs/block avg)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            bl.len(),
            report["avg_txs_per_block"]
        );
    }
    if lat.len() < total {
        return Err(format!("only {} of {total} transactions committed within the time limit", lat.len()));
    }
    Ok(())
}
