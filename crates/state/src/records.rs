//! Stored records and their keys. Values use the canonical encoding.

use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::{Hash, PublicKey, Role};
use serde::Serialize;

pub mod key {
    use medledger_types::{Hash, PublicKey};
    pub const CA: &[u8] = b"meta/ca";
    pub const CHAIN_ID: &[u8] = b"meta/chain-id";
    pub fn nonce(pk: &PublicKey) -> Vec<u8> {
        [b"n/".as_slice(), &pk.0].concat()
    }
    pub fn credential(pk: &PublicKey) -> Vec<u8> {
        [b"c/".as_slice(), &pk.0].concat()
    }
    pub fn institution(id: &str) -> Vec<u8> {
        [b"i/".as_slice(), id.as_bytes()].concat()
    }
    pub fn patient(pseudonym: &Hash) -> Vec<u8> {
        [b"p/".as_slice(), &pseudonym.0].concat()
    }
    pub fn attestation(digest: &Hash) -> Vec<u8> {
        [b"a/".as_slice(), &digest.0].concat()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub subject: PublicKey,
    pub role: Role,
    pub institution: String,
    /// Empty for patients: real names never go on chain.
    pub display_name: String,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    pub issued_at_height: u64,
    pub issuer: PublicKey,
    /// Set for patients only.
    pub pseudonym: Option<Hash>,
    pub revoked: Option<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub at_height: u64,
    pub by: PublicKey,
    pub reason: String,
}

impl Canonical for Credential {
    fn encode_to(&self, w: &mut Writer) {
        self.subject.encode_to(w);
        self.role.encode_to(w);
        w.str(&self.institution).str(&self.display_name);
        w.u64(self.valid_from_ms).u64(self.valid_until_ms).u64(self.issued_at_height);
        self.issuer.encode_to(w);
        match &self.pseudonym {
            Some(p) => w.u8(1).fixed(&p.0),
            None => w.u8(0),
        };
        match &self.revoked {
            Some(r) => {
                w.u8(1).u64(r.at_height);
                r.by.encode_to(w);
                w.str(&r.reason);
            }
            None => {
                w.u8(0);
            }
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Credential {
            subject: PublicKey::decode_from(r)?,
            role: Role::decode_from(r)?,
            institution: r.string("institution", 64)?,
            display_name: r.string("display name", 128)?,
            valid_from_ms: r.u64("valid from")?,
            valid_until_ms: r.u64("valid until")?,
            issued_at_height: r.u64("issued at")?,
            issuer: PublicKey::decode_from(r)?,
            pseudonym: if r.bool("pseudonym flag")? { Some(Hash(r.array("pseudonym")?)) } else { None },
            revoked: if r.bool("revoked flag")? {
                Some(Revocation {
                    at_height: r.u64("revoked at")?,
                    by: PublicKey::decode_from(r)?,
                    reason: r.string("reason", 256)?,
                })
            } else {
                None
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Institution {
    pub id: String,
    pub name: String,
    pub added_at_height: u64,
}

impl Canonical for Institution {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.id).str(&self.name).u64(self.added_at_height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Institution {
            id: r.string("institution id", 64)?,
            name: r.string("institution name", 128)?,
            added_at_height: r.u64("added at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attestation {
    pub digest: Hash,
    pub label: String,
    pub attester: PublicKey,
    pub height: u64,
}

impl Canonical for Attestation {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.digest.0).str(&self.label);
        self.attester.encode_to(w);
        w.u64(self.height);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Attestation {
            digest: Hash(r.array("digest")?),
            label: r.string("label", 128)?,
            attester: PublicKey::decode_from(r)?,
            height: r.u64("height")?,
        })
    }
}
