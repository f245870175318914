//! The REST API end to end: a real host process, real HTTP, real plugins, a real SQLite file.

use std::time::Duration;

use serde_json::{Value, json};

use crate::host::TestHost;

const WAIT: Duration = Duration::from_secs(15);

/// A run's attempts, oldest first, from its records (newest first): number, status, error code.
fn attempts_of(log: &[Value]) -> Vec<(i64, &str, &str)> {
    log.iter()
        .rev()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["status"].as_str().unwrap(),
                e["error_code"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

#[tokio::test]
async fn compat_routes_answer_as_schedulezero_does() {
    let host = TestHost::start();
    assert_eq!(
        host.get("/api/health").await,
        (200, json!({"status": "ok", "service": "ScheduleZero"}))
    );
    let (status, config) = host.get("/api/config").await;
    assert_eq!(status, 200);
    for key in ["instance_name", "description", "admin_contact", "version"] {
        assert!(config.get(key).is_some(), "{key} in {config}");
    }
    let (_, handlers) = host.get("/api/handlers").await;
    let ding = handlers["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "ding-dong")
        .expect("ding-dong listed");
    assert_eq!(ding["status"], "available");
    assert!(ding["methods"].as_array().unwrap().contains(&json!("ping")));

    // run_now: synchronous, with the handler's result and the record committed.
    let (status, ran) = host
        .post(
            "/api/run_now",
            &json!({"handler_id": "ding-dong", "job_method": "echo", "job_params": {"bell": "big ben", "n": 3}}),
        )
        .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["status"], "success");
    assert_eq!(ran["result"], json!({"bell": "big ben", "n": 3}));
    assert_eq!(ran["message"], "Job executed on handler 'ding-dong'");
    let job_id = ran["job_id"].as_str().unwrap().to_owned();
    assert!(job_id.starts_with("immediate_ding-dong_echo_"), "{job_id}");
    let (_, log) = host.get(&format!("/api/executions?job_id={job_id}")).await;
    assert_eq!(log["count"], 1);
    let record = &log["records"][0];
    assert_eq!(record["status"], "success");
    assert_eq!(record["method_name"], "echo");
    assert_eq!(record["attempt_number"], 1);
    assert_eq!(record["params_summary"], "bell=big ben, n=3");
    assert!(record["started_at"].as_str().unwrap().ends_with("+00:00"));
    assert!(record["duration_ms"].as_f64().unwrap() >= 0.0);

    // A date trigger in the past runs at once; an empty job_params reaches a method without params.
    let (status, created) = host
        .post(
            "/api/schedule",
            &json!({"handler_id": "ding-dong", "job_method": "ping", "job_params": {},
                    "trigger": {"type": "DATE", "run_date": 1_000_000_000}, "job_id": "once"}),
        )
        .await;
    assert_eq!(
        (status, created),
        (201, json!({"status": "success", "job_id": "once"}))
    );
    let done = host
        .wait_for(WAIT, || async {
            let (_, log) = host.get("/api/executions?job_id=once").await;
            (log["records"][0]["status"] == "success").then_some(log)
        })
        .await;
    assert_eq!(done["records"][0]["result"]["pong"], true);

    let (_, listed) = host.get("/api/schedules").await;
    assert_eq!(listed["count"], 1);
    let s = &listed["schedules"][0];
    assert_eq!(s["id"], "once");
    assert_eq!(s["args"], json!(["ding-dong", "ping", {}, "once"]));
    assert!(
        s["next_fire_time"].is_null(),
        "a date trigger that ran has no next fire time"
    );
    assert!(s["trigger"].as_str().unwrap().starts_with("date["));

    let (_, stats) = host.get("/api/executions/stats").await;
    assert_eq!(stats["success_count"], 2);
    assert_eq!(stats["success_rate"], 100.0);
    assert_eq!(stats["by_handler"]["ding-dong"]["total"], 2);

    let (status, failed) = host
        .post(
            "/api/run_now",
            &json!({"handler_id": "misbehave", "job_method": "trap", "job_params": {}}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(failed["error"]["code"], 500);
    let (_, errors) = host.get("/api/executions/errors?limit=5").await;
    assert_eq!(
        (errors["count"].clone(), errors["limit"].clone()),
        (json!(1), json!(5))
    );
    assert_eq!(errors["errors"][0]["handler_id"], "misbehave");

    // A malformed body clears nothing.
    for bad in ["{bad", "[1, 2]", "\"all\""] {
        let (status, refused) = host.post_raw("/api/executions/clear", bad).await;
        assert_eq!(status, 400, "{bad}: {refused}");
        assert_eq!(refused["error"]["code"], 400, "compat shape: {refused}");
    }
    let (_, stats) = host.get("/api/executions/stats").await;
    assert_eq!(stats["total_executions"], 3, "nothing was cleared");
    assert_eq!(
        host.post("/api/executions/clear", &json!({})).await,
        (
            200,
            json!({"status": "success", "message": "Execution history cleared"})
        )
    );
    let (_, stats) = host.get("/api/executions/stats").await;
    assert_eq!(stats["total_executions"], 0);
    assert_eq!(
        stats["lifetime_executions"], 3,
        "the lifetime count survives a clear"
    );

    let (status, removed) = host.delete("/api/schedules/once").await;
    assert_eq!(status, 200);
    assert_eq!(removed["message"], "Schedule 'once' removed");
    let (status, missing) = host.delete("/api/schedules/once").await;
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!(404))
    );
}

#[tokio::test]
async fn compat_schedule_validation_follows_its_order_and_changes_nothing() {
    let host = TestHost::start();
    let trigger = json!({"type": "interval", "seconds": 30});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"handler_id": "nope", "job_method": "x", "job_params": 1}),
            400,
            "trigger",
        ),
        (
            json!({"trigger": trigger, "handler_id": "nope"}),
            400,
            "job_method, job_params",
        ),
        (
            json!({"trigger": {"type": "bogus"}, "handler_id": "nope", "job_method": "x", "job_params": 1}),
            404,
            "Handler 'nope' not found",
        ),
        (
            json!({"trigger": {"type": "bogus"}, "handler_id": "ding-dong", "job_method": "fly", "job_params": 1}),
            400,
            "Method 'fly'",
        ),
        (
            json!({"trigger": {"type": "bogus"}, "handler_id": "ding-dong", "job_method": "ping", "job_params": [1]}),
            400,
            "job_params must be a JSON object",
        ),
        (
            json!({"trigger": {"type": "cron", "hour": "25"}, "handler_id": "ding-dong", "job_method": "ping", "job_params": {}}),
            400,
            "Invalid trigger configuration",
        ),
        (
            json!({"trigger": {"type": "interval", "minuts": 5}, "handler_id": "ding-dong", "job_method": "ping", "job_params": {}}),
            400,
            "does not take `minuts`",
        ),
    ];
    for (body, want_status, want_message) in cases {
        let (status, reply) = host.post("/api/schedule", &body).await;
        assert_eq!(status, want_status, "{body} -> {reply}");
        assert_eq!(reply["error"]["code"], json!(want_status));
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(want_message),
            "{message:?} should say {want_message:?}"
        );
    }
    let (status, reply) = host.post_raw("/api/schedule", "{not json").await;
    assert_eq!((status, reply["error"]["code"].clone()), (400, json!(400)));

    // A duplicate job_id keeps the existing schedule (201), unless a conflict policy says otherwise.
    let body = |seconds: u32| {
        json!({"handler_id": "ding-dong", "job_method": "ping", "job_params": {},
               "trigger": {"type": "interval", "seconds": seconds}, "job_id": "dup"})
    };
    assert_eq!(host.post("/api/schedule", &body(30)).await.0, 201);
    assert_eq!(host.post("/api/schedule", &body(60)).await.0, 201);
    let (_, listed) = host.get("/api/schedules").await;
    assert_eq!(listed["count"], 1, "nothing else was created");
    assert_eq!(listed["schedules"][0]["trigger"], "interval[0:00:30]");
    let mut error = body(60);
    error["conflict_policy"] = json!("error");
    let (status, reply) = host.post("/api/schedule", &error).await;
    assert_eq!((status, reply["error"]["code"].clone()), (409, json!(409)));
}

#[tokio::test]
async fn v1_schedules_can_be_created_listed_changed_paused_and_deleted() {
    let host = TestHost::start();
    let create = |id: &str| {
        json!({"id": id, "handler": "ding-dong", "method": "echo", "params": {"id": id},
               "trigger": {"type": "cron", "expression": "0 9 * * mon-fri", "timezone": "Europe/Paris"}})
    };
    // The replies read as the API's own types, as the CLI reads them.
    use crate::support::read;
    use schedulezero::api::ErrorCode;
    use schedulezero::api::error::ErrorBody;
    use schedulezero::api::views::{ScheduleList, ScheduleView};
    use schedulezero::schedule::ScheduleState;
    for id in ["a", "b", "c"] {
        let (status, s) = host.post("/api/v1/schedules", &create(id)).await;
        assert_eq!(status, 201, "{s}");
        let s: ScheduleView = read(s);
        assert_eq!(s.timezone, "Europe/Paris");
        assert_eq!(s.trigger_description, "at 09:00 on mon-fri, Europe/Paris");
        let local = s.next_fire_time_local.unwrap();
        assert!(local.contains("T09:00:00+0"), "09:00 Paris time: {local}");
        assert_eq!(
            (s.state, s.running, s.last_run),
            (ScheduleState::Active, 0, None)
        );
    }
    let (status, dup) = host.post("/api/v1/schedules", &create("a")).await;
    let dup: ErrorBody = read(dup);
    assert_eq!((status, dup.error.code), (409, ErrorCode::ScheduleExists));

    let (_, first) = host.get("/api/v1/schedules?limit=2").await;
    let first: ScheduleList = read(first);
    assert_eq!(first.schedules.len(), 2);
    assert_eq!(first.next.as_deref(), Some("b"));
    let (_, second) = host.get("/api/v1/schedules?limit=2&after=b").await;
    let second: ScheduleList = read(second);
    assert_eq!(second.schedules[0].id, "c");
    assert!(second.next.is_none());

    let (status, changed) = host
        .patch(
            "/api/v1/schedules/b",
            &json!({"params": {"changed": true}, "policy": {"max_attempts": 3, "timeout": "2s"}}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let changed: ScheduleView = read(changed);
    assert_eq!(changed.params, json!({"changed": true}));
    assert_eq!(changed.policy.max_attempts, 3);
    assert_eq!(changed.policy.timeout, Some(Duration::from_secs(2)));
    assert_eq!(changed.policy.max_running, 1, "other policy fields kept");
    let (_, got) = host.get("/api/v1/schedules/b").await;
    let got: ScheduleView = read(got);
    assert_eq!(got.params, json!({"changed": true}));
    assert_eq!(got.running, 0);

    let (_, paused) = host.post("/api/v1/schedules/b/pause", &json!(null)).await;
    let paused: ScheduleView = read(paused);
    assert_eq!((paused.paused, paused.state), (true, ScheduleState::Paused));
    assert!(
        paused.next_fire_time.is_some(),
        "kept, for resume --catch-up"
    );
    let (_, only_paused) = host.get("/api/v1/schedules?paused=true").await;
    assert_eq!(read::<ScheduleList>(only_paused).schedules.len(), 1);
    let (_, resumed) = host.post("/api/v1/schedules/b/resume", &json!({})).await;
    assert!(!read::<ScheduleView>(resumed).paused);

    assert_eq!(host.delete("/api/v1/schedules/c").await.0, 204);
    let (status, gone) = host.get("/api/v1/schedules/c").await;
    assert_eq!(
        (status, read::<ErrorBody>(gone).error.code),
        (404, ErrorCode::ScheduleNotFound)
    );

    // Bad input: a 4xx with a stable code, and nothing changes.
    let bad: Vec<(Value, u16, &str)> = vec![
        (
            json!({"handler": "ding-dong", "method": "ping", "trigger": "61 * * * *"}),
            400,
            "invalid_trigger",
        ),
        (
            json!({"handler": "ding-dong", "method": "ping", "trigger": "* * * * *", "colour": 1}),
            400,
            "invalid_request",
        ),
        (
            json!({"handler": "nope", "method": "ping", "trigger": "* * * * *"}),
            404,
            "unknown_handler",
        ),
        (
            json!({"handler": "ding-dong", "method": "fly", "trigger": "* * * * *"}),
            400,
            "unknown_method",
        ),
        (
            json!({"handler": "ding-dong", "method": "ping", "trigger": "* * * * *", "policy": {"max_attempts": 0}}),
            400,
            "invalid_policy",
        ),
        (
            json!({"handler": "ding-dong", "method": "ping", "trigger": "* * * * *", "policy": {"retries": 2}}),
            400,
            "invalid_policy",
        ),
        (
            json!({"id": "a/b", "handler": "ding-dong", "method": "ping", "trigger": "* * * * *"}),
            400,
            "invalid_request",
        ),
        (
            json!({"handler": "ding-dong", "method": "ping", "trigger": {"type": "cron", "expression": "* * * * *", "timezone": "Mars/Olympus"}}),
            400,
            "invalid_trigger",
        ),
    ];
    for (body, want_status, want_code) in bad {
        let (status, reply) = host.post("/api/v1/schedules", &body).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str().unwrap()),
            (want_status, want_code),
            "{body}: {reply}"
        );
    }
    let (status, reply) = host.post_raw("/api/v1/schedules", "{\"handler\": ").await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!("invalid_json"))
    );
    let (status, reply) = host.get("/api/v1/executions?limit=many").await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!("invalid_query"))
    );
    let (status, reply) = host
        .patch("/api/v1/schedules/a", &json!({"trigger": "every day"}))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (400, json!("invalid_trigger"))
    );
    let (_, all) = host.get("/api/v1/schedules").await;
    let ids: Vec<&str> = all["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let (_, a) = host.get("/api/v1/schedules/a").await;
    assert_eq!(
        a["trigger"]["expression"], "0 9 * * mon-fri",
        "a failed change changed nothing"
    );

    let (status, reply) = host.get("/api/v1/nothing-here").await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (404, json!("route_not_found"))
    );
    let (status, reply) = host.call("PUT", "/api/v1/schedules").await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (405, json!("method_not_allowed"))
    );

    let (status, preview) = host
        .post(
            "/api/v1/triggers/preview",
            &json!({"trigger": {"type": "cron", "expression": "30 2 * * *", "timezone": "America/New_York"}, "count": 3}),
        )
        .await;
    assert_eq!(status, 200);
    let local = preview["fire_times_local"].as_array().unwrap();
    assert_eq!(local.len(), 3);
    assert!(
        local
            .iter()
            .all(|t| t.as_str().unwrap().contains("T02:30:00-0")),
        "{local:?}"
    );
}

#[tokio::test]
async fn every_trigger_type_fires_and_runs_are_listed() {
    let host = TestHost::start();
    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(800)).to_rfc3339();
    for (id, trigger) in [
        ("cron", json!("* * * * * *")),
        (
            "interval",
            json!({"type": "interval", "every_seconds": 0.4}),
        ),
        ("date", json!({"type": "date", "run_date": soon})),
        ("compat-cron", json!({"type": "cron", "second": "*/1"})),
    ] {
        let (status, s) = host
            .post(
                "/api/v1/schedules",
                &json!({"id": id, "handler": "ding-dong", "method": "echo", "params": {"from": id}, "trigger": trigger}),
            )
            .await;
        assert_eq!(status, 201, "{s}");
    }
    for id in ["cron", "interval", "date", "compat-cron"] {
        let records = host
            .wait_for(WAIT, || async {
                let log = host.executions_of(id).await;
                let ok = log.iter().filter(|e| e["status"] == "success").count();
                let enough = if id == "date" { 1 } else { 2 };
                (ok >= enough).then_some(log)
            })
            .await;
        let e = records.iter().find(|e| e["status"] == "success").unwrap();
        assert_eq!(e["result"], json!({"from": id}));
        assert_eq!(e["attempt"], 1);
        assert!(
            e["instance"]
                .as_str()
                .unwrap()
                .starts_with("wasm:ding-dong#")
        );
        let (_, run) = host
            .get(&format!("/api/v1/runs/{}", e["run_id"].as_str().unwrap()))
            .await;
        assert_eq!(run["run"]["schedule_id"], id);
        assert_eq!(run["run"]["status"], "success");
        assert_eq!(run["executions"][0]["id"], e["id"]);
    }
    let (_, date) = host.get("/api/v1/schedules/date").await;
    assert!(date["next_fire_time"].is_null());
    assert_eq!(
        date["state"], "completed",
        "a one-shot that ran is completed"
    );
    let (_, done) = host.get("/api/v1/schedules?state=completed").await;
    let ids: Vec<&str> = done["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["date"]);
    let (_, active) = host.get("/api/v1/schedules?state=active").await;
    assert_eq!(active["schedules"].as_array().unwrap().len(), 3);

    // A date in the past is refused unless asked for, and then the misfire policy decides.
    let past = json!({"type": "date", "run_date": "2020-01-01T00:00:00Z"});
    let (status, refused) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "past", "handler": "ding-dong", "method": "ping", "trigger": past}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!("invalid_trigger"))
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in the past")
    );
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "past", "handler": "ding-dong", "method": "ping", "trigger": past,
                    "allow_past_date": true, "policy": {"misfire_grace_time": "1m"}}),
        )
        .await;
    assert_eq!(status, 201);
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("past").await;
            (!log.is_empty() && log[0]["status"] != "running").then_some(log)
        })
        .await;
    assert_eq!(
        log[0]["status"], "missed",
        "six years late, one minute of grace: {log:?}"
    );
    let (_, runs) = host.get("/api/v1/runs?schedule=interval&limit=1").await;
    let cursor = runs["next"]
        .as_str()
        .expect("more than one page")
        .to_owned();
    let (_, older) = host
        .get(&format!(
            "/api/v1/runs?schedule=interval&limit=1&before={cursor}"
        ))
        .await;
    assert!(older["runs"][0]["fire_time"].as_str() < runs["runs"][0]["fire_time"].as_str());
    let (status, _) = host.get("/api/v1/runs?status=sleeping").await;
    assert_eq!(status, 400);

    let (_, by_handler) = host
        .get("/api/v1/executions?handler=ding-dong&status=success&limit=2")
        .await;
    let next = by_handler["next"].as_i64().expect("a next page");
    let (_, page2) = host
        .get(&format!(
            "/api/v1/executions?handler=ding-dong&limit=2&before={next}"
        ))
        .await;
    assert!(page2["executions"][0]["id"].as_i64().unwrap() < next);
    let id = page2["executions"][0]["id"].as_i64().unwrap();
    let (status, one) = host.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!((status, one["id"].as_i64()), (200, Some(id)));
    assert_eq!(host.get("/api/v1/executions/999999").await.0, 404);
}

#[tokio::test]
async fn retries_are_separate_attempts_and_overlap_is_recorded_as_skipped() {
    let host = TestHost::start();
    // Each attempt times out (retryable) and is retried after a short backoff.
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "slow", "handler": "misbehave", "method": "sleep", "params": {"ms": 2000},
                    "trigger": {"type": "date", "run_date": 0}, "allow_past_date": true,
                    "policy": {"max_attempts": 3, "timeout": "150ms", "retry_backoff": "20ms"}}),
        )
        .await;
    assert_eq!(status, 201);
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("slow").await;
            (log.len() == 3 && log.iter().all(|e| e["status"] != "running")).then_some(log)
        })
        .await;
    let attempts = attempts_of(&log);
    assert_eq!(
        attempts,
        [
            (1, "retry", "timeout"),
            (2, "retry", "timeout"),
            (3, "error", "timeout")
        ]
    );
    assert!(
        log.iter().all(|e| e["run_id"] == log[0]["run_id"]),
        "one run, three attempts"
    );
    // The schedule's timeout is the plugin's timeout in its metrics: counted, instance gone.
    let (_, plugin) = host.get("/api/v1/plugins/misbehave").await;
    assert_eq!(plugin["errors"]["timeout"], 3, "{plugin}");
    assert_eq!(plugin["instances_discarded"], 3, "{plugin}");

    // A run that lasts longer than the interval: the next fire times are skipped, not dropped.
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "overlap", "handler": "misbehave", "method": "sleep", "params": {"ms": 1200},
                    "trigger": {"type": "interval", "every_seconds": 0.3}}),
        )
        .await;
    assert_eq!(status, 201);
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("overlap").await;
            (log.iter().any(|e| e["status"] == "skipped")
                && log.iter().any(|e| e["status"] == "success"))
            .then_some(log)
        })
        .await;
    assert!(
        log.iter().filter(|e| e["status"] == "running").count() <= 1,
        "max_running 1"
    );
    // Run-now respects the limit too.
    let (status, reply) = host
        .wait_for(WAIT, || async {
            let r = host
                .post("/api/v1/schedules/overlap/run", &json!(null))
                .await;
            (r.0 == 409).then_some(r)
        })
        .await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (409, json!("overlap_limit"))
    );
}

#[tokio::test]
async fn run_now_and_pause_resume_through_v1() {
    let host = TestHost::start();
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "later", "handler": "ding-dong", "method": "ping",
                    "trigger": {"type": "interval", "every_seconds": 0.3}, "paused": true}),
        )
        .await;
    assert_eq!(status, 201);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        host.executions_of("later").await.is_empty(),
        "a paused schedule does not fire"
    );

    let (status, ran) = host
        .post("/api/v1/schedules/later/run?wait=true", &json!(null))
        .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["run"]["status"], "success");
    assert_eq!(ran["executions"][0]["result"]["pong"], true);
    let (status, started) = host.post("/api/v1/schedules/later/run", &json!(null)).await;
    assert_eq!(status, 202);
    assert_eq!(started["run"]["status"], "pending");

    let (status, _) = host
        .post(
            "/api/v1/schedules/later/resume",
            &json!({"catch_up": false}),
        )
        .await;
    assert_eq!(status, 200);
    host.wait_for(WAIT, || async {
        let n = host
            .executions_of("later")
            .await
            .iter()
            .filter(|e| e["status"] == "success")
            .count();
        (n >= 4).then_some(())
    })
    .await;
    let (status, _) = host
        .post("/api/v1/schedules/later/pause", &json!(null))
        .await;
    assert_eq!(status, 200);
    // Let a run that started just before the pause finish, then nothing more fires.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = host.executions_of("later").await.len();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        host.executions_of("later").await.len(),
        before,
        "paused again"
    );
    assert_eq!(
        host.post("/api/v1/schedules/nope/run", &json!(null))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_restart_records_missed_fire_times_by_policy() {
    let mut host = TestHost::start();
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "tick", "handler": "ding-dong", "method": "ping",
                    "trigger": {"type": "interval", "every_seconds": 0.5}}),
        )
        .await;
    assert_eq!(status, 201);
    host.wait_for(WAIT, || async {
        (!host.executions_of("tick").await.is_empty()).then_some(())
    })
    .await;
    assert!(host.terminate(), "clean exit on SIGTERM");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    host.restart();
    // coalesce = latest: the downtime's fire times but the last are recorded as missed, the last
    // one runs, and the series goes on (its run may still be under way when the misses are
    // recorded: wait for both).
    let count = |log: &[Value], status: &str| log.iter().filter(|e| e["status"] == status).count();
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("tick").await;
            (count(&log, "missed") >= 3 && count(&log, "success") >= 2).then_some(log)
        })
        .await;
    assert!(log.iter().all(|e| e["status"] != "running" || e == &log[0]));
}

#[tokio::test]
async fn sigkill_mid_run_loses_no_acknowledged_schedule_or_finished_record() {
    let mut host = TestHost::start();
    // Acknowledged schedules, one of them mid-run when the host is killed.
    for i in 0..20 {
        let (status, _) = host
            .post(
                "/api/v1/schedules",
                &json!({"id": format!("s{i:02}"), "handler": "ding-dong", "method": "ping",
                        "trigger": "0 0 1 1 *", "paused": true}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "long", "handler": "misbehave", "method": "sleep", "params": {"ms": 700},
                    "trigger": {"type": "date", "run_date": 0}, "allow_past_date": true, "policy": {"max_attempts": 2}}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, done) = host
        .post(
            "/api/run_now",
            &json!({"handler_id": "ding-dong", "job_method": "ping", "job_params": {}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    host.wait_for(WAIT, || async {
        host.executions_of("long")
            .await
            .iter()
            .any(|e| e["status"] == "running")
            .then_some(())
    })
    .await;
    host.kill();
    host.restart();

    let (_, all) = host.get("/api/v1/schedules?limit=1000").await;
    assert_eq!(
        all["schedules"].as_array().unwrap().len(),
        21,
        "every acknowledged schedule"
    );
    let (_, finished) = host.get("/api/executions?handler_id=ding-dong").await;
    assert_eq!(finished["count"], 1, "the reported run_now record");
    // The killed attempt is ended as interrupted; the run goes on with its second attempt.
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("long").await;
            log.iter().any(|e| e["status"] == "success").then_some(log)
        })
        .await;
    let attempts = attempts_of(&log);
    assert_eq!(attempts, [(1, "retry", "interrupted"), (2, "success", "")]);
}

#[tokio::test]
async fn sigterm_lets_a_running_call_finish() {
    let mut host = TestHost::start();
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "nap", "handler": "misbehave", "method": "sleep", "params": {"ms": 800},
                    "trigger": {"type": "date", "run_date": 0}, "allow_past_date": true}),
        )
        .await;
    assert_eq!(status, 201);
    host.wait_for(WAIT, || async {
        host.executions_of("nap")
            .await
            .iter()
            .any(|e| e["status"] == "running")
            .then_some(())
    })
    .await;
    assert!(host.terminate());
    host.restart();
    let log = host.executions_of("nap").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0]["status"], "success",
        "finished before the host stopped"
    );
}

#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let token = "test-token-0123456789abcdef";
    let host = TestHost::start_with(&["--api-token", token]);
    let url = |p: &str| format!("{}{p}", host.url);
    let bare = {
        schedulezero::install_crypto_provider();
        reqwest::Client::new()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(bare.get(url("/api/health")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(bare.get(url("/api/v1/health")).send().await.unwrap()),
        200
    );
    let denied = bare.get(url("/api/v1/schedules")).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = bare
        .get(url("/api/schedules"))
        .bearer_auth("test-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401, "compat routes keep their shape");
    let (status, _) = host.get("/api/v1/schedules").await;
    assert_eq!(status, 200, "with the token");

    // A non-loopback bind without a token is refused before anything starts.
    let data = tempfile::tempdir().unwrap();
    let out = crate::support::run_cli(data.path(), &["serve", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API token"));

    // So is a ZeroMQ endpoint beyond loopback without a shared secret.
    let out = crate::support::run_cli(
        data.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--zmq-listen",
            "tcp://0.0.0.0:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.zmq_listen") && stderr.contains("--remote-secret"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_second_host_on_a_data_dir_is_refused_and_named() {
    let mut host = TestHost::start();
    let out = crate::support::run_cli(
        host.data_dir(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--zmq-listen",
            "tcp://127.0.0.1:0",
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another schedulezero host")
            && stderr.contains(&format!("(pid {})", host.pid())),
        "{stderr}"
    );
    // The first goes on; once it is gone (even killed), the directory is free again.
    assert_eq!(host.get("/api/v1/health").await.0, 200);
    host.kill();
    host.restart();
    assert_eq!(host.get("/api/v1/health").await.0, 200);
}

#[tokio::test]
async fn the_api_listens_on_a_host_name() {
    let host = TestHost::start_with(&["--listen", "localhost:0"]);
    let (status, info) = host.get("/api/v1/health").await;
    assert_eq!(status, 200, "{info}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let host = TestHost::start();
    // Just over the default limit (1 MiB): the host reads it all before refusing, so the refusal
    // is not lost to a connection reset.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 64));
    let (status, reply) = host.post_raw("/api/v1/schedules", big.clone()).await;
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    let (status, reply) = host.post_raw("/api/schedule", big).await;
    assert_eq!((status, reply["error"]["code"].clone()), (413, json!(413)));
}

#[tokio::test]
async fn host_info_and_handlers_in_v1() {
    let host = TestHost::start();
    let (status, info) = host.get("/api/v1/host").await;
    assert_eq!(status, 200);
    assert_eq!(info["pid"].as_u64(), Some(u64::from(host.pid())));
    assert_eq!(info["plugins"], 4);
    let database = if crate::support::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(info["store"], database, "the store the test command chose");
    let (status, mut health) = host.get("/api/v1/health").await;
    assert_eq!(status, 200);
    let storage = health["storage"].take();
    assert_eq!(storage["state"], "ok", "{storage}");
    assert!(storage["free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(storage["floor_bytes"], 64 * 1024 * 1024);
    assert_eq!(
        health,
        json!({"status": "ok", "store": "ok", "storage": null, "auth": "none"})
    );
    let (_, handlers) = host.get("/api/v1/handlers").await;
    assert_eq!(handlers["handlers"].as_array().unwrap().len(), 4);
    let (status, dd) = host.get("/api/v1/handlers/ding-dong").await;
    assert_eq!(status, 200);
    assert_eq!(dd["kind"], "wasm");
    assert_eq!(dd["sha256"].as_str().unwrap().len(), 64);
    let echo = dd["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "announce_time")
        .unwrap();
    assert!(echo["params_schema"].is_object());
    let (status, nope) = host.get("/api/v1/handlers/nope").await;
    assert_eq!(
        (status, nope["error"]["code"].clone()),
        (404, json!("unknown_handler"))
    );
}

#[tokio::test]
async fn the_cli_manages_schedules_on_a_running_host() {
    let host = TestHost::start();
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| crate::support::cli_against(&host.url, data.path(), args, &[]);
    let (code, out, err) = cli(&[
        "schedules",
        "add",
        "ding-dong",
        "echo",
        "--id",
        "cli-job",
        "--every",
        "1h",
        "--params",
        r#"{"x": 1}"#,
        "--max-attempts",
        "2",
        "--attempt-timeout",
        "5s",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("schedule cli-job created: ding-dong.echo every 1 h, next fire"),
        "{out}"
    );
    let (code, _, err) = cli(&[
        "schedules",
        "add",
        "ding-dong",
        "echo",
        "--id",
        "cli-job",
        "--cron",
        "* * * * *",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("error[schedule_exists]"), "{err}");
    let (_, out, _) = cli(&[
        "schedules",
        "add",
        "ding-dong",
        "ping",
        "--id",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "America/New_York",
    ]);
    assert!(out.contains("T02:30:00-0"), "{out}");

    let (_, out, _) = cli(&["schedules", "list"]);
    assert!(
        out.contains("cli-job") && out.contains("nightly") && out.contains("2 schedule(s)"),
        "{out}"
    );
    let (_, out, _) = cli(&["schedules", "list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["schedules"][0]["policy"]["max_attempts"], 2);

    assert_eq!(cli(&["schedules", "pause", "nightly"]).0, Some(0));
    let (_, out, _) = cli(&["schedules", "list", "--paused", "--json"]);
    let paused: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(paused["schedules"].as_array().unwrap().len(), 1);
    let (_, out, _) = cli(&["schedules", "resume", "nightly"]);
    assert!(out.contains("resumed"), "{out}");

    let (code, out, err) = cli(&["schedules", "run", "cli-job", "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("success after 1 attempt(s)"), "{out}");
    let (_, out, _) = cli(&["executions", "--schedule", "cli-job", "--json"]);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["executions"][0]["result"], json!({"x": 1}));
    let (_, out, _) = cli(&["executions"]);
    assert!(
        out.contains("ding-dong.echo") && out.contains(" record(s)"),
        "{out}"
    );

    assert_eq!(cli(&["schedules", "rm", "cli-job"]).0, Some(0));
    let (code, out, err) = cli(&["schedules", "rm", "cli-job", "--json"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("schedule_not_found"), "{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["error"]["code"], "schedule_not_found");

    let out = crate::support::run_cli(
        data.path(),
        &["schedules", "list", "--url", "http://127.0.0.1:9"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach a host"));
}

#[tokio::test]
async fn the_cli_shows_changes_pages_and_calls_through_a_running_host() {
    let host = TestHost::start();
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        crate::support::cli_against(&host.url, data.path(), args, &[("COLUMNS", "80")])
    };
    for i in 0..3 {
        let id = format!("page-{i}-with-a-rather-long-identifier-for-the-table");
        let (code, _, err) = cli(&[
            "schedules",
            "add",
            "ding-dong",
            "echo",
            "--id",
            &id,
            "--cron",
            "0 * * * *",
            "--timezone",
            "Europe/London",
        ]);
        assert_eq!(code, Some(0), "{err}");
    }
    // get: the trigger in words and as ScheduleZero writes it.
    let id0 = "page-0-with-a-rather-long-identifier-for-the-table";
    let (code, out, err) = cli(&["schedules", "get", id0]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("at :00 every hour, Europe/London"), "{out}");
    assert!(
        out.contains("cron[0 * * * *, timezone='Europe/London']"),
        "{out}"
    );
    // update: any field; only what is given changes.
    let (code, out, err) = cli(&[
        "schedules",
        "update",
        id0,
        "--every",
        "30s",
        "--max-attempts",
        "3",
        "--params",
        r#"{"y": 2}"#,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("every 30 s"), "{out}");
    let (_, out, _) = cli(&["schedules", "get", id0, "--json"]);
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            got["policy"]["max_attempts"].clone(),
            got["params"].clone(),
            got["handler"].clone()
        ),
        (json!(3), json!({"y": 2}), json!("ding-dong"))
    );
    // A field the API refuses, in the user's words.
    let (code, _, err) = cli(&["schedules", "update", id0, "--cron", "61 * * * *"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the minute field has 61, outside 0-59"),
        "{err}"
    );
    // Paging: a page, a cursor for the next, or every page.
    let (_, out, err) = cli(&["schedules", "list", "--limit", "2"]);
    assert!(out.contains("2 schedule(s)"), "{out}");
    let cursor = err
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor offered: {err}"))
        .to_owned();
    let (_, out, _) = cli(&["schedules", "list", "--limit", "2", "--cursor", &cursor]);
    assert!(
        out.contains("1 schedule(s)") && out.contains("page-2"),
        "{out}"
    );
    let (_, out, _) = cli(&["schedules", "list", "--limit", "1", "--all"]);
    assert!(out.contains("3 schedule(s)"), "{out}");
    // The table fits 80 columns, eliding long ids; --wide keeps them whole.
    assert!(
        out.lines().all(|l| l.chars().count() <= 80) && out.contains('…'),
        "{out}"
    );
    assert!(out.contains("LAST RUN"), "{out}");
    let (_, wide, _) = cli(&["schedules", "list", "--all", "--wide"]);
    assert!(wide.contains(id0), "{wide}");
    // Resuming an active schedule says so.
    let (code, out, _) = cli(&["schedules", "resume", id0]);
    assert_eq!(code, Some(0));
    assert!(out.contains("was not paused"), "{out}");
    // A run, then its record shown in full.
    let (code, _, err) = cli(&["schedules", "run", id0, "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = cli(&["executions", "--schedule", id0, "--json"]);
    let page: Value = serde_json::from_str(&out).unwrap();
    let record = page["executions"][0]["id"].as_i64().unwrap().to_string();
    let (code, out, err) = cli(&["executions", "show", &record]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(r#"result    {"y":2}"#) && out.contains("attempt   1 of 3"),
        "{out}"
    );
    // invoke through the host: recorded there, and it says so.
    let (code, out, err) = cli(&["invoke", "ding-dong", "echo", r#"{"z": 3}"#, "--on-host"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"z": 3})
    );
    assert!(
        err.contains("on the host at") && err.contains("recorded as immediate_ding-dong_echo_"),
        "{err}"
    );
    let (code, out, err) = cli(&["invoke", "misbehave", "panic", "--on-host"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"]["code"],
        "trap"
    );
    assert!(err.contains("error[trap]"), "{err}");
    // A host with a token: the CLI says which flag or variable to set.
    let guarded = TestHost::start_with(&["--api-token", "cli-token-0123456789abcdef"]);
    let out = crate::support::run_cli(
        data.path(),
        &["schedules", "list", "--url", guarded.url.as_str()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pass --api-token or set SCHEDULEZERO_API_TOKEN"),
        "{err}"
    );
    // Completions for a shell.
    let out = crate::support::run_cli(data.path(), &["completions", "bash"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("schedulezero"));
}

/// Adds a schedule that only runs when asked (its date is far off).
async fn add_parked(host: &TestHost, id: &str, handler: &str, method: &str) {
    let (status, body) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": id, "handler": handler, "method": method,
                    "trigger": {"type": "date", "run_date": "2099-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_timeline_counts_attempts_per_bucket_and_status() {
    let host = TestHost::start();
    add_parked(&host, "ok", "ding-dong", "ping").await;
    add_parked(&host, "bad", "misbehave", "trap").await;
    for _ in 0..3 {
        host.run_schedule("ok").await;
    }
    for _ in 0..2 {
        host.run_schedule("bad").await;
    }
    // The default: the last hour by minute, on whole minutes, every bucket present.
    let (status, t) = host.get("/api/v1/executions/timeline").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["bucket_s"], 60);
    let buckets = t["buckets"].as_array().unwrap();
    assert!((60..=61).contains(&buckets.len()), "{}", buckets.len());
    let first =
        chrono::DateTime::parse_from_rfc3339(buckets[0]["start"].as_str().unwrap()).unwrap();
    assert_eq!(first.timestamp() % 60, 0, "whole minutes");
    let sum = |key: &str| {
        buckets
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("success"), sum("error"), sum("skipped")), (3, 2, 0));
    let busy: Vec<&Value> = buckets
        .iter()
        .filter(|b| b["success"].as_u64() > Some(0))
        .collect();
    assert!(
        busy.iter()
            .all(|b| b["duration_ms_mean"].as_f64() > Some(0.0))
    );
    assert!(
        busy.iter()
            .all(|b| b["duration_ms_max"].as_f64() >= b["duration_ms_mean"].as_f64())
    );
    // One handler's, over an explicit span in 10-minute buckets.
    let now = chrono::Utc::now();
    let since =
        (now - chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until =
        (now + chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, t) = host
        .get(&format!(
            "/api/v1/executions/timeline?since={since}&until={until}&bucket_s=600&handler=misbehave"
        ))
        .await;
    assert_eq!(status, 200, "{t}");
    let buckets = t["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4, "31 minutes in 10-minute buckets");
    assert_eq!(buckets[0]["start"].as_str().unwrap()[..19], since[..19]);
    let errors: u64 = buckets.iter().map(|b| b["error"].as_u64().unwrap()).sum();
    let successes: u64 = buckets.iter().map(|b| b["success"].as_u64().unwrap()).sum();
    assert_eq!((errors, successes), (2, 0));
    // Bad spans and buckets are refused with the stable code.
    for bad in [
        "bucket_s=0".to_owned(),
        format!("since={until}&until={since}"),
        "bucket_s=1&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z".to_owned(),
    ] {
        let (status, body) = host
            .get(&format!("/api/v1/executions/timeline?{bad}"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (400, json!("invalid_request")),
            "{bad}: {body}"
        );
    }
    // Any bucket size has a default span that fits; the limit counts a partial bucket.
    for (bucket, most) in [(1, 1440), (7200, 2)] {
        let (status, t) = host
            .get(&format!("/api/v1/executions/timeline?bucket_s={bucket}"))
            .await;
        assert_eq!(status, 200, "{t}");
        let n = t["buckets"].as_array().unwrap().len();
        assert!((1..=most).contains(&n), "bucket_s={bucket}: {n} buckets");
    }
    let day = "since=2026-01-01T00:00:00Z&bucket_s=60";
    let (status, t) = host
        .get(&format!(
            "/api/v1/executions/timeline?{day}&until=2026-01-02T00:00:00Z"
        ))
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["buckets"].as_array().unwrap().len(), 1440);
    let (status, _) = host
        .get(&format!(
            "/api/v1/executions/timeline?{day}&until=2026-01-02T00:00:30Z"
        ))
        .await;
    assert_eq!(status, 400, "1,441 buckets");
    for bad in ["bucket_s=minute", "colour=red"] {
        let (status, body) = host
            .get(&format!("/api/v1/executions/timeline?{bad}"))
            .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (400, json!("invalid_query")),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn the_history_samples_calls_latency_and_instance_memory() {
    let host = TestHost::start_with_config("[server]\nhistory_interval = \"200ms\"\n");
    add_parked(&host, "p", "ding-dong", "ping").await;
    host.run_schedule("p").await;
    host.run_schedule("p").await;
    let sample = host
        .wait_for(WAIT, || async {
            let (_, h) = host.get("/api/v1/metrics/history").await;
            assert_eq!(h["interval_s"], 0.2);
            assert_eq!(h["span_s"], 3600);
            let samples = h["samples"].as_array().cloned().unwrap_or_default();
            let calls: u64 = samples.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
            // Both calls counted, and a quiet sample after them.
            (calls == 2
                && samples
                    .last()
                    .is_some_and(|s| s["calls"] == 0 && s["plugins"]["ding-dong"].is_object()))
            .then(|| {
                samples
                    .iter()
                    .find(|s| s["calls"].as_u64() > Some(0))
                    .cloned()
                    .unwrap()
            })
        })
        .await;
    // The calls are counted once, in the sample after them, with their mean latency and the
    // cold start of the first.
    assert!(sample["call_us_mean"].as_f64() > Some(0.0), "{sample}");
    assert_eq!(sample["cold_starts"], 1, "{sample}");
    assert!(
        sample["cold_start_us_mean"].as_f64() > Some(0.0),
        "{sample}"
    );
    assert!(sample["rss_bytes"].as_u64() > Some(1 << 20));
    let (_, h) = host.get("/api/v1/metrics/history").await;
    let last = h["samples"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["calls"], 0, "nothing since");
    assert!(last["call_us_mean"].is_null());
    let dd = &last["plugins"]["ding-dong"];
    assert_eq!(dd["state"], "hot");
    assert!(dd["live_instances"].as_u64() >= Some(1));
    assert!(dd["memory_bytes"].as_u64() > Some(0));
    assert_eq!(last["instance_memory_bytes"], dd["memory_bytes"]);
    // Only newer samples after a time.
    let at = last["at"].as_str().unwrap();
    let (status, later) = host
        .get(&format!(
            "/api/v1/metrics/history?after={}",
            at.replace('+', "%2B")
        ))
        .await;
    assert_eq!(status, 200, "{later}");
    assert!(
        later["samples"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["at"].as_str().unwrap() > at)
    );
}

#[tokio::test]
async fn a_trigger_check_answers_valid_or_why_not() {
    let host = TestHost::start();
    let (status, ok) = host
        .post(
            "/api/v1/triggers/check",
            &json!({"trigger": {"type": "cron", "expression": "0 9 * * mon-fri", "timezone": "Europe/Paris"}}),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["valid"], true);
    assert_eq!(ok["fire_times"].as_array().unwrap().len(), 5);
    assert!(
        ok["fire_times_local"][0]
            .as_str()
            .unwrap()
            .contains("T09:00:00+0")
    );
    for (trigger, code) in [
        (
            json!({"type": "cron", "expression": "* * *"}),
            "invalid_trigger",
        ),
        (
            json!({"type": "cron", "expression": "* * * * *", "timezone": "Mars/Olympus"}),
            "invalid_trigger",
        ),
        (
            json!({"type": "interval", "seconds": -5}),
            "invalid_trigger",
        ),
        // Triggers that can never fire.
        (json!("0 0 31 2 *"), "invalid_trigger"),
        (
            json!({"type": "cron", "expression": "* * * * *", "end_time": "2020-01-01T00:00:00Z"}),
            "invalid_trigger",
        ),
        // A one-shot date in the past, unless asked for.
        (
            json!({"type": "date", "run_date": "2020-01-01T00:00:00Z"}),
            "invalid_trigger",
        ),
    ] {
        let (status, no) = host
            .post("/api/v1/triggers/check", &json!({ "trigger": trigger }))
            .await;
        assert_eq!(status, 200, "{no}");
        assert_eq!(no["valid"], false, "{no}");
        assert_eq!(no["error"]["code"], code, "{no}");
        assert!(!no["error"]["message"].as_str().unwrap().is_empty());
        // The same trigger is a 400 with the same code where it would be used.
        let (status, err) = host
            .post("/api/v1/triggers/preview", &json!({ "trigger": trigger }))
            .await;
        assert_eq!((status, &err["error"]["code"]), (400, &no["error"]["code"]));
    }
    // A request that is not a check at all is still a 400.
    let (status, body) = host
        .post("/api/v1/triggers/check", &json!({"cron": "* * * * *"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_request"))
    );
}

#[tokio::test]
async fn schedules_show_their_last_outcome() {
    let host = TestHost::start();
    add_parked(&host, "ok", "ding-dong", "ping").await;
    add_parked(&host, "bad", "misbehave", "trap").await;
    let (_, list) = host.get("/api/v1/schedules").await;
    assert!(
        list["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["last_run"].is_null())
    );
    let ok_run = host.run_schedule("ok").await;
    host.run_schedule("bad").await;
    let (_, one) = host.get("/api/v1/schedules/ok").await;
    assert_eq!(one["last_run"]["status"], "success");
    assert_eq!(one["last_run"]["id"], ok_run["run"]["id"]);
    let (_, list) = host.get("/api/v1/schedules").await;
    let by_id = |id: &str| {
        list["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["last_run"]["status"]
            .clone()
    };
    assert_eq!(
        (by_id("ok"), by_id("bad")),
        (json!("success"), json!("error"))
    );
}

#[tokio::test]
async fn params_are_checked_against_the_methods_schema() {
    let host = TestHost::start();
    let chime = |params: Value| {
        json!({"id": "chime", "handler": "ding-dong", "method": "play_quarter_chime",
               "params": params, "trigger": "0 * * * *"})
    };
    let (status, refused) = host
        .post("/api/v1/schedules", &chime(json!({"quarter": "x"})))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!("invalid_params"))
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("/quarter"), "{message}");
    assert_eq!(
        host.get("/api/v1/schedules/chime").await.0,
        404,
        "nothing created"
    );

    let (status, _) = host
        .post("/api/v1/schedules", &chime(json!({"quarter": 2})))
        .await;
    assert_eq!(status, 201);
    let (status, refused) = host
        .patch(
            "/api/v1/schedules/chime",
            &json!({"params": {"quarter": -1}}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!("invalid_params"))
    );
    let (_, kept) = host.get("/api/v1/schedules/chime").await;
    assert_eq!(kept["params"], json!({"quarter": 2}), "unchanged");

    // The compat routes, where ScheduleZero checks its fields: same refusal, their shape.
    for route in ["/api/schedule", "/api/run_now"] {
        let (status, refused) = host
            .post(
                route,
                &json!({"handler_id": "ding-dong", "job_method": "play_quarter_chime",
                        "job_params": {"quarter": "x"}, "trigger": {"type": "date", "run_date": 0}}),
            )
            .await;
        assert_eq!(
            (status, refused["error"]["code"].clone()),
            (400, json!(400)),
            "{route}"
        );
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/quarter")
        );
    }
    let (_, log) = host.get("/api/executions").await;
    assert_eq!(log["count"], 0, "nothing ran");
}

#[tokio::test]
async fn retry_on_decides_which_failures_retry_and_the_record_says_why_not() {
    let host = TestHost::start();
    let trap = |id: &str, policy: Value| {
        json!({"id": id, "handler": "misbehave", "method": "trap", "trigger": "0 0 1 1 *",
               "policy": policy})
    };
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &trap("plain", json!({"max_attempts": 2})),
        )
        .await;
    assert_eq!(status, 201);
    let ran = host.run_schedule("plain").await;
    let log = host.executions_of("plain").await;
    assert_eq!(log.len(), 1, "a trap is not retried by default: {ran}");
    let why = log[0]["not_retried"].as_str().unwrap();
    assert!(
        why.contains("`trap` is not in the policy's retry_on"),
        "{why}"
    );

    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &trap(
                "again",
                json!({"max_attempts": 2, "retry_backoff": "10ms",
                                  "retry_on": ["trap", "timeout"]}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    host.run_schedule("again").await;
    let log = host
        .wait_for(WAIT, || async {
            let log = host.executions_of("again").await;
            (log.len() == 2 && log[0]["status"] != "running").then_some(log)
        })
        .await;
    assert_eq!(
        attempts_of(&log),
        [(1, "retry", "trap"), (2, "error", "trap")]
    );
    assert!(log[1]["not_retried"].is_null(), "the first was retried");
    assert!(
        log[0]["not_retried"]
            .as_str()
            .unwrap()
            .contains("attempt 2 of max_attempts 2")
    );
    let out = crate::support::run_cli(
        host.data_dir(),
        &["executions", "--schedule", "plain", "--url", &host.url],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(not retried: `trap` is not in"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let (status, bad) = host
        .post(
            "/api/v1/schedules",
            &trap("bad", json!({"retry_on": ["sometimes"]})),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (400, json!("invalid_policy"))
    );
}
