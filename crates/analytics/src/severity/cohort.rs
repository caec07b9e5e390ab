//! Seeded synthetic COVID-19 cohort. No patient data is fetched from
//! anywhere: every record is drawn from the distributions below.
//!
//! Ranges (clinical units), chosen to resemble published adult COVID-19
//! admission cohorts:
//!
//! | column | meaning | range |
//! |---|---|---|
//! | `age` | years | 18–95, mean ≈ 55 |
//! | `sex` | 1 = male, 0 = female | ≈ 52 % male |
//! | `hypertension`, `diabetes`, `copd`, `cardiovascular`, `obesity` | 0/1 | prevalence rising with age (≈ 30 %, 15 %, 6 %, 8 %, 20 %) |
//! | `spo2` | peripheral O₂ saturation, % | 75–100 |
//! | `resp_rate` | breaths/min | 10–45 |
//! | `crp` | C-reactive protein, mg/L | 0.5–300 |
//! | `lymphocytes` | ×10⁹/L | 0.1–5.0 |
//! | `d_dimer` | µg/mL FEU | 0.1–20 |
//! | `severe` | outcome: 1 = severe/critical course | ≈ 25 % |
//!
//! A latent disease burden `b` (standard normal, shifted by age and
//! comorbidities) drives the vital signs and laboratory values, and the
//! outcome is Bernoulli with a logistic link in `b` and age.

use crate::rng::SeededRng;
use std::fmt::Write as _;

/// Column names of the generated CSV, in order.
pub const COLUMNS: [&str; 14] = [
    "patient_id",
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
    "severe",
];

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `n` patients as CSV text.
pub fn generate_csv(n: usize, seed: u64) -> String {
    let mut rng = SeededRng::new(seed);
    let mut out = String::with_capacity(80 * (n + 1));
    out.push_str(&COLUMNS.join(","));
    out.push('\n');
    for i in 0..n {
        let age = rng.clamped_normal(55.0, 17.0, 18.0, 95.0).round();
        let sex = rng.bernoulli(0.52) as u8;
        let a = age - 55.0;
        let htn = rng.bernoulli(sigmoid(-0.9 + 0.06 * a)) as u8;
        let dm = rng.bernoulli(sigmoid(-1.8 + 0.04 * a)) as u8;
        let copd = rng.bernoulli(sigmoid(-3.0 + 0.05 * a)) as u8;
        let cvd = rng.bernoulli(sigmoid(-2.7 + 0.06 * a)) as u8;
        let obese = rng.bernoulli(0.20) as u8;
        let burden = rng.std_normal()
            + 0.02 * a
            + 0.15 * sex as f64
            + 0.25 * htn as f64
            + 0.35 * dm as f64
            + 0.45 * copd as f64
            + 0.35 * cvd as f64
            + 0.40 * obese as f64;
        let spo2 = (97.0 - 2.4 * burden + rng.normal(0.0, 1.3)).clamp(75.0, 100.0);
        let rr = (18.0 + 2.8 * burden + rng.normal(0.0, 2.0)).clamp(10.0, 45.0);
        let crp = rng.lognormal(12f64.ln() + 0.7 * burden, 0.6).clamp(0.5, 300.0);
        let lym = rng.lognormal(1.3f64.ln() - 0.22 * burden, 0.35).clamp(0.1, 5.0);
        let dd = rng.lognormal(0.5f64.ln() + 0.45 * burden, 0.55).clamp(0.1, 20.0);
        let severe = rng.bernoulli(sigmoid(-2.2 + 1.5 * burden + 0.015 * a)) as u8;
        let _ = writeln!(
            out,
            "P{:06},{age:.0},{sex},{htn},{dm},{copd},{cvd},{obese},{spo2:.1},{rr:.0},{crp:.1},{lym:.2},{dd:.2},{severe}",
            i + 1
        );
    }
    out
}
