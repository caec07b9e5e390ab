//! `medledger care …` (the offline NEWS2 calculator) and `medledger referral …` (telemedicine
//! referrals on chain).

use super::{parse_subject, print, session, signed_client, Conn};
use clap::{Subcommand, ValueEnum};
use medledger_client::care::Proposal;
use medledger_client::session::hash_arg;
use medledger_types::care::news2::Observations;
use medledger_types::care::{CareOp, Mode};
use medledger_types::time::{parse_rfc3339_ms, rfc3339_ms};
use serde_json::{json, Value};
use std::io::Read;

/// Most bytes `care news2` reads from standard input (one observation set is about 200).
const MAX_INPUT: u64 = 64 * 1024;

#[derive(Subcommand, Debug)]
pub enum CareCmd {
    /// Offline: the NEWS2 early-warning score (RCP 2017) of one observation set, read as JSON on
    /// standard input: respiratory_rate (/min), spo2 (%), spo2_scale (1 or 2), on_oxygen (bool),
    /// systolic_bp (mm Hg), pulse (/min), consciousness (A, C, V, P or U), temperature (°C).
    News2,
}

pub fn run(cmd: CareCmd, j: bool) -> Result<(), String> {
    match cmd {
        CareCmd::News2 => {
            let mut input = String::new();
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_string(&mut input)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            let v = news2(&input)?;
            print(j, &v, |v| {
                for (k, x) in v["subscores"].as_object().into_iter().flatten() {
                    println!("{k:17} {x}");
                }
                println!("{:17} {}", "total", v["total"]);
                println!("{:17} {}", "risk", v["risk"].as_str().unwrap_or(""));
            });
        }
    }
    Ok(())
}

/// The score of one observation set given as JSON, or the specific reason it cannot be scored.
pub fn news2(input: &str) -> Result<Value, String> {
    if input.len() as u64 > MAX_INPUT {
        return Err(format!("the observation set is over {MAX_INPUT} bytes"));
    }
    if input.trim().is_empty() {
        return Err("no observation set on standard input (expected one JSON object)".into());
    }
    let obs: Observations =
        serde_json::from_str(input).map_err(|e| format!("the observation set is not valid: {e}"))?;
    let s = obs.score().map_err(|e| format!("cannot score: {e}"))?;
    Ok(json!({ "subscores": s.subscores, "total": s.total, "risk": s.risk }))
}

#[derive(Subcommand, Debug)]
pub enum ReferralCmd {
    /// Treating doctor (proposing) or patient (applying): refer a patient to another
    /// institution, naming the records the receiving doctor may read.
    Propose {
        #[command(flatten)]
        conn: Conn,
        /// The patient's pseudonym (hex).
        #[arg(long)]
        patient: String,
        /// The treating doctor (key file or hex key); a doctor proposing is the treating doctor.
        #[arg(long)]
        doctor: Option<String>,
        /// The receiving institution's id.
        #[arg(long)]
        to: String,
        /// The requested specialty: a SNOMED CT code of the practice setting value set, or its
        /// display name, for example `cardiology` (sent as 394579002).
        #[arg(long)]
        specialty: String,
        /// A record id the receiving doctor may read; repeat for each.
        #[arg(long = "record", required = true)]
        records: Vec<String>,
    },
    /// Patient: approve a referral the doctor proposed.
    Approve(IdArgs),
    /// Treating doctor: confirm a referral the patient applied for.
    Confirm(IdArgs),
    /// Receiving institution: accept, with the mode, the appointment and the receiving doctor.
    Accept {
        #[command(flatten)]
        id: IdArgs,
        #[arg(long, value_enum, default_value = "remote")]
        mode: ModeArg,
        /// The appointment, RFC 3339 (for example 2026-12-10T09:30:00Z).
        #[arg(long)]
        appointment: String,
        /// The receiving doctor (key file or hex key); default: the signer.
        #[arg(long)]
        doctor: Option<String>,
    },
    /// Receiving institution: reject, with a reason.
    Reject(ReasonArgs),
    /// Receiving institution: the consultation has begun.
    Start(IdArgs),
    /// Receiving doctor: complete, naming the consultation report (a record id).
    Complete {
        #[command(flatten)]
        id: IdArgs,
        #[arg(long)]
        report: String,
    },
    /// Receiving institution: the consultation failed, with a reason.
    Fail(ReasonArgs),
    /// Patient or treating doctor: cancel, with a reason.
    Cancel(ReasonArgs),
    /// Patient: wrap the data keys of the referral's records for the receiving doctor.
    Share(IdArgs),
    /// One referral, as proven on chain.
    Show(IdArgs),
    /// Referrals of a patient, of an institution (inbox or outbox) or of a doctor.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, conflicts_with_all = ["institution", "doctor"])]
        patient: Option<String>,
        #[arg(long, conflicts_with = "doctor", requires = "mailbox")]
        institution: Option<String>,
        #[arg(long = "box", value_enum)]
        mailbox: Option<BoxArg>,
        /// Key file or hex key.
        #[arg(long)]
        doctor: Option<String>,
    },
    /// Regulator or institution admin: referral counts and turnaround per institution pair.
    Stats {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Args, Debug)]
pub struct IdArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The referral id (hex).
    #[arg(long)]
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct ReasonArgs {
    #[command(flatten)]
    pub id: IdArgs,
    #[arg(long)]
    pub reason: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Remote,
    OnSite,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BoxArg {
    Inbox,
    Outbox,
}

fn committed(v: &Value) -> Value {
    json!({ "tx": v["tx_id"].clone(), "height": v["height"].clone() })
}

fn line(r: &Value) {
    println!(
        "{}  {:11} {} -> {}  {}{}",
        r["id"].as_str().unwrap_or(""),
        r["status"].as_str().unwrap_or(""),
        r["from"].as_str().unwrap_or(""),
        r["to"].as_str().unwrap_or(""),
        medledger_types::care::specialty::name(r["specialty"].as_str().unwrap_or("")),
        r["awaiting"].as_str().map(|a| format!("  (awaits {a})")).unwrap_or_default()
    );
}

pub fn referral(cmd: ReferralCmd, j: bool) -> Result<(), String> {
    let simple = |a: &IdArgs, op: &dyn Fn(medledger_types::Hash) -> CareOp| -> Result<Value, String> {
        let id = hash_arg(&a.id, "--id")?;
        let v = session(&a.conn)?.care(op(id))?;
        Ok(json!({ "referral": id.to_hex(), "committed": committed(&v) }))
    };
    let done = |v: Value| {
        print(j, &v, |v| {
            println!(
                "referral {}: committed at height {}",
                v["referral"].as_str().unwrap_or(""),
                v["committed"]["height"]
            )
        })
    };
    match cmd {
        ReferralCmd::Propose { conn, patient, doctor, to, specialty, records } => {
            let s = session(&conn)?;
            let doctor = match doctor {
                Some(d) => parse_subject(&d)?,
                None => s.key.public(),
            };
            let records = records.iter().map(|r| hash_arg(r, "--record")).collect::<Result<Vec<_>, _>>()?;
            let p = Proposal { patient: hash_arg(&patient, "--patient")?, doctor, to, specialty, records };
            let (id, v) = s.propose_referral(p)?;
            done(json!({ "referral": id.to_hex(), "committed": committed(&v) }));
        }
        ReferralCmd::Approve(a) => done(simple(&a, &|referral_id| CareOp::ApproveReferral { referral_id })?),
        ReferralCmd::Confirm(a) => done(simple(&a, &|referral_id| CareOp::ConfirmReferral { referral_id })?),
        ReferralCmd::Start(a) => done(simple(&a, &|referral_id| CareOp::StartReferral { referral_id })?),
        ReferralCmd::Accept { id, mode, appointment, doctor } => {
            let s = session(&id.conn)?;
            let referral_id = hash_arg(&id.id, "--id")?;
            let appointment_ms = parse_rfc3339_ms(&appointment).map_err(|e| format!("--appointment: {e}"))?;
            let doctor = match doctor {
                Some(d) => parse_subject(&d)?,
                None => s.key.public(),
            };
            let mode = match mode {
                ModeArg::Remote => Mode::Remote,
                ModeArg::OnSite => Mode::OnSite,
            };
            let v = s.accept_referral(referral_id, mode, appointment_ms, doctor)?;
            done(json!({ "referral": referral_id.to_hex(), "committed": committed(&v) }));
        }
        ReferralCmd::Complete { id, report } => {
            let report = hash_arg(&report, "--report")?;
            done(simple(&id, &|referral_id| CareOp::CompleteReferral { referral_id, report })?)
        }
        ReferralCmd::Reject(a) => {
            done(simple(&a.id, &|referral_id| CareOp::RejectReferral { referral_id, reason: a.reason.clone() })?)
        }
        ReferralCmd::Fail(a) => {
            done(simple(&a.id, &|referral_id| CareOp::FailReferral { referral_id, reason: a.reason.clone() })?)
        }
        ReferralCmd::Cancel(a) => {
            done(simple(&a.id, &|referral_id| CareOp::CancelReferral { referral_id, reason: a.reason.clone() })?)
        }
        ReferralCmd::Share(a) => {
            let id = hash_arg(&a.id, "--id")?;
            let n = session(&a.conn)?.share_referral(&id)?;
            print(j, &json!({ "referral": id.to_hex(), "shared_versions": n }), |_| {
                println!("shared {n} record version(s) with the receiving doctor")
            });
        }
        ReferralCmd::Show(a) => {
            let id = hash_arg(&a.id, "--id")?;
            let s = session(&a.conn)?;
            let r = s.referral(&id)?;
            let mut v = serde_json::to_value(&r).map_err(|e| e.to_string())?;
            v["awaiting"] = json!(r.awaiting());
            print(j, &v, |v| {
                line(v);
                if let Some(t) = r.appointment_ms {
                    println!("  appointment {} ({})", rfc3339_ms(t), r.mode.map(|m| m.name()).unwrap_or(""));
                }
                for st in &r.history {
                    println!("  {:9} at height {} ({})", st.action, st.height, rfc3339_ms(st.at_ms));
                }
            });
        }
        ReferralCmd::List { conn, patient, institution, mailbox, doctor } => {
            let c = signed_client(&conn)?;
            let path = match (patient, institution, doctor) {
                (Some(p), None, None) => format!("/v1/care/patients/{}/referrals", hash_arg(&p, "--patient")?.to_hex()),
                (None, Some(i), None) => {
                    let b = match mailbox {
                        Some(BoxArg::Outbox) => "outbox",
                        _ => "inbox",
                    };
                    format!("/v1/care/institutions/{}/referrals?box={b}", medledger_client::drugs::query_escape(&i))
                }
                (None, None, Some(d)) => format!("/v1/care/doctors/{}/referrals", parse_subject(&d)?.to_hex()),
                _ => return Err("name one of --patient, --institution (with --box) or --doctor".into()),
            };
            let v = c.get(&path)?;
            print(j, &v, |v| {
                let list = v["referrals"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no referrals");
                }
                list.iter().for_each(line);
            });
        }
        ReferralCmd::Stats { conn } => {
            let v = signed_client(&conn)?.get("/v1/care/stats")?;
            print(j, &v, |v| {
                for p in v["pairs"].as_array().into_iter().flatten() {
                    println!(
                        "{} -> {}: {} requested, {} accepted, {} completed, {} rejected, {} failed, {} cancelled; mean turnaround {} ms",
                        p["from"].as_str().unwrap_or(""),
                        p["to"].as_str().unwrap_or(""),
                        p["requested"], p["accepted"], p["completed"], p["rejected"], p["failed"], p["cancelled"],
                        p["mean_turnaround_ms"]
                    );
                }
            });
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Staff of the patient's institution: register a monitoring device with its own key.
    Register {
        #[command(flatten)]
        conn: Conn,
        /// The patient's pseudonym (hex).
        #[arg(long)]
        patient: String,
        /// The device's key (key file or hex public key); it signs the device's readings.
        #[arg(long)]
        device_key: String,
        /// For example `wrist pulse oximeter`.
        #[arg(long)]
        model: String,
    },
    /// The patient, or staff of the monitoring institution: revoke a device.
    Revoke(IdArgs),
    /// A patient's devices and monitoring settings.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
        /// Print the devices as a FHIR R4 Bundle of `Device` resources.
        #[arg(long)]
        fhir: bool,
    },
    /// The patients whose monitoring a doctor is responsible for, with their devices.
    Patients {
        #[command(flatten)]
        conn: Conn,
        /// Key file or hex key; default: the signer.
        #[arg(long)]
        doctor: Option<String>,
    },
    /// A doctor of the patient's institution (who becomes responsible): the NEWS2 SpO₂ scale,
    /// threshold rules and the escalation delay.
    Monitor {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
        /// 1, or 2 for hypercapnic respiratory failure.
        #[arg(long, default_value_t = 1)]
        spo2_scale: u32,
        /// A threshold rule such as `pulse > 130`; repeat for each.
        #[arg(long = "rule")]
        rules: Vec<String>,
        /// Minutes an alarm waits for acknowledgement before it escalates.
        #[arg(long, default_value_t = 5)]
        escalate_after_min: u64,
    },
    /// A simulated wearable: a full NEWS2 set every interval, signed by the device key, with one
    /// deteriorating set (medium risk) every `--deteriorate-every` sets. Stops after `--sets`.
    Simulate {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        #[arg(long)]
        device_key: std::path::PathBuf,
        #[arg(long, default_value_t = 60)]
        sets: u64,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// 0: never.
        #[arg(long, default_value_t = 60)]
        deteriorate_every: u64,
    },
    /// Institution admin: the on-call doctor alarms escalate to.
    OnCall {
        #[command(flatten)]
        conn: Conn,
        /// Key file or hex key of a doctor of the admin's institution.
        #[arg(long)]
        doctor: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AlarmCmd {
    /// A patient's alarms, or a doctor's.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, conflicts_with = "doctor")]
        patient: Option<String>,
        /// Key file or hex key; default: the signer.
        #[arg(long)]
        doctor: Option<String>,
        /// Print the alarms as a FHIR R4 Bundle of `Flag` resources.
        #[arg(long)]
        fhir: bool,
    },
    /// The responsible (or escalated-to) doctor: acknowledge an alarm.
    Ack(IdArgs),
}

fn alarm_line(a: &Value) {
    println!(
        "{}  {:14} raised {}  {}",
        a["id"].as_str().unwrap_or(""),
        a["cause"].as_str().unwrap_or(""),
        a["raised_ms"].as_u64().map(rfc3339_ms).unwrap_or_default(),
        if !a["acknowledged_by"].is_null() {
            "acknowledged".to_string()
        } else if !a["escalated_to"].is_null() {
            "escalated, open".to_string()
        } else {
            "open".to_string()
        }
    );
}

/// Prints a node's list (devices or alarms) as a FHIR Bundle of the resources `to_fhir` makes.
fn print_fhir<T: serde::de::DeserializeOwned>(list: &Value, to_fhir: fn(&T) -> Value) -> Result<(), String> {
    let items: Vec<T> = serde_json::from_value(list.clone()).map_err(|e| format!("the node's answer: {e}"))?;
    let b = medledger_client::care::fhir::bundle(items.iter().map(to_fhir).collect());
    println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
    Ok(())
}

pub fn device(cmd: DeviceCmd, j: bool) -> Result<(), String> {
    let done = |what: &str, id: Option<String>, v: &Value| {
        let out = json!({ "id": id, "committed": committed(v) });
        print(j, &out, |o| println!("{what}: committed at height {}", o["committed"]["height"]));
    };
    match cmd {
        DeviceCmd::Register { conn, patient, device_key, model } => {
            let device_id = medledger_client::tx::new_id();
            let op = CareOp::RegisterDevice {
                device_id,
                patient: hash_arg(&patient, "--patient")?,
                key: parse_subject(&device_key)?,
                model,
            };
            let v = session(&conn)?.care(op)?;
            done(&format!("device {device_id} registered"), Some(device_id.to_hex()), &v);
        }
        DeviceCmd::Revoke(a) => {
            let device_id = hash_arg(&a.id, "--id")?;
            let v = session(&a.conn)?.care(CareOp::RevokeDevice { device_id })?;
            done("device revoked (its readings are refused from the next block)", Some(device_id.to_hex()), &v);
        }
        DeviceCmd::List { conn, patient, fhir } => {
            let p = hash_arg(&patient, "--patient")?;
            let v = signed_client(&conn)?.get(&format!("/v1/care/patients/{}/monitoring", p.to_hex()))?;
            if fhir {
                return print_fhir(&v["devices"], medledger_client::care::fhir::device);
            }
            print(j, &v, |v| {
                for d in v["devices"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {}  {}",
                        d["id"].as_str().unwrap_or(""),
                        d["model"].as_str().unwrap_or(""),
                        if d["revoked_height"].is_null() { "active" } else { "revoked" }
                    );
                }
                match v["monitoring"].as_object() {
                    Some(m) => println!("SpO2 scale {}; rules: {}", m["spo2_scale"], m["rules"]),
                    None => println!("no monitoring set"),
                }
            });
        }
        DeviceCmd::Patients { conn, doctor } => {
            let d = match doctor {
                Some(d) => parse_subject(&d)?,
                None => medledger_client::keys::read_key(&conn.key)?.public(),
            };
            let v = signed_client(&conn)?.get(&format!("/v1/care/doctors/{}/patients", d.to_hex()))?;
            print(j, &v, |v| {
                let list = v["patients"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no monitored patients");
                }
                for m in &list {
                    println!(
                        "{}  {} device(s)  SpO2 scale {}",
                        m["patient"].as_str().unwrap_or(""),
                        m["devices"].as_array().map_or(0, Vec::len),
                        m["monitoring"]["spo2_scale"]
                    );
                }
            });
        }
        DeviceCmd::Monitor { conn, patient, spo2_scale, rules, escalate_after_min } => {
            let op = CareOp::SetMonitoring {
                patient: hash_arg(&patient, "--patient")?,
                spo2_scale,
                rules: rules.into_iter().map(medledger_types::care::RuleText).collect(),
                escalate_after_ms: escalate_after_min.saturating_mul(60_000),
            };
            let v = session(&conn)?.care(op)?;
            done("monitoring set; you are the responsible doctor", None, &v);
        }
        DeviceCmd::Simulate { node, device_key, sets, interval_ms, deteriorate_every } => {
            simulate(&node, &device_key, sets, interval_ms, deteriorate_every, j)?;
        }
        DeviceCmd::OnCall { conn, doctor } => {
            let v = session(&conn)?.care(CareOp::SetOnCall { doctor: parse_subject(&doctor)? })?;
            done("on-call doctor set", None, &v);
        }
    }
    Ok(())
}

pub fn alarm(cmd: AlarmCmd, j: bool) -> Result<(), String> {
    match cmd {
        AlarmCmd::List { conn, patient, doctor, fhir } => {
            let c = signed_client(&conn)?;
            let path = match (patient, doctor) {
                (Some(p), _) => format!("/v1/care/patients/{}/alarms", hash_arg(&p, "--patient")?.to_hex()),
                (None, Some(d)) => format!("/v1/care/doctors/{}/alarms", parse_subject(&d)?.to_hex()),
                (None, None) => {
                    let me = medledger_client::keys::read_key(&conn.key)?.public();
                    format!("/v1/care/doctors/{}/alarms", me.to_hex())
                }
            };
            let v = c.get(&path)?;
            if fhir {
                return print_fhir(&v["alarms"], medledger_client::care::fhir::flag);
            }
            print(j, &v, |v| {
                let list = v["alarms"].as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no alarms");
                }
                list.iter().for_each(alarm_line);
            });
        }
        AlarmCmd::Ack(a) => {
            let alarm_id = hash_arg(&a.id, "--id")?;
            let v = session(&a.conn)?.care(CareOp::AcknowledgeAlarm { alarm_id })?;
            let out = json!({ "id": alarm_id.to_hex(), "committed": committed(&v) });
            print(j, &out, |o| println!("alarm acknowledged at height {}", o["committed"]["height"]));
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum ReadingCmd {
    /// Send one reading (a FHIR R4 Observation file), signed by the device's key, to a node of
    /// the monitoring institution.
    Send {
        #[arg(long, default_value = "127.0.0.1:7700", env = "MEDLEDGER_NODE")]
        node: String,
        /// The device's key file (it signs the reading).
        #[arg(long)]
        device_key: std::path::PathBuf,
        /// The Observation, JSON.
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// The patient, the responsible or the on-call doctor: a patient's latest readings as the
    /// monitoring institution's node received them, with the NEWS2 score of the latest set.
    Latest {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        patient: String,
    },
}

/// Signs and sends readings as a device; the chain id comes from the genesis file.
fn device_sender(
    node: &str,
    device_key: &std::path::Path,
) -> Result<(medledger_client::http::Client, String, medledger_types::Keypair), String> {
    let light = medledger_client::light::configured()?;
    let key = medledger_client::keys::read_key(device_key)?;
    Ok((medledger_client::http::Client::new(node), light.genesis().chain_id.clone(), key))
}

pub fn reading(cmd: ReadingCmd, j: bool) -> Result<(), String> {
    match cmd {
        ReadingCmd::Send { node, device_key, file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if text.len() > medledger_types::care::vitals::MAX_READING_BYTES {
                return Err(format!(
                    "{} is {} bytes; a reading is at most {}",
                    file.display(),
                    text.len(),
                    medledger_types::care::vitals::MAX_READING_BYTES
                ));
            }
            let (client, chain_id, key) = device_sender(&node, &device_key)?;
            let v = medledger_client::care::send_reading(&client, &chain_id, &key, text.trim())?;
            print(j, &v, |v| {
                println!("reading {} accepted", v["digest"].as_str().unwrap_or(""));
                if let Some(r) = v["news2_risk"].as_str() {
                    println!("NEWS2 {} ({r})", v["news2_total"]);
                }
                for a in v["alarms"].as_array().into_iter().flatten() {
                    println!("alarm raised: {}", a.as_str().unwrap_or(""));
                }
            });
        }
        ReadingCmd::Latest { conn, patient } => {
            let p = hash_arg(&patient, "--patient")?;
            let v = signed_client(&conn)?.get(&format!("/v1/care/patients/{}/readings", p.to_hex()))?;
            print(j, &v, |v| {
                match v["news2"]["total"].as_u64() {
                    Some(t) => println!("NEWS2 {t} ({})", v["news2"]["risk"].as_str().unwrap_or("")),
                    None => println!("NEWS2: no complete set yet"),
                }
                for r in v["readings"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:17} {}",
                        r["effective_ms"].as_u64().map(rfc3339_ms).unwrap_or_default(),
                        r["parameter"].as_str().unwrap_or(""),
                        r["text"].as_str().unwrap_or("")
                    );
                }
            });
        }
    }
    Ok(())
}

/// `device simulate`: a wearable sending a full NEWS2 set every interval, deteriorating into
/// medium risk for one set every `deteriorate_every` sets; stops after `sets` sets.
pub fn simulate(
    node: &str,
    device_key: &std::path::Path,
    sets: u64,
    interval_ms: u64,
    deteriorate_every: u64,
    j: bool,
) -> Result<(), String> {
    use medledger_types::care::vitals::observation_json;
    let (client, chain_id, key) = device_sender(node, device_key)?;
    for i in 0..sets {
        let bad = deteriorate_every > 0 && i % deteriorate_every == deteriorate_every - 1;
        let start = std::time::Instant::now();
        let mut last = Value::Null;
        for (k, v) in medledger_client::care::simulated_set(bad).iter().enumerate() {
            // Distinct times within the set, so that each reading is new.
            let at = medledger_client::tx::now_ms() + k as u64;
            match medledger_client::care::send_reading(&client, &chain_id, &key, &observation_json(v, at).to_string()) {
                Ok(v) => last = v,
                // A bad reading or an unknown device is final; a node that is away, busy or
                // rate-limiting may come back.
                Err(e) if ["(400 ", "(403 ", "(421 "].iter().any(|c| e.contains(c)) => return Err(e),
                Err(e) => eprintln!("medledger: warning: reading not sent: {e}"),
            }
        }
        let line = json!({ "set": i, "deteriorating": bad, "news2_total": last["news2_total"], "news2_risk": last["news2_risk"], "alarms": last["alarms"] });
        // One line per set, so that a stream of sets stays machine-readable.
        super::emit(j, &line, |l| {
            println!(
                "set {i}: NEWS2 {} ({}){}",
                l["news2_total"],
                l["news2_risk"].as_str().unwrap_or("incomplete"),
                l["alarms"].as_array().filter(|a| !a.is_empty()).map(|a| format!("; alarms {a:?}")).unwrap_or_default()
            )
        });
        let spent = start.elapsed().as_millis() as u64;
        if i + 1 < sets && spent < interval_ms {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms - spent));
        }
    }
    Ok(())
}
