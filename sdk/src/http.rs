//! Outbound HTTP from a handler, over `wasi:http` (the client is [`wstd`]'s, driven to completion
//! here so that a method stays a plain function).
//!
//! A request reaches only destinations the handler declared in its
//! [`Capabilities`](crate::capabilities::Capabilities) and the operator granted; anything else is
//! refused by the host before a byte is sent, and comes back as an [`HttpError`] of kind
//! [`HttpErrorKind::Denied`], which `?` turns into [`HandlerError::Denied`]. Redirects are
//! followed (up to [`Request::max_redirects`]), each hop checked by the host as a new request.
//!
//! ```no_run
//! use schedulezero_sdk::{HandlerError, http};
//!
//! fn upload(report: &serde_json::Value, token: &str) -> Result<u16, HandlerError> {
//!     let response = http::post("https://api.vendor.example/v1/reports")
//!         .bearer(token)
//!         .json(report)?
//!         .send()?
//!         .error_for_status()?;
//!     Ok(response.status())
//! }
//! ```

use std::time::Duration;

use wstd::http::{Body, Client, ErrorCode, Method};

use crate::HandlerError;

/// The most redirects followed by default.
const DEFAULT_REDIRECTS: u32 = 5;

/// A request being built.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    connect_timeout: Option<Duration>,
    first_byte_timeout: Option<Duration>,
    between_bytes_timeout: Option<Duration>,
    max_redirects: u32,
}

/// A `GET` request.
pub fn get(url: impl Into<String>) -> Request {
    Request::new(Method::GET, url)
}

/// A `POST` request.
pub fn post(url: impl Into<String>) -> Request {
    Request::new(Method::POST, url)
}

/// A `PUT` request.
pub fn put(url: impl Into<String>) -> Request {
    Request::new(Method::PUT, url)
}

/// A `DELETE` request.
pub fn delete(url: impl Into<String>) -> Request {
    Request::new(Method::DELETE, url)
}

impl Request {
    /// A request with any method (`"PATCH"`, `"HEAD"`, ...).
    pub fn method(method: &str, url: impl Into<String>) -> Result<Self, HttpError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| HttpError::new(HttpErrorKind::Invalid, e.to_string()))?;
        Ok(Self::new(method, url))
    }

    fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
            max_redirects: DEFAULT_REDIRECTS,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, HttpError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| HttpError::new(HttpErrorKind::Invalid, e.to_string()))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// How long to wait for the connection (the host's limit applies if shorter).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// How long to wait for the response to start (the host's limit applies if shorter).
    pub fn first_byte_timeout(mut self, d: Duration) -> Self {
        self.first_byte_timeout = Some(d);
        self
    }

    /// How long to wait between chunks of the response body (the host's limit applies if
    /// shorter).
    pub fn between_bytes_timeout(mut self, d: Duration) -> Self {
        self.between_bytes_timeout = Some(d);
        self
    }

    /// The most redirects to follow (0: none; a 3xx response is then returned as it is).
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.max_redirects = n;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        wstd::runtime::block_on(self.send_async())
    }

    async fn send_async(self) -> Result<Response, HttpError> {
        let mut client = Client::new();
        if let Some(d) = self.connect_timeout {
            client.set_connect_timeout(d);
        }
        if let Some(d) = self.first_byte_timeout {
            client.set_first_byte_timeout(d);
        }
        if let Some(d) = self.between_bytes_timeout {
            client.set_between_bytes_timeout(d);
        }
        let (mut method, mut url, mut body) = (self.method.clone(), self.url.clone(), self.body);
        let mut hops = 0;
        loop {
            let mut builder = wstd::http::Request::builder()
                .method(method.clone())
                .uri(url.as_str());
            for (name, value) in &self.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            // The length is known: say it, rather than sending the body in chunks (which some
            // servers do not read).
            let has_length = self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
            if !has_length && (!body.is_empty() || !matches!(method, Method::GET | Method::HEAD)) {
                builder = builder.header("content-length", body.len().to_string());
            }
            let request = builder
                .body(Body::from(body.clone()))
                .map_err(|e| HttpError::new(HttpErrorKind::Invalid, e.to_string()))?;
            let mut response = client.send(request).await.map_err(HttpError::from_wasi)?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            if let (true, Some(location)) = ((300..400).contains(&status), location)
                && status != 304
                && hops < self.max_redirects
            {
                hops += 1;
                url = resolve(&url, &location)?;
                // 303 (and, by custom, 301/302 after a POST) continue as a GET without a body.
                if status == 303 || ((status == 301 || status == 302) && method == Method::POST) {
                    method = Method::GET;
                    body = Vec::new();
                }
                continue;
            }
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let bytes = response
                .body_mut()
                .contents()
                .await
                .map_err(HttpError::from_wasi)?
                .to_vec();
            return Ok(Response {
                status,
                url,
                headers,
                body: bytes,
            });
        }
    }
}

/// The URL a redirect's `Location` points to, from the URL that answered.
fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    if location.contains("://") {
        return Ok(location.to_owned());
    }
    let invalid = || {
        HttpError::new(
            HttpErrorKind::Invalid,
            format!("bad redirect to `{location}`"),
        )
    };
    let (scheme, rest) = base.split_once("://").ok_or_else(invalid)?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(path) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{path}"));
    }
    if location.starts_with('/') {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    let dir = rest.rsplit_once('/').map_or(authority, |(d, _)| d);
    Ok(format!("{scheme}://{dir}/{location}"))
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HttpError::new(
                HttpErrorKind::Invalid,
                format!("the response is not the JSON expected: {e}"),
            )
        })
    }

    /// The response itself when its status is 1xx to 3xx; an error of kind
    /// [`HttpErrorKind::Status`] otherwise (retryable for 429 and 5xx).
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if self.status < 400 {
            return Ok(self);
        }
        let mut text = self.text();
        text.truncate(200);
        Err(HttpError::new(
            HttpErrorKind::Status(self.status),
            format!("{} answered {}: {text}", self.url, self.status),
        ))
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    kind: HttpErrorKind,
    message: String,
}

/// The kinds of [`HttpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// The host refused the destination: not granted, or an address it does not reach.
    Denied,
    /// A timeout: connecting, waiting for the response, or between chunks of it.
    Timeout,
    /// No connection: DNS, refused, reset.
    Connect,
    /// The response was larger than the host allows.
    TooLarge,
    /// TLS failed (certificate, protocol).
    Tls,
    /// The server answered with this error status.
    Status(u16),
    /// The request could not be built, or the response not read as asked.
    Invalid,
    /// Anything else.
    Other,
}

impl HttpError {
    fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn from_wasi(e: wstd::http::Error) -> Self {
        let Some(code) = e.downcast_ref::<ErrorCode>() else {
            return Self::new(HttpErrorKind::Other, format!("{e:#}"));
        };
        let kind = match code {
            ErrorCode::HttpRequestDenied
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::ConnectionLimitReached => HttpErrorKind::Denied,
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => HttpErrorKind::Timeout,
            ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated => HttpErrorKind::Connect,
            ErrorCode::HttpResponseBodySize(_) => HttpErrorKind::TooLarge,
            ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => HttpErrorKind::Tls,
            _ => HttpErrorKind::Other,
        };
        Self::new(kind, format!("{code:?}"))
    }

    /// Its kind.
    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP request failed: {}", self.message)
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for HandlerError {
    /// Denied → `denied`; timeouts, connection failures, 429 and 5xx → `retryable`; the rest →
    /// `failed`.
    fn from(e: HttpError) -> Self {
        let text = e.to_string();
        match e.kind {
            HttpErrorKind::Denied => HandlerError::denied(text),
            HttpErrorKind::Timeout | HttpErrorKind::Connect => HandlerError::retryable(text),
            HttpErrorKind::Status(s) if s == 429 || s >= 500 => HandlerError::retryable(text),
            _ => HandlerError::failed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_url_that_answered() {
        let base = "https://a.example/v1/items?x=1";
        assert_eq!(
            resolve(base, "https://b.example/y").unwrap(),
            "https://b.example/y"
        );
        assert_eq!(resolve(base, "/z").unwrap(), "https://a.example/z");
        assert_eq!(
            resolve(base, "//c.example/w").unwrap(),
            "https://c.example/w"
        );
        assert_eq!(
            resolve("https://a.example/v1/items", "other").unwrap(),
            "https://a.example/v1/other"
        );
    }

    #[test]
    fn errors_map_to_handler_errors() {
        let denied: HandlerError = HttpError::new(HttpErrorKind::Denied, "no").into();
        assert!(matches!(denied, HandlerError::Denied(_)));
        let busy: HandlerError = HttpError::new(HttpErrorKind::Status(503), "busy").into();
        assert!(matches!(busy, HandlerError::Retryable(_)));
        let bad: HandlerError = HttpError::new(HttpErrorKind::Status(404), "gone").into();
        assert!(matches!(bad, HandlerError::Failed(_)));
    }
}
