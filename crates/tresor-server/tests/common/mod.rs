//! What the server's HTTP tests share: a quiet server on a free port, and API clients
//! that trust exactly its certificate.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use tresor_client::{ApiClient, ServerAddress, Transport};
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
