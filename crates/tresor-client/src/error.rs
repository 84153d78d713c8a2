//! The client's error type, and the decoding of the server's error answers.

use serde::Deserialize;

use crate::failure::FailureKind;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("the server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error code (`Http<status>` when the body was not the
        /// server's JSON error).
        code: String,
        /// The server's message.
        message: String,
        /// The server's recommendation, if it gave one.
        recommendation: Option<String>,
    },
    /// The request did not get an answer.
    #[error("{kind}: {detail}")]
    Transport {
        /// Where it failed.
        kind: FailureKind,
        /// The underlying errors.
        detail: String,
    },
    /// A successful answer that is not what was expected.
    #[error("unexpected answer from the server (HTTP {status}): {detail}")]
    UnexpectedAnswer {
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The server address or proxy setting is not usable.
    #[error("invalid server address: {0}")]
    InvalidAddress(String),
    /// The request cannot be made (a path that is no URL, a body that
    /// cannot be encoded).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The HTTP status of an answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::UnexpectedAnswer { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The failure kind of a transport error.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            ClientError::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: transient transport failures,
    /// and answers 408, 429, 502, 503 and 504. Whether and how often to
    /// retry is the caller's decision.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { kind, .. } => kind.is_transient(),
            ClientError::Api { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// The server's JSON error body.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub recommendation: Option<String>,
}

/// Turns an error answer into [`ClientError::Api`]: the server's JSON error
/// when the body is one, else the status with the start of the body.
pub(crate) fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
            recommendation: e.recommendation.filter(|r| !r.is_empty()),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no reason given")
                    .to_owned()
            } else {
                truncate(text, 512)
            };
            ClientError::Api {
                status,
                code: format!("Http{status}"),
                message,
                recommendation: None,
            }
        }
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_servers_json_error() {
        let body = br#"{"code":"RepositoryLocked","message":"locked by a backup","recommendation":"wait"}"#;
        match api_error(409, body) {
            ClientError::Api {
                status,
                code,
                message,
                recommendation,
            } => {
                assert_eq!(status, 409);
                assert_eq!(code, "RepositoryLocked");
                assert_eq!(message, "locked by a backup");
                assert_eq!(recommendation.as_deref(), Some("wait"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_bodies_keep_the_status() {
        match api_error(502, b"<html>Bad Gateway</html>") {
            ClientError::Api { code, message, .. } => {
                assert_eq!(code, "Http502");
                assert_eq!(message, "<html>Bad Gateway</html>");
            }
            other => panic!("{other:?}"),
        }
        match api_error(404, b"") {
            ClientError::Api { message, .. } => assert_eq!(message, "Not Found"),
            other => panic!("{other:?}"),
        }
        let long = "é".repeat(600);
        match api_error(500, long.as_bytes()) {
            ClientError::Api { message, .. } => assert!(message.len() <= 515),
            other => panic!("{other:?}"),
        }
    }
}
