//! Finding and loading components: bad files beside good ones, and the artifact cache.

use std::fs;

use crate::support::{TestConfig, builtin_plugins, plugins_dir_with};
use schedulezero::runtime::{InvokeError, LoadError};

#[tokio::test]
async fn bad_files_are_rejected_with_a_reason_and_the_others_load() {
    let dir = plugins_dir_with(&["ding-dong", "misbehave"]);
    let p = dir.path();
    fs::write(p.join("garbage.wasm"), b"this is not webassembly").unwrap();
    let misbehave = fs::read(p.join("misbehave.wasm")).unwrap();
    fs::write(p.join("truncated.wasm"), &misbehave[..misbehave.len() / 2]).unwrap();
    fs::write(p.join("empty.wasm"), b"").unwrap();
    // A valid component under another name: describe() disagrees with the file.
    fs::copy(p.join("ding-dong.wasm"), p.join("big-ben.wasm")).unwrap();
    // A core module is WebAssembly but not a component.
    fs::write(p.join("core-module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    fs::write(p.join("Not_A_Name.wasm"), b"").unwrap();
    fs::write(p.join("notes.txt"), b"ignored: not .wasm").unwrap();

    let mut c = TestConfig::new();
    c.config.plugins_dir = p.to_owned();
    let t = c.start();
    let d = t.runtime.discover().await.unwrap();
    let loaded: Vec<&str> = d.loaded.iter().map(|r| r.plugin.name()).collect();
    assert_eq!(loaded, ["ding-dong", "misbehave"]);
    let rejected: Vec<(String, LoadError)> = d
        .rejected
        .iter()
        .map(|r| {
            (
                r.path.file_name().unwrap().to_string_lossy().into_owned(),
                r.error.clone(),
            )
        })
        .collect();
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    assert!(matches!(reason("garbage.wasm"), LoadError::Invalid(_)));
    assert!(matches!(reason("truncated.wasm"), LoadError::Invalid(_)));
    assert!(matches!(reason("empty.wasm"), LoadError::Invalid(_)));
    assert!(
        matches!(reason("core-module.wasm"), LoadError::Invalid(m) if m.contains("component")),
        "{:?}",
        reason("core-module.wasm")
    );
    assert_eq!(
        reason("big-ben.wasm"),
        LoadError::NameMismatch {
            file: "big-ben".into(),
            described: "ding-dong".into()
        }
    );
    let bad_name = reason("Not_A_Name.wasm");
    assert!(
        matches!(bad_name, LoadError::BadName { .. }),
        "{bad_name:?}"
    );
    assert!(
        bad_name
            .to_string()
            .contains("rename it to `not-a-name.wasm`"),
        "{bad_name}"
    );
    let message = reason("big-ben.wasm").to_string();
    assert!(message.contains("big-ben.wasm"), "{message}");
    assert_eq!(t.runtime.rejected().len(), 6);

    // The good ones serve calls; a bad one answers with a clear error.
    assert_eq!(t.call("ding-dong", "ping", "").await.unwrap()["pong"], true);
    let e = t.call("garbage", "ping", "").await.unwrap_err();
    assert!(
        matches!(&e, InvokeError::Unavailable { name, error: LoadError::Invalid(_) } if name == "garbage"),
        "{e:?}"
    );
    assert_eq!(e.code(), "plugin_unavailable");
}

#[tokio::test]
async fn a_component_without_the_contract_is_rejected() {
    // wasm32-wasip2 components built from plugins/ all have the contract; an empty component
    // (the smallest valid one) has none of it.
    let dir = plugins_dir_with(&[]);
    fs::write(dir.path().join("hollow.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    let t = c.start();
    let d = t.runtime.discover().await.unwrap();
    assert!(d.loaded.is_empty());
    assert!(
        matches!(&d.rejected[0].error, LoadError::Contract(m) if m.contains("schedulezero:handler/handler")),
        "{:?}",
        d.rejected
    );
}

#[tokio::test]
async fn the_second_load_uses_the_cached_artifact() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_owned();
    let mut c = TestConfig::new();
    c.config.data_dir = data.clone();
    let cold = c.start();
    let first = cold.runtime.load("ding-dong").await.unwrap();
    assert!(!first.cache_hit);
    let compile = first.compile_time.expect("compiled on first sight");
    let artifact = cold
        .runtime
        .cache()
        .artifact_path(&first.plugin.file().sha256);
    assert!(artifact.is_file());
    assert!(artifact.starts_with(data.join("artifacts")));
    drop(cold);

    // A new runtime over the same data dir: nothing in memory, the artifact on disk.
    let mut again = TestConfig::new();
    again.config.data_dir = data.clone();
    let warm = again.start();
    let second = warm.runtime.load("ding-dong").await.unwrap();
    assert!(second.cache_hit, "the second load must not compile");
    assert_eq!(second.compile_time, None);
    eprintln!(
        "first load compiled in {compile:?} ({:?} in all); second load from the artifact in {:?}",
        first.load_time, second.load_time
    );
    assert_eq!(
        warm.call("ding-dong", "ping", "").await.unwrap()["pong"],
        true
    );
}

#[cfg(unix)]
#[tokio::test]
async fn artifacts_the_host_cannot_vouch_for_are_rebuilt() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_owned();
    let mut c = TestConfig::new();
    c.config.data_dir = data.clone();
    let t = c.start();
    let first = t.runtime.load("misbehave").await.unwrap();
    let artifact = t.runtime.cache().artifact_path(&first.plugin.file().sha256);
    drop(t);
    assert_eq!(
        fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(data.join("artifacts"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // Someone else could have written it: never load it.
    fs::set_permissions(&artifact, fs::Permissions::from_mode(0o666)).unwrap();
    let mut again = TestConfig::new();
    again.config.data_dir = data.clone();
    let t = again.start();
    let second = t.runtime.load("misbehave").await.unwrap();
    assert!(
        !second.cache_hit,
        "a group/world-writable artifact is refused"
    );
    assert_eq!(
        fs::metadata(&artifact).unwrap().permissions().mode() & 0o777,
        0o600,
        "rewritten by the host"
    );

    // A file that is not an artifact at all (right name, wrong bytes): refused by wasmtime's
    // header check, then rebuilt.
    fs::write(&artifact, b"not an artifact").unwrap();
    fs::set_permissions(&artifact, fs::Permissions::from_mode(0o600)).unwrap();
    t.runtime.plugin("misbehave").unwrap().unload();
    assert_eq!(t.call("misbehave", "ok", "").await.unwrap()["ok"], true);
}

#[tokio::test]
async fn the_builtin_plugins_are_where_the_build_put_them() {
    for name in ["ding-dong", "misbehave"] {
        assert!(
            builtin_plugins().join(format!("{name}.wasm")).is_file(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_rejected_file_is_not_compiled_again_until_it_changes() {
    let dir = plugins_dir_with(&["ding-dong"]);
    let bad = dir.path().join("broken.wasm");
    let ding_dong = fs::read(dir.path().join("ding-dong.wasm")).unwrap();
    fs::write(&bad, &ding_dong[..ding_dong.len() / 3]).unwrap();
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    let t = c.start();
    let cache = t.runtime.cache();
    for _ in 0..3 {
        let e = t.call("broken", "ping", "").await.unwrap_err();
        assert_eq!(e.code(), "plugin_unavailable");
    }
    assert_eq!(
        cache.compilations(),
        1,
        "calls to a rejected, unchanged file do not compile it"
    );

    // Replaced by a real component (under the wrong name): tried again, rejected for the name.
    fs::write(&bad, &ding_dong).unwrap();
    let e = t.call("broken", "ping", "").await.unwrap_err();
    assert!(
        matches!(
            &e,
            InvokeError::Unavailable {
                error: LoadError::NameMismatch { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(cache.compilations(), 2);
}
