//! The misbehave plugin: every method does something the host must stop or refuse. Each call
//! must end in its own typed error, and the host must go on serving the next call.

use std::time::Duration;

use crate::support::{TestConfig, TestRuntime};
use schedulezero::runtime::{InvokeError, JobContext};

fn sandbox() -> TestRuntime {
    let mut c = TestConfig::new();
    c.config.limits.timeout = Duration::from_millis(500);
    c.config.limits.memory_mib = 32;
    c.start()
}

/// The host still serves misbehave (with a hot or a fresh instance) and ding-dong.
async fn still_serving(t: &TestRuntime) {
    let ok = t.call("misbehave", "ok", "").await.unwrap();
    assert_eq!(ok["ok"], true);
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
}

#[tokio::test]
async fn spin_times_out_and_the_instance_is_discarded() {
    let t = sandbox();
    let e = t.call("misbehave", "spin", "").await.unwrap_err();
    assert_eq!(e, InvokeError::Timeout(Duration::from_millis(500)));
    assert_eq!(e.code(), "timeout");
    let m = t.runtime.plugin("misbehave").unwrap().metrics();
    assert_eq!((m.errors.timeout, m.instances_discarded), (1, 1));
    let out = t
        .runtime
        .invoke("misbehave", "ok", "", &JobContext::adhoc())
        .await
        .unwrap();
    assert!(
        out.stats.fresh_instance,
        "a timed-out instance is never reused"
    );
    still_serving(&t).await;
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_times_out_too() {
    let t = sandbox();
    let e = t
        .call("misbehave", "sleep", r#"{"ms": 60000}"#)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "timeout", "{e}");
    assert_eq!(
        t.call("misbehave", "sleep", r#"{"ms": 10}"#).await.unwrap(),
        10
    );
}

#[tokio::test]
async fn spinning_guests_do_not_starve_other_calls() {
    let t = sandbox();
    let spin = t.call("misbehave", "spin", "");
    let pings = async {
        let mut served = 0;
        for _ in 0..20 {
            t.call("ding-dong", "ping", "").await.unwrap();
            served += 1;
        }
        served
    };
    let (spun, served) = tokio::join!(spin, pings);
    assert_eq!(spun.unwrap_err().code(), "timeout");
    assert_eq!(served, 20);
}

#[tokio::test]
async fn grow_memory_hits_the_memory_limit() {
    let t = sandbox();
    let e = t.call("misbehave", "grow_memory", "").await.unwrap_err();
    assert_eq!(e, InvokeError::MemoryLimit { limit_mib: 32 });
    // Below the cap the same method succeeds.
    assert_eq!(
        t.call("misbehave", "grow_memory", r#"{"limit_mib": 4}"#)
            .await
            .unwrap(),
        4
    );
    still_serving(&t).await;
}

#[tokio::test]
async fn a_panic_message_reaches_the_error() {
    let t = sandbox();
    let e = t
        .call(
            "misbehave",
            "panic",
            r#"{"message": "the bells are cracked"}"#,
        )
        .await
        .unwrap_err();
    match &e {
        InvokeError::Trap(m) => {
            assert!(
                m.starts_with("plugin panicked: the bells are cracked (at "),
                "{m}"
            );
            assert!(m.contains("src/lib.rs"), "{m}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serving(&t).await;
}

#[tokio::test]
async fn trap_and_deep_recursion_are_traps() {
    let t = sandbox();
    let e = t.call("misbehave", "trap", "").await.unwrap_err();
    assert!(
        matches!(&e, InvokeError::Trap(m) if m.contains("unreachable")),
        "{e:?}"
    );
    let e = t.call("misbehave", "deep_recursion", "").await.unwrap_err();
    assert_eq!(e.code(), "trap", "{e:?}");
    assert_eq!(
        t.call("misbehave", "deep_recursion", r#"{"depth": 100}"#)
            .await
            .unwrap(),
        100
    );
    still_serving(&t).await;
}

#[tokio::test]
async fn huge_results_are_refused_with_their_size() {
    let t = sandbox();
    let e = t.call("misbehave", "huge_result", "").await.unwrap_err();
    // A JSON string of 4 MiB of `x`: the bytes plus two quotes.
    assert_eq!(
        e,
        InvokeError::ResultTooLarge {
            size: 4 * 1024 * 1024 + 2,
            limit: 1024 * 1024
        }
    );
    let small = t
        .call("misbehave", "huge_result", r#"{"bytes": 1000}"#)
        .await
        .unwrap();
    assert_eq!(small.as_str().unwrap().len(), 1000);
    // Refusing a result does not need a new instance.
    let out = t
        .runtime
        .invoke("misbehave", "ok", "", &JobContext::adhoc())
        .await
        .unwrap();
    assert!(!out.stats.fresh_instance);
}

#[tokio::test]
async fn noisy_output_is_captured_within_its_budget() {
    let mut c = TestConfig::new();
    c.config.limits.timeout = Duration::from_secs(30);
    let t = c.start();
    let out = t
        .runtime
        .invoke(
            "misbehave",
            "noisy",
            r#"{"lines": 20000}"#,
            &JobContext::adhoc(),
        )
        .await
        .unwrap();
    assert_eq!(out.result, "20000");
    let budget = t.runtime.config().limits.max_output_bytes;
    assert_eq!(out.stats.measure.output_bytes, budget);
    // 2 streams x 20000 lines of about 70 bytes: well over a megabyte, nearly all dropped.
    assert!(
        out.stats.measure.output_dropped_bytes > 2_000_000,
        "{:?}",
        out.stats
    );
    let quiet = t
        .runtime
        .invoke(
            "misbehave",
            "noisy",
            r#"{"lines": 1}"#,
            &JobContext::adhoc(),
        )
        .await
        .unwrap();
    assert_eq!(
        quiet.stats.measure.output_dropped_bytes, 0,
        "the budget is per call"
    );
    assert!(quiet.stats.measure.output_bytes > 100);
}

#[tokio::test]
async fn the_filesystem_is_not_there() {
    let t = sandbox();
    for path in ["/etc/passwd", "Cargo.toml", "/proc/self/environ"] {
        let params = serde_json::json!({ "path": path }).to_string();
        let e = t.call("misbehave", "read_file", &params).await.unwrap_err();
        assert_eq!(e.code(), "capability_denied", "{path}: {e}");
        assert!(e.to_string().contains(path), "{e}");
    }
    still_serving(&t).await;
}

#[tokio::test]
async fn the_host_environment_is_not_there() {
    // The test process has PATH and CARGO_MANIFEST_DIR (from cargo): none must be visible.
    let t = sandbox();
    for name in ["PATH", "HOME", "CARGO_MANIFEST_DIR"] {
        let params = serde_json::json!({ "name": name }).to_string();
        let e = t.call("misbehave", "read_env", &params).await.unwrap_err();
        assert_eq!(e.code(), "capability_denied", "{e}");
        assert!(e.to_string().contains("0 variables visible"), "{e}");
    }
}

#[tokio::test]
async fn the_network_is_refused() {
    let t = sandbox();
    // A real listener, so that the refusal comes from the sandbox and not from a closed port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let params = serde_json::json!({ "addr": addr }).to_string();
    let e = t
        .call("misbehave", "open_socket", &params)
        .await
        .unwrap_err();
    match &e {
        InvokeError::CapabilityDenied(m) => {
            assert!(m.contains(&format!("cannot connect to {addr}")), "{m}")
        }
        other => panic!("expected capability_denied, got {other:?}"),
    }
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "no connection may have reached the listener"
    );
    still_serving(&t).await;
}

#[tokio::test]
async fn fuel_meters_and_stops_runaway_guests() {
    let mut c = TestConfig::new();
    c.config.limits.fuel = Some(50_000_000);
    c.config.limits.timeout = Duration::from_secs(20);
    let t = c.start();
    let e = t.call("misbehave", "spin", "").await.unwrap_err();
    assert_eq!(e, InvokeError::FuelExhausted(50_000_000));
    let out = t
        .runtime
        .invoke("misbehave", "ok", "", &JobContext::adhoc())
        .await
        .unwrap();
    let used = out.stats.measure.fuel_used.unwrap();
    assert!(used > 0 && used < 50_000_000, "{used}");
}

#[tokio::test]
async fn every_misbehave_method_is_exercised() {
    // Guards the list above: a new misbehaving method needs a test of its own.
    let t = sandbox();
    let report = t.runtime.load("misbehave").await.unwrap();
    let names: Vec<&str> = report
        .plugin
        .info()
        .methods
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "ok",
            "spin",
            "grow_memory",
            "panic",
            "trap",
            "deep_recursion",
            "huge_result",
            "noisy",
            "read_file",
            "read_env",
            "open_socket",
            // Exercised in capabilities.rs: the refusals of outbound HTTP and directories.
            "fetch",
            "http_raw",
            "write_file",
            "leak_secret",
            "sleep"
        ]
    );
    let m = report.plugin.metrics();
    assert_eq!(
        m.instances_created, 1,
        "describe ran on one instance, kept hot: {m:?}"
    );
}

#[tokio::test]
async fn concurrent_calls_keep_their_output_apart() {
    // Two calls on two instances of one plugin, their writes interleaved by the pauses: each
    // call's output budget and count are its own.
    let mut c = TestConfig::new();
    c.config.limits.timeout = Duration::from_secs(30);
    let t = c.start();
    t.runtime.load("misbehave").await.unwrap();
    let t = &t;
    let noisy = |lines: u32| {
        let params = serde_json::json!({ "lines": lines, "pause_ms": 20 }).to_string();
        async move {
            t.runtime
                .invoke("misbehave", "noisy", &params, &JobContext::adhoc())
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(noisy(4), noisy(6));
    // Lines 0 to 9 are 65 bytes with their newline, one on stdout and one on stderr.
    let bytes = |lines: usize| lines * 2 * 65;
    assert_eq!(a.stats.measure.output_bytes, bytes(4), "{:?}", a.stats);
    assert_eq!(b.stats.measure.output_bytes, bytes(6), "{:?}", b.stats);
    assert_eq!(
        a.stats.measure.output_dropped_bytes + b.stats.measure.output_dropped_bytes,
        0
    );
}
