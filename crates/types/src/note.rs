//! Sealed notes: free text that goes on chain (break-glass and denial reasons, access-request
//! reasons) encrypted to the parties who may read it, never in plaintext.
//!
//! A note is ChaCha20-Poly1305 ciphertext under a fresh 256-bit key, with that key wrapped for
//! each reader by HPKE, exactly as a record version's data key is (the sealing lives in
//! `medledger_vault::envelope::seal_note`). This crate only defines the shape and its limits; the
//! state machine checks that the readers a rule requires (the patient, every regulator) are
//! among the recipients, which it can do without decrypting anything.

use crate::codec::{Canonical, DecodeError, Field, Reader, Writer};
use crate::keys::PublicKey;
use crate::limits::MAX_REASON;
use serde::{Deserialize, Serialize};

/// Most readers one note is sealed for.
pub const MAX_NOTE_RECIPIENTS: usize = 12;
/// Length of one wrapped note key: HPKE encapsulated key (32) and the sealed key (32 + 16).
pub const NOTE_KEY_BYTES: usize = 80;
/// Longest note ciphertext: a [`MAX_REASON`] text, its 12-byte nonce and 16-byte tag.
pub const MAX_NOTE_CIPHERTEXT: usize = MAX_REASON + 12 + 16;
/// Largest encoded note.
pub const MAX_NOTE_BYTES: usize = 4 + MAX_NOTE_CIPHERTEXT + 4 + MAX_NOTE_RECIPIENTS * (32 + NOTE_KEY_BYTES);

/// One reader of a note and the note key wrapped for them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteKey {
    pub recipient: PublicKey,
    /// HPKE encapsulated key and sealed note key, 80 bytes (hex).
    #[serde(with = "hex80")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-fA-F]{160}$"))]
    pub wrapped: [u8; NOTE_KEY_BYTES],
}

mod hex80 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 80], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 80], D::Error> {
        let b = hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        b.try_into().map_err(|_| serde::de::Error::custom("a wrapped note key is 80 bytes"))
    }
}

/// Free text sealed for its readers. The empty note (no ciphertext, no readers) means "no text".
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedNote {
    /// nonce(12) || ChaCha20-Poly1305 ciphertext and tag (hex); empty for no text.
    #[serde(with = "crate::codec::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([0-9a-fA-F]{2})*$"))]
    pub ciphertext: Vec<u8>,
    pub recipients: Vec<NoteKey>,
}

impl SealedNote {
    /// True for the empty note (no text).
    pub fn is_empty(&self) -> bool {
        self.ciphertext.is_empty() && self.recipients.is_empty()
    }

    /// Is `pk` among the readers?
    pub fn readable_by(&self, pk: &PublicKey) -> bool {
        self.recipients.iter().any(|k| k.recipient == *pk)
    }

    /// Shape rules, checked before encoding and again by the state machine: within limits,
    /// readers distinct, and a non-empty ciphertext has at least one reader (and vice versa).
    pub fn check_limits(&self) -> Result<(), String> {
        if self.ciphertext.len() > MAX_NOTE_CIPHERTEXT {
            return Err(format!(
                "sealed note of {} bytes is longer than {MAX_NOTE_CIPHERTEXT} (a {MAX_REASON}-byte reason)",
                self.ciphertext.len()
            ));
        }
        if self.recipients.len() > MAX_NOTE_RECIPIENTS {
            return Err(format!(
                "sealed note has {} readers, above the limit of {MAX_NOTE_RECIPIENTS}",
                self.recipients.len()
            ));
        }
        if self.ciphertext.is_empty() != self.recipients.is_empty() {
            return Err("a sealed note has both a ciphertext and readers, or neither".into());
        }
        if !self.ciphertext.is_empty() && self.ciphertext.len() < 12 + 16 {
            return Err("a sealed note's ciphertext is shorter than its nonce and tag".into());
        }
        for (i, k) in self.recipients.iter().enumerate() {
            if self.recipients[..i].iter().any(|o| o.recipient == k.recipient) {
                return Err(format!("sealed note names reader {} twice", k.recipient.short()));
            }
        }
        Ok(())
    }
}

impl Canonical for SealedNote {
    fn encode_to(&self, w: &mut Writer) {
        w.bytes(&self.ciphertext);
        w.u32(self.recipients.len() as u32);
        for k in &self.recipients {
            k.recipient.encode_to(w);
            w.fixed(&k.wrapped);
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ciphertext = r.bytes("note ciphertext", MAX_NOTE_CIPHERTEXT)?.to_vec();
        let n = r.len("note readers", MAX_NOTE_RECIPIENTS)?;
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            recipients.push(NoteKey { recipient: PublicKey::decode_from(r)?, wrapped: r.array("wrapped note key")? });
        }
        Ok(SealedNote { ciphertext, recipients })
    }
}

crate::canonical_field!(SealedNote);

impl<T: Field> Field for Vec<T> {
    /// A list: a u32 count bounded by `max`, then each item (items carry their own limits).
    fn put(&self, w: &mut Writer) {
        w.u32(u32::try_from(self.len()).expect("list length checked against its limit before encoding"));
        for x in self {
            x.put(w);
        }
    }
    fn take(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<Self, DecodeError> {
        let n = r.len(what, max)?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(T::take(r, what, 0)?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    fn note(readers: &[u64]) -> SealedNote {
        SealedNote {
            ciphertext: vec![9; 40],
            recipients: readers
                .iter()
                .map(|s| NoteKey { recipient: Keypair::from_seed(*s).public(), wrapped: [7; NOTE_KEY_BYTES] })
                .collect(),
        }
    }

    #[test]
    fn notes_round_trip_and_check_their_shape() {
        let n = note(&[1, 2, 3]);
        assert_eq!(SealedNote::from_bytes(&n.to_bytes()).unwrap(), n);
        assert!(n.check_limits().is_ok());
        assert!(SealedNote::default().check_limits().is_ok());
        assert!(note(&[1, 1]).check_limits().unwrap_err().contains("twice"));
        assert!(note(&[]).check_limits().unwrap_err().contains("neither"));
        let many: Vec<u64> = (0..=MAX_NOTE_RECIPIENTS as u64).collect();
        assert!(note(&many).check_limits().unwrap_err().contains("readers"));
        let mut long = note(&[1]);
        long.ciphertext = vec![0; MAX_NOTE_CIPHERTEXT + 1];
        assert!(long.check_limits().is_err());
        assert!(matches!(SealedNote::from_bytes(&long.to_bytes()), Err(DecodeError::TooLong(..))));
        assert!(n.to_bytes().len() <= MAX_NOTE_BYTES);
    }
}
