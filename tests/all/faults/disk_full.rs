//! A full disk, for real: the host's data directory on a small tmpfs that the test fills. Below
//! `server.min_free_space` the host takes no new work (507 `storage_full` with `Retry-After`,
//! the scheduler holds) and serves reads, with health `degraded`; restarted on a volume with no
//! byte free it starts and serves reads; when space returns it goes back to work by itself,
//! scheduler included (a pooled connection left in a failed transaction once stopped it for
//! good).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::host::TestHost;

/// A tmpfs of its own, unmounted when dropped.
struct Volume {
    dir: tempfile::TempDir,
}

impl Volume {
    fn new(bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full tests mount a small tmpfs and need root (or CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `file` until the volume refuses, then gives back `leave` bytes. Returns its size.
fn fill(file: &Path, leave: u64) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
    let size = f.metadata().unwrap().len().saturating_sub(leave);
    f.set_len(size).unwrap();
    size
}

fn config(dir: &Path, floor: u64) -> PathBuf {
    let file = dir.join("schedulezero.toml");
    std::fs::write(
        &file,
        format!("[server]\nmin_free_space = {floor}\n[scheduler]\nmax_tick = \"200ms\"\n"),
    )
    .unwrap();
    file
}

async fn successes(host: &TestHost, id: &str) -> usize {
    let (status, log) = host
        .get(&format!(
            "/api/v1/executions?schedule={id}&status=success&limit=1000"
        ))
        .await;
    assert_eq!(status, 200, "reads are served: {log}");
    log["executions"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_full_disk_refuses_new_work_clearly_and_the_host_resumes_by_itself() {
    let volume = Volume::new(48 * 1024 * 1024);
    let data = volume.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let floor = 4 * 1024 * 1024;
    let conf = config(conf_dir.path(), floor);
    let args = |conf: &Path| {
        vec![
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--config".to_owned(),
            conf.display().to_string(),
        ]
    };
    let owned = args(&conf);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut host = TestHost::start_with(&refs);
    let (status, _) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "tick", "handler": "ding-dong", "method": "ping",
                    "trigger": {"type": "interval", "every_seconds": 0.2},
                    "policy": {"misfire_grace_time": "1h", "coalesce": "latest"}}),
        )
        .await;
    assert_eq!(status, 201);
    host.wait_for(Duration::from_secs(10), || async {
        (successes(&host, "tick").await >= 3).then_some(())
    })
    .await;

    // Below the floor: degraded, new work refused with a stable code, reads served.
    let filler = volume.path().join("filler");
    fill(&filler, 1024 * 1024);
    let health = host
        .wait_for(Duration::from_secs(5), || async {
            let (_, h) = host.get("/api/v1/health").await;
            (h["status"] == "degraded").then_some(h)
        })
        .await;
    assert_eq!(health["storage"]["state"], "low", "{health}");
    assert!(
        health["storage"]["free_bytes"].as_u64().unwrap() < floor,
        "{health}"
    );
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("min_free_space")
    );

    let refused = host
        .http
        .post(format!("{}/api/v1/schedules", host.url))
        .json(&json!({"id": "more", "handler": "ding-dong", "method": "ping", "trigger": "* * * * *"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 507);
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    let (status, compat) = host
        .post(
            "/api/schedule",
            &json!({"handler_id": "ding-dong", "job_method": "ping", "job_params": {},
                    "trigger": {"type": "interval", "seconds": 5}}),
        )
        .await;
    assert_eq!(
        (status, compat["error"]["code"].clone()),
        (507, json!(507)),
        "{compat}"
    );
    let (status, run) = host.post("/api/v1/schedules/tick/run", &Value::Null).await;
    assert_eq!(status, 507, "{run}");
    // The scheduler holds: no run starts while the volume is low.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let held = successes(&host, "tick").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        successes(&host, "tick").await,
        held,
        "nothing new while held"
    );
    assert_eq!(host.get("/api/v1/schedules").await.0, 200);

    // Restarted on a volume with no byte free and no floor: it starts and serves reads; its
    // writes fail with the disk full (SQLite's own error), until space returns.
    host.kill();
    let conf = config(conf_dir.path(), 0);
    fill(&filler, 0);
    let owned = args(&conf);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut host = TestHost::start_with(&refs);
    let before = successes(&host, "tick").await;
    assert!(before >= held, "nothing finished was lost");
    // SQLite reuses the room its files already have, so writes go on for a while: big ones
    // run out of it soon, and then fail with a stable code and change nothing.
    let pad = "x".repeat(256 * 1024);
    let mut refused = None;
    for i in 0..200 {
        let (status, reply) = host
            .post(
                "/api/v1/schedules",
                &json!({"id": format!("big-{i}"), "handler": "ding-dong", "method": "echo",
                        "params": {"pad": pad}, "trigger": "0 0 1 1 *"}),
            )
            .await;
        if status != 201 {
            refused = Some((i, status, reply));
            break;
        }
    }
    let (i, status, reply) = refused.expect("the volume fills up");
    assert_eq!(
        (status, reply["error"]["code"].clone()),
        (507, json!("storage_full")),
        "{reply}"
    );
    assert_eq!(
        host.get(&format!("/api/v1/schedules/big-{i}")).await.0,
        404,
        "the refused write left nothing"
    );
    // The scheduler meets the full disk too, a few times over.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Space returns: everything resumes by itself, the scheduler included.
    std::fs::remove_file(&filler).unwrap();
    host.wait_for(Duration::from_secs(20), || async {
        (successes(&host, "tick").await >= before + 3).then_some(())
    })
    .await;
    let (status, created) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "more", "handler": "ding-dong", "method": "ping", "trigger": "* * * * *"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, health) = host.get("/api/v1/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(host.terminate(), "a clean stop");
}
