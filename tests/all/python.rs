//! Handlers written in Python with the SDK in `sdk/python`: the example plugins `ding-dong-py`
//! (ScheduleZero's ding-dong handler's methods, moved over) and `misbehave-py`, built by the test
//! run with componentize-py, described, called, scheduled through a real host, given and refused
//! what they ask for, and stopped when they misbehave. The SDK's own tests run here too.

use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::host::TestHost;
use crate::support::{TestConfig, TestRuntime, python_plugins, repo_root};
use schedulezero::config::DirectoryGrant;
use schedulezero::runtime::{InvokeError, JobContext};

/// A plugins folder with copies of the named Python example components.
fn python_dir(names: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in names {
        let file = format!("{name}.wasm");
        std::fs::copy(python_plugins().join(&file), dir.path().join(&file))
            .expect("copy a component");
    }
    dir
}

/// Where the tests' hosts keep these components' compiled artifacts: shared, so that each is
/// compiled once per run, not once per test (seconds each).
fn shared_cache() -> std::path::PathBuf {
    python_plugins().join("artifacts")
}

/// A runtime over a folder with the named Python examples.
fn runtime_with(names: &[&str], adjust: impl FnOnce(&mut TestConfig)) -> (TestRuntime, TempDir) {
    let dir = python_dir(names);
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    c.config.cache_dir = Some(shared_cache());
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

/// The Python port answers as the Rust ding-dong does: the same methods, the same results for the
/// same calls, its chime log kept across calls on its hot instance.
#[tokio::test]
async fn ding_dong_py_answers_like_ding_dong() {
    let (t, _dir) = runtime_with(&["ding-dong-py"], |c| {
        c.config
            .plugins
            .entry("ding-dong-py".into())
            .or_default()
            .config
            .insert("location".into(), "Lisbon".into());
    });
    let rust = TestConfig::new().start();
    t.runtime.discover().await.expect("plugins load");
    rust.runtime.discover().await.expect("plugins load");
    let py = t.runtime.plugin("ding-dong-py").expect("loaded");
    let ours = rust.runtime.plugin("ding-dong").expect("loaded");
    let names = |p: &schedulezero::runtime::HandlerInfo| -> Vec<String> {
        p.methods.iter().map(|m| m.name.clone()).collect()
    };
    assert_eq!(names(py.info()), names(ours.info()), "the same methods");
    assert_eq!(py.info().version, "0.1.0");
    let quarter = py
        .info()
        .methods
        .iter()
        .find(|m| m.name == "play_quarter_chime")
        .expect("method");
    let schema = quarter.params_schema.clone().expect("a schema");
    assert_eq!(
        schema["properties"]["quarter"]["anyOf"],
        json!([{"type": "integer"}, {"type": "null"}])
    );
    assert!(
        schema["properties"]["quarter"]["description"]
            .as_str()
            .unwrap()
            .starts_with("1, 2, 3 or 4")
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(py.manifest().config[0].key, "location");

    let at = "2026-11-30T14:45:00Z";
    for (method, params) in [
        ("play_quarter_chime", "{}"),
        ("play_quarter_chime", r#"{"quarter": 4}"#),
        ("play_hour_bongs", "{}"),
        ("play_hour_bongs", r#"{"hour": 0}"#),
        ("echo", r#"{"a": [1, null, "x"]}"#),
    ] {
        let ctx = scheduled_at("run-1", at);
        let a = call_with(&t, "ding-dong-py", method, params, &ctx).await;
        let b = call_with(&rust, "ding-dong", method, params, &ctx).await;
        let strip = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.remove("log_length");
            }
            v
        };
        assert_eq!(strip(a), strip(b), "{method} {params}");
    }
    let log = call_with(
        &t,
        "ding-dong-py",
        "get_chime_log",
        "",
        &JobContext::adhoc(),
    )
    .await;
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
        "ding-dong-py",
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
        (r#"{"quarter": "two"}"#, "quarter: "),
    ] {
        match t
            .runtime
            .invoke(
                "ding-dong-py",
                "play_quarter_chime",
                params,
                &JobContext::adhoc(),
            )
            .await
        {
            Err(InvokeError::InvalidParams(m)) => assert!(m.contains(message), "{m}"),
            other => panic!("{params}: {other:?}"),
        }
    }
    match t
        .runtime
        .invoke("ding-dong-py", "ring", "", &JobContext::adhoc())
        .await
    {
        Err(InvokeError::UnknownMethod(m)) => assert!(m.contains("has no method `ring`"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A misbehaving Python handler is stopped and reported, and the host goes on: a loop ends in
/// `timeout`, a memory bomb in `memory_limit`, an exception in a failure carrying the traceback.
#[tokio::test]
async fn misbehaving_python_handlers_are_stopped() {
    let (t, _dir) = runtime_with(&["misbehave-py"], |c| {
        let limits = &mut c
            .config
            .plugins
            .entry("misbehave-py".into())
            .or_default()
            .limits;
        limits.timeout = Some(Duration::from_secs(1));
        limits.memory_mib = Some(96);
    });
    t.runtime.discover().await.expect("plugins load");
    let adhoc = JobContext::adhoc();
    let started = std::time::Instant::now();
    match t.runtime.invoke("misbehave-py", "spin", "", &adhoc).await {
        Err(e @ InvokeError::Timeout(_)) => assert_eq!(e.code(), "timeout"),
        other => panic!("spin: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    match t
        .runtime
        .invoke("misbehave-py", "grow_memory", "", &adhoc)
        .await
    {
        Err(e @ InvokeError::MemoryLimit { .. }) => assert_eq!(e.code(), "memory_limit"),
        other => panic!("grow_memory: {other:?}"),
    }
    match t
        .runtime
        .invoke(
            "misbehave-py",
            "raise_error",
            r#"{"reading": -2.5}"#,
            &adhoc,
        )
        .await
    {
        Err(InvokeError::Failed(m)) => {
            assert!(m.starts_with("ValueError: a reading cannot be negative: -2.5\n\nTraceback (most recent call last):"), "{m}");
            assert!(
                m.contains("app.py\", line ")
                    && m.contains("in raise_error")
                    && m.contains("in check_reading"),
                "{m}"
            );
            assert!(
                !m.contains("schedulezero/"),
                "the SDK's own frames are left out: {m}"
            );
        }
        other => panic!("raise_error: {other:?}"),
    }
    for (kind, code) in [
        ("retryable", "handler_retryable"),
        ("failed", "handler_failed"),
        ("invalid_params", "invalid_params"),
        ("denied", "capability_denied"),
    ] {
        let params = json!({"kind": kind, "message": "as asked"}).to_string();
        let e = t
            .runtime
            .invoke("misbehave-py", "fail", &params, &adhoc)
            .await
            .expect_err("fails");
        assert_eq!(e.code(), code, "{kind}: {e}");
        assert!(e.to_string().contains("as asked"), "{e}");
    }
    let ok = call_with(&t, "misbehave-py", "ok", "", &adhoc).await;
    assert_eq!(ok, json!({"ok": true}), "the plugin answers after all that");
    let m = t.runtime.plugin("misbehave-py").unwrap().metrics();
    assert!(
        m.instances_created >= 3,
        "each stopped call discarded its instance: {m:?}"
    );
}

/// A Python handler gets what it asked for and the operator granted, nothing else.
#[tokio::test]
async fn python_handlers_get_only_what_is_granted() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted words").unwrap();
    let secret = work.path().join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();

    let (bare, _d1) = runtime_with(&["misbehave-py"], |_| {});
    bare.runtime.discover().await.expect("plugins load");
    let manifest = bare
        .runtime
        .plugin("misbehave-py")
        .unwrap()
        .manifest()
        .clone();
    let keys: Vec<_> = manifest
        .config
        .iter()
        .map(|c| (c.key.as_str(), c.secret))
        .collect();
    assert_eq!(keys, [("anything", false), ("token", true)]);
    let dirs: Vec<_> = manifest
        .directories
        .iter()
        .map(|d| (d.name.as_str(), d.access.as_str()))
        .collect();
    assert_eq!(dirs, [("data", "read-only"), ("scratch", "read-write")]);
    let adhoc = JobContext::adhoc();
    let e = bare
        .runtime
        .invoke("misbehave-py", "use_secret", "", &adhoc)
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "capability_denied", "{e}");
    let e = bare
        .runtime
        .invoke(
            "misbehave-py",
            "read_file",
            r#"{"path": "/data/note.txt"}"#,
            &adhoc,
        )
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "capability_denied", "{e}");
    let cfg = call_with(
        &bare,
        "misbehave-py",
        "read_config",
        r#"{"key": "anything"}"#,
        &adhoc,
    )
    .await;
    assert_eq!(cfg, json!({"value": null, "keys": []}));

    let (t, _d2) = runtime_with(&["misbehave-py"], |c| {
        let p = c.config.plugins.entry("misbehave-py".into()).or_default();
        p.config.insert("anything".into(), "a value".into());
        p.secrets
            .insert("token".into(), format!("file:{}", secret.display()));
        p.directories
            .insert("data".into(), DirectoryGrant::Path(data.clone()));
    });
    let cfg = call_with(
        &t,
        "misbehave-py",
        "read_config",
        r#"{"key": "anything"}"#,
        &adhoc,
    )
    .await;
    assert_eq!(
        cfg,
        json!({"value": "a value", "keys": ["anything", "token"]})
    );
    let used = call_with(&t, "misbehave-py", "use_secret", "", &adhoc).await;
    assert_eq!(used, json!({"length": 12}));
    let read = call_with(
        &t,
        "misbehave-py",
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
            .invoke("misbehave-py", "read_file", &params, &adhoc)
            .await
            .expect_err(outside);
        assert_eq!(e.code(), "capability_denied", "{outside}: {e}");
    }
    let e = t
        .runtime
        .invoke(
            "misbehave-py",
            "write_file",
            r#"{"name": "x", "text": "y"}"#,
            &adhoc,
        )
        .await
        .expect_err("scratch not granted");
    assert_eq!(e.code(), "handler_failed", "{e}");
    let env = call_with(&t, "misbehave-py", "read_env", "", &adhoc).await;
    assert_eq!(env, json!({"environ": {}}), "no environment");
}

/// A schedule fires a Python handler on a real host, and its result lands in the execution log.
#[tokio::test]
async fn a_schedule_fires_a_python_handler() {
    let dir = python_dir(&["ding-dong-py"]);
    let toml = format!(
        "plugins_dir = {:?}\ncache_dir = {:?}\n",
        dir.path().display().to_string(),
        shared_cache().display().to_string()
    );
    let host = TestHost::start_configured(&toml, &[]);
    let body = json!({"id": "chimes", "handler": "ding-dong-py", "method": "play_hour_bongs",
                      "params": {"hour": 15}, "trigger": {"type": "interval", "seconds": 1}});
    let (status, created) = host.post("/api/v1/schedules", &body).await;
    assert_eq!(status, 201, "{created}");
    let done = host
        .wait_for(Duration::from_secs(60), || async {
            let runs = host.executions_of("chimes").await;
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
    let (status, plugin) = host.get("/api/v1/plugins/ding-dong-py").await;
    assert_eq!(status, 200, "{plugin}");
    assert_eq!(plugin["name"], "ding-dong-py");
}
