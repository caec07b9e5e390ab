//! The single error type of the crate. Every message names the file row (1-based,
//! counting the header as row 1, like a spreadsheet) and/or the column at fault.

use thiserror::Error;

/// Errors of the analytics crate. None of them is a panic: file input can only
/// produce one of these.
#[derive(Debug, Error)]
pub enum AnalyticsError {
    /// Reading or writing a file or stream failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The CSV itself is malformed (ragged row, bad quoting, bad UTF-8).
    #[error("{path}: malformed CSV: {message}")]
    Csv { path: String, message: String },
    /// The CSV has no data rows.
    #[error("{path}: no data rows")]
    Empty { path: String },
    /// A requested column is not in the header.
    #[error("{path}: missing column '{column}' (header has: {available})")]
    MissingColumn { path: String, column: String, available: String },
    /// A column was requested twice (e.g. as an input and as an output).
    #[error("column '{column}' is used more than once")]
    DuplicateColumn { column: String },
    /// A cell that must be a number is not one.
    #[error("{path}: row {row}, column '{column}': '{value}' is not a number")]
    NonNumeric { path: String, row: usize, column: String, value: String },
    /// A cell is NaN or infinite.
    #[error("{path}: row {row}, column '{column}': value is {value}, which is not a finite number")]
    NotFinite { path: String, row: usize, column: String, value: String },
    /// A DEA input or output is negative.
    #[error("{path}: row {row}, column '{column}': negative value {value} (DEA needs non-negative data)")]
    Negative { path: String, row: usize, column: String, value: f64 },
    /// A DMU has every input equal to zero.
    #[error("{path}: row {row} (DMU '{id}'): all inputs are zero")]
    AllZeroInputs { path: String, row: usize, id: String },
    /// A whole input or output column is zero.
    #[error("{path}: column '{column}' is zero for every DMU")]
    ZeroColumn { path: String, column: String },
    /// A label column (e.g. the severity outcome) has a value outside its domain.
    #[error("{path}: row {row}, column '{column}': {message}")]
    BadValue { path: String, row: usize, column: String, message: String },
    /// Invalid arguments or options (not data).
    #[error("{0}")]
    Usage(String),
    /// Too little data for the requested computation.
    #[error("{0}")]
    InsufficientData(String),
    /// A model file is malformed.
    #[error("model file {path}: {message}")]
    Model { path: String, message: String },
    /// A model file's digest does not match its canonical bytes.
    #[error("model file {path}: SHA-256 mismatch (file says {stored}, canonical bytes hash to {computed}); the model was altered and is refused")]
    DigestMismatch { path: String, stored: String, computed: String },
    /// The LP solver failed in a way the fallbacks could not recover.
    #[error("LP solver failed for DMU '{dmu}' ({stage}): {message}")]
    Solver { dmu: String, stage: String, message: String },
    /// Drawing a plot failed.
    #[error("plot: {0}")]
    Plot(String),
}

impl AnalyticsError {
    /// Whether this is a usage/input error (exit code 2 in the CLI) rather than
    /// an internal failure (exit code 1).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, AnalyticsError::Solver { .. } | AnalyticsError::Plot(_))
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AnalyticsError::Io { context: context.into(), source }
    }
}

/// Crate result alias.
pub type Result<T> = std::result::Result<T, AnalyticsError>;
