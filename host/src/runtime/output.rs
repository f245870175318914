//! What a guest says during a call: its stdout and stderr, and its log records. Everything goes into the host's log, line by line, tagged with
//! the plugin, job and run; a per-call byte budget bounds how much a noisy guest can write (the
//! rest is dropped and counted). The tail of stderr is kept aside so that a panic message can be
//! put into the error of a call that traps. A secret the host handed the instance is masked in
//! whatever it writes: a handler that prints its API key does not put it in the host's log.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::bindings::LogLevel;

/// How much of stderr is kept to explain a trap.
const STDERR_TAIL: usize = 8 * 1024;

/// The longest line written to the log; longer lines are cut.
const MAX_LINE: usize = 4096;

/// The guest stream a write came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The output of one instance, shared by its WASI streams and the host.
#[derive(Debug, Default)]
pub struct Capture {
    state: Mutex<CaptureState>,
}

#[derive(Debug, Default)]
struct CaptureState {
    plugin: Arc<str>,
    job_id: String,
    run_id: String,
    budget: usize,
    used: usize,
    dropped: u64,
    partial: [Vec<u8>; 2],
    stderr_tail: Vec<u8>,
    /// Secret values the instance was given, masked in its output.
    secrets: Vec<String>,
}

/// What a secret is written as in the log.
pub const MASK: &str = "[secret]";

/// The shortest secret masked (masking a one- or two-character value would garble the log
/// without hiding anything).
const MIN_MASKED: usize = 4;

/// What a call wrote, summed up when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureReport {
    /// Bytes that reached the log.
    pub bytes: usize,
    /// Bytes dropped once the budget was spent.
    pub dropped: u64,
    /// The last few KiB of stderr.
    pub stderr_tail: String,
}

impl Capture {
    /// A capture for the instances of `plugin`.
    pub fn new(plugin: Arc<str>) -> Self {
        Self {
            state: Mutex::new(CaptureState {
                plugin,
                ..Default::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        // A panic while holding the lock leaves only counters behind; they are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a call: tags what follows with its job and run, and resets the budget.
    pub fn begin(&self, job_id: &str, run_id: &str, budget: usize) {
        let mut s = self.lock();
        s.job_id.clear();
        s.job_id.push_str(job_id);
        s.run_id.clear();
        s.run_id.push_str(run_id);
        s.budget = budget;
        s.used = 0;
        s.dropped = 0;
        s.partial.iter_mut().for_each(Vec::clear);
        s.stderr_tail.clear();
    }

    /// Ends a call: flushes unterminated lines and returns what was written.
    pub fn finish(&self) -> CaptureReport {
        let mut s = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut s.partial[stream as usize]);
            if !rest.is_empty() {
                s.emit_line(stream, &rest);
            }
        }
        if s.dropped > 0 {
            tracing::warn!(
                target: "schedulezero::plugin",
                plugin = %s.plugin, job_id = %s.job_id, run_id = %s.run_id, dropped_bytes = s.dropped,
                "plugin output over budget was dropped"
            );
        }
        CaptureReport {
            bytes: s.used,
            dropped: s.dropped,
            stderr_tail: s
                .masked(String::from_utf8_lossy(&s.stderr_tail))
                .into_owned(),
        }
    }

    /// Masks `value` in everything the instance writes from now on.
    pub fn redact(&self, value: &str) {
        if value.len() < MIN_MASKED {
            return;
        }
        let mut s = self.lock();
        if !s.secrets.iter().any(|v| v == value) {
            s.secrets.push(value.to_owned());
        }
    }

    /// `text` with the secrets the instance was given masked.
    pub fn mask(&self, text: String) -> String {
        self.lock().masked(Cow::Owned(text)).into_owned()
    }

    /// Records bytes written to a guest stream.
    pub fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut s = self.lock();
        if stream == Stream::Stderr {
            s.stderr_tail.extend_from_slice(bytes);
            let excess = s.stderr_tail.len().saturating_sub(STDERR_TAIL);
            s.stderr_tail.drain(..excess);
        }
        let allowed = s.budget.saturating_sub(s.used).min(bytes.len());
        s.used += allowed;
        s.dropped += (bytes.len() - allowed) as u64;
        let mut rest = &bytes[..allowed];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut s.partial[stream as usize]);
            line.extend_from_slice(&rest[..nl]);
            s.emit_line(stream, &line);
            rest = &rest[nl + 1..];
        }
        let partial = &mut s.partial[stream as usize];
        partial.extend_from_slice(rest);
        if partial.len() >= MAX_LINE {
            let line = std::mem::take(partial);
            s.emit_line(stream, &line);
        }
    }

    /// Records a structured log record from the guest.
    pub fn log(&self, level: LogLevel, message: &str) {
        let mut s = self.lock();
        if s.used + message.len() > s.budget {
            s.dropped += message.len() as u64;
            return;
        }
        s.used += message.len();
        let message = s.masked(printable(truncate(message, MAX_LINE)));
        let (plugin, job_id, run_id) = (&*s.plugin, s.job_id.as_str(), s.run_id.as_str());
        macro_rules! emit {
            ($lvl:expr) => {
                tracing::event!(target: "schedulezero::plugin", $lvl, plugin, job_id, run_id, "{message}")
            };
        }
        match level {
            LogLevel::Trace => emit!(tracing::Level::TRACE),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Error => emit!(tracing::Level::ERROR),
        }
    }
}

impl CaptureState {
    /// The text with every secret the instance was given replaced by [`MASK`].
    fn masked<'a>(&self, text: Cow<'a, str>) -> Cow<'a, str> {
        if !self.secrets.iter().any(|v| text.contains(v.as_str())) {
            return text;
        }
        let mut out = text.into_owned();
        for v in &self.secrets {
            out = out.replace(v.as_str(), MASK);
        }
        Cow::Owned(out)
    }

    fn emit_line(&self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = self.masked(printable(truncate(text.trim_end_matches('\r'), MAX_LINE)));
        tracing::info!(
            target: "schedulezero::plugin",
            plugin = %self.plugin, job_id = %self.job_id, run_id = %self.run_id, stream = stream.name(),
            "{text}"
        );
    }
}

/// The text with control characters (but tabs) escaped, so that a guest cannot start a forged
/// log line or send terminal escape sequences through the host's log.
fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Finds a Rust panic message in the tail of stderr: `panicked at <where>:\n<message>`.
pub fn panic_message(stderr_tail: &str) -> Option<String> {
    let at = stderr_tail.rfind("panicked at ")?;
    let rest = &stderr_tail[at + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n")?;
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    Some(format!("{} (at {location})", message.join("\n").trim()))
}

/// One WASI output stream of an instance (stdout or stderr), feeding its [`Capture`].
#[derive(Debug, Clone)]
pub struct GuestOutput {
    capture: Arc<Capture>,
    stream: Stream,
}

impl GuestOutput {
    /// A stream feeding `capture`.
    pub fn new(capture: Arc<Capture>, stream: Stream) -> Self {
        Self { capture, stream }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// How much a guest may write in one go; the stream is always ready again at once.
const WRITE_PERMIT: usize = 64 * 1024;

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.capture.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_enforces_the_budget() {
        let c = Capture::new("p".into());
        c.begin("job", "run", 10);
        c.write(Stream::Stdout, b"hello\nwor");
        c.write(Stream::Stdout, b"ld\nmore than the budget");
        let r = c.finish();
        assert_eq!(r.bytes, 10);
        assert_eq!(r.dropped, 32 - 10);
        c.begin("job", "run2", 100);
        assert_eq!(c.finish(), CaptureReport::default());
    }

    #[test]
    fn secrets_are_masked_in_what_the_instance_writes() {
        let c = Capture::new("p".into());
        c.begin("job", "run", 1000);
        c.redact("s3cret-value");
        c.redact("ab");
        c.write(Stream::Stderr, b"key=s3cret-value\n");
        let r = c.finish();
        assert_eq!(r.stderr_tail, "key=[secret]\n");
        assert_eq!(c.mask("said s3cret-value, ab".into()), "said [secret], ab");
        let s = c.lock();
        assert_eq!(s.masked(Cow::Borrowed("nothing")), "nothing");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain\ttext"), "plain\ttext");
        assert_eq!(
            printable("a\nfake line\u{1b}[31m"),
            "a\\nfake line\\u{1b}[31m"
        );
    }

    #[test]
    fn keeps_the_stderr_tail_and_finds_panics() {
        let c = Capture::new("p".into());
        c.begin("job", "run", 0);
        c.write(
            Stream::Stderr,
            b"\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        let r = c.finish();
        assert!(r.dropped > 0);
        assert_eq!(
            panic_message(&r.stderr_tail).as_deref(),
            Some("boom (at src/lib.rs:10:5)")
        );
        assert_eq!(panic_message("no panic here"), None);
    }
}
