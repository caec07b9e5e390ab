//! `medledger tx`: build, sign and submit operations.

use crate::http::Client;
use clap::{Args, Subcommand};
use medledger_node::run::{read_key, read_public_key};
use medledger_types::{ConsentOp, IdentityOp};
use medledger_types::{CredentialSpec, Hash, Keypair, Operation, PublicKey, Role, Transaction, Tx};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// CA: admit a new member institution.
    AddInstitution {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
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

/// Consent terms on the command line.
#[derive(Args, Debug)]
pub struct TermsArgs {
    /// Grantee: a key file or hex key, or `institution:<id>`.
    #[arg(long)]
    pub grantee: String,
    /// `read`, `write` or `read,write`.
    #[arg(long, default_value = "read")]
    pub actions: String,
    /// treatment, research, insurance or audit.
    #[arg(long, default_value = "treatment")]
    pub purpose: String,
    /// Limit to these FHIR resource types (comma-separated).
    #[arg(long, conflicts_with = "records")]
    pub types: Option<String>,
    /// Limit to these record ids (comma-separated hex).
    #[arg(long)]
    pub records: Option<String>,
    /// Days until the consent expires (none by default).
    #[arg(long, conflicts_with = "expires_at_ms")]
    pub days: Option<u64>,
    /// Exact expiry, in milliseconds since the Unix epoch.
    #[arg(long)]
    pub expires_at_ms: Option<u64>,
}

pub fn terms(t: &TermsArgs) -> Result<medledger_types::ConsentTerms, String> {
    use medledger_types::{action, Grantee, Purpose, Scope};
    let grantee = match t.grantee.strip_prefix("institution:") {
        Some(id) => Grantee::Institution(id.to_string()),
        None => Grantee::Person(parse_subject(&t.grantee)?),
    };
    let mut actions = 0u8;
    for a in t.actions.split(',').map(str::trim) {
        actions |= match a {
            "read" => action::READ,
            "write" => action::WRITE,
            other => return Err(format!("--actions: unknown action `{other}` (read, write)")),
        };
    }
    let scope = match (&t.types, &t.records) {
        (Some(ty), _) => Scope::ResourceTypes(ty.split(',').map(|s| s.trim().to_string()).collect()),
        (None, Some(r)) => Scope::Records(
            r.split(',')
                .map(|h| Hash::from_hex(h.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--records: {e}"))?,
        ),
        (None, None) => Scope::All,
    };
    let terms = medledger_types::ConsentTerms {
        grantee,
        actions,
        scope,
        purpose: Purpose::parse(&t.purpose)?,
        expires_ms: t.expires_at_ms.or(t.days.map(|d| now_ms() + d * DAY_MS)),
    };
    terms.check_limits()?;
    Ok(terms)
}

/// A fresh random id for consents, requests and records.
pub fn new_id() -> Hash {
    Hash(Keypair::generate().public().0)
}

/// A subject given as a key file path or a hex public key.
pub fn parse_subject(s: &str) -> Result<PublicKey, String> {
    let p = Path::new(s);
    if p.exists() {
        read_public_key(p)
    } else {
        PublicKey::from_hex(s).map_err(|e| format!("--subject `{s}` is neither a key file nor a hex key: {e}"))
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn build_op(op: &TxOp) -> Result<Operation, String> {
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
        TxOp::AddInstitution { id, name } => {
            Operation::Identity(IdentityOp::AddInstitution { id: id.clone(), name: name.clone() })
        }
        TxOp::GrantConsent { terms: t } => {
            Operation::Consent(ConsentOp::GrantConsent { consent_id: new_id(), terms: terms(t)? })
        }
        TxOp::RevokeConsent { id } => Operation::Consent(ConsentOp::RevokeConsent {
            consent_id: Hash::from_hex(id).map_err(|e| format!("--id: {e}"))?,
        }),
        TxOp::RequestAccess { patient, reason, terms: t } => Operation::Consent(ConsentOp::RequestAccess {
            request_id: new_id(),
            patient: Hash::from_hex(patient).map_err(|e| format!("--patient: {e}"))?,
            terms: terms(t)?,
            reason: reason.clone(),
        }),
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

/// Signs `op` with the next nonce of `key` (as the node reports it) and submits it.
pub fn submit(client: &Client, key: &Keypair, op: Operation) -> Result<(Tx, Value), String> {
    op.check_limits()?;
    let status = client.get("/v1/status")?;
    let chain_id = status["chain_id"].as_str().ok_or("node status has no chain_id")?.to_string();
    let ident = client.get(&format!("/v1/identities/{}", key.public().to_hex()))?;
    let nonce = ident["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
    submit_with_nonce(client, key, &chain_id, nonce, op)
}

pub fn submit_with_nonce(
    client: &Client,
    key: &Keypair,
    chain_id: &str,
    nonce: u64,
    op: Operation,
) -> Result<(Tx, Value), String> {
    let tx = Tx::sign(Transaction { chain_id: chain_id.to_string(), signer: key.public(), nonce, op }, key);
    let r = client.post("/v1/txs", &json!({ "tx": hex::encode(tx.raw()) }))?;
    Ok((tx, r))
}

/// Polls until `id` is committed; returns the status JSON.
pub fn wait_committed(client: &Client, id: &Hash, timeout: Duration) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = client.get_opt(&format!("/v1/txs/{}", id.to_hex()))? {
            if v["status"] == "committed" {
                return Ok(v);
            }
        }
        if start.elapsed() > timeout {
            return Err(format!("transaction {id} not committed after {}s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run(args: TxArgs, json_out: bool) -> Result<(), String> {
    let key = read_key(&args.key)?;
    let client = Client::new(&args.node);
    let op = build_op(&args.op)?;
    let created = match &op {
        Operation::Consent(ConsentOp::GrantConsent { consent_id, .. }) => Some(("consent", *consent_id)),
        Operation::Consent(ConsentOp::RequestAccess { request_id, .. }) => Some(("request", *request_id)),
        _ => None,
    };
    let (tx, _) = submit(&client, &key, op)?;
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
    let v = wait_committed(&client, &tx.id(), Duration::from_secs(60))?;
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
