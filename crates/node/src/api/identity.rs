//! Identity namespace: credentials of keys, patients by pseudonym, attestations and the
//! permission table.

use super::*;
use medledger_state::store::StateRead as _;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct IdentityView {
    pub key: String,
    /// The next nonce free for a new transaction (after committed and locally pending ones).
    pub next_nonce: u64,
    /// `ca`, a role name, or null if the key holds no credential.
    pub principal: Option<String>,
    /// Why the credential cannot be used now, if it cannot.
    pub problem: Option<String>,
    pub credential: Option<medledger_state::identity::Credential>,
}

/// The permission table: for each principal, which operations it may perform.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PermissionsView {
    pub table: Vec<PermissionRow>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PermissionRow {
    /// `ca` or a role name.
    pub principal: String,
    /// Operation name → allowed.
    pub operations: std::collections::BTreeMap<String, bool>,
}

#[utoipa::path(tag = "identity", get, path = "/v1/identities/{key}", params(("key" = PublicKey, Path, description = "ed25519 public key")),
    responses((status = 200, body = IdentityView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_identity(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<IdentityView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    if !caller.may_see_identity(&snap, &key) {
        return Err(not_yours("this identity"));
    }
    Ok(Json(identity_view(&st, &snap, key)))
}

/// A key's identity as the API shows it.
fn identity_view(st: &ApiState, snap: &dyn medledger_state::store::StateRead, key: PublicKey) -> IdentityView {
    let tip = st.chain.tip();
    let cred = state_identity::credential(snap, &key);
    let principal = state_identity::principal(snap, &key, crate::chain::now_ms(), tip.height + 1);
    IdentityView {
        key: key.to_hex(),
        // The next nonce free for a new transaction: past the committed ones and past any this
        // node holds pending (for instance access events its vault signed).
        next_nonce: st.chain.next_nonce(snap, &key),
        principal: principal.as_ref().ok().map(|p| p.name().to_string()),
        problem: principal.err().map(|r| r.to_string()),
        credential: cred,
    }
}

#[utoipa::path(tag = "identity", get, path = "/v1/patients/{pseudonym}", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, body = IdentityView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_patient(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<IdentityView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let key =
        state_identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    if !caller.may_see_patient_key(&snap, &p) {
        return Err(not_yours("this patient"));
    }
    Ok(Json(identity_view(&st, &snap, key)))
}

/// The regulators with a valid credential: with the patient, the readers every sealed reason
/// must be sealed for.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegulatorsView {
    pub regulators: Vec<PublicKey>,
}

#[utoipa::path(tag = "identity", get, path = "/v1/regulators",
    responses((status = 200, body = RegulatorsView), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_regulators(
    State(st): State<ApiState>,
    _caller: Caller,
) -> Result<Json<RegulatorsView>, ApiError> {
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let regulators = state_identity::regulators(&snap, st.chain.now_ms(), st.chain.tip().height + 1);
    Ok(Json(RegulatorsView { regulators }))
}

#[utoipa::path(tag = "identity", get, path = "/v1/attestations/{digest}", params(("digest" = Hash, Path, description = "attested digest")),
    responses((status = 200, body = medledger_state::identity::Attestation), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_attestation(
    State(st): State<ApiState>,
    _caller: Caller,
    ApiPath(d): ApiPath<String>,
) -> Result<Json<medledger_state::identity::Attestation>, ApiError> {
    let d = parse_hash(&d, "digest")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let a = state_identity::attestation(&snap, &d)
        .ok_or_else(|| ApiError::not_found(format!("digest {d} is not attested")))?;
    Ok(Json(a))
}

#[utoipa::path(tag = "identity", get, path = "/v1/permissions", responses((status = 200, body = PermissionsView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody)))]
pub(crate) async fn get_permissions(_caller: Caller) -> Json<PermissionsView> {
    let table = medledger_state::permissions::table()
        .into_iter()
        .map(|(p, cells)| PermissionRow {
            principal: p.name().to_string(),
            operations: cells.into_iter().map(|(k, ok)| (k.name().to_string(), ok)).collect(),
        })
        .collect();
    Json(PermissionsView { table })
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/identities/{key}", get(get_identity))
        .route("/v1/patients/{pseudonym}", get(get_patient))
        .route("/v1/attestations/{digest}", get(get_attestation))
        .route("/v1/permissions", get(get_permissions))
        .route("/v1/regulators", get(get_regulators))
        .route("/v1/institutions/{id}/staff", get(get_staff))
}

/// At most this many staff credentials in one answer.
pub const MAX_STAFF: usize = 1000;

/// An institution's staff directory.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StaffView {
    pub institution: String,
    /// Staff credentials (every role but patients), revoked ones included, in key order.
    pub staff: Vec<medledger_state::identity::Credential>,
    /// True if there were more than [`MAX_STAFF`] credentials to scan.
    pub truncated: bool,
}

#[utoipa::path(tag = "identity", get, path = "/v1/institutions/{id}/staff", params(("id" = String, Path, description = "institution id")),
    responses((status = 200, body = StaffView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
/// The staff credentials of an institution, from this node's committed state (a directory, not
/// proven: check any one entry with `/v1/proofs/identities/{key}`). Staff credentials are a
/// directory every staff credential holder may read; patients may not list them.
pub(crate) async fn get_staff(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StaffView>, ApiError> {
    if id.is_empty() || id.len() > medledger_types::limits::MAX_INSTITUTION_ID {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidArgument,
            format!("institution id must be 1 to {} bytes", medledger_types::limits::MAX_INSTITUTION_ID),
        ));
    }
    if !caller.may_list_staff() {
        return Err(not_yours("staff directories"));
    }
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    if state_identity::institution(&snap, &id).is_none() {
        return Err(ApiError::not_found(format!("no institution `{id}`")));
    }
    // Bounded: at most 100 times the answer's size is scanned (all institutions share the prefix).
    let (entries, truncated) =
        snap.scan_prefix(state_identity::CREDENTIAL_PREFIX, 100 * MAX_STAFF).map_err(ApiError::internal)?;
    let staff: Vec<_> = entries
        .iter()
        // One that does not decode is reported, and the answer is refused (see the router).
        .filter_map(|(_, v)| state_identity::decode_credential(v).map_err(|e| snap.corrupt(&e)).ok())
        .filter(|c| c.institution == id && c.role != medledger_types::Role::Patient)
        .take(MAX_STAFF)
        .collect();
    Ok(Json(StaffView { institution: id, truncated: truncated || staff.len() == MAX_STAFF, staff }))
}
