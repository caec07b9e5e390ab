//! API errors: the one place where service and admission errors become HTTP answers.
//!
//! Services return typed errors ([`crate::error::ServiceError`], [`SubmitError`]) that name a
//! registry [`ErrorCode`]; this module gives each its HTTP status and the JSON body
//! `{"error": {"code": "...", "message": "..."}}`.

use super::*;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// Itemised problems, each at a JSON path (EPCIS documents), sent as `errors`.
    details: Option<Vec<medledger_types::drugs::epcis::EpcisError>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None }
    }
    /// Adds itemised problems, sent beside `error` as `errors`.
    pub fn with_details(mut self, errors: Vec<medledger_types::drugs::epcis::EpcisError>) -> Self {
        self.details = Some(errors);
        self
    }
    /// An error with the code's registry status.
    pub fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, code, message)
    }
    pub fn code(&self) -> ErrorCode {
        self.code
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The stable code and the human message, as `code: message`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.code.as_str(), self.message)
    }
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        ApiError::coded(ErrorCode::NotFound, what)
    }
    pub(crate) fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::coded(ErrorCode::Internal, e.to_string())
    }
}

/// The JSON error body.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// For a document with several problems: each one with its JSON path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<medledger_types::drugs::epcis::EpcisError>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code from the registry, e.g. `bad_signature`, `replay`.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message }, errors: self.details };
        (self.status, Json(body)).into_response()
    }
}

/// Admission's own status rule: every refusal of a transaction is the client's (400) unless it
/// is about capacity (503), a duplicate (409), size (413) or who signed it (403). This differs
/// from the registry default for `bad_signature` (400 here: the transaction bytes are wrong)
/// and for state-machine `not_found` / `already_exists` (400: the transaction is invalid).
fn submit_status(e: &SubmitError) -> StatusCode {
    match e.code() {
        ErrorCode::MempoolFull | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Duplicate => StatusCode::CONFLICT,
        ErrorCode::Oversize => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnknownSigner
        | ErrorCode::NotPermitted
        | ErrorCode::CredentialExpired
        | ErrorCode::CredentialRevoked
        | ErrorCode::CredentialNotYetValid => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        ApiError::new(submit_status(&e), e.code(), e.to_string())
    }
}

impl From<crate::error::ServiceError> for ApiError {
    fn from(e: crate::error::ServiceError) -> Self {
        match e {
            crate::error::ServiceError::Failed { code, message } => ApiError::coded(code, message),
            crate::error::ServiceError::Submit(e) => e.into(),
        }
    }
}
