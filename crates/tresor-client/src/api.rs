//! Requests to the vault server's API: JSON and bytes to and from a path, with
//! the token, the server's errors decoded. The typed operations built on them are
//! in `operations.rs`.

use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, RANGE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{api_error, truncate};
use crate::{ClientError, Transport};

/// A client of the vault server's API: requests with the bearer token, error
/// answers decoded into [`ClientError::Api`], failed requests classified into
/// [`ClientError::Transport`].
///
/// Nothing is retried here: [`ClientError::is_transient`] helps callers
/// decide. The token is sent as `Authorization: Bearer …`, marked sensitive,
/// and never logged.
#[derive(Clone)]
pub struct ApiClient {
    transport: Transport,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("transport", &self.transport)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ApiClient {
    /// A client sending `token`, if any, with every request.
    pub fn new(transport: Transport, token: Option<String>) -> ApiClient {
        ApiClient { transport, token }
    }

    /// The transport requests go through.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Replaces the token (after registering, say).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET path`, decoding the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(Method::GET, path, |r| r).await?;
        self.decode_json(response).await
    }

    /// `POST path` with a JSON body, decoding the JSON answer. An empty
    /// answer decodes as JSON `null` (so into `()` or an `Option`).
    pub async fn post_json<B, T>(&self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send_json(Method::POST, path, body).await
    }

    /// `PUT path` with a JSON body, decoding the JSON answer.
    pub async fn put_json<B, T>(&self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send_json(Method::PUT, path, body).await
    }

    /// `POST path` without a body, decoding the JSON answer (an empty answer,
    /// such as a 204, as JSON `null`).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(Method::POST, path, |r| r).await?;
        self.decode_json(response).await
    }

    async fn send_json<B, T>(&self, method: Method, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(|e| {
            ClientError::InvalidRequest(format!(
                "the request body for {path} cannot be encoded: {e}"
            ))
        })?;
        let response = self
            .send(method, path, |r| {
                r.header(CONTENT_TYPE, "application/json").body(body)
            })
            .await?;
        self.decode_json(response).await
    }

    /// `PUT path` with raw bytes (`Vec<u8>`, `Bytes`, or a stream through
    /// `reqwest::Body::wrap_stream`).
    pub async fn put_bytes(
        &self,
        path: &str,
        bytes: impl Into<reqwest::Body>,
    ) -> Result<(), ClientError> {
        let body = bytes.into();
        self.send(Method::PUT, path, |r| {
            r.header(CONTENT_TYPE, "application/octet-stream")
                .body(body)
        })
        .await?;
        Ok(())
    }

    /// `GET path` as raw bytes; with `range = Some((offset, length))`, only
    /// those bytes (an HTTP `Range` request). The answer is shorter than
    /// `length` when the object ends first. A server ignoring the range
    /// (answering 200 with the whole object) is handled by cutting the range
    /// out here.
    pub async fn get_bytes(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Bytes, ClientError> {
        if let Some((_, 0)) = range {
            return Ok(Bytes::new());
        }
        let response = self
            .send(Method::GET, path, |r| match range {
                Some((offset, length)) => r.header(
                    RANGE,
                    format!(
                        "bytes={offset}-{}",
                        offset.saturating_add(length).saturating_sub(1)
                    ),
                ),
                None => r,
            })
            .await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport.classify(&e))?;
        match range {
            Some((offset, length)) if status == StatusCode::OK => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(body.len());
                let end = usize::try_from(offset.saturating_add(length))
                    .unwrap_or(usize::MAX)
                    .min(body.len());
                Ok(body.slice(start..end))
            }
            Some((_, length)) if body.len() as u64 > length => Err(ClientError::UnexpectedAnswer {
                status: status.as_u16(),
                detail: format!("{} bytes for a range of {length}", body.len()),
            }),
            _ => Ok(body),
        }
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, path, |r| r).await?;
        Ok(())
    }

    /// Sends a request with the token; a success (2xx) comes back as is, an
    /// error answer as [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let url = self.transport.url(path)?;
        let mut request = self.transport.client().request(method.clone(), url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = build(request)
            .send()
            .await
            .map_err(|e| self.transport.classify(&e))?;
        let status = response.status();
        tracing::debug!(
            %method,
            path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status.as_u16(), &body))
    }

    async fn decode_json<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport.classify(&e))?;
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &body
        };
        serde_json::from_slice(body).map_err(|e| ClientError::UnexpectedAnswer {
            status,
            detail: format!(
                "not the expected JSON ({e}): {}",
                truncate(&String::from_utf8_lossy(body), 200)
            ),
        })
    }
}
