//! DEA benchmark: the full DEAP pipeline (CSV parse, validation, CRS + VRS +
//! NIRS radial stages, VRS two-stage slacks, targets, peers) on seeded
//! synthetic data.
//!
//! `cargo run --release -p medledger-analytics --bin dea-bench -- --n 10000`
//! `--write FILE` only writes the generated CSV (for the scipy comparison).

use medledger_analytics::dea::{self, synthetic, DeaData, DeaOptions, Orientation, Rts};
use medledger_analytics::table::Table;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = get("--n").map(|v| v.parse().expect("--n N")).unwrap_or(2000);
    let seed: u64 = get("--seed").map(|v| v.parse().expect("--seed S")).unwrap_or(20240501);
    let reps: usize = get("--reps").map(|v| v.parse().expect("--reps R")).unwrap_or(1);
    let text = synthetic::generate_csv(n, seed);
    if let Some(path) = get("--write") {
        std::fs::write(&path, &text).expect("write CSV");
        eprintln!("wrote {n} DMUs (seed {seed}) to {path}");
        return;
    }
    let no_accel = args.iter().any(|a| a == "--no-accelerate");
    for rep in 0..reps {
        let t0 = Instant::now();
        let table = Table::from_reader("synthetic", text.as_bytes()).expect("parse");
        let inputs = ["X1", "X2", "X3"].map(String::from);
        let outputs = ["Y1", "Y2"].map(String::from);
        let data = DeaData::from_table(&table, "id", &inputs, &outputs, Some("region")).expect("data");
        let mut opts = DeaOptions::new(Orientation::Output, Rts::Vrs);
        opts.accelerate = !no_accel;
        let report = dea::run(&data, &opts).expect("dea");
        let secs = t0.elapsed().as_secs_f64();
        let eff = report.dmus.iter().filter(|d| d.vrste.unwrap_or(0.0) > 1.0 - 1e-6).count();
        let mean_vrs: f64 = report.dmus.iter().map(|d| d.vrste.unwrap_or(0.0)).sum::<f64>() / n as f64;
        println!(
            "dea-bench n={n} seed={seed} rep={rep} threads={} time={secs:.3}s  vrs-efficient={eff} mean-vrste={mean_vrs:.6} stats={}",
            rayon::current_num_threads(),
            serde_json::to_string(&report.stats).expect("solver stats serialize to JSON")
        );
    }
}
