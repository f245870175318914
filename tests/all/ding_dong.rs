//! The example handler end to end: describe, every method, instance reuse and configuration.

use crate::support::TestConfig;
use schedulezero::runtime::{InvokeError, JobContext};
use serde_json::json;

#[tokio::test]
async fn describe_lists_every_method_with_schemas() {
    let t = TestConfig::new().start();
    let report = t.runtime.load("ding-dong").await.unwrap();
    let info = report.plugin.info();
    assert_eq!(info.name, "ding-dong");
    assert_eq!(info.version, "0.1.0");
    assert!(info.description.contains("chime"), "{}", info.description);
    let names: Vec<&str> = info.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ping",
            "announce_time",
            "play_quarter_chime",
            "play_hour_bongs",
            "get_chime_log",
            "clear_log",
            "echo"
        ]
    );
    let quarter = info
        .methods
        .iter()
        .find(|m| m.name == "play_quarter_chime")
        .unwrap();
    let schema = quarter.params_schema.as_ref().unwrap();
    assert!(schema["properties"]["quarter"].is_object(), "{schema}");
}

#[tokio::test]
async fn ping_echo_and_chimes() {
    let t = TestConfig::new().start();
    let pong = t.call("ding-dong", "ping", "").await.unwrap();
    assert_eq!(pong["pong"], true);
    assert_eq!(pong["handler"], "ding-dong");

    let value = json!({"nested": {"list": [1, 2.5, "three", null]}, "unicode": "ding ✓"});
    assert_eq!(
        t.call("ding-dong", "echo", &value.to_string())
            .await
            .unwrap(),
        value
    );

    let chime = t
        .call("ding-dong", "play_quarter_chime", r#"{"quarter": 4}"#)
        .await
        .unwrap();
    assert_eq!(chime["strikes"], 4);
    assert_eq!(
        chime["sound"],
        "E G# F# B | E F# G# E | G# E F# B | B F# G# E"
    );

    let bongs = t
        .call("ding-dong", "play_hour_bongs", r#"{"hour": 15}"#)
        .await
        .unwrap();
    assert_eq!(bongs["sound"], "BONG BONG BONG");
    let midnight = t
        .call("ding-dong", "play_hour_bongs", r#"{"hour": 0}"#)
        .await
        .unwrap();
    assert_eq!(midnight["strikes"], 12);
}

#[tokio::test]
async fn scheduled_time_reaches_the_handler() {
    let t = TestConfig::new().start();
    let mut ctx = JobContext::adhoc();
    // 2026-03-01T09:45:00Z: the third quarter, hour 9.
    ctx.scheduled_time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_772_358_300);
    ctx.job_id = "chimes".into();
    let out = t
        .runtime
        .invoke("ding-dong", "play_quarter_chime", "", &ctx)
        .await
        .unwrap();
    let chime: serde_json::Value = serde_json::from_str(&out.result).unwrap();
    assert_eq!(chime["strikes"], 3, "{chime}");
    let out = t
        .runtime
        .invoke("ding-dong", "get_chime_log", "", &ctx)
        .await
        .unwrap();
    let log: serde_json::Value = serde_json::from_str(&out.result).unwrap();
    assert_eq!(
        log["entries"][0]["scheduled_time"],
        "2026-03-01T09:45:00.000Z"
    );
    assert_eq!(log["entries"][0]["run_id"], ctx.run_id.as_str());
    let announce = t
        .runtime
        .invoke("ding-dong", "announce_time", "", &ctx)
        .await
        .unwrap();
    assert!(
        announce.result.contains("it is 09:45 UTC"),
        "{}",
        announce.result
    );
}

#[tokio::test]
async fn the_chime_log_lives_as_long_as_the_hot_instance() {
    let t = TestConfig::new().start();
    for quarter in 1..=3 {
        t.call(
            "ding-dong",
            "play_quarter_chime",
            &json!({"quarter": quarter}).to_string(),
        )
        .await
        .unwrap();
    }
    let log = t.call("ding-dong", "get_chime_log", "").await.unwrap();
    assert_eq!(
        log["entries"].as_array().unwrap().len(),
        3,
        "one hot instance served every call"
    );
    assert_eq!(
        t.call("ding-dong", "clear_log", "").await.unwrap()["cleared"],
        3
    );
    t.call("ding-dong", "play_hour_bongs", r#"{"hour": 1}"#)
        .await
        .unwrap();

    // Back to cold: the next call starts from the cached artifact with a fresh instance.
    let plugin = t.runtime.plugin("ding-dong").unwrap();
    plugin.unload();
    assert!(!plugin.metrics().loaded());
    let out = t
        .runtime
        .invoke("ding-dong", "get_chime_log", "", &JobContext::adhoc())
        .await
        .unwrap();
    assert!(
        out.stats.cold_start && out.stats.fresh_instance,
        "{:?}",
        out.stats
    );
    let log: serde_json::Value = serde_json::from_str(&out.result).unwrap();
    assert_eq!(
        log["entries"],
        json!([]),
        "a fresh instance starts with an empty log"
    );
    assert_eq!(plugin.metrics().cold_starts, 1);
}

#[tokio::test]
async fn without_reuse_every_call_gets_a_fresh_instance() {
    let mut c = TestConfig::new();
    c.config.plugins.insert(
        "ding-dong".into(),
        schedulezero::config::PluginConfig {
            reuse_instances: Some(false),
            ..Default::default()
        },
    );
    let t = c.start();
    t.call("ding-dong", "play_quarter_chime", r#"{"quarter": 1}"#)
        .await
        .unwrap();
    let log = t.call("ding-dong", "get_chime_log", "").await.unwrap();
    assert_eq!(log["entries"], json!([]));
    assert_eq!(log["instance_calls"], 1);
    assert_eq!(
        t.runtime
            .plugin("ding-dong")
            .unwrap()
            .metrics()
            .idle_instances,
        0
    );
}

#[tokio::test]
async fn handler_errors_are_typed() {
    let t = TestConfig::new().start();
    let e = t
        .call("ding-dong", "play_quarter_chime", r#"{"quarter": 9}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, InvokeError::InvalidParams(m) if m.contains("quarter must be 1 to 4")),
        "{e}"
    );
    let e = t
        .call("ding-dong", "play_quarter_chime", r#"{"quarter": "two"}"#)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_params", "{e}");
    let e = t.call("ding-dong", "ring", "").await.unwrap_err();
    assert!(
        matches!(&e, InvokeError::UnknownMethod(m) if m.contains("ping")),
        "{e}"
    );
    let e = t.call("ding-dong", "ping", "{not json").await.unwrap_err();
    assert_eq!(e.code(), "invalid_params");
    let e = t.call("no-such-plugin", "ping", "").await.unwrap_err();
    assert!(
        matches!(&e, InvokeError::UnknownPlugin { available, .. } if available.contains(&"ding-dong".to_owned())),
        "{e}"
    );
    let e = t.call("../etc/passwd", "ping", "").await.unwrap_err();
    assert_eq!(e.code(), "unknown_plugin");
    // Errors that the handler reports keep the instance: the next call is served hot.
    let ok = t
        .runtime
        .invoke("ding-dong", "ping", "", &JobContext::adhoc())
        .await
        .unwrap();
    assert!(!ok.stats.fresh_instance);
}

#[tokio::test]
async fn granted_config_values_reach_only_their_plugin() {
    let mut c = TestConfig::new();
    c.config.plugins.insert(
        "ding-dong".into(),
        schedulezero::config::PluginConfig {
            config: [("location".to_owned(), "Big Ben".to_owned())].into(),
            ..Default::default()
        },
    );
    let t = c.start();
    let a = t
        .call(
            "ding-dong",
            "announce_time",
            r#"{"greeting": "Good evening"}"#,
        )
        .await
        .unwrap();
    let text = a["announcement"].as_str().unwrap();
    assert!(
        text.starts_with("Good evening! Ding dong from Big Ben: it is "),
        "{text}"
    );

    let plain = TestConfig::new().start();
    let a = plain.call("ding-dong", "announce_time", "").await.unwrap();
    assert!(
        a["announcement"]
            .as_str()
            .unwrap()
            .starts_with("Ding dong: it is "),
        "{a}"
    );
}

#[tokio::test]
async fn a_scheduled_time_before_1970_does_not_break_the_handler() {
    let t = TestConfig::new().start();
    let mut ctx = JobContext::adhoc();
    ctx.scheduled_time = std::time::UNIX_EPOCH - std::time::Duration::from_secs(3 * 3600 + 1);
    // 20:59:59 on 31 December 1969: the clock strikes eight.
    let out = t
        .runtime
        .invoke("ding-dong", "play_hour_bongs", "", &ctx)
        .await
        .unwrap();
    let bongs: serde_json::Value = serde_json::from_str(&out.result).unwrap();
    assert_eq!(bongs["strikes"], 8, "{bongs}");
}
