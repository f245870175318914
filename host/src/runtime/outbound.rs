//! Outbound HTTP of handlers (`wasi:http`), sent by the host itself so that every request is held
//! to the plugin's grants: the destination is read from the request's URI (never from a `Host`
//! header, which the host writes itself), checked against the granted allow-list before anything
//! is sent, resolved by the host, and refused when a name leads to a loopback, private or
//! link-local address that no grant names. Timeouts, the response size and the number of
//! requests per call are capped; every request is counted per plugin and destination, and
//! logged with the plugin and the run.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::capability::{CallUsage, Destination, Effective, Host, address};
use crate::config::Limits;

/// What a call's requests outside its instance (HTTP, and the fleet view's) are held to, from
/// its plugin's limits.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
    max_response_bytes: u64,
    max_requests: u32,
    /// Fleet requests one call may make.
    pub fleet_max_requests: u32,
    /// How long a fleet ping or metrics request waits for its handler.
    pub fleet_ping_timeout: Duration,
}

impl CallLimits {
    /// The limits of a plugin's calls.
    pub fn of(limits: &Limits) -> Self {
        Self {
            connect: limits.http_connect_timeout,
            first_byte: limits.http_first_byte_timeout,
            between_bytes: limits.http_between_bytes_timeout,
            max_response_bytes: limits.http_max_response_bytes,
            max_requests: limits.http_max_requests,
            fleet_max_requests: limits.fleet_max_requests,
            fleet_ping_timeout: limits.fleet_ping_timeout,
        }
    }

    /// The guest may ask for shorter timeouts, never longer ones.
    fn clamp(mut self, options: Option<RequestOptions>) -> Self {
        if let Some(o) = options {
            let shorter = |mine: Duration, theirs: Option<Duration>| {
                theirs.map_or(mine, |t| t.min(mine).max(Duration::from_millis(1)))
            };
            self.connect = shorter(self.connect, o.connect_timeout);
            self.first_byte = shorter(self.first_byte, o.first_byte_timeout);
            self.between_bytes = shorter(self.between_bytes, o.between_bytes_timeout);
        }
        self
    }
}

/// The TLS client settings of handlers' requests: the system's roots and the operator's CAs,
/// built on first use.
pub struct Tls {
    ca_files: Vec<PathBuf>,
    config: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Tls {
    /// Checks that every CA file holds at least one certificate; the system's roots are read on
    /// the first HTTPS request.
    pub fn new(ca_files: Vec<PathBuf>) -> Result<Self, String> {
        for file in &ca_files {
            read_ca_file(file)?;
        }
        Ok(Self {
            ca_files,
            config: OnceLock::new(),
        })
    }

    fn config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.config
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                for file in &self.ca_files {
                    for cert in read_ca_file(file)? {
                        roots
                            .add(cert)
                            .map_err(|e| format!("CA file {}: {e}", file.display()))?;
                    }
                }
                tracing::debug!(
                    system_roots = added,
                    ca_files = self.ca_files.len(),
                    "TLS roots loaded"
                );
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }
}

fn read_ca_file(
    file: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("CA file {}: {e}", file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CA file {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("CA file {} holds no certificate", file.display()));
    }
    Ok(certs)
}

/// Traffic to one destination host, as counted for a plugin.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Traffic {
    /// Requests sent.
    pub requests: u64,
    /// Requests refused before anything was sent.
    pub denied: u64,
    /// Requests that failed (connection, TLS, timeout, too large).
    pub errors: u64,
    /// Bytes of request bodies sent.
    pub bytes_out: u64,
    /// Bytes of response bodies received.
    pub bytes_in: u64,
}

/// A plugin's outbound traffic, by destination host (`host:port`).
#[derive(Debug, Default)]
pub struct HttpMeter {
    by_host: Mutex<BTreeMap<String, Traffic>>,
}

impl HttpMeter {
    fn add(&self, host: &str, f: impl FnOnce(&mut Traffic)) {
        let mut map = self.by_host.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(host) {
            Some(t) => f(t),
            None => {
                let mut t = Traffic::default();
                f(&mut t);
                map.insert(host.to_owned(), t);
            }
        }
    }

    /// The counts by destination host.
    pub fn snapshot(&self) -> BTreeMap<String, Traffic> {
        self.by_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What one call used and was refused: read by the host when the call ends.
#[derive(Debug, Default)]
pub struct Usage {
    /// Requests asked for (refused ones too): held to `http_max_requests`.
    requests: AtomicU32,
    /// Requests that reached their destination.
    sent: AtomicU32,
    /// Fleet requests asked for (refused ones too): held to `fleet_max_requests`.
    pub(super) fleet_requests: AtomicU32,
    /// Time spent in fleet requests, in µs.
    pub(super) fleet_time_us: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    hosts: Mutex<std::collections::BTreeSet<String>>,
    denied: Mutex<Vec<String>>,
    /// The last outbound request refused, why.
    request_refused: Mutex<Option<String>>,
    notes: Mutex<Vec<String>>,
}

impl Usage {
    /// Records a refusal (a capability not granted), to be named in the call's error.
    pub fn deny(&self, why: String) {
        remember(&self.denied, why);
    }

    /// Records a refused outbound request (a destination not granted, say), to be named in the
    /// call's error.
    fn deny_request(&self, why: String) {
        *self
            .request_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        self.deny(why);
    }

    /// Why the last outbound request refused was refused, if one was.
    pub fn request_refused(&self) -> Option<String> {
        self.request_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a limit the call ran into, to be named if the call fails.
    fn note(&self, what: String) {
        remember(&self.notes, what);
    }

    /// The refusals recorded.
    pub fn denials(&self) -> Vec<String> {
        self.denied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The limits run into.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the call used.
    pub fn used(&self, directories: Vec<String>) -> CallUsage {
        CallUsage {
            http_requests: self.sent.load(Ordering::Relaxed),
            hosts: self
                .hosts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            directories,
            fleet_requests: self.fleet_requests.load(Ordering::Relaxed),
            fleet_time_us: self.fleet_time_us.load(Ordering::Relaxed),
        }
    }
}

/// Adds `text` to a call's list once, keeping at most 20.
fn remember(list: &Mutex<Vec<String>>, text: String) {
    let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
    if l.len() < 20 && !l.contains(&text) {
        l.push(text);
    }
}

/// Everything a request of one call needs, shared with the tasks that send it.
pub struct CallNet {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The run the call belongs to.
    pub run_id: String,
    /// What the call may use.
    pub effective: Arc<Effective>,
    /// Its limits.
    pub limits: CallLimits,
    /// What it used and was refused.
    pub usage: Usage,
    /// The plugin's traffic counters.
    pub meter: Arc<HttpMeter>,
    /// TLS settings.
    pub tls: Arc<Tls>,
    /// The host's fleet view, when the runtime runs in a host.
    pub fleet: Option<Arc<dyn super::fleet::FleetView>>,
}

/// The `wasi:http` hooks of one instance: the current call's settings, or none between calls
/// (then every request is refused).
#[derive(Default)]
pub struct Hooks {
    /// The call running now.
    pub call: Option<Arc<CallNet>>,
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let Some(net) = self.call.clone() else {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        match net.admit(&request) {
            Ok(target) => Box::new(async move { net.send(target, request, options).await }),
            Err(_) => Box::new(async move {
                drain(request.into_body()).await;
                Err(HttpError::HttpRequestDenied)
            }),
        }
    }
}

/// Where an admitted request goes.
struct Target {
    scheme: &'static str,
    host: Host,
    port: u16,
    /// `host:port`, as counted and shown.
    key: String,
    /// The authority as written in the URI, for the `Host` header.
    authority: String,
}

impl CallNet {
    /// Decides from the request's URI alone whether it may go, before anything is sent; a
    /// refusal is logged and recorded for the call's error.
    fn admit(&self, request: &http::Request<WasiBody>) -> Result<Target, String> {
        let n = self.usage.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let max = self.limits.max_requests;
        let refused = if n > max {
            // A limit of the call, not something to grant.
            let why = format!(
                "request {n} refused: at most {max} HTTP requests per call (limits.http_max_requests)"
            );
            self.usage.deny(why.clone());
            Err(why)
        } else {
            self.check(request)
                .inspect_err(|why| self.usage.deny_request(why.clone()))
        };
        if let Err(why) = &refused {
            tracing::info!(plugin = %self.plugin, run_id = %self.run_id, uri = %request.uri(), reason = %why, "outbound request denied");
        }
        refused
    }

    /// Whether the request's destination is one the call may reach.
    fn check(&self, request: &http::Request<WasiBody>) -> Result<Target, String> {
        let uri = request.uri();
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            other => {
                return Err(format!(
                    "scheme `{}` refused: only http and https",
                    other.unwrap_or("")
                ));
            }
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or("a request must name its host: relative URLs are refused (a Host header does not count)")?;
        if authority.as_str().contains('@') {
            return Err("a user name or password in the URL is refused".into());
        }
        let host = Host::parse(authority.host())
            .ok_or_else(|| format!("`{}` is not a host name or address", authority.host()))?;
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let key = format!("{host}:{port}");
        if !self
            .effective
            .http
            .iter()
            .any(|d| d.allows(scheme, &host, port))
        {
            self.meter.add(&key, |t| t.denied += 1);
            return Err(format!(
                "{scheme}://{key} is not granted to {} ({})",
                self.plugin,
                granted_list(&self.effective.http)
            ));
        }
        Ok(Target {
            scheme,
            host,
            port,
            key,
            authority: authority.as_str().to_owned(),
        })
    }

    async fn send(
        self: Arc<Self>,
        target: Target,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendResult {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let result = self.exchange(&target, request, options).await;
        match &result {
            Ok((response, _)) => {
                tracing::info!(
                    plugin = %self.plugin, run_id = %self.run_id, %method,
                    url = %format!("{}://{}{path}", target.scheme, target.key),
                    status = response.status().as_u16(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "outbound request"
                );
            }
            Err(HttpError::HttpRequestDenied) => {
                self.meter.add(&target.key, |t| t.denied += 1);
            }
            Err(e) => {
                self.meter.add(&target.key, |t| t.errors += 1);
                tracing::info!(
                    plugin = %self.plugin, run_id = %self.run_id, %method,
                    url = %format!("{}://{}{path}", target.scheme, target.key),
                    error = %e, "outbound request failed"
                );
            }
        }
        result
    }

    /// Sends the request, or drains its body when it cannot be sent: a guest writing the body
    /// while it waits for the response then sees why the request failed (not a closed stream).
    async fn exchange(
        self: &Arc<Self>,
        target: &Target,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendResult {
        let limits = self.limits.clamp(options);
        let (parts, body) = request.into_parts();
        let (sender, conn) = match self.open(target, limits).await {
            Ok(opened) => opened,
            Err(e) => {
                drain(body).await;
                return Err(e);
            }
        };
        self.usage
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.key.clone());
        self.usage.sent.fetch_add(1, Ordering::Relaxed);
        self.meter.add(&target.key, |t| t.requests += 1);
        let request = http::Request::from_parts(parts, body);
        self.deliver(target, request, sender, conn, limits).await
    }

    /// Resolves, connects and (for https) sets up TLS, then the HTTP/1.1 connection.
    async fn open(
        &self,
        target: &Target,
        limits: CallLimits,
    ) -> Result<(hyper::client::conn::http1::SendRequest<Counted>, Connection), HttpError> {
        let addrs = self.resolve(target, limits.connect).await?;
        let stream = connect(&addrs, limits.connect).await?;
        let io: Box<dyn Io> = if target.scheme == "https" {
            let config = self
                .tls
                .config()
                .map_err(|e| HttpError::InternalError(Some(format!("TLS settings: {e}"))))?;
            let name = match &target.host {
                Host::Ip(ip) => rustls_pki_types::ServerName::from(*ip),
                Host::Name(n) => rustls_pki_types::ServerName::try_from(n.clone())
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?,
            };
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, stream);
            match tokio::time::timeout(limits.connect, tls).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => return Err(tls_error(e)),
                Err(_) => return Err(HttpError::ConnectionTimeout),
            }
        } else {
            Box::new(stream)
        };
        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(io));
        let (sender, conn) = tokio::time::timeout(limits.connect, handshake)
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
        Ok((sender, Box::pin(conn)))
    }

    /// Sends the request on an open connection and returns the response, its body held to the
    /// limits, and the connection's driver.
    async fn deliver(
        self: &Arc<Self>,
        target: &Target,
        mut request: http::Request<WasiBody>,
        mut sender: hyper::client::conn::http1::SendRequest<Counted>,
        mut conn: Connection,
        limits: CallLimits,
    ) -> SendResult {
        // The destination is the URI's, and so is the Host header: whatever the guest put there
        // is replaced.
        let host = HeaderValue::from_str(&target.authority)
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        request.headers_mut().insert(HOST, host);
        let path = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let net = Arc::clone(self);
        let key = target.key.clone();
        let request = request.map(move |body| Counted {
            body: Some(body),
            net,
            key,
        });
        let send = tokio::time::timeout(limits.first_byte, sender.send_request(request));
        tokio::pin!(send);
        // The connection is driven while the response is awaited; it may finish first (a server
        // that closes after answering), and the response is then already there.
        let mut conn_done = false;
        let sent = tokio::select! {
            biased;
            r = &mut send => r,
            c = &mut conn => {
                conn_done = true;
                if let Err(e) = c {
                    return Err(HttpError::from(e));
                }
                send.await
            }
        };
        let response = match sent {
            Err(_) => return Err(HttpError::ConnectionReadTimeout),
            Ok(r) => r.map_err(HttpError::from)?,
        };
        let max = limits.max_response_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > max) {
            self.usage.note(format!(
                "the response of {}://{} is {len} bytes, more than limits.http_max_response_bytes ({max})",
                target.scheme, target.key
            ));
            return Err(HttpError::HttpResponseBodySize(Some(len)));
        }
        let body_net = Arc::clone(self);
        let key = target.key.clone();
        let response = response.map(move |incoming| {
            Limited {
                incoming,
                net: body_net,
                key,
                read: 0,
                max,
                between: limits.between_bytes,
                timer: Box::pin(tokio::time::sleep(limits.between_bytes)),
                done: false,
            }
            .boxed_unsync()
        });
        let driver: Box<dyn Future<Output = Result<(), HttpError>> + Send> = if conn_done {
            Box::new(async { Ok(()) })
        } else {
            Box::new(async move { conn.await.map_err(HttpError::from) })
        };
        Ok((response, driver))
    }

    /// The addresses the request may connect to: the host's own DNS answer, less the addresses
    /// that are not public and that no grant names.
    async fn resolve(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, HttpError> {
        let ips: Vec<IpAddr> = match &target.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), target.port));
                match tokio::time::timeout(timeout, lookup).await {
                    Err(_) => return Err(HttpError::DnsTimeout),
                    Ok(Err(e)) => {
                        return Err(HttpError::DnsError {
                            rcode: Some(e.to_string()),
                            info_code: None,
                        });
                    }
                    Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                }
            }
        };
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for ip in ips {
            match address::special(ip) {
                Some(kind)
                    if !self
                        .effective
                        .http
                        .iter()
                        .any(|d| d.names_address(target.scheme, ip, target.port)) =>
                {
                    refused.push((ip, kind));
                }
                _ => allowed.push(SocketAddr::new(ip, target.port)),
            }
        }
        if allowed.is_empty() {
            let (ip, kind) = refused
                .first()
                .copied()
                .ok_or(HttpError::DestinationNotFound)?;
            let shown = match ip {
                IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            };
            let why = match &target.host {
                Host::Ip(_) => format!(
                    "{}://{} is a {kind} address: only a grant that names the address ({}://{shown}:{}) reaches it",
                    target.scheme, target.key, target.scheme, target.port
                ),
                Host::Name(name) => format!(
                    "{name} resolves to {shown}, a {kind} address: only a grant that names the address ({}://{shown}:{}) reaches it",
                    target.scheme, target.port
                ),
            };
            tracing::info!(plugin = %self.plugin, run_id = %self.run_id, reason = %why, "outbound request denied");
            self.usage.deny_request(why);
            return Err(HttpError::HttpRequestDenied);
        }
        Ok(allowed)
    }
}

fn granted_list(granted: &[Destination]) -> String {
    if granted.is_empty() {
        "no destination is granted".into()
    } else {
        let list: Vec<&str> = granted.iter().map(Destination::as_str).collect();
        format!("granted: {}", list.join(", "))
    }
}

/// Connects to the first address that answers.
async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, HttpError> {
    let mut last = HttpError::DestinationNotFound;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = HttpError::ConnectionRefused;
            }
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

fn tls_error(e: std::io::Error) -> HttpError {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if certificate {
        HttpError::TlsCertificateError
    } else {
        HttpError::Tls(e)
    }
}

/// A request body that counts what it sends. Dropped before its end (the server answered without
/// reading it all), the rest is drained, so that the guest still writing it is not failed by a
/// closed stream when its response is there.
struct Counted {
    body: Option<WasiBody>,
    net: Arc<CallNet>,
    key: String,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.net.usage.bytes_out.fetch_add(n, Ordering::Relaxed);
                    this.net.meter.add(&this.key, |t| t.bytes_out += n);
                }
            }
            Poll::Ready(_) => this.body = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(body) = self.body.take()
            && !body.is_end_stream()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(drain(body));
        }
    }
}

/// The driver of one HTTP/1.1 connection.
type Connection = Pin<Box<hyper::client::conn::http1::Connection<TokioIo<Box<dyn Io>>, Counted>>>;

/// Reads and drops what is left of a request body (at most 4 MiB), so that the guest writing it
/// is not stopped by a closed stream before it learns why its request failed.
async fn drain(mut body: WasiBody) {
    let mut read = 0usize;
    while read < 4 * 1024 * 1024 {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

use super::bindings::schedulezero::handler::outbound as whole;

impl CallNet {
    /// One whole exchange of the contract's `outbound` interface: the checks, limits and
    /// accounting of a `wasi:http` request (it goes the same way), the body read to its end.
    pub(super) async fn exchange_whole(
        self: &Arc<Self>,
        request: whole::Request,
    ) -> Result<whole::Response, whole::OutboundError> {
        use whole::OutboundError as E;
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = http_body_util::Full::new(Bytes::from(request.body.unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = builder
            .body(body)
            .map_err(|e| E::Invalid(format!("not a valid request: {e}")))?;
        let target = self.admit(&request).map_err(E::Denied)?;
        let what = format!("{}://{}", target.scheme, target.key);
        let (response, driver) = match Arc::clone(self).send(target, request, None).await {
            Ok(exchange) => exchange,
            // Refused once resolved (an address no grant names): `resolve` recorded why.
            Err(HttpError::HttpRequestDenied) => {
                let why = self.usage.request_refused();
                return Err(E::Denied(why.unwrap_or_else(|| format!("{what}: refused"))));
            }
            Err(e) => return Err(whole_error(&what, e)),
        };
        // The connection is driven while the body is read.
        let driver = tokio::spawn(Box::into_pin(driver));
        let (parts, body) = response.into_parts();
        let collected = body.collect().await;
        driver.abort();
        let body = collected.map_err(|e| whole_error(&what, e))?.to_bytes();
        Ok(whole::Response {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        })
    }
}

/// An exchange's failure, as the `outbound` interface reports it.
fn whole_error(what: &str, e: HttpError) -> whole::OutboundError {
    use whole::OutboundError as E;
    match e {
        HttpError::HttpResponseBodySize(_) => E::Limit(format!(
            "the response of {what} is larger than limits.http_max_response_bytes"
        )),
        HttpError::ConnectionTimeout | HttpError::ConnectionReadTimeout | HttpError::DnsTimeout => {
            E::Timeout(format!("{what}: {e}"))
        }
        HttpError::HttpRequestUriInvalid | HttpError::HttpRequestMethodInvalid => {
            E::Invalid(format!("{what}: {e}"))
        }
        e => E::Failed(format!("{what}: {e}")),
    }
}

/// A response body held to the size limit and the between-bytes timeout, and counted.
struct Limited {
    incoming: hyper::body::Incoming,
    net: Arc<CallNet>,
    key: String,
    read: u64,
    max: u64,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl Body for Limited {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.read += n;
                    this.net.usage.bytes_in.fetch_add(n, Ordering::Relaxed);
                    this.net.meter.add(&this.key, |t| t.bytes_in += n);
                    if this.read > this.max {
                        this.done = true;
                        this.net.usage.note(format!(
                            "the response of {} went past limits.http_max_response_bytes ({})",
                            this.key, this.max
                        ));
                        this.net.meter.add(&this.key, |t| t.errors += 1);
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            this.read,
                        )))));
                    }
                }
                let deadline = tokio::time::Instant::now() + this.between;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(HttpError::from(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    this.net.usage.note(format!(
                        "{} sent nothing for {:?} (limits.http_between_bytes_timeout)",
                        this.key, this.between
                    ));
                    Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.incoming.is_end_stream()
    }
}
