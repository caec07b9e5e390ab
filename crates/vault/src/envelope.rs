//! Envelope encryption of record versions.
//!
//! Each record version gets a fresh 256-bit data key. The content is sealed with
//! ChaCha20-Poly1305 under that key; the data key is wrapped for each recipient with HPKE
//! (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305). Recipients
//! are addressed by their MedLedger ed25519 keys, converted to X25519 the standard way
//! (Montgomery form of the public point; the clamped SHA-512 half of the seed as secret), so no
//! second key needs registering. Granting a consent re-wraps one data key: 32 bytes, not the
//! record.
//!
//! Monitoring readings arrive thousands a second, so they share keys: a device's readings of
//! one key epoch (a few seconds) are sealed under one data key, each bound by its own context
//! to (device, digest); the key is wrapped once per epoch. Deleting an epoch's wrapped keys
//! erases its readings.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hpke::{
    aead::ChaCha20Poly1305 as HpkeAead, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, OpModeR, OpModeS,
    Serializable,
};
use medledger_types::{Hash, Keypair, NoteKey, PublicKey, SealedNote};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

type Kem = X25519HkdfSha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("recipient key {0} is not a valid ed25519 point")]
    BadRecipient(String),
    #[error("the data key cannot be unwrapped with this key (wrong recipient or altered wrapping)")]
    Unwrap,
    #[error("the record ciphertext fails authentication (altered, truncated, or a different version)")]
    Open,
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A record version's data key. Exists in memory only; never stored unwrapped.
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        DataKey(k)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0 = [0u8; 32];
    }
}

/// Binds ciphertexts and wrapped keys to one record version.
pub fn context(record_id: &Hash, version: u32) -> Vec<u8> {
    [medledger_types::hash::domain::RECORD_CONTEXT, &record_id.0, &version.to_be_bytes()].concat()
}

/// Binds a sealed monitoring reading to its device and digest.
pub fn reading_context(device: &Hash, digest: &Hash) -> Vec<u8> {
    [medledger_types::hash::domain::READING_CONTEXT, &device.0, &digest.0].concat()
}

/// Binds a device's wrapped reading key to the device and the key's epoch.
pub fn reading_key_context(device: &Hash, epoch: &Hash) -> Vec<u8> {
    [medledger_types::hash::domain::READING_KEY_CONTEXT, &device.0, &epoch.0].concat()
}

/// Sealed record content: `nonce(12) || ciphertext+tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

pub fn seal(key: &DataKey, plaintext: &[u8], ctx: &[u8]) -> Sealed {
    let cipher = ChaCha20Poly1305::new_from_slice(&key.0).expect("32-byte key");
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: ctx })
        .expect("ChaCha20-Poly1305 encryption does not fail for in-memory buffers");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Sealed(out)
}

pub fn open(key: &DataKey, sealed: &[u8], ctx: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < 12 + 16 {
        return Err(EnvelopeError::Malformed("sealed record"));
    }
    let cipher = ChaCha20Poly1305::new_from_slice(&key.0).expect("32-byte key");
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&sealed[..12]);
    cipher.decrypt(&Nonce::from(nonce), Payload { msg: &sealed[12..], aad: ctx }).map_err(|_| EnvelopeError::Open)
}

/// A data key wrapped for one recipient: HPKE encapsulated key (32) and sealed key (32 + 16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrappedKey {
    /// HPKE encapsulated key, 32 bytes hex.
    #[serde(with = "medledger_types::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$"))]
    pub encapped: Vec<u8>,
    /// The sealed data key, 48 bytes hex.
    #[serde(with = "medledger_types::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-fA-F]{96}$"))]
    pub sealed: Vec<u8>,
}

/// Length of a wrapped key: the HPKE encapsulated key (32) and the sealed data key (32 + 16).
pub const WRAPPED_KEY_BYTES: usize = 32 + 48;

impl WrappedKey {
    /// Checks the two parts' lengths; on failure returns the total length found.
    pub fn check(&self) -> Result<(), usize> {
        if self.encapped.len() == 32 && self.sealed.len() == 48 {
            Ok(())
        } else {
            Err(self.encapped.len() + self.sealed.len())
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.encapped.as_slice(), &self.sealed].concat()
    }
    pub fn from_bytes(b: &[u8]) -> Result<WrappedKey, EnvelopeError> {
        if b.len() != WRAPPED_KEY_BYTES {
            return Err(EnvelopeError::Malformed("wrapped key"));
        }
        Ok(WrappedKey { encapped: b[..32].to_vec(), sealed: b[32..].to_vec() })
    }
}

/// X25519 public key of an ed25519 public key.
pub fn x25519_public(pk: &PublicKey) -> Result<[u8; 32], EnvelopeError> {
    curve25519_dalek::edwards::CompressedEdwardsY(pk.0)
        .decompress()
        .map(|p| p.to_montgomery().to_bytes())
        .ok_or_else(|| EnvelopeError::BadRecipient(pk.short()))
}

/// X25519 secret scalar of an ed25519 key: the first half of SHA-512(seed) (clamped by X25519).
fn x25519_secret(kp: &Keypair) -> [u8; 32] {
    let h = sha2::Sha512::digest(kp.secret_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&h[..32]);
    s
}

/// Wraps `key` for `recipient`, bound to `ctx` (the record version).
pub fn wrap(key: &DataKey, recipient: &PublicKey, ctx: &[u8]) -> Result<WrappedKey, EnvelopeError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&x25519_public(recipient)?)
        .map_err(|_| EnvelopeError::BadRecipient(recipient.short()))?;
    let (encapped, sealed) =
        hpke::single_shot_seal::<HpkeAead, HkdfSha256, Kem>(&OpModeS::Base, &pk, ctx, &key.0, &recipient.0)
            .map_err(|_| EnvelopeError::BadRecipient(recipient.short()))?;
    Ok(WrappedKey { encapped: encapped.to_bytes().to_vec(), sealed })
}

/// Unwraps a data key with the recipient's own key.
pub fn unwrap(w: &WrappedKey, me: &Keypair, ctx: &[u8]) -> Result<DataKey, EnvelopeError> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&x25519_secret(me)).map_err(|_| EnvelopeError::Unwrap)?;
    let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&w.encapped)
        .map_err(|_| EnvelopeError::Malformed("encapsulated key"))?;
    let key = hpke::single_shot_open::<HpkeAead, HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &encapped,
        ctx,
        &w.sealed,
        &me.public().0,
    )
    .map_err(|_| EnvelopeError::Unwrap)?;
    let arr: [u8; 32] = key.as_slice().try_into().map_err(|_| EnvelopeError::Unwrap)?;
    Ok(DataKey(arr))
}

/// Encryption context of a note belonging to `subject` (an access event's request id, an
/// access request's id): a note cannot be moved to another event and still open.
pub fn note_context(subject: &Hash) -> Vec<u8> {
    [medledger_types::hash::domain::NOTE_CONTEXT, &subject.0].concat()
}

/// Seals free text for `readers` (on-chain reasons). Empty text gives the empty note. The
/// text must already fit `MAX_REASON` (see `limits::truncate_utf8`); readers are deduplicated.
pub fn seal_note(text: &str, readers: &[PublicKey], subject: &Hash) -> Result<SealedNote, EnvelopeError> {
    if text.is_empty() {
        return Ok(SealedNote::default());
    }
    if text.len() > medledger_types::limits::MAX_REASON {
        return Err(EnvelopeError::Malformed("note longer than a reason may be"));
    }
    let ctx = note_context(subject);
    let key = DataKey::generate();
    let mut recipients: Vec<NoteKey> = Vec::with_capacity(readers.len());
    for r in readers {
        if recipients.iter().any(|k| k.recipient == *r) {
            continue;
        }
        let w = wrap(&key, r, &ctx)?;
        let wrapped: [u8; 80] = w.to_bytes().try_into().map_err(|_| EnvelopeError::Malformed("wrapped note key"))?;
        recipients.push(NoteKey { recipient: *r, wrapped });
    }
    if recipients.is_empty() || recipients.len() > medledger_types::note::MAX_NOTE_RECIPIENTS {
        return Err(EnvelopeError::Malformed("note readers (1 to 12 are needed)"));
    }
    Ok(SealedNote { ciphertext: seal(&key, text.as_bytes(), &ctx).0, recipients })
}

/// Opens a note with one of its readers' keys. The empty note opens to the empty text.
pub fn open_note(note: &SealedNote, me: &Keypair, subject: &Hash) -> Result<String, EnvelopeError> {
    if note.is_empty() {
        return Ok(String::new());
    }
    let mine = note.recipients.iter().find(|k| k.recipient == me.public()).ok_or(EnvelopeError::Unwrap)?;
    let ctx = note_context(subject);
    let key = unwrap(&WrappedKey::from_bytes(&mine.wrapped)?, me, &ctx)?;
    let text = open(&key, &note.ciphertext, &ctx)?;
    String::from_utf8(text).map_err(|_| EnvelopeError::Malformed("note text (not UTF-8)"))
}

/// Re-wraps a data key wrapped for `me` so that `to` can open it (same context): granting a
/// consent, a holder wrapping its own copy for a reader. The key exists unwrapped only in here.
pub fn rewrap(w: &WrappedKey, me: &Keypair, to: &PublicKey, ctx: &[u8]) -> Result<WrappedKey, EnvelopeError> {
    wrap(&unwrap(w, me, ctx)?, to, ctx)
}

/// SHA-256 of a record's plaintext, as anchored on chain.
pub fn content_hash(plaintext: &[u8]) -> Hash {
    medledger_types::hash::sha256(&[plaintext])
}

/// The bytes a patient signs to add a wrapped key.
pub fn add_key_message(
    record_id: &Hash,
    version: u32,
    recipient: &PublicKey,
    wrapped: &WrappedKey,
    issued_ms: u64,
) -> Vec<u8> {
    [record_id.0.as_slice(), &version.to_be_bytes(), &recipient.0, &wrapped.to_bytes(), &issued_ms.to_be_bytes()]
        .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_x25519_keys_agree() {
        // The public key derived from the ed25519 public key matches X25519(base, secret).
        let k = Keypair::from_seed(3);
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&x25519_secret(&k)).unwrap();
        let pk = <Kem as hpke::Kem>::sk_to_pk(&sk);
        assert_eq!(pk.to_bytes().as_slice(), x25519_public(&k.public()).unwrap());
    }

    #[test]
    fn notes_open_for_their_readers_only_and_only_in_their_context() {
        let (a, b, c) = (Keypair::from_seed(1), Keypair::from_seed(2), Keypair::from_seed(3));
        let subject = Hash([9; 32]);
        let n = seal_note("unconscious, no ID on arrival", &[a.public(), b.public(), a.public()], &subject).unwrap();
        assert_eq!(n.recipients.len(), 2, "readers are deduplicated");
        assert!(n.check_limits().is_ok());
        assert_eq!(open_note(&n, &a, &subject).unwrap(), "unconscious, no ID on arrival");
        assert_eq!(open_note(&n, &b, &subject).unwrap(), "unconscious, no ID on arrival");
        assert_eq!(open_note(&n, &c, &subject), Err(EnvelopeError::Unwrap));
        assert_eq!(open_note(&n, &a, &Hash([8; 32])), Err(EnvelopeError::Unwrap), "bound to its subject");
        let mut altered = n.clone();
        altered.ciphertext[20] ^= 1;
        assert_eq!(open_note(&altered, &a, &subject), Err(EnvelopeError::Open));
        assert!(seal_note("", &[a.public()], &subject).unwrap().is_empty());
        assert!(seal_note("x", &[], &subject).is_err());
    }
}
