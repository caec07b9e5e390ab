//! Records namespace: uploads, wrapped-key additions and consent-checked reads (forwarded to
//! the holder's node when another institution holds the record), record histories.

use super::*;
use medledger_state::records::{RecordHead, RecordVersion};

/// A record and every version of it (access events are audit metadata: see `POST /v1/audit`).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecordView {
    pub record: RecordHead,
    pub versions: Vec<RecordVersion>,
}

/// A patient's records, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PatientRecordsView {
    pub patient: Hash,
    pub records: Vec<RecordView>,
}

fn record_view(snap: &dyn medledger_state::store::StateRead, id: &Hash) -> Option<RecordView> {
    let record = medledger_state::records::head(snap, id)?;
    Some(RecordView { record, versions: medledger_state::records::history(snap, id) })
}

#[utoipa::path(tag = "records", post, path = "/v1/records", request_body = crate::records::UploadRequest,
    responses((status = 202, description = "stored and anchored (pending commit)", body = SubmitResponse), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`duplicate`, `already_exists`, `key_not_wrapped`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 421, description = "`wrong_holder`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 502, description = "`holder_unreachable`, `bad_key`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn upload_record(
    State(st): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<crate::records::UploadRequest>,
) -> Result<Response, ApiError> {
    // The author's institution holds the record: forward there if that is not us.
    let author_inst = decode_hex_tx(&req.anchor_tx)
        .ok()
        .and_then(|raw| Tx::decode(&raw).ok())
        .and_then(|tx| Some(state_identity::credential(&snapshot(&st).ok()?, &tx.body().signer)?.institution));
    if let Some(h) = author_inst.filter(|h| !serves(&st, h)) {
        let body = serde_json::to_value(&req).map_err(ApiError::internal)?;
        return forward(&st, &headers, &h, "/v1/records", body).await;
    }
    let svc = record_service(&st)?;
    let tx = tokio::task::spawn_blocking(move || svc.upload(&req)).await.map_err(ApiError::internal)??;
    let id = tx.id();
    gossip(&st, vec![tx]);
    Ok((StatusCode::ACCEPTED, Json(SubmitResponse { tx_id: id, status: "pending".into() })).into_response())
}

#[utoipa::path(tag = "records", post, path = "/v1/records/{id}/{version}/keys", params(("id" = Hash, Path, description = "record id"), ("version" = u32, Path, description = "version")), request_body = crate::records::AddKeyRequest,
    responses((status = 204, description = "key stored"), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 410, description = "`erased`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 421, description = "`wrong_holder`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 502, description = "`holder_unreachable`, `bad_key`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn add_record_key(
    State(st): State<ApiState>,
    headers: HeaderMap,
    ApiPath((id, version)): ApiPath<(String, u32)>,
    ApiJson(req): ApiJson<crate::records::AddKeyRequest>,
) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "record id")?;
    if let Some(h) = holder_of(&st, &id, version)?.filter(|h| !serves(&st, h)) {
        let body = serde_json::to_value(&req).map_err(ApiError::internal)?;
        return forward(&st, &headers, &h, &format!("/v1/records/{}/{version}/keys", id.to_hex()), body).await;
    }
    let svc = record_service(&st)?;
    tokio::task::spawn_blocking(move || svc.add_key(&id, version, &req)).await.map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(tag = "records", post, path = "/v1/records/read", request_body = crate::records::SignedRead,
    responses((status = 200, body = crate::records::ReadResponse), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`, `duplicate`, `already_exists`, `key_not_wrapped`", body = ErrorBody), (status = 410, description = "`erased`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 421, description = "`wrong_holder`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 502, description = "`holder_unreachable`, `bad_key`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn read_record(
    State(st): State<ApiState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<crate::records::SignedRead>,
) -> Result<Response, ApiError> {
    // Any node takes a read; the holder alone serves it (query forwarding).
    let target =
        hex::decode(req.request.trim()).ok().and_then(|b| medledger_types::read::ReadRequest::from_bytes(&b).ok());
    if let Some(r) = target {
        if let Some(h) = holder_of(&st, &r.record_id, r.version)?.filter(|h| !serves(&st, h)) {
            let body = serde_json::to_value(&req).map_err(ApiError::internal)?;
            let (status, text) = forward_raw(&st, &headers, &h, "/v1/records/read", body).await?;
            // A consent to our institution: the holder sent our copy of the key; re-wrap it for
            // the requester (one of our staff) on the way back.
            if let (StatusCode::OK, Some(svc)) = (status, st.records.clone()) {
                if let Ok(mut resp) = serde_json::from_str::<crate::records::ReadResponse>(&text) {
                    if resp.custodian.as_deref() == Some(svc.institution.as_str()) {
                        let w = resp.wrapped.clone();
                        resp.wrapped = tokio::task::spawn_blocking(move || svc.rewrap_for_staff(&r, &w))
                            .await
                            .map_err(ApiError::internal)??;
                        resp.custodian = None;
                        return Ok(Json(resp).into_response());
                    }
                }
            }
            return Ok((status, [(header::CONTENT_TYPE, "application/json")], text).into_response());
        }
    }
    let svc = record_service(&st)?;
    let r = tokio::task::spawn_blocking(move || svc.read(&req)).await.map_err(ApiError::internal)??;
    Ok(Json(r).into_response())
}

#[utoipa::path(tag = "records", get, path = "/v1/records/{id}", params(("id" = Hash, Path, description = "record id")),
    responses((status = 200, body = RecordView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_record(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordView>, ApiError> {
    let id = parse_hash(&id, "record id")?;
    let snap = snapshot(&st)?;
    if !caller.may_see_record(&snap, &id) {
        return Err(not_yours("this record"));
    }
    Ok(Json(record_view(&snap, &id).ok_or_else(|| ApiError::not_found(format!("no record {id}")))?))
}

#[utoipa::path(tag = "records", get, path = "/v1/patients/{pseudonym}/records", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = PatientRecordsView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_records(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<PatientRecordsView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    if !caller.may_see_patient(&snap, &p) {
        return Err(not_yours("this patient's records"));
    }
    let records =
        medledger_state::records::record_ids_of(&snap, &p).iter().filter_map(|id| record_view(&snap, id)).collect();
    Ok(Json(PatientRecordsView { patient: p, records }))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/patients/{pseudonym}/records", get(patient_records))
        .route("/v1/records", post(upload_record).layer(DefaultBodyLimit::max(limits::MAX_UPLOAD_BODY_BYTES)))
        .route(
            "/v1/records/read",
            post(read_record).layer(DefaultBodyLimit::max(limits::MAX_SIGNED_REQUEST_BODY_BYTES)),
        )
        .route("/v1/records/{id}", get(get_record))
        .route(
            "/v1/records/{id}/{version}/keys",
            post(add_record_key).layer(DefaultBodyLimit::max(limits::MAX_SIGNED_REQUEST_BODY_BYTES)),
        )
}
