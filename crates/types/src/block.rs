//! Blocks: a header committing to the ordered transactions and the state after executing them.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::{domain, tagged, Hash};
use crate::keys::PublicKey;
use crate::merkle;
use crate::tx::{limits::MAX_TX_BYTES, Tx, TxDecodeError};
use serde::{Deserialize, Serialize};

/// Most transactions one block may carry.
pub const MAX_BLOCK_TXS: usize = 4096;
/// Most work one block may carry, in [`crate::Operation::weight`] units (about one state
/// object each). Bounds the writes, and so the memory and time, of executing any block: a block
/// over it is invalid, and proposers stop filling a block before it.
pub const MAX_BLOCK_WEIGHT: u64 = 12_288;

/// The work of a list of transactions (see [`MAX_BLOCK_WEIGHT`]).
pub fn weight_of(txs: &[crate::Tx]) -> u64 {
    txs.iter().map(|t| t.body().op.weight()).sum()
}
/// Upper bound on an encoded block.
pub const MAX_BLOCK_BYTES: usize = HEADER_BYTES + 4 + MAX_BLOCK_TXS * (4 + MAX_TX_BYTES);
/// Encoded header size.
pub const HEADER_BYTES: usize = 8 + 32 + 8 + 32 + 32 + 32 + 4;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub parent: Hash,
    pub timestamp_ms: u64,
    pub proposer: PublicKey,
    /// RFC 9162 Merkle root over the transaction ids, in block order.
    pub tx_root: Hash,
    /// State root after executing this block on its parent's state.
    pub state_root: Hash,
    pub tx_count: u32,
}

impl BlockHeader {
    /// The block's identity: domain-separated hash of the encoded header.
    pub fn digest(&self) -> Hash {
        tagged(domain::BLOCK, &[&self.to_bytes()])
    }
}

impl Canonical for BlockHeader {
    fn encode_to(&self, w: &mut Writer) {
        w.u64(self.height).fixed(&self.parent.0).u64(self.timestamp_ms);
        self.proposer.encode_to(w);
        w.fixed(&self.tx_root.0).fixed(&self.state_root.0).u32(self.tx_count);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader {
            height: r.u64("height")?,
            parent: Hash(r.array("parent")?),
            timestamp_ms: r.u64("timestamp")?,
            proposer: PublicKey::decode_from(r)?,
            tx_root: Hash(r.array("tx root")?),
            state_root: Hash(r.array("state root")?),
            tx_count: r.u32("tx count")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Tx>,
    digest: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockDecodeError {
    #[error("malformed block: {0}")]
    Malformed(#[from] DecodeError),
    #[error("transaction {0} in block: {1}")]
    Tx(usize, TxDecodeError),
    #[error("header says {0} transactions, body has {1}")]
    CountMismatch(u32, usize),
    #[error("transaction root {0} does not match the header's {1}")]
    TxRootMismatch(Hash, Hash),
}

/// Root over the ids of `txs`.
pub fn tx_root(txs: &[Tx]) -> Hash {
    let ids: Vec<[u8; 32]> = txs.iter().map(|t| t.id().0).collect();
    merkle::root(&ids)
}

impl Block {
    /// Assembles a block; computes `tx_root` and `tx_count` from `txs`.
    pub fn new(
        height: u64,
        parent: Hash,
        timestamp_ms: u64,
        proposer: PublicKey,
        state_root: Hash,
        txs: Vec<Tx>,
    ) -> Block {
        assert!(txs.len() <= MAX_BLOCK_TXS, "block over its transaction limit");
        let header = BlockHeader {
            height,
            parent,
            timestamp_ms,
            proposer,
            tx_root: tx_root(&txs),
            state_root,
            tx_count: txs.len() as u32,
        };
        let digest = header.digest();
        Block { header, txs, digest }
    }

    pub fn digest(&self) -> Hash {
        self.digest
    }
    pub fn height(&self) -> u64 {
        self.header.height
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.header.encode_to(&mut w);
        w.u32(self.txs.len() as u32);
        for t in &self.txs {
            w.bytes(t.raw());
        }
        w.finish()
    }

    pub fn encoded_len(&self) -> usize {
        HEADER_BYTES + 4 + self.txs.iter().map(|t| 4 + t.raw().len()).sum::<usize>()
    }

    /// The header of an encoded block (its prefix), without decoding or checking the body: for
    /// reading a stored block's header, where the whole block was checked when it was stored.
    pub fn header_of(bytes: &[u8]) -> Result<BlockHeader, DecodeError> {
        BlockHeader::decode_from(&mut Reader::new(bytes))
    }

    /// Decodes a block and checks that its body matches its header.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockDecodeError> {
        let mut r = Reader::new(bytes);
        let header = BlockHeader::decode_from(&mut r)?;
        let n = r.len("transactions", MAX_BLOCK_TXS)?;
        if n != header.tx_count as usize {
            return Err(BlockDecodeError::CountMismatch(header.tx_count, n));
        }
        let mut txs = Vec::with_capacity(n);
        for i in 0..n {
            let raw = r.bytes("transaction", MAX_TX_BYTES)?;
            txs.push(Tx::decode(raw).map_err(|e| BlockDecodeError::Tx(i, e))?);
        }
        r.finish()?;
        let root = tx_root(&txs);
        if root != header.tx_root {
            return Err(BlockDecodeError::TxRootMismatch(root, header.tx_root));
        }
        let digest = header.digest();
        Ok(Block { header, txs, digest })
    }

    /// Inclusion proof for the transaction at `index`.
    pub fn prove(&self, index: usize) -> Option<merkle::InclusionProof> {
        let ids: Vec<[u8; 32]> = self.txs.iter().map(|t| t.id().0).collect();
        merkle::prove(&ids, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::tx::{Operation, Transaction};
    use crate::IdentityOp;

    fn txs(n: u64) -> Vec<Tx> {
        let k = Keypair::from_seed(4);
        (0..n)
            .map(|i| {
                Tx::sign(
                    Transaction {
                        chain_id: "c".into(),
                        signer: k.public(),
                        nonce: i,
                        op: Operation::Identity(IdentityOp::Attest {
                            digest: Hash([i as u8; 32]),
                            label: String::new(),
                        }),
                    },
                    &k,
                )
            })
            .collect()
    }

    #[test]
    fn block_round_trip_and_proofs() {
        let b = Block::new(5, Hash([1; 32]), 1000, PublicKey([9; 32]), Hash([2; 32]), txs(7));
        let enc = b.encode();
        assert_eq!(enc.len(), b.encoded_len());
        let d = Block::decode(&enc).unwrap();
        assert_eq!(d, b);
        assert_eq!(d.digest(), b.digest());
        for i in 0..7 {
            let p = b.prove(i).unwrap();
            assert!(merkle::verify(&b.header.tx_root, &b.txs[i].id().0, &p));
        }
        assert!(b.prove(7).is_none());
    }

    #[test]
    fn tampered_block_bodies_are_rejected() {
        let b = Block::new(1, Hash::ZERO, 1, PublicKey([9; 32]), Hash::ZERO, txs(3));
        let mut other = Block::new(1, Hash::ZERO, 1, PublicKey([9; 32]), Hash::ZERO, txs(4));
        other.header = b.header.clone();
        other.header.tx_count = 4;
        let err = Block::decode(&other.encode()).unwrap_err();
        assert!(matches!(err, BlockDecodeError::TxRootMismatch(..)), "{err}");
        let mut enc = b.encode();
        enc.truncate(enc.len() - 3);
        assert!(matches!(Block::decode(&enc), Err(BlockDecodeError::Malformed(_))));
    }
}
