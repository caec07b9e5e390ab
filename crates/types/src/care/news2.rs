//! NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017): the sub-score
//! of each physiological parameter, their total, and the clinical risk it implies.
//!
//! The bands are the RCP chart's, written once here as tables ([`BANDS_RESPIRATORY_RATE`] …).
//! Values are checked before scoring: a value outside what a living patient can show (SpO₂ of
//! 140 %, a pulse of −5) is an error naming the field and its range, never a score.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One complete observation set, in the units NEWS2 uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observations {
    /// Breaths per minute.
    pub respiratory_rate: f64,
    /// Peripheral oxygen saturation, %.
    pub spo2: f64,
    /// Which SpO₂ scale applies: 1, or 2 for patients with hypercapnic respiratory failure (the
    /// responsible doctor sets it per patient).
    pub spo2_scale: u8,
    /// On supplemental oxygen (any device), rather than breathing air.
    pub on_oxygen: bool,
    /// Systolic blood pressure, mm Hg.
    pub systolic_bp: f64,
    /// Pulse, beats per minute.
    pub pulse: f64,
    /// ACVPU: `A`lert, new `C`onfusion, responds to `V`oice, to `P`ain, `U`nresponsive.
    pub consciousness: Consciousness,
    /// Body temperature, °C.
    pub temperature: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consciousness {
    A,
    C,
    V,
    P,
    U,
}

/// The score of each parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubScores {
    pub respiratory_rate: u8,
    pub spo2: u8,
    pub on_oxygen: u8,
    pub systolic_bp: u8,
    pub pulse: u8,
    pub consciousness: u8,
    pub temperature: u8,
}

impl SubScores {
    pub fn all(&self) -> [u8; 7] {
        [
            self.respiratory_rate,
            self.spo2,
            self.on_oxygen,
            self.systolic_bp,
            self.pulse,
            self.consciousness,
            self.temperature,
        ]
    }
}

/// The clinical risk of a score (RCP 2017, chart 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// Total 0–4, no parameter scoring 3.
    Low,
    /// Total 0–4 with a single parameter scoring 3 ("red score").
    LowMedium,
    /// Total 5–6.
    Medium,
    /// Total 7 or more.
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::LowMedium => "low-medium",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub subscores: SubScores,
    pub total: u8,
    pub risk: Risk,
}

/// A value that cannot be scored: the field and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub rule: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for Invalid {}

/// `(upper bound inclusive, score)`, in rising order; a value above the last bound scores
/// `top`. Respiration rate, per minute: ≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2, ≥25 → 3.
pub const BANDS_RESPIRATORY_RATE: (&[(f64, u8)], u8) = (&[(8.0, 3), (11.0, 1), (20.0, 0), (24.0, 2)], 3);
/// SpO₂ scale 1, %: ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0.
pub const BANDS_SPO2_SCALE1: (&[(f64, u8)], u8) = (&[(91.0, 3), (93.0, 2), (95.0, 1)], 0);
/// SpO₂ scale 2, %: ≤83 → 3, 84–85 → 2, 86–87 → 1, 88–92 (or ≥93 on air) → 0; on oxygen
/// 93–94 → 1, 95–96 → 2, ≥97 → 3.
pub const BANDS_SPO2_SCALE2_ON_OXYGEN: (&[(f64, u8)], u8) =
    (&[(83.0, 3), (85.0, 2), (87.0, 1), (92.0, 0), (94.0, 1), (96.0, 2)], 3);
pub const BANDS_SPO2_SCALE2_ON_AIR: (&[(f64, u8)], u8) = (&[(83.0, 3), (85.0, 2), (87.0, 1)], 0);
/// Systolic blood pressure, mm Hg: ≤90 → 3, 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3.
pub const BANDS_SYSTOLIC_BP: (&[(f64, u8)], u8) = (&[(90.0, 3), (100.0, 2), (110.0, 1), (219.0, 0)], 3);
/// Pulse, per minute: ≤40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1, 111–130 → 2, ≥131 → 3.
pub const BANDS_PULSE: (&[(f64, u8)], u8) = (&[(40.0, 3), (50.0, 1), (90.0, 0), (110.0, 1), (130.0, 2)], 3);
/// Temperature, °C (to one decimal): ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0, 38.1–39.0 → 1,
/// ≥39.1 → 2.
pub const BANDS_TEMPERATURE: (&[(f64, u8)], u8) = (&[(35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)], 2);

/// What a living patient can show; values outside are refused as impossible (not scored).
pub const RANGE_RESPIRATORY_RATE: (f64, f64) = (0.0, 80.0);
pub const RANGE_SPO2: (f64, f64) = (0.0, 100.0);
pub const RANGE_SYSTOLIC_BP: (f64, f64) = (20.0, 300.0);
pub const RANGE_PULSE: (f64, f64) = (0.0, 300.0);
pub const RANGE_TEMPERATURE: (f64, f64) = (25.0, 45.0);

fn band(value: f64, (bands, top): (&[(f64, u8)], u8)) -> u8 {
    bands.iter().find(|(upper, _)| value <= *upper).map_or(top, |(_, s)| *s)
}

/// Checks a value against its range; whole-number parameters must be whole.
pub fn check(field: &'static str, value: f64, (lo, hi): (f64, f64), whole: bool) -> Result<(), Invalid> {
    if !value.is_finite() {
        return Err(Invalid { field, rule: "must be a number".into() });
    }
    if value < lo || value > hi {
        return Err(Invalid { field, rule: format!("{value} is physiologically impossible (accepted: {lo} to {hi})") });
    }
    if whole && value.fract() != 0.0 {
        return Err(Invalid { field, rule: format!("{value} must be a whole number") });
    }
    Ok(())
}

impl Observations {
    pub fn validate(&self) -> Result<(), Invalid> {
        check("respiratory_rate", self.respiratory_rate, RANGE_RESPIRATORY_RATE, true)?;
        check("spo2", self.spo2, RANGE_SPO2, true)?;
        if !matches!(self.spo2_scale, 1 | 2) {
            return Err(Invalid { field: "spo2_scale", rule: format!("{} is not a scale: 1 or 2", self.spo2_scale) });
        }
        check("systolic_bp", self.systolic_bp, RANGE_SYSTOLIC_BP, true)?;
        check("pulse", self.pulse, RANGE_PULSE, true)?;
        check("temperature", self.temperature, RANGE_TEMPERATURE, false)?;
        Ok(())
    }

    /// The NEWS2 score of a valid observation set.
    pub fn score(&self) -> Result<Score, Invalid> {
        self.validate()?;
        let spo2 = match (self.spo2_scale, self.on_oxygen) {
            (1, _) => band(self.spo2, BANDS_SPO2_SCALE1),
            (_, true) => band(self.spo2, BANDS_SPO2_SCALE2_ON_OXYGEN),
            (_, false) => band(self.spo2, BANDS_SPO2_SCALE2_ON_AIR),
        };
        // Temperatures are charted to one decimal: 35.04 is 35.0.
        let temperature = (self.temperature * 10.0).round() / 10.0;
        let subscores = SubScores {
            respiratory_rate: band(self.respiratory_rate, BANDS_RESPIRATORY_RATE),
            spo2,
            on_oxygen: if self.on_oxygen { 2 } else { 0 },
            systolic_bp: band(self.systolic_bp, BANDS_SYSTOLIC_BP),
            pulse: band(self.pulse, BANDS_PULSE),
            consciousness: if self.consciousness == Consciousness::A { 0 } else { 3 },
            temperature: band(temperature, BANDS_TEMPERATURE),
        };
        let total: u8 = subscores.all().iter().sum();
        debug_assert!(total <= 20, "NEWS2 is at most 20");
        Ok(Score { subscores, total, risk: risk_of(total, &subscores) })
    }
}

/// The risk of a total, given the sub-scores (a single 3 lifts a low total to low-medium).
pub fn risk_of(total: u8, sub: &SubScores) -> Risk {
    match total {
        7.. => Risk::High,
        5..=6 => Risk::Medium,
        _ if sub.all().contains(&3) => Risk::LowMedium,
        _ => Risk::Low,
    }
}
