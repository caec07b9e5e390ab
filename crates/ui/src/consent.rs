//! Consent: the patient's consents (grant, revoke), access requests (the patient approves or
//! declines; doctors, researchers and insurers ask).

use crate::identity::pseudonym;
use crate::{blocking, jobs, page, App, Me, UiError};
use axum::extract::Path;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use medledger_client::consent::{open_reason, parse_terms, TermsInput, DAY_MS};
use medledger_client::session::hash_arg;
use medledger_client::tx::now_ms;
use medledger_types::{action, ConsentOp, ConsentTerms, Grantee, Hash, Operation, Purpose, Role, Scope};
use serde::Deserialize;

/// Requests remembered for the "my requests" list.
pub const MAX_SENT: usize = 256;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/consents", get(consents).post(grant))
        .route("/consents/{id}/revoke", post(revoke))
        .route("/requests", get(requests).post(request))
        .route("/requests/{id}/{answer}", post(respond))
}

/// The patient's own pseudonym.
pub(crate) fn my_pseudonym(me: &Me) -> Result<medledger_types::Hash, UiError> {
    me.require(&[Role::Patient], "This view")?;
    me.id().credential.as_ref().and_then(|c| c.pseudonym).ok_or_else(|| UiError::forbidden("no pseudonym"))
}

pub(crate) fn describe_terms(me: &Me, t: &ConsentTerms) -> Markup {
    let grantee = match &t.grantee {
        Grantee::Institution(i) => format!("institution {i}"),
        Grantee::Person(k) => page::who(me, k),
    };
    let actions: Vec<&str> = [(action::READ, "read"), (action::WRITE, "write")]
        .iter()
        .filter(|(b, _)| t.actions & b != 0)
        .map(|(_, n)| *n)
        .collect();
    let scope = match &t.scope {
        Scope::All => "all records".to_string(),
        Scope::ResourceTypes(ts) => ts.join(", "),
        Scope::Records(ids) => format!("{} record(s)", ids.len()),
    };
    html! {
        td.grantee { (grantee) }
        td { (actions.join(", ")) }
        td { (t.purpose.name()) }
        td { (scope) @if !t.roles.is_empty() { " · roles " (t.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")) } }
        td { (t.expires_ms.map_or("never".to_string(), page::time)) }
    }
}

fn grant_form(me: &Me) -> Markup {
    let people: Vec<_> = me
        .ui
        .identities
        .iter()
        .filter_map(|i| i.credential.as_ref().map(|c| (i, c)))
        .filter(|(_, c)| c.role != Role::Patient)
        .collect();
    html! {
        form.stack hx-post="/consents" hx-target="#grant-result" {
            label for="grantee" { "Grantee" }
            select #grantee name="grantee" required {
                @for (i, c) in &people {
                    option value=(i.session.key.public().to_hex()) { (i.name) " (" (c.role.name()) ", " (c.institution) ")" }
                }
                @for inst in &me.ui.light.genesis().institutions {
                    option value=(format!("institution:{}", inst.id)) { "institution " (inst.id) " (its staff)" }
                }
            }
            label for="grantee_key" { "…or a grantee key (hex), which takes precedence" }
            input #grantee_key name="grantee_key" size="66";
            fieldset {
                legend { "Actions" }
                label { input type="checkbox" name="read" value="1" checked; " read" }
                " "
                label { input type="checkbox" name="write" value="1"; " write" }
            }
            label for="purpose" { "Purpose" }
            select #purpose name="purpose" {
                @for p in Purpose::ALL { option value=(p.name()) { (p.name()) } }
            }
            label for="types" { "Only these resource types (comma-separated; empty: all records)" }
            input #types name="types" placeholder="Observation, Condition";
            label for="roles" { "For an institution: staff roles covered (empty: the purpose's default)" }
            input #roles name="roles" placeholder="doctor";
            label for="days" { "Expires after (days; empty: never)" }
            input #days name="days" type="number" min="1" max="36500";
            button type="submit" { "Grant consent" }
        }
        div #grant-result {}
    }
}

async fn consents(me: Me) -> Result<Html<String>, UiError> {
    let p = my_pseudonym(&me)?;
    let s = me.session();
    let list = blocking(move || s.consents(&p)).await??;
    let body = html! {
        p { "Every consent below was proven against a finalized state root. Revoking denies reads from the next block." }
        table #consents tabindex="0" {
            thead { tr { th { "Consent" } th { "Grantee" } th { "Actions" } th { "Purpose" } th { "Scope" } th { "Expires" } th { "Status" } th {} } }
            tbody {
                @for (id, t, active) in &list {
                    tr {
                        td { (page::short(&id.to_hex())) }
                        (describe_terms(&me, t))
                        td { @if *active { span.tag.ok { "active" } } @else { span.tag { "inactive" } } }
                        td {
                            @if *active {
                                form.inline hx-post=(format!("/consents/{}/revoke", id.to_hex())) hx-target="#revoke-result" {
                                    button.danger type="submit" aria-label=(format!("Revoke consent {}", &id.to_hex()[..12])) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        div #revoke-result {}
        h2 { "Grant a consent" }
        (grant_form(&me))
    };
    Ok(page::shell(&me, "Consents", body))
}

#[derive(Deserialize, Default)]
pub(crate) struct TermsForm {
    #[serde(default)]
    grantee: String,
    #[serde(default)]
    grantee_key: String,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    write: Option<String>,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    types: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    days: String,
}

impl TermsForm {
    pub(crate) fn terms(&self) -> Result<ConsentTerms, UiError> {
        let days = match self.days.trim() {
            "" => None,
            d => Some(d.parse::<u64>().ok().filter(|d| (1..=36_500).contains(d)).ok_or_else(|| {
                UiError::bad_input(format!("days: `{d}` is not a whole number of days between 1 and 36500"))
            })?),
        };
        let actions: Vec<&str> = [("read", &self.read), ("write", &self.write)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        if actions.is_empty() {
            return Err(UiError::bad_input("actions: choose read, write or both"));
        }
        let grantee = if self.grantee_key.trim().is_empty() { self.grantee.clone() } else { self.grantee_key.clone() };
        parse_terms(&TermsInput {
            grantee,
            actions: actions.join(","),
            purpose: self.purpose.clone(),
            types: Some(self.types.clone()),
            records: None,
            expires_ms: days.map(|d| now_ms() + d * DAY_MS),
            roles: Some(self.roles.clone()),
        })
        .map_err(UiError::bad_input)
    }
}

async fn grant(me: Me, Form(f): Form<TermsForm>) -> Result<Html<String>, UiError> {
    my_pseudonym(&me)?;
    let terms = f.terms()?;
    let s = me.session();
    jobs::start(&me, "Granting the consent", move || {
        let (id, _, rewrapped) = s.grant_consent(&terms)?;
        Ok(html! {
            p.notice { "Consent " (page::short(&id.to_hex())) " granted; data keys re-wrapped for the grantee on "
                (rewrapped) " record version(s). " a href="/consents" { "Refresh the list" } }
        })
    })
}

async fn revoke(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    my_pseudonym(&me)?;
    let id = hash_arg(&id, "consent id").map_err(UiError::bad_input)?;
    let s = me.session();
    jobs::start(&me, "Revoking the consent", move || {
        let (_, v) = s.transact(Operation::Consent(ConsentOp::RevokeConsent { consent_id: id }))?;
        Ok(html! { p.notice { "Revoked at height " (v["height"]) "; reads under it are denied from the next block." } })
    })
}

async fn requests(me: Me) -> Result<Html<String>, UiError> {
    if me.id().role() == Some(Role::Patient) {
        return patient_requests(me).await;
    }
    me.require(&[Role::Doctor, Role::Researcher, Role::Insurer, Role::Regulator], "Access requests")?;
    let mine: Vec<(Hash, Hash)> =
        me.ui.sent.lock().iter().filter(|(i, _, _)| *i == me.index).map(|(_, r, p)| (*r, *p)).collect();
    let s = me.session();
    let statuses = blocking(move || {
        mine.into_iter()
            .rev()
            .map(|(rid, p)| {
                let pending = s
                    .client
                    .get(&format!("/v1/patients/{}/requests", p.to_hex()))
                    .map(|v| v["pending"].as_array().into_iter().flatten().any(|r| r["id"] == rid.to_hex()));
                let status = match pending {
                    Ok(true) => "pending".to_string(),
                    // Approved requests become consents with the same id (proven on chain).
                    Ok(false) => match s.consents(&p) {
                        Ok(list) => match list.iter().find(|(c, _, _)| *c == rid) {
                            Some((_, _, true)) => "approved: consent active".into(),
                            Some((_, _, false)) => "approved, no longer active".into(),
                            None => "declined".into(),
                        },
                        // Without a consent in force the patient's consents are not ours to
                        // see: the request was declined, or approved and has since ended.
                        Err(e) if e.contains("not_permitted") => "declined, or approved and since ended".into(),
                        Err(e) => e,
                    },
                    Err(e) => e,
                };
                (rid, status)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let body = html! {
        h2 { "My requests" }
        @if statuses.is_empty() { p { "You have sent no request from this UI since it started." } }
        @else {
            table #my-requests tabindex="0" {
                thead { tr { th { "Request" } th { "Status" } } }
                tbody { @for (rid, st) in &statuses { tr { td { (page::short(&rid.to_hex())) } td.status { (st) } } } }
            }
        }
        h2 { "Ask a patient for access" }
        p { "Ask a patient for access. Your reason is sealed for the patient, the regulators and you; it is never plaintext on chain." }
        form.stack hx-post="/requests" hx-target="#request-result" {
            label for="patient" { "Patient pseudonym" }
            input #patient name="patient" required size="66" autocomplete="off";
            label for="purpose" { "Purpose" }
            select #purpose name="purpose" {
                @for p in Purpose::ALL.iter().filter(|p| me.id().role().is_some_and(|r| p.fits(r))) { option value=(p.name()) { (p.name()) } }
            }
            label for="types" { "Only these resource types (empty: all records)" }
            input #types name="types";
            label for="reason" { "Reason" }
            textarea #reason name="reason" required maxlength="512" {}
            label for="days" { "For how many days (empty: until revoked)" }
            input #days name="days" type="number" min="1" max="36500";
            button type="submit" { "Send the request" }
        }
        div #request-result {}
        p { "The patient's answer appears as a consent; read what it grants under " a href="/patients" { "Patients" } "." }
    };
    Ok(page::shell(&me, "Request access", body))
}

#[derive(Deserialize)]
struct RequestForm {
    patient: String,
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    terms: TermsForm,
}

async fn request(me: Me, Form(mut f): Form<RequestForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Doctor, Role::Researcher, Role::Insurer, Role::Regulator], "Requesting access")?;
    let patient = pseudonym(&f.patient)?;
    if f.reason.trim().is_empty() {
        return Err(UiError::bad_input("reason: say why you need access"));
    }
    f.terms.grantee = me.id().session.key.public().to_hex();
    f.terms.read = Some("1".into());
    let terms = f.terms.terms()?;
    let s = me.session();
    let reason = f.reason;
    let (ui, index) = (me.ui.clone(), me.index);
    jobs::start(&me, "Sending the access request", move || {
        let (id, _) = s.request_access(&patient, terms, &reason)?;
        let mut sent = ui.sent.lock();
        if sent.len() == MAX_SENT {
            sent.remove(0);
        }
        sent.push((index, id, patient));
        drop(sent);
        Ok(
            html! { p.notice { "Request " (page::short(&id.to_hex())) " sent; the patient sees it under Access requests." } },
        )
    })
}

async fn patient_requests(me: Me) -> Result<Html<String>, UiError> {
    let p = my_pseudonym(&me)?;
    let s = me.session();
    let v = blocking(move || s.client.get(&format!("/v1/patients/{}/requests", p.to_hex()))).await??;
    let key = me.id().session.key.clone();
    let pending = v["pending"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if pending.is_empty() { p { "No request waits for your answer." } }
        @else {
            table #requests tabindex="0" {
                thead { tr { th { "Request" } th { "From" } th { "Purpose" } th { "Reason" } th {} } }
                tbody {
                    @for r in &pending {
                        @let id = r["id"].as_str().unwrap_or("");
                        tr {
                            td { (page::short(id)) }
                            td { (page::short(r["requester"].as_str().unwrap_or(""))) }
                            td { (r["terms"]["purpose"].as_str().unwrap_or("")) }
                            td { (open_reason(&r["reason"], id, &key)) }
                            td {
                                form.inline hx-post=(format!("/requests/{id}/approve")) hx-target="#answer-result" {
                                    button type="submit" { "Approve" }
                                }
                                " "
                                form.inline hx-post=(format!("/requests/{id}/decline")) hx-target="#answer-result" {
                                    button.plain type="submit" { "Decline" }
                                }
                            }
                        }
                    }
                }
            }
        }
        div #answer-result {}
    };
    Ok(page::shell(&me, "Access requests", body))
}

async fn respond(me: Me, Path((id, answer)): Path<(String, String)>) -> Result<Html<String>, UiError> {
    my_pseudonym(&me)?;
    let id = hash_arg(&id, "request id").map_err(UiError::bad_input)?;
    let approve = match answer.as_str() {
        "approve" => true,
        "decline" => false,
        other => return Err(UiError::bad_input(format!("answer: `{other}` (approve or decline)"))),
    };
    let s = me.session();
    jobs::start(&me, if approve { "Approving the request" } else { "Declining the request" }, move || {
        let (_, n) = s.respond_access(&id, approve)?;
        Ok(
            html! { p.notice { @if approve { "Approved: it is now a consent; keys re-wrapped on " (n) " record version(s)." } @else { "Declined." } } },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> TermsForm {
        TermsForm {
            grantee: "institution:hospital-a".into(),
            read: Some("1".into()),
            purpose: "treatment".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_form_makes_terms_and_bad_fields_are_named() {
        let t = form().terms().unwrap();
        assert_eq!(t.grantee, Grantee::Institution("hospital-a".into()));
        assert_eq!(t.actions, action::READ);
        assert_eq!(t.roles, vec![Role::Doctor]);
        let cases: Vec<(TermsForm, &str)> = vec![
            (TermsForm { read: None, ..form() }, "actions"),
            (TermsForm { days: "0".into(), ..form() }, "days"),
            (TermsForm { days: "ten".into(), ..form() }, "days"),
            (TermsForm { grantee: "zz".into(), ..form() }, "grantee"),
            (TermsForm { grantee_key: "12ab".into(), ..form() }, "grantee"),
            (TermsForm { purpose: "fun".into(), ..form() }, "purpose"),
            (TermsForm { roles: "wizard".into(), ..form() }, "roles"),
        ];
        for (f, field) in cases {
            let e = f.terms().unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(field), "{field}: {}", e.message);
        }
    }
}
