//! Proofs namespace: state answers a client can verify without trusting this node.
//!
//! Each route runs one query of [`medledger_state::queries`] over the committed state, records
//! which keys it read, and proves every one of them (value or absence) against the state root
//! of the committed tip, with the tip's header and the finalization certificate that covers it.
//! Who may see what is decided exactly as on the matching read route, before anything is proven.
//! The format is [`StateProof`] (`medledger-state-proof/1`, see `docs/state-proofs.md`).

use super::*;
use medledger_state::commitment::{self, Recording};
use medledger_state::queries::{self, At};
use medledger_state::store::StateRead;
use medledger_storage::Snapshot;
use medledger_types::state_proof::{ProvenEntry, FORMAT, MAX_ENTRIES};
use medledger_types::StateProof;

/// Runs `query` over the committed state at the tip (after `check` passes), and proves every
/// key it read.
fn prove(
    st: &ApiState,
    check: impl FnOnce(&Snapshot) -> Result<(), ApiError>,
    query: impl FnOnce(&dyn StateRead, At),
) -> Result<Json<StateProof>, ApiError> {
    let store = &st.chain.store;
    let (header, snap) = store.view().map_err(ApiError::internal)?;
    check(&snap)?;
    let rec = Recording::new(&snap);
    query(&rec, At::after(header.height, header.timestamp_ms));
    let keys = rec.touched();
    if keys.len() > MAX_ENTRIES {
        return Err(ApiError::internal(format!("the answer depends on {} keys, above {MAX_ENTRIES}", keys.len())));
    }
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let (value, proof) = commitment::prove(&snap, header.height, &key).map_err(ApiError::internal)?;
        entries.push(ProvenEntry { key: hex::encode(&key), value: value.map(hex::encode), proof: hex::encode(proof) });
    }
    let medledger_storage::Certified { descendants, height: certified_height, certificate: cert } =
        store.certified_chain(header.height).map_err(ApiError::internal)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotYetCertified,
                format!(
                    "the state at height {} is not covered by a finalization certificate yet; retry shortly",
                    header.height
                ),
            )
        })?;
    Ok(Json(StateProof {
        format: FORMAT.to_string(),
        chain_id: st.chain.genesis.chain_id.clone(),
        header,
        descendants,
        certified_height,
        certificate: hex::encode(cert),
        entries,
    }))
}

fn no_patient() -> ApiError {
    ApiError::not_found("no patient with this pseudonym")
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/validators",
    responses((status = 200, description = "the genesis validators' keys (`meta/validators`), proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted`, credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn validators(State(st): State<ApiState>, _caller: Caller) -> Result<Json<StateProof>, ApiError> {
    prove(&st, |_| Ok(()), |s, _| drop(queries::validators(s)))
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/identities/{key}", params(("key" = PublicKey, Path, description = "ed25519 public key")),
    responses((status = 200, description = "the key's credential (with its revocation) and what it reads to decide the key's role, proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn identity(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let key = parse_key(&key)?;
    prove(
        &st,
        |snap| if caller.may_see_identity(snap, &key) { Ok(()) } else { Err(not_yours("this identity")) },
        |s, at| drop(queries::identity(s, &key, at)),
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/patients/{pseudonym}", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, description = "the patient key bound to the pseudonym, proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn patient(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    prove(
        &st,
        |snap| {
            state_identity::patient_key(snap, &p).ok_or_else(no_patient)?;
            if caller.may_see_patient_key(snap, &p) {
                Ok(())
            } else {
                Err(not_yours("this patient"))
            }
        },
        |s, _| {
            let _ = queries::patient_key(s, &p);
        },
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/patients/{pseudonym}/consents", params(("pseudonym" = Hash, Path, description = "patient pseudonym")),
    responses((status = 200, description = "the patient's consents with their status, proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn consents(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(p): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    prove(
        &st,
        |snap| {
            state_identity::patient_key(snap, &p).ok_or_else(no_patient)?;
            if caller.may_see_patient(snap, &p) {
                Ok(())
            } else {
                Err(not_yours("this patient's consents"))
            }
        },
        |s, at| drop(queries::consents(s, &p, at)),
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/regulators",
    responses((status = 200, description = "the regulators in force (readers of every sealed reason), proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted`, credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn regulators(State(st): State<ApiState>, _caller: Caller) -> Result<Json<StateProof>, ApiError> {
    prove(&st, |_| Ok(()), |s, at| drop(queries::regulators(s, at)))
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/records/{id}", params(("id" = Hash, Path, description = "record id")),
    responses((status = 200, description = "the record's head and its anchored versions (content hashes, holders, status), proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn record(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let id = parse_hash(&id, "record id")?;
    prove(
        &st,
        |snap| if caller.may_see_record(snap, &id) { Ok(()) } else { Err(not_yours("this record")) },
        |s, _| drop(queries::record(s, &id)),
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/access-events/{request_id}", params(("request_id" = Hash, Path, description = "id of the signed read request")),
    responses((status = 200, description = "the access event logged for the read request, or its absence, proven", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn access_event(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let id = parse_hash(&id, "request id")?;
    prove(
        &st,
        // Request ids are random: that one has no event yet reveals nothing.
        |snap| match medledger_state::audit::access_event_for_request(snap, &id) {
            Some(e) if !caller.may_see_access_event(snap, &e) => Err(not_yours("this access event")),
            _ => Ok(()),
        },
        |s, _| drop(queries::access_event(s, &id)),
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/drugs/verify", params(super::drugs::IdQuery),
    responses((status = 200, description = "what verifying the pack reads (product, pack, lot) and its public custody trail (its first 200 steps: institutions, counterparties, times; no shipment sizes, event ids or keys), proven: the client recomputes both from proven values only. Public, like `/v1/drugs/verify`", body = StateProof), (status = 400, description = "`invalid_argument`: not a GS1 pack identifier", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn drug_verify(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<super::drugs::IdQuery>,
) -> Result<Json<StateProof>, ApiError> {
    let (gtin, serial, id) = super::drugs::parse_pack(&q.id)?;
    prove(
        &st,
        |_| Ok(()),
        |s, at| {
            drop(queries::drug_verify(s, &gtin, &serial, id.lot.as_deref(), id.expiry.as_deref(), at));
            drop(queries::drug_trail(s, &gtin, &serial));
        },
    )
}

#[utoipa::path(tag = "proofs", get, path = "/v1/proofs/care/referrals/{id}", params(("id" = Hash, Path, description = "referral id")),
    responses((status = 200, description = "the referral (status, approvals, receiving doctor, consents, report), proven; or its absence", body = StateProof), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted`: not a party to this referral; credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn referral(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StateProof>, ApiError> {
    let id = parse_hash(&id, "referral id")?;
    prove(
        &st,
        |snap| match medledger_state::care::referral(snap, &id) {
            Some(r) if !caller.may_see_referral(&r) => Err(not_yours("this referral")),
            _ => Ok(()),
        },
        |s, _| drop(queries::referral(s, &id)),
    )
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/proofs/validators", get(validators))
        .route("/v1/proofs/identities/{key}", get(identity))
        .route("/v1/proofs/patients/{pseudonym}", get(patient))
        .route("/v1/proofs/patients/{pseudonym}/consents", get(consents))
        .route("/v1/proofs/regulators", get(regulators))
        .route("/v1/proofs/records/{id}", get(record))
        .route("/v1/proofs/access-events/{request_id}", get(access_event))
        .route("/v1/proofs/drugs/verify", get(drug_verify))
        .route("/v1/proofs/care/referrals/{id}", get(referral))
}
