//! Severity model: agreement with scikit-learn, digest anchoring, tamper
//! refusal, metrics and the cohort generator.

use medledger_analytics::severity::{self, cohort, model::SeverityModel};
use medledger_analytics::table::Table;
use medledger_analytics::AnalyticsError;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sklearn_logreg.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("sklearn fixture")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn coefficients_match_scikit_learn_within_1e4() {
    let fx = fixture();
    assert!(fx["sklearn_version"].as_str().unwrap().starts_with('1'));
    let features: Vec<String> =
        fx["features"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(features, severity::FEATURES.map(String::from).to_vec());
    let x: Vec<Vec<f64>> = fx["x"].as_array().unwrap().iter().map(floats).collect();
    let y = floats(&fx["y"]);
    let model = severity::train(&features, &x, &y, 1.0).unwrap();
    for (a, b) in model.mean.iter().zip(floats(&fx["scaler_mean"])) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "mean {a} vs {b}");
    }
    for (a, b) in model.scale.iter().zip(floats(&fx["scaler_scale"])) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "scale {a} vs {b}");
    }
    for (i, (a, b)) in model.coef.iter().zip(floats(&fx["coef"])).enumerate() {
        assert!((a - b).abs() <= 1e-4, "coef {} ({}): {a} vs sklearn {b}", i, features[i]);
    }
    let b0 = fx["intercept"].as_f64().unwrap();
    assert!((model.intercept - b0).abs() <= 1e-4, "intercept {} vs {b0}", model.intercept);
    for (row, p) in x.iter().zip(floats(&fx["proba_first10"])) {
        assert!((model.probability(row) - p).abs() <= 1e-5);
    }
}

fn trained() -> SeverityModel {
    let text = cohort::generate_csv(600, 3);
    let t = Table::from_reader("cohort.csv", text.as_bytes()).unwrap();
    let feats: Vec<String> = severity::FEATURES.map(String::from).to_vec();
    let ds = severity::dataset(&t, &feats, true).unwrap();
    severity::train(&feats, &ds.x, ds.y.as_ref().unwrap(), 1.0).unwrap()
}

#[test]
fn canonical_bytes_and_digest_round_trip() {
    let m = trained();
    let bytes = m.canonical_bytes();
    assert!(bytes.starts_with(b"MEDLEDGER/SEVERITY-LOGREG\0\0\0\x01\0\0\0\x0c"));
    let names: usize = m.features.iter().map(|f| 4 + f.len()).sum();
    assert_eq!(bytes.len(), 25 + 4 + 4 + names + 3 * 12 * 8 + 4 * 8);
    let d = m.digest();
    assert_eq!(d.len(), 64);
    let back = SeverityModel::from_json("model.json", &m.to_json()).unwrap();
    assert_eq!(back, m, "JSON must round-trip every float bit-exactly");
    assert_eq!(back.digest(), d);
    // Any change of a field changes the digest.
    let mut other = m.clone();
    other.coef[3] = f64::from_bits(other.coef[3].to_bits() + 1);
    assert_ne!(other.digest(), d);
}

#[test]
fn tampered_model_is_refused() {
    let m = trained();
    let json = m.to_json();
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["coef"][0] = Value::from(v["coef"][0].as_f64().unwrap() + 0.5);
    let e = SeverityModel::from_json("model.json", &v.to_string()).unwrap_err();
    assert!(matches!(e, AnalyticsError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("SHA-256 mismatch") && e.to_string().contains("refused"));
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["thresholds"]["severe"] = Value::from(0.9);
    assert!(matches!(SeverityModel::from_json("m", &v.to_string()), Err(AnalyticsError::DigestMismatch { .. })));
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["sha256"] = Value::from("00".repeat(32));
    assert!(matches!(SeverityModel::from_json("m", &v.to_string()), Err(AnalyticsError::DigestMismatch { .. })));
    assert!(matches!(SeverityModel::from_json("m", "{not json"), Err(AnalyticsError::Model { .. })));
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["format"] = Value::from("other");
    assert!(matches!(SeverityModel::from_json("m", &v.to_string()), Err(AnalyticsError::Model { .. })));
}

#[test]
fn metrics_levels_and_cross_validation() {
    let text = cohort::generate_csv(1500, 21);
    let t = Table::from_reader("cohort.csv", text.as_bytes()).unwrap();
    let feats: Vec<String> = severity::FEATURES.map(String::from).to_vec();
    let ds = severity::dataset(&t, &feats, true).unwrap();
    let y = ds.y.unwrap();
    let m = severity::train(&feats, &ds.x, &y, 1.0).unwrap();
    let e = severity::evaluate(&m, &ds.x, &y);
    assert_eq!(e.confusion.iter().flatten().sum::<usize>(), 1500);
    assert_eq!(e.levels.iter().sum::<usize>(), 1500);
    let auc = e.auc.unwrap();
    assert!(auc > 0.75 && auc < 1.0, "AUC {auc}: the synthetic signal should be learnable, not perfect");
    // Risk factors push in the clinically expected direction.
    let idx = |f: &str| feats.iter().position(|x| x == f).unwrap();
    assert!(m.coef[idx("spo2")] < 0.0 && m.coef[idx("crp")] > 0.0 && m.coef[idx("age")] > 0.0);
    // Levels follow the documented thresholds.
    assert_eq!(m.level(0.1), "mild");
    assert_eq!(m.level(0.2), "moderate");
    assert_eq!(m.level(0.49), "moderate");
    assert_eq!(m.level(0.5), "severe");
    let folds = severity::cross_validate(&feats, &ds.x, &y, 1.0, 5, 7).unwrap();
    assert_eq!(folds.len(), 5);
    assert_eq!(folds.iter().map(|f| f.n_test).sum::<usize>(), 1500);
    let cv_auc = folds.iter().map(|f| f.auc.unwrap()).sum::<f64>() / 5.0;
    assert!(cv_auc > 0.7 && cv_auc <= auc + 0.02, "CV AUC {cv_auc} vs training {auc}");
    assert_eq!(folds, severity::cross_validate(&feats, &ds.x, &y, 1.0, 5, 7).unwrap().to_vec());
    assert!(matches!(severity::cross_validate(&feats, &ds.x, &y, 1.0, 1, 7), Err(AnalyticsError::Usage(_))));
}

#[test]
fn severity_input_errors() {
    let feats: Vec<String> = severity::FEATURES.map(String::from).to_vec();
    let good = cohort::generate_csv(30, 1);
    // Outcome outside {0, 1}.
    let bad = good.replacen(",0\n", ",2\n", 1);
    let t = Table::from_reader("c.csv", bad.as_bytes()).unwrap();
    let e = severity::dataset(&t, &feats, true).unwrap_err();
    assert!(matches!(e, AnalyticsError::BadValue { ref column, .. } if column == "severe"), "{e}");
    // Missing feature column.
    let t = Table::from_reader("c.csv", good.replace("d_dimer", "ddimer").as_bytes()).unwrap();
    assert!(matches!(severity::dataset(&t, &feats, true), Err(AnalyticsError::MissingColumn { .. })));
    // Single class.
    let t = Table::from_reader("c.csv", good.as_bytes()).unwrap();
    let ds = severity::dataset(&t, &feats, true).unwrap();
    let zeros = vec![0.0; ds.x.len()];
    let e = severity::train(&feats, &ds.x, &zeros, 1.0).unwrap_err();
    assert!(matches!(e, AnalyticsError::InsufficientData(_)), "{e}");
    // Bad C.
    assert!(matches!(severity::train(&feats, &ds.x, ds.y.as_ref().unwrap(), -1.0), Err(AnalyticsError::Usage(_))));
}

#[test]
fn cohort_is_seeded_and_in_documented_ranges() {
    let a = cohort::generate_csv(2000, 7);
    assert_eq!(a, cohort::generate_csv(2000, 7));
    assert_ne!(a, cohort::generate_csv(2000, 8));
    let t = Table::from_reader("c.csv", a.as_bytes()).unwrap();
    assert_eq!(t.headers, cohort::COLUMNS.map(String::from).to_vec());
    let range = |c: &str, lo: f64, hi: f64| {
        let v = t.numbers(c).unwrap();
        assert!(v.iter().all(|x| *x >= lo && *x <= hi), "{c} outside [{lo}, {hi}]");
        v.iter().sum::<f64>() / v.len() as f64
    };
    let age = range("age", 18.0, 95.0);
    assert!((45.0..65.0).contains(&age));
    range("spo2", 75.0, 100.0);
    range("resp_rate", 10.0, 45.0);
    range("crp", 0.5, 300.0);
    range("lymphocytes", 0.1, 5.0);
    range("d_dimer", 0.1, 20.0);
    let severe = range("severe", 0.0, 1.0);
    assert!((0.15..0.35).contains(&severe), "severe rate {severe}");
    let htn = range("hypertension", 0.0, 1.0);
    assert!((0.2..0.45).contains(&htn));
}
