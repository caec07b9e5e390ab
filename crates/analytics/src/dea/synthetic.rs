//! Seeded synthetic DEA data for benchmarks and tests.
//!
//! A Cobb–Douglas technology with decreasing returns (elasticities summing
//! to 0.9), half-normal inefficiency and a little noise: 3 inputs (doctors,
//! nurses, beds per 10,000 people) and 2 outputs (outpatient and inpatient
//! visits), grouped into 8 regions. The same seed gives the same file.

use crate::rng::SeededRng;
use std::fmt::Write as _;

/// Generates `n` DMUs as CSV text with columns
/// `id,region,X1,X2,X3,Y1,Y2`.
pub fn generate_csv(n: usize, seed: u64) -> String {
    let mut rng = SeededRng::new(seed);
    let mut out = String::with_capacity(n * 64);
    out.push_str("id,region,X1,X2,X3,Y1,Y2\n");
    for j in 0..n {
        let region = rng.index(8);
        let x1 = rng.lognormal(3.0, 0.5); // doctors
        let x2 = x1 * rng.lognormal(0.8, 0.3); // nurses, correlated with doctors
        let x3 = rng.lognormal(3.5, 0.4); // beds
        let frontier = 12.0 * x1.powf(0.35) * x2.powf(0.25) * x3.powf(0.30);
        let ineff = rng.std_normal().abs() * 0.35;
        let noise = rng.normal(0.0, 0.05);
        let total = frontier * (noise - ineff).exp();
        let share = rng.range(0.3, 0.8);
        let y1 = total * share * 10.0;
        let y2 = total * (1.0 - share);
        let _ = writeln!(out, "D{j:05},R{},{x1:.4},{x2:.4},{x3:.4},{y1:.4},{y2:.4}", region + 1);
    }
    out
}
