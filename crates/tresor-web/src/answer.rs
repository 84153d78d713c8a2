//! Service errors as HTTP answers: `{"code", "message", "recommendation"}` with the
//! code's status. An internal error's cause is never sent: it travels in the
//! answer's extensions as [`InternalDetail`] to the layer that logs it under the
//! request's id (`tresor-server`'s `http_guard.rs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tresor_service::ServiceError;

/// The cause of a 500, carried in the response's extensions to the layer that logs
/// it (with the request id) and answers without it.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// A [`ServiceError`] on its way out of a handler.
#[derive(Debug)]
pub struct HttpError(pub ServiceError);

pub type HttpResult<T> = Result<T, HttpError>;

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> HttpError {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(e.body())).into_response();
        if let Some(secs) = e.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(d) = e.detail {
            r.extensions_mut().insert(InternalDetail(d.into()));
        }
        r
    }
}
