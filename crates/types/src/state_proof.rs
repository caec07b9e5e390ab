//! State proofs: the values of some state keys (or their absence), proven against the state root
//! of a block that a quorum of the genesis validators finalized.
//!
//! The state root of every block is the root of a Jellyfish Merkle tree (16-ary sparse Merkle
//! tree, the `jmt` crate) over the whole key-value state after that block. A leaf is
//! `(key_hash, value_hash)` with `key_hash = H("medledger/state-key/v1", key)` and
//! `value_hash = SHA-256(value)`; the tree hashes leaves and inner nodes with its own prefixes
//! (`JMT::LeafNode`, `JMT::IntrnalNode`).
//!
//! A [`StateProof`] is self-contained. It is checked with the genesis file alone:
//! 1. the format tag and chain id;
//! 2. the header chain: `header`, then each of `descendants` naming the previous one as parent;
//! 3. the finalization certificate over the last of them, signed by a quorum of the genesis
//!    validators;
//! 4. each entry's Merkle proof against `header.state_root`: inclusion of `value`, or exclusion
//!    when `value` is null.
//!
//! The JSON format is versioned by its `format` field ([`FORMAT`]); a change of any field's
//! meaning gets a new version. See `docs/state-proofs.md`.

use crate::certificate::verify_certificate;
use crate::hash::{domain, tagged};
use crate::{BlockHeader, Genesis, Hash};
use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format tag of this version of the proof format.
pub const FORMAT: &str = "medledger-state-proof/1";
/// Most entries one proof carries.
pub const MAX_ENTRIES: usize = 512;
/// Most descendant headers between the proven block and the certified one.
pub const MAX_DESCENDANTS: usize = 64;
/// Largest encoded Merkle proof of one entry: 256 siblings of at most 65 bytes, and the leaf.
pub const MAX_ENTRY_PROOF_BYTES: usize = 256 * 65 + 128;

/// The hash function of the state tree.
pub type TreeHasher = sha2::Sha256;

/// The tree position of a state key.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(tagged(domain::STATE_KEY, &[key]).0)
}

/// A proof, as nodes serve it and `medledger verify --state-proof` reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateProof {
    /// [`FORMAT`].
    pub format: String,
    pub chain_id: String,
    /// The block whose `state_root` the entries are proven against.
    pub header: BlockHeader,
    /// Headers from `header.height + 1` up to the certified block, when the proven block was
    /// finalized through a descendant's certificate (usually empty).
    pub descendants: Vec<BlockHeader>,
    /// Height of the block the certificate finalizes.
    pub certified_height: u64,
    /// Hex of the consensus finalization certificate of `certified_height`.
    pub certificate: String,
    pub entries: Vec<ProvenEntry>,
}

/// One state key with its value (hex, or null when absent) and its Merkle proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEntry {
    /// The state key, hex.
    pub key: String,
    /// The value, hex; null if the key is absent.
    pub value: Option<String>,
    /// Borsh encoding of the `jmt` sparse Merkle proof, hex.
    pub proof: String,
}

/// What a verified proof establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub height: u64,
    pub timestamp_ms: u64,
    pub block_hash: Hash,
    pub state_root: Hash,
    /// Every proven key: its value, or `None` if proven absent.
    pub entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn unhex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))
}

/// Checks one key's value (or absence) against a state root.
pub fn verify_entry(root: &Hash, key: &[u8], value: Option<&[u8]>, proof: &[u8]) -> Result<(), String> {
    if proof.len() > MAX_ENTRY_PROOF_BYTES {
        return Err(format!("the Merkle proof is {} bytes, above {MAX_ENTRY_PROOF_BYTES}", proof.len()));
    }
    let p: SparseMerkleProof<TreeHasher> =
        borsh::from_slice(proof).map_err(|e| format!("the Merkle proof does not decode: {e}"))?;
    p.verify(RootHash(root.0), key_hash(key), value).map_err(|e| format!("the Merkle proof does not verify: {e}"))
}

impl StateProof {
    /// Verifies everything against the genesis file; see the module documentation.
    pub fn verify(&self, g: &Genesis) -> Result<Verified, String> {
        if self.format != FORMAT {
            return Err(format!("unknown proof format `{}` (this client reads `{FORMAT}`)", self.format));
        }
        if self.chain_id != g.chain_id {
            return Err(format!("proof is for chain `{}`, genesis is `{}`", self.chain_id, g.chain_id));
        }
        if self.entries.len() > MAX_ENTRIES || self.descendants.len() > MAX_DESCENDANTS {
            return Err("proof has too many entries or descendant headers".into());
        }
        let mut last = self.header.clone();
        for h in &self.descendants {
            if h.parent != last.digest() || h.height != last.height.wrapping_add(1) {
                return Err(format!("descendant header {} does not link to its parent", h.height));
            }
            last = h.clone();
        }
        if last.height != self.certified_height {
            return Err("the headers do not reach the certified height".into());
        }
        let cert = unhex(&self.certificate, "certificate")?;
        verify_certificate(g, &cert, &last.digest())?;
        let root = self.header.state_root;
        let mut entries = BTreeMap::new();
        for e in &self.entries {
            let key = unhex(&e.key, "entry key")?;
            let value = e.value.as_deref().map(|v| unhex(v, "entry value")).transpose()?;
            let proof = unhex(&e.proof, "entry proof")?;
            verify_entry(&root, &key, value.as_deref(), &proof)
                .map_err(|err| format!("key {}: {err}", String::from_utf8_lossy(&key)))?;
            entries.insert(key, value);
        }
        Ok(Verified {
            height: self.header.height,
            timestamp_ms: self.header.timestamp_ms,
            block_hash: self.header.digest(),
            state_root: root,
            entries,
        })
    }
}
