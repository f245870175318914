//! misbehave: a handler whose methods misbehave on purpose.
//!
//! Each method does one thing a handler must not be able to get away with: spin forever, eat
//! memory, panic, trap, overflow its stack, return a huge result, flood its output, or reach for
//! files, environment variables or the network it was not granted. The host's tests call every
//! one of them and check that the call ends in a clear, typed error and that the host keeps
//! serving. `ok` is there to show that the same instance (or a fresh one) still works afterwards.

use std::hint::black_box;
use std::io::Write;

use schedulezero_sdk::schemars::{self, JsonSchema};
use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods, export_handler};
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

impl Misbehave {
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
            "sleep",
            "Sleeps (blocking in a host call, not spinning).",
            Self::sleep,
        );
    }
}

export_handler!(Misbehave);
