//! Audit queries over the on-chain access events, and their FHIR AuditEvent export.
//!
//! Who sees what (audit metadata needs no consent, but it is not open to everyone):
//! - a patient: every event on their own records;
//! - a regulator: every event, filtered by patient, institution, time, purpose and outcome;
//! - an institution admin: the events its own institution recorded.
//!
//! Record content is never part of an audit answer.

use crate::error::ServiceError;
use medledger_state::audit::{self as access, AccessEvent};
use medledger_state::records;
use medledger_state::store::StateRead;
use medledger_state::{identity, Principal};
use medledger_types::read::{AuditQuery, MAX_AUDIT_LIMIT};
use medledger_types::ErrorCode;
use medledger_types::{AccessOutcome, Purpose, Role};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most chain-wide log entries one query scans (newest first); `truncated` says when more exist.
pub const MAX_AUDIT_SCAN: u64 = 100_000;

/// One access event with the patient whose record it touched.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
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
    pub reason: String,
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

fn entry(state: &dyn StateRead, e: AccessEvent) -> AuditEntry {
    let head = records::head(state, &e.record_id);
    AuditEntry {
        record_id: e.record_id.to_hex(),
        version: e.version,
        patient: head.as_ref().map(|h| h.patient.to_hex()).unwrap_or_default(),
        resource_type: head.map(|h| h.resource_type).unwrap_or_default(),
        requester: e.requester.to_hex(),
        purpose: e.purpose.name().into(),
        outcome: e.outcome.name().into(),
        break_glass: e.outcome == AccessOutcome::BreakGlass,
        reason: e.reason,
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
        // Per-patient: walk the patient's own records (bounded by the per-patient limits).
        let mut all: Vec<AccessEvent> = Vec::new();
        let mut scanned = 0u64;
        for id in records::record_ids_of(state, &p) {
            for e in access::access_events(state, &id) {
                scanned += 1;
                if matches(q, &e) {
                    all.push(e);
                }
            }
        }
        all.sort_by_key(|e| std::cmp::Reverse((e.height, e.timestamp_ms)));
        all.truncate(limit);
        return AuditResult { events: all.into_iter().map(|e| entry(state, e)).collect(), scanned, truncated: false };
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

fn purpose_code(p: Purpose) -> (&'static str, &'static str) {
    // HL7 v3 PurposeOfUse codes (in the v3-ActReason code system).
    match p {
        Purpose::Treatment => ("TREAT", "treatment"),
        Purpose::Research => ("HRESCH", "healthcare research"),
        Purpose::Insurance => ("HPAYMT", "healthcare payment"),
        Purpose::Audit => ("HCOMPL", "health compliance"),
    }
}

/// One access event as a FHIR R4 AuditEvent resource.
pub fn to_fhir(e: &AuditEntry) -> Value {
    const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
    let purpose = Purpose::parse(&e.purpose).map(purpose_code).unwrap_or(("", ""));
    let mut purposes = vec![json!({ "coding": [{ "system": ACT_REASON, "code": purpose.0, "display": purpose.1 }] })];
    if e.break_glass {
        purposes.push(json!({ "coding": [{ "system": ACT_REASON, "code": "BTG", "display": "break the glass" }] }));
    }
    // AuditEvent.outcome: 0 success, 4 minor failure (the request was refused).
    let (outcome, desc) = match e.outcome.as_str() {
        "denied" => ("4", format!("denied: {}", e.reason)),
        "break_glass" => ("0", format!("break-glass: {}", e.reason)),
        _ => ("0", "served under consent".to_string()),
    };
    json!({
        "resourceType": "AuditEvent",
        "id": format!("{}-{}-{}", &e.record_id[..16], e.height, e.timestamp_ms),
        "type": { "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record" },
        "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read" }],
        "action": "R",
        "recorded": medledger_types::time::rfc3339_ms(e.timestamp_ms),
        "outcome": outcome,
        "outcomeDesc": desc,
        "purposeOfEvent": purposes,
        "agent": [{
            "who": { "identifier": { "system": "urn:medledger:key", "value": e.requester } },
            "requestor": true
        }],
        "source": {
            "site": e.institution,
            "observer": { "identifier": { "system": "urn:medledger:institution", "value": e.institution } },
            "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }]
        },
        "entity": [
            {
                "what": { "identifier": { "system": "urn:medledger:record", "value": e.record_id } },
                "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" },
                "detail": [
                    { "type": "version", "valueString": e.version.to_string() },
                    { "type": "resourceType", "valueString": e.resource_type },
                    { "type": "height", "valueString": e.height.to_string() }
                ]
            },
            {
                "what": { "identifier": { "system": "urn:medledger:patient", "value": e.patient } },
                "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
                "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" }
            }
        ]
    })
}

/// A FHIR searchset Bundle of AuditEvents.
pub fn fhir_bundle(events: &[AuditEntry], now_ms: u64) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": medledger_types::time::rfc3339_ms(now_ms),
        "total": events.len(),
        "entry": events.iter().map(|e| json!({ "resource": to_fhir(e) })).collect::<Vec<_>>(),
    })
}
