//! Helpers for the integration tests: real runtimes over real components built from `plugins/`
//! (by the host's build script), and the real `schedulezero` binary of the same build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use schedulezero::config::{BUILTIN_PLUGINS_DIR, Config};
use schedulezero::runtime::{InvokeError, JobContext, Runtime};
use tempfile::TempDir;

/// The database the store-backed tests run on: SQLite files by default, or PostgreSQL
/// databases on a throwaway server of this test process when `SCHEDULEZERO_TEST_DATABASE` is
/// `postgres` (tests/run runs the scheduler, dispatch, API and bridge tests both ways).
pub fn on_postgres() -> bool {
    std::env::var("SCHEDULEZERO_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A fresh PostgreSQL database on this process's scratch server.
pub fn fresh_postgres_database() -> String {
    schedulezero::store::scratch::ScratchPostgres::shared()
        .and_then(|s| s.fresh_database_blocking())
        .expect("a database on the scratch PostgreSQL server")
}

/// The URL of the database a test's store uses in `dir`: its SQLite file there, or (on
/// PostgreSQL) a database made for that directory once and named in a file in it, so a
/// restarted host finds its data again.
pub fn test_database_url(dir: &Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join("sz.db").display());
    }
    let file = dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let url = fresh_postgres_database();
    std::fs::write(&file, &url).expect("note the database");
    url
}

/// The directory the build put the example components in.
pub fn builtin_plugins() -> &'static Path {
    Path::new(BUILTIN_PLUGINS_DIR)
}

/// A configuration over a fresh temporary data directory, with the example plugins.
pub struct TestConfig {
    /// The configuration; adjust it before [`TestConfig::start`].
    pub config: Config,
    /// Keeps the data directory alive.
    pub data: TempDir,
}

impl TestConfig {
    /// Defaults, the example plugins, a private data dir.
    pub fn new() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let config = Config {
            plugins_dir: builtin_plugins().to_owned(),
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        Self { config, data }
    }

    /// Starts a runtime with this configuration.
    pub fn start(self) -> TestRuntime {
        self.config.validate().expect("valid test config");
        let runtime = Arc::new(Runtime::new(self.config).expect("runtime starts"));
        TestRuntime {
            runtime,
            _data: self.data,
        }
    }
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A runtime and the temporary directory it keeps its state in.
pub struct TestRuntime {
    /// The runtime.
    pub runtime: Arc<Runtime>,
    _data: TempDir,
}

impl TestRuntime {
    /// Calls a method with an ad-hoc context and returns the result parsed as JSON.
    pub async fn call(
        &self,
        plugin: &str,
        method: &str,
        params: &str,
    ) -> Result<serde_json::Value, InvokeError> {
        let outcome = self
            .runtime
            .invoke(plugin, method, params, &JobContext::adhoc())
            .await?;
        Ok(serde_json::from_str(&outcome.result).expect("results are JSON"))
    }
}

/// A plugins directory of its own, starting with copies of the named example components.
pub fn plugins_dir_with(names: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let file = format!("{name}.wasm");
        std::fs::copy(builtin_plugins().join(&file), dir.path().join(&file))
            .expect("copy a component");
    }
    dir
}

/// The `schedulezero` binary of this build (cargo builds it for the integration tests).
pub fn schedulezero_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_schedulezero"))
}

/// The repository root (where `cargo build` is run, and README's commands work from).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the repository root")
        .to_owned()
}

/// A reply read as one of the API's types (the CLI reads them the same way).
pub fn read<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    let text = value.to_string();
    serde_json::from_value(value).unwrap_or_else(|e| panic!("not the API's type ({e}): {text}"))
}

/// Runs `schedulezero` with `args` from the repository root, with its data in `data_dir` and no
/// `SCHEDULEZERO_*` variables but the ones given.
pub fn run_cli(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(schedulezero_bin());
    cmd.current_dir(repo_root()).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SCHEDULEZERO_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("SCHEDULEZERO_DATA_DIR", data_dir)
        .env("SCHEDULEZERO_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run schedulezero")
}

/// Runs `schedulezero` against the host at `url` (`--url` added to `args`): its exit code,
/// stdout and stderr.
pub fn cli_against(
    url: &str,
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    let out = run_cli(data_dir, &all, env);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A runtime with the example plugins loaded (so no run waits for a first compilation), a store
/// in a fresh database file, and a dispatcher over both.
pub struct Stack {
    /// The runtime.
    pub runtime: std::sync::Arc<Runtime>,
    /// The store.
    pub store: schedulezero::store::Store,
    /// The dispatcher.
    pub dispatcher: schedulezero::dispatch::Dispatcher,
    /// The store's URL (another process would open it so).
    pub url: String,
    _dirs: (TempDir, TempDir),
}

impl Stack {
    /// Builds the stack.
    pub async fn new() -> Self {
        let c = TestConfig::new();
        let db_dir = tempfile::tempdir().expect("temp dir");
        let url = test_database_url(db_dir.path());
        let store = schedulezero::store::Store::open_url(&url)
            .await
            .expect("open the store");
        let runtime = std::sync::Arc::new(Runtime::new(c.config).expect("runtime starts"));
        runtime.discover().await.expect("plugins load");
        let dispatcher = schedulezero::dispatch::Dispatcher::new(runtime.clone(), store.clone());
        Self {
            runtime,
            store,
            dispatcher,
            url,
            _dirs: (c.data, db_dir),
        }
    }
}

/// A schedule of `handler.method`, created at `now`, first firing at the trigger's first fire
/// time from then.
pub fn new_schedule(
    id: &str,
    handler: &str,
    method: &str,
    params: serde_json::Value,
    trigger: schedulezero::schedule::TriggerSpec,
    policy: schedulezero::schedule::SchedulePolicy,
    now: chrono::DateTime<chrono::Utc>,
) -> schedulezero::schedule::Schedule {
    let next_fire = trigger.compile().expect("valid trigger").first_fire(now);
    schedulezero::schedule::Schedule {
        id: id.into(),
        handler_id: handler.into(),
        method: method.into(),
        params,
        trigger,
        policy,
        paused: false,
        next_fire,
        created_at: now,
        updated_at: now,
    }
}

/// Runs `schedulezero bench NAME --quick --json` to its end (within `limit`) and returns its
/// figures. The artifacts its hosts compile go to a folder removed afterwards.
pub async fn run_bench(name: &str, limit: std::time::Duration) -> serde_json::Value {
    let cache = tempfile::tempdir().expect("a cache folder");
    let out = tokio::process::Command::new(schedulezero_bin())
        .args(["--log", "warn", "bench", name, "--quick", "--json"])
        .env("SCHEDULEZERO_BENCH_CACHE_DIR", cache.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(limit, out)
        .await
        .unwrap_or_else(|_| panic!("bench {name} done within {limit:?}"))
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Polls `check` every 10 ms until it gives a value, or panics after `limit` with `what`.
pub async fn eventually<T>(
    what: &str,
    limit: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A language the example handlers of `plugins/` are written in besides Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Folders with an `app.py`, built with `sdk/python` and componentize-py
    /// (`tests/requirements.txt`).
    Python,
    /// Folders with an `app.js`, built with `sdk/js` and componentize-js (its `node_modules`).
    JavaScript,
}

/// The example handlers of `plugins/` written in `lang`, built with its SDK into
/// `<target>/plugins/python` or `<target>/plugins/js`, once per test run. A component is rebuilt
/// only when its folder, the SDK or the toolchain changed since it was built (a stamp beside it
/// records their digest).
pub fn lang_plugins(lang: Lang) -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static JS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let once = match lang {
        Lang::Python => &PYTHON,
        Lang::JavaScript => &JS,
    };
    once.get_or_init(|| build_lang_plugins(lang))
}

fn build_lang_plugins(lang: Lang) -> PathBuf {
    let root = repo_root();
    let (folder, entry, sdk_dir) = match lang {
        Lang::Python => ("python", "app.py", root.join("sdk/python")),
        Lang::JavaScript => ("js", "app.js", root.join("sdk/js")),
    };
    let out = builtin_plugins().join(folder);
    std::fs::create_dir_all(&out).expect("create the built plugins folder");
    let toolchain = match lang {
        Lang::Python => {
            std::process::Command::new("componentize-py")
                .arg("--version")
                .output()
                .expect("componentize-py (tests/requirements.txt) is on PATH")
                .stdout
        }
        Lang::JavaScript => {
            std::fs::read(sdk_dir.join("package-lock.json")).expect("sdk/js/package-lock.json")
        }
    };
    let sdk = digest_of(&sdk_dir, &toolchain);
    let mut rebuilt = false;
    for item in std::fs::read_dir(root.join("plugins")).expect("read plugins/") {
        let dir = item.expect("list plugins/").path();
        if !dir.join(entry).is_file() {
            continue;
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let wasm = out.join(format!("{name}.wasm"));
        let stamp = out.join(format!("{name}.stamp"));
        let want = format!("{sdk}-{}", digest_of(&dir, b""));
        if wasm.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&want) {
            continue;
        }
        let mut cmd = match lang {
            Lang::Python => {
                let mut c = std::process::Command::new("python3");
                c.args(["-m", "schedulezero.build"])
                    .env("PYTHONPATH", &sdk_dir)
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                c
            }
            Lang::JavaScript => {
                let mut c = std::process::Command::new("node");
                c.arg(sdk_dir.join("build.mjs"));
                c
            }
        };
        let built = cmd
            .arg(&dir)
            .arg("-o")
            .arg(&wasm)
            .output()
            .unwrap_or_else(|e| panic!("run the {lang:?} build: {e}"));
        assert!(
            built.status.success(),
            "building {name}: {}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        std::fs::write(&stamp, want).expect("write the stamp");
        rebuilt = true;
    }
    // The artifacts of these components, compiled once here for the tests to share (seconds
    // each); those of earlier builds go.
    let artifacts = out.join("artifacts");
    if rebuilt || !artifacts.is_dir() {
        let _ = std::fs::remove_dir_all(&artifacts);
        let data = tempfile::tempdir().expect("temp dir");
        let (plugins, cache) = (out.display().to_string(), artifacts.display().to_string());
        let listed = run_cli(
            data.path(),
            &["plugins", "list"],
            &[
                ("SCHEDULEZERO_PLUGINS_DIR", plugins.as_str()),
                ("SCHEDULEZERO_CACHE_DIR", cache.as_str()),
            ],
        );
        assert!(
            listed.status.success(),
            "compiling the {lang:?} examples: {listed:?}"
        );
    }
    out
}

/// A digest of the files under `dir` (their paths and contents, `__pycache__` and
/// `node_modules` left out) and
/// `extra`.
fn digest_of(dir: &Path, extra: &[u8]) -> String {
    use sha2::Digest;
    fn walk(dir: &Path, base: &Path, hasher: &mut sha2::Sha256) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read a source folder")
            .map(|e| e.expect("list a source folder").path())
            .collect();
        entries.sort();
        for path in entries {
            if path
                .file_name()
                .is_some_and(|n| n == "__pycache__" || n == "node_modules")
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, hasher);
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                hasher.update(rel.to_string_lossy().as_bytes());
                hasher.update([0]);
                hasher.update(std::fs::read(&path).expect("read a source file"));
                hasher.update([0]);
            }
        }
    }
    let mut hasher = sha2::Sha256::new();
    walk(dir, dir, &mut hasher);
    hasher.update(extra);
    hex::encode(&hasher.finalize()[..16])
}
