//! Referrals on the state machine: the whole workflow, the consent it grants and ends, the
//! statistics, and the bad-input suite (every refusal names its rule and changes nothing but
//! the nonce).

mod common;

use common::{applied, rejected, Chain};
use medledger_state::care::{self, consent_ids, REPORT_RESOURCE_TYPE};
use medledger_state::consent::{active_consents, permits, RecordRef};
use medledger_state::identity;
use medledger_state::store::StateRead;
use medledger_types::care::{CareOp as C, Mode, TaskStatus};
use medledger_types::{action, Hash, Keypair, Operation, Outcome, Purpose, RecordsOp, RejectCode, Role};

const FROM: &str = "hospital-1";
const TO: &str = "hospital-0";

struct World {
    c: Chain,
    patient: Keypair,
    pid: Hash,
    other_patient: Keypair,
    treating: Keypair,
    /// A doctor at the receiving institution.
    receiving: Keypair,
    /// Another doctor at the receiving institution.
    colleague: Keypair,
    /// A doctor elsewhere.
    stranger: Keypair,
    to_admin: Keypair,
    records: Vec<Hash>,
}

fn op(o: C) -> Operation {
    Operation::Care(o)
}

fn anchor(pid: Hash, id: Hash, resource_type: &str) -> Operation {
    Operation::Records(RecordsOp::AnchorRecord {
        record_id: id,
        version: 1,
        patient: pid,
        resource_type: resource_type.into(),
        content_hash: Hash([7; 32]),
        locator: "vault://hospital-1/x".into(),
    })
}

fn reason(o: &Outcome) -> (RejectCode, String) {
    match o {
        Outcome::Rejected { code, reason } => (*code, reason.clone()),
        o => panic!("expected a rejection, got {o:?}"),
    }
}

fn world() -> World {
    let mut c = Chain::new();
    let patient = c.patient(10);
    let other_patient = c.patient(11);
    let pid = identity::credential(&c.state, &patient.public()).unwrap().pseudonym.unwrap();
    let treating = c.issue(Role::Doctor, 1, 20);
    let receiving = c.issue(Role::Doctor, 0, 21);
    let colleague = c.issue(Role::Doctor, 0, 22);
    let stranger = c.issue(Role::Doctor, 2, 23);
    let to_admin = c.admins[0].clone();
    // The treating doctor writes two records (the patient consents to that).
    let p = patient.clone();
    applied(&c.one(
        &p,
        Operation::Consent(medledger_types::ConsentOp::GrantConsent {
            consent_id: Hash([0xC0; 32]),
            terms: medledger_types::ConsentTerms {
                grantee: medledger_types::Grantee::Person(treating.public()),
                actions: action::ALL,
                scope: medledger_types::Scope::All,
                purpose: Purpose::Treatment,
                expires_ms: None,
                roles: vec![],
            },
        }),
    ));
    let records = vec![Hash([0xA1; 32]), Hash([0xA2; 32])];
    for r in &records {
        applied(&c.one(&treating, anchor(pid, *r, "Observation")));
    }
    applied(&c.one(&treating, anchor(pid, Hash([0xA3; 32]), "Condition")));
    World { c, patient, pid, other_patient, treating, receiving, colleague, stranger, to_admin, records }
}

impl World {
    fn run(&mut self, who: &Keypair, o: C) -> Outcome {
        self.c.one(who, op(o))
    }
    fn propose(&mut self, who: &Keypair, id: u8) -> Outcome {
        let o = C::ProposeReferral {
            referral_id: Hash([id; 32]),
            patient: self.pid,
            doctor: self.treating.public(),
            to: TO.into(),
            specialty: "394579002".into(),
            records: self.records.clone(),
        };
        self.run(who, o)
    }
    fn accept(&mut self, who: &Keypair, id: u8) -> Outcome {
        let o = C::AcceptReferral {
            referral_id: Hash([id; 32]),
            mode: Mode::Remote,
            appointment_ms: self.c.now + 86_400_000,
            doctor: self.receiving.public(),
        };
        self.run(who, o)
    }
    fn get(&self, id: u8) -> care::Referral {
        care::referral(&self.c.state, &Hash([id; 32])).expect("referral exists")
    }
    /// A referral proposed by the treating doctor and approved by the patient.
    fn ready(&mut self, id: u8) {
        let (t, p) = (self.treating.clone(), self.patient.clone());
        applied(&self.propose(&t, id));
        applied(&self.run(&p, C::ApproveReferral { referral_id: Hash([id; 32]) }));
    }
    fn can_read(&self, record: &Hash, resource_type: &str, act: u8) -> bool {
        permits(
            &self.c.state,
            &self.pid,
            &self.receiving.public(),
            RecordRef { id: record, resource_type },
            act,
            Purpose::Treatment,
            self.c.now,
            self.c.height + 1,
        )
        .is_ok()
    }
    /// Every state key of the care domain and the consents, to check a refusal changed nothing.
    fn snapshot(&self) -> Vec<Option<Vec<u8>>> {
        let mut keys: Vec<Vec<u8>> = (0..=9u8).map(|i| care::key::referral(&Hash([i; 32]))).collect();
        keys.push(care::key::patient(&self.pid));
        keys.push(care::key::inbox(TO));
        keys.push(care::key::outbox(FROM));
        keys.push(care::key::doctor(&self.treating.public()));
        keys.push(care::key::doctor(&self.receiving.public()));
        keys.push(care::key::stats(FROM, TO));
        keys.push(care::key::pairs());
        keys.push(medledger_state::consent::key::patient_consents(&self.pid));
        for i in 0..=9u8 {
            for id in consent_ids(&Hash([i; 32])) {
                keys.push(medledger_state::consent::key::consent(&id));
            }
        }
        keys.iter().map(|k| self.c.state.get(k)).collect()
    }
    /// Runs `o`, expects the refusal `code` with `needle` in its reason, and checks nothing of
    /// the domain changed.
    fn refused(&mut self, who: &Keypair, o: C, code: RejectCode, needle: &str) {
        let before = self.snapshot();
        let out = self.run(who, o.clone());
        let (got, why) = reason(&out);
        assert_eq!(got, code, "{}: {why}", o.kind().name());
        assert!(why.contains(needle), "{}: `{why}` does not say `{needle}`", o.kind().name());
        assert_eq!(self.snapshot(), before, "{} changed the state", o.kind().name());
    }
}

#[test]
fn a_referral_runs_from_proposal_to_report_and_its_consent_ends_with_it() {
    let mut w = world();
    let (treating, patient, receiving) = (w.treating.clone(), w.patient.clone(), w.receiving.clone());
    applied(&w.propose(&treating, 1));
    let r = w.get(1);
    assert_eq!((r.from.as_str(), r.to.as_str(), r.status), (FROM, TO, TaskStatus::Requested));
    assert_eq!(r.awaiting(), Some("the patient's approval"));
    // Not in the receiving inbox until the patient approves.
    assert!(care::inbox(&w.c.state, TO).is_empty());
    assert_eq!(care::outbox(&w.c.state, FROM).len(), 1);
    applied(&w.run(&patient, C::ApproveReferral { referral_id: Hash([1; 32]) }));
    assert_eq!(care::inbox(&w.c.state, TO).len(), 1);
    assert_eq!(care::of_patient(&w.c.state, &w.pid).len(), 1);
    assert_eq!(care::of_doctor(&w.c.state, &treating.public()).len(), 1);

    // Before acceptance the receiving doctor reads nothing.
    assert!(!w.can_read(&w.records[0], "Observation", action::READ));
    applied(&w.accept(&receiving, 1));
    let r = w.get(1);
    assert_eq!(
        (r.status, r.mode, r.receiving_doctor),
        (TaskStatus::Accepted, Some(Mode::Remote), Some(receiving.public()))
    );
    assert_eq!(r.consents, consent_ids(&r.id).to_vec());
    // The consent is an ordinary one of the patient's, scoped to the named records.
    let live: Vec<Hash> = active_consents(&w.c.state, &w.pid).iter().map(|c| c.id).collect();
    assert!(r.consents.iter().all(|c| live.contains(c)));
    assert!(w.can_read(&w.records[0], "Observation", action::READ));
    assert!(w.can_read(&w.records[1], "Observation", action::READ));
    assert!(!w.can_read(&Hash([0xA3; 32]), "Condition", action::READ), "a record the referral does not name");
    assert!(!w.can_read(&w.records[0], "Observation", action::WRITE), "reading is not writing");
    assert_eq!(care::of_doctor(&w.c.state, &receiving.public()).len(), 1);

    applied(&w.run(&receiving, C::StartReferral { referral_id: Hash([1; 32]) }));
    // The receiving doctor writes the report under the referral's write consent.
    let report = Hash([0xB1; 32]);
    applied(&w.c.one(&receiving, anchor(w.pid, report, REPORT_RESOURCE_TYPE)));
    applied(&w.run(&receiving, C::CompleteReferral { referral_id: Hash([1; 32]), report }));
    let r = w.get(1);
    assert_eq!((r.status, r.report), (TaskStatus::Completed, Some(report)));
    assert!(r.closed_ms.is_some());
    let steps: Vec<&str> = r.history.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(steps, ["proposed", "approved", "accept", "start", "complete"]);
    // From the next block on, the consents no longer cover the receiving doctor.
    assert!(!w.can_read(&w.records[0], "Observation", action::READ));
    assert!(!w.can_read(&report, REPORT_RESOURCE_TYPE, action::WRITE));
    let stats = care::stats(&w.c.state);
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].requested, stats[0].accepted, stats[0].completed), (1, 1, 1));
    assert!(stats[0].mean_turnaround_ms().unwrap() >= stats[0].mean_accept_ms().unwrap());
    // By region: `unassigned` until the institutions are placed, then under their regions. An
    // admin places only its own institution; a region is a code, nothing else.
    let by = care::stats_by_region(&w.c.state);
    assert_eq!((by[0].from.as_str(), by[0].to.as_str(), by[0].completed), ("unassigned", "unassigned", 1));
    let region = |institution: &str, region: &str| {
        Operation::Identity(medledger_types::IdentityOp::SetRegion {
            institution: institution.into(),
            region: region.into(),
        })
    };
    let (ca, from_admin) = (w.c.ca.clone(), w.c.admins[1].clone());
    assert_eq!(rejected(&w.c.one(&from_admin, region(TO, "metro-north"))), RejectCode::NotPermitted);
    assert_eq!(rejected(&w.c.one(&ca, region(TO, "Metro North; patient 17"))), RejectCode::InvalidArgument);
    assert_eq!(rejected(&w.c.one(&ca, region("nowhere", "metro-north"))), RejectCode::NotFound);
    assert_eq!(rejected(&w.c.one(&receiving, region(TO, "metro-north"))), RejectCode::NotPermitted);
    assert_eq!(identity::region_of(&w.c.state, TO), None, "refusals change nothing");
    applied(&w.c.one(&from_admin, region(FROM, "rural-east")));
    applied(&w.c.one(&ca, region(TO, "metro-north")));
    let by = care::stats_by_region(&w.c.state);
    assert_eq!(by.len(), 1);
    assert_eq!((by[0].from.as_str(), by[0].to.as_str()), ("rural-east", "metro-north"));
    assert_eq!((by[0].requested, by[0].completed, by[0].complete_ms_total), (1, 1, stats[0].complete_ms_total));
    // A closed referral changes no more.
    w.refused(
        &receiving,
        C::StartReferral { referral_id: Hash([1; 32]) },
        RejectCode::InvalidArgument,
        "completed referral cannot start",
    );
}

#[test]
fn a_patient_applies_the_doctor_confirms_and_a_rejection_grants_nothing() {
    let mut w = world();
    let (treating, patient, admin) = (w.treating.clone(), w.patient.clone(), w.to_admin.clone());
    applied(&w.propose(&patient, 2));
    assert_eq!(w.get(2).awaiting(), Some("the treating doctor's confirmation"));
    // The receiving side cannot act yet.
    w.refused(
        &admin,
        C::RejectReferral { referral_id: Hash([2; 32]), reason: "full".into() },
        RejectCode::InvalidArgument,
        "awaits the treating doctor",
    );
    applied(&w.run(&treating, C::ConfirmReferral { referral_id: Hash([2; 32]) }));
    applied(
        &w.run(&admin, C::RejectReferral { referral_id: Hash([2; 32]), reason: "no cardiologist this month".into() }),
    );
    let r = w.get(2);
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Rejected, Some("no cardiologist this month")));
    assert!(r.consents.is_empty());
    assert!(!w.can_read(&w.records[0], "Observation", action::READ));
    assert_eq!(care::stats(&w.c.state)[0].rejected, 1);
}

#[test]
fn the_requester_cancels_and_the_consent_ends() {
    let mut w = world();
    let (patient, receiving) = (w.patient.clone(), w.receiving.clone());
    w.ready(3);
    applied(&w.accept(&receiving, 3));
    assert!(w.can_read(&w.records[0], "Observation", action::READ));
    // The receiving side may not cancel; the patient may.
    w.refused(
        &receiving,
        C::CancelReferral { referral_id: Hash([3; 32]), reason: "x".into() },
        RejectCode::NotPermitted,
        "only the requester",
    );
    applied(&w.run(&patient, C::CancelReferral { referral_id: Hash([3; 32]), reason: "feeling better".into() }));
    assert_eq!(w.get(3).status, TaskStatus::Cancelled);
    assert!(!w.can_read(&w.records[0], "Observation", action::READ));
}

#[test]
fn bad_referrals_are_refused_with_their_rule_and_change_nothing() {
    let mut w = world();
    let (treating, patient, other) = (w.treating.clone(), w.patient.clone(), w.other_patient.clone());
    let (receiving, colleague, stranger, admin) =
        (w.receiving.clone(), w.colleague.clone(), w.stranger.clone(), w.to_admin.clone());
    let propose = |w: &World, to: &str, records: Vec<Hash>, doctor: &Keypair| C::ProposeReferral {
        referral_id: Hash([5; 32]),
        patient: w.pid,
        doctor: doctor.public(),
        to: to.into(),
        specialty: "394579002".into(),
        records,
    };
    let recs = w.records.clone();
    w.refused(
        &treating,
        propose(&w, FROM, recs.clone(), &treating),
        RejectCode::InvalidArgument,
        "another institution",
    );
    w.refused(&treating, propose(&w, "nowhere", recs.clone(), &treating), RejectCode::NotFound, "unknown institution");
    w.refused(&treating, propose(&w, TO, vec![Hash([0xEE; 32])], &treating), RejectCode::NotFound, "no record");
    w.refused(&treating, propose(&w, TO, vec![], &treating), RejectCode::InvalidArgument, "at least one record");
    w.refused(&treating, propose(&w, TO, recs.clone(), &stranger), RejectCode::NotPermitted, "as the treating doctor");
    w.refused(&other, propose(&w, TO, recs.clone(), &treating), RejectCode::NotPermitted, "only themselves");
    w.refused(&patient, propose(&w, TO, recs.clone(), &admin), RejectCode::InvalidArgument, "must be a doctor");
    // Another patient's record.
    let opid = identity::credential(&w.c.state, &other.public()).unwrap().pseudonym.unwrap();
    let mut o = propose(&w, TO, recs.clone(), &treating);
    if let C::ProposeReferral { patient, .. } = &mut o {
        *patient = opid;
    }
    w.refused(&treating, o, RejectCode::NotPermitted, "another patient's");

    w.ready(6);
    let r6 = Hash([6; 32]);
    w.refused(&treating, propose(&w, TO, recs, &treating).with_id(r6), RejectCode::AlreadyExists, "already exists");
    w.refused(&patient, C::ApproveReferral { referral_id: r6 }, RejectCode::AlreadyExists, "already approved");
    w.refused(&other, C::ApproveReferral { referral_id: r6 }, RejectCode::NotPermitted, "only the referred patient");
    w.refused(&stranger, C::ConfirmReferral { referral_id: r6 }, RejectCode::NotPermitted, "only the treating doctor");
    w.refused(
        &receiving,
        C::StartReferral { referral_id: r6 },
        RejectCode::InvalidArgument,
        "requested referral cannot start",
    );
    w.refused(
        &stranger,
        C::AcceptReferral {
            referral_id: r6,
            mode: Mode::OnSite,
            appointment_ms: w.c.now + 1_000_000,
            doctor: receiving.public(),
        },
        RejectCode::NotPermitted,
        "party to neither side",
    );
    w.refused(
        &treating,
        C::AcceptReferral {
            referral_id: r6,
            mode: Mode::OnSite,
            appointment_ms: w.c.now + 1_000_000,
            doctor: receiving.public(),
        },
        RejectCode::NotPermitted,
        "the requester may not accept",
    );
    w.refused(
        &admin,
        C::AcceptReferral {
            referral_id: r6,
            mode: Mode::OnSite,
            appointment_ms: w.c.now - 1,
            doctor: receiving.public(),
        },
        RejectCode::InvalidArgument,
        "in the past",
    );
    w.refused(
        &admin,
        C::AcceptReferral {
            referral_id: r6,
            mode: Mode::OnSite,
            appointment_ms: w.c.now + 400 * 86_400_000,
            doctor: receiving.public(),
        },
        RejectCode::InvalidArgument,
        "a year ahead",
    );
    w.refused(
        &admin,
        C::AcceptReferral {
            referral_id: r6,
            mode: Mode::OnSite,
            appointment_ms: w.c.now + 1_000_000,
            doctor: stranger.public(),
        },
        RejectCode::InvalidArgument,
        "must work at",
    );
    w.refused(
        &admin,
        C::RejectReferral { referral_id: r6, reason: "  ".into() },
        RejectCode::InvalidArgument,
        "give a reason",
    );
    w.refused(&admin, C::StartReferral { referral_id: Hash([0x77; 32]) }, RejectCode::NotFound, "no referral");

    applied(&w.accept(&admin, 6));
    applied(&w.run(&colleague, C::StartReferral { referral_id: r6 }));
    // Only the receiving doctor completes, with a report they wrote, of the right type.
    let report = Hash([0xB2; 32]);
    applied(&w.c.one(&receiving, anchor(w.pid, report, REPORT_RESOURCE_TYPE)));
    w.refused(
        &colleague,
        C::CompleteReferral { referral_id: r6, report },
        RejectCode::NotPermitted,
        "only the receiving doctor",
    );
    w.refused(
        &receiving,
        C::CompleteReferral { referral_id: r6, report: w.records[0] },
        RejectCode::InvalidArgument,
        "must be a Composition",
    );
    w.refused(
        &receiving,
        C::CompleteReferral { referral_id: r6, report: Hash([0xEF; 32]) },
        RejectCode::NotFound,
        "no record",
    );
    w.refused(
        &admin,
        C::FailReferral { referral_id: r6, reason: "".into() },
        RejectCode::InvalidArgument,
        "give a reason",
    );
    applied(&w.run(&admin, C::FailReferral { referral_id: r6, reason: "video link down".into() }));
    w.refused(
        &patient,
        C::CancelReferral { referral_id: r6, reason: "late".into() },
        RejectCode::InvalidArgument,
        "a failed referral cannot cancel",
    );
    assert_eq!(care::stats(&w.c.state)[0].failed, 1);
    // Roles outside the table never reach the domain.
    let insurer = w.c.issue(Role::Insurer, 0, 99);
    assert_eq!(rejected(&w.run(&insurer, C::StartReferral { referral_id: r6 })), RejectCode::NotPermitted);
}

trait WithId {
    fn with_id(self, id: Hash) -> Self;
}
impl WithId for C {
    fn with_id(mut self, new: Hash) -> Self {
        if let C::ProposeReferral { referral_id, .. } = &mut self {
            *referral_id = new;
        }
        self
    }
}

mod monitoring {
    use super::common::{applied, rejected, Chain};
    use medledger_state::care::monitoring::{self as m, key};
    use medledger_state::identity;
    use medledger_state::store::StateRead;
    use medledger_types::care::{CareOp as C, RuleText};
    use medledger_types::{Hash, Keypair, Operation, Outcome, RejectCode, Role};

    const DEVICE: Hash = Hash([0xD1; 32]);

    struct W {
        c: Chain,
        pid: Hash,
        patient: Keypair,
        doctor: Keypair,
        on_call: Keypair,
        elsewhere: Keypair,
        node: Keypair,
        other_node: Keypair,
        device_key: Keypair,
    }

    fn w() -> W {
        let mut c = Chain::new();
        let patient = c.patient(10);
        let pid = identity::credential(&c.state, &patient.public()).unwrap().pseudonym.unwrap();
        let doctor = c.issue(Role::Doctor, 0, 30);
        let on_call = c.issue(Role::Doctor, 0, 31);
        let elsewhere = c.issue(Role::Doctor, 1, 32);
        let node = c.issue(Role::NodeService, 0, 33);
        let other_node = c.issue(Role::NodeService, 1, 34);
        W { c, pid, patient, doctor, on_call, elsewhere, node, other_node, device_key: Keypair::from_seed(35) }
    }

    impl W {
        fn run(&mut self, k: &Keypair, op: C) -> Outcome {
            self.c.one(k, Operation::Care(op))
        }
        fn keys(&self) -> Vec<Option<Vec<u8>>> {
            let mut ks = vec![
                key::device(&DEVICE),
                key::device_key(&self.device_key.public()),
                key::patient_devices(&self.pid),
                key::monitoring(&self.pid),
                key::on_call("hospital-0"),
                key::patient_alarms(&self.pid),
                key::doctor_alarms(&self.doctor.public()),
                key::doctor_alarms(&self.on_call.public()),
                key::doctor_patients(&self.doctor.public()),
                key::doctor_patients(&self.on_call.public()),
                key::doctor_patients(&self.elsewhere.public()),
            ];
            for i in 0..4u8 {
                ks.push(key::alarm(&Hash([i; 32])));
                ks.push(key::anchor(&DEVICE, i as u64));
            }
            ks.iter().map(|k| self.c.state.get(k)).collect()
        }
        fn refused(&mut self, k: &Keypair, op: C, code: RejectCode, needle: &str) {
            let before = self.keys();
            let out = self.run(k, op.clone());
            match &out {
                Outcome::Rejected { code: got, reason } => {
                    assert_eq!(*got, code, "{}: {reason}", op.kind().name());
                    assert!(reason.contains(needle), "{}: `{reason}` does not say `{needle}`", op.kind().name());
                }
                o => panic!("{} applied: {o:?}", op.kind().name()),
            }
            assert_eq!(self.keys(), before, "{} changed the state", op.kind().name());
        }
        fn register(&self) -> C {
            C::RegisterDevice {
                device_id: DEVICE,
                patient: self.pid,
                key: self.device_key.public(),
                model: "wrist pulse oximeter".into(),
            }
        }
        fn anchor(&self, first_ms: u64, last_ms: u64) -> C {
            C::AnchorReadings { device_id: DEVICE, first_ms, last_ms, count: 12, root: Hash([0xAA; 32]) }
        }
        fn alarm(&self, id: u8, cause: &str) -> C {
            C::RaiseAlarm {
                alarm_id: Hash([id; 32]),
                device_id: DEVICE,
                reading: Hash([0xBB; 32]),
                cause: cause.into(),
            }
        }
    }

    #[test]
    fn devices_report_and_alarms_are_acknowledged_or_escalated() {
        let mut w = w();
        let (doctor, elsewhere, node, other_node) =
            (w.doctor.clone(), w.elsewhere.clone(), w.node.clone(), w.other_node.clone());
        let (patient, on_call, admin) = (w.patient.clone(), w.on_call.clone(), w.c.admins[0].clone());
        // Registration: staff of the patient's institution only, a device's own key.
        let reg = w.register();
        w.refused(&elsewhere, reg.clone(), RejectCode::NotPermitted, "patient's institution");
        let mut person = reg.clone();
        if let C::RegisterDevice { key, .. } = &mut person {
            *key = doctor.public();
        }
        w.refused(&doctor, person, RejectCode::InvalidArgument, "not a person's credential key");
        applied(&w.run(&doctor, reg.clone()));
        w.refused(&doctor, reg, RejectCode::AlreadyExists, "already exists");
        let d = m::device_of_key(&w.c.state, &w.device_key.public()).unwrap();
        assert_eq!((d.patient, d.institution.as_str()), (w.pid, "hospital-0"));
        assert_eq!(m::devices_of(&w.c.state, &w.pid).len(), 1);

        // Anchors: the monitoring institution's node, intervals that never overlap.
        let now = w.c.now;
        applied(&w.run(&node, w.anchor(now - 60_000, now)));
        w.refused(&node, w.anchor(now - 30_000, now + 1_000), RejectCode::AlreadyExists, "already anchored");
        w.refused(&other_node, w.anchor(now + 1, now + 2), RejectCode::NotPermitted, "not by the signer's institution");
        w.refused(&node, w.anchor(now + 1, now + 3_600_000), RejectCode::InvalidArgument, "in the future");
        let a = m::anchor(&w.c.state, &DEVICE, 0).unwrap();
        assert_eq!((a.count, a.root), (12, Hash([0xAA; 32])));

        // Alarms need a responsible doctor; a rule cause must be one of the patient's rules.
        w.refused(&node, w.alarm(1, "news2 high"), RejectCode::InvalidArgument, "set the monitoring first");
        let set = C::SetMonitoring {
            patient: w.pid,
            spo2_scale: 2,
            rules: vec![RuleText("pulse>130".into())],
            escalate_after_ms: 60_000,
        };
        w.refused(&elsewhere, set.clone(), RejectCode::NotPermitted, "patient's institution");
        applied(&w.run(&doctor, set.clone()));
        assert_eq!(m::patients_of_doctor(&w.c.state, &doctor.public()), vec![w.pid]);
        let mon = m::monitoring(&w.c.state, &w.pid).unwrap();
        assert_eq!((mon.responsible, mon.spo2_scale, mon.rules[0].0.as_str()), (doctor.public(), 2, "pulse > 130"));
        w.refused(&node, w.alarm(1, "spo2 < 80"), RejectCode::InvalidArgument, "not one of the patient's rules");
        applied(&w.run(&node, w.alarm(1, "pulse > 130")));
        applied(&w.run(&node, w.alarm(2, "news2 high")));
        w.refused(&node, w.alarm(2, "news2 high"), RejectCode::AlreadyExists, "already exists");
        assert_eq!(m::alarms_of_doctor(&w.c.state, &doctor.public()).len(), 2);

        // Acknowledgement: the responsible doctor; no escalation afterwards.
        w.refused(
            &elsewhere,
            C::AcknowledgeAlarm { alarm_id: Hash([1; 32]) },
            RejectCode::NotPermitted,
            "only the responsible doctor",
        );
        applied(&w.run(&doctor, C::AcknowledgeAlarm { alarm_id: Hash([1; 32]) }));
        w.refused(
            &doctor,
            C::AcknowledgeAlarm { alarm_id: Hash([1; 32]) },
            RejectCode::AlreadyExists,
            "already acknowledged",
        );
        w.c.now += 120_000;
        w.refused(&node, C::EscalateAlarm { alarm_id: Hash([1; 32]) }, RejectCode::InvalidArgument, "was acknowledged");

        // Escalation: not before its time, not without an on-call doctor, not by another node.
        w.c.now -= 120_000;
        w.refused(&node, C::EscalateAlarm { alarm_id: Hash([2; 32]) }, RejectCode::InvalidArgument, "not yet");
        w.c.now += 120_000;
        w.refused(
            &node,
            C::EscalateAlarm { alarm_id: Hash([2; 32]) },
            RejectCode::InvalidArgument,
            "no on-call doctor",
        );
        w.refused(
            &admin,
            C::SetOnCall { doctor: elsewhere.public() },
            RejectCode::InvalidArgument,
            "must be a doctor of `hospital-0`",
        );
        applied(&w.run(&admin, C::SetOnCall { doctor: on_call.public() }));
        w.refused(
            &other_node,
            C::EscalateAlarm { alarm_id: Hash([2; 32]) },
            RejectCode::NotPermitted,
            "escalates its alarms",
        );
        applied(&w.run(&node, C::EscalateAlarm { alarm_id: Hash([2; 32]) }));
        w.refused(&node, C::EscalateAlarm { alarm_id: Hash([2; 32]) }, RejectCode::AlreadyExists, "already escalated");
        let a = m::alarm(&w.c.state, &Hash([2; 32])).unwrap();
        assert_eq!(a.escalated_to, Some(on_call.public()));
        assert_eq!(m::alarms_of_doctor(&w.c.state, &on_call.public()).len(), 1);
        applied(&w.run(&on_call, C::AcknowledgeAlarm { alarm_id: Hash([2; 32]) }));
        assert_eq!(m::alarm(&w.c.state, &Hash([2; 32])).unwrap().acknowledged_by, Some(on_call.public()));

        // Revocation: by the patient; the device's readings are refused from the next block.
        let stranger_patient = w.c.patient(12);
        w.refused(
            &stranger_patient,
            C::RevokeDevice { device_id: DEVICE },
            RejectCode::NotPermitted,
            "only the patient",
        );
        applied(&w.run(&patient, C::RevokeDevice { device_id: DEVICE }));
        let now = w.c.now;
        w.refused(&node, w.anchor(now, now + 1), RejectCode::NotPermitted, "revoked");
        w.refused(&node, w.alarm(3, "news2 high"), RejectCode::NotPermitted, "revoked");
        // Roles outside the table never reach the domain.
        assert_eq!(rejected(&w.run(&doctor, w.anchor(now + 10, now + 11))), RejectCode::NotPermitted);

        // Whoever sets the monitoring becomes responsible: the patient moves to their list,
        // once; setting it again changes no list.
        applied(&w.run(&on_call, set.clone()));
        assert!(m::patients_of_doctor(&w.c.state, &doctor.public()).is_empty());
        assert_eq!(m::patients_of_doctor(&w.c.state, &on_call.public()), vec![w.pid]);
        applied(&w.run(&on_call, set));
        assert_eq!(m::patients_of_doctor(&w.c.state, &on_call.public()), vec![w.pid]);
    }

    #[test]
    fn a_doctor_at_the_limit_of_monitored_patients_is_refused_and_nothing_changes() {
        use medledger_types::{IdentityOp, Transaction, Tx};
        const MAX: usize = m::MAX_PATIENTS_PER_DOCTOR;
        let mut w = w();
        let (doctor, on_call) = (w.doctor.clone(), w.on_call.clone());
        let set = |patient: Hash, scale: u32| C::SetMonitoring {
            patient,
            spo2_scale: scale,
            rules: vec![],
            escalate_after_ms: 60_000,
        };
        let signed = |c: &Chain, k: &Keypair, i: usize, op: Operation| {
            let nonce = medledger_state::nonce_of(&c.state, &k.public()) + i as u64;
            Tx::sign(Transaction { chain_id: "test-chain".into(), signer: k.public(), nonce, op }, k)
        };
        // MAX patients of the doctor's institution, then the doctor takes every one of them.
        let admin = w.c.admins[0].clone();
        let pids: Vec<Hash> = (0..MAX)
            .map(|i| medledger_types::patient_pseudonym(&[9; 32], &format!("L{i}"), &format!("M{i}")))
            .collect();
        let txs = pids
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                let op = Operation::Identity(IdentityOp::RegisterPatient {
                    subject: Keypair::from_seed(100_000 + i as u64).public(),
                    pseudonym: *pid,
                    valid_until_ms: u64::MAX / 2,
                });
                signed(&w.c, &admin, i, op)
            })
            .collect();
        assert!(w.c.block(txs).iter().all(|r| r.is_applied()));
        let txs =
            pids.iter().enumerate().map(|(i, pid)| signed(&w.c, &doctor, i, Operation::Care(set(*pid, 1)))).collect();
        assert!(w.c.block(txs).iter().all(|r| r.is_applied()));
        assert_eq!(m::patients_of_doctor(&w.c.state, &doctor.public()), pids, "every one, in order");

        // One more patient is refused, naming the limit, and nothing changes.
        w.refused(&doctor, set(w.pid, 1), RejectCode::InvalidArgument, &format!("{MAX} patients, the limit"));
        assert_eq!(m::monitoring(&w.c.state, &w.pid), None);
        // At the limit, the doctor still changes the settings of their own patients; another
        // doctor takes the refused patient.
        applied(&w.run(&doctor, set(pids[0], 2)));
        assert_eq!(m::monitoring(&w.c.state, &pids[0]).unwrap().spo2_scale, 2);
        assert_eq!(m::patients_of_doctor(&w.c.state, &doctor.public()).len(), MAX);
        applied(&w.run(&on_call, set(w.pid, 1)));
        assert_eq!(m::patients_of_doctor(&w.c.state, &on_call.public()), vec![w.pid]);
        // Handing one of theirs to a colleague frees a place.
        applied(&w.run(&on_call, set(pids[1], 1)));
        assert_eq!(m::patients_of_doctor(&w.c.state, &doctor.public()).len(), MAX - 1);
    }
}
