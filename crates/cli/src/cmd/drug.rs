//! `medledger drug …`: GS1-serialised packs from commissioning to dispensing.
//!
//! Two commands work offline: `drug id` (every field and form of a GS1 identifier) and
//! `drug epcis validate` (an EPCIS 2.0 document, each error with its JSON path).

use super::{emit, print, session, signed_client, Conn};
use clap::Subcommand;
use medledger_client::drugs::{alerts, epcs, verify_public};
use medledger_client::http::Client;
use medledger_types::drugs::gs1::{self, Gs1Id};
use medledger_types::drugs::{epcis, DrugsOp, Epc, ProductSpec, Reported, Serial};
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DrugCmd {
    /// Offline: read a GS1 identifier in any form (element string, raw with GS, EPC URI,
    /// Digital Link) and print every field and form.
    Id {
        /// The identifier, as scanned or typed.
        input: String,
        /// Company prefix length, for the EPC URI when the input does not carry it.
        #[arg(long)]
        gcp_length: Option<usize>,
    },
    /// EPCIS 2.0 documents: validate (offline), capture, query.
    Epcis {
        #[command(subcommand)]
        cmd: EpcisCmd,
    },
    /// CA or regulator: bind a GS1 company prefix to a member institution.
    BindPrefix {
        #[command(flatten)]
        conn: Conn,
        prefix: String,
        institution: String,
    },
    /// CA or regulator: undo a binding made in error, while no product is registered under the
    /// prefix.
    UnbindPrefix {
        #[command(flatten)]
        conn: Conn,
        prefix: String,
    },
    /// Manufacturer: register a product under one of its institution's prefixes.
    Register {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        gtin: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "tablet")]
        form: String,
        #[arg(long, default_value = "")]
        strength: String,
        #[arg(long, default_value_t = 1)]
        pack_size: u32,
        /// National reimbursement number (GS1 AIs 710–715).
        #[arg(long, default_value = "")]
        national_code: String,
    },
    /// Manufacturer: commission serials of a lot.
    Commission {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        gtin: String,
        #[arg(long)]
        lot: String,
        /// YYMMDD (DD = 00: the end of the month).
        #[arg(long)]
        expiry: String,
        /// Serials, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        serials: Vec<String>,
    },
    /// Possessor: pack identifiers into a case or pallet (SSCC).
    Pack {
        #[command(flatten)]
        conn: Conn,
        /// The case or pallet, any GS1 form of an SSCC.
        container: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Possessor: unpack a case or pallet (everything, when no item is named).
    Unpack {
        #[command(flatten)]
        conn: Conn,
        container: String,
        items: Vec<String>,
    },
    /// Possessor: ship to another institution.
    Ship {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        to: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// The destination: receive a shipment (a mismatch is recorded as an alert).
    Receive {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        from: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Verify a pack: with `--key`, a signed verification that records anomalies as alerts;
    /// without, the public answer.
    Verify {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[arg(long, env = "MEDLEDGER_KEY")]
        key: Option<PathBuf>,
        /// The scanned identifier (a Digital Link from the box works).
        id: String,
    },
    /// Pharmacy or hospital: verify, then decommission as dispensed.
    Dispense {
        #[command(flatten)]
        conn: Conn,
        id: String,
        /// The premises (SGLN EPC URI); an undo must come from the same one.
        #[arg(long)]
        location: Option<String>,
    },
    /// The dispensing institution, within ten days: undo a dispense.
    Undo {
        #[command(flatten)]
        conn: Conn,
        id: String,
        #[arg(long)]
        location: Option<String>,
    },
    /// Manufacturer or regulator: recall a lot (irreversible).
    Recall {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        gtin: String,
        #[arg(long)]
        lot: String,
        #[arg(long)]
        reason: String,
    },
    /// Possessor: report packs stolen, destroyed, damaged or returned.
    Report {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        status: String,
        #[arg(long)]
        reason: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// An identifier's custody trail.
    Trail {
        #[command(flatten)]
        conn: Conn,
        id: String,
    },
    /// Regulator or manufacturer: alerts (counterfeits, double dispensing, unmatched receipts).
    Alerts {
        #[command(flatten)]
        conn: Conn,
    },
    /// Recalled lots.
    Recalls {
        #[command(flatten)]
        conn: Conn,
    },
    /// What your institution possesses.
    Inventory {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub enum EpcisCmd {
    /// Offline: check an EPCIS 2.0 document (exit 0 valid, 1 invalid, with each JSON path).
    Validate { file: PathBuf },
    /// Capture a document: its events, signed by you, applied all or none.
    Capture {
        #[command(flatten)]
        conn: Conn,
        file: PathBuf,
    },
    /// The EPCIS query document of an identifier's events.
    Query {
        #[command(flatten)]
        conn: Conn,
        epc: String,
    },
}

/// Every field and form of an identifier, absent ones as null.
pub fn describe(input: &str, gcp_length: Option<usize>) -> Result<Value, String> {
    let id: Gs1Id = gs1::parse_any(input).map_err(|e| e.to_string())?;
    // Without the company prefix length (from the input or `--gcp-length`) there is no EPC URI.
    let epc_uri = match id.epc_uri(gcp_length) {
        Ok(u) => u,
        Err(gs1::Gs1Error::Missing { .. }) => None,
        Err(e) => return Err(e.to_string()),
    };
    Ok(json!({
        "gtin": id.gtin,
        "serial": id.serial,
        "lot": id.lot,
        "expiry": id.expiry,
        "sscc": id.sscc,
        "sgln": if id.gln.is_some() { epc_uri.clone().filter(|u| u.starts_with("urn:epc:id:sgln:")) } else { None },
        "gln": id.gln,
        "national_codes": id.nhrn.iter().map(|(ai, v)| json!({ "ai": ai, "value": v })).collect::<Vec<_>>(),
        "epc_uri": epc_uri,
        "digital_link": id.digital_link(),
        "element_string": Some(id.element_string()).filter(|s| !s.is_empty()),
    }))
}

fn committed(json_out: bool, v: &Value, what: &str) {
    emit(json_out, v, |v| {
        println!("{what}: committed at height {}", v["height"]);
        for a in alerts(v) {
            println!("alert: {a}");
        }
    });
}

fn one(items: &[String]) -> Result<Epc, String> {
    epcs(items).map(|mut v| v.remove(0))
}

fn sscc(s: &str) -> Result<String, String> {
    match epcs(&[s.to_string()])?.remove(0) {
        Epc::Sscc(s) => Ok(s),
        other => Err(format!("{other} is a pack; a container is an SSCC")),
    }
}

pub fn run(cmd: DrugCmd, j: bool) -> Result<(), String> {
    match cmd {
        DrugCmd::Id { input, gcp_length } => {
            let v = describe(&input, gcp_length)?;
            print(j, &v, |v| {
                for (k, x) in v.as_object().into_iter().flatten() {
                    if !x.is_null() {
                        println!("{k:15} {}", x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()));
                    }
                }
            });
        }
        DrugCmd::Epcis { cmd } => epcis_cmd(cmd, j)?,
        DrugCmd::BindPrefix { conn, prefix, institution } => {
            let v = session(&conn)?.drug(DrugsOp::BindPrefix { company_prefix: prefix, institution })?;
            committed(j, &v, "prefix bound");
        }
        DrugCmd::UnbindPrefix { conn, prefix } => {
            let v = session(&conn)?.drug(DrugsOp::UnbindPrefix { company_prefix: prefix })?;
            committed(j, &v, "prefix unbound");
        }
        DrugCmd::Register { conn, gtin, name, form, strength, pack_size, national_code } => {
            let gtin = gs1::validate_gtin(&gtin).map_err(|e| e.to_string())?;
            let product = ProductSpec { gtin, name, form, strength, pack_size, national_code };
            let v = session(&conn)?.drug(DrugsOp::RegisterProduct { product })?;
            committed(j, &v, "product registered");
        }
        DrugCmd::Commission { conn, gtin, lot, expiry, serials } => {
            let s = session(&conn)?;
            let gtin = gs1::validate_gtin(&gtin).map_err(|e| e.to_string())?;
            let serials = serials.iter().map(|x| Serial(x.trim().to_string())).collect();
            let v = s.drug(DrugsOp::Commission { meta: s.event_meta(None), gtin, lot, expiry, serials })?;
            committed(j, &v, "commissioned");
        }
        DrugCmd::Pack { conn, container, items } => {
            let s = session(&conn)?;
            let v = s.drug(DrugsOp::Aggregate {
                meta: s.event_meta(None),
                parent: sscc(&container)?,
                children: epcs(&items)?,
            })?;
            committed(j, &v, "packed");
        }
        DrugCmd::Unpack { conn, container, items } => {
            let s = session(&conn)?;
            let v = s.drug(DrugsOp::Disaggregate {
                meta: s.event_meta(None),
                parent: sscc(&container)?,
                children: epcs(&items)?,
            })?;
            committed(j, &v, "unpacked");
        }
        DrugCmd::Ship { conn, to, items } => {
            let s = session(&conn)?;
            let v = s.drug(DrugsOp::Ship { meta: s.event_meta(None), epcs: epcs(&items)?, to })?;
            committed(j, &v, "shipped");
        }
        DrugCmd::Receive { conn, from, items } => {
            let s = session(&conn)?;
            let v = s.drug(DrugsOp::Receive { meta: s.event_meta(None), epcs: epcs(&items)?, from })?;
            let raised = alerts(&v);
            committed(j, &v, "received");
            if !raised.is_empty() {
                return Err(format!(
                    "{} item(s) did not match a shipment and stayed where they were; alerts recorded",
                    raised.len()
                ));
            }
        }
        DrugCmd::Verify { node, key, id } => {
            let v = match key {
                Some(key) => {
                    let s = session(&Conn { node, key })?;
                    let (epc, parsed) = medledger_types::drugs::parse_scanned(&id)?;
                    let st = s.drug(DrugsOp::Verify { epc, lot: parsed.lot, expiry: parsed.expiry })?;
                    let public = verify_public(&s.client, &id)?;
                    json!({ "verification": public["verification"], "trail": public["trail"], "alerts": alerts(&st), "height": st["height"] })
                }
                None => {
                    // With the genesis file, the status and the trail are recomputed from
                    // proven state.
                    let c = Client::new(&node);
                    let mut v = verify_public(&c, &id)?;
                    v["proven"] = Value::Null;
                    if medledger_client::light::configured().is_ok() {
                        let p = medledger_client::drugs::verify_proven(&c, &id)?;
                        v = medledger_client::drugs::with_proven(v, &p);
                    }
                    v
                }
            };
            print(j, &v, |v| {
                let ver = &v["verification"];
                println!(
                    "{}: {} ({})",
                    ver["code"].as_str().unwrap_or("?"),
                    ver["product_name"].as_str().unwrap_or("unknown product"),
                    ver["nmvs"].as_str().unwrap_or("")
                );
                match v.get("proven") {
                    Some(Value::Null) => println!("  (the node's word: give --genesis to have it proven)"),
                    Some(p) if p["trail_cut"] == true => println!(
                        "  status and the trail's first {} steps proven against block {} (the rest is the node's word)",
                        p["trail_max"], p["height"]
                    ),
                    Some(p) => println!("  status and trail proven against block {}", p["height"]),
                    None => {}
                }
                for t in v["trail"].as_array().into_iter().flatten() {
                    println!("  {}", trail_line(t));
                }
                for a in v["alerts"].as_array().into_iter().flatten() {
                    println!("alert recorded: {a}");
                }
            });
        }
        DrugCmd::Dispense { conn, id, location } => {
            let v = session(&conn)?.dispense(&id, location.as_deref())?;
            emit(j, &v, |v| println!("dispensed at height {}", v["dispense"]["height"]));
        }
        DrugCmd::Undo { conn, id, location } => {
            let s = session(&conn)?;
            let v = s.drug(DrugsOp::UndoDispense { meta: s.event_meta(location.as_deref()), epc: one(&[id])? })?;
            committed(j, &v, "dispense undone");
        }
        DrugCmd::Recall { conn, gtin, lot, reason } => {
            let gtin = gs1::validate_gtin(&gtin).map_err(|e| e.to_string())?;
            let v = session(&conn)?.drug(DrugsOp::Recall { gtin, lot, reason })?;
            committed(j, &v, "lot recalled");
        }
        DrugCmd::Report { conn, status, reason, items } => {
            let s = session(&conn)?;
            let status = Reported::parse(&status)?;
            let v = s.drug(DrugsOp::Report { meta: s.event_meta(None), epcs: epcs(&items)?, status, reason })?;
            committed(j, &v, "reported");
        }
        DrugCmd::Trail { conn, id } => {
            let v = session(&conn)?.trail(&id)?;
            print(j, &v, |v| {
                for t in v["trail"].as_array().into_iter().flatten() {
                    println!("{}", trail_line(t));
                }
                let c = &v["last_change"];
                if let Some(status) = c["status"].as_str() {
                    println!(
                        "last change: {status} by {} at {}: {}{} (event {})",
                        c["institution"].as_str().unwrap_or(""),
                        medledger_types::time::rfc3339_ms(c["at_ms"].as_u64().unwrap_or(0)),
                        c["reason"].as_str().unwrap_or(""),
                        c["premises"].as_str().map(|p| format!(" (at {p})")).unwrap_or_default(),
                        c["event_id"].as_str().unwrap_or("unknown")
                    );
                }
            });
        }
        DrugCmd::Alerts { conn } => list(j, &signed_client(&conn)?, "/v1/drugs/alerts", "alerts")?,
        DrugCmd::Recalls { conn } => list(j, &signed_client(&conn)?, "/v1/drugs/recalls", "recalls")?,
        DrugCmd::Inventory { conn } => list(j, &signed_client(&conn)?, "/v1/drugs/inventory", "items")?,
    }
    Ok(())
}

fn list(j: bool, c: &Client, path: &str, field: &str) -> Result<(), String> {
    let v = c.get(path)?;
    print(j, &v, |v| {
        let items = v[field].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("no {field}");
        }
        for x in items {
            println!("{x}");
        }
    });
    Ok(())
}

fn epcis_cmd(cmd: EpcisCmd, j: bool) -> Result<(), String> {
    let read = |f: &PathBuf| std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()));
    match cmd {
        EpcisCmd::Validate { file } => {
            let bytes = read(&file)?;
            match epcis::parse_document(&bytes) {
                Ok(steps) => {
                    let v = json!({ "valid": true, "events": steps.len(), "errors": [] });
                    print(j, &v, |_| println!("{}: valid EPCIS 2.0 ({} operations)", file.display(), steps.len()));
                }
                Err(errs) => {
                    let v = json!({ "valid": false, "errors": errs });
                    print(j, &v, |_| {
                        for e in &errs {
                            eprintln!("{}: {e}", file.display());
                        }
                    });
                    // Exit 1 means "invalid document" (2 stays "could not check": unreadable file, usage).
                    eprintln!(
                        "medledger: {}: not a valid EPCIS 2.0 document ({} error(s))",
                        file.display(),
                        errs.len()
                    );
                    std::process::exit(1);
                }
            }
        }
        EpcisCmd::Capture { conn, file } => {
            let doc: Value =
                serde_json::from_slice(&read(&file)?).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
            let (id, v) = session(&conn)?.capture(&doc)?;
            emit(j, &v, |v| println!("captured {} at height {} (capture {id})", file.display(), v["status"]["height"]));
        }
        EpcisCmd::Query { conn, epc } => {
            let v = session(&conn)?.epcis_events(&epc)?;
            print(j, &v, |v| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()));
        }
    }
    Ok(())
}

/// One step of a custody trail as a line: when, the step, the institution, the counterparty,
/// what it set or did, and whether it was declared in error.
fn trail_line(t: &Value) -> String {
    format!(
        "{} {:14} {:20} {}{}{}",
        medledger_types::time::rfc3339_ms(t["at_ms"].as_u64().unwrap_or(0)),
        t["biz_step"].as_str().unwrap_or(""),
        t["institution"].as_str().unwrap_or(""),
        t["counterparty"].as_str().map(|c| format!("→ {c} ")).unwrap_or_default(),
        t["detail"].as_str().map(|d| format!("({d}) ")).unwrap_or_default(),
        if t["declared_in_error"] == true { "(declared in error)" } else { "" }
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_describe_the_same_pack() {
        let a = describe("urn:epc:id:sgtin:0614141.107346.2017", None).unwrap();
        let b = describe("(01)10614141073464(21)2017", Some(7)).unwrap();
        let c = describe("https://id.gs1.org/01/10614141073464/21/2017", Some(7)).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a["epc_uri"], "urn:epc:id:sgtin:0614141.107346.2017");
        assert_eq!(a["digital_link"], "https://id.gs1.org/01/10614141073464/21/2017");
        assert_eq!(a["element_string"], "(01)10614141073464(21)2017");
        assert!(a["lot"].is_null() && a["sscc"].is_null());
    }
}
