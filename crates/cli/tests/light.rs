//! Verifiable answers on the multi-process devnet: a malicious node (a test double in front of a
//! real node that lies on purpose) adds its key to a consent list, hides a revocation, returns a
//! wrong patient key, serves a stale state and forges a record anchor. The light client detects
//! each lie, refuses the answer naming the node, and moves on to an honest node when it has one.
//! Proofs saved to a file verify offline against the genesis file alone, and any changed byte
//! in the header, the certificate, a value or a Merkle proof is refused.

mod common;

use common::*;
use medledger_client::light::Light;
use medledger_client::Session;
use medledger_state::queries;
use medledger_types::{BlockHeader, Canonical, Hash, Keypair, StateProof};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the malicious node does to the proofs it relays.
type Lie = Box<dyn Fn(&str, &mut StateProof) + Send + Sync>;

/// A node that relays every request to `upstream` (a real node) and, on proof routes, applies
/// the current lie to the answer. Plain HTTP on loopback; stops with the test process.
struct Malicious {
    url: String,
    lie: Arc<Mutex<Option<Lie>>>,
}

impl Malicious {
    fn start(upstream: String) -> Malicious {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let lie: Arc<Mutex<Option<Lie>>> = Arc::new(Mutex::new(None));
        let l2 = lie.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let upstream = upstream.clone();
                let lie = l2.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (mut auth, mut len) = (None, 0usize);
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                        let (name, value) = h.split_once(':').unwrap_or(("", ""));
                        match name.to_ascii_lowercase().as_str() {
                            "authorization" => auth = Some(value.trim().to_string()),
                            "content-length" => len = value.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = r.read_exact(&mut body);
                    let mut req = if line.starts_with("POST") {
                        agent().post(&format!("{upstream}{path}")).set("content-type", "application/json")
                    } else {
                        agent().get(&format!("{upstream}{path}"))
                    };
                    if let Some(a) = &auth {
                        req = req.set("authorization", a);
                    }
                    let resp = if line.starts_with("POST") { req.send_bytes(&body) } else { req.call() };
                    let (status, text) = match resp {
                        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
                        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
                        Err(e) => (502, format!("{{\"error\":{{\"code\":\"bad_gateway\",\"message\":\"{e}\"}}}}")),
                    };
                    let text = match (status, lie.lock().unwrap().as_ref()) {
                        (200, Some(lie)) if path.starts_with("/v1/proofs/") => {
                            let mut p: StateProof = serde_json::from_str(&text).unwrap();
                            lie(&path, &mut p);
                            serde_json::to_string(&p).unwrap()
                        }
                        _ => text,
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                });
            }
        });
        Malicious { url, lie }
    }

    fn lie(&self, f: impl Fn(&str, &mut StateProof) + Send + Sync + 'static) {
        *self.lie.lock().unwrap() = Some(Box::new(f));
    }
}

/// Rewrites the values under `prefix` that `f` changes (at least one must change).
fn rewrite(p: &mut StateProof, prefix: &[u8], f: impl Fn(Vec<u8>) -> Option<Vec<u8>>) {
    let mut changed = 0;
    for e in p.entries.iter_mut().filter(|e| hex::decode(&e.key).unwrap().starts_with(prefix)) {
        let Some(v) = e.value.as_ref().map(|v| hex::decode(v).unwrap()) else { continue };
        if let Some(new) = f(v) {
            e.value = Some(hex::encode(new));
            changed += 1;
        }
    }
    assert!(changed > 0, "nothing to rewrite under {}", String::from_utf8_lossy(prefix));
}

/// `v` with the first occurrence of `from` replaced by `to`, if it holds `from`.
fn splice(v: Vec<u8>, from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let at = v.windows(from.len()).position(|w| w == from)?;
    let mut out = v;
    out[at..at + from.len()].copy_from_slice(to);
    Some(out)
}

fn refused<T>(r: Result<T, String>, node: &str, why: &str) -> String {
    let Err(e) = r else { panic!("the lie must be refused ({why})") };
    assert!(e.contains(node), "the refusal names the lying node {node}: {e}");
    assert!(e.contains(why), "the refusal says why ({why}): {e}");
    e
}

#[test]
fn a_malicious_node_is_caught_in_every_lie_and_the_client_moves_to_an_honest_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    let dn = start_devnet(&dir, free_base_port(), true);
    let apis = apis(&dn);
    medledger_client::http::trust_consortium_ca(&dir.join("tls/ca.pem")).unwrap();
    let genesis = medledger_client::keys::read_genesis(&dir.join("genesis.json")).unwrap();
    let seeded = dn.ready["demo"].clone();
    let ident = |k: &str, f: &str| seeded["identities"][k][f].as_str().unwrap().to_string();
    let p1 = Hash::from_hex(&ident("patient-1", "pseudonym")).unwrap();
    let record = Hash::from_hex(seeded["records"]["hospital_a_observation"].as_str().unwrap()).unwrap();
    let alice = key(&dir.join("demo/dr-alice.key"));
    let evil = Keypair::generate();

    let bad = Malicious::start(apis[1].clone());
    let light = || Arc::new(Light::new(genesis.clone()));
    let only_bad = |k: &Keypair| Session::open_with(std::slice::from_ref(&bad.url), k.clone(), light());
    let honest = Session::open_with(&[apis[0].clone()], alice.clone(), light());

    // Relaying faithfully, the malicious node's answers verify.
    let consents = only_bad(&alice).consents(&p1).unwrap();
    assert!(consents.iter().any(|(_, _, active)| *active), "patient-1 consents to Dr. Alice in the demo data");
    let true_key = only_bad(&alice).patient_key(&p1).unwrap();
    assert_eq!(true_key, honest.patient_key(&p1).unwrap());

    // 1. It adds its own key to the consent list (rewriting a consent's grantee).
    let grantee = consents[0].1.grantee.clone();
    let grantee_bytes = match &grantee {
        medledger_types::Grantee::Person(pk) => pk.0.to_vec(),
        medledger_types::Grantee::Institution(id) => id.as_bytes().to_vec(),
    };
    let forged = evil.public().0[..grantee_bytes.len().min(32)].to_vec();
    bad.lie(move |_, p| rewrite(p, b"k/", |v| splice(v, &grantee_bytes, &forged)));
    refused(only_bad(&alice).consents(&p1), &bad.url, "Merkle proof does not verify");
    // With an honest node behind it, the client moves on and gets the truth.
    let both = Session::open_with(&[bad.url.clone(), apis[0].clone()], alice.clone(), light());
    let got = both.consents(&p1).unwrap();
    assert_eq!(got, honest.consents(&p1).unwrap());
    assert!(got.iter().all(|(_, t, _)| t.grantee != medledger_types::Grantee::Person(evil.public())));
    assert_eq!(both.client.base(), apis[0], "the honest node is now the current one");

    // 2. It returns a wrong patient key (its own), so data keys would be wrapped for it.
    let (real, fake) = (true_key.0, evil.public().0);
    bad.lie(move |_, p| rewrite(p, b"p/", |v| splice(v, &real, &fake)));
    refused(only_bad(&alice).patient_key(&p1), &bad.url, "Merkle proof does not verify");
    // ... or claims the key is simply not there, leaving the entry out.
    bad.lie(|_, p| p.entries.retain(|e| !hex::decode(&e.key).unwrap().starts_with(b"p/")));
    refused(only_bad(&alice).patient_key(&p1), &bad.url, "does not cover key");

    // 3. It forges a record anchor: another content hash for the same version.
    bad.lie(|_, p| {
        rewrite(p, b"rv/", |mut v| {
            let n = v.len();
            v[n / 2] ^= 0xff;
            Some(v)
        })
    });
    refused(only_bad(&alice).record(&record), &bad.url, "Merkle proof does not verify");
    *bad.lie.lock().unwrap() = None;
    let (_, versions) = only_bad(&alice).record(&record).unwrap();
    assert_eq!(versions, honest.record(&record).unwrap().1);

    // 4. It hides a revocation. Record Dr. Bob's credential proof while it is valid, then
    // revoke it, then serve the old credential under the new state.
    let bob = key(&dir.join("demo/dr-bob.key"));
    let bob_path = format!("/v1/proofs/identities/{}", bob.public().to_hex());
    let before = honest.proven(&bob_path).unwrap();
    let ca = key(&dir.join("ca.key"));
    let cli = Cli { dir: dir.clone() };
    let node0 = apis[0].trim_start_matches("https://").to_string();
    cli.ok(&[
        "tx",
        "--node",
        &node0,
        "--key",
        dir.join("ca.key").to_str().unwrap(),
        "--wait",
        "revoke",
        "--subject",
        &bob.public().to_hex(),
        "--reason",
        "left the hospital",
    ]);
    let after = honest.proven(&bob_path).unwrap();
    let revoked = after.replay(|s, at| queries::identity(s, &bob.public(), at)).unwrap();
    assert!(revoked.principal.is_err() && revoked.credential.as_ref().unwrap().revoked.is_some());
    let cred_key = hex::encode(medledger_state::identity::key::credential(&bob.public()));
    let old_value = before.proof.entries.iter().find(|e| e.key == cred_key).unwrap().value.clone();
    bad.lie(move |_, p| {
        let e = p.entries.iter_mut().find(|e| e.key == cred_key).unwrap();
        e.value = old_value.clone();
    });
    let ca_session = Session::open_with(std::slice::from_ref(&bad.url), ca.clone(), light());
    refused(ca_session.proven(&bob_path), &bad.url, "Merkle proof does not verify");

    // 5. It serves a stale state: the whole old proof, genuinely certified, from before the
    // revocation. A client that has seen a later height refuses it; so does one with a
    // maximum staleness, and one given --min-height.
    let old = before.proof.clone();
    bad.lie(move |_, p| *p = old.clone());
    let seen = Session::open_with(&[apis[0].clone(), bad.url.clone()], ca.clone(), light());
    seen.proven(&bob_path).unwrap();
    seen.client.set_current(1);
    let answer = seen.proven(&bob_path).unwrap();
    assert_eq!(answer.node, apis[0], "the stale answer was refused and the honest node asked");
    refused(
        Session::open_with(
            std::slice::from_ref(&bad.url),
            ca.clone(),
            Arc::new(Light::new(genesis.clone()).with_min_height(after.height)),
        )
        .proven(&bob_path),
        &bad.url,
        "stale state",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let strict = Arc::new(Light::new(genesis.clone()).with_max_staleness(Duration::from_secs(1)));
    refused(
        Session::open_with(std::slice::from_ref(&bad.url), ca.clone(), strict).proven(&bob_path),
        &bad.url,
        "stale state",
    );

    // An unreachable node is skipped like a lying one.
    *bad.lie.lock().unwrap() = None;
    let dead = format!("http://127.0.0.1:{}", free_base_port());
    let s = Session::open_with(&[dead, apis[2].clone()], alice.clone(), light());
    assert_eq!(s.patient_key(&p1).unwrap(), true_key);

    // Offline: a saved proof verifies against the genesis file alone; a changed one does not.
    let file = tmp.path().join("patient.json");
    let out = cli.ok(&[
        "query",
        "--node",
        &node0,
        "--key",
        &cli.demo("dr-alice"),
        "state-proof",
        "--out",
        file.to_str().unwrap(),
        "patient",
        &p1.to_hex(),
    ]);
    assert!(out["entries"].as_u64().unwrap() >= 1);
    let v = cli.ok(&["verify", "--state-proof", file.to_str().unwrap()]);
    assert_eq!(v["ok"], true);
    let mut p: StateProof = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    p.entries[0].value = Some(hex::encode(evil.public().0));
    std::fs::write(&file, serde_json::to_string(&p).unwrap()).unwrap();
    cli.fails(&["verify", "--state-proof", file.to_str().unwrap()], "does not verify");

    // Any changed byte of the header or the certificate is refused.
    let genuine = after.proof.clone();
    genuine.verify(&genesis).unwrap();
    let header = genuine.header.to_bytes();
    let mut decodable = 0;
    for i in 0..header.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = header.clone();
            b[i] ^= bit;
            let Ok(h) = BlockHeader::from_bytes(&b) else { continue };
            decodable += 1;
            let mut p = genuine.clone();
            p.header = h;
            assert!(p.verify(&genesis).is_err(), "header byte {i} changed");
        }
    }
    assert!(decodable > header.len(), "most changed headers still decode, and each is refused");
    let cert = hex::decode(&genuine.certificate).unwrap();
    for i in (0..cert.len()).step_by(7) {
        let mut c = cert.clone();
        c[i] ^= 0x01;
        let mut p = genuine.clone();
        p.certificate = hex::encode(c);
        assert!(p.verify(&genesis).is_err(), "certificate byte {i} changed");
    }
    // Another validator set: none of its keys signed. (Replacing a single key
    // is not enough: if that validator did not sign, a quorum of the new set
    // still did, and the certificate rightly verifies.)
    let mut other_chain = genesis.clone();
    for inst in &mut other_chain.institutions {
        inst.validator_key = Keypair::generate().public();
    }
    assert!(genuine.verify(&other_chain).is_err(), "another validator set does not certify this chain");
    // Two of four replaced: at most two of the signers remain, below the quorum of three.
    let mut two_replaced = genesis.clone();
    two_replaced.institutions[0].validator_key = evil.public();
    two_replaced.institutions[1].validator_key = Keypair::generate().public();
    assert!(genuine.verify(&two_replaced).is_err(), "two replaced validators leave no quorum");
    drop(dn);
}
