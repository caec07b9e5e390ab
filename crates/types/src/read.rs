//! Signed read requests: what a requester sends to the node holding a record. Not a
//! transaction: the holder checks it against chain state and logs the outcome on chain.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::keys::{Keypair, PublicKey, Signature};
use crate::tx::{limits, Purpose};
use serde::{Deserialize, Serialize};

/// ed25519 namespace of read requests (distinct from transactions).
pub const READ_SIGNATURE: &[u8] = b"medledger/read-request/v1";
/// How far a read request's timestamp may be from the holder's clock.
pub const MAX_READ_SKEW_MS: u64 = 60_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub chain_id: String,
    pub record_id: Hash,
    pub version: u32,
    pub requester: PublicKey,
    pub purpose: Purpose,
    pub issued_ms: u64,
    /// Emergency access without consent: the stated reason (flagged in the audit).
    pub break_glass: Option<String>,
}

impl Canonical for ReadRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.chain_id).fixed(&self.record_id.0).u32(self.version);
        self.requester.encode_to(w);
        w.u8(Purpose::ALL.iter().position(|p| *p == self.purpose).expect("listed") as u8);
        w.u64(self.issued_ms);
        match &self.break_glass {
            Some(r) => w.u8(1).str(r),
            None => w.u8(0),
        };
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReadRequest {
            chain_id: r.string("chain id", limits::MAX_CHAIN_ID)?,
            record_id: Hash(r.array("record id")?),
            version: r.u32("version")?,
            requester: PublicKey::decode_from(r)?,
            purpose: {
                let t = r.u8("purpose")?;
                *Purpose::ALL.get(t as usize).ok_or(DecodeError::UnknownTag("purpose", t))?
            },
            issued_ms: r.u64("issued at")?,
            break_glass: if r.bool("break-glass flag")? { Some(r.string("break-glass reason", limits::MAX_REASON)?) } else { None },
        })
    }
}

impl ReadRequest {
    pub fn sign(&self, key: &Keypair) -> Signature {
        key.sign(READ_SIGNATURE, &self.to_bytes())
    }
    pub fn verify(&self, sig: &Signature) -> bool {
        crate::keys::verify(&self.requester, READ_SIGNATURE, &self.to_bytes(), sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_requests_round_trip_and_bind_their_signature() {
        let k = Keypair::from_seed(1);
        let r = ReadRequest {
            chain_id: "c".into(),
            record_id: Hash([1; 32]),
            version: 2,
            requester: k.public(),
            purpose: Purpose::Treatment,
            issued_ms: 5,
            break_glass: Some("emergency".into()),
        };
        assert_eq!(ReadRequest::from_bytes(&r.to_bytes()).unwrap(), r);
        let sig = r.sign(&k);
        assert!(r.verify(&sig));
        let mut other = r.clone();
        other.version = 3;
        assert!(!other.verify(&sig));
    }
}
