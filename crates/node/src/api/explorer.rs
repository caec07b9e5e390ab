//! The node's read-only explorer, at `/explorer`: HTML for anyone who can reach the API.
//!
//! An anonymous viewer may see only what carries no personal data: the validators and which
//! of them this node is connected to, block headers (height, time, proposer, roots,
//! transaction count) and the certificate that finalizes each (checked by consensus before
//! the block was committed; nothing is re-verified per request), and a live feed of new headers over Server-Sent Events. Transactions, receipts,
//! records and proofs are never shown here: they are for authenticated callers (the API, or the
//! explorer of the user's own `medledger ui`, which verifies every proof itself).

use super::*;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use medledger_types::BlockHeader;

/// Headers listed on the explorer's front page.
const RECENT: u64 = 20;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24}header,main,footer{padding:8px 16px}\
header{background:#f6f8fa;border-bottom:1px solid #c9d1d9}table{border-collapse:collapse;display:block;overflow-x:auto}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #c9d1d9}a{color:#0b5cad}.ok{color:#17652e}.bad{color:#a4121b}\
code{overflow-wrap:anywhere}footer{color:#4a5360;font-size:.85em}";

/// The feed script: appends each new header the node announces (no library, no state).
const FEED: &str = "const f=document.getElementById('feed');const s=new EventSource('/explorer/events');\
s.addEventListener('block',e=>{const li=document.createElement('li');li.innerHTML=e.data;f.prepend(li);\
while(f.children.length>50)f.lastChild.remove();});";

fn shell(st: &ApiState, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · MedLedger explorer" }
                    style { (STYLE) }
                }
                body {
                    header { strong { "MedLedger explorer" } " · chain " code { (st.chain.genesis.chain_id) } " · " a href="/explorer" { "latest" } }
                    main { h1 { (title) } (body) }
                    footer { "Headers only. Transactions and proofs are for authenticated users: the API, or the explorer of your own " code { "medledger ui" } ", which verifies them itself." }
                }
            }
        }
        .into_string(),
    )
}

/// The height of the certificate that finalizes block `height` (its own, or a descendant's),
/// if this node stores one. A node commits a block only once consensus has checked such a
/// certificate against the validator set, so a stored block is final; nothing is re-verified
/// per request.
fn certified_by(st: &ApiState, height: u64) -> Result<Option<u64>, ApiError> {
    if height == 0 {
        return Ok(Some(0));
    }
    Ok(st.chain.store.certified_at_or_above(height).map_err(ApiError::internal)?.map(|(h, _)| h))
}

fn row(h: &BlockHeader, fin: bool) -> Markup {
    html! {
        a href=(format!("/explorer/blocks/{}", h.height)) { "#" (h.height) } " · "
        (medledger_types::time::rfc3339_ms(h.timestamp_ms)) " · " (h.tx_count) " tx · "
        code { (h.digest().to_hex()[..16]) "…" } " · "
        @if fin { span.ok { "finalized" } } @else { span.bad { "not finalized" } }
    }
}

pub(crate) async fn front(State(st): State<ApiState>) -> Result<Html<String>, ApiError> {
    let tip = st.chain.tip().height;
    let peers = st.info.peers();
    let mut headers = Vec::new();
    for h in (tip.saturating_sub(RECENT - 1)..=tip).rev() {
        if let Some(header) = st.chain.store.header(h).map_err(ApiError::internal)? {
            let fin = certified_by(&st, h)?.is_some();
            headers.push((header, fin));
        }
    }
    let me = st.chain.me;
    let g = &st.chain.genesis;
    let body = html! {
        p { (g.institutions.len()) " validators, tolerating " (g.max_faults()) " faulty. This node is at height " (tip) "." }
        h2 { "Validators" }
        table {
            thead { tr { th { "Institution" } th { "Validator key" } th { "API" } th { "Seen by this node" } } }
            tbody {
                @for i in &g.institutions {
                    @let key = i.validator_key.to_hex();
                    tr {
                        td { (i.id) }
                        td { code { (key[..16]) "…" } }
                        td { code { (i.api_address) } }
                        td {
                            @if i.validator_key == me { span.ok { "this node" } }
                            @else if peers.contains(&key) { span.ok { "connected" } }
                            @else { span.bad { "not connected" } }
                        }
                    }
                }
            }
        }
        h2 { "Live" }
        ul #feed aria-live="polite" {}
        h2 { "Latest blocks" }
        ul #blocks { @for (h, fin) in &headers { li { (row(h, *fin)) } } }
        script { (maud::PreEscaped(FEED)) }
    };
    Ok(shell(&st, "Latest blocks", body))
}

pub(crate) async fn block(
    State(st): State<ApiState>,
    ApiPath(height): ApiPath<String>,
) -> Result<Html<String>, ApiError> {
    let height = parse_height(&height)?;
    let header = st
        .chain
        .store
        .header(height)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no block at height {height}")))?;
    let cert = certified_by(&st, height)?;
    let body = html! {
        table {
            tbody {
                tr { th { "Hash" } td { code { (header.digest().to_hex()) } } }
                tr { th { "Parent" } td { code { (header.parent.to_hex()) } } }
                tr { th { "Time" } td { (medledger_types::time::rfc3339_ms(header.timestamp_ms)) } }
                tr { th { "Proposer" } td { code { (header.proposer.to_hex()) } } }
                tr { th { "Transactions" } td { (header.tx_count) } }
                tr { th { "Transaction root" } td { code { (header.tx_root.to_hex()) } } }
                tr { th { "State root" } td { code { (header.state_root.to_hex()) } } }
                tr { th { "Finality" } td {
                    @match cert {
                        _ if height == 0 => { "genesis" }
                        Some(c) => {
                            span.ok { "finalized: certificate checked by consensus before this node committed it" }
                            @if c != height { " (the certificate is of descendant block " (c) ")" }
                        }
                        None => { span.bad { "no certificate stored at or above this height" } }
                    }
                } }
            }
        }
        p {
            @if height > 0 { a href=(format!("/explorer/blocks/{}", height - 1)) { "← previous" } " · " }
            a href=(format!("/explorer/blocks/{}", height + 1)) { "next →" }
        }
    };
    Ok(shell(&st, &format!("Block {height}"), body))
}

/// At most this many anonymous live feeds at once (each holds a connection and a subscription).
pub const MAX_FEEDS: usize = 64;

static FEEDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One feed's place among [`MAX_FEEDS`], given back when its stream is dropped.
struct FeedSlot;

impl FeedSlot {
    fn take() -> Option<FeedSlot> {
        use std::sync::atomic::Ordering::SeqCst;
        FEEDS.fetch_update(SeqCst, SeqCst, |n| (n < MAX_FEEDS).then_some(n + 1)).ok().map(|_| FeedSlot)
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        FEEDS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// New headers as they are finalized, each as an HTML list item.
pub(crate) async fn events(
    State(st): State<ApiState>,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    let slot = FeedSlot::take().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("{MAX_FEEDS} live feeds are open on this node; try again later"),
        )
    })?;
    let rx = st.chain.subscribe();
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        loop {
            match rx.recv().await {
                Ok(f) => {
                    let html = row(&f.block.header, true).into_string();
                    return Some((Ok(SseEvent::default().event("block").data(html)), (rx, slot)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/explorer", get(front))
        .route("/explorer/blocks/{height}", get(block))
        .route("/explorer/events", get(events))
}
