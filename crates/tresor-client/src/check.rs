//! A step-by-step diagnosis of the way to the server.
//!
//! The check takes the very [`Route`] a [`Transport`] decides and follows,
//! so what it finds is what requests meet; and it tells apart what a failed
//! request cannot ([`Transport::classify`] sees a dead proxy and one that
//! refuses the tunnel alike).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::address::host_port;
use crate::error::truncate;
use crate::failure::{error_chain, ConnectFailure, FailureKind};
use crate::{ApiClient, ClientError, ProxyConfig, Route, ServerAddress, Transport};

/// How long each step of [`check`] may take.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The API path answering 200 to anyone.
const PING: &str = "/api/v1/ping";
/// The API path answering 200 to a valid agent credential.
const AGENT_PING: &str = "/api/v1/agent/ping";

/// One step of the way, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStep {
    /// `address`, `route`, `dns`, `tcp`, `proxy`, `tunnel`, `tls`, `http` or
    /// `credential`.
    pub name: &'static str,
    /// Whether it succeeded.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The steps tried, up to the first failure, and that failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The steps in order; the last one failed when `failure` is set.
    pub steps: Vec<CheckStep>,
    /// The first failure, if any.
    pub failure: Option<ConnectFailure>,
}

impl CheckReport {
    /// Whether every step succeeded.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure's code, if any.
    pub fn code(&self) -> Option<&'static str> {
        self.failure.as_ref().map(|f| f.code)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            let mark = if step.ok { "ok  " } else { "FAIL" };
            writeln!(f, "[{mark}] {:<10} {}", step.name, step.detail)?;
        }
        match &self.failure {
            None => writeln!(f, "The vault server is reachable."),
            Some(failure) => {
                writeln!(f, "{}: {}", failure.code, failure.message)?;
                writeln!(f, "Recommendation: {}", failure.recommendation)
            }
        }
    }
}

/// Tests the way to the server step by step, with
/// [`DEFAULT_CHECK_TIMEOUT`] for each step, and names the first failure.
///
/// The steps, each recorded in the report:
///
/// 1. `address`: the address is an `https` URL with a host.
/// 2. `route`: direct or through which proxy ([`Route::decide`]).
/// 3. Direct: `dns` resolves the server's name (`DnsFailed`), `tcp`
///    connects to it (`TcpConnectFailed`). Through a proxy: `proxy`
///    connects to the proxy (`ProxyUnreachable`) and `tunnel` asks it
///    `CONNECT host:port`; the proxy resolves and connects for us, so its
///    502/503/504 answers become `DnsFailed` when its message speaks of
///    name resolution and `TcpConnectFailed` otherwise, and other refusals
///    `ProxyUnreachable` with the proxy's status line.
/// 4. `tls`: the TLS handshake with the pinned certificate
///    (`CertificateMismatch` with both fingerprints, or `TlsFailed`).
/// 5. `http`: `GET /api/v1/ping` through a [`Transport`] must answer 200
///    (`ServerError` otherwise).
/// 6. `credential`, when one is given: `GET /api/v1/agent/ping` with it as
///    bearer token must answer 200 (`CredentialRejected` on 401 or 403).
///
/// The credential is never logged or shown.
pub async fn check(
    addr: &ServerAddress,
    proxy: Option<&ProxyConfig>,
    credential: Option<&str>,
) -> CheckReport {
    check_with_timeout(addr, proxy, credential, DEFAULT_CHECK_TIMEOUT).await
}

/// [`check`] with another time limit for each step.
pub async fn check_with_timeout(
    addr: &ServerAddress,
    proxy: Option<&ProxyConfig>,
    credential: Option<&str>,
    step_timeout: Duration,
) -> CheckReport {
    let mut checker = Checker {
        steps: Vec::new(),
        timeout: step_timeout,
    };
    let failure = checker.run(addr, proxy, credential).await.err();
    match &failure {
        None => tracing::info!(server = %addr.url, "connection check passed"),
        Some(f) => {
            tracing::warn!(server = %addr.url, code = f.code, message = %f.message, "connection check failed")
        }
    }
    CheckReport {
        steps: checker.steps,
        failure,
    }
}

struct Checker {
    steps: Vec<CheckStep>,
    timeout: Duration,
}

impl Checker {
    fn ok(&mut self, name: &'static str, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::debug!(step = name, %detail, "check step passed");
        self.steps.push(CheckStep {
            name,
            ok: true,
            detail,
        });
    }

    fn fail(&mut self, name: &'static str, failure: ConnectFailure) -> ConnectFailure {
        self.steps.push(CheckStep {
            name,
            ok: false,
            detail: failure.message.clone(),
        });
        failure
    }

    async fn run(
        &mut self,
        addr: &ServerAddress,
        proxy: Option<&ProxyConfig>,
        credential: Option<&str>,
    ) -> Result<(), ConnectFailure> {
        if let Err(e) = addr.validate() {
            return Err(self.fail(
                "address",
                ConnectFailure::new(FailureKind::InvalidAddress, e.to_string()),
            ));
        }
        if let Some(Err(e)) = proxy.map(ProxyConfig::validate) {
            return Err(self.fail(
                "address",
                ConnectFailure::new(FailureKind::InvalidAddress, e.to_string()),
            ));
        }
        self.ok(
            "address",
            format!("{}, certificate {}", addr.url, addr.fingerprint),
        );

        let route = Route::decide(addr, proxy);
        let stream = match &route {
            Route::Direct { .. } => {
                self.ok("route", route.to_string());
                self.direct(addr).await?
            }
            Route::Proxy {
                host,
                port,
                scheme,
                authorization,
                ..
            } => {
                if scheme != "http" {
                    return Err(self.fail(
                        "route",
                        ConnectFailure::with_recommendation(
                            FailureKind::ProxyUnreachable,
                            format!("{route}: only http proxies are supported"),
                            "Give the proxy as http://host:port: the tunnel is asked for in plain HTTP, and TLS runs inside it.",
                        ),
                    ));
                }
                self.ok("route", route.to_string());
                let stream = self.proxy(host, *port).await?;
                self.tunnel(stream, addr, host, *port, authorization.as_ref())
                    .await?
            }
        };
        self.tls(stream, addr, &route).await?;
        self.http(addr, proxy, credential).await
    }

    /// Resolves the server's name and connects to it.
    async fn direct(&mut self, addr: &ServerAddress) -> Result<TcpStream, ConnectFailure> {
        let host = addr.host();
        let port = addr.port();
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => {
                self.ok("dns", format!("{host} is an IP address"));
                vec![SocketAddr::new(ip, port)]
            }
            Err(_) => {
                match timeout(self.timeout, tokio::net::lookup_host((host.as_str(), port))).await {
                    Ok(Ok(found)) => {
                        let found: Vec<SocketAddr> = found.collect();
                        if found.is_empty() {
                            return Err(self.dns_failed(&host, "no addresses".into()));
                        }
                        let list: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                        self.ok("dns", format!("{host} resolves to {}", list.join(", ")));
                        found
                    }
                    Ok(Err(e)) => return Err(self.dns_failed(&host, e.to_string())),
                    Err(_) => {
                        return Err(self
                            .dns_failed(&host, format!("no answer within {}", secs(self.timeout))))
                    }
                }
            }
        };
        match connect_any(&addrs, self.timeout).await {
            Ok((stream, peer)) => {
                self.ok("tcp", format!("connected to {peer}"));
                Ok(stream)
            }
            Err(failures) => {
                let target = addr.authority();
                let refused = failures
                    .iter()
                    .all(|(_, e)| e.kind() == io::ErrorKind::ConnectionRefused);
                let recommendation = if refused {
                    format!("Nothing accepts connections on {target}: check that the vault server runs and listens on that address and port (not only on its own loopback address).")
                } else {
                    format!("{target} does not answer: check that the host is up and that no firewall between here and there drops connections to port {}.", addr.port())
                };
                Err(self.fail(
                    "tcp",
                    ConnectFailure::with_recommendation(
                        FailureKind::TcpConnectFailed,
                        format!(
                            "no TCP connection to {target}: {}",
                            describe_failures(&failures, host.parse::<IpAddr>().is_ok())
                        ),
                        recommendation,
                    ),
                ))
            }
        }
    }

    fn dns_failed(&mut self, host: &str, why: String) -> ConnectFailure {
        self.fail(
            "dns",
            ConnectFailure::with_recommendation(
                FailureKind::DnsFailed,
                format!("the server's name {host} does not resolve: {why}"),
                format!("Check the name {host} in the server address and this machine's DNS configuration (/etc/resolv.conf, /etc/hosts), or give the server's IP address instead."),
            ),
        )
    }

    /// Connects to the proxy.
    async fn proxy(&mut self, host: &str, port: u16) -> Result<TcpStream, ConnectFailure> {
        let proxy = host_port(host, port);
        let unreachable = |message: String| {
            ConnectFailure::with_recommendation(
                FailureKind::ProxyUnreachable,
                message,
                format!("Check the proxy's address {proxy} (the agent's configuration, or HTTPS_PROXY / ALL_PROXY in its environment) and that the proxy runs; or, if the vault server can be reached directly, leave the proxy out or list the server in NO_PROXY."),
            )
        };
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match timeout(self.timeout, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => {
                    return Err(self.fail(
                        "proxy",
                        unreachable(format!("the proxy's name {host} does not resolve: {e}")),
                    ))
                }
                Err(_) => {
                    return Err(self.fail(
                        "proxy",
                        unreachable(format!(
                            "the proxy's name {host} does not resolve within {}",
                            secs(self.timeout)
                        )),
                    ))
                }
            },
        };
        match connect_any(&addrs, self.timeout).await {
            Ok((stream, peer)) => {
                let detail = if host.parse::<IpAddr>().is_ok() {
                    format!("connected to the proxy {proxy}")
                } else {
                    format!("connected to the proxy {proxy} ({peer})")
                };
                self.ok("proxy", detail);
                Ok(stream)
            }
            Err(failures) => Err(self.fail(
                "proxy",
                unreachable(format!(
                    "no TCP connection to the proxy {proxy}: {}",
                    describe_failures(&failures, host.parse::<IpAddr>().is_ok())
                )),
            )),
        }
    }

    /// Asks the proxy for a tunnel to the server.
    async fn tunnel(
        &mut self,
        mut stream: TcpStream,
        addr: &ServerAddress,
        proxy_host: &str,
        proxy_port: u16,
        authorization: Option<&http::HeaderValue>,
    ) -> Result<TcpStream, ConnectFailure> {
        let target = addr.authority();
        let proxy = host_port(proxy_host, proxy_port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").into_bytes();
        if let Some(auth) = authorization {
            request.extend_from_slice(b"Proxy-Authorization: ");
            request.extend_from_slice(auth.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");

        let answer = timeout(self.timeout, async {
            stream.write_all(&request).await?;
            read_response_head(&mut stream).await
        })
        .await;
        let unreachable = |message: String, recommendation: String| {
            ConnectFailure::with_recommendation(
                FailureKind::ProxyUnreachable,
                message,
                recommendation,
            )
        };
        let head = match answer {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                return Err(self.fail(
                    "tunnel",
                    unreachable(
                        format!("the proxy {proxy} did not answer CONNECT {target}: {e}"),
                        format!("Check that {proxy} is an HTTP proxy that allows CONNECT."),
                    ),
                ))
            }
            Err(_) => {
                return Err(self.fail(
                    "tunnel",
                    unreachable(
                        format!(
                            "the proxy {proxy} did not answer CONNECT {target} within {}",
                            secs(self.timeout)
                        ),
                        format!("Check that {proxy} is an HTTP proxy that allows CONNECT."),
                    ),
                ))
            }
        };
        let status_line = head.lines().next().unwrap_or_default().trim().to_owned();
        let status = parse_status(&status_line);
        match status {
            Some(code) if (200..300).contains(&code) => {
                self.ok("tunnel", format!("the proxy opened a tunnel to {target}: {status_line}"));
                Ok(stream)
            }
            Some(407) => Err(self.fail(
                "tunnel",
                unreachable(
                    format!("the proxy {proxy} requires authentication: {status_line}"),
                    "Give the proxy's credentials in the proxy URL (HTTPS_PROXY=http://user:password@host:port), or have the proxy allow this machine without.".into(),
                ),
            )),
            Some(code @ (502..=504)) => {
                // The proxy resolves and connects for us; tell which failed
                // from what it says.
                let body = read_some_body(&mut stream, &head, Duration::from_millis(500)).await;
                let said = format!("{head}\n{body}").to_ascii_lowercase();
                let is_name = addr.host().parse::<IpAddr>().is_err();
                let host = addr.host();
                if is_name && DNS_HINTS.iter().any(|hint| said.contains(hint)) {
                    Err(self.fail(
                        "tunnel",
                        ConnectFailure::with_recommendation(
                            FailureKind::DnsFailed,
                            format!("the proxy {proxy} could not resolve the server's name {host}: {status_line}"),
                            format!("Check the name {host} in the server address and the proxy's DNS, or give the server's IP address instead."),
                        ),
                    ))
                } else {
                    let why = if code == 504 { "timed out connecting to" } else { "could not connect to" };
                    Err(self.fail(
                        "tunnel",
                        ConnectFailure::with_recommendation(
                            FailureKind::TcpConnectFailed,
                            format!("the proxy {proxy} {why} {target}: {status_line}"),
                            format!("Check that the vault server runs and listens on {target}, that the proxy can reach it (no firewall between them), and that the name resolves for the proxy."),
                        ),
                    ))
                }
            }
            Some(_) => Err(self.fail(
                "tunnel",
                unreachable(
                    format!("the proxy {proxy} refused CONNECT {target}: {status_line}"),
                    format!("Have the proxy allow CONNECT to {target} (many proxies allow it only to port 443), or list the server in NO_PROXY if it can be reached directly."),
                ),
            )),
            None => Err(self.fail(
                "tunnel",
                unreachable(
                    format!("{proxy} answered CONNECT with something other than HTTP: {}", truncate(&status_line, 100)),
                    format!("Check that {proxy} is an HTTP proxy."),
                ),
            )),
        }
    }

    /// The TLS handshake with the pinned certificate.
    async fn tls(
        &mut self,
        stream: TcpStream,
        addr: &ServerAddress,
        route: &Route,
    ) -> Result<(), ConnectFailure> {
        let target = addr.authority();
        let server_name = match ServerName::try_from(addr.host()) {
            Ok(name) => name,
            Err(e) => {
                return Err(self.fail(
                    "tls",
                    ConnectFailure::new(
                        FailureKind::InvalidAddress,
                        format!("{} cannot be named in TLS: {e}", addr.host()),
                    ),
                ))
            }
        };
        let config = Arc::new(tresor_tls::pinned_client_config(&addr.fingerprint));
        let connector = tokio_rustls::TlsConnector::from(config);
        match timeout(self.timeout, connector.connect(server_name, stream)).await {
            Ok(Ok(mut tls)) => {
                let (_, conn) = tls.get_ref();
                let version = match conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
                    Some(v) => format!("{v:?}"),
                    None => "TLS".to_owned(),
                };
                let _ = tls.shutdown().await;
                self.ok(
                    "tls",
                    format!(
                        "{version} with {target}, certificate {} as pinned",
                        addr.fingerprint
                    ),
                );
                Ok(())
            }
            Ok(Err(e)) => {
                if let Some(m) = tresor_tls::find_fingerprint_mismatch(&e) {
                    let via = match route {
                        Route::Proxy { .. } => format!(" A proxy is on the way ({route}); a TLS-inspecting proxy presents its own certificates: exempt the vault server from inspection."),
                        Route::Direct { .. } => String::new(),
                    };
                    return Err(self.fail(
                        "tls",
                        ConnectFailure::with_recommendation(
                            FailureKind::CertificateMismatch,
                            format!("{target} presented the certificate {}, but {} is pinned", m.presented, m.expected),
                            format!("Compare {} with the fingerprint the vault server shows. If the server's certificate was replaced, pin the new fingerprint; otherwise something intercepts the connection.{via}", m.presented),
                        ),
                    ));
                }
                Err(self.fail(
                    "tls",
                    ConnectFailure::new(
                        FailureKind::TlsFailed,
                        format!(
                            "the TLS handshake with {target} failed: {}",
                            error_chain(&e)
                        ),
                    ),
                ))
            }
            Err(_) => Err(self.fail(
                "tls",
                ConnectFailure::new(
                    FailureKind::TlsFailed,
                    format!(
                        "the TLS handshake with {target} did not finish within {}",
                        secs(self.timeout)
                    ),
                ),
            )),
        }
    }

    /// The API pings, through the same HTTP client requests use.
    async fn http(
        &mut self,
        addr: &ServerAddress,
        proxy: Option<&ProxyConfig>,
        credential: Option<&str>,
    ) -> Result<(), ConnectFailure> {
        let transport = match Transport::new(addr, proxy, self.timeout) {
            Ok(t) => t,
            Err(e) => {
                return Err(self.fail(
                    "http",
                    ConnectFailure::new(FailureKind::InvalidAddress, e.to_string()),
                ))
            }
        };
        let anonymous = ApiClient::new(transport.clone(), None);
        match anonymous.send(reqwest::Method::GET, PING, |r| r).await {
            Ok(response) => {
                let status = response.status();
                let version = response.version();
                if status != StatusCode::OK {
                    return Err(self.fail(
                        "http",
                        ConnectFailure::new(
                            FailureKind::ServerError,
                            format!("GET {PING} answered {status}, not 200 OK"),
                        ),
                    ));
                }
                self.ok("http", format!("GET {PING}: {status} ({version:?})"));
            }
            Err(e) => return Err(self.fail("http", request_failure(PING, e))),
        }

        let Some(credential) = credential else {
            return Ok(());
        };
        let agent = ApiClient::new(transport, Some(credential.to_owned()));
        match agent.send(reqwest::Method::GET, AGENT_PING, |r| r).await {
            Ok(response) if response.status() == StatusCode::OK => {
                self.ok(
                    "credential",
                    format!("GET {AGENT_PING}: the server accepts the credential"),
                );
                Ok(())
            }
            Ok(response) => Err(self.fail(
                "credential",
                ConnectFailure::new(
                    FailureKind::ServerError,
                    format!(
                        "GET {AGENT_PING} answered {}, not 200 OK",
                        response.status()
                    ),
                ),
            )),
            Err(ClientError::Api {
                status: status @ (401 | 403),
                code,
                message,
                recommendation,
            }) => Err(self.fail(
                "credential",
                ConnectFailure::with_recommendation(
                    FailureKind::CredentialRejected,
                    format!("the server refused the credential: {status} {code}: {message}"),
                    recommendation.unwrap_or_else(|| {
                        FailureKind::CredentialRejected.recommendation().to_owned()
                    }),
                ),
            )),
            Err(e) => Err(self.fail("credential", request_failure(AGENT_PING, e))),
        }
    }
}

/// Words by which proxies say they could not resolve a name (Squid:
/// "Unable to determine IP address", ERR_DNS_FAIL; others: "DNS", "resolve",
/// "unknown host", ...).
const DNS_HINTS: &[&str] = &[
    "dns",
    "resolv",
    "name or service not known",
    "unknown host",
    "no such host",
    "nxdomain",
    "host not found",
    "unable to determine ip",
    "could not find host",
];

fn request_failure(path: &str, err: ClientError) -> ConnectFailure {
    match err {
        ClientError::Transport { kind, detail } => {
            ConnectFailure::new(kind, format!("GET {path} failed: {detail}"))
        }
        ClientError::Api {
            status,
            code,
            message,
            ..
        } => ConnectFailure::new(
            FailureKind::ServerError,
            format!("GET {path} answered {status} {code}: {message}"),
        ),
        other => ConnectFailure::new(FailureKind::ServerError, format!("GET {path}: {other}")),
    }
}

/// Connects to the first address that accepts, each within `limit`.
async fn connect_any(
    addrs: &[SocketAddr],
    limit: Duration,
) -> Result<(TcpStream, SocketAddr), Vec<(SocketAddr, io::Error)>> {
    let mut failures = Vec::new();
    for &a in addrs {
        match timeout(limit, TcpStream::connect(a)).await {
            Ok(Ok(stream)) => return Ok((stream, a)),
            Ok(Err(e)) => failures.push((a, e)),
            Err(_) => failures.push((
                a,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}", secs(limit)),
                ),
            )),
        }
    }
    Err(failures)
}

/// The errors of connection attempts; with the addresses tried unless the
/// only one is the IP address already named.
fn describe_failures(failures: &[(SocketAddr, io::Error)], named_by_ip: bool) -> String {
    if let ([(_, e)], true) = (failures, named_by_ip) {
        return e.to_string();
    }
    failures
        .iter()
        .map(|(a, e)| format!("{a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Reads an HTTP response head (up to the blank line) byte by byte, so that
/// nothing after it is consumed.
async fn read_response_head(stream: &mut TcpStream) -> io::Result<String> {
    const MAX: usize = 16 * 1024;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head longer than 16 KiB",
            ));
        }
        if stream.read(&mut byte).await? == 0 {
            if head.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection was closed without an answer",
                ));
            }
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Reads some of an error answer's body (up to 4 KiB, `Content-Length` or
/// until the connection closes), giving up after `limit`.
async fn read_some_body(stream: &mut TcpStream, head: &str, limit: Duration) -> String {
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(4096)
        .min(4096);
    let mut body = vec![0u8; length];
    let mut filled = 0;
    let _ = timeout(limit, async {
        while filled < length {
            match stream.read(&mut body[filled..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
    })
    .await;
    String::from_utf8_lossy(&body[..filled]).into_owned()
}

/// The status code of an HTTP status line (`HTTP/1.1 200 Connection
/// established`).
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(parse_status("HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn report_display() {
        let report = CheckReport {
            steps: vec![
                CheckStep {
                    name: "dns",
                    ok: true,
                    detail: "vault resolves to 10.0.0.1".into(),
                },
                CheckStep {
                    name: "tcp",
                    ok: false,
                    detail: "no TCP connection to vault:8443".into(),
                },
            ],
            failure: Some(ConnectFailure::new(
                FailureKind::TcpConnectFailed,
                "no TCP connection to vault:8443",
            )),
        };
        let text = report.to_string();
        assert!(text.contains("[ok  ] dns"), "{text}");
        assert!(text.contains("[FAIL] tcp"), "{text}");
        assert!(
            text.contains("TcpConnectFailed: no TCP connection to vault:8443"),
            "{text}"
        );
        assert!(text.contains("Recommendation: "), "{text}");
    }
}
