//! Identity namespace: credentials of keys, patients by pseudonym, attestations and the
//! permission table.

use super::*;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct IdentityView {
    pub key: String,
    /// The next nonce free for a new transaction (after committed and locally pending ones).
    pub next_nonce: u64,
    /// `ca`, a role name, or null if the key holds no credential.
    pub principal: Option<String>,
    /// Why the credential cannot be used now, if it cannot.
    pub problem: Option<String>,
    #[schema(value_type = Object)]
    pub credential: Option<Value>,
}

#[utoipa::path(tag = "identity", get, path = "/v1/identities/{key}", params(("key" = String, Path, description = "ed25519 public key (hex)")),
    responses((status = 200, body = IdentityView), (status = 400, body = ErrorBody)))]
pub(crate) async fn get_identity(
    State(st): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<IdentityView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let tip = st.chain.tip();
    let cred = state_identity::credential(&snap, &key);
    let principal = state_identity::principal(&snap, &key, crate::chain::now_ms(), tip.height + 1);
    Ok(Json(IdentityView {
        key: key.to_hex(),
        // The next nonce free for a new transaction: past the committed ones and past any this
        // node holds pending (for instance access events its vault signed).
        next_nonce: st.chain.next_nonce(&snap, &key),
        principal: principal.as_ref().ok().map(|p| p.name().to_string()),
        problem: principal.err().map(|r| r.to_string()),
        credential: cred.map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
    }))
}

#[utoipa::path(tag = "identity", get, path = "/v1/patients/{pseudonym}", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = IdentityView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_patient(
    State(st): State<ApiState>,
    Path(p): Path<String>,
) -> Result<Json<IdentityView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let key =
        state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    drop(snap);
    get_identity(State(st), Path(key.to_hex())).await
}

#[utoipa::path(tag = "identity", get, path = "/v1/attestations/{digest}", params(("digest" = String, Path, description = "attested digest (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_attestation(
    State(st): State<ApiState>,
    Path(d): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = parse_hash(&d, "digest")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let a = state_identity::attestation(&snap, &d)
        .ok_or_else(|| ApiError::not_found(format!("digest {d} is not attested")))?;
    Ok(Json(serde_json::to_value(a).unwrap_or(Value::Null)))
}

#[utoipa::path(tag = "identity", get, path = "/v1/permissions", responses((status = 200, body = Object)))]
pub(crate) async fn get_permissions() -> Json<Value> {
    let rows: Vec<Value> = medledger_state::permissions::table()
        .into_iter()
        .map(|(p, cells)| {
            let ops: serde_json::Map<String, Value> =
                cells.into_iter().map(|(k, ok)| (k.name().to_string(), Value::Bool(ok))).collect();
            json!({ "principal": p.name(), "operations": ops })
        })
        .collect();
    Json(json!({ "table": rows }))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/identities/{key}", get(get_identity))
        .route("/v1/patients/{pseudonym}", get(get_patient))
        .route("/v1/attestations/{digest}", get(get_attestation))
        .route("/v1/permissions", get(get_permissions))
}
