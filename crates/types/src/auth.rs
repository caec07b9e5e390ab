//! Signed API requests: how a caller proves who it is on a request without a signed body.
//!
//! Every `GET` except node status, liveness and the API document carries
//!
//! ```text
//! Authorization: MedLedger key=<64 hex>, ts=<ms since epoch>, nonce=<u64>, sig=<128 hex>
//! ```
//!
//! where `sig` is the caller's ed25519 signature, under the namespace
//! [`API_REQUEST_SIGNATURE`], over the canonical encoding of [`ApiRequest`]: the chain id, the
//! method, the path with its query string, the timestamp and the nonce. The node checks the
//! signature, the clock skew ([`crate::read::MAX_READ_SKEW_MS`]), that the key holds a valid
//! credential, the caller's rate and that the request was not seen before; then it answers with
//! only what that caller may see. Requests with a body (transactions, uploads, reads, audit
//! queries, key additions) are signed in the body instead.
//!
//! Why signed requests rather than client certificates: every user already holds an ed25519
//! key bound to a role by the CA, so no second credential (an X.509 certificate and its
//! revocation) is needed; the signature names the user even through a node that forwards the
//! request, where a TLS client certificate would name the forwarding node; and a key's
//! revocation on chain takes effect at once for both its transactions and its reads.

use crate::codec::{Canonical, DecodeError, Reader, Writer};
use crate::keys::{Keypair, PublicKey, Signature};
use crate::tx::limits;

/// ed25519 namespace of signed API requests.
pub const API_REQUEST_SIGNATURE: &[u8] = crate::hash::domain::API_REQUEST_SIGNATURE;
/// The authorization scheme's name.
pub const SCHEME: &str = "MedLedger";
/// Longest path-and-query a signed request may name.
pub const MAX_SIGNED_PATH: usize = 2048;

/// What a signed API request's signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub chain_id: String,
    /// `GET` (the only method signed this way today).
    pub method: String,
    /// The path with its query string, exactly as sent (`/v1/blocks?limit=5`).
    pub path: String,
    pub issued_ms: u64,
    /// Random, so that two requests in the same millisecond differ.
    pub nonce: u64,
}

impl Canonical for ApiRequest {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.chain_id).str(&self.method).str(&self.path).u64(self.issued_ms).u64(self.nonce);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ApiRequest {
            chain_id: r.string("chain id", limits::MAX_CHAIN_ID)?,
            method: r.string("method", 16)?,
            path: r.string("path", MAX_SIGNED_PATH)?,
            issued_ms: r.u64("issued at")?,
            nonce: r.u64("nonce")?,
        })
    }
}

/// The parts of an `Authorization: MedLedger ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthHeader {
    pub key: PublicKey,
    pub issued_ms: u64,
    pub nonce: u64,
    pub signature: Signature,
}

impl ApiRequest {
    /// Signs this request with `key` and returns the header value.
    pub fn authorization(&self, key: &Keypair) -> String {
        let sig = key.sign(API_REQUEST_SIGNATURE, &self.to_bytes());
        format!(
            "{SCHEME} key={}, ts={}, nonce={}, sig={}",
            key.public().to_hex(),
            self.issued_ms,
            self.nonce,
            hex::encode(sig.0)
        )
    }

    /// Does `h` sign this request (with `h`'s timestamp and nonce)?
    pub fn verify(&self, h: &AuthHeader) -> bool {
        crate::keys::verify(&h.key, API_REQUEST_SIGNATURE, &self.to_bytes(), &h.signature)
    }

    /// This request's replay-cache id.
    pub fn id(&self) -> crate::Hash {
        crate::read::request_id(API_REQUEST_SIGNATURE, &self.to_bytes())
    }
}

impl AuthHeader {
    /// Parses a header value; the error says which part is wrong.
    pub fn parse(value: &str) -> Result<AuthHeader, String> {
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| format!("the Authorization scheme must be `{SCHEME}`"))?;
        let (mut key, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for part in rest.split(',') {
            let (name, v) =
                part.trim().split_once('=').ok_or_else(|| format!("`{}` is not name=value", part.trim()))?;
            let slot = match name {
                "key" => &mut key,
                "ts" => &mut ts,
                "nonce" => &mut nonce,
                "sig" => &mut sig,
                other => return Err(format!("unknown Authorization parameter `{other}`")),
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(format!("Authorization parameter `{name}` appears twice"));
            }
        }
        let need = |v: Option<String>, what: &str| v.ok_or_else(|| format!("Authorization lacks `{what}`"));
        let key = PublicKey::from_hex(&need(key, "key")?).map_err(|e| format!("Authorization key: {e}"))?;
        let issued_ms = need(ts, "ts")?.parse::<u64>().map_err(|e| format!("Authorization ts: {e}"))?;
        let nonce = need(nonce, "nonce")?.parse::<u64>().map_err(|e| format!("Authorization nonce: {e}"))?;
        let sig = hex::decode(need(sig, "sig")?).map_err(|e| format!("Authorization sig: {e}"))?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| "Authorization sig must be 64 bytes".to_string())?;
        Ok(AuthHeader { key, issued_ms, nonce, signature: Signature(sig) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ApiRequest {
        ApiRequest {
            chain_id: "c".into(),
            method: "GET".into(),
            path: "/v1/blocks?limit=5".into(),
            issued_ms: 7,
            nonce: 9,
        }
    }

    #[test]
    fn a_header_round_trips_and_binds_every_field() {
        let k = Keypair::from_seed(3);
        let r = req();
        let h = AuthHeader::parse(&r.authorization(&k)).unwrap();
        assert_eq!((h.key, h.issued_ms, h.nonce), (k.public(), 7, 9));
        assert!(r.verify(&h));
        for changed in [
            ApiRequest { chain_id: "d".into(), ..req() },
            ApiRequest { method: "POST".into(), ..req() },
            ApiRequest { path: "/v1/blocks?limit=6".into(), ..req() },
            ApiRequest { issued_ms: 8, ..req() },
            ApiRequest { nonce: 10, ..req() },
        ] {
            assert!(!changed.verify(&h), "{changed:?}");
        }
        assert_eq!(ApiRequest::from_bytes(&r.to_bytes()).unwrap(), r);
    }

    #[test]
    fn bad_headers_are_specific_errors() {
        let k = Keypair::from_seed(3);
        let good = req().authorization(&k);
        for (v, why) in [
            ("Bearer x", "scheme"),
            ("MedLedger key=00", "Authorization key"),
            (good.replace("ts=7", "ts=x").as_str(), "ts"),
            (good.replace(", nonce=9", "").as_str(), "lacks `nonce`"),
            (format!("{good}, key=ab").as_str(), "twice"),
            (format!("{good}, extra=1").as_str(), "unknown"),
            (good.replace("sig=", "sig=00").as_str(), "64 bytes"),
        ] {
            let e = AuthHeader::parse(v).unwrap_err();
            assert!(e.contains(why), "{v}: {e}");
        }
    }
}
