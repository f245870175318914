//! Native ScheduleZero handlers: programs that run as their own processes, anywhere, and serve a
//! host's jobs over ZeroMQ, for work that cannot be a WebAssembly component (a GPU, a local device,
//! a native library, a long-lived session). They speak ScheduleZero's protocol ([`wire`]), so the
//! same handler serves the Python ScheduleZero too.
//!
//! ```no_run
//! use schedulezero_remote::Handler;
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), schedulezero_remote::Error> {
//!     Handler::new("greeter")
//!         .method("say_hello", |p: Greet| async move {
//!             Ok::<_, String>(json!({ "message": format!("hello {}", p.name) }))
//!         })
//!         .run()
//!         .await
//! }
//! ```
//!
//! [`Handler::run`] binds a REP socket (a free port on 127.0.0.1 unless told otherwise), registers
//! with the host (`SCHEDULEZERO_ZMQ`, else `tcp://127.0.0.1:4242`), serves calls one at a time,
//! pings the host every 30 s and registers again when a ping fails (the host restarted, or moved),
//! and on SIGINT or SIGTERM finishes the call in flight, reports `offline` and returns.
//!
//! A method takes its params as any [`serde::Deserialize`] type (`serde_json::Value` for any
//! JSON) and returns a [`serde::Serialize`] result or an error that is [`std::fmt::Display`]. A
//! result object's fields reach the host as the job's result; params that do not deserialize are
//! answered with an `Invalid params` failure, a method that panics with a failure, and the handler
//! keeps serving. Methods run on the Tokio runtime: put blocking work in
//! [`tokio::task::spawn_blocking`]. [`request_id`] gives the host's id for the call (the run id),
//! to make side effects idempotent.
//!
//! With a shared secret ([`Handler::secret`], or `SCHEDULEZERO_SECRET`), every message is signed
//! and checked as the host does with `server.remote_secret` ([`signing`]).

#![warn(missing_docs)]

pub mod signing;
pub mod wire;

mod process;

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

pub use self::signing::Signer;

/// The host's registration endpoint when neither [`Handler::host`] nor `SCHEDULEZERO_ZMQ` says.
pub const DEFAULT_HOST: &str = "tcp://127.0.0.1:4242";
/// Where a handler listens unless told otherwise: a free port on loopback.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:0";
/// How often a registered handler pings its host.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a request to the host may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unregistered handler waits before trying again (at most).
const RETRY: Duration = Duration::from_secs(5);
/// How long the `offline` report on shutdown may take.
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(2);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The handler's socket could not be bound.
    #[error("cannot bind {endpoint}: {message}")]
    Bind {
        /// The endpoint asked for.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The host did not answer.
    #[error("the host at {host} cannot be reached: {message}")]
    Unreachable {
        /// The host's registration endpoint.
        host: String,
        /// Why.
        message: String,
    },
    /// The host answered with a refusal, or with something that is not a ScheduleZero reply.
    #[error("the host refused: {0}")]
    Refused(String),
    /// The thread serving the socket could not start, or its loop panicked.
    #[error("cannot serve: {0}")]
    Thread(String),
    /// The handler could not wait for SIGINT or SIGTERM.
    #[error("cannot listen for shutdown signals: {0}")]
    Signals(String),
}

type MethodFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
type Method = Arc<dyn Fn(Value) -> MethodFuture + Send + Sync>;

tokio::task_local! {
    static REQUEST_ID: Option<String>;
}

/// The host's id for the call being served (ScheduleZero hosts send the run id), when called
/// from within a method.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

/// Runs `future` to completion on a thread of its own, in a single-threaded Tokio runtime, and
/// returns its output; `Err` when the thread cannot start or the future panics.
///
/// For loops that own a socket of the `zeromq` crate (0.7) that many peers connect to: such a
/// socket sometimes waits for a lock synchronously while it is polled (when a peer goes away),
/// and the lock can have been handed to a task waiting in the same worker thread's queue, which
/// then never runs. On a thread of their own, such waits only ever hold up that thread. Work the
/// loop hands out (to `Handle::spawn` of the caller's runtime) still runs on the caller's runtime.
pub async fn on_own_thread<F>(name: &str, future: F) -> std::io::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (done, output) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = done.send(runtime.block_on(future));
        })?;
    output
        .await
        .map_err(|_| std::io::Error::other(format!("the thread {name} ended without a result")))
}

/// Completes on the first SIGINT or SIGTERM (Ctrl-C elsewhere) after this call: the signals are
/// caught from then on, so a handler that announces itself after calling this cannot be stopped
/// the hard way by a signal sent in between. For [`Bound::serve_until`].
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| Error::Signals(e.to_string()))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Signals(e.to_string()))?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// A native handler, before it binds: its id, its methods and where it talks.
pub struct Handler {
    id: String,
    host: String,
    listen: String,
    advertise: Option<String>,
    secret: Option<String>,
    ping_interval: Duration,
    timeout: Duration,
    /// Method names in the order they were added (the order registered).
    names: Vec<String>,
    methods: HashMap<String, Method>,
}

impl Handler {
    /// A handler that schedules will name `id`. The host's endpoint is `SCHEDULEZERO_ZMQ` when set
    /// (else [`DEFAULT_HOST`]), the shared secret `SCHEDULEZERO_SECRET` when set.
    pub fn new(id: impl Into<String>) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            id: id.into(),
            host: env("SCHEDULEZERO_ZMQ").unwrap_or_else(|| DEFAULT_HOST.to_owned()),
            listen: DEFAULT_LISTEN.to_owned(),
            advertise: None,
            secret: env("SCHEDULEZERO_SECRET"),
            ping_interval: DEFAULT_PING_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            names: Vec::new(),
            methods: HashMap::new(),
        }
    }

    /// The host's registration endpoint (`tcp://host:port`).
    pub fn host(mut self, endpoint: impl Into<String>) -> Self {
        self.host = endpoint.into();
        self
    }

    /// Where to listen for calls (`tcp://address:port`; port 0 for any free one).
    pub fn listen(mut self, endpoint: impl Into<String>) -> Self {
        self.listen = endpoint.into();
        self
    }

    /// The address to register, when the host must reach the handler elsewhere than where it
    /// binds (it binds `tcp://0.0.0.0:5001`, the host calls `tcp://10.0.0.5:5001`).
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// The secret shared with the host (its `server.remote_secret`): every message is signed.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into()).filter(|s| !s.is_empty());
        self
    }

    /// How often to ping the host once registered.
    pub fn ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = every;
        self
    }

    /// How long a request to the host may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a method. `f` takes the call's params (ScheduleZero's `job_params`) as `P` and returns
    /// the result, or an error whose text the host records. Adding a name twice replaces it.
    pub fn method<P, R, E, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        E: Display + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let name = name.into();
        let f = Arc::new(f);
        let method: Method = Arc::new(move |params: Value| {
            let f = f.clone();
            Box::pin(async move {
                let params: P =
                    serde_json::from_value(params).map_err(|e| format!("Invalid params: {e}"))?;
                let result = f(params).await.map_err(|e| e.to_string())?;
                serde_json::to_value(result)
                    .map_err(|e| format!("The result cannot be sent as JSON: {e}"))
            })
        });
        if self.methods.insert(name.clone(), method).is_none() {
            self.names.push(name);
        }
        self
    }

    /// Binds the handler's socket; [`Bound::serve`] then registers and serves.
    pub async fn bind(self) -> Result<Bound, Error> {
        let mut socket = zeromq::RepSocket::new();
        let bound = socket.bind(&self.listen).await.map_err(|e| Error::Bind {
            endpoint: self.listen.clone(),
            message: e.to_string(),
        })?;
        let address = self.advertise.unwrap_or_else(|| bound.to_string());
        Ok(Bound {
            link: Arc::new(Link {
                registration: wire::Registration {
                    handler_id: self.id,
                    address,
                    methods: self.names,
                },
                host: self.host,
                signer: self.secret.map(|s| Signer::new(&s)),
                timeout: self.timeout,
                ping_interval: self.ping_interval,
                registered: AtomicBool::new(false),
            }),
            socket,
            methods: self.methods,
        })
    }

    /// Binds, registers, serves until SIGINT or SIGTERM, then reports `offline`. Registration is
    /// tried until the host answers, calls are served meanwhile.
    pub async fn run(self) -> Result<(), Error> {
        self.bind().await?.serve().await
    }
}

/// The handler's side of its host: what it registers, where, and how it signs.
struct Link {
    registration: wire::Registration,
    host: String,
    signer: Option<Signer>,
    timeout: Duration,
    ping_interval: Duration,
    /// The host acknowledged the registration and has not stopped answering pings since.
    registered: AtomicBool,
}

impl Link {
    fn seal(&self, message: &Value) -> String {
        match &self.signer {
            Some(signer) => signer.seal(&message.to_string(), signing::unix_now()),
            None => message.to_string(),
        }
    }

    /// One request to the host on a fresh REQ socket (one that timed out cannot be used again).
    async fn ask(&self, message: &Value, timeout: Duration) -> Result<Value, Error> {
        let unreachable = |message: String| Error::Unreachable {
            host: self.host.clone(),
            message,
        };
        let exchange = async {
            let mut socket = zeromq::ReqSocket::new();
            socket
                .connect(&self.host)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            socket
                .send(ZmqMessage::from(self.seal(message)))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let reply = socket
                .recv()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let frame = reply.get(0).map(|f| f.to_vec()).unwrap_or_default();
            drop(socket.close().await);
            Ok(frame)
        };
        let frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {timeout:?}")))??;
        let text = match &self.signer {
            Some(signer) => signer
                .open(&frame, signing::unix_now())
                .map_err(|why| Error::Refused(format!("reply refused: {why}")))?,
            None => String::from_utf8(frame)
                .map_err(|_| Error::Refused("the reply is not UTF-8".into()))?,
        };
        serde_json::from_str(&text)
            .map_err(|e| Error::Refused(format!("the reply is not JSON: {e}")))
    }

    /// `Ok` when the host's reply says `success`, else its `error`.
    fn accepted(reply: Value) -> Result<Value, Error> {
        match reply.get("success") {
            Some(Value::Bool(true)) => Ok(reply),
            _ => Err(Error::Refused(
                reply
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("the reply has no `success`")
                    .to_owned(),
            )),
        }
    }

    async fn register(&self) -> Result<(), Error> {
        let reply = self
            .ask(&wire::register(&self.registration), self.timeout)
            .await?;
        Self::accepted(reply)?;
        self.registered.store(true, Ordering::Relaxed);
        tracing::info!(
            handler = %self.registration.handler_id,
            address = %self.registration.address,
            host = %self.host,
            "registered"
        );
        Ok(())
    }

    /// Registers until the host has the handler, then pings it every `ping_interval`, and
    /// registers again when a ping fails; until `stopped`.
    async fn keep_registered(&self, mut stopped: watch::Receiver<bool>) {
        loop {
            if !self.registered.load(Ordering::Relaxed)
                && let Err(e) = self.register().await
            {
                tracing::warn!(error = %e, "cannot register; trying again");
            }
            let registered = self.registered.load(Ordering::Relaxed);
            let wait = if registered {
                self.ping_interval
            } else {
                self.ping_interval.min(RETRY)
            };
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                () = tokio::time::sleep(wait) => {}
            }
            if registered
                && let Err(e) = self
                    .ask(&wire::ping(), self.timeout)
                    .await
                    .and_then(Self::accepted)
            {
                tracing::warn!(error = %e, "the host does not answer pings; registering again");
                self.registered.store(false, Ordering::Relaxed);
            }
        }
    }

    async fn report_offline(&self) {
        let report = wire::report_status(&wire::StatusReport {
            handler_id: self.registration.handler_id.clone(),
            status: "offline".into(),
        });
        match self
            .ask(&report, OFFLINE_TIMEOUT)
            .await
            .and_then(Self::accepted)
        {
            Ok(_) => tracing::info!(handler = %self.registration.handler_id, "reported offline"),
            Err(e) => tracing::warn!(error = %e, "cannot report offline"),
        }
    }
}

/// A handler with its socket bound, ready to register and serve.
pub struct Bound {
    link: Arc<Link>,
    socket: zeromq::RepSocket,
    methods: HashMap<String, Method>,
}

impl Bound {
    /// The address the handler registers (where the host calls it).
    pub fn address(&self) -> &str {
        &self.link.registration.address
    }

    /// Registers with the host once: `Ok` when the host has it. [`Bound::serve`] registers on
    /// its own; call this first to fail fast (or to know when the host has it).
    pub async fn register(&self) -> Result<(), Error> {
        self.link.register().await
    }

    /// Serves until SIGINT or SIGTERM (see [`Bound::serve_until`] and [`shutdown_signal`]).
    pub async fn serve(self) -> Result<(), Error> {
        let shutdown = shutdown_signal()?;
        self.serve_until(shutdown).await
    }

    /// Serves calls one at a time and keeps the handler registered until `shutdown` completes;
    /// then finishes the call in flight, reports `offline` to the host and closes the socket.
    /// The socket is served from a thread of its own ([`on_own_thread`]); methods run on the
    /// caller's Tokio runtime.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop, stopped) = watch::channel(false);
        let keeper = tokio::spawn({
            let (link, stopped) = (self.link.clone(), stopped.clone());
            async move { link.keep_registered(stopped).await }
        });
        let link = self.link.clone();
        let server = Server {
            link: self.link,
            socket: self.socket,
            methods: self.methods,
            runtime: tokio::runtime::Handle::current(),
            figures: process::Figures::new(),
        };
        let mut serving = std::pin::pin!(on_own_thread("schedulezero-remote", server.run(stopped)));
        let served = tokio::select! {
            served = &mut serving => served,
            () = shutdown => {
                let _ = stop.send(true);
                serving.await
            }
        };
        let _ = stop.send(true);
        let _ = keeper.await;
        link.report_offline().await;
        served.map_err(|e| Error::Thread(e.to_string()))
    }
}

/// The socket's side of a bound handler: reads requests, calls methods, replies.
struct Server {
    link: Arc<Link>,
    socket: zeromq::RepSocket,
    methods: HashMap<String, Method>,
    /// Where methods run.
    runtime: tokio::runtime::Handle,
    /// What `get_metrics` reports.
    figures: process::Figures,
}

impl Server {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        loop {
            let message = tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                m = self.socket.recv() => m,
            };
            let frame = match message {
                Ok(m) if m.len() == 1 => m.get(0).map(|f| f.to_vec()).unwrap_or_default(),
                Ok(m) => {
                    let reply =
                        wire::failure(&format!("Expected one frame of JSON, got {}", m.len()));
                    self.reply(reply.to_string()).await;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read a request");
                    continue;
                }
            };
            let reply = self.answer(&frame).await;
            self.reply(reply).await;
        }
        drop(self.socket.close().await);
    }

    async fn reply(&mut self, frame: String) {
        // A caller that gave up (timed out, or went away) is not there to take it.
        if let Err(e) = self.socket.send(ZmqMessage::from(frame)).await {
            tracing::debug!(error = %e, "cannot reply");
        }
    }

    /// The reply frame to a request frame.
    async fn answer(&self, frame: &[u8]) -> String {
        let text = match &self.link.signer {
            Some(signer) => match signer.open(frame, signing::unix_now()) {
                Ok(body) => body,
                // Plain, so that a caller without the secret can read why.
                Err(why) => return wire::failure(&why).to_string(),
            },
            None => match std::str::from_utf8(frame) {
                Ok(text) => text.to_owned(),
                Err(_) => return wire::failure("Invalid JSON").to_string(),
            },
        };
        let reply = self.dispatch(&text).await;
        self.link.seal(&reply)
    }

    async fn dispatch(&self, text: &str) -> Value {
        let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(text) else {
            return wire::failure("Invalid JSON");
        };
        let Some(Value::String(name)) = request.remove("method") else {
            return wire::failure("Invalid request: no method");
        };
        if name == "ping" {
            return json!({
                "success": true,
                "message": "pong",
                "handler_id": self.link.registration.handler_id,
            });
        }
        // The host's fleet view asks for the process's own figures; a method of that name that
        // the handler registered answers instead.
        if name == process::METHOD && !self.methods.contains_key(process::METHOD) {
            return wire::success(self.figures.report());
        }
        let Some(method) = self.methods.get(&name) else {
            return wire::failure(&format!("Unknown method: {name}"));
        };
        self.figures.served();
        let params = match request.remove("params") {
            None | Some(Value::Null) => json!({}),
            Some(p) => p,
        };
        let request_id = request
            .remove("request_id")
            .and_then(|id| id.as_str().map(str::to_owned));
        // On a task of its own, so that a panic is the call's failure, not the handler's end.
        let call = self
            .runtime
            .spawn(REQUEST_ID.scope(request_id, method(params)));
        match call.await {
            Ok(Ok(result)) => wire::success(result),
            Ok(Err(error)) => wire::failure(&error),
            Err(e) if e.is_panic() => wire::failure(&format!("The method {name} panicked")),
            Err(_) => wire::failure(&format!("The method {name} was cancelled")),
        }
    }
}
