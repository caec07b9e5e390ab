//! `medledger bench --referrals N` (in process): what one validator spends executing the
//! referral workflow, state tree included. Each phase runs as blocks of `PER_BLOCK`
//! transactions: proposals, approvals, acceptances (each grants two consents), starts, the
//! reports' anchors, and completions (each ends two consents).

use super::drugbench::Builder;
use medledger_state::{nonce_of, BlockEnv};
use medledger_types::care::{CareOp, Mode};
use medledger_types::{
    action, patient_pseudonym, ConsentOp, ConsentTerms, Grantee, Hash, IdentityOp, Keypair, Operation, Purpose,
    RecordsOp, Role, Scope, Tx,
};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// Makes the `i`th referral's operation of a phase, with its signer.
type Step<'a> = Box<dyn Fn(usize) -> (Keypair, Operation) + 'a>;

/// Transactions per block in every phase.
const PER_BLOCK: usize = 500;

fn id(tag: u8, i: usize) -> Hash {
    let mut h = [tag; 32];
    h[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Hash(h)
}

fn anchor(patient: Hash, record: Hash, resource_type: &str) -> Operation {
    Operation::Records(RecordsOp::AnchorRecord {
        record_id: record,
        version: 1,
        patient,
        resource_type: resource_type.into(),
        content_hash: Hash([7; 32]),
        locator: "vault://bench".into(),
    })
}

/// Runs `ops` (signer, operation) in blocks of [`PER_BLOCK`], timing each block.
fn phase(b: &mut Builder, ops: Vec<(Keypair, Operation)>) -> Vec<f64> {
    let mut times = Vec::new();
    let mut nonces = std::collections::HashMap::new();
    for chunk in ops.chunks(PER_BLOCK) {
        let txs: Vec<Tx> = chunk
            .iter()
            .map(|(k, op)| {
                let n = nonces.entry(k.public()).or_insert_with(|| nonce_of(&b.state, &k.public()));
                *n += 1;
                b.sign(k, *n - 1, op.clone())
            })
            .collect();
        let t = Instant::now();
        b.block(&txs);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times
}

pub fn referrals(n: usize) -> Result<Value, String> {
    let n = n.max(1);
    let (mut b, ca) = Builder::genesis(true);
    let (treating, receiving) = (Keypair::from_seed(40), Keypair::from_seed(41));
    b.credential(&ca, &treating, Role::Doctor, "i2");
    b.credential(&ca, &receiving, Role::Doctor, "i0");
    let admin = Keypair::from_seed(20);
    let patients: Vec<Keypair> = (0..n).map(|i| Keypair::from_seed(1_000_000 + i as u64)).collect();
    let pids: Vec<Hash> = (0..n).map(|i| patient_pseudonym(&[9; 32], &format!("N{i}"), "M")).collect();
    // Setup (untimed): patients, the treating doctor's consent, one record each.
    let setup = |b: &mut Builder, ops: Vec<(Keypair, Operation)>| drop(phase(b, ops));
    setup(
        &mut b,
        (0..n)
            .map(|i| {
                let op = IdentityOp::RegisterPatient {
                    subject: patients[i].public(),
                    pseudonym: pids[i],
                    valid_until_ms: u64::MAX / 2,
                };
                (admin.clone(), Operation::Identity(op))
            })
            .collect(),
    );
    let terms = ConsentTerms {
        grantee: Grantee::Person(treating.public()),
        actions: action::ALL,
        scope: Scope::All,
        purpose: Purpose::Treatment,
        expires_ms: None,
        roles: vec![],
    };
    setup(
        &mut b,
        (0..n)
            .map(|i| {
                let op = ConsentOp::GrantConsent { consent_id: id(1, i), terms: terms.clone() };
                (patients[i].clone(), Operation::Consent(op))
            })
            .collect(),
    );
    setup(&mut b, (0..n).map(|i| (treating.clone(), anchor(pids[i], id(2, i), "Observation"))).collect());

    let env = |b: &Builder| -> BlockEnv { b.env.clone() };
    let appointment = env(&b).timestamp_ms + 86_400_000;
    let care = |k: &Keypair, op: CareOp| (k.clone(), Operation::Care(op));
    let mut out = Map::new();
    let mut total_ms = 0.0;
    let phases: Vec<(&str, Step<'_>)> = vec![
        (
            "propose",
            Box::new(|i| {
                care(
                    &treating,
                    CareOp::ProposeReferral {
                        referral_id: id(3, i),
                        patient: pids[i],
                        doctor: treating.public(),
                        to: "i0".into(),
                        specialty: "cardiology".into(),
                        records: vec![id(2, i)],
                    },
                )
            }),
        ),
        ("approve", Box::new(|i| care(&patients[i], CareOp::ApproveReferral { referral_id: id(3, i) }))),
        (
            "accept",
            Box::new(|i| {
                care(
                    &receiving,
                    CareOp::AcceptReferral {
                        referral_id: id(3, i),
                        mode: Mode::Remote,
                        appointment_ms: appointment,
                        doctor: receiving.public(),
                    },
                )
            }),
        ),
        ("start", Box::new(|i| care(&receiving, CareOp::StartReferral { referral_id: id(3, i) }))),
        ("anchor_report", Box::new(|i| (receiving.clone(), anchor(pids[i], id(4, i), "Composition")))),
        (
            "complete",
            Box::new(|i| care(&receiving, CareOp::CompleteReferral { referral_id: id(3, i), report: id(4, i) })),
        ),
    ];
    for (name, make) in &phases {
        let times = phase(&mut b, (0..n).map(make).collect());
        let sum: f64 = times.iter().sum();
        total_ms += sum;
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        out.insert(
            name.to_string(),
            json!({
                "blocks": times.len(),
                "block_ms_p50": (sorted[sorted.len() / 2] * 10.0).round() / 10.0,
                "block_ms_max": (sorted[sorted.len() - 1] * 10.0).round() / 10.0,
                "us_per_tx": (sum * 1000.0 / n as f64).round(),
            }),
        );
    }
    let stats = medledger_state::care::stats(&b.state);
    if stats.first().map(|s| s.completed) != Some(n as u64) {
        return Err(format!("expected {n} completed referrals, the statistics say {stats:?}"));
    }
    Ok(json!({
        "referrals": n,
        "per_block": PER_BLOCK,
        "phases": out,
        "workflows_per_s_one_core": ((n as f64) / (total_ms / 1000.0)).round(),
        "note": "one validator executing referral blocks, state tree included, on one core",
    }))
}
