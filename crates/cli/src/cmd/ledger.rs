//! `medledger tx`: build, sign and submit operations.

use super::consent::{terms, TermsArgs};
use super::{parse_subject, print};
use clap::{Args, Subcommand};
use medledger_client::keys::{read_genesis, read_key};
use medledger_client::session::hash_arg;
use medledger_client::tx::{new_id, now_ms, submit, wait_committed};
use medledger_client::{Client, Session};
use medledger_node::api::ProofBundle;
use medledger_types::{ConsentOp, IdentityOp};
use medledger_types::{CredentialSpec, Hash, Keypair, Operation, PublicKey, Role, Signature};
use serde_json::json;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const DAY_MS: u64 = 86_400_000;

#[derive(Args, Debug)]
pub struct TxArgs {
    /// Node API address.
    #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
    pub node: String,
    /// Key file of the signer.
    #[arg(long)]
    pub key: PathBuf,
    /// Wait until the transaction is committed and print its receipt.
    #[arg(long)]
    pub wait: bool,
    #[command(subcommand)]
    pub op: TxOp,
}

#[derive(Subcommand, Debug)]
pub enum TxOp {
    /// Anchor the SHA-256 of a document (or a given digest) on chain.
    Attest {
        #[arg(long, conflicts_with = "digest", required_unless_present = "digest")]
        file: Option<PathBuf>,
        #[arg(long)]
        digest: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// CA: bind a key to a role at an institution.
    IssueCredential {
        /// Key file or hex public key of the holder.
        #[arg(long)]
        subject: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        institution: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
    },
    /// CA or institution admin: revoke a credential.
    Revoke {
        #[arg(long)]
        subject: String,
        #[arg(long)]
        reason: String,
    },
    /// Institution admin: register a patient key under a pseudonym (see `medledger ca pseudonym`).
    RegisterPatient {
        #[arg(long)]
        subject: String,
        #[arg(long)]
        pseudonym: String,
        #[arg(long, default_value_t = 3650)]
        valid_days: u64,
    },
    /// Patient (rotation), or the CA or an admin of the patient's institution (recovery of a lost
    /// key): move a patient to a new key. The new key proves possession: give its key file, or
    /// its public key and the proof printed by `medledger rotation-proof` on the new device.
    RotatePatientKey {
        #[arg(long)]
        pseudonym: String,
        /// The new key's file (the proof is made here).
        #[arg(long, conflicts_with_all = ["new_public", "proof"])]
        new_key: Option<PathBuf>,
        /// The new public key (hex), with `--proof`.
        #[arg(long, requires = "proof")]
        new_public: Option<String>,
        /// The new key's possession proof (hex), from `medledger rotation-proof`.
        #[arg(long, requires = "new_public")]
        proof: Option<String>,
    },
    /// CA: admit a new member institution.
    AddInstitution {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// CA, regulator, or an institution admin for its own institution: place an institution in
    /// a region (a code such as `rural-east`; referral statistics group by it).
    SetRegion {
        #[arg(long)]
        institution: String,
        #[arg(long)]
        region: String,
    },
    /// Patient: grant a consent (prints its id).
    GrantConsent {
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Patient: revoke a consent.
    RevokeConsent {
        #[arg(long)]
        id: String,
    },
    /// Doctor, regulator, researcher or insurer: ask a patient (by pseudonym) for access.
    RequestAccess {
        #[arg(long)]
        patient: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Patient: approve or decline an access request.
    RespondAccess {
        #[arg(long)]
        id: String,
        #[arg(long, conflicts_with = "decline")]
        approve: bool,
        #[arg(long)]
        decline: bool,
    },
}

/// The operation `op` describes, signed later by `key`. Sealing a reason and proving a new key
/// need the chain (readers' keys, the chain id, the current patient key): `s` reaches it, and
/// verifies what the nodes say.
pub fn build_op(op: &TxOp, s: &Session, key: &Keypair) -> Result<Operation, String> {
    Ok(match op {
        TxOp::Attest { file, digest, label } => {
            let digest = match (file, digest) {
                (Some(f), _) => {
                    let bytes = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                    medledger_types::hash::sha256(&[&bytes])
                }
                (None, Some(d)) => Hash::from_hex(d).map_err(|e| format!("--digest: {e}"))?,
                (None, None) => return Err("give --file or --digest".into()),
            };
            Operation::Identity(IdentityOp::Attest { digest, label: label.clone() })
        }
        TxOp::IssueCredential { subject, role, institution, name, valid_days } => {
            let now = now_ms();
            Operation::Identity(IdentityOp::IssueCredential {
                spec: CredentialSpec {
                    subject: parse_subject(subject)?,
                    role: Role::parse(role)?,
                    institution: institution.clone(),
                    display_name: name.clone(),
                    valid_from_ms: now.saturating_sub(60_000),
                    valid_until_ms: now + valid_days * DAY_MS,
                },
            })
        }
        TxOp::Revoke { subject, reason } => Operation::Identity(IdentityOp::RevokeCredential {
            subject: parse_subject(subject)?,
            reason: reason.clone(),
        }),
        TxOp::RegisterPatient { subject, pseudonym, valid_days } => Operation::Identity(IdentityOp::RegisterPatient {
            subject: parse_subject(subject)?,
            pseudonym: Hash::from_hex(pseudonym).map_err(|e| format!("--pseudonym: {e}"))?,
            valid_until_ms: now_ms() + valid_days * DAY_MS,
        }),
        TxOp::RotatePatientKey { pseudonym, new_key, new_public, proof } => {
            let pseudonym = Hash::from_hex(pseudonym).map_err(|e| format!("--pseudonym: {e}"))?;
            let (new_key, proof) = match (new_key, new_public, proof) {
                (Some(f), _, _) => {
                    let new = read_key(f)?;
                    (new.public(), rotation_proof(s, &new, &pseudonym)?)
                }
                (None, Some(h), Some(p)) => {
                    let b = hex::decode(p.trim()).map_err(|e| format!("--proof: {e}"))?;
                    (
                        PublicKey::from_hex(h).map_err(|e| format!("--new-public: {e}"))?,
                        Signature(b.try_into().map_err(|_| "--proof must be 64 bytes of hex".to_string())?),
                    )
                }
                _ => return Err("give --new-key FILE, or --new-public HEX with --proof HEX".into()),
            };
            Operation::Identity(IdentityOp::RotatePatientKey { pseudonym, new_key, proof })
        }
        TxOp::AddInstitution { id, name } => {
            Operation::Identity(IdentityOp::AddInstitution { id: id.clone(), name: name.clone() })
        }
        TxOp::SetRegion { institution, region } => {
            Operation::Identity(IdentityOp::SetRegion { institution: institution.clone(), region: region.clone() })
        }
        TxOp::GrantConsent { terms: t } => {
            Operation::Consent(ConsentOp::GrantConsent { consent_id: new_id(), terms: terms(t)? })
        }
        TxOp::RevokeConsent { id } => Operation::Consent(ConsentOp::RevokeConsent {
            consent_id: Hash::from_hex(id).map_err(|e| format!("--id: {e}"))?,
        }),
        // The reason goes on chain sealed for the patient, the regulators and the requester.
        TxOp::RequestAccess { patient, reason, terms: t } => {
            let (request_id, patient) = (new_id(), Hash::from_hex(patient).map_err(|e| format!("--patient: {e}"))?);
            let reason = s.seal_reason(reason, &patient, &request_id, &[key.public()])?;
            Operation::Consent(ConsentOp::RequestAccess { request_id, patient, terms: terms(t)?, reason })
        }
        TxOp::RespondAccess { id, approve, decline } => {
            if approve == decline {
                return Err("give exactly one of --approve or --decline".into());
            }
            Operation::Consent(ConsentOp::RespondAccess {
                request_id: Hash::from_hex(id).map_err(|e| format!("--id: {e}"))?,
                approve: *approve,
            })
        }
    })
}

/// The possession proof of `new` for becoming `pseudonym`'s key, over the chain id and the
/// patient's current key as proven on chain.
pub fn rotation_proof(s: &Session, new: &Keypair, pseudonym: &Hash) -> Result<Signature, String> {
    let current = s.patient_key(pseudonym)?;
    let msg = medledger_types::identity::rotation_message(&s.chain_id, pseudonym, &current, &new.public());
    Ok(new.sign(medledger_types::hash::domain::KEY_ROTATION_SIGNATURE, &msg))
}

/// `medledger rotation-proof`: the new device proves it holds the new key, offline.
pub fn print_rotation_proof(
    new_key: &std::path::Path,
    chain_id: &str,
    pseudonym: &str,
    current: &str,
    json_out: bool,
) -> Result<(), String> {
    let new = read_key(new_key)?;
    let pseudonym = Hash::from_hex(pseudonym).map_err(|e| format!("--pseudonym: {e}"))?;
    let current = PublicKey::from_hex(current).map_err(|e| format!("--current: {e}"))?;
    let msg = medledger_types::identity::rotation_message(chain_id, &pseudonym, &current, &new.public());
    let proof = new.sign(medledger_types::hash::domain::KEY_ROTATION_SIGNATURE, &msg);
    if json_out {
        println!("{}", json!({ "new_public": new.public().to_hex(), "proof": hex::encode(proof.0) }));
    } else {
        println!("--new-public {} --proof {}", new.public().to_hex(), hex::encode(proof.0));
    }
    Ok(())
}

pub fn run(args: TxArgs, json_out: bool) -> Result<(), String> {
    let key = read_key(&args.key)?;
    let session = Session::open(&args.node, key.clone())?;
    let op = build_op(&args.op, &session, &key)?;
    let client = &session.client;
    let created = match &op {
        Operation::Consent(ConsentOp::GrantConsent { consent_id, .. }) => Some(("consent", *consent_id)),
        Operation::Consent(ConsentOp::RequestAccess { request_id, .. }) => Some(("request", *request_id)),
        _ => None,
    };
    let (tx, _) = submit(client, &key, op)?;
    if let (Some((what, id)), false) = (created, json_out) {
        println!("{what} id {id}");
    }
    if !args.wait {
        if json_out {
            let mut v = json!({ "tx_id": tx.id().to_hex(), "status": "pending" });
            if let Some((what, id)) = created {
                v[format!("{what}_id")] = json!(id.to_hex());
            }
            println!("{v}");
        } else {
            println!("submitted {}", tx.id());
        }
        return Ok(());
    }
    let v = wait_committed(client, &tx.id(), Duration::from_secs(60))?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let r = &v["receipt"]["outcome"];
    println!("transaction {} committed at height {} (index {})", tx.id(), v["height"], v["index"]);
    match r["status"].as_str() {
        Some("applied") => {
            println!("applied");
            for e in r["events"].as_array().into_iter().flatten() {
                let attrs: Vec<String> = e["attrs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|kv| format!("{}={}", kv[0].as_str().unwrap_or(""), kv[1].as_str().unwrap_or("")))
                    .collect();
                println!("  event {} {}", e["kind"].as_str().unwrap_or(""), attrs.join(" "));
            }
            Ok(())
        }
        _ => Err(format!("rejected ({}): {}", r["code"].as_str().unwrap_or("?"), r["reason"].as_str().unwrap_or(""))),
    }
}

#[derive(Subcommand, Debug)]
pub enum Query {
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
    /// The access event logging a read (the read's `access_event` id), once it is on chain.
    AccessEvent { id: String },
    /// An inclusion proof for a committed transaction.
    Proof {
        id: String,
        /// Write the proof bundle to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A state proof (`medledger-state-proof/1`), verified here against the genesis file and
    /// optionally saved for `medledger verify --state-proof`.
    StateProof {
        #[command(subcommand)]
        what: ProofOf,
        /// Write the proof to this file.
        #[arg(long, global = true)]
        out: Option<PathBuf>,
    },
}

/// What a state proof is about.
#[derive(Subcommand, Debug)]
pub enum ProofOf {
    /// The genesis validators.
    Validators,
    /// A key's credential and its revocation.
    Identity { key: String },
    /// The key bound to a patient pseudonym.
    Patient { pseudonym: String },
    /// A patient's consents and their status.
    Consents { pseudonym: String },
    /// The regulators in force.
    Regulators,
    /// A record's anchored versions.
    Record { id: String },
    /// The access event of a read request.
    AccessEvent { id: String },
}

impl ProofOf {
    fn path(&self) -> Result<String, String> {
        Ok(match self {
            ProofOf::Validators => "/v1/proofs/validators".into(),
            ProofOf::Identity { key } => format!("/v1/proofs/identities/{}", parse_subject(key)?.to_hex()),
            ProofOf::Patient { pseudonym } => {
                format!("/v1/proofs/patients/{}", hash_arg(pseudonym, "pseudonym")?.to_hex())
            }
            ProofOf::Consents { pseudonym } => {
                format!("/v1/proofs/patients/{}/consents", hash_arg(pseudonym, "pseudonym")?.to_hex())
            }
            ProofOf::Regulators => "/v1/proofs/regulators".into(),
            ProofOf::Record { id } => format!("/v1/proofs/records/{}", hash_arg(id, "record id")?.to_hex()),
            ProofOf::AccessEvent { id } => format!("/v1/proofs/access-events/{}", hash_arg(id, "request id")?.to_hex()),
        })
    }
}

pub fn query(node: &str, key: Option<&std::path::Path>, what: Query, json_out: bool) -> Result<(), String> {
    let c = match (key, &what) {
        (_, Query::Status) => Client::new(node),
        (Some(k), _) => Client::new(node).with_key(read_key(k)?),
        (None, _) => {
            return Err("this query is answered only to a credential holder: give --key (or MEDLEDGER_KEY)".into())
        }
    };
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
                        super::short(&val["key"]),
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
            let key = parse_subject(&key)?;
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
                        super::short(&e["requester"]).chars().take(12).collect::<String>(),
                        e["purpose"].as_str().unwrap_or(""),
                        e["height"],
                        if e["reason"]["recipients"].as_array().is_some_and(|r| !r.is_empty()) {
                            "(reason sealed: `medledger audit` opens it for its readers)"
                        } else {
                            ""
                        }
                    );
                }
            });
        }
        Query::AccessEvent { id } => {
            let v = c.get(&format!("/v1/access-events/{id}"))?;
            print(json_out, &v, |v| {
                println!(
                    "access {} by {} for {} on record {} v{}, logged by {} ({}) at height {}",
                    v["outcome"].as_str().unwrap_or(""),
                    v["requester"].as_str().unwrap_or(""),
                    v["purpose"].as_str().unwrap_or(""),
                    v["record_id"].as_str().unwrap_or(""),
                    v["version"],
                    v["institution"].as_str().unwrap_or(""),
                    super::short(&v["recorded_by"]),
                    v["height"]
                )
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
        Query::StateProof { what, out } => {
            let k = key.ok_or("give --key")?;
            let session = Session::open(node, read_key(k)?)?;
            let a = session.proven(&what.path()?)?;
            let text = serde_json::to_string_pretty(&a.proof).map_err(|e| e.to_string())?;
            if let Some(path) = &out {
                std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            let summary = json!({
                "node": a.node, "height": a.height, "entries": a.proof.entries.len(),
                "out": out.as_ref().map(|p| p.display().to_string()),
            });
            print(json_out, &summary, |_| {
                println!("verified: {} state entries at height {} from {}", a.proof.entries.len(), a.height, a.node);
                match &out {
                    Some(p) => println!("proof written to {}", p.display()),
                    None => println!("{text}"),
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

pub fn verify(
    genesis: PathBuf,
    data_dir: Option<PathBuf>,
    proof: Option<PathBuf>,
    state_proof: Option<PathBuf>,
    json_out: bool,
) -> Result<(), String> {
    let g = read_genesis(&genesis)?;
    if let Some(p) = state_proof {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let proof: medledger_types::StateProof =
            serde_json::from_str(&text).map_err(|e| format!("{} is not a state proof: {e}", p.display()))?;
        let v = proof.verify(&g).map_err(|e| format!("{}: {e}", p.display()))?;
        let entries: serde_json::Map<String, Value> = v
            .entries
            .iter()
            .map(|(k, val)| {
                (String::from_utf8_lossy(k).into_owned(), val.as_ref().map_or(Value::Null, |b| json!(hex::encode(b))))
            })
            .collect();
        let out = json!({
            "ok": true,
            "height": v.height,
            "block_hash": v.block_hash.to_hex(),
            "state_root": v.state_root.to_hex(),
            "certified_height": proof.certified_height,
            "entries": entries,
        });
        print(json_out, &out, |_| {
            println!(
                "ok: {} state entries proven at height {} (state root {}), finalized by a quorum certificate at height {}",
                v.entries.len(),
                v.height,
                v.state_root,
                proof.certified_height
            );
            for (k, val) in &v.entries {
                match val {
                    Some(b) => println!("  {}  = {} bytes", String::from_utf8_lossy(k), b.len()),
                    None => println!("  {}  absent", String::from_utf8_lossy(k)),
                }
            }
        });
        return Ok(());
    }
    if let Some(p) = proof {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let bundle: ProofBundle =
            serde_json::from_str(&text).map_err(|e| format!("{} is not a proof bundle: {e}", p.display()))?;
        let msg = medledger_node::verify::verify_proof(&g, &bundle)?;
        print(json_out, &json!({ "ok": true, "message": msg }), |_| println!("ok: {msg}"));
        return Ok(());
    }
    let dir = data_dir.ok_or("give --data-dir, --proof or --state-proof")?;
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
