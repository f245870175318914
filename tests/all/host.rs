//! `TestHost`: the real `schedulezero serve` process on `127.0.0.1:0` with a temporary data dir,
//! and an HTTP client for it. It can be stopped gracefully (SIGTERM), killed (SIGKILL) and
//! started again on the same data dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{repo_root, schedulezero_bin};

/// A running host.
pub struct TestHost {
    child: Option<Child>,
    /// The base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The HTTP client (no token unless one is set).
    pub http: reqwest::Client,
    token: Option<String>,
    data: PathBuf,
    args: Vec<String>,
    _dir: Option<TempDir>,
}

impl TestHost {
    /// A host with the example plugins and a fresh data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A host with extra `serve` arguments.
    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().to_owned();
        let token = args
            .windows(2)
            .find(|w| w[0] == "--api-token")
            .map(|w| w[1].to_owned());
        let mut host = Self::spawn(&data, args.iter().map(|s| (*s).to_owned()).collect(), token);
        host._dir = Some(dir);
        host
    }

    /// A host with a configuration file holding `toml` (in its data dir, so restarts keep it).
    pub fn start_with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("schedulezero.toml");
        std::fs::write(&file, toml).expect("write the configuration");
        let args = vec!["--config".to_owned(), file.display().to_string()];
        let mut host = Self::spawn(dir.path(), args, None);
        host._dir = Some(dir);
        host
    }

    /// A host with a configuration file holding `toml` and extra `serve` arguments.
    pub fn start_configured(toml: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("schedulezero.toml");
        std::fs::write(&file, toml).expect("write the configuration");
        let mut all = vec!["--config".to_owned(), file.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let mut host = Self::spawn(dir.path(), all, None);
        host._dir = Some(dir);
        host
    }

    fn spawn(data: &Path, args: Vec<String>, token: Option<String>) -> Self {
        schedulezero::install_crypto_provider();
        let mut cmd = Command::new(schedulezero_bin());
        cmd.current_dir(repo_root());
        for (key, _) in std::env::vars() {
            if key.starts_with("SCHEDULEZERO_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SCHEDULEZERO_LOG", "warn")
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--zmq-listen",
                "tcp://127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data)
            .args(&args);
        if crate::support::on_postgres() && !args.iter().any(|a| a == "--database-url") {
            cmd.env(
                "SCHEDULEZERO_DATABASE_URL",
                crate::support::test_database_url(data),
            );
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start schedulezero serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("serve prints where it listens")
            .expect("read stdout");
        let url = first
            .strip_prefix("schedulezero listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .trim()
            .to_owned();
        // Keep draining stdout so the host never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self {
            child: Some(child),
            url,
            http: reqwest::Client::new(),
            token,
            data: data.to_owned(),
            args,
            _dir: None,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// GET `path`: the status and the JSON body (null when empty).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        reply(self.request(reqwest::Method::GET, path).send().await).await
    }

    /// GET `path` as text: the status, the content type and the body.
    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let ty = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ty, r.text().await.expect("body"))
    }

    /// Runs schedule `id` now through `/api/v1` and waits for its outcome (status 200 asserted).
    pub async fn run_schedule(&self, id: &str) -> Value {
        let (status, ran) = self
            .post(
                &format!("/api/v1/schedules/{id}/run?wait=true"),
                &serde_json::Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{ran}");
        ran
    }

    /// POST `body` as JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        reply(
            self.request(reqwest::Method::POST, path)
                .json(body)
                .send()
                .await,
        )
        .await
    }

    /// POST raw bytes to `path`.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        reply(
            self.request(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await,
        )
        .await
    }

    /// PATCH `body` as JSON to `path`.
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        reply(
            self.request(reqwest::Method::PATCH, path)
                .json(body)
                .send()
                .await,
        )
        .await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        reply(self.request(reqwest::Method::DELETE, path).send().await).await
    }

    /// Any method on `path`, without a body.
    pub async fn call(&self, method: &str, path: &str) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        reply(self.request(m, path).send().await).await
    }

    /// Any method on `path`, with `body` as JSON unless it is null.
    pub async fn call_json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = self.request(m, path);
        let r = if body.is_null() { r } else { r.json(body) };
        reply(r.send().await).await
    }

    /// Polls `check` every 50 ms until it returns `Some`, for up to `limit`.
    pub async fn wait_for<T, F, Fut>(&self, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The execution records of a schedule, newest first (`/api/v1`).
    pub async fn executions_of(&self, schedule: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!(
                "/api/v1/executions?schedule={schedule}&limit=1000"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["executions"].as_array().cloned().unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id(), "TERM");
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        status.is_some_and(|s| s.success())
    }

    /// Stops the process where it is (SIGSTOP), as a machine that hangs or a VM that is
    /// paused; [`TestHost::cont`] lets it go on.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
        }
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn cont(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// Starts a new host process on the same data dir (after [`TestHost::terminate`] or
    /// [`TestHost::kill`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the host first");
        let mut next = Self::spawn(&self.data, self.args.clone(), self.token.clone());
        self.child = next.child.take();
        self.url = std::mem::take(&mut next.url);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn reply(sent: Result<reqwest::Response, reqwest::Error>) -> (u16, Value) {
    let response = sent.expect("the host answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("read the body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, body)
}

fn signal(pid: u32, name: &str) {
    let sig = match name {
        "TERM" => rustix::process::Signal::TERM,
        "STOP" => rustix::process::Signal::STOP,
        "CONT" => rustix::process::Signal::CONT,
        _ => rustix::process::Signal::KILL,
    };
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
