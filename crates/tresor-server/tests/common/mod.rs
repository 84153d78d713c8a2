//! What the server's HTTP tests share: a quiet server on a free port, API clients
//! that trust exactly its certificate, tokens with a role, the code of a refusal; and
//! (`world`) a server with host agents and real recovery points.

#![allow(dead_code)]

pub mod portal;
pub mod world;

use std::path::Path;
use std::time::Duration;

use tresor_api::tokens::{CreateToken, Role, RoleAssignment, Scope};
use tresor_client::{ApiClient, ClientError, ServerAddress, Transport};
use tresor_server::{RunningServer, ServerConfig};

/// A client of `server` sending `token`, if any.
pub fn client(server: &RunningServer, token: Option<&str>) -> ApiClient {
    let addr = ServerAddress::parse(&server.url, &server.fingerprint).unwrap();
    ApiClient::new(
        Transport::new(&addr, None, Duration::from_secs(30)).unwrap(),
        token.map(str::to_string),
    )
}

/// A server on a free port of 127.0.0.1, with its data in `dir`, without background
/// loops (tests run their steps themselves).
pub async fn quiet_server(dir: &Path) -> RunningServer {
    let mut config = ServerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    tresor_server::start(config).await.unwrap()
}

/// The code of an API error answer; anything else fails the test.
pub fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A new API token, made by `admin`, holding `role` at `scope`: its secret.
pub async fn token_with(admin: &ApiClient, name: &str, role: Role, scope: &str) -> String {
    admin
        .create_token(&CreateToken {
            name: name.into(),
            roles: Some(vec![RoleAssignment::new(
                role,
                scope.parse::<Scope>().unwrap(),
            )]),
            expires_in_days: None,
        })
        .await
        .unwrap()
        .token
}
