//! Remote monitoring: the patient's devices (with revoke), monitoring settings, live readings
//! and alarms; the doctor's dashboard with the live readings of the patients in their care, the
//! alarm list with acknowledgement, and a live alarm feed pushed over SSE.
//!
//! No pseudonym in a URL: the live fragment and the feed are the current identity's own.

use crate::{blocking, jobs, page, App, Me, UiError};
use axum::extract::Path;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use futures::Stream;
use maud::{html, Markup};
use medledger_client::session::hash_arg;
use medledger_client::Session;
use medledger_types::care::CareOp;
use medledger_types::Role;
use serde_json::Value;
use std::io::BufRead as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/monitoring", get(monitoring_page))
        .route("/monitoring/live", get(live))
        .route("/monitoring/devices/{id}/revoke", post(revoke))
        .route("/monitoring/alarms/{id}/acknowledge", post(acknowledge))
        .route("/events/alarms", get(alarm_feed))
}

const ROLES: [Role; 2] = [Role::Patient, Role::Doctor];
/// Alarms shown per list, newest first.
const SHOWN: usize = 50;
/// Alarm feeds open at once (each follows a node's stream on its own thread).
const MAX_FEEDS: usize = 16;
static FEEDS: AtomicUsize = AtomicUsize::new(0);

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn own_pseudonym(me: &Me) -> Result<String, UiError> {
    crate::consent::my_pseudonym(me).map(|p| p.to_hex())
}

fn risk_tag(risk: &str) -> Markup {
    let class = match risk {
        "medium" | "high" => "tag warn",
        "low-medium" => "tag",
        _ => "tag ok",
    };
    html! { span class=(class) { "NEWS2 risk " (risk) } }
}

fn alarm_state(me: &Me, a: &Value) -> Markup {
    html! {
        @if let Some(by) = a["acknowledged_by"].as_str() {
            span.tag.ok { "acknowledged" } " by " (page::who_hex(me, by))
        } @else if let Some(to) = a["escalated_to"].as_str() {
            span.tag.warn { "escalated" } " to " (page::who_hex(me, to))
        } @else {
            span.tag.warn { "open" } " · escalates at " (page::time(a["escalate_at_ms"].as_u64().unwrap_or(0)))
        }
    }
}

/// Alarms, newest first; `act` adds the acknowledge button where `me` may acknowledge.
fn alarm_table(me: &Me, list: &[Value], act: bool) -> Markup {
    let key = me.session().key.public().to_hex();
    html! {
        @if list.is_empty() { p { "No alarms." } }
        @else {
            table #alarms tabindex="0" {
                caption { "Alarms (newest first; causes and reading digests only, never values)" }
                thead { tr { th { "Raised" } th { "Cause" } th { "Patient" } th { "Reading" } th { "State" } @if act { th { "Action" } } } }
                tbody {
                    @for a in list.iter().rev().take(SHOWN) {
                        tr data-alarm=(s(a, "id")) {
                            td { (page::time(a["raised_ms"].as_u64().unwrap_or(0))) }
                            td.cause { (s(a, "cause")) }
                            td { (patient_name(me, s(a, "patient"))) }
                            td { (page::short(s(a, "reading"))) }
                            td.state { (alarm_state(me, a)) }
                            @if act {
                                td {
                                    @if a["acknowledged_by"].is_null() && (s(a, "responsible") == key || s(a, "escalated_to") == key) {
                                        form.inline hx-post=(format!("/monitoring/alarms/{}/acknowledge", s(a, "id"))) hx-target="#ack-result" {
                                            button type="submit" aria-label=(format!("Acknowledge alarm {}", &s(a, "id")[..12.min(s(a, "id").len())])) { "Acknowledge" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A patient's name among this server's identities, else a short pseudonym.
fn patient_name(me: &Me, pseudonym: &str) -> Markup {
    let name = me
        .ui
        .identities
        .iter()
        .find(|i| i.credential.as_ref().and_then(|c| c.pseudonym).is_some_and(|p| p.to_hex() == pseudonym))
        .map(|i| i.name.clone());
    match name {
        Some(n) => html! { (n) },
        None => page::short(pseudonym),
    }
}

/// The newest value of each parameter, with its NEWS2 sub-score in the latest complete set.
fn readings_table(patient: &str, live: &Value) -> Markup {
    let mut seen = std::collections::HashSet::new();
    let readings: Vec<Value> = live["readings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| seen.insert(s(r, "parameter").to_string()))
        .cloned()
        .collect();
    html! {
        p {
            @if let Some(total) = live["news2"]["total"].as_u64() {
                (risk_tag(s(&live["news2"], "risk"))) " · total " strong { (total) }
            } @else { span.tag { "NEWS2: no complete set yet" } }
        }
        @if readings.is_empty() { p { "No readings received since this node started." } }
        @else {
            table.readings data-patient=(patient) tabindex="0" {
                caption { "Latest value of each parameter" }
                thead { tr { th { "Parameter" } th { "Value" } th { "Taken" } th { "NEWS2 sub-score" } } }
                tbody {
                    @for r in &readings {
                        tr {
                            td { (s(r, "parameter").replace('_', " ")) }
                            td.value { (s(r, "text")) }
                            td { (page::time(r["effective_ms"].as_u64().unwrap_or(0))) }
                            td { (live["news2"]["subscores"][s(r, "parameter")].as_u64().map_or("—".to_string(), |v| v.to_string())) }
                        }
                    }
                }
            }
        }
    }
}

fn monitoring_settings(me: &Me, m: &Value) -> Markup {
    html! {
        @if m.is_null() { p { "No monitoring is set." } }
        @else {
            dl.settings {
                dt { "Responsible doctor" } dd { (page::who_hex(me, s(m, "responsible"))) }
                dt { "Monitoring institution" } dd { (s(m, "institution")) }
                dt { "SpO₂ scale" } dd { (m["spo2_scale"]) }
                dt { "Threshold rules" } dd {
                    @let rules: Vec<&str> = m["rules"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    @if rules.is_empty() { "none" } @else { (rules.join("; ")) }
                }
                dt { "Escalation after" } dd { (m["escalate_after_ms"].as_u64().unwrap_or(0) / 1000) " s without acknowledgement" }
            }
        }
    }
}

fn device_table(v: &Value, revocable: bool) -> Markup {
    let devices = v["devices"].as_array().cloned().unwrap_or_default();
    html! {
        @if devices.is_empty() { p { "No devices." } }
        @else {
            table #devices tabindex="0" {
                caption { "Devices (FHIR Device)" }
                thead { tr { th { "Device" } th { "Model" } th { "Institution" } th { "Anchors" } th { "Status" } @if revocable { th { "Action" } } } }
                tbody {
                    @for d in &devices {
                        tr data-device=(s(d, "id")) {
                            td { (page::short(s(d, "id"))) }
                            td { (s(d, "model")) }
                            td { (s(d, "institution")) }
                            td { (d["anchors"]) }
                            td.status {
                                @if let Some(h) = d["revoked_height"].as_u64() { span.tag.warn { "revoked at height " (h) } }
                                @else { span.tag.ok { "active" } }
                            }
                            @if revocable {
                                td {
                                    @if d["revoked_height"].is_null() {
                                        form.inline hx-post=(format!("/monitoring/devices/{}/revoke", s(d, "id"))) hx-target="#device-result"
                                            hx-confirm="Revoke this device? Its readings are refused from the next block on." {
                                            button type="submit" aria-label=(format!("Revoke device {}", &s(d, "id")[..12.min(s(d, "id").len())])) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn monitoring_page(me: Me) -> Result<Html<String>, UiError> {
    me.require(&ROLES, "Monitoring")?;
    let sess = me.session();
    let body = if me.id().role() == Some(Role::Patient) {
        let p = own_pseudonym(&me)?;
        let (m, alarms) = blocking(move || {
            let m = sess.client.get(&format!("/v1/care/patients/{p}/monitoring"))?;
            let a = sess.client.get(&format!("/v1/care/patients/{p}/alarms"))?;
            Ok::<_, String>((m, a))
        })
        .await??;
        let alarms = alarms["alarms"].as_array().cloned().unwrap_or_default();
        html! {
            p { "Your monitoring devices sign each reading; your institution's node keeps the readings encrypted and puts only their digests on the chain. Revoke a device you no longer wear." }
            h2 { "My devices" }
            (device_table(&m, true))
            div #device-result {}
            h2 { "Monitoring settings" }
            (monitoring_settings(&me, &m["monitoring"]))
            h2 { "My latest readings" }
            div #live hx-get="/monitoring/live" hx-trigger="load, every 5s" aria-live="polite" { p { "Loading…" } }
            h2 { "My alarms" }
            (alarm_table(&me, &alarms, false))
        }
    } else {
        html! {
            p { "The patients whose monitoring you are responsible for, refreshed every 5 seconds, and the alarms you are responsible for or that were escalated to you. New alarms appear in the feed as the chain finalizes them." }
            h2 { "Alarm feed" }
            p.hint { "Alarms raised while this page is open appear here first." }
            ul #alarm-feed hx-ext="sse" sse-connect="/events/alarms" sse-swap="alarm" hx-swap="afterbegin" aria-live="assertive" {}
            div #ack-result {}
            div #live hx-get="/monitoring/live" hx-trigger="load, every 5s" { p { "Loading…" } }
        }
    };
    let title = if me.id().role() == Some(Role::Patient) { "My monitoring" } else { "Monitoring dashboard" };
    Ok(page::shell(&me, title, body))
}

/// The live part: the patient's readings, or the doctor's patients and alarms.
async fn live(me: Me) -> Result<Html<String>, UiError> {
    me.require(&ROLES, "Monitoring")?;
    let sess = me.session();
    if me.id().role() == Some(Role::Patient) {
        let p = own_pseudonym(&me)?;
        let pp = p.clone();
        let live = blocking(move || sess.client.get(&format!("/v1/care/patients/{pp}/readings"))).await?;
        return Ok(page::fragment(match live {
            Ok(v) => readings_table(&p, &v),
            Err(e) => page::error_box(&e),
        }));
    }
    let key = sess.key.public().to_hex();
    let (patients, alarms) = blocking(move || {
        let patients = sess.client.get(&format!("/v1/care/doctors/{key}/patients"))?;
        let alarms = sess.client.get(&format!("/v1/care/doctors/{key}/alarms"))?;
        let mut out = Vec::new();
        for m in patients["patients"].as_array().into_iter().flatten() {
            let p = s(m, "patient").to_string();
            let live = sess.client.get(&format!("/v1/care/patients/{p}/readings"));
            out.push((p, m.clone(), live));
        }
        Ok::<_, String>((out, alarms))
    })
    .await??;
    let alarms = alarms["alarms"].as_array().cloned().unwrap_or_default();
    Ok(page::fragment(html! {
        h2 { "Alarms" }
        (alarm_table(&me, &alarms, true))
        h2 { "Patients in my care" }
        @if patients.is_empty() { p { "You are not responsible for monitoring any patient." } }
        @for (p, m, live) in &patients {
            section.patient data-patient=(p) {
                h3 { (patient_name(&me, p)) }
                p {
                    (m["devices"].as_array().map_or(0, Vec::len)) " device(s) · SpO₂ scale " (m["monitoring"]["spo2_scale"])
                    @let rules: Vec<&str> = m["monitoring"]["rules"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    @if !rules.is_empty() { " · rules: " (rules.join("; ")) }
                }
                @match live {
                    Ok(v) => (readings_table(p, v)),
                    Err(e) => (page::error_box(e)),
                }
            }
        }
    }))
}

async fn revoke(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Patient], "Revoking a device")?;
    let device_id = hash_arg(&id, "device id").map_err(UiError::bad_input)?;
    let s = me.session();
    jobs::start(&me, "Revoking the device", move || {
        let v = s.care(CareOp::RevokeDevice { device_id })?;
        Ok(
            html! { p.notice { "Device revoked at height " (v["height"]) "; its readings are refused from now on. " a href="/monitoring" { "Refresh" } } },
        )
    })
}

async fn acknowledge(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Doctor], "Acknowledging an alarm")?;
    let alarm_id = hash_arg(&id, "alarm id").map_err(UiError::bad_input)?;
    let s = me.session();
    jobs::start(&me, "Acknowledging the alarm", move || {
        let v = s.care(CareOp::AcknowledgeAlarm { alarm_id })?;
        Ok(
            html! { p.notice { "Alarm " (page::short(&alarm_id.to_hex())) " acknowledged at height " (v["height"]) "." } },
        )
    })
}

fn feed_item(v: &Value) -> Markup {
    html! {
        li.alarm data-alarm=(s(v, "alarm")) {
            strong { (s(v, "cause")) }
            @if v["escalated"] == true { " — escalated to you" }
            " · " (page::time(v["timestamp_ms"].as_u64().unwrap_or(0))) " · height " (v["height"])
        }
    }
}

/// Frees a feed slot when the browser's stream ends.
struct FeedSlot;

impl Drop for FeedSlot {
    fn drop(&mut self) {
        FEEDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Follows the node's alarm stream as the current doctor and forwards each alarm, rendered.
/// The following thread ends at the node's next message (a keep-alive at the latest) once the
/// browser is gone.
fn follow(sess: Arc<Session>, tx: tokio::sync::mpsc::Sender<String>) {
    let Ok(resp) = sess.client.get_stream("/v1/care/alarms/stream") else { return };
    for line in std::io::BufReader::new(resp.into_reader()).lines() {
        let Ok(line) = line else { return };
        if tx.is_closed() {
            return;
        }
        if let Some(data) = line.strip_prefix("data:") {
            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                if tx.blocking_send(feed_item(&v).into_string()).is_err() {
                    return;
                }
            }
        }
    }
}

async fn alarm_feed(me: Me) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, UiError> {
    me.require(&[Role::Doctor], "The alarm feed")?;
    if FEEDS.fetch_add(1, Ordering::SeqCst) >= MAX_FEEDS {
        FEEDS.fetch_sub(1, Ordering::SeqCst);
        return Err(UiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            message: format!("{MAX_FEEDS} alarm feeds are already open; close a tab"),
        });
    }
    let slot = FeedSlot;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    let sess = me.session();
    std::thread::spawn(move || follow(sess, tx));
    let stream = futures::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let html = rx.recv().await?;
        Some((Ok(Event::default().event("alarm").data(html)), (rx, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
