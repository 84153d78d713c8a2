//! What the server's HTTP adapters share: the REST API (`tresor-server`) and the
//! portal (`tresor-portal`) both turn a request into a [`Principal`] and a service
//! error into an answer the same way.
//!
//! - `caller.rs`: the [`Admin`] and [`AgentCaller`] extractors (a bearer token, or a
//!   portal session whose writes carry its CSRF token) and [`ClientIp`].
//! - `cookies.rs`: reading and setting the portal's cookies.
//! - `answer.rs`: [`HttpError`], a service error as a JSON error answer with its
//!   code's status.
//!
//! **Architecture invariant:** decides nothing: who may do what is the service's.

mod answer;
mod caller;
pub mod cookies;

pub use answer::{HttpError, HttpResult, InternalDetail};
pub use caller::{client_ip, session_of, Admin, AgentCaller, ClientIp};
pub use tresor_service::Principal;
