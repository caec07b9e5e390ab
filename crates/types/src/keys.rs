//! ed25519 keys and signatures as plain bytes on the wire, checked when used.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use commonware_codec::{Encode as _, ReadExt as _};
use commonware_cryptography::{ed25519, BatchEntry, BatchVerifier, Signer as _, Verifier as _};
use commonware_math::algebra::Random as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ed25519 public key (32 bytes). Validity of the curve point is checked on verification.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let v = hex::decode(s.trim()).map_err(|e| format!("public key is not hex: {e}"))?;
        let a: [u8; 32] = v.try_into().map_err(|v: Vec<u8>| format!("public key must be 32 bytes, got {}", v.len()))?;
        Ok(PublicKey(a))
    }
    /// Parses into the library key type; `None` if the bytes are not a valid point encoding.
    pub fn to_ed25519(&self) -> Option<ed25519::PublicKey> {
        ed25519::PublicKey::try_from(&self.0[..]).ok()
    }
    pub fn from_ed25519(pk: &ed25519::PublicKey) -> Self {
        let mut a = [0u8; 32];
        a.copy_from_slice(pk.as_ref());
        PublicKey(a)
    }
    /// Short form for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_hex(&s).map_err(serde::de::Error::custom)
    }
}
impl Canonical for PublicKey {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.0);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PublicKey(r.array("public key")?))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}
impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}
impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s.trim()).map_err(serde::de::Error::custom)?;
        let a: [u8; 64] = v.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))?;
        Ok(Signature(a))
    }
}
impl Canonical for Signature {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.0);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Signature(r.array("signature")?))
    }
}

/// A signing key. Wraps the library type; the seed never leaves except through [`Keypair::secret_bytes`].
#[derive(Clone)]
pub struct Keypair {
    sk: ed25519::PrivateKey,
    pk: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.pk.short())
    }
}

impl Keypair {
    pub fn generate() -> Self {
        Self::from_private(ed25519::PrivateKey::random(rand::rng()))
    }
    /// Deterministic key for tests and simulations only.
    pub fn from_seed(seed: u64) -> Self {
        Self::from_private(ed25519::PrivateKey::from_seed(seed))
    }
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, String> {
        let a: [u8; 32] = bytes.try_into().map_err(|_| format!("secret key must be 32 bytes, got {}", bytes.len()))?;
        let sk = ed25519::PrivateKey::read(&mut commonware_codec::Copying(&a[..]))
            .map_err(|e| format!("invalid secret key: {e}"))?;
        Ok(Self::from_private(sk))
    }
    pub fn from_private(sk: ed25519::PrivateKey) -> Self {
        let pk = PublicKey::from_ed25519(&sk.public_key());
        Self { sk, pk }
    }
    pub fn secret_bytes(&self) -> [u8; 32] {
        let b = self.sk.encode();
        let mut a = [0u8; 32];
        a.copy_from_slice(&b);
        a
    }
    pub fn public(&self) -> PublicKey {
        self.pk
    }
    pub fn private(&self) -> &ed25519::PrivateKey {
        &self.sk
    }
    pub fn sign(&self, namespace: &[u8], msg: &[u8]) -> Signature {
        let sig = self.sk.sign(namespace, msg);
        let mut a = [0u8; 64];
        a.copy_from_slice(sig.as_ref());
        Signature(a)
    }
}

/// Parsed (decompressed) public keys, reused across verifications: signers repeat, and
/// decompressing a point is a large share of verification cost. Bounded: cleared when full.
/// Only the cost changes; verdicts are identical with or without the cache.
const KEY_CACHE_CAPACITY: usize = 65_536;

fn parsed_key(pk: &PublicKey) -> Option<ed25519::PublicKey> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], ed25519::PublicKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(k) = cache.lock().ok().and_then(|c| c.get(&pk.0).cloned()) {
        return Some(k);
    }
    let parsed = pk.to_ed25519()?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= KEY_CACHE_CAPACITY {
            c.clear();
        }
        c.insert(pk.0, parsed.clone());
    }
    Some(parsed)
}

fn to_lib_sig(sig: &Signature) -> Option<ed25519::Signature> {
    ed25519::Signature::try_from(&sig.0[..]).ok()
}

/// Single ed25519 verification under a namespace (ZIP-215 rules).
pub fn verify(pk: &PublicKey, namespace: &[u8], msg: &[u8], sig: &Signature) -> bool {
    match (parsed_key(pk), to_lib_sig(sig)) {
        (Some(pk), Some(sig)) => pk.verify(namespace, msg, &sig),
        _ => false,
    }
}

/// One item of a batch verification.
pub struct BatchItem<'a> {
    pub public_key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a Signature,
}

/// Verifies many signatures under one namespace and returns a verdict per item.
///
/// The batch check uses the library's ZIP-215 batch verifier, which never accepts what single
/// verification rejects. If the batch fails, every item is re-checked singly so that exactly the
/// bad ones are reported.
pub fn verify_many(namespace: &[u8], items: &[BatchItem<'_>]) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    let parsed: Vec<Option<(ed25519::PublicKey, ed25519::Signature)>> =
        items.iter().map(|i| Some((parsed_key(i.public_key)?, to_lib_sig(i.signature)?))).collect();
    if parsed.iter().all(Option::is_some) {
        let pairs: Vec<(&(ed25519::PublicKey, ed25519::Signature), &[u8])> =
            parsed.iter().zip(items).map(|(p, i)| (p.as_ref().expect("checked above"), i.message)).collect();
        let ok = ed25519::PublicKey::verify_batch(
            &mut rand::rng(),
            &pairs,
            |_, (kp, msg)| BatchEntry { namespace, message: msg, public_key: &kp.0, signature: &kp.1 },
            &commonware_parallel::Sequential,
        );
        if ok {
            return vec![true; items.len()];
        }
    }
    parsed
        .iter()
        .zip(items)
        .map(|(p, i)| match p {
            Some((pk, sig)) => pk.verify(namespace, i.message, sig),
            None => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_batch_pinpoints_bad_items() {
        let ns = b"test-ns";
        let keys: Vec<Keypair> = (0..5).map(Keypair::from_seed).collect();
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(ns, m)).collect();
        let pks: Vec<PublicKey> = keys.iter().map(Keypair::public).collect();
        let items = |sigs: &[Signature]| -> Vec<bool> {
            let v: Vec<BatchItem> =
                (0..5).map(|i| BatchItem { public_key: &pks[i], message: &msgs[i], signature: &sigs[i] }).collect();
            verify_many(ns, &v)
        };
        assert_eq!(items(&sigs), vec![true; 5]);
        sigs[3].0[0] ^= 1;
        assert_eq!(items(&sigs), vec![true, true, true, false, true]);
        assert!(verify(&pks[0], ns, &msgs[0], &sigs[0]));
        assert!(!verify(&pks[0], b"other-ns", &msgs[0], &sigs[0]));
    }

    #[test]
    fn secret_round_trip() {
        let k = Keypair::from_seed(9);
        let k2 = Keypair::from_secret_bytes(&k.secret_bytes()).unwrap();
        assert_eq!(k.public(), k2.public());
        assert!(Keypair::from_secret_bytes(&[1, 2]).unwrap_err().contains("32 bytes"));
    }
}
