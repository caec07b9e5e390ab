//! `medledger record put/get/history/review/export` and `medledger erase`.

use super::{emit, session, signed_client, write_or_print, Conn};
use clap::{Args, Subcommand};
use medledger_client::session::hash_arg;
use medledger_types::{Operation, Purpose, RecordsOp};
use serde_json::{json, Value};
use std::path::PathBuf;

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
        #[command(flatten)]
        conn: Conn,
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

pub fn record(cmd: RecordCmd, json_out: bool) -> Result<(), String> {
    match cmd {
        RecordCmd::Put { conn, patient, file, amend } => {
            let s = session(&conn)?;
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
            let s = session(&conn)?;
            let (plain, meta) = s.get(&hash_arg(&id, "--id")?, version, Purpose::parse(&purpose)?, break_glass)?;
            if json_out {
                let mut m = meta;
                m["resource"] = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                println!("{m}");
                return Ok(());
            }
            eprintln!(
                "record {} v{} from {}: {} (hash verified against the chain; access event {})",
                meta["record_id"].as_str().unwrap_or(""),
                meta["version"],
                meta["holder"].as_str().unwrap_or(""),
                meta["outcome"].as_str().unwrap_or(""),
                meta["access_event"].as_str().unwrap_or("")
            );
            write_or_print(&out, &plain)
        }
        RecordCmd::History { conn, id } => {
            let v = signed_client(&conn)?.get(&format!("/v1/records/{}", hash_arg(&id, "--id")?.to_hex()))?;
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
            let s = session(&conn)?;
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
            let s = session(&conn)?;
            let (bundle, skipped) = s.export(&hash_arg(&patient, "--patient")?, Purpose::parse(&purpose)?)?;
            for k in &skipped {
                eprintln!("medledger: skipped {k}");
            }
            eprintln!("exported {} records", bundle["entry"].as_array().map_or(0, Vec::len));
            write_or_print(&out, serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?.as_bytes())
        }
    }
}

pub fn erase(a: EraseArgs, json_out: bool) -> Result<(), String> {
    let s = session(&a.conn)?;
    let id = hash_arg(&a.id, "--id")?;
    let tx = s.erase(&id, a.wait)?;
    emit(json_out, &json!({ "tx_id": tx.id().to_hex(), "confirmed": a.wait }), |_| {
        if a.wait {
            println!("record {id} erased: the holder destroyed the ciphertext and keys; the hashes stay on chain");
        } else {
            println!("erasure of {id} requested ({}); the holder confirms on chain once done", tx.id());
        }
    });
    Ok(())
}
