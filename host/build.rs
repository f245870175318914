//! Builds the example handler components in `plugins/` so that a plain `cargo build` of the host
//! also gives a working set of plugins, and bakes their location into the binary as the default
//! plugins directory.
//!
//! The plugins are their own cargo workspace for `wasm32-wasip2`, built in release mode into
//! `<target>/plugins/build`; the finished components are copied to `<target>/plugins/<name>.wasm`
//! under the name a handler is addressed by (`ding-dong.wasm`, not cargo's `ding_dong.wasm`).
//! Set `SCHEDULEZERO_SKIP_PLUGINS=1` to skip this step (for a host built without the examples).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    let plugins_src = root.join("plugins");
    let out_dir = target_dir(&root).join("plugins");
    println!(
        "cargo::rustc-env=SCHEDULEZERO_BUILTIN_PLUGINS_DIR={}",
        out_dir.display()
    );
    println!(
        "cargo::rustc-env=SCHEDULEZERO_WASMTIME_VERSION={}",
        locked_version(&root, "wasmtime")
    );
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo::rerun-if-env-changed=SCHEDULEZERO_SKIP_PLUGINS");
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    // The dashboard's files are embedded: a new or changed one rebuilds the host.
    println!("cargo::rerun-if-changed={}", root.join("web").display());
    if env::var_os("SCHEDULEZERO_SKIP_PLUGINS").is_some_and(|v| v != "0") {
        return;
    }

    ensure_wasm_target();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build_dir = out_dir.join("build");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins_src)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&build_dir);
    // The outer build's settings are for the host, not for wasm: do not leak them inward.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build plugins/");
    if !status.success() {
        panic!(
            "building the plugins workspace failed ({status}); is the wasm32-wasip2 target installed? \
             rust-toolchain.toml asks rustup for it"
        );
    }

    // The components of the workspace's crates (a folder of plugins/ with a Cargo.toml) only:
    // the build folder is shared with other wasm builds (the catalog's test builds a scaffolded
    // handler there), whose outputs are not example plugins.
    let release = build_dir.join("wasm32-wasip2").join("release");
    let mut copied = 0;
    for entry in fs::read_dir(&plugins_src).expect("read plugins/") {
        let member = entry.expect("list plugins/").path();
        if !member.join("Cargo.toml").is_file() {
            continue;
        }
        let name = member
            .file_name()
            .and_then(|s| s.to_str())
            .expect("utf-8 folder name");
        let built = release.join(format!("{}.wasm", name.replace('-', "_")));
        if built.is_file() {
            copy_if_changed(&built, &out_dir.join(format!("{name}.wasm")));
            copied += 1;
        }
    }
    assert!(
        copied > 0,
        "the plugins workspace produced no .wasm files in {}",
        release.display()
    );
}

/// rustup installs the toolchain that rust-toolchain.toml names, with its targets, only when the
/// toolchain itself is missing; on a machine that already has the toolchain, add the target here.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(sysroot) = sysroot else { return };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        return;
    }
    println!("cargo::warning=installing the wasm32-wasip2 target with rustup to build plugins/");
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    if !added.is_ok_and(|s| s.success()) {
        println!(
            "cargo::warning=`rustup target add wasm32-wasip2` failed; install the target by hand"
        );
    }
}

/// The cargo target directory of the outer build: `CARGO_TARGET_DIR` when set, otherwise found
/// from `OUT_DIR` (`<target>/[<triple>/]<profile>/build/<pkg>/out`) by its `CACHEDIR.TAG`.
fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"))
}

/// The version of `package` that Cargo.lock pins (part of the artifact cache key).
fn locked_version(root: &Path, package: &str) -> String {
    let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let needle = format!("name = \"{package}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("unknown")
        .to_owned()
}

fn copy_if_changed(from: &Path, to: &Path) {
    let new = fs::read(from).expect("read a built component");
    if fs::read(to).is_ok_and(|old| old == new) {
        return;
    }
    fs::create_dir_all(to.parent().expect("a parent dir")).expect("create the plugins dir");
    // Write then rename, so a host that is running and watching the folder never sees half a file.
    let tmp = to.with_extension("wasm.tmp");
    fs::write(&tmp, &new).expect("write a component");
    fs::rename(&tmp, to).expect("move a component into place");
}
