//! The registry of error codes: the one vocabulary every layer speaks.
//!
//! The state machine rejects with a [`RejectCode`](crate::RejectCode) (a subset, stored in
//! receipts), admission and services add their own, and the API returns the code's name with
//! the HTTP status given here. Codes are declared once, with their status, and never renamed:
//! clients match on them.

macro_rules! error_codes {
    ($( $(#[$m:meta])* $v:ident = $name:literal => $status:literal ),* $(,)?) => {
        /// A stable, machine-readable error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode { $( $(#[$m])* $v, )* }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$v, )* ];
            /// The name clients see (`error.code` in API answers).
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$v => $name, )* }
            }
            /// The HTTP status the API answers with by default. Transaction admission maps a
            /// few codes differently (see the node's `api/error.rs`).
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$v => $status, )* }
            }
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s { $( $name => Some(ErrorCode::$v), )* _ => None }
            }
        }
    };
}

error_codes! {
    /// The request or transaction does not decode.
    Malformed = "malformed" => 400,
    /// Above a size limit.
    Oversize = "oversize" => 413,
    /// A JSON body without `Content-Type: application/json`.
    UnsupportedMediaType = "unsupported_media_type" => 415,
    /// For another chain.
    WrongChain = "wrong_chain" => 400,
    /// A request that must be signed is not, or its `Authorization` header does not verify.
    Unauthenticated = "unauthenticated" => 401,
    /// A signature does not verify (403 for signed requests; 400 at transaction admission).
    BadSignature = "bad_signature" => 403,
    /// A nonce already used.
    Replay = "replay" => 400,
    /// A nonce that is not the next one (in receipts).
    BadNonce = "bad_nonce" => 400,
    /// The signer holds no credential.
    UnknownSigner = "unknown_signer" => 403,
    CredentialExpired = "credential_expired" => 403,
    CredentialRevoked = "credential_revoked" => 403,
    CredentialNotYetValid = "credential_not_yet_valid" => 403,
    /// The principal may not do this (permission table or scope rule).
    NotPermitted = "not_permitted" => 403,
    /// A field is out of range or inconsistent.
    InvalidArgument = "invalid_argument" => 400,
    NotFound = "not_found" => 404,
    AlreadyExists = "already_exists" => 409,
    /// The mempool (or the signer's share of it) is full; retry later.
    MempoolFull = "mempool_full" => 503,
    /// The same transaction is already pending.
    Duplicate = "duplicate" => 409,
    /// A nonce too far ahead of the next expected one.
    NonceGap = "nonce_gap" => 400,
    /// The node cannot serve this now (storage unavailable).
    Unavailable = "unavailable" => 503,
    /// A signed request's timestamp is too far from the node's clock.
    Stale = "stale" => 400,
    /// A signed request (read or audit query) this node has already answered.
    ReplayedRequest = "replayed_request" => 409,
    /// Too many requests from one requester, or from everyone at once; retry later.
    RateLimited = "rate_limited" => 429,
    /// The record was erased at the patient's request.
    Erased = "erased" => 410,
    /// Consent allows the read, but no data key is wrapped for the reader yet.
    KeyNotWrapped = "key_not_wrapped" => 409,
    /// Another institution holds the record and the request cannot be forwarded.
    WrongHolder = "wrong_holder" => 421,
    /// The holder's node could not be reached.
    HolderUnreachable = "holder_unreachable" => 502,
    /// A wrapped key held by the institution does not open.
    BadKey = "bad_key" => 502,
    /// This node runs no record vault.
    NoVault = "no_vault" => 503,
    /// No finalization certificate covers the block yet.
    NotYetCertified = "not_yet_certified" => 503,
    /// A bug or an I/O failure on the node.
    Internal = "internal" => 500,
}

impl crate::RejectCode {
    /// The registry code of a state-machine rejection (same name).
    pub fn code(self) -> ErrorCode {
        use crate::RejectCode as R;
        match self {
            R::WrongChain => ErrorCode::WrongChain,
            R::BadSignature => ErrorCode::BadSignature,
            R::BadNonce => ErrorCode::BadNonce,
            R::UnknownSigner => ErrorCode::UnknownSigner,
            R::CredentialExpired => ErrorCode::CredentialExpired,
            R::CredentialRevoked => ErrorCode::CredentialRevoked,
            R::CredentialNotYetValid => ErrorCode::CredentialNotYetValid,
            R::NotPermitted => ErrorCode::NotPermitted,
            R::InvalidArgument => ErrorCode::InvalidArgument,
            R::NotFound => ErrorCode::NotFound,
            R::AlreadyExists => ErrorCode::AlreadyExists,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            let n = c.as_str();
            assert!(n.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'), "{n}");
            assert_eq!(ErrorCode::parse(n), Some(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), n);
            assert!(ErrorCode::ALL[i + 1..].iter().all(|o| o.as_str() != n), "{n} twice");
            assert!((400..600).contains(&c.http_status()));
        }
    }

    #[test]
    fn every_reject_code_is_registered_under_its_own_name() {
        for r in crate::RejectCode::ALL {
            assert_eq!(r.code().as_str(), r.as_str());
        }
    }
}
