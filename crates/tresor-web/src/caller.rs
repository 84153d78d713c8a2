//! Who is calling, from a request: extractors that ask the service to authenticate
//! what the request carries. They hold a [`Principal`], which only the service makes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Method;
use tresor_service::auth::same_secret;
use tresor_service::csrf_mismatch;
use tresor_service::{Principal, Service, ServiceError, SignedIn};

use crate::cookies::{cookie, SESSION_COOKIE};
use crate::HttpError;

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The live portal session of a request, if any.
pub fn session_of(service: &Service, parts: &Parts) -> Option<SignedIn> {
    service.session(cookie(&parts.headers, SESSION_COOKIE)?, client_ip(parts))
}

/// The client's address (see [`ClientIp`]).
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// An administrator: the admin token or an API token as a bearer token, or a portal
/// session (whose writes must carry its CSRF token in `X-CSRF-Token`: the portal's
/// scripts call the API with the session).
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<Service>> for Admin {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Admin, HttpError> {
        if let Some(token) = bearer(parts) {
            return Ok(Admin(
                service.authenticate_admin(token, client_ip(parts)).await?,
            ));
        }
        let session = session_of(service, parts).ok_or_else(ServiceError::unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !safe && !same_secret(&session.csrf, sent) {
            return Err(csrf_mismatch().into());
        }
        Ok(Admin(session.principal))
    }
}

/// A registered host agent (its credential as a bearer token).
pub struct AgentCaller(pub Principal);

impl FromRequestParts<Arc<Service>> for AgentCaller {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<AgentCaller, HttpError> {
        let token = bearer(parts).ok_or_else(ServiceError::unauthorized)?;
        Ok(AgentCaller(
            service.authenticate_agent(token, client_ip(parts)).await?,
        ))
    }
}

/// The client's IP address (from the connection; the server sits behind no proxy).
/// Requests without connection info (a router called in a unit test) share one
/// unspecified address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientIp, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}
