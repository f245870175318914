//! REST fuzzing with schemathesis against the OpenAPI description the host serves: a fixed seed
//! and a bounded number of examples per operation. No 5xx, every response as documented (status,
//! content type, schema), and a request refused with a 4xx changes nothing (the check in
//! `tests/fuzz/rest_fuzz_hooks.py`).

use std::process::Command;

use crate::host::TestHost;
use crate::support::repo_root;

#[tokio::test]
async fn the_documented_api_holds_under_fuzzing() {
    // A call the fuzzer makes at once (`POST /api/v1/handlers/{id}/call`) may reach a method
    // that runs until its limit (misbehave's `spin`): a short one keeps each request well
    // inside schemathesis's own timeout.
    // The catalog reaches only a registry on loopback that is not there: whatever reference
    // the fuzzer makes up is refused before anything leaves the machine.
    let host = TestHost::start_with_config(
        "[limits]\ntimeout = \"2s\"\n[catalog]\nregistries = [\"127.0.0.1:1\"]\nplain_http = [\"127.0.0.1:1\"]\n",
    );
    let url = host.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .current_dir(std::env::temp_dir())
            .args(["run", &format!("{url}/api/v1/openapi.json"), "--url", &url])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,\
                 content_type_conformance,no_state_change_on_4xx",
                "--seed",
                "20261130",
                "--max-examples",
                "30",
                "--phases",
                "examples,coverage,fuzzing",
                "--workers",
                "1",
                "--no-color",
            ])
            .env("SZ_URL", &url)
            .env("SCHEMATHESIS_HOOKS", "rest_fuzz_hooks")
            .env("PYTHONPATH", repo_root().join("tests/fuzz"))
            .output()
    })
    .await
    .unwrap()
    .expect("run schemathesis (tests/run installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = report.lines().rev().take(12).collect();
    eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The host is still fine.
    assert_eq!(host.get("/api/v1/health").await.0, 200);
}
