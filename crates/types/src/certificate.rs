//! Finalization certificates: a quorum of the genesis validators signing one block digest
//! (Commonware simplex, ed25519). Checked here, with nothing but the genesis file, by the node's
//! offline verifier and by every light client.

use crate::{Genesis, Hash};
use commonware_codec::Decode as _;
use commonware_consensus::simplex::{scheme::ed25519, types::Finalization};
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::ed25519::PublicKey as EdPublicKey;
use commonware_cryptography::sha256::Digest as Sha256Digest;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;

/// The digest type consensus orders.
pub type D = Sha256Digest;
/// The certificate scheme: ed25519 multi-signatures over simplex votes.
pub type S = ed25519::Scheme;

/// Namespace of consensus votes; identical on every validator of a chain.
pub const CONSENSUS_NAMESPACE: &[u8] = b"_MEDLEDGER_CONSENSUS";

pub fn to_digest(h: Hash) -> D {
    Sha256Digest(h.0)
}

/// The validator set as consensus sees it (sorted). Keys that are not valid ed25519 points are
/// left out; [`Genesis::validate`] refuses such a file in the first place.
pub fn participants(g: &Genesis) -> Set<EdPublicKey> {
    let keys: Vec<EdPublicKey> = g.institutions.iter().filter_map(|i| i.validator_key.to_ed25519()).collect();
    Set::from_iter_dedup(keys)
}

/// A verify-only certificate scheme for the chain.
pub fn verifier(g: &Genesis) -> S {
    S::verifier(CONSENSUS_NAMESPACE, participants(g))
}

/// Decodes and checks a finalization certificate: signed by a quorum of the genesis validators
/// and finalizing exactly `block_hash`.
pub fn verify_certificate(g: &Genesis, cert: &[u8], block_hash: &Hash) -> Result<(), String> {
    let scheme = verifier(g);
    let f = Finalization::<S, D>::decode_cfg(cert.to_vec(), &scheme.certificate_codec_config())
        .map_err(|e| format!("certificate does not decode: {e}"))?;
    if f.proposal.payload != to_digest(*block_hash) {
        return Err(format!("certificate finalizes {}, not this block", hex::encode(f.proposal.payload.0)));
    }
    if !f.verify(&mut rand::rng(), &scheme, &Sequential) {
        return Err("certificate signatures do not verify against the genesis validator set".into());
    }
    Ok(())
}
