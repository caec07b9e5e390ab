//! The REST API every node serves (axum), documented by an OpenAPI document (utoipa).
//!
//! One file per namespace, named after its domain as in every other layer, each with its own
//! routes and OpenAPI tag: [`ledger`] (transactions, blocks, status), [`identity`], [`consent`],
//! [`records`], [`audit`], [`drugs`], [`care`], [`proofs`]. Errors are mapped once, in [`error`]: JSON
//! `{"error": {"code": "...", "message": "..."}}` with a stable code from the registry
//! ([`medledger_types::ErrorCode`]).

pub mod audit;
pub mod auth;
pub mod care;
pub mod consent;
pub mod drugs;
pub mod error;
mod explorer;
pub mod extract;
pub mod identity;
pub mod ledger;
pub mod proofs;
pub mod records;

use crate::chain::{Chain, SubmitError};
use crate::visibility::Caller;
pub use audit::AuditRequest;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use error::{ApiError, ErrorBody, ErrorDetail};
use extract::{ApiJson, ApiPath, ApiQuery};
use futures::stream::Stream;
pub use identity::IdentityView;
use ledger::{decode_hex_tx, gossip};
pub use ledger::{
    BatchItem, BatchRequest, BatchResponse, BlockView, ProofBundle, StatusView, SubmitRequest, SubmitResponse,
    TxStatus, ValidatorView,
};
use medledger_state::identity as state_identity;
use medledger_types::{limits, ErrorCode};
use medledger_types::{Block, BlockHeader, Canonical, Hash, PublicKey, Receipt, Transaction, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa::{OpenApi, ToSchema};

/// Limits of the API, from the registry ([`medledger_types::limits`]).
pub use medledger_types::limits::{MAX_BATCH, MAX_BATCH_BODY_BYTES, MAX_BLOCK_LIST, MAX_BODY_BYTES};

/// Live information the API reads from the networking side.
pub trait NodeInfo: Send + Sync + 'static {
    fn peers(&self) -> Vec<String>;
    fn prometheus(&self) -> String {
        String::new()
    }
}

#[derive(Clone)]
pub struct ApiState {
    pub chain: Arc<Chain>,
    pub info: Arc<dyn NodeInfo>,
    /// Accepted transactions to gossip to the other validators (bounded).
    pub gossip: Option<mpsc::Sender<Vec<Tx>>>,
    /// The record vault and read gatekeeper, when this node holds records.
    pub records: Option<Arc<crate::records::RecordService>>,
    /// Replay cache and per-requester rate limit for signed requests (shared with `records`).
    pub guard: Arc<crate::guard::Guard>,
    /// When set, requests are forwarded to other nodes over HTTPS trusting this configuration
    /// (the consortium CA only); otherwise over plain HTTP.
    pub forward_tls: Option<Arc<medledger_tls::rustls::ClientConfig>>,
}

/// A refusal to show `what` to this caller.
fn not_yours(what: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotPermitted, format!("you may not see {what}"))
}

fn parse_hash(s: &str, what: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(s).map_err(|e| ApiError::bad_request(ErrorCode::InvalidArgument, format!("{what}: {e}")))
}

fn parse_height(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request(ErrorCode::InvalidArgument, format!("height `{s}` is not a number")))
}

fn parse_key(s: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(s).map_err(|e| ApiError::bad_request(ErrorCode::InvalidArgument, e))
}

fn record_service(st: &ApiState) -> Result<Arc<crate::records::RecordService>, ApiError> {
    st.records.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoVault,
            "this node runs no record vault (no institution_key in its config)",
        )
    })
}

/// Header a node sets on a request it forwards to the record's holder. A forwarded request is
/// never forwarded again, so a misconfigured consortium cannot loop.
pub const FORWARDED_HEADER: &str = "x-medledger-forwarded-by";

/// Time limit on a forwarded request.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// True if this node's vault serves `institution`.
fn serves(st: &ApiState, institution: &str) -> bool {
    st.records.as_ref().is_some_and(|s| s.institution == institution)
}

/// Relays a JSON request to `holder`'s node (its genesis API address) and its answer back.
async fn forward(
    st: &ApiState,
    headers: &HeaderMap,
    holder: &str,
    path: &str,
    body: Value,
) -> Result<Response, ApiError> {
    let (status, body) = forward_raw(st, headers, holder, path, body).await?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Sends a JSON request to `holder`'s node; returns its status and body.
async fn forward_raw(
    st: &ApiState,
    headers: &HeaderMap,
    holder: &str,
    path: &str,
    body: Value,
) -> Result<(StatusCode, String), ApiError> {
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::WrongHolder,
            format!("the record is held by `{holder}`, and this request was already forwarded once"),
        ));
    }
    let addr =
        st.chain.genesis.institutions.iter().find(|i| i.id == holder).map(|i| i.api_address.clone()).ok_or_else(
            || {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::HolderUnreachable,
                    format!("institution `{holder}` runs no node known to the genesis file"),
                )
            },
        )?;
    let me = st.records.as_ref().map_or_else(|| st.chain.me.short(), |s| s.institution.clone());
    let scheme = if st.forward_tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{path}");
    let holder = holder.to_string();
    let tls = st.forward_tls.clone();
    tokio::task::spawn_blocking(move || {
        // One pooled agent per process: forwarded requests reuse connections to the holders.
        static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
        let agent = AGENT.get_or_init(|| {
            let b = ureq::AgentBuilder::new().timeout(FORWARD_TIMEOUT).max_idle_connections_per_host(64);
            match tls {
                Some(cfg) => b.tls_config(cfg).build(),
                None => b.build(),
            }
        });
        let (status, body) = match agent.post(&url).set(FORWARDED_HEADER, &me).send_json(body) {
            Ok(r) => (r.status(), r.into_string()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string()),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::HolderUnreachable,
                    format!("cannot reach `{holder}` at {url}: {e}"),
                ));
            }
        };
        let body = body.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::HolderUnreachable,
                format!("bad answer from `{holder}`: {e}"),
            )
        })?;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        Ok((status, body))
    })
    .await
    .map_err(ApiError::internal)?
}

fn snapshot(st: &ApiState) -> Result<impl medledger_state::store::StateRead, ApiError> {
    st.chain.store.snapshot().map_err(ApiError::internal)
}

/// The holder of a record version, if the record exists.
fn holder_of(st: &ApiState, id: &Hash, version: u32) -> Result<Option<String>, ApiError> {
    Ok(medledger_state::records::version(&snapshot(st)?, id, version).map(|v| v.holder))
}

/// Reads open to anyone: node status, liveness, metrics, this document, and drug verification
/// (a patient scanning a box holds no key).
pub const PUBLIC_READS: [&str; 5] =
    ["/v1/status", "/openapi.json", "/metrics", "/v1/drugs/verify", "/v1/proofs/drugs/verify"];

/// Declares the signed-request scheme and requires it on every `GET` but [`PUBLIC_READS`]
/// (requests with a body are signed in the body).
struct SignedRequests;

impl utoipa::Modify for SignedRequests {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "medledger",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`MedLedger key=<public key hex>, ts=<ms>, nonce=<u64>, sig=<hex>`: the caller's ed25519 signature \
                 (namespace `medledger/api-request/v1`) over the chain id, method, path with query, ts and nonce",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if PUBLIC_READS.contains(&path.as_str()) {
                continue;
            }
            if let Some(get) = item.get.as_mut() {
                get.security = Some(vec![SecurityRequirement::new("medledger", Vec::<String>::new())]);
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&SignedRequests),
    info(title = "MedLedger node API", description = "Submit signed transactions, read blocks, receipts, identities and inclusion proofs; share medical records under patient consent; audit access."),
    tags(
        (name = "ledger", description = "Transactions, blocks, inclusion proofs, node status"),
        (name = "identity", description = "Credentials, patients, attestations, permissions"),
        (name = "consent", description = "Patient consents and access requests"),
        (name = "records", description = "Encrypted medical records: upload, key wrapping, consent-checked reads"),
        (name = "audit", description = "Access events for patients, institutions and regulators"),
        (name = "drugs", description = "GS1-serialised medicine packs: public verification, custody trails, EPCIS 2.0 capture and query, alerts, recalls"),
        (name = "care", description = "Telemedicine referrals (FHIR ServiceRequest and Task): per patient, institution inbox and outbox, doctor; regulator statistics. Remote monitoring: devices, settings and alarms"),
        (name = "proofs", description = "State answers proven against a finalized state root (format `medledger-state-proof/1`), for clients that trust no single node"),
    ),
    paths(ledger::submit_tx, ledger::submit_batch, ledger::get_tx, ledger::get_proof, ledger::get_block,
          ledger::get_block_by_hash, ledger::list_blocks, ledger::get_status, ledger::block_events, ledger::metrics,
          identity::get_identity, identity::get_patient, identity::get_staff, identity::get_attestation, identity::get_permissions, identity::get_regulators,
          records::upload_record, records::add_record_key, records::read_record, records::get_record,
          records::patient_records, consent::patient_consents, consent::patient_requests, audit::audit, audit::access_event,
          drugs::verify, drugs::trail, drugs::events, drugs::capture, drugs::capture_job, drugs::alerts, drugs::recalls, drugs::products, drugs::product, drugs::inventory,
          care::referral, care::patient_referrals, care::institution_referrals, care::doctor_referrals, care::stats,
          care::patient_monitoring, care::patient_alarms, care::doctor_alarms, care::doctor_patients, care::patient_readings, care::ingest_reading, care::alarm_stream,
          proofs::validators, proofs::identity, proofs::patient, proofs::consents, proofs::regulators, proofs::record, proofs::access_event, proofs::drug_verify, proofs::referral),
    components(schemas(identity::RegulatorsView, identity::StaffView, ErrorBody, ErrorDetail, SubmitRequest, SubmitResponse, BatchRequest, BatchResponse, BatchItem,
                       TxStatus, BlockView, ProofBundle, IdentityView, StatusView, ValidatorView,
                       crate::records::UploadRequest, crate::records::RecipientKey, crate::records::SignedRead,
                       crate::records::ReadResponse, crate::records::AddKeyRequest, AuditRequest,
                       crate::audit::AuditResult, crate::audit::AuditEntry, crate::audit::AuditAnswer,
                       crate::audit::FhirBundle, audit::AuditFormat, ledger::HexTx, identity::PermissionsView,
                       identity::PermissionRow, consent::ConsentsView, consent::ConsentView, consent::RequestsView,
                       records::RecordView, records::PatientRecordsView, ErrorCode,
                       medledger_types::StateProof, medledger_types::ProvenEntry,
                       drugs::VerifyView, drugs::ScannedId, drugs::TrailView, drugs::AlertsView, drugs::RecallsView, drugs::ProductView,
                       drugs::ProductsView, drugs::InventoryView, drugs::CaptureRequest, drugs::CaptureJob, drugs::EpcisDocument, medledger_types::drugs::epcis::EpcisError,
                       care::ReferralView, care::ReferralsView, care::Mailbox, care::PairStatsView, care::ReferralStatsView,
                       care::MonitoringView, care::AlarmsView, care::MonitoredPatientsView, crate::care::SignedReading, crate::care::ReadingReceipt, crate::care::LiveReadings, crate::care::ReadingValue))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

/// Every namespace's routes, the OpenAPI document and the fallback. Each route has a body
/// limit: its own where the namespace sets one (transactions, batches, uploads, signed
/// requests; see [`medledger_types::limits`]), else [`MAX_BODY_BYTES`].
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(ledger::routes())
        .merge(identity::routes())
        .merge(consent::routes())
        .merge(records::routes())
        .merge(audit::routes())
        .merge(drugs::routes())
        .merge(care::routes())
        .merge(proofs::routes())
        .merge(explorer::routes())
        .route("/openapi.json", get(openapi))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(drain_unread_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refuse_over_corrupt_state))
        .with_state(state)
}

/// Nothing computed over damaged state leaves the node: once its store found a stored value
/// the state machine cannot have written, or a read failed (this request's reads or any
/// earlier ones), every answer is this error. (The validator stops at its next finalized
/// block.)
async fn refuse_over_corrupt_state(
    State(st): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let corrupt = |fault: &str| {
        ApiError::internal(format!(
            "this node's stored state is corrupt ({fault}): it answers nothing more and stops validating; its data \
             directory must be restored"
        ))
        .into_response()
    };
    if let Some(fault) = st.chain.store.fault() {
        return corrupt(fault);
    }
    let answer = next.run(req).await;
    match st.chain.store.fault() {
        Some(fault) => corrupt(fault),
        None => answer,
    }
}

/// Most bytes of a request body left unread by its answer that are read and dropped so that
/// the connection stays open.
pub const DRAIN_MAX_BYTES: usize = 1 << 20;
/// Longest the draining may take.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A request refused before its body is read (a wrong media type, a body above the route's
/// limit, a bad signature) would leave the rest of the body on the connection; the HTTP server
/// then closes it, and a client sending its next request on it sees the connection reset. So
/// the body is read through a shared handle, and what the answer left unread is read and
/// dropped before the answer goes out (up to [`DRAIN_MAX_BYTES`] and [`DRAIN_TIMEOUT`]; beyond
/// that the answer says `Connection: close`).
async fn drain_unread_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::body::HttpBody as _;
    use futures::StreamExt as _;
    // Most requests (every GET) carry no body: nothing can be left unread.
    if req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let shared = Arc::new(tokio::sync::Mutex::new(body.into_data_stream()));
    let reader = futures::stream::unfold(shared.clone(), |s| async move {
        let next = s.lock().await.next().await;
        next.map(|chunk| (chunk, s))
    });
    let mut response = next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from_stream(reader))).await;
    let mut rest = shared.lock().await;
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut read = 0usize;
        while let Some(chunk) = rest.next().await {
            match chunk {
                Ok(b) if read + b.len() <= DRAIN_MAX_BYTES => read += b.len(),
                _ => return false,
            }
        }
        true
    })
    .await;
    if drained != Ok(true) {
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    response
}
