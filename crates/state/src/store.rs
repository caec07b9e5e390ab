//! The key-value view the state machine reads, and the write sets it produces.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Read access to committed (or speculative) state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;

    /// Reports a stored value the state machine cannot have written (it does not decode, or it
    /// contradicts another), named by `what`. The domain code then reads the value as absent and
    /// goes on; whoever owns the view checks it before acting on any answer computed over it. A
    /// view over storage latches the fault, and its store refuses every later read and commit
    /// (a validator stops, its API answers that its state is corrupt); a view over proven values
    /// refuses the answer. A state held only in memory, built by the process itself (tests,
    /// simulations, benchmarks, re-execution from genesis), cannot hold such a value, and stops.
    fn corrupt(&self, what: &str);
}

/// Writes of one block, sorted by key. `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An in-memory state, for tests and simulations.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct MemState(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for MemState {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key).cloned()
    }
    fn corrupt(&self, what: &str) {
        // Only this process's own writes are in it: a value that does not decode is a bug.
        panic!("in-memory state is corrupt: {what}")
    }
}

impl MemState {
    pub fn apply(&mut self, writes: &WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.0.insert(k.clone(), v.clone());
                }
                None => {
                    self.0.remove(k);
                }
            }
        }
    }

    /// Drops the state tree's nodes that no version after `through` needs, as a node's store
    /// does from time to time (see [`crate::commitment::pruned`]).
    pub fn prune_tree(&mut self, through: u64) {
        let (start, end) = crate::commitment::stale_through(through);
        let entries: Vec<Vec<u8>> = self.0.range(start..end).map(|(k, _)| k.clone()).collect();
        self.apply(&crate::commitment::pruned(entries).expect("the index holds only entries commit wrote"));
    }
}

/// Committed state plus the write sets of not-yet-finalized ancestors, newest last.
pub struct Layered<'a> {
    base: &'a dyn StateRead,
    layers: Vec<Arc<WriteSet>>,
    /// The tree version each layer made, when every layer made one (sealed blocks do) and they
    /// rise from layer to layer, as a chain of blocks' do.
    versions: Option<Vec<u64>>,
}

impl<'a> Layered<'a> {
    pub fn new(base: &'a dyn StateRead, layers: Vec<Arc<WriteSet>>) -> Self {
        let versions: Option<Vec<u64>> = layers.iter().map(|l| crate::commitment::written_version(l)).collect();
        let versions = versions.filter(|v| v.windows(2).all(|w| w[0] < w[1]));
        Layered { base, layers, versions }
    }
}

impl StateRead for Layered<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        // A tree node is written only by the block of its version, and never deleted by a
        // block: it is in that block's layer, or, if no layer is of its version, in the base.
        // (The state tree reads thousands of nodes per block; most are in the base.)
        if let (Some(versions), Some(v)) = (&self.versions, crate::commitment::node_version(key)) {
            return match versions.iter().position(|&lv| lv == v) {
                Some(i) => self.layers[i].get(key).cloned().flatten(),
                None => self.base.get(key),
            };
        }
        for layer in self.layers.iter().rev() {
            if let Some(v) = layer.get(key) {
                return v.clone();
            }
        }
        self.base.get(key)
    }
    fn corrupt(&self, what: &str) {
        self.base.corrupt(what)
    }
}

/// Buffered writes over a base view.
pub(crate) struct Overlay<'a> {
    pub base: &'a dyn StateRead,
    pub writes: WriteSet,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn StateRead) -> Self {
        Overlay { base, writes: WriteSet::new() }
    }
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }
    fn corrupt(&self, what: &str) {
        self.base.corrupt(what)
    }
}
