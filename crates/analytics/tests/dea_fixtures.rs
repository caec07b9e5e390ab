//! DEA against every published fixture in `tests/fixtures/reference` (DEAP 2.1 and
//! Cooper–Seiford–Tone): every case, every DMU, every key of `expected`.

use medledger_analytics::dea::{self, DeaData, DeaOptions, DeaReport, DmuResult, Orientation, Rts};
use medledger_analytics::table::Table;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    assert!(
        dir.join("README.md").is_file(),
        "reference fixtures not found at {} (they are part of the repository)",
        dir.display()
    );
    dir
}

fn load(name: &str) -> (Value, DeaData) {
    let dir = fixtures_dir();
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).expect("read expected json"),
    )
    .expect("parse expected json");
    let table = Table::read_path(&dir.join(spec["csv"].as_str().unwrap())).expect("read csv");
    let cols = |k: &str| -> Vec<String> {
        spec[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let data = DeaData::from_table(&table, spec["id_col"].as_str().unwrap(), &cols("inputs"), &cols("outputs"), None)
        .expect("valid data");
    (spec, data)
}

fn value_of(rep: &DeaReport, d: &DmuResult, key: &str) -> Value {
    let idx = |names: &[String], col: &str| {
        names.iter().position(|n| n == col).unwrap_or_else(|| panic!("unknown column {col}"))
    };
    let num = |v: Option<f64>| Value::from(v.unwrap_or_else(|| panic!("{key} missing for {}", d.id)));
    match key {
        "crste" => num(d.crste),
        "vrste" => num(d.vrste),
        "scale" => num(d.scale),
        "rts" => Value::from(d.rts.expect("rts label").as_str()),
        _ => {
            let (kind, col) = key.split_once('.').unwrap_or_else(|| panic!("unknown key {key}"));
            match kind {
                "slack_in" => Value::from(d.slack_in[idx(&rep.inputs, col)]),
                "slack_out" => Value::from(d.slack_out[idx(&rep.outputs, col)]),
                "target_in" => Value::from(d.target_in[idx(&rep.inputs, col)]),
                "target_out" => Value::from(d.target_out[idx(&rep.outputs, col)]),
                _ => panic!("unknown key {key}"),
            }
        }
    }
}

fn check_fixture(name: &str) -> usize {
    let (spec, data) = load(name);
    let mut checked = 0;
    for case in spec["cases"].as_array().unwrap() {
        let orientation = match case["orientation"].as_str().unwrap() {
            "in" => Orientation::Input,
            "out" => Orientation::Output,
            o => panic!("orientation {o}"),
        };
        let rts = match case["rts"].as_str().unwrap() {
            "crs" => Rts::Crs,
            "vrs" => Rts::Vrs,
            r => panic!("rts {r}"),
        };
        let tol = case["abs_tol"].as_f64().unwrap();
        let label = case["label"].as_str().unwrap();
        for accelerate in [true, false] {
            let mut opts = DeaOptions::new(orientation, rts);
            opts.accelerate = accelerate;
            let rep = dea::run(&data, &opts).expect("DEA run");
            for (id, exp) in case["expected"].as_object().unwrap() {
                let d = rep.dmus.iter().find(|d| &d.id == id).unwrap_or_else(|| panic!("{name}: no DMU {id}"));
                for (key, want) in exp.as_object().unwrap() {
                    let got = value_of(&rep, d, key);
                    match want {
                        Value::String(s) => assert_eq!(got.as_str().unwrap(), s, "{name} / {label} / DMU {id} / {key}"),
                        _ => {
                            let (w, g) = (want.as_f64().unwrap(), got.as_f64().unwrap());
                            assert!(
                                (w - g).abs() <= tol,
                                "{name} / {label} / DMU {id} / {key}: expected {w}, got {g} (accelerate={accelerate})"
                            );
                        }
                    }
                    checked += 1;
                }
            }
            if let Some(peers) = case.get("peers_printed_by_DEAP") {
                for (id, exp) in peers.as_object().unwrap() {
                    let d = rep.dmus.iter().find(|d| &d.id == id).unwrap();
                    let exp = exp.as_object().unwrap();
                    assert_eq!(d.peers.len(), exp.len(), "{name} / DMU {id}: peers {:?}", d.peers);
                    for (pid, lam) in exp {
                        let got = d
                            .peers
                            .iter()
                            .find(|(p, _)| p == pid)
                            .unwrap_or_else(|| panic!("{name} / DMU {id}: peer {pid} missing in {:?}", d.peers))
                            .1;
                        assert!(
                            (got - lam.as_f64().unwrap()).abs() <= tol,
                            "{name} / DMU {id}: lambda of {pid} {got} vs {lam}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn coelli_deap_eg1_all_keys() {
    assert!(check_fixture("coelli_deap_eg1") >= 2 * 35);
}

#[test]
fn coelli_deap_eg2_all_keys() {
    assert!(check_fixture("coelli_deap_eg2") >= 2 * 30);
}

#[test]
fn cst_hospitals_all_keys() {
    assert!(check_fixture("cst_hospitals") >= 2 * 12);
}

/// Slack sums are reproduced to 1e-6 relative where the fixture values are
/// exact (DEAP example 1 is exactly rational: slack of firm 1 on x2 is 1/2).
#[test]
fn deap_eg1_exact_slack_sums() {
    let (_, data) = load("coelli_deap_eg1");
    let rep = dea::run(&data, &DeaOptions::new(Orientation::Input, Rts::Crs)).unwrap();
    let exact_sums = [0.5, 0.0, 0.0, 0.0, 0.0];
    for (d, want) in rep.dmus.iter().zip(exact_sums) {
        let sum: f64 = d.slack_in.iter().chain(&d.slack_out).sum();
        assert!((sum - want).abs() <= 1e-6 * want.max(1.0), "DMU {}: slack sum {sum} vs {want}", d.id);
    }
    let exact_te = [0.5, 1.0, 5.0 / 6.0, 5.0 / 7.0, 1.0];
    for (d, want) in rep.dmus.iter().zip(exact_te) {
        assert!((d.te - want).abs() < 1e-7, "DMU {}: {}", d.id, d.te);
    }
}
