//! Transaction inclusion proofs: a signed transaction, the header of the block that holds it,
//! its RFC 9162 audit path under the header's transaction root, any descendant headers up to
//! the certified block, and that block's finalization certificate. Checked against the genesis
//! file alone ([`verify`]), by `medledger verify --proof` and by the web UI's explorer.

use crate::certificate::verify_certificate;
use crate::{merkle, BlockHeader, Genesis, Tx};
use serde::{Deserialize, Serialize};

/// Everything needed to check a transaction's inclusion offline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProofBundle {
    pub chain_id: String,
    pub tx_id: String,
    /// Canonical signed transaction bytes, hex.
    pub tx: String,
    pub height: u64,
    pub block_hash: String,
    pub header: BlockHeader,
    pub proof: merkle::InclusionProof,
    /// Headers of the descendants from `height + 1` up to the certified block, if this block
    /// was finalized through a descendant's certificate (usually empty).
    pub descendants: Vec<BlockHeader>,
    /// Height of the block the certificate finalizes (`height` itself, usually).
    pub certified_height: u64,
    /// Hex of the consensus finalization certificate for `certified_height`.
    pub certificate: String,
}

/// Checks a proof bundle against the genesis file: the transaction's signature and id, its
/// inclusion under the block's tx root, the hash links up to the certified block, and the
/// certificate's quorum signatures. Returns the verified transaction and a sentence saying
/// what was proven.
pub fn verify(g: &Genesis, p: &ProofBundle) -> Result<(Tx, String), String> {
    if p.chain_id != g.chain_id {
        return Err(format!("proof is for chain `{}`, genesis is `{}`", p.chain_id, g.chain_id));
    }
    let raw = hex::decode(&p.tx).map_err(|e| format!("tx is not hex: {e}"))?;
    let tx = Tx::decode(&raw).map_err(|e| format!("tx: {e}"))?;
    if tx.id().to_hex() != p.tx_id {
        return Err("tx id does not match the transaction bytes".into());
    }
    if !tx.verify_signature() {
        return Err("transaction signature does not verify".into());
    }
    if p.header.height != p.height || p.header.digest().to_hex() != p.block_hash {
        return Err("block header does not match the stated height/hash".into());
    }
    if p.proof.size != p.header.tx_count as u64 {
        return Err("proof tree size differs from the block's tx count".into());
    }
    if !merkle::verify(&p.header.tx_root, &tx.id().0, &p.proof) {
        return Err("inclusion proof does not lead to the block's tx root".into());
    }
    let mut prev = p.header.clone();
    for h in &p.descendants {
        if h.parent != prev.digest() || h.height != prev.height + 1 {
            return Err(format!("descendant header {} does not link to its parent", h.height));
        }
        prev = h.clone();
    }
    if prev.height != p.certified_height {
        return Err("descendant headers do not reach the certified height".into());
    }
    let cert = hex::decode(&p.certificate).map_err(|e| format!("certificate is not hex: {e}"))?;
    verify_certificate(g, &cert, &prev.digest())?;
    let msg = format!(
        "transaction {} is included at height {} (index {}) and finalized by a quorum certificate at height {}",
        p.tx_id, p.height, p.proof.index, p.certified_height
    );
    Ok((tx, msg))
}
