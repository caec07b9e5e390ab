//! EPCIS 2.0 JSON / JSON-LD documents to and from drug operations.
//!
//! [`parse_document`] turns an `EPCISDocument` into the custody steps of one atomic
//! [`DrugsOp::Capture`], collecting every problem with the JSON path it was found at (the same
//! pointer syntax as JSON Schema validators: `/epcisBody/eventList/0/eventTime`). [`event_json`]
//! and [`query_document`] produce events and an `EPCISQueryDocument` for queries.
//!
//! Supported: `ObjectEvent` (ADD, OBSERVE, DELETE) and `AggregationEvent` (ADD, DELETE) with the
//! CBV 2.0 business steps commissioning, packing, unpacking, shipping, receiving, dispensing,
//! decommissioning and destroying; `readPoint` and `bizLocation` as SGLN; source and destination
//! lists naming member institutions as `urn:medledger:institution:{id}`; `ilmd` with
//! `cbvmda:lotNumber` and `cbvmda:itemExpirationDate`; `errorDeclaration` (an error declaration of
//! a dispensing event undoes it, and one of a shipping event cancels its shipment while open).

use super::gs1;
use super::{step, DrugsOp, Epc, ErrorDeclaration, EventMeta, Reported, Serial, Step};
use serde_json::{json, Map, Value};

/// The JSON-LD context of EPCIS 2.0 documents.
pub const CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/// How member institutions are named in source and destination lists.
pub const PARTY_PREFIX: &str = "urn:medledger:institution:";
/// Most bytes of a document one capture accepts (its events must also fit one transaction).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// One problem in a document, at a JSON pointer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpcisError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for EpcisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", if self.path.is_empty() { "/" } else { &self.path }, self.message)
    }
}

struct Errors(Vec<EpcisError>);

impl Errors {
    fn at(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(EpcisError { path: path.to_string(), message: message.into() });
    }
}

/// The institution id named by a party URI.
pub fn party_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(PARTY_PREFIX).filter(|id| !id.is_empty())
}

/// The party URI of an institution.
pub fn party_uri(institution: &str) -> String {
    format!("{PARTY_PREFIX}{institution}")
}

fn strip_cbv<'a>(v: &'a str, kind: &str) -> &'a str {
    // CBV terms may be bare (`shipping`) or full URIs (`urn:epcglobal:cbv:bizstep:shipping`,
    // `https://ref.gs1.org/cbv/BizStep-shipping`).
    let urn = format!("urn:epcglobal:cbv:{kind}:");
    let web = match kind {
        "bizstep" => "https://ref.gs1.org/cbv/BizStep-",
        _ => "https://ref.gs1.org/cbv/Disp-",
    };
    v.strip_prefix(urn.as_str()).or_else(|| v.strip_prefix(web)).unwrap_or(v)
}

/// Parses a document (bytes of JSON) into capture steps, or every error found.
pub fn parse_document(bytes: &[u8]) -> Result<Vec<Step>, Vec<EpcisError>> {
    parse_value(&read_document(bytes).map_err(|e| vec![e])?)
}

/// Reads a document's bytes as JSON, within [`MAX_DOCUMENT_BYTES`] (not yet checked as EPCIS:
/// see [`parse_value`]).
pub fn read_document(bytes: &[u8]) -> Result<Value, EpcisError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(EpcisError {
            path: String::new(),
            message: format!("too large: {} bytes, above the limit of {MAX_DOCUMENT_BYTES}", bytes.len()),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| EpcisError { path: String::new(), message: format!("not JSON: {e}") })
}

/// Parses a document already read as JSON.
pub fn parse_value(doc: &Value) -> Result<Vec<Step>, Vec<EpcisError>> {
    let mut errs = Errors(Vec::new());
    let mut steps = Vec::new();
    let Some(obj) = doc.as_object() else {
        return Err(vec![EpcisError { path: String::new(), message: "a document is a JSON object".into() }]);
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("EPCISDocument") => {}
        Some(t) => errs.at("/type", format!("`{t}` is not EPCISDocument")),
        None => errs.at("/type", "missing (expected \"EPCISDocument\")"),
    }
    match obj.get("schemaVersion").and_then(Value::as_str) {
        Some("2.0") => {}
        Some(v) => errs.at("/schemaVersion", format!("`{v}` is not supported (expected \"2.0\")")),
        None => errs.at("/schemaVersion", "missing (expected \"2.0\")"),
    }
    if obj.get("creationDate").and_then(Value::as_str).is_none() {
        errs.at("/creationDate", "missing date-time");
    }
    let list = obj.get("epcisBody").and_then(|b| b.get("eventList"));
    match list.and_then(Value::as_array) {
        None => errs.at("/epcisBody/eventList", "missing array of events"),
        Some(events) if events.is_empty() => errs.at("/epcisBody/eventList", "the document has no event"),
        Some(events) => {
            if events.len() > crate::limits::MAX_CAPTURE_EVENTS {
                errs.at(
                    "/epcisBody/eventList",
                    format!(
                        "{} events, above the limit of {} per capture",
                        events.len(),
                        crate::limits::MAX_CAPTURE_EVENTS
                    ),
                );
            } else {
                for (i, e) in events.iter().enumerate() {
                    parse_event(e, &format!("/epcisBody/eventList/{i}"), &mut errs, &mut steps);
                }
            }
        }
    }
    if errs.0.is_empty() {
        Ok(steps)
    } else {
        Err(errs.0)
    }
}

/// An identifier in an EPC list: an EPC URI, or a GS1 Digital Link URI (EPCIS 2.0 allows
/// both; this ledger writes a Digital Link for an identifier whose company prefix is not bound).
fn epc_at(uri: &str, path: &str, errs: &mut Errors) -> Option<Epc> {
    let parsed = if uri.starts_with("https://") { gs1::parse_digital_link(uri) } else { gs1::parse_epc_uri(uri) };
    match parsed {
        Ok(id) => match (id.gtin, id.serial, id.sscc) {
            (Some(gtin), Some(serial), _) => Some(Epc::Sgtin { gtin, serial }),
            (_, _, Some(sscc)) => Some(Epc::Sscc(sscc)),
            _ => {
                errs.at(path, format!("`{uri}` is not an SGTIN or SSCC"));
                None
            }
        },
        Err(e) => {
            errs.at(path, e.to_string());
            None
        }
    }
}

fn epc_list(ev: &Map<String, Value>, field: &str, path: &str, errs: &mut Errors) -> Vec<Epc> {
    match ev.get(field) {
        None => Vec::new(),
        Some(Value::Array(v)) => v
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x.as_str() {
                Some(s) => epc_at(s, &format!("{path}/{field}/{i}"), errs),
                None => {
                    errs.at(&format!("{path}/{field}/{i}"), "expected an EPC URI string");
                    None
                }
            })
            .collect(),
        Some(_) => {
            errs.at(&format!("{path}/{field}"), "expected an array of EPC URIs");
            Vec::new()
        }
    }
}

fn location(ev: &Map<String, Value>, field: &str, path: &str, errs: &mut Errors) -> Option<String> {
    let v = ev.get(field)?;
    let Some(id) = v.get("id").and_then(Value::as_str) else {
        errs.at(&format!("{path}/{field}/id"), "expected an SGLN EPC URI");
        return None;
    };
    match gs1::parse_epc_uri(id) {
        Ok(g) if g.gln.is_some() => Some(id.to_string()),
        Ok(_) => {
            errs.at(&format!("{path}/{field}/id"), format!("`{id}` is not an SGLN"));
            None
        }
        Err(e) => {
            errs.at(&format!("{path}/{field}/id"), e.to_string());
            None
        }
    }
}

/// The one institution a source or destination list names (first `owning_party`, else
/// `possessing_party`).
fn party(ev: &Map<String, Value>, list: &str, key: &str, path: &str, errs: &mut Errors) -> Option<String> {
    let Some(items) = ev.get(list) else {
        errs.at(&format!("{path}/{list}"), format!("missing; this business step names its {key}"));
        return None;
    };
    let Some(items) = items.as_array() else {
        errs.at(&format!("{path}/{list}"), "expected an array");
        return None;
    };
    for want in ["owning_party", "possessing_party"] {
        for (i, it) in items.iter().enumerate() {
            let ty = it.get("type").and_then(Value::as_str).map(|t| strip_cbv(t, "sdt"));
            let ty = ty.map(|t| t.strip_prefix("https://ref.gs1.org/cbv/SDT-").unwrap_or(t));
            if ty == Some(want) {
                let Some(uri) = it.get(key).and_then(Value::as_str) else {
                    errs.at(&format!("{path}/{list}/{i}/{key}"), "expected a party URI");
                    return None;
                };
                return match party_id(uri) {
                    Some(id) => Some(id.to_string()),
                    None => {
                        errs.at(
                            &format!("{path}/{list}/{i}/{key}"),
                            format!("`{uri}` is not a member institution ({PARTY_PREFIX}{{id}})"),
                        );
                        None
                    }
                };
            }
        }
    }
    errs.at(&format!("{path}/{list}"), "no owning_party or possessing_party entry");
    None
}

fn expiry_from_date(d: &str) -> Option<String> {
    // ILMD dates are xsd:date, `YYYY-MM-DD`; the GS1 expiry is YYMMDD.
    let b = d.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !d.starts_with("20") {
        return None;
    }
    Some(format!("{}{}{}", &d[2..4], &d[5..7], &d[8..10]))
}

fn parse_event(e: &Value, path: &str, errs: &mut Errors, steps: &mut Vec<Step>) {
    let Some(ev) = e.as_object() else {
        errs.at(path, "an event is a JSON object");
        return;
    };
    let before = errs.0.len();
    let ty = ev.get("type").and_then(Value::as_str).unwrap_or("");
    if !matches!(ty, "ObjectEvent" | "AggregationEvent") {
        errs.at(&format!("{path}/type"), format!("`{ty}` is not supported (ObjectEvent or AggregationEvent)"));
        return;
    }
    let action = ev.get("action").and_then(Value::as_str).unwrap_or("");
    if !matches!(action, "ADD" | "OBSERVE" | "DELETE") {
        errs.at(&format!("{path}/action"), format!("`{action}` is not ADD, OBSERVE or DELETE"));
    }
    let time = match ev.get("eventTime").and_then(Value::as_str) {
        Some(t) => match crate::time::parse_rfc3339_ms(t) {
            Ok(ms) => ms,
            Err(m) => {
                errs.at(&format!("{path}/eventTime"), m);
                0
            }
        },
        None => {
            errs.at(&format!("{path}/eventTime"), "missing date-time");
            0
        }
    };
    if ev.get("eventTimeZoneOffset").and_then(Value::as_str).is_none() {
        errs.at(&format!("{path}/eventTimeZoneOffset"), "missing (for example \"+00:00\")");
    }
    let event_id = match ev.get("eventID").and_then(Value::as_str) {
        Some(id) if !id.trim().is_empty() => id.to_string(),
        _ => {
            errs.at(&format!("{path}/eventID"), "missing; every captured event needs an id (a URI)");
            String::new()
        }
    };
    let error_declaration = ev.get("errorDeclaration").map(|d| {
        let declared_ms = match d.get("declarationTime").and_then(Value::as_str).map(crate::time::parse_rfc3339_ms) {
            Some(Ok(ms)) => ms,
            Some(Err(m)) => {
                errs.at(&format!("{path}/errorDeclaration/declarationTime"), m);
                0
            }
            None => {
                errs.at(&format!("{path}/errorDeclaration/declarationTime"), "missing date-time");
                0
            }
        };
        let reason = d.get("reason").and_then(Value::as_str).map(|r| strip_cbv(r, "er")).unwrap_or("incorrect_data");
        ErrorDeclaration { declared_ms, reason: reason.to_string() }
    });
    let meta = EventMeta {
        event_id,
        event_time_ms: time,
        read_point: location(ev, "readPoint", path, errs),
        biz_location: location(ev, "bizLocation", path, errs),
        error_declaration,
    };
    let step = ev.get("bizStep").and_then(Value::as_str).map(|s| strip_cbv(s, "bizstep")).unwrap_or("");
    let disposition = ev.get("disposition").and_then(Value::as_str).map(|s| strip_cbv(s, "disp"));
    let reason = ev.get("ml:reason").and_then(Value::as_str).unwrap_or("reported in an EPCIS document").to_string();
    let mut ops: Vec<DrugsOp> = Vec::new();
    if ty == "AggregationEvent" {
        let parent =
            match ev.get("parentID").and_then(Value::as_str).map(|p| epc_at(p, &format!("{path}/parentID"), errs)) {
                Some(Some(Epc::Sscc(s))) => Some(s),
                Some(Some(_)) => {
                    errs.at(&format!("{path}/parentID"), "a parent is a case or pallet (SSCC)");
                    None
                }
                Some(None) => None,
                None => {
                    errs.at(&format!("{path}/parentID"), "missing; an aggregation names its case or pallet");
                    None
                }
            };
        let children = epc_list(ev, "childEPCs", path, errs);
        match (action, step, parent) {
            ("ADD", step::PACKING, Some(parent)) => ops.push(DrugsOp::Aggregate { meta, parent, children }),
            ("DELETE", step::UNPACKING, Some(parent)) => ops.push(DrugsOp::Disaggregate { meta, parent, children }),
            (_, _, None) => {}
            _ => errs.at(
                &format!("{path}/bizStep"),
                format!("`{step}` with action {action} is not supported (packing with ADD, unpacking with DELETE)"),
            ),
        }
    } else {
        let epcs = epc_list(ev, "epcList", path, errs);
        if ev.get("epcList").is_none() {
            errs.at(&format!("{path}/epcList"), "missing; the event names no pack, case or pallet");
        }
        match step {
            step::COMMISSIONING => {
                if action != "ADD" {
                    errs.at(&format!("{path}/action"), "commissioning is an ADD");
                }
                let ilmd = ev.get("ilmd");
                let lot = ilmd.and_then(|i| i.get("cbvmda:lotNumber")).and_then(Value::as_str);
                let exp = ilmd.and_then(|i| i.get("cbvmda:itemExpirationDate")).and_then(Value::as_str);
                if lot.is_none() {
                    errs.at(&format!("{path}/ilmd/cbvmda:lotNumber"), "missing; commissioning records the lot");
                }
                let expiry = match exp {
                    Some(d) => expiry_from_date(d).or_else(|| {
                        errs.at(&format!("{path}/ilmd/cbvmda:itemExpirationDate"), format!("`{d}` is not a date YYYY-MM-DD in 2000-2099"));
                        None
                    }),
                    None => {
                        errs.at(&format!("{path}/ilmd/cbvmda:itemExpirationDate"), "missing; commissioning records the expiry");
                        None
                    }
                };
                // The packs by GTIN, in order of first appearance.
                let mut by_gtin: Vec<(String, Vec<Serial>)> = Vec::new();
                for (i, epc) in epcs.into_iter().enumerate() {
                    match epc {
                        Epc::Sgtin { gtin, serial } => match by_gtin.iter_mut().find(|(g, _)| *g == gtin) {
                            Some((_, v)) => v.push(Serial(serial)),
                            None => by_gtin.push((gtin, vec![Serial(serial)])),
                        },
                        Epc::Sscc(_) => errs.at(&format!("{path}/epcList/{i}"), "only packs (SGTIN) are commissioned here"),
                    }
                }
                // A lot is one product's, and an event id names one operation: an event that
                // commissions packs of several GTINs is refused here, not split into operations
                // that would share its id (the second would be refused as already captured).
                if by_gtin.len() > 1 {
                    let gtins: Vec<&str> = by_gtin.iter().map(|(g, _)| g.as_str()).collect();
                    errs.at(
                        &format!("{path}/epcList"),
                        format!(
                            "a commissioning event here commissions one product's packs (its lot is one GTIN's); this one names {} GTINs ({}): capture one event per GTIN",
                            gtins.len(),
                            gtins.join(", ")
                        ),
                    );
                } else if let (Some(lot), Some(expiry), Some((gtin, serials))) = (lot, expiry, by_gtin.pop()) {
                    ops.push(DrugsOp::Commission { meta, gtin, lot: lot.to_string(), expiry, serials });
                }
            }
            step::SHIPPING => {
                if let Some(to) = party(ev, "destinationList", "destination", path, errs) {
                    ops.push(DrugsOp::Ship { meta, epcs, to });
                }
            }
            step::RECEIVING => {
                if let Some(from) = party(ev, "sourceList", "source", path, errs) {
                    ops.push(DrugsOp::Receive { meta, epcs, from });
                }
            }
            step::DISPENSING => {
                if epcs.len() != 1 {
                    errs.at(&format!("{path}/epcList"), "dispensing names exactly one pack");
                } else if let Some(epc) = epcs.into_iter().next() {
                    if meta.error_declaration.is_some() {
                        ops.push(DrugsOp::UndoDispense { meta, epc });
                    } else {
                        ops.push(DrugsOp::Dispense { meta, epc });
                    }
                }
            }
            step::DECOMMISSIONING | step::DESTROYING => {
                let status = match disposition.unwrap_or(if step == step::DESTROYING { "destroyed" } else { "" }) {
                    "stolen" => Some(Reported::Stolen),
                    "destroyed" => Some(Reported::Destroyed),
                    "damaged" => Some(Reported::Damaged),
                    "returned" => Some(Reported::Returned),
                    other => {
                        errs.at(
                            &format!("{path}/disposition"),
                            format!("`{other}` is not supported here (stolen, destroyed, damaged or returned)"),
                        );
                        None
                    }
                };
                if let Some(status) = status {
                    ops.push(DrugsOp::Report { meta, epcs, status, reason });
                }
            }
            "" => errs.at(&format!("{path}/bizStep"), "missing business step"),
            other => errs.at(
                &format!("{path}/bizStep"),
                format!("`{other}` is not supported (commissioning, packing, unpacking, shipping, receiving, dispensing, decommissioning, destroying)"),
            ),
        }
    }
    if errs.0.len() == before {
        for op in ops {
            if let Err(m) = op.check_limits() {
                errs.at(path, m);
            } else {
                steps.push(Step(op));
            }
        }
    }
}

fn epc_uri_or_key(epc: &Epc, prefix_len: &dyn Fn(&str) -> Option<usize>) -> String {
    // Both keys start with one indicator or extension digit, then the company prefix.
    let len = match epc {
        Epc::Sgtin { gtin, .. } => prefix_len(gtin.get(1..).unwrap_or("")),
        Epc::Sscc(s) => prefix_len(s.get(1..).unwrap_or("")),
    };
    len.and_then(|l| epc.epc_uri(l).ok())
        .unwrap_or_else(|| epc.to_gs1().digital_link().unwrap_or_else(|| epc.to_string()))
}

/// One custody operation as an EPCIS 2.0 event. `prefix_len` gives the length of the company
/// prefix that starts a run of digits (a GTIN-14 or SSCC without its first digit), from the
/// prefixes bound on chain; without it an identifier is written as a Digital Link.
pub fn event_json(op: &DrugsOp, prefix_len: &dyn Fn(&str) -> Option<usize>) -> Option<Value> {
    let meta = op.meta()?;
    let uri = |e: &Epc| epc_uri_or_key(e, prefix_len);
    let mut ev = Map::new();
    let time = crate::time::rfc3339_ms(meta.event_time_ms);
    let (ty, action, disposition) = match op {
        DrugsOp::Commission { gtin, serials, lot, expiry, .. } => {
            let list: Vec<Value> = serials
                .iter()
                .map(|s| Value::String(uri(&Epc::Sgtin { gtin: gtin.clone(), serial: s.0.clone() })))
                .collect();
            ev.insert("epcList".into(), Value::Array(list));
            let date = format!("20{}-{}-{}", &expiry[0..2], &expiry[2..4], &expiry[4..6]);
            ev.insert("ilmd".into(), json!({ "cbvmda:lotNumber": lot, "cbvmda:itemExpirationDate": date }));
            ("ObjectEvent", "ADD", Some("active"))
        }
        DrugsOp::Aggregate { parent, children, .. } | DrugsOp::Disaggregate { parent, children, .. } => {
            ev.insert("parentID".into(), Value::String(uri(&Epc::Sscc(parent.clone()))));
            ev.insert("childEPCs".into(), Value::Array(children.iter().map(|c| Value::String(uri(c))).collect()));
            if matches!(op, DrugsOp::Aggregate { .. }) {
                ("AggregationEvent", "ADD", Some("in_progress"))
            } else {
                ("AggregationEvent", "DELETE", Some("in_progress"))
            }
        }
        DrugsOp::Ship { epcs, to, .. } => {
            ev.insert("epcList".into(), Value::Array(epcs.iter().map(|c| Value::String(uri(c))).collect()));
            ev.insert("destinationList".into(), json!([{ "type": "owning_party", "destination": party_uri(to) }]));
            ("ObjectEvent", "OBSERVE", Some("in_transit"))
        }
        DrugsOp::Receive { epcs, from, .. } => {
            ev.insert("epcList".into(), Value::Array(epcs.iter().map(|c| Value::String(uri(c))).collect()));
            ev.insert("sourceList".into(), json!([{ "type": "owning_party", "source": party_uri(from) }]));
            ("ObjectEvent", "OBSERVE", Some("in_progress"))
        }
        DrugsOp::Dispense { epc, .. } | DrugsOp::UndoDispense { epc, .. } => {
            ev.insert("epcList".into(), json!([uri(epc)]));
            ("ObjectEvent", "OBSERVE", Some("dispensed"))
        }
        DrugsOp::Report { epcs, status, .. } => {
            ev.insert("epcList".into(), Value::Array(epcs.iter().map(|c| Value::String(uri(c))).collect()));
            ("ObjectEvent", "OBSERVE", Some(status.name()))
        }
        _ => return None,
    };
    ev.insert("type".into(), Value::String(ty.into()));
    ev.insert("eventTime".into(), Value::String(time));
    ev.insert("eventTimeZoneOffset".into(), Value::String("+00:00".into()));
    ev.insert("eventID".into(), Value::String(meta.event_id.clone()));
    ev.insert("action".into(), Value::String(action.into()));
    if let Some(step) = op.biz_step() {
        ev.insert("bizStep".into(), Value::String(step.into()));
    }
    if let Some(d) = disposition {
        ev.insert("disposition".into(), Value::String(d.into()));
    }
    if let Some(rp) = &meta.read_point {
        ev.insert("readPoint".into(), json!({ "id": rp }));
    }
    if let Some(bl) = &meta.biz_location {
        ev.insert("bizLocation".into(), json!({ "id": bl }));
    }
    if let Some(d) = &meta.error_declaration {
        ev.insert(
            "errorDeclaration".into(),
            json!({ "declarationTime": crate::time::rfc3339_ms(d.declared_ms), "reason": d.reason }),
        );
    }
    Some(Value::Object(ev))
}

/// An `EPCISDocument` of `events` (for capture).
pub fn document(events: Vec<Value>, created_ms: u64) -> Value {
    json!({
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": crate::time::rfc3339_ms(created_ms),
        "epcisBody": { "eventList": events }
    })
}

/// An `EPCISQueryDocument` answering a query named `query_name` with `events`.
pub fn query_document(query_name: &str, events: Vec<Value>, created_ms: u64) -> Value {
    json!({
        "@context": [CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": crate::time::rfc3339_ms(created_ms),
        "epcisBody": { "queryResults": { "queryName": query_name, "resultsBody": { "eventList": events } } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drugs::tests::GTIN;

    fn seven(_: &str) -> Option<usize> {
        Some(7)
    }

    fn doc(events: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "@context": [CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2026-11-22T10:00:00Z", "epcisBody": { "eventList": events }
        }))
        .unwrap()
    }

    fn commissioning() -> Value {
        json!({
            "type": "ObjectEvent", "eventID": "urn:uuid:7c1c1a34-8a14-4d2b-9e0d-1b7b8c0c0a01",
            "eventTime": "2026-11-22T10:00:00.000Z", "eventTimeZoneOffset": "+00:00", "action": "ADD",
            "bizStep": "commissioning", "disposition": "active",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018"],
            "readPoint": { "id": "urn:epc:id:sgln:0614141.00001.0" },
            "ilmd": { "cbvmda:lotNumber": "LOTA1", "cbvmda:itemExpirationDate": "2027-06-30" }
        })
    }

    #[test]
    fn a_commissioning_event_of_several_gtins_is_refused_at_its_epc_list() {
        let mut e = commissioning();
        e["epcList"][1] = json!("urn:epc:id:sgtin:0614141.107347.2018");
        let errs = parse_document(&doc(json!([e]))).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "/epcisBody/eventList/0/epcList");
        assert!(
            errs[0].message.contains("names 2 GTINs") && errs[0].message.contains("one event per GTIN"),
            "{errs:?}"
        );
    }

    #[test]
    fn commissioning_becomes_one_operation() {
        let steps = parse_document(&doc(json!([commissioning()]))).unwrap();
        assert_eq!(steps.len(), 1);
        match &steps[0].0 {
            DrugsOp::Commission { gtin, lot, expiry, serials, meta } => {
                assert_eq!(gtin, GTIN);
                assert_eq!(lot, "LOTA1");
                assert_eq!(expiry, "270630");
                assert_eq!(serials, &vec![Serial::from("2017"), Serial::from("2018")]);
                assert_eq!(meta.read_point.as_deref(), Some("urn:epc:id:sgln:0614141.00001.0"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn produced_events_parse_back_to_the_same_operations() {
        let steps = parse_document(&doc(json!([commissioning()]))).unwrap();
        let events: Vec<Value> = steps.iter().filter_map(|s| event_json(&s.0, &seven)).collect();
        let again = parse_value(&document(events, 0)).unwrap();
        assert_eq!(again, steps);
        for op in crate::drugs::tests::samples().into_iter().filter(|o| o.meta().is_some()) {
            let Some(ev) = event_json(&op, &seven) else { panic!("{op:?}") };
            let back = parse_value(&document(vec![ev.clone()], 0)).unwrap_or_else(|e| panic!("{ev}: {e:?}"));
            match (&op, &back[0].0) {
                // Reasons are not carried by standard EPCIS fields.
                (DrugsOp::Report { status, epcs, .. }, DrugsOp::Report { status: s2, epcs: e2, .. }) => {
                    assert_eq!((status, epcs), (s2, e2))
                }
                // An undo is an error declaration of the dispensing event.
                (DrugsOp::UndoDispense { .. }, DrugsOp::Dispense { .. }) => {}
                _ => assert_eq!(back, vec![Step(op.clone())], "{ev}"),
            }
        }
        // Without a bound prefix, identifiers are written as Digital Links, and read back.
        let none = |_: &str| None;
        let events: Vec<Value> = steps.iter().filter_map(|s| event_json(&s.0, &none)).collect();
        assert!(events[0]["epcList"][0].as_str().unwrap().starts_with("https://id.gs1.org/01/"), "{events:?}");
        assert_eq!(parse_value(&document(events, 0)).unwrap(), steps);
        let ship = DrugsOp::Ship {
            meta: EventMeta::now(0),
            epcs: vec![Epc::Sscc("106141412345678908".into())],
            to: "dist-1".into(),
        };
        let ev = event_json(&ship, &none).unwrap();
        assert!(ev["epcList"][0].as_str().unwrap().starts_with("https://id.gs1.org/00/"), "{ev}");
        assert_eq!(parse_value(&document(vec![ev], 0)).unwrap(), vec![Step(ship)]);
    }

    #[test]
    fn errors_point_at_the_json_path() {
        let mut e = commissioning();
        e.as_object_mut().unwrap().remove("eventTime");
        e["action"] = json!("MOVE");
        e["epcList"][1] = json!("urn:epc:id:sgtin:0614141.107346.20 17");
        let errs = parse_document(&doc(json!([e]))).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"/epcisBody/eventList/0/eventTime"), "{errs:?}");
        assert!(paths.contains(&"/epcisBody/eventList/0/action"), "{errs:?}");
        assert!(paths.contains(&"/epcisBody/eventList/0/epcList/1"), "{errs:?}");
        let errs = parse_document(b"{\"type\":\"EPCISQueryDocument\"}").unwrap_err();
        assert_eq!(errs[0].path, "/type");
        let errs = parse_document(b"[1,2]").unwrap_err();
        assert_eq!(errs[0].path, "");
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(parse_document(&big).unwrap_err()[0].message.contains("above the limit"));
    }

    #[test]
    fn shipping_names_a_member_institution() {
        let ev = json!({
            "type": "ObjectEvent", "eventID": "urn:uuid:1", "eventTime": "2026-11-22T10:00:00Z",
            "eventTimeZoneOffset": "+00:00", "action": "OBSERVE", "bizStep": "urn:epcglobal:cbv:bizstep:shipping",
            "epcList": ["urn:epc:id:sscc:0614141.1234567890"],
            "destinationList": [{ "type": "owning_party", "destination": "urn:epc:id:pgln:0614141.00002" }]
        });
        let errs = parse_document(&doc(json!([ev]))).unwrap_err();
        assert_eq!(errs[0].path, "/epcisBody/eventList/0/destinationList/0/destination");
    }
}
