//! `medledger bench --reads`: consent-checked record reads against a running devnet, from this
//! (second) process, at a fixed offered rate; and `--vault`: the vault's own write and read
//! throughput on the local disk.
//!
//! The read load is open-loop: request `i` is due at `start + i / rate`, and its latency is
//! measured from that due time, so a slow server cannot hide queueing (no coordinated omission).

use medledger_client::keys::read_key;
use medledger_client::Session;
use medledger_types::read::ReadRequest;
use medledger_types::{Canonical, Hash, Purpose};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// A FHIR Observation of about `size` bytes for `pseudonym`.
fn sized_observation(pseudonym: &str, size: usize) -> Vec<u8> {
    let mut v = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
        "subject": { "reference": format!("Patient/{pseudonym}") },
        "valueQuantity": { "value": 72, "unit": "beats/minute" },
        "note": []
    });
    let base = v.to_string().len();
    let filler = "benchmark padding ".repeat(size.saturating_sub(base + 40) / 18 + 1);
    v["note"] = json!([{ "text": &filler[..size.saturating_sub(base + 40).min(filler.len())] }]);
    serde_json::to_vec(&v).expect("json")
}

/// Runs the read benchmark; returns its report.
pub fn reads(
    dir: &Path,
    rate: u64,
    seconds: u64,
    threads: usize,
    record_bytes: usize,
    via: usize,
) -> Result<Value, String> {
    let genesis = medledger_client::keys::read_genesis(&dir.join("genesis.json"))?;
    let seeded: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("demo/seeded.json"))
            .map_err(|e| format!("no demo data in {}: {e} (start the devnet without --no-seed)", dir.display()))?,
    )
    .map_err(|e| e.to_string())?;
    let p1 = seeded["identities"]["patient-1"]["pseudonym"].as_str().ok_or("seeded.json lacks patient-1")?.to_string();
    let holder_api = genesis.institutions[0].api_address.clone();
    let via_api = genesis.institutions.get(via).ok_or("--via: no such validator")?.api_address.clone();
    // Dr. Alice (hospital A) holds read and write consent from patient-1 in the demo data.
    let alice = Session::for_genesis(&holder_api, read_key(&dir.join("demo/dr-alice.key"))?, &genesis);
    let pid = Hash::from_hex(&p1).map_err(|e| e.to_string())?;
    let fhir = sized_observation(&p1, record_bytes);
    let put = alice.put(&pid, &fhir, None)?;
    let id = Hash::from_hex(put["record_id"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    // One checked read (decrypt and hash) before the load.
    let reader = Session::for_genesis(&via_api, read_key(&dir.join("demo/dr-alice.key"))?, &genesis);
    let (plain, _) = reader.get(&id, Some(1), Purpose::Treatment, None)?;
    if plain != fhir {
        return Err("the read-back record differs from what was written".into());
    }

    let total = rate * seconds;
    let next = Arc::new(AtomicU64::new(0));
    let lat: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let key = Arc::new(read_key(&dir.join("demo/dr-alice.key"))?);
    let chain_id = genesis.chain_id.clone();
    let start = Instant::now() + Duration::from_millis(200);
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (next, lat, errors, key, chain_id, url) = (
            next.clone(),
            lat.clone(),
            errors.clone(),
            key.clone(),
            chain_id.clone(),
            format!("{}/v1/records/read", medledger_client::http::base_url(&via_api)),
        );
        handles.push(std::thread::spawn(move || {
            let agent = medledger_client::http::agent_builder().timeout(Duration::from_secs(10)).build();
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let r = ReadRequest {
                    chain_id: chain_id.clone(),
                    record_id: id,
                    version: 1,
                    requester: key.public(),
                    purpose: Purpose::Treatment,
                    issued_ms: medledger_client::tx::now_ms(),
                    nonce: medledger_client::tx::request_nonce(),
                    break_glass: None,
                };
                let body = json!({ "request": hex::encode(r.to_bytes()), "signature": hex::encode(r.sign(&key).0) });
                let answer = match agent.post(&url).send_json(body) {
                    Ok(resp) => resp.into_string().map_err(|_| ()),
                    Err(_) => Err(()),
                };
                match answer {
                    Ok(s) if s.contains("\"sealed\"") => mine.push(due.elapsed().as_secs_f64() * 1000.0),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat.lock().expect("latency list").extend(mine);
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = lat.lock().expect("latency list").clone();
    l.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "record_bytes": fhir.len(),
        "offered_per_s": rate,
        "served": l.len(),
        "errors": errors.load(Ordering::Relaxed),
        "achieved_per_s": (l.len() as f64 / elapsed).round(),
        "via": genesis.institutions[via].id,
        "holder": genesis.institutions[0].id,
        "p50_ms": (percentile(&l, 0.50) * 100.0).round() / 100.0,
        "p90_ms": (percentile(&l, 0.90) * 100.0).round() / 100.0,
        "p99_ms": (percentile(&l, 0.99) * 100.0).round() / 100.0,
        "max_ms": (l.last().copied().unwrap_or(f64::NAN) * 100.0).round() / 100.0,
    }))
}

/// Vault write (seal, wrap for 3 recipients, store) and read (load, unwrap, open) throughput
/// for `n` records of `size` bytes in a fresh directory under `dir`.
pub fn vault(dir: &Path, n: usize, size: usize) -> Result<Value, String> {
    use medledger_vault::envelope::{self, context, DataKey};
    let tmp = dir.join(format!("vault-bench-{}", std::process::id()));
    let vault = medledger_vault::Vault::new(medledger_vault::FsStore::open(&tmp).map_err(|e| e.to_string())?);
    let recipients: Vec<_> = (0..3).map(|i| medledger_types::Keypair::from_seed(900 + i)).collect();
    let plain = vec![b'x'; size];
    let ids: Vec<Hash> =
        (0..n).map(|i| medledger_types::hash::sha256(&[b"vault bench", &(i as u64).to_be_bytes()])).collect();
    let t = Instant::now();
    for id in &ids {
        let ctx = context(id, 1);
        let k = DataKey::generate();
        let sealed = envelope::seal(&k, &plain, &ctx);
        let keys: Vec<_> =
            recipients.iter().map(|r| (r.public(), envelope::wrap(&k, &r.public(), &ctx).expect("wrap"))).collect();
        vault.put_version(id, 1, &sealed.0, &keys).map_err(|e| e.to_string())?;
    }
    let write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for id in &ids {
        let ctx = context(id, 1);
        let (sealed, w) = vault.get(id, 1, &recipients[1].public()).map_err(|e| e.to_string())?;
        let k = envelope::unwrap(&w, &recipients[1], &ctx).map_err(|e| e.to_string())?;
        let p = envelope::open(&k, &sealed, &ctx).map_err(|e| e.to_string())?;
        if p.len() != size {
            return Err("vault bench read back the wrong size".into());
        }
    }
    let read = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for id in &ids {
        vault.get(id, 1, &recipients[1].public()).map_err(|e| e.to_string())?;
    }
    let raw_read = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    let mb = (n * size) as f64 / 1e6;
    Ok(json!({
        "records": n,
        "record_bytes": size,
        "write_per_s": (n as f64 / write).round(),
        "write_mb_per_s": (mb / write * 10.0).round() / 10.0,
        "read_open_per_s": (n as f64 / read).round(),
        "read_open_mb_per_s": (mb / read * 10.0).round() / 10.0,
        "read_sealed_only_per_s": (n as f64 / raw_read).round(),
    }))
}
