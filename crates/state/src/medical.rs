//! Medical record anchors: versions (hash, type, locator, holder, author), amendments pending
//! the patient's review, access events (served, denied, break-glass) and erasure. Record content
//! never comes here: only its fingerprint, version and locator.

use crate::consent::{permits, RecordRef};
use crate::identity::{credential, patient_key};
use crate::store::{Overlay, StateRead};
use crate::{decode_stored, BlockEnv, Principal, Rejection};
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::{action, AccessOutcome, Event, Hash, Operation, PublicKey, Purpose, RejectCode, Role};
use serde::Serialize;

/// Most versions one record may have.
pub const MAX_VERSIONS: u32 = 10_000;
/// Most records one patient may have (the per-patient index is one bounded list).
pub const MAX_RECORDS_PER_PATIENT: usize = 4096;

pub mod key {
    use medledger_types::Hash;
    pub fn head(id: &Hash) -> Vec<u8> {
        [b"r/".as_slice(), &id.0].concat()
    }
    pub fn version(id: &Hash, v: u32) -> Vec<u8> {
        [b"rv/".as_slice(), &id.0, &v.to_be_bytes()].concat()
    }
    pub fn access(id: &Hash, n: u64) -> Vec<u8> {
        [b"ra/".as_slice(), &id.0, &n.to_be_bytes()].concat()
    }
    /// The ids of a patient's records, in anchoring order.
    pub fn patient_records(pseudonym: &Hash) -> Vec<u8> {
        [b"rp/".as_slice(), &pseudonym.0].concat()
    }
    /// Entry `seq` of the chain-wide access log: (record id, index of its access event).
    pub fn access_log(seq: u64) -> Vec<u8> {
        [b"al/".as_slice(), &seq.to_be_bytes()].concat()
    }
    /// Length of the chain-wide access log.
    pub const ACCESS_LOG_LEN: &[u8] = b"meta/access-log-len";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// The first version, or an amendment the patient accepted.
    Current,
    /// An amendment waiting for the patient.
    Pending,
    /// An amendment the patient rejected (kept, never current).
    Rejected,
}

/// The record as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordHead {
    pub id: Hash,
    pub patient: Hash,
    pub resource_type: String,
    /// Highest version anchored (any status).
    pub latest_version: u32,
    /// The version readers get (highest accepted).
    pub current_version: u32,
    pub access_events: u64,
    pub erasure_requested_at: Option<u64>,
    pub erased_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordVersion {
    pub version: u32,
    pub content_hash: Hash,
    pub locator: String,
    /// Institution holding the encrypted content.
    pub holder: String,
    pub author: PublicKey,
    pub height: u64,
    pub status: VersionStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessEvent {
    pub record_id: Hash,
    pub version: u32,
    pub requester: PublicKey,
    pub purpose: Purpose,
    pub outcome: AccessOutcome,
    pub reason: String,
    pub recorded_by: PublicKey,
    pub institution: String,
    pub height: u64,
    pub timestamp_ms: u64,
}

fn opt_u64(w: &mut Writer, v: Option<u64>) {
    match v {
        Some(x) => w.u8(1).u64(x),
        None => w.u8(0),
    };
}

fn read_opt_u64(r: &mut Reader<'_>, what: &'static str) -> Result<Option<u64>, DecodeError> {
    Ok(if r.bool(what)? { Some(r.u64(what)?) } else { None })
}

impl Canonical for RecordHead {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0).str(&self.resource_type);
        w.u32(self.latest_version).u32(self.current_version).u64(self.access_events);
        opt_u64(w, self.erasure_requested_at);
        opt_u64(w, self.erased_at);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RecordHead {
            id: Hash(r.array("record id")?),
            patient: Hash(r.array("patient")?),
            resource_type: r.string("resource type", 64)?,
            latest_version: r.u32("latest version")?,
            current_version: r.u32("current version")?,
            access_events: r.u64("access events")?,
            erasure_requested_at: read_opt_u64(r, "erasure requested")?,
            erased_at: read_opt_u64(r, "erased")?,
        })
    }
}

impl Canonical for RecordVersion {
    fn encode_to(&self, w: &mut Writer) {
        w.u32(self.version).fixed(&self.content_hash.0).str(&self.locator).str(&self.holder);
        self.author.encode_to(w);
        w.u64(self.height).u8(match self.status {
            VersionStatus::Current => 0,
            VersionStatus::Pending => 1,
            VersionStatus::Rejected => 2,
        });
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RecordVersion {
            version: r.u32("version")?,
            content_hash: Hash(r.array("content hash")?),
            locator: r.string("locator", 256)?,
            holder: r.string("holder", 64)?,
            author: PublicKey::decode_from(r)?,
            height: r.u64("height")?,
            status: match r.u8("status")? {
                0 => VersionStatus::Current,
                1 => VersionStatus::Pending,
                2 => VersionStatus::Rejected,
                t => return Err(DecodeError::UnknownTag("version status", t)),
            },
        })
    }
}

impl Canonical for AccessEvent {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.record_id.0).u32(self.version);
        self.requester.encode_to(w);
        self.purpose.encode_to(w);
        self.outcome.encode_to(w);
        w.str(&self.reason);
        self.recorded_by.encode_to(w);
        w.str(&self.institution).u64(self.height).u64(self.timestamp_ms);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AccessEvent {
            record_id: Hash(r.array("record id")?),
            version: r.u32("version")?,
            requester: PublicKey::decode_from(r)?,
            purpose: Purpose::decode_from(r)?,
            outcome: AccessOutcome::decode_from(r)?,
            reason: r.string("reason", 256)?,
            recorded_by: PublicKey::decode_from(r)?,
            institution: r.string("institution", 64)?,
            height: r.u64("height")?,
            timestamp_ms: r.u64("timestamp")?,
        })
    }
}

pub fn head(state: &dyn StateRead, id: &Hash) -> Option<RecordHead> {
    state.get(&key::head(id)).map(|b| decode_stored(&b, "record head"))
}

pub fn version(state: &dyn StateRead, id: &Hash, v: u32) -> Option<RecordVersion> {
    state.get(&key::version(id, v)).map(|b| decode_stored(&b, "record version"))
}

/// Every version of a record, oldest first.
pub fn history(state: &dyn StateRead, id: &Hash) -> Vec<RecordVersion> {
    let Some(h) = head(state, id) else { return Vec::new() };
    (1..=h.latest_version).filter_map(|v| version(state, id, v)).collect()
}

/// Access events of a record, oldest first.
pub fn access_events(state: &dyn StateRead, id: &Hash) -> Vec<AccessEvent> {
    let Some(h) = head(state, id) else { return Vec::new() };
    (0..h.access_events)
        .filter_map(|n| state.get(&key::access(id, n)).map(|b| decode_stored(&b, "access event")))
        .collect()
}

/// The ids of a patient's records, oldest first.
pub fn record_ids_of(state: &dyn StateRead, patient: &Hash) -> Vec<Hash> {
    state
        .get(&key::patient_records(patient))
        .map(|b| crate::decode_ids(&b, "patient record list", MAX_RECORDS_PER_PATIENT))
        .unwrap_or_default()
}

/// Number of access events on the whole chain.
pub fn access_log_len(state: &dyn StateRead) -> u64 {
    state.get(key::ACCESS_LOG_LEN).map(|b| u64::from_be_bytes(b.as_slice().try_into().expect("stored access log length is 8 bytes"))).unwrap_or(0)
}

/// Entry `seq` (0-based, in commit order) of the chain-wide access log.
pub fn access_log_entry(state: &dyn StateRead, seq: u64) -> Option<AccessEvent> {
    let b = state.get(&key::access_log(seq))?;
    let id = Hash(b.get(..32)?.try_into().ok()?);
    let n = u64::from_be_bytes(b.get(32..40)?.try_into().ok()?);
    state.get(&key::access(&id, n)).map(|e| decode_stored(&e, "access event"))
}

fn not_found(what: String) -> Rejection {
    Rejection::new(RejectCode::NotFound, what)
}

fn own_institution(o: &Overlay<'_>, signer: &PublicKey) -> String {
    credential(o, signer).map(|c| c.institution).unwrap_or_default()
}

fn patient_pseudonym(o: &Overlay<'_>, signer: &PublicKey) -> Result<Hash, Rejection> {
    credential(o, signer)
        .and_then(|c| if c.role == Role::Patient { c.pseudonym } else { None })
        .ok_or_else(|| Rejection::new(RejectCode::NotPermitted, "only a registered patient may do this"))
}

fn holder_of(o: &Overlay<'_>, id: &Hash, h: &RecordHead) -> String {
    version(o, id, h.current_version.max(1)).map(|v| v.holder).unwrap_or_default()
}

pub(crate) fn apply(o: &mut Overlay<'_>, env: &BlockEnv, signer: &PublicKey, _principal: Principal, op: &Operation) -> Result<Vec<Event>, Rejection> {
    match op {
        Operation::AnchorRecord { record_id, version: v, patient, resource_type, content_hash, locator } => {
            if patient_key(o, patient).is_none() {
                return Err(not_found("no patient with this pseudonym".into()));
            }
            let existing = head(o, record_id);
            let rtype = existing.as_ref().map_or(resource_type.as_str(), |h| h.resource_type.as_str());
            if rtype != resource_type {
                return Err(Rejection::new(RejectCode::InvalidArgument, format!("record is a {rtype}, not a {resource_type}")));
            }
            // A doctor writes or amends only with the patient's write consent.
            permits(o, patient, signer, RecordRef { id: record_id, resource_type }, action::WRITE, Purpose::Treatment, env.timestamp_ms, env.height)?;
            let mut h = match existing {
                None if *v == 1 => RecordHead {
                    id: *record_id,
                    patient: *patient,
                    resource_type: resource_type.clone(),
                    latest_version: 0,
                    current_version: 0,
                    access_events: 0,
                    erasure_requested_at: None,
                    erased_at: None,
                },
                None => return Err(not_found(format!("record {record_id} does not exist; its first version is 1"))),
                Some(h) => h,
            };
            if h.patient != *patient {
                return Err(Rejection::new(RejectCode::InvalidArgument, "record belongs to another patient"));
            }
            if h.erased_at.is_some() {
                return Err(Rejection::new(RejectCode::InvalidArgument, "record was erased"));
            }
            if *v != h.latest_version + 1 || *v > MAX_VERSIONS {
                return Err(Rejection::new(RejectCode::InvalidArgument, format!("next version is {}, got {v}", h.latest_version + 1)));
            }
            if *v == 1 {
                let mut ids = record_ids_of(o, patient);
                if ids.len() >= MAX_RECORDS_PER_PATIENT {
                    return Err(Rejection::new(RejectCode::InvalidArgument, format!("a patient may have at most {MAX_RECORDS_PER_PATIENT} records")));
                }
                ids.push(*record_id);
                o.put(key::patient_records(patient), crate::encode_ids(&ids));
            }
            let status = if *v == 1 { VersionStatus::Current } else { VersionStatus::Pending };
            let rv = RecordVersion {
                version: *v,
                content_hash: *content_hash,
                locator: locator.clone(),
                holder: own_institution(o, signer),
                author: *signer,
                height: env.height,
                status,
            };
            h.latest_version = *v;
            if status == VersionStatus::Current {
                h.current_version = *v;
            }
            o.put(key::version(record_id, *v), rv.to_bytes());
            o.put(key::head(record_id), h.to_bytes());
            let kind = if *v == 1 { "record_anchored" } else { "amendment_pending" };
            Ok(vec![Event::new(kind).with("record", record_id).with("version", v).with("holder", &rv.holder)])
        }
        Operation::ReviewAmendment { record_id, version: v, accept } => {
            let me = patient_pseudonym(o, signer)?;
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            if h.patient != me {
                return Err(Rejection::new(RejectCode::NotPermitted, "record belongs to another patient"));
            }
            let mut rv = version(o, record_id, *v).ok_or_else(|| not_found(format!("no version {v}")))?;
            if rv.status != VersionStatus::Pending {
                return Err(Rejection::new(RejectCode::AlreadyExists, "version is not pending review"));
            }
            rv.status = if *accept { VersionStatus::Current } else { VersionStatus::Rejected };
            if *accept && *v > h.current_version {
                h.current_version = *v;
                o.put(key::head(record_id), h.to_bytes());
            }
            o.put(key::version(record_id, *v), rv.to_bytes());
            let kind = if *accept { "amendment_accepted" } else { "amendment_rejected" };
            Ok(vec![Event::new(kind).with("record", record_id).with("version", v)])
        }
        Operation::LogAccess { record_id, version: v, requester, purpose, outcome, reason } => {
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            let rv = version(o, record_id, *v).ok_or_else(|| not_found(format!("no version {v}")))?;
            let inst = own_institution(o, signer);
            if rv.holder != inst {
                return Err(Rejection::new(RejectCode::NotPermitted, format!("only the holder `{}` logs reads of this record", rv.holder)));
            }
            if *outcome == AccessOutcome::BreakGlass && reason.trim().is_empty() {
                return Err(Rejection::new(RejectCode::InvalidArgument, "break-glass access must state a reason"));
            }
            let ev = AccessEvent {
                record_id: *record_id,
                version: *v,
                requester: *requester,
                purpose: *purpose,
                outcome: *outcome,
                reason: reason.clone(),
                recorded_by: *signer,
                institution: inst,
                height: env.height,
                timestamp_ms: env.timestamp_ms,
            };
            o.put(key::access(record_id, h.access_events), ev.to_bytes());
            let seq = access_log_len(o);
            o.put(key::access_log(seq), [record_id.0.as_slice(), &h.access_events.to_be_bytes()].concat());
            o.put(key::ACCESS_LOG_LEN.to_vec(), (seq + 1).to_be_bytes().to_vec());
            h.access_events += 1;
            o.put(key::head(record_id), h.to_bytes());
            Ok(vec![Event::new("record_accessed")
                .with("record", record_id)
                .with("requester", requester)
                .with("purpose", purpose.name())
                .with("outcome", outcome.name())])
        }
        Operation::RequestErasure { record_id } => {
            let me = patient_pseudonym(o, signer)?;
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            if h.patient != me {
                return Err(Rejection::new(RejectCode::NotPermitted, "record belongs to another patient"));
            }
            if h.erasure_requested_at.is_some() || h.erased_at.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "erasure already requested"));
            }
            h.erasure_requested_at = Some(env.height);
            o.put(key::head(record_id), h.to_bytes());
            Ok(vec![Event::new("erasure_requested").with("record", record_id)])
        }
        Operation::ConfirmErasure { record_id } => {
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            let holder = holder_of(o, record_id, &h);
            if own_institution(o, signer) != holder {
                return Err(Rejection::new(RejectCode::NotPermitted, format!("only the holder `{holder}` confirms erasure")));
            }
            if h.erasure_requested_at.is_none() {
                return Err(Rejection::new(RejectCode::InvalidArgument, "the patient has not requested erasure"));
            }
            if h.erased_at.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "record is already erased"));
            }
            h.erased_at = Some(env.height);
            o.put(key::head(record_id), h.to_bytes());
            Ok(vec![Event::new("record_erased").with("record", record_id)])
        }
        _ => unreachable!("other operations are applied by their own modules"),
    }
}
