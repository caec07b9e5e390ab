//! Errors of the node's services (record service, audit), independent of HTTP.
//!
//! A service names what went wrong with a registry [`ErrorCode`] and a message for people; the
//! API maps it to an HTTP answer once, in `api/error.rs`. Admission errors of the node's own
//! transactions keep their [`SubmitError`], which the API maps by its own rule.

use crate::chain::SubmitError;
use medledger_types::ErrorCode;

#[derive(Debug)]
pub enum ServiceError {
    /// A refusal or failure with its registry code.
    Failed { code: ErrorCode, message: String },
    /// A transaction this service submitted was not admitted.
    Submit(SubmitError),
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Failed { code, message: message.into() }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::new(ErrorCode::Internal, e.to_string())
    }
    /// The registry code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Failed { code, .. } => *code,
            ServiceError::Submit(e) => e.code(),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Failed { code, message } => write!(f, "{}: {message}", code.as_str()),
            ServiceError::Submit(e) => write!(f, "{}: {e}", e.code().as_str()),
        }
    }
}

impl std::error::Error for ServiceError {}

/// A state-machine refusal (credential, permission, consent) under its own registry code.
impl From<medledger_state::Rejection> for ServiceError {
    fn from(r: medledger_state::Rejection) -> Self {
        ServiceError::new(r.code.code(), r.reason)
    }
}

impl From<SubmitError> for ServiceError {
    fn from(e: SubmitError) -> Self {
        ServiceError::Submit(e)
    }
}
