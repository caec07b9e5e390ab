//! `medledger devnet`: a local consortium of validator processes with demo data.

use clap::Args;
use medledger_client::keys::{read_key, write_key, write_private};
use medledger_client::tx::{now_ms, submit_with_nonce, wait_committed};
use medledger_client::Client;
use medledger_types::{
    genesis::GenesisInstitution, patient_pseudonym, CredentialSpec, Genesis, Keypair, Operation, Role,
};
use medledger_types::{ConsentOp, IdentityOp};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Directory for keys, genesis, node configs and data.
    #[arg(long, default_value = ".devnet")]
    pub dir: PathBuf,
    /// Delete the directory first and start a fresh chain.
    #[arg(long)]
    pub reset: bool,
    /// Number of validator institutions (at least 4).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// First p2p port; APIs listen on base+100 onwards.
    #[arg(long, default_value_t = 7600)]
    pub base_port: u16,
    /// Do not seed demo identities and data.
    #[arg(long)]
    pub no_seed: bool,
    /// Signed reads and audit queries each requester may make per second (bursts of twice
    /// that, at least 200); written into the node configs when the devnet is created. The
    /// read benchmark needs about 2000.
    #[arg(long, default_value_t = 50)]
    pub requester_rate: u32,
    /// Do not start the web UI (it starts with the demo identities, on port base+190).
    #[arg(long)]
    pub no_ui: bool,
}

const INSTITUTIONS: [(&str, &str); 4] = [
    ("hospital-a", "Hospital A (university hospital)"),
    ("hospital-b", "Hospital B (regional hospital)"),
    ("clinic-c", "Clinic C (community clinic and pharmacy)"),
    ("health-authority", "Regional Health Authority"),
];

fn institution(i: usize) -> (String, String) {
    match INSTITUTIONS.get(i) {
        Some((id, name)) => (id.to_string(), name.to_string()),
        None => (format!("institution-{i}"), format!("Institution {i}")),
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[allow(unsafe_code)] // two libc calls, each with its SAFETY note
fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn node_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("nodes").join(id)
}

/// Creates keys, the consortium secret, genesis and node configs.
fn init(args: &DevnetArgs) -> Result<(), String> {
    let dir = &args.dir;
    let mk = |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    mk(dir)?;
    let ca = Keypair::generate();
    write_key(&dir.join("ca.key"), &ca)?;
    let secret = Keypair::generate().secret_bytes();
    write_private(&dir.join("consortium.secret"), hex::encode(secret).as_bytes())?;
    let mut institutions = Vec::new();
    for i in 0..args.validators {
        let (id, name) = institution(i);
        let nd = node_dir(dir, &id);
        mk(&nd)?;
        let validator = Keypair::generate();
        let admin = Keypair::generate();
        write_key(&nd.join("validator.key"), &validator)?;
        write_key(&nd.join("admin.key"), &admin)?;
        // The node's own key for its vault's access events (credentialed by the CA at start).
        write_key(&nd.join("service.key"), &Keypair::generate())?;
        let p2p = format!("127.0.0.1:{}", args.base_port as usize + i);
        let api = format!("127.0.0.1:{}", args.base_port as usize + 100 + i);
        let config = format!(
            "genesis = \"../../genesis.json\"\nkey = \"validator.key\"\ndata_dir = \"data\"\ninstitution_key = \"admin.key\"\nservice_key = \"service.key\"\n{TLS_CONFIG}\n[requester_rate]\nper_second = {}\nburst = {}\n",
            args.requester_rate,
            args.requester_rate.saturating_mul(2).max(200)
        );
        std::fs::write(nd.join("node.toml"), config).map_err(|e| e.to_string())?;
        institutions.push(GenesisInstitution {
            id,
            name,
            validator_key: validator.public(),
            admin_key: admin.public(),
            p2p_address: p2p,
            api_address: api,
        });
    }
    let genesis =
        Genesis { chain_id: "medledger-devnet".into(), genesis_time_ms: now_ms(), ca_key: ca.public(), institutions };
    genesis.validate()?;
    let json = serde_json::to_string_pretty(&genesis).expect("genesis serialises");
    std::fs::write(dir.join("genesis.json"), json).map_err(|e| e.to_string())
}

/// The TLS lines of a devnet node's config: its certificate and key, and the consortium root.
const TLS_CONFIG: &str = "tls_cert = \"tls.pem\"\ntls_key = \"tls.key\"\ntls_ca = \"../../tls/ca.pem\"\n";

/// The consortium CA certifies each node's TLS key: `tls/ca.pem` (the root, self-signed by the
/// CA key) and `nodes/<id>/tls.{pem,key}`. Made when missing (a devnet from before TLS gets
/// them, and the TLS lines in its node configs, on its next start).
fn ensure_tls(dir: &Path, genesis: &Genesis) -> Result<PathBuf, String> {
    let ca_pem = dir.join("tls/ca.pem");
    let ca = read_key(&dir.join("ca.key"))?;
    if !ca_pem.exists() {
        std::fs::create_dir_all(dir.join("tls"))
            .map_err(|e| format!("cannot create {}: {e}", dir.join("tls").display()))?;
        let pem = medledger_tls::ca_certificate(&ca, &genesis.chain_id)?;
        std::fs::write(&ca_pem, pem).map_err(|e| format!("cannot write {}: {e}", ca_pem.display()))?;
    }
    for i in &genesis.institutions {
        let nd = node_dir(dir, &i.id);
        if !nd.join("tls.pem").exists() || !nd.join("tls.key").exists() {
            let host = i.api_address.rsplit_once(':').map_or(i.api_address.as_str(), |(h, _)| h).to_string();
            let mut names = vec![host, "127.0.0.1".to_string(), "localhost".to_string()];
            names.dedup();
            let (cert, key) = medledger_tls::node_certificate(&ca, &genesis.chain_id, &i.id, &names)?;
            write_private(&nd.join("tls.key"), key.as_bytes())?;
            std::fs::write(nd.join("tls.pem"), cert).map_err(|e| e.to_string())?;
        }
        let cfg_path = nd.join("node.toml");
        let cfg = std::fs::read_to_string(&cfg_path).map_err(|e| format!("cannot read {}: {e}", cfg_path.display()))?;
        if !cfg.contains("tls_cert") {
            // Top-level keys go before the first table.
            let patched = match cfg.find("\n[") {
                Some(at) => format!("{}\n{TLS_CONFIG}{}", &cfg[..at], &cfg[at..]),
                None => format!("{cfg}\n{TLS_CONFIG}"),
            };
            std::fs::write(&cfg_path, patched).map_err(|e| e.to_string())?;
        }
    }
    Ok(ca_pem)
}

fn port_free(addr: &str) -> bool {
    std::net::TcpListener::bind(addr).is_ok()
}

/// The last `lines` lines of a log; a panic's message (which a backtrace would push out of
/// the tail) comes first when there is one.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    let panic = v.iter().rposition(|l| l.contains("panicked at"));
    let mut out = String::new();
    if let Some(p) = panic.filter(|p| *p + lines < v.len()) {
        out = v[p..(p + 4).min(v.len())].join("\n") + "\n...\n";
    }
    out + &v[v.len().saturating_sub(lines)..].join("\n")
}

struct Node {
    id: String,
    api: String,
    log: PathBuf,
    child: Child,
}

fn spawn_node(dir: &Path, inst: &GenesisInstitution) -> Result<Node, String> {
    let nd = node_dir(dir, &inst.id);
    let log_path = nd.join("node.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the medledger binary: {e}"))?;
    let child = Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(nd.join("node.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start node {}: {e}", inst.id))?;
    std::fs::write(nd.join("pid"), child.id().to_string()).map_err(|e| e.to_string())?;
    Ok(Node { id: inst.id.clone(), api: inst.api_address.clone(), log: log_path, child })
}

/// Starts the web UI with every demo identity (and each institution's admin), on loopback at
/// base+190, and waits until it answers. The admins' keys are copied into `demo/` so that one
/// `--keys` directory holds every identity.
fn spawn_ui(args: &DevnetArgs, genesis: &Genesis, ca_pem: &Path) -> Result<Node, String> {
    let demo = args.dir.join("demo");
    for i in &genesis.institutions {
        let copy = demo.join(format!("admin-{}.key", i.id));
        if !copy.exists() {
            write_key(&copy, &read_key(&node_dir(&args.dir, &i.id).join("admin.key"))?)?;
        }
    }
    let listen = format!("127.0.0.1:{}", args.base_port as usize + 190);
    if !port_free(&listen) {
        return Err(format!("{listen} is in use; stop what holds it, pick --base-port, or give --no-ui"));
    }
    let log_path = args.dir.join("ui.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the medledger binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg("--genesis")
        .arg(args.dir.join("genesis.json"))
        .arg("--ca-cert")
        .arg(ca_pem)
        .args(["ui", "--listen", &listen, "--node", &genesis.institutions[0].api_address, "--keys"])
        .arg(&demo)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start the UI: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    while agent.get(&format!("http://{listen}/healthz")).call().is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the UI exited ({status}) during startup:\n{}", tail(&log_path, 20)));
        }
        if Instant::now() > deadline || STOP.load(Ordering::SeqCst) {
            let _ = child.kill();
            return Err(format!("the UI did not start within 60s; see {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Node { id: "web UI".into(), api: listen, log: log_path, child })
}

#[allow(unsafe_code)] // kill(2), see the SAFETY note
fn stop_all(nodes: &mut [Node]) {
    for n in nodes.iter() {
        // SAFETY: plain kill(2) on a child we spawned.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

struct Seeder<'a> {
    client: &'a Client,
    chain_id: String,
}

impl Seeder<'_> {
    /// Submits a sequence of operations from one signer with consecutive nonces.
    fn run(&self, key: &Keypair, ops: Vec<Operation>) -> Result<Vec<medledger_types::Hash>, String> {
        let ident = self.client.get_as(key, &format!("/v1/identities/{}", key.public().to_hex()))?;
        let first = ident["next_nonce"].as_u64().unwrap_or(0);
        let mut ids = Vec::new();
        for (nonce, op) in (first..).zip(ops) {
            let (tx, _) = submit_with_nonce(self.client, key, &self.chain_id, nonce, op)?;
            ids.push(tx.id());
        }
        for id in &ids {
            let v = wait_committed(self.client, id, Duration::from_secs(60))?;
            if v["receipt"]["outcome"]["status"] != "applied" {
                return Err(format!("demo transaction rejected: {}", v["receipt"]["outcome"]));
            }
        }
        Ok(ids)
    }
}

/// The CA issues each node's service key (`nodes/<id>/service.key`) a `node_service`
/// credential naming its institution, unless it already holds one.
fn credential_service_keys(dir: &Path, genesis: &Genesis, client: &Client) -> Result<(), String> {
    let ca = read_key(&dir.join("ca.key"))?;
    let s = Seeder { client, chain_id: genesis.chain_id.clone() };
    let now = now_ms();
    let mut ops = Vec::new();
    for i in &genesis.institutions {
        let path = node_dir(dir, &i.id).join("service.key");
        if !path.exists() {
            continue; // a devnet created before service keys: the node signs with its admin key
        }
        let key = read_key(&path)?.public();
        let ident = client.get_as(&ca, &format!("/v1/identities/{}", key.to_hex()))?;
        if !ident["credential"].is_null() {
            continue;
        }
        ops.push(Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: key,
                role: Role::NodeService,
                institution: i.id.clone(),
                display_name: format!("{} node service", i.id),
                valid_from_ms: now.saturating_sub(60_000),
                valid_until_ms: now + 10 * 365 * 86_400_000,
            },
        }));
    }
    if !ops.is_empty() {
        s.run(&ca, ops)?;
    }
    Ok(())
}

/// Seeds demo identities: doctors, a regulator, a pharmacist, two patients, one attestation.
fn seed(dir: &Path, genesis: &Genesis, client: &Client) -> Result<serde_json::Value, String> {
    let demo = dir.join("demo");
    std::fs::create_dir_all(&demo).map_err(|e| e.to_string())?;
    let ca = read_key(&dir.join("ca.key"))?;
    let secret_hex = std::fs::read_to_string(dir.join("consortium.secret")).map_err(|e| e.to_string())?;
    let secret: [u8; 32] = hex::decode(secret_hex.trim())
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "consortium secret must be 32 bytes".to_string())?;
    let s = Seeder { client, chain_id: genesis.chain_id.clone() };
    let inst = |i: usize| genesis.institutions[i].id.clone();
    let year = 365 * 86_400_000u64;
    let now = now_ms();
    let people: Vec<(&str, Role, usize, &str)> = vec![
        ("dr-alice", Role::Doctor, 0, "Dr. Alice Martin (cardiology)"),
        ("dr-bob", Role::Doctor, 1, "Dr. Bob Chen (emergency medicine)"),
        ("dr-dara", Role::Doctor, 2, "Dr. Dara Osei (general practice)"),
        ("dr-erin", Role::Doctor, 1, "Dr. Erin Walsh (on call)"),
        ("regulator-rita", Role::Regulator, 3, "Rita Okafor (health inspector)"),
        ("pharmacist-pat", Role::Pharmacy, 2, "Clinic C dispensary"),
        ("researcher-rui", Role::Researcher, 0, "Rui Costa (epidemiology)"),
    ];
    let mut identities = serde_json::Map::new();
    let mut ops = Vec::new();
    for (name, role, i, display) in &people {
        let k = Keypair::generate();
        write_key(&demo.join(format!("{name}.key")), &k)?;
        identities.insert(
            name.to_string(),
            json!({ "key": k.public().to_hex(), "role": role.name(), "institution": inst(*i) }),
        );
        ops.push(Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: k.public(),
                role: *role,
                institution: inst(*i),
                display_name: display.to_string(),
                valid_from_ms: now.saturating_sub(60_000),
                valid_until_ms: now + year,
            },
        }));
    }
    // Regions, which referral statistics group by: the rural clinic refers up to the city.
    for (i, region) in ["metro-north", "metro-south", "rural-east", "metro-north"].iter().enumerate() {
        if let Some(g) = genesis.institutions.get(i) {
            ops.push(Operation::Identity(IdentityOp::SetRegion {
                institution: g.id.clone(),
                region: region.to_string(),
            }));
        }
    }
    s.run(&ca, ops)?;
    // Patients: the pseudonym is derived by the CA from national id + medical record number;
    // neither ever leaves this process.
    let patients =
        [("patient-1", 0usize, "NID-1985-0001", "MRN-A-000917"), ("patient-2", 1, "NID-1972-0042", "MRN-B-004411")];
    for (name, i, national, mrn) in patients {
        let k = Keypair::generate();
        write_key(&demo.join(format!("{name}.key")), &k)?;
        let pseudonym = patient_pseudonym(&secret, national, mrn);
        let admin = read_key(&node_dir(dir, &inst(i)).join("admin.key"))?;
        s.run(
            &admin,
            vec![Operation::Identity(IdentityOp::RegisterPatient {
                subject: k.public(),
                pseudonym,
                valid_until_ms: now + 10 * year,
            })],
        )?;
        identities.insert(name.to_string(), json!({ "key": k.public().to_hex(), "role": "patient", "institution": inst(i), "pseudonym": pseudonym.to_hex() }));
    }
    let alice = read_key(&demo.join("dr-alice.key"))?;
    let doc = b"Discharge summary template v1 (demo document, no patient data)";
    let ids = s.run(
        &alice,
        vec![Operation::Identity(IdentityOp::Attest {
            digest: medledger_types::hash::sha256(&[doc]),
            label: "discharge-template-v1".into(),
        })],
    )?;
    let records = seed_records(&demo, genesis, &identities)?;
    let mut care = seed_care(&demo, genesis, &identities, &records)?;
    care["wearable"] = seed_wearable(dir, genesis, &identities)?;
    let drugs = seed_drugs(&s, &ca, &demo, genesis, &mut identities)?;
    let summary = json!({ "identities": identities, "demo_attestation_tx": ids[0].to_hex(), "records": records, "drugs": drugs, "care": care });
    std::fs::write(demo.join("seeded.json"), serde_json::to_string_pretty(&summary).expect("json"))
        .map_err(|e| e.to_string())?;
    Ok(summary)
}

/// Demo supply chain: a manufacturer and a distributor join the consortium; a product with two
/// lots. Lot A travels manufacturer → distributor → Clinic C's dispensary in a case and one pack
/// is dispensed; lot B is recalled by the regulator; one scanned serial is a counterfeit, and its
/// verification leaves an alert.
fn seed_drugs(
    s: &Seeder<'_>,
    ca: &Keypair,
    demo: &Path,
    genesis: &Genesis,
    identities: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    use medledger_types::drugs::{DrugsOp as D, Epc, EventMeta, ProductSpec, Serial};
    let (maker_inst, dist_inst, pharmacy_inst) = ("acme-pharma", "medsupply", genesis.institutions[2].id.clone());
    let now = now_ms();
    let year = 365 * 86_400_000u64;
    let mut ops = vec![
        Operation::Identity(IdentityOp::AddInstitution {
            id: maker_inst.into(),
            name: "Acme Pharma (manufacturer)".into(),
        }),
        Operation::Identity(IdentityOp::AddInstitution {
            id: dist_inst.into(),
            name: "MedSupply (wholesale distributor)".into(),
        }),
        Operation::Drugs(D::BindPrefix { company_prefix: "0614141".into(), institution: maker_inst.into() }),
    ];
    for (name, role, inst, display) in [
        ("maker-mia", Role::Manufacturer, maker_inst, "Mia Novak (Acme Pharma packaging)"),
        ("distributor-dan", Role::Distributor, dist_inst, "Dan Osei (MedSupply warehouse)"),
    ] {
        let k = Keypair::generate();
        write_key(&demo.join(format!("{name}.key")), &k)?;
        identities.insert(name.into(), json!({ "key": k.public().to_hex(), "role": role.name(), "institution": inst }));
        ops.push(Operation::Identity(IdentityOp::IssueCredential {
            spec: CredentialSpec {
                subject: k.public(),
                role,
                institution: inst.into(),
                display_name: display.into(),
                valid_from_ms: now.saturating_sub(60_000),
                valid_until_ms: now + year,
            },
        }));
    }
    s.run(ca, ops)?;
    let key = |name: &str| read_key(&demo.join(format!("{name}.key")));
    let (maker, dist, pharmacist, regulator) =
        (key("maker-mia")?, key("distributor-dan")?, key("pharmacist-pat")?, key("regulator-rita")?);
    let gtin = "10614141073464";
    let case = "106141412345678908";
    // Two years from now, as YYMMDD.
    let exp = medledger_types::time::rfc3339_ms(now + 2 * year);
    let expiry = format!("{}{}{}", &exp[2..4], &exp[5..7], &exp[8..10]);
    let lot_a: Vec<String> = (1..=6).map(|i| format!("A{i:04}")).collect();
    let lot_b: Vec<String> = (1..=3).map(|i| format!("B{i:04}")).collect();
    let pack = |s: &str| Epc::sgtin(gtin, s);
    let m = || EventMeta::now(now_ms());
    let commission = |lot: &str, serials: &[String]| D::Commission {
        meta: m(),
        gtin: gtin.into(),
        lot: lot.into(),
        expiry: expiry.clone(),
        serials: serials.iter().map(|x| Serial(x.clone())).collect(),
    };
    let product = ProductSpec {
        gtin: gtin.into(),
        name: "Amoxicillin 500 mg capsules".into(),
        form: "capsule".into(),
        strength: "500 mg".into(),
        pack_size: 21,
        national_code: String::new(),
    };
    let drug = |ops: Vec<D>| ops.into_iter().map(Operation::Drugs).collect::<Vec<_>>();
    s.run(
        &maker,
        drug(vec![
            D::RegisterProduct { product },
            commission("LOTA1", &lot_a),
            commission("LOTB1", &lot_b),
            D::Aggregate { meta: m(), parent: case.into(), children: lot_a.iter().map(|x| pack(x)).collect() },
            D::Ship { meta: m(), epcs: vec![Epc::Sscc(case.into())], to: dist_inst.into() },
        ]),
    )?;
    let first_three: Vec<Epc> = lot_a[..3].iter().map(|x| pack(x)).collect();
    s.run(
        &dist,
        drug(vec![
            D::Receive { meta: m(), epcs: vec![Epc::Sscc(case.into())], from: maker_inst.into() },
            D::Disaggregate { meta: m(), parent: case.into(), children: vec![] },
            D::Ship { meta: m(), epcs: first_three.clone(), to: pharmacy_inst.clone() },
        ]),
    )?;
    s.run(
        &pharmacist,
        drug(vec![
            D::Receive { meta: m(), epcs: first_three, from: dist_inst.into() },
            D::Verify { epc: pack(&lot_a[0]), lot: Some("LOTA1".into()), expiry: Some(expiry.clone()) },
            D::Dispense { meta: m(), epc: pack(&lot_a[0]) },
            // A counterfeit: a serial the manufacturer never commissioned.
            D::Verify { epc: pack("X9931"), lot: Some("LOTA1".into()), expiry: Some(expiry.clone()) },
        ]),
    )?;
    s.run(
        &regulator,
        drug(vec![D::Recall { gtin: gtin.into(), lot: "LOTB1".into(), reason: "sterility test failure".into() }]),
    )?;
    let link = |serial: &str, lot: &str| format!("https://id.gs1.org/01/{gtin}/10/{lot}/21/{serial}?17={expiry}");
    Ok(json!({
        "gtin": gtin,
        "manufacturer": maker_inst,
        "distributor": dist_inst,
        "pharmacy": pharmacy_inst,
        "sellable": link(&lot_a[1], "LOTA1"),
        "dispensed": link(&lot_a[0], "LOTA1"),
        "recalled": link(&lot_b[0], "LOTB1"),
        "counterfeit": link("X9931", "LOTA1"),
        "case": case,
    }))
}

/// Demo clinical content. The values are distinctive on purpose: the PHI tests scan every
/// validator's stored bytes for them and must find none (only ciphertext leaves the client).
pub const DEMO_CLINICAL_MARKERS: [&str; 3] =
    ["persistent dry cough since the spring", "Systolic blood pressure", "atrial fibrillation follow-up"];

fn demo_observation(pseudonym: &str) -> serde_json::Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8480-6", "display": DEMO_CLINICAL_MARKERS[1] }] },
        "subject": { "reference": format!("Patient/{pseudonym}") },
        "effectiveDateTime": "2026-11-02T09:30:00Z",
        "valueQuantity": { "value": 141, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]" }
    })
}

fn demo_condition(pseudonym: &str) -> serde_json::Value {
    json!({
        "resourceType": "Condition",
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "code": { "text": "Chronic cough" },
        "subject": { "reference": format!("Patient/{pseudonym}") },
        "note": [{ "text": DEMO_CLINICAL_MARKERS[0] }]
    })
}

fn demo_encounter(pseudonym: &str) -> serde_json::Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory" },
        "subject": { "reference": format!("Patient/{pseudonym}") },
        "reasonCode": [{ "text": DEMO_CLINICAL_MARKERS[2] }]
    })
}

/// Demo records through the real client path (FHIR check, sealing, wrapping, anchors):
/// patient-1 has records at hospital A and hospital B, patient-2 at hospital B; patient-1's
/// consent lets Dr. Bob at hospital B read the record held by hospital A, and his read, forwarded
/// by hospital B's node to hospital A's, is on chain as an access event.
fn seed_records(
    demo: &Path,
    genesis: &Genesis,
    identities: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    use medledger_client::Session;
    use medledger_types::{action, ConsentTerms, Grantee, Hash, Purpose, Scope};
    let api = |i: usize| genesis.institutions[i].api_address.clone();
    let session = |name: &str, i: usize| -> Result<Session, String> {
        Ok(Session::for_genesis(&api(i), read_key(&demo.join(format!("{name}.key")))?, genesis))
    };
    let pseudonym = |name: &str| identities[name]["pseudonym"].as_str().unwrap_or("").to_string();
    let key_of = |name: &str| {
        medledger_types::PublicKey::from_hex(identities[name]["key"].as_str().unwrap_or("")).map_err(|e| e.to_string())
    };
    let (p1, p2) = (pseudonym("patient-1"), pseudonym("patient-2"));
    let p1h = Hash::from_hex(&p1).map_err(|e| e.to_string())?;
    let p2h = Hash::from_hex(&p2).map_err(|e| e.to_string())?;
    let patient1 = session("patient-1", 0)?;
    let patient2 = session("patient-2", 1)?;
    let alice = session("dr-alice", 0)?;
    let bob = session("dr-bob", 1)?;
    let grant = |p: &Session, grantee: medledger_types::PublicKey, actions: u8| -> Result<Hash, String> {
        let id = medledger_client::tx::new_id();
        let terms = ConsentTerms {
            grantee: Grantee::Person(grantee),
            actions,
            scope: Scope::All,
            purpose: Purpose::Treatment,
            expires_ms: None,
            roles: vec![],
        };
        p.transact(Operation::Consent(ConsentOp::GrantConsent { consent_id: id, terms: terms.clone() }))?;
        p.rewrap(&terms)?;
        Ok(id)
    };
    // Write consents for the treating doctors.
    grant(&patient1, key_of("dr-alice")?, action::ALL)?;
    grant(&patient1, key_of("dr-bob")?, action::WRITE)?;
    grant(&patient2, key_of("dr-bob")?, action::ALL)?;
    let bytes = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("json");
    let a_obs = alice.put(&p1h, &bytes(demo_observation(&p1)), None)?;
    let b_enc = bob.put(&p1h, &bytes(demo_encounter(&p1)), None)?;
    let b_cond = bob.put(&p2h, &bytes(demo_condition(&p2)), None)?;
    // patient-1 lets Dr. Bob (hospital B) read what hospital A holds; the grant re-wraps the key.
    let consent = grant(&patient1, key_of("dr-bob")?, action::READ)?;
    let a_id = Hash::from_hex(a_obs["record_id"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    let (_, read) = bob.get(&a_id, None, Purpose::Treatment, None)?;
    // The access log shows it once the holder's batch of access events commits.
    let access = read["access_event"].as_str().unwrap_or("").to_string();
    bob.wait_access_event(&access, Duration::from_secs(60))?;
    Ok(json!({
        "hospital_a_observation": a_obs["record_id"],
        "hospital_b_encounter": b_enc["record_id"],
        "hospital_b_condition": b_cond["record_id"],
        "consent_bob_reads_patient_1": consent.to_hex(),
        "bob_read_access_event": access,
    }))
}

/// Demo telemedicine: Dr. Dara at Clinic C (the rural clinic) refers patient-1 to hospital A
/// for cardiology, naming hospital B's encounter record; patient-1 approves, hospital A accepts
/// it as a remote consultation with Dr. Alice tomorrow, and patient-1 shares the record's key.
fn seed_care(
    demo: &Path,
    genesis: &Genesis,
    identities: &serde_json::Map<String, serde_json::Value>,
    records: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    use medledger_client::care::Proposal;
    use medledger_client::Session;
    use medledger_types::care::{CareOp, Mode};
    use medledger_types::Hash;
    let session = |name: &str, i: usize| -> Result<Session, String> {
        Ok(Session::for_genesis(
            &genesis.institutions[i].api_address,
            read_key(&demo.join(format!("{name}.key")))?,
            genesis,
        ))
    };
    let hex = |v: &serde_json::Value, what: &str| {
        Hash::from_hex(v.as_str().unwrap_or("")).map_err(|e| format!("{what}: {e}"))
    };
    let dara = session("dr-dara", 2)?;
    let alice = session("dr-alice", 0)?;
    let patient1 = session("patient-1", 0)?;
    let proposal = Proposal {
        patient: hex(&identities["patient-1"]["pseudonym"], "patient-1")?,
        doctor: dara.key.public(),
        to: genesis.institutions[0].id.clone(),
        specialty: "394579002".into(),
        records: vec![hex(&records["hospital_b_encounter"], "encounter")?],
    };
    let (id, _) = dara.propose_referral(proposal)?;
    patient1.care(CareOp::ApproveReferral { referral_id: id })?;
    let appointment = now_ms() + 86_400_000;
    alice.accept_referral(id, Mode::Remote, appointment, alice.key.public())?;
    let shared = patient1.share_referral(&id)?;
    Ok(json!({
        "referral": id.to_hex(),
        "from": genesis.institutions[2].id,
        "to": genesis.institutions[0].id,
        "status": "accepted",
        "mode": Mode::Remote.name(),
        "shared_versions": shared,
    }))
}

/// Demo remote monitoring: a wearable registered to patient-2 by Dr. Bob at hospital B, who is
/// responsible for the monitoring (SpO₂ scale 1, the rule `pulse > 130`, escalation after a
/// minute); Dr. Erin is hospital B's on-call doctor. The device's key is
/// `devices/wearable-patient-2.key` (outside `demo/`, which holds people's keys).
fn seed_wearable(
    dir: &Path,
    genesis: &Genesis,
    identities: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    use medledger_client::Session;
    use medledger_types::care::{CareOp, RuleText};
    use medledger_types::Hash;
    let b = &genesis.institutions[1];
    let session =
        |path: &Path| -> Result<Session, String> { Ok(Session::for_genesis(&b.api_address, read_key(path)?, genesis)) };
    let bob = session(&dir.join("demo/dr-bob.key"))?;
    let admin = session(&node_dir(dir, &b.id).join("admin.key"))?;
    let patient =
        Hash::from_hex(identities["patient-2"]["pseudonym"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    let erin = medledger_types::PublicKey::from_hex(identities["dr-erin"]["key"].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("devices")).map_err(|e| e.to_string())?;
    let key_file = dir.join("devices/wearable-patient-2.key");
    let device = Keypair::generate();
    write_key(&key_file, &device)?;
    let device_id = medledger_client::tx::new_id();
    bob.care(CareOp::RegisterDevice {
        device_id,
        patient,
        key: device.public(),
        model: "wrist pulse oximeter".into(),
    })?;
    bob.care(CareOp::SetMonitoring {
        patient,
        spo2_scale: 1,
        rules: vec![RuleText("pulse > 130".into())],
        escalate_after_ms: 60_000,
    })?;
    admin.care(CareOp::SetOnCall { doctor: erin })?;
    Ok(json!({
        "device": device_id.to_hex(),
        "key_file": key_file,
        "patient": "patient-2",
        "institution": b.id,
        "responsible": "dr-bob",
        "on_call": "dr-erin",
    }))
}

/// Streams the demo wearable's readings to hospital B (`device simulate`): a full NEWS2 set a
/// second, crossing into medium risk once a minute.
fn spawn_wearable(args: &DevnetArgs, genesis: &Genesis, ca_pem: &Path, key_file: &Path) -> Result<Node, String> {
    let log_path = args.dir.join("wearable.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the medledger binary: {e}"))?;
    let child = Command::new(exe)
        .arg("--genesis")
        .arg(args.dir.join("genesis.json"))
        .arg("--ca-cert")
        .arg(ca_pem)
        .args(["device", "simulate", "--node", &genesis.institutions[1].api_address, "--device-key"])
        .arg(key_file)
        .args(["--sets", "100000000", "--interval-ms", "1000", "--deteriorate-every", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start the wearable simulator: {e}"))?;
    Ok(Node { id: "wearable simulator".into(), api: String::new(), log: log_path, child })
}

pub fn run(args: DevnetArgs, json_out: bool) -> Result<(), String> {
    if args.validators < 4 {
        return Err(format!(
            "--validators must be at least 4 to tolerate one faulty validator (got {})",
            args.validators
        ));
    }
    if args.reset && args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).map_err(|e| format!("cannot reset {}: {e}", args.dir.display()))?;
    }
    let genesis_path = args.dir.join("genesis.json");
    let fresh = !genesis_path.exists();
    if fresh {
        init(&args)?;
    }
    let genesis = medledger_client::keys::read_genesis(&genesis_path)?;
    // The API and forwarding run over TLS under the consortium CA; this process trusts it too.
    let ca_pem = ensure_tls(&args.dir, &genesis)?;
    medledger_client::http::trust_consortium_ca(&ca_pem)?;
    for i in &genesis.institutions {
        for addr in [&i.p2p_address, &i.api_address] {
            if !port_free(addr) {
                return Err(format!("{addr} is in use (another devnet running?); stop it or pick --base-port"));
            }
        }
    }
    install_signal_handlers();
    let mut nodes = Vec::new();
    for inst in &genesis.institutions {
        match spawn_node(&args.dir, inst) {
            Ok(n) => nodes.push(n),
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e);
            }
        }
    }
    // Wait until every API answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..nodes.len() {
        let c = Client::new(&nodes[i].api);
        loop {
            if c.get("/v1/status").is_ok() {
                break;
            }
            if let Ok(Some(status)) = nodes[i].child.try_wait() {
                let msg =
                    format!("node {} exited ({status}) during startup:\n{}", nodes[i].id, tail(&nodes[i].log, 20));
                stop_all(&mut nodes);
                return Err(msg);
            }
            if Instant::now() > deadline || STOP.load(Ordering::SeqCst) {
                let msg = format!("node {} did not start within 60s; see {}", nodes[i].id, nodes[i].log.display());
                stop_all(&mut nodes);
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The seeder polls for commits as the CA, which may see every transaction.
    let ca_key = read_key(&args.dir.join("ca.key"))?;
    let client = Client::new(&genesis.institutions[0].api_address).with_key(ca_key);
    let seeded_path = args.dir.join("demo/seeded.json");
    if let Err(e) = credential_service_keys(&args.dir, &genesis, &client) {
        stop_all(&mut nodes);
        return Err(format!("cannot credential the nodes' service keys: {e}"));
    }
    let demo = if args.no_seed {
        None
    } else if seeded_path.exists() {
        std::fs::read_to_string(&seeded_path).ok().and_then(|t| serde_json::from_str(&t).ok())
    } else {
        match seed(&args.dir, &genesis, &client) {
            Ok(v) => Some(v),
            Err(e) => {
                stop_all(&mut nodes);
                return Err(format!("seeding demo data failed: {e}"));
            }
        }
    };
    let ui = match (&demo, args.no_ui) {
        (Some(_), false) => match spawn_ui(&args, &genesis, &ca_pem) {
            Ok(u) => {
                let addr = format!("http://{}", u.api);
                nodes.push(u);
                Some(addr)
            }
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e);
            }
        },
        _ => None,
    };
    // With the UI (the interactive devnet), the demo wearable streams its readings.
    let wearable = demo.as_ref().and_then(|d| d["care"]["wearable"]["key_file"].as_str().map(PathBuf::from));
    if let (Some(_), Some(key_file)) = (&ui, wearable) {
        match spawn_wearable(&args, &genesis, &ca_pem, &key_file) {
            Ok(w) => nodes.push(w),
            Err(e) => eprintln!("medledger: warning: {e}"),
        }
    }
    let status = client.get("/v1/status").unwrap_or_default();
    if json_out {
        println!(
            "{}",
            json!({
                "event": "ready",
                "chain_id": genesis.chain_id,
                "dir": args.dir,
                "height": status["height"],
                "ca_cert": ca_pem,
                "validators": genesis.institutions.iter().map(|i| json!({"id": i.id, "api": format!("https://{}", i.api_address), "p2p": i.p2p_address})).collect::<Vec<_>>(),
                "demo": demo,
                "ui": ui,
            })
        );
    } else {
        println!(
            "MedLedger devnet `{}` ({} validators, {}) at height {}",
            genesis.chain_id,
            genesis.institutions.len(),
            if fresh { "new chain" } else { "resumed from disk" },
            status["height"]
        );
        for i in &genesis.institutions {
            println!("  {:<18} API https://{:<16} p2p {}", i.id, i.api_address, i.p2p_address);
        }
        if let Some(d) = &demo {
            println!("demo identities (keys in {}):", args.dir.join("demo").display());
            for (name, v) in d["identities"].as_object().into_iter().flatten() {
                println!(
                    "  {:<16} {:<18} {}  {}",
                    name,
                    v["role"].as_str().unwrap_or(""),
                    v["institution"].as_str().unwrap_or(""),
                    super::short(&v["key"])
                );
            }
        }
        if let Some(r) = demo.as_ref().map(|d| &d["records"]).filter(|r| !r.is_null()) {
            println!(
                "demo records: hospital A holds {} (patient-1); hospital B holds {} (patient-1) and {} (patient-2)",
                r["hospital_a_observation"].as_str().unwrap_or(""),
                r["hospital_b_encounter"].as_str().unwrap_or(""),
                r["hospital_b_condition"].as_str().unwrap_or("")
            );
            println!(
                "  consent {} lets dr-bob (hospital B) read hospital A's record; his read is access event {}",
                r["consent_bob_reads_patient_1"].as_str().unwrap_or(""),
                r["bob_read_access_event"].as_str().unwrap_or("")
            );
        }
        if let Some(c) = demo.as_ref().map(|d| &d["care"]).filter(|c| !c.is_null()) {
            println!(
                "demo referral {}: {} refers patient-1 to {} (accepted, remote consultation with dr-alice)",
                c["referral"].as_str().unwrap_or(""),
                c["from"].as_str().unwrap_or(""),
                c["to"].as_str().unwrap_or("")
            );
            if let Some(w) = c["wearable"].as_object() {
                println!(
                    "demo wearable {} for patient-2 at hospital-b (dr-bob responsible, dr-erin on call){}",
                    w["device"].as_str().unwrap_or(""),
                    if ui.is_some() { "; streaming, see wearable.log" } else { "" }
                );
            }
        }
        if let Some(d) = demo.as_ref().map(|d| &d["drugs"]).filter(|d| !d.is_null()) {
            println!(
                "demo drugs: GTIN {} by {} via {} to {}; scan one with `medledger drug verify URL`:",
                d["gtin"].as_str().unwrap_or(""),
                d["manufacturer"].as_str().unwrap_or(""),
                d["distributor"].as_str().unwrap_or(""),
                d["pharmacy"].as_str().unwrap_or("")
            );
            for what in ["sellable", "dispensed", "recalled", "counterfeit"] {
                println!("  {what:<12} {}", d[what].as_str().unwrap_or(""));
            }
        }
        println!("TLS: nodes present certificates from the consortium CA, and every answer the CLI acts on is");
        println!("verified against the genesis validators; outside this directory, let the CLI trust both with");
        println!("  export MEDLEDGER_CA_CERT={}", ca_pem.display());
        println!("  export MEDLEDGER_GENESIS={}", args.dir.join("genesis.json").display());
        println!("try: medledger query --node {} status", genesis.institutions[0].api_address);
        if let Some(u) = &ui {
            println!("web UI: open {u} (every demo identity; switch with \"Acting as\"); explorer at {u}/explorer");
        }
        println!("devnet ready; Ctrl-C stops every validator (data stays in {})", args.dir.display());
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut reported = vec![false; nodes.len()];
    while !STOP.load(Ordering::SeqCst) {
        for (n, r) in nodes.iter_mut().zip(reported.iter_mut()) {
            if !*r {
                if let Ok(Some(status)) = n.child.try_wait() {
                    if n.id == "web UI" {
                        eprintln!("medledger: warning: the web UI exited ({status}). Log: {}", n.log.display());
                    } else {
                        eprintln!(
                            "medledger: warning: validator {} exited ({status}); the consortium tolerates one failure. Log: {}; it ends:\n{}",
                            n.id,
                            n.log.display(),
                            tail(&n.log, 20)
                        );
                    }
                    *r = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stopping validators...");
    stop_all(&mut nodes);
    eprintln!("stopped; run `medledger devnet --dir {}` to resume", args.dir.display());
    Ok(())
}
