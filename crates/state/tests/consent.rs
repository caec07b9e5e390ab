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

/// Terms as a patient's client writes them: an institution consent covers the default roles for
/// its purpose (doctors for treatment).
fn terms(grantee: Grantee, actions: u8, scope: Scope, purpose: Purpose, expires_ms: Option<u64>) -> ConsentTerms {
    let roles = if matches!(grantee, Grantee::Institution(_)) { ConsentTerms::default_roles(purpose) } else { vec![] };
    ConsentTerms { grantee, actions, scope, purpose, expires_ms, roles }
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
            reason: sealed_for(&[p.public(), doc.public()]),
        }),
    ));
    assert_eq!(consent::request(&c.state, &Hash([7; 32])).unwrap().status, RequestStatus::Pending);
    // The reason is sealed for the patient, the requester and every regulator, or refused.
    let regulator = c.issue(Role::Regulator, 2, 40);
    for readers in [vec![doc.public()], vec![p.public(), doc.public()], vec![p.public(), regulator.public()]] {
        let out = c.one(
            &doc,
            Operation::Consent(ConsentOp::RequestAccess {
                request_id: Hash([9; 32]),
                patient: pid,
                terms: t.clone(),
                reason: sealed_for(&readers),
            }),
        );
        assert_eq!(rejected(&out), RejectCode::InvalidArgument, "sealed for {readers:?}");
    }
    assert!(consent::request(&c.state, &Hash([9; 32])).is_none());
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
            reason: Default::default(),
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
            reason: Default::default(),
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
    // Doctors claim treatment only; an institution consent covers doctors only when its
    // purpose is treatment (its default roles).
    let treatment = 0;
    if purpose != treatment {
        return false;
    }
    cs.iter().any(|(c, _granted, revoked)| {
        let who = if c.institution { doc_inst[doc] && c.purpose == treatment } else { c.to_doc == doc };
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

/// Issue a credential of `role` at hospital-1 and return its key.
fn staff(c: &mut Chain, role: Role, seed: u64) -> Keypair {
    c.issue(role, 1, seed)
}

#[test]
fn institution_consents_cover_only_the_roles_they_name_and_purposes_fit_roles() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let pid = pseudonym(&c, &p);
    let doc = staff(&mut c, Role::Doctor, 20);
    let pharm = staff(&mut c, Role::Pharmacy, 21);
    let insurer = staff(&mut c, Role::Insurer, 22);
    let researcher = staff(&mut c, Role::Researcher, 23);
    let other_patient = c.patient(24);
    // A consent to hospital-1 for treatment, roles left to the default: doctors only.
    applied(&c.one(
        &p,
        Operation::Consent(ConsentOp::GrantConsent {
            consent_id: Hash([1; 32]),
            terms: terms(Grantee::Institution("hospital-1".into()), action::READ, Scope::All, Purpose::Treatment, None),
        }),
    ));
    let h = c.height + 1;
    let may = |c: &Chain, k: &Keypair, purpose: Purpose| {
        permits(&c.state, &pid, &k.public(), obs(), action::READ, purpose, c.now, h)
    };
    assert_eq!(may(&c, &doc, Purpose::Treatment).unwrap(), Hash([1; 32]));
    // Everyone else registered at hospital-1 is outside it, whatever purpose they claim.
    for (k, purpose) in [
        (&pharm, Purpose::Treatment),
        (&insurer, Purpose::Treatment),
        (&insurer, Purpose::Insurance),
        (&researcher, Purpose::Research),
        (&other_patient, Purpose::Treatment),
    ] {
        assert_eq!(may(&c, k, purpose).unwrap_err().code, RejectCode::NotPermitted, "{purpose:?}");
    }
    // Naming pharmacists as well covers them too.
    let mut t = terms(Grantee::Institution("hospital-1".into()), action::READ, Scope::All, Purpose::Treatment, None);
    t.roles = vec![Role::Doctor, Role::Pharmacy];
    applied(&c.one(&p, Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([2; 32]), terms: t })));
    assert_eq!(may(&c, &pharm, Purpose::Treatment).unwrap(), Hash([2; 32]));
    // A purpose must fit the requester's role, even under a consent to that person: an insurer
    // granted "treatment" by mistake still cannot claim it.
    let mut t = terms(Grantee::Person(insurer.public()), action::READ, Scope::All, Purpose::Treatment, None);
    applied(&c.one(&p, Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([3; 32]), terms: t.clone() })));
    let err = may(&c, &insurer, Purpose::Treatment).unwrap_err();
    assert_eq!(err.code, RejectCode::NotPermitted);
    assert!(err.reason.contains("insurer cannot claim the purpose treatment"), "{}", err.reason);
    // Nor can an insurer ask for it.
    t.purpose = Purpose::Treatment;
    let out = c.one(
        &insurer,
        Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([4; 32]),
            patient: pid,
            terms: t,
            reason: Default::default(),
        }),
    );
    assert_eq!(rejected(&out), RejectCode::NotPermitted);
    // Terms that name no roles, a patient, a repeated role, or a role the purpose does not fit
    // are refused, and so are roles on a consent to a person.
    let bad_roles: [(Grantee, Vec<Role>, &str); 5] = [
        (Grantee::Institution("hospital-1".into()), vec![], "must name the roles"),
        (Grantee::Institution("hospital-1".into()), vec![Role::Patient], "cannot cover patients"),
        (Grantee::Institution("hospital-1".into()), vec![Role::Doctor, Role::Doctor], "must not repeat"),
        (Grantee::Institution("hospital-1".into()), vec![Role::Insurer], "insurer cannot act for treatment"),
        (Grantee::Person(doc.public()), vec![Role::Doctor], "names no roles"),
    ];
    for (i, (grantee, roles, why)) in bad_roles.into_iter().enumerate() {
        let mut t = terms(grantee, action::READ, Scope::All, Purpose::Treatment, None);
        t.roles = roles;
        let out =
            c.one(&p, Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([50 + i as u8; 32]), terms: t }));
        match out {
            medledger_types::Outcome::Rejected { code, reason } => {
                assert_eq!(code, RejectCode::InvalidArgument);
                assert!(reason.contains(why), "{reason} should say {why}");
            }
            o => panic!("expected a rejection for {why}, got {o:?}"),
        }
    }
}

#[test]
fn one_requester_cannot_fill_a_patients_request_queue() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let pid = pseudonym(&c, &p);
    let nosy = staff(&mut c, Role::Researcher, 20);
    let doc = staff(&mut c, Role::Doctor, 21);
    let ask = |c: &mut Chain, k: &Keypair, id: u8, purpose: Purpose| {
        let t = terms(Grantee::Person(k.public()), action::READ, Scope::All, purpose, None);
        c.one(
            k,
            Operation::Consent(ConsentOp::RequestAccess {
                request_id: Hash([id; 32]),
                patient: pid,
                terms: t,
                reason: Default::default(),
            }),
        )
    };
    for i in 0..consent::MAX_PENDING_REQUESTS_PER_REQUESTER {
        applied(&ask(&mut c, &nosy, i as u8 + 1, Purpose::Research));
    }
    let out = ask(&mut c, &nosy, 200, Purpose::Research);
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    // Others can still ask.
    applied(&ask(&mut c, &doc, 201, Purpose::Treatment));
    assert_eq!(consent::pending_requests(&c.state, &pid).len(), consent::MAX_PENDING_REQUESTS_PER_REQUESTER + 1);
    // Once the patient answers one, the requester may ask again.
    applied(&c.one(&p, Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([1; 32]), approve: false })));
    applied(&ask(&mut c, &nosy, 202, Purpose::Research));
}

#[test]
fn only_active_consents_count_toward_the_cap() {
    let mut c = Chain::new();
    let p = c.patient(10);
    let pid = pseudonym(&c, &p);
    let doc = staff(&mut c, Role::Doctor, 20);
    let id = |i: usize| {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        Hash(h)
    };
    let grant = |c: &Chain, i: usize| {
        c.tx(
            &p,
            Operation::Consent(ConsentOp::GrantConsent {
                consent_id: id(i),
                terms: terms(Grantee::Person(doc.public()), action::READ, Scope::All, Purpose::Treatment, None),
            }),
        )
    };
    // Fill the cap, one block of grants at a time (nonces are consecutive within a block).
    let cap = consent::MAX_CONSENTS_PER_PATIENT;
    let mut granted = 0;
    while granted < cap {
        let n = (cap - granted).min(500);
        let mut txs = Vec::with_capacity(n);
        let base = medledger_state::nonce_of(&c.state, &p.public());
        for i in granted..granted + n {
            let op = grant(&c, i).body().op.clone();
            let nonce = base + (i - granted) as u64;
            txs.push(medledger_types::Tx::sign(
                medledger_types::Transaction { chain_id: "test-chain".into(), signer: p.public(), nonce, op },
                &p,
            ));
        }
        for r in c.block(txs) {
            applied(&r.outcome);
        }
        granted += n;
    }
    assert_eq!(consent::active_consents(&c.state, &pid).len(), cap);
    // Full of active consents: one more is refused.
    let out = c.block(vec![grant(&c, cap)]).remove(0).outcome;
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    // Revoke two: a new grant is accepted, and the revoked ones move to the past list, still
    // listed and readable by id.
    applied(&c.one(&p, Operation::Consent(ConsentOp::RevokeConsent { consent_id: id(0) })));
    applied(&c.one(&p, Operation::Consent(ConsentOp::RevokeConsent { consent_id: id(1) })));
    applied(&c.block(vec![grant(&c, cap)]).remove(0).outcome);
    assert_eq!(consent::active_consents(&c.state, &pid).len(), cap - 1);
    let all = consent::consents_of(&c.state, &pid);
    assert_eq!(all.len(), cap + 1);
    assert_eq!((all[0].id, all[1].id), (id(0), id(1)), "past consents come first");
    assert!(all[0].revoked_at_height.is_some());
    assert!(consent::consent(&c.state, &id(0)).is_some());
    // The permission check still finds the new one.
    assert!(
        permits(&c.state, &pid, &doc.public(), obs(), action::READ, Purpose::Treatment, c.now, c.height + 1).is_ok()
    );
}
