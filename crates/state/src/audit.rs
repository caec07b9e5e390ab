//! Audit: access events. The holder of a record logs every read attempt (served, denied,
//! break-glass) with `log_access`; events are kept per record and in one chain-wide log in
//! commit order, which regulator, patient and institution queries scan.
//!
//! ## Permissions
//!
//! | principal          | log_access |
//! |--------------------|:---:|
//! | ca                 |     |
//! | patient            |     |
//! | doctor             |     |
//! | institution_admin  |  ✓  |
//! | regulator          |     |
//! | researcher         |     |
//! | insurer            |     |
//! | manufacturer       |     |
//! | distributor        |     |
//! | pharmacy           |     |
//! | node_service       |  ✓  |
//!
//! Scope rules on top: only the holder of the record version logs reads of it; each signed read
//! request is logged once (a repeated request id is skipped, so a batch re-sent after a crash
//! changes nothing); a reason is sealed for the patient and every regulator.

use crate::identity::credential;
use crate::principal::{Rows, N, Y};
use crate::records::{head, key as record_key, version};
use crate::store::{Overlay, StateRead};
use crate::{decode_with, read_stored, BlockEnv, Rejection};
use medledger_types::audit::AccessNote;
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::{AccessOutcome, AuditOp, Event, Hash, PublicKey, Purpose, RejectCode, SealedNote};
use serde::{Deserialize, Serialize};

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<1> = [
    [N], // ca
    [N], // patient
    [N], // doctor
    [Y], // institution_admin
    [N], // regulator
    [N], // researcher
    [N], // insurer
    [N], // manufacturer
    [N], // distributor
    [N], // pharmacy
    [Y], // node_service
];

pub mod key {
    use crate::keys::{compose, ACCESS_BY_REQUEST, ACCESS_EVENT, ACCESS_LOG, ACCESS_LOG_LEN as LEN};
    use medledger_types::Hash;
    /// The access event logging signed read request `request_id`: (record id, event index).
    pub fn by_request(request_id: &Hash) -> Vec<u8> {
        compose(ACCESS_BY_REQUEST, &[&request_id.0])
    }
    /// Access event `n` of a record.
    pub fn access(id: &Hash, n: u64) -> Vec<u8> {
        compose(ACCESS_EVENT, &[&id.0, &n.to_be_bytes()])
    }
    /// Entry `seq` of the chain-wide access log: (record id, index of its access event).
    pub fn access_log(seq: u64) -> Vec<u8> {
        compose(ACCESS_LOG, &[&seq.to_be_bytes()])
    }
    /// Length of the chain-wide access log.
    pub const ACCESS_LOG_LEN: &[u8] = LEN;
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// Id of the requester's signed read request.
    pub request_id: Hash,
    pub record_id: Hash,
    pub version: u32,
    pub requester: PublicKey,
    pub purpose: Purpose,
    pub outcome: AccessOutcome,
    /// Denial or break-glass reason, sealed for the patient, the holder and the regulators.
    pub reason: SealedNote,
    pub recorded_by: PublicKey,
    pub institution: String,
    pub height: u64,
    pub timestamp_ms: u64,
}

impl Canonical for AccessEvent {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.request_id.0).fixed(&self.record_id.0).u32(self.version);
        self.requester.encode_to(w);
        self.purpose.encode_to(w);
        self.outcome.encode_to(w);
        self.reason.encode_to(w);
        self.recorded_by.encode_to(w);
        w.str(&self.institution).u64(self.height).u64(self.timestamp_ms);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AccessEvent {
            request_id: Hash(r.array("request id")?),
            record_id: Hash(r.array("record id")?),
            version: r.u32("version")?,
            requester: PublicKey::decode_from(r)?,
            purpose: Purpose::decode_from(r)?,
            outcome: AccessOutcome::decode_from(r)?,
            reason: SealedNote::decode_from(r)?,
            recorded_by: PublicKey::decode_from(r)?,
            institution: r.string("institution", 64)?,
            height: r.u64("height")?,
            timestamp_ms: r.u64("timestamp")?,
        })
    }
}

/// Access events of a record, oldest first.
pub fn access_events(state: &dyn StateRead, id: &Hash) -> Vec<AccessEvent> {
    let Some(h) = head(state, id) else { return Vec::new() };
    (0..h.access_events).filter_map(|n| read_stored(state, &key::access(id, n), "access event")).collect()
}

/// Access event `n` of record `id`, if it exists.
pub fn access_event(state: &dyn StateRead, id: &Hash, n: u64) -> Option<AccessEvent> {
    read_stored(state, &key::access(id, n), "access event")
}

/// The access event that logged signed read request `request_id`, once committed.
pub fn access_event_for_request(state: &dyn StateRead, request_id: &Hash) -> Option<AccessEvent> {
    let (id, n) = event_ref(state, &key::by_request(request_id))?;
    access_event(state, &id, n)
}

/// How many access events record `id` has.
pub fn access_event_count(state: &dyn StateRead, id: &Hash) -> u64 {
    head(state, id).map_or(0, |h| h.access_events)
}

/// Number of access events on the whole chain.
pub fn access_log_len(state: &dyn StateRead) -> u64 {
    crate::read_u64(state, key::ACCESS_LOG_LEN, "access log length").unwrap_or(0)
}

/// Entry `seq` (0-based, in commit order) of the chain-wide access log.
pub fn access_log_entry(state: &dyn StateRead, seq: u64) -> Option<AccessEvent> {
    let (id, n) = event_ref(state, &key::access_log(seq))?;
    read_stored(state, &key::access(&id, n), "access event")
}

/// An access event named by its record and number (32 + 8 bytes), as the request index and
/// the chain-wide log store it.
fn event_ref(state: &dyn StateRead, k: &[u8]) -> Option<(Hash, u64)> {
    let b = state.get(k)?;
    decode_with(state, &b, "access event reference", |r| Ok((Hash(r.array("record id")?), r.u64("event number")?)))
}

pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    op: &AuditOp,
) -> Result<Vec<Event>, Rejection> {
    match op {
        AuditOp::LogAccess { events } => {
            let inst = own_institution(o, signer);
            let mut out = Vec::with_capacity(events.len());
            for e in events {
                if o.get(&key::by_request(&e.request_id)).is_some() {
                    // Logged already (a batch re-sent after a crash, or twice in one batch).
                    continue;
                }
                log_one(o, env, signer, &inst, e)?;
                out.push(
                    Event::new("record_accessed")
                        .with("record", e.record_id)
                        .with("requester", e.requester)
                        .with("purpose", e.purpose.name())
                        .with("outcome", e.outcome.name()),
                );
            }
            Ok(out)
        }
    }
}

/// Checks and stores one access event.
fn log_one(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    inst: &str,
    e: &AccessNote,
) -> Result<(), Rejection> {
    let record_id = &e.record_id;
    let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
    let rv = version(o, record_id, e.version).ok_or_else(|| not_found(format!("no version {}", e.version)))?;
    if rv.holder != inst {
        return Err(Rejection::new(
            RejectCode::NotPermitted,
            format!("only the holder `{}` logs reads of this record", rv.holder),
        ));
    }
    if e.outcome != AccessOutcome::Served && e.reason.is_empty() {
        return Err(Rejection::new(
            RejectCode::InvalidArgument,
            format!("a {} access must carry its reason", e.outcome.name()),
        ));
    }
    let patient_key = crate::identity::patient_key(o, &h.patient)
        .ok_or_else(|| not_found("the record's patient has no key".into()))?;
    crate::identity::require_readers(
        &e.reason,
        &crate::identity::reason_readers(o, patient_key, env.timestamp_ms, env.height),
    )?;
    let ev = AccessEvent {
        request_id: e.request_id,
        record_id: *record_id,
        version: e.version,
        requester: e.requester,
        purpose: e.purpose,
        outcome: e.outcome,
        reason: e.reason.clone(),
        recorded_by: *signer,
        institution: inst.to_owned(),
        height: env.height,
        timestamp_ms: env.timestamp_ms,
    };
    let at = [record_id.0.as_slice(), &h.access_events.to_be_bytes()].concat();
    o.put(key::access(record_id, h.access_events), ev.to_bytes());
    let seq = access_log_len(o);
    o.put(key::access_log(seq), at.clone());
    o.put(key::ACCESS_LOG_LEN.to_vec(), (seq + 1).to_be_bytes().to_vec());
    o.put(key::by_request(&e.request_id), at);
    h.access_events += 1;
    o.put(record_key::head(record_id), h.to_bytes());
    Ok(())
}

fn not_found(what: String) -> Rejection {
    Rejection::new(RejectCode::NotFound, what)
}

fn own_institution(o: &Overlay<'_>, signer: &PublicKey) -> String {
    credential(o, signer).map(|c| c.institution).unwrap_or_default()
}

#[cfg(test)]
mod permission_tests {
    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("audit.rs"), medledger_types::Domain::Audit);
    }
}
