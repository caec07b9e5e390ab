//! Drugs namespace: public pack verification, custody trails, EPCIS 2.0 capture and query,
//! alerts, recalls, products and inventories.
//!
//! `GET /v1/drugs/verify` is the one public read here (a patient scanning a box has no key): it
//! answers the status and the trail at institution level, without event ids, keys or volumes.
//! Everything else takes a signed caller.

use super::*;
use medledger_state::drugs::{self as sd, Alert, Lot, LotView, Product, TrailEntry, Verification};
use medledger_types::drugs::epcis::{self, EpcisError};
use medledger_types::drugs::{gs1, DrugsOp, Epc};
use medledger_types::Operation;

/// Most alerts, recalls, trail entries and inventory items one answer lists.
pub const MAX_LIST: usize = 500;

/// A scanned identifier: an element string (human-readable or raw with GS), an EPC URI or a
/// GS1 Digital Link.
#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdQuery {
    /// For example `https://id.gs1.org/01/10614141073464/10/LOTA1/21/2017?17=270630`.
    #[param(min_length = 1, max_length = 512)]
    pub id: String,
}

/// A pack's identifier, as parsed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ScannedId {
    pub gtin: String,
    pub serial: String,
    /// As scanned (checked against the ledger when present).
    pub lot: Option<String>,
    pub expiry: Option<String>,
}

/// The public answer to a scan.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    pub scanned: ScannedId,
    pub verification: Verification,
    /// Custody at institution level: steps, institutions and dates only.
    pub trail: Vec<TrailEntry>,
}

/// A custody trail with event ids (for credentialed callers).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TrailView {
    pub epc: Epc,
    pub trail: Vec<TrailEntry>,
    /// The identifier's last status change with why and where it was made: for staff in a
    /// supply role and regulators (null for anyone else, and if its status never changed). The
    /// public verification shows only who and when.
    pub last_change: Option<sd::LastChange>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AlertsView {
    pub alerts: Vec<Alert>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecallsView {
    pub recalls: Vec<LotView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    pub product: Product,
    pub lots: Vec<LotView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProductsView {
    pub products: Vec<ProductView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct InventoryView {
    pub institution: String,
    pub items: Vec<sd::Item>,
    /// More items exist than listed.
    pub truncated: bool,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstitutionQuery {
    /// Default: the caller's institution.
    pub institution: Option<String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EpcQuery {
    /// An EPC URI (`urn:epc:id:sgtin:…`, `urn:epc:id:sscc:…`), element string or Digital Link.
    #[param(min_length = 1, max_length = 512)]
    pub epc: String,
}

/// An EPCIS 2.0 document (`EPCISDocument`, or `EPCISQueryDocument` in query answers), JSON-LD.
/// The full rules are GS1's EPCIS 2.0 JSON schema; the node reports each violation it finds
/// with its JSON path.
pub struct EpcisDocument;

impl utoipa::PartialSchema for EpcisDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let free = || ObjectBuilder::new().additional_properties(Some(AdditionalProperties::FreeForm(true)));
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property("type", string().enum_values(Some(["EPCISDocument", "EPCISQueryDocument"])))
            .property("schemaVersion", string())
            .property(
                "creationDate",
                string()
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime))),
            )
            .property("epcisBody", free())
            .required("type")
            .required("schemaVersion")
            .required("creationDate")
            .required("epcisBody")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}
impl ToSchema for EpcisDocument {}

/// An EPCIS capture: the document, and the transaction of its capturing party that carries the
/// document's events (the node checks they are the same events).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CaptureRequest {
    /// An EPCIS 2.0 `EPCISDocument` (JSON / JSON-LD).
    #[schema(value_type = EpcisDocument)]
    pub document: Value,
    /// The signed `capture` transaction, hex.
    #[schema(value_type = super::ledger::HexTx)]
    pub tx: String,
}

/// A capture job, as the EPCIS 2.0 REST binding reports it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaptureJob {
    #[serde(rename = "captureID")]
    pub capture_id: String,
    pub running: bool,
    pub success: bool,
    pub capture_error_behaviour: String,
    pub errors: Vec<String>,
    /// The block that committed it.
    pub height: Option<u64>,
}

fn bad_id(e: gs1::Gs1Error) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidArgument, format!("identifier: {e}"))
}

/// Parses a scanned identifier into an EPC (pack or container).
pub(crate) fn parse_epc(s: &str) -> Result<(Epc, gs1::Gs1Id), ApiError> {
    medledger_types::drugs::parse_scanned(s).map_err(|e| ApiError::bad_request(ErrorCode::InvalidArgument, e))
}

/// A pack identifier (GTIN and serial; not a case) and what else the scan carried.
pub(crate) fn parse_pack(s: &str) -> Result<(String, String, gs1::Gs1Id), ApiError> {
    match parse_epc(s)? {
        (Epc::Sgtin { gtin, serial }, id) => Ok((gtin, serial, id)),
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidArgument,
            "verification is per pack (GTIN + serial), not per case",
        )),
    }
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/verify", params(IdQuery),
    responses((status = 200, body = VerifyView), (status = 400, description = "`invalid_argument`: the identifier breaks a GS1 rule (named in the message)", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn verify(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> Result<Json<VerifyView>, ApiError> {
    let (gtin, serial, id) = parse_pack(&q.id)?;
    let epc = Epc::sgtin(&gtin, &serial);
    let snap = snapshot(&st)?;
    // The pack is read once, for its verification and its trail.
    let it = sd::item(&snap, &epc);
    let v =
        sd::verify_item(&snap, &gtin, &serial, it.as_ref(), id.lot.as_deref(), id.expiry.as_deref(), st.chain.now_ms());
    let trail = it.map(|it| sd::public_trail_of(&snap, &it, MAX_LIST)).unwrap_or_default();
    Ok(Json(VerifyView { scanned: ScannedId { gtin, serial, lot: id.lot, expiry: id.expiry }, verification: v, trail }))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/trail", params(IdQuery),
    responses((status = 200, description = "the custody trail: with event ids, heights and the last change's reason and premises for staff in a supply role and regulators; as the public sees it for anyone else", body = TrailView), (status = 400, description = "`invalid_argument`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 404, description = "`not_found`: never commissioned", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn trail(
    State(st): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> Result<Json<TrailView>, ApiError> {
    let (epc, _) = parse_epc(&q.id)?;
    let snap = snapshot(&st)?;
    let Some(it) = sd::item(&snap, &epc) else {
        return Err(ApiError::not_found(format!("{epc} was never commissioned or packed on this ledger")));
    };
    let (trail, last_change) = if caller.may_see_drug_event_details() {
        (sd::trail_of(&snap, &it, MAX_LIST), sd::last_change_of(&snap, &it))
    } else {
        (sd::public_trail_of(&snap, &it, MAX_LIST), None)
    };
    Ok(Json(TrailView { epc, trail, last_change }))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/events", params(EpcQuery),
    responses((status = 200, description = "an EPCIS 2.0 `EPCISQueryDocument` with the identifier's events, oldest first", body = EpcisDocument, content_type = "application/ld+json"), (status = 400, description = "`invalid_argument`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: events are for staff in a supply role and regulators; credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn events(
    State(st): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EpcQuery>,
) -> Result<Response, ApiError> {
    let (epc, _) = parse_epc(&q.epc)?;
    if !caller.may_see_drug_event_details() {
        return Err(not_yours(
            "EPCIS events (their ids, read points and business locations; staff in a supply role and regulators only)",
        ));
    }
    let snap = snapshot(&st)?;
    let prefix_len = |digits: &str| sd::prefix_len(&snap, digits);
    let events: Vec<Value> = sd::events_of(&snap, &epc, MAX_LIST)
        .into_iter()
        .filter_map(|e| {
            let mut v = epcis::event_json(&e.op.0, &prefix_len)?;
            if let Some(d) = &e.error_declaration {
                v["errorDeclaration"] =
                    json!({ "declarationTime": medledger_types::time::rfc3339_ms(d.declared_ms), "reason": d.reason });
            }
            Some(v)
        })
        .collect();
    let doc = epcis::query_document("SimpleEventQuery", events, st.chain.now_ms());
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/ld+json"),
            (header::HeaderName::from_static("gs1-epcis-version"), "2.0.0"),
        ],
        Json(doc),
    )
        .into_response())
}

#[utoipa::path(tag = "drugs", post, path = "/v1/drugs/capture", request_body = CaptureRequest,
    responses((status = 202, description = "accepted: `Location` names the capture job (EPCIS 2.0 REST binding)", body = CaptureJob), (status = 400, description = "the document is not valid EPCIS 2.0, or its events are not the transaction's: every error with its JSON path", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 409, description = "`duplicate`, `already_exists`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`mempool_full`", body = ErrorBody)))]
pub(crate) async fn capture(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<CaptureRequest>,
) -> Result<Response, ApiError> {
    let steps = epcis::parse_value(&req.document)
        .map_err(|errors| epcis_errors(errors, "the document is not valid EPCIS 2.0 for this ledger"))?;
    let raw = decode_hex_tx(&req.tx)?;
    let tx = Tx::decode(&raw).map_err(SubmitError::from)?;
    match &tx.body().op {
        Operation::Drugs(DrugsOp::Capture { events }) if *events == steps => {}
        Operation::Drugs(DrugsOp::Capture { .. }) => {
            return Err(epcis_errors(
                vec![EpcisError {
                    path: "/epcisBody/eventList".into(),
                    message: "the transaction's events are not this document's events".into(),
                }],
                "document and transaction disagree",
            ))
        }
        other => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidArgument,
                format!("the transaction is `{}`, not a `capture`", other.kind().name()),
            ))
        }
    }
    let chain = st.chain.clone();
    let tx2 = tx.clone();
    let id =
        tokio::task::spawn_blocking(move || chain.submit(vec![tx2]).remove(0)).await.map_err(ApiError::internal)??;
    gossip(&st, vec![tx]);
    let job = CaptureJob {
        capture_id: id.to_hex(),
        running: true,
        success: true,
        capture_error_behaviour: "rollback".into(),
        errors: vec![],
        height: None,
    };
    let location = format!("/v1/drugs/capture/{}", id.to_hex());
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location), (header::HeaderName::from_static("gs1-epcis-version"), "2.0.0".to_string())],
        Json(job),
    )
        .into_response())
}

fn epcis_errors(errors: Vec<EpcisError>, summary: &str) -> ApiError {
    let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
    ApiError::bad_request(ErrorCode::InvalidArgument, format!("{summary}: {first}")).with_details(errors)
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/capture/{capture_id}", params(("capture_id" = Hash, Path, description = "the capture transaction's id")),
    responses((status = 200, body = CaptureJob), (status = 400, description = "`invalid_argument`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: not your capture", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn capture_job(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CaptureJob>, ApiError> {
    let id = parse_hash(&id, "capture id")?;
    let job = |running: bool, success: bool, errors: Vec<String>, height: Option<u64>| CaptureJob {
        capture_id: id.to_hex(),
        running,
        success,
        capture_error_behaviour: "rollback".into(),
        errors,
        height,
    };
    if let Some((height, index)) = st.chain.store.tx_location(&id).map_err(ApiError::internal)? {
        let block = st
            .chain
            .store
            .block(height)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal("indexed block missing"))?;
        let snap = snapshot(&st)?;
        let tx = block.txs.get(index as usize).ok_or_else(|| ApiError::internal("indexed tx missing"))?;
        if !caller.may_see_tx(&snap, tx) {
            return Err(not_yours("this capture"));
        }
        if !matches!(tx.body().op, Operation::Drugs(DrugsOp::Capture { .. })) {
            return Err(ApiError::not_found(format!("transaction {id} is not a capture")));
        }
        let receipt = st.chain.store.receipt(height, index).map_err(ApiError::internal)?;
        return Ok(Json(match receipt.map(|r| r.outcome) {
            Some(medledger_types::Outcome::Rejected { code, reason }) => {
                job(false, false, vec![format!("{}: {reason}", code.as_str())], Some(height))
            }
            _ => job(false, true, vec![], Some(height)),
        }));
    }
    if st.chain.is_pending(&id) {
        return Ok(Json(job(true, true, vec![], None)));
    }
    Err(ApiError::not_found(format!("capture {id} is neither committed nor pending here")))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/alerts",
    responses((status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 200, description = "newest first: all for a regulator, those about its products for a manufacturer", body = AlertsView), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`: only regulators and manufacturers see alerts", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn alerts(State(st): State<ApiState>, caller: Caller) -> Result<Json<AlertsView>, ApiError> {
    let scope =
        caller.drug_alert_scope().ok_or_else(|| not_yours("drug alerts (regulators and manufacturers only)"))?;
    let snap = snapshot(&st)?;
    Ok(Json(AlertsView { alerts: sd::alerts(&snap, scope.as_deref(), MAX_LIST) }))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/recalls",
    responses((status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 200, description = "recalled lots, newest first (a lot's `packs` only for its manufacturer and regulators, null for anyone else)", body = RecallsView), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn recalls(State(st): State<ApiState>, caller: Caller) -> Result<Json<RecallsView>, ApiError> {
    let snap = snapshot(&st)?;
    Ok(Json(RecallsView { recalls: lot_views(&caller, &snap, sd::recalls(&snap, MAX_LIST)) }))
}

/// Lots as `caller` may see them. A lot's size is production volume: it is read and shown only
/// for those who may see the sizes of its product's manufacturer
/// ([`Caller::may_see_lot_sizes_of`]).
fn lot_views(caller: &Caller, snap: &dyn medledger_state::StateRead, lots: Vec<Lot>) -> Vec<LotView> {
    lots.into_iter()
        .map(|l| {
            let counted = sd::product(snap, &l.gtin).is_some_and(|p| caller.may_see_lot_sizes_of(&p.manufacturer));
            sd::lot_view(snap, l, counted)
        })
        .collect()
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/products", params(InstitutionQuery),
    responses((status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 200, description = "an institution's products with their lots (a lot's `packs` only for its manufacturer and regulators, null for anyone else)", body = ProductsView), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn products(
    State(st): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InstitutionQuery>,
) -> Result<Json<ProductsView>, ApiError> {
    let inst = q.institution.or(caller.institution.clone()).unwrap_or_default();
    let snap = snapshot(&st)?;
    let products = sd::products_of(&snap, &inst)
        .into_iter()
        .map(|p| ProductView { lots: lot_views(&caller, &snap, sd::lots_of(&snap, &p.spec.gtin)), product: p })
        .collect();
    Ok(Json(ProductsView { products }))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/products/{gtin}", params(("gtin" = String, Path, description = "GTIN-8, -12, -13 or -14 (its check digit is checked)", pattern = "^([0-9]{8}|[0-9]{12,14})$")),
    responses((status = 200, body = ProductView), (status = 400, description = "`invalid_argument`", body = ErrorBody), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "credential problems", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn product(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(gtin): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let g = gs1::validate_gtin(&gtin).map_err(bad_id)?;
    let snap = snapshot(&st)?;
    let p = sd::product(&snap, &g).ok_or_else(|| ApiError::not_found(format!("no product {g} is registered")))?;
    Ok(Json(ProductView { lots: lot_views(&caller, &snap, sd::lots_of(&snap, &g)), product: p }))
}

#[utoipa::path(tag = "drugs", get, path = "/v1/drugs/inventory", params(InstitutionQuery),
    responses((status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`)", body = ErrorBody), (status = 200, description = "what an institution possesses (its own supply staff and regulators only)", body = InventoryView), (status = 401, description = "`unauthenticated`", body = ErrorBody), (status = 403, description = "`not_permitted`", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn inventory(
    State(st): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InstitutionQuery>,
) -> Result<Json<InventoryView>, ApiError> {
    let inst = q.institution.or(caller.institution.clone()).unwrap_or_default();
    if !caller.may_see_inventory_of(&inst) {
        return Err(not_yours(&format!("the inventory of `{inst}`")));
    }
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let prefix = sd::key::inventory_of(&inst);
    let (entries, truncated) = snap.scan_prefix(&prefix, MAX_LIST).map_err(ApiError::internal)?;
    let mut items = Vec::new();
    for (k, _) in entries {
        let part = &k[prefix.len()..];
        let epc = match part.get(..2) {
            Some(b"01") if part.len() > 16 => {
                Epc::sgtin(&String::from_utf8_lossy(&part[2..16]), &String::from_utf8_lossy(&part[16..]))
            }
            Some(b"00") => Epc::Sscc(String::from_utf8_lossy(&part[2..]).to_string()),
            _ => continue,
        };
        // The index is derived from the items (which are in the state tree); the answer lists
        // only what the items themselves say this institution holds.
        if let Some(it) = sd::item(&snap, &epc).filter(|it| it.owner == inst && sd::held(it)) {
            items.push(it);
        }
    }
    Ok(Json(InventoryView { institution: inst, items, truncated }))
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/drugs/verify", get(verify))
        .route("/v1/drugs/trail", get(trail))
        .route("/v1/drugs/events", get(events))
        .route(
            "/v1/drugs/capture",
            post(capture).layer(DefaultBodyLimit::max(epcis::MAX_DOCUMENT_BYTES + 2 * limits::MAX_TX_BYTES + 1024)),
        )
        .route("/v1/drugs/capture/{capture_id}", get(capture_job))
        .route("/v1/drugs/alerts", get(alerts))
        .route("/v1/drugs/recalls", get(recalls))
        .route("/v1/drugs/products", get(products))
        .route("/v1/drugs/products/{gtin}", get(product))
        .route("/v1/drugs/inventory", get(inventory))
}
