//! Errors as the API shows them: an HTTP status and a JSON body
//! `{"code": "...", "message": "...", "recommendation": "..."}`. Codes are stable.

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
}

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

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("the server failed: {message}"),
            "retry; if it persists, see the server's log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code.to_string(),
            message: e.message,
            recommendation: e.recommendation,
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
