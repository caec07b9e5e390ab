//! The bounded mempool: admitted, signature-checked transactions waiting for a block.
//!
//! Limits are explicit: at most [`MempoolConfig::max_txs`] transactions in all, at most
//! [`MempoolConfig::max_per_signer`] per signer, and nonces at most `max_per_signer` ahead of the
//! signer's committed nonce. Selection is round-robin across signers so one busy signer cannot
//! starve the others, and takes each signer's transactions in nonce order without gaps.

use medledger_state::{nonce_of, StateRead};
use medledger_types::{Hash, PublicKey, Tx};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

#[derive(Clone, Debug)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_per_signer: usize,
    /// How many recently seen (verified) tx ids to remember for block verification.
    pub seen_capacity: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { max_txs: 200_000, max_per_signer: 4096, seen_capacity: 400_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction {0} is already pending")]
    Duplicate(Hash),
    #[error("mempool is full ({0} transactions)")]
    Full(usize),
    #[error("signer already has {0} pending transactions")]
    SignerFull(usize),
    #[error("nonce {nonce} is too far ahead of the next expected {expected}")]
    NonceGap { nonce: u64, expected: u64 },
    #[error("nonce {0} is already taken by a pending transaction")]
    NonceTaken(u64),
}

#[derive(Default)]
pub struct Mempool {
    cfg: MempoolConfig,
    by_signer: HashMap<PublicKey, BTreeMap<u64, Tx>>,
    ids: HashSet<Hash>,
    /// Signers with pending transactions, in round-robin order.
    order: VecDeque<PublicKey>,
    len: usize,
    /// Ids of transactions whose signatures this node verified (bounded FIFO).
    seen: HashSet<Hash>,
    seen_order: VecDeque<Hash>,
}

impl Mempool {
    pub fn new(cfg: MempoolConfig) -> Self {
        Mempool { cfg, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn config(&self) -> &MempoolConfig {
        &self.cfg
    }

    /// Remembers that `id`'s signature was verified by this node.
    pub fn mark_verified(&mut self, id: Hash) {
        if self.seen.insert(id) {
            self.seen_order.push_back(id);
            while self.seen_order.len() > self.cfg.seen_capacity {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    pub fn was_verified(&self, id: &Hash) -> bool {
        self.seen.contains(id)
    }

    /// Highest nonce `signer` has pending here, if any.
    pub fn max_pending_nonce(&self, signer: &PublicKey) -> Option<u64> {
        self.by_signer.get(signer).and_then(|q| q.keys().next_back().copied())
    }

    /// Every pending transaction of `signer`, in nonce order.
    pub fn pending_of(&self, signer: &PublicKey) -> Vec<Tx> {
        self.by_signer.get(signer).map(|q| q.values().cloned().collect()).unwrap_or_default()
    }

    /// The exact bytes of every pending transaction (for rewriting the write-ahead log).
    pub fn pending_raw(&self) -> Vec<Vec<u8>> {
        self.by_signer.values().flat_map(|m| m.values().map(|t| t.raw().to_vec())).collect()
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.ids.contains(id)
    }

    /// Adds a transaction whose signature and state precheck already passed.
    /// `expected_nonce` is the signer's next nonce in committed state.
    pub fn admit(&mut self, tx: Tx, expected_nonce: u64) -> Result<(), AdmitError> {
        let id = tx.id();
        if self.ids.contains(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        if self.len >= self.cfg.max_txs {
            return Err(AdmitError::Full(self.len));
        }
        let body = tx.body();
        if body.nonce >= expected_nonce.saturating_add(self.cfg.max_per_signer as u64) {
            return Err(AdmitError::NonceGap { nonce: body.nonce, expected: expected_nonce });
        }
        let signer = body.signer;
        let queue = self.by_signer.entry(signer).or_default();
        if queue.len() >= self.cfg.max_per_signer {
            return Err(AdmitError::SignerFull(queue.len()));
        }
        if queue.contains_key(&body.nonce) {
            return Err(AdmitError::NonceTaken(body.nonce));
        }
        if queue.is_empty() {
            self.order.push_back(signer);
        }
        queue.insert(body.nonce, tx);
        self.ids.insert(id);
        self.len += 1;
        self.mark_verified(id);
        Ok(())
    }

    /// Picks up to `max` transactions that are executable on `state` (nonce-contiguous per
    /// signer), skipping any id in `exclude` (already in an unfinalized ancestor).
    pub fn select(&self, state: &dyn StateRead, max: usize, exclude: &HashSet<Hash>) -> Vec<Tx> {
        let mut cursors: Vec<(PublicKey, u64)> = self.order.iter().map(|s| (*s, nonce_of(state, s))).collect();
        let mut out = Vec::new();
        let mut progressed = true;
        while out.len() < max && progressed {
            progressed = false;
            for (signer, next) in cursors.iter_mut() {
                if out.len() >= max {
                    break;
                }
                let Some(q) = self.by_signer.get(signer) else { continue };
                while let Some(tx) = q.get(next) {
                    *next += 1;
                    if exclude.contains(&tx.id()) {
                        continue;
                    }
                    out.push(tx.clone());
                    progressed = true;
                    break;
                }
            }
        }
        out
    }

    /// Drops transactions made obsolete by committed state: included ones and stale nonces.
    pub fn prune(&mut self, state: &dyn StateRead, touched: impl IntoIterator<Item = PublicKey>) {
        for signer in touched {
            let next = nonce_of(state, &signer);
            let Some(q) = self.by_signer.get_mut(&signer) else { continue };
            let stale: Vec<u64> = q.range(..next).map(|(n, _)| *n).collect();
            for n in stale {
                if let Some(tx) = q.remove(&n) {
                    self.ids.remove(&tx.id());
                    self.len -= 1;
                }
            }
            if q.is_empty() {
                self.by_signer.remove(&signer);
                self.order.retain(|s| s != &signer);
            }
        }
        debug_assert_eq!(self.len, self.ids.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_state::MemState;
    use medledger_types::{IdentityOp, Keypair, Operation, Transaction};

    fn tx(k: &Keypair, nonce: u64) -> Tx {
        Tx::sign(
            Transaction {
                chain_id: "c".into(),
                signer: k.public(),
                nonce,
                op: Operation::Identity(IdentityOp::Attest { digest: Hash([nonce as u8; 32]), label: String::new() }),
            },
            k,
        )
    }

    #[test]
    fn limits_are_enforced() {
        let mut m = Mempool::new(MempoolConfig { max_txs: 3, max_per_signer: 2, seen_capacity: 10 });
        let a = Keypair::from_seed(1);
        let b = Keypair::from_seed(2);
        m.admit(tx(&a, 0), 0).unwrap();
        assert!(matches!(m.admit(tx(&a, 0), 0), Err(AdmitError::Duplicate(_))));
        assert!(matches!(m.admit(tx(&a, 5), 0), Err(AdmitError::NonceGap { .. })));
        m.admit(tx(&a, 1), 0).unwrap();
        m.admit(tx(&b, 0), 0).unwrap();
        assert!(matches!(m.admit(tx(&b, 1), 0), Err(AdmitError::Full(3))));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn selection_is_fair_and_gap_free() {
        let mut m = Mempool::new(MempoolConfig::default());
        let a = Keypair::from_seed(1);
        let b = Keypair::from_seed(2);
        for n in 0..5 {
            m.admit(tx(&a, n), 0).unwrap();
        }
        m.admit(tx(&b, 0), 0).unwrap();
        m.admit(tx(&b, 2), 0).unwrap(); // gap at 1: not selectable
        let state = MemState::default();
        let picked = m.select(&state, 4, &HashSet::new());
        let signers: Vec<_> = picked.iter().map(|t| (t.body().signer == a.public(), t.body().nonce)).collect();
        assert_eq!(signers, vec![(true, 0), (false, 0), (true, 1), (true, 2)]);
        let all = m.select(&state, 100, &HashSet::new());
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn prune_drops_committed_nonces() {
        let mut m = Mempool::new(MempoolConfig::default());
        let a = Keypair::from_seed(1);
        for n in 0..3 {
            m.admit(tx(&a, n), 0).unwrap();
        }
        let mut state = MemState::default();
        state.0.insert(medledger_state::identity::key::nonce(&a.public()), 2u64.to_be_bytes().to_vec());
        m.prune(&state, [a.public()]);
        assert_eq!(m.len(), 1);
        assert!(m.was_verified(&tx(&a, 0).id()));
    }
}
