//! The published severity model and its canonical, digest-anchored encoding.
//!
//! Canonical bytes (all integers big-endian, every float as its IEEE-754
//! binary64 bit pattern, so the encoding is exact and deterministic):
//!
//! ```text
//! "MEDLEDGER/SEVERITY-LOGREG"   25 ASCII bytes, no terminator
//! u32  version (= 1)
//! u32  k, the number of features
//! k × (u32 byte length, UTF-8 name)
//! k × f64 mean      (standardisation: z = (x − mean) / scale)
//! k × f64 scale
//! k × f64 coef      (on the standardised features)
//! f64 intercept
//! f64 C             (inverse L2 strength used to fit)
//! f64 moderate threshold, f64 severe threshold
//! ```
//!
//! The digest is SHA-256 of these bytes; `model.json` holds the same fields
//! (floats printed so that they parse back to the same bits) plus `"sha256"`.
//! The ledger anchors that digest; [`SeverityModel::load`] refuses a file
//! whose fields no longer hash to it.

use super::logistic::sigmoid;
use crate::error::{AnalyticsError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Magic prefix of the canonical encoding.
pub const MAGIC: &[u8] = b"MEDLEDGER/SEVERITY-LOGREG";
/// Version of the canonical encoding.
pub const VERSION: u32 = 1;
/// Format tag in `model.json`.
pub const FORMAT: &str = "medledger-severity-logreg-v1";

/// Severity levels from the predicted probability of a severe course:
/// `mild` below `moderate`, `moderate` in [`moderate`, `severe`), `severe`
/// at or above `severe`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub moderate: f64,
    pub severe: f64,
}

/// Default thresholds: P < 0.2 mild, 0.2 ≤ P < 0.5 moderate, P ≥ 0.5 severe.
pub const DEFAULT_THRESHOLDS: Thresholds = Thresholds { moderate: 0.2, severe: 0.5 };

/// A fitted, standardised logistic severity model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityModel {
    pub format: String,
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub c: f64,
    pub thresholds: Thresholds,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    #[serde(flatten)]
    model: SeverityModel,
    sha256: String,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SeverityModel {
    /// The canonical bytes (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.features.len() as u32).to_be_bytes());
        for f in &self.features {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        for v in self.mean.iter().chain(&self.scale).chain(&self.coef) {
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        for v in [self.intercept, self.c, self.thresholds.moderate, self.thresholds.severe] {
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        out
    }

    /// SHA-256 of the canonical bytes, lower-case hex.
    pub fn digest(&self) -> String {
        hex(&Sha256::digest(self.canonical_bytes()))
    }

    /// Probability of a severe course for raw (unstandardised) features.
    pub fn probability(&self, raw: &[f64]) -> f64 {
        let z: f64 = raw
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.coef)
            .map(|(((x, m), s), c)| (x - m) / s * c)
            .sum::<f64>()
            + self.intercept;
        sigmoid(z)
    }

    /// Severity level of a probability.
    pub fn level(&self, p: f64) -> &'static str {
        if p >= self.thresholds.severe {
            "severe"
        } else if p >= self.thresholds.moderate {
            "moderate"
        } else {
            "mild"
        }
    }

    /// `model.json` text (fields + digest).
    pub fn to_json(&self) -> String {
        let file = ModelFile { model: self.clone(), sha256: self.digest() };
        serde_json::to_string_pretty(&file).expect("model serialises") + "\n"
    }

    /// Writes `model.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json())
            .map_err(|e| AnalyticsError::io(format!("cannot write {}", path.display()), e))
    }

    /// Parses and verifies `model.json` text; `name` labels errors.
    pub fn from_json(name: &str, text: &str) -> Result<SeverityModel> {
        let merr = |m: String| AnalyticsError::Model { path: name.to_string(), message: m };
        let file: ModelFile = serde_json::from_str(text).map_err(|e| merr(format!("not a severity model: {e}")))?;
        let m = file.model;
        if m.format != FORMAT {
            return Err(merr(format!("unknown format '{}' (expected '{FORMAT}')", m.format)));
        }
        let k = m.features.len();
        if k == 0 || m.mean.len() != k || m.scale.len() != k || m.coef.len() != k {
            return Err(merr("features, mean, scale and coef must have the same non-zero length".into()));
        }
        let computed = m.digest();
        if !computed.eq_ignore_ascii_case(file.sha256.trim()) {
            return Err(AnalyticsError::DigestMismatch { path: name.to_string(), stored: file.sha256, computed });
        }
        if m.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(merr("every scale must be a positive number".into()));
        }
        Ok(m)
    }

    /// Reads and verifies `model.json`.
    pub fn load(path: &Path) -> Result<SeverityModel> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AnalyticsError::io(format!("cannot read {name}"), e))?;
        SeverityModel::from_json(&name, &text)
    }
}
