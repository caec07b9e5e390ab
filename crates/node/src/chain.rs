//! The node's view of the chain: committed store, speculative (not yet finalized) blocks,
//! the mempool, and the logic to build, verify and finalize blocks.
//!
//! Consensus calls [`Chain::build`], [`Chain::verify`] and [`Chain::finalize`]; the API calls
//! [`Chain::submit`]. Everything here is synchronous and guarded by one mutex for speculative
//! state plus one for the mempool; the store has its own (redb) concurrency.

use crate::mempool::{AdmitError, Mempool, MempoolConfig};
use medledger_state::{execute_block, genesis_root, genesis_writes, precheck, BlockEnv, Layered, WriteSet};
use medledger_storage::{Store, StoreError, Tip};
use medledger_types::block::{weight_of, MAX_BLOCK_TXS, MAX_BLOCK_WEIGHT};
use medledger_types::tx::{verify_signatures, TxDecodeError};
use medledger_types::ErrorCode;
use medledger_types::{Block, Genesis, Hash, PublicKey, Receipt, RejectCode, Tx};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How far ahead of local time a proposer's timestamp may be before verification waits.
pub const MAX_CLOCK_DRIFT_MS: u64 = 2_000;
/// A proposal stamped further ahead of local time than this is refused outright rather than
/// waited for: no honest clock is that far off, and waiting would stall the view.
pub const MAX_FUTURE_MS: u64 = 30_000;

/// Fault injection for deterministic simulations: turns each block this node would propose
/// into what a Byzantine proposer sends instead (given the chain and the parent). A running
/// node never sets one.
pub type ProposalFault = Box<dyn Fn(&Chain, &Block, Arc<Block>) -> Arc<Block> + Send + Sync>;
/// Fault injection for tests: runs in [`Chain::finalize`] just before the block is committed
/// to the store (a commit that stalls there). A running node never sets one.
pub type CommitFault = Box<dyn Fn(&Block) + Send + Sync>;
/// Minimum spacing of empty blocks.
pub const EMPTY_BLOCK_INTERVAL_MS: u64 = 500;
/// How long a proposer lets transactions gather before building a non-full block.
pub const BATCH_WINDOW_MS: u64 = 50;
/// Most unfinalized blocks whose execution a validator keeps. Each holds at most one block's
/// writes (bounded by the work budget); while consensus stalls, every view may bring a new
/// sibling, and without a bound they would pile up until finalization (they once did, to
/// several gigabytes). Evicting one costs only its re-execution if it is needed again.
pub const MAX_SPECULATIVE: usize = 16;
/// How often [`Chain::base`] re-reads a snapshot that is a block ahead of the published tip.
const MAX_BASE_TRIES: usize = 10_000;

/// Why a submitted transaction was refused before the mempool.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Decode(#[from] TxDecodeError),
    #[error("signature does not verify for signer {0}")]
    BadSignature(String),
    #[error("{}", .0.reason)]
    Rejected(medledger_state::Rejection),
    #[error("{0}")]
    Mempool(#[from] AdmitError),
    #[error("committed state cannot be read right now: {0}")]
    Unavailable(String),
}

impl SubmitError {
    /// The stable error code the API returns.
    pub fn code(&self) -> ErrorCode {
        match self {
            SubmitError::Decode(TxDecodeError::Oversize(..)) => ErrorCode::Oversize,
            SubmitError::Decode(TxDecodeError::Malformed(_)) => ErrorCode::Malformed,
            SubmitError::BadSignature(_) => ErrorCode::BadSignature,
            SubmitError::Rejected(r) => match r.code {
                RejectCode::BadNonce => ErrorCode::Replay,
                c => c.code(),
            },
            SubmitError::Mempool(AdmitError::Full(_)) | SubmitError::Mempool(AdmitError::SignerFull(_)) => {
                ErrorCode::MempoolFull
            }
            SubmitError::Mempool(AdmitError::Duplicate(_)) => ErrorCode::Duplicate,
            SubmitError::Mempool(AdmitError::NonceTaken(_)) => ErrorCode::Replay,
            SubmitError::Mempool(AdmitError::NonceGap { .. }) => ErrorCode::NonceGap,
            SubmitError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

/// A block that passed verification (or that this node built) but is not finalized yet.
struct Speculative {
    /// Insertion order, for eviction.
    seq: u64,
    block: Arc<Block>,
    writes: Arc<WriteSet>,
    receipts: Arc<Vec<Receipt>>,
}

/// The executed, unfinalized blocks, at most [`MAX_SPECULATIVE`].
#[derive(Default)]
struct Cache {
    map: HashMap<Hash, Speculative>,
    seq: u64,
}

impl Cache {
    /// Keeps `block`'s execution; over the bound, forgets a block that no kept block builds on
    /// (a leaf: nothing kept needs its writes as a layer), the lowest and then the oldest: a
    /// stall's abandoned siblings go before the chain that is making progress.
    fn insert(&mut self, block: Arc<Block>, writes: Arc<WriteSet>, receipts: Arc<Vec<Receipt>>) {
        self.seq += 1;
        self.map.insert(block.digest(), Speculative { seq: self.seq, block, writes, receipts });
        while self.map.len() > MAX_SPECULATIVE {
            let parents: HashSet<Hash> = self.map.values().map(|s| s.block.header.parent).collect();
            let newest = self.seq;
            let victim = self
                .map
                .iter()
                .filter(|(d, s)| !parents.contains(*d) && s.seq != newest)
                .min_by_key(|(_, s)| (s.block.height(), s.seq))
                .map(|(d, _)| *d);
            match victim {
                Some(d) => {
                    self.map.remove(&d);
                }
                // One chain of more than the bound: keep it (consensus bounds its length).
                None => break,
            }
        }
    }
}

/// A finalized block, as announced to subscribers (SSE).
#[derive(Clone, Debug)]
pub struct Finalized {
    pub block: Arc<Block>,
    pub receipts: Arc<Vec<Receipt>>,
}

pub struct Chain {
    pub genesis: Genesis,
    pub store: Arc<Store>,
    pub me: PublicKey,
    mempool: Mutex<Mempool>,
    speculative: Mutex<Cache>,
    tip: Mutex<Tip>,
    finalized_tx: broadcast::Sender<Finalized>,
    pub metrics: Metrics,
    /// Cap on transactions per proposed block.
    pub max_block_txs: usize,
    /// Milliseconds since the Unix epoch (the runtime's clock; simulated in tests).
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// The mempool's write-ahead log, once attached ([`Chain::attach_wal`]): admitted
    /// transactions are on disk before they are acknowledged.
    wal: std::sync::OnceLock<crate::wal::Wal>,
    /// Simulations only: makes this node a Byzantine proposer ([`ProposalFault`]).
    pub proposal_fault: std::sync::OnceLock<ProposalFault>,
    /// Tests only: stalls a commit ([`CommitFault`]).
    pub commit_fault: std::sync::OnceLock<CommitFault>,
}

#[derive(Default)]
pub struct Metrics {
    pub submitted: AtomicU64,
    pub rejected: AtomicU64,
    pub committed_txs: AtomicU64,
    pub committed_blocks: AtomicU64,
    /// Blocks executed here: built, verified, caught up, or re-executed at finalization for want
    /// of a kept execution. Over `committed_blocks` by the sibling blocks views abandoned, and by
    /// any block executed twice.
    pub executed_blocks: AtomicU64,
    pub verify_sig_cache_hits: AtomicU64,
    pub verify_sig_checked: AtomicU64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The genesis block implied by a genesis file.
pub fn genesis_block(g: &Genesis) -> Block {
    Block::new(0, g.hash(), g.genesis_time_ms, PublicKey::default(), genesis_root(g), vec![])
}

impl Chain {
    pub fn open(
        genesis: Genesis,
        store: Arc<Store>,
        me: PublicKey,
        mempool: MempoolConfig,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<Arc<Chain>, StoreError> {
        let g0 = genesis_block(&genesis);
        store.init_genesis(&g0, &genesis_writes(&genesis), genesis.hash())?;
        let tip =
            store.tip()?.ok_or_else(|| StoreError::Corrupt("no tip after the genesis block was stored".into()))?;
        let (finalized_tx, _) = broadcast::channel(1024);
        Ok(Arc::new(Chain {
            genesis,
            store,
            me,
            mempool: Mutex::new(Mempool::new(mempool)),
            speculative: Mutex::new(Cache::default()),
            tip: Mutex::new(tip),
            finalized_tx,
            metrics: Metrics::default(),
            max_block_txs: 2000,
            clock,
            wal: std::sync::OnceLock::new(),
            proposal_fault: std::sync::OnceLock::new(),
            commit_fault: std::sync::OnceLock::new(),
        }))
    }

    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// Opens the mempool's write-ahead log at `path`, re-admits what it holds (transactions
    /// committed meanwhile are refused by the usual checks and dropped), rewrites it with what is
    /// still pending, and from then on logs every admitted transaction before acknowledging it.
    /// Returns how many logged transactions were pending again.
    pub fn attach_wal(&self, path: &std::path::Path) -> Result<usize, String> {
        let (wal, raws) = crate::wal::Wal::open(path).map_err(|e| format!("mempool log {}: {e}", path.display()))?;
        let refs: Vec<&[u8]> = raws.iter().map(Vec::as_slice).collect();
        let back = self.submit_raw(&refs).iter().filter(|r| r.is_ok()).count();
        wal.rewrite(|| self.mempool.lock().pending_raw())
            .map_err(|e| format!("mempool log {}: {e}", path.display()))?;
        self.wal.set(wal).map_err(|_| "the mempool log is already attached".to_string())?;
        Ok(back)
    }

    /// Is the state after block `digest` known here (committed tip or speculative)?
    pub fn knows(&self, digest: &Hash) -> bool {
        self.tip().hash == *digest || self.speculative.lock().map.contains_key(digest)
    }

    /// How long a proposer should wait before building on `parent`: empty mempools produce a
    /// block at most every [`EMPTY_BLOCK_INTERVAL_MS`], busy ones after [`BATCH_WINDOW_MS`] to
    /// gather a batch, full ones at once.
    pub fn proposal_delay(&self, parent: &Block) -> std::time::Duration {
        let pending = self.mempool_len();
        let window = if pending == 0 {
            EMPTY_BLOCK_INTERVAL_MS
        } else if pending < self.max_block_txs {
            BATCH_WINDOW_MS
        } else {
            0
        };
        let due = parent.header.timestamp_ms.saturating_add(window);
        std::time::Duration::from_millis(due.saturating_sub(self.now_ms()))
    }

    pub fn tip(&self) -> Tip {
        *self.tip.lock()
    }

    /// The committed state together with the tip it is the state of.
    ///
    /// [`Chain::finalize`] commits the store before it publishes the new tip, so a snapshot and
    /// a tip read one after the other can belong to two different blocks. Executing a child of
    /// the older one on the newer state would build on the wrong tree (`commitment::commit`
    /// stops on a parent tree that is not the version before; a validator once stopped on a
    /// tree version the newer block had already replaced). This retries until both name the same
    /// height; the gap lasts one tip update. `None` if the store cannot be read.
    fn base(&self) -> Option<(Tip, medledger_storage::Snapshot)> {
        for _ in 0..MAX_BASE_TRIES {
            let snap = self.store.snapshot().ok()?;
            let tip = self.tip();
            if medledger_state::height_of(&snap) == Some(tip.height) {
                return Some((tip, snap));
            }
            std::thread::yield_now();
        }
        tracing::warn!("the committed state and the tip kept moving apart; trying later");
        None
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool.lock().len()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Finalized> {
        self.finalized_tx.subscribe()
    }

    pub fn genesis_block(&self) -> Block {
        genesis_block(&self.genesis)
    }

    /// Is `id` waiting in the mempool?
    pub fn is_pending(&self, id: &Hash) -> bool {
        self.mempool.lock().contains(id)
    }

    /// Admits already-decoded transactions from a client: batch-verifies the signatures,
    /// prechecks them against committed state, adds them to the mempool and, once the mempool
    /// log is attached, makes the admitted ones durable before returning (an `Ok` is a promise
    /// that survives a crash; if the log cannot be written they are reported `unavailable`).
    pub fn submit(&self, txs: Vec<Tx>) -> Vec<Result<Hash, SubmitError>> {
        let refs: Vec<&Tx> = txs.iter().collect();
        let verdicts = verify_signatures(&refs);
        let kept = txs.clone();
        let mut out = self.admit(txs, verdicts);
        let admitted: Vec<Tx> = kept.into_iter().zip(&out).filter(|(_, r)| r.is_ok()).map(|(t, _)| t).collect();
        if let Err(e) = self.make_durable(&admitted) {
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        }
        out
    }

    /// Admits transactions gossiped by a peer: checked like any other, but not written to this
    /// node's mempool log, since the node that acknowledged them logged them already.
    pub fn submit_gossiped(&self, txs: Vec<Tx>) -> Vec<Result<Hash, SubmitError>> {
        let refs: Vec<&Tx> = txs.iter().collect();
        let verdicts = verify_signatures(&refs);
        self.admit(txs, verdicts)
    }

    /// Pools transactions this node has just signed with its own key (access events, erasure
    /// confirmations): the signature was made here, so it is not verified again (peers verify
    /// it when the transactions reach them). They are not logged here: the caller, which
    /// assigns nonces in order under a lock, makes them durable with [`Chain::make_durable`]
    /// outside that lock, before it acknowledges anything.
    pub fn submit_own(&self, txs: Vec<Tx>) -> Vec<Result<Hash, SubmitError>> {
        let n = txs.len();
        self.admit(txs, vec![true; n])
    }

    /// Appends `txs` to the mempool log and returns once they are on disk (concurrent callers
    /// share one sync). Without an attached log there is nothing to do.
    pub fn make_durable(&self, txs: &[Tx]) -> Result<(), SubmitError> {
        let Some(wal) = self.wal.get() else { return Ok(()) };
        let refs: Vec<&[u8]> = txs.iter().map(Tx::raw).collect();
        wal.append(&refs).map_err(|e| SubmitError::Unavailable(format!("the mempool log cannot be written: {e}")))
    }

    /// Checks `txs` against committed state and pools the ones that pass.
    fn admit(&self, txs: Vec<Tx>, verdicts: Vec<bool>) -> Vec<Result<Hash, SubmitError>> {
        self.metrics.submitted.fetch_add(txs.len() as u64, Ordering::Relaxed);
        let snap = match self.store.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                return txs.iter().map(|_| Err(SubmitError::Unavailable(msg.clone()))).collect();
            }
        };
        let tip = self.tip();
        let now = self.now_ms();
        let mut out = Vec::with_capacity(txs.len());
        let mut pool = self.mempool.lock();
        for (tx, ok) in txs.into_iter().zip(verdicts) {
            let id = tx.id();
            let r = if !ok {
                Err(SubmitError::BadSignature(tx.body().signer.short()))
            } else if let Err(r) = precheck(&snap, &self.genesis.chain_id, now, tip.height + 1, &tx) {
                Err(SubmitError::Rejected(r))
            } else {
                let expected = medledger_state::nonce_of(&snap, &tx.body().signer);
                match snap.fault() {
                    // Checked over damaged state: not pooled, logged or gossiped.
                    Some(f) => Err(SubmitError::Unavailable(format!("stored data is corrupt: {f}"))),
                    None => pool.admit(tx, expected).map(|_| id).map_err(SubmitError::from),
                }
            };
            if r.is_err() {
                self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            }
            out.push(r);
        }
        out
    }

    /// Decodes and submits raw transactions.
    pub fn submit_raw(&self, raws: &[&[u8]]) -> Vec<Result<Hash, SubmitError>> {
        let mut decoded = Vec::with_capacity(raws.len());
        let mut slots: Vec<Option<SubmitError>> = Vec::with_capacity(raws.len());
        for raw in raws {
            match Tx::decode(raw) {
                Ok(t) => {
                    decoded.push(t);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(SubmitError::Decode(e))),
            }
        }
        let mut results = self.submit(decoded).into_iter();
        slots
            .into_iter()
            .map(|s| match s {
                Some(e) => Err(e),
                None => results.next().expect("one result per decoded tx"),
            })
            .collect()
    }

    /// Write-set layers from the committed tip up to `parent`, or `None` if `parent` is neither
    /// the committed tip nor a known speculative descendant of it.
    fn layers_to(&self, spec: &Cache, tip: &Tip, parent: Hash) -> Option<(Vec<Arc<WriteSet>>, HashSet<Hash>)> {
        let mut layers = Vec::new();
        let mut included = HashSet::new();
        let mut cur = parent;
        while cur != tip.hash {
            let s = spec.map.get(&cur)?;
            if s.block.height() <= tip.height {
                return None;
            }
            layers.push(s.writes.clone());
            included.extend(s.block.txs.iter().map(Tx::id));
            cur = s.block.header.parent;
        }
        layers.reverse();
        Some((layers, included))
    }

    fn env(&self, height: u64, timestamp_ms: u64, proposer: PublicKey) -> BlockEnv {
        BlockEnv { chain_id: self.genesis.chain_id.clone(), height, timestamp_ms, proposer }
    }

    /// Builds a block on `parent`. Returns `None` if the parent's state is not known here.
    pub fn build(&self, parent: &Block) -> Option<Arc<Block>> {
        if self.store.fault().is_some() {
            return None;
        }
        let (tip, snap) = self.base()?;
        let spec = self.speculative.lock();
        let (layers, included) = self.layers_to(&spec, &tip, parent.digest())?;
        drop(spec);
        let view = Layered::new(&snap, layers);
        let mut txs = self.mempool.lock().select(&view, self.max_block_txs.min(MAX_BLOCK_TXS), &included);
        // Stop before the block's work budget; the rest waits for the next block. A prefix of
        // the selection keeps each signer's nonces contiguous.
        let mut budget = 0u64;
        let fit = txs
            .iter()
            .position(|t| {
                budget += t.body().op.weight();
                budget > MAX_BLOCK_WEIGHT
            })
            .unwrap_or(txs.len());
        // Admission keeps each transaction under `MAX_TX_WEIGHT`, so the first always fits.
        txs.truncate(fit);
        let height = parent.height() + 1;
        let ts = self.now_ms().max(parent.header.timestamp_ms + 1);
        let ex = execute_block(&view, &self.env(height, ts, self.me), &txs);
        self.metrics.executed_blocks.fetch_add(1, Ordering::Relaxed);
        if let Some(fault) = snap.fault() {
            // Executed over damaged state: nothing to propose (the executor stops this validator).
            tracing::error!("not proposing at height {height}: {fault}");
            return None;
        }
        let block = Arc::new(Block::new(height, parent.digest(), ts, self.me, ex.state_root, txs));
        self.speculative.lock().insert(block.clone(), Arc::new(ex.writes), Arc::new(ex.receipts));
        match self.proposal_fault.get() {
            Some(fault) => Some(fault(self, parent, block)),
            None => Some(block),
        }
    }

    /// A block on `parent` at `timestamp_ms` carrying exactly `txs`, with the state root their
    /// execution gives (whether or not the block is valid otherwise). For fault injection.
    pub fn block_on(&self, parent: &Block, timestamp_ms: u64, txs: Vec<Tx>) -> Option<Arc<Block>> {
        let (tip, snap) = self.base()?;
        let layers = {
            let spec = self.speculative.lock();
            self.layers_to(&spec, &tip, parent.digest())?.0
        };
        let view = Layered::new(&snap, layers);
        let height = parent.height() + 1;
        let ex = execute_block(&view, &self.env(height, timestamp_ms, self.me), &txs);
        Some(Arc::new(Block::new(height, parent.digest(), timestamp_ms, self.me, ex.state_root, txs)))
    }

    /// Verifies a proposed block against its parent. `Ok(false)` is a permanent verdict; `Err`
    /// means "cannot decide yet" (unknown parent state, or a timestamp from the future).
    pub fn verify(&self, parent: &Block, block: &Block, leader: &PublicKey) -> Result<bool, VerifyLater> {
        let now = self.now_ms();
        if block.header.timestamp_ms > now.saturating_add(MAX_FUTURE_MS) {
            return Ok(false);
        }
        if block.header.timestamp_ms > now + MAX_CLOCK_DRIFT_MS {
            return Err(VerifyLater::FutureTimestamp(block.header.timestamp_ms));
        }
        self.check_and_execute(parent, block, Some(leader))
    }

    /// Executes an ancestor that a quorum already notarized, to learn the state after it.
    pub fn adopt(&self, block: &Block) -> Result<bool, VerifyLater> {
        let parent = self.block_by_digest(&block.header.parent).ok_or(VerifyLater::UnknownParent)?;
        self.check_and_execute(&parent, block, None)
    }

    fn block_by_digest(&self, digest: &Hash) -> Option<Arc<Block>> {
        if let Some(s) = self.speculative.lock().map.get(digest) {
            return Some(s.block.clone());
        }
        let tip = self.tip();
        if tip.hash == *digest {
            return self.store.block(tip.height).ok().flatten().map(Arc::new);
        }
        None
    }

    fn check_and_execute(
        &self,
        parent: &Block,
        block: &Block,
        leader: Option<&PublicKey>,
    ) -> Result<bool, VerifyLater> {
        // Damaged state gives no verdict, and says so at once (not "unknown parent", which
        // consensus would answer by catching up and asking again).
        if let Some(fault) = self.store.fault() {
            return Err(VerifyLater::StoreFault(fault.to_string()));
        }
        let h = &block.header;
        if h.height != parent.height() + 1 || h.parent != parent.digest() {
            return Ok(false);
        }
        if h.timestamp_ms <= parent.header.timestamp_ms || leader.is_some_and(|l| &h.proposer != l) {
            return Ok(false);
        }
        if block.txs.len() > MAX_BLOCK_TXS || weight_of(&block.txs) > MAX_BLOCK_WEIGHT {
            return Ok(false);
        }
        // A transaction appears once in a block: an honest proposer never repeats one.
        let mut ids = HashSet::with_capacity(block.txs.len());
        if !block.txs.iter().all(|t| ids.insert(t.id())) {
            return Ok(false);
        }
        if self.speculative.lock().map.contains_key(&block.digest()) {
            return Ok(true);
        }
        let (tip, snap) = self.base().ok_or(VerifyLater::UnknownParent)?;
        if h.height <= tip.height {
            // Only the committed block itself is valid at a committed height.
            return Ok(self.store.height_of(&block.digest()).ok().flatten() == Some(h.height));
        }
        // Signatures: only those this node has not already verified.
        let unseen: Vec<&Tx> = {
            let pool = self.mempool.lock();
            block.txs.iter().filter(|t| !pool.was_verified(&t.id())).collect()
        };
        self.metrics.verify_sig_cache_hits.fetch_add((block.txs.len() - unseen.len()) as u64, Ordering::Relaxed);
        self.metrics.verify_sig_checked.fetch_add(unseen.len() as u64, Ordering::Relaxed);
        if !unseen.is_empty() {
            if verify_signatures(&unseen).iter().any(|ok| !ok) {
                return Ok(false);
            }
            let mut pool = self.mempool.lock();
            for t in &unseen {
                pool.mark_verified(t.id());
            }
        }
        let (layers, _) = {
            let spec = self.speculative.lock();
            self.layers_to(&spec, &tip, parent.digest()).ok_or(VerifyLater::UnknownParent)?
        };
        let view = Layered::new(&snap, layers);
        let ex = execute_block(&view, &self.env(h.height, h.timestamp_ms, h.proposer), &block.txs);
        self.metrics.executed_blocks.fetch_add(1, Ordering::Relaxed);
        if let Some(fault) = snap.fault() {
            // Executed over damaged state: no verdict either way (the executor stops this validator).
            return Err(VerifyLater::StoreFault(fault.to_string()));
        }
        if ex.state_root != h.state_root {
            return Ok(false);
        }
        self.speculative.lock().insert(Arc::new(block.clone()), Arc::new(ex.writes), Arc::new(ex.receipts));
        Ok(true)
    }

    /// Applies a finalized block: executes it on committed state (reusing the speculative result
    /// when there is one), commits it with its certificate, prunes the mempool and announces it.
    /// Blocks at or below the committed tip are ignored (redelivery after restart).
    ///
    /// A block that does not extend the stored tip, or whose execution here does not give its
    /// state root, or any fault of the store, is an error and nothing is committed: this node's
    /// stored chain is not the one its peers finalized, and it must stop.
    pub fn finalize(&self, block: Arc<Block>, certificate: Option<&[u8]>) -> Result<(), StoreError> {
        let tip = self.tip();
        if block.height() <= tip.height {
            return Ok(());
        }
        if block.height() != tip.height + 1 || block.header.parent != tip.hash {
            return Err(StoreError::Corrupt(format!(
                "finalized block {} does not extend the stored tip (height {}, {}): the stored chain is not the \
                 finalized one",
                block.height(),
                tip.height,
                tip.hash.to_hex()
            )));
        }
        // The speculative entry stays until the tip names this block: a child verified while the
        // commit runs still finds its parent's state (with it gone and the tip not yet moved,
        // the child's parent would look unknown, and the block would be executed again). It
        // still counts toward `MAX_SPECULATIVE`: a cache overflowing during the commit may evict
        // it if nothing kept builds on it, and a child verified after that waits for the tip.
        let cached = self.speculative.lock().map.get(&block.digest()).map(|s| (s.writes.clone(), s.receipts.clone()));
        let (writes, receipts) = match cached {
            Some(parts) => parts,
            None => {
                let snap = self.store.snapshot()?;
                let h = &block.header;
                let ex = execute_block(&snap, &self.env(h.height, h.timestamp_ms, h.proposer), &block.txs);
                self.metrics.executed_blocks.fetch_add(1, Ordering::Relaxed);
                if let Some(fault) = snap.fault() {
                    return Err(StoreError::Corrupt(fault.to_string()));
                }
                // Finalized blocks carry a quorum certificate; honest validators agree on the
                // root, so a different one here means this node's state is not the chain's.
                if ex.state_root != h.state_root {
                    return Err(StoreError::Corrupt(format!(
                        "finalized block {} has state root {}, and executing it here gives {}: the stored state is not \
                         the chain's",
                        h.height,
                        h.state_root.to_hex(),
                        ex.state_root.to_hex()
                    )));
                }
                (Arc::new(ex.writes), Arc::new(ex.receipts))
            }
        };
        if let Some(fault) = self.commit_fault.get() {
            fault(&block);
        }
        self.store.commit_block(&block, certificate, &writes, &receipts)?;
        let new_tip = Tip { height: block.height(), hash: block.digest(), state_root: block.header.state_root };
        *self.tip.lock() = new_tip;
        // (Committed: a fault found meanwhile stops the next commit, not this one.)
        if let Ok(snap) = self.store.snapshot() {
            let signers: HashSet<PublicKey> = block.txs.iter().map(|t| t.body().signer).collect();
            self.mempool.lock().prune(&snap, signers);
        }
        self.compact_wal();
        // Dropping a block's write set takes a while: not under the lock.
        let gone: Vec<Speculative> = {
            let mut spec = self.speculative.lock();
            let done: Vec<Hash> =
                spec.map.iter().filter(|(_, s)| s.block.height() <= new_tip.height).map(|(d, _)| *d).collect();
            done.iter().filter_map(|d| spec.map.remove(d)).collect()
        };
        drop((gone, writes));
        self.metrics.committed_blocks.fetch_add(1, Ordering::Relaxed);
        self.metrics.committed_txs.fetch_add(block.txs.len() as u64, Ordering::Relaxed);
        let _ = self.finalized_tx.send(Finalized { block, receipts });
        Ok(())
    }

    /// Rewrites the write-ahead log with just the pending transactions once it has grown large
    /// (committed ones left in it are harmless: replayed, they are refused as already used). Not
    /// on every block: a rewrite costs syncs on the finalization path. A failure here only
    /// delays compaction.
    fn compact_wal(&self) {
        let Some(wal) = self.wal.get() else { return };
        if wal.needs_compaction() {
            if let Err(e) = wal.rewrite(|| self.mempool.lock().pending_raw()) {
                tracing::warn!("cannot compact the mempool log: {e}");
            }
        }
    }

    /// The next nonce free for `signer`: past its committed transactions (in `state`) and past
    /// any this node holds pending.
    pub fn next_nonce(&self, state: &dyn medledger_state::store::StateRead, signer: &PublicKey) -> u64 {
        let committed = medledger_state::nonce_of(state, signer);
        self.mempool.lock().max_pending_nonce(signer).map_or(committed, |p| committed.max(p + 1))
    }

    /// Transactions waiting in the mempool for gossip or inspection.
    pub fn with_mempool<R>(&self, f: impl FnOnce(&mut Mempool) -> R) -> R {
        f(&mut self.mempool.lock())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyLater {
    UnknownParent,
    FutureTimestamp(u64),
    /// The stored state was found corrupt while executing the block: never a verdict.
    StoreFault(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64, parent: Hash, ts: u64) -> Arc<Block> {
        Arc::new(Block::new(height, parent, ts, PublicKey([7; 32]), Hash([0; 32]), Vec::new()))
    }

    fn put(c: &mut Cache, b: &Arc<Block>) {
        c.insert(b.clone(), Arc::new(WriteSet::new()), Arc::new(Vec::new()));
    }

    #[test]
    fn a_stall_of_many_siblings_keeps_the_cache_bounded() {
        let mut c = Cache::default();
        let root = Hash([1; 32]);
        let kept = block(1, root, 1);
        put(&mut c, &kept);
        let child = block(2, kept.digest(), 2);
        put(&mut c, &child);
        // Every view of a stall brings a new sibling at height 1.
        let mut last = None;
        for ts in 10..200 {
            let b = block(1, root, ts);
            put(&mut c, &b);
            last = Some(b.digest());
        }
        assert_eq!(c.map.len(), MAX_SPECULATIVE);
        assert!(c.map.contains_key(&kept.digest()), "a block something builds on is never evicted");
        assert!(c.map.contains_key(&child.digest()));
        assert!(c.map.contains_key(&last.unwrap()), "the newest block is kept");
    }

    #[test]
    fn one_long_chain_is_kept_whole() {
        let mut c = Cache::default();
        let mut parent = Hash([1; 32]);
        for h in 1..=(MAX_SPECULATIVE as u64 + 4) {
            let b = block(h, parent, h);
            put(&mut c, &b);
            parent = b.digest();
        }
        assert_eq!(c.map.len(), MAX_SPECULATIVE + 4);
    }
}
