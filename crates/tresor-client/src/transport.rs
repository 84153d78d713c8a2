//! The HTTP client: HTTPS with the pinned certificate, through the proxy when
//! there is one.

use std::time::Duration;

use url::Url;

use crate::address::host_port;
use crate::error::ClientError;
use crate::failure::{error_chain, FailureKind};
use crate::{ProxyConfig, Route, ServerAddress};

/// An HTTP client for one vault server.
///
/// TLS trusts exactly the certificate pinned in the [`ServerAddress`]. The
/// way to the server is decided once, when the transport is made, as
/// [`Route::decide`] describes: an explicit proxy, else the environment's
/// `HTTPS_PROXY`/`ALL_PROXY`, each bypassed when `NO_PROXY` matches the
/// server. The HTTP client is then told that route (a proxy, or none), and
/// takes no other way.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    address: ServerAddress,
    base: Url,
    route: Route,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.address)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client for `addr`, through `proxy` if given (else the environment's
    /// proxy, if any).
    ///
    /// `timeout` bounds connecting (TCP, the proxy's tunnel and the TLS
    /// handshake together) and each wait for data from the server; it does
    /// not bound whole transfers, so large uploads and downloads that keep
    /// moving are not cut off.
    pub fn new(
        addr: &ServerAddress,
        proxy: Option<&ProxyConfig>,
        timeout: Duration,
    ) -> Result<Transport, ClientError> {
        addr.validate()?;
        if let Some(p) = proxy {
            p.validate()?;
        }
        let mut base = addr.url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);

        let mut tls = tresor_tls::pinned_client_config(&addr.fingerprint);
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        // The route is decided here, once, for the one server this transport
        // reaches; the HTTP client just follows it.
        let route = Route::decide(addr, proxy);
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .https_only(true)
            .user_agent(concat!("tresor/", env!("CARGO_PKG_VERSION")));
        match &route {
            Route::Direct { .. } => builder = builder.no_proxy(),
            Route::Proxy {
                host,
                port,
                scheme,
                authorization,
                ..
            } => {
                if scheme != "http" {
                    return Err(ClientError::InvalidAddress(format!(
                        "{route}: only http proxies (asked for a CONNECT tunnel) are supported"
                    )));
                }
                let mut p = reqwest::Proxy::all(format!("http://{}", host_port(host, *port)))
                    .map_err(|e| ClientError::InvalidAddress(format!("{route}: {e}")))?;
                if let Some(auth) = authorization {
                    p = p.custom_http_auth(auth.clone());
                }
                builder = builder.proxy(p);
            }
        }
        let client = builder.build().map_err(|e| {
            ClientError::InvalidAddress(format!(
                "cannot set up the HTTP client: {}",
                error_chain(&e)
            ))
        })?;
        tracing::debug!(server = %addr.url, %route, "HTTP transport ready");
        Ok(Transport {
            client,
            address: addr.clone(),
            base,
            route,
        })
    }

    /// The server this transport reaches.
    pub fn address(&self) -> &ServerAddress {
        &self.address
    }

    /// The way requests take.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The underlying HTTP client, for requests the API client does not
    /// cover (streams). Its errors are classified by
    /// [`Transport::classify`].
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The URL of `path` (like `/api/v1/ping`, with or without the leading
    /// slash, optionally with a query), under the server URL's path.
    pub fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::InvalidRequest(format!("{path:?}: {e}")))
    }

    /// Turns a failed request into [`ClientError::Transport`] with the
    /// failure classified, as far as the error tells:
    ///
    /// - the pin does not match: `CertificateMismatch` (with both
    ///   fingerprints in the detail);
    /// - another TLS error: `TlsFailed`;
    /// - connecting fails through a proxy: `ProxyUnreachable` (the HTTP
    ///   client does not tell a dead proxy from one refusing the tunnel;
    ///   the connection check does);
    /// - connecting fails directly: `DnsFailed` when resolving the name
    ///   failed, else `TcpConnectFailed`;
    /// - anything after the connection (no answer in time, a broken answer):
    ///   `ServerError`.
    pub fn classify(&self, err: &reqwest::Error) -> ClientError {
        let mut detail = error_chain(err);
        let kind = classify_kind(err, &detail, self.route.is_proxy());
        if let Some(m) = tresor_tls::find_fingerprint_mismatch(err) {
            detail = match err.url() {
                Some(url) => format!("{url}: {m}"),
                None => m.to_string(),
            };
        } else if kind == FailureKind::ProxyUnreachable
            && detail.contains("tunnel error: unsuccessful")
        {
            detail.push_str(&format!(
                " (the proxy {} refused the tunnel or could not reach the server; the connection check tells which)",
                self.route
            ));
        }
        tracing::debug!(%kind, %detail, "request failed");
        ClientError::Transport { kind, detail }
    }
}

fn classify_kind(err: &reqwest::Error, detail: &str, via_proxy: bool) -> FailureKind {
    if tresor_tls::find_fingerprint_mismatch(err).is_some() {
        return FailureKind::CertificateMismatch;
    }
    if tresor_tls::find_rustls_error(err).is_some() {
        return FailureKind::TlsFailed;
    }
    let lower = detail.to_ascii_lowercase();
    if err.is_connect() {
        // The server closed the connection during the handshake.
        if lower.contains("tls handshake") {
            return FailureKind::TlsFailed;
        }
        if via_proxy {
            return FailureKind::ProxyUnreachable;
        }
        if lower.contains("dns error") {
            return FailureKind::DnsFailed;
        }
        return FailureKind::TcpConnectFailed;
    }
    FailureKind::ServerError
}
