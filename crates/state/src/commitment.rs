//! The authenticated state: a Jellyfish Merkle tree (the `jmt` crate) over every key-value pair
//! of the domain state except the keys kept off it ([`keys::OFF_TREE`]), versioned by block height.
//!
//! The tree's nodes live in the state itself, under [`keys::TREE`] (a prefix no domain key can
//! start with), so they travel with the block's writes: they are layered for unfinalized blocks
//! exactly like domain writes, committed in the same storage transaction, and held in memory by
//! [`crate::MemState`] in simulations. Only the latest version is kept: the nodes a block makes
//! stale are deleted by that block's writes.
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

/// Is `key` a node of the state tree (not domain state)?
pub fn is_tree_key(key: &[u8]) -> bool {
    key.starts_with(keys::TREE)
}

/// Is `key` a leaf of the state tree: domain state that is neither a tree node nor kept off
/// the tree ([`keys::OFF_TREE`])?
pub fn is_leaf_key(key: &[u8]) -> bool {
    !is_tree_key(key) && !keys::is_off_tree(key)
}

fn node_key(k: &NodeKey) -> Vec<u8> {
    let mut out = keys::TREE.to_vec();
    borsh::to_writer(&mut out, k).expect("writing to a Vec cannot fail");
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
/// and deletions of the nodes this version made stale.
///
/// Panics if the parent's tree is incomplete: that is corrupt storage, and a validator must stop
/// rather than diverge.
pub fn commit(state: &dyn StateRead, version: u64, writes: &WriteSet) -> (Hash, WriteSet) {
    commit_with(state, version, writes, true)
}

fn commit_with(state: &dyn StateRead, version: u64, writes: &WriteSet, batch_allowed: bool) -> (Hash, WriteSet) {
    let reader = Reader { state, proving: None };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let set: Vec<(KeyHash, Option<OwnedValue>)> =
        writes.iter().filter(|(k, _)| is_leaf_key(k)).map(|(k, v)| (key_hash(k), v.clone())).collect();
    assert!(!set.is_empty(), "every version writes at least its height");
    let incomplete = |e: anyhow::Error| -> ! {
        panic!("the state tree of version {} is incomplete: {e:#}", version.wrapping_sub(1))
    };
    // Without deletions, the batch insertion builds each new node once (hashing it once); one
    // key at a time rehashes every node on the path per key, several times slower on large
    // blocks. Both give the same tree: its shape depends only on the keys.
    let (root, batch) = if batch_allowed && set.iter().all(|(_, v)| v.is_some()) {
        let puts = set.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
        let (mut roots, batch) = tree.batch_put_value_sets(vec![puts], None, version).unwrap_or_else(|e| incomplete(e));
        (roots.pop().expect("one version, one root"), batch)
    } else {
        tree.put_value_set(set, version).unwrap_or_else(|e| incomplete(e))
    };
    let mut out = WriteSet::new();
    for stale in &batch.stale_node_index_batch {
        out.insert(node_key(&stale.node_key), None);
    }
    for (k, node) in batch.node_batch.nodes() {
        out.insert(node_key(k), Some(borsh::to_vec(node).expect("writing to a Vec cannot fail")));
    }
    (Hash(root.0), out)
}

/// The value of `key` in the committed state of `version` (the latest the state holds) with its
/// Merkle proof, Borsh-encoded. An error means the tree is not at `version`, or `key` is not a
/// leaf of it (a key kept off the tree is never proven: its absence from the tree proves nothing).
pub fn prove(state: &dyn StateRead, version: u64, key: &[u8]) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    if !is_leaf_key(key) {
        return Err(format!("`{}` is not in the state tree, so it cannot be proven", String::from_utf8_lossy(key)));
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
}

/// Verified values only. A read of a key the proof did not cover answers `None` and is
/// remembered; [`Proven::replay`] then refuses the whole answer, so a node cannot make a query
/// see "absent" by leaving a key out.
pub struct Proven {
    entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    unproven: RefCell<Vec<Vec<u8>>>,
}

impl Proven {
    pub fn new(entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Self {
        Proven { entries, unproven: RefCell::new(Vec::new()) }
    }

    /// Runs `query` over the verified values; an error names a key it needed that the proof
    /// did not cover.
    pub fn replay<T>(&self, query: impl FnOnce(&dyn StateRead) -> T) -> Result<T, String> {
        self.unproven.borrow_mut().clear();
        let out = query(self);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemState;
    use proptest::prelude::*;

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
            }
            prop_assert_eq!(a.0, b.0);
        }
    }
}
