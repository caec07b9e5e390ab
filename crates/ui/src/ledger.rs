//! The explorer: validators and their liveness, blocks (header, finality certificate verified
//! here against the genesis validators, transaction count), transactions to the roles the
//! node shows them to, state proofs verified here by the light client, and a live block feed
//! over Server-Sent Events.

use crate::{blocking, page, App, Me, Ui, UiError};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Html;
use axum::routing::get;
use axum::{Form, Router};
use futures::Stream;
use maud::{html, Markup};
use medledger_client::session::hash_arg;
use medledger_client::Client;
use medledger_state::queries;
use medledger_types::certificate::verify_certificate;
use medledger_types::inclusion::{self, ProofBundle};
use medledger_types::{BlockHeader, Hash, PublicKey};
use serde::Deserialize;
use serde_json::Value;
use std::io::BufRead;
use std::time::{Duration, Instant};

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/explorer", get(explorer))
        .route("/explorer/blocks/{height}", get(block))
        .route("/explorer/txs/{id}", get(tx))
        .route("/explorer/proofs", get(proofs_page).post(prove))
        .route("/events/blocks", get(events))
}

/// One validator's answer to `/v1/status`.
pub struct Liveness {
    pub institution: String,
    pub api: String,
    pub answer: Result<(u64, usize, Duration), String>,
}

/// Asks every genesis validator for its status.
pub fn liveness(ui: &Ui) -> Vec<Liveness> {
    // In parallel, so that unreachable validators cost one timeout, not one each.
    let ask = |i: &medledger_types::GenesisInstitution| {
        let t = Instant::now();
        let answer = Client::new(&i.api_address)
            .get("/v1/status")
            .map(|v| (v["height"].as_u64().unwrap_or(0), v["peers"].as_array().map_or(0, Vec::len), t.elapsed()));
        Liveness { institution: i.id.clone(), api: i.api_address.clone(), answer }
    };
    let institutions = &ui.light.genesis().institutions;
    std::thread::scope(|scope| {
        let asks: Vec<_> = institutions.iter().map(|i| scope.spawn(move || ask(i))).collect();
        asks.into_iter()
            .zip(institutions)
            .map(|(h, i)| {
                h.join().unwrap_or_else(|_| Liveness {
                    institution: i.id.clone(),
                    api: i.api_address.clone(),
                    answer: Err("the status check failed".into()),
                })
            })
            .collect()
    })
}

pub fn liveness_table(rows: &[Liveness]) -> Markup {
    html! {
        table #validators tabindex="0" {
            thead { tr { th { "Institution" } th { "API" } th { "Status" } th { "Height" } th { "Peers" } th { "Answered in" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.institution) } td { code { (r.api) } }
                        @match &r.answer {
                            Ok((h, p, t)) => { td { span.tag.ok { "up" } } td { (h) } td { (p) } td { (t.as_millis()) " ms" } }
                            Err(e) => { td { span.tag.bad { "down" } } td colspan="3" { (e) } }
                        }
                    }
                }
            }
        }
    }
}

fn block_row(v: &Value) -> Markup {
    let h = v["height"].as_u64().or_else(|| v["header"]["height"].as_u64()).unwrap_or(0);
    let ts = v["timestamp_ms"].as_u64().or_else(|| v["header"]["timestamp_ms"].as_u64()).unwrap_or(0);
    let n = v["tx_count"].as_u64().or_else(|| v["header"]["tx_count"].as_u64()).unwrap_or(0);
    html! {
        li.block {
            a href=(format!("/explorer/blocks/{h}")) { "#" (h) } " · " (page::time(ts)) " · " (n) " tx · "
            (page::short(v["hash"].as_str().unwrap_or("")))
        }
    }
}

async fn explorer(me: Me) -> Result<Html<String>, UiError> {
    let ui = me.ui.clone();
    let s = me.session();
    let (rows, blocks) =
        blocking(move || (liveness(&ui), s.client.get("/v1/blocks?limit=15").map(|v| v["blocks"].clone()))).await?;
    let g = me.ui.light.genesis();
    let body = html! {
        p { "Chain " code { (g.chain_id) } ": " (g.institutions.len()) " validators, tolerating " (g.max_faults()) " faulty." }
        h2 { "Validators" }
        (liveness_table(&rows))
        h2 { "Live blocks" }
        ul #feed hx-ext="sse" sse-connect="/events/blocks" sse-swap="block" hx-swap="afterbegin" aria-live="polite" {}
        h2 { "Latest blocks" }
        @match &blocks {
            Ok(Value::Array(list)) => { ul #blocks { @for b in list { (block_row(b)) } } }
            Ok(_) => { p { "No blocks." } }
            Err(e) => { (page::error_box(e)) }
        }
        h2 { "State proofs" }
        p { a href="/explorer/proofs" { "Fetch a state proof and verify it here" } }
    };
    Ok(page::shell(&me, "Explorer", body))
}

async fn block(me: Me, Path(height): Path<String>) -> Result<Html<String>, UiError> {
    let height: u64 = height.parse().map_err(|_| UiError::bad_input(format!("height: `{height}` is not a number")))?;
    let s = me.session();
    let v = blocking(move || s.client.get(&format!("/v1/blocks/{height}"))).await??;
    let header: BlockHeader = serde_json::from_value(v["header"].clone())
        .map_err(|e| UiError::client(format!("the node sent a malformed header: {e}")))?;
    if header.height != height {
        return Err(UiError::client(format!(
            "the node answered block {} when asked for block {height}",
            header.height
        )));
    }
    let hash = header.digest();
    let claimed = v["hash"].as_str().unwrap_or("");
    // The certificate is checked here, against the genesis validators: the node is not trusted.
    let cert = v["certificate"].as_str().map(|c| {
        hex::decode(c)
            .map_err(|e| e.to_string())
            .and_then(|b| verify_certificate(me.ui.light.genesis(), &b, &hash).map(|_| b.len()))
    });
    let body = html! {
        dl.kv {
            dt { "Hash" } dd { code { (hash.to_hex()) } @if claimed != hash.to_hex() { " " span.tag.bad { "differs from the node's claim" } } }
            dt { "Parent" } dd { @if height > 0 { a href=(format!("/explorer/blocks/{}", height - 1)) { code { (header.parent.to_hex()) } } } @else { "—" } }
            dt { "Time" } dd { (page::time(header.timestamp_ms)) }
            dt { "Proposer" } dd { (page::short(&header.proposer.to_hex())) }
            dt { "Transactions" } dd { (header.tx_count) }
            dt { "Transaction root" } dd { code { (header.tx_root.to_hex()) } }
            dt { "State root" } dd { code { (header.state_root.to_hex()) } }
            dt { "Finality" } dd.finality {
                @match &cert {
                    None if height == 0 => { "genesis (no certificate)" }
                    None => { span.tag.bad { "not finalized" } " (the node sent no certificate)" }
                    Some(Ok(n)) => { span.verified { "certificate verified here against the genesis validators" } " (" (n) " bytes)" }
                    Some(Err(e)) => { span.tag.bad { "certificate does not verify" } " " (e) }
                }
            }
        }
        h2 { "Transactions you may see" }
        @let receipts = v["receipts"].as_array().cloned().unwrap_or_default();
        @if receipts.is_empty() { p { "None of this block's transactions is yours to see." } }
        @else {
            table tabindex="0" {
                thead { tr { th { "Transaction" } th { "Outcome" } } }
                tbody { @for r in &receipts {
                    tr {
                        td { a href=(format!("/explorer/txs/{}", r["tx_id"].as_str().unwrap_or(""))) { (page::short(r["tx_id"].as_str().unwrap_or(""))) } }
                        td { (r["outcome"]["status"].as_str().unwrap_or("")) " " (r["outcome"]["reason"].as_str().unwrap_or("")) }
                    }
                } }
            }
        }
        @if v["hidden_receipts"].as_u64().unwrap_or(0) > 0 { p { (v["hidden_receipts"]) " transaction(s) about others are withheld." } }
        p { @if height > 0 { a href=(format!("/explorer/blocks/{}", height - 1)) { "← previous" } " · " } a href=(format!("/explorer/blocks/{}", height + 1)) { "next →" } }
    };
    Ok(page::shell(&me, &format!("Block {height}"), body))
}

async fn tx(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    let id = hash_arg(&id, "transaction id").map_err(UiError::bad_input)?;
    let s = me.session();
    let (v, proof) = blocking(move || {
        let v = s.client.get(&format!("/v1/txs/{}", id.to_hex()))?;
        // A committed transaction's inclusion is checked here, against the genesis validators.
        let proof = (v["status"] == "committed").then(|| {
            s.client
                .get(&format!("/v1/txs/{}/proof", id.to_hex()))
                .and_then(|p| serde_json::from_value::<ProofBundle>(p).map_err(|e| format!("malformed proof: {e}")))
                .and_then(|p| inclusion::verify(s.light.genesis(), &p))
        });
        Ok::<_, String>((v, proof))
    })
    .await??;
    let body = html! {
        dl.kv {
            dt { "Status" } dd { (v["status"].as_str().unwrap_or("")) }
            @if let Some(h) = v["height"].as_u64() { dt { "Block" } dd { a href=(format!("/explorer/blocks/{h}")) { (h) } } }
            dt { "Outcome" } dd { (v["receipt"]["outcome"]["status"].as_str().unwrap_or("")) " " (v["receipt"]["outcome"]["reason"].as_str().unwrap_or("")) }
            @match &proof {
                None => {}
                Some(Ok((tx, msg))) => {
                    dt { "Inclusion" } dd.inclusion { span.verified { "verified here: " } (msg) }
                    dt { "Signer" } dd { (page::short(&tx.body().signer.to_hex())) " (signature verified)" }
                    dt { "Operation" } dd { (tx.body().op.kind().name()) }
                }
                Some(Err(e)) => { dt { "Inclusion" } dd { span.tag.bad { "does not verify" } " " (e) } }
            }
        }
        (page::raw_json(&v))
    };
    Ok(page::shell(&me, &format!("Transaction {}", &id.to_hex()[..12]), body))
}

async fn proofs_page(me: Me) -> Html<String> {
    page::shell(&me, "State proofs", proof_form())
}

fn proof_form() -> Markup {
    html! {
        p { "The node answers with a proof against a finalized state root; this server verifies the proof and the root's quorum certificate against the genesis validators before showing anything." }
        form.stack hx-post="/explorer/proofs" hx-target="#proof-result" {
            label for="kind" { "What" }
            select #kind name="kind" {
                option value="validators" { "genesis validators" }
                option value="identity" { "a credential (by key)" }
                option value="record" { "a record's anchors (by record id)" }
                option value="regulators" { "the regulators" }
            }
            label for="key" { "Key or id (hex; not needed for validators or regulators)" }
            input #key name="key" size="66";
            button type="submit" { "Fetch and verify" }
        }
        div #proof-result {}
    }
}

/// Turns a verified answer into one line for people.
type Summary = Box<dyn Fn(&medledger_client::light::Answer) -> Result<String, String>>;

#[derive(Deserialize)]
struct ProofForm {
    kind: String,
    #[serde(default)]
    key: String,
}

async fn prove(me: Me, Form(f): Form<ProofForm>) -> Result<Html<String>, UiError> {
    let s = me.session();
    let key = f.key.trim().to_string();
    let kind = f.kind.clone();
    let (answer, summary) = blocking(move || -> Result<_, UiError> {
        let need = |what: &str| -> Result<String, UiError> {
            if key.is_empty() {
                Err(UiError::bad_input(format!("key: give the {what}")))
            } else {
                Ok(key.clone())
            }
        };
        let (path, summarize): (String, Summary) = match kind.as_str() {
            "validators" => (
                "/v1/proofs/validators".into(),
                Box::new(|a| {
                    a.replay(|s, _| {
                        let v = queries::validators(s);
                        format!(
                            "{} validator key(s): {}",
                            v.len(),
                            v.iter().map(|k| k.short()).collect::<Vec<_>>().join(", ")
                        )
                    })
                }),
            ),
            "regulators" => (
                "/v1/proofs/regulators".into(),
                Box::new(|a| a.replay(|s, at| format!("{} regulator(s)", queries::regulators(s, at).len()))),
            ),
            "identity" => {
                let k = PublicKey::from_hex(&need("key")?).map_err(|e| UiError::bad_input(format!("key: {e}")))?;
                (
                    format!("/v1/proofs/identities/{}", k.to_hex()),
                    Box::new(move |a| {
                        a.replay(|s, at| match queries::identity(s, &k, at).credential {
                            Some(c) => format!(
                                "{} at {}{}",
                                c.role.name(),
                                c.institution,
                                if c.revoked.is_some() { ", revoked" } else { "" }
                            ),
                            None => "no credential (proven absent)".into(),
                        })
                    }),
                )
            }
            "record" => {
                let id: Hash = hash_arg(&need("record id")?, "key").map_err(UiError::bad_input)?;
                (
                    format!("/v1/proofs/records/{}", id.to_hex()),
                    Box::new(move |a| {
                        a.replay(|s, _| match queries::record(s, &id) {
                            Some((h, v)) => format!(
                                "{} with {} version(s), current v{}{}",
                                h.resource_type,
                                v.len(),
                                h.current_version,
                                if h.erased_at.is_some() { ", erased" } else { "" }
                            ),
                            None => "no such record (proven absent)".into(),
                        })
                    }),
                )
            }
            other => return Err(UiError::bad_input(format!("kind: `{other}` is not a proof this page fetches"))),
        };
        let a = s.proven(&path).map_err(UiError::client)?;
        let summary = summarize(&a).map_err(UiError::client)?;
        Ok((a, summary))
    })
    .await??;
    Ok(page::fragment(html! {
        p.verified role="status" {
            "Verified: " (answer.proof.entries.len()) " state entries proven at height " (answer.height)
            " (state root " (page::short(&answer.proof.header.state_root.to_hex())) "), finalized by a quorum of the genesis validators; answered by "
            code { (answer.node) } "."
        }
        p.answer { (summary) }
    }))
}

/// Follows a node's block feed (signed as the first credentialed identity) and passes each
/// block on, rendered, to every browser on `/events/blocks`. Reconnects, to the next node if
/// need be, after a second.
pub fn start_feed(ui: App) {
    std::thread::spawn(move || loop {
        let Some(id) = ui.identities.iter().find(|i| i.credential.is_some()) else { return };
        if let Ok(resp) = id.session.client.get_stream("/v1/events/blocks") {
            for line in std::io::BufReader::new(resp.into_reader()).lines() {
                let Ok(line) = line else { break };
                if let Some(data) = line.strip_prefix("data:") {
                    if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                        // No subscriber is fine: the block is simply not shown to anyone.
                        let _ = ui.feed.send(block_row(&v).into_string());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    });
}

async fn events(State(ui): State<App>) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = ui.feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(html) => return Some((Ok(Event::default().event("block").data(html)), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
