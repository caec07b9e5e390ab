//! Consent namespace: a patient's consents and pending access requests.

use super::*;
use medledger_state::consent::{AccessRequest, Consent};

/// A patient's consents, each with whether it is in force now.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConsentsView {
    pub patient: Hash,
    pub consents: Vec<ConsentView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    #[serde(flatten)]
    pub consent: Consent,
    /// Granted, not revoked and not expired at the next block.
    pub active: bool,
}

/// A patient's access requests waiting for an answer (only the caller's own, unless the caller
/// is the patient, a regulator or the patient's institution admin).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RequestsView {
    pub patient: Hash,
    pub pending: Vec<AccessRequest>,
}

#[utoipa::path(tag = "consent", get, path = "/v1/patients/{pseudonym}/consents", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = ConsentsView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_consents(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<ConsentsView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    if !caller.may_see_patient(&snap, &p) {
        return Err(not_yours("this patient's consents"));
    }
    let (now, height) = (st.chain.now_ms(), st.chain.tip().height + 1);
    let consents = medledger_state::consent::consents_of(&snap, &p)
        .into_iter()
        .map(|c| ConsentView { active: medledger_state::consent::is_active(&c, now, height), consent: c })
        .collect();
    Ok(Json(ConsentsView { patient: p, consents }))
}

#[utoipa::path(tag = "consent", get, path = "/v1/patients/{pseudonym}/requests", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = RequestsView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn patient_requests(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<RequestsView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    // The patient, regulators and the patient's institution see every request; anyone else
    // only their own.
    let all = caller.sees_all_requests_of(&snap, &p);
    let pending = medledger_state::consent::pending_requests(&snap, &p)
        .into_iter()
        .filter(|r| all || r.requester == caller.key)
        .collect();
    Ok(Json(RequestsView { patient: p, pending }))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/patients/{pseudonym}/consents", get(patient_consents))
        .route("/v1/patients/{pseudonym}/requests", get(patient_requests))
}
