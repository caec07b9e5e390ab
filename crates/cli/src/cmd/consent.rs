//! `medledger consent grant/revoke/list` and `medledger access request/approve/decline/list`.

use super::{emit, parse_subject, session, short, signed_client, Conn};
use clap::{Args, Subcommand};
use medledger_client::consent::{parse_terms, TermsInput, DAY_MS};
use medledger_client::keys::read_key;
use medledger_client::session::hash_arg;
use medledger_client::tx::now_ms;
use medledger_types::{action, ConsentOp, Operation};
use serde_json::{json, Value};

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
        #[command(flatten)]
        conn: Conn,
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
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
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
    /// For an institution grantee: the staff roles covered (comma-separated, for example
    /// `doctor,pharmacy`). Defaults to doctors when the purpose allows them (treatment), else
    /// to the roles the purpose allows; a person grantee takes none.
    #[arg(long)]
    pub roles: Option<String>,
}

/// The flags as the client's [`TermsInput`]; a grantee given as a key file becomes its key.
pub fn terms(t: &TermsArgs) -> Result<medledger_types::ConsentTerms, String> {
    let grantee = match t.grantee.strip_prefix("institution:") {
        Some(_) => t.grantee.clone(),
        None => parse_subject(&t.grantee)?.to_hex(),
    };
    parse_terms(&TermsInput {
        grantee,
        actions: t.actions.clone(),
        purpose: t.purpose.clone(),
        types: t.types.clone(),
        records: t.records.clone(),
        expires_ms: t.expires_at_ms.or(t.days.map(|d| now_ms() + d * DAY_MS)),
        roles: t.roles.clone(),
    })
    .map_err(|e| format!("--{e}"))
}

pub fn consent(cmd: ConsentCmd, json_out: bool) -> Result<(), String> {
    match cmd {
        ConsentCmd::Grant { conn, terms } => {
            let s = session(&conn)?;
            let (id, tx, rewrapped) = s.grant_consent(&self::terms(&terms)?)?;
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
            let s = session(&conn)?;
            let (tx, v) =
                s.transact(Operation::Consent(ConsentOp::RevokeConsent { consent_id: hash_arg(&id, "--id")? }))?;
            emit(json_out, &json!({ "tx_id": tx.id().to_hex(), "height": v["height"] }), |v| {
                println!("consent {id} revoked at height {}; reads are denied from the next block", v["height"]);
            });
            Ok(())
        }
        ConsentCmd::List { conn, patient } => {
            let v = signed_client(&conn)?
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
            let s = session(&conn)?;
            let (id, tx) = s.request_access(&hash_arg(&patient, "--patient")?, self::terms(&terms)?, &reason)?;
            emit(json_out, &json!({ "request_id": id.to_hex(), "tx_id": tx.id().to_hex() }), |_| {
                println!(
                    "access request {id} sent ({}); the patient approves it with `medledger access approve --id {id}`",
                    tx.id()
                );
            });
            Ok(())
        }
        AccessCmd::Approve { conn, id } => {
            let s = session(&conn)?;
            let rid = hash_arg(&id, "--id")?;
            let (tx, rewrapped) = s.respond_access(&rid, true)?;
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
            let s = session(&conn)?;
            let (tx, _) = s.respond_access(&hash_arg(&id, "--id")?, false)?;
            emit(json_out, &json!({ "tx_id": tx.id().to_hex() }), |_| println!("request {id} declined ({})", tx.id()));
            Ok(())
        }
        AccessCmd::List { conn, patient } => {
            let key = read_key(&conn.key)?;
            let mut v = signed_client(&conn)?
                .get(&format!("/v1/patients/{}/requests", hash_arg(&patient, "--patient")?.to_hex()))?;
            // Reasons are sealed on chain; open each with the user's key where it is a reader.
            for r in v["pending"].as_array_mut().into_iter().flatten() {
                let text = medledger_client::consent::open_reason(&r["reason"], r["id"].as_str().unwrap_or(""), &key);
                r["reason_text"] = json!(text);
            }
            emit(json_out, &v, |v| {
                for r in v["pending"].as_array().into_iter().flatten() {
                    println!(
                        "{} from {} purpose {} reason {:?}",
                        r["id"].as_str().unwrap_or(""),
                        r["requester"].as_str().unwrap_or(""),
                        r["terms"]["purpose"].as_str().unwrap_or(""),
                        r["reason_text"].as_str().unwrap_or("")
                    );
                }
            });
            Ok(())
        }
    }
}
