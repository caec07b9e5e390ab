//! Durable, embedded storage for a MedLedger node, on [redb] (pure Rust, ACID, crash-safe).
//!
//! One write transaction per finalized block stores, atomically: the block, its finality
//! certificate, its receipts, the tx index, the state writes and the new tip. A crash at any
//! point leaves either the whole block applied or none of it, so restart resumes from the last
//! committed height and consensus redelivers the rest.
//!
//! A state read that fails, or a stored value the state machine reports as one it cannot have
//! written ([`medledger_state::StateRead::corrupt`]), latches a fault on the store: from then
//! on it refuses every snapshot and every commit with [`StoreError::Corrupt`], so nothing
//! computed over the damaged state is ever acted on ([`Store::fault`]).

use medledger_state::{StateRead, WriteSet};
use medledger_types::{Block, BlockHeader, Canonical, Hash, Receipt};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::{Arc, OnceLock};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const CERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("state_roots");
const BY_HASH: TableDefinition<&[u8], u64> = TableDefinition::new("block_by_hash");
const TX_INDEX: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("tx_index");
const RECEIPTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("receipts");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("block {got} does not extend the stored tip {tip}")]
    NotNext { got: u64, tip: u64 },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store belongs to another chain (genesis {stored}, expected {expected})")]
    WrongGenesis { stored: Hash, expected: Hash },
    #[error(
        "the store holds state format {found}, this node needs format {STATE_FORMAT} (the state's layout or \
         its tree changed, and older stores are not upgraded): reset the node's data (for a devnet, start it \
         again with --reset)"
    )]
    OldFormat { found: u32 },
}

/// The state format: 1 was the write-set accumulator, 2 the authenticated state tree, 3 the
/// drug layout with one leaf per pack, public event records and keys kept off the tree, 4 a
/// lot's pack count kept apart from the lot record and tree nodes stored under their path, 5
/// tree nodes stored under their version and path, with an index of stale nodes to prune, 6 an
/// item's status change at institution level, its reason, premises and event under a key of
/// their own, 7 when an event was declared in error (its public record) and at which height (its
/// body), 8 a record's holders kept by anchoring (`rh/`), which an erasure request reads, and
/// referral specialties as codes.
pub const STATE_FORMAT: u32 = 8;

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// The head of the stored chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
    pub state_root: Hash,
}

/// A finalization certificate and the headers linking a block to the one it certifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// Headers from the block's height + 1 up to `height`.
    pub descendants: Vec<BlockHeader>,
    /// The certified height.
    pub height: u64,
    /// The certificate of `height`.
    pub certificate: Vec<u8>,
}

impl Tip {
    pub fn of(h: &BlockHeader) -> Tip {
        Tip { height: h.height, hash: h.digest(), state_root: h.state_root }
    }
}

pub struct Store {
    db: Database,
    /// The most stale tree nodes one commit drops: [`MAX_PRUNE`], lower only in tests
    /// ([`Store::set_max_prune`]).
    max_prune: usize,
    /// The first fault a read of the state found, shared with every snapshot.
    fault: Arc<OnceLock<String>>,
}

fn hash_of(b: &[u8]) -> Result<Hash> {
    b.try_into().map(Hash).map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let w = db.begin_write()?;
        {
            // Create every table so that readers never see a missing one.
            w.open_table(META)?;
            w.open_table(BLOCKS)?;
            w.open_table(CERTS)?;
            w.open_table(ROOTS)?;
            w.open_table(BY_HASH)?;
            w.open_table(TX_INDEX)?;
            w.open_table(RECEIPTS)?;
            w.open_table(STATE)?;
        }
        w.commit()?;
        Ok(Store { db, max_prune: MAX_PRUNE, fault: Arc::new(OnceLock::new()) })
    }

    /// The first fault found in the stored state, if any: a read that failed, or a value the
    /// state machine cannot have written. Once there is one, the store refuses every snapshot
    /// and commit.
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }

    /// Latches a fault as a damaged value would, for tests of what a node does then. Not for
    /// nodes.
    #[doc(hidden)]
    pub fn inject_fault(&self, what: &str) {
        let _ = self.fault.set(what.to_string());
    }

    fn healthy(&self) -> Result<()> {
        match self.fault() {
            Some(f) => {
                Err(StoreError::Corrupt(format!("{f}; found earlier, so this store is no longer read or written")))
            }
            None => Ok(()),
        }
    }

    /// Lowers the most stale tree nodes one commit drops below [`MAX_PRUNE`] (at least one), so
    /// that a test can reach the limit with a small tree. Not for nodes.
    #[doc(hidden)]
    pub fn set_max_prune(&mut self, max: usize) {
        assert!((1..=MAX_PRUNE).contains(&max), "a prune drops 1..={MAX_PRUNE} nodes, not {max}");
        self.max_prune = max;
    }

    /// Writes the genesis block and state if the store is empty; otherwise checks it matches.
    pub fn init_genesis(&self, block: &Block, writes: &WriteSet, genesis_hash: Hash) -> Result<()> {
        let r = self.db.begin_read()?;
        let meta = r.open_table(META)?;
        if let Some(stored) = meta.get("genesis")? {
            let found = match meta.get("format")? {
                None => 1,
                Some(f) => u32::from_be_bytes(
                    f.value().try_into().map_err(|_| StoreError::Corrupt("format is not 4 bytes".into()))?,
                ),
            };
            if found != STATE_FORMAT {
                return Err(StoreError::OldFormat { found });
            }
            let stored = hash_of(stored.value())?;
            if stored != genesis_hash {
                return Err(StoreError::WrongGenesis { stored, expected: genesis_hash });
            }
            return Ok(());
        }
        drop(meta);
        drop(r);
        let w = self.db.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            meta.insert("genesis", genesis_hash.0.as_slice())?;
            meta.insert("format", STATE_FORMAT.to_be_bytes().as_slice())?;
            w.open_table(BLOCKS)?.insert(0u64, block.encode().as_slice())?;
            w.open_table(ROOTS)?.insert(0u64, block.header.state_root.0.as_slice())?;
            w.open_table(BY_HASH)?.insert(block.digest().0.as_slice(), 0u64)?;
            apply_writes(&mut w.open_table(STATE)?, writes)?;
            meta.insert("tip", 0u64.to_be_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    pub fn tip(&self) -> Result<Option<Tip>> {
        let r = self.db.begin_read()?;
        Ok(tip_header(&r)?.map(|h| Tip::of(&h)))
    }

    /// Commits one finalized block with everything derived from it, atomically.
    ///
    /// `certificate` is the block's own finalization certificate, if consensus produced one. A
    /// block finalized through a descendant's certificate has none; [`Store::certified_at_or_above`]
    /// finds the certificate that covers it.
    /// `writes` and `receipts` are the block's execution (of a [`medledger_state::Executed`] whose
    /// state root matched the header's; the caller checked it).
    pub fn commit_block(
        &self,
        block: &Block,
        certificate: Option<&[u8]>,
        writes: &WriteSet,
        receipts: &[Receipt],
    ) -> Result<()> {
        self.healthy()?;
        let height = block.height();
        let tip = self.tip()?.map(|t| t.height);
        if tip != Some(height.wrapping_sub(1)) {
            return Err(StoreError::NotNext { got: height, tip: tip.unwrap_or(0) });
        }
        assert_eq!(receipts.len(), block.txs.len(), "one receipt per transaction");
        let w = self.db.begin_write()?;
        {
            w.open_table(BLOCKS)?.insert(height, block.encode().as_slice())?;
            if let Some(c) = certificate {
                w.open_table(CERTS)?.insert(height, c)?;
            }
            w.open_table(ROOTS)?.insert(height, block.header.state_root.0.as_slice())?;
            w.open_table(BY_HASH)?.insert(block.digest().0.as_slice(), height)?;
            let mut idx = w.open_table(TX_INDEX)?;
            let mut rec = w.open_table(RECEIPTS)?;
            for r in receipts {
                idx.insert(r.tx_id.0.as_slice(), (height, r.index))?;
                rec.insert((height, r.index), r.to_bytes().as_slice())?;
            }
            let mut state = w.open_table(STATE)?;
            apply_writes(&mut state, writes)?;
            prune_tree(&mut state, height, self.max_prune)?;
            w.open_table(META)?.insert("tip", height.to_be_bytes().as_slice())?;
        }
        w.commit()?;
        Ok(())
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOCKS)?;
        match t.get(height)? {
            None => Ok(None),
            Some(v) => {
                Block::decode(v.value()).map(Some).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))
            }
        }
    }

    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOCKS)?;
        Ok(t.get(height)?.map(|v| v.value().to_vec()))
    }

    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BY_HASH)?;
        Ok(t.get(hash.0.as_slice())?.map(|v| v.value()))
    }

    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CERTS)?;
        Ok(t.get(height)?.map(|v| v.value().to_vec()))
    }

    /// The lowest height `>= height` that has its own certificate, with that certificate.
    pub fn certified_at_or_above(&self, height: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CERTS)?;
        let mut range = t.range(height..)?;
        match range.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.value(), v.value().to_vec())))
            }
        }
    }

    pub fn tx_location(&self, id: &Hash) -> Result<Option<(u64, u32)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TX_INDEX)?;
        Ok(t.get(id.0.as_slice())?.map(|v| v.value()))
    }

    pub fn receipt(&self, height: u64, index: u32) -> Result<Option<Receipt>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(RECEIPTS)?;
        match t.get((height, index))? {
            None => Ok(None),
            Some(v) => Receipt::from_bytes(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("receipt {height}/{index}: {e}"))),
        }
    }

    pub fn receipts(&self, height: u64) -> Result<Vec<Receipt>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(RECEIPTS)?;
        let mut out = Vec::new();
        for item in t.range((height, 0)..=(height, u32::MAX))? {
            let (_, v) = item?;
            out.push(Receipt::from_bytes(v.value()).map_err(|e| StoreError::Corrupt(format!("receipt: {e}")))?);
        }
        Ok(out)
    }

    pub fn state_root(&self, height: u64) -> Result<Option<Hash>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(ROOTS)?;
        t.get(height)?.map(|v| hash_of(v.value())).transpose()
    }

    pub fn state_entries(&self) -> Result<u64> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(STATE)?.len()?)
    }

    /// The header of the committed tip and the state at that tip, read in one transaction (so a
    /// block committed meanwhile cannot put the state ahead of the tip: state proofs need both).
    pub fn view(&self) -> Result<(BlockHeader, Snapshot)> {
        self.healthy()?;
        let r = self.db.begin_read()?;
        let header = tip_header(&r)?.ok_or_else(|| StoreError::Corrupt("no tip".into()))?;
        Ok((header, Snapshot { table: r.open_table(STATE)?, fault: self.fault.clone() }))
    }

    /// The header of the stored block at `height` (the body is not decoded).
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        let r = self.db.begin_read()?;
        header_in(&r, height)
    }

    /// What proves block `height` finalized: the lowest height `>= height` with a certificate
    /// of its own, that certificate, and the headers in between.
    pub fn certified_chain(&self, height: u64) -> Result<Option<Certified>> {
        let Some((certified, cert)) = self.certified_at_or_above(height)? else { return Ok(None) };
        let r = self.db.begin_read()?;
        let mut descendants = Vec::new();
        for h in height + 1..=certified {
            descendants.push(header_in(&r, h)?.ok_or_else(|| StoreError::Corrupt(format!("block {h} missing")))?);
        }
        Ok(Some(Certified { descendants, height: certified, certificate: cert }))
    }

    /// A consistent read view of the committed state.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.healthy()?;
        let r = self.db.begin_read()?;
        let table = r.open_table(STATE)?;
        Ok(Snapshot { table, fault: self.fault.clone() })
    }
}

fn header_in(r: &redb::ReadTransaction, height: u64) -> Result<Option<BlockHeader>> {
    let t = r.open_table(BLOCKS)?;
    let Some(v) = t.get(height)? else { return Ok(None) };
    Block::header_of(v.value()).map(Some).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))
}

/// The header of the tip block, as of read transaction `r`.
fn tip_header(r: &redb::ReadTransaction) -> Result<Option<BlockHeader>> {
    let meta = r.open_table(META)?;
    let Some(h) = meta.get("tip")? else { return Ok(None) };
    let height = u64::from_be_bytes(h.value().try_into().map_err(|_| StoreError::Corrupt("tip".into()))?);
    header_in(r, height)?.map(Some).ok_or_else(|| StoreError::Corrupt(format!("tip block {height} missing")))
}

/// Once the oldest stale tree node is this many versions old, a block's commit also drops the
/// stale nodes, oldest first (at most [`MAX_PRUNE`]). A block's stale nodes sit among older
/// blocks' nodes; dropped together, many blocks' stale nodes that share a page cost one rewrite
/// of it rather than one per block.
pub const PRUNE_EVERY: u64 = 32;

/// The most stale nodes one commit drops, so that a prune's share of a commit is bounded (the
/// commit runs on the finalization path) however many a busy chain leaves; the rest wait for
/// the next commit whose oldest stale node is [`PRUNE_EVERY`] versions old.
pub const MAX_PRUNE: usize = 131_072;

/// Drops tree nodes made stale up to version `through` (the committed height) and their index
/// entries, oldest first, once the oldest is [`PRUNE_EVERY`] versions old. Only the latest tree
/// is read from the store (unfinalized blocks are layered on it, and readers of an earlier
/// commit keep their own snapshot), so every node stale at the committed height can go.
fn prune_tree(t: &mut redb::Table<&[u8], &[u8]>, through: u64, max: usize) -> Result<()> {
    use medledger_state::commitment::{stale_node, stale_since, stale_through};
    let (start, end) = stale_through(through);
    let mut entries = Vec::new();
    for e in t.range::<&[u8]>(start.as_slice()..end.as_slice())? {
        let key = e?.0.value().to_vec();
        if entries.is_empty() {
            let oldest = stale_since(&key).map_err(StoreError::Corrupt)?;
            if through.saturating_sub(oldest) + 1 < PRUNE_EVERY {
                return Ok(());
            }
        }
        entries.push(key);
        if entries.len() == max {
            break;
        }
    }
    let Some(last) = entries.last().cloned() else { return Ok(()) };
    // The nodes one by one; their index entries, the contiguous range `start..=last`, in one
    // pass of a cursor (a removal per entry would descend the table for each).
    for entry in &entries {
        t.remove(stale_node(entry).map_err(StoreError::Corrupt)?.as_slice())?;
    }
    t.retain_in::<&[u8], _>(start.as_slice()..=last.as_slice(), |_, _| false)?;
    Ok(())
}

fn apply_writes(t: &mut redb::Table<&[u8], &[u8]>, writes: &WriteSet) -> Result<()> {
    for (k, v) in writes {
        match v {
            Some(v) => {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            None => {
                t.remove(k.as_slice())?;
            }
        }
    }
    Ok(())
}

/// A point-in-time view of the state table; implements [`StateRead`]. A read that fails, or a
/// value reported corrupt, latches its store's fault ([`Store::fault`]).
pub struct Snapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    fault: Arc<OnceLock<String>>,
}

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

impl Snapshot {
    /// Up to `limit` entries whose key starts with `prefix`, in key order, and whether more
    /// remain. For node-local listings (a directory of staff); proofs cover single keys only.
    /// A read that fails latches the store's fault, as [`StateRead::get`] does.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<(Entries, bool)> {
        let failed = |e: redb::StorageError| {
            self.corrupt(&format!("state read failed: {e}"));
            StoreError::from(e)
        };
        let mut out = Vec::new();
        for item in self.table.range::<&[u8]>(prefix..).map_err(failed)? {
            let (k, v) = item.map_err(failed)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok((out, false))
    }
}

impl Snapshot {
    /// The first fault found in the store this view reads ([`Store::fault`]): a caller checks it
    /// before it acts on an answer computed over the view.
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }
}

impl StateRead for Snapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A read error on committed state is unrecoverable for a validator: it is latched (the
        // store then refuses to be read or committed), and the key reads as absent meanwhile.
        match self.table.get(key) {
            Ok(v) => v.map(|v| v.value().to_vec()),
            Err(e) => {
                self.corrupt(&format!("state read failed: {e}"));
                None
            }
        }
    }
    fn corrupt(&self, what: &str) {
        // The first fault is kept: later ones often follow from it.
        let _ = self.fault.set(what.to_string());
    }
}
