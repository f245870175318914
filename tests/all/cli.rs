//! The real `schedulezero` binary, run from the repository root as a user would.

use crate::support::run_cli;
use serde_json::Value;

fn stdout_json(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

#[test]
fn invoke_works_from_the_repository_root_without_flags() {
    let data = tempfile::tempdir().unwrap();
    let out = run_cli(data.path(), &["invoke", "ding-dong", "ping"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let pong = stdout_json(&out);
    assert_eq!(pong["pong"], true);
    assert!(
        stderr.contains("ding-dong.ping ok in"),
        "timings go to stderr: {stderr}"
    );

    let out = run_cli(
        data.path(),
        &["invoke", "ding-dong", "echo", r#"{"a":[1,2]}"#],
        &[],
    );
    assert_eq!(stdout_json(&out), serde_json::json!({"a": [1, 2]}));
}

#[test]
fn repeated_calls_reuse_the_hot_instance() {
    let data = tempfile::tempdir().unwrap();
    let out = run_cli(
        data.path(),
        &["invoke", "ding-dong", "ping", "--repeat", "3"],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(stdout_json(&out)["instance_calls"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("hot instance").count(), 3, "{stderr}");
}

#[test]
fn errors_are_typed_and_exit_non_zero() {
    let data = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["invoke", "misbehave", "spin", "--timeout", "200ms"],
            "timeout",
        ),
        (
            &["invoke", "misbehave", "grow_memory", "--memory-mib", "8"],
            "memory_limit",
        ),
        (&["invoke", "misbehave", "panic"], "trap"),
        (
            &[
                "invoke",
                "ding-dong",
                "play_quarter_chime",
                r#"{"quarter": 0}"#,
            ],
            "invalid_params",
        ),
        (&["invoke", "nope", "ping"], "unknown_plugin"),
    ];
    for (args, code) in cases {
        let out = run_cli(data.path(), args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stdout_json(&out);
        assert_eq!(err["error"]["code"], code, "{args:?}: {err}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
    }
}

#[test]
fn plugins_list_and_inspect() {
    let data = tempfile::tempdir().unwrap();
    // No host answers there: the plugins directory is listed instead.
    let out = run_cli(
        data.path(),
        &["plugins", "list"],
        &[("SCHEDULEZERO_URL", "http://127.0.0.1:9")],
    );
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("listing the plugins directory instead"),
        "{note}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ding-dong") && table.contains("misbehave"),
        "{table}"
    );
    assert!(table.contains("compiled"), "first sight compiles: {table}");

    let out = run_cli(data.path(), &["plugins", "list", "--json", "--local"], &[]);
    let list = stdout_json(&out);
    let plugins = list["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 4);
    assert!(
        plugins.iter().all(|p| p["artifact"]["cached"] == true),
        "second run loads from the cache: {list}"
    );
    assert_eq!(list["rejected"], serde_json::json!([]));

    let out = run_cli(
        data.path(),
        &["plugins", "inspect", "misbehave", "--json"],
        &[],
    );
    let info = stdout_json(&out);
    assert_eq!(info["name"], "misbehave");
    assert_eq!(info["file"]["sha256"].as_str().unwrap().len(), 64);
    assert!(info["file"]["size"].as_u64().unwrap() > 10_000);
    assert_eq!(info["artifact"]["cached"], true);
    assert_eq!(info["methods"].as_array().unwrap().len(), 16);
    assert_eq!(info["manifest"]["directories"][0]["name"], "data");
    let requested = info["capabilities"]["requested"].as_array().unwrap();
    assert!(
        requested
            .iter()
            .all(|r| r["granted"] == serde_json::json!([])),
        "{info}"
    );

    let out = run_cli(data.path(), &["plugins", "inspect", "ding-dong"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("play_hour_bongs") && text.contains("sha256:"),
        "{text}"
    );
}

#[test]
fn flags_beat_environment_beats_file() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("sz.toml");
    std::fs::write(
        &file,
        "[limits]\nmemory_mib = 48\ntimeout = '9s'\nfuel = 5\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let show = |args: &[&str], env: &[(&str, &str)]| -> toml::Table {
        let out = run_cli(data.path(), args, env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).parse().unwrap()
    };
    let c = show(&["config", "--config", config], &[]);
    assert_eq!(c["limits"]["memory_mib"].as_integer(), Some(48));
    let c = show(
        &["config", "--config", config],
        &[("SCHEDULEZERO_MEMORY_MIB", "16")],
    );
    assert_eq!(c["limits"]["memory_mib"].as_integer(), Some(16));
    let c = show(
        &["config", "--config", config, "--memory-mib", "8"],
        &[("SCHEDULEZERO_MEMORY_MIB", "16")],
    );
    assert_eq!(c["limits"]["memory_mib"].as_integer(), Some(8));
    assert_eq!(c["limits"]["timeout"].as_str(), Some("9s"));

    let out = run_cli(data.path(), &["config", "--memory-mib", "1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.memory_mib"));
    std::fs::write(&file, "[limits]\nmemroy_mib = 48\n").unwrap();
    let out = run_cli(data.path(), &["config", "--config", config], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `memroy_mib`"));
}

#[test]
fn config_never_prints_a_secret() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("sz.toml");
    std::fs::write(
        &file,
        "[server]\napi_token = 'token-0123456789abcdef'\nremote_secret = 'secret-0123456789abcdef'\n\
         [plugins.ding-dong]\nconfig = { password = 'hunter2-hunter2' }\n",
    )
    .unwrap();
    let out = run_cli(
        data.path(),
        &["config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in ["token-0123", "secret-0123", "hunter2"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    let c: toml::Table = text.parse().unwrap();
    assert_eq!(c["server"]["api_token"].as_str(), Some("<redacted>"));
    assert_eq!(c["server"]["remote_secret"].as_str(), Some("<redacted>"));
    assert_eq!(
        c["plugins"]["ding-dong"]["config"]["password"].as_str(),
        Some("<redacted>"),
        "the name stays, the value goes"
    );
}

#[test]
fn help_is_useful() {
    let data = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["invoke", "--help"],
        &["plugins", "--help"],
        &["plugins", "inspect", "--help"],
    ] {
        let out = run_cli(data.path(), args, &[]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--plugins-dir") || text.contains("Commands:"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn guest_output_and_logs_reach_the_host_log_tagged() {
    let data = tempfile::tempdir().unwrap();
    let out = run_cli(
        data.path(),
        &[
            "invoke",
            "misbehave",
            "noisy",
            r#"{"lines": 2}"#,
            "--job-id",
            "nightly",
        ],
        &[("SCHEDULEZERO_LOG", "info")],
    );
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("noisy stdout line 1"))
        .unwrap_or_else(|| panic!("{log}"));
    for field in [
        "plugin=misbehave",
        "job_id=nightly",
        "run_id=",
        "stream=\"stdout\"",
    ] {
        assert!(line.contains(field), "{field} missing in: {line}");
    }
    assert!(log.contains("noisy stderr line 0"), "{log}");

    let config = data.path().join("grant.toml");
    std::fs::write(
        &config,
        "[plugins.ding-dong.config]\nlocation = \"the tower\"\n",
    )
    .unwrap();
    let out = run_cli(
        data.path(),
        &[
            "invoke",
            "ding-dong",
            "announce_time",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[("SCHEDULEZERO_LOG", "info")],
    );
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let record: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| {
            r["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Ding dong from the tower"))
        })
        .unwrap_or_else(|| panic!("no log record from the log import: {log}"));
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["fields"]["plugin"], "ding-dong");
    assert_eq!(record["fields"]["job_id"], "adhoc");
}

#[test]
fn a_missing_plugins_directory_is_explained() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("no-such-dir");
    let out = run_cli(
        data.path(),
        &[
            "plugins",
            "list",
            "--plugins-dir",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("--plugins-dir"),
        "{stderr}"
    );
}
