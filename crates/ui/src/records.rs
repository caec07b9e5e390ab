//! Records: the patient's records (rendered readably, amendments reviewed as a diff, erasure,
//! FHIR Bundle export); the doctor's patients, consent-checked reads (break-glass with a
//! mandatory reason), writing from a form or FHIR JSON, and amending.

use crate::consent::my_pseudonym;
use crate::identity::pseudonym;
use crate::{blocking, jobs, page, App, Me, UiError};
use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use medledger_client::session::hash_arg;
use medledger_state::records::{RecordHead, RecordVersion, VersionStatus};
use medledger_types::{Hash, Operation, Purpose, RecordsOp, Role};
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/records", get(my_records))
        .route("/records/{id}", get(record_page))
        .route("/records/{id}/read", post(read))
        .route("/records/{id}/review", post(review))
        .route("/records/{id}/erase", post(erase))
        .route("/export", post(export))
        .route("/patients", get(patients).post(patient_records))
        .route("/write", get(write_form).post(write))
}

const READERS: &[Role] = &[Role::Doctor, Role::Researcher, Role::Insurer, Role::Regulator, Role::Pharmacy];

fn record_id(s: &str) -> Result<Hash, UiError> {
    hash_arg(s, "record id").map_err(UiError::bad_input)
}

/// The table of a patient's records (from the node's list; each record page proves its own).
fn records_table(list: &Value) -> Markup {
    let records = list["records"].as_array().cloned().unwrap_or_default();
    html! {
        @if records.is_empty() { p { "No records." } }
        @else {
            table.records tabindex="0" {
                thead { tr { th { "Record" } th { "Type" } th { "Holder" } th { "Version" } th { "Status" } } }
                tbody {
                    @for r in &records {
                        @let h = &r["record"];
                        @let id = h["id"].as_str().unwrap_or("");
                        @let holder = r["versions"].as_array().and_then(|v| v.last()).map(|v| v["holder"].as_str().unwrap_or("").to_string()).unwrap_or_default();
                        @let pending = r["versions"].as_array().into_iter().flatten().filter(|v| v["status"] == "pending").count();
                        tr {
                            td { a href=(format!("/records/{id}")) { (page::short(id)) } }
                            td { (h["resource_type"].as_str().unwrap_or("")) }
                            td { (holder) }
                            td { "v" (h["current_version"]) @if h["latest_version"] != h["current_version"] { " (latest v" (h["latest_version"]) ")" } }
                            td {
                                @if !h["erased_at"].is_null() { span.tag.bad { "erased" } }
                                @else if !h["erasure_requested_at"].is_null() { span.tag.warn { "erasure requested" } }
                                @else if pending > 0 { span.tag.warn { (pending) " amendment(s) to review" } }
                                @else { span.tag.ok { "current" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn my_records(me: Me) -> Result<Html<String>, UiError> {
    let p = my_pseudonym(&me)?;
    let s = me.session();
    let list = blocking(move || s.client.get(&format!("/v1/patients/{}/records", p.to_hex()))).await??;
    let body = html! {
        (records_table(&list))
        h2 { "Export" }
        form method="post" action="/export" {
            p { "Every record you may read, decrypted and checked on your side, as one FHIR Bundle (each read is logged)." }
            button type="submit" { "Download FHIR Bundle" }
        }
    };
    Ok(page::shell(&me, "My records", body))
}

/// A FHIR resource rendered for people: the common clinical types get their fields; anything
/// else its type; raw JSON on demand.
pub fn render_fhir(v: &Value) -> Markup {
    let text = |c: &Value| -> String {
        c["text"]
            .as_str()
            .map(str::to_string)
            .or_else(|| c["coding"][0]["display"].as_str().map(str::to_string))
            .or_else(|| c["coding"][0]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let rt = v["resourceType"].as_str().unwrap_or("");
    html! {
        div.fhir {
            dl.kv {
                dt { "Type" } dd { (rt) }
                @match rt {
                    "Observation" => {
                        dt { "What" } dd.what { (text(&v["code"])) }
                        @if let Some(q) = v.get("valueQuantity") {
                            dt { "Value" } dd.value { (q["value"]) " " (q["unit"].as_str().or(q["code"].as_str()).unwrap_or("")) }
                        }
                        @if let Some(s) = v["valueString"].as_str() { dt { "Value" } dd.value { (s) } }
                        @if let Some(c) = v.get("valueCodeableConcept") { dt { "Value" } dd.value { (text(c)) } }
                        @for c in v["component"].as_array().into_iter().flatten() {
                            dt { (text(&c["code"])) } dd { (c["valueQuantity"]["value"]) " " (c["valueQuantity"]["unit"].as_str().unwrap_or("")) }
                        }
                        dt { "When" } dd { (v["effectiveDateTime"].as_str().unwrap_or("—")) }
                        dt { "Status" } dd { (v["status"].as_str().unwrap_or("")) }
                    }
                    "Condition" => {
                        dt { "Condition" } dd.what { (text(&v["code"])) }
                        dt { "Clinical status" } dd { (text(&v["clinicalStatus"])) }
                        @if let Some(o) = v["onsetDateTime"].as_str() { dt { "Onset" } dd { (o) } }
                        @for n in v["note"].as_array().into_iter().flatten() { dt { "Note" } dd { (n["text"].as_str().unwrap_or("")) } }
                    }
                    "Encounter" => {
                        dt { "Class" } dd { (v["class"]["display"].as_str().or(v["class"]["code"].as_str()).unwrap_or("")) }
                        dt { "Status" } dd { (v["status"].as_str().unwrap_or("")) }
                        @for r in v["reasonCode"].as_array().into_iter().flatten() { dt { "Reason" } dd.what { (text(r)) } }
                        @if let Some(s) = v["period"]["start"].as_str() { dt { "Period" } dd { (s) " – " (v["period"]["end"].as_str().unwrap_or("")) } }
                    }
                    "DiagnosticReport" => {
                        dt { "Report" } dd.what { (text(&v["code"])) }
                        dt { "Status" } dd { (v["status"].as_str().unwrap_or("")) }
                        @if let Some(c) = v["conclusion"].as_str() { dt { "Conclusion" } dd { (c) } }
                        @for r in v["result"].as_array().into_iter().flatten() { dt { "Result" } dd { (r["display"].as_str().or(r["reference"].as_str()).unwrap_or("")) } }
                    }
                    "Bundle" => {
                        dt { "Entries" } dd { (v["entry"].as_array().map_or(0, Vec::len)) }
                    }
                    _ => {}
                }
            }
            (page::raw_json(v))
        }
    }
}

fn versions_table(head: &RecordHead, versions: &[RecordVersion]) -> Markup {
    html! {
        table.versions tabindex="0" {
            thead { tr { th { "Version" } th { "Status" } th { "Holder" } th { "Height" } th { "SHA-256 (anchored)" } } }
            tbody {
                @for v in versions {
                    tr {
                        td { "v" (v.version) @if v.version == head.current_version { " (current)" } }
                        td { (match v.status { VersionStatus::Current => "current", VersionStatus::Pending => "pending", VersionStatus::Rejected => "rejected" }) }
                        td { (v.holder) }
                        td { (v.height) }
                        td { (page::short(&v.content_hash.to_hex())) }
                    }
                }
            }
        }
    }
}

/// A line diff of two pretty-printed JSON documents (longest common subsequence).
pub fn diff(old: &Value, new: &Value) -> Markup {
    let a: Vec<String> = serde_json::to_string_pretty(old).unwrap_or_default().lines().map(str::to_string).collect();
    let b: Vec<String> = serde_json::to_string_pretty(new).unwrap_or_default().lines().map(str::to_string).collect();
    // Records are small (the vault bounds them); cap the table anyway.
    if a.len() * b.len() > 4_000_000 {
        return html! { p { "The versions are too large to compare here; see the raw JSON." } };
    }
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] { l[i + 1][j + 1] + 1 } else { l[i + 1][j].max(l[i][j + 1]) };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', &a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || l[i + 1][j] >= l[i][j + 1]) {
            out.push(('-', &a[i]));
            i += 1;
        } else {
            out.push(('+', &b[j]));
            j += 1;
        }
    }
    html! {
        div.diff role="region" aria-label="Changes from the current version" {
            @for (k, line) in out {
                @match k {
                    '+' => { div.add { pre { "+ " (line) } } }
                    '-' => { div.del { pre { "- " (line) } } }
                    _ => { div { pre { "  " (line) } } }
                }
            }
        }
    }
}

fn parse_plain(plain: &[u8]) -> Value {
    serde_json::from_slice(plain).unwrap_or_else(|_| json!({ "unparsed": String::from_utf8_lossy(plain) }))
}

async fn record_page(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    let id = record_id(&id)?;
    let s = me.session();
    let (head, versions) = blocking(move || s.record(&id)).await??;
    let is_patient = me.id().credential.as_ref().and_then(|c| c.pseudonym) == Some(head.patient);
    let title = format!("{} {}", head.resource_type, &id.to_hex()[..12]);
    let status = html! {
        p.verified { "Anchors proven against a finalized state root." }
        (versions_table(&head, &versions))
    };
    if let Some(h) = head.erased_at {
        let body = html! {
            p.erased role="status" { span.tag.bad { "erased" } " The holder destroyed the data and its keys at height " (h) ". The hashes stay on chain; the content is gone." }
            (status)
        };
        return Ok(page::shell(&me, &title, body));
    }
    if !is_patient {
        let body = html! { (status) (read_form(&me, &id)) div #read-result {} };
        return Ok(page::shell(&me, &title, body));
    }
    // The patient reads the current version (logged like any read) and each pending amendment.
    let s = me.session();
    let pending: Vec<u32> = versions.iter().filter(|v| v.status == VersionStatus::Pending).map(|v| v.version).collect();
    let current = head.current_version;
    let erasing = head.erasure_requested_at.is_some();
    let reads = blocking(move || {
        let cur = s.get(&id, Some(current), Purpose::Treatment, None).map(|(p, _)| parse_plain(&p));
        let pend: Vec<_> = pending
            .iter()
            .map(|v| (*v, s.get(&id, Some(*v), Purpose::Treatment, None).map(|(p, _)| parse_plain(&p))))
            .collect();
        (cur, pend)
    })
    .await?;
    let (cur, pend) = reads;
    let body = html! {
        @match &cur {
            Ok(v) => { h2 { "Current version (v" (current) ")" } p.verified { "Decrypted here and checked against its anchor." } (render_fhir(v)) }
            Err(e) => { (page::error_box(e)) }
        }
        @for (v, r) in &pend {
            h2 { "Amendment v" (v) ", awaiting your review" }
            @match (r, &cur) {
                (Ok(new), Ok(old)) => { (diff(old, new)) }
                (Err(e), _) | (_, Err(e)) => { (page::error_box(e)) }
            }
            form.inline hx-post=(format!("/records/{}/review", id.to_hex())) hx-target="#review-result" {
                input type="hidden" name="version" value=(v);
                input type="hidden" name="accept" value="1";
                button type="submit" { "Accept v" (v) }
            }
            " "
            form.inline hx-post=(format!("/records/{}/review", id.to_hex())) hx-target="#review-result" {
                input type="hidden" name="version" value=(v);
                input type="hidden" name="accept" value="0";
                button.plain type="submit" { "Reject v" (v) }
            }
        }
        div #review-result {}
        (status)
        h2 { "Erase this record" }
        @if erasing { p { span.tag.warn { "erasure requested" } " The holder confirms on chain once the data and its keys are destroyed." } }
        @else {
            form.stack hx-post=(format!("/records/{}/erase", id.to_hex())) hx-target="#erase-result"
                hx-confirm="Erase this record for good? The data and its keys are destroyed and cannot be recovered." {
                div.warning { "Erasure destroys the encrypted data and every key to it. It cannot be undone. The hashes stay on chain." }
                label { input type="checkbox" name="confirm" value="yes" required; " I understand that this cannot be undone" }
                button.danger type="submit" { "Erase" }
            }
        }
        div #erase-result {}
    };
    Ok(page::shell(&me, &title, body))
}

fn read_form(me: &Me, id: &Hash) -> Markup {
    let doctor = me.id().role() == Some(Role::Doctor);
    let purposes: Vec<Purpose> =
        Purpose::ALL.iter().copied().filter(|p| me.id().role().is_some_and(|r| p.fits(r))).collect();
    html! {
        h2 { "Read" }
        form.stack #read-form hx-post=(format!("/records/{}/read", id.to_hex())) hx-target="#read-result" {
            label for="purpose" { "Purpose" }
            select #purpose name="purpose" {
                @for p in &purposes { option value=(p.name()) { (p.name()) } }
            }
            @if doctor {
                details.breakglass {
                    summary { "Emergency: break-glass" }
                    div.warning role="note" {
                        strong { "Break-glass reads bypass consent. " }
                        "They are flagged to the patient and every regulator, with your reason, and reviewed."
                    }
                    label for="break_glass" { "Reason (mandatory for break-glass)" }
                    textarea #break_glass name="break_glass" maxlength="512" {}
                    label { input type="checkbox" name="emergency" value="yes"; " This is an emergency: read without consent" }
                }
            }
            button type="submit" { "Read" }
        }
    }
}

#[derive(Deserialize)]
struct ReadForm {
    purpose: String,
    #[serde(default)]
    break_glass: String,
    #[serde(default)]
    emergency: Option<String>,
}

async fn read(me: Me, Path(id): Path<String>, Form(f): Form<ReadForm>) -> Result<Html<String>, UiError> {
    me.require(READERS, "Reading another patient's record")?;
    let id = record_id(&id)?;
    let purpose = Purpose::parse(&f.purpose).map_err(UiError::bad_input)?;
    let bg = match (f.emergency.is_some(), f.break_glass.trim()) {
        (false, _) => None,
        (true, "") => return Err(UiError::bad_input("break-glass: a reason is mandatory")),
        (true, r) => {
            me.require(&[Role::Doctor], "Break-glass")?;
            Some(r.to_string())
        }
    };
    let s = me.session();
    let (plain, meta) = blocking(move || s.get(&id, None, purpose, bg)).await??;
    let v = parse_plain(&plain);
    Ok(page::fragment(html! {
        p.verified role="status" {
            "Read v" (meta["version"]) " from " (meta["holder"].as_str().unwrap_or("")) ": "
            span.outcome { (meta["outcome"].as_str().unwrap_or("")) }
            "; decrypted here and checked against the anchor. Access event " (page::short(meta["access_event"].as_str().unwrap_or(""))) "."
        }
        (render_fhir(&v))
        p { a href=(format!("/write?amend={}", id.to_hex())) { "Amend this record" } }
    }))
}

#[derive(Deserialize)]
struct ReviewForm {
    version: u32,
    accept: String,
}

async fn review(me: Me, Path(id): Path<String>, Form(f): Form<ReviewForm>) -> Result<Html<String>, UiError> {
    my_pseudonym(&me)?;
    let record_id = record_id(&id)?;
    let accept = f.accept == "1";
    let s = me.session();
    let version = f.version;
    jobs::start(&me, format!("{} v{version}", if accept { "Accepting" } else { "Rejecting" }), move || {
        s.transact(Operation::Records(RecordsOp::ReviewAmendment { record_id, version, accept }))?;
        Ok(
            html! { p.notice { "Version " (version) @if accept { " accepted: it is now current." } @else { " rejected: kept, never current." } } },
        )
    })
}

#[derive(Deserialize)]
struct EraseForm {
    #[serde(default)]
    confirm: String,
}

async fn erase(me: Me, Path(id): Path<String>, Form(f): Form<EraseForm>) -> Result<Html<String>, UiError> {
    my_pseudonym(&me)?;
    let id = record_id(&id)?;
    if f.confirm != "yes" {
        return Err(UiError::bad_input("confirm: tick the box to confirm that the erasure cannot be undone"));
    }
    let s = me.session();
    jobs::start(&me, "Erasing the record", move || {
        s.erase(&id, true)?;
        let (head, _) = s.record(&id)?;
        Ok(
            html! { p.notice.erased { "Record " span.tag.bad { "erased" } " at height " (head.erased_at.unwrap_or(0)) ": the holder destroyed the data and its keys." } },
        )
    })
}

async fn export(me: Me) -> Result<Response, UiError> {
    let p = my_pseudonym(&me)?;
    let s = me.session();
    let (bundle, _skipped) = blocking(move || s.export(&p, Purpose::Treatment)).await??;
    let body = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"medledger-bundle.json\""),
        ],
        body,
    )
        .into_response())
}

fn patient_picker(me: &Me) -> Markup {
    html! {
        form.stack method="post" action="/patients" {
            label for="patient" { "Patient pseudonym" }
            input #patient name="patient" required size="66" autocomplete="off" list="known-patients";
            datalist #known-patients {
                @for i in &me.ui.identities {
                    @if let Some(p) = i.credential.as_ref().and_then(|c| c.pseudonym) { option value=(p.to_hex()) { (i.name) } }
                }
            }
            button type="submit" { "Show records" }
        }
    }
}

async fn patients(me: Me) -> Result<Html<String>, UiError> {
    me.require(READERS, "The patients view")?;
    // The patients this UI knows (its key directory) whose records the node lets you list.
    let s = me.session();
    let known: Vec<(String, Hash)> = me
        .ui
        .identities
        .iter()
        .filter_map(|i| i.credential.as_ref().and_then(|c| c.pseudonym).map(|p| (i.name.clone(), p)))
        .collect();
    let visible = blocking(move || {
        known
            .into_iter()
            .filter_map(|(n, p)| s.client.get(&format!("/v1/patients/{}/records", p.to_hex())).ok().map(|l| (n, p, l)))
            .collect::<Vec<_>>()
    })
    .await?;
    let body = html! {
        h2 { "Patients you may access" }
        @if visible.is_empty() { p { "None of the patients this UI knows has granted you access." } }
        @for (name, p, list) in &visible {
            h3 { (name) " " (page::short(&p.to_hex())) }
            (records_table(list))
        }
        h2 { "Find a patient" }
        (patient_picker(&me))
    };
    Ok(page::shell(&me, "Patients", body))
}

#[derive(Deserialize)]
struct PatientForm {
    patient: String,
}

async fn patient_records(me: Me, Form(f): Form<PatientForm>) -> Result<Html<String>, UiError> {
    me.require(READERS, "The patients view")?;
    let p = pseudonym(&f.patient)?;
    let s = me.session();
    let list = blocking(move || s.client.get(&format!("/v1/patients/{}/records", p.to_hex()))).await?;
    let body = html! {
        @match &list {
            Ok(l) => { (records_table(l)) }
            Err(e) => { (page::error_box(e)) }
        }
        (patient_picker(&me))
    };
    Ok(page::shell(&me, "Patient records", body))
}

/// Common Observations for the form: (LOINC code, display, UCUM unit).
pub const OBSERVATIONS: &[(&str, &str, &str)] = &[
    ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    ("8867-4", "Heart rate", "/min"),
    ("8310-5", "Body temperature", "Cel"),
    ("59408-5", "Oxygen saturation (pulse oximetry)", "%"),
    ("29463-7", "Body weight", "kg"),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL"),
];

#[derive(Deserialize)]
struct WriteQuery {
    amend: Option<String>,
}

async fn write_form(
    me: Me,
    axum::extract::Query(q): axum::extract::Query<WriteQuery>,
) -> Result<Html<String>, UiError> {
    me.require(&[Role::Doctor], "Writing records")?;
    let amend = q.amend.filter(|a| !a.is_empty()).map(|a| record_id(&a)).transpose()?;
    let body = html! {
        @if let Some(a) = amend { p { "Amending record " (page::short(&a.to_hex())) ": the new version stays pending until the patient accepts it." } }
        form.stack hx-post="/write" hx-target="#write-result" {
            @if let Some(a) = amend { input type="hidden" name="amend" value=(a.to_hex()); }
            label for="patient" { "Patient pseudonym" }
            input #patient name="patient" required size="66" autocomplete="off" list="known-patients";
            datalist #known-patients {
                @for i in &me.ui.identities {
                    @if let Some(p) = i.credential.as_ref().and_then(|c| c.pseudonym) { option value=(p.to_hex()) { (i.name) } }
                }
            }
            fieldset {
                legend { "An Observation" }
                label for="code" { "Measurement" }
                select #code name="code" {
                    @for (c, d, u) in OBSERVATIONS { option value=(c) { (d) " (" (u) ")" } }
                }
                label for="value" { "Value" }
                input #value name="value" type="number" step="any";
            }
            label for="fhir" { "…or FHIR R4 JSON (takes precedence when given)" }
            textarea #fhir name="fhir" {}
            label for="fhir-file" { "…or upload a FHIR JSON file (it fills the box above; nothing leaves this machine until you submit)" }
            input #fhir-file type="file" accept=".json,application/json,application/fhir+json"
                onchange="const f=this.files[0];if(f){f.text().then(t=>{document.getElementById('fhir').value=t;});}";
            button type="submit" { @if amend.is_some() { "Anchor the amendment" } @else { "Seal, upload and anchor" } }
        }
        div #write-result {}
    };
    Ok(page::shell(&me, if amend.is_some() { "Amend a record" } else { "Write a record" }, body))
}

#[derive(Deserialize)]
struct WriteForm {
    patient: String,
    #[serde(default)]
    amend: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    fhir: String,
}

/// The FHIR JSON to write: the given document, or an Observation built from the form.
fn fhir_of(f: &WriteForm, patient: &Hash) -> Result<Vec<u8>, UiError> {
    if !f.fhir.trim().is_empty() {
        return Ok(f.fhir.trim().as_bytes().to_vec());
    }
    let (code, display, unit) = OBSERVATIONS
        .iter()
        .find(|(c, _, _)| *c == f.code)
        .ok_or_else(|| UiError::bad_input(format!("code: `{}` is not one of the form's measurements", f.code)))?;
    // As typed (72 stays 72, not 72.0); JSON numbers are finite.
    let value: serde_json::Number = serde_json::from_str(f.value.trim())
        .map_err(|_| UiError::bad_input(format!("value: `{}` is not a number", f.value.trim())))?;
    let doc = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": code, "display": display }] },
        "subject": { "reference": format!("Patient/{}", patient.to_hex()) },
        "effectiveDateTime": medledger_types::time::rfc3339_ms(medledger_client::tx::now_ms()),
        "valueQuantity": { "value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit }
    });
    Ok(doc.to_string().into_bytes())
}

async fn write(me: Me, Form(f): Form<WriteForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Doctor], "Writing records")?;
    let patient = pseudonym(&f.patient)?;
    let amend = match f.amend.trim() {
        "" => None,
        a => Some(record_id(a)?),
    };
    let fhir = fhir_of(&f, &patient)?;
    // The FHIR check runs here too, so a bad document is refused before anything is sent.
    medledger_vault::fhir::check(&fhir, &patient).map_err(|e| UiError::bad_input(format!("not accepted: {e}")))?;
    let s = me.session();
    jobs::start(&me, if amend.is_some() { "Anchoring the amendment" } else { "Writing the record" }, move || {
        let v = s.put(&patient, &fhir, amend)?;
        let id = v["record_id"].as_str().unwrap_or("").to_string();
        Ok(html! {
            p.notice {
                "Record " a href=(format!("/records/{id}")) { (page::short(&id)) } " v" (v["version"]) " (" (v["resource_type"].as_str().unwrap_or("")) ") held by "
                (v["holder"].as_str().unwrap_or("")) "; " (v["status"].as_str().unwrap_or("")) "."
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_render_with_their_units_and_raw_json_on_demand() {
        let v = json!({ "resourceType": "Observation", "status": "final",
            "code": { "coding": [{ "code": "8867-4", "display": "Heart rate" }] },
            "valueQuantity": { "value": 72, "unit": "/min" } });
        let html = render_fhir(&v).into_string();
        assert!(html.contains("Heart rate"));
        assert!(html.contains("72 /min"));
        assert!(html.contains("<details class=\"raw\">"));
    }

    #[test]
    fn the_diff_marks_added_and_removed_lines_only() {
        let html = diff(&json!({ "a": 1, "b": "old" }), &json!({ "a": 1, "b": "new" })).into_string();
        assert!(html.contains("- ") && html.contains("&quot;b&quot;: &quot;old&quot;"));
        assert!(html.contains("+ ") && html.contains("&quot;b&quot;: &quot;new&quot;"));
        assert_eq!(html.matches("class=\"add\"").count(), 1);
        assert_eq!(html.matches("class=\"del\"").count(), 1);
    }

    #[test]
    fn the_observation_form_refuses_unknown_codes_and_non_numbers() {
        let p = Hash([7; 32]);
        let f = |code: &str, value: &str| WriteForm {
            patient: p.to_hex(),
            amend: String::new(),
            code: code.into(),
            value: value.into(),
            fhir: String::new(),
        };
        assert!(fhir_of(&f("0000-0", "1"), &p).unwrap_err().message.contains("code"));
        for bad in ["", "NaN", "inf", "12kg"] {
            assert!(fhir_of(&f("8867-4", bad), &p).unwrap_err().message.contains("value"), "{bad}");
        }
        let doc = fhir_of(&f("8867-4", "72"), &p).unwrap();
        assert_eq!(medledger_vault::fhir::check(&doc, &p).unwrap(), "Observation");
    }
}
