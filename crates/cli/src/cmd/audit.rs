//! `medledger audit`: signed queries over access events, as JSON or FHIR AuditEvents.

use super::{session, short, write_or_print, Conn};
use clap::Args;
use medledger_client::session::hash_arg;
use medledger_types::read::AuditQuery;
use medledger_types::{AccessOutcome, Purpose};
use std::path::PathBuf;

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

pub fn audit(a: AuditArgs, json_out: bool) -> Result<(), String> {
    let s = session(&a.conn)?;
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
    let mut v = s.audit(q, a.fhir)?;
    // Reasons are sealed on chain; open each with the user's key where it is a reader.
    for e in v["events"].as_array_mut().into_iter().flatten() {
        let text = medledger_client::consent::open_reason(&e["reason"], e["request_id"].as_str().unwrap_or(""), &s.key);
        e["reason_text"] = serde_json::json!(text);
    }
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
            if e["reason_text"].as_str().unwrap_or("").is_empty() {
                String::new()
            } else {
                format!(" ({})", e["reason_text"].as_str().unwrap_or(""))
            }
        );
    }
    if v["truncated"] == true {
        eprintln!("medledger: the scan stopped at its limit; narrow the time range to see older events");
    }
    Ok(())
}
