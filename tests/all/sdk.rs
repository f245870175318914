//! The SDK as a vendor meets it: the quick-start of its crate documentation, built as a crate
//! outside this repository's workspaces (its doctest runs inside the SDK, where every dependency
//! of the SDK is in scope, and cannot catch what an outside crate lacks).

use std::process::Command;

use crate::support::repo_root;

/// The first Rust example of the SDK's crate documentation, and the Cargo.toml lines it gives.
fn quick_start() -> (String, String) {
    let lib = std::fs::read_to_string(repo_root().join("sdk/src/lib.rs")).unwrap();
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    // Fenced blocks in order: (language, lines).
    let mut blocks: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut open: Option<(&str, Vec<&str>)> = None;
    for line in &doc {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang, Vec::new())),
            (None, None) => {}
            (Some(block), Some(_)) => blocks.push(block),
            (Some((lang, mut lines)), None) => {
                lines.push(line);
                open = Some((lang, lines));
            }
        }
    }
    let block = |lang: &str| -> String {
        let (_, lines) = blocks
            .iter()
            .find(|(l, _)| *l == lang)
            .expect("a fenced block");
        lines
            .iter()
            // rustdoc's hidden lines
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| *l != "#")
            .collect::<Vec<_>>()
            .join("\n")
    };
    (block("toml"), block(""))
}

#[test]
fn the_documented_quick_start_builds_as_an_outside_crate() {
    let (manifest, code) = quick_start();
    assert!(manifest.contains("schedulezero-sdk") && code.contains("export_handler!"));
    let dir = tempfile::tempdir().unwrap();
    let sdk = repo_root().join("sdk");
    // The published name and version, pointed at this checkout.
    let manifest = manifest.replace(
        "schedulezero-sdk = \"0.1\"",
        &format!(
            "schedulezero-sdk = {{ path = {:?} }}",
            sdk.display().to_string()
        ),
    );
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n{manifest}\n"
        ),
    )
    .unwrap();
    // The toolchain this repository pins, which has the wasm32-wasip2 target.
    std::fs::copy(
        repo_root().join("rust-toolchain.toml"),
        dir.path().join("rust-toolchain.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), &code).unwrap();

    // Checked for the handlers' target, with the crates this machine already has; one target
    // directory kept across runs, so a run after the first takes seconds.
    let out = Command::new(env!("CARGO"))
        .current_dir(dir.path())
        .args(["check", "--offline", "--quiet", "--target", "wasm32-wasip2"])
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target/sdk-outside-crate"),
        )
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "the quick-start does not build outside the repository:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SDK packages its own copy of the contract (so `cargo package` makes a crate that builds
/// outside this repository); it is the contract, byte for byte.
#[test]
fn the_sdk_carries_the_contract_unchanged() {
    let root = repo_root();
    let canonical = std::fs::read(root.join("wit/handler.wit")).unwrap();
    let copy = std::fs::read(root.join("sdk/wit/handler.wit")).unwrap();
    assert!(
        canonical == copy,
        "sdk/wit/handler.wit differs from wit/handler.wit: copy it over (cp wit/handler.wit sdk/wit/)"
    );
}
