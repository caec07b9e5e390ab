//! The authenticated state: a Jellyfish Merkle tree (the `jmt` crate) over every key-value pair
//! of the domain state except the keys kept off it ([`keys::OFF_TREE`]), versioned by block height.
//!
//! The tree's nodes live in the state itself, under [`keys::TREE`] (a prefix no domain key can
//! start with), so they travel with the block's writes: they are layered for unfinalized blocks
//! exactly like domain writes, committed in the same storage transaction, and held in memory by
//! [`crate::MemState`] in simulations. A node is stored under the version that made it, so a
//! block's new nodes are contiguous in the store; the nodes a block makes stale are not deleted
//! by it but recorded in a stale-node index, from which the store prunes many blocks' worth at
//! once ([`stale_through`], [`pruned`]). Only the latest version is proven.
//!
//! [`commit`] computes the tree writes and root of a block; [`prove`] answers one key against
//! the committed state; [`Recording`] learns which keys a query reads and [`Proven`] replays
//! the query over verified values only.

use crate::keys;
use crate::store::{StateRead, WriteSet};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, Version};
use medledger_types::state_proof::{key_hash, TreeHasher};
use medledger_types::Hash;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// Is `key` the state tree's (a node, its version or its stale-node index), not domain state?
pub fn is_tree_key(key: &[u8]) -> bool {
    key.starts_with(keys::TREE)
}

/// Is `key` a stored node of the state tree (not its version, not its stale-node index)?
pub fn is_node_key(key: &[u8]) -> bool {
    is_tree_key(key) && key.get(keys::TREE.len()) == Some(&0) && key.len() > keys::TREE.len() + 8
}

/// Is `key` a leaf of the state tree: domain state that is neither a tree node nor kept off
/// the tree ([`keys::OFF_TREE`])?
pub fn is_leaf_key(key: &[u8]) -> bool {
    !is_tree_key(key) && !keys::is_off_tree(key)
}

/// The version of the tree the state holds: [`keys::TREE`] then 0xff, a key no node has (a
/// stored node's key goes on with its version, whose first byte is zero) and outside the
/// stale-node index ([`STALE`]).
fn version_key() -> Vec<u8> {
    [keys::TREE, &[0xff]].concat()
}

/// The version of the tree `state` holds, if any.
pub fn tree_version(state: &dyn StateRead) -> Option<u64> {
    crate::read_u64(state, &version_key(), "state tree version")
}

/// The version of the tree a block's write set makes (every sealed block writes one).
pub fn written_version(writes: &WriteSet) -> Option<u64> {
    writes.get(&version_key())?.as_ref()?.as_slice().try_into().ok().map(u64::from_be_bytes)
}

/// The version that made the node stored under `key`, if `key` is a node's key ([`node_key`]).
/// Only the block of that version writes it.
pub fn node_version(key: &[u8]) -> Option<u64> {
    let t = keys::TREE.len();
    is_node_key(key).then(|| u64::from_be_bytes(key[t..t + 8].try_into().expect("8 bytes")))
}

/// Where a node is stored: [`keys::TREE`], the version that made it (8 bytes, big-endian), the
/// path's bytes, then its length in nibbles. A block's new nodes are thus contiguous in the
/// store, written together at its end, whatever their paths; a node's replacement at the same
/// path is another key, and the replaced node is left for [`pruned`] (see [`stale_key`]).
fn node_key(k: &NodeKey) -> Vec<u8> {
    // Borsh encodes a nibble path as its length (u64, little-endian), the byte count (u32) and
    // the bytes (a path is at most 64 nibbles): encoded in place, the 12-byte header becomes
    // the trailing length byte.
    let mut out = Vec::with_capacity(keys::TREE.len() + 8 + 12 + 32);
    out.extend_from_slice(keys::TREE);
    out.extend_from_slice(&k.version().to_be_bytes());
    let p = out.len();
    borsh::to_writer(&mut out, k.nibble_path()).expect("writing to a Vec cannot fail");
    let nibbles = out[p];
    debug_assert!(nibbles <= 64 && out[p + 1..p + 8].iter().all(|b| *b == 0), "a path is at most 64 nibbles");
    out.drain(p..p + 12);
    out.push(nibbles);
    out
}

/// The first byte (after [`keys::TREE`]) of the stale-node index; a stored node key's is its
/// version's first byte, always zero ([`commit`] refuses versions from 2^56), and the version
/// key's is 0xff.
const STALE: u8 = 0xfe;

/// The index entry recording that the node stored under `node` is no longer part of the tree
/// from version `since` on: [`keys::TREE`], [`STALE`], `since` (big-endian), then `node`
/// without its [`keys::TREE`] prefix. The entries of a range of versions are contiguous, so the
/// store can drop the nodes of many blocks in one pass ([`stale_through`], [`pruned`]) rather than
/// deleting each block's scattered stale nodes as it commits.
fn stale_key(since: u64, node: &[u8]) -> Vec<u8> {
    let t = keys::TREE.len();
    let mut out = Vec::with_capacity(node.len() + 9);
    out.extend_from_slice(keys::TREE);
    out.push(STALE);
    out.extend_from_slice(&since.to_be_bytes());
    out.extend_from_slice(&node[t..]);
    out
}

/// The key range (start inclusive, end exclusive) of the stale-node index entries of versions
/// up to `version`: the nodes no tree from `version` on needs.
pub fn stale_through(version: u64) -> (Vec<u8>, Vec<u8>) {
    let start = [keys::TREE, &[STALE]].concat();
    let end = match version.checked_add(1) {
        Some(next) => [keys::TREE, &[STALE], &next.to_be_bytes()].concat(),
        None => [keys::TREE, &[STALE + 1]].concat(),
    };
    (start, end)
}

/// The version from which the node named by the stale-node index entry `entry` is stale.
pub fn stale_since(entry: &[u8]) -> Result<u64, String> {
    let t = keys::TREE.len();
    match entry.get(t + 1..t + 9) {
        Some(since) if entry.len() > t + 9 && entry[..t] == *keys::TREE && entry[t] == STALE => {
            Ok(u64::from_be_bytes(since.try_into().expect("8 bytes")))
        }
        _ => Err(format!("`{}` is not a stale-node index entry", String::from_utf8_lossy(entry))),
    }
}

/// The deletions that prune the stale nodes named by `entries` (keys of the stale-node index,
/// as found in a [`stale_through`] range) and the entries themselves. Pruning changes no tree a
/// reader may still ask for, as long as the range ends at or below the oldest version read. An
/// error names an entry that is not one (corrupt storage).
pub fn pruned(entries: impl IntoIterator<Item = Vec<u8>>) -> Result<WriteSet, String> {
    let mut out = WriteSet::new();
    for entry in entries {
        out.insert(stale_node(&entry)?, None);
        out.insert(entry, None);
    }
    Ok(out)
}

/// The key of the node that the stale-node index entry `entry` names. An error names an entry
/// that is not one (corrupt storage).
pub fn stale_node(entry: &[u8]) -> Result<Vec<u8>, String> {
    stale_since(entry)?;
    Ok([keys::TREE, &entry[keys::TREE.len() + 9..]].concat())
}

/// A node's Borsh encoding in a buffer of exactly its size. (`borsh::to_vec` starts every
/// buffer at 1 KiB: most nodes are a tenth of that, and a block's nodes stay in memory until the
/// block is finalized.)
fn encode_node(node: &Node) -> Vec<u8> {
    let len = borsh::object_length(node).expect("measuring a node cannot fail");
    let mut out = Vec::with_capacity(len);
    borsh::to_writer(&mut out, node).expect("writing to a Vec cannot fail");
    debug_assert_eq!(out.len(), len);
    out
}

/// The tree as `jmt` reads it: nodes from the state; a value only for the one key being proven
/// (values are read by key from the state, never by key hash).
struct Reader<'a> {
    state: &'a dyn StateRead,
    proving: Option<(&'a [u8], KeyHash)>,
}

impl TreeReader for Reader<'_> {
    fn get_node_option(&self, k: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.state.get(&node_key(k)) {
            None => Ok(None),
            Some(b) => Ok(Some(borsh::from_slice(&b)?)),
        }
    }

    fn get_value_option(&self, _max_version: Version, kh: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        match self.proving {
            Some((key, h)) if h == kh => Ok(self.state.get(key)),
            _ => Err(anyhow::anyhow!("state values are read by key, not by key hash")),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!("tree restoration is not used"))
    }
}

/// Applies the domain writes of block `version` to the tree of its parent (`state` is the
/// parent's state, tree included). Returns the new root and the tree's own writes: new nodes,
/// and index entries naming the nodes this version made stale (pruned later, by the store;
/// a version never deletes a node).
///
/// A parent tree that is incomplete, or of another version, is corrupt storage: it is reported
/// ([`StateRead::corrupt`]) and the root returned is all zeros, which the view's owner never
/// acts on (a validator stops rather than diverge).
pub fn commit(state: &dyn StateRead, version: u64, writes: &WriteSet) -> (Hash, WriteSet) {
    commit_with(state, version, writes, true)
}

fn commit_with(state: &dyn StateRead, version: u64, writes: &WriteSet, batch_allowed: bool) -> (Hash, WriteSet) {
    // Stale nodes wait in the store until pruned, so an older tree may still be readable: a
    // version built on anything but its parent's tree would be computed from the wrong one.
    // A stored node's key starts with its version's first byte: zero, never [`STALE`].
    assert!(version < 1 << 56, "version {version} is past the node keys' range");
    let parent = tree_version(state);
    if parent != version.checked_sub(1) && parent.is_some() {
        state.corrupt(&format!("the state tree is at version {parent:?}, not at the parent of version {version}"));
        return (Hash([0; 32]), WriteSet::new());
    }
    let reader = Reader { state, proving: None };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let set: Vec<(KeyHash, Option<OwnedValue>)> =
        writes.iter().filter(|(k, _)| is_leaf_key(k)).map(|(k, v)| (key_hash(k), v.clone())).collect();
    assert!(!set.is_empty(), "every version writes at least its height");
    // Without deletions, the batch insertion builds each new node once (hashing it once); one
    // key at a time rehashes every node on the path per key, several times slower on large
    // blocks. Both give the same tree: its shape depends only on the keys.
    let done = if batch_allowed && set.iter().all(|(_, v)| v.is_some()) {
        let puts = set.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
        tree.batch_put_value_sets(vec![puts], None, version)
            .map(|(mut roots, batch)| (roots.pop().expect("one version, one root"), batch))
    } else {
        tree.put_value_set(set, version)
    };
    let (root, batch) = match done {
        Ok(done) => done,
        Err(e) => {
            state.corrupt(&format!("the state tree of version {} is incomplete: {e:#}", version.wrapping_sub(1)));
            return (Hash([0; 32]), WriteSet::new());
        }
    };
    let mut out = WriteSet::new();
    for stale in &batch.stale_node_index_batch {
        out.insert(stale_key(stale.stale_since_version, &node_key(&stale.node_key)), Some(Vec::new()));
    }
    for (k, node) in batch.node_batch.nodes() {
        out.insert(node_key(k), Some(encode_node(node)));
    }
    out.insert(version_key(), Some(version.to_be_bytes().to_vec()));
    (Hash(root.0), out)
}

/// The value of `key` in the committed state of `version` (the latest the state holds) with its
/// Merkle proof, Borsh-encoded. An error means the tree is not at `version`, or `key` is not a
/// leaf of it (a key kept off the tree is never proven: its absence from the tree proves nothing).
pub fn prove(state: &dyn StateRead, version: u64, key: &[u8]) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    if !is_leaf_key(key) {
        return Err(format!("`{}` is not in the state tree, so it cannot be proven", String::from_utf8_lossy(key)));
    }
    // Stale nodes wait in the store until pruned, so an older tree may or may not still be
    // readable: only the version the tree is at is proven.
    let at = tree_version(state);
    if at != Some(version) {
        return Err(format!("cannot prove at {version}: the state tree is at version {at:?}"));
    }
    let kh = key_hash(key);
    let reader = Reader { state, proving: Some((key, kh)) };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let (value, proof) = tree.get_with_proof(kh, version).map_err(|e| format!("cannot prove at {version}: {e:#}"))?;
    Ok((value, borsh::to_vec(&proof).expect("writing to a Vec cannot fail")))
}

/// A view that remembers every key read through it: run a query over it to learn which keys
/// its answer depends on (the keys a proof must cover).
pub struct Recording<'a> {
    base: &'a dyn StateRead,
    touched: RefCell<BTreeSet<Vec<u8>>>,
}

impl<'a> Recording<'a> {
    pub fn new(base: &'a dyn StateRead) -> Self {
        Recording { base, touched: RefCell::new(BTreeSet::new()) }
    }
    pub fn touched(self) -> BTreeSet<Vec<u8>> {
        self.touched.into_inner()
    }
}

impl StateRead for Recording<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.touched.borrow_mut().insert(key.to_vec());
        self.base.get(key)
    }
    fn corrupt(&self, what: &str) {
        self.base.corrupt(what)
    }
}

/// Verified values only. A read of a key the proof did not cover answers `None` and is
/// remembered; [`Proven::replay`] then refuses the whole answer, so a node cannot make a query
/// see "absent" by leaving a key out. A proven value that does not decode is remembered too,
/// and refuses the answer as well.
pub struct Proven {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    unproven: RefCell<Vec<Vec<u8>>>,
    corrupt: RefCell<Option<String>>,
}

impl Proven {
    pub fn new(entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Self {
        Proven { entries, unproven: RefCell::new(Vec::new()), corrupt: RefCell::new(None) }
    }

    /// Runs `query` over the verified values; an error names a key it needed that the proof
    /// did not cover, or a proven value that does not decode.
    pub fn replay<T>(&self, query: impl FnOnce(&dyn StateRead) -> T) -> Result<T, String> {
        self.unproven.borrow_mut().clear();
        self.corrupt.borrow_mut().take();
        let out = query(self);
        if let Some(what) = self.corrupt.borrow_mut().take() {
            return Err(format!("a proven value is not one the ledger writes: {what}"));
        }
        match self.unproven.borrow().first() {
            None => Ok(out),
            Some(k) => Err(format!("the proof does not cover key `{}`", String::from_utf8_lossy(k))),
        }
    }
}

impl StateRead for Proven {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.entries.get(key) {
            Some(v) => v.clone(),
            None => {
                self.unproven.borrow_mut().push(key.to_vec());
                None
            }
        }
    }
    fn corrupt(&self, what: &str) {
        self.corrupt.borrow_mut().get_or_insert_with(|| what.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Layered, MemState};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// A proven value that does not decode refuses the answer replayed over it (it cannot come
    /// from the ledger), where it would otherwise read as absent; a clean replay after it answers.
    #[test]
    fn a_proven_value_that_does_not_decode_refuses_the_answer() {
        let pk = medledger_types::Keypair::from_seed(7).public();
        let damaged = Proven::new([(crate::identity::key::credential(&pk), Some(vec![0xff; 3]))].into());
        let why = damaged.replay(|s| crate::identity::credential(s, &pk)).unwrap_err();
        assert!(why.contains("not one the ledger writes") && why.contains("credential does not decode"), "{why}");
        let absent = Proven::new([(crate::identity::key::credential(&pk), None)].into());
        assert_eq!(absent.replay(|s| crate::identity::credential(s, &pk)), Ok(None));
        assert_eq!(damaged.replay(|s| s.get(b"x").is_none()).unwrap_err(), "the proof does not cover key `x`");
    }

    /// A key kept off the tree is stored but is not a leaf: writing it leaves the root as it
    /// is, and it is never proven (an absence proof for it would be a lie).
    #[test]
    fn a_key_off_the_tree_is_not_a_leaf_and_is_not_proven() {
        let index_key = [keys::DRUG_INVENTORY, b"i0/0110614141073464A1"].concat();
        let mut base = WriteSet::new();
        base.insert(keys::HEIGHT.to_vec(), Some(vec![0]));
        let (without, _) = commit(&MemState::default(), 0, &base);
        let mut with = base.clone();
        with.insert(index_key.clone(), Some(vec![1]));
        let (root, tree) = commit(&MemState::default(), 0, &with);
        assert_eq!(root, without, "an off-tree write does not change the state root");
        let mut state = MemState::default();
        state.apply(&with);
        state.apply(&tree);
        assert_eq!(state.get(&index_key), Some(vec![1]), "it is stored");
        let err = prove(&state, 0, &index_key).unwrap_err();
        assert!(err.contains("not in the state tree"), "{err}");
        assert!(prove(&state, 0, keys::HEIGHT).is_ok());
        // Only the version the tree is at is proven.
        let err = prove(&state, 1, keys::HEIGHT).unwrap_err();
        assert!(err.contains("cannot prove at 1"), "{err}");
    }

    /// An older tree may still be stored (its stale nodes wait for pruning): committing a
    /// version on a tree that is not its parent's stops instead of reading it.
    #[test]
    #[should_panic(expected = "not at the parent of version 2")]
    fn a_version_is_committed_only_on_its_parents_tree() {
        let mut state = MemState::default();
        let mut writes = WriteSet::new();
        writes.insert(keys::HEIGHT.to_vec(), Some(0u64.to_be_bytes().to_vec()));
        let (_, tree) = commit(&state, 0, &writes);
        state.apply(&writes);
        state.apply(&tree);
        assert_eq!(tree_version(&state), Some(0));
        writes.insert(keys::HEIGHT.to_vec(), Some(2u64.to_be_bytes().to_vec()));
        commit(&state, 2, &writes);
    }

    /// `Layered` looks a tree node up only in the layer of its version, or in the base: every
    /// key reads as it does in the same state flattened, and versions committed over the layers
    /// have the roots they have over the flattened state.
    #[test]
    fn layered_reads_find_every_node_in_its_versions_layer_or_the_base() {
        let writes_of = |version: u64| {
            let mut w = WriteSet::new();
            for k in 0..40u64 {
                w.insert(format!("k/{}", (k * 7 + version * 13) % 60).into_bytes(), Some(vec![version as u8; 3]));
            }
            if version % 2 == 1 {
                w.insert(format!("k/{}", version * 5).into_bytes(), None);
            }
            w.insert(b"height".to_vec(), Some(version.to_be_bytes().to_vec()));
            w
        };
        let (mut base, mut flat) = (MemState::default(), MemState::default());
        for version in 0..3 {
            let mut w = writes_of(version);
            let (_, tree) = commit(&base, version, &w);
            w.extend(tree);
            base.apply(&w);
            flat.apply(&w);
        }
        let mut layers: Vec<Arc<WriteSet>> = Vec::new();
        for version in 3..7 {
            let mut w = writes_of(version);
            let (root, tree) = commit(&Layered::new(&base, layers.clone()), version, &w);
            let (flat_root, flat_tree) = commit(&flat, version, &w);
            assert_eq!((root, &tree), (flat_root, &flat_tree), "version {version}");
            w.extend(tree);
            flat.apply(&w);
            layers.push(Arc::new(w));
        }
        let view = Layered::new(&base, layers.clone());
        let mut nodes = 0;
        for key in flat.0.keys().chain(layers.iter().flat_map(|l| l.keys())) {
            assert_eq!(view.get(key), flat.get(key), "{}", String::from_utf8_lossy(key));
            nodes += usize::from(node_version(key).is_some());
        }
        assert!(nodes > 100, "the layers and the base hold many nodes ({nodes})");
        // A node key of a layer's version that the layer lacks is absent; one of an older
        // version is looked up in the base.
        let mut missing = [keys::TREE, &5u64.to_be_bytes(), &[0x12, 0x34, 4]].concat();
        assert_eq!(node_version(&missing), Some(5));
        assert_eq!(view.get(&missing), None);
        missing[keys::TREE.len() + 7] = 1;
        assert_eq!(view.get(&missing), flat.get(&missing));
        // Layers that are not a chain of rising versions (here a later write set claiming an
        // earlier one's version, with other node bytes) are read in turn, newest last, as any
        // write sets are.
        let mut again = (*layers[0]).clone();
        let node = again.keys().find(|k| node_version(k) == Some(3)).expect("version 3 made nodes").clone();
        again.insert(node.clone(), Some(b"other bytes".to_vec()));
        let odd = Layered::new(&base, vec![layers[0].clone(), layers[1].clone(), Arc::new(again)]);
        assert_eq!(odd.get(&node), Some(b"other bytes".to_vec()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The batch insertion and the one-key-at-a-time insertion give the same root and the
        /// same tree, over several versions of puts, overwrites and deletions.
        #[test]
        fn batch_and_sequential_insertion_agree(
            versions in prop::collection::vec(
                prop::collection::vec((0u16..300, prop::option::weighted(0.85, prop::collection::vec(any::<u8>(), 0..40))), 1..80),
                1..8,
            )
        ) {
            let (mut a, mut b) = (MemState::default(), MemState::default());
            for (i, raw) in versions.into_iter().enumerate() {
                let version = i as u64;
                let mut writes = WriteSet::new();
                for (k, v) in raw {
                    writes.insert(format!("k/{k}").into_bytes(), v);
                }
                // Every version writes at least one value (as every block writes its height).
                writes.insert(b"height".to_vec(), Some(version.to_be_bytes().to_vec()));
                let (ra, ta) = commit_with(&a, version, &writes, true);
                let (rb, tb) = commit_with(&b, version, &writes, false);
                prop_assert_eq!(ra, rb, "version {}", version);
                a.apply(&writes);
                a.apply(&ta);
                b.apply(&writes);
                b.apply(&tb);
                // Stale nodes stay until pruned (here after every other version, both trees
                // alike); pruned, the store holds exactly the latest tree: one leaf node per
                // live key (no node a version made stale is left, none of its own is lost).
                // Pruned or not, every live key is proven against the root.
                let live: Vec<Vec<u8>> = a.0.keys().filter(|k| is_leaf_key(k)).cloned().collect();
                let leaf_nodes = |s: &MemState| s.0.iter()
                    .filter(|(k, _)| is_tree_key(k))
                    .filter(|(_, v)| matches!(borsh::from_slice::<Node>(v), Ok(Node::Leaf(_))))
                    .count();
                if !version.is_multiple_of(2) {
                    let stale = a.0.range(stale_through(version).0..stale_through(version).1).count();
                    let before = a.0.len();
                    a.prune_tree(version);
                    b.prune_tree(version);
                    prop_assert_eq!(a.0.len(), before - 2 * stale, "each entry and its node go");
                    prop_assert_eq!(leaf_nodes(&a), live.len(), "version {}", version);
                    prop_assert!(a.0.keys().all(|k| !k.starts_with(&stale_through(0).0)), "no stale entry is left");
                }
                prop_assert_eq!(tree_version(&a), Some(version));
                for key in &live {
                    let (value, proof) = prove(&a, version, key).map_err(TestCaseError::fail)?;
                    medledger_types::state_proof::verify_entry(&ra, key, value.as_deref(), &proof)
                        .map_err(TestCaseError::fail)?;
                }
            }
            prop_assert_eq!(a.0, b.0);
        }
    }
}
