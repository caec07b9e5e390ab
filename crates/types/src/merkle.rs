//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing and inclusion proofs.
//!
//! - `MTH({}) = SHA-256()`
//! - `MTH({d0}) = SHA-256(0x00 || d0)`
//! - `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`, `k` the largest power of two `< n`.
//!
//! Leaves here are transaction ids. The inclusion proof is the RFC 9162 §2.1.3 audit path and is
//! verified with the §2.1.3.2 algorithm.

use crate::hash::{sha256, Hash};
use serde::{Deserialize, Serialize};

pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], &left.0, &right.0])
}

fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    // Largest power of two strictly smaller than n.
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn subtree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

/// The Merkle tree hash of the given leaf data.
pub fn root<T: AsRef<[u8]>>(data: &[T]) -> Hash {
    let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d.as_ref())).collect();
    subtree_root(&leaves)
}

/// An inclusion proof for leaf `index` of a tree with `size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub path: Vec<Hash>,
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(subtree_root(&leaves[..k]));
    }
}

/// Builds the audit path for `index`, or `None` if it is out of range.
pub fn prove<T: AsRef<[u8]>>(data: &[T], index: usize) -> Option<InclusionProof> {
    if index >= data.len() {
        return None;
    }
    let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d.as_ref())).collect();
    let mut p = Vec::new();
    path(index, &leaves, &mut p);
    Some(InclusionProof { index: index as u64, size: data.len() as u64, path: p })
}

/// RFC 9162 §2.1.3.2: checks that `leaf_data` is leaf `proof.index` of the tree with root `root`.
pub fn verify(root: &Hash, leaf_data: &[u8], proof: &InclusionProof) -> bool {
    if proof.index >= proof.size {
        return false;
    }
    let mut fnode = proof.index;
    let mut snode = proof.size - 1;
    let mut r = leaf_hash(leaf_data);
    for p in &proof.path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_single_follow_rfc() {
        let empty: [&[u8]; 0] = [];
        assert_eq!(root(&empty).to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(root(&[b"a"]), leaf_hash(b"a"));
        assert_eq!(root(&[b"a", b"b"]), node_hash(&leaf_hash(b"a"), &leaf_hash(b"b")));
        // Three leaves: split at 2.
        let l: Vec<Hash> = [b"a", b"b", b"c"].iter().map(|d| leaf_hash(*d)).collect();
        assert_eq!(root(&[b"a", b"b", b"c"]), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    /// The RFC 6962/9162 reference test vector: the 8-leaf tree used by Certificate Transparency.
    #[test]
    fn matches_certificate_transparency_vector() {
        let leaves: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            vec![0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
        ];
        assert_eq!(root(&leaves).to_hex(), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
        assert_eq!(root(&leaves[..1]).to_hex(), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_tampering_fails(n in 1usize..70, pick in 0usize..70) {
            let data: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_be_bytes().to_vec()).collect();
            let r = root(&data);
            let i = pick % n;
            let p = prove(&data, i).unwrap();
            prop_assert!(verify(&r, &data[i], &p));
            prop_assert!(!verify(&r, b"other", &p));
            if n > 1 {
                let mut wrong = p.clone();
                wrong.index = ((i + 1) % n) as u64;
                prop_assert!(!verify(&r, &data[i], &wrong));
            }
            let mut longer = p.clone();
            longer.path.push(r);
            prop_assert!(!verify(&r, &data[i], &longer));
        }
    }
}
