//! Audit namespace: signed audit queries over access events (JSON or FHIR AuditEvents).

use super::*;

/// A signed audit query.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditRequest {
    /// Canonical `AuditQuery` bytes (hex).
    #[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 2048)]
    pub query: String,
    /// The requester's ed25519 signature over them (hex).
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
    /// `json` (default) or `fhir` for a Bundle of FHIR AuditEvent resources.
    #[serde(default)]
    pub format: Option<AuditFormat>,
}

/// The shape of an audit answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditFormat {
    #[default]
    Json,
    Fhir,
}

#[utoipa::path(tag = "audit", post, path = "/v1/audit", request_body = AuditRequest,
    responses((status = 200, description = "events, or a FHIR Bundle with `format = fhir`", body = crate::audit::AuditAnswer), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn audit(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<AuditRequest>,
) -> Result<Json<crate::audit::AuditAnswer>, ApiError> {
    use medledger_types::read::{AuditQuery, MAX_READ_SKEW_MS};
    let raw = hex::decode(req.query.trim())
        .map_err(|e| ApiError::bad_request(ErrorCode::Malformed, format!("query is not hex: {e}")))?;
    let mut q = AuditQuery::from_bytes(&raw)
        .map_err(|e| ApiError::bad_request(ErrorCode::Malformed, format!("audit query: {e}")))?;
    let sig = hex::decode(req.signature.trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| ApiError::bad_request(ErrorCode::Malformed, "signature must be 64 bytes of hex"))?;
    if !q.verify(&medledger_types::Signature(sig)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::BadSignature,
            "audit query signature does not verify for its requester",
        ));
    }
    if q.chain_id != st.chain.genesis.chain_id {
        return Err(ApiError::bad_request(ErrorCode::WrongChain, format!("query is for chain `{}`", q.chain_id)));
    }
    let now = st.chain.now_ms();
    if now.abs_diff(q.issued_ms) > MAX_READ_SKEW_MS {
        return Err(ApiError::bad_request(ErrorCode::Stale, "query timestamp is too far from the node's clock"));
    }
    let fhir = req.format.unwrap_or_default() == AuditFormat::Fhir;
    let chain = st.chain.clone();
    let guard = st.guard.clone();
    tokio::task::spawn_blocking(move || {
        let snap = chain.store.snapshot().map_err(ApiError::internal)?;
        let id = q.id();
        crate::audit::authorize(&snap, &mut q, now, chain.tip().height + 1)?;
        if let Some(requester) = q.requester {
            guard.admit(&requester, id, now)?;
        }
        let r = crate::audit::run(&snap, &q);
        Ok(Json(if fhir {
            crate::audit::AuditAnswer::Fhir(crate::audit::fhir_bundle(&r.events, now))
        } else {
            crate::audit::AuditAnswer::Events(r)
        }))
    })
    .await
    .map_err(ApiError::internal)?
}

#[utoipa::path(tag = "audit", get, path = "/v1/access-events/{request_id}", params(("request_id" = Hash, Path, description = "id of the signed read request (a read answer's `access_event`)")),
    responses((status = 200, description = "the committed access event", body = crate::audit::AuditEntry), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 404, description = "`not_found`: not on chain (yet: events reach it in the holder's next batch)", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn access_event(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<crate::audit::AuditEntry>, ApiError> {
    let id = parse_hash(&id, "request id")?;
    let snap = snapshot(&st)?;
    let e = medledger_state::audit::access_event_for_request(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("no access event for read request {id} on chain")))?;
    if !caller.may_see_access_event(&snap, &e) {
        return Err(not_yours("this access event"));
    }
    Ok(Json(crate::audit::entry(&snap, e)))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/audit", post(audit).layer(DefaultBodyLimit::max(limits::MAX_SIGNED_REQUEST_BODY_BYTES)))
        .route("/v1/access-events/{request_id}", get(access_event))
}
