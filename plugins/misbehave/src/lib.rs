//! misbehave: a handler whose methods misbehave on purpose.
//!
//! Each method does one thing a handler must not be able to get away with: spin forever, eat
//! memory, panic, trap, overflow its stack, return a huge result, flood its output, or reach for
//! files, environment variables or the network it was not granted, send HTTP requests out of its
//! grants or with a forged `Host` header, write where it may only read. The host's tests call every
//! one of them and check that the call ends in a clear, typed error and that the host keeps
//! serving. `ok` is there to show that the same instance (or a fresh one) still works afterwards.

use std::hint::black_box;
use std::io::Write;

use schedulezero_sdk::capabilities::{Capabilities, Directory, Http, Setting};
use schedulezero_sdk::schemars::{self, JsonSchema};
use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods, export_handler, http};
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct Misbehave {
    calls: u64,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct GrowParams {
    /// Size of each allocation in KiB (default 1024).
    chunk_kib: Option<usize>,
    /// Stop after this many MiB in total (default: never).
    limit_mib: Option<usize>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct MessageParams {
    /// The panic message.
    message: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct DepthParams {
    /// How deep to recurse (default: until something breaks).
    depth: Option<u64>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct SizeParams {
    /// Size of the returned string in bytes (default 4 MiB).
    bytes: Option<usize>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct NoisyParams {
    /// Lines to write to stdout and to stderr each (default 100000).
    lines: Option<u64>,
    /// Milliseconds to sleep after each pair of lines (default 0).
    pause_ms: Option<u64>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct PathParams {
    /// The file to read (default `/etc/passwd`).
    path: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct EnvParams {
    /// The variable to read (default `HOME`).
    name: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct AddrParams {
    /// `ip:port` to connect to (default `127.0.0.1:80`).
    addr: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct SleepParams {
    /// How long to sleep, in milliseconds (default 60000).
    ms: Option<u64>,
}

#[derive(Serialize)]
struct Ok {
    ok: bool,
    instance_calls: u64,
}

#[derive(Serialize)]
struct EnvSeen {
    value: String,
    visible_vars: usize,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct FetchParams {
    /// The URL.
    url: String,
    /// The method (default GET).
    method: Option<String>,
    /// Redirects to follow (default 5).
    max_redirects: Option<u32>,
    /// How many times to send it (default 1).
    times: Option<u32>,
}

#[derive(Serialize)]
struct Fetched {
    status: u16,
    url: String,
    bytes: usize,
    body: String,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct RawParams {
    /// The request's authority; none sends a relative request.
    authority: Option<String>,
    /// The path (default `/`).
    path: Option<String>,
    /// A `Host` header to forge.
    host_header: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct LeakParams {
    /// Panic with the secret instead of returning an error.
    panic: bool,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct WriteParams {
    /// The file to write.
    path: String,
    /// What to write.
    text: String,
}

impl Misbehave {
    fn fetch(&mut self, _ctx: &JobContext, p: FetchParams) -> Result<Fetched, HandlerError> {
        self.calls += 1;
        let method = p.method.as_deref().unwrap_or("GET");
        let mut last = None;
        for _ in 0..p.times.unwrap_or(1).max(1) {
            let r = http::Request::method(method, p.url.as_str())?
                .max_redirects(p.max_redirects.unwrap_or(5))
                .send()?;
            last = Some(r);
        }
        let r = last.ok_or_else(|| HandlerError::failed("nothing sent"))?;
        let mut body = r.text();
        body.truncate(1000);
        Ok(Fetched {
            status: r.status(),
            url: r.url().to_owned(),
            bytes: r.bytes().len(),
            body,
        })
    }

    /// A request built by hand on `wasi:http`, to try what the SDK's client would not do.
    fn http_raw(&mut self, _ctx: &JobContext, p: RawParams) -> Result<String, HandlerError> {
        use wasip2::http::{outgoing_handler, types};
        self.calls += 1;
        let headers = types::Fields::new();
        let mut forged = "no Host header given".to_owned();
        if let Some(h) = &p.host_header {
            forged = match headers.set("host", &[h.clone().into_bytes()]) {
                Ok(()) => "Host header accepted".into(),
                Err(e) => format!("Host header refused: {e:?}"),
            };
        }
        let request = types::OutgoingRequest::new(headers);
        let _ = request.set_scheme(Some(&types::Scheme::Http));
        let _ = request.set_authority(p.authority.as_deref());
        let _ = request.set_path_with_query(Some(p.path.as_deref().unwrap_or("/")));
        let fail = |e: types::ErrorCode| match e {
            types::ErrorCode::HttpRequestDenied => {
                HandlerError::denied(format!("{forged}; request denied"))
            }
            other => HandlerError::failed(format!("{forged}; {other:?}")),
        };
        let pending = outgoing_handler::handle(request, None).map_err(fail)?;
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(response))) => Ok(format!("{forged}; status {}", response.status())),
            Some(Ok(Err(e))) => Err(fail(e)),
            _ => Err(HandlerError::failed("no response")),
        }
    }

    /// Prints its secret `token` to stdout, stderr and the log, then fails or panics with it.
    fn leak_secret(&mut self, _ctx: &JobContext, p: LeakParams) -> Result<(), HandlerError> {
        self.calls += 1;
        let token = schedulezero_sdk::config::secret("token")?;
        println!("the token is {token}");
        eprintln!("the token is {token}");
        schedulezero_sdk::log::info(format!("the token is {token}"));
        if p.panic {
            panic!("the token is {token}");
        }
        Err(HandlerError::failed(format!("the token is {token}")))
    }

    fn write_file(&mut self, _ctx: &JobContext, p: WriteParams) -> Result<usize, HandlerError> {
        self.calls += 1;
        std::fs::write(&p.path, p.text.as_bytes())
            .map_err(|e| HandlerError::denied(format!("cannot write {}: {e}", p.path)))?;
        Ok(p.text.len())
    }

    fn ok(&mut self, _ctx: &JobContext, _: ()) -> Result<Ok, HandlerError> {
        self.calls += 1;
        Ok(Ok {
            ok: true,
            instance_calls: self.calls,
        })
    }

    fn spin(&mut self, _ctx: &JobContext, _: ()) -> Result<u64, HandlerError> {
        self.calls += 1;
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }

    fn grow_memory(&mut self, _ctx: &JobContext, p: GrowParams) -> Result<usize, HandlerError> {
        self.calls += 1;
        let chunk = p.chunk_kib.unwrap_or(1024).max(1) * 1024;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        let mut total = 0usize;
        while p.limit_mib.is_none_or(|l| total < l * 1024 * 1024) {
            // Touch every page so the memory is really used, not just reserved.
            hoard.push(black_box(vec![0xA5; chunk]));
            total += chunk;
        }
        Ok(black_box(hoard).len())
    }

    fn panic(&mut self, _ctx: &JobContext, p: MessageParams) -> Result<(), HandlerError> {
        self.calls += 1;
        panic!(
            "{}",
            p.message
                .unwrap_or_else(|| "misbehave panicked on purpose".into())
        );
    }

    fn trap(&mut self, _ctx: &JobContext, _: ()) -> Result<(), HandlerError> {
        self.calls += 1;
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        std::process::abort();
    }

    fn deep_recursion(&mut self, _ctx: &JobContext, p: DepthParams) -> Result<u64, HandlerError> {
        self.calls += 1;
        Ok(recurse(p.depth.unwrap_or(u64::MAX), 0))
    }

    fn huge_result(&mut self, _ctx: &JobContext, p: SizeParams) -> Result<String, HandlerError> {
        self.calls += 1;
        Ok("x".repeat(p.bytes.unwrap_or(4 * 1024 * 1024)))
    }

    fn noisy(&mut self, _ctx: &JobContext, p: NoisyParams) -> Result<u64, HandlerError> {
        self.calls += 1;
        let lines = p.lines.unwrap_or(100_000);
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for i in 0..lines {
            // Errors are ignored on purpose: a host may close the streams on a noisy guest.
            let _ = writeln!(
                out,
                "noisy stdout line {i}: the quick brown fox jumps over the lazy dog"
            );
            let _ = writeln!(
                err,
                "noisy stderr line {i}: the quick brown fox jumps over the lazy dog"
            );
            if let Some(ms) = p.pause_ms {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
        Ok(lines)
    }

    fn read_file(&mut self, _ctx: &JobContext, p: PathParams) -> Result<String, HandlerError> {
        self.calls += 1;
        let path = p.path.unwrap_or_else(|| "/etc/passwd".into());
        std::fs::read_to_string(&path)
            .map_err(|e| HandlerError::denied(format!("cannot read {path}: {e}")))
    }

    fn read_env(&mut self, _ctx: &JobContext, p: EnvParams) -> Result<EnvSeen, HandlerError> {
        self.calls += 1;
        let name = p.name.unwrap_or_else(|| "HOME".into());
        let visible_vars = std::env::vars().count();
        match std::env::var(&name) {
            Ok(value) => Ok(EnvSeen {
                value,
                visible_vars,
            }),
            Err(e) => Err(HandlerError::denied(format!(
                "cannot read environment variable {name}: {e} ({visible_vars} variables visible)"
            ))),
        }
    }

    fn open_socket(&mut self, _ctx: &JobContext, p: AddrParams) -> Result<String, HandlerError> {
        self.calls += 1;
        let addr = p.addr.unwrap_or_else(|| "127.0.0.1:80".into());
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => Ok(format!("connected to {:?}", s.peer_addr().ok())),
            Err(e) => Err(HandlerError::denied(format!(
                "cannot connect to {addr}: {e}"
            ))),
        }
    }

    fn sleep(&mut self, _ctx: &JobContext, p: SleepParams) -> Result<u64, HandlerError> {
        self.calls += 1;
        let ms = p.ms.unwrap_or(60_000);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(ms)
    }
}

#[inline(never)]
fn recurse(left: u64, depth: u64) -> u64 {
    if left == 0 {
        return depth;
    }
    // A frame with a buffer that lives across the call, so the optimiser can neither drop the
    // buffer nor turn the recursion into a loop. Every entry is `depth`, below the result.
    let frame = black_box([depth; 16]);
    recurse(left - 1, depth + 1).max(black_box(frame)[15])
}

impl Handler for Misbehave {
    const NAME: &'static str = "misbehave";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Misbehaves on purpose (loops, eats memory, panics, reaches outside the sandbox) to prove the host's limits.";
    const CAPABILITIES: Capabilities = Capabilities {
        http: &[Http::new(
            "*://*:*",
            "Whatever a test points it at, to prove what the host refuses.",
        )],
        directories: &[
            Directory::read_only("data", "Files it tries to escape from."),
            Directory::read_write("scratch", "Where it may write."),
        ],
        config: &[
            Setting::value("anything", "A plain value."),
            Setting::secret("token", "A secret."),
        ],
        ..Capabilities::NONE
    };

    fn methods(m: &mut Methods<Self>) {
        m.method(
            "ok",
            "Behaves: returns ok and the instance's call count.",
            Self::ok,
        )
        .method("spin", "Loops forever.", Self::spin)
        .method(
            "grow_memory",
            "Allocates memory without bound.",
            Self::grow_memory,
        )
        .method("panic", "Panics with a message.", Self::panic)
        .method("trap", "Executes an unreachable instruction.", Self::trap)
        .method(
            "deep_recursion",
            "Recurses until the stack runs out.",
            Self::deep_recursion,
        )
        .method(
            "huge_result",
            "Returns a result of several MiB.",
            Self::huge_result,
        )
        .method("noisy", "Floods stdout and stderr.", Self::noisy)
        .method(
            "read_file",
            "Tries to read a file of the host.",
            Self::read_file,
        )
        .method(
            "read_env",
            "Tries to read an environment variable of the host.",
            Self::read_env,
        )
        .method(
            "open_socket",
            "Tries to open a TCP connection.",
            Self::open_socket,
        )
        .method(
            "fetch",
            "Sends an HTTP request with the SDK's client.",
            Self::fetch,
        )
        .method(
            "http_raw",
            "Sends a hand-built HTTP request (relative, with a forged Host header).",
            Self::http_raw,
        )
        .method("write_file", "Tries to write a file.", Self::write_file)
        .method(
            "leak_secret",
            "Prints its secret everywhere and fails with it.",
            Self::leak_secret,
        )
        .method(
            "sleep",
            "Sleeps (blocking in a host call, not spinning).",
            Self::sleep,
        );
    }
}

export_handler!(Misbehave);
