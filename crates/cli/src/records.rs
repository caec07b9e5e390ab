//! Record sharing from the client side: `record put/get/history/review/export`,
//! `consent grant/revoke/list`, `access request/approve/decline/list`, `audit`, `erase`.
//!
//! Everything sensitive happens here, on the user's machine: FHIR checks, sealing, wrapping data
//! keys, unwrapping and decrypting, and checking the plaintext hash against the chain. Nodes see
//! ciphertext and wrapped keys only.

use crate::http::Client;
use crate::txcmd::{new_id, now_ms, submit_with_nonce, wait_committed, TermsArgs};
use clap::{Args, Subcommand};
use medledger_node::run::read_key;
use medledger_types::read::{AuditQuery, ReadRequest};
use medledger_types::{
    action, AccessOutcome, Canonical, ConsentTerms, Grantee, Hash, Keypair, Operation, PublicKey, Purpose, Scope, Tx,
};
use medledger_types::{ConsentOp, RecordsOp};
use medledger_vault::envelope::{self, context, DataKey, WrappedKey};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How long `--wait` and the multi-step commands wait for a commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Connection and signer shared by every record command.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Node API address (any node: reads and uploads are forwarded to the record's holder).
    #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
    pub node: String,
    /// Key file of the user.
    #[arg(long)]
    pub key: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum RecordCmd {
    /// Doctor: check, encrypt, upload and anchor a FHIR R4 record (or an amendment).
    Put {
        #[command(flatten)]
        conn: Conn,
        /// Patient pseudonym (hex).
        #[arg(long)]
        patient: String,
        /// FHIR R4 JSON resource or Bundle; its subject must be `Patient/<pseudonym>`.
        #[arg(long)]
        file: PathBuf,
        /// Amend this record (a new version, pending until the patient accepts it).
        #[arg(long)]
        amend: Option<String>,
    },
    /// Fetch, decrypt and verify a record version (consent checked and logged by the holder).
    Get {
        #[command(flatten)]
        conn: Conn,
        /// Record id (hex).
        #[arg(long)]
        id: String,
        /// Version (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// treatment, research, insurance or audit.
        #[arg(long, default_value = "treatment")]
        purpose: String,
        /// Emergency access without consent (doctors only): the reason, flagged in the audit.
        #[arg(long)]
        break_glass: Option<String>,
        /// Write the plaintext here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A record's versions as anchored on chain (hashes, holders, authors, statuses).
    History {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[arg(long)]
        id: String,
    },
    /// Patient: accept or reject a pending amendment.
    Review {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        id: String,
        #[arg(long)]
        version: u32,
        #[arg(long, conflicts_with = "reject")]
        accept: bool,
        #[arg(long)]
        reject: bool,
    },
    /// The patient's whole accessible history as a FHIR Bundle (each read checked and logged).
    Export {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
        #[arg(long, default_value = "treatment")]
        purpose: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Patient: grant a consent, then re-wrap the data keys of covered records for the grantee.
    Grant {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Patient: revoke a consent (denies from the next block).
    Revoke {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        id: String,
    },
    /// A patient's consents, with whether each is in force.
    List {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[arg(long)]
        patient: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccessCmd {
    /// Doctor, regulator, researcher or insurer: ask a patient for access.
    Request {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Patient: approve a request (it becomes a consent) and re-wrap keys for the requester.
    Approve {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        id: String,
    },
    /// Patient: decline a request.
    Decline {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        id: String,
    },
    /// Requests waiting for a patient's answer.
    List {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[arg(long)]
        patient: String,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Only this patient's records (a patient always sees exactly their own).
    #[arg(long)]
    pub patient: Option<String>,
    /// Only events recorded by this institution.
    #[arg(long)]
    pub institution: Option<String>,
    /// Only events at or after this time (ms since the epoch).
    #[arg(long)]
    pub from_ms: Option<u64>,
    /// Only events before this time (ms since the epoch).
    #[arg(long)]
    pub to_ms: Option<u64>,
    #[arg(long)]
    pub purpose: Option<String>,
    /// served, denied or break_glass.
    #[arg(long)]
    pub outcome: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print a FHIR Bundle of AuditEvent resources.
    #[arg(long)]
    pub fhir: bool,
    /// Write the result to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EraseArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Record id (hex).
    #[arg(long)]
    pub id: String,
    /// Wait until the holder confirms the erasure on chain.
    #[arg(long)]
    pub wait: bool,
}

fn hash_arg(s: &str, what: &str) -> Result<Hash, String> {
    Hash::from_hex(s.trim()).map_err(|e| format!("{what}: {e}"))
}

/// A connected user: the node client, the chain id and the user's key.
pub struct Session {
    pub client: Client,
    pub chain_id: String,
    pub key: Keypair,
    status: Value,
}

impl Session {
    pub fn open(node: &str, key: Keypair) -> Result<Session, String> {
        let client = Client::new(node);
        let status = client.get("/v1/status")?;
        let chain_id = status["chain_id"].as_str().ok_or("node status has no chain_id")?.to_string();
        Ok(Session { client, chain_id, key, status })
    }

    pub fn from_conn(c: &Conn) -> Result<Session, String> {
        Session::open(&c.node, read_key(&c.key)?)
    }

    fn me(&self) -> Result<Value, String> {
        self.client.get(&format!("/v1/identities/{}", self.key.public().to_hex()))
    }

    /// Signs and submits `op` at the signer's next nonce, waits for the commit and returns the
    /// committed status; a rejection is an error carrying the chain's reason.
    pub fn transact(&self, op: Operation) -> Result<(Tx, Value), String> {
        op.check_limits()?;
        let nonce = self.me()?["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
        let (tx, _) = submit_with_nonce(&self.client, &self.key, &self.chain_id, nonce, op)?;
        let v = applied(wait_committed(&self.client, &tx.id(), COMMIT_TIMEOUT)?)?;
        Ok((tx, v))
    }

    fn patient_key(&self, pseudonym: &Hash) -> Result<PublicKey, String> {
        let v = self.client.get(&format!("/v1/patients/{}", pseudonym.to_hex()))?;
        PublicKey::from_hex(v["key"].as_str().unwrap_or("")).map_err(|e| format!("patient key: {e}"))
    }

    fn record(&self, id: &Hash) -> Result<Value, String> {
        self.client.get(&format!("/v1/records/{}", id.to_hex()))
    }

    /// The vault recipient key of `institution` (its genesis admin key).
    fn holder_key(&self, institution: &str) -> Result<PublicKey, String> {
        let v = self.status["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["institution"] == institution)
            .ok_or_else(|| format!("institution `{institution}` runs no validator, so it has no record vault"))?;
        PublicKey::from_hex(v["admin_key"].as_str().unwrap_or(""))
            .map_err(|e| format!("admin key of `{institution}`: {e}"))
    }

    fn consents(&self, patient: &Hash) -> Result<Vec<(Hash, ConsentTerms, bool)>, String> {
        let v = self.client.get(&format!("/v1/patients/{}/consents", patient.to_hex()))?;
        let mut out = Vec::new();
        for c in v["consents"].as_array().into_iter().flatten() {
            let id = hash_arg(c["id"].as_str().unwrap_or(""), "consent id")?;
            let terms: ConsentTerms =
                serde_json::from_value(c["terms"].clone()).map_err(|e| format!("consent terms: {e}"))?;
            out.push((id, terms, c["active"].as_bool().unwrap_or(false)));
        }
        Ok(out)
    }

    /// Seals `fhir` for `patient`, wraps its key for the patient, the holder and every current
    /// person grantee with read access, uploads it with its anchor and waits for the commit.
    pub fn put(&self, patient: &Hash, fhir: &[u8], amend: Option<Hash>) -> Result<Value, String> {
        let resource_type = medledger_vault::fhir::check(fhir, patient).map_err(|e| format!("not accepted: {e}"))?;
        let me = self.me()?;
        let institution = me["credential"]["institution"].as_str().ok_or("your key holds no credential")?.to_string();
        let holder_key = self.holder_key(&institution)?;
        let patient_key = self.patient_key(patient)?;
        let (record_id, version) = match amend {
            None => (new_id(), 1),
            Some(id) => {
                let r = self.record(&id)?;
                if r["record"]["resource_type"] != resource_type.as_str() {
                    return Err(format!(
                        "record {id} is a {}, not a {resource_type}",
                        r["record"]["resource_type"].as_str().unwrap_or("?")
                    ));
                }
                (id, r["record"]["latest_version"].as_u64().ok_or("record has no latest_version")? as u32 + 1)
            }
        };
        let mut recipients = vec![patient_key, holder_key];
        for (_, terms, active) in self.consents(patient)? {
            if !active || terms.actions & action::READ == 0 || !covers(&terms.scope, &record_id, &resource_type) {
                continue;
            }
            // A person grantee gets its own copy; an institution grantee a copy for its key
            // (its node re-wraps for its staff), if it runs a node.
            let pk = match &terms.grantee {
                Grantee::Person(pk) => Some(*pk),
                Grantee::Institution(id) => self.holder_key(id).ok(),
            };
            if let Some(pk) = pk.filter(|pk| !recipients.contains(pk)) {
                recipients.push(pk);
            }
        }
        let ctx = context(&record_id, version);
        let key = DataKey::generate();
        let sealed = envelope::seal(&key, fhir, &ctx);
        let mut keys = Vec::new();
        for pk in &recipients {
            let w =
                envelope::wrap(&key, pk, &ctx).map_err(|e| format!("cannot wrap the key for {}: {e}", pk.short()))?;
            keys.push(json!({ "recipient": pk.to_hex(), "wrapped": w }));
        }
        let nonce = me["next_nonce"].as_u64().ok_or("node identity has no next_nonce")?;
        let op = Operation::Records(RecordsOp::AnchorRecord {
            record_id,
            version,
            patient: *patient,
            resource_type: resource_type.clone(),
            content_hash: envelope::content_hash(fhir),
            locator: format!("vault://{institution}/{}/{version}", record_id.to_hex()),
        });
        op.check_limits()?;
        let tx = Tx::sign(
            medledger_types::Transaction { chain_id: self.chain_id.clone(), signer: self.key.public(), nonce, op },
            &self.key,
        );
        self.client.post(
            "/v1/records",
            &json!({ "anchor_tx": hex::encode(tx.raw()), "sealed": hex::encode(&sealed.0), "keys": keys }),
        )?;
        let committed = applied(wait_committed(&self.client, &tx.id(), COMMIT_TIMEOUT)?)?;
        Ok(json!({
            "record_id": record_id.to_hex(),
            "version": version,
            "resource_type": resource_type,
            "holder": institution,
            "content_hash": envelope::content_hash(fhir).to_hex(),
            "recipients": recipients.iter().map(|k| k.to_hex()).collect::<Vec<_>>(),
            "anchor_tx": tx.id().to_hex(),
            "height": committed["height"],
            "status": if version == 1 { "current" } else { "pending the patient's review" },
        }))
    }

    /// Sends a signed read (any node forwards it to the holder), decrypts with the user's key
    /// and checks the plaintext against the hash anchored on chain.
    pub fn get(
        &self,
        id: &Hash,
        version: Option<u32>,
        purpose: Purpose,
        break_glass: Option<String>,
    ) -> Result<(Vec<u8>, Value), String> {
        let rec = self.record(id)?;
        let version = match version {
            Some(v) => v,
            None => rec["record"]["current_version"].as_u64().ok_or("record has no current version")? as u32,
        };
        let anchored = rec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["version"].as_u64() == Some(version as u64))
            .ok_or_else(|| format!("record {id} has no version {version}"))?;
        let anchored_hash = hash_arg(anchored["content_hash"].as_str().unwrap_or(""), "anchored content hash")?;
        let r = ReadRequest {
            chain_id: self.chain_id.clone(),
            record_id: *id,
            version,
            requester: self.key.public(),
            purpose,
            issued_ms: now_ms(),
            break_glass,
        };
        let resp = self.client.post(
            "/v1/records/read",
            &json!({ "request": hex::encode(r.to_bytes()), "signature": hex::encode(r.sign(&self.key).0) }),
        )?;
        if let Some(inst) = resp["custodian"].as_str() {
            return Err(format!(
                "the read is allowed by a consent to your institution `{inst}`, whose node holds the key: send the read through that node (--node)"
            ));
        }
        let plaintext = open_response(&resp, &self.key, id, version, &anchored_hash)?;
        Ok((
            plaintext,
            json!({
                "record_id": id.to_hex(),
                "version": version,
                "content_hash": anchored_hash.to_hex(),
                "holder": anchored["holder"],
                "outcome": resp["outcome"],
                "access_tx": resp["access_tx"],
            }),
        ))
    }

    /// Patient: wraps the data key of every version a consent covers for its person grantee.
    /// Returns how many versions were re-wrapped.
    pub fn rewrap(&self, terms: &ConsentTerms) -> Result<usize, String> {
        let grantee = match &terms.grantee {
            Grantee::Person(pk) => *pk,
            // An institution's copy is wrapped for its key; its node re-wraps for its staff.
            Grantee::Institution(id) => self.holder_key(id)?,
        };
        if terms.actions & action::READ == 0 {
            return Ok(0);
        }
        let me = self.me()?;
        let pid = hash_arg(me["credential"]["pseudonym"].as_str().ok_or("only a patient re-wraps keys")?, "pseudonym")?;
        let list = self.client.get(&format!("/v1/patients/{}/records", pid.to_hex()))?;
        let mut n = 0;
        for r in list["records"].as_array().into_iter().flatten() {
            let head = &r["record"];
            if !head["erased_at"].is_null() || !head["erasure_requested_at"].is_null() {
                continue;
            }
            let id = hash_arg(head["id"].as_str().unwrap_or(""), "record id")?;
            if !covers(&terms.scope, &id, head["resource_type"].as_str().unwrap_or("")) {
                continue;
            }
            for v in r["versions"].as_array().into_iter().flatten() {
                if v["status"] == "rejected" {
                    continue;
                }
                let version = v["version"].as_u64().unwrap_or(0) as u32;
                let content_hash = hash_arg(v["content_hash"].as_str().unwrap_or(""), "content hash")?;
                // The patient's own read (logged like any other) returns the patient's wrapped key.
                let rq = ReadRequest {
                    chain_id: self.chain_id.clone(),
                    record_id: id,
                    version,
                    requester: self.key.public(),
                    purpose: terms.purpose,
                    issued_ms: now_ms(),
                    break_glass: None,
                };
                let resp = self.client.post(
                    "/v1/records/read",
                    &json!({ "request": hex::encode(rq.to_bytes()), "signature": hex::encode(rq.sign(&self.key).0) }),
                )?;
                // Check the content before vouching for it with a new key.
                open_response(&resp, &self.key, &id, version, &content_hash)?;
                let mine: WrappedKey =
                    serde_json::from_value(resp["wrapped"].clone()).map_err(|e| format!("wrapped key: {e}"))?;
                let ctx = context(&id, version);
                let key = envelope::unwrap(&mine, &self.key, &ctx)
                    .map_err(|e| format!("cannot unwrap your key for {id} v{version}: {e}"))?;
                let wrapped =
                    envelope::wrap(&key, &grantee, &ctx).map_err(|e| format!("cannot wrap for the grantee: {e}"))?;
                let issued_ms = now_ms();
                let msg = medledger_node::records::add_key_message(&id, version, &grantee, &wrapped, issued_ms);
                let sig = self.key.sign(medledger_node::records::ADD_KEY_SIGNATURE, &msg);
                self.client.post_empty(
                    &format!("/v1/records/{}/{version}/keys", id.to_hex()),
                    &json!({ "recipient": grantee.to_hex(), "wrapped": wrapped, "issued_ms": issued_ms, "signature": hex::encode(sig.0) }),
                )?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Signs an audit query and runs it.
    pub fn audit(&self, mut q: AuditQuery, fhir: bool) -> Result<Value, String> {
        q.chain_id = self.chain_id.clone();
        q.requester = Some(self.key.public());
        q.issued_ms = now_ms();
        let body = json!({
            "query": hex::encode(q.to_bytes()),
            "signature": hex::encode(q.sign(&self.key).0),
            "format": if fhir { "fhir" } else { "json" },
        });
        self.client.post("/v1/audit", &body)
    }

    /// Every record of `patient` this user may read, as a FHIR `collection` Bundle.
    pub fn export(&self, patient: &Hash, purpose: Purpose) -> Result<(Value, Vec<String>), String> {
        let list = self.client.get(&format!("/v1/patients/{}/records", patient.to_hex()))?;
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for r in list["records"].as_array().into_iter().flatten() {
            let head = &r["record"];
            let id = hash_arg(head["id"].as_str().unwrap_or(""), "record id")?;
            if !head["erased_at"].is_null() {
                skipped.push(format!("{id}: erased"));
                continue;
            }
            match self.get(&id, None, purpose, None) {
                Ok((plain, meta)) => {
                    let resource: Value =
                        serde_json::from_slice(&plain).map_err(|e| format!("record {id} is not JSON: {e}"))?;
                    entries.push(json!({
                        "fullUrl": format!("urn:medledger:record:{}:{}", id.to_hex(), meta["version"]),
                        "resource": resource,
                    }));
                }
                Err(e) => skipped.push(format!("{id}: {e}")),
            }
        }
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": medledger_types::time::rfc3339_ms(now_ms()),
            "identifier": { "system": "urn:medledger:patient", "value": patient.to_hex() },
            "entry": entries,
        });
        Ok((bundle, skipped))
    }
}

/// The first 16 characters of a JSON string (whatever the node sent, never a panic).
fn short(v: &Value) -> String {
    v.as_str().unwrap_or("").chars().take(16).collect()
}

/// Does `scope` cover this record?
fn covers(scope: &Scope, id: &Hash, resource_type: &str) -> bool {
    match scope {
        Scope::All => true,
        Scope::ResourceTypes(t) => t.iter().any(|t| t == resource_type),
        Scope::Records(ids) => ids.contains(id),
    }
}

/// Unwraps, decrypts and checks a read response against the anchored hash.
fn open_response(resp: &Value, me: &Keypair, id: &Hash, version: u32, anchored: &Hash) -> Result<Vec<u8>, String> {
    let wrapped: WrappedKey =
        serde_json::from_value(resp["wrapped"].clone()).map_err(|e| format!("bad wrapped key in the response: {e}"))?;
    let sealed = hex::decode(resp["sealed"].as_str().unwrap_or(""))
        .map_err(|e| format!("bad ciphertext encoding in the response: {e}"))?;
    let ctx = context(id, version);
    let key =
        envelope::unwrap(&wrapped, me, &ctx).map_err(|e| format!("cannot unwrap the data key with your key: {e}"))?;
    let plain = envelope::open(&key, &sealed, &ctx)
        .map_err(|e| format!("tampering detected: the ciphertext does not authenticate ({e})"))?;
    let got = envelope::content_hash(&plain);
    if got != *anchored {
        return Err(format!(
            "tampering detected: plaintext hash {got} differs from the hash anchored on chain {anchored}"
        ));
    }
    Ok(plain)
}

/// Turns a committed status into an error if the transaction was rejected.
pub fn applied(v: Value) -> Result<Value, String> {
    let o = &v["receipt"]["outcome"];
    if o["status"] == "applied" {
        Ok(v)
    } else {
        Err(format!(
            "rejected on chain ({}): {}",
            o["code"].as_str().unwrap_or("?"),
            o["reason"].as_str().unwrap_or("")
        ))
    }
}

fn emit(json_out: bool, v: &Value, human: impl FnOnce(&Value)) {
    if json_out {
        println!("{v}");
    } else {
        human(v);
    }
}

fn write_or_print(out: &Option<PathBuf>, bytes: &[u8]) -> Result<(), String> {
    match out {
        Some(p) => std::fs::write(p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display())),
        None => {
            use std::io::Write;
            let mut o = std::io::stdout();
            o.write_all(bytes).and_then(|_| o.write_all(b"\n")).map_err(|e| e.to_string())
        }
    }
}

pub fn record(cmd: RecordCmd, json_out: bool) -> Result<(), String> {
    match cmd {
        RecordCmd::Put { conn, patient, file, amend } => {
            let s = Session::from_conn(&conn)?;
            let fhir = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let amend = amend.map(|a| hash_arg(&a, "--amend")).transpose()?;
            let v = s.put(&hash_arg(&patient, "--patient")?, &fhir, amend)?;
            emit(json_out, &v, |v| {
                println!(
                    "record {} version {} ({}) held by {}",
                    v["record_id"].as_str().unwrap_or(""),
                    v["version"],
                    v["resource_type"].as_str().unwrap_or(""),
                    v["holder"].as_str().unwrap_or("")
                );
                println!(
                    "anchored at height {} by {}; {}",
                    v["height"],
                    v["anchor_tx"].as_str().unwrap_or(""),
                    v["status"].as_str().unwrap_or("")
                );
            });
            Ok(())
        }
        RecordCmd::Get { conn, id, version, purpose, break_glass, out } => {
            let s = Session::from_conn(&conn)?;
            let (plain, meta) = s.get(&hash_arg(&id, "--id")?, version, Purpose::parse(&purpose)?, break_glass)?;
            if json_out {
                let mut m = meta;
                m["resource"] = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                println!("{m}");
                return Ok(());
            }
            eprintln!(
                "record {} v{} from {}: {} (hash verified against the chain; logged as {})",
                meta["record_id"].as_str().unwrap_or(""),
                meta["version"],
                meta["holder"].as_str().unwrap_or(""),
                meta["outcome"].as_str().unwrap_or(""),
                meta["access_tx"].as_str().unwrap_or("")
            );
            write_or_print(&out, &plain)
        }
        RecordCmd::History { node, id } => {
            let v = Client::new(&node).get(&format!("/v1/records/{}", hash_arg(&id, "--id")?.to_hex()))?;
            emit(json_out, &v, |v| {
                let h = &v["record"];
                println!(
                    "record {} ({}) patient {}: current v{}, latest v{}, {} access events{}",
                    h["id"].as_str().unwrap_or(""),
                    h["resource_type"].as_str().unwrap_or(""),
                    h["patient"].as_str().unwrap_or(""),
                    h["current_version"],
                    h["latest_version"],
                    h["access_events"],
                    if h["erased_at"].is_null() {
                        String::new()
                    } else {
                        format!(", erased at height {}", h["erased_at"])
                    }
                );
                for r in v["versions"].as_array().into_iter().flatten() {
                    println!(
                        "  v{:<3} {:<8} height {:<6} holder {:<14} sha256 {}",
                        r["version"],
                        r["status"].as_str().unwrap_or(""),
                        r["height"],
                        r["holder"].as_str().unwrap_or(""),
                        r["content_hash"].as_str().unwrap_or("")
                    );
                }
            });
            Ok(())
        }
        RecordCmd::Review { conn, id, version, accept, reject } => {
            if accept == reject {
                return Err("give exactly one of --accept or --reject".into());
            }
            let s = Session::from_conn(&conn)?;
            let (tx, _) = s.transact(Operation::Records(RecordsOp::ReviewAmendment {
                record_id: hash_arg(&id, "--id")?,
                version,
                accept,
            }))?;
            emit(json_out, &json!({ "tx_id": tx.id().to_hex(), "accepted": accept }), |_| {
                println!(
                    "version {version} {} ({})",
                    if accept { "accepted: it is now current" } else { "rejected: kept, never current" },
                    tx.id()
                );
            });
            Ok(())
        }
        RecordCmd::Export { conn, patient, purpose, out } => {
            let s = Session::from_conn(&conn)?;
            let (bundle, skipped) = s.export(&hash_arg(&patient, "--patient")?, Purpose::parse(&purpose)?)?;
            for k in &skipped {
                eprintln!("medledger: skipped {k}");
            }
            eprintln!("exported {} records", bundle["entry"].as_array().map_or(0, Vec::len));
            write_or_print(&out, serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?.as_bytes())
        }
    }
}

pub fn consent(cmd: ConsentCmd, json_out: bool) -> Result<(), String> {
    match cmd {
        ConsentCmd::Grant { conn, terms } => {
            let s = Session::from_conn(&conn)?;
            let t = crate::txcmd::terms(&terms)?;
            let id = new_id();
            let (tx, _) =
                s.transact(Operation::Consent(ConsentOp::GrantConsent { consent_id: id, terms: t.clone() }))?;
            let rewrapped = s.rewrap(&t)?;
            emit(
                json_out,
                &json!({ "consent_id": id.to_hex(), "tx_id": tx.id().to_hex(), "rewrapped_versions": rewrapped }),
                |_| {
                    println!("consent {id} granted ({}); data keys re-wrapped for the grantee on {rewrapped} record versions", tx.id());
                },
            );
            Ok(())
        }
        ConsentCmd::Revoke { conn, id } => {
            let s = Session::from_conn(&conn)?;
            let (tx, v) =
                s.transact(Operation::Consent(ConsentOp::RevokeConsent { consent_id: hash_arg(&id, "--id")? }))?;
            emit(json_out, &json!({ "tx_id": tx.id().to_hex(), "height": v["height"] }), |v| {
                println!("consent {id} revoked at height {}; reads are denied from the next block", v["height"]);
            });
            Ok(())
        }
        ConsentCmd::List { node, patient } => {
            let v = Client::new(&node)
                .get(&format!("/v1/patients/{}/consents", hash_arg(&patient, "--patient")?.to_hex()))?;
            emit(json_out, &v, |v| {
                for c in v["consents"].as_array().into_iter().flatten() {
                    let t = &c["terms"];
                    let bits = t["actions"].as_u64().unwrap_or(0) as u8;
                    let actions: Vec<&str> = [(action::READ, "read"), (action::WRITE, "write")]
                        .iter()
                        .filter(|(b, _)| bits & b != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    let grantee = match t["grantee"]["kind"].as_str() {
                        Some("institution") => format!("institution:{}", t["grantee"]["id"].as_str().unwrap_or("")),
                        _ => short(&t["grantee"]["id"]) + "…",
                    };
                    let scope = match t["scope"]["kind"].as_str() {
                        Some("all") => "all records".to_string(),
                        _ => t["scope"]["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                    };
                    let expires =
                        t["expires_ms"].as_u64().map_or("never".to_string(), medledger_types::time::rfc3339_ms);
                    println!(
                        "{} {:<8} {grantee:<30} {:<10} {:<9} {scope} (expires {expires})",
                        c["id"].as_str().unwrap_or(""),
                        if c["active"] == true { "active" } else { "inactive" },
                        actions.join(","),
                        t["purpose"].as_str().unwrap_or(""),
                    );
                }
            });
            Ok(())
        }
    }
}

pub fn access(cmd: AccessCmd, json_out: bool) -> Result<(), String> {
    match cmd {
        AccessCmd::Request { conn, patient, reason, terms } => {
            let s = Session::from_conn(&conn)?;
            let id = new_id();
            let op = Operation::Consent(ConsentOp::RequestAccess {
                request_id: id,
                patient: hash_arg(&patient, "--patient")?,
                terms: crate::txcmd::terms(&terms)?,
                reason,
            });
            let (tx, _) = s.transact(op)?;
            emit(json_out, &json!({ "request_id": id.to_hex(), "tx_id": tx.id().to_hex() }), |_| {
                println!(
                    "access request {id} sent ({}); the patient approves it with `medledger access approve --id {id}`",
                    tx.id()
                );
            });
            Ok(())
        }
        AccessCmd::Approve { conn, id } => {
            let s = Session::from_conn(&conn)?;
            let rid = hash_arg(&id, "--id")?;
            let (tx, _) =
                s.transact(Operation::Consent(ConsentOp::RespondAccess { request_id: rid, approve: true }))?;
            // The approved request is now a consent with the same id: re-wrap under its terms.
            let pid = hash_arg(s.me()?["credential"]["pseudonym"].as_str().unwrap_or(""), "pseudonym")?;
            let terms = s
                .consents(&pid)?
                .into_iter()
                .find(|(c, _, _)| *c == rid)
                .map(|(_, t, _)| t)
                .ok_or("approved consent not found")?;
            let rewrapped = s.rewrap(&terms)?;
            emit(
                json_out,
                &json!({ "consent_id": rid.to_hex(), "tx_id": tx.id().to_hex(), "rewrapped_versions": rewrapped }),
                |_| {
                    println!("request {rid} approved ({}); data keys re-wrapped for the requester on {rewrapped} record versions", tx.id());
                },
            );
            Ok(())
        }
        AccessCmd::Decline { conn, id } => {
            let s = Session::from_conn(&conn)?;
            let (tx, _) = s.transact(Operation::Consent(ConsentOp::RespondAccess {
                request_id: hash_arg(&id, "--id")?,
                approve: false,
            }))?;
            emit(json_out, &json!({ "tx_id": tx.id().to_hex() }), |_| println!("request {id} declined ({})", tx.id()));
            Ok(())
        }
        AccessCmd::List { node, patient } => {
            let v = Client::new(&node)
                .get(&format!("/v1/patients/{}/requests", hash_arg(&patient, "--patient")?.to_hex()))?;
            emit(json_out, &v, |v| {
                for r in v["pending"].as_array().into_iter().flatten() {
                    println!(
                        "{} from {} purpose {} reason {:?}",
                        r["id"].as_str().unwrap_or(""),
                        r["requester"].as_str().unwrap_or(""),
                        r["terms"]["purpose"].as_str().unwrap_or(""),
                        r["reason"].as_str().unwrap_or("")
                    );
                }
            });
            Ok(())
        }
    }
}

pub fn audit(a: AuditArgs, json_out: bool) -> Result<(), String> {
    let s = Session::from_conn(&a.conn)?;
    let q = AuditQuery {
        patient: a.patient.as_deref().map(|p| hash_arg(p, "--patient")).transpose()?,
        institution: a.institution.clone(),
        from_ms: a.from_ms,
        to_ms: a.to_ms,
        purpose: a.purpose.as_deref().map(Purpose::parse).transpose()?,
        outcome: a.outcome.as_deref().map(AccessOutcome::parse).transpose()?,
        limit: a.limit,
        ..AuditQuery::default()
    };
    let v = s.audit(q, a.fhir)?;
    if a.fhir || json_out || a.out.is_some() {
        let text = if a.fhir { serde_json::to_string_pretty(&v).map_err(|e| e.to_string())? } else { v.to_string() };
        return write_or_print(&a.out, text.as_bytes());
    }
    for e in v["events"].as_array().into_iter().flatten() {
        println!(
            "{} {:<11} {:<9} record {}… v{} by {}… at {}{}",
            medledger_types::time::rfc3339_ms(e["timestamp_ms"].as_u64().unwrap_or(0)),
            e["outcome"].as_str().unwrap_or(""),
            e["purpose"].as_str().unwrap_or(""),
            short(&e["record_id"]),
            e["version"],
            short(&e["requester"]),
            e["institution"].as_str().unwrap_or(""),
            if e["reason"].as_str().unwrap_or("").is_empty() {
                String::new()
            } else {
                format!(" ({})", e["reason"].as_str().unwrap_or(""))
            }
        );
    }
    if v["truncated"] == true {
        eprintln!("medledger: the scan stopped at its limit; narrow the time range to see older events");
    }
    Ok(())
}

pub fn erase(a: EraseArgs, json_out: bool) -> Result<(), String> {
    let s = Session::from_conn(&a.conn)?;
    let id = hash_arg(&a.id, "--id")?;
    let (tx, _) = s.transact(Operation::Records(RecordsOp::RequestErasure { record_id: id }))?;
    if a.wait {
        let deadline = std::time::Instant::now() + COMMIT_TIMEOUT;
        loop {
            if !s.record(&id)?["record"]["erased_at"].is_null() {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("erasure requested ({}) but the holder has not confirmed it within 60s", tx.id()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    emit(json_out, &json!({ "tx_id": tx.id().to_hex(), "confirmed": a.wait }), |_| {
        if a.wait {
            println!("record {id} erased: the holder destroyed the ciphertext and keys; the hashes stay on chain");
        } else {
            println!("erasure of {id} requested ({}); the holder confirms on chain once done", tx.id());
        }
    });
    Ok(())
}
