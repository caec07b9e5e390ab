//! `medledger bench --referrals N` (in process) and `--readings N` (on a devnet).
//!
//! `--referrals`: what one validator spends executing the referral workflow, state tree
//! included. Each phase runs as blocks of `PER_BLOCK`
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
use std::time::{Duration, Instant};

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
                        specialty: "394579002".into(),
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

/// On a running devnet (`--requester-rate` high enough not to throttle the devices): readings
/// ingested per second by hospital B's node (signature check, NEWS2, vault write, batched
/// anchors), sent by `devices` devices of patient-2 at once (one reading in flight each); and the alarm latency, from a
/// reading's arrival to the `alarm` event on the responsible doctor's SSE stream, measured by a
/// probe device that crosses the patient's `pulse > 130` rule twice a second during the load.
pub fn readings_load(dir: &std::path::Path, readings: usize, devices: usize) -> Result<Value, String> {
    use medledger_client::care::send_reading;
    use medledger_client::http::Client;
    use medledger_client::keys::{read_genesis, read_key};
    use medledger_types::care::vitals::{observation_json, Vital};
    use std::io::BufRead;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let genesis = read_genesis(&dir.join("genesis.json"))?;
    let seeded: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("demo/seeded.json"))
            .map_err(|e| format!("{e} (start the devnet with its demo data)"))?,
    )
    .map_err(|e| e.to_string())?;
    let pid = Hash::from_hex(seeded["identities"]["patient-2"]["pseudonym"].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    let api = genesis.institutions[1].api_address.clone();
    let bob_key = read_key(&dir.join("demo/dr-bob.key"))?;
    let bob = medledger_client::Session::for_genesis(&api, bob_key.clone(), &genesis);
    // The devices: `devices` for the load and one probe.
    let load = devices;
    let devices: Vec<Keypair> = (0..=load).map(|_| Keypair::generate()).collect();
    let mut ids = Vec::new();
    for d in &devices {
        let device_id = medledger_client::tx::new_id();
        bob.care(CareOp::RegisterDevice { device_id, patient: pid, key: d.public(), model: "bench sensor".into() })?;
        ids.push(device_id);
    }
    let probe_id = ids[load].to_hex();
    // The responsible doctor's alarm stream.
    let stream =
        Client::new(&api).with_key(bob_key).with_chain_id(&genesis.chain_id).get_stream("/v1/care/alarms/stream")?;
    let (alarm_tx, alarm_rx) = std::sync::mpsc::channel::<Instant>();
    let probe = probe_id.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream.into_reader()).lines().map_while(Result::ok) {
            let Some(data) = line.strip_prefix("data:") else { continue };
            let Ok(v) = serde_json::from_str::<Value>(data.trim()) else { continue };
            let ours = v["device"] == probe.as_str() && v["escalated"] == false && v["cause"] == "pulse > 130";
            if ours && alarm_tx.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    let chain_id = genesis.chain_id.clone();
    let done = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let per_device = readings.div_ceil(load);
    let start_ms = medledger_client::tx::now_ms();
    let t = Instant::now();
    let workers: Vec<_> = devices[..load]
        .iter()
        .cloned()
        .map(|d| {
            let (api, chain_id, accepted) = (api.clone(), chain_id.clone(), accepted.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let client = Client::new(&api);
                for i in 0..per_device {
                    // Past, distinct times: every reading is new.
                    let at = start_ms - per_device as u64 + i as u64;
                    send_reading(&client, &chain_id, &d, &observation_json(&Vital::HeartRate(72.0), at).to_string())?;
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let (probe_key, api2, chain2, done2) = (devices[load].clone(), api.clone(), chain_id.clone(), done.clone());
    let prober = std::thread::spawn(move || -> Result<Vec<Instant>, String> {
        let client = Client::new(&api2);
        let mut sent = Vec::new();
        while !done2.load(Ordering::Relaxed) {
            let at = medledger_client::tx::now_ms();
            let high = observation_json(&Vital::HeartRate(140.0), at).to_string();
            let before = Instant::now();
            let r = send_reading(&client, &chain2, &probe_key, &high)?;
            if r["alarms"].as_array().is_some_and(|a| a.iter().any(|c| c == "pulse > 130")) {
                sent.push(before);
            }
            send_reading(&client, &chain2, &probe_key, &observation_json(&Vital::HeartRate(80.0), at + 1).to_string())?;
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(sent)
    });
    for w in workers {
        w.join().map_err(|_| "a sender panicked".to_string())??;
    }
    let elapsed = t.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let sent = prober.join().map_err(|_| "the probe panicked".to_string())??;
    // Each probe alarm's event, in order (the stream may lag a block behind the last ones).
    let mut latencies = Vec::new();
    for s in &sent {
        match alarm_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(at) => latencies.push(at.saturating_duration_since(*s).as_secs_f64() * 1000.0),
            Err(_) => break,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    let n = accepted.load(Ordering::Relaxed);
    Ok(json!({
        "readings": n,
        "devices": load,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "readings_per_s": (n as f64 / elapsed).round(),
        "alarms_probed": sent.len(),
        "alarm_events_received": latencies.len(),
        "alarm_latency_ms": { "p50": p(0.5).round(), "p99": p(0.99).round(), "max": p(1.0).round() },
        "note": "hospital B's node: signature, checks, NEWS2, sealing under the device's key epoch, a durable write to the group-committed reading log; anchors every 10 s; latency from the reading's POST to the SSE event",
    }))
}
