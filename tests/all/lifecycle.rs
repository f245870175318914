//! A plugin's lifecycle on a real runtime with short idle timeouts: one load shared by concurrent
//! first calls, cooling with a call in flight and revival, unloading when idle, instance reuse on
//! and off, the queue bound, and metrics that follow the calls.

use std::time::Duration;

use crate::support::{TestConfig, TestRuntime, eventually};
use schedulezero::config::PluginConfig;
use schedulezero::runtime::{EventKind, InvokeError, PluginState};

fn with_plugin(name: &str, settings: PluginConfig) -> TestRuntime {
    let mut c = TestConfig::new();
    c.config.plugins.insert(name.into(), settings);
    c.start()
}

fn events_of(t: &TestRuntime, kind: EventKind) -> usize {
    t.runtime
        .events(0, usize::MAX)
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

#[tokio::test]
async fn concurrent_first_calls_share_one_load() {
    let t = TestConfig::new().start();
    let plugin = t.runtime.load("ding-dong").await.unwrap().plugin;
    plugin.park();
    assert_eq!(plugin.state(), PluginState::Cold);
    let calls = (0..8).map(|i| {
        let t = &t;
        async move { t.call("ding-dong", "echo", &i.to_string()).await }
    });
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.unwrap(), serde_json::json!(i));
    }
    let m = plugin.metrics();
    assert_eq!(m.state, PluginState::Hot);
    assert_eq!(m.cold_starts, 1, "one load for eight callers: {m:?}");
    assert_eq!(events_of(&t, EventKind::Warmed), 1);
    assert_eq!(m.cold_start_latency.count, 1);
    assert_eq!(m.calls, 8);
}

#[tokio::test]
async fn an_idle_plugin_cools_down_and_releases_its_instances() {
    let t = with_plugin(
        "ding-dong",
        PluginConfig {
            idle_timeout: Some(Duration::from_millis(150)),
            ..Default::default()
        },
    );
    let _governor = t.runtime.start_governor();
    t.call("ding-dong", "ping", "").await.unwrap();
    let plugin = t.runtime.plugin("ding-dong").unwrap();
    assert_eq!(plugin.state(), PluginState::Hot);
    assert_eq!(plugin.instances().len(), 1);

    eventually("the plugin to go cold", Duration::from_secs(5), || {
        (plugin.state() == PluginState::Cold).then_some(())
    })
    .await;
    let m = plugin.metrics();
    assert_eq!((m.live_instances, m.idle_instances, m.unloads), (0, 0, 1));
    assert!(plugin.instances().is_empty());

    // The next call is a true cold start from the artifact.
    let out = t
        .runtime
        .invoke(
            "ding-dong",
            "ping",
            "",
            &schedulezero::runtime::JobContext::adhoc(),
        )
        .await
        .unwrap();
    assert!(out.stats.cold_start && out.stats.fresh_instance);
    assert_eq!(plugin.state(), PluginState::Hot);
}

#[tokio::test]
async fn a_cooling_plugin_drains_its_calls_and_a_new_call_revives_it() {
    let t = with_plugin(
        "misbehave",
        PluginConfig {
            idle_timeout: Some(Duration::from_millis(150)),
            ..Default::default()
        },
    );
    let _governor = t.runtime.start_governor();
    t.runtime.load("misbehave").await.unwrap();
    let plugin = t.runtime.plugin("misbehave").unwrap();

    // A call that outlasts the idle timeout: the plugin cools with it in flight.
    let long = t.call("misbehave", "sleep", r#"{"ms": 1500}"#);
    let watch = async {
        eventually("cooling", Duration::from_secs(3), || {
            (plugin.state() == PluginState::Cooling).then_some(())
        })
        .await;
        let busy = plugin.instances();
        assert_eq!(busy.len(), 1, "idle instances are dropped when cooling");
        assert_eq!(busy[0].state, "busy");
        // A call while cooling takes it back to hot without a load.
        let before = plugin.metrics().cold_starts;
        assert_eq!(t.call("misbehave", "ok", "").await.unwrap()["ok"], true);
        let m = plugin.metrics();
        assert_eq!(m.state, PluginState::Hot);
        assert_eq!((m.revivals, m.cold_starts), (1, before));
    };
    let (long, ()) = tokio::join!(long, watch);
    assert_eq!(long.unwrap(), 1500);
    // The long call kept the plugin busy past the timeout again after the revival: it may
    // have cooled a second time, which the long call's end then drained.
    assert!(events_of(&t, EventKind::Cooling) >= 1);
    assert_eq!(events_of(&t, EventKind::Revived), 1);

    // Now idle for good: cooling ends in cold, with nothing left alive.
    eventually("cold", Duration::from_secs(5), || {
        (plugin.state() == PluginState::Cold).then_some(())
    })
    .await;
    assert_eq!(plugin.metrics().live_instances, 0);
}

#[tokio::test]
async fn the_last_call_of_a_cooling_plugin_takes_it_to_cold() {
    let t = with_plugin(
        "misbehave",
        PluginConfig {
            idle_timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        },
    );
    let _governor = t.runtime.start_governor();
    t.runtime.load("misbehave").await.unwrap();
    let plugin = t.runtime.plugin("misbehave").unwrap();
    let long = t.call("misbehave", "sleep", r#"{"ms": 1200}"#);
    let watch = eventually("cooling", Duration::from_secs(3), || {
        (plugin.state() == PluginState::Cooling).then_some(())
    });
    let (long, ()) = tokio::join!(long, watch);
    assert_eq!(long.unwrap(), 1200);
    // The call's end drained the plugin: cold at once, not at the next sweep.
    assert_eq!(plugin.state(), PluginState::Cold);
    assert!(plugin.instances().is_empty());
}

#[tokio::test]
async fn instances_are_reused_or_made_fresh_per_call_as_configured() {
    for reuse in [true, false] {
        let t = with_plugin(
            "ding-dong",
            PluginConfig {
                reuse_instances: Some(reuse),
                ..Default::default()
            },
        );
        let plugin = t.runtime.load("ding-dong").await.unwrap().plugin;
        for _ in 0..3 {
            t.call("ding-dong", "ping", "").await.unwrap();
        }
        let m = plugin.metrics();
        if reuse {
            // The instance that answered describe() serves all three calls.
            assert_eq!((m.instances_created, m.warm_starts), (1, 3), "{m:?}");
            assert_eq!(plugin.instances()[0].calls, 3);
            assert_eq!(m.live_instances, 1);
        } else {
            assert_eq!((m.instances_created, m.warm_starts), (4, 0), "{m:?}");
            assert_eq!(m.instantiate_latency.count, 3);
            assert_eq!(m.live_instances, 0);
        }
    }
}

#[tokio::test]
async fn calls_over_the_queue_bound_fail_clearly() {
    let t = with_plugin(
        "misbehave",
        PluginConfig {
            max_instances: Some(1),
            max_queued: Some(2),
            ..Default::default()
        },
    );
    t.runtime.load("misbehave").await.unwrap();
    let plugin = t.runtime.plugin("misbehave").unwrap();
    // Long enough that the queue fills while it runs, even on a busy machine.
    let first = t.call("misbehave", "sleep", r#"{"ms": 2000}"#);
    let rest = async {
        eventually("the first call to run", Duration::from_secs(3), || {
            (plugin.metrics().busy_instances == 1).then_some(())
        })
        .await;
        let queued =
            futures::future::join(t.call("misbehave", "ok", ""), t.call("misbehave", "ok", ""));
        let refused = async {
            eventually("two queued calls", Duration::from_secs(3), || {
                (plugin.metrics().queued_calls == 2).then_some(())
            })
            .await;
            t.call("misbehave", "ok", "").await
        };
        futures::future::join(queued, refused).await
    };
    let (first, ((a, b), refused)) = tokio::join!(first, rest);
    assert_eq!(first.unwrap(), 2000);
    assert!(a.is_ok() && b.is_ok(), "queued calls run in turn");
    let err = refused.unwrap_err();
    assert!(matches!(err, InvokeError::QueueFull { .. }), "{err:?}");
    assert_eq!(err.code(), "queue_full");
    assert!(err.is_retryable());
    let m = plugin.metrics();
    assert_eq!((m.errors.queue_full, m.queued_calls), (1, 0));
    assert_eq!(m.last_error.map(|e| e.code).as_deref(), Some("queue_full"));
}

#[tokio::test]
async fn metrics_follow_the_calls() {
    let t = TestConfig::new().start();
    t.runtime.load("misbehave").await.unwrap();
    let plugin = t.runtime.plugin("misbehave").unwrap();
    let before = plugin.metrics();

    let slow = t.call("misbehave", "sleep", r#"{"ms": 800}"#);
    let look = async {
        eventually("a busy instance", Duration::from_secs(3), || {
            plugin.instances().into_iter().find(|i| i.state == "busy")
        })
        .await
    };
    let (slow, busy) = tokio::join!(slow, look);
    slow.unwrap();
    assert_eq!(busy.plugin, "misbehave");
    assert_eq!(busy.version, plugin.info().version);
    assert!(busy.id.starts_with("misbehave#"));

    let err = t
        .call("misbehave", "panic", r#"{"message": "boom"}"#)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "trap");
    t.call("misbehave", "grow_memory", r#"{"limit_mib": 4}"#)
        .await
        .unwrap();

    let m = plugin.metrics();
    assert_eq!(m.calls, before.calls + 3);
    assert_eq!(m.call_latency.count, before.call_latency.count + 3);
    assert!(m.call_latency.max_us >= 800_000.0, "{:?}", m.call_latency);
    assert_eq!((m.errors.trap, m.errors.total), (1, 1));
    assert_eq!(m.last_error.as_ref().map(|e| e.code.as_str()), Some("trap"));
    assert_eq!(m.instances_discarded, 1);
    // The instance that grew its memory is alive and says so.
    let instances = plugin.instances();
    let grown = instances
        .iter()
        .find(|i| i.memory_peak_bytes >= 4 << 20)
        .expect("an instance that grew by 4 MiB");
    assert!(grown.calls >= 1 && grown.busy_seconds > 0.0, "{grown:?}");
    assert!(grown.cold_start_us >= 0.0);
    assert!(m.memory_bytes >= grown.memory_bytes);
}
