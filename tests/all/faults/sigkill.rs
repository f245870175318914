//! Crash safety under SIGKILL: a host with schedules of every trigger kind (with retries) is
//! killed at random moments, bursts of creates and run-nows included, and restarted on the same
//! data directory, again and again. Then: no acknowledged schedule is lost, no (schedule, fire
//! time) ran twice, no finished record is lost, every fire time of an interval is accounted for
//! (run, or recorded missed by its policy), and attempts cut short by a kill are retried.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::host::TestHost;

const KILLS: usize = 8;

async fn all_runs(host: &TestHost, schedule: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/api/v1/runs?schedule={schedule}&limit=1000&before={b}"),
            None => format!("/api/v1/runs?schedule={schedule}&limit=1000"),
        };
        let (status, page) = host.get(&path).await;
        assert_eq!(status, 200, "{page}");
        runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return runs,
        }
    }
}

async fn finished_records(host: &TestHost) -> HashSet<i64> {
    let mut ids = HashSet::new();
    for status in ["success", "error"] {
        let (_, log) = host
            .get(&format!("/api/v1/executions?status={status}&limit=1000"))
            .await;
        for e in log["executions"].as_array().unwrap() {
            ids.insert(e["id"].as_i64().unwrap());
        }
    }
    ids
}

#[tokio::test]
async fn kills_at_random_moments_lose_nothing_acknowledged_and_run_nothing_twice() {
    let config = "[scheduler]\nmax_tick = \"200ms\"\nshutdown_grace = \"2s\"\n";
    let mut host = TestHost::start_with_config(config);
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let soon = |ms: i64| (chrono::Utc::now() + chrono::TimeDelta::milliseconds(ms)).to_rfc3339();
    for (id, body) in [
        (
            "every-300ms",
            json!({"handler": "ding-dong", "method": "ping",
                   "trigger": {"type": "interval", "every_seconds": 0.3},
                   "policy": {"coalesce": "all", "max_running": 3, "max_attempts": 2}}),
        ),
        (
            "every-second",
            json!({"handler": "ding-dong", "method": "echo", "params": {"n": 1},
                   "trigger": "* * * * * *", "policy": {"max_attempts": 2}}),
        ),
        (
            "compat-cron",
            json!({"handler": "ding-dong", "method": "ping",
                   "trigger": {"type": "cron", "second": "*/2", "timezone": "UTC"}}),
        ),
        (
            "slow-retried",
            json!({"handler": "misbehave", "method": "sleep", "params": {"ms": 400},
                   "trigger": {"type": "interval", "every_seconds": 1.0},
                   "policy": {"max_attempts": 3, "retry_backoff": "50ms"}}),
        ),
    ] {
        let mut body = body;
        body["id"] = json!(id);
        let (status, reply) = host.post("/api/v1/schedules", &body).await;
        assert_eq!(status, 201, "{reply}");
        acknowledged.insert(id.to_owned());
    }

    let mut rng = StdRng::seed_from_u64(0x51_6b_11);
    let mut finished_before_kill: HashSet<i64> = HashSet::new();
    for kill in 0..KILLS {
        // A burst of creates (dates about to fire) and run-nows, cut by the kill.
        let burst = {
            let (url, http) = (host.url.clone(), host.http.clone());
            let dates: Vec<(String, Value)> = (0..30)
                .map(|i| {
                    let id = format!("date-{kill}-{i}");
                    let body = json!({"id": id, "handler": "ding-dong", "method": "ping",
                                      "trigger": {"type": "date", "run_date": soon(100 + 20 * i)}});
                    (id, body)
                })
                .collect();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for (i, (id, body)) in dates.into_iter().enumerate() {
                    let created = http
                        .post(format!("{url}/api/v1/schedules"))
                        .json(&body)
                        .send()
                        .await;
                    if matches!(&created, Ok(r) if r.status().as_u16() == 201) {
                        acked.push(id);
                    }
                    if i % 3 == 0 {
                        let _ = http
                            .post(format!("{url}/api/v1/schedules/every-second/run"))
                            .send()
                            .await;
                    }
                }
                acked
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..1500))).await;
        finished_before_kill.extend(finished_records(&host).await);
        host.kill();
        // What the burst was told was created before the kill.
        acknowledged.extend(burst.await.unwrap_or_default());
        host.restart();
    }
    // Let the last restart pick up and finish what was cut short.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Every acknowledged schedule is there.
    let (_, listed) = host.get("/api/v1/schedules?limit=1000").await;
    let present: BTreeSet<String> = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged schedules lost: {lost:?}");

    // No finished record lost.
    let now_finished = finished_records(&host).await;
    let gone: Vec<&i64> = finished_before_kill.difference(&now_finished).collect();
    assert!(gone.is_empty(), "finished records lost: {gone:?}");

    // No (schedule, fire time) twice, and no gap in the interval that runs every fire time.
    let mut runs_seen = 0;
    for id in &acknowledged {
        let runs = all_runs(&host, id).await;
        runs_seen += runs.len();
        let mut fires: BTreeMap<String, usize> = BTreeMap::new();
        for r in &runs {
            *fires
                .entry(r["fire_time"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let twice: Vec<_> = fires.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{id}: fire times run twice: {twice:?}");
    }
    let interval: Vec<chrono::DateTime<chrono::Utc>> = all_runs(&host, "every-300ms")
        .await
        .iter()
        .map(|r| r["fire_time"].as_str().unwrap().parse().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(interval.len() > 10, "{}", interval.len());
    for pair in interval.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::TimeDelta::milliseconds(300),
            "a gap in every-300ms (coalesce all, no grace): {pair:?}"
        );
    }

    // Attempts cut short are retried, each in its own record.
    let (_, log) = host.get("/api/v1/executions?limit=1000").await;
    let log = log["executions"].as_array().unwrap();
    let interrupted: Vec<&Value> = log
        .iter()
        .filter(|e| e["error_code"] == "interrupted")
        .collect();
    for e in &interrupted {
        if e["status"] == "retry" {
            assert!(
                log.iter()
                    .any(|n| n["run_id"] == e["run_id"]
                        && n["attempt"].as_i64() > e["attempt"].as_i64()),
                "an interrupted attempt marked retry has a next attempt: {e}"
            );
        } else {
            assert_eq!(
                e["max_attempts"], e["attempt"],
                "ended only on its last attempt: {e}"
            );
        }
    }
    eprintln!(
        "sigkill: {KILLS} kills, {} schedules acknowledged, {runs_seen} runs, {} interrupted attempts, {} finished records kept",
        acknowledged.len(),
        interrupted.len(),
        finished_before_kill.len()
    );
}
