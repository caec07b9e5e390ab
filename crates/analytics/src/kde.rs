//! Gaussian kernel density estimation.
//!
//! `f(x) = 1/(n h) Σ φ((x − x_i)/h)` with bandwidth rules reproducing
//! scipy.stats.gaussian_kde (Scott, Silverman), statsmodels' KDEUnivariate
//! (`bw="scott"|"silverman"`), R's `bw.nrd0`, or a fixed `h`. Evaluation is
//! exact (direct sum) or binned (linear binning on a grid 8× finer than the
//! output grid + FFT convolution with the sampled kernel).

use crate::error::{AnalyticsError, Result};
use crate::table::Table;
use rayon::prelude::*;
use rustfft::{num_complex::Complex, FftPlanner};
use serde::Serialize;
use std::str::FromStr;

const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Bandwidth selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bandwidth {
    /// scipy `gaussian_kde(bw_method="scott")`: h = σ n^(−1/5), σ with ddof = 1.
    ScipyScott,
    /// scipy `gaussian_kde(bw_method="silverman")`: h = σ (3n/4)^(−1/5).
    ScipySilverman,
    /// R `bw.nrd0`: 0.9 min(σ, IQR/1.34) n^(−1/5) with R's fallbacks.
    Nrd0,
    /// statsmodels `bw_scott`: 1.059 A n^(−1/5), A = min(σ, IQR/1.349) (σ if IQR = 0).
    SmScott,
    /// statsmodels `bw_silverman`: 0.9 A n^(−1/5).
    SmSilverman,
    /// A fixed bandwidth.
    Fixed(f64),
}

impl FromStr for Bandwidth {
    type Err = AnalyticsError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "scott" | "scipy-scott" => Bandwidth::ScipyScott,
            "silverman" | "scipy-silverman" => Bandwidth::ScipySilverman,
            "nrd0" | "r-nrd0" => Bandwidth::Nrd0,
            "sm-scott" => Bandwidth::SmScott,
            "sm-silverman" => Bandwidth::SmSilverman,
            other => match other.parse::<f64>() {
                Ok(h) if h.is_finite() && h > 0.0 => Bandwidth::Fixed(h),
                _ => {
                    return Err(AnalyticsError::Usage(format!(
                    "unknown bandwidth '{s}': use scott, silverman, nrd0, sm-scott, sm-silverman or a positive number"
                )))
                }
            },
        })
    }
}

impl std::fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bandwidth::ScipyScott => write!(f, "scipy-scott"),
            Bandwidth::ScipySilverman => write!(f, "scipy-silverman"),
            Bandwidth::Nrd0 => write!(f, "r-nrd0"),
            Bandwidth::SmScott => write!(f, "sm-scott"),
            Bandwidth::SmSilverman => write!(f, "sm-silverman"),
            Bandwidth::Fixed(h) => write!(f, "fixed({h})"),
        }
    }
}

/// Sample standard deviation (ddof = 1), two-pass.
pub fn std_ddof1(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Quantile by linear interpolation (R type 7, numpy's default) of sorted data.
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn iqr(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, 0.75) - quantile_sorted(&s, 0.25)
}

/// The bandwidth `h` of `rule` for the sample `x`.
pub fn bandwidth(x: &[f64], rule: Bandwidth) -> Result<f64> {
    if let Bandwidth::Fixed(h) = rule {
        if !(h.is_finite() && h > 0.0) {
            return Err(AnalyticsError::Usage(format!("bandwidth must be a positive number, got {h}")));
        }
        return Ok(h);
    }
    let n = x.len();
    if n < 2 {
        return Err(AnalyticsError::InsufficientData(format!("the {rule} bandwidth needs at least 2 values, got {n}")));
    }
    let nf = n as f64;
    let sd = std_ddof1(x);
    let h = match rule {
        Bandwidth::ScipyScott => sd * nf.powf(-1.0 / 5.0),
        Bandwidth::ScipySilverman => sd * (nf * 3.0 / 4.0).powf(-1.0 / 5.0),
        Bandwidth::Nrd0 => {
            let mut lo = sd.min(iqr(x) / 1.34);
            if lo == 0.0 {
                lo = sd;
                if lo == 0.0 {
                    lo = x[0].abs();
                    if lo == 0.0 {
                        lo = 1.0;
                    }
                }
            }
            0.9 * lo * nf.powf(-0.2)
        }
        Bandwidth::SmScott | Bandwidth::SmSilverman => {
            let q = iqr(x) / 1.349;
            let a = if q > 0.0 { sd.min(q) } else { sd };
            let c = if rule == Bandwidth::SmScott { 1.059 } else { 0.9 };
            c * a * nf.powf(-0.2)
        }
        Bandwidth::Fixed(_) => unreachable!(),
    };
    if !(h.is_finite() && h > 0.0) {
        return Err(AnalyticsError::InsufficientData(format!(
            "the {rule} bandwidth is {h} (all values equal?); choose a fixed bandwidth or the nrd0 rule"
        )));
    }
    Ok(h)
}

/// Exact density at `points` (parallel over points).
pub fn density_exact(x: &[f64], h: f64, points: &[f64]) -> Vec<f64> {
    let norm = INV_SQRT_2PI / (x.len() as f64 * h);
    let inv_h = 1.0 / h;
    points
        .par_iter()
        .map(|&p| {
            let mut s = 0.0;
            for &xi in x {
                let z = (p - xi) * inv_h;
                s += (-0.5 * z * z).exp();
            }
            s * norm
        })
        .collect()
}

/// `n` equally spaced points from `a` to `b` inclusive (numpy `linspace`).
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| a + i as f64 * step).collect();
    v[n - 1] = b;
    v
}

/// Oversampling of the internal binning grid relative to the output grid.
pub const BIN_REFINE: usize = 8;

/// Binned density on the uniform grid `linspace(a, b, n)`: linear binning on
/// a grid `BIN_REFINE` times finer (extended to cover every data point), then
/// an FFT convolution with the Gaussian kernel sampled out to 9 h.
pub fn density_binned(x: &[f64], h: f64, a: f64, b: f64, n: usize) -> Vec<f64> {
    if n < 2 || b <= a {
        return density_exact(x, h, &linspace(a, b, n));
    }
    let delta = (b - a) / ((n - 1) * BIN_REFINE) as f64;
    let (xmin, xmax) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let ext_lo = if xmin < a { ((a - xmin) / delta).ceil() as usize + 1 } else { 0 };
    let ext_hi = if xmax > b { ((xmax - b) / delta).ceil() as usize + 1 } else { 0 };
    let g = ext_lo + (n - 1) * BIN_REFINE + 1 + ext_hi;
    let origin = a - ext_lo as f64 * delta;
    let mut w = vec![0.0f64; g];
    for &v in x {
        let pos = (v - origin) / delta;
        let i = (pos.floor() as usize).min(g - 2);
        let frac = pos - i as f64;
        w[i] += 1.0 - frac;
        w[i + 1] += frac;
    }
    let half = ((9.0 * h / delta).ceil() as usize).min(g - 1);
    let size = (g + half).next_power_of_two().max(2) * 2;
    let mut fw: Vec<Complex<f64>> = (0..size).map(|i| Complex::new(if i < g { w[i] } else { 0.0 }, 0.0)).collect();
    let mut fk: Vec<Complex<f64>> = vec![Complex::new(0.0, 0.0); size];
    let norm = INV_SQRT_2PI / (x.len() as f64 * h);
    for k in 0..=half {
        let z = k as f64 * delta / h;
        let v = (-0.5 * z * z).exp() * norm;
        fk[k] = Complex::new(v, 0.0);
        if k > 0 {
            fk[size - k] = Complex::new(v, 0.0);
        }
    }
    let mut planner = FftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(size);
    let inv = planner.plan_fft_inverse(size);
    fwd.process(&mut fw);
    fwd.process(&mut fk);
    for (a, b) in fw.iter_mut().zip(&fk) {
        *a *= b;
    }
    inv.process(&mut fw);
    let scale = 1.0 / size as f64;
    (0..n).map(|i| (fw[ext_lo + i * BIN_REFINE].re * scale).max(0.0)).collect()
}

/// Evaluation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Direct sum over all points (exact).
    Exact,
    /// Linear binning + FFT convolution (fast; error documented).
    Binned,
}

/// Value rescaling before estimation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rescale {
    /// Values as given.
    None,
    /// Values divided by the mean of their year (or of all rows without a year
    /// column): "multiple of the mean".
    Mean,
}

/// Options of a KDE run.
#[derive(Debug, Clone, Copy)]
pub struct KdeOptions {
    pub bandwidth: Bandwidth,
    pub grid_points: usize,
    pub mode: Mode,
    pub rescale: Rescale,
    /// The grid spans [min − cut·h, max + cut·h] over all curves.
    pub cut: f64,
}

impl Default for KdeOptions {
    fn default() -> Self {
        KdeOptions {
            bandwidth: Bandwidth::ScipyScott,
            grid_points: 512,
            mode: Mode::Exact,
            rescale: Rescale::None,
            cut: 3.0,
        }
    }
}

/// One density curve.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub group: Option<String>,
    pub year: Option<String>,
    pub n: usize,
    pub mean: f64,
    pub bandwidth: f64,
    pub grid: Vec<f64>,
    pub density: Vec<f64>,
}

impl Curve {
    /// Grid point of the highest density.
    pub fn mode_location(&self) -> f64 {
        let mut best = 0;
        for (i, d) in self.density.iter().enumerate() {
            if *d > self.density[best] {
                best = i;
            }
        }
        self.grid[best]
    }
}

/// All curves of a run.
#[derive(Debug, Clone, Serialize)]
pub struct KdeReport {
    pub value: String,
    pub rule: String,
    pub mode: Mode,
    pub rescale: Rescale,
    pub curves: Vec<Curve>,
}

fn first_seen(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

/// KDE of column `value`, one curve per (group, year).
pub fn run_table(
    table: &Table,
    value: &str,
    group: Option<&str>,
    year: Option<&str>,
    opts: &KdeOptions,
) -> Result<KdeReport> {
    if opts.grid_points < 2 {
        return Err(AnalyticsError::Usage(format!("--grid-points must be at least 2, got {}", opts.grid_points)));
    }
    let mut vals = table.numbers(value)?;
    let groups = group.map(|g| table.strings(g)).transpose()?;
    let years = year.map(|y| table.strings(y)).transpose()?;
    let year_keys = years.clone().unwrap_or_else(|| vec![String::new(); vals.len()]);
    if opts.rescale == Rescale::Mean {
        for y in first_seen(&year_keys) {
            let idx: Vec<usize> = (0..vals.len()).filter(|&i| year_keys[i] == y).collect();
            let mean = idx.iter().map(|&i| vals[i]).sum::<f64>() / idx.len() as f64;
            if !(mean.is_finite() && mean != 0.0) {
                return Err(AnalyticsError::InsufficientData(format!(
                    "cannot rescale '{value}' to multiples of the mean: the mean{} is {mean}",
                    if y.is_empty() { String::new() } else { format!(" of year {y}") }
                )));
            }
            for i in idx {
                vals[i] /= mean;
            }
        }
    }
    let group_keys = groups.clone().unwrap_or_else(|| vec![String::new(); vals.len()]);
    let mut specs = Vec::new();
    for g in first_seen(&group_keys) {
        for y in first_seen(&year_keys) {
            let sample: Vec<f64> =
                (0..vals.len()).filter(|&i| group_keys[i] == g && year_keys[i] == y).map(|i| vals[i]).collect();
            if sample.is_empty() {
                continue;
            }
            let h = bandwidth(&sample, opts.bandwidth).map_err(|e| match e {
                AnalyticsError::InsufficientData(m) => AnalyticsError::InsufficientData(format!(
                    "{}{}: {m}",
                    if g.is_empty() { String::new() } else { format!("group {g} ") },
                    if y.is_empty() { String::new() } else { format!("year {y}") }
                )),
                other => other,
            })?;
            specs.push((g.clone(), y.clone(), sample, h));
        }
    }
    let lo = specs
        .iter()
        .map(|(_, _, s, h)| s.iter().cloned().fold(f64::INFINITY, f64::min) - opts.cut * h)
        .fold(f64::INFINITY, f64::min);
    let hi = specs
        .iter()
        .map(|(_, _, s, h)| s.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + opts.cut * h)
        .fold(f64::NEG_INFINITY, f64::max);
    let grid = linspace(lo, hi, opts.grid_points);
    let curves = specs
        .into_iter()
        .map(|(g, y, sample, h)| {
            let density = match opts.mode {
                Mode::Exact => density_exact(&sample, h, &grid),
                Mode::Binned => density_binned(&sample, h, lo, hi, opts.grid_points),
            };
            Curve {
                group: group.map(|_| g),
                year: year.map(|_| y),
                n: sample.len(),
                mean: sample.iter().sum::<f64>() / sample.len() as f64,
                bandwidth: h,
                grid: grid.clone(),
                density,
            }
        })
        .collect();
    Ok(KdeReport {
        value: value.to_string(),
        rule: opts.bandwidth.to_string(),
        mode: opts.mode,
        rescale: opts.rescale,
        curves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_parsing() {
        assert_eq!("scott".parse::<Bandwidth>().unwrap(), Bandwidth::ScipyScott);
        assert_eq!("r-nrd0".parse::<Bandwidth>().unwrap(), Bandwidth::Nrd0);
        assert_eq!("0.25".parse::<Bandwidth>().unwrap(), Bandwidth::Fixed(0.25));
        assert!("-1".parse::<Bandwidth>().is_err());
        assert!("wide".parse::<Bandwidth>().is_err());
    }

    #[test]
    fn nrd0_fallbacks_follow_r() {
        // All equal: sd = 0, IQR = 0 -> lo = |x[1]|.
        let h = bandwidth(&[2.0, 2.0, 2.0, 2.0], Bandwidth::Nrd0).unwrap();
        assert!((h - 0.9 * 2.0 * 4f64.powf(-0.2)).abs() < 1e-15);
        // All zero -> lo = 1.
        let h = bandwidth(&[0.0, 0.0], Bandwidth::Nrd0).unwrap();
        assert!((h - 0.9 * 2f64.powf(-0.2)).abs() < 1e-15);
        // IQR = 0 but sd > 0 -> lo = sd.
        let x = [1.0, 1.0, 1.0, 1.0, 1.0, 9.0];
        let h = bandwidth(&x, Bandwidth::Nrd0).unwrap();
        assert!((h - 0.9 * std_ddof1(&x) * 6f64.powf(-0.2)).abs() < 1e-15);
        // scipy rules refuse constant data (scipy raises on a singular covariance).
        assert!(bandwidth(&[3.0, 3.0], Bandwidth::ScipyScott).is_err());
        assert!(bandwidth(&[3.0], Bandwidth::SmSilverman).is_err());
    }

    #[test]
    fn density_integrates_to_one() {
        let x = [0.1, 0.5, 0.7, 2.0, 2.2];
        let h = bandwidth(&x, Bandwidth::ScipyScott).unwrap();
        let grid = linspace(-5.0, 7.0, 4001);
        let d = density_exact(&x, h, &grid);
        let step = grid[1] - grid[0];
        let integral: f64 = d.iter().sum::<f64>() * step;
        assert!((integral - 1.0).abs() < 1e-6, "{integral}");
    }
}
