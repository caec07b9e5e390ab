//! `medledger care …`: telemedicine and remote monitoring. So far the offline NEWS2 calculator.

use super::print;
use clap::Subcommand;
use medledger_types::care::news2::Observations;
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
