//! Handlers written in Python and JavaScript with the SDKs in `sdk/python` and `sdk/js`: the
//! example plugins `ding-dong-py` and `ding-dong-js` (ScheduleZero's ding-dong handler's methods,
//! moved over) and `misbehave-py` and `misbehave-js`, built by the test run with componentize-py
//! and componentize-js, described, called, scheduled through a real host, given and refused what
//! they ask for, and stopped when they misbehave. The SDKs' own tests run here too.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::host::TestHost;
use crate::support::{Lang, TestConfig, TestRuntime, lang_plugins, repo_root};
use schedulezero::config::DirectoryGrant;
use schedulezero::runtime::{InvokeError, JobContext};

/// The example plugins' names end so: `ding-dong-py`, `misbehave-js`.
fn suffix(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "py",
        Lang::JavaScript => "js",
    }
}

/// A plugins folder with a copy of the `lang` example component `name`.
fn lang_dir(lang: Lang, name: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = format!("{name}.wasm");
    std::fs::copy(lang_plugins(lang).join(&file), dir.path().join(&file))
        .expect("copy a component");
    dir
}

/// Where the tests' hosts keep these components' compiled artifacts: shared, so that each is
/// compiled once per run, not once per test (seconds each).
fn shared_cache(lang: Lang) -> std::path::PathBuf {
    lang_plugins(lang).join("artifacts")
}

/// A runtime over a folder with the `lang` example `name`, configured by `adjust`.
fn runtime_with(
    lang: Lang,
    name: &str,
    adjust: impl FnOnce(&mut TestConfig),
) -> (TestRuntime, TempDir) {
    let dir = lang_dir(lang, name);
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    c.config.cache_dir = Some(shared_cache(lang));
    adjust(&mut c);
    (c.start(), dir)
}

/// A context for a run scheduled at `at` (RFC 3339).
fn scheduled_at(run: &str, at: &str) -> JobContext {
    let t = chrono::DateTime::parse_from_rfc3339(at).expect("a time");
    JobContext {
        job_id: "job".into(),
        run_id: run.into(),
        attempt: 1,
        scheduled_time: t.into(),
    }
}

async fn call_with(
    t: &TestRuntime,
    plugin: &str,
    method: &str,
    params: &str,
    ctx: &JobContext,
) -> Value {
    let out = t
        .runtime
        .invoke(plugin, method, params, ctx)
        .await
        .unwrap_or_else(|e| panic!("{plugin}.{method}: {e}"));
    serde_json::from_str(&out.result).expect("JSON")
}

#[test]
fn the_python_sdk_passes_its_own_tests() {
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo_root().join("sdk/python/tests"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn the_js_sdk_passes_its_own_tests() {
    let out = std::process::Command::new("node")
        .args(["--test", "--test-reporter=tap"])
        .arg(repo_root().join("sdk/js/test"))
        .output()
        .expect("node");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("# fail 0") && !report.contains("# pass 0"),
        "{report}"
    );
}

/// A port of ding-dong answers as the Rust ding-dong does: the same methods, the same results
/// for the same calls, its chime log kept across calls on its hot instance.
async fn answers_like_ding_dong(lang: Lang) {
    let name = format!("ding-dong-{}", suffix(lang));
    let (t, _dir) = runtime_with(lang, &name, |c| {
        let p = c.config.plugins.entry(name.clone()).or_default();
        p.config.insert("location".into(), "Lisbon".into());
    });
    let rust = TestConfig::new().start();
    t.runtime.discover().await.expect("plugins load");
    rust.runtime.discover().await.expect("plugins load");
    let port = t.runtime.plugin(&name).expect("loaded");
    let ours = rust.runtime.plugin("ding-dong").expect("loaded");
    let names = |p: &schedulezero::runtime::HandlerInfo| -> Vec<String> {
        p.methods.iter().map(|m| m.name.clone()).collect()
    };
    assert_eq!(names(port.info()), names(ours.info()), "the same methods");
    assert_eq!(port.info().version, "0.1.0");
    let quarter = port
        .info()
        .methods
        .iter()
        .find(|m| m.name == "play_quarter_chime")
        .expect("method");
    let schema = quarter.params_schema.clone().expect("a schema");
    let q = &schema["properties"]["quarter"];
    assert!(
        q["type"] == "integer" || q["anyOf"] == json!([{"type": "integer"}, {"type": "null"}]),
        "{schema}"
    );
    assert!(
        q["description"]
            .as_str()
            .unwrap()
            .starts_with("1, 2, 3 or 4"),
        "{schema}"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(port.manifest().config[0].key, "location");

    let at = "2026-11-30T14:45:00Z";
    for (method, params) in [
        ("play_quarter_chime", "{}"),
        ("play_quarter_chime", r#"{"quarter": 4}"#),
        ("play_hour_bongs", "{}"),
        ("play_hour_bongs", r#"{"hour": 0}"#),
        ("echo", r#"{"a": [1, null, "x"]}"#),
    ] {
        let ctx = scheduled_at("run-1", at);
        let a = call_with(&t, &name, method, params, &ctx).await;
        let b = call_with(&rust, "ding-dong", method, params, &ctx).await;
        assert_eq!(a, b, "{method} {params}");
    }
    let log = call_with(&t, &name, "get_chime_log", "", &JobContext::adhoc()).await;
    assert_eq!(
        log["entries"].as_array().map(Vec::len),
        Some(4),
        "the log lives on the hot instance: {log}"
    );
    assert_eq!(
        log["entries"][0]["scheduled_time"],
        "2026-11-30T14:45:00.000Z"
    );
    assert_eq!(log["entries"][2]["sound"], "hour 14: BONG BONG");

    let said = call_with(
        &t,
        &name,
        "announce_time",
        r#"{"greeting": "Boa tarde"}"#,
        &scheduled_at("r", at),
    )
    .await;
    assert_eq!(
        said["announcement"],
        "Boa tarde! Ding dong from Lisbon: it is 14:45 UTC."
    );

    for (params, message) in [
        (r#"{"quarter": 7}"#, "quarter must be 1 to 4, not 7"),
        (
            r#"{"quartr": 1}"#,
            "unknown field `quartr` (expected: quarter)",
        ),
        (
            r#"{"quarter": "two"}"#,
            "quarter: expected an integer, got \"two\"",
        ),
    ] {
        let adhoc = JobContext::adhoc();
        match t
            .runtime
            .invoke(&name, "play_quarter_chime", params, &adhoc)
            .await
        {
            Err(InvokeError::InvalidParams(m)) => assert!(m.contains(message), "{m}"),
            other => panic!("{params}: {other:?}"),
        }
    }
    match t
        .runtime
        .invoke(&name, "ring", "", &JobContext::adhoc())
        .await
    {
        Err(InvokeError::UnknownMethod(m)) => assert!(m.contains("has no method `ring`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ding_dong_py_answers_like_ding_dong() {
    answers_like_ding_dong(Lang::Python).await;
}

#[tokio::test]
async fn ding_dong_js_answers_like_ding_dong() {
    answers_like_ding_dong(Lang::JavaScript).await;
}

/// A misbehaving handler is stopped and reported, and the host goes on: a loop ends in
/// `timeout`, a memory bomb in `memory_limit`, an exception in a failure carrying the Python
/// traceback or the JavaScript stack; each error kind the SDK offers arrives as itself.
async fn misbehaving_handlers_are_stopped(lang: Lang) {
    let name = format!("misbehave-{}", suffix(lang));
    let (t, _dir) = runtime_with(lang, &name, |c| {
        let limits = &mut c.config.plugins.entry(name.clone()).or_default().limits;
        limits.timeout = Some(Duration::from_secs(1));
        limits.memory_mib = Some(96);
    });
    t.runtime.discover().await.expect("plugins load");
    let adhoc = JobContext::adhoc();
    let started = std::time::Instant::now();
    match t.runtime.invoke(&name, "spin", "", &adhoc).await {
        Err(e @ InvokeError::Timeout(_)) => assert_eq!(e.code(), "timeout"),
        other => panic!("spin: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    match t.runtime.invoke(&name, "grow_memory", "", &adhoc).await {
        Err(e @ InvokeError::MemoryLimit { .. }) => assert_eq!(e.code(), "memory_limit"),
        other => panic!("grow_memory: {other:?}"),
    }
    let raised = t
        .runtime
        .invoke(&name, "raise_error", r#"{"reading": -2.5}"#, &adhoc)
        .await;
    let Err(InvokeError::Failed(m)) = raised else {
        panic!("raise_error: {raised:?}")
    };
    match lang {
        Lang::Python => {
            assert!(
                m.starts_with(
                    "ValueError: a reading cannot be negative: -2.5\n\nTraceback (most recent call last):"
                ),
                "{m}"
            );
            assert!(
                m.contains("app.py\", line ") && m.contains("in raise_error"),
                "{m}"
            );
            assert!(m.contains("in check_reading"), "{m}");
        }
        Lang::JavaScript => {
            assert!(
                m.starts_with(
                    "RangeError: a reading cannot be negative: -2.5\n\nStack (most recent call first):\ncheckReading@app.js:"
                ),
                "{m}"
            );
            assert!(m.contains("raise_error"), "{m}");
        }
    }
    assert!(
        !m.contains("schedulezero"),
        "the SDK's own frames are left out: {m}"
    );
    for (kind, code) in [
        ("retryable", "handler_retryable"),
        ("failed", "handler_failed"),
        ("invalid_params", "invalid_params"),
        ("denied", "capability_denied"),
    ] {
        let params = json!({"kind": kind, "message": "as asked"}).to_string();
        let e = t
            .runtime
            .invoke(&name, "fail", &params, &adhoc)
            .await
            .expect_err("fails");
        assert_eq!(e.code(), code, "{kind}: {e}");
        assert!(e.to_string().contains("as asked"), "{e}");
    }
    let ok = call_with(&t, &name, "ok", "", &adhoc).await;
    assert_eq!(ok, json!({"ok": true}), "the plugin answers after all that");
    let m = t.runtime.plugin(&name).unwrap().metrics();
    assert!(
        m.instances_created >= 3,
        "each stopped call discarded its instance: {m:?}"
    );
}

#[tokio::test]
async fn misbehaving_python_handlers_are_stopped() {
    misbehaving_handlers_are_stopped(Lang::Python).await;
}

#[tokio::test]
async fn misbehaving_js_handlers_are_stopped() {
    misbehaving_handlers_are_stopped(Lang::JavaScript).await;
}

/// A handler gets the configuration values and secrets it asked for and the operator granted,
/// nothing else (and, in Python, the granted directory only).
async fn handlers_get_only_what_is_granted(lang: Lang) {
    let name = format!("misbehave-{}", suffix(lang));
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted words").unwrap();
    let secret = work.path().join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();

    let (bare, _d1) = runtime_with(lang, &name, |_| {});
    bare.runtime.discover().await.expect("plugins load");
    let manifest = bare.runtime.plugin(&name).unwrap().manifest().clone();
    let keys: Vec<_> = manifest
        .config
        .iter()
        .map(|c| (c.key.as_str(), c.secret))
        .collect();
    assert_eq!(keys, [("anything", false), ("token", true)]);
    let adhoc = JobContext::adhoc();
    let e = bare
        .runtime
        .invoke(&name, "use_secret", "", &adhoc)
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "capability_denied", "{e}");
    let cfg = call_with(
        &bare,
        &name,
        "read_config",
        r#"{"key": "anything"}"#,
        &adhoc,
    )
    .await;
    assert_eq!(cfg, json!({"value": null, "keys": []}));

    let (t, _d2) = runtime_with(lang, &name, |c| {
        let p = c.config.plugins.entry(name.clone()).or_default();
        p.config.insert("anything".into(), "a value".into());
        p.secrets
            .insert("token".into(), format!("file:{}", secret.display()));
        if lang == Lang::Python {
            p.directories
                .insert("data".into(), DirectoryGrant::Path(data.clone()));
        }
    });
    let cfg = call_with(&t, &name, "read_config", r#"{"key": "anything"}"#, &adhoc).await;
    assert_eq!(
        cfg,
        json!({"value": "a value", "keys": ["anything", "token"]})
    );
    let used = call_with(&t, &name, "use_secret", "", &adhoc).await;
    assert_eq!(used, json!({"length": 12}));
    if lang != Lang::Python {
        return;
    }
    let dirs: Vec<_> = manifest
        .directories
        .iter()
        .map(|d| (d.name.as_str(), d.access.as_str()))
        .collect();
    assert_eq!(dirs, [("data", "read-only"), ("scratch", "read-write")]);
    let e = bare
        .runtime
        .invoke(&name, "read_file", r#"{"path": "/data/note.txt"}"#, &adhoc)
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "capability_denied", "{e}");
    let read = call_with(
        &t,
        &name,
        "read_file",
        r#"{"path": "/data/note.txt"}"#,
        &adhoc,
    )
    .await;
    assert_eq!(read, json!({"text": "granted words"}));
    for outside in ["/data/../token", "/etc/passwd", "/scratch/x"] {
        let params = json!({"path": outside}).to_string();
        let e = t
            .runtime
            .invoke(&name, "read_file", &params, &adhoc)
            .await
            .expect_err(outside);
        assert_eq!(e.code(), "capability_denied", "{outside}: {e}");
    }
    let e = t
        .runtime
        .invoke(&name, "write_file", r#"{"name": "x", "text": "y"}"#, &adhoc)
        .await
        .expect_err("scratch not granted");
    assert_eq!(e.code(), "handler_failed", "{e}");
    let env = call_with(&t, &name, "read_env", "", &adhoc).await;
    assert_eq!(env, json!({"environ": {}}), "no environment");
}

#[tokio::test]
async fn python_handlers_get_only_what_is_granted() {
    handlers_get_only_what_is_granted(Lang::Python).await;
}

#[tokio::test]
async fn js_handlers_get_only_what_is_granted() {
    handlers_get_only_what_is_granted(Lang::JavaScript).await;
}

/// A schedule fires the ding-dong ports on a real host, and their results land in the
/// execution log.
#[tokio::test]
async fn a_schedule_fires_python_and_js_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    for lang in [Lang::Python, Lang::JavaScript] {
        let file = format!("ding-dong-{}.wasm", suffix(lang));
        std::fs::copy(lang_plugins(lang).join(&file), dir.path().join(&file)).unwrap();
        // The artifacts compiled for these files already, so that the host starts at once.
        copy_tree(&shared_cache(lang), cache.path());
    }
    let toml = format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\n",
        dir.path().display().to_string(),
        cache.path().display().to_string()
    );
    let host = TestHost::start_configured(&toml, &[]);
    for lang in [Lang::Python, Lang::JavaScript] {
        let handler = format!("ding-dong-{}", suffix(lang));
        let body = json!({"id": format!("chimes-{}", suffix(lang)), "handler": handler,
                          "method": "play_hour_bongs", "params": {"hour": 15},
                          "trigger": {"type": "interval", "seconds": 1}});
        let (status, created) = host.post("/api/v1/schedules", &body).await;
        assert_eq!(status, 201, "{created}");
    }
    for lang in [Lang::Python, Lang::JavaScript] {
        let id = format!("chimes-{}", suffix(lang));
        let done = host
            .wait_for(Duration::from_secs(90), || async {
                let runs = host.executions_of(&id).await;
                let ok: Vec<Value> = runs
                    .into_iter()
                    .filter(|r| r["status"] == "success")
                    .collect();
                (ok.len() >= 2).then_some(ok)
            })
            .await;
        let result = &done[0]["result"];
        assert_eq!(result["sound"], "BONG BONG BONG", "{}", done[0]);
        assert_eq!(result["strikes"], 3);
        let (status, plugin) = host
            .get(&format!("/api/v1/plugins/ding-dong-{}", suffix(lang)))
            .await;
        assert_eq!(status, 200, "{plugin}");
    }
}

/// Copies the files of `from` (recursively) into `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A handler's HTTP client (JavaScript's `fetch` over `wasi:http`, the Python SDK's
/// `schedulezero.http` over the contract's `outbound`) reaches a granted destination (a real
/// server on 127.0.0.1) and nothing else: a refused request fails the call with
/// `capability_denied`, naming what was refused.
async fn fetch_reaches_granted_destinations_only(lang: Lang) {
    let name = format!("misbehave-{}", suffix(lang));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { "hello from the vendor" }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let granted = format!("http://{addr}");
    let (t, _dir) = runtime_with(lang, &name, |c| {
        let p = c.config.plugins.entry(name.clone()).or_default();
        p.http = vec![granted.clone()];
    });
    let adhoc = JobContext::adhoc();
    let params = json!({"url": format!("{granted}/hello")}).to_string();
    let got = call_with(&t, &name, "fetch", &params, &adhoc).await;
    assert_eq!(got, json!({"status": 200, "body": "hello from the vendor"}));
    let used = t
        .runtime
        .invoke(&name, "fetch", &params, &adhoc)
        .await
        .expect("fetches again");
    let usage = &used.stats.measure.usage;
    assert_eq!(usage.http_requests, 1, "{usage:?}");

    let (bare, _d) = runtime_with(lang, &name, |_| {});
    for (rt, url) in [
        (&t, "http://127.0.0.2:9/elsewhere".to_owned()),
        (&bare, format!("{granted}/hello")),
    ] {
        let params = json!({"url": url}).to_string();
        let e = rt
            .runtime
            .invoke(&name, "fetch", &params, &adhoc)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), "capability_denied", "{url}: {e}");
        let text = e.to_string();
        match lang {
            Lang::JavaScript => {
                assert!(text.contains("NetworkError"), "what fetch said: {e}");
                assert!(text.contains("(host: "), "what the host refused: {e}");
            }
            Lang::Python => assert!(text.contains("is not granted to misbehave-py"), "{e}"),
        }
    }
    server.abort();
}

#[tokio::test]
async fn python_http_reaches_granted_destinations_only() {
    fetch_reaches_granted_destinations_only(Lang::Python).await;
}

#[tokio::test]
async fn js_fetch_reaches_granted_destinations_only() {
    fetch_reaches_granted_destinations_only(Lang::JavaScript).await;
}

/// `plugins new --lang python` and `--lang js` write a handler's folder with a copy of the SDK
/// whose own tests pass, which builds into a component the host runs (its configuration grant
/// read), as its README says.
#[test]
fn plugins_new_scaffolds_python_and_js_handlers() {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let root = repo_root();
    let run = |cmd: &mut std::process::Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    for (lang, name) in [("python", "acme-py"), ("js", "acme-js")] {
        let dir = work.path().join(name);
        let out = crate::support::run_cli(
            work.path(),
            &[
                "plugins",
                "new",
                name,
                "--lang",
                lang,
                "--dir",
                dir.to_str().unwrap(),
                "--description",
                "Greets people.",
            ],
            &[],
        );
        assert!(out.status.success(), "plugins new --lang {lang}: {out:?}");
        let sdk = dir.join("vendor/schedulezero-sdk");
        let wasm = plugins.join(format!("{name}.wasm"));
        if lang == "python" {
            for file in [
                "app.py",
                "test_app.py",
                "README.md",
                ".gitignore",
                "vendor/schedulezero-sdk/pyproject.toml",
            ] {
                assert!(dir.join(file).is_file(), "the scaffold has {file}");
            }
            let tests = run(
                std::process::Command::new("python3")
                    .args(["-m", "unittest", "-v"])
                    .current_dir(&dir)
                    .env("PYTHONPATH", &sdk)
                    .env("PYTHONDONTWRITEBYTECODE", "1"),
                "the scaffold's tests",
            );
            assert!(
                tests.contains("Ran 2 tests") && tests.contains("\nOK"),
                "{tests}"
            );
            run(
                std::process::Command::new("python3")
                    .args(["-m", "schedulezero.build", "."])
                    .arg("-o")
                    .arg(&wasm)
                    .current_dir(&dir)
                    .env("PYTHONPATH", &sdk)
                    .env("PYTHONDONTWRITEBYTECODE", "1"),
                "building the scaffold",
            );
        } else {
            for file in [
                "app.js",
                "test/app.test.mjs",
                "package.json",
                "README.md",
                ".gitignore",
                "vendor/schedulezero-sdk/build.mjs",
            ] {
                assert!(dir.join(file).is_file(), "the scaffold has {file}");
            }
            let package: Value =
                serde_json::from_slice(&std::fs::read(dir.join("package.json")).unwrap()).unwrap();
            assert_eq!(
                package["dependencies"]["@schedulezero/sdk"],
                "file:vendor/schedulezero-sdk"
            );
            // What `npm install` makes of that dependency, without the network: a link to the
            // copy, whose own dependencies are the repository's.
            std::fs::create_dir_all(dir.join("node_modules/@schedulezero")).unwrap();
            std::os::unix::fs::symlink(&sdk, dir.join("node_modules/@schedulezero/sdk")).unwrap();
            std::os::unix::fs::symlink(root.join("sdk/js/node_modules"), sdk.join("node_modules"))
                .unwrap();
            let tests = run(
                std::process::Command::new("node")
                    .args(["--test", "--test-reporter=tap", "test/"])
                    .current_dir(&dir),
                "the scaffold's tests",
            );
            assert!(
                tests.contains("# pass 2") && tests.contains("# fail 0"),
                "{tests}"
            );
            run(
                std::process::Command::new("node")
                    .arg(dir.join("node_modules/@schedulezero/sdk/build.mjs"))
                    .arg(".")
                    .arg("-o")
                    .arg(&wasm)
                    .current_dir(&dir),
                "building the scaffold",
            );
        }
        let got = greet_granted(work.path(), &plugins, name);
        assert_eq!(got["instance_calls"], 1);
    }
}

/// Calls a greeter's `greet` (as `plugins new` writes it) through `schedulezero invoke` on
/// `plugins`, with `greeting` granted, and checks the answer; returns it.
fn greet_granted(work: &std::path::Path, plugins: &std::path::Path, name: &str) -> Value {
    let config = work.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("[plugins.{name}.config]\ngreeting = \"Howdy\"\n"),
    )
    .unwrap();
    let out = crate::support::run_cli(
        work,
        &[
            "--config",
            config.to_str().unwrap(),
            "invoke",
            name,
            "greet",
            r#"{"name":"Ada","times":2}"#,
            "--plugins-dir",
            plugins.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "invoke {name}: {out:?}");
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(got["message"], "Howdy, Ada! Howdy, Ada!", "{got}");
    got
}

/// A large component that appears in a watched folder is compiled in the background: it is
/// listed as compiling, the watch goes on (a small plugin dropped meanwhile is loaded before the
/// large one is ready), and a call for it waits for it instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_component_compiles_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    c.config.cache_dir = Some(cache.path().to_owned());
    c.config.pool.watch_settle = Duration::from_millis(100);
    let t = c.start();
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();
    let place = |from: &std::path::Path, name: &str| {
        let partial = dir.path().join(format!(".{name}.partial"));
        std::fs::copy(from, &partial).unwrap();
        std::fs::rename(&partial, dir.path().join(format!("{name}.wasm"))).unwrap();
    };
    place(
        &lang_plugins(Lang::JavaScript).join("ding-dong-js.wasm"),
        "ding-dong-js",
    );
    let since = crate::support::eventually(
        "ding-dong-js listed as compiling",
        Duration::from_secs(10),
        || {
            t.runtime
                .compiling()
                .into_iter()
                .find(|c| c.name == "ding-dong-js")
                .map(|c| c.since)
        },
    )
    .await;
    assert!(
        t.runtime.plugin("ding-dong-js").is_none(),
        "not a plugin until it is loaded"
    );

    // The watch is not held up: a small plugin dropped now is taken up (listed as compiling,
    // or already loaded) while the large one compiles, and loads.
    place(
        &crate::support::builtin_plugins().join("ding-dong.wasm"),
        "ding-dong",
    );
    crate::support::eventually("ding-dong taken up", Duration::from_secs(10), || {
        let listed = t.runtime.compiling().iter().any(|c| c.name == "ding-dong");
        (listed || t.runtime.plugin("ding-dong").is_some()).then_some(())
    })
    .await;
    assert!(
        t.runtime
            .compiling()
            .iter()
            .any(|c| c.name == "ding-dong-js"),
        "ding-dong-js still compiling when ding-dong was taken up"
    );
    crate::support::eventually("ding-dong loaded", Duration::from_secs(60), || {
        t.runtime.plugin("ding-dong")
    })
    .await;

    // A call for it waits for it (up to the describe timeout; a slower machine gets the
    // retryable `plugin_compiling`, and the call made again succeeds).
    let ctx = scheduled_at("r", "2026-11-30T15:00:00Z");
    let first = t
        .runtime
        .invoke("ding-dong-js", "play_hour_bongs", "{}", &ctx)
        .await;
    let outcome = match first {
        Ok(out) => out,
        Err(e) => {
            assert_eq!(e.code(), "plugin_compiling", "{e}");
            assert!(e.is_retryable());
            assert!(e.to_string().contains(&since.to_rfc3339()), "{e}");
            crate::support::eventually("ding-dong-js loaded", Duration::from_secs(60), || {
                t.runtime.plugin("ding-dong-js")
            })
            .await;
            t.runtime
                .invoke("ding-dong-js", "play_hour_bongs", "{}", &ctx)
                .await
                .expect("loaded now")
        }
    };
    let result: Value = serde_json::from_str(&outcome.result).unwrap();
    assert_eq!(result["strikes"], 3);
    assert!(
        t.runtime.compiling().is_empty(),
        "{:?}",
        t.runtime.compiling()
    );
}

/// `bench runtime` measures ding-dong and its Python and JavaScript ports side by side (the
/// figures themselves are the benchmark's business; here, that they are measured and coherent).
#[tokio::test]
async fn bench_runtime_measures_the_languages_side_by_side() {
    lang_plugins(Lang::Python);
    lang_plugins(Lang::JavaScript);
    let f = crate::support::run_bench("runtime", Duration::from_secs(600)).await;
    assert_eq!(f["languages_not_built"], json!([]), "{f}");
    let langs = f["languages"].as_array().expect("languages");
    let names: Vec<&str> = langs
        .iter()
        .map(|l| l["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ding-dong", "ding-dong-py", "ding-dong-js"]);
    let num = |l: &Value, key: &str| l[key].as_f64().unwrap_or_else(|| panic!("{key} in {l}"));
    for l in langs {
        assert!(num(l, "compile_ms") > 0.0, "compiled on first sight: {l}");
        assert!(
            num(l, "cold_start_us_p50") > num(l, "instantiate_us_p50"),
            "{l}"
        );
        assert!(
            num(l, "cold_start_us_p50") > num(l, "hot_call_us_p50"),
            "{l}"
        );
        assert!(
            num(l, "cold_start_us_p99") >= num(l, "cold_start_us_p50"),
            "{l}"
        );
        assert!(
            num(l, "hot_call_us_p99") >= num(l, "hot_call_us_p50"),
            "{l}"
        );
        assert!(num(l, "instance_memory_mib") > 0.0, "{l}");
        assert!(num(l, "instance_rss_mib") >= 0.0, "{l}");
    }
    let (rust, py, js) = (&langs[0], &langs[1], &langs[2]);
    assert!(
        num(py, "component_mib") > num(js, "component_mib"),
        "an interpreter each: {f}"
    );
    assert!(
        num(js, "component_mib") > 10.0 * num(rust, "component_mib"),
        "{f}"
    );
    assert!(
        num(py, "instance_memory_mib") > num(rust, "instance_memory_mib"),
        "{f}"
    );
}

/// A handler written in TypeScript is type-checked (strict, against the SDK's types) and
/// transpiled by the JavaScript build, then runs as any other; a type error stops the build,
/// naming where.
#[test]
fn a_typescript_handler_is_type_checked_and_built() {
    let work = tempfile::tempdir().unwrap();
    let root = repo_root();
    let build = |dir: &std::path::Path, out: &std::path::Path| {
        std::process::Command::new("node")
            .arg(root.join("sdk/js/build.mjs"))
            .arg(dir)
            .arg("-o")
            .arg(out)
            .output()
            .expect("node")
    };
    let plugins = work.path().join("plugins");
    let wasm = plugins.join("greeter-ts.wasm");
    let built = build(&root.join("sdk/js/test/fixtures/greeter-ts"), &wasm);
    assert!(built.status.success(), "{built:?}");
    greet_granted(work.path(), &plugins, "greeter-ts");

    let bad = work.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("app.ts"),
        "import { handler, method, p } from \"@schedulezero/sdk\";\n\
         export default handler({ name: \"bad\", version: \"0.1.0\",\n\
         methods: { m: method(\"M.\", { n: p.integer() }, (_ctx, { n }) => n.toUpperCase()) } });\n",
    )
    .unwrap();
    let failed = build(&bad, &work.path().join("bad.wasm"));
    assert!(!failed.status.success(), "{failed:?}");
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        said.contains("TypeScript: 1 error(s)") && said.contains("app.ts:3:"),
        "{said}"
    );
    assert!(
        said.contains("'toUpperCase' does not exist on type 'number'"),
        "{said}"
    );
    assert!(!work.path().join("bad.wasm").exists());
}
