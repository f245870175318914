//! `schedulezero bench`: the scheduler benchmark ([`scheduler`]: a real host over its REST API)
//! and the runtime benchmark ([`runtime`]: the host's call path against bare wasmtime with the
//! same component, instance memory, throughput, and a host's memory with 100 plugins before and
//! after a burst) and the remote-handler benchmark ([`remote`]: a no-op call over ZeroMQ against
//! the same call to a hot plugin) and the outbound HTTP benchmark ([`http`]: a hot component's GET
//! against native Rust's, and cold starts) and the catalog benchmark ([`catalog`]: installing a
//! signed component from a registry on loopback, and a host's install to first result) and the
//! cluster benchmark ([`cluster`]: hosts on one PostgreSQL server started for the run) and the
//! fleet benchmark ([`fleet`]: the conductor's health check over 100 plugins and 10 remote
//! handlers). Each prints a table, or one JSON object with `--json`.

pub mod catalog;
pub mod cluster;
pub mod fleet;
pub mod http;
pub mod remote;
pub mod runtime;
mod scheduler;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub use self::scheduler::{SchedulerFigures, scheduler, table};

/// What went wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(String);

pub(crate) fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError(e.to_string())
}

/// A host started for a benchmark: this executable's `serve` on a free loopback port.
pub(crate) struct BenchHost {
    child: Option<Child>,
    pub(crate) url: String,
}

impl BenchHost {
    /// Starts `serve` on `data` with extra arguments (after `serve`).
    pub(crate) fn start(data: &Path, args: &[&str]) -> Result<Self, BenchError> {
        let exe = std::env::current_exe().map_err(err)?;
        // The host logs warnings (on stderr); `SCHEDULEZERO_BENCH_LOG` sets another filter, to
        // see what a host under load does.
        let log = std::env::var("SCHEDULEZERO_BENCH_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = Command::new(exe)
            .args(["--log", log.as_str()])
            .args([
                "serve",
                "--zmq-listen",
                "tcp://127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError(format!("cannot start a host: {e}")))?;
        let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .ok_or_else(|| err("the host exited before listening"))?
            .map_err(err)?;
        let url = first
            .strip_prefix("schedulezero listening on ")
            .ok_or_else(|| BenchError(format!("unexpected output: {first}")))?
            .trim()
            .to_owned();
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(Self {
            child: Some(child),
            url,
        })
    }

    /// Waits until the host has loaded every plugin of its folder (none is compiling any more).
    pub(crate) async fn loaded(&self) -> Result<(), BenchError> {
        let client = reqwest::Client::new();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(600);
        loop {
            let listed = get_json(&client, &format!("{}/api/v1/plugins", self.url)).await?;
            if listed["compiling"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            if std::time::Instant::now() > until {
                return Err(err(
                    "the host's plugins were still compiling after 10 minutes",
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills it with SIGKILL (no chance to clean up).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for BenchHost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates schedule `id` of `handler.method(params)` on the host at `base`, paused (it runs when
/// a benchmark runs it now).
pub(crate) async fn paused_schedule(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    (handler, method): (&str, &str),
    params: &serde_json::Value,
) -> Result<(), BenchError> {
    let body = serde_json::json!({"id": id, "handler": handler, "method": method, "params": params,
        "trigger": {"type": "interval", "every_seconds": 3600}, "paused": true});
    post_json(
        http,
        &format!("{base}/api/v1/schedules"),
        &body,
        &format!("create schedule {id}"),
    )
    .await
}

/// The JSON `url` answers with.
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &str,
) -> Result<serde_json::Value, BenchError> {
    http.get(url)
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)
}

/// Posts `body` to `url`; an answer other than a success is an error saying what could not be
/// done (`what`), with the status and the body of the answer.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    what: &str,
) -> Result<(), BenchError> {
    let r = http.post(url).json(body).send().await.map_err(err)?;
    if !r.status().is_success() {
        return Err(BenchError(format!(
            "cannot {what}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )));
    }
    Ok(())
}

/// A remote handler written with `schedulezero-remote` whose one method, `noop`, answers
/// `{"pong": true}`, registered at the host's `endpoint`; not serving yet.
pub(crate) async fn noop_remote_handler(
    id: &str,
    endpoint: &str,
) -> Result<schedulezero_remote::Bound, BenchError> {
    let handler = schedulezero_remote::Handler::new(id)
        .host(endpoint)
        .secret("")
        .method("noop", |_: serde_json::Value| async {
            Ok::<_, String>(serde_json::json!({ "pong": true }))
        })
        .bind()
        .await
        .map_err(err)?;
    handler.register().await.map_err(err)?;
    Ok(handler)
}

pub(crate) fn us(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// (median, p99) of samples in µs.
pub(crate) fn spread(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

pub(crate) fn rss_mib(pid: u32) -> Result<f64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(err)?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err("no VmRSS"))?;
    Ok(kib / 1024.0)
}
