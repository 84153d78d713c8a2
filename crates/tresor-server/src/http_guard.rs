//! What every answer of the server gets, whatever route (or none) answered it:
//!
//! - security headers: a content security policy that lets the portal load only its
//!   own script and style sheet and no page frame it, `X-Frame-Options`, `nosniff`,
//!   no referrer, and HSTS (the server speaks only HTTPS);
//! - a request id (`X-Request-Id`), so that an operator can find a failed request in
//!   the log;
//! - a 500 says only that the server failed and gives the request id: the detail (a
//!   path, a database message) goes to the log with the same id, never to the client;
//! - a body over the route's limit (413) answers with the API's error shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tresor_api::ErrorCode;
use tresor_service::ServiceError;
use tresor_web::{HttpError, InternalDetail};

/// The portal loads its script and style sheet from the server itself and nothing
/// else; its script calls the API of the same origin; forms post to the same origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

/// One year; no `includeSubDomains`, since other services may live under the
/// server's name.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the whole application (API, portal, fallback) in the guards above.
pub fn guard(app: Router) -> Router {
    let headers: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    // Innermost: a panicking handler answers 500 (then sanitized and given its id
    // like any other) rather than dropping the connection.
    let mut app = app
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                r.extensions_mut()
                    .insert(InternalDetail("a request handler panicked".into()));
                r
            },
        ))
        .layer(axum::middleware::from_fn(request_id_and_errors));
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    app
}

/// A new request id: 16 random hex digits.
fn new_request_id() -> String {
    let mut id = tresor_service::auth::new_id();
    id.truncate(16);
    id
}

async fn request_id_and_errors(req: Request, next: Next) -> Response {
    let id = new_request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/") || path == "/openapi.json";
    let mut r = next.run(req).await;
    match r.status() {
        StatusCode::INTERNAL_SERVER_ERROR => {
            let detail = r
                .extensions_mut()
                .remove::<InternalDetail>()
                .map(|d| d.0)
                .unwrap_or_else(|| "no detail".into());
            // `?`: the detail may quote what a client sent; escaped, it cannot
            // forge a log line.
            tracing::error!(request_id = %id, %method, path = ?path, detail = ?detail, "request failed");
            r = internal_answer(&id, api);
        }
        StatusCode::PAYLOAD_TOO_LARGE if !is_json(&r) => {
            let limit = crate::api::body_limit(&path);
            r = HttpError(ServiceError::new(
                ErrorCode::RequestTooLarge,
                format!("the request's body is larger than this call accepts ({limit} bytes)"),
                "send a smaller body; objects are uploaded one pack or index file at a time",
            ))
            .into_response();
        }
        _ => {}
    }
    r.headers_mut()
        .insert(REQUEST_ID, HeaderValue::from_str(&id).expect("hex"));
    r
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The answer to a request the server failed: the id, nothing of the cause.
fn internal_answer(id: &str, api: bool) -> Response {
    let e = ServiceError::new(
        ErrorCode::InternalError,
        format!("the server failed to complete this request (request id {id})"),
        "retry; if it persists, give the server's administrator the request id: the server's log has the cause",
    );
    if api {
        let mut body = e.body();
        body.request_id = Some(id.to_string());
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Server error · Tresor" } link rel="stylesheet" href="/assets/portal.css"; }
            body { main {
                h1 { "The server failed" }
                p { (e.message) }
                p { (e.recommendation) }
                p { a href="/vaults" { "Back to the vaults" } }
            } }
        }
    };
    let mut r = Html(page.into_string()).into_response();
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// A 404 for any path no route serves: the API's error shape under `/api/`, a short
/// page elsewhere.
pub async fn not_found(req: Request<Body>) -> Response {
    if req.uri().path().starts_with("/api/") {
        return HttpError(ServiceError::new(
            ErrorCode::NotFound,
            "no such API call",
            "see /openapi.json for the calls this server offers",
        ))
        .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html><title>Not found · Tresor</title><p>This page does not exist. <a href=\"/vaults\">Back to the vaults</a>.</p>"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_500_shows_its_request_id_and_not_its_cause() {
        let app = guard(
            Router::new()
                .route(
                    "/api/v1/fails",
                    get(|| async {
                        HttpError(ServiceError::internal(
                            "/var/lib/tresor/metadata.db: disk I/O error",
                        ))
                    }),
                )
                .route(
                    "/page",
                    get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "/secret/path") }),
                )
                .route(
                    "/panics",
                    get(|| async {
                        if true {
                            panic!("/secret/panic");
                        }
                        "never"
                    }),
                ),
        );
        for (path, json) in [
            ("/api/v1/fails", true),
            ("/page", false),
            ("/panics", false),
        ] {
            let r = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            let id = r.headers()[REQUEST_ID].to_str().unwrap().to_string();
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let text = body(r).await;
            assert!(
                !text.contains("/secret") && !text.contains("/var/lib"),
                "{text}"
            );
            assert!(text.contains(&id), "{path}: {text}");
            if json {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["code"], "InternalError");
                assert_eq!(v["requestId"], id);
            }
        }
    }
}
