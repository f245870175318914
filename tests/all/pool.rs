//! The shared instance pool: a full pool evicts idle instances of other plugins, and a plugin's
//! own instance limit makes calls wait their turn instead of failing.

use schedulezero::config::PluginConfig;
use schedulezero_tests::TestConfig;

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
