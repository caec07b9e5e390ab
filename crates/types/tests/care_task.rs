//! The referral workflow (`care::task`) against a reference model: the workflow's edges and who
//! may take each, written out as a table, and random sequences of requests checked against it.

use medledger_types::care::task::{transition, Action, Party, TaskError, TaskStatus, MAX_REASON_BYTES};
use medledger_types::Hash;
use proptest::prelude::*;
use TaskStatus::*;

/// The reference: (from, action, party who may take it, to). Everything else is refused.
const EDGES: &[(TaskStatus, &str, Party, TaskStatus)] = &[
    (Requested, "accept", Party::Fulfiller, Accepted),
    (Requested, "reject", Party::Fulfiller, Rejected),
    (Requested, "cancel", Party::Requester, Cancelled),
    (Accepted, "start", Party::Fulfiller, InProgress),
    (Accepted, "cancel", Party::Requester, Cancelled),
    (InProgress, "complete", Party::Fulfiller, Completed),
    (InProgress, "fail", Party::Fulfiller, Failed),
    (InProgress, "cancel", Party::Requester, Cancelled),
];

fn reference(from: TaskStatus, party: Party, action: &Action) -> Option<TaskStatus> {
    let complete = match action {
        Action::Reject { reason } | Action::Fail { reason } | Action::Cancel { reason } => {
            !reason.trim().is_empty() && reason.len() <= MAX_REASON_BYTES
        }
        Action::Complete { output } => *output != Hash::ZERO,
        Action::Accept | Action::Start => true,
    };
    EDGES.iter().find(|(f, a, p, _)| *f == from && *a == action.name() && *p == party && complete).map(|e| e.3)
}

fn action() -> impl Strategy<Value = Action> {
    let reason = prop_oneof![Just(String::new()), Just("  ".to_string()), Just("no beds".to_string())];
    prop_oneof![
        Just(Action::Accept),
        Just(Action::Start),
        reason.clone().prop_map(|reason| Action::Reject { reason }),
        reason.clone().prop_map(|reason| Action::Fail { reason }),
        reason.prop_map(|reason| Action::Cancel { reason }),
        prop_oneof![Just(Hash::ZERO), Just(Hash([7; 32]))].prop_map(|output| Action::Complete { output }),
    ]
}

fn party() -> impl Strategy<Value = Party> {
    prop_oneof![Just(Party::Requester), Just(Party::Fulfiller), Just(Party::Other)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn the_workflow_follows_the_reference(steps in prop::collection::vec((party(), action()), 1..24)) {
        let mut status = Requested;
        for (party, action) in steps {
            let got = transition(status, party, &action);
            let want = reference(status, party, &action);
            prop_assert_eq!(got.clone().ok(), want, "{} by {:?} from {}: {:?}", action.name(), party, status, got);
            if status.is_terminal() {
                prop_assert!(got.is_err(), "a terminal state never changes");
            }
            if let Ok(next) = got {
                status = next;
            }
        }
    }
}

#[test]
fn every_state_and_action_pair_matches_the_table() {
    let actions = [
        Action::Accept,
        Action::Start,
        Action::Reject { reason: "r".into() },
        Action::Fail { reason: "r".into() },
        Action::Cancel { reason: "r".into() },
        Action::Complete { output: Hash([1; 32]) },
    ];
    let mut allowed = 0;
    for from in TaskStatus::ALL {
        for a in &actions {
            for p in [Party::Requester, Party::Fulfiller, Party::Other] {
                let got = transition(from, p, a).ok();
                assert_eq!(got, reference(from, p, a), "{} by {p:?} from {from}", a.name());
                allowed += got.is_some() as usize;
            }
        }
    }
    assert_eq!(allowed, EDGES.len(), "each edge is taken by exactly one party");
}

#[test]
fn refusals_say_why() {
    let e = transition(Completed, Party::Fulfiller, &Action::Start).unwrap_err();
    assert_eq!(e.to_string(), "a completed referral cannot start");
    let e = transition(Requested, Party::Requester, &Action::Accept).unwrap_err();
    assert_eq!(e.to_string(), "the requester may not accept a referral; only the receiving institution may");
    let e = transition(Accepted, Party::Fulfiller, &Action::Cancel { reason: "x".into() }).unwrap_err();
    assert!(matches!(e, TaskError::NotYours { party: Party::Fulfiller, .. }), "{e}");
    assert_eq!(e.to_string(), "the receiving institution may not cancel a referral; only the requester may");
    let e = transition(Requested, Party::Fulfiller, &Action::Reject { reason: " ".into() }).unwrap_err();
    assert_eq!(e.to_string(), "to reject a referral, give a reason");
    let e = transition(InProgress, Party::Fulfiller, &Action::Complete { output: Hash::ZERO }).unwrap_err();
    assert_eq!(e, TaskError::NeedsOutput);
    let long = "x".repeat(MAX_REASON_BYTES + 1);
    let e = transition(InProgress, Party::Fulfiller, &Action::Fail { reason: long }).unwrap_err();
    assert_eq!(e, TaskError::ReasonTooLong { bytes: MAX_REASON_BYTES + 1 });
}
