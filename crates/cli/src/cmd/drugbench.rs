//! `medledger bench --drug-verify` (in process) and `--drug-load` (on a devnet): pack
//! verification against a ledger of many custody events, commissioning and EPCIS capture rates,
//! and the public verification's latency through the API.

use medledger_client::keys::{read_genesis, read_key};
use medledger_client::tx::now_ms;
use medledger_client::Client;
use medledger_state::{drugs, execute_block, execute_unsealed, genesis_writes, nonce_of, BlockEnv, MemState};
use medledger_types::drugs::{epcis, DrugsOp, Epc, EventMeta, ProductSpec, Serial, Step};
use medledger_types::{Block, CredentialSpec, IdentityOp, Keypair, Operation, Role, Transaction, Tx};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const GTIN: &str = "10614141073464";
/// Serials per commissioning event (and per shipment) while the state is built.
const PER_EVENT: usize = 500;

pub(super) fn stats_us(mut xs: Vec<f64>) -> Value {
    xs.sort_by(f64::total_cmp);
    let p = |q: f64| xs.get(((xs.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({ "p50_us": r(p(0.5)), "p99_us": r(p(0.99)), "max_us": r(p(1.0)), "samples": xs.len() })
}

/// A chain executed in process, block by block, as one validator does (shared by the in-process
/// benchmarks of other domains).
pub(super) struct Builder {
    pub(super) genesis: medledger_types::Genesis,
    pub(super) state: MemState,
    pub(super) env: BlockEnv,
    /// Execute with the state tree (as a validator does), or only the domain writes.
    sealed: bool,
}

impl Builder {
    pub(super) fn sign(&self, key: &Keypair, nonce: u64, op: Operation) -> Tx {
        Tx::sign(Transaction { chain_id: self.env.chain_id.clone(), signer: key.public(), nonce, op }, key)
    }

    pub(super) fn run(&mut self, key: &Keypair, op: Operation) {
        let tx = self.sign(key, nonce_of(&self.state, &key.public()), op);
        self.block(&[tx]);
    }

    /// Executes one block of `txs` and applies it; every transaction must apply.
    pub(super) fn block(&mut self, txs: &[Tx]) {
        self.env.height += 1;
        self.env.timestamp_ms += 1;
        let (w, r) = if self.sealed {
            let ex = execute_block(&self.state, &self.env, txs);
            (ex.writes, ex.receipts)
        } else {
            execute_unsealed(&self.state, &self.env, txs)
        };
        assert!(r.iter().all(|r| r.is_applied()), "setup operation rejected: {:?}", r.iter().find(|r| !r.is_applied()));
        self.apply(&w);
    }

    /// Applies the writes of the block at `env.height`, pruning the state tree's stale nodes
    /// as often as a node's store does.
    fn apply(&mut self, writes: &medledger_state::WriteSet) {
        self.state.apply(writes);
        if self.sealed && self.env.height.is_multiple_of(medledger_storage::PRUNE_EVERY) {
            self.state.prune_tree(self.env.height);
        }
    }

    /// Genesis of four institutions `i0`..`i3` (admins `Keypair::from_seed(20 + i)`), and the
    /// CA's key.
    pub(super) fn genesis(sealed: bool) -> (Builder, Keypair) {
        let ca = Keypair::from_seed(1);
        let genesis = medledger_types::Genesis {
            chain_id: "bench".into(),
            genesis_time_ms: 1_800_000_000_000,
            ca_key: ca.public(),
            institutions: (0..4)
                .map(|i| medledger_types::GenesisInstitution {
                    id: format!("i{i}"),
                    name: format!("I{i}"),
                    validator_key: Keypair::from_seed(10 + i).public(),
                    admin_key: Keypair::from_seed(20 + i).public(),
                    p2p_address: format!("127.0.0.1:{}", 7000 + i),
                    api_address: format!("127.0.0.1:{}", 8000 + i),
                })
                .collect(),
        };
        let mut state = MemState::default();
        state.apply(&genesis_writes(&genesis));
        let env = BlockEnv {
            chain_id: "bench".into(),
            height: 0,
            timestamp_ms: genesis.genesis_time_ms,
            proposer: ca.public(),
        };
        (Builder { genesis, state, env, sealed }, ca)
    }

    /// Credentials `key` as `role` at `institution`.
    pub(super) fn credential(&mut self, ca: &Keypair, key: &Keypair, role: Role, institution: &str) {
        self.run(ca, credential(key, role, institution));
    }

    /// A state with a manufacturer (institution i0, owner of prefix 0614141 and product
    /// `GTIN`) and a distributor (i1), both credentialed.
    fn new(sealed: bool) -> (Builder, Keypair, Keypair) {
        let (mut b, ca) = Builder::genesis(sealed);
        let (maker, dist) = (Keypair::from_seed(30), Keypair::from_seed(31));
        for (k, role, inst) in [(&maker, Role::Manufacturer, "i0"), (&dist, Role::Distributor, "i1")] {
            b.credential(&ca, k, role, inst);
        }
        b.run(&ca, Operation::Drugs(bind_prefix()));
        b.run(&maker, Operation::Drugs(register_product()));
        (b, maker, dist)
    }
}

/// The CA's operation that credentials `key` as `role` at `institution`, for the benchmarks.
fn credential(key: &Keypair, role: Role, institution: &str) -> Operation {
    Operation::Identity(IdentityOp::IssueCredential {
        spec: CredentialSpec {
            subject: key.public(),
            role,
            institution: institution.into(),
            display_name: "bench".into(),
            valid_from_ms: 0,
            valid_until_ms: u64::MAX / 2,
        },
    })
}

/// The benchmarks' company prefix, bound to institution i0.
fn bind_prefix() -> DrugsOp {
    DrugsOp::BindPrefix { company_prefix: "0614141".into(), institution: "i0".into() }
}

/// The benchmarks' product, `GTIN`, under that prefix.
fn register_product() -> DrugsOp {
    DrugsOp::RegisterProduct {
        product: ProductSpec {
            gtin: GTIN.into(),
            name: "bench".into(),
            form: "tablet".into(),
            strength: "1 mg".into(),
            pack_size: 1,
            national_code: String::new(),
        },
    }
}

/// What a validator spends executing one full block of commissioning, state tree included:
/// blocks of `MAX_BLOCK_WEIGHT` units (transactions of 400 serials) on a growing state. The
/// block budget must keep this well under the consensus timeouts. Each block is then committed
/// to a redb store as a finalized block is (`store_commit`; every `PRUNE_EVERY`th commit also
/// prunes the state tree's stale nodes, so its mean is the figure to compare).
pub fn block_execution(blocks: usize) -> Value {
    let (mut b, maker, _) = Builder::new(true);
    let per_tx = 400;
    let sample = Operation::Drugs(DrugsOp::Commission {
        meta: EventMeta::now(0),
        gtin: GTIN.into(),
        lot: "BLOCKS".into(),
        expiry: "391231".into(),
        serials: vec![Serial(String::new()); per_tx],
    });
    let per_block = (medledger_types::block::MAX_BLOCK_WEIGHT / sample.weight()).max(1) as usize;
    let mut times = Vec::new();
    let mut commits = Vec::new();
    let (mut puts, mut deletes) = (0, 0);
    let mut nonce = nonce_of(&b.state, &maker.public());
    // Each block is also committed to a redb store, as a validator does once it is finalized.
    // The store starts from the state after the setup blocks, so its heights run behind the
    // tree's versions by their number: its first prune comes a few blocks early, which changes
    // the commit's mean over 64 blocks by little.
    let dir = std::env::temp_dir().join(format!("medledger-block-execution-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let store = medledger_storage::Store::open(&dir.join("ledger.redb")).expect("bench store");
    let writes: medledger_state::WriteSet = b.state.0.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    store
        .init_genesis(&medledger_node::chain::genesis_block(&b.genesis), &writes, b.genesis.hash())
        .expect("bench store");
    let mut parent = store.tip().expect("tip").expect("genesis").hash;
    for k in 0..blocks {
        let txs: Vec<Tx> = (0..per_block)
            .map(|t| {
                let serials = (0..per_tx).map(|i| Serial(format!("K{k:05}{t:03}{i:04}"))).collect();
                let op = DrugsOp::Commission {
                    meta: EventMeta::now(1_800_000_000_000),
                    gtin: GTIN.into(),
                    lot: "BLOCKS".into(),
                    expiry: "391231".into(),
                    serials,
                };
                nonce += 1;
                b.sign(&maker, nonce - 1, Operation::Drugs(op))
            })
            .collect();
        b.env.height += 1;
        b.env.timestamp_ms += 1;
        let t = Instant::now();
        let ex = execute_block(&b.state, &b.env, &txs);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(ex.receipts.iter().all(|r| r.is_applied()), "commissioning rejected");
        let d = ex.writes.values().filter(|v| v.is_none()).count();
        puts += ex.writes.len() - d;
        deletes += d;
        let block = Block::new(k as u64 + 1, parent, b.env.timestamp_ms, maker.public(), ex.state_root, txs);
        let t = Instant::now();
        store.commit_block(&block, None, &ex.writes, &ex.receipts).expect("bench commit");
        commits.push(t.elapsed().as_secs_f64() * 1e6);
        parent = block.digest();
        b.apply(&ex.writes);
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    let mut v = stats_us(times);
    v["serials_per_block"] = json!(per_block * per_tx);
    v["store_writes_per_block"] = json!({ "puts": puts / blocks.max(1), "deletes": deletes / blocks.max(1) });
    v["store_commit_mean_us"] = json!((commits.iter().sum::<f64>() / commits.len().max(1) as f64).round());
    v["store_commit"] = stats_us(commits);
    v["note"] = json!("one validator executing a full block of commissioning, state tree included, on one core, then committing it to its redb store");
    v
}

/// What one validator spends per block as a node does it: `blocks` full blocks of
/// commissioning (transactions of 400 serials), then `blocks` full blocks of EPCIS capture
/// (documents of 40 commissioning events of 2 serials, as `--drug-load` sends), each executed
/// over the node's redb store (its reads go to the store, as a node's do) and committed to it.
/// The setup (credential, prefix, product) goes through the store too, so its heights are the
/// tree's versions and it prunes as a node's does.
pub fn validator_blocks(blocks: usize, replay_qmdb: bool) -> Value {
    let (b, ca) = Builder::genesis(true);
    let maker = Keypair::from_seed(30);
    let dir = std::env::temp_dir().join(format!("medledger-validator-blocks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    let store = medledger_storage::Store::open(&dir.join("ledger.redb")).expect("bench store");
    store
        .init_genesis(&medledger_node::chain::genesis_block(&b.genesis), &genesis_writes(&b.genesis), b.genesis.hash())
        .expect("bench store");
    let mut env = b.env.clone();
    let mut parent = store.tip().expect("tip").expect("genesis").hash;
    // For the replay: each timed block's domain writes, and a second store that keeps the
    // blocks and receipts only (what a node whose state lived elsewhere would still store).
    let mut replayed: Vec<super::commitbench::Replayed> = Vec::new();
    let blocks_only = if replay_qmdb {
        let s = medledger_storage::Store::open(&dir.join("blocks.redb")).expect("bench store");
        s.init_genesis(
            &medledger_node::chain::genesis_block(&b.genesis),
            &genesis_writes(&b.genesis),
            b.genesis.hash(),
        )
        .expect("bench store");
        Some(s)
    } else {
        None
    };
    // Executes `txs` as the next block over the store (as `execute_block` does: the domain
    // logic, then sealing the state tree) and commits it: (domain µs, seal µs, commit µs).
    let mut block = |txs: Vec<Tx>, kind: &'static str| -> (f64, f64, f64) {
        env.height += 1;
        env.timestamp_ms += 1;
        let snap = store.snapshot().expect("snapshot");
        let t = Instant::now();
        let (domain, receipts) = execute_unsealed(&snap, &env, &txs);
        let d = t.elapsed().as_secs_f64() * 1e6;
        let kept = blocks_only.as_ref().map(|_| domain.clone());
        let t = Instant::now();
        let (writes, state_root) = medledger_state::seal(&snap, env.height, domain);
        let s = t.elapsed().as_secs_f64() * 1e6;
        drop(snap);
        assert!(receipts.iter().all(|r| r.is_applied()), "{:?}", receipts.iter().find(|r| !r.is_applied()));
        let blk = Block::new(env.height, parent, env.timestamp_ms, ca.public(), state_root, txs);
        let t = Instant::now();
        store.commit_block(&blk, None, &writes, &receipts).expect("bench commit");
        let c = t.elapsed().as_secs_f64() * 1e6;
        parent = blk.digest();
        if let (Some(bs), Some(writes)) = (&blocks_only, kept) {
            let t = Instant::now();
            bs.commit_block(&blk, None, &medledger_state::WriteSet::new(), &receipts).expect("bench commit");
            replayed.push(super::commitbench::Replayed {
                kind,
                writes,
                block_store_us: t.elapsed().as_secs_f64() * 1e6,
            });
        }
        (d, s, c)
    };
    let sign = |key: &Keypair, nonce: u64, op: Operation| b.sign(key, nonce, op);
    let dist = Keypair::from_seed(31);
    block(vec![sign(&ca, 0, credential(&maker, Role::Manufacturer, "i0"))], "setup");
    block(vec![sign(&ca, 1, Operation::Drugs(bind_prefix()))], "setup");
    block(vec![sign(&maker, 0, Operation::Drugs(register_product()))], "setup");
    block(vec![sign(&ca, 2, credential(&dist, Role::Distributor, "i1"))], "setup");
    // Each signer's next nonce: the manufacturer's, the distributor's.
    let mut nonces = [1u64, 0];
    let commission = |tag: String, n: usize| DrugsOp::Commission {
        meta: EventMeta::now(1_800_000_000_000),
        gtin: GTIN.into(),
        lot: "VB".into(),
        expiry: "391231".into(),
        serials: (0..n).map(|i| Serial(format!("{tag}{i:04}"))).collect(),
    };
    let capture = |tag: String| DrugsOp::Capture {
        events: (0..40).map(|e| Step(commission(format!("{tag}{e:02}"), 2))).collect(),
    };
    // Commissioning transaction `t` of block `k`: its serials' prefix, and the packs it made.
    let tag = |k: usize, t: usize| format!("V{k:05}{t:03}");
    let packs = |k: usize, t: usize| -> Vec<Epc> {
        let tag = tag(k, t);
        (0..400).map(|i| Epc::sgtin(GTIN, &format!("{tag}{i:04}"))).collect()
    };
    let mut run =
        |what: &'static str, who: usize, units_per_tx: usize, make: &dyn Fn(usize, usize) -> DrugsOp| -> Value {
            let per_block =
                (medledger_types::block::MAX_BLOCK_WEIGHT / Operation::Drugs(make(0, 0)).weight()).max(1) as usize;
            let (mut exec, mut commit, mut domain) = (Vec::new(), Vec::new(), Vec::new());
            for k in 0..blocks {
                let txs: Vec<Tx> = (0..per_block)
                    .map(|t| {
                        nonces[who] += 1;
                        sign([&maker, &dist][who], nonces[who] - 1, Operation::Drugs(make(k, t)))
                    })
                    .collect();
                let (d, s, c) = block(txs, what);
                domain.push(d);
                exec.push(d + s);
                commit.push(c);
            }
            let units = (per_block * units_per_tx) as f64;
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let (e, c, d) = (mean(&exec), mean(&commit), mean(&domain));
            json!({
                "per_block": units, "execute_mean_us": e.round(), "commit_mean_us": c.round(),
                "domain_mean_us": d.round(), "seal_mean_us": (e - d).round(),
                "execute_us_per_unit": (e / units * 100.0).round() / 100.0,
                "commit_us_per_unit": (c / units * 100.0).round() / 100.0,
                "execute": stats_us(exec), "commit": stats_us(commit),
            })
        };
    let commissioning = run("commissioning", 0, 400, &|k, t| commission(tag(k, t), 400));
    let captured = run("capture", 0, 40, &|k, t| capture(format!("W{k:05}{t:03}")));
    // The commissioned packs shipped to the distributor, then received: blocks that replace
    // items rather than make them.
    let meta = || EventMeta::now(1_800_000_000_000);
    let shipped = run("shipping", 0, 400, &|k, t| DrugsOp::Ship { meta: meta(), epcs: packs(k, t), to: "i1".into() });
    let received =
        run("receiving", 1, 400, &|k, t| DrugsOp::Receive { meta: meta(), epcs: packs(k, t), from: "i0".into() });
    // For the replay's comparison: proofs from the state tree over the final state, of the
    // packs the replay proves and of serials never made (generation only, each alone).
    let proofs = replay_qmdb.then(|| {
        let present = super::commitbench::proof_keys(&replayed);
        let absent: Vec<Vec<u8>> = (0..super::commitbench::PROOF_SAMPLE)
            .map(|i| drugs::key::item(&Epc::sgtin(GTIN, &format!("NEVER{i:05}"))))
            .collect();
        let snap = store.snapshot().expect("snapshot");
        let version = medledger_state::commitment::tree_version(&snap).expect("a state tree");
        let root = store.tip().expect("tip").expect("a tip").state_root;
        let time = |keys: &[Vec<u8>], exist: bool| -> Value {
            let (mut us, mut bytes) = (Vec::with_capacity(keys.len()), 0);
            for k in keys {
                let t = Instant::now();
                let (value, proof) = medledger_state::commitment::prove(&snap, version, k).expect("a proof");
                us.push(t.elapsed().as_secs_f64() * 1e6);
                assert_eq!(value.is_some(), exist, "{}", String::from_utf8_lossy(k));
                medledger_types::state_proof::verify_entry(&root, k, value.as_deref(), &proof)
                    .expect("the tree's proof verifies against the block's state root");
                bytes = bytes.max(proof.len());
            }
            super::commitbench::proof_summary(us, bytes)
        };
        let tree = json!({ "present": time(&present, true), "absent": time(&absent, false) });
        (present, absent, tree)
    });
    drop(store);
    drop(blocks_only);
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = json!({
        "commissioning_serials": commissioning,
        "capture_events": captured,
        "shipping_packs": shipped,
        "receiving_packs": received,
        "note": "one validator on one core: each full block executed over its redb store, then committed to it; units are serials for commissioning, events for capture, packs for shipping and receiving"
    });
    if let Some((present, absent, tree)) = proofs {
        out["qmdb_replay"] = super::commitbench::replay(replayed, &present, &absent, tree);
    }
    out
}

/// Builds a state of at least `events` pack-level custody events (each pack commissioned,
/// shipped and received: three events on its trail), then times `verify` on random packs.
pub fn verify_in_process(events: usize, blocks: usize, api: bool) -> Result<Value, String> {
    let blocks = block_execution(blocks);
    let (mut b, maker, dist) = Builder::new(false);
    let packs = events.div_ceil(3).max(PER_EVENT);
    let t = Instant::now();
    let mut made = 0usize;
    let mut lot = 0usize;
    while made < packs {
        // A new lot every 100,000 packs.
        if made.is_multiple_of(100_000) {
            lot += 1;
        }
        let serials: Vec<Serial> = (made..made + PER_EVENT).map(|i| Serial(format!("S{i:011}"))).collect();
        let epcs: Vec<Epc> = serials.iter().map(|s| Epc::sgtin(GTIN, &s.0)).collect();
        let m = || EventMeta::now(1_800_000_000_000);
        b.run(
            &maker,
            Operation::Drugs(DrugsOp::Commission {
                meta: m(),
                gtin: GTIN.into(),
                lot: format!("L{lot}"),
                expiry: "391231".into(),
                serials,
            }),
        );
        b.run(&maker, Operation::Drugs(DrugsOp::Ship { meta: m(), epcs: epcs.clone(), to: "i1".into() }));
        b.run(&dist, Operation::Drugs(DrugsOp::Receive { meta: m(), epcs, from: "i0".into() }));
        made += PER_EVENT;
    }
    let build_s = t.elapsed().as_secs_f64();
    let keys = b.state.0.len();
    // Random packs, and as many unknown serials (the counterfeit path).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let serial = format!("S{:011}", x % made as u64);
        let t = Instant::now();
        let v = drugs::verify(&b.state, GTIN, &serial, None, None, 1_900_000_000_000);
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert!(v.sellable, "{serial}: {:?}", v.status);
        known.push(us);
        let fake = format!("X{i:011}");
        let t = Instant::now();
        let v = drugs::verify(&b.state, GTIN, &fake, None, None, 1_900_000_000_000);
        unknown.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(v.status, drugs::VerifyStatus::UnknownSerial);
    }
    let mut out = json!({
        "custody_events": made * 3,
        "packs": made,
        "state_keys": keys,
        "build_seconds": (build_s * 10.0).round() / 10.0,
        "verify_genuine": stats_us(known),
        "verify_unknown_serial": stats_us(unknown),
        "block_execution": blocks,
        "note": "in process, over the state machine's in-memory state view; each verification is three point reads"
    });
    if api {
        out["api"] = verify_through_api(b, made)?;
    }
    Ok(out)
}

/// The same ledger in a node's store, verified through the node's HTTPS API on loopback: the
/// public route (`GET /v1/drugs/verify`: verification and the public trail), one request at a
/// time on one kept-alive connection.
fn verify_through_api(b: Builder, made: usize) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("medledger-drug-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let t = Instant::now();
        let store = std::sync::Arc::new(
            medledger_storage::Store::open(&dir.join("ledger.redb")).map_err(|e| format!("store: {e}"))?,
        );
        let Builder { genesis, state, .. } = b;
        // The whole ledger as the stored state (the genesis block heads it; nothing here reads
        // the state root).
        let writes: medledger_state::WriteSet = state.0.into_iter().map(|(k, v)| (k, Some(v))).collect();
        store
            .init_genesis(&medledger_node::chain::genesis_block(&genesis), &writes, genesis.hash())
            .map_err(|e| format!("store: {e}"))?;
        drop(writes);
        let store_s = t.elapsed().as_secs_f64();
        let ca = Keypair::from_seed(1);
        let ca_pem = medledger_tls::ca_certificate(&ca, &genesis.chain_id)?;
        let (cert, key) = medledger_tls::node_certificate(&ca, &genesis.chain_id, "i0", &["127.0.0.1".into()])?;
        for (name, pem) in [("ca.pem", &ca_pem), ("node.pem", &cert), ("node.key", &key)] {
            std::fs::write(dir.join(name), pem).map_err(|e| e.to_string())?;
        }
        if medledger_client::http::tls_enabled() {
            return Err("--api makes its own consortium CA: do not pass --ca-cert".into());
        }
        medledger_client::http::trust_consortium_ca(&dir.join("ca.pem"))?;
        let tls = medledger_tls::server_config(&dir.join("node.pem"), &dir.join("node.key"))?;
        let addr = medledger_node::run::spawn_read_api(genesis, store, tls)?;
        let client = Client::new(&addr.to_string());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..22_000usize {
            let serial = format!("S{:011}", next() % made as u64);
            let t = Instant::now();
            let v = medledger_client::drugs::verify_public(&client, &format!("(01){GTIN}(21){serial}"))?;
            let us = t.elapsed().as_secs_f64() * 1e6;
            if v["verification"]["code"] != "sellable" {
                return Err(format!("{serial} verified as {}", v["verification"]["code"]));
            }
            // The first 2,000 warm the connection and the page cache.
            if i >= 2_000 {
                known.push(us);
            }
            if i % 10 == 0 {
                let t = Instant::now();
                let v = medledger_client::drugs::verify_public(&client, &format!("(01){GTIN}(21)X{i:011}"))?;
                unknown.push(t.elapsed().as_secs_f64() * 1e6);
                if v["verification"]["code"] != "unknown_serial" {
                    return Err(format!("a fake serial verified as {}", v["verification"]["code"]));
                }
            }
        }
        let bytes = std::fs::metadata(dir.join("ledger.redb")).map(|m| m.len()).unwrap_or(0);
        Ok(json!({
            "store_seconds": (store_s * 10.0).round() / 10.0,
            "store_bytes": bytes,
            "verify_genuine": stats_us(known),
            "verify_unknown_serial": stats_us(unknown),
            "note": "one HTTPS request at a time on a kept-alive loopback connection to the node's API over its redb store; the answer includes the public trail",
        }))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// On a running devnet: commissioning rate, EPCIS capture rate, public verification latency.
pub fn load(dir: &Path, serials: usize, captures: usize, lines: usize) -> Result<Value, String> {
    let genesis = read_genesis(&dir.join("genesis.json"))?;
    let maker =
        read_key(&dir.join("demo/maker-mia.key")).map_err(|e| format!("{e} (start the devnet with its demo data)"))?;
    let apis: Vec<String> = genesis.institutions.iter().map(|i| i.api_address.clone()).collect();
    let client = Client::new(&apis[0]).with_key(maker.clone());
    let ident = client.get(&format!("/v1/identities/{}", maker.public().to_hex()))?;
    let mut nonce = ident["next_nonce"].as_u64().ok_or("no next_nonce")?;
    let run = now_ms();
    let sign = |nonce: u64, op: DrugsOp| {
        Tx::sign(
            Transaction { chain_id: genesis.chain_id.clone(), signer: maker.public(), nonce, op: Operation::Drugs(op) },
            &maker,
        )
    };
    // Commissioning: 400 serials of 13 characters per transaction (a transaction is at most
    // 8 KiB), batches of 100 transactions.
    let per_tx = 400;
    let tag = run % 100_000;
    let txs: Vec<Tx> = (0..serials.div_ceil(per_tx))
        .map(|t| {
            let s: Vec<Serial> = (0..per_tx).map(|i| Serial(format!("B{tag:05}{:07}", t * per_tx + i))).collect();
            let op = DrugsOp::Commission {
                meta: EventMeta::now(now_ms()),
                gtin: GTIN.into(),
                lot: format!("BENCH{}", run % 100_000),
                expiry: "391231".into(),
                serials: s,
            };
            nonce += 1;
            sign(nonce - 1, op)
        })
        .collect();
    let t = Instant::now();
    for chunk in txs.chunks(100) {
        let body = json!({ "txs": chunk.iter().map(|t| hex::encode(t.raw())).collect::<Vec<_>>() });
        let r = client.post("/v1/txs/batch", &body)?;
        if let Some(bad) = r["results"].as_array().and_then(|v| v.iter().find(|x| !x["error"].is_null())) {
            return Err(format!("a commissioning transaction was refused: {bad}"));
        }
    }
    let last = txs.last().ok_or("no transactions")?.id();
    medledger_client::tx::wait_committed(&client, &last, Duration::from_secs(600))?;
    let commission_s = t.elapsed().as_secs_f64();
    // EPCIS capture: documents of 40 commissioning events (2 serials each) from `lines`
    // capture lines at once. A line is a manufacturer key of the maker's institution (the CA
    // credentials them first); each sends its own documents in turn, as its nonces must arrive
    // in order.
    let per_doc = 40;
    let ca = read_key(&dir.join("ca.key"))?;
    let institution =
        ident["credential"]["institution"].as_str().ok_or("the manufacturer holds no credential")?.to_string();
    let line_keys: Vec<Keypair> = (0..lines.max(1)).map(|_| Keypair::generate()).collect();
    let ca_client = Client::new(&apis[0]).with_key(ca.clone());
    super::bench::credential_keys(&ca_client, &ca, &genesis.chain_id, &line_keys, |i| {
        (Role::Manufacturer, institution.clone(), format!("capture line {i}"))
    })?;
    let per_line = captures.div_ceil(line_keys.len());
    let work: Vec<Vec<(Value, Tx)>> = line_keys
        .iter()
        .enumerate()
        .map(|(l, k)| {
            (0..per_line)
                .map(|n| {
                    let d = l * per_line + n;
                    let events: Vec<Value> = (0..per_doc)
                        .map(|e| {
                            let op = DrugsOp::Commission {
                                meta: EventMeta::now(now_ms()),
                                gtin: GTIN.into(),
                                lot: format!("CAP{}", run % 100_000),
                                expiry: "391231".into(),
                                serials: (0..2).map(|i| Serial(format!("C{tag:05}{d:05}{e:02}{i}"))).collect(),
                            };
                            epcis::event_json(&op, &|_| Some(7)).unwrap_or(Value::Null)
                        })
                        .collect();
                    let doc = epcis::document(events, now_ms());
                    let steps: Vec<Step> = epcis::parse_value(&doc).unwrap_or_default();
                    let body = Transaction {
                        chain_id: genesis.chain_id.clone(),
                        signer: k.public(),
                        nonce: n as u64,
                        op: Operation::Drugs(DrugsOp::Capture { events: steps }),
                    };
                    (doc, Tx::sign(body, k))
                })
                .collect()
        })
        .collect();
    let docs = per_line * line_keys.len();
    let lasts: Vec<_> = work.iter().filter_map(|w| w.last().map(|d| d.1.id())).collect();
    let t = Instant::now();
    // Each line posts to the validators in turn, as capture stations of several sites would.
    let sent: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(l, docs)| {
                let c = Client::new(&apis[l % apis.len()]).with_key(maker.clone());
                scope.spawn(move || -> Result<(), String> {
                    for (doc, tx) in docs {
                        c.post("/v1/drugs/capture", &json!({ "document": doc, "tx": hex::encode(tx.raw()) }))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a capture line panicked".into()))).collect()
    });
    sent.into_iter().collect::<Result<Vec<()>, String>>()?;
    for last in &lasts {
        let st = medledger_client::tx::wait_committed(&ca_client, last, Duration::from_secs(600))?;
        if st["receipt"]["outcome"]["status"] != "applied" {
            return Err(format!("a capture line's last document was rejected: {}", st["receipt"]["outcome"]));
        }
    }
    let capture_s = t.elapsed().as_secs_f64();
    // Public verification through the API (no key), from another node.
    let public = Client::new(&apis[1 % apis.len()]);
    let mut lat = Vec::new();
    for i in 0..2000 {
        let serial = format!("B{tag:05}{:07}", (i * 7919) % serials.max(1));
        let t = Instant::now();
        let v = medledger_client::drugs::verify_public(&public, &format!("(01){GTIN}(21){serial}"))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if v["verification"]["code"] != "sellable" {
            return Err(format!("{serial} verified as {}", v["verification"]["code"]));
        }
    }
    // Blocks each validator executed per block committed: 1 when no block is executed twice
    // and no view abandons a sibling (counted since each validator started, demo data included).
    let executions: Vec<Value> = apis
        .iter()
        .map(|a| -> Result<Value, String> {
            let text = Client::new(a).get_text("/metrics")?;
            let count = |name: &str| {
                let prefix = format!("medledger_{name} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse::<f64>().ok())
                    .ok_or(format!("{a} reports no medledger_{name} in /metrics"))
            };
            let ratio = count("executed_blocks_total")? / count("committed_blocks_total")?.max(1.0);
            Ok(json!((ratio * 100.0).round() / 100.0))
        })
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "executions_per_committed_block": executions,
        "commissioning": { "serials": txs.len() * per_tx, "transactions": txs.len(), "seconds": (commission_s * 100.0).round() / 100.0,
                           "serials_per_s": ((txs.len() * per_tx) as f64 / commission_s).round() },
        "epcis_capture": { "documents": docs, "events": docs * per_doc, "lines": line_keys.len(), "seconds": (capture_s * 100.0).round() / 100.0,
                           "events_per_s": ((docs * per_doc) as f64 / capture_s).round() },
        "public_verify_api": stats_us(lat),
    }))
}
