//! Every explicit limit MedLedger enforces, in one registry.
//!
//! Field limits belong to the domain that owns the field and are re-exported here; limits that
//! cut across domains (transaction size, API bodies and batches) are defined here. Relationships
//! between limits are asserted at compile time, so changing one number cannot silently break
//! another: a batch of the largest transactions, hex-encoded in JSON, always fits the batch
//! route's body limit.

pub use crate::audit::limits::*;
pub use crate::care::limits::*;
pub use crate::consent::limits::*;
pub use crate::drugs::limits::*;
pub use crate::identity::limits::*;
pub use crate::records::limits::*;

/// Largest encoded signed transaction the node accepts.
pub const MAX_TX_BYTES: usize = 8 * 1024;
/// Most work one transaction may carry ([`crate::Operation::weight`]); well under a block's
/// budget, so every admitted transaction fits a block.
pub const MAX_TX_WEIGHT: u64 = 3_072;
/// Longest chain id.
pub const MAX_CHAIN_ID: usize = 64;
/// Longest free-text reason (revocation, access request, break-glass, access event).
pub const MAX_REASON: usize = 256;

/// Most transactions in one `POST /v1/txs/batch`.
pub const MAX_BATCH: usize = 5_000;
/// JSON framing allowed per transaction in a batch body: quotes, comma, whitespace.
pub const BATCH_ITEM_OVERHEAD: usize = 8;
/// Body limit of the batch route: [`MAX_BATCH`] hex-encoded transactions of [`MAX_TX_BYTES`],
/// with their framing, and 1 KiB for the envelope.
pub const MAX_BATCH_BODY_BYTES: usize = MAX_BATCH * (2 * MAX_TX_BYTES + BATCH_ITEM_OVERHEAD) + 1024;
/// Body limit of `POST /v1/txs`: one hex transaction and its JSON envelope.
pub const MAX_TX_BODY_BYTES: usize = 2 * MAX_TX_BYTES + 1024;
/// JSON of one wrapped key in an upload: recipient and HPKE encapsulation and ciphertext (hex),
/// with field names, generously.
pub const WRAPPED_KEY_JSON_BYTES: usize = 1024;
/// Body limit of `POST /v1/records`: the largest sealed record and its anchor transaction in
/// hex, and [`MAX_RECIPIENTS`] wrapped keys.
pub const MAX_UPLOAD_BODY_BYTES: usize =
    2 * MAX_SEALED_BYTES + 2 * MAX_TX_BYTES + MAX_RECIPIENTS * WRAPPED_KEY_JSON_BYTES + 4096;
/// Body limit of signed requests (record reads, audit queries, key additions).
pub const MAX_SIGNED_REQUEST_BODY_BYTES: usize = 8 * 1024;
/// Body limit of `POST /v1/care/readings`: far above one reading (8 KiB), so that an oversize
/// reading is answered with the field and its limit, and only absurd bodies are cut short.
pub const MAX_READING_BODY_BYTES: usize = 256 * 1024;
/// Body limit of every route without its own (requests without a body need none).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most blocks one `GET /v1/blocks` returns.
pub const MAX_BLOCK_LIST: u64 = 100;
/// Largest sealed record accepted by a vault: the 1 MiB FHIR limit plus the AEAD overhead.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Sealed content is the plaintext plus a 16-byte tag and headroom for a nonce and framing.
pub const MAX_SEALED_BYTES: usize = MAX_RECORD_BYTES + 64;

// Relationships, checked by the compiler.
const _: () = assert!(
    MAX_TX_WEIGHT * 4 <= crate::block::MAX_BLOCK_WEIGHT,
    "a block holds at least four of the heaviest transactions"
);
const _: () =
    assert!(MAX_BATCH * 2 * MAX_TX_BYTES < MAX_BATCH_BODY_BYTES, "a full batch must fit its route's body limit");
const _: () = assert!(
    MAX_SEALED_BYTES * 2 + MAX_TX_BYTES * 2 + MAX_RECIPIENTS * WRAPPED_KEY_JSON_BYTES < MAX_UPLOAD_BODY_BYTES,
    "a hex upload of the largest record with every wrapped key must fit the upload route's limit"
);
const _: () = assert!(MAX_UPLOAD_BODY_BYTES < 4 * 1024 * 1024, "an upload body stays under 4 MiB");
const _: () = assert!(2 * MAX_TX_BYTES < MAX_TX_BODY_BYTES, "a hex transaction fits its route's limit");
const _: () = assert!(
    2 * (MAX_CHAIN_ID + MAX_REASON + 256) + 128 + 1024 < MAX_SIGNED_REQUEST_BODY_BYTES,
    "the largest signed read (hex, with its signature) fits its route's limit"
);
const _: () =
    assert!(MAX_INSTITUTION_ID < MAX_TX_BYTES && MAX_LOCATOR < MAX_TX_BYTES, "single fields fit a transaction");
const _: () = assert!(
    MAX_SCOPE_ITEMS * (4 + MAX_RESOURCE_TYPE) + crate::note::MAX_NOTE_BYTES + 512 < MAX_TX_BYTES,
    "the largest consent request fits a transaction"
);
const _: () = assert!(MAX_SEALED_BYTES > MAX_RECORD_BYTES);
const _: () = assert!(
    MAX_READING_BODY_BYTES > 4 * crate::care::vitals::MAX_READING_BYTES,
    "a reading with JSON escaping fits its route's limit"
);
const _: () = assert!(
    MAX_REGULATORS + 4 <= crate::note::MAX_NOTE_RECIPIENTS,
    "a note can be sealed for every regulator, the patient, the holder and the requester"
);
const _: () = assert!(
    MAX_ACCESS_BATCH * ACCESS_NOTE_BASE_BYTES + 512 < MAX_TX_BYTES,
    "a full batch of access events without reasons fits a transaction"
);
const _: () = assert!(
    crate::note::MAX_NOTE_BYTES + ACCESS_NOTE_BASE_BYTES + 512 < MAX_TX_BYTES,
    "an access event with the largest sealed reason fits a transaction"
);

/// Shortens `s` to at most `max` bytes without splitting a UTF-8 character (`String::truncate`
/// panics when `max` falls inside one, which input from the network can arrange).
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Most recipients one record version's data key may be wrapped for at upload.
pub const MAX_RECIPIENTS: usize = 64;

/// Checks a string field against its limit, naming the field.
pub fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        Err(format!("{what} is {} bytes, above the limit of {max}", s.len()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        // 255 ASCII bytes then a 2-byte character: byte 256 falls inside it.
        let mut s = format!("{}é and more", "a".repeat(255));
        truncate_utf8(&mut s, MAX_REASON);
        assert_eq!(s.len(), 255);
        let mut t = "ünïcødé".to_string();
        for max in 0..t.len() {
            let mut u = t.clone();
            truncate_utf8(&mut u, max);
            assert!(u.len() <= max && t.starts_with(&u));
        }
        truncate_utf8(&mut t, 100);
        assert_eq!(t, "ünïcødé");
    }
}
