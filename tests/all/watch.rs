//! The plugins folder, watched by a real runtime: a new file becomes a plugin, a replaced file a
//! new version while a call in flight finishes on the old one, a removed file makes calls fail
//! with `plugin_removed` until it returns, and a file written slowly is loaded once, whole.

use std::path::Path;
use std::time::Duration;

use crate::support::{TestConfig, TestRuntime, builtin_plugins, eventually};
use schedulezero::runtime::{EventKind, PluginState};
use tempfile::TempDir;

/// How long a file must be still before it is loaded, in these tests.
const SETTLE: Duration = Duration::from_millis(300);
/// Longest wait for the watch to act (the settle time, plus slack for a loaded machine).
const WAIT: Duration = Duration::from_secs(15);

fn watched(dir: &Path) -> TestRuntime {
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.to_owned();
    c.config.pool.watch_settle = SETTLE;
    c.start()
}

fn component(name: &str) -> Vec<u8> {
    std::fs::read(builtin_plugins().join(format!("{name}.wasm"))).expect("example component")
}

/// The same component with a custom section appended: other bytes (a new sha256), same code.
fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"schedulezero-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

/// Writes a file whole, the way deployment tools do: a temporary name, then a rename.
fn put(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

fn kinds(t: &TestRuntime, plugin: &str) -> Vec<EventKind> {
    t.runtime
        .events(0, usize::MAX)
        .into_iter()
        .filter(|e| e.plugin == plugin)
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                EventKind::Added | EventKind::Replaced | EventKind::Removed | EventKind::Rejected
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_file_becomes_a_plugin_without_a_restart() {
    let dir = TempDir::new().unwrap();
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();
    assert!(t.runtime.plugin("ding-dong").is_none());

    put(dir.path(), "ding-dong.wasm", &component("ding-dong"));
    let plugin = eventually("ding-dong to appear", WAIT, || {
        t.runtime.plugin("ding-dong")
    })
    .await;
    assert_eq!(
        plugin.state(),
        PluginState::Cold,
        "known, nothing in memory yet"
    );
    assert_eq!(kinds(&t, "ding-dong"), [EventKind::Added]);
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
}

#[tokio::test]
async fn a_replaced_file_is_a_new_version_and_calls_in_flight_finish_on_the_old_one() {
    let dir = TempDir::new().unwrap();
    let v1 = component("misbehave");
    put(dir.path(), "misbehave.wasm", &v1);
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();
    let old = t.runtime.plugin("misbehave").unwrap();

    let v2 = variant(&v1, "v2");
    // Long enough to outlast the settle time and the new version's compilation on a busy machine.
    let long = t.call("misbehave", "sleep", r#"{"ms": 5000}"#);
    let replace = async {
        eventually("the call to start", WAIT, || {
            (old.metrics().busy_instances == 1).then_some(())
        })
        .await;
        put(dir.path(), "misbehave.wasm", &v2);
        let new = eventually("the new version", WAIT, || {
            t.runtime
                .plugin("misbehave")
                .filter(|p| p.file().sha256 != old.file().sha256)
        })
        .await;
        // New calls go to the new version while the old one still runs its call.
        assert_eq!(t.call("misbehave", "ok", "").await.unwrap()["ok"], true);
        assert_eq!(
            old.metrics().busy_instances,
            1,
            "the old call is still running"
        );
        new
    };
    let (long, new) = tokio::join!(long, replace);
    assert_eq!(
        long.unwrap(),
        5000,
        "the call in flight finished on the old version"
    );
    assert_eq!(new.file().sha256, schedulezero::runtime::sha256_hex(&v2));
    assert_eq!(
        kinds(&t, "misbehave"),
        [EventKind::Added, EventKind::Replaced]
    );
    let m = new.metrics();
    assert_eq!(m.versions, 2, "counters carry over to the new version");
    // The old version's instance was dropped when its call ended.
    assert_eq!(old.state(), PluginState::Cold);
    assert!(new.instances().iter().all(|i| i.state == "idle"));
}

#[tokio::test]
async fn a_removed_file_makes_calls_fail_clearly_until_it_returns() {
    let dir = TempDir::new().unwrap();
    put(dir.path(), "ding-dong.wasm", &component("ding-dong"));
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);

    std::fs::remove_file(dir.path().join("ding-dong.wasm")).unwrap();
    eventually("ding-dong to go", WAIT, || {
        t.runtime.plugin("ding-dong").is_none().then_some(())
    })
    .await;
    let err = t.call("ding-dong", "ping", "").await.unwrap_err();
    assert_eq!(err.code(), "plugin_removed");
    assert!(
        err.to_string().contains("removed from the plugins folder"),
        "{err}"
    );
    assert!(!err.is_retryable());

    put(dir.path(), "ding-dong.wasm", &component("ding-dong"));
    eventually("ding-dong to return", WAIT, || {
        t.runtime.plugin("ding-dong")
    })
    .await;
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
    assert_eq!(
        kinds(&t, "ding-dong"),
        [EventKind::Added, EventKind::Removed, EventKind::Added]
    );
}

#[tokio::test]
async fn a_file_still_being_written_is_loaded_once_it_is_whole() {
    let dir = TempDir::new().unwrap();
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();

    // Written in place, in pieces, each gap shorter than the settle time.
    let bytes = component("ding-dong");
    let path = dir.path().join("ding-dong.wasm");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in bytes.chunks(bytes.len() / 5 + 1) {
        use std::io::Write;
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(SETTLE / 3).await;
    }
    drop(file);
    let plugin = eventually("ding-dong to load", WAIT, || t.runtime.plugin("ding-dong")).await;
    assert_eq!(plugin.file().size, bytes.len() as u64);
    assert_eq!(
        kinds(&t, "ding-dong"),
        [EventKind::Added],
        "never rejected as corrupt"
    );
    assert!(t.runtime.rejected().is_empty());
}

#[tokio::test]
async fn a_corrupt_replacement_is_rejected_and_the_old_version_stays() {
    let dir = TempDir::new().unwrap();
    put(dir.path(), "ding-dong.wasm", &component("ding-dong"));
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    let _watch = t.runtime.watch();
    let before = t.runtime.plugin("ding-dong").unwrap();

    put(dir.path(), "ding-dong.wasm", b"\0asm not really");
    eventually("the rejection", WAIT, || {
        (!t.runtime.rejected().is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        kinds(&t, "ding-dong"),
        [EventKind::Added, EventKind::Rejected]
    );
    let now = t.runtime.plugin("ding-dong").unwrap();
    assert_eq!(now.file().sha256, before.file().sha256);
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
}

#[tokio::test]
async fn a_file_changed_before_the_watch_started_is_loaded_again() {
    let dir = TempDir::new().unwrap();
    let v1 = component("ding-dong");
    put(dir.path(), "ding-dong.wasm", &v1);
    let t = watched(dir.path());
    t.runtime.discover().await.unwrap();
    // Changed after it was read, before anyone watched.
    let v2 = variant(&v1, "later");
    put(dir.path(), "ding-dong.wasm", &v2);
    let _watch = t.runtime.watch();
    let sha = schedulezero::runtime::sha256_hex(&v2);
    eventually("the changed file to load", WAIT, || {
        t.runtime
            .plugin("ding-dong")
            .filter(|p| p.file().sha256 == sha)
    })
    .await;
    assert_eq!(
        kinds(&t, "ding-dong"),
        [EventKind::Added, EventKind::Replaced]
    );
}
