//! Referrals: the patient's referrals (approve, share the records' keys, cancel), the doctor's
//! inbox and outbox with the workflow's actions and a form to refer a patient, the institution
//! admin's referral board, and the regulator's statistics per institution pair.
//!
//! Patients are named in POST bodies only (the referral form), never in a URL.
//!
//! [`monitoring`] holds the remote-monitoring views.

pub mod monitoring;

use crate::{blocking, jobs, page, App, Me, UiError};
use axum::extract::Path;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use medledger_client::care::Proposal;
use medledger_client::drugs::query_escape;
use medledger_client::session::hash_arg;
use medledger_types::care::{CareOp, Mode};
use medledger_types::{Hash, Role};
use serde::Deserialize;
use serde_json::Value;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/referrals", get(referrals_page).post(propose))
        .route("/referrals/{id}/{action}", post(act))
        .merge(monitoring::routes())
}

const ROLES: [Role; 4] = [Role::Patient, Role::Doctor, Role::InstitutionAdmin, Role::Regulator];

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn status_tag(status: &str) -> Markup {
    let class = match status {
        "completed" | "accepted" | "in-progress" => "tag ok",
        "rejected" | "failed" | "cancelled" => "tag warn",
        _ => "tag",
    };
    html! { span class=(class) { (status) } }
}

fn reason_form(id: &str, action: &str, label: &str) -> Markup {
    let field = format!("reason-{action}-{}", &id[..12.min(id.len())]);
    html! {
        form.inline hx-post=(format!("/referrals/{id}/{action}")) hx-target=(format!("#r-{id}-result")) {
            label for=(field) { "Reason" }
            input id=(field) name="reason" required maxlength="512";
            button type="submit" { (label) }
        }
    }
}

fn button(id: &str, action: &str, label: &str) -> Markup {
    html! {
        form.inline hx-post=(format!("/referrals/{id}/{action}")) hx-target=(format!("#r-{id}-result")) {
            button type="submit" aria-label=(format!("{label} referral {}", &id[..12.min(id.len())])) { (label) }
        }
    }
}

/// The actions `me` may take on referral `r`, as forms.
fn actions(me: &Me, r: &Value) -> Markup {
    let id = s(r, "id");
    let status = s(r, "status");
    let open = !matches!(status, "rejected" | "completed" | "failed" | "cancelled");
    let ready = r["patient_approved"] == true && r["doctor_confirmed"] == true;
    let key = me.session().key.public().to_hex();
    let cred = me.id().credential.as_ref();
    let inst = cred.map(|c| c.institution.as_str()).unwrap_or("");
    let role = me.id().role();
    let mine_as_patient = cred.and_then(|c| c.pseudonym).map(|p| p.to_hex()).as_deref() == Some(s(r, "patient"));
    let treating = s(r, "treating_doctor") == key;
    let receiving = s(r, "receiving_doctor") == key;
    let fulfiller = s(r, "to") == inst && matches!(role, Some(Role::Doctor | Role::InstitutionAdmin));
    html! {
        @if open {
            @if mine_as_patient && r["patient_approved"] != true { (button(id, "approve", "Approve")) }
            @if mine_as_patient && !r["receiving_doctor"].is_null() { (button(id, "share", "Share my records' keys")) }
            @if treating && r["doctor_confirmed"] != true { (button(id, "confirm", "Confirm")) }
            @if fulfiller && ready && status == "requested" {
                @if role == Some(Role::Doctor) {
                    form.inline hx-post=(format!("/referrals/{id}/accept")) hx-target=(format!("#r-{id}-result")) {
                        label for=(format!("mode-{id}")) { "Mode" }
                        select id=(format!("mode-{id}")) name="mode" {
                            option value="remote" { "remote consultation" }
                            option value="on-site" { "on-site visit" }
                        }
                        label for=(format!("appointment-{id}")) { "Appointment (UTC)" }
                        input id=(format!("appointment-{id}")) name="appointment" type="datetime-local" required;
                        button type="submit" { "Accept" }
                    }
                }
                (reason_form(id, "reject", "Reject"))
            }
            @if fulfiller && status == "accepted" { (button(id, "start", "Start")) }
            @if receiving && status == "in-progress" {
                form.inline hx-post=(format!("/referrals/{id}/complete")) hx-target=(format!("#r-{id}-result")) {
                    label for=(format!("report-{id}")) { "Report record id" }
                    input id=(format!("report-{id}")) name="report" required size="66" pattern="[0-9a-fA-F]{64}";
                    button type="submit" { "Complete" }
                }
            }
            @if fulfiller && status == "in-progress" { (reason_form(id, "fail", "Fail")) }
            @if mine_as_patient || treating { (reason_form(id, "cancel", "Cancel")) }
        }
        div id=(format!("r-{id}-result")) {}
    }
}

fn table(me: &Me, list: &[Value], table_id: &str, caption: &str) -> Markup {
    html! {
        @if list.is_empty() { p { "No referrals." } }
        @else {
            table id=(table_id) tabindex="0" {
                caption { (caption) }
                thead { tr { th { "Referral" } th { "From → to" } th { "Specialty" } th { "Status" } th { "Appointment" } th { "Steps" } th { "Actions" } } }
                tbody {
                    @for r in list {
                        tr data-referral=(s(r, "id")) {
                            td { (page::short(s(r, "id"))) }
                            td { (s(r, "from")) " → " (s(r, "to")) }
                            td { (medledger_types::care::specialty::name(s(r, "specialty"))) }
                            td.status {
                                (status_tag(s(r, "status")))
                                @if let Some(a) = r["awaiting"].as_str() { br; small { "awaits " (a) } }
                            }
                            td {
                                @if let Some(t) = r["appointment_ms"].as_u64() {
                                    (page::time(t)) " · " (s(r, "mode"))
                                    @if let Some(d) = r["receiving_doctor"].as_str() { br; small { "with " (page::who_hex(me, d)) } }
                                } @else { "—" }
                            }
                            td {
                                ol.steps {
                                    @for st in r["history"].as_array().into_iter().flatten() {
                                        li { (s(st, "action")) " by " (page::who_hex(me, s(st, "by"))) " at height " (st["height"]) }
                                    }
                                }
                            }
                            td { (actions(me, r)) }
                        }
                    }
                }
            }
        }
    }
}

fn list_of(v: &Value) -> Vec<Value> {
    v["referrals"].as_array().cloned().unwrap_or_default()
}

fn propose_form(me: &Me) -> Markup {
    let own = me.id().credential.as_ref().map(|c| c.institution.clone()).unwrap_or_default();
    let patients: Vec<_> = me
        .ui
        .identities
        .iter()
        .filter_map(|i| i.credential.as_ref().and_then(|c| c.pseudonym).map(|p| (i.name.clone(), p)))
        .collect();
    html! {
        form.stack hx-post="/referrals" hx-target="#propose-result" {
            label for="patient" { "Patient" }
            select #patient name="patient" required {
                @for (name, p) in &patients { option value=(p.to_hex()) { (name) } }
            }
            label for="to" { "Receiving institution" }
            select #to name="to" required {
                @for inst in me.ui.light.genesis().institutions.iter().filter(|i| i.id != own) {
                    option value=(inst.id) { (inst.name) }
                }
            }
            label for="specialty" { "Specialty (practice setting, SNOMED CT)" }
            input #specialty name="specialty" required maxlength="64" placeholder="Cardiology" list="specialties" aria-describedby="specialty-hint";
            small #specialty-hint { "A practice setting by name or SNOMED CT code; nothing else reaches the chain." }
            datalist #specialties {
                @for (code, name) in medledger_types::care::specialty::ALL { option value=(name) { (name) " (" (code) ")" } }
            }
            label for="records" { "Records the receiving doctor may read (ids, comma-separated)" }
            input #records name="records" required size="66";
            button type="submit" { "Refer the patient" }
        }
        div #propose-result {}
    }
}

async fn referrals_page(me: Me) -> Result<Html<String>, UiError> {
    me.require(&ROLES, "Referrals")?;
    let sess = me.session();
    let role = me.id().role();
    let cred = me.id().credential.clone();
    let inst = cred.as_ref().map(|c| c.institution.clone()).unwrap_or_default();
    let body = match role {
        Some(Role::Patient) => {
            let p = crate::consent::my_pseudonym(&me)?;
            let v = blocking(move || sess.client.get(&format!("/v1/care/patients/{}/referrals", p.to_hex()))).await??;
            html! {
                p { "Referrals of you to another institution. Approving lets the receiving institution act; once it accepts, its doctor may read the records the referral names until the referral closes. Share your records' keys so that doctor can decrypt them." }
                (table(&me, &list_of(&v), "my-referrals", "My referrals"))
            }
        }
        Some(Role::Regulator) => {
            let v = blocking(move || sess.client.get("/v1/care/stats")).await??;
            let empty = Vec::new();
            let pairs = v["pairs"].as_array().unwrap_or(&empty);
            let regions = v["regions"].as_array().unwrap_or(&empty);
            html! {
                p { "Referral counts and turnaround per institution pair and per region pair. No patient appears here." }
                (stats_table(pairs, "referral-stats", "Referral statistics by institution pair"))
                (stats_table(regions, "referral-region-stats", "Referral statistics by region pair"))
            }
        }
        _ => {
            let q = query_escape(&inst);
            let (inbox, outbox) = blocking(move || {
                let inbox = sess.client.get(&format!("/v1/care/institutions/{q}/referrals?box=inbox"))?;
                let outbox = sess.client.get(&format!("/v1/care/institutions/{q}/referrals?box=outbox"))?;
                Ok::<_, String>((inbox, outbox))
            })
            .await??;
            html! {
                h2 { "Inbox: referrals to " (inst) }
                (table(&me, &list_of(&inbox), "inbox", "Inbox"))
                h2 { "Outbox: referrals from " (inst) }
                (table(&me, &list_of(&outbox), "outbox", "Outbox"))
                @if role == Some(Role::Doctor) {
                    h2 { "Refer a patient" }
                    p { "You are the treating doctor; the patient approves before the receiving institution sees the referral." }
                    (propose_form(&me))
                }
            }
        }
    };
    let title = match role {
        Some(Role::Regulator) => "Referral statistics",
        Some(Role::InstitutionAdmin) => "Referral board",
        _ => "Referrals",
    };
    Ok(page::shell(&me, title, body))
}

fn stats_table(rows: &[Value], id: &str, caption: &str) -> Markup {
    html! {
        table id=(id) tabindex="0" {
            caption { (caption) }
            thead { tr { th { "From" } th { "To" } th { "Requested" } th { "Accepted" } th { "Completed" } th { "Rejected" } th { "Failed" } th { "Cancelled" } th { "Mean time to acceptance" } th { "Mean turnaround" } } }
            tbody {
                @for p in rows {
                    tr {
                        td { (s(p, "from")) } td { (s(p, "to")) }
                        td { (p["requested"]) } td { (p["accepted"]) } td { (p["completed"]) }
                        td { (p["rejected"]) } td { (p["failed"]) } td { (p["cancelled"]) }
                        td { (minutes(&p["mean_accept_ms"])) } td { (minutes(&p["mean_turnaround_ms"])) }
                    }
                }
            }
        }
    }
}

fn minutes(v: &Value) -> String {
    v.as_u64().map_or("—".to_string(), |ms| format!("{:.1} min", ms as f64 / 60_000.0))
}

#[derive(Deserialize, Default)]
struct ProposeForm {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    specialty: String,
    #[serde(default)]
    records: String,
}

async fn propose(me: Me, Form(f): Form<ProposeForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Doctor], "Referring a patient")?;
    let patient = hash_arg(&f.patient, "patient").map_err(UiError::bad_input)?;
    let records = f
        .records
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| hash_arg(r, "record id"))
        .collect::<Result<Vec<Hash>, _>>()
        .map_err(UiError::bad_input)?;
    let s = me.session();
    let p = Proposal {
        patient,
        doctor: s.key.public(),
        to: f.to.trim().to_string(),
        specialty: f.specialty.trim().to_string(),
        records,
    };
    jobs::start(&me, "Referring the patient", move || {
        let (id, _) = s.propose_referral(p)?;
        Ok(
            html! { p.notice { "Referral " (page::short(&id.to_hex())) " proposed; it waits for the patient's approval. " a href="/referrals" { "Refresh the list" } } },
        )
    })
}

#[derive(Deserialize, Default)]
struct ActForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    appointment: String,
    #[serde(default)]
    report: String,
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM`, read as UTC) or RFC 3339, in ms.
fn appointment_ms(s: &str) -> Result<u64, UiError> {
    let s = s.trim();
    let full = if s.len() == 16 { format!("{s}:00Z") } else { s.to_string() };
    medledger_types::time::parse_rfc3339_ms(&full).map_err(|e| UiError::bad_input(format!("appointment: {e}")))
}

async fn act(
    me: Me,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActForm>,
) -> Result<Html<String>, UiError> {
    me.require(&ROLES[..3], "Acting on a referral")?;
    let referral_id = hash_arg(&id, "referral id").map_err(UiError::bad_input)?;
    let s = me.session();
    if action == "share" {
        me.require(&[Role::Patient], "Sharing records' keys")?;
        return jobs::start(&me, "Sharing the records' keys", move || {
            let n = s.share_referral(&referral_id)?;
            Ok(html! { p.notice { "Keys of " (n) " record version(s) wrapped for the receiving doctor." } })
        });
    }
    let reason = f.reason.trim().to_string();
    let (title, op) = match action.as_str() {
        "approve" => ("Approving the referral", CareOp::ApproveReferral { referral_id }),
        "confirm" => ("Confirming the referral", CareOp::ConfirmReferral { referral_id }),
        "accept" => {
            let mode = Mode::parse(if f.mode.is_empty() { "remote" } else { &f.mode }).map_err(UiError::bad_input)?;
            let appointment_ms = appointment_ms(&f.appointment)?;
            (
                "Accepting the referral",
                CareOp::AcceptReferral { referral_id, mode, appointment_ms, doctor: s.key.public() },
            )
        }
        "reject" => ("Rejecting the referral", CareOp::RejectReferral { referral_id, reason }),
        "start" => ("Starting the consultation", CareOp::StartReferral { referral_id }),
        "complete" => {
            let report = hash_arg(&f.report, "report record id").map_err(UiError::bad_input)?;
            ("Completing the referral", CareOp::CompleteReferral { referral_id, report })
        }
        "fail" => ("Recording the failure", CareOp::FailReferral { referral_id, reason }),
        "cancel" => ("Cancelling the referral", CareOp::CancelReferral { referral_id, reason }),
        other => return Err(UiError::not_found(format!("no referral action `{other}`"))),
    };
    jobs::start(&me, title, move || {
        let v = s.care(op)?;
        Ok(html! { p.notice { "Done at height " (v["height"]) ". " a href="/referrals" { "Refresh the list" } } })
    })
}
