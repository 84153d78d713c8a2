//! The one error of the service: a stable [`ErrorCode`] (which carries its HTTP
//! status for the REST adapter), what is wrong, and what to do.
//!
//! An internal failure (`InternalError`) never shows its cause to the caller: the
//! cause travels in [`ServiceError::detail`], which adapters log (the REST adapter
//! under the request's id) and never send.

use tresor_api::{ErrorBody, ErrorCode};
use tresor_domain::RuleError;
use tresor_metadata::StoreError;

/// A refusal or failure of a use case.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    pub recommendation: String,
    /// What went wrong inside the server (an internal error's cause): logged, never
    /// sent. (Boxed: errors travel in every `Result` of the service, so they are
    /// kept small.)
    pub detail: Option<Box<str>>,
    /// Seconds to wait before trying again (`TooManyAttempts`).
    pub retry_after: Option<u64>,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(
        code: ErrorCode,
        message: impl Into<String>,
        recommendation: impl Into<String>,
    ) -> ServiceError {
        ServiceError {
            code,
            message: message.into(),
            recommendation: recommendation.into(),
            detail: None,
            retry_after: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> ServiceError {
        let what = what.into();
        ServiceError::new(
            ErrorCode::NotFound,
            format!("{what} does not exist"),
            "check the name or id (list them to see what exists)",
        )
    }

    pub fn unauthorized() -> ServiceError {
        ServiceError::new(
            ErrorCode::Unauthorized,
            "this call needs a valid token (Authorization: Bearer ...)",
            "use the admin token printed when the server first started, an API token, or the agent's credential",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::new(
            ErrorCode::Forbidden,
            message,
            "use a token allowed to do this",
        )
    }

    /// The server failed. `cause` goes to the log (see the module's comment), not to
    /// the caller.
    pub fn internal(cause: impl std::fmt::Display) -> ServiceError {
        let mut e = ServiceError::new(
            ErrorCode::InternalError,
            "the server failed to complete this request",
            "retry; if it persists, see the server's log",
        );
        e.detail = Some(cause.to_string().into());
        e
    }

    /// The HTTP status of its code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// What a caller is shown (never the detail).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.as_str().to_string(),
            message: self.message.clone(),
            recommendation: self.recommendation.clone(),
            request_id: None,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        // Background loops log errors with Display: they need the cause.
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

impl From<RuleError> for ServiceError {
    fn from(e: RuleError) -> ServiceError {
        match e.code.parse::<ErrorCode>() {
            Ok(code) => ServiceError::new(code, e.message, e.recommendation),
            // The API's codes hold every rule code (tresor-api checks it): this is
            // only reached by a rule added without its code.
            Err(_) => ServiceError::internal(format!("rule code {} is no API code: {e}", e.code)),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        match e {
            StoreError::NotFound { what } => ServiceError::not_found(what),
            StoreError::Conflict { what } => ServiceError::new(
                ErrorCode::AlreadyExists,
                format!("{what} already exists"),
                "choose another name, or use the existing one",
            ),
            e => ServiceError::internal(e),
        }
    }
}

impl From<tresor_engine::Error> for ServiceError {
    fn from(e: tresor_engine::Error) -> ServiceError {
        ServiceError::internal(e)
    }
}
