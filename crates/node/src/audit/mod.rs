//! Audit queries over the on-chain access events, and their FHIR AuditEvent export.
//!
//! Who sees what (audit metadata needs no consent, but it is not open to everyone):
//! - a patient: every event on their own records;
//! - a regulator: every event, filtered by patient, institution, time, purpose and outcome;
//! - an institution admin: the events its own institution recorded.
//!
//! Record content is never part of an audit answer.

pub mod journal;

use crate::error::ServiceError;
use medledger_state::audit::{self as access, AccessEvent};
use medledger_state::records;
use medledger_state::store::StateRead;
use medledger_state::{identity, Principal};
use medledger_types::read::{AuditQuery, MAX_AUDIT_LIMIT};
use medledger_types::ErrorCode;
use medledger_types::{AccessOutcome, Purpose, Role};
use serde::{Deserialize, Serialize};

/// Most chain-wide log entries one query scans (newest first); `truncated` says when more exist.
pub const MAX_AUDIT_SCAN: u64 = 100_000;

/// One access event with the patient whose record it touched.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Id of the signed read request this event logs (hex).
    pub request_id: String,
    pub record_id: String,
    pub version: u32,
    /// Patient pseudonym (hex).
    pub patient: String,
    pub resource_type: String,
    /// Requester's public key (hex).
    pub requester: String,
    pub purpose: String,
    /// `served`, `denied` or `break_glass`.
    pub outcome: String,
    pub break_glass: bool,
    /// Denial or break-glass reason, sealed for the patient, the holding institution and every
    /// regulator (open it with `medledger_vault::envelope::open_note`, the request id as
    /// subject); empty for an ordinary served read.
    pub reason: medledger_types::SealedNote,
    /// Key that signed the event (the holder's node service key).
    pub recorded_by: String,
    /// Institution that held the record and recorded the event.
    pub institution: String,
    pub height: u64,
    pub timestamp_ms: u64,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditResult {
    /// Matching events, newest first.
    pub events: Vec<AuditEntry>,
    /// Log entries examined.
    pub scanned: u64,
    /// True if the scan stopped at its limit before the start of the log.
    pub truncated: bool,
}

fn forbidden(msg: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::NotPermitted, msg)
}

fn matches(q: &AuditQuery, e: &AccessEvent) -> bool {
    q.institution.as_ref().is_none_or(|i| *i == e.institution)
        && q.from_ms.is_none_or(|t| e.timestamp_ms >= t)
        && q.to_ms.is_none_or(|t| e.timestamp_ms < t)
        && q.purpose.is_none_or(|p| p == e.purpose)
        && q.outcome.is_none_or(|o| o == e.outcome)
}

/// An access event as the API shows it.
pub fn entry(state: &dyn StateRead, e: AccessEvent) -> AuditEntry {
    let head = records::head(state, &e.record_id);
    AuditEntry {
        request_id: e.request_id.to_hex(),
        record_id: e.record_id.to_hex(),
        version: e.version,
        patient: head.as_ref().map(|h| h.patient.to_hex()).unwrap_or_default(),
        resource_type: head.map(|h| h.resource_type).unwrap_or_default(),
        requester: e.requester.to_hex(),
        purpose: e.purpose.name().into(),
        outcome: e.outcome.name().into(),
        break_glass: e.outcome == AccessOutcome::BreakGlass,
        reason: e.reason,
        recorded_by: e.recorded_by.to_hex(),
        institution: e.institution,
        height: e.height,
        timestamp_ms: e.timestamp_ms,
    }
}

/// Narrows `q` to what its (already authenticated) requester may see, or refuses.
pub fn authorize(state: &dyn StateRead, q: &mut AuditQuery, now_ms: u64, height: u64) -> Result<(), ServiceError> {
    let requester = q.requester.ok_or_else(|| forbidden("an audit query must name its requester"))?;
    let principal = identity::principal(state, &requester, now_ms, height).map_err(|r| forbidden(r.reason))?;
    match principal {
        Principal::Role(Role::Regulator) => Ok(()),
        Principal::Role(Role::Patient) => {
            let own = identity::credential(state, &requester)
                .and_then(|c| c.pseudonym)
                .ok_or_else(|| forbidden("patient credential has no pseudonym"))?;
            match q.patient {
                Some(p) if p != own => Err(forbidden("a patient may audit only their own records")),
                _ => {
                    q.patient = Some(own);
                    Ok(())
                }
            }
        }
        Principal::Role(Role::InstitutionAdmin) => {
            let own = identity::credential(state, &requester).map(|c| c.institution).unwrap_or_default();
            match &q.institution {
                Some(i) if *i != own => Err(forbidden(format!("an institution admin may audit only `{own}`"))),
                _ => {
                    q.institution = Some(own);
                    Ok(())
                }
            }
        }
        p => Err(forbidden(format!(
            "audit metadata is open to patients (their own records), regulators and institution admins, not to a {}",
            p.name()
        ))),
    }
}

/// Runs an authorized query: newest events first, at most `q.limit`.
pub fn run(state: &dyn StateRead, q: &AuditQuery) -> AuditResult {
    let limit = q.limit.clamp(1, MAX_AUDIT_LIMIT) as usize;
    if let Some(p) = q.patient {
        return run_for_patient(state, q, &p, limit);
    }
    let len = access::access_log_len(state);
    let mut events = Vec::new();
    let mut scanned = 0;
    let mut seq = len;
    while seq > 0 && events.len() < limit && scanned < MAX_AUDIT_SCAN {
        seq -= 1;
        scanned += 1;
        if let Some(e) = access::access_log_entry(state, seq) {
            if matches(q, &e) {
                events.push(entry(state, e));
            }
        }
    }
    let truncated = seq > 0 && events.len() < limit;
    AuditResult { events, scanned, truncated }
}

/// Per-patient audit: the newest events across the patient's records, merged newest first
/// (each record's events are in commit order, so each is read backwards), stopping at `limit`
/// matches or after [`MAX_AUDIT_SCAN`] events examined, like the chain-wide scan.
fn run_for_patient(
    state: &dyn StateRead,
    q: &AuditQuery,
    patient: &medledger_types::Hash,
    limit: usize,
) -> AuditResult {
    use std::collections::BinaryHeap;
    // (height, time, record index, event index): the max-heap pops the newest.
    let ids = records::record_ids_of(state, patient);
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<(u64, u64, usize, u64)>, r: usize, n: u64| {
        if let Some(e) = access::access_event(state, &ids[r], n) {
            heap.push((e.height, e.timestamp_ms, r, n));
        }
    };
    for (r, id) in ids.iter().enumerate() {
        let count = access::access_event_count(state, id);
        if count > 0 {
            push(&mut heap, r, count - 1);
        }
    }
    let mut events = Vec::new();
    let mut scanned = 0u64;
    while events.len() < limit && scanned < MAX_AUDIT_SCAN {
        let Some((_, _, r, n)) = heap.pop() else { break };
        scanned += 1;
        if let Some(e) = access::access_event(state, &ids[r], n) {
            if matches(q, &e) {
                events.push(entry(state, e));
            }
        }
        if n > 0 {
            push(&mut heap, r, n - 1);
        }
    }
    let truncated = !heap.is_empty() && events.len() < limit;
    AuditResult { events, scanned, truncated }
}

fn purpose_code(p: Purpose) -> (&'static str, &'static str) {
    // HL7 v3 PurposeOfUse codes (in the v3-ActReason code system).
    match p {
        Purpose::Treatment => ("TREAT", "treatment"),
        Purpose::Research => ("HRESCH", "healthcare research"),
        Purpose::Insurance => ("HPAYMT", "healthcare payment"),
        Purpose::Audit => ("HCOMPL", "health compliance"),
    }
}

/// A FHIR R4 `Coding`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Coding {
    pub system: String,
    pub code: String,
    pub display: String,
}

fn coding(system: &str, code: &str, display: &str) -> Coding {
    Coding { system: system.into(), code: code.into(), display: display.into() }
}

/// A FHIR R4 `CodeableConcept`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CodeableConcept {
    pub coding: Vec<Coding>,
}

/// A FHIR R4 `Identifier`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// A FHIR R4 `Reference` by identifier.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdentifierReference {
    pub identifier: Identifier,
}

fn reference(system: &str, value: &str) -> IdentifierReference {
    IdentifierReference { identifier: Identifier { system: system.into(), value: value.into() } }
}

/// `AuditEvent.agent`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditAgent {
    pub who: IdentifierReference,
    pub requestor: bool,
}

/// `AuditEvent.source`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditSource {
    pub site: String,
    pub observer: IdentifierReference,
    #[serde(rename = "type")]
    pub kind: Vec<Coding>,
}

/// `AuditEvent.entity.detail`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntityDetail {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "valueString")]
    pub value_string: String,
}

/// `AuditEvent.entity`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntity {
    pub what: IdentifierReference,
    #[serde(rename = "type")]
    pub kind: Coding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Coding>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub detail: Vec<AuditEntityDetail>,
}

/// A FHIR R4 AuditEvent resource (the elements MedLedger fills).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirAuditEvent {
    /// Always `AuditEvent`.
    pub resource_type: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Coding,
    pub subtype: Vec<Coding>,
    pub action: String,
    /// RFC 3339 instant.
    pub recorded: String,
    /// `0` success, `4` minor failure (the request was refused).
    pub outcome: String,
    pub outcome_desc: String,
    pub purpose_of_event: Vec<CodeableConcept>,
    pub agent: Vec<AuditAgent>,
    pub source: AuditSource,
    pub entity: Vec<AuditEntity>,
}

/// One entry of a FHIR Bundle.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FhirBundleEntry {
    pub resource: FhirAuditEvent,
}

/// A FHIR R4 `searchset` Bundle of AuditEvents.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FhirBundle {
    /// Always `Bundle`.
    pub resource_type: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub total: usize,
    pub entry: Vec<FhirBundleEntry>,
}

/// One access event as a FHIR R4 AuditEvent resource.
pub fn to_fhir(e: &AuditEntry) -> FhirAuditEvent {
    const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
    const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
    let purpose = Purpose::parse(&e.purpose).map(purpose_code).unwrap_or(("", ""));
    let mut purposes = vec![CodeableConcept { coding: vec![coding(ACT_REASON, purpose.0, purpose.1)] }];
    if e.break_glass {
        purposes.push(CodeableConcept { coding: vec![coding(ACT_REASON, "BTG", "break the glass")] });
    }
    // AuditEvent.outcome: 0 success, 4 minor failure (the request was refused).
    let (outcome, desc) = match e.outcome.as_str() {
        "denied" => ("4", "denied (the reason is sealed: see the sealedReason detail)".to_string()),
        "break_glass" => ("0", "break-glass (the reason is sealed: see the sealedReason detail)".to_string()),
        _ => ("0", "served under consent".to_string()),
    };
    let short: String = e.record_id.chars().take(16).collect();
    FhirAuditEvent {
        resource_type: "AuditEvent".into(),
        id: format!("{short}-{}-{}", e.height, e.timestamp_ms),
        kind: coding("http://dicom.nema.org/resources/ontology/DCM", "110110", "Patient Record"),
        subtype: vec![coding("http://hl7.org/fhir/restful-interaction", "read", "read")],
        action: "R".into(),
        recorded: medledger_types::time::rfc3339_ms(e.timestamp_ms),
        outcome: outcome.into(),
        outcome_desc: desc,
        purpose_of_event: purposes,
        agent: vec![AuditAgent { who: reference("urn:medledger:key", &e.requester), requestor: true }],
        source: AuditSource {
            site: e.institution.clone(),
            observer: reference("urn:medledger:institution", &e.institution),
            kind: vec![coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
        },
        entity: vec![
            AuditEntity {
                what: reference("urn:medledger:record", &e.record_id),
                kind: coding(ENTITY_TYPE, "2", "System Object"),
                role: None,
                detail: [
                    ("version", e.version.to_string()),
                    ("resourceType", e.resource_type.clone()),
                    ("height", e.height.to_string()),
                    ("requestId", e.request_id.clone()),
                ]
                .into_iter()
                .chain((!e.reason.is_empty()).then(|| {
                    // The canonical sealed note (hex): its readers open it offline.
                    ("sealedReason", hex::encode(medledger_types::Canonical::to_bytes(&e.reason)))
                }))
                .map(|(k, v)| AuditEntityDetail { kind: k.into(), value_string: v })
                .collect(),
            },
            AuditEntity {
                what: reference("urn:medledger:patient", &e.patient),
                kind: coding(ENTITY_TYPE, "1", "Person"),
                role: Some(coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")),
                detail: Vec::new(),
            },
        ],
    }
}

/// A FHIR searchset Bundle of AuditEvents.
pub fn fhir_bundle(events: &[AuditEntry], now_ms: u64) -> FhirBundle {
    FhirBundle {
        resource_type: "Bundle".into(),
        kind: "searchset".into(),
        timestamp: medledger_types::time::rfc3339_ms(now_ms),
        total: events.len(),
        entry: events.iter().map(|e| FhirBundleEntry { resource: to_fhir(e) }).collect(),
    }
}

/// An audit answer: the events as MedLedger JSON, or as a FHIR Bundle (`format = fhir`).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AuditAnswer {
    Events(AuditResult),
    Fhir(FhirBundle),
}
