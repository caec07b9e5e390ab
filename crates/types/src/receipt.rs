//! Receipts: the per-transaction result of executing a block.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::hash::Hash;
use serde::{Deserialize, Serialize};

/// Why the state machine rejected a transaction that made it into a block.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    WrongChain,
    BadSignature,
    BadNonce,
    UnknownSigner,
    CredentialExpired,
    CredentialRevoked,
    CredentialNotYetValid,
    NotPermitted,
    InvalidArgument,
    NotFound,
    AlreadyExists,
}

impl RejectCode {
    pub const ALL: [RejectCode; 11] = [
        RejectCode::WrongChain,
        RejectCode::BadSignature,
        RejectCode::BadNonce,
        RejectCode::UnknownSigner,
        RejectCode::CredentialExpired,
        RejectCode::CredentialRevoked,
        RejectCode::CredentialNotYetValid,
        RejectCode::NotPermitted,
        RejectCode::InvalidArgument,
        RejectCode::NotFound,
        RejectCode::AlreadyExists,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::WrongChain => "wrong_chain",
            RejectCode::BadSignature => "bad_signature",
            RejectCode::BadNonce => "bad_nonce",
            RejectCode::UnknownSigner => "unknown_signer",
            RejectCode::CredentialExpired => "credential_expired",
            RejectCode::CredentialRevoked => "credential_revoked",
            RejectCode::CredentialNotYetValid => "credential_not_yet_valid",
            RejectCode::NotPermitted => "not_permitted",
            RejectCode::InvalidArgument => "invalid_argument",
            RejectCode::NotFound => "not_found",
            RejectCode::AlreadyExists => "already_exists",
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: String,
    pub attrs: Vec<(String, String)>,
}

impl Event {
    pub fn new(kind: &str) -> Self {
        Event { kind: kind.to_string(), attrs: Vec::new() }
    }
    /// Adds an attribute; a key or value longer than a receipt keeps ([`MAX_TEXT`] bytes) is
    /// cut there (a list of institutions can be), so that every receipt decodes.
    pub fn with(mut self, k: &str, v: impl ToString) -> Self {
        self.attrs.push((fit_text(k.to_string()), fit_text(v.to_string())));
        self
    }
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Applied { events: Vec<Event> },
    Rejected { code: RejectCode, reason: String },
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub tx_id: Hash,
    pub height: u64,
    pub index: u32,
    pub outcome: Outcome,
}

impl Receipt {
    pub fn is_applied(&self) -> bool {
        matches!(self.outcome, Outcome::Applied { .. })
    }
}

const MAX_EVENTS: usize = 64;
const MAX_ATTRS: usize = 32;
/// The longest text a receipt keeps: an event's kind, an attribute's key or value, a reason.
pub const MAX_TEXT: usize = 1024;

/// `s`, cut to [`MAX_TEXT`] bytes on a character boundary.
pub fn fit_text(mut s: String) -> String {
    crate::limits::truncate_utf8(&mut s, MAX_TEXT);
    s
}

impl Canonical for Receipt {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.tx_id.0).u64(self.height).u32(self.index);
        match &self.outcome {
            Outcome::Applied { events } => {
                w.u8(0).u32(events.len() as u32);
                for e in events {
                    w.str(&e.kind).u32(e.attrs.len() as u32);
                    for (k, v) in &e.attrs {
                        w.str(k).str(v);
                    }
                }
            }
            Outcome::Rejected { code, reason } => {
                w.u8(1).u8(*code as u8).str(reason);
            }
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tx_id = Hash(r.array("tx id")?);
        let height = r.u64("height")?;
        let index = r.u32("index")?;
        let outcome = match r.u8("outcome")? {
            0 => {
                let n = r.len("events", MAX_EVENTS)?;
                let mut events = Vec::with_capacity(n);
                for _ in 0..n {
                    let kind = r.string("event kind", MAX_TEXT)?;
                    let m = r.len("event attributes", MAX_ATTRS)?;
                    let mut attrs = Vec::with_capacity(m);
                    for _ in 0..m {
                        attrs.push((r.string("attribute key", MAX_TEXT)?, r.string("attribute value", MAX_TEXT)?));
                    }
                    events.push(Event { kind, attrs });
                }
                Outcome::Applied { events }
            }
            1 => {
                let t = r.u8("reject code")?;
                let code = *RejectCode::ALL.get(t as usize).ok_or(DecodeError::UnknownTag("reject code", t))?;
                Outcome::Rejected { code, reason: r.string("reason", MAX_TEXT)? }
            }
            t => return Err(DecodeError::UnknownTag("outcome", t)),
        };
        Ok(Receipt { tx_id, height, index, outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip() {
        for outcome in [
            Outcome::Applied { events: vec![Event::new("x").with("a", 1).with("b", "two")] },
            Outcome::Rejected { code: RejectCode::CredentialRevoked, reason: "revoked at 4".into() },
        ] {
            let r = Receipt { tx_id: Hash([3; 32]), height: 9, index: 2, outcome };
            assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }

    /// A long attribute (an erasure's list of holders) is cut to what a receipt keeps, on a
    /// character boundary, so the receipt still decodes.
    #[test]
    fn a_long_attribute_is_cut_so_the_receipt_decodes() {
        let holders = vec!["hôpital-é".repeat(8); 40].join(",");
        assert!(holders.len() > MAX_TEXT);
        let events = vec![Event::new("erasure_requested").with("holders", &holders)];
        let value = events[0].attr("holders").unwrap().to_string();
        assert!(value.len() <= MAX_TEXT && holders.starts_with(&value), "{}", value.len());
        let r = Receipt { tx_id: Hash([3; 32]), height: 9, index: 2, outcome: Outcome::Applied { events } };
        assert_eq!(Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
    }
}
