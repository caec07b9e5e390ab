//! `medledger bench --state-proofs`: the authenticated state at scale, in memory (no devnet):
//! commit time per block, proof size and proof and verification time, for a state of `keys` keys.

use medledger_state::commitment::{commit, is_node_key, prove};
use medledger_state::{keys, MemState, WriteSet};
use medledger_types::state_proof::verify_entry;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Keys per block while the state is built.
const PER_BLOCK: usize = 10_000;
/// Keys sampled for proofs (each present and each absent).
const SAMPLES: usize = 1_000;

fn key(i: usize) -> Vec<u8> {
    format!("bench/{i:010}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    // About the size of a credential or a record version.
    let mut v = format!("value {i} ").into_bytes();
    v.resize(120, b'.');
    v
}

fn apply(state: &mut MemState, version: u64, mut w: WriteSet) -> (medledger_types::Hash, Duration) {
    w.insert(keys::HEIGHT.to_vec(), Some(version.to_be_bytes().to_vec()));
    let t = Instant::now();
    let (root, tree) = commit(state, version, &w);
    let took = t.elapsed();
    state.apply(&w);
    state.apply(&tree);
    (root, took)
}

fn stats(mut xs: Vec<f64>) -> Value {
    xs.sort_by(f64::total_cmp);
    let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let p = |q: f64| xs.get(((xs.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    json!({ "mean": (mean * 10.0).round() / 10.0, "p50": p(0.5), "p99": p(0.99), "max": p(1.0) })
}

pub fn state_proofs(n: usize) -> Result<Value, String> {
    let mut state = MemState::default();
    let mut version = 0u64;
    let mut build = Duration::ZERO;
    let mut start = 0;
    while start < n.max(1) {
        let w: WriteSet = (start..(start + PER_BLOCK).min(n)).map(|i| (key(i), Some(value(i)))).collect();
        build += apply(&mut state, version, w).1;
        version += 1;
        start += PER_BLOCK;
    }
    // A busy block on the full state: 2,000 transactions' worth of writes (a nonce and a
    // value each), spread over the key space.
    let step = (n / 4_000).max(1);
    let busy: WriteSet = (0..4_000).map(|j| (key((j * step) % n.max(1)), Some(value(j + n)))).collect();
    let (root, busy_time) = apply(&mut state, version, busy);
    let (mut sizes, mut prove_us, mut verify_us) = (Vec::new(), Vec::new(), Vec::new());
    for s in 0..SAMPLES {
        for k in [key((s * 7_919) % n.max(1)), key(n + s)] {
            let t = Instant::now();
            let (v, proof) = prove(&state, version, &k)?;
            prove_us.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            verify_entry(&root, &k, v.as_deref(), &proof)?;
            verify_us.push(t.elapsed().as_secs_f64() * 1e6);
            sizes.push(proof.len() as f64);
        }
    }
    // The tree as a node's store holds it after pruning: the latest version's nodes.
    state.prune_tree(version);
    let (tree_nodes, tree_bytes): (usize, usize) =
        state.0.iter().filter(|(k, _)| is_node_key(k)).fold((0, 0), |(c, b), (k, v)| (c + 1, b + k.len() + v.len()));
    Ok(json!({
        "keys": n,
        "build_blocks": version,
        "commit_ms_per_10k_new_keys": (build.as_secs_f64() * 1000.0 / version.max(1) as f64 * 10.0).round() / 10.0,
        "commit_ms_busy_block_4000_updates": (busy_time.as_secs_f64() * 1e4).round() / 10.0,
        "proof_bytes": stats(sizes),
        "prove_us": stats(prove_us),
        "verify_us": stats(verify_us),
        "tree_nodes": tree_nodes,
        "tree_bytes_per_key": (tree_bytes as f64 / n.max(1) as f64).round(),
    }))
}
