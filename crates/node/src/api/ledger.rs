//! Ledger namespace: transaction submission (single and batch), transactions, receipts and
//! inclusion proofs, blocks, node status, the block feed (SSE) and metrics.

use super::*;

// ---- request and response shapes ----
/// A signed transaction, hex-encoded canonical bytes.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubmitRequest {
    #[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 16384)]
    pub tx: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    pub tx_id: Hash,
    /// Always `pending`: the transaction is in the mempool, not yet committed.
    pub status: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Up to 5000 hex-encoded signed transactions.
    #[schema(max_items = 5000, inline)]
    pub txs: Vec<HexTx>,
}

/// A hex-encoded signed transaction.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(pattern = "^([0-9a-fA-F]{2})+$", max_length = 16384)]
pub struct HexTx(pub String);

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
    pub receipt: Option<Receipt>,
    pub tx: Option<Transaction>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BlockView {
    pub hash: String,
    pub header: BlockHeader,
    pub tx_ids: Vec<String>,
    /// Receipts of the transactions the caller may see.
    pub receipts: Vec<Receipt>,
    /// Receipts withheld from this caller (transactions about others).
    pub hidden_receipts: usize,
    /// Hex of the finality certificate (absent for genesis).
    pub certificate: Option<String>,
}

pub use medledger_types::inclusion::ProofBundle;

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
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Highest height to return (default: tip).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub before: Option<u64>,
    /// How many blocks (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

// ---- handlers ----
pub(crate) fn decode_hex_tx(s: &str) -> Result<Vec<u8>, SubmitError> {
    hex::decode(s.trim()).map_err(|e| {
        SubmitError::Decode(medledger_types::tx::TxDecodeError::Malformed(medledger_types::DecodeError::Invalid(
            "hex",
            e.to_string(),
        )))
    })
}

/// Non-empty, even-length hex (what the schema's `^([0-9a-fA-F]{2})+$` allows).
fn is_hex_bytes(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn gossip(st: &ApiState, txs: Vec<Tx>) {
    if let (Some(g), false) = (&st.gossip, txs.is_empty()) {
        // Bounded: if the gossip queue is full the tx stays local and is still proposed by us.
        let _ = g.try_send(txs);
    }
}

#[utoipa::path(tag = "ledger", post, path = "/v1/txs", request_body = SubmitRequest,
    responses((status = 202, description = "accepted into the mempool", body = SubmitResponse), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 403, description = "`bad_signature`, `not_permitted`, credential problems", body = ErrorBody), (status = 409, description = "`duplicate`, `already_exists`, `key_not_wrapped`", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn submit_tx(
    State(st): State<ApiState>,
    headers: HeaderMap,
    super::extract::ApiBytes(body): super::extract::ApiBytes,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let is_binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    let raw = if is_binary {
        body.to_vec()
    } else {
        let req: SubmitRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(ErrorCode::Malformed, format!("request body: {e}")))?;
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
    Ok((StatusCode::ACCEPTED, Json(SubmitResponse { tx_id: r.0, status: "pending".into() })))
}

#[utoipa::path(tag = "ledger", post, path = "/v1/txs/batch", request_body = BatchRequest,
    responses((status = 200, description = "one result per transaction", body = BatchResponse), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 413, description = "`oversize`", body = ErrorBody), (status = 415, description = "`unsupported_media_type`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn submit_batch(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if req.txs.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            ErrorCode::Oversize,
            format!("batch of {} above the limit of {MAX_BATCH}", req.txs.len()),
        ));
    }
    // The schema says every item is non-empty hex; a batch that breaks it is refused whole, naming
    // the item. Items that are hex but do not decode or verify get their own error below.
    if let Some(i) = req.txs.iter().position(|t| !is_hex_bytes(&t.0)) {
        return Err(ApiError::bad_request(ErrorCode::Malformed, format!("txs[{i}] is not non-empty hex")));
    }
    let chain = st.chain.clone();
    let (results, accepted) = tokio::task::spawn_blocking(move || {
        let mut slots = Vec::with_capacity(req.txs.len());
        let mut txs = Vec::new();
        for s in &req.txs {
            match decode_hex_tx(&s.0).and_then(|raw| Tx::decode(&raw).map_err(SubmitError::from)) {
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
                    Err(e) => {
                        BatchItem { tx_id: None, error: Some(ErrorDetail { code: e.code(), message: e.to_string() }) }
                    }
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

#[utoipa::path(tag = "ledger", get, path = "/v1/txs/{id}", params(("id" = Hash, Path, description = "transaction id")),
    responses((status = 200, body = TxStatus), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_tx(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TxStatus>, ApiError> {
    let id = parse_hash(&id, "transaction id")?;
    if let Some((height, index)) = st.chain.store.tx_location(&id).map_err(ApiError::internal)? {
        let block = st
            .chain
            .store
            .block(height)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal("indexed block missing"))?;
        let snap = snapshot(&st)?;
        if !block.txs.get(index as usize).is_some_and(|t| caller.may_see_tx(&snap, t)) {
            return Err(not_yours("this transaction"));
        }
        let receipt = st.chain.store.receipt(height, index).map_err(ApiError::internal)?;
        let tx = block.txs.get(index as usize).map(|t| t.body().clone());
        return Ok(Json(TxStatus {
            tx_id: id.to_hex(),
            status: "committed".into(),
            height: Some(height),
            index: Some(index),
            receipt,
            tx,
        }));
    }
    if st.chain.is_pending(&id) {
        return Ok(Json(TxStatus {
            tx_id: id.to_hex(),
            status: "pending".into(),
            height: None,
            index: None,
            receipt: None,
            tx: None,
        }));
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
    let block =
        chain.store.block(height).map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal("block missing"))?;
    let medledger_storage::Certified { descendants, height: certified_height, certificate: cert } =
        chain.store.certified_chain(height).map_err(ApiError::internal)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotYetCertified,
                "no finalization certificate covers this block yet; retry shortly",
            )
        })?;
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

#[utoipa::path(tag = "ledger", get, path = "/v1/txs/{id}/proof", params(("id" = Hash, Path, description = "transaction id")),
    responses((status = 200, body = ProofBundle), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody), (status = 503, description = "`mempool_full`, `unavailable`, `no_vault`, `not_yet_certified`", body = ErrorBody)))]
pub(crate) async fn get_proof(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProofBundle>, ApiError> {
    let id = parse_hash(&id, "transaction id")?;
    // Who may see the transaction is decided before anything about its proof is revealed.
    if let Some((height, index)) = st.chain.store.tx_location(&id).map_err(ApiError::internal)? {
        let block = st.chain.store.block(height).map_err(ApiError::internal)?;
        let snap = snapshot(&st)?;
        if !block.and_then(|b| b.txs.get(index as usize).cloned()).is_some_and(|t| caller.may_see_tx(&snap, &t)) {
            return Err(not_yours("this transaction"));
        }
    }
    Ok(Json(proof_bundle(&st.chain, &id)?))
}

/// A block as `caller` may see it: header, certificate and transaction ids, and the receipts of
/// the transactions the caller may see (the rest are counted in `hidden_receipts`).
pub(crate) fn block_view(chain: &Chain, block: &Block, caller: &Caller) -> Result<BlockView, ApiError> {
    let all = chain.store.receipts(block.height()).map_err(ApiError::internal)?;
    let snap = chain.store.snapshot().map_err(ApiError::internal)?;
    let total = all.len();
    let receipts: Vec<Receipt> = all
        .into_iter()
        .filter(|r| block.txs.get(r.index as usize).is_some_and(|t| caller.may_see_tx(&snap, t)))
        .collect();
    let hidden_receipts = total - receipts.len();
    let cert = chain.store.certificate(block.height()).map_err(ApiError::internal)?;
    Ok(BlockView {
        hash: block.digest().to_hex(),
        header: block.header.clone(),
        tx_ids: block.txs.iter().map(|t| t.id().to_hex()).collect(),
        receipts,
        hidden_receipts,
        certificate: cert.map(hex::encode),
    })
}

#[utoipa::path(tag = "ledger", get, path = "/v1/blocks/{height}", params(("height" = u64, Path, description = "block height")),
    responses((status = 200, body = BlockView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_block(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(height): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let height = parse_height(&height)?;
    let block = st
        .chain
        .store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    Ok(Json(block_view(&st.chain, &block, &caller)?))
}

#[utoipa::path(tag = "ledger", get, path = "/v1/blocks/by-hash/{hash}", params(("hash" = Hash, Path, description = "block hash")),
    responses((status = 200, body = BlockView), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 404, description = "`not_found`", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn get_block_by_hash(
    State(st): State<ApiState>,
    caller: Caller,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<BlockView>, ApiError> {
    let hash = parse_hash(&hash, "block hash")?;
    let height = st
        .chain
        .store
        .height_of(&hash)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block with hash {hash}")))?;
    let block = st
        .chain
        .store
        .block(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("indexed block missing"))?;
    Ok(Json(block_view(&st.chain, &block, &caller)?))
}

#[utoipa::path(tag = "ledger", get, path = "/v1/blocks", params(ListParams),
    responses((status = 200, description = "newest first", body = Vec<BlockView>), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody), (status = 400, description = "malformed or invalid input (`malformed`, `invalid_argument`, ...)", body = ErrorBody), (status = 500, description = "`internal`", body = ErrorBody)))]
pub(crate) async fn list_blocks(
    State(st): State<ApiState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<Vec<BlockView>>, ApiError> {
    let tip = st.chain.tip().height;
    let top = p.before.unwrap_or(tip).min(tip);
    let limit = p.limit.unwrap_or(20);
    if p.before.is_some_and(|b| b > i64::MAX as u64) {
        return Err(ApiError::bad_request(ErrorCode::InvalidArgument, "before must be at most 2^63 - 1"));
    }
    if !(1..=MAX_BLOCK_LIST).contains(&limit) {
        return Err(ApiError::bad_request(ErrorCode::InvalidArgument, format!("limit must be 1..={MAX_BLOCK_LIST}")));
    }
    let mut out = Vec::new();
    let mut h = top as i128;
    while h >= 0 && (out.len() as u64) < limit {
        if let Some(b) = st.chain.store.block(h as u64).map_err(ApiError::internal)? {
            out.push(block_view(&st.chain, &b, &caller)?);
        }
        h -= 1;
    }
    Ok(Json(out))
}

#[utoipa::path(tag = "ledger", get, path = "/v1/status", responses((status = 200, body = StatusView)))]
pub(crate) async fn get_status(State(st): State<ApiState>) -> Json<StatusView> {
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

#[utoipa::path(tag = "ledger", get, path = "/v1/events/blocks", responses((status = 200, description = "Server-Sent Events: one `block` event per finalized block (height, hash, time, counts)"), (status = 401, description = "`unauthenticated`: no or a bad `Authorization` header", body = ErrorBody), (status = 403, description = "`not_permitted` (not yours to see), credential problems", body = ErrorBody), (status = 409, description = "`replayed_request`", body = ErrorBody), (status = 429, description = "`rate_limited`", body = ErrorBody)))]
pub(crate) async fn block_events(
    State(st): State<ApiState>,
    _caller: Caller,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
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

#[utoipa::path(tag = "ledger", get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition")))]
pub(crate) async fn metrics(State(st): State<ApiState>) -> impl IntoResponse {
    let m = &st.chain.metrics;
    let tip = st.chain.tip();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP medledger_{name} {help}\n# TYPE medledger_{name} {kind}\nmedledger_{name} {v}\n"
        ));
    };
    put("height", "gauge", "Height of the last committed block.", tip.height);
    put("mempool_transactions", "gauge", "Transactions waiting in the mempool.", st.chain.mempool_len() as u64);
    put("peers", "gauge", "Connected validator peers.", st.info.peers().len() as u64);
    put(
        "submitted_transactions_total",
        "counter",
        "Transactions submitted to this node.",
        m.submitted.load(Ordering::Relaxed),
    );
    put(
        "rejected_transactions_total",
        "counter",
        "Submissions refused before the mempool.",
        m.rejected.load(Ordering::Relaxed),
    );
    put(
        "committed_transactions_total",
        "counter",
        "Transactions in finalized blocks.",
        m.committed_txs.load(Ordering::Relaxed),
    );
    put("committed_blocks_total", "counter", "Finalized blocks committed.", m.committed_blocks.load(Ordering::Relaxed));
    put(
        "executed_blocks_total",
        "counter",
        "Blocks executed here (built, verified, caught up or re-executed at finalization); over committed_blocks_total by abandoned siblings and repeated work.",
        m.executed_blocks.load(Ordering::Relaxed),
    );
    put(
        "verify_signature_cache_hits_total",
        "counter",
        "Block transactions whose signature was already verified at admission.",
        m.verify_sig_cache_hits.load(Ordering::Relaxed),
    );
    put(
        "verify_signature_checked_total",
        "counter",
        "Block transactions verified during block verification.",
        m.verify_sig_checked.load(Ordering::Relaxed),
    );
    if let Some(r) = st.records.clone() {
        // The probe is blocking I/O (an object store blocks on its own runtime): off the workers.
        let (ok, us) = tokio::task::spawn_blocking(move || r.vault_health()).await.unwrap_or((false, 0));
        put("vault_up", "gauge", "1 if the record vault wrote and read back a probe (at most every 5 s).", ok as u64);
        put("vault_probe_microseconds", "gauge", "Duration of the last vault probe.", us);
    }
    out.push_str(&st.info.prometheus());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// This namespace's routes.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/txs", post(submit_tx).layer(DefaultBodyLimit::max(limits::MAX_TX_BODY_BYTES)))
        .route("/v1/txs/batch", post(submit_batch).layer(DefaultBodyLimit::max(limits::MAX_BATCH_BODY_BYTES)))
        .route("/v1/txs/{id}", get(get_tx))
        .route("/v1/txs/{id}/proof", get(get_proof))
        .route("/v1/blocks", get(list_blocks))
        .route("/v1/blocks/{height}", get(get_block))
        .route("/v1/blocks/by-hash/{hash}", get(get_block_by_hash))
        .route("/v1/status", get(get_status))
        .route("/v1/events/blocks", get(block_events))
        .route("/metrics", get(metrics))
}
