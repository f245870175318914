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
