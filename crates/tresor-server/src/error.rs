//! Errors as the API shows them: an HTTP status and a JSON body
//! `{"code": "...", "message": "...", "recommendation": "..."}`. Codes are stable.
//!
//! A 500 (`InternalError`) never shows its cause: the cause travels with the response
//! as [`InternalDetail`] and `http_guard.rs` logs it under the request's id, which is
//! all the client is told.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tresor_domain::RuleError;
use tresor_metadata::StoreError;

/// An error answer of the API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub recommendation: String,
    /// What went wrong inside the server (a 500's cause): logged, never sent.
    /// (Boxed: errors travel in every `Result` of the server, so they are kept small.)
    #[serde(skip)]
    pub detail: Option<Box<str>>,
}

/// The cause of a 500, carried in the response's extensions to the layer that logs
/// it (with the request id) and answers without it.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            recommendation: recommendation.into(),
            detail: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        let what = what.into();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} does not exist"),
            "check the name or id (list them to see what exists)",
        )
    }

    pub fn bad_request(
        code: &str,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message, recommendation)
    }

    pub fn conflict(
        code: &str,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message, recommendation)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this call needs a valid token (Authorization: Bearer ...)",
            "use the admin token printed when the server first started, an API token, or the agent's credential",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            message,
            "use a token allowed to do this",
        )
    }

    /// The server failed. `cause` goes to the log (see the module's comment), not to
    /// the client.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the server failed to complete this request",
            "retry; if it persists, see the server's log",
        );
        e.detail = Some(cause.to_string().into());
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        // Background loops log errors with Display: they need the cause.
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(&self)).into_response();
        if let Some(d) = self.detail {
            r.extensions_mut().insert(InternalDetail(d.into()));
        }
        r
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code.to_string(),
            message: e.message,
            recommendation: e.recommendation,
            detail: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::Conflict { what } => ApiError::conflict(
                "AlreadyExists",
                format!("{what} already exists"),
                "choose another name, or use the existing one",
            ),
            e => ApiError::internal(e),
        }
    }
}

impl From<tresor_engine::Error> for ApiError {
    fn from(e: tresor_engine::Error) -> ApiError {
        ApiError::internal(e)
    }
}
