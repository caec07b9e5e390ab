//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and the smoke test that runs
//! in the normal test suite. Each must never panic on any input, and whatever decodes must
//! re-encode to exactly the input (canonical encoding).

use crate::{Block, Canonical, Receipt, Tx};

/// Transaction decoding: no panic; accepted bytes are canonical.
pub fn tx_decode(data: &[u8]) {
    if let Ok(tx) = Tx::decode(data) {
        assert_eq!(tx.raw(), data);
        let body = tx.body().to_bytes();
        assert_eq!(body.as_slice(), tx.signed_bytes(), "the signed part re-encodes identically");
        let _ = tx.verify_signature();
    }
}

/// Block decoding: no panic; accepted bytes are canonical and the tx root matches.
pub fn block_decode(data: &[u8]) {
    if let Ok(b) = Block::decode(data) {
        assert_eq!(b.encode(), data);
        assert_eq!(b.header.tx_root, crate::block::tx_root(&b.txs));
    }
}

/// Receipt decoding: no panic; accepted bytes are canonical.
pub fn receipt_decode(data: &[u8]) {
    if let Ok(r) = Receipt::from_bytes(data) {
        assert_eq!(r.to_bytes(), data);
    }
}
