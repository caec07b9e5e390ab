//! Signed read requests: what a requester sends to the node holding a record. Not a
//! transaction: the holder checks it against chain state and logs the outcome on chain.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::keys::{Keypair, PublicKey, Signature};
use crate::tx::{limits, AccessOutcome, Purpose};
use serde::{Deserialize, Serialize};

/// ed25519 namespace of read requests (distinct from transactions).
pub const READ_SIGNATURE: &[u8] = crate::hash::domain::READ_SIGNATURE;
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
    /// Random, so that two reads signed in the same millisecond differ; a node refuses a
    /// request it has already seen (replay cache).
    pub nonce: u64,
    /// Emergency access without consent: the stated reason (flagged in the audit).
    pub break_glass: Option<String>,
}

impl Canonical for ReadRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.chain_id).fixed(&self.record_id.0).u32(self.version);
        self.requester.encode_to(w);
        self.purpose.encode_to(w);
        w.u64(self.issued_ms).u64(self.nonce);
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
            purpose: Purpose::decode_from(r)?,
            issued_ms: r.u64("issued at")?,
            nonce: r.u64("nonce")?,
            break_glass: if r.bool("break-glass flag")? {
                Some(r.string("break-glass reason", limits::MAX_REASON)?)
            } else {
                None
            },
        })
    }
}

/// The id a node's replay cache keeps for a signed request: a hash of its exact bytes under
/// its signing namespace (not of the signature, which a signer could vary).
pub fn request_id(namespace: &[u8], bytes: &[u8]) -> Hash {
    crate::hash::tagged(crate::hash::domain::REQUEST_ID, &[namespace, bytes])
}

impl ReadRequest {
    /// This request's replay-cache id.
    pub fn id(&self) -> Hash {
        request_id(READ_SIGNATURE, &self.to_bytes())
    }
    pub fn sign(&self, key: &Keypair) -> Signature {
        key.sign(READ_SIGNATURE, &self.to_bytes())
    }
    pub fn verify(&self, sig: &Signature) -> bool {
        crate::keys::verify(&self.requester, READ_SIGNATURE, &self.to_bytes(), sig)
    }
}

/// ed25519 namespace of audit queries.
pub const AUDIT_SIGNATURE: &[u8] = crate::hash::domain::AUDIT_SIGNATURE;
/// Most events one audit query returns.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

/// A signed query of the on-chain access events. A patient sees the events of their own records;
/// a regulator filters across the chain; an institution admin sees its own institution's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub chain_id: String,
    pub requester: Option<PublicKey>,
    pub issued_ms: u64,
    /// Random, so that two queries signed in the same millisecond differ (replay cache).
    pub nonce: u64,
    /// Only events on this patient's records.
    pub patient: Option<Hash>,
    /// Only events recorded by this (holding) institution.
    pub institution: Option<String>,
    /// Only events at or after this time (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Only events before this time.
    pub to_ms: Option<u64>,
    pub purpose: Option<Purpose>,
    pub outcome: Option<AccessOutcome>,
    /// At most this many events, newest first (1..=1000).
    pub limit: u32,
}

impl Canonical for AuditQuery {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.chain_id);
        w.opt(&self.requester, |w, k| k.encode_to(w));
        w.u64(self.issued_ms).u64(self.nonce);
        w.opt(&self.patient, |w, p| {
            w.fixed(&p.0);
        });
        w.opt(&self.institution, |w, i| {
            w.str(i);
        });
        w.opt(&self.from_ms, |w, t| {
            w.u64(*t);
        });
        w.opt(&self.to_ms, |w, t| {
            w.u64(*t);
        });
        w.opt(&self.purpose, |w, p| {
            p.encode_to(w);
        });
        w.opt(&self.outcome, |w, o| {
            o.encode_to(w);
        });
        w.u32(self.limit);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AuditQuery {
            chain_id: r.string("chain id", limits::MAX_CHAIN_ID)?,
            requester: r.opt("requester flag", PublicKey::decode_from)?,
            issued_ms: r.u64("issued at")?,
            nonce: r.u64("nonce")?,
            patient: r.opt("patient flag", |r| Ok(Hash(r.array("patient")?)))?,
            institution: r.opt("institution flag", |r| r.string("institution", 64))?,
            from_ms: r.opt("from flag", |r| r.u64("from"))?,
            to_ms: r.opt("to flag", |r| r.u64("to"))?,
            purpose: r.opt("purpose flag", Purpose::decode_from)?,
            outcome: r.opt("outcome flag", AccessOutcome::decode_from)?,
            limit: r.u32("limit")?,
        })
    }
}

impl AuditQuery {
    /// This query's replay-cache id.
    pub fn id(&self) -> Hash {
        request_id(AUDIT_SIGNATURE, &self.to_bytes())
    }
    pub fn sign(&self, key: &Keypair) -> Signature {
        key.sign(AUDIT_SIGNATURE, &self.to_bytes())
    }
    /// True if the query names its requester and `sig` is theirs over these exact fields.
    pub fn verify(&self, sig: &Signature) -> bool {
        self.requester.is_some_and(|k| crate::keys::verify(&k, AUDIT_SIGNATURE, &self.to_bytes(), sig))
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
            nonce: 77,
            break_glass: Some("emergency".into()),
        };
        assert_eq!(ReadRequest::from_bytes(&r.to_bytes()).unwrap(), r);
        let sig = r.sign(&k);
        assert!(r.verify(&sig));
        let mut other = r.clone();
        other.version = 3;
        assert!(!other.verify(&sig));
        // The nonce is signed and makes the replay id differ.
        let mut again = r.clone();
        again.nonce = 78;
        assert!(!again.verify(&sig));
        assert_ne!(again.id(), r.id());
    }

    #[test]
    fn audit_queries_round_trip_and_bind_their_signature() {
        let k = Keypair::from_seed(2);
        let q = AuditQuery {
            chain_id: "c".into(),
            requester: Some(k.public()),
            issued_ms: 9,
            nonce: 78,
            patient: Some(Hash([3; 32])),
            institution: Some("h0".into()),
            from_ms: Some(1),
            to_ms: None,
            purpose: Some(Purpose::Research),
            outcome: Some(AccessOutcome::BreakGlass),
            limit: 50,
        };
        assert_eq!(AuditQuery::from_bytes(&q.to_bytes()).unwrap(), q);
        let sig = q.sign(&k);
        assert!(q.verify(&sig));
        // A signature does not carry over to a widened query, nor to another requester.
        let mut wider = q.clone();
        wider.institution = None;
        assert!(!wider.verify(&sig));
        let mut anon = q.clone();
        anon.requester = None;
        assert!(!anon.verify(&sig));
        // A truncated encoding is an error, not a panic.
        let b = q.to_bytes();
        assert!(AuditQuery::from_bytes(&b[..b.len() - 1]).is_err());
    }
}
