//! Medicines: the manufacturer's products (and registering one), lots, commissioning and
//! recalls; the regulator's binding of a company prefix to a manufacturer; the distributor's
//! inventory, shipping and receiving; the pharmacy's scan, verify, dispense and undo; for every
//! possessor, packing into cases and pallets, unpacking, reporting a pack stolen, destroyed,
//! damaged or returned, and capturing an EPCIS 2.0 document; the regulator's alerts and
//! recalls; for every supply role, tracing a pack or case (its trail with event ids, and why and
//! where its status last changed); and a public verification page that takes a scanned
//! identifier or a GS1 Digital Link (`/verify`, and Digital Link paths such as
//! `/01/{gtin}/10/{lot}/21/{serial}` resolve here too).

use crate::{blocking, jobs, page, App, Me, UiError};
use axum::extract::{Path, Query};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use medledger_client::drugs::{alerts, capture_operation, epcs, verify_public};
use medledger_client::http::Client;
use medledger_types::drugs::{epcis, gs1};
use medledger_types::drugs::{DrugsOp, ProductSpec, Reported, Serial};
use medledger_types::Role;
use serde::Deserialize;
use serde_json::Value;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/drugs", get(drugs_page))
        .route("/drugs/products", post(register_product))
        .route("/drugs/prefixes", post(bind_prefix))
        .route("/drugs/prefixes/unbind", post(unbind_prefix))
        .route("/drugs/commission", post(commission))
        .route("/drugs/recall", post(recall))
        .route("/drugs/ship", post(ship))
        .route("/drugs/receive", post(receive))
        .route("/drugs/dispense", post(dispense))
        .route("/drugs/undo", post(undo))
        .route("/drugs/pack", post(pack))
        .route("/drugs/unpack", post(unpack))
        .route("/drugs/report", post(report))
        .route("/drugs/capture", post(capture))
        .route("/drugs/trace", get(trace))
        .route("/verify", get(verify_page))
        .route("/01/{*rest}", get(digital_link))
}

const SUPPLY: [Role; 5] = [Role::Manufacturer, Role::Distributor, Role::Pharmacy, Role::Doctor, Role::Regulator];
/// The roles that possess packs: they ship, receive, pack, unpack, report and capture.
const POSSESSORS: [Role; 4] = [Role::Manufacturer, Role::Distributor, Role::Pharmacy, Role::Doctor];

#[derive(Deserialize, Default)]
struct VerifyQuery {
    #[serde(default)]
    id: String,
}

/// A trail step's cell: the step, what it set or did, and whether it was declared in error.
fn step_cell(t: &Value) -> Markup {
    html! { td { (t["biz_step"].as_str().unwrap_or("")) @if let Some(d) = t["detail"].as_str() { " (" (d) ")" } @if t["declared_in_error"] == true { " (declared in error)" } } }
}

/// The public answer for a scan, as a section.
fn verification(v: &Value) -> Markup {
    let ver = &v["verification"];
    let code = ver["code"].as_str().unwrap_or("");
    let class = match code {
        "sellable" => "tag ok",
        "dispensed" | "recalled" | "expired" | "stolen" | "inactive" => "tag warn",
        _ => "tag bad",
    };
    html! {
        section.verification aria-live="polite" {
            h2 { "Result: " span class=(class) { (code.replace('_', " ")) } }
            p { (ver["nmvs"].as_str().unwrap_or("")) }
            @if let Some(h) = v["proven"]["height"].as_u64() {
                p.hint #proven {
                    "Status and custody trail proven against finalized block " (h) " of the consortium"
                    @if v["proven"]["trail_cut"] == true { " (the trail's first " (v["proven"]["trail_max"]) " steps; the rest is the node's word)" }
                    ". A pharmacy's dispense verifies again on chain."
                }
            }
            dl {
                dt { "Product" } dd { (ver["product_name"].as_str().unwrap_or("unknown product")) }
                dt { "Manufacturer" } dd { (ver["manufacturer"].as_str().unwrap_or("—")) }
                dt { "GTIN / serial" } dd { (ver["gtin"].as_str().unwrap_or("")) " / " (ver["serial"].as_str().unwrap_or("")) }
                dt { "Lot, expiry (on chain)" } dd { (ver["lot"].as_str().unwrap_or("—")) ", " (ver["expiry"].as_str().unwrap_or("—")) }
                @if let Some(by) = ver["changed_by"].as_str() {
                    dt { "Status set by" } dd { (by) " at " (page::time(ver["changed_at_ms"].as_u64().unwrap_or(0))) }
                }
                @if let Some(r) = ver["recall_reason"].as_str() { dt { "Recall reason" } dd { (r) } }
            }
            h3 { "Custody trail" }
            @let trail = v["trail"].as_array().cloned().unwrap_or_default();
            @if trail.is_empty() { p.empty { "No custody events: this serial was never commissioned." } }
            @else {
                table.trail tabindex="0" {
                    thead { tr { th { "When" } th { "Step" } th { "Institution" } th { "To / from" } } }
                    tbody { @for t in &trail { tr {
                        td { (page::time(t["at_ms"].as_u64().unwrap_or(0))) }
                        (step_cell(t))
                        td { (t["institution"].as_str().unwrap_or("")) }
                        td { (t["counterparty"].as_str().unwrap_or("")) }
                    } } }
                }
            }
        }
    }
}

/// The scan form: any GS1 form, a Digital Link from the box works.
fn scan_form(action: &str, value: &str, button: &str) -> Markup {
    html! {
        form.scan method="get" action=(action) {
            label for="scan-id" { "Scanned code (element string, EPC URI or Digital Link)" }
            input #scan-id name="id" type="text" value=(value) autocomplete="off" spellcheck="false" required;
            button type="submit" { (button) }
        }
    }
}

/// The public answer for `id`, and whether the nodes answered (a pack was verified; not an
/// error such as a malformed code or a case's SSCC).
async fn public_answer(ui: &App, id: String) -> Result<(Markup, bool), UiError> {
    let nodes = ui.nodes.clone();
    let v = blocking(move || {
        let c = Client::with_nodes(&nodes);
        // The status and the trail recomputed from proven state; past the proven length (long
        // trails only) the rest of the trail is the node's word.
        let p = medledger_client::drugs::verify_proven(&c, &id)?;
        Ok::<_, String>(medledger_client::drugs::with_proven(verify_public(&c, &id)?, &p))
    })
    .await?;
    Ok(match v {
        Ok(v) => (verification(&v), true),
        Err(e) => (page::error_box(&e), false),
    })
}

/// `GET /verify?id=…`: the public verification page. It uses no key: the answer is the nodes'
/// public one, as a patient scanning a box would get it.
async fn verify_page(me: Me, Query(q): Query<VerifyQuery>) -> Result<Html<String>, UiError> {
    let id = q.id.trim().to_string();
    let answer = if id.is_empty() {
        html! {}
    } else {
        public_answer(&me.ui, id.clone()).await?.0
    };
    let body = html! {
        p { "Scan or paste the code on a medicine pack to learn whether it is genuine and sellable, and where it has been. No key or account is used." }
        (scan_form("/verify", &id, "Verify"))
        (answer)
    };
    Ok(page::shell(&me, "Verify a medicine pack", body))
}

/// A GS1 Digital Link path on this server (`/01/{gtin}/…?17=…`) resolves to its verification.
async fn digital_link(me: Me, Path(rest): Path<String>, uri: axum::http::Uri) -> Result<Html<String>, UiError> {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let link = format!("https://id.gs1.org/01/{rest}{query}");
    verify_page(me, Query(VerifyQuery { id: link })).await
}

async fn drugs_page(me: Me, Query(q): Query<VerifyQuery>) -> Result<Html<String>, UiError> {
    me.require(&SUPPLY, "The medicines view")?;
    let role = me.id().role();
    let s = me.session();
    let (products, inventory, alert_list, recalls) = blocking(move || {
        let get = |p: &str| s.client.get(p).ok();
        let products = matches!(role, Some(Role::Manufacturer)).then(|| get("/v1/drugs/products")).flatten();
        let inventory = matches!(role, Some(Role::Distributor | Role::Pharmacy | Role::Doctor | Role::Manufacturer))
            .then(|| get("/v1/drugs/inventory"))
            .flatten();
        let alerts =
            matches!(role, Some(Role::Regulator | Role::Manufacturer)).then(|| get("/v1/drugs/alerts")).flatten();
        let recalls =
            matches!(role, Some(Role::Regulator | Role::Manufacturer)).then(|| get("/v1/drugs/recalls")).flatten();
        (products, inventory, alerts, recalls)
    })
    .await?;
    let scanned = q.id.trim().to_string();
    let answer = if scanned.is_empty() { None } else { Some(public_answer(&me.ui, scanned.clone()).await?) };
    let body = html! {
        @if matches!(role, Some(Role::Pharmacy | Role::Doctor)) {
            section {
                h2 { "Scan, verify, dispense" }
                (scan_form("/drugs", &scanned, "Verify"))
                @if let Some((a, _)) = &answer {
                    (a)
                }
                @if let Some((_, true)) = &answer {
                    form hx-post="/drugs/dispense" hx-target="#dispense-result" {
                        input type="hidden" name="id" value=(scanned);
                        button type="submit" { "Dispense (verify on chain, then decommission)" }
                    }
                    form hx-post="/drugs/undo" hx-target="#dispense-result" {
                        input type="hidden" name="id" value=(scanned);
                        button.secondary type="submit" { "Undo a dispense (same institution, within 10 days)" }
                    }
                    div #dispense-result {}
                }
            }
        }
        (trace_section())
        @if let Some(p) = &products { (products_section(p)) }
        @if let Some(inv) = &inventory { (inventory_section(inv, role)) }
        @if let Some(a) = &alert_list { (alerts_section(a)) }
        @if let Some(r) = &recalls { (recalls_section(r, role)) }
        @if matches!(role, Some(Role::Regulator)) { (prefix_section()) }
    };
    Ok(page::shell(&me, "Medicines", body))
}

/// Tracing a pack or case as a credentialed reader: its whole trail with event ids and heights,
/// and its last status change with why and where it was made (which the public page omits).
fn trace_section() -> Markup {
    html! {
        section {
            h2 { "Trace a pack or case" }
            form.scan hx-get="/drugs/trace" hx-target="#trace-result" {
                label for="t-id" { "Identifier (element string, EPC URI, Digital Link or SSCC)" }
                input #t-id name="id" type="text" autocomplete="off" spellcheck="false" required;
                button type="submit" { "Trace" }
            }
            div #trace-result aria-live="polite" {}
        }
    }
}

/// `GET /drugs/trace?id=…`: the credentialed trail of an identifier, as a fragment.
async fn trace(me: Me, Query(q): Query<VerifyQuery>) -> Result<Html<String>, UiError> {
    me.require(&SUPPLY, "Tracing")?;
    let id = q.id.trim().to_string();
    if id.is_empty() {
        return Err(UiError::bad_input("name the identifier to trace"));
    }
    epcs(std::slice::from_ref(&id)).map_err(UiError::bad_input)?;
    let s = me.session();
    let v = blocking(move || s.trail(&id)).await??;
    let trail = v["trail"].as_array().cloned().unwrap_or_default();
    let c = &v["last_change"];
    Ok(Html(
        html! {
            @if let Some(status) = c["status"].as_str() {
                dl.last-change {
                    dt { "Last status change" } dd { span class=(if status == "active" { "tag ok" } else { "tag warn" }) { (status) } " by " (c["institution"].as_str().unwrap_or("")) " at " (page::time(c["at_ms"].as_u64().unwrap_or(0))) }
                    dt { "Reason" } dd { (c["reason"].as_str().unwrap_or("")) }
                    dt { "Premises" } dd { (c["premises"].as_str().unwrap_or("not named")) }
                    dt { "Event" } dd { code { (c["event_id"].as_str().unwrap_or("")) } }
                }
            } @else { p { "Its status never changed." } }
            table.trace tabindex="0" aria-label="Custody trail with heights and event ids" {
                thead { tr { th { "When" } th { "Step" } th { "Institution" } th { "To / from" } th { "Height" } th { "Event" } } }
                tbody { @for t in &trail { tr {
                    td { (page::time(t["at_ms"].as_u64().unwrap_or(0))) }
                    (step_cell(t))
                    td { (t["institution"].as_str().unwrap_or("")) }
                    td { (t["counterparty"].as_str().unwrap_or("")) }
                    td { (t["height"]) }
                    td { code { (t["event_id"].as_str().unwrap_or("")) } }
                } } }
            }
        }
        .into_string(),
    ))
}

/// The regulator binds a GS1 company prefix to a manufacturer's institution, so that only it
/// may register (and so commission) GTINs under it.
fn prefix_section() -> Markup {
    html! {
        section {
            h2 { "Company prefixes" }
            form.stack hx-post="/drugs/prefixes" hx-target="#prefix-result" {
                label for="bp-prefix" { "GS1 company prefix (6 to 12 digits)" } input #bp-prefix name="prefix" required pattern="[0-9]{6,12}" title="6 to 12 digits";
                label for="bp-inst" { "Bind to the manufacturer's institution" } input #bp-inst name="institution" required;
                button type="submit" { "Bind" }
            }
            div #prefix-result aria-live="polite" {}
            h3 { "Unbind a prefix bound in error" }
            p.hint #ub-hint { "Only while no product is registered under it." }
            form.stack hx-post="/drugs/prefixes/unbind" hx-target="#unbind-result" {
                label for="ub-prefix" { "GS1 company prefix (6 to 12 digits)" }
                input #ub-prefix name="prefix" required pattern="[0-9]{6,12}" title="6 to 12 digits" aria-describedby="ub-hint";
                button.secondary type="submit" { "Unbind" }
            }
            div #unbind-result aria-live="polite" {}
        }
    }
}

fn products_section(v: &Value) -> Markup {
    let products = v["products"].as_array().cloned().unwrap_or_default();
    html! {
        section {
            h2 { "Products and lots" }
            @if products.is_empty() { p.empty { "No products registered." } }
            @for p in &products {
                @let spec = &p["product"]["spec"];
                h3 { (spec["name"].as_str().unwrap_or("")) " · GTIN " (spec["gtin"].as_str().unwrap_or("")) }
                table.lots tabindex="0" {
                    thead { tr { th { "Lot" } th { "Expiry" } th { "Packs" } th { "Recall" } } }
                    tbody { @for l in p["lots"].as_array().into_iter().flatten() { tr {
                        td { (l["lot"].as_str().unwrap_or("")) } td { (l["expiry"].as_str().unwrap_or("")) } td { (l["packs"].as_u64().map_or("—".to_string(), |n| n.to_string())) }
                        td { @if l["recall"].is_null() { span.tag.ok { "none" } } @else { span.tag.warn { "recalled" } } }
                    } } }
                }
            }
            h3 { "Register a product" }
            form.stack hx-post="/drugs/products" hx-target="#product-result" {
                label for="g-gtin" { "GTIN (under a company prefix bound to your institution)" } input #g-gtin name="gtin" required;
                label for="g-name" { "Name" } input #g-name name="name" required;
                label for="g-form" { "Dosage form" } input #g-form name="form" required;
                label for="g-strength" { "Strength" } input #g-strength name="strength" required;
                label for="g-size" { "Pack size" } input #g-size name="pack_size" required inputmode="numeric" pattern="[0-9]+";
                label for="g-code" { "National reimbursement number (optional)" } input #g-code name="national_code";
                button type="submit" { "Register" }
            }
            div #product-result aria-live="polite" {}
            h3 { "Commission serials" }
            form.stack hx-post="/drugs/commission" hx-target="#commission-result" {
                label for="c-gtin" { "GTIN" } input #c-gtin name="gtin" required;
                label for="c-lot" { "Lot" } input #c-lot name="lot" required;
                label for="c-exp" { "Expiry (YYMMDD)" } input #c-exp name="expiry" required pattern="[0-9]{6}";
                label for="c-ser" { "Serials (comma-separated)" } input #c-ser name="serials" required;
                button type="submit" { "Commission" }
            }
            div #commission-result {}
        }
    }
}

fn inventory_section(v: &Value, role: Option<Role>) -> Markup {
    let items = v["items"].as_array().cloned().unwrap_or_default();
    html! {
        section {
            h2 { "In our possession (" (items.len()) @if v["truncated"] == true { "+" } ")" }
            @if items.is_empty() { p.empty { "Nothing in possession." } }
            @else {
                table.inventory tabindex="0" {
                    thead { tr { th { "Identifier" } th { "Lot" } th { "Status" } th { "In" } th { "In transit" } } }
                    tbody { @for it in &items { tr {
                        td { (epc_text(&it["epc"])) } td { (it["lot"].as_str().unwrap_or("")) } td { (it["status"].as_str().unwrap_or("")) }
                        td { (it["parent"].as_str().unwrap_or("")) }
                        td { @if let Some(s) = it["shipment"].as_object() { "to " (s.get("to").and_then(Value::as_str).unwrap_or("")) } }
                    } } }
                }
            }
            @if !matches!(role, Some(Role::Regulator)) {
                h3 { "Ship" }
                form.stack hx-post="/drugs/ship" hx-target="#ship-result" {
                    label for="s-items" { "Identifiers (one per line or comma-separated)" } textarea #s-items name="items" required {}
                    label for="s-to" { "To institution" } input #s-to name="party" required;
                    button type="submit" { "Ship" }
                }
                div #ship-result {}
                h3 { "Receive" }
                form.stack hx-post="/drugs/receive" hx-target="#receive-result" {
                    label for="r-items" { "Identifiers" } textarea #r-items name="items" required {}
                    label for="r-from" { "From institution" } input #r-from name="party" required;
                    button type="submit" { "Receive" }
                }
                div #receive-result {}
                h3 { "Pack into a case or pallet" }
                form.stack hx-post="/drugs/pack" hx-target="#pack-result" {
                    label for="p-sscc" { "Case or pallet (SSCC, 18 digits)" } input #p-sscc name="sscc" required pattern="[0-9]{18}";
                    label for="p-items" { "Identifiers to put in it" } textarea #p-items name="items" required {}
                    button type="submit" { "Pack" }
                }
                div #pack-result {}
                h3 { "Unpack" }
                form.stack hx-post="/drugs/unpack" hx-target="#unpack-result" {
                    label for="u-sscc" { "Case or pallet (SSCC, 18 digits)" } input #u-sscc name="sscc" required pattern="[0-9]{18}";
                    label for="u-items" { "Identifiers to take out (empty: everything)" } textarea #u-items name="items" {}
                    button type="submit" { "Unpack" }
                }
                div #unpack-result {}
                h3 { "Report stolen, destroyed, damaged or returned" }
                form.stack hx-post="/drugs/report" hx-target="#report-result" {
                    label for="rp-items" { "Identifiers" } textarea #rp-items name="items" required {}
                    label for="rp-status" { "Status" }
                    select #rp-status name="status" required {
                        @for r in Reported::ALL { option value=(r.name()) { (r.name()) } }
                    }
                    label for="rp-reason" { "Reason (recorded on chain)" } input #rp-reason name="reason" required;
                    button type="submit" { "Report" }
                }
                div #report-result {}
                h3 { "Capture an EPCIS 2.0 document" }
                form.stack hx-post="/drugs/capture" hx-target="#capture-result" {
                    label for="cp-doc" { "EPCISDocument (JSON or JSON-LD); its events are signed as one transaction, all or none" }
                    textarea #cp-doc name="document" required rows="8" {}
                    button type="submit" { "Capture" }
                }
                div #capture-result {}
            }
        }
    }
}

fn epc_text(e: &Value) -> String {
    if let Some(s) = e["sgtin"].as_object() {
        format!(
            "(01){}(21){}",
            s.get("gtin").and_then(Value::as_str).unwrap_or(""),
            s.get("serial").and_then(Value::as_str).unwrap_or("")
        )
    } else {
        format!("(00){}", e["sscc"].as_str().unwrap_or(""))
    }
}

fn alerts_section(v: &Value) -> Markup {
    let list = v["alerts"].as_array().cloned().unwrap_or_default();
    html! {
        section {
            h2 { "Alerts" }
            @if list.is_empty() { p.empty { "No alerts." } }
            @else {
                table.alerts tabindex="0" {
                    thead { tr { th { "When" } th { "Kind" } th { "Identifier" } th { "Found by" } th { "Detail" } } }
                    tbody { @for a in &list { tr {
                        td { (page::time(a["at_ms"].as_u64().unwrap_or(0))) }
                        td { span.tag.bad { (a["kind"].as_str().unwrap_or("").replace('_', " ")) } }
                        td { (epc_text(&a["epc"])) } td { (a["reporter"].as_str().unwrap_or("")) } td { (a["detail"].as_str().unwrap_or("")) }
                    } } }
                }
            }
        }
    }
}

fn recalls_section(v: &Value, role: Option<Role>) -> Markup {
    let list = v["recalls"].as_array().cloned().unwrap_or_default();
    html! {
        section {
            h2 { "Recalls" }
            @if list.is_empty() { p.empty { "No recalled lots." } }
            @else {
                table.recalls tabindex="0" {
                    thead { tr { th { "GTIN" } th { "Lot" } th { "Packs" } th { "By" } th { "Reason" } } }
                    tbody { @for l in &list { tr {
                        td { (l["gtin"].as_str().unwrap_or("")) } td { (l["lot"].as_str().unwrap_or("")) } td { (l["packs"].as_u64().map_or("—".to_string(), |n| n.to_string())) }
                        td { (l["recall"]["institution"].as_str().unwrap_or("")) } td { (l["recall"]["reason"].as_str().unwrap_or("")) }
                    } } }
                }
            }
            @if matches!(role, Some(Role::Regulator | Role::Manufacturer)) {
                h3 { "Recall a lot (irreversible)" }
                form.stack hx-post="/drugs/recall" hx-target="#recall-result" {
                    label for="rc-gtin" { "GTIN" } input #rc-gtin name="gtin" required;
                    label for="rc-lot" { "Lot" } input #rc-lot name="lot" required;
                    label for="rc-reason" { "Reason" } input #rc-reason name="reason" required;
                    button type="submit" { "Recall" }
                }
                div #recall-result {}
            }
        }
    }
}

#[derive(Deserialize)]
struct ProductForm {
    gtin: String,
    name: String,
    form: String,
    strength: String,
    pack_size: String,
    #[serde(default)]
    national_code: String,
}

async fn register_product(me: Me, Form(f): Form<ProductForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Manufacturer], "Registering a product")?;
    let gtin = gs1::validate_gtin(f.gtin.trim()).map_err(|e| UiError::bad_input(e.to_string()))?;
    let pack_size = f.pack_size.trim().parse::<u32>().map_err(|_| {
        UiError::bad_input(format!("pack size `{}` is not a whole number of units", f.pack_size.trim()))
    })?;
    let product = ProductSpec {
        gtin,
        name: f.name.trim().into(),
        form: f.form.trim().into(),
        strength: f.strength.trim().into(),
        pack_size,
        national_code: f.national_code.trim().into(),
    };
    drug_job(&me, "Registering the product", DrugsOp::RegisterProduct { product }, "Product registered")
}

#[derive(Deserialize)]
struct PrefixForm {
    prefix: String,
    institution: String,
}

async fn bind_prefix(me: Me, Form(f): Form<PrefixForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Regulator], "Binding a company prefix")?;
    let op = DrugsOp::BindPrefix { company_prefix: f.prefix.trim().into(), institution: f.institution.trim().into() };
    drug_job(&me, "Binding the company prefix", op, "Prefix bound: only that institution may register its GTINs")
}

#[derive(Deserialize)]
struct UnbindForm {
    prefix: String,
}

async fn unbind_prefix(me: Me, Form(f): Form<UnbindForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Regulator], "Unbinding a company prefix")?;
    let op = DrugsOp::UnbindPrefix { company_prefix: f.prefix.trim().into() };
    drug_job(&me, "Unbinding the company prefix", op, "Prefix unbound")
}

#[derive(Deserialize)]
struct CommissionForm {
    gtin: String,
    lot: String,
    expiry: String,
    serials: String,
}

async fn commission(me: Me, Form(f): Form<CommissionForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Manufacturer], "Commissioning")?;
    let gtin = gs1::validate_gtin(f.gtin.trim()).map_err(|e| UiError::bad_input(e.to_string()))?;
    let serials: Vec<Serial> = split(&f.serials).into_iter().map(Serial).collect();
    let op = DrugsOp::Commission {
        meta: me.session().event_meta(None),
        gtin,
        lot: f.lot.trim().into(),
        expiry: f.expiry.trim().into(),
        serials,
    };
    drug_job(&me, "Commissioning serials", op, "Commissioned")
}

#[derive(Deserialize)]
struct RecallForm {
    gtin: String,
    lot: String,
    reason: String,
}

async fn recall(me: Me, Form(f): Form<RecallForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Manufacturer, Role::Regulator], "Recalls")?;
    let gtin = gs1::validate_gtin(f.gtin.trim()).map_err(|e| UiError::bad_input(e.to_string()))?;
    let op = DrugsOp::Recall { gtin, lot: f.lot.trim().into(), reason: f.reason };
    drug_job(&me, "Recalling the lot", op, "Lot recalled: every pack of it now verifies as recalled")
}

#[derive(Deserialize)]
struct MoveForm {
    items: String,
    party: String,
}

fn split(s: &str) -> Vec<String> {
    s.split([',', '\n', '\r']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

async fn ship(me: Me, Form(f): Form<MoveForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "Shipping")?;
    let epcs = epcs(&split(&f.items)).map_err(UiError::bad_input)?;
    let op = DrugsOp::Ship { meta: me.session().event_meta(None), epcs, to: f.party.trim().into() };
    drug_job(&me, "Shipping", op, "Shipped")
}

async fn receive(me: Me, Form(f): Form<MoveForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "Receiving")?;
    let epcs = epcs(&split(&f.items)).map_err(UiError::bad_input)?;
    let op = DrugsOp::Receive { meta: me.session().event_meta(None), epcs, from: f.party.trim().into() };
    checked(&op)?;
    let s = me.session();
    jobs::start(&me, "Receiving", move || {
        let v = s.drug(op)?;
        let raised = alerts(&v);
        if !raised.is_empty() {
            return Err(format!(
                "{} item(s) did not match a shipment and stayed where they were; alerts recorded at height {}",
                raised.len(),
                v["height"]
            ));
        }
        Ok(html! { p.notice { "Received; committed at height " (v["height"]) "." } })
    })
}

#[derive(Deserialize)]
struct IdForm {
    id: String,
}

async fn dispense(me: Me, Form(f): Form<IdForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Pharmacy, Role::Doctor], "Dispensing")?;
    // The identifier is read, and the dispense it makes checked, here: a bad one, or a case's
    // code, starts no job.
    let epc = epcs(std::slice::from_ref(&f.id)).map_err(UiError::bad_input)?.remove(0);
    checked(&DrugsOp::Dispense { meta: me.session().event_meta(None), epc })?;
    let s = me.session();
    jobs::start(&me, "Verifying and dispensing", move || {
        let v = s.dispense(&f.id, None)?;
        Ok(html! { p.notice { "Dispensed; committed at height " (v["dispense"]["height"]) "." } })
    })
}

async fn undo(me: Me, Form(f): Form<IdForm>) -> Result<Html<String>, UiError> {
    me.require(&[Role::Pharmacy, Role::Doctor], "Undoing a dispense")?;
    let epc = epcs(&[f.id]).map_err(UiError::bad_input)?.remove(0);
    let op = DrugsOp::UndoDispense { meta: me.session().event_meta(None), epc };
    drug_job(&me, "Undoing the dispense", op, "Dispense undone")
}

#[derive(Deserialize)]
struct PackForm {
    sscc: String,
    #[serde(default)]
    items: String,
}

/// Refuses `op` here, before any job starts or anything is signed, if its fields or its work
/// are over their limits.
fn checked(op: &DrugsOp) -> Result<(), UiError> {
    medledger_types::Operation::Drugs(op.clone()).check_limits().map_err(UiError::bad_input)
}

/// Signs and sends `op` in a job once it is [`checked`]; the job ends with `done` and the
/// height that committed it.
fn drug_job(me: &Me, title: &'static str, op: DrugsOp, done: impl Into<String>) -> Result<Html<String>, UiError> {
    checked(&op)?;
    let done = done.into();
    let s = me.session();
    jobs::start(me, title, move || {
        let v = s.drug(op)?;
        Ok(html! { p.notice { (done) "; committed at height " (v["height"]) "." } })
    })
}

async fn pack(me: Me, Form(f): Form<PackForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "Packing")?;
    let parent = f.sscc.trim().to_string();
    let children = epcs(&split(&f.items)).map_err(UiError::bad_input)?;
    let op = DrugsOp::Aggregate { meta: me.session().event_meta(None), parent, children };
    drug_job(&me, "Packing", op, "Packed")
}

async fn unpack(me: Me, Form(f): Form<PackForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "Unpacking")?;
    let parent = f.sscc.trim().to_string();
    // No identifiers: everything comes out.
    let children = epcs(&split(&f.items)).map_err(UiError::bad_input)?;
    let op = DrugsOp::Disaggregate { meta: me.session().event_meta(None), parent, children };
    drug_job(&me, "Unpacking", op, "Unpacked")
}

#[derive(Deserialize)]
struct ReportForm {
    items: String,
    status: String,
    reason: String,
}

async fn report(me: Me, Form(f): Form<ReportForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "Reporting")?;
    let epcs = epcs(&split(&f.items)).map_err(UiError::bad_input)?;
    let status = Reported::parse(&f.status).map_err(UiError::bad_input)?;
    let reason = f.reason.trim().to_string();
    let done = format!("Reported {}", status.name());
    let op = DrugsOp::Report { meta: me.session().event_meta(None), epcs, status, reason };
    drug_job(&me, "Reporting", op, done)
}

#[derive(Deserialize)]
struct CaptureForm {
    document: String,
}

/// Checks the pasted document here (size, JSON, EPCIS 2.0 as this ledger takes it, the work
/// of its events), then signs its events as one capture transaction in a job.
async fn capture(me: Me, Form(f): Form<CaptureForm>) -> Result<Html<String>, UiError> {
    me.require(&POSSESSORS, "EPCIS capture")?;
    let doc = epcis::read_document(f.document.as_bytes())
        .map_err(|e| UiError::bad_input(format!("the document is {}", e.message)))?;
    let op = capture_operation(&doc).map_err(UiError::bad_input)?;
    let s = me.session();
    jobs::start(&me, "Capturing the EPCIS document", move || {
        let (id, v) = s.capture_checked(&doc, op)?;
        Ok(
            html! { p.notice { "Captured (capture " (id.to_hex()) "); committed at height " (v["status"]["height"]) "." } },
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::tests::{send, test_ui};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use medledger_types::Role;

    fn form(path: &str, who: &str, body: &str) -> Request<Body> {
        Request::post(path)
            .header("host", "127.0.0.1:7790")
            .header("origin", "http://127.0.0.1:7790")
            .header("sec-fetch-site", "same-origin")
            .header("hx-request", "true")
            .header("cookie", format!("who={who}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn esc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// Every medicines form refuses bad input with the field and the rule, and a role that may
    /// not use it, before a job starts: the answer is the refusal (a started job answers 200
    /// with its progress) and the job list stays empty. (The UI's node is unreachable, so the
    /// refusals are the UI's own checks.)
    #[tokio::test]
    async fn bad_medicine_forms_are_refused_before_any_job() {
        let ui = test_ui(&[
            ("mia", Some(Role::Manufacturer)),
            ("dan", Some(Role::Distributor)),
            ("phil", Some(Role::Pharmacy)),
            ("rita", Some(Role::Regulator)),
            ("nobody", None),
        ]);
        let pack = esc("(01)10614141073464(21)A1");
        let bad_check = esc("(01)10614141073465(21)A1");
        let split = r#"{"@context":"https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld","type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-01-01T00:00:00Z","epcisBody":{"eventList":[{"type":"ObjectEvent","eventTime":"2026-01-01T00:00:00Z","eventTimeZoneOffset":"+00:00","epcList":["urn:epc:id:sgtin:0614141.107346.1"],"action":"SPLIT"}]}}"#;
        let oversize = "x".repeat(medledger_types::drugs::epcis::MAX_DOCUMENT_BYTES + 1);
        let long_serial = "S".repeat(21);
        let product = |extra: &str| format!("name=N&form=f&strength=s&{extra}");
        let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
            ("/drugs/products", "mia", product("gtin=1234&pack_size=1"), StatusCode::BAD_REQUEST, "gtin"),
            (
                "/drugs/products",
                "mia",
                product("gtin=10614141073464&pack_size=ten"),
                StatusCode::BAD_REQUEST,
                "pack size `ten`",
            ),
            (
                "/drugs/products",
                "mia",
                product("gtin=10614141073464&pack_size=0"),
                StatusCode::BAD_REQUEST,
                "pack size must be",
            ),
            (
                "/drugs/products",
                "mia",
                "gtin=10614141073464&name=+&form=f&strength=s&pack_size=1".into(),
                StatusCode::BAD_REQUEST,
                "product name must not be empty",
            ),
            (
                "/drugs/products",
                "dan",
                product("gtin=10614141073464&pack_size=1"),
                StatusCode::FORBIDDEN,
                "is for manufacturer",
            ),
            ("/drugs/prefixes", "rita", "prefix=12ab&institution=h1".into(), StatusCode::BAD_REQUEST, "6 to 12 digits"),
            ("/drugs/prefixes", "rita", "prefix=0614141&institution=+".into(), StatusCode::BAD_REQUEST, "institution"),
            (
                "/drugs/prefixes/unbind",
                "rita",
                "prefix=0614141234567".into(),
                StatusCode::BAD_REQUEST,
                "6 to 12 digits",
            ),
            ("/drugs/prefixes/unbind", "mia", "prefix=0614141".into(), StatusCode::FORBIDDEN, "; mia is manufacturer"),
            (
                "/drugs/prefixes",
                "mia",
                "prefix=0614141&institution=h1".into(),
                StatusCode::FORBIDDEN,
                "is for regulator",
            ),
            (
                "/drugs/commission",
                "mia",
                "gtin=1234&lot=L1&expiry=301231&serials=S1".into(),
                StatusCode::BAD_REQUEST,
                "GTIN",
            ),
            (
                "/drugs/commission",
                "mia",
                format!("gtin=10614141073464&lot=L1&expiry=301231&serials={long_serial}"),
                StatusCode::BAD_REQUEST,
                "serial",
            ),
            (
                "/drugs/commission",
                "mia",
                "gtin=10614141073464&lot=L1&expiry=301331&serials=S1".into(),
                StatusCode::BAD_REQUEST,
                "expiry",
            ),
            (
                "/drugs/commission",
                "dan",
                "gtin=10614141073464&lot=L1&expiry=301231&serials=S1".into(),
                StatusCode::FORBIDDEN,
                "Commissioning is for manufacturer",
            ),
            (
                "/drugs/recall",
                "mia",
                "gtin=10614141073465&lot=L1&reason=r".into(),
                StatusCode::BAD_REQUEST,
                "check digit",
            ),
            ("/drugs/recall", "dan", "gtin=10614141073464&lot=L1&reason=r".into(), StatusCode::FORBIDDEN, "Recalls"),
            ("/drugs/ship", "dan", format!("items={bad_check}&party=h2"), StatusCode::BAD_REQUEST, "check digit"),
            ("/drugs/ship", "dan", "items=&party=h2".into(), StatusCode::BAD_REQUEST, "names no identifier"),
            ("/drugs/ship", "rita", format!("items={pack}&party=h2"), StatusCode::FORBIDDEN, "Shipping"),
            ("/drugs/receive", "dan", "items=banana&party=h2".into(), StatusCode::BAD_REQUEST, "banana"),
            ("/drugs/pack", "dan", format!("sscc=123&items={pack}"), StatusCode::BAD_REQUEST, "SSCC"),
            (
                "/drugs/pack",
                "dan",
                format!("sscc=106141410000000019&items={bad_check}"),
                StatusCode::BAD_REQUEST,
                "check digit",
            ),
            ("/drugs/unpack", "dan", "sscc=10614141000000001X".into(), StatusCode::BAD_REQUEST, "SSCC"),
            ("/drugs/report", "dan", format!("items={pack}&status=lost&reason=r"), StatusCode::BAD_REQUEST, "lost"),
            ("/drugs/report", "dan", format!("items={pack}&status=stolen&reason="), StatusCode::BAD_REQUEST, "reason"),
            ("/drugs/dispense", "phil", "id=not-a-pack".into(), StatusCode::BAD_REQUEST, "not-a-pack"),
            (
                "/drugs/dispense",
                "phil",
                format!("id={}", esc("(00)106141412345678908")),
                StatusCode::BAD_REQUEST,
                "pack",
            ),
            ("/drugs/dispense", "dan", format!("id={pack}"), StatusCode::FORBIDDEN, "Dispensing"),
            ("/drugs/undo", "phil", format!("id={bad_check}"), StatusCode::BAD_REQUEST, "check digit"),
            ("/drugs/capture", "dan", format!("document={}", esc("{not json")), StatusCode::BAD_REQUEST, "JSON"),
            (
                "/drugs/capture",
                "dan",
                format!("document={}", esc(split)),
                StatusCode::BAD_REQUEST,
                "/epcisBody/eventList/0/action",
            ),
            (
                "/drugs/capture",
                "dan",
                format!("document={oversize}"),
                StatusCode::BAD_REQUEST,
                "the document is too large: 262145 bytes",
            ),
        ];
        for (path, who, body, status, says) in cases {
            let (got, page) = send(&ui, form(path, who, &body)).await;
            assert_eq!(got, status, "{path} as {who} ({}): {page}", &body[..body.len().min(80)]);
            assert!(
                page.to_lowercase().contains(&says.to_lowercase()),
                "{path} as {who}: the refusal should say `{says}`: {page}"
            );
            if status == StatusCode::FORBIDDEN {
                // Refused for the role the identity holds (its credential was read).
                assert!(page.contains(&format!("; {who} is ")) && !page.contains("without a credential"), "{page}");
            }
            assert!(ui.jobs.is_empty(), "{path} as {who}: a job was started for a refused form");
        }
        // The control: the same forms, well filled, reach their job in this harness.
        let good = [
            ("/drugs/products", "mia", product("gtin=10614141073464&pack_size=1")),
            ("/drugs/prefixes", "rita", "prefix=0614141&institution=h1".to_string()),
            ("/drugs/prefixes/unbind", "rita", "prefix=0614141".to_string()),
            ("/drugs/commission", "mia", "gtin=10614141073464&lot=L1&expiry=301231&serials=S1".to_string()),
            ("/drugs/ship", "dan", format!("items={pack}&party=h2")),
            ("/drugs/report", "dan", format!("items={pack}&status=stolen&reason=r")),
            ("/drugs/dispense", "phil", format!("id={pack}")),
        ];
        for (path, who, body) in good {
            let fresh = test_ui(&[
                ("mia", Some(Role::Manufacturer)),
                ("dan", Some(Role::Distributor)),
                ("phil", Some(Role::Pharmacy)),
                ("rita", Some(Role::Regulator)),
            ]);
            let (got, page) = send(&fresh, form(path, who, &body)).await;
            assert_eq!(got, StatusCode::OK, "{path} as {who}: {page}");
            assert!(!fresh.jobs.is_empty(), "{path} as {who}: no job started: {page}");
        }
        // Tracing needs an identifier (and a supply role).
        let get = |q: &str, who: &str| {
            Request::get(format!("/drugs/trace?id={q}"))
                .header("host", "127.0.0.1:7790")
                .header("hx-request", "true")
                .header("cookie", format!("who={who}"))
                .body(Body::empty())
                .unwrap()
        };
        let (got, page) = send(&ui, get("", "rita")).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains("name the identifier"), "{page}");
        let (got, page) = send(&ui, get(&bad_check, "rita")).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains("check digit"), "{page}");
        let (got, page) = send(&ui, get(&pack, "nobody")).await;
        assert_eq!(got, StatusCode::FORBIDDEN, "{page}");
        assert!(page.contains("Tracing is for") && page.contains("nobody is without a credential"), "{page}");
    }
}
