//! Record anchors through `execute_block`: writes need the patient's write consent, amendments
//! wait for the patient, access events are logged by the holder only, erasure keeps the hashes.

mod common;

use common::*;
use medledger_state::audit;
use medledger_state::consent::permits;
use medledger_state::records::{self, VersionStatus};
use medledger_state::{consent::RecordRef, identity};
use medledger_types::{
    action, AccessOutcome, ConsentTerms, Grantee, Hash, Keypair, Operation, Purpose, RejectCode, Role, Scope,
};
use medledger_types::{AuditOp, ConsentOp, RecordsOp};

const REC: Hash = Hash([0xAB; 32]);

fn anchor(pid: Hash, v: u32, content: u8) -> Operation {
    Operation::Records(RecordsOp::AnchorRecord {
        record_id: REC,
        version: v,
        patient: pid,
        resource_type: "Observation".into(),
        content_hash: Hash([content; 32]),
        locator: format!("vault://hospital-0/{content}"),
    })
}

struct Setup {
    c: Chain,
    patient: Keypair,
    pid: Hash,
    doc_a: Keypair,
    doc_b: Keypair,
}

fn setup() -> Setup {
    let mut c = Chain::new();
    let patient = c.patient(10);
    let pid = identity::credential(&c.state, &patient.public()).unwrap().pseudonym.unwrap();
    let doc_a = c.issue(Role::Doctor, 0, 20);
    let doc_b = c.issue(Role::Doctor, 1, 21);
    Setup { c, patient, pid, doc_a, doc_b }
}

fn grant(s: &mut Setup, id: u8, grantee: &Keypair, actions: u8) {
    let p = s.patient.clone();
    applied(&s.c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([id; 32]),
            terms: ConsentTerms {
                grantee: Grantee::Person(grantee.public()),
                actions,
                scope: Scope::All,
                purpose: Purpose::Treatment,
                expires_ms: None,
                roles: vec![],
            },
        }),
    ));
}

#[test]
fn writing_needs_write_consent_and_amendments_wait_for_the_patient() {
    let mut s = setup();
    let doc_a = s.doc_a.clone();
    assert_eq!(rejected(&s.c.one(&doc_a, anchor(s.pid, 1, 1))), RejectCode::NotPermitted);
    grant(&mut s, 1, &doc_a, action::WRITE);
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    let head = records::head(&s.c.state, &REC).unwrap();
    assert_eq!((head.latest_version, head.current_version), (1, 1));
    assert_eq!(records::version(&s.c.state, &REC, 1).unwrap().holder, "hospital-0");
    // Versions must follow on; the resource type cannot change.
    assert_eq!(rejected(&s.c.one(&doc_a, anchor(s.pid, 3, 2))), RejectCode::InvalidArgument);
    let mut wrong_type = anchor(s.pid, 2, 2);
    if let Operation::Records(RecordsOp::AnchorRecord { resource_type, .. }) = &mut wrong_type {
        *resource_type = "Condition".into();
    }
    assert_eq!(rejected(&s.c.one(&doc_a, wrong_type)), RejectCode::InvalidArgument);
    // An amendment is pending; the old version stays current until the patient accepts.
    applied(&s.c.one(&doc_a, anchor(s.pid, 2, 2)));
    assert_eq!(records::version(&s.c.state, &REC, 2).unwrap().status, VersionStatus::Pending);
    assert_eq!(records::head(&s.c.state, &REC).unwrap().current_version, 1);
    let doc_b = s.doc_b.clone();
    assert_eq!(
        rejected(
            &s.c.one(
                &doc_b,
                Operation::Records(RecordsOp::ReviewAmendment { record_id: REC, version: 2, accept: true })
            )
        ),
        RejectCode::NotPermitted
    );
    let p = s.patient.clone();
    applied(&s.c.one(&p, Operation::Records(RecordsOp::ReviewAmendment { record_id: REC, version: 2, accept: true })));
    assert_eq!(records::head(&s.c.state, &REC).unwrap().current_version, 2);
    // A rejected amendment is kept as rejected and never becomes current.
    applied(&s.c.one(&doc_a, anchor(s.pid, 3, 3)));
    applied(&s.c.one(&p, Operation::Records(RecordsOp::ReviewAmendment { record_id: REC, version: 3, accept: false })));
    let hist = records::history(&s.c.state, &REC);
    let statuses: Vec<_> = hist.iter().map(|v| v.status).collect();
    assert_eq!(statuses, vec![VersionStatus::Current, VersionStatus::Current, VersionStatus::Rejected]);
    assert_eq!(records::head(&s.c.state, &REC).unwrap().current_version, 2);
    assert_eq!(
        rejected(
            &s.c.one(&p, Operation::Records(RecordsOp::ReviewAmendment { record_id: REC, version: 3, accept: true }))
        ),
        RejectCode::AlreadyExists
    );
}

#[test]
fn access_events_are_logged_by_the_holder_and_break_glass_needs_a_reason() {
    let mut s = setup();
    let doc_a = s.doc_a.clone();
    grant(&mut s, 1, &doc_a, action::WRITE);
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    let rec = RecordRef { id: &REC, resource_type: "Observation" };
    assert!(permits(
        &s.c.state,
        &s.pid,
        &s.doc_b.public(),
        rec,
        action::READ,
        Purpose::Treatment,
        s.c.now,
        s.c.height + 1
    )
    .is_err());
    let patient_key = s.patient.public();
    let regulator = s.c.issue(Role::Regulator, 2, 30);
    let readers = [patient_key, regulator.public()];
    let event = |id: u8, requester: &Keypair, outcome: AccessOutcome, reason: Option<&[medledger_types::PublicKey]>| {
        medledger_types::audit::AccessNote {
            request_id: Hash([id; 32]),
            record_id: REC,
            version: 1,
            requester: requester.public(),
            purpose: Purpose::Treatment,
            outcome,
            reason: reason.map(sealed_for).unwrap_or_default(),
        }
    };
    let log = |events| Operation::Audit(AuditOp::LogAccess { events });
    let admin_a = s.c.admins[0].clone();
    let admin_b = s.c.admins[1].clone();
    let doc_b = s.doc_b.clone();
    // Many events in one transaction.
    applied(&s.c.one(
        &admin_a,
        log(vec![
            event(1, &doc_b, AccessOutcome::Denied, Some(&readers)),
            event(2, &doc_b, AccessOutcome::BreakGlass, Some(&readers)),
        ]),
    ));
    // Only the holder logs; a denial or break-glass carries its reason, sealed for the patient
    // and every regulator.
    assert_eq!(
        rejected(&s.c.one(&admin_b, log(vec![event(3, &doc_b, AccessOutcome::Served, None)]))),
        RejectCode::NotPermitted
    );
    assert_eq!(
        rejected(&s.c.one(&admin_a, log(vec![event(3, &doc_b, AccessOutcome::BreakGlass, None)]))),
        RejectCode::InvalidArgument
    );
    for readers in [&[patient_key][..], &[regulator.public()][..]] {
        let out = s.c.one(&admin_a, log(vec![event(3, &doc_b, AccessOutcome::Denied, Some(readers))]));
        assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    }
    // One bad event rejects the whole batch: nothing of it is logged.
    let out = s.c.one(
        &admin_a,
        log(vec![
            event(3, &doc_b, AccessOutcome::Served, None),
            event(4, &doc_b, AccessOutcome::Denied, Some(&[patient_key])),
        ]),
    );
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    assert!(audit::access_event_for_request(&s.c.state, &Hash([3; 32])).is_none());
    // A re-sent event (same signed read request) is skipped, not logged twice.
    applied(&s.c.one(
        &admin_a,
        log(vec![
            event(2, &doc_b, AccessOutcome::BreakGlass, Some(&readers)),
            event(5, &s.doc_a, AccessOutcome::Served, None),
        ]),
    ));
    let events = audit::access_events(&s.c.state, &REC);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].outcome, AccessOutcome::Denied);
    assert_eq!(events[1].outcome, AccessOutcome::BreakGlass);
    assert_eq!(events[1].institution, "hospital-0");
    assert_eq!(events[2].requester, s.doc_a.public());
    assert_eq!(audit::access_event_for_request(&s.c.state, &Hash([2; 32])).unwrap(), events[1]);
    // The chain-wide log holds the same events in commit order; the rejected attempts left
    // no entry.
    assert_eq!(audit::access_log_len(&s.c.state), 3);
    let log: Vec<_> = (0..3).map(|i| audit::access_log_entry(&s.c.state, i).unwrap()).collect();
    assert_eq!(log, events);
    assert!(audit::access_log_entry(&s.c.state, 3).is_none());
}

#[test]
fn a_patients_records_are_indexed_once_in_anchoring_order() {
    let mut s = setup();
    let doc_a = s.doc_a.clone();
    grant(&mut s, 1, &doc_a, action::WRITE);
    assert!(records::record_ids_of(&s.c.state, &s.pid).is_empty());
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    let mut other = anchor(s.pid, 1, 2);
    if let Operation::Records(RecordsOp::AnchorRecord { record_id, .. }) = &mut other {
        *record_id = Hash([0xCD; 32]);
    }
    applied(&s.c.one(&doc_a, other));
    // An amendment does not add the record again.
    applied(&s.c.one(&doc_a, anchor(s.pid, 2, 3)));
    assert_eq!(records::record_ids_of(&s.c.state, &s.pid), vec![REC, Hash([0xCD; 32])]);
    // A rejected anchor leaves the index alone.
    let doc_b = s.doc_b.clone();
    let mut foreign = anchor(s.pid, 1, 4);
    if let Operation::Records(RecordsOp::AnchorRecord { record_id, .. }) = &mut foreign {
        *record_id = Hash([0xEF; 32]);
    }
    assert_eq!(rejected(&s.c.one(&doc_b, foreign)), RejectCode::NotPermitted);
    assert_eq!(records::record_ids_of(&s.c.state, &s.pid).len(), 2);
}

#[test]
fn erasure_is_requested_by_the_patient_and_confirmed_by_the_holder() {
    let mut s = setup();
    let doc_a = s.doc_a.clone();
    grant(&mut s, 1, &doc_a, action::WRITE);
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    let admin_a = s.c.admins[0].clone();
    assert_eq!(
        rejected(&s.c.one(&admin_a, Operation::Records(RecordsOp::ConfirmErasure { record_id: REC }))),
        RejectCode::InvalidArgument
    );
    let other = s.c.patient(11);
    assert_eq!(
        rejected(&s.c.one(&other, Operation::Records(RecordsOp::RequestErasure { record_id: REC }))),
        RejectCode::NotPermitted
    );
    let p = s.patient.clone();
    applied(&s.c.one(&p, Operation::Records(RecordsOp::RequestErasure { record_id: REC })));
    let admin_b = s.c.admins[1].clone();
    assert_eq!(
        rejected(&s.c.one(&admin_b, Operation::Records(RecordsOp::ConfirmErasure { record_id: REC }))),
        RejectCode::NotPermitted
    );
    applied(&s.c.one(&admin_a, Operation::Records(RecordsOp::ConfirmErasure { record_id: REC })));
    let head = records::head(&s.c.state, &REC).unwrap();
    assert!(head.erased_at.is_some());
    // The hash stays; no new versions after erasure.
    assert_eq!(records::version(&s.c.state, &REC, 1).unwrap().content_hash, Hash([1; 32]));
    assert_eq!(rejected(&s.c.one(&doc_a, anchor(s.pid, 2, 2))), RejectCode::InvalidArgument);
}

#[test]
fn no_version_is_anchored_while_an_erasure_waits_for_its_holders() {
    let mut s = setup();
    let (doc_a, doc_b) = (s.doc_a.clone(), s.doc_b.clone());
    grant(&mut s, 1, &doc_a, action::WRITE);
    grant(&mut s, 2, &doc_b, action::WRITE);
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    let p = s.patient.clone();
    applied(&s.c.one(&p, Operation::Records(RecordsOp::RequestErasure { record_id: REC })));
    assert_eq!(records::erasure_holders(&s.c.state, &REC), ["hospital-0"]);
    // Another institution's doctor, and the holder's own, still hold write consent: neither
    // may add a copy the erasure would not reach (hospital-1 is not among those who confirm).
    for doc in [&doc_b, &doc_a] {
        let before = records::head(&s.c.state, &REC).unwrap();
        assert_eq!(rejected(&s.c.one(doc, anchor(s.pid, 2, 2))), RejectCode::InvalidArgument);
        assert_eq!(records::head(&s.c.state, &REC).unwrap(), before);
        assert!(records::version(&s.c.state, &REC, 2).is_none());
    }
    assert_eq!(records::erasure_holders(&s.c.state, &REC), ["hospital-0"]);
    assert!(records::erasure_queue(&s.c.state, "hospital-1").is_empty());
    assert_eq!(records::holders(&s.c.state, &REC), ["hospital-0"]);
}

#[test]
fn the_holders_an_erasure_waits_for_are_kept_as_versions_are_anchored() {
    let mut s = setup();
    let (doc_a, doc_b) = (s.doc_a.clone(), s.doc_b.clone());
    grant(&mut s, 1, &doc_a, action::WRITE);
    grant(&mut s, 2, &doc_b, action::WRITE);
    assert!(records::holders(&s.c.state, &REC).is_empty());
    // Each institution once, in the order of its first version, however many versions it adds.
    for (v, doc) in [(1, &doc_a), (2, &doc_a), (3, &doc_b), (4, &doc_a), (5, &doc_b)] {
        applied(&s.c.one(doc, anchor(s.pid, v, v as u8)));
    }
    assert_eq!(records::holders(&s.c.state, &REC), ["hospital-0", "hospital-1"]);
    // The erasure request reads that list, not the versions: drop the versions' holders from
    // the state and the request still reaches both institutions.
    for v in 1..=5 {
        let k = medledger_state::records::key::version(&REC, v);
        let mut rv = records::version(&s.c.state, &REC, v).unwrap();
        rv.holder = "nobody".into();
        s.c.state.0.insert(k, medledger_types::codec::Canonical::to_bytes(&rv));
    }
    let p = s.patient.clone();
    applied(&s.c.one(&p, Operation::Records(RecordsOp::RequestErasure { record_id: REC })));
    assert_eq!(records::erasure_holders(&s.c.state, &REC), ["hospital-0", "hospital-1"]);
}

#[test]
fn every_holder_of_every_version_must_confirm_an_erasure() {
    let mut s = setup();
    let (doc_a, doc_b) = (s.doc_a.clone(), s.doc_b.clone());
    grant(&mut s, 1, &doc_a, action::WRITE);
    grant(&mut s, 2, &doc_b, action::WRITE);
    // v1 held by hospital-0, an amendment (v2) by hospital-1.
    applied(&s.c.one(&doc_a, anchor(s.pid, 1, 1)));
    applied(&s.c.one(&doc_b, anchor(s.pid, 2, 2)));
    assert_eq!(records::holders(&s.c.state, &REC), ["hospital-0", "hospital-1"]);
    let p = s.patient.clone();
    applied(&s.c.one(&p, Operation::Records(RecordsOp::RequestErasure { record_id: REC })));
    assert_eq!(records::erasure_holders(&s.c.state, &REC), ["hospital-0", "hospital-1"]);
    for inst in ["hospital-0", "hospital-1"] {
        assert_eq!(records::erasure_queue(&s.c.state, inst), vec![REC], "{inst}");
    }
    assert!(records::erasure_queue(&s.c.state, "hospital-2").is_empty());
    let confirm = Operation::Records(RecordsOp::ConfirmErasure { record_id: REC });
    // An institution that holds no copy cannot confirm.
    let admin_c = s.c.admins[2].clone();
    assert_eq!(rejected(&s.c.one(&admin_c, confirm.clone())), RejectCode::NotPermitted);
    // The first holder's confirmation is not the end.
    let admin_a = s.c.admins[0].clone();
    applied(&s.c.one(&admin_a, confirm.clone()));
    assert!(records::head(&s.c.state, &REC).unwrap().erased_at.is_none());
    assert_eq!(records::erasure_holders(&s.c.state, &REC), ["hospital-1"]);
    assert!(records::erasure_queue(&s.c.state, "hospital-0").is_empty());
    assert_eq!(rejected(&s.c.one(&admin_a, confirm.clone())), RejectCode::NotPermitted, "confirmed once");
    // The last one erases the record.
    let admin_b = s.c.admins[1].clone();
    applied(&s.c.one(&admin_b, confirm.clone()));
    assert!(records::head(&s.c.state, &REC).unwrap().erased_at.is_some());
    assert!(records::erasure_holders(&s.c.state, &REC).is_empty());
    assert!(records::erasure_queue(&s.c.state, "hospital-1").is_empty());
    assert_eq!(rejected(&s.c.one(&admin_b, confirm)), RejectCode::AlreadyExists);
}
