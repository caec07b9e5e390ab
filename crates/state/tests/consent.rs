//! Patient consent through `execute_block`, and a property test of `consent::permits` against a
//! simple reference model over random consents × time × revocations.

mod common;

use common::*;
use medledger_state::consent::{self, permits, RecordRef, RequestStatus};
use medledger_state::identity;
use medledger_types::{action, ConsentTerms, Grantee, Hash, Keypair, Operation, Purpose, RejectCode, Role, Scope};
use medledger_types::{ConsentOp, IdentityOp};
use proptest::prelude::*;

fn pseudonym(c: &Chain, k: &Keypair) -> Hash {
    identity::credential(&c.state, &k.public()).unwrap().pseudonym.unwrap()
}

fn terms(grantee: Grantee, actions: u8, scope: Scope, purpose: Purpose, expires_ms: Option<u64>) -> ConsentTerms {
    ConsentTerms { grantee, actions, scope, purpose, expires_ms }
}

const REC: Hash = Hash([0xAA; 32]);

fn obs() -> RecordRef<'static> {
    RecordRef { id: &REC, resource_type: "Observation" }
}

#[test]
fn grant_read_revoke_and_expiry() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let pid = pseudonym(&c, &p);
    let doc_b = c.issue(Role::Doctor, 1, 20);
    let read = |c: &Chain| {
        permits(&c.state, &pid, &doc_b.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1)
    };
    assert_eq!(read(&c).unwrap_err().code, RejectCode::NotPermitted);

    let expires = c.now + 10_000;
    applied(&c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([1; 32]),
            terms: terms(
                Grantee::Person(doc_b.public()),
                action::READ,
                Scope::ResourceTypes(vec!["Observation".into()]),
                Purpose::Treatment,
                Some(expires),
            ),
        }),
    ));
    assert_eq!(read(&c).unwrap(), Hash([1; 32]));
    // Other purposes, actions, resource types and people stay denied.
    assert!(permits(&c.state, &pid, &doc_b.public(), obs(), action::WRITE, Purpose::Treatment, c.now, c.height + 1)
        .is_err());
    assert!(
        permits(&c.state, &pid, &doc_b.public(), obs(), action::READ, Purpose::Research, c.now, c.height + 1).is_err()
    );
    let cond = RecordRef { id: &REC, resource_type: "Condition" };
    assert!(
        permits(&c.state, &pid, &doc_b.public(), cond, action::READ, Purpose::Treatment, c.now, c.height + 1).is_err()
    );
    let other = c.issue(Role::Doctor, 1, 21);
    assert!(
        permits(&c.state, &pid, &other.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1).is_err()
    );

    // Expiry denies.
    assert!(permits(&c.state, &pid, &doc_b.public(), obs(), action::READ, Purpose::Treatment, expires, c.height + 1)
        .is_err());

    // Revocation denies from the next block; only the patient can revoke.
    assert_eq!(
        rejected(&c.one(&other, Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([1; 32]) }))),
        RejectCode::NotPermitted
    );
    applied(&c.one(&p, Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([1; 32]) })));
    assert!(
        permits(&c.state, &pid, &doc_b.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height).is_ok(),
        "still in force in the revoking block"
    );
    assert_eq!(read(&c).unwrap_err().code, RejectCode::NotPermitted);
    assert_eq!(
        rejected(&c.one(&p, Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([1; 32]) }))),
        RejectCode::AlreadyExists
    );
}

#[test]
fn institution_grants_cover_its_staff_and_revoked_credentials_deny() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let pid = pseudonym(&c, &p);
    let doc_b = c.issue(Role::Doctor, 1, 20);
    let doc_c = c.issue(Role::Doctor, 2, 21);
    applied(&c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([2; 32]),
            terms: terms(Grantee::Institution("hospital-1".into()), action::ALL, Scope::All, Purpose::Treatment, None),
        }),
    ));
    let h = c.height + 1;
    assert!(permits(&c.state, &pid, &doc_b.public(), obs(), action::WRITE, Purpose::Treatment, c.now, h).is_ok());
    assert!(permits(&c.state, &pid, &doc_c.public(), obs(), action::READ, Purpose::Treatment, c.now, h).is_err());
    let ca = c.ca.clone();
    applied(&c.one(
        &ca,
        Operation::Identity(IdentityOp::RevokeCredential { subject: doc_b.public(), reason: "left".into() }),
    ));
    let err = permits(&c.state, &pid, &doc_b.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1)
        .unwrap_err();
    assert_eq!(err.code, RejectCode::CredentialRevoked);
    // Unknown institutions and already-expired grants are refused.
    let out = c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([3; 32]),
            terms: terms(Grantee::Institution("nowhere".into()), action::READ, Scope::All, Purpose::Audit, None),
        }),
    );
    assert_eq!(rejected(&out), RejectCode::NotFound);
    let out = c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([4; 32]),
            terms: terms(Grantee::Person(doc_c.public()), action::READ, Scope::All, Purpose::Audit, Some(1)),
        }),
    );
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    let out = c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([5; 32]),
            terms: terms(Grantee::Person(doc_c.public()), 0, Scope::All, Purpose::Audit, None),
        }),
    );
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
}

#[test]
fn access_requests_are_approved_or_declined_by_the_patient() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let p2 = c.patient(11);
    let pid = pseudonym(&c, &p);
    let doc = c.issue(Role::Doctor, 1, 20);
    let t = terms(Grantee::Person(doc.public()), action::READ, Scope::Records(vec![REC]), Purpose::Treatment, None);
    applied(&c.one(
        &doc,
        Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([7; 32]),
            patient: pid,
            terms: t.clone(),
            reason: "referral".into(),
        }),
    ));
    assert_eq!(consent::request(&c.state, &Hash([7; 32])).unwrap().status, RequestStatus::Pending);
    let pending: Vec<Hash> = consent::pending_requests(&c.state, &pid).iter().map(|r| r.id).collect();
    assert_eq!(pending, vec![Hash([7; 32])]);
    assert!(
        permits(&c.state, &pid, &doc.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1).is_err()
    );
    // Requests for someone else are refused; another patient cannot answer.
    let other = c.issue(Role::Doctor, 1, 22);
    let out = c.one(
        &other,
        Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([8; 32]),
            patient: pid,
            terms: t.clone(),
            reason: String::new(),
        }),
    );
    assert_eq!(rejected(&out), RejectCode::NotPermitted);
    assert_eq!(
        rejected(
            &c.one(&p2, Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([7; 32]), approve: true }))
        ),
        RejectCode::NotPermitted
    );
    applied(&c.one(&p, Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([7; 32]), approve: true })));
    assert!(consent::pending_requests(&c.state, &pid).is_empty(), "an answered request is no longer pending");
    assert_eq!(
        permits(&c.state, &pid, &doc.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1).unwrap(),
        Hash([7; 32])
    );
    assert_eq!(
        rejected(
            &c.one(&p, Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([7; 32]), approve: false }))
        ),
        RejectCode::AlreadyExists
    );
    // A declined request grants nothing.
    let t2 = terms(Grantee::Person(doc.public()), action::WRITE, Scope::All, Purpose::Treatment, None);
    applied(&c.one(
        &doc,
        Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([9; 32]),
            patient: pid,
            terms: t2,
            reason: String::new(),
        }),
    ));
    applied(&c.one(&p, Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([9; 32]), approve: false })));
    assert_eq!(consent::request(&c.state, &Hash([9; 32])).unwrap().status, RequestStatus::Declined);
    assert!(
        permits(&c.state, &pid, &doc.public(), obs(), action::WRITE, Purpose::Treatment, c.now, c.height + 1).is_err()
    );
    assert_eq!(consent::consents_of(&c.state, &pid).len(), 1);
}

/// A consent in the reference model: plain data, checked by brute force.
#[derive(Clone, Debug)]
struct RefConsent {
    to_doc: usize,
    institution: bool,
    actions: u8,
    scope: u8, // 0 all, 1 Observation only, 2 REC only
    purpose: usize,
    expires: Option<u64>,
    revoke_after_block: Option<usize>,
}

#[allow(clippy::too_many_arguments)] // the reference model takes every input of `permits` explicitly
fn model_allows(
    cs: &[(RefConsent, u64, Option<u64>)],
    doc: usize,
    doc_inst: &[bool],
    rtype_obs: bool,
    rec_is_rec: bool,
    act: u8,
    purpose: usize,
    now: u64,
    height: u64,
) -> bool {
    cs.iter().any(|(c, _granted, revoked)| {
        let who = if c.institution { doc_inst[doc] } else { c.to_doc == doc };
        let scope = match c.scope {
            0 => true,
            1 => rtype_obs,
            _ => rec_is_rec,
        };
        let live = revoked.is_none_or(|r| r >= height) && c.expires.is_none_or(|e| now < e);
        who && scope && live && c.actions & act == act && c.purpose == purpose
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn permits_matches_reference_model(
        consents in proptest::collection::vec(
            (0usize..3, any::<bool>(), 1u8..4, 0u8..3, 0usize..4, proptest::option::of(1u64..40), proptest::option::of(0usize..6)),
            0..6),
        queries in proptest::collection::vec((0usize..3, any::<bool>(), any::<bool>(), 1u8..3, 0usize..4, 0u64..45), 1..12),
    ) {
        let mut c = Chain::new();
        let p = c.patient(10);
        let pid = pseudonym(&c, &p);
        // Doctors 0 and 1 at hospital-1 (the institution grantee), doctor 2 at hospital-2.
        let docs = [c.issue(Role::Doctor, 1, 30), c.issue(Role::Doctor, 1, 31), c.issue(Role::Doctor, 2, 32)];
        let doc_inst = [true, true, false];
        let base_now = c.now;
        let mut granted: Vec<(RefConsent, u64, Option<u64>)> = Vec::new();
        for (i, (to_doc, institution, actions, scope, purpose, expires, revoke_after)) in consents.iter().enumerate() {
            let rc = RefConsent {
                to_doc: *to_doc, institution: *institution, actions: *actions, scope: *scope, purpose: *purpose,
                expires: expires.map(|e| base_now + e * 1000), revoke_after_block: *revoke_after,
            };
            let grantee = if rc.institution { Grantee::Institution("hospital-1".into()) } else { Grantee::Person(docs[rc.to_doc].public()) };
            let sc = match rc.scope { 0 => Scope::All, 1 => Scope::ResourceTypes(vec!["Observation".into()]), _ => Scope::Records(vec![REC]) };
            let out = c.one(&p, Operation::Consent(ConsentOp::GrantConsent {
                consent_id: Hash([100 + i as u8; 32]),
                terms: terms(grantee, rc.actions, sc, Purpose::ALL[rc.purpose], rc.expires),
            }));
            if rc.expires.is_some_and(|e| e <= c.now) {
                prop_assert_eq!(rejected(&out), RejectCode::InvalidArgument);
                continue;
            }
            applied(&out);
            granted.push((rc, c.height, None));
        }
        // Revoke some, in later blocks.
        for step in 0..6usize {
            for (i, g) in granted.clone().iter().enumerate() {
                if g.0.revoke_after_block == Some(step) && g.2.is_none() {
                    let id = consent::consents_of(&c.state, &pid)[i].id;
                    applied(&c.one(&p, Operation::Consent(ConsentOp::RevokeConsent { consent_id: id })));
                    granted[i].2 = Some(c.height);
                }
            }
        }
        for (doc, obs_type, is_rec, act, purpose, dt) in queries {
            let now = base_now + dt * 1000;
            let other = Hash([0xBB; 32]);
            let rec = RecordRef { id: if is_rec { &REC } else { &other }, resource_type: if obs_type { "Observation" } else { "Condition" } };
            let want = model_allows(&granted, doc, &doc_inst, obs_type, is_rec, act, purpose, now, c.height + 1);
            let got = permits(&c.state, &pid, &docs[doc].public(), rec, act, Purpose::ALL[purpose], now, c.height + 1).is_ok();
            prop_assert_eq!(got, want, "doc {} act {} purpose {} now+{}s", doc, act, purpose, dt);
        }
    }
}
