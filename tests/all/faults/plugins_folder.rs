//! Odd files in the watched plugins folder of a running host: a FIFO, a link out of the folder,
//! a file far over the size limit, an empty file, a core module, a component without the
//! contract, and files with names that make no plugin name. Each is rejected once, with a
//! one-line reason, and never read again while it stays the same; nothing blocks the watcher,
//! nothing leaks from outside the folder, and the host still stops on SIGTERM in time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::host::TestHost;
use crate::support::builtin_plugins;

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Rejections per file (the event's plugin is the file's stem), with their details.
async fn rejections(host: &TestHost) -> BTreeMap<String, Vec<String>> {
    let (status, events) = host.get("/api/v1/events?limit=1000").await;
    assert_eq!(status, 200, "{events}");
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events["events"].as_array().unwrap() {
        if e["kind"] == "rejected" {
            by_file
                .entry(e["plugin"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["detail"].as_str().unwrap_or_default().to_owned());
        }
    }
    by_file
}

#[tokio::test]
async fn odd_files_in_the_plugins_folder_are_refused_once_and_block_nothing() {
    let plugins = tempfile::tempdir().unwrap();
    let p = plugins.path();
    std::fs::copy(
        builtin_plugins().join("ding-dong.wasm"),
        p.join("ding-dong.wasm"),
    )
    .unwrap();
    let config = format!(
        "plugins_dir = {:?}\n[pool]\nwatch_settle = \"100ms\"\nmax_component_size = {}\n\
         [scheduler]\nshutdown_grace = \"5s\"\n",
        p.display(),
        8 * 1024 * 1024
    );
    let mut host = TestHost::start_with_config(&config);
    assert_eq!(host.get("/api/v1/plugins/ding-dong").await.0, 200);

    // Dropped in while the host runs.
    mkfifo(&p.join("fifo.wasm"));
    std::os::unix::fs::symlink("/etc/passwd", p.join("passwd.wasm")).unwrap();
    // 200 MB, sparse: refused by its size, never read.
    std::fs::File::create(p.join("huge.wasm"))
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    std::fs::write(p.join("empty.wasm"), b"").unwrap();
    std::fs::write(p.join("core-module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(p.join("hollow.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::copy(
        builtin_plugins().join("ding-dong.wasm"),
        p.join("Bad_Name.wasm"),
    )
    .unwrap();
    std::fs::copy(
        builtin_plugins().join("ding-dong.wasm"),
        p.join("weather_report.wasm"),
    )
    .unwrap();
    // And one good plugin after them all: the watcher is not stuck on any of them.
    std::fs::copy(
        builtin_plugins().join("misbehave.wasm"),
        p.join("misbehave.wasm"),
    )
    .unwrap();

    host.wait_for(Duration::from_secs(15), || async {
        (host.get("/api/v1/plugins/misbehave").await.0 == 200).then_some(())
    })
    .await;
    let expected = [
        "passwd",
        "huge",
        "empty",
        "core-module",
        "hollow",
        "Bad_Name",
        "weather_report",
    ];
    let seen = host
        .wait_for(Duration::from_secs(15), || async {
            let r = rejections(&host).await;
            expected.iter().all(|f| r.contains_key(*f)).then_some(r)
        })
        .await;
    // Several rescans and settle periods later, still one rejection each.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = rejections(&host).await;
    assert_eq!(
        later, seen,
        "a rejected file is not processed again while unchanged"
    );
    for (file, details) in &later {
        assert_eq!(details.len(), 1, "{file}: {details:?}");
        let d = &details[0];
        assert!(!d.contains('\n'), "{file}: one line: {d}");
        assert!(
            !d.contains("root:"),
            "{file}: nothing from outside the folder: {d}"
        );
    }
    assert!(
        later["passwd"][0].contains("out of the plugins folder"),
        "{later:?}"
    );
    assert!(later["huge"][0].contains("max_component_size"), "{later:?}");
    assert!(
        later["weather_report"][0].contains("`weather-report.wasm`"),
        "{later:?}"
    );
    assert!(
        later["Bad_Name"][0].contains("`bad-name.wasm`"),
        "{later:?}"
    );
    assert!(
        !later.contains_key("fifo"),
        "a FIFO is not a candidate at all"
    );
    let (_, listed) = host.get("/api/v1/plugins").await;
    let rejected: Vec<&Value> = listed["rejected"].as_array().unwrap().iter().collect();
    assert_eq!(rejected.len(), expected.len(), "{rejected:?}");

    // Renamed, a rejected file is looked at again (its name is right now; what it says of itself
    // is not: it is ding-dong).
    std::fs::rename(p.join("weather_report.wasm"), p.join("weather-report.wasm")).unwrap();
    let renamed = host
        .wait_for(Duration::from_secs(15), || async {
            rejections(&host).await.remove("weather-report")
        })
        .await;
    assert!(
        renamed[0].contains("describe() names the handler `ding-dong`"),
        "{renamed:?}"
    );

    // The FIFO is still there: SIGTERM still stops the host, within its grace.
    let asked = Instant::now();
    assert!(host.terminate(), "a clean stop");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
}
