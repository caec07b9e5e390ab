//! The REST API every node serves (axum), documented by an OpenAPI document (utoipa).
//!
//! Errors are JSON `{"error": {"code": "...", "message": "..."}}` with a stable `code`.

use crate::chain::{Chain, SubmitError};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::Stream;
use medledger_state::identity;
use medledger_types::{Block, BlockHeader, Canonical, Hash, PublicKey, Receipt, Transaction, Tx};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa::{OpenApi, ToSchema};

/// Most transactions accepted in one batch request.
pub const MAX_BATCH: usize = 5_000;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Most blocks returned by one list request.
pub const MAX_BLOCK_LIST: u64 = 100;

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
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    /// The stable code and the human message, as `code: message`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.code, self.message)
    }
    fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

/// The JSON error body.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `bad_signature`, `replay`, `unknown_signer`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

fn submit_status(e: &SubmitError) -> StatusCode {
    match e.code() {
        "mempool_full" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "duplicate" => StatusCode::CONFLICT,
        "oversize" => StatusCode::PAYLOAD_TOO_LARGE,
        "unknown_signer" | "not_permitted" | "credential_expired" | "credential_revoked"
        | "credential_not_yet_valid" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        ApiError::new(submit_status(&e), e.code(), e.to_string())
    }
}

fn parse_hash(s: &str, what: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(s).map_err(|e| ApiError::bad_request("invalid_argument", format!("{what}: {e}")))
}

fn parse_key(s: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(s).map_err(|e| ApiError::bad_request("invalid_argument", e))
}

// ---- request and response shapes ----

/// A signed transaction, hex-encoded canonical bytes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubmitRequest {
    pub tx: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub tx_id: String,
    pub status: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Up to 5000 hex-encoded signed transactions.
    pub txs: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub results: Vec<BatchItem>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TxStatus {
    pub tx_id: String,
    /// `pending` or `committed`.
    pub status: String,
    pub height: Option<u64>,
    pub index: Option<u32>,
    #[schema(value_type = Object)]
    pub receipt: Option<Value>,
    #[schema(value_type = Object)]
    pub tx: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    pub hash: String,
    #[schema(value_type = Object)]
    pub header: Value,
    pub tx_ids: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub receipts: Vec<Value>,
    /// Hex of the finality certificate (absent for genesis).
    pub certificate: Option<String>,
}

/// Everything needed to check a transaction's inclusion offline.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct ProofBundle {
    pub chain_id: String,
    pub tx_id: String,
    /// Canonical signed transaction bytes, hex.
    pub tx: String,
    pub height: u64,
    pub block_hash: String,
    #[schema(value_type = Object)]
    pub header: BlockHeader,
    #[schema(value_type = Object)]
    pub proof: medledger_types::merkle::InclusionProof,
    /// Headers of the descendants from `height + 1` up to the certified block, if this block
    /// was finalized through a descendant's certificate (usually empty).
    #[schema(value_type = Vec<Object>)]
    pub descendants: Vec<BlockHeader>,
    /// Height of the block the certificate finalizes (`height` itself, usually).
    pub certified_height: u64,
    /// Hex of the consensus finalization certificate for `certified_height`.
    pub certificate: String,
}

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

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    pub chain_id: String,
    pub node: String,
    pub height: u64,
    pub hash: String,
    pub state_root: String,
    pub mempool: usize,
    pub peers: Vec<String>,
    pub validators: Vec<ValidatorView>,
    pub max_faults: usize,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ValidatorView {
    pub institution: String,
    pub key: String,
    /// The institution admin key: its vault's recipient key for records it holds.
    pub admin_key: String,
    pub p2p_address: String,
    pub api_address: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Highest height to return (default: tip).
    pub before: Option<u64>,
    /// How many blocks (default 20, at most 100).
    pub limit: Option<u64>,
}

// ---- handlers ----

fn decode_hex_tx(s: &str) -> Result<Vec<u8>, SubmitError> {
    hex::decode(s.trim()).map_err(|e| {
        SubmitError::Decode(medledger_types::tx::TxDecodeError::Malformed(medledger_types::DecodeError::Invalid(
            "hex",
            e.to_string(),
        )))
    })
}

fn gossip(st: &ApiState, txs: Vec<Tx>) {
    if let (Some(g), false) = (&st.gossip, txs.is_empty()) {
        // Bounded: if the gossip queue is full the tx stays local and is still proposed by us.
        let _ = g.try_send(txs);
    }
}

#[utoipa::path(post, path = "/v1/txs", request_body = SubmitRequest,
    responses((status = 202, body = SubmitResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn submit_tx(State(st): State<ApiState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let is_binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    let raw = if is_binary {
        body.to_vec()
    } else {
        let req: SubmitRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed", format!("request body: {e}")))?;
        decode_hex_tx(&req.tx)?
    };
    let chain = st.chain.clone();
    let r = tokio::task::spawn_blocking(move || {
        let tx = Tx::decode(&raw).map_err(SubmitError::from)?;
        chain.submit(vec![tx.clone()]).remove(0).map(|id| (id, tx))
    })
    .await
    .map_err(ApiError::internal)??;
    gossip(&st, vec![r.1]);
    Ok((StatusCode::ACCEPTED, Json(SubmitResponse { tx_id: r.0.to_hex(), status: "pending".into() })))
}

#[utoipa::path(post, path = "/v1/txs/batch", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody)))]
async fn submit_batch(State(st): State<ApiState>, Json(req): Json<BatchRequest>) -> Result<Json<BatchResponse>, ApiError> {
    if req.txs.len() > MAX_BATCH {
        return Err(ApiError::bad_request("oversize", format!("batch of {} above the limit of {MAX_BATCH}", req.txs.len())));
    }
    let chain = st.chain.clone();
    let (results, accepted) = tokio::task::spawn_blocking(move || {
        let mut slots = Vec::with_capacity(req.txs.len());
        let mut txs = Vec::new();
        for s in &req.txs {
            match decode_hex_tx(s).and_then(|raw| Tx::decode(&raw).map_err(SubmitError::from)) {
                Ok(t) => {
                    txs.push(t);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(e)),
            }
        }
        let mut res = chain.submit(txs.clone()).into_iter();
        let mut accepted_txs = Vec::new();
        let mut txs_iter = txs.into_iter();
        let results: Vec<BatchItem> = slots
            .into_iter()
            .map(|s| {
                let r = match s {
                    Some(e) => Err(e),
                    None => {
                        let t = txs_iter.next().expect("one tx per slot");
                        let r = res.next().expect("one result per tx");
                        if r.is_ok() {
                            accepted_txs.push(t);
                        }
                        r
                    }
                };
                match r {
                    Ok(id) => BatchItem { tx_id: Some(id.to_hex()), error: None },
                    Err(e) => BatchItem { tx_id: None, error: Some(ErrorDetail { code: e.code().into(), message: e.to_string() }) },
                }
            })
            .collect();
        (results, accepted_txs)
    })
    .await
    .map_err(ApiError::internal)?;
    let n = accepted.len();
    gossip(&st, accepted);
    Ok(Json(BatchResponse { accepted: n, results }))
}

fn receipt_json(r: &Receipt) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn tx_json(t: &Transaction) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

#[utoipa::path(get, path = "/v1/txs/{id}", params(("id" = String, Path, description = "transaction id (hex)")),
    responses((status = 200, body = TxStatus), (status = 404, body = ErrorBody)))]
async fn get_tx(State(st): State<ApiState>, Path(id): Path<String>) -> Result<Json<TxStatus>, ApiError> {
    let id = parse_hash(&id, "transaction id")?;
    if let Some((height, index)) = st.chain.store.tx_location(&id).map_err(ApiError::internal)? {
        let block = st.chain.store.block(height).map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal("indexed block missing"))?;
        let receipt = st.chain.store.receipt(height, index).map_err(ApiError::internal)?;
        let tx = block.txs.get(index as usize).map(|t| tx_json(t.body()));
        return Ok(Json(TxStatus {
            tx_id: id.to_hex(),
            status: "committed".into(),
            height: Some(height),
            index: Some(index),
            receipt: receipt.as_ref().map(receipt_json),
            tx,
        }));
    }
    if st.chain.is_pending(&id) {
        return Ok(Json(TxStatus { tx_id: id.to_hex(), status: "pending".into(), height: None, index: None, receipt: None, tx: None }));
    }
    Err(ApiError::not_found(format!("transaction {id} is neither committed nor pending here")))
}

/// Builds the inclusion proof bundle for a committed transaction.
pub fn proof_bundle(chain: &Chain, id: &Hash) -> Result<ProofBundle, ApiError> {
    let (height, index) = chain
        .store
        .tx_location(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("transaction {id} is not committed")))?;
    let block = chain.store.block(height).map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal("block missing"))?;
    let (certified_height, cert) = chain
        .store
        .certified_at_or_above(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_yet_certified", "no finalization certificate covers this block yet; retry shortly"))?;
    let mut descendants = Vec::new();
    for h in height + 1..=certified_height {
        let b = chain.store.block(h).map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal("block missing"))?;
        descendants.push(b.header);
    }
    let proof = block.prove(index as usize).ok_or_else(|| ApiError::internal("index out of range"))?;
    Ok(ProofBundle {
        chain_id: chain.genesis.chain_id.clone(),
        tx_id: id.to_hex(),
        tx: hex::encode(block.txs[index as usize].raw()),
        height,
        block_hash: block.digest().to_hex(),
        header: block.header.clone(),
        proof,
        descendants,
        certified_height,
        certificate: hex::encode(cert),
    })
}

#[utoipa::path(get, path = "/v1/txs/{id}/proof", params(("id" = String, Path, description = "transaction id (hex)")),
    responses((status = 200, body = ProofBundle), (status = 404, body = ErrorBody)))]
async fn get_proof(State(st): State<ApiState>, Path(id): Path<String>) -> Result<Json<ProofBundle>, ApiError> {
    let id = parse_hash(&id, "transaction id")?;
    Ok(Json(proof_bundle(&st.chain, &id)?))
}

fn block_view(chain: &Chain, block: &Block) -> Result<BlockView, ApiError> {
    let receipts = chain.store.receipts(block.height()).map_err(ApiError::internal)?;
    let cert = chain.store.certificate(block.height()).map_err(ApiError::internal)?;
    Ok(BlockView {
        hash: block.digest().to_hex(),
        header: serde_json::to_value(&block.header).unwrap_or(Value::Null),
        tx_ids: block.txs.iter().map(|t| t.id().to_hex()).collect(),
        receipts: receipts.iter().map(receipt_json).collect(),
        certificate: cert.map(hex::encode),
    })
}

#[utoipa::path(get, path = "/v1/blocks/{height}", params(("height" = u64, Path, description = "block height")),
    responses((status = 200, body = BlockView), (status = 404, body = ErrorBody)))]
async fn get_block(State(st): State<ApiState>, Path(height): Path<String>) -> Result<Json<BlockView>, ApiError> {
    let height: u64 = height
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_argument", format!("height `{height}` is not a number")))?;
    let block = st.chain.store.block(height).map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    Ok(Json(block_view(&st.chain, &block)?))
}

#[utoipa::path(get, path = "/v1/blocks/by-hash/{hash}", params(("hash" = String, Path, description = "block hash (hex)")),
    responses((status = 200, body = BlockView), (status = 404, body = ErrorBody)))]
async fn get_block_by_hash(State(st): State<ApiState>, Path(hash): Path<String>) -> Result<Json<BlockView>, ApiError> {
    let hash = parse_hash(&hash, "block hash")?;
    let height = st.chain.store.height_of(&hash).map_err(ApiError::internal)?.ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?;
    let block = st.chain.store.block(height).map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal("indexed block missing"))?;
    Ok(Json(block_view(&st.chain, &block)?))
}

#[utoipa::path(get, path = "/v1/blocks", params(ListParams), responses((status = 200, body = Vec<BlockView>)))]
async fn list_blocks(State(st): State<ApiState>, Query(p): Query<ListParams>) -> Result<Json<Vec<BlockView>>, ApiError> {
    let tip = st.chain.tip().height;
    let top = p.before.unwrap_or(tip).min(tip);
    let limit = p.limit.unwrap_or(20).clamp(1, MAX_BLOCK_LIST);
    let mut out = Vec::new();
    let mut h = top as i128;
    while h >= 0 && (out.len() as u64) < limit {
        if let Some(b) = st.chain.store.block(h as u64).map_err(ApiError::internal)? {
            out.push(block_view(&st.chain, &b)?);
        }
        h -= 1;
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/identities/{key}", params(("key" = String, Path, description = "ed25519 public key (hex)")),
    responses((status = 200, body = IdentityView), (status = 400, body = ErrorBody)))]
async fn get_identity(State(st): State<ApiState>, Path(key): Path<String>) -> Result<Json<IdentityView>, ApiError> {
    let key = parse_key(&key)?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let tip = st.chain.tip();
    let cred = identity::credential(&snap, &key);
    let principal = identity::principal(&snap, &key, crate::chain::now_ms(), tip.height + 1);
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

#[utoipa::path(get, path = "/v1/patients/{pseudonym}", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = IdentityView), (status = 404, body = ErrorBody)))]
async fn get_patient(State(st): State<ApiState>, Path(p): Path<String>) -> Result<Json<IdentityView>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let key = identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    drop(snap);
    get_identity(State(st), Path(key.to_hex())).await
}

#[utoipa::path(get, path = "/v1/attestations/{digest}", params(("digest" = String, Path, description = "attested digest (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_attestation(State(st): State<ApiState>, Path(d): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = parse_hash(&d, "digest")?;
    let snap = st.chain.store.snapshot().map_err(ApiError::internal)?;
    let a = identity::attestation(&snap, &d).ok_or_else(|| ApiError::not_found(format!("digest {d} is not attested")))?;
    Ok(Json(serde_json::to_value(a).unwrap_or(Value::Null)))
}

#[utoipa::path(get, path = "/v1/permissions", responses((status = 200, body = Object)))]
async fn get_permissions() -> Json<Value> {
    let rows: Vec<Value> = medledger_state::permissions::table()
        .into_iter()
        .map(|(p, cells)| {
            let ops: serde_json::Map<String, Value> = cells.into_iter().map(|(k, ok)| (k.name().to_string(), Value::Bool(ok))).collect();
            json!({ "principal": p.name(), "operations": ops })
        })
        .collect();
    Json(json!({ "table": rows }))
}

#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusView)))]
async fn get_status(State(st): State<ApiState>) -> Json<StatusView> {
    let tip = st.chain.tip();
    let g = &st.chain.genesis;
    Json(StatusView {
        chain_id: g.chain_id.clone(),
        node: st.chain.me.to_hex(),
        height: tip.height,
        hash: tip.hash.to_hex(),
        state_root: tip.state_root.to_hex(),
        mempool: st.chain.mempool_len(),
        peers: st.info.peers(),
        validators: g
            .institutions
            .iter()
            .map(|i| ValidatorView {
                institution: i.id.clone(),
                key: i.validator_key.to_hex(),
                admin_key: i.admin_key.to_hex(),
                p2p_address: i.p2p_address.clone(),
                api_address: i.api_address.clone(),
            })
            .collect(),
        max_faults: g.max_faults(),
    })
}

#[utoipa::path(get, path = "/v1/events/blocks", responses((status = 200, description = "Server-Sent Events: one `block` event per finalized block")))]
async fn block_events(State(st): State<ApiState>) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let rx = st.chain.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(f) => {
                    let data = json!({
                        "height": f.block.height(),
                        "hash": f.block.digest().to_hex(),
                        "timestamp_ms": f.block.header.timestamp_ms,
                        "tx_count": f.block.txs.len(),
                        "state_root": f.block.header.state_root.to_hex(),
                        "rejected": f.receipts.iter().filter(|r| !r.is_applied()).count(),
                    });
                    return Some((Ok(SseEvent::default().event("block").data(data.to_string())), rx));
                }
                // A slow subscriber skips what it missed rather than blocking the node.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition")))]
async fn metrics(State(st): State<ApiState>) -> impl IntoResponse {
    let m = &st.chain.metrics;
    let tip = st.chain.tip();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!("# HELP medledger_{name} {help}\n# TYPE medledger_{name} {kind}\nmedledger_{name} {v}\n"));
    };
    put("height", "gauge", "Height of the last committed block.", tip.height);
    put("mempool_transactions", "gauge", "Transactions waiting in the mempool.", st.chain.mempool_len() as u64);
    put("peers", "gauge", "Connected validator peers.", st.info.peers().len() as u64);
    put("submitted_transactions_total", "counter", "Transactions submitted to this node.", m.submitted.load(Ordering::Relaxed));
    put("rejected_transactions_total", "counter", "Submissions refused before the mempool.", m.rejected.load(Ordering::Relaxed));
    put("committed_transactions_total", "counter", "Transactions in finalized blocks.", m.committed_txs.load(Ordering::Relaxed));
    put("committed_blocks_total", "counter", "Finalized blocks committed.", m.committed_blocks.load(Ordering::Relaxed));
    put("verify_signature_cache_hits_total", "counter", "Block transactions whose signature was already verified at admission.", m.verify_sig_cache_hits.load(Ordering::Relaxed));
    put("verify_signature_checked_total", "counter", "Block transactions verified during block verification.", m.verify_sig_checked.load(Ordering::Relaxed));
    out.push_str(&st.info.prometheus());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn record_service(st: &ApiState) -> Result<Arc<crate::records::RecordService>, ApiError> {
    st.records.clone().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_vault", "this node runs no record vault (no institution_key in its config)")
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
async fn forward(st: &ApiState, headers: &HeaderMap, holder: &str, path: &str, body: Value) -> Result<Response, ApiError> {
    let (status, body) = forward_raw(st, headers, holder, path, body).await?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Sends a JSON request to `holder`'s node; returns its status and body.
async fn forward_raw(st: &ApiState, headers: &HeaderMap, holder: &str, path: &str, body: Value) -> Result<(StatusCode, String), ApiError> {
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_holder",
            format!("the record is held by `{holder}`, and this request was already forwarded once"),
        ));
    }
    let addr = st
        .chain
        .genesis
        .institutions
        .iter()
        .find(|i| i.id == holder)
        .map(|i| i.api_address.clone())
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "holder_unreachable", format!("institution `{holder}` runs no node known to the genesis file")))?;
    let me = st.records.as_ref().map_or_else(|| st.chain.me.short(), |s| s.institution.clone());
    let url = format!("http://{addr}{path}");
    let holder = holder.to_string();
    tokio::task::spawn_blocking(move || {
        // One pooled agent per process: forwarded requests reuse connections to the holders.
        static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
        let agent = AGENT.get_or_init(|| ureq::AgentBuilder::new().timeout(FORWARD_TIMEOUT).max_idle_connections_per_host(64).build());
        let (status, body) = match agent.post(&url).set(FORWARDED_HEADER, &me).send_json(body) {
            Ok(r) => (r.status(), r.into_string()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string()),
            Err(e) => {
                return Err(ApiError::new(StatusCode::BAD_GATEWAY, "holder_unreachable", format!("cannot reach `{holder}` at {url}: {e}")));
            }
        };
        let body = body.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "holder_unreachable", format!("bad answer from `{holder}`: {e}")))?;
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

#[utoipa::path(post, path = "/v1/records", request_body = crate::records::UploadRequest,
    responses((status = 202, body = SubmitResponse), (status = 400, body = ErrorBody), (status = 421, body = ErrorBody)))]
async fn upload_record(State(st): State<ApiState>, headers: HeaderMap, Json(req): Json<crate::records::UploadRequest>) -> Result<Response, ApiError> {
    // The author's institution holds the record: forward there if that is not us.
    let author_inst = decode_hex_tx(&req.anchor_tx)
        .ok()
        .and_then(|raw| Tx::decode(&raw).ok())
        .and_then(|tx| Some(identity::credential(&snapshot(&st).ok()?, &tx.body().signer)?.institution));
    if let Some(h) = author_inst.filter(|h| !serves(&st, h)) {
        let body = serde_json::to_value(&req).map_err(ApiError::internal)?;
        return forward(&st, &headers, &h, "/v1/records", body).await;
    }
    let svc = record_service(&st)?;
    let tx = tokio::task::spawn_blocking(move || svc.upload(&req)).await.map_err(ApiError::internal)??;
    let id = tx.id();
    gossip(&st, vec![tx]);
    Ok((StatusCode::ACCEPTED, Json(SubmitResponse { tx_id: id.to_hex(), status: "pending".into() })).into_response())
}

#[utoipa::path(post, path = "/v1/records/{id}/{version}/keys", request_body = crate::records::AddKeyRequest,
    params(("id" = String, Path, description = "record id (hex)"), ("version" = u32, Path, description = "version")),
    responses((status = 204), (status = 403, body = ErrorBody)))]
async fn add_record_key(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, u32)>,
    Json(req): Json<crate::records::AddKeyRequest>,
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

#[utoipa::path(post, path = "/v1/records/read", request_body = crate::records::SignedRead,
    responses((status = 200, body = crate::records::ReadResponse), (status = 403, body = ErrorBody), (status = 410, body = ErrorBody),
              (status = 502, body = ErrorBody)))]
async fn read_record(State(st): State<ApiState>, headers: HeaderMap, Json(req): Json<crate::records::SignedRead>) -> Result<Response, ApiError> {
    // Any node takes a read; the holder alone serves it (query forwarding).
    let target = hex::decode(req.request.trim()).ok().and_then(|b| medledger_types::read::ReadRequest::from_bytes(&b).ok());
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
                        resp.wrapped = tokio::task::spawn_blocking(move || svc.rewrap_for_staff(&r, &w)).await.map_err(ApiError::internal)??;
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

#[utoipa::path(get, path = "/v1/records/{id}", params(("id" = String, Path, description = "record id (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_record(State(st): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_hash(&id, "record id")?;
    let snap = snapshot(&st)?;
    let head = medledger_state::records::head(&snap, &id).ok_or_else(|| ApiError::not_found(format!("no record {id}")))?;
    // Access events are audit metadata: see POST /v1/audit.
    Ok(Json(json!({ "record": head, "versions": medledger_state::records::history(&snap, &id) })))
}

#[utoipa::path(get, path = "/v1/patients/{pseudonym}/records", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn patient_records(State(st): State<ApiState>, Path(p): Path<String>) -> Result<Json<Value>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    let records: Vec<Value> = medledger_state::records::record_ids_of(&snap, &p)
        .iter()
        .filter_map(|id| {
            let head = medledger_state::records::head(&snap, id)?;
            Some(json!({ "record": head, "versions": medledger_state::records::history(&snap, id) }))
        })
        .collect();
    Ok(Json(json!({ "patient": p.to_hex(), "records": records })))
}

#[utoipa::path(get, path = "/v1/patients/{pseudonym}/consents", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn patient_consents(State(st): State<ApiState>, Path(p): Path<String>) -> Result<Json<Value>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
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

#[utoipa::path(get, path = "/v1/patients/{pseudonym}/requests", params(("pseudonym" = String, Path, description = "patient pseudonym (hex)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn patient_requests(State(st): State<ApiState>, Path(p): Path<String>) -> Result<Json<Value>, ApiError> {
    let p = parse_hash(&p, "pseudonym")?;
    let snap = snapshot(&st)?;
    identity::patient_key(&snap, &p).ok_or_else(|| ApiError::not_found("no patient with this pseudonym"))?;
    let pending = medledger_state::consent::pending_requests(&snap, &p);
    Ok(Json(json!({ "patient": p.to_hex(), "pending": pending })))
}

/// A signed audit query.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditRequest {
    /// Canonical `AuditQuery` bytes (hex).
    pub query: String,
    /// The requester's ed25519 signature over them (hex).
    pub signature: String,
    /// `json` (default) or `fhir` for a Bundle of FHIR AuditEvent resources.
    #[serde(default)]
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/v1/audit", request_body = AuditRequest,
    responses((status = 200, body = crate::audit::AuditResult), (status = 403, body = ErrorBody)))]
async fn audit(State(st): State<ApiState>, Json(req): Json<AuditRequest>) -> Result<Json<Value>, ApiError> {
    use medledger_types::read::{AuditQuery, MAX_READ_SKEW_MS};
    let raw = hex::decode(req.query.trim()).map_err(|e| ApiError::bad_request("malformed", format!("query is not hex: {e}")))?;
    let mut q = AuditQuery::from_bytes(&raw).map_err(|e| ApiError::bad_request("malformed", format!("audit query: {e}")))?;
    let sig = hex::decode(req.signature.trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| ApiError::bad_request("malformed", "signature must be 64 bytes of hex"))?;
    if !q.verify(&medledger_types::Signature(sig)) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "bad_signature", "audit query signature does not verify for its requester"));
    }
    if q.chain_id != st.chain.genesis.chain_id {
        return Err(ApiError::bad_request("wrong_chain", format!("query is for chain `{}`", q.chain_id)));
    }
    let now = st.chain.now_ms();
    if now.abs_diff(q.issued_ms) > MAX_READ_SKEW_MS {
        return Err(ApiError::bad_request("stale", "query timestamp is too far from the node's clock"));
    }
    let fhir = match req.format.as_deref().unwrap_or("json") {
        "json" => false,
        "fhir" => true,
        other => return Err(ApiError::bad_request("invalid_argument", format!("format `{other}`: expected json or fhir"))),
    };
    let chain = st.chain.clone();
    tokio::task::spawn_blocking(move || {
        let snap = chain.store.snapshot().map_err(ApiError::internal)?;
        crate::audit::authorize(&snap, &mut q, now, chain.tip().height + 1)?;
        let r = crate::audit::run(&snap, &q);
        Ok(Json(if fhir { crate::audit::fhir_bundle(&r.events, now) } else { serde_json::to_value(&r).map_err(ApiError::internal)? }))
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(OpenApi)]
#[openapi(
    info(title = "MedLedger node API", description = "Submit signed transactions, read blocks, receipts, identities and inclusion proofs."),
    paths(submit_tx, submit_batch, get_tx, get_proof, get_block, get_block_by_hash, list_blocks, get_identity,
          get_patient, get_attestation, get_permissions, get_status, block_events, metrics,
          upload_record, add_record_key, read_record, get_record, patient_records, patient_consents, patient_requests, audit),
    components(schemas(ErrorBody, ErrorDetail, SubmitRequest, SubmitResponse, BatchRequest, BatchResponse, BatchItem,
                       TxStatus, BlockView, ProofBundle, IdentityView, StatusView, ValidatorView,
                       crate::records::UploadRequest, crate::records::RecipientKey, crate::records::SignedRead,
                       crate::records::ReadResponse, crate::records::AddKeyRequest, AuditRequest,
                       crate::audit::AuditResult, crate::audit::AuditEntry))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/txs", post(submit_tx))
        .route("/v1/txs/batch", post(submit_batch))
        .route("/v1/txs/{id}", get(get_tx))
        .route("/v1/txs/{id}/proof", get(get_proof))
        .route("/v1/blocks", get(list_blocks))
        .route("/v1/blocks/{height}", get(get_block))
        .route("/v1/blocks/by-hash/{hash}", get(get_block_by_hash))
        .route("/v1/identities/{key}", get(get_identity))
        .route("/v1/patients/{pseudonym}", get(get_patient))
        .route("/v1/patients/{pseudonym}/records", get(patient_records))
        .route("/v1/patients/{pseudonym}/consents", get(patient_consents))
        .route("/v1/patients/{pseudonym}/requests", get(patient_requests))
        .route("/v1/audit", post(audit))
        .route("/v1/attestations/{digest}", get(get_attestation))
        .route("/v1/permissions", get(get_permissions))
        .route("/v1/records", post(upload_record))
        .route("/v1/records/read", post(read_record))
        .route("/v1/records/{id}", get(get_record))
        .route("/v1/records/{id}/{version}/keys", post(add_record_key))
        .route("/v1/status", get(get_status))
        .route("/v1/events/blocks", get(block_events))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
