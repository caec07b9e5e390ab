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
        OpKind::GrantConsent => {
            Operation::Consent(ConsentOp::GrantConsent { consent_id: Hash([n; 32]), terms: terms(subject) })
        }
        OpKind::RevokeConsent => Operation::Consent(ConsentOp::RevokeConsent { consent_id: Hash([n; 32]) }),
        OpKind::RequestAccess => Operation::Consent(ConsentOp::RequestAccess {
            request_id: Hash([n; 32]),
            patient: Hash([1; 32]),
            terms: terms(subject),
            reason: String::new(),
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
            record_id: Hash([n; 32]),
            version: 1,
            requester: subject.public(),
            purpose: medledger_types::Purpose::Treatment,
            outcome: medledger_types::AccessOutcome::Served,
            reason: String::new(),
        }),
        OpKind::RequestErasure => Operation::Records(RecordsOp::RequestErasure { record_id: Hash([n; 32]) }),
        OpKind::ConfirmErasure => Operation::Records(RecordsOp::ConfirmErasure { record_id: Hash([n; 32]) }),
    }
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
            n += 1;
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
    let env = BlockEnv { chain_id: "test-chain".into(), height: 9, timestamp_ms: T0 + 5000, proposer: doc.public() };
    let x = execute_block(&a.state, &a.root, &env, &txs);
    let y = execute_block(&a.state.clone(), &a.root, &env, &txs);
    assert_eq!(x.state_root, y.state_root);
    assert_eq!(x.receipts, y.receipts);
    // Half the txs reuse a nonce and must be rejected.
    let rejected = x.receipts.iter().filter(|r| !r.is_applied()).count();
    assert_eq!(rejected, 10);
    let env2 = BlockEnv { timestamp_ms: T0 + 6000, ..env };
    assert_ne!(execute_block(&a.state, &a.root, &env2, &txs[..1]).state_root, x.state_root);
}
