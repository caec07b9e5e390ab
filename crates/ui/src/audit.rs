//! Audit: the patient's access log (break-glass and denials highlighted, their sealed reasons
//! opened with the patient's key), the regulator's search over patient, institution, time,
//! purpose and outcome, the break-glass review queue and the FHIR AuditEvent download.

use crate::consent::my_pseudonym;
use crate::{blocking, page, App, Me, UiError};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use medledger_client::consent::open_reason;
use medledger_client::session::hash_arg;
use medledger_types::read::AuditQuery;
use medledger_types::{AccessOutcome, Keypair, Purpose, Role};
use serde::Deserialize;
use serde_json::Value;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/access-log", get(access_log))
        .route("/audit", get(audit_page).post(search))
        .route("/audit/break-glass", get(break_glass))
        .route("/audit/export", post(export))
}

/// The events as a table; a reason is opened with `key` where it is a reader.
pub fn events_table(v: &Value, key: &Keypair, show_patient: bool) -> Markup {
    let events = v["events"].as_array().cloned().unwrap_or_default();
    html! {
        @if events.is_empty() { p.empty { "No access events match." } }
        @else {
            table.events tabindex="0" {
                thead { tr {
                    th { "When" } th { "Record" } @if show_patient { th { "Patient" } }
                    th { "Who" } th { "Purpose" } th { "Outcome" } th { "Reason" } th { "Holder" } th { "Height" }
                } }
                tbody {
                    @for e in &events {
                        @let outcome = e["outcome"].as_str().unwrap_or("");
                        @let rid = e["request_id"].as_str().unwrap_or("");
                        tr class=(format!("event flag-{outcome}")) {
                            td { (page::time(e["timestamp_ms"].as_u64().unwrap_or(0))) }
                            td { (page::short(e["record_id"].as_str().unwrap_or(""))) " " (e["resource_type"].as_str().unwrap_or("")) }
                            @if show_patient { td { (page::short(e["patient"].as_str().unwrap_or(""))) } }
                            td { (page::short(e["requester"].as_str().unwrap_or(""))) }
                            td { (e["purpose"].as_str().unwrap_or("")) }
                            td {
                                @match outcome {
                                    "break_glass" => { span.tag.warn { "BREAK-GLASS" } }
                                    "denied" => { span.tag.bad { "DENIED" } }
                                    o => { span.tag.ok { (o) } }
                                }
                            }
                            td { @if outcome != "served" { (open_reason(&e["reason"], rid, key)) } }
                            td { (e["institution"].as_str().unwrap_or("")) }
                            td { (e["height"]) }
                        }
                    }
                }
            }
        }
    }
}

async fn access_log(me: Me) -> Result<Html<String>, UiError> {
    let p = my_pseudonym(&me)?;
    let s = me.session();
    let q = AuditQuery { patient: Some(p), limit: 200, ..Default::default() };
    let v = blocking(move || s.audit(q, false)).await??;
    let key = me.id().session.key.clone();
    let flagged = v["events"].as_array().into_iter().flatten().filter(|e| e["outcome"] != "served").count();
    let body = html! {
        p { "Every read of your records, as logged on chain by the institution that holds it. "
            @if flagged > 0 { strong { (flagged) " break-glass or denied event(s) are highlighted." } } }
        (events_table(&v, &key, false))
    };
    Ok(page::shell(&me, "My access log", body))
}

#[derive(Deserialize, Default)]
struct SearchForm {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    institution: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    outcome: String,
}

/// `YYYY-MM-DD` (UTC midnight) to milliseconds since the epoch.
fn date_ms(s: &str, field: &str) -> Result<Option<u64>, UiError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || UiError::bad_input(format!("{field}: `{s}` is not a date (YYYY-MM-DD)"));
    let mut parts = s.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (Some(Some(y)), Some(Some(m)), Some(Some(d))) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let days = medledger_types::time::days_from_civil(y, m as u32, d as u32);
    Ok(Some(days as u64 * 86_400_000))
}

impl SearchForm {
    fn query(&self) -> Result<AuditQuery, UiError> {
        let opt = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string);
        Ok(AuditQuery {
            patient: opt(&self.patient).map(|p| hash_arg(&p, "patient")).transpose().map_err(UiError::bad_input)?,
            institution: opt(&self.institution),
            from_ms: date_ms(&self.from, "from")?,
            to_ms: date_ms(&self.to, "to")?,
            purpose: opt(&self.purpose).map(|p| Purpose::parse(&p)).transpose().map_err(UiError::bad_input)?,
            outcome: opt(&self.outcome).map(|o| AccessOutcome::parse(&o)).transpose().map_err(UiError::bad_input)?,
            limit: 500,
            ..Default::default()
        })
    }
}

fn search_form(me: &Me) -> Markup {
    html! {
        form.stack #audit-search method="post" action="/audit" {
            label for="patient" { "Patient pseudonym" }
            input #patient name="patient" size="66" autocomplete="off";
            label for="institution" { "Holding institution" }
            select #institution name="institution" {
                option value="" { "any" }
                @for i in &me.ui.light.genesis().institutions { option value=(i.id) { (i.id) } }
            }
            label for="from" { "From (UTC date)" }
            input #from name="from" type="date";
            label for="to" { "Before (UTC date)" }
            input #to name="to" type="date";
            label for="purpose" { "Purpose" }
            select #purpose name="purpose" {
                option value="" { "any" }
                @for p in Purpose::ALL { option value=(p.name()) { (p.name()) } }
            }
            label for="outcome" { "Outcome" }
            select #outcome name="outcome" {
                option value="" { "any" }
                @for o in AccessOutcome::ALL { option value=(o.name()) { (o.name()) } }
            }
            button type="submit" { "Search" }
            button.plain #audit-export type="submit" formaction="/audit/export" { "Download as FHIR AuditEvents" }
        }
    }
}

async fn audit_page(me: Me) -> Result<Html<String>, UiError> {
    me.require(&[Role::Regulator], "The audit")?;
    let body = html! {
        (search_form(&me))
        div #audit-result {}
    };
    Ok(page::shell(&me, "Audit", body))
}

async fn search(me: Me, Form(f): Form<SearchForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Regulator], "The audit")?;
    let q = f.query()?;
    let s = me.session();
    let v = blocking(move || s.audit(q, false)).await??;
    let key = me.id().session.key.clone();
    let body = html! {
        (search_form(&me))
        div #audit-result {
            p role="status" { (v["events"].as_array().map_or(0, Vec::len)) " event(s); " (v["scanned"]) " log entries scanned"
                @if v["truncated"] == true { " (the scan stopped at its limit; narrow the search)" } "." }
            (events_table(&v, &key, true))
        }
    };
    Ok(page::shell(&me, "Audit", body))
}

async fn break_glass(me: Me) -> Result<Html<String>, UiError> {
    me.require(&[Role::Regulator], "The break-glass review")?;
    let s = me.session();
    let q = AuditQuery { outcome: Some(AccessOutcome::BreakGlass), limit: 500, ..Default::default() };
    let v = blocking(move || s.audit(q, false)).await??;
    let key = me.id().session.key.clone();
    let body = html! {
        p { "Every read without consent, newest first, with the doctor's reason (sealed for you, opened here)." }
        (events_table(&v, &key, true))
    };
    Ok(page::shell(&me, "Break-glass review", body))
}

async fn export(me: Me, Form(f): Form<SearchForm>) -> Result<Response, UiError> {
    me.require(&[Role::Regulator], "The audit export")?;
    let q = f.query()?;
    let s = me.session();
    let v = blocking(move || s.audit(q, true)).await??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"medledger-audit.json\""),
        ],
        serde_json::to_vec_pretty(&v).unwrap_or_default(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnights_and_bad_dates_are_refused() {
        assert_eq!(date_ms("", "from").unwrap(), None);
        assert_eq!(date_ms("1970-01-01", "from").unwrap(), Some(0));
        assert_eq!(date_ms("2026-12-03", "from").unwrap(), Some(1_796_256_000_000));
        assert_eq!(date_ms("2000-03-01", "from").unwrap(), Some(951_868_800_000));
        for bad in ["2026-13-01", "yesterday", "2026-12", "1969-12-31", "2026-12-3x"] {
            assert!(date_ms(bad, "from").unwrap_err().message.contains("from"), "{bad}");
        }
    }

    #[test]
    fn a_search_form_with_a_bad_field_names_it() {
        let f = SearchForm { outcome: "maybe".into(), ..Default::default() };
        assert!(f.query().is_err());
        let f = SearchForm { patient: "not hex".into(), ..Default::default() };
        assert!(f.query().unwrap_err().message.contains("patient"));
        let q = SearchForm { outcome: "break_glass".into(), ..Default::default() }.query().unwrap();
        assert_eq!(q.outcome, Some(AccessOutcome::BreakGlass));
    }
}
