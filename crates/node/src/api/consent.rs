//! Consent namespace: a patient's consents and pending access requests.

use super::*;

#[utoipa::path(tag = "consent", get, path = "/v1/patients/{pseudonym}/consents", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn patient_consents(
    State(st): State<ApiState>,
    Path(p): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    let (now, height) = (st.chain.now_ms(), st.chain.tip().height + 1);
    let consents: Vec<Value> = medledger_state::consent::consents_of(&snap, &p)
        .into_iter()
        .map(|c| {
            let active = medledger_state::consent::is_active(&c, now, height);
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            v["active"] = json!(active);
            v
        })
        .collect();
    Ok(Json(json!({ "patient": p.to_hex(), "consents": consents })))
}

#[utoipa::path(tag = "consent", get, path = "/v1/patients/{pseudonym}/requests", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn patient_requests(
    State(st): State<ApiState>,
    Path(p): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    let pending = medledger_state::consent::pending_requests(&snap, &p);
    Ok(Json(json!({ "patient": p.to_hex(), "pending": pending })))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/patients/{pseudonym}/consents", get(patient_consents))
        .route("/v1/patients/{pseudonym}/requests", get(patient_requests))
}
