//! Identity module behaviour through `execute_block`, including every disallowed cell of the
//! permission table.

mod common;

use common::*;
use medledger_state::{allowed, execute_block, identity, nonce_of, precheck, BlockEnv, Principal};
use medledger_types::{AuditOp, ConsentOp, IdentityOp, RecordsOp};
use medledger_types::{CredentialSpec, Hash, Keypair, OpKind, Operation, Outcome, RejectCode, Role, Transaction, Tx};

fn attest(n: u8) -> Operation {
    Operation::Identity(IdentityOp::Attest { digest: Hash([n; 32]), label: "doc".into() })
}

#[test]
fn ca_issues_and_holder_acts() {
    let mut c = Chain::new();
    let doc = c.issue(Role::Doctor, 1, 1);
    assert!(matches!(c.one(&doc, attest(1)), Outcome::Applied { .. }));
    let cred = identity::credential(&c.state, &doc.public()).unwrap();
    assert_eq!(cred.institution, "hospital-1");
    assert_eq!(identity::attestation(&c.state, &Hash([1; 32])).unwrap().attester, doc.public());
    // The same digest cannot be attested twice.
    assert_eq!(rejected(&c.one(&doc, attest(1))), RejectCode::AlreadyExists);
}

#[test]
fn replayed_nonce_is_rejected_and_spends_nothing() {
    let mut c = Chain::new();
    let doc = c.issue(Role::Doctor, 1, 1);
    let tx = c.tx(&doc, attest(2));
    assert!(matches!(c.block(vec![tx.clone()])[0].outcome, Outcome::Applied { .. }));
    let before = nonce_of(&c.state, &doc.public());
    assert_eq!(rejected(&c.block(vec![tx.clone()])[0].outcome), RejectCode::BadNonce);
    assert_eq!(nonce_of(&c.state, &doc.public()), before);
    let p = precheck(&c.state, "test-chain", c.now, c.height, &tx).unwrap_err();
    assert_eq!(p.code, RejectCode::BadNonce);
}

#[test]
fn unknown_signer_and_wrong_chain() {
    let mut c = Chain::new();
    let stranger = Keypair::from_seed(77);
    assert_eq!(rejected(&c.one(&stranger, attest(3))), RejectCode::UnknownSigner);
    assert_eq!(nonce_of(&c.state, &stranger.public()), 0, "unknown signers write nothing");
    let doc = c.issue(Role::Doctor, 1, 1);
    let tx = Tx::sign(Transaction { chain_id: "other".into(), signer: doc.public(), nonce: 0, op: attest(4) }, &doc);
    assert_eq!(precheck(&c.state, "test-chain", c.now, c.height, &tx).unwrap_err().code, RejectCode::WrongChain);
    assert_eq!(rejected(&c.block(vec![tx])[0].outcome), RejectCode::WrongChain);
}

#[test]
fn revocation_takes_effect_from_the_next_block() {
    let mut c = Chain::new();
    let doc = c.issue(Role::Doctor, 1, 1);
    let ca = c.ca.clone();
    let revoke =
        c.tx(&ca, Operation::Identity(IdentityOp::RevokeCredential { subject: doc.public(), reason: "left".into() }));
    let same_block = c.tx(&doc, attest(5));
    let r = c.block(vec![revoke, same_block]);
    assert!(matches!(r[0].outcome, Outcome::Applied { .. }));
    assert!(matches!(r[1].outcome, Outcome::Applied { .. }), "still valid within the revoking block");
    assert_eq!(rejected(&c.one(&doc, attest(6))), RejectCode::CredentialRevoked);
}

#[test]
fn expired_and_not_yet_valid_credentials_are_rejected() {
    let mut c = Chain::new();
    let ca = c.ca.clone();
    let k = Keypair::from_seed(5);
    let out = c.one(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: k.public(),
                role: Role::Regulator,
                institution: "hospital-0".into(),
                display_name: "Inspector".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + 3_000,
            },
        }),
    );
    assert!(matches!(out, Outcome::Applied { .. }));
    c.now += 10_000;
    assert_eq!(rejected(&c.one(&k, attest(7))), RejectCode::CredentialExpired);

    let later = Keypair::from_seed(6);
    let out = c.one(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: later.public(),
                role: Role::Doctor,
                institution: "hospital-0".into(),
                display_name: "Future".into(),
                valid_from_ms: c.now + 100 * DAY,
                valid_until_ms: c.now + 200 * DAY,
            },
        }),
    );
    assert!(matches!(out, Outcome::Applied { .. }));
    assert_eq!(rejected(&c.one(&later, attest(8))), RejectCode::CredentialNotYetValid);
}

#[test]
fn admins_revoke_only_within_their_institution() {
    let mut c = Chain::new();
    let doc0 = c.issue(Role::Doctor, 0, 10);
    let doc1 = c.issue(Role::Doctor, 1, 11);
    let admin0 = c.admins[0].clone();
    let out = c
        .one(&admin0, Operation::Identity(IdentityOp::RevokeCredential { subject: doc1.public(), reason: "x".into() }));
    assert_eq!(rejected(&out), RejectCode::NotPermitted);
    let out = c
        .one(&admin0, Operation::Identity(IdentityOp::RevokeCredential { subject: doc0.public(), reason: "x".into() }));
    assert!(matches!(out, Outcome::Applied { .. }));
}

#[test]
fn the_regulator_list_follows_credentials_and_is_bounded() {
    use medledger_types::limits::MAX_REGULATORS;
    let mut c = Chain::new();
    let regs: Vec<Keypair> = (0..MAX_REGULATORS as u64).map(|i| c.issue(Role::Regulator, 0, 100 + i)).collect();
    c.issue(Role::Doctor, 0, 99);
    let listed = identity::regulators(&c.state, c.now, c.height + 1);
    assert_eq!(listed, regs.iter().map(|k| k.public()).collect::<Vec<_>>(), "only regulators, in issue order");
    // One more regulator is refused: every sealed reason is sealed for each of them.
    let extra = Keypair::from_seed(200);
    let spec = |k: &Keypair| CredentialSpec {
        subject: k.public(),
        role: Role::Regulator,
        institution: "hospital-0".into(),
        display_name: "regulator".into(),
        valid_from_ms: T0,
        valid_until_ms: T0 + 365 * DAY,
    };
    let ca = c.ca.clone();
    let out = c.one(&ca, Operation::Identity(IdentityOp::IssueCredential { spec: spec(&extra) }));
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
    assert!(identity::credential(&c.state, &extra.public()).is_none(), "the refused credential was not stored");
    // A revoked regulator leaves the list and makes room.
    applied(&c.one(
        &ca,
        Operation::Identity(IdentityOp::RevokeCredential { subject: regs[0].public(), reason: "retired".into() }),
    ));
    assert!(!identity::regulators(&c.state, c.now, c.height + 1).contains(&regs[0].public()));
    applied(&c.one(&ca, Operation::Identity(IdentityOp::IssueCredential { spec: spec(&extra) })));
    assert!(identity::regulators(&c.state, c.now, c.height + 1).contains(&extra.public()));
}

#[test]
fn a_patient_key_is_rotated_by_the_patient_or_recovered_by_their_institution() {
    use medledger_types::identity::rotation_message;
    use medledger_types::Signature;
    let mut c = Chain::new();
    let patient = c.patient(10);
    let pid = identity::credential(&c.state, &patient.public()).unwrap().pseudonym.unwrap();
    let chain_id = c.genesis.chain_id.clone();
    let rotate = |old: &Keypair, new: &Keypair| {
        let msg = rotation_message(&chain_id, &pid, &old.public(), &new.public());
        Operation::Identity(IdentityOp::RotatePatientKey {
            pseudonym: pid,
            new_key: new.public(),
            proof: new.sign(medledger_types::hash::domain::KEY_ROTATION_SIGNATURE, &msg),
        })
    };
    // The patient rotates to a new device's key, which proves possession.
    let k2 = Keypair::from_seed(11);
    let op = rotate(&patient, &k2);
    applied(&c.one(&patient, op));
    assert_eq!(identity::patient_key(&c.state, &pid), Some(k2.public()));
    let old = identity::credential(&c.state, &patient.public()).unwrap();
    assert!(old.revoked.is_some(), "the old key's credential is revoked");
    let new = identity::credential(&c.state, &k2.public()).unwrap();
    assert_eq!((new.role, new.pseudonym, new.institution.as_str()), (Role::Patient, Some(pid), "hospital-0"));
    // The old key can do nothing from the next block.
    let k3 = Keypair::from_seed(12);
    let op = rotate(&patient, &k3);
    assert_eq!(rejected(&c.one(&patient, op)), RejectCode::CredentialRevoked);

    // Lost key: the patient's institution recovers them to a new key. Without the new key's
    // proof, with another institution's admin, or to a key already in use: refused.
    let bad_proof = Operation::Identity(IdentityOp::RotatePatientKey {
        pseudonym: pid,
        new_key: k3.public(),
        proof: Signature([7; 64]),
    });
    let admin0 = c.admins[0].clone();
    let admin1 = c.admins[1].clone();
    assert_eq!(rejected(&c.one(&admin0, bad_proof)), RejectCode::BadSignature);
    let op = rotate(&k2, &k3);
    assert_eq!(rejected(&c.one(&admin1, op)), RejectCode::NotPermitted);
    let doctor = c.issue(Role::Doctor, 0, 30);
    let op = rotate(&k2, &doctor);
    assert_eq!(rejected(&c.one(&admin0, op)), RejectCode::AlreadyExists);
    let other = c.patient(13);
    let op = rotate(&k2, &k3);
    assert_eq!(rejected(&c.one(&other, op)), RejectCode::NotPermitted, "a patient rotates only their own key");
    assert_eq!(identity::patient_key(&c.state, &pid), Some(k2.public()), "nothing changed");
    let op = rotate(&k2, &k3);
    applied(&c.one(&admin0, op));
    assert_eq!(identity::patient_key(&c.state, &pid), Some(k3.public()));
    // The CA may recover too.
    let k4 = Keypair::from_seed(14);
    let ca = c.ca.clone();
    let op = rotate(&k3, &k4);
    applied(&c.one(&ca, op));
    assert_eq!(identity::patient_key(&c.state, &pid), Some(k4.public()));
}

#[test]
fn patients_are_pseudonymous_and_unique() {
    let mut c = Chain::new();
    let p = c.patient(50);
    let cred = identity::credential(&c.state, &p.public()).unwrap();
    assert_eq!(cred.role, Role::Patient);
    assert!(cred.display_name.is_empty());
    let pseudonym = cred.pseudonym.unwrap();
    assert_eq!(identity::patient_key(&c.state, &pseudonym), Some(p.public()));
    // Same pseudonym for another key is refused.
    let admin = c.admins[0].clone();
    let out = c.one(
        &admin,
        Operation::Identity(IdentityOp::RegisterPatient {
            subject: Keypair::from_seed(51).public(),
            pseudonym,
            valid_until_ms: T0 + DAY * 400,
        }),
    );
    assert_eq!(rejected(&out), RejectCode::AlreadyExists);
    // The CA cannot issue a patient credential by name.
    let ca = c.ca.clone();
    let out = c.one(
        &ca,
        Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: Keypair::from_seed(52).public(),
                role: Role::Patient,
                institution: "hospital-0".into(),
                display_name: "Jane Doe".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + DAY,
            },
        }),
    );
    assert_eq!(rejected(&out), RejectCode::InvalidArgument);
}

fn terms(subject: &Keypair) -> medledger_types::ConsentTerms {
    medledger_types::ConsentTerms {
        grantee: medledger_types::Grantee::Person(subject.public()),
        actions: medledger_types::action::READ,
        scope: medledger_types::Scope::All,
        purpose: medledger_types::Purpose::Treatment,
        expires_ms: None,
        roles: vec![],
    }
}

fn op_of_kind(k: OpKind, subject: &Keypair, n: u8) -> Operation {
    match k {
        OpKind::AddInstitution => {
            Operation::Identity(IdentityOp::AddInstitution { id: format!("new-{n}"), name: "New".into() })
        }
        OpKind::IssueCredential => Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: Keypair::from_seed(9000 + n as u64).public(),
                role: Role::Doctor,
                institution: "hospital-0".into(),
                display_name: "X".into(),
                valid_from_ms: T0,
                valid_until_ms: T0 + DAY * 400,
            },
        }),
        OpKind::RevokeCredential => {
            Operation::Identity(IdentityOp::RevokeCredential { subject: subject.public(), reason: "r".into() })
        }
        OpKind::RegisterPatient => Operation::Identity(IdentityOp::RegisterPatient {
            subject: Keypair::from_seed(9500 + n as u64).public(),
            pseudonym: Hash([n; 32]),
            valid_until_ms: T0 + DAY * 400,
        }),
        OpKind::Attest => Operation::Identity(IdentityOp::Attest { digest: Hash([n; 32]), label: String::new() }),
        OpKind::RotatePatientKey => Operation::Identity(IdentityOp::RotatePatientKey {
            pseudonym: Hash([1; 32]),
            new_key: Keypair::from_seed(7000 + n as u64).public(),
            proof: medledger_types::Signature([0; 64]),
        }),
        OpKind::SetRegion => Operation::Identity(IdentityOp::SetRegion {
            institution: "hospital-0".into(),
            region: format!("region-{n}"),
        }),
        OpKind::GrantConsent => {
            Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([n; 32]), terms: terms(subject) })
        }
        OpKind::RevokeConsent => Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([n; 32]) }),
        OpKind::RequestAccess => Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([n; 32]),
            patient: Hash([1; 32]),
            terms: terms(subject),
            reason: Default::default(),
        }),
        OpKind::RespondAccess => {
            Operation::Consent(ConsentOp::RespondAccess { request_id: Hash([n; 32]), approve: true })
        }
        OpKind::AnchorRecord => Operation::Records(RecordsOp::AnchorRecord {
            record_id: Hash([n; 32]),
            version: 1,
            patient: Hash([1; 32]),
            resource_type: "Observation".into(),
            content_hash: Hash([2; 32]),
            locator: "vault://x".into(),
        }),
        OpKind::ReviewAmendment => {
            Operation::Records(RecordsOp::ReviewAmendment { record_id: Hash([n; 32]), version: 2, accept: true })
        }
        OpKind::LogAccess => Operation::Audit(AuditOp::LogAccess {
            events: vec![medledger_types::audit::AccessNote {
                request_id: Hash([n; 32]),
                record_id: Hash([n; 32]),
                version: 1,
                requester: subject.public(),
                purpose: medledger_types::Purpose::Treatment,
                outcome: medledger_types::AccessOutcome::Served,
                reason: Default::default(),
            }],
        }),
        OpKind::RequestErasure => Operation::Records(RecordsOp::RequestErasure { record_id: Hash([n; 32]) }),
        OpKind::ConfirmErasure => Operation::Records(RecordsOp::ConfirmErasure { record_id: Hash([n; 32]) }),
        drug => drug_op_of_kind(drug, n),
    }
}

/// A well-formed operation of each kind of the later domains (drugs, care).
fn drug_op_of_kind(k: OpKind, n: u8) -> Operation {
    medledger_types::DrugsOp::example(k, n, T0)
        .map(Operation::Drugs)
        .or_else(|| medledger_types::CareOp::example(k, n, T0).map(Operation::Care))
        .unwrap_or_else(|| panic!("{} has no example", k.name()))
}

/// Every cell the table forbids is rejected with `not_permitted`, at precheck and in a block;
/// every cell it allows passes the permission check.
#[test]
fn every_disallowed_cell_is_rejected() {
    let mut c = Chain::new();
    let victim = c.issue(Role::Doctor, 0, 400);
    let mut signers: Vec<(Principal, Keypair)> = vec![(Principal::Ca, c.ca.clone())];
    for (i, role) in Role::ALL.iter().enumerate() {
        let k = match role {
            Role::Patient => c.patient(500),
            Role::InstitutionAdmin => c.admins[0].clone(),
            r => c.issue(*r, 0, 600 + i as u64),
        };
        signers.push((Principal::Role(*role), k));
    }
    let mut checked = 0;
    let mut n = 0u8;
    for (p, key) in &signers {
        for k in OpKind::ALL {
            n = n.wrapping_add(1);
            let tx = c.tx(key, op_of_kind(k, &victim, n));
            let pre = precheck(&c.state, "test-chain", c.now, c.height, &tx);
            if allowed(*p, k) {
                assert!(pre.is_ok(), "{} × {} should pass: {pre:?}", p.name(), k.name());
                continue;
            }
            assert_eq!(pre.unwrap_err().code, RejectCode::NotPermitted, "{} × {}", p.name(), k.name());
            let out = c.block(vec![tx]).remove(0).outcome;
            assert_eq!(rejected(&out), RejectCode::NotPermitted, "{} × {}", p.name(), k.name());
            checked += 1;
        }
    }
    let expected =
        medledger_state::permissions::table().iter().flat_map(|(_, row)| row.iter().filter(|(_, ok)| !ok)).count();
    assert_eq!(checked, expected);
    assert!(checked > 30);
}

#[test]
fn execution_is_deterministic() {
    let mut a = Chain::new();
    let doc = a.issue(Role::Doctor, 1, 1);
    let txs: Vec<Tx> = (0..20u8)
        .map(|i| {
            Tx::sign(
                Transaction {
                    chain_id: "test-chain".into(),
                    signer: doc.public(),
                    nonce: i as u64 / 2,
                    op: attest(100 + i),
                },
                &doc,
            )
        })
        .collect();
    let env = BlockEnv {
        chain_id: "test-chain".into(),
        height: a.height + 1,
        timestamp_ms: T0 + 5000,
        proposer: doc.public(),
    };
    let x = execute_block(&a.state, &env, &txs);
    let y = execute_block(&a.state.clone(), &env, &txs);
    assert_eq!(x.state_root, y.state_root);
    assert_eq!(x.receipts, y.receipts);
    // Half the txs reuse a nonce and must be rejected.
    let rejected = x.receipts.iter().filter(|r| !r.is_applied()).count();
    assert_eq!(rejected, 10);
    let env2 = BlockEnv { timestamp_ms: T0 + 6000, ..env };
    assert_ne!(execute_block(&a.state, &env2, &txs[..1]).state_root, x.state_root);
}
