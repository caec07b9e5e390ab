//! Who is calling: the `Caller` extractor checks a signed request's `Authorization` header
//! ([`medledger_types::auth`]) before the handler runs, so a handler that takes a `Caller`
//! cannot be reached anonymously.
//!
//! Checks, in order, each failure a specific error and none with a side effect: the header
//! parses; the signature covers this chain, method, path and query; the timestamp is within
//! the skew; the key holds a valid credential (or is the CA); then the caller's rate and the
//! replay cache (the only state touched, and only for a verified credential holder).

use super::*;
use crate::visibility::Caller;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use medledger_types::auth::{ApiRequest, AuthHeader};
use medledger_types::read::MAX_READ_SKEW_MS;

fn unauthenticated(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, msg)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &ApiState) -> Result<Caller, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthenticated("this request must be signed: send `Authorization: MedLedger key=…, ts=…, nonce=…, sig=…`")
        })?;
        let value = value.to_str().map_err(|_| unauthenticated("the Authorization header is not ASCII"))?;
        let h = AuthHeader::parse(value).map_err(unauthenticated)?;
        let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        let req = ApiRequest {
            chain_id: st.chain.genesis.chain_id.clone(),
            method: parts.method.as_str().to_string(),
            path,
            issued_ms: h.issued_ms,
            nonce: h.nonce,
        };
        if req.path.len() > medledger_types::auth::MAX_SIGNED_PATH {
            return Err(unauthenticated("the signed path is too long"));
        }
        if !req.verify(&h) {
            return Err(unauthenticated(format!(
                "the Authorization signature does not verify for key {} over {} {} on chain `{}`",
                h.key.short(),
                req.method,
                req.path,
                req.chain_id
            )));
        }
        let now = st.chain.now_ms();
        if now.abs_diff(h.issued_ms) > MAX_READ_SKEW_MS {
            return Err(unauthenticated("the Authorization timestamp is too far from the node's clock"));
        }
        let chain = st.chain.clone();
        let guard = st.guard.clone();
        tokio::task::spawn_blocking(move || {
            let snap = chain.store.snapshot().map_err(ApiError::internal)?;
            let caller = Caller::of(&snap, &h.key, now, chain.tip().height + 1)?;
            guard.admit(&h.key, req.id(), now)?;
            Ok(caller)
        })
        .await
        .map_err(ApiError::internal)?
    }
}
