//! `medledger`: the MedLedger command line.

mod bench;
mod devnet;
mod http;
mod readbench;
mod records;
mod txcmd;

use clap::{Parser, Subcommand};
use http::Client;
use medledger_node::api::ProofBundle;
use medledger_node::run::{read_genesis, read_key, read_public_key, write_key, NodeConfig};
use medledger_types::{genesis::GenesisInstitution, patient_pseudonym, Genesis, Keypair};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "medledger", version, about = "MedLedger: a permissioned medical data and resource ledger")]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Generate an ed25519 key file (mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Build a consortium genesis file from institution keys.
    Genesis {
        #[arg(long)]
        chain_id: String,
        /// Key file (public part is enough) of the certification authority.
        #[arg(long)]
        ca: PathBuf,
        /// `id,name,validator-key-file,admin-key-file,p2p-addr,api-addr`; repeat for each institution (at least 4).
        #[arg(long = "institution", required = true)]
        institutions: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one validator from a config file.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a local consortium of validator processes with demo data.
    Devnet(devnet::DevnetArgs),
    /// Sign and submit an operation.
    Tx(txcmd::TxArgs),
    /// Medical records: put, get, history, review amendments, export as a FHIR Bundle.
    Record {
        #[command(subcommand)]
        cmd: records::RecordCmd,
    },
    /// Patient consents: grant (re-wrapping keys for the grantee), revoke, list.
    Consent {
        #[command(subcommand)]
        cmd: records::ConsentCmd,
    },
    /// Access requests: request, approve, decline, list.
    Access {
        #[command(subcommand)]
        cmd: records::AccessCmd,
    },
    /// Audit the on-chain access events (patients: their own; regulators: all), as JSON or FHIR.
    Audit(records::AuditArgs),
    /// Patient: ask the holder to erase a record (the hashes stay on chain).
    Erase(records::EraseArgs),
    /// Read chain data from a node.
    Query {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[command(subcommand)]
        what: Query,
    },
    /// Check a stored chain offline (links, roots, signatures, certificates, re-execution), or one proof file.
    Verify {
        #[arg(long)]
        genesis: PathBuf,
        /// A node's data directory (stop the node first).
        #[arg(long, conflicts_with = "proof", required_unless_present = "proof")]
        data_dir: Option<PathBuf>,
        /// A proof file from `medledger query proof --out`.
        #[arg(long)]
        proof: Option<PathBuf>,
    },
    /// Certification-authority tools.
    Ca {
        #[command(subcommand)]
        what: Ca,
    },
    /// Load-test a running devnet and measure ed25519 verification rates.
    Bench(bench::BenchArgs),
    /// Analytics: DEA, kernel density, severity model, synthetic cohorts.
    Analytics {
        #[command(subcommand)]
        cmd: medledger_analytics::cli::AnalyticsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum Query {
    /// Height, validators and peers.
    Status,
    /// A block by height.
    Block { height: u64 },
    /// Recent blocks.
    Blocks {
        #[arg(long, default_value_t = 10)]
        limit: u64,
    },
    /// A transaction's status and receipt.
    Tx { id: String },
    /// A key's credential and next nonce.
    Identity { key: String },
    /// A patient by pseudonym.
    Patient { pseudonym: String },
    /// The role × operation permission table.
    Permissions,
    /// A medical record's versions and access events.
    Record { id: String },
    /// An inclusion proof for a committed transaction.
    Proof {
        id: String,
        /// Write the proof bundle to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum Ca {
    /// Derive a patient's pseudonymous on-chain id from national id and medical record number.
    Pseudonym {
        /// File with the consortium secret (64 hex characters).
        #[arg(long)]
        secret: PathBuf,
        #[arg(long)]
        national_id: String,
        #[arg(long)]
        medical_id: String,
    },
}

fn print(json_out: bool, v: &Value, human: impl FnOnce(&Value)) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        human(v)
    }
}

fn genesis_cmd(chain_id: String, ca: PathBuf, specs: Vec<String>, out: PathBuf) -> Result<Value, String> {
    let mut institutions = Vec::new();
    for s in &specs {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [id, name, vkey, akey, p2p, api] = parts.as_slice() else {
            return Err(format!("--institution `{s}`: expected 6 comma-separated fields: id,name,validator-key-file,admin-key-file,p2p-addr,api-addr"));
        };
        institutions.push(GenesisInstitution {
            id: id.to_string(),
            name: name.to_string(),
            validator_key: read_public_key(std::path::Path::new(vkey))?,
            admin_key: read_public_key(std::path::Path::new(akey))?,
            p2p_address: p2p.to_string(),
            api_address: api.to_string(),
        });
    }
    let g = Genesis { chain_id, genesis_time_ms: txcmd::now_ms(), ca_key: read_public_key(&ca)?, institutions };
    g.validate()?;
    std::fs::write(&out, serde_json::to_string_pretty(&g).expect("genesis serialises"))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(json!({ "genesis": out, "chain_id": g.chain_id, "validators": g.institutions.len(), "hash": g.hash().to_hex() }))
}

fn query(node: &str, what: Query, json_out: bool) -> Result<(), String> {
    let c = Client::new(node);
    match what {
        Query::Status => {
            let v = c.get("/v1/status")?;
            print(json_out, &v, |v| {
                println!(
                    "chain {}  height {}  hash {}",
                    v["chain_id"].as_str().unwrap_or(""),
                    v["height"],
                    v["hash"].as_str().unwrap_or("")
                );
                println!(
                    "state root {}  mempool {}  peers {}",
                    v["state_root"].as_str().unwrap_or(""),
                    v["mempool"],
                    v["peers"].as_array().map_or(0, Vec::len)
                );
                for val in v["validators"].as_array().into_iter().flatten() {
                    println!(
                        "  {:<18} {}  api {}",
                        val["institution"].as_str().unwrap_or(""),
                        &val["key"].as_str().unwrap_or("")[..16],
                        val["api_address"].as_str().unwrap_or("")
                    );
                }
            });
        }
        Query::Block { height } => {
            let v = c.get(&format!("/v1/blocks/{height}"))?;
            print(json_out, &v, |v| {
                let h = &v["header"];
                println!("block {} {}", h["height"], v["hash"].as_str().unwrap_or(""));
                println!(
                    "  parent {}  time {}  proposer {}",
                    h["parent"].as_str().unwrap_or(""),
                    h["timestamp_ms"],
                    h["proposer"].as_str().unwrap_or("")
                );
                println!(
                    "  tx root {}  state root {}",
                    h["tx_root"].as_str().unwrap_or(""),
                    h["state_root"].as_str().unwrap_or("")
                );
                println!(
                    "  {} transactions, certificate: {}",
                    h["tx_count"],
                    if v["certificate"].is_string() { "own" } else { "via descendant" }
                );
                for (id, r) in
                    v["tx_ids"].as_array().into_iter().flatten().zip(v["receipts"].as_array().into_iter().flatten())
                {
                    println!("    {} {}", id.as_str().unwrap_or(""), r["outcome"]["status"].as_str().unwrap_or(""));
                }
            });
        }
        Query::Blocks { limit } => {
            let v = c.get(&format!("/v1/blocks?limit={limit}"))?;
            print(json_out, &v, |v| {
                for b in v.as_array().into_iter().flatten() {
                    println!(
                        "{:>8}  {}  {} txs",
                        b["header"]["height"],
                        b["hash"].as_str().unwrap_or(""),
                        b["header"]["tx_count"]
                    );
                }
            });
        }
        Query::Tx { id } => {
            let v = c.get(&format!("/v1/txs/{id}"))?;
            print(json_out, &v, |v| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()));
        }
        Query::Identity { key } => {
            let key = txcmd::parse_subject(&key)?;
            let v = c.get(&format!("/v1/identities/{}", key.to_hex()))?;
            print(json_out, &v, |v| {
                println!("key {}", v["key"].as_str().unwrap_or(""));
                println!("  principal {}  next nonce {}", v["principal"].as_str().unwrap_or("(none)"), v["next_nonce"]);
                if let Some(p) = v["problem"].as_str() {
                    println!("  problem: {p}");
                }
                if v["credential"].is_object() {
                    let cr = &v["credential"];
                    println!(
                        "  {} at {} — {}",
                        cr["role"].as_str().unwrap_or(""),
                        cr["institution"].as_str().unwrap_or(""),
                        cr["display_name"].as_str().unwrap_or("")
                    );
                }
            });
        }
        Query::Record { id } => {
            let v = c.get(&format!("/v1/records/{id}"))?;
            print(json_out, &v, |v| {
                let r = &v["record"];
                println!(
                    "record {} ({}), current version {}",
                    r["id"].as_str().unwrap_or(""),
                    r["resource_type"].as_str().unwrap_or(""),
                    r["current_version"]
                );
                if r["erased_at"].is_u64() {
                    println!("  erased at height {}", r["erased_at"]);
                }
                for ver in v["versions"].as_array().into_iter().flatten() {
                    println!(
                        "  v{} {} held by {} ({}), sha256 {}",
                        ver["version"],
                        ver["status"].as_str().unwrap_or(""),
                        ver["holder"].as_str().unwrap_or(""),
                        ver["height"],
                        ver["content_hash"].as_str().unwrap_or("")
                    );
                }
                for e in v["access_events"].as_array().into_iter().flatten() {
                    println!(
                        "  access {:<11} by {} for {} at height {} {}",
                        e["outcome"].as_str().unwrap_or(""),
                        &e["requester"].as_str().unwrap_or("")[..12],
                        e["purpose"].as_str().unwrap_or(""),
                        e["height"],
                        e["reason"].as_str().unwrap_or("")
                    );
                }
            });
        }
        Query::Patient { pseudonym } => {
            let v = c.get(&format!("/v1/patients/{pseudonym}"))?;
            print(json_out, &v, |v| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()));
        }
        Query::Permissions => {
            let v = c.get("/v1/permissions")?;
            print(json_out, &v, |v| {
                let rows = v["table"].as_array().cloned().unwrap_or_default();
                if let Some(first) = rows.first() {
                    let ops: Vec<String> =
                        first["operations"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                    println!("{:<18} {}", "principal", ops.join("  "));
                    for r in &rows {
                        let cells: Vec<String> = ops
                            .iter()
                            .map(|o| {
                                format!(
                                    "{:^width$}",
                                    if r["operations"][o] == true { "yes" } else { "-" },
                                    width = o.len()
                                )
                            })
                            .collect();
                        println!("{:<18} {}", r["principal"].as_str().unwrap_or(""), cells.join("  "));
                    }
                }
            });
        }
        Query::Proof { id, out } => {
            let v = c.get(&format!("/v1/txs/{id}/proof"))?;
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap_or_default())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                if !json_out {
                    println!("proof written to {}", path.display());
                }
            }
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
        }
    }
    Ok(())
}

fn verify(genesis: PathBuf, data_dir: Option<PathBuf>, proof: Option<PathBuf>, json_out: bool) -> Result<(), String> {
    let g = read_genesis(&genesis)?;
    if let Some(p) = proof {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let bundle: ProofBundle =
            serde_json::from_str(&text).map_err(|e| format!("{} is not a proof bundle: {e}", p.display()))?;
        let msg = medledger_node::verify::verify_proof(&g, &bundle)?;
        print(json_out, &json!({ "ok": true, "message": msg }), |_| println!("ok: {msg}"));
        return Ok(());
    }
    let dir = data_dir.expect("clap requires --data-dir or --proof");
    let path = dir.join("ledger.redb");
    if !path.exists() {
        return Err(format!("{} has no ledger.redb", dir.display()));
    }
    let store = medledger_storage::Store::open(&path).map_err(|e| {
        let s = e.to_string();
        if s.contains("already open") || s.contains("lock") {
            format!("{} is in use by a running node; stop it or verify a copy", path.display())
        } else {
            s
        }
    })?;
    let r = medledger_node::verify::verify_chain(&g, &store)?;
    let v = json!({ "ok": true, "height": r.height, "blocks": r.blocks, "transactions": r.transactions, "certificates": r.certificates });
    print(json_out, &v, |_| {
        println!(
            "ok: {} blocks up to height {}, {} transactions, {} certificates; links, tx roots, signatures, state roots and certificates verified",
            r.blocks, r.height, r.transactions, r.certificates
        )
    });
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    let j = cli.json;
    match cli.cmd {
        Cmd::Keygen { out, force } => {
            if out.exists() && !force {
                return Err(format!("{} exists; pass --force to overwrite", out.display()));
            }
            let k = Keypair::generate();
            write_key(&out, &k)?;
            print(j, &json!({ "public_key": k.public().to_hex(), "file": out }), |_| {
                println!("{}", k.public().to_hex())
            });
        }
        Cmd::Genesis { chain_id, ca, institutions, out } => {
            let v = genesis_cmd(chain_id, ca, institutions, out)?;
            print(j, &v, |v| {
                println!(
                    "wrote {} ({} validators, hash {})",
                    v["genesis"].as_str().unwrap_or(""),
                    v["validators"],
                    v["hash"].as_str().unwrap_or("")
                )
            });
        }
        Cmd::Node { config } => medledger_node::run::run(NodeConfig::load(&config)?)?,
        Cmd::Devnet(args) => devnet::run(args, j)?,
        Cmd::Tx(args) => txcmd::run(args, j)?,
        Cmd::Record { cmd } => records::record(cmd, j)?,
        Cmd::Consent { cmd } => records::consent(cmd, j)?,
        Cmd::Access { cmd } => records::access(cmd, j)?,
        Cmd::Audit(a) => records::audit(a, j)?,
        Cmd::Erase(a) => records::erase(a, j)?,
        Cmd::Query { node, what } => query(&node, what, j)?,
        Cmd::Verify { genesis, data_dir, proof } => verify(genesis, data_dir, proof, j)?,
        Cmd::Ca { what: Ca::Pseudonym { secret, national_id, medical_id } } => {
            let text =
                std::fs::read_to_string(&secret).map_err(|e| format!("cannot read {}: {e}", secret.display()))?;
            let bytes: [u8; 32] = hex::decode(text.trim())
                .map_err(|e| format!("{}: not hex: {e}", secret.display()))?
                .try_into()
                .map_err(|_| format!("{}: the consortium secret must be 32 bytes", secret.display()))?;
            let p = patient_pseudonym(&bytes, &national_id, &medical_id);
            print(j, &json!({ "pseudonym": p.to_hex() }), |_| println!("{p}"));
        }
        Cmd::Bench(args) => bench::run(args, j)?,
        Cmd::Analytics { cmd } => {
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            medledger_analytics::cli::run(cmd, &mut out, &mut err).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = read_key; // keep the import used in every configuration
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medledger: error: {e}");
            ExitCode::from(2)
        }
    }
}
