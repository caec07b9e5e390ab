//! Domain-separated SHA-256.
//!
//! Every hash MedLedger computes names its purpose: `H(tag, parts) = SHA-256(tag || 0x00 || parts...)`
//! with a distinct ASCII tag per use (see [`domain`]). Merkle hashing is the exception: it follows
//! RFC 9162 exactly (see [`crate::merkle`]) so that proofs can be checked by standard tools.

use commonware_cryptography::{sha256::Sha256, Hasher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The registry of every hashing tag and signing namespace MedLedger uses. Never reuse one for
/// a different structure; a new structure gets a new entry here (and in [`domain::ALL`]), and a
/// changed structure a new version suffix.
pub mod domain {
    // Hashing tags: `H(tag, parts) = SHA-256(tag || 0x00 || parts...)`.
    pub const TX_ID: &[u8] = b"medledger/tx-id/v1";
    pub const BLOCK: &[u8] = b"medledger/block/v1";
    pub const GENESIS: &[u8] = b"medledger/genesis/v1";
    /// Position of a state key in the state tree (see [`crate::state_proof`]).
    pub const STATE_KEY: &[u8] = b"medledger/state-key/v1";
    pub const PATIENT_ID: &[u8] = b"medledger/patient-id/v1";
    /// Id of a signed request (read or audit query) in a node's replay cache.
    pub const REQUEST_ID: &[u8] = b"medledger/request-id/v1";
    // ed25519 signing namespaces (prepended by the signer, see `union_unique`).
    pub const TX_SIGNATURE: &[u8] = b"medledger/tx-signature/v1";
    /// A signed record read request (not a transaction).
    pub const READ_SIGNATURE: &[u8] = b"medledger/read-request/v2";
    /// A signed audit query (not a transaction).
    pub const AUDIT_SIGNATURE: &[u8] = b"medledger/audit-query/v2";
    /// A signed API request without a body (the `Authorization: MedLedger` header).
    pub const API_REQUEST_SIGNATURE: &[u8] = b"medledger/api-request/v1";
    /// A patient's signed addition of a wrapped data key for a grantee.
    pub const ADD_KEY_SIGNATURE: &[u8] = b"medledger/add-key/v1";
    /// A new patient key's proof of possession in a key rotation.
    pub const KEY_ROTATION_SIGNATURE: &[u8] = b"medledger/key-rotation/v1";
    // Encryption contexts (AEAD associated data and HPKE info).
    /// Binds a record version's ciphertext and wrapped keys to (record id, version).
    pub const RECORD_CONTEXT: &[u8] = b"medledger/record/v1";
    /// Encryption context of a sealed note (an on-chain reason), followed by what it belongs to.
    pub const NOTE_CONTEXT: &[u8] = b"medledger/note/v1";
    /// Binds a sealed monitoring reading to (device, reading digest).
    pub const READING_CONTEXT: &[u8] = b"medledger/reading/v1";
    /// Binds a device's wrapped reading key to (device, key epoch).
    pub const READING_KEY_CONTEXT: &[u8] = b"medledger/reading-key/v1";
    /// Key of a drug custody event, from its EPCIS `eventID`.
    pub const DRUG_EVENT_ID: &[u8] = b"medledger/drug-event-id/v1";
    /// Content of a drug custody event (re-capture of the same event is idempotent).
    pub const DRUG_EVENT_CONTENT: &[u8] = b"medledger/drug-event-content/v1";
    /// Digest of a drug custody event's whole stored body (kept outside the state tree; its
    /// public record in the tree commits to it).
    pub const DRUG_EVENT_BODY: &[u8] = b"medledger/drug-event-body/v1";
    /// Id of the consent a referral grants its receiving doctor, from the referral id.
    pub const REFERRAL_CONSENT_ID: &[u8] = b"medledger/referral-consent-id/v1";
    /// A monitoring device's signature over one reading.
    pub const READING_SIGNATURE: &[u8] = b"medledger/reading-signature/v1";
    /// Digest of one reading (what the batched anchors commit to), from the device and the
    /// reading's exact bytes.
    pub const READING_DIGEST: &[u8] = b"medledger/reading-digest/v1";
    /// Id of an alarm, from the reading that raised it and its cause.
    pub const ALARM_ID: &[u8] = b"medledger/alarm-id/v1";
    /// Hash of each frozen encoding in the conformance fixtures (tests only).
    pub const CONFORMANCE_FIXTURE: &[u8] = b"medledger/conformance-fixture/v1";

    /// Every entry, with what it is for; a test checks they are distinct and well-formed.
    pub const ALL: &[(&[u8], &str)] = &[
        (TX_ID, "hash: transaction id"),
        (BLOCK, "hash: block header"),
        (GENESIS, "hash: genesis file"),
        (STATE_KEY, "hash: a state key's position in the state tree"),
        (PATIENT_ID, "keyed hash: patient pseudonym"),
        (REQUEST_ID, "hash: signed request id (replay cache)"),
        (TX_SIGNATURE, "signature: transaction"),
        (READ_SIGNATURE, "signature: record read request"),
        (AUDIT_SIGNATURE, "signature: audit query"),
        (API_REQUEST_SIGNATURE, "signature: API request (Authorization header)"),
        (ADD_KEY_SIGNATURE, "signature: wrapped key addition"),
        (KEY_ROTATION_SIGNATURE, "signature: possession of a rotated-to patient key"),
        (RECORD_CONTEXT, "encryption context: record version"),
        (NOTE_CONTEXT, "encryption context: sealed note (on-chain reason)"),
        (READING_CONTEXT, "encryption context: monitoring reading"),
        (READING_KEY_CONTEXT, "encryption context: a device's reading key epoch"),
        (DRUG_EVENT_ID, "hash: key of a drug custody event id"),
        (DRUG_EVENT_CONTENT, "hash: content of a drug custody event"),
        (DRUG_EVENT_BODY, "hash: stored body of a drug custody event"),
        (REFERRAL_CONSENT_ID, "hash: id of a referral's consent"),
        (READING_SIGNATURE, "signature: a device's monitoring reading"),
        (READING_DIGEST, "hash: digest of a monitoring reading"),
        (ALARM_ID, "hash: id of an alarm"),
        (CONFORMANCE_FIXTURE, "hash: conformance fixture entry"),
    ];
}

/// A 32-byte SHA-256 (or keyed BLAKE3) output.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let v = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
        let a: [u8; 32] = v.try_into().map_err(|v: Vec<u8>| format!("expected 32 bytes, got {}", v.len()))?;
        Ok(Hash(a))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Plain SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    Hash(Sha256::hash(parts).0)
}

/// Domain-separated SHA-256: `SHA-256(tag || 0x00 || parts...)`.
pub fn tagged(tag: &[u8], parts: &[&[u8]]) -> Hash {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
    all.push(tag);
    all.push(&[0u8]);
    all.extend_from_slice(parts);
    sha256(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_payloads() {
        assert_ne!(tagged(domain::TX_ID, &[b"x"]), tagged(domain::BLOCK, &[b"x"]));
        assert_eq!(tagged(domain::TX_ID, &[b"x"]), tagged(domain::TX_ID, &[b"x"]));
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(sha256(&[b"abc"]).to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = sha256(&[b"abc"]);
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(Hash::from_hex("zz").unwrap_err().contains("not hex"));
        assert!(Hash::from_hex("abcd").unwrap_err().contains("expected 32 bytes"));
    }
}

#[cfg(test)]
mod registry_tests {
    use super::domain;

    #[test]
    fn namespaces_are_distinct_and_versioned() {
        for (i, (a, what)) in domain::ALL.iter().enumerate() {
            let text = std::str::from_utf8(a).unwrap();
            assert!(
                text.starts_with("medledger/") && text.rsplit('/').next().unwrap().starts_with('v'),
                "{what}: {text}"
            );
            for (b, other) in &domain::ALL[i + 1..] {
                assert_ne!(a, b, "{what} and {other} share a namespace");
            }
        }
    }
}
