//! The shared instance pool: a full pool evicts idle instances of other plugins, and a plugin's
//! own instance limit makes calls wait their turn instead of failing.

use crate::support::TestConfig;
use schedulezero::config::{Allocator, PluginConfig};
use schedulezero::runtime::AllocatorKind;

#[tokio::test]
async fn a_full_pool_evicts_idle_instances() {
    let mut c = TestConfig::new();
    c.config.pool.max_instances = 1;
    let t = c.start();
    for _ in 0..3 {
        assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
        assert_eq!(t.call("misbehave", "ok", "").await.unwrap()["ok"], true);
    }
    let dd = t.runtime.plugin("ding-dong").unwrap().metrics();
    let mb = t.runtime.plugin("misbehave").unwrap().metrics();
    // Each switch of plugin needed the one slot: the other plugin's idle instance was evicted.
    assert!(
        dd.instances_created >= 3 && mb.instances_created >= 3,
        "{dd:?} {mb:?}"
    );
    assert!(dd.idle_instances + mb.idle_instances <= 1);
}

#[tokio::test]
async fn concurrent_calls_share_a_plugin_limit() {
    let mut c = TestConfig::new();
    c.config.plugins.insert(
        "ding-dong".into(),
        PluginConfig {
            max_instances: Some(2),
            ..Default::default()
        },
    );
    let t = c.start();
    let calls = (0..16).map(|i| {
        let t = &t;
        async move { t.call("ding-dong", "echo", &i.to_string()).await }
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), serde_json::json!(i));
    }
    let m = t.runtime.plugin("ding-dong").unwrap().metrics();
    assert!(m.instances_created <= 2, "{m:?}");
    assert_eq!(m.calls, 16);
}

#[tokio::test]
async fn a_full_pool_makes_calls_wait_not_fail() {
    let mut c = TestConfig::new();
    c.config.pool.max_instances = 1;
    let t = c.start();
    t.runtime.load("misbehave").await.unwrap();
    let sleeps = (0..3).map(|_| t.call("misbehave", "sleep", r#"{"ms": 50}"#));
    for r in futures::future::join_all(sleeps).await {
        assert_eq!(r.unwrap(), 50);
    }
    let m = t.runtime.plugin("misbehave").unwrap().metrics();
    assert_eq!(
        m.instances_created, 1,
        "one slot, one instance, three calls in turn: {m:?}"
    );
    assert_eq!(m.errors.total, 0);
}

#[tokio::test]
async fn instances_allocated_on_demand_behave_the_same() {
    let mut c = TestConfig::new();
    c.config.pool.allocator = Allocator::OnDemand;
    c.config.limits.memory_mib = 16;
    let t = c.start();
    assert_eq!(t.runtime.allocator(), AllocatorKind::OnDemand);
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
    let e = t.call("misbehave", "grow_memory", "").await.unwrap_err();
    assert_eq!(e.code(), "memory_limit");
    assert_eq!(t.call("misbehave", "ok", "").await.unwrap()["ok"], true);
}

#[tokio::test]
async fn the_pooling_allocator_can_be_required() {
    let mut c = TestConfig::new();
    c.config.pool.allocator = Allocator::Pooling;
    let t = c.start();
    assert_eq!(t.runtime.allocator(), AllocatorKind::Pooling);
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
}

/// A component built by componentize-py (CPython linked with libc, the WASI adapters and shims:
/// 14 core module instances, where a Rust component has one) loads and runs under the required
/// pooling allocator, several instances of it alive at once.
#[tokio::test]
async fn a_componentize_py_component_runs_in_the_pool() {
    let work = tempfile::tempdir().unwrap();
    // The contract with a world that leaves `fleet` out: componentize-py imports every
    // interface of its world, used or not, and an unrequested `fleet` import is refused.
    let wit = work.path().join("wit");
    std::fs::create_dir(&wit).unwrap();
    let contract =
        std::fs::read_to_string(crate::support::repo_root().join("wit/handler.wit")).unwrap();
    std::fs::write(
        wit.join("handler.wit"),
        format!("{contract}\nworld basic {{\n    import log;\n    import config;\n    export handler;\n}}\n"),
    )
    .unwrap();
    let app = work.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("app.py"), PY_HELLO).unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let built = tokio::process::Command::new("componentize-py")
        .args([
            "--wit-path",
            wit.to_str().unwrap(),
            "--world",
            "basic",
            "componentize",
            "app",
        ])
        .arg("-o")
        .arg(plugins.join("py-hello.wasm"))
        .current_dir(&app)
        .kill_on_drop(true)
        .output();
    let built = tokio::time::timeout(std::time::Duration::from_secs(180), built)
        .await
        .expect("componentize-py finishes within 3 minutes")
        .expect("componentize-py (tests/requirements.txt) is on PATH");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let mut c = TestConfig::new();
    c.config.plugins_dir = plugins;
    c.config.pool.allocator = Allocator::Pooling;
    c.config.pool.max_instances = 8;
    let t = c.start();
    assert_eq!(t.runtime.allocator(), AllocatorKind::Pooling);
    let params: Vec<String> = (0..4).map(|i| format!("{{\"n\": {i}}}")).collect();
    let calls = params.iter().map(|p| t.call("py-hello", "sleep_ping", p));
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let v = r.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(v, serde_json::json!({"pong": true, "n": i}));
    }
    let m = t.runtime.plugin("py-hello").unwrap().metrics();
    assert!(m.instances_created >= 2, "calls ran at once: {m:?}");
}

/// A handler written against the generated bindings (the Python SDK's job later): `sleep_ping`
/// holds its instance a moment so that calls at once need instances of their own.
const PY_HELLO: &str = r#"
import json, time
from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err


class Handler(exports.Handler):
    def describe(self) -> types.HandlerInfo:
        return types.HandlerInfo(
            name="py-hello", version="0.1.0", description="A Python handler.",
            methods=[types.MethodInfo(name="sleep_ping", description="Answers pong.", params_schema=None)],
        )

    def invoke(self, ctx: types.JobContext, method: str, params: str) -> str:
        if method != "sleep_ping":
            raise Err(types.HandlerError_UnknownMethod(method))
        time.sleep(0.2)
        return json.dumps({"pong": True, "n": json.loads(params)["n"]})
"#;
