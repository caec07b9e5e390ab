//! Records: anchors of record versions (hash, type, locator, holder, author), amendments
//! pending the patient's review, and erasure. Access events are the [`crate::audit`] domain. Record content
//! never comes here: only its fingerprint, version and locator.
//!
//! ## Permissions
//!
//! | principal          | anchor_record | review_amendment | request_erasure | confirm_erasure |
//! |--------------------|:---:|:---:|:---:|:---:|
//! | ca                 |     |     |     |     |
//! | patient            |     |  ✓  |  ✓  |     |
//! | doctor             |  ✓  |     |     |     |
//! | institution_admin  |     |     |     |  ✓  |
//! | regulator          |     |     |     |     |
//! | researcher         |     |     |     |     |
//! | insurer            |     |     |     |     |
//! | manufacturer       |     |     |     |     |
//! | distributor        |     |     |     |     |
//! | pharmacy           |     |     |     |     |
//! | node_service       |     |     |     |  ✓  |
//!
//! Scope rules on top: anchoring needs the patient's write consent (`consent::permits`); only
//! the record's patient reviews and requests erasure; only the holder confirms it.

use crate::consent::{permits, RecordRef};
use crate::identity::{credential, patient_key};
use crate::principal::{Rows, N, Y};
use crate::store::{Overlay, StateRead};
use crate::{decode_with, read_stored, BlockEnv, Rejection};
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::{action, Event, Hash, PublicKey, Purpose, RecordsOp, RejectCode, Role};
use serde::{Deserialize, Serialize};

/// Most versions one record may have.
pub const MAX_VERSIONS: u32 = 10_000;
/// Most records one patient may have (the per-patient index is one bounded list).
pub const MAX_RECORDS_PER_PATIENT: usize = 4096;

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<4> = [
    // anc rev rqe cfe
    [N, N, N, N], // ca
    [N, Y, Y, N], // patient
    [Y, N, N, N], // doctor
    [N, N, N, Y], // institution_admin
    [N, N, N, N], // regulator
    [N, N, N, N], // researcher
    [N, N, N, N], // insurer
    [N, N, N, N], // manufacturer
    [N, N, N, N], // distributor
    [N, N, N, N], // pharmacy
    [N, N, N, Y], // node_service
];

/// Most institutions one record's erasure can wait for: each of its versions has one holder,
/// so a list written by an erasure request is never longer (nor is the consortium larger).
const MAX_HOLDERS: usize = MAX_VERSIONS as usize;

/// Most records one institution may have waiting for its erasure confirmation; a request that
/// would go past it is refused until the institution catches up.
pub const MAX_ERASURE_QUEUE: usize = 4096;

pub mod key {
    use crate::keys::{
        compose, ERASURE_HOLDERS, ERASURE_QUEUE, PATIENT_RECORDS, RECORD_HEAD, RECORD_HOLDERS, RECORD_VERSION,
    };
    use medledger_types::Hash;
    /// Every institution holding a version of a record, once each, in the order of its first
    /// version: what an erasure request reads instead of every version.
    pub fn holders(id: &Hash) -> Vec<u8> {
        compose(RECORD_HOLDERS, &[&id.0])
    }
    /// The institutions that still hold a copy of a record whose erasure was requested.
    pub fn erasure_holders(id: &Hash) -> Vec<u8> {
        compose(ERASURE_HOLDERS, &[&id.0])
    }
    /// The records `institution` has yet to erase and confirm.
    pub fn erasure_queue(institution: &str) -> Vec<u8> {
        compose(ERASURE_QUEUE, &[institution.as_bytes()])
    }
    pub fn head(id: &Hash) -> Vec<u8> {
        compose(RECORD_HEAD, &[&id.0])
    }
    pub fn version(id: &Hash, v: u32) -> Vec<u8> {
        compose(RECORD_VERSION, &[&id.0, &v.to_be_bytes()])
    }
    /// The ids of a patient's records, in anchoring order.
    pub fn patient_records(pseudonym: &Hash) -> Vec<u8> {
        compose(PATIENT_RECORDS, &[&pseudonym.0])
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl Canonical for RecordHead {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0).str(&self.resource_type);
        w.u32(self.latest_version).u32(self.current_version).u64(self.access_events);
        w.opt(&self.erasure_requested_at, |w, t| {
            w.u64(*t);
        });
        w.opt(&self.erased_at, |w, t| {
            w.u64(*t);
        });
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RecordHead {
            id: Hash(r.array("record id")?),
            patient: Hash(r.array("patient")?),
            resource_type: r.string("resource type", 64)?,
            latest_version: r.u32("latest version")?,
            current_version: r.u32("current version")?,
            access_events: r.u64("access events")?,
            erasure_requested_at: r.opt("erasure requested", |r| r.u64("erasure requested"))?,
            erased_at: r.opt("erased", |r| r.u64("erased"))?,
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

pub fn head(state: &dyn StateRead, id: &Hash) -> Option<RecordHead> {
    read_stored(state, &key::head(id), "record head")
}

pub fn version(state: &dyn StateRead, id: &Hash, v: u32) -> Option<RecordVersion> {
    read_stored(state, &key::version(id, v), "record version")
}

/// Every version of a record, oldest first.
pub fn history(state: &dyn StateRead, id: &Hash) -> Vec<RecordVersion> {
    let Some(h) = head(state, id) else { return Vec::new() };
    (1..=h.latest_version).filter_map(|v| version(state, id, v)).collect()
}

/// The ids of a patient's records, oldest first.
pub fn record_ids_of(state: &dyn StateRead, patient: &Hash) -> Vec<Hash> {
    state
        .get(&key::patient_records(patient))
        .map(|b| crate::decode_ids(state, &b, "patient record list", MAX_RECORDS_PER_PATIENT))
        .unwrap_or_default()
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

/// Every institution holding a version of `id`, once each, in the order of its first version:
/// one read, kept by anchoring, whatever the number of versions.
pub fn holders(state: &dyn StateRead, id: &Hash) -> Vec<String> {
    institutions(state, &key::holders(id), "record holders")
}

/// The institutions yet to confirm the erasure of `id`.
pub fn erasure_holders(state: &dyn StateRead, id: &Hash) -> Vec<String> {
    institutions(state, &key::erasure_holders(id), "erasure holders")
}

/// A stored list of institutions (a record's holders, or those yet to confirm its erasure).
fn institutions(state: &dyn StateRead, k: &[u8], what: &'static str) -> Vec<String> {
    let Some(b) = state.get(k) else { return Vec::new() };
    decode_with(state, &b, what, |r| {
        let n = r.len(what, MAX_HOLDERS)?;
        (0..n).map(|_| r.string("institution", medledger_types::limits::MAX_INSTITUTION_ID)).collect()
    })
    .unwrap_or_default()
}

fn put_institutions(o: &mut Overlay<'_>, k: Vec<u8>, list: &[String]) {
    debug_assert!(list.len() <= MAX_HOLDERS);
    if list.is_empty() {
        o.delete(k);
        return;
    }
    let mut w = medledger_types::codec::Writer::new();
    w.u32(list.len() as u32);
    for i in list {
        w.str(i);
    }
    o.put(k, w.finish());
}

fn put_erasure_holders(o: &mut Overlay<'_>, id: &Hash, holders: &[String]) {
    put_institutions(o, key::erasure_holders(id), holders);
}

/// The records `institution` has yet to erase, oldest request first.
pub fn erasure_queue(state: &dyn StateRead, institution: &str) -> Vec<Hash> {
    state
        .get(&key::erasure_queue(institution))
        .map(|b| crate::decode_ids(state, &b, "erasure queue", MAX_ERASURE_QUEUE))
        .unwrap_or_default()
}

fn put_erasure_queue(o: &mut Overlay<'_>, institution: &str, queue: &[Hash]) {
    debug_assert!(queue.len() <= MAX_ERASURE_QUEUE);
    if queue.is_empty() {
        o.delete(key::erasure_queue(institution));
    } else {
        o.put(key::erasure_queue(institution), crate::encode_ids(queue));
    }
}

pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    op: &RecordsOp,
) -> Result<Vec<Event>, Rejection> {
    match op {
        RecordsOp::AnchorRecord { record_id, version: v, patient, resource_type, content_hash, locator } => {
            if patient_key(o, patient).is_none() {
                return Err(not_found("no patient with this pseudonym".into()));
            }
            let existing = head(o, record_id);
            let rtype = existing.as_ref().map_or(resource_type.as_str(), |h| h.resource_type.as_str());
            if rtype != resource_type {
                return Err(Rejection::new(
                    RejectCode::InvalidArgument,
                    format!("record is a {rtype}, not a {resource_type}"),
                ));
            }
            // A doctor writes or amends only with the patient's write consent.
            permits(
                o,
                patient,
                signer,
                RecordRef { id: record_id, resource_type },
                action::WRITE,
                Purpose::Treatment,
                env.timestamp_ms,
                env.height,
            )?;
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
            if h.erasure_requested_at.is_some() {
                // Its holders were fixed by the request: a version now could leave a copy the
                // erasure never reaches.
                return Err(Rejection::new(
                    RejectCode::InvalidArgument,
                    "the patient asked for this record to be erased: no version may be added",
                ));
            }
            if *v != h.latest_version + 1 || *v > MAX_VERSIONS {
                return Err(Rejection::new(
                    RejectCode::InvalidArgument,
                    format!("next version is {}, got {v}", h.latest_version + 1),
                ));
            }
            if *v == 1 {
                let mut ids = record_ids_of(o, patient);
                if ids.len() >= MAX_RECORDS_PER_PATIENT {
                    return Err(Rejection::new(
                        RejectCode::InvalidArgument,
                        format!("a patient may have at most {MAX_RECORDS_PER_PATIENT} records"),
                    ));
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
            let mut holders = holders(o, record_id);
            if !holders.contains(&rv.holder) {
                // At most one institution per version, so never past MAX_HOLDERS.
                holders.push(rv.holder.clone());
                put_institutions(o, key::holders(record_id), &holders);
            }
            o.put(key::version(record_id, *v), rv.to_bytes());
            o.put(key::head(record_id), h.to_bytes());
            let kind = if *v == 1 { "record_anchored" } else { "amendment_pending" };
            Ok(vec![Event::new(kind).with("record", record_id).with("version", v).with("holder", &rv.holder)])
        }
        RecordsOp::ReviewAmendment { record_id, version: v, accept } => {
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
        RecordsOp::RequestErasure { record_id } => {
            let me = patient_pseudonym(o, signer)?;
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            if h.patient != me {
                return Err(Rejection::new(RejectCode::NotPermitted, "record belongs to another patient"));
            }
            if h.erasure_requested_at.is_some() || h.erased_at.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "erasure already requested"));
            }
            // Every institution holding any version must erase its copy and confirm.
            let holders = holders(o, record_id);
            let mut queues = Vec::with_capacity(holders.len());
            for inst in &holders {
                let q = erasure_queue(o, inst);
                if q.len() >= MAX_ERASURE_QUEUE {
                    return Err(Rejection::new(
                        RejectCode::InvalidArgument,
                        format!("`{inst}` already has {MAX_ERASURE_QUEUE} erasures to carry out; retry later"),
                    ));
                }
                queues.push(q);
            }
            for (inst, mut q) in holders.iter().zip(queues) {
                q.push(*record_id);
                put_erasure_queue(o, inst, &q);
            }
            put_erasure_holders(o, record_id, &holders);
            h.erasure_requested_at = Some(env.height);
            o.put(key::head(record_id), h.to_bytes());
            Ok(vec![Event::new("erasure_requested").with("record", record_id).with("holders", holders.join(","))])
        }
        RecordsOp::ConfirmErasure { record_id } => {
            let mut h = head(o, record_id).ok_or_else(|| not_found(format!("no record {record_id}")))?;
            if h.erasure_requested_at.is_none() {
                return Err(Rejection::new(RejectCode::InvalidArgument, "the patient has not requested erasure"));
            }
            if h.erased_at.is_some() {
                return Err(Rejection::new(RejectCode::AlreadyExists, "record is already erased"));
            }
            let mine = own_institution(o, signer);
            let mut pending = erasure_holders(o, record_id);
            let Some(at) = pending.iter().position(|i| *i == mine) else {
                return Err(Rejection::new(
                    RejectCode::NotPermitted,
                    format!("`{mine}` holds no copy awaiting erasure (waiting for: {})", pending.join(", ")),
                ));
            };
            pending.remove(at);
            let mut q = erasure_queue(o, &mine);
            q.retain(|id| id != record_id);
            put_erasure_queue(o, &mine, &q);
            put_erasure_holders(o, record_id, &pending);
            let mut events = vec![Event::new("erasure_confirmed").with("record", record_id).with("institution", &mine)];
            if pending.is_empty() {
                h.erased_at = Some(env.height);
                o.put(key::head(record_id), h.to_bytes());
                events.push(Event::new("record_erased").with("record", record_id));
            }
            Ok(events)
        }
    }
}

#[cfg(test)]
mod permission_tests {
    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("records.rs"), medledger_types::Domain::Records);
    }
}
