//! MedLedger regional-equity analytics.
//!
//! * [`dea`]: Data Envelopment Analysis reproducing DEAP 2.1 (CRS/VRS/NIRS,
//!   input/output orientation, scale efficiency, returns to scale,
//!   two-stage slacks, targets and peers).
//! * [`kde`]: Gaussian kernel density estimates with scipy, statsmodels and
//!   R bandwidth rules, exact or binned/FFT evaluation, and plots.
//! * [`severity`]: an L2 logistic-regression severity model with a canonical
//!   byte encoding and SHA-256 digest, plus a seeded synthetic cohort.
//! * [`cli`]: the `analytics` subcommands of the `medledger` binary.
//!
//! The crate is standalone: it depends on no other MedLedger crate.

// Numerical kernels index several parallel arrays at once; iterator
// rewrites of those loops would be harder to check against the formulas.
#![allow(clippy::needless_range_loop)]

pub mod cli;
pub mod dea;
pub mod error;
pub mod kde;
pub mod plot;
pub mod rng;
pub mod severity;
pub mod table;

pub use error::{AnalyticsError, Result};
