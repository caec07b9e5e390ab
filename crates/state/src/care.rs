//! Telemedicine referrals: a FHIR `ServiceRequest` (who refers which patient to which
//! institution, naming which records) followed by a `Task` whose status only the receiving
//! institution moves ([`medledger_types::care::task`]).
//!
//! The patient applies (naming their treating doctor, who confirms) or the treating doctor
//! proposes (and the patient approves). With both, the referral reaches the receiving
//! institution's inbox. Accepting names the receiving doctor, who is granted two consents for
//! treatment: reading the records the referral names, and writing consultation reports
//! ([`REPORT_RESOURCE_TYPE`]). They are ordinary consents (the patient sees them and may revoke
//! them, and the existing consent checks enforce them) that the state ends when the referral
//! closes (rejected, completed, failed or cancelled). Completing names the consultation report,
//! a record of the same patient that the receiving doctor wrote. Every step records who took
//! it, when and at which height.
//!
//! ## Permissions
//!
//! | principal          | propose_referral | approve_referral | confirm_referral | accept_referral | reject_referral | start_referral | complete_referral | fail_referral | cancel_referral | register_device | revoke_device | set_monitoring | set_on_call | anchor_readings | raise_alarm | acknowledge_alarm | escalate_alarm |
//! |--------------------|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|:---:|
//! | ca                 |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | patient            |  ✓  |  ✓  |     |     |     |     |     |     |  ✓  |     |  ✓  |     |     |     |     |     |     |
//! | doctor             |  ✓  |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |     |     |     |  ✓  |     |
//! | institution_admin  |     |     |     |  ✓  |  ✓  |  ✓  |     |  ✓  |     |  ✓  |  ✓  |     |  ✓  |     |     |     |     |
//! | regulator          |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | researcher         |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | insurer            |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | manufacturer       |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | distributor        |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | pharmacy           |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |     |
//! | node_service       |     |     |     |     |     |     |     |     |     |     |     |     |     |  ✓  |  ✓  |     |  ✓  |
//!
//! Scope rules on top of the table: a patient proposes and approves only their own referrals,
//! a doctor proposes only as the treating doctor and confirms only referrals naming them;
//! accepting, rejecting, starting and failing are for doctors and admins of the receiving
//! institution, completing for the receiving doctor; cancelling for the patient or the treating
//! doctor. The regulator reads the statistics ([`stats`]), which name institutions only.
//!
//! Remote monitoring ([`monitoring`]): staff of the patient's institution register devices;
//! the patient or that staff revoke them; a doctor of the patient's institution sets the
//! monitoring (and becomes the responsible doctor); the admin names the on-call doctor; the
//! monitoring institution's node anchors readings, raises alarms and escalates them; the
//! responsible doctor (or the on-call doctor after escalation) acknowledges.

use crate::consent::{self, Consent};
use crate::identity::{self, credential};
use crate::principal::Principal;
use crate::principal::{Rows, N, Y};
use crate::store::{Overlay, StateRead};
use crate::{decode_stored, decode_with, read_stored, BlockEnv, Rejection};
use medledger_types::care::limits::{
    MAX_APPOINTMENT_AHEAD_MS, MAX_REFERRAL_REASON, MAX_REFERRAL_RECORDS, MAX_SPECIALTY,
};
use medledger_types::care::task::{self, Party, TaskError};
use medledger_types::care::{CareOp, Mode, TaskStatus};
use medledger_types::codec::{Canonical, DecodeError, Reader, Writer};
use medledger_types::hash::{domain, tagged};
use medledger_types::limits::MAX_INSTITUTION_ID;
use medledger_types::{action, ConsentTerms, Event, Grantee, Hash, PublicKey, Purpose, RejectCode, Role, Scope};
use serde::{Deserialize, Serialize};

pub mod monitoring;

/// Most referral ids one list keeps (a patient's, an institution's inbox or outbox, a
/// doctor's); older referrals stay readable by id.
pub const MAX_LISTED: usize = 1024;
/// Most institution pairs the statistics follow.
pub const MAX_PAIRS: usize = 4096;
/// Steps one referral records (the workflow has at most seven).
pub const MAX_HISTORY: usize = 16;

/// This domain's rows of the permission table (see the module docs).
pub const PERMISSIONS: Rows<17> = [
    // prp apr cnf acc rej sta cmp fai can reg rev mon onc anc rai ack esc
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // ca
    [Y, Y, N, N, N, N, N, N, Y, N, Y, N, N, N, N, N, N], // patient
    [Y, N, Y, Y, Y, Y, Y, Y, Y, Y, Y, Y, N, N, N, Y, N], // doctor
    [N, N, N, Y, Y, Y, N, Y, N, Y, Y, N, Y, N, N, N, N], // institution_admin
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // regulator
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // researcher
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // insurer
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // manufacturer
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // distributor
    [N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N], // pharmacy
    [N, N, N, N, N, N, N, N, N, N, N, N, N, Y, Y, N, Y], // node_service
];

pub mod key {
    use crate::keys::{
        compose, CARE_DOCTOR, CARE_INBOX, CARE_OUTBOX, CARE_PAIRS, CARE_PATIENT, CARE_REFERRAL, CARE_STATS,
    };
    use medledger_types::{Hash, PublicKey};
    pub fn referral(id: &Hash) -> Vec<u8> {
        compose(CARE_REFERRAL, &[&id.0])
    }
    pub fn patient(pseudonym: &Hash) -> Vec<u8> {
        compose(CARE_PATIENT, &[&pseudonym.0])
    }
    pub fn inbox(institution: &str) -> Vec<u8> {
        compose(CARE_INBOX, &[institution.as_bytes()])
    }
    pub fn outbox(institution: &str) -> Vec<u8> {
        compose(CARE_OUTBOX, &[institution.as_bytes()])
    }
    pub fn doctor(pk: &PublicKey) -> Vec<u8> {
        compose(CARE_DOCTOR, &[&pk.0])
    }
    /// Statistics of one (referring, receiving) pair; the ids are length-prefixed so no two
    /// pairs share a key.
    pub fn stats(from: &str, to: &str) -> Vec<u8> {
        compose(CARE_STATS, &[&[from.len() as u8], from.as_bytes(), to.as_bytes()])
    }
    pub fn pairs() -> Vec<u8> {
        CARE_PAIRS.to_vec()
    }
}

/// One step of a referral's life: what, who, when.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralStep {
    /// `proposed`, `approved`, `confirmed`, or the workflow action (`accept`, `reject`, …).
    pub action: String,
    pub by: PublicKey,
    pub at_ms: u64,
    pub height: u64,
}

/// A referral: the request, its approvals and the task's state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    pub id: Hash,
    /// The patient's pseudonym.
    pub patient: Hash,
    /// The referring institution: the treating doctor's.
    pub from: String,
    /// The receiving institution.
    pub to: String,
    pub specialty: String,
    /// The records the receiving doctor may read.
    pub records: Vec<Hash>,
    pub treating_doctor: PublicKey,
    pub patient_approved: bool,
    pub doctor_confirmed: bool,
    pub status: TaskStatus,
    pub mode: Option<Mode>,
    pub appointment_ms: Option<u64>,
    pub receiving_doctor: Option<PublicKey>,
    /// The consents granted on acceptance (read the named records; write the report), both
    /// ended when the referral closes.
    pub consents: Vec<Hash>,
    /// The consultation report (a record id), once completed.
    pub report: Option<Hash>,
    /// Why it was rejected, failed or cancelled.
    pub reason: Option<String>,
    pub proposed_ms: u64,
    /// When both the patient and the treating doctor had agreed (it reached the inbox).
    pub requested_ms: Option<u64>,
    pub accepted_ms: Option<u64>,
    pub closed_ms: Option<u64>,
    pub history: Vec<ReferralStep>,
}

impl Referral {
    /// Has the referral reached the receiving institution (both sides agreed)?
    pub fn ready(&self) -> bool {
        self.patient_approved && self.doctor_confirmed
    }
    /// Who the referral waits for, if anyone before the receiving institution.
    pub fn awaiting(&self) -> Option<&'static str> {
        match (self.patient_approved, self.doctor_confirmed) {
            (false, _) => Some("the patient's approval"),
            (_, false) => Some("the treating doctor's confirmation"),
            _ => None,
        }
    }
}

impl Canonical for Referral {
    fn encode_to(&self, w: &mut Writer) {
        w.fixed(&self.id.0).fixed(&self.patient.0).str(&self.from).str(&self.to).str(&self.specialty);
        w.u32(self.records.len() as u32);
        for r in &self.records {
            w.fixed(&r.0);
        }
        self.treating_doctor.encode_to(w);
        w.u8(self.patient_approved as u8).u8(self.doctor_confirmed as u8);
        self.status.encode_to(w);
        w.opt(&self.mode, |w, m| m.encode_to(w));
        w.opt(&self.appointment_ms, |w, t| {
            w.u64(*t);
        });
        w.opt(&self.receiving_doctor, |w, k| k.encode_to(w));
        w.u8(self.consents.len() as u8);
        for c in &self.consents {
            w.fixed(&c.0);
        }
        w.opt(&self.report, |w, h| {
            w.fixed(&h.0);
        });
        w.opt(&self.reason, |w, s| {
            w.str(s);
        });
        w.u64(self.proposed_ms);
        for t in [self.requested_ms, self.accepted_ms, self.closed_ms] {
            w.opt(&t, |w, t| {
                w.u64(*t);
            });
        }
        w.u32(self.history.len() as u32);
        for s in &self.history {
            w.str(&s.action);
            s.by.encode_to(w);
            w.u64(s.at_ms).u64(s.height);
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = Hash(r.array("referral id")?);
        let patient = Hash(r.array("patient")?);
        let from = r.string("referring institution", MAX_INSTITUTION_ID)?;
        let to = r.string("receiving institution", MAX_INSTITUTION_ID)?;
        let specialty = r.string("specialty", MAX_SPECIALTY)?;
        let n = r.len("referral records", MAX_REFERRAL_RECORDS)?;
        let records = (0..n).map(|_| r.array("record id").map(Hash)).collect::<Result<_, _>>()?;
        let treating_doctor = PublicKey::decode_from(r)?;
        let patient_approved = r.bool("patient approved")?;
        let doctor_confirmed = r.bool("doctor confirmed")?;
        let status = TaskStatus::decode_from(r)?;
        let mode = r.opt("mode flag", Mode::decode_from)?;
        let appointment_ms = r.opt("appointment flag", |r| r.u64("appointment"))?;
        let receiving_doctor = r.opt("receiving doctor flag", PublicKey::decode_from)?;
        let n = r.u8("consent count")? as usize;
        if n > 2 {
            return Err(DecodeError::TooLong("referral consents", n, 2));
        }
        let consents = (0..n).map(|_| r.array("consent").map(Hash)).collect::<Result<_, _>>()?;
        let report = r.opt("report flag", |r| r.array("report").map(Hash))?;
        let reason = r.opt("reason flag", |r| r.string("reason", MAX_REFERRAL_REASON))?;
        let proposed_ms = r.u64("proposed at")?;
        let requested_ms = r.opt("requested flag", |r| r.u64("requested at"))?;
        let accepted_ms = r.opt("accepted flag", |r| r.u64("accepted at"))?;
        let closed_ms = r.opt("closed flag", |r| r.u64("closed at"))?;
        let n = r.len("referral history", MAX_HISTORY)?;
        let mut history = Vec::with_capacity(n);
        for _ in 0..n {
            history.push(ReferralStep {
                action: r.string("step", 16)?,
                by: PublicKey::decode_from(r)?,
                at_ms: r.u64("step time")?,
                height: r.u64("step height")?,
            });
        }
        Ok(Referral {
            id,
            patient,
            from,
            to,
            specialty,
            records,
            treating_doctor,
            patient_approved,
            doctor_confirmed,
            status,
            mode,
            appointment_ms,
            receiving_doctor,
            consents,
            report,
            reason,
            proposed_ms,
            requested_ms,
            accepted_ms,
            closed_ms,
            history,
        })
    }
}

/// Referral counts and turnaround of one (referring, receiving) institution pair. No patient
/// appears here.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairStats {
    pub from: String,
    pub to: String,
    /// Referrals that reached the receiving institution.
    pub requested: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Sum, over accepted referrals, of the time from request to acceptance.
    pub accept_ms_total: u64,
    /// Sum, over completed referrals, of the time from request to completion.
    pub complete_ms_total: u64,
}

impl PairStats {
    /// Mean time from request to acceptance, in ms.
    pub fn mean_accept_ms(&self) -> Option<u64> {
        self.accept_ms_total.checked_div(self.accepted)
    }
    /// Mean turnaround, request to completion, in ms.
    pub fn mean_turnaround_ms(&self) -> Option<u64> {
        self.complete_ms_total.checked_div(self.completed)
    }
}

impl Canonical for PairStats {
    fn encode_to(&self, w: &mut Writer) {
        w.str(&self.from).str(&self.to);
        for n in [
            self.requested,
            self.accepted,
            self.rejected,
            self.completed,
            self.failed,
            self.cancelled,
            self.accept_ms_total,
            self.complete_ms_total,
        ] {
            w.u64(n);
        }
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PairStats {
            from: r.string("referring institution", MAX_INSTITUTION_ID)?,
            to: r.string("receiving institution", MAX_INSTITUTION_ID)?,
            requested: r.u64("requested")?,
            accepted: r.u64("accepted")?,
            rejected: r.u64("rejected")?,
            completed: r.u64("completed")?,
            failed: r.u64("failed")?,
            cancelled: r.u64("cancelled")?,
            accept_ms_total: r.u64("accept time")?,
            complete_ms_total: r.u64("turnaround")?,
        })
    }
}

pub fn referral(state: &dyn StateRead, id: &Hash) -> Option<Referral> {
    read_stored(state, &key::referral(id), "referral")
}

fn ids_at(state: &dyn StateRead, k: &[u8]) -> Vec<Hash> {
    state.get(k).map(|b| crate::decode_ids(state, &b, "referral list", MAX_LISTED)).unwrap_or_default()
}

fn listed(state: &dyn StateRead, k: &[u8]) -> Vec<Referral> {
    ids_at(state, k).iter().filter_map(|id| referral(state, id)).collect()
}

/// A patient's referrals, oldest first (the latest [`MAX_LISTED`]).
pub fn of_patient(state: &dyn StateRead, pseudonym: &Hash) -> Vec<Referral> {
    listed(state, &key::patient(pseudonym))
}
/// Referrals that reached an institution (its inbox).
pub fn inbox(state: &dyn StateRead, institution: &str) -> Vec<Referral> {
    listed(state, &key::inbox(institution))
}
/// Referrals an institution's doctors made (its outbox).
pub fn outbox(state: &dyn StateRead, institution: &str) -> Vec<Referral> {
    listed(state, &key::outbox(institution))
}
/// Referrals naming a doctor, as treating or receiving doctor.
pub fn of_doctor(state: &dyn StateRead, doctor: &PublicKey) -> Vec<Referral> {
    listed(state, &key::doctor(doctor))
}

fn pairs(state: &dyn StateRead) -> Vec<(String, String)> {
    let Some(b) = state.get(&key::pairs()) else { return vec![] };
    decode_with(state, &b, "referral pairs", |r| {
        let n = r.len("referral pairs", MAX_PAIRS)?;
        (0..n).map(|_| Ok((r.string("from", MAX_INSTITUTION_ID)?, r.string("to", MAX_INSTITUTION_ID)?))).collect()
    })
    .unwrap_or_default()
}

/// The statistics of every institution pair, in the order pairs first appeared.
pub fn stats(state: &dyn StateRead) -> Vec<PairStats> {
    pairs(state).iter().filter_map(|(f, t)| read_stored(state, &key::stats(f, t), "referral stats")).collect()
}

/// The region statistics use for an institution that was placed in none.
pub const UNASSIGNED_REGION: &str = "unassigned";

/// Referral statistics per (referring, receiving) region pair: the institution pairs' counts and
/// times summed under each institution's current region (`from` and `to` are region codes).
pub fn stats_by_region(state: &dyn StateRead) -> Vec<PairStats> {
    let region = |inst: &str| crate::identity::region_of(state, inst).unwrap_or_else(|| UNASSIGNED_REGION.to_string());
    let mut by: std::collections::BTreeMap<(String, String), PairStats> = std::collections::BTreeMap::new();
    for p in stats(state) {
        let (from, to) = (region(&p.from), region(&p.to));
        let e = by.entry((from.clone(), to.clone())).or_insert_with(|| PairStats { from, to, ..Default::default() });
        e.requested = e.requested.saturating_add(p.requested);
        e.accepted = e.accepted.saturating_add(p.accepted);
        e.rejected = e.rejected.saturating_add(p.rejected);
        e.completed = e.completed.saturating_add(p.completed);
        e.failed = e.failed.saturating_add(p.failed);
        e.cancelled = e.cancelled.saturating_add(p.cancelled);
        e.accept_ms_total = e.accept_ms_total.saturating_add(p.accept_ms_total);
        e.complete_ms_total = e.complete_ms_total.saturating_add(p.complete_ms_total);
    }
    by.into_values().collect()
}

/// The FHIR resource type of a consultation report (a consult note is a `Composition`).
pub const REPORT_RESOURCE_TYPE: &str = "Composition";

/// The ids of the consents a referral grants its receiving doctor: reading the named records,
/// and writing consultation reports. Derived, so they cannot collide with a consent the patient
/// chose.
pub fn consent_ids(referral: &Hash) -> [Hash; 2] {
    [
        tagged(domain::REFERRAL_CONSENT_ID, &[&referral.0, b"read"]),
        tagged(domain::REFERRAL_CONSENT_ID, &[&referral.0, b"report"]),
    ]
}

fn invalid(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidArgument, msg)
}
fn not_permitted(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::NotPermitted, msg)
}

fn push_listed(o: &mut Overlay<'_>, k: Vec<u8>, id: Hash) {
    let mut ids = ids_at(o, &k);
    if ids.len() >= MAX_LISTED {
        ids.remove(0);
    }
    ids.push(id);
    o.put(k, crate::encode_ids(&ids));
}

fn update_stats(o: &mut Overlay<'_>, r: &Referral, f: impl FnOnce(&mut PairStats)) -> Result<(), Rejection> {
    let k = key::stats(&r.from, &r.to);
    // (Stats that do not decode are reported, and the block is never committed.)
    let mut s: PairStats = match o.get(&k).and_then(|b| decode_stored(o, &b, "referral stats")) {
        Some(s) => s,
        None => {
            let mut all = pairs(o);
            if all.len() >= MAX_PAIRS {
                return Err(invalid(format!("the statistics already follow {MAX_PAIRS} institution pairs")));
            }
            all.push((r.from.clone(), r.to.clone()));
            let mut w = Writer::new();
            w.u32(all.len() as u32);
            for (f, t) in &all {
                w.str(f).str(t);
            }
            o.put(key::pairs(), w.finish());
            PairStats { from: r.from.clone(), to: r.to.clone(), ..Default::default() }
        }
    };
    f(&mut s);
    o.put(k, s.to_bytes());
    Ok(())
}

fn step(r: &mut Referral, action: &str, by: &PublicKey, env: &BlockEnv) {
    debug_assert!(r.history.len() < MAX_HISTORY, "a referral has at most seven steps");
    r.history.push(ReferralStep { action: action.into(), by: *by, at_ms: env.timestamp_ms, height: env.height });
}

fn event(kind: &str, r: &Referral) -> Event {
    Event::new(kind).with("referral", r.id).with("from", &r.from).with("to", &r.to).with("status", r.status)
}

/// The signer's valid credential (the principal check already passed for the signer).
fn signer_credential(o: &Overlay<'_>, signer: &PublicKey) -> Result<identity::Credential, Rejection> {
    credential(o, signer).ok_or_else(|| not_permitted("the signer holds no credential"))
}

/// A doctor's credential, valid now.
fn valid_doctor(
    o: &Overlay<'_>,
    env: &BlockEnv,
    pk: &PublicKey,
    what: &str,
) -> Result<identity::Credential, Rejection> {
    let c = credential(o, pk)
        .ok_or_else(|| Rejection::new(RejectCode::NotFound, format!("the {what} holds no credential")))?;
    if let Some(p) = identity::credential_problem(&c, env.timestamp_ms, env.height) {
        return Err(invalid(format!("the {what}'s credential: {}", p.reason)));
    }
    if c.role != Role::Doctor {
        return Err(invalid(format!("the {what} must be a doctor, not {}", c.role.a())));
    }
    Ok(c)
}

/// The records a referral names: each a record of this patient that is not erased.
fn check_records(o: &Overlay<'_>, patient: &Hash, records: &[Hash]) -> Result<(), Rejection> {
    for id in records {
        let head = crate::records::head(o, id)
            .ok_or_else(|| Rejection::new(RejectCode::NotFound, format!("no record {id}")))?;
        if head.patient != *patient {
            return Err(not_permitted(format!("record {id} is another patient's")));
        }
        if head.erased_at.is_some() || head.erasure_requested_at.is_some() {
            return Err(invalid(format!("record {id} is erased or being erased")));
        }
    }
    Ok(())
}

/// Where the signer stands towards the referral's task.
fn party(o: &Overlay<'_>, r: &Referral, signer: &PublicKey) -> Party {
    let Some(c) = credential(o, signer) else { return Party::Other };
    if c.institution == r.to && matches!(c.role, Role::Doctor | Role::InstitutionAdmin) {
        return Party::Fulfiller;
    }
    if *signer == r.treating_doctor || (c.role == Role::Patient && c.pseudonym == Some(r.patient)) {
        return Party::Requester;
    }
    Party::Other
}

fn task_rejection(e: TaskError) -> Rejection {
    let code = match e {
        TaskError::NotYours { .. } => RejectCode::NotPermitted,
        _ => RejectCode::InvalidArgument,
    };
    Rejection::new(code, e.to_string())
}

/// Ends the referral's consents from the next block on (the receiving doctor reads and writes
/// no more).
fn end_consents(o: &mut Overlay<'_>, env: &BlockEnv, r: &Referral) {
    for id in &r.consents {
        if let Some(mut c) = consent::consent(o, id) {
            if c.revoked_at_height.is_none() {
                c.revoked_at_height = Some(env.height);
                o.put(consent::key::consent(id), c.to_bytes());
            }
        }
    }
}

/// When both sides have agreed, the referral reaches the receiving institution.
fn on_ready(o: &mut Overlay<'_>, env: &BlockEnv, r: &mut Referral) -> Result<(), Rejection> {
    if r.ready() && r.requested_ms.is_none() {
        r.requested_ms = Some(env.timestamp_ms);
        push_listed(o, key::inbox(&r.to), r.id);
        update_stats(o, r, |s| s.requested += 1)?;
    }
    Ok(())
}

fn load(o: &Overlay<'_>, id: &Hash) -> Result<Referral, Rejection> {
    referral(o, id).ok_or_else(|| Rejection::new(RejectCode::NotFound, format!("no referral {id}")))
}

pub(crate) fn apply(
    o: &mut Overlay<'_>,
    env: &BlockEnv,
    signer: &PublicKey,
    principal: Principal,
    op: &CareOp,
) -> Result<Vec<Event>, Rejection> {
    op.check_limits().map_err(invalid)?;
    match op {
        CareOp::RegisterDevice { .. }
        | CareOp::RevokeDevice { .. }
        | CareOp::SetMonitoring { .. }
        | CareOp::SetOnCall { .. }
        | CareOp::AnchorReadings { .. }
        | CareOp::RaiseAlarm { .. }
        | CareOp::AcknowledgeAlarm { .. }
        | CareOp::EscalateAlarm { .. } => monitoring::apply(o, env, signer, principal, op),
        CareOp::ProposeReferral { referral_id, patient, doctor, to, specialty, records } => {
            if referral(o, referral_id).is_some() {
                return Err(Rejection::new(
                    RejectCode::AlreadyExists,
                    format!("referral {referral_id} already exists"),
                ));
            }
            let me = signer_credential(o, signer)?;
            let by_patient = match principal {
                Principal::Role(Role::Patient) => {
                    if me.pseudonym != Some(*patient) {
                        return Err(not_permitted("a patient refers only themselves"));
                    }
                    true
                }
                Principal::Role(Role::Doctor) => {
                    if doctor != signer {
                        return Err(not_permitted("a doctor proposes a referral as the treating doctor"));
                    }
                    if identity::patient_key(o, patient).is_none() {
                        return Err(Rejection::new(RejectCode::NotFound, "no patient with this pseudonym"));
                    }
                    false
                }
                p => return Err(not_permitted(format!("the {} proposes no referral", p.name()))),
            };
            let treating = valid_doctor(o, env, doctor, "treating doctor")?;
            if identity::institution(o, to).is_none() {
                return Err(Rejection::new(RejectCode::NotFound, format!("unknown institution `{to}`")));
            }
            if *to == treating.institution {
                return Err(invalid(format!(
                    "a referral goes to another institution, not the treating doctor's own (`{to}`)"
                )));
            }
            check_records(o, patient, records)?;
            let mut r = Referral {
                id: *referral_id,
                patient: *patient,
                from: treating.institution,
                to: to.clone(),
                specialty: specialty.clone(),
                records: records.clone(),
                treating_doctor: *doctor,
                patient_approved: by_patient,
                doctor_confirmed: !by_patient,
                status: TaskStatus::Requested,
                mode: None,
                appointment_ms: None,
                receiving_doctor: None,
                consents: vec![],
                report: None,
                reason: None,
                proposed_ms: env.timestamp_ms,
                requested_ms: None,
                accepted_ms: None,
                closed_ms: None,
                history: vec![],
            };
            step(&mut r, "proposed", signer, env);
            push_listed(o, key::patient(patient), r.id);
            push_listed(o, key::outbox(&r.from), r.id);
            push_listed(o, key::doctor(doctor), r.id);
            o.put(key::referral(referral_id), r.to_bytes());
            Ok(vec![event("referral_proposed", &r).with("awaiting", r.awaiting().unwrap_or("none"))])
        }
        CareOp::ApproveReferral { referral_id } | CareOp::ConfirmReferral { referral_id } => {
            let mut r = load(o, referral_id)?;
            if r.status.is_terminal() {
                return Err(invalid(format!("the referral is already {}", r.status)));
            }
            let approving = matches!(op, CareOp::ApproveReferral { .. });
            if approving {
                let me = signer_credential(o, signer)?;
                if me.pseudonym != Some(r.patient) {
                    return Err(not_permitted("only the referred patient approves a referral"));
                }
                if r.patient_approved {
                    return Err(Rejection::new(
                        RejectCode::AlreadyExists,
                        "the patient has already approved this referral",
                    ));
                }
                r.patient_approved = true;
                step(&mut r, "approved", signer, env);
            } else {
                if *signer != r.treating_doctor {
                    return Err(not_permitted("only the treating doctor the referral names confirms it"));
                }
                if r.doctor_confirmed {
                    return Err(Rejection::new(
                        RejectCode::AlreadyExists,
                        "the treating doctor has already confirmed this referral",
                    ));
                }
                r.doctor_confirmed = true;
                step(&mut r, "confirmed", signer, env);
            }
            on_ready(o, env, &mut r)?;
            o.put(key::referral(referral_id), r.to_bytes());
            let kind = if approving { "referral_approved" } else { "referral_confirmed" };
            Ok(vec![event(kind, &r)])
        }
        CareOp::AcceptReferral { .. }
        | CareOp::RejectReferral { .. }
        | CareOp::StartReferral { .. }
        | CareOp::CompleteReferral { .. }
        | CareOp::FailReferral { .. }
        | CareOp::CancelReferral { .. } => {
            let action = op.action().expect("a status change has a task action");
            let id = op.referral_id().ok_or_else(|| invalid("not a referral operation"))?;
            let mut r = load(o, id)?;
            let who = party(o, &r, signer);
            let to = task::transition(r.status, who, &action).map_err(task_rejection)?;
            // The receiving side acts only once both the patient and the doctor agreed.
            if who == Party::Fulfiller {
                if let Some(w) = r.awaiting() {
                    return Err(invalid(format!("the referral has not reached `{}` yet: it awaits {w}", r.to)));
                }
            }
            let mut events = vec![];
            match op {
                CareOp::AcceptReferral { mode, appointment_ms, doctor, .. } => {
                    if *appointment_ms < env.timestamp_ms {
                        return Err(invalid("the appointment is in the past"));
                    }
                    if *appointment_ms > env.timestamp_ms.saturating_add(MAX_APPOINTMENT_AHEAD_MS) {
                        return Err(invalid("the appointment is more than a year ahead"));
                    }
                    let receiving = valid_doctor(o, env, doctor, "receiving doctor")?;
                    if receiving.institution != r.to {
                        return Err(invalid(format!("the receiving doctor must work at `{}`", r.to)));
                    }
                    let ids = consent_ids(&r.id);
                    if let Some(id) = ids.iter().find(|id| consent::consent(o, id).is_some()) {
                        return Err(Rejection::new(RejectCode::AlreadyExists, format!("consent {id} already exists")));
                    }
                    let scopes = [
                        (action::READ, Scope::Records(r.records.clone())),
                        (action::WRITE, Scope::ResourceTypes(vec![REPORT_RESOURCE_TYPE.into()])),
                    ];
                    for (id, (actions, scope)) in ids.iter().zip(scopes) {
                        let c = Consent {
                            id: *id,
                            patient: r.patient,
                            terms: ConsentTerms {
                                grantee: Grantee::Person(*doctor),
                                actions,
                                scope,
                                purpose: Purpose::Treatment,
                                expires_ms: None,
                                roles: vec![],
                            },
                            granted_at_height: env.height,
                            revoked_at_height: None,
                        };
                        consent::store_consent(o, env, &c)?;
                        events.push(
                            Event::new("consent_granted")
                                .with("consent", id)
                                .with("patient", r.patient)
                                .with("grantee", doctor.to_hex())
                                .with("purpose", Purpose::Treatment.name()),
                        );
                    }
                    r.mode = Some(*mode);
                    r.appointment_ms = Some(*appointment_ms);
                    r.receiving_doctor = Some(*doctor);
                    r.consents = ids.to_vec();
                    r.accepted_ms = Some(env.timestamp_ms);
                    push_listed(o, key::doctor(doctor), r.id);
                    let waited = env.timestamp_ms.saturating_sub(r.requested_ms.unwrap_or(env.timestamp_ms));
                    update_stats(o, &r, |s| {
                        s.accepted += 1;
                        s.accept_ms_total = s.accept_ms_total.saturating_add(waited);
                    })?;
                }
                CareOp::CompleteReferral { report, .. } => {
                    if Some(*signer) != r.receiving_doctor {
                        return Err(not_permitted(
                            "only the receiving doctor completes the referral with their report",
                        ));
                    }
                    check_records(o, &r.patient, std::slice::from_ref(report))?;
                    // (Checked above; absent now only if storage failed, and then the block is
                    // never committed.)
                    let Some(head) = crate::records::head(o, report) else {
                        return Err(invalid("the report's record could not be read"));
                    };
                    if head.resource_type != REPORT_RESOURCE_TYPE {
                        return Err(invalid(format!(
                            "the report must be a {REPORT_RESOURCE_TYPE} (a consult note), not a {}",
                            head.resource_type
                        )));
                    }
                    let authored = crate::records::history(o, report).iter().any(|v| v.author == *signer);
                    if !authored {
                        return Err(not_permitted("the report must be a record the receiving doctor wrote"));
                    }
                    r.report = Some(*report);
                }
                CareOp::RejectReferral { reason, .. }
                | CareOp::FailReferral { reason, .. }
                | CareOp::CancelReferral { reason, .. } => r.reason = Some(reason.clone()),
                _ => {}
            }
            r.status = to;
            step(&mut r, action.name(), signer, env);
            if to.is_terminal() {
                r.closed_ms = Some(env.timestamp_ms);
                end_consents(o, env, &r);
                let took = env.timestamp_ms.saturating_sub(r.requested_ms.unwrap_or(env.timestamp_ms));
                let counted = r.requested_ms.is_some();
                update_stats(o, &r, |s| match to {
                    TaskStatus::Rejected => s.rejected += 1,
                    TaskStatus::Completed => {
                        s.completed += 1;
                        s.complete_ms_total = s.complete_ms_total.saturating_add(took);
                    }
                    TaskStatus::Failed => s.failed += 1,
                    // A cancellation before the request reached the receiver counts nowhere.
                    TaskStatus::Cancelled if counted => s.cancelled += 1,
                    _ => {}
                })?;
                for id in &r.consents {
                    events.push(
                        Event::new("consent_ended").with("consent", id).with("effective_from_height", env.height + 1),
                    );
                }
            }
            o.put(key::referral(&r.id), r.to_bytes());
            events.insert(0, event(&format!("referral_{}", past_tense(&action)), &r));
            Ok(events)
        }
    }
}

fn past_tense(a: &task::Action) -> &'static str {
    match a {
        task::Action::Accept => "accepted",
        task::Action::Reject { .. } => "rejected",
        task::Action::Start => "started",
        task::Action::Complete { .. } => "completed",
        task::Action::Fail { .. } => "failed",
        task::Action::Cancel { .. } => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markdown table in this module's docs must say what the code does.
    #[test]
    fn doc_table_matches_code() {
        crate::permissions::check_doc_table(include_str!("care.rs"), medledger_types::Domain::Care);
    }

    #[test]
    fn stats_keys_of_different_pairs_differ() {
        assert_ne!(key::stats("ab", "c"), key::stats("a", "bc"));
    }
}
