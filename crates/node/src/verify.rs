//! Offline verification: a single inclusion proof, or a whole stored chain.

use crate::consensus::verify_certificate;
use medledger_state::{execute_block, genesis_writes, BlockEnv, MemState};
use medledger_storage::Store;
use medledger_types::inclusion::ProofBundle;
use medledger_types::{Genesis, Tx};

/// Checks a proof bundle against the genesis file (see [`medledger_types::inclusion::verify`]).
pub fn verify_proof(g: &Genesis, p: &ProofBundle) -> Result<String, String> {
    medledger_types::inclusion::verify(g, p).map(|(_, msg)| msg)
}

/// Summary of a full-chain check.
#[derive(Debug)]
pub struct ChainReport {
    pub height: u64,
    pub blocks: u64,
    pub transactions: u64,
    pub certificates: u64,
}

/// Re-verifies a stored chain from genesis: hash links, tx roots, every transaction signature,
/// certificates, and the state root of every block by re-executing it from scratch.
pub fn verify_chain(g: &Genesis, store: &Store) -> Result<ChainReport, String> {
    let err = |e: medledger_storage::StoreError| e.to_string();
    let tip = store.tip().map_err(err)?.ok_or("the store is empty")?;
    let g0 = crate::chain::genesis_block(g);
    let stored0 = store.block(0).map_err(err)?.ok_or("genesis block missing")?;
    if stored0 != g0 {
        return Err("stored genesis block differs from the genesis file".into());
    }
    let mut state = MemState::default();
    state.apply(&genesis_writes(g));
    let mut prev = g0;
    let mut report = ChainReport { height: tip.height, blocks: 1, transactions: 0, certificates: 0 };
    let mut uncovered: Vec<u64> = Vec::new();
    for h in 1..=tip.height {
        let b = store.block(h).map_err(err)?.ok_or_else(|| format!("block {h} missing"))?;
        if b.header.parent != prev.digest() || b.height() != h {
            return Err(format!("block {h} does not link to block {}", h - 1));
        }
        if b.header.timestamp_ms <= prev.header.timestamp_ms {
            return Err(format!("block {h} timestamp does not increase"));
        }
        if g.institution_of_validator(&b.header.proposer).is_none() {
            return Err(format!("block {h} proposer is not a genesis validator"));
        }
        let refs: Vec<&Tx> = b.txs.iter().collect();
        if let Some(i) = medledger_types::tx::verify_signatures(&refs).iter().position(|ok| !ok) {
            return Err(format!("block {h} transaction {i} has a bad signature"));
        }
        let env = BlockEnv {
            chain_id: g.chain_id.clone(),
            height: h,
            timestamp_ms: b.header.timestamp_ms,
            proposer: b.header.proposer,
        };
        let ex = execute_block(&state, &env, &b.txs);
        if ex.state_root != b.header.state_root {
            return Err(format!("block {h} state root does not match re-execution"));
        }
        let stored_receipts = store.receipts(h).map_err(err)?;
        if stored_receipts != ex.receipts {
            return Err(format!("block {h} stored receipts differ from re-execution"));
        }
        state.apply(&ex.writes);
        if h.is_multiple_of(medledger_storage::PRUNE_EVERY) {
            // As the store does: the tree's stale nodes would otherwise pile up in memory.
            state.prune_tree(h);
        }
        uncovered.push(h);
        if let Some(cert) = store.certificate(h).map_err(err)? {
            verify_certificate(g, &cert, &b.digest()).map_err(|e| format!("block {h}: {e}"))?;
            report.certificates += 1;
            uncovered.clear();
        }
        report.blocks += 1;
        report.transactions += b.txs.len() as u64;
        prev = b;
    }
    if let Some(first) = uncovered.first() {
        return Err(format!("blocks {first}..={} are not covered by any finalization certificate", tip.height));
    }
    Ok(report)
}
