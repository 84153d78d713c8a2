//! Where the vault server is, and which way leads to it.

use std::fmt;

use hyper_util::client::proxy::matcher::Matcher;
use serde::{Deserialize, Serialize};
use tresor_tls::Fingerprint;
use url::Url;

use crate::error::ClientError;

/// The vault server: its HTTPS URL and the fingerprint of its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddress {
    /// `https://host:port`, optionally with a path prefix under which the
    /// API is served.
    pub url: Url,
    /// SHA-256 fingerprint of the server's certificate, the only one trusted.
    pub fingerprint: Fingerprint,
}

impl ServerAddress {
    /// An address from its parts; see [`ServerAddress::validate`].
    pub fn new(url: Url, fingerprint: Fingerprint) -> Result<ServerAddress, ClientError> {
        let addr = ServerAddress { url, fingerprint };
        addr.validate()?;
        Ok(addr)
    }

    /// Parses a URL and a fingerprint (hex or colon form).
    pub fn parse(url: &str, fingerprint: &str) -> Result<ServerAddress, ClientError> {
        let url = Url::parse(url)
            .map_err(|e| ClientError::InvalidAddress(format!("{url:?} is not a URL: {e}")))?;
        let fingerprint = fingerprint
            .parse()
            .map_err(|e| ClientError::InvalidAddress(format!("{e}")))?;
        ServerAddress::new(url, fingerprint)
    }

    /// Checks that the URL is `https` with a host and no credentials.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.url.scheme() != "https" {
            return Err(ClientError::InvalidAddress(format!(
                "{}: the vault server is reached over https",
                self.url
            )));
        }
        if self.url.host_str().is_none_or(str::is_empty) {
            return Err(ClientError::InvalidAddress(format!(
                "{}: no host",
                self.url
            )));
        }
        if !self.url.username().is_empty() || self.url.password().is_some() {
            return Err(ClientError::InvalidAddress(
                "the server URL must not hold credentials".into(),
            ));
        }
        Ok(())
    }

    /// The host as it appears in the URL (IPv6 addresses without brackets).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => String::new(),
        }
    }

    /// The port, 443 when the URL names none.
    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }

    /// `host:port` as a CONNECT request or a message names it (IPv6 in
    /// brackets).
    pub fn authority(&self) -> String {
        host_port(&self.host(), self.port())
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (certificate {})", self.url, self.fingerprint)
    }
}

/// An HTTP proxy given explicitly, as in an agent's configuration.
///
/// The proxy is spoken to in plain HTTP and asked for a tunnel with
/// `CONNECT`; TLS to the server runs inside the tunnel, end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// Host name or IP address of the proxy.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl ProxyConfig {
    /// Checks that host and port make a proxy URL.
    pub fn validate(&self) -> Result<(), ClientError> {
        let usable = !self.host.trim().is_empty()
            && self.port != 0
            && self.url().parse::<http::Uri>().is_ok_and(|uri| {
                uri.host()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                    == Some(self.host.trim_start_matches('[').trim_end_matches(']'))
                    && uri.port_u16() == Some(self.port)
            });
        if usable {
            Ok(())
        } else {
            Err(ClientError::InvalidAddress(format!(
                "the proxy {self} is not a usable host and port"
            )))
        }
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", host_port(&self.host, self.port))
    }
}

impl fmt::Display for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&host_port(&self.host, self.port))
    }
}

pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Where a proxy setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// A [`ProxyConfig`] given by the caller.
    Config,
    /// An environment variable (`HTTPS_PROXY`, `https_proxy`, `ALL_PROXY` or
    /// `all_proxy`), named here.
    Environment(&'static str),
}

impl fmt::Display for ProxySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySource::Config => f.write_str("configured"),
            ProxySource::Environment(var) => write!(f, "from {var}"),
        }
    }
}

/// The way requests to the server take.
///
/// Decided with `hyper-util`'s proxy matcher, the one `reqwest` uses for
/// its own proxy settings:
///
/// - An explicit [`ProxyConfig`] is used for the server unless `NO_PROXY`
///   (or `no_proxy`) in the environment matches the server's host; the
///   environment's proxy variables are then ignored.
/// - Without one, `HTTPS_PROXY`/`https_proxy`, else `ALL_PROXY`/`all_proxy`,
///   is used unless `NO_PROXY`/`no_proxy` matches the host. `HTTP_PROXY` is
///   not used: the server is always `https`. Like curl, nothing is exempt by
///   itself: `localhost` and `127.0.0.1` go through the proxy unless
///   `NO_PROXY` lists them.
/// - `NO_PROXY` is a comma-separated list of IP addresses, networks
///   (`10.0.0.0/8`), domain names (matching the domain and its subdomains;
///   a leading dot is allowed) and `*` (every host, IP addresses included);
///   ports are not matched. Names are not resolved for matching: a server
///   given as `127.0.0.1` is not matched by `localhost`, nor the reverse.
/// - As a CGI guard, environment proxies are ignored when `REQUEST_METHOD`
///   is set.
#[derive(Clone, PartialEq, Eq)]
pub enum Route {
    /// Straight to the server.
    Direct {
        /// Why a proxy that is set is not used for this server, if one is.
        bypassed: Option<String>,
    },
    /// Through an HTTP proxy, with a `CONNECT` tunnel.
    Proxy {
        /// Proxy host.
        host: String,
        /// Proxy port.
        port: u16,
        /// The proxy URL's scheme (`http`; others are not supported).
        scheme: String,
        /// Where the setting came from.
        source: ProxySource,
        /// `Proxy-Authorization` value from credentials in the proxy URL.
        authorization: Option<http::HeaderValue>,
    },
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never show the proxy credentials.
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct { bypassed: None } => f.write_str("direct"),
            Route::Direct {
                bypassed: Some(why),
            } => write!(f, "direct ({why})"),
            Route::Proxy {
                host,
                port,
                scheme,
                source,
                authorization,
            } => {
                write!(
                    f,
                    "through proxy {scheme}://{} ({source}",
                    host_port(host, *port)
                )?;
                if authorization.is_some() {
                    f.write_str(", with credentials")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Route {
    /// Decides the way to `addr`, with an explicit proxy or the environment's.
    pub fn decide(addr: &ServerAddress, proxy: Option<&ProxyConfig>) -> Route {
        let dst: http::Uri = match format!("https://{}/", addr.authority()).parse() {
            Ok(uri) => uri,
            Err(_) => return Route::Direct { bypassed: None },
        };
        let no_proxy = first_env(&["NO_PROXY", "no_proxy"]).map(|(_, v)| v);
        let (matcher, source) = match proxy {
            Some(p) => (
                Matcher::builder()
                    .all(p.url())
                    .no(no_proxy.clone().unwrap_or_default())
                    .build(),
                Some(ProxySource::Config),
            ),
            None => {
                let var = first_env(&["HTTPS_PROXY", "https_proxy"])
                    .filter(|(_, v)| !v.trim().is_empty())
                    .or_else(|| first_env(&["ALL_PROXY", "all_proxy"]))
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(name, _)| name);
                (Matcher::from_env(), var.map(ProxySource::Environment))
            }
        };
        // hyper-util matches `*` against names only; it means every host.
        let everything_exempt = no_proxy
            .as_deref()
            .is_some_and(|list| list.split(',').any(|entry| entry.trim() == "*"));
        let intercept = matcher.intercept(&dst).filter(|_| !everything_exempt);
        match intercept {
            Some(intercept) => {
                let uri = intercept.uri();
                Route::Proxy {
                    host: uri
                        .host()
                        .unwrap_or_default()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port: uri.port_u16().unwrap_or(match uri.scheme_str() {
                        Some("https") => 443,
                        _ => 80,
                    }),
                    scheme: uri.scheme_str().unwrap_or("http").to_owned(),
                    source: source.unwrap_or(ProxySource::Environment("HTTPS_PROXY")),
                    authorization: intercept.basic_auth().cloned(),
                }
            }
            None => Route::Direct {
                bypassed: source.map(|source| {
                    let (what, value) = match (source, proxy) {
                        (ProxySource::Config, Some(p)) => {
                            ("the configured proxy".to_owned(), p.url())
                        }
                        (ProxySource::Environment(var), _) => {
                            if std::env::var_os("REQUEST_METHOD").is_some() {
                                return format!("{var} is ignored because REQUEST_METHOD is set");
                            }
                            (
                                format!("the proxy from {var}"),
                                std::env::var(var).unwrap_or_default(),
                            )
                        }
                        (ProxySource::Config, None) => {
                            ("the configured proxy".to_owned(), String::new())
                        }
                    };
                    let usable = Matcher::builder()
                        .all(value)
                        .build()
                        .intercept(&dst)
                        .is_some();
                    if usable {
                        format!("{what} is bypassed: NO_PROXY matches {}", addr.host())
                    } else {
                        format!("{what} is not a usable proxy URL")
                    }
                }),
            },
        }
    }

    /// Whether requests go through a proxy.
    pub fn is_proxy(&self) -> bool {
        matches!(self, Route::Proxy { .. })
    }
}

/// The first of `names` that is set, with its value (as `hyper-util` reads
/// them: set but empty still counts).
fn first_env(names: &[&'static str]) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().map(|v| (*name, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(url: &str) -> ServerAddress {
        ServerAddress::parse(url, &"ab".repeat(32)).unwrap()
    }

    #[test]
    fn validates_addresses() {
        assert!(ServerAddress::parse("http://vault:8443", &"ab".repeat(32)).is_err());
        assert!(ServerAddress::parse("https://u:p@vault:8443", &"ab".repeat(32)).is_err());
        assert!(ServerAddress::parse("https://vault:8443", "abc").is_err());
        let a = addr("https://[::1]:8443");
        assert_eq!(a.host(), "::1");
        assert_eq!(a.authority(), "[::1]:8443");
        assert_eq!(addr("https://vault.example").port(), 443);
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyConfig {
            host: "::1".into(),
            port: 3128,
        };
        assert_eq!(p.url(), "http://[::1]:3128");
        let p = ProxyConfig {
            host: "proxy".into(),
            port: 3128,
        };
        assert_eq!(p.url(), "http://proxy:3128");
        assert!(p.validate().is_ok());
        for (host, port) in [("", 3128), ("bad host", 3128), ("proxy", 0), ("a/b", 1)] {
            let p = ProxyConfig {
                host: host.into(),
                port,
            };
            assert!(p.validate().is_err(), "{host}:{port}");
        }
    }
}
