//! Clinical severity model: standardised L2 logistic regression (scikit-learn
//! conventions), metrics, k-fold cross-validation, and a canonical encoding
//! whose SHA-256 digest the ledger anchors.

pub mod cohort;
pub mod logistic;
pub mod model;

use crate::error::{AnalyticsError, Result};
use crate::rng::SeededRng;
use crate::table::Table;
use model::{SeverityModel, DEFAULT_THRESHOLDS, FORMAT};
use serde::Serialize;

/// Feature columns, in model order.
pub const FEATURES: [&str; 12] = [
    "age",
    "sex",
    "hypertension",
    "diabetes",
    "copd",
    "cardiovascular",
    "obesity",
    "spo2",
    "resp_rate",
    "crp",
    "lymphocytes",
    "d_dimer",
];

/// Outcome column (1 = severe course).
pub const OUTCOME: &str = "severe";

/// Feature matrix and optional outcome read from a CSV.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub ids: Vec<String>,
    pub x: Vec<Vec<f64>>,
    pub y: Option<Vec<f64>>,
}

/// Reads the feature columns (and the outcome when `need_outcome` or present).
pub fn dataset(table: &Table, features: &[String], need_outcome: bool) -> Result<Dataset> {
    let cols: Vec<Vec<f64>> = features.iter().map(|f| table.numbers(f)).collect::<Result<_>>()?;
    let n = table.len();
    let x: Vec<Vec<f64>> = (0..n).map(|i| cols.iter().map(|c| c[i]).collect()).collect();
    let ids = match table.col("patient_id") {
        Ok(_) => table.strings("patient_id")?,
        Err(_) => (1..=n).map(|i| i.to_string()).collect(),
    };
    let y = if need_outcome || table.col(OUTCOME).is_ok() {
        let raw = table.numbers(OUTCOME)?;
        for (i, v) in raw.iter().enumerate() {
            if *v != 0.0 && *v != 1.0 {
                return Err(AnalyticsError::BadValue {
                    path: table.name.clone(),
                    row: Table::file_row(i),
                    column: OUTCOME.into(),
                    message: format!("outcome must be 0 or 1, got {v}"),
                });
            }
        }
        Some(raw)
    } else {
        None
    };
    Ok(Dataset { ids, x, y })
}

/// Column means and population standard deviations (ddof = 0), with a zero
/// deviation replaced by 1 as scikit-learn's `StandardScaler` does.
pub fn standardiser(x: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let n = x.len() as f64;
    let d = x[0].len();
    let mean: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let scale: Vec<f64> = (0..d)
        .map(|j| {
            let v = x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
            if v > 0.0 {
                v.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    (mean, scale)
}

fn standardise(x: &[Vec<f64>], mean: &[f64], scale: &[f64]) -> Vec<Vec<f64>> {
    x.iter().map(|r| r.iter().zip(mean).zip(scale).map(|((v, m), s)| (v - m) / s).collect()).collect()
}

/// Fits a standardised model.
pub fn train(features: &[String], x: &[Vec<f64>], y: &[f64], c: f64) -> Result<SeverityModel> {
    let pos = y.iter().filter(|&&v| v > 0.5).count();
    if pos == 0 || pos == y.len() {
        return Err(AnalyticsError::InsufficientData(format!(
            "the outcome '{OUTCOME}' has a single class ({pos} of {} rows are 1); a classifier needs both",
            y.len()
        )));
    }
    let (mean, scale) = standardiser(x);
    let z = standardise(x, &mean, &scale);
    let f = logistic::fit(&z, y, c)?;
    Ok(SeverityModel {
        format: FORMAT.to_string(),
        features: features.to_vec(),
        mean,
        scale,
        coef: f.coef,
        intercept: f.intercept,
        c,
        thresholds: DEFAULT_THRESHOLDS,
    })
}

/// Accuracy, AUC and confusion matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub auc: Option<f64>,
    /// `[[tn, fp], [fn, tp]]` at P ≥ 0.5.
    pub confusion: [[usize; 2]; 2],
    /// Count of patients per predicted level (mild, moderate, severe).
    pub levels: [usize; 3],
}

/// Evaluates a model on labelled data.
pub fn evaluate(model: &SeverityModel, x: &[Vec<f64>], y: &[f64]) -> Metrics {
    let p: Vec<f64> = x.iter().map(|r| model.probability(r)).collect();
    let conf = logistic::confusion(y, &p);
    let mut levels = [0usize; 3];
    for &pi in &p {
        levels[match model.level(pi) {
            "mild" => 0,
            "moderate" => 1,
            _ => 2,
        }] += 1;
    }
    Metrics {
        n: y.len(),
        accuracy: (conf[0][0] + conf[1][1]) as f64 / y.len() as f64,
        auc: logistic::roc_auc(y, &p),
        confusion: conf,
        levels,
    }
}

/// One fold of cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fold {
    pub fold: usize,
    pub n_test: usize,
    pub accuracy: f64,
    pub auc: Option<f64>,
}

/// k-fold cross-validation with a seeded shuffle; standardisation is
/// re-estimated on each training split.
pub fn cross_validate(
    features: &[String],
    x: &[Vec<f64>],
    y: &[f64],
    c: f64,
    k: usize,
    seed: u64,
) -> Result<Vec<Fold>> {
    let n = x.len();
    if k < 2 || k > n {
        return Err(AnalyticsError::Usage(format!("--folds must be between 2 and the number of rows ({n}), got {k}")));
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SeededRng::new(seed);
    for i in (1..n).rev() {
        let j = rng.index(i + 1);
        idx.swap(i, j);
    }
    let mut folds = Vec::new();
    for f in 0..k {
        let (lo, hi) = (f * n / k, (f + 1) * n / k);
        let test: Vec<usize> = idx[lo..hi].to_vec();
        let train_idx: Vec<usize> = idx[..lo].iter().chain(&idx[hi..]).copied().collect();
        let xt: Vec<Vec<f64>> = train_idx.iter().map(|&i| x[i].clone()).collect();
        let yt: Vec<f64> = train_idx.iter().map(|&i| y[i]).collect();
        let m = train(features, &xt, &yt, c)?;
        let xs: Vec<Vec<f64>> = test.iter().map(|&i| x[i].clone()).collect();
        let ys: Vec<f64> = test.iter().map(|&i| y[i]).collect();
        let e = evaluate(&m, &xs, &ys);
        folds.push(Fold { fold: f + 1, n_test: test.len(), accuracy: e.accuracy, auc: e.auc });
    }
    Ok(folds)
}
