//! The service catalog end to end, against a real OCI registry on 127.0.0.1 (Debian's
//! `docker-registry`, distribution 2.8): a vendor scaffolds a handler with the packaged SDK,
//! builds it, makes a key, signs and pushes it; an operator trusts the key, inspects, installs
//! with consent, grants, schedules it and sees it run on a real host; then updates, rolls back,
//! and meets each kind of bad input, which changes nothing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::host::TestHost;
use crate::support::{repo_root, run_cli};

/// A registry on a free loopback port, with its storage in a temporary folder; stopped when
/// dropped.
pub(crate) struct Registry {
    child: Child,
    addr: String,
    root: PathBuf,
    _dir: TempDir,
}

impl Registry {
    pub(crate) fn start() -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let root = dir.path().join("storage");
            let config = dir.path().join("registry.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nlog:\n  level: error\n",
                    root.display()
                ),
            )
            .expect("write the registry's configuration");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry (tests/run installs it)");
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if std::net::TcpStream::connect(&addr).is_ok() {
                    return Self {
                        child,
                        addr,
                        root,
                        _dir: dir,
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    pub(crate) fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.addr)
    }

    /// The file the registry keeps a blob in.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.root
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scaffolded handler, built twice (0.1.0 and 0.2.0) against the SDK as `cargo package`
/// makes it.
pub(crate) struct Built {
    pub(crate) v1: Vec<u8>,
    pub(crate) v2: Vec<u8>,
}

/// Runs a command to completion; panics with its output if it fails.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Scaffolds `acme-greeter` and builds it, once for all the tests here: the SDK packaged with
/// `cargo package` and unpacked, as a vendor outside this repository gets it; the crate in a
/// folder under `target/` (so the pinned toolchain applies), with the example plugins' lockfile
/// (the same dependency versions, already built for wasm in `target/plugins/build`).
pub(crate) fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let work = root.join("target/catalog-test");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("create target/catalog-test");
        run(
            cargo()
                .current_dir(&root)
                .args([
                    "package",
                    "-p",
                    "schedulezero-sdk",
                    "--allow-dirty",
                    "--no-verify",
                    "--target-dir",
                ])
                .arg(work.join("package")),
            "cargo package of the SDK",
        );
        let crate_file = work.join("package/package/schedulezero-sdk-0.1.0.crate");
        // Unpacked with fresh times (`m`): the build's target directory outlives this folder, and
        // with the files' packaged times cargo would take an SDK built from an older copy as
        // up to date.
        run(
            Command::new("tar")
                .arg("xzmf")
                .arg(&crate_file)
                .arg("-C")
                .arg(&work),
            "unpacking the SDK",
        );
        let sdk = work.join("schedulezero-sdk-0.1.0");
        let out = run_cli(
            &work,
            &[
                "plugins",
                "new",
                "acme-greeter",
                "--dir",
                work.join("acme-greeter").to_str().expect("utf-8 path"),
                "--sdk-path",
                sdk.to_str().expect("utf-8 path"),
                "--description",
                "Greets people.",
                "--vendor",
                "Acme Tools <dev@acme.example>",
            ],
            &[],
        );
        assert!(out.status.success(), "plugins new: {out:?}");
        let crate_dir = work.join("acme-greeter");
        for file in ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
            assert!(crate_dir.join(file).is_file(), "the scaffold has {file}");
        }
        std::fs::copy(
            root.join("plugins/Cargo.lock"),
            crate_dir.join("Cargo.lock"),
        )
        .expect("copy the lockfile");
        let build = |version: &str| {
            let manifest = crate_dir.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).expect("read Cargo.toml");
            let text = text.replacen(
                "version = \"0.1.0\"",
                &format!("version = \"{version}\""),
                1,
            );
            std::fs::write(&manifest, text).expect("write Cargo.toml");
            run(
                cargo()
                    .current_dir(&crate_dir)
                    .args([
                        "build",
                        "--release",
                        "--target",
                        "wasm32-wasip2",
                        "--target-dir",
                    ])
                    .arg(root.join("target/plugins/build")),
                "building the scaffolded handler",
            );
            let out = root.join("target/plugins/build/wasm32-wasip2/release/acme_greeter.wasm");
            let wasm = std::fs::read(&out).expect("the built component");
            let _ = std::fs::remove_file(&out);
            wasm
        };
        let v1 = build("0.1.0");
        let v2 = build("0.2.0");
        let _ = std::fs::remove_dir_all(&work);
        Built { v1, v2 }
    })
}

/// A vendor's key pair, made by `plugins keygen` in `dir`.
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = run_cli(
        dir,
        &[
            "plugins",
            "keygen",
            "--out",
            dir.join(name).to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.status.success(), "keygen: {out:?}");
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Writes `bytes` to `dir/file`, signs it with `key` there, and returns the signed bytes.
pub(crate) fn signed(dir: &Path, file: &str, bytes: &[u8], key: &Path) -> Vec<u8> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).expect("write the component");
    let out = run_cli(
        dir,
        &[
            "plugins",
            "sign",
            path.to_str().expect("utf-8"),
            "--key",
            key.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(out.status.success(), "sign: {out:?}");
    std::fs::read(&path).expect("read the signed component")
}

/// `plugins push` of `bytes` to `reference`.
pub(crate) fn push(dir: &Path, bytes: &[u8], reference: &str) {
    let path = dir.join("push.wasm");
    std::fs::write(&path, bytes).expect("write the component");
    let out = run_cli(
        dir,
        &[
            "plugins",
            "push",
            path.to_str().expect("utf-8"),
            reference,
            "--plain-http",
        ],
        &[],
    );
    assert!(out.status.success(), "push {reference}: {out:?}");
}

/// An operator's setup: a plugins folder, a data folder, a configuration trusting `acme.pub`
/// for `acme-*` names.
pub(crate) struct Operator {
    dir: TempDir,
    pub(crate) config: PathBuf,
}

impl Operator {
    pub(crate) fn new(registry: &Registry, public_key: &Path, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins folder");
        let config = dir.path().join("schedulezero.toml");
        std::fs::write(
            &config,
            format!(
                "plugins_dir = {:?}\n{extra}\n[catalog]\nplain_http = [{:?}]\n[trust.keys.acme]\nfile = {:?}\nplugins = [\"acme-*\"]\n",
                dir.path().join("plugins").display().to_string(),
                registry.addr,
                public_key.display().to_string(),
            ),
        )
        .expect("write the configuration");
        Self { dir, config }
    }

    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the CLI with this configuration and data folder: exit code, stdout, stderr.
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.cli_in(&self.data(), args)
    }

    fn cli_in(&self, data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
        let mut all = vec!["--config", self.config.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        let out = run_cli(data, &all, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The installed file and the lockfile, to compare before and after.
    fn state(&self) -> (Vec<u8>, String) {
        (
            std::fs::read(self.plugins().join("acme-greeter.wasm")).unwrap_or_default(),
            std::fs::read_to_string(self.plugins().join("schedulezero.lock")).unwrap_or_default(),
        )
    }

    /// Nothing half-done is left: no partial files, no staging folders.
    fn assert_clean(&self) {
        let partial: Vec<_> = std::fs::read_dir(self.plugins())
            .expect("plugins folder")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(partial.is_empty(), "left behind: {partial:?}");
        let staging = self.data().join("catalog/staging");
        if staging.is_dir() {
            let left: Vec<_> = std::fs::read_dir(&staging)
                .expect("staging")
                .filter_map(Result::ok)
                .collect();
            assert!(left.is_empty(), "staging folders left: {left:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_publishes_and_an_operator_installs_grants_schedules_updates_and_rolls_back() {
    let built = tokio::task::spawn_blocking(built).await.expect("build");
    let registry = Registry::start();
    let vendor = tempfile::tempdir().expect("temp dir");
    let (key, public) = keygen(vendor.path(), "acme");
    let v1 = signed(vendor.path(), "acme-greeter.wasm", &built.v1, &key);
    let reference = registry.reference("acme/greeter", "0.1.0");
    push(vendor.path(), &v1, &reference);

    // A host on the operator's folder, which must hold signed components only.
    let operator = Operator::new(
        &registry,
        &public,
        "[pool]\nrequire_signatures = true\nwatch_settle = \"100ms\"",
    );
    let host_config = std::fs::read_to_string(&operator.config).expect("read the configuration");
    let host = TestHost::start_with_config(&host_config);
    let data = host.data_dir().to_owned();

    // Inspect: nothing is run or installed.
    let (code, out, err) = operator.cli_in(&data, &["plugins", "inspect", &reference]);
    assert_eq!(code, Some(0), "{out}{err}");
    for expected in [
        "acme-greeter 0.1.0",
        "Greets people.",
        "Acme Tools <dev@acme.example>",
        "signed by `acme`",
        "schedulezero:handler/handler@0.1.0: supported by this host",
        "config greeting",
        "MISSING",
    ] {
        assert!(out.contains(expected), "inspect says {expected:?}:\n{out}");
    }
    assert!(!operator.plugins().join("acme-greeter.wasm").exists());

    // Without a terminal and without --yes, nothing is installed.
    let (code, _, err) = operator.cli_in(&data, &["plugins", "install", &reference]);
    assert_eq!(code, Some(1));
    assert!(err.contains("consent_required"), "{err}");
    assert!(!operator.plugins().join("acme-greeter.wasm").exists());

    // Install with consent: the host takes it in from the precompiled artifact.
    let started = Instant::now();
    let (code, out, err) = operator.cli_in(&data, &["plugins", "install", &reference, "--yes"]);
    let install_time = started.elapsed();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("installed acme-greeter 0.1.0"), "{out}");
    let lock = std::fs::read_to_string(operator.plugins().join("schedulezero.lock")).expect("lock");
    for expected in [
        "[plugins.acme-greeter]",
        "version = \"0.1.0\"",
        "signer = \"acme\"",
        "pinned = ",
        "installed_at = ",
    ] {
        assert!(
            lock.contains(expected),
            "the lockfile records {expected:?}:\n{lock}"
        );
    }
    let loaded_at = host
        .wait_for(Duration::from_secs(20), || async {
            let (status, p) = host.get("/api/v1/plugins/acme-greeter").await;
            (status == 200 && p["version"] == "0.1.0").then_some(Instant::now())
        })
        .await;

    // Grant what it asks for, schedule it, see it run.
    let (code, out, err) = crate::support::cli_against(
        &host.url,
        &data,
        &[
            "plugins",
            "grant",
            "acme-greeter",
            "config",
            "greeting",
            "Howdy",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (status, s) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "greet", "handler": "acme-greeter", "method": "greet",
                    "params": {"name": "Ada", "times": 2},
                    "trigger": {"type": "cron", "expression": "0 9 * * *"}}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let ran = host.run_schedule("greet").await;
    let first_result = started.elapsed();
    assert_eq!(
        ran["executions"][0]["result"]["message"], "Howdy, Ada! Howdy, Ada!",
        "{ran}"
    );
    eprintln!(
        "catalog figures: install (pull + verify + precompile) {:.0} ms; install to loaded {:.0} ms; install to first result {:.0} ms",
        install_time.as_secs_f64() * 1e3,
        (loaded_at - started).as_secs_f64() * 1e3,
        first_result.as_secs_f64() * 1e3
    );

    // A newer version: update takes the newest semver tag, with the same checks.
    let v2 = signed(vendor.path(), "acme-greeter.wasm", &built.v2, &key);
    push(
        vendor.path(),
        &v2,
        &registry.reference("acme/greeter", "0.2.0"),
    );
    let (code, out, err) = operator.cli_in(&data, &["plugins", "update", "acme-greeter", "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("replaced 0.1.0 with acme-greeter 0.2.0"),
        "{out}"
    );
    host.wait_for(Duration::from_secs(20), || async {
        let (_, p) = host.get("/api/v1/plugins/acme-greeter").await;
        (p["version"] == "0.2.0").then_some(())
    })
    .await;
    let (code, _, err) = operator.cli_in(&data, &["plugins", "update", "acme-greeter", "--yes"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("nothing_to_do") && err.contains("newest"),
        "{err}"
    );

    // Roll back: the kept 0.1.0, checked again; the grant still holds.
    let (code, out, err) = operator.cli_in(&data, &["plugins", "rollback", "acme-greeter"]);
    assert_eq!(code, Some(0), "{out}{err}");
    host.wait_for(Duration::from_secs(20), || async {
        let (_, p) = host.get("/api/v1/plugins/acme-greeter").await;
        (p["version"] == "0.1.0").then_some(())
    })
    .await;
    let ran = host.run_schedule("greet").await;
    assert_eq!(
        ran["executions"][0]["result"]["message"],
        "Howdy, Ada! Howdy, Ada!"
    );
    let (code, _, err) = operator.cli_in(&data, &["plugins", "rollback", "acme-greeter"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing_to_do"), "{err}");
    let (code, out, _) = operator.cli_in(&data, &["plugins", "verify"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("acme-greeter") && out.contains("signed by `acme`"),
        "{out}"
    );

    // A component changed in the folder behind the catalog's back: the host refuses it (the
    // folder requires signatures) and the version before it keeps serving; verify says so.
    let mut tampered = std::fs::read(operator.plugins().join("acme-greeter.wasm")).expect("file");
    let at = find(&tampered, b"Greets people.").expect("the description is in the manifest");
    tampered[at] = b'g';
    std::fs::write(operator.plugins().join("acme-greeter.wasm"), &tampered).expect("write");
    host.wait_for(Duration::from_secs(20), || async {
        let (_, events) = host.get("/api/v1/events").await;
        events
            .to_string()
            .contains("pool.require_signatures")
            .then_some(())
    })
    .await;
    let ran = host.run_schedule("greet").await;
    assert_eq!(
        ran["executions"][0]["result"]["message"],
        "Howdy, Ada! Howdy, Ada!"
    );
    let (code, out, _) = operator.cli_in(&data, &["plugins", "verify"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("changed or replaced outside the catalog"),
        "{out}"
    );
    assert!(out.contains("changed after it was signed"), "{out}");

    // Removing it takes the file, the entry and the kept versions.
    let (code, out, err) = operator.cli_in(&data, &["plugins", "remove", "acme-greeter"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!operator.plugins().join("acme-greeter.wasm").exists());
    let kept = std::fs::read_dir(data.join("catalog/blobs"))
        .expect("blobs")
        .count();
    assert_eq!(kept, 0);
    operator.assert_clean();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A server on loopback that answers every request with garbage.
fn garbage_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"not\": 1,]",
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_its_reason_and_changes_nothing() {
    let built = tokio::task::spawn_blocking(built).await.expect("build");
    let registry = Registry::start();
    let vendor = tempfile::tempdir().expect("temp dir");
    let (key, public) = keygen(vendor.path(), "acme");
    let (stranger, _) = keygen(vendor.path(), "stranger");
    let v1 = signed(vendor.path(), "a.wasm", &built.v1, &key);
    push(
        vendor.path(),
        &v1,
        &registry.reference("acme/greeter", "0.1.0"),
    );
    let v2 = signed(vendor.path(), "b.wasm", &built.v2, &key);

    let operator = Operator::new(&registry, &public, "");
    let (code, out, err) = operator.cli(&[
        "plugins",
        "install",
        &registry.reference("acme/greeter", "0.1.0"),
        "--yes",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let before = operator.state();

    let lib = schedulezero::catalog::Registry::new(
        std::slice::from_ref(&registry.addr),
        &schedulezero::catalog::Credentials::default(),
    )
    .expect("registry client");
    let publish = |repository: &'static str, bytes: Vec<u8>| {
        let reference = registry.reference(repository, "0.2.0");
        let lib = &lib;
        async move {
            let r = schedulezero::catalog::oci::parse_reference(&reference).expect("reference");
            lib.push(
                &r,
                bytes,
                json!({"architecture": "wasm", "os": "wasip2"}),
                Default::default(),
            )
            .await
            .expect("push");
            reference
        }
    };

    let mut cases: Vec<(String, &str, String, &[&str])> = Vec::new();
    // A moving tag, and a version that is not there.
    cases.push((
        "a tag that is not semver".into(),
        "bad_reference",
        registry.reference("acme/greeter", "latest"),
        &[],
    ));
    cases.push((
        "a version not in the registry".into(),
        "artifact_not_found",
        registry.reference("acme/greeter", "9.9.9"),
        &[],
    ));
    // A registry that is down, and one that answers garbage.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    cases.push((
        "a registry that is down".into(),
        "registry_unavailable",
        format!("{closed}/acme/greeter:0.1.0"),
        &["--plain-http"],
    ));
    cases.push((
        "a registry answering garbage".into(),
        "registry_unavailable",
        format!("{}/acme/greeter:0.1.0", garbage_registry()),
        &["--plain-http"],
    ));
    // An unknown signer.
    let by_stranger = signed(vendor.path(), "c.wasm", &built.v2, &stranger);
    cases.push((
        "an unknown signer".into(),
        "signature_refused",
        publish("acme/stranger", by_stranger).await,
        &[],
    ));
    // Bytes changed after signing (the manifest's text).
    let mut changed = v2.clone();
    let at = find(&changed, b"Greets people.").expect("description");
    changed[at] = b'g';
    cases.push((
        "bytes changed after signing".into(),
        "signature_refused",
        publish("acme/changed", changed).await,
        &[],
    ));
    // A signature whose bytes are wrong (its key id still names the trusted key).
    let mut forged = v2.clone();
    let end = signature_end(&forged);
    forged[end - 1] ^= 0x55;
    cases.push((
        "a bad signature".into(),
        "signature_refused",
        publish("acme/forged", forged).await,
        &[],
    ));
    // A component for a newer contract, signed.
    let mut future = built.v2.clone();
    let contract = b"schedulezero:handler/handler@0.1.0";
    while let Some(at) = find(&future, contract) {
        future[at + contract.len() - 3] = b'9';
    }
    let future = signed(vendor.path(), "d.wasm", &future, &key);
    cases.push((
        "a component for a newer contract".into(),
        "unsupported_component",
        publish("acme/future", future).await,
        &[],
    ));
    // A core module, not a component.
    cases.push((
        "not a component".into(),
        "not_a_component",
        publish("acme/module", b"\0asm\x01\0\0\0".to_vec()).await,
        &[],
    ));
    // Bytes the registry serves that are not those of the digest: changed in its storage, and
    // cut short (an interrupted download).
    let (other, _) = keygen(vendor.path(), "other");
    let corrupt = signed(vendor.path(), "e.wasm", &built.v2, &other);
    let digest = format!("sha256:{}", schedulezero::runtime::sha256_hex(&corrupt));
    let corrupt_ref = publish("acme/corrupt", corrupt.clone()).await;
    let mut flipped = corrupt.clone();
    *flipped.last_mut().expect("bytes") ^= 1;
    std::fs::write(registry.blob_file(&digest), &flipped).expect("change the stored blob");
    cases.push((
        "bytes not matching their digest".into(),
        "digest_mismatch",
        corrupt_ref,
        &[],
    ));
    let (third, _) = keygen(vendor.path(), "third");
    let short = signed(vendor.path(), "f.wasm", &built.v2, &third);
    let digest = format!("sha256:{}", schedulezero::runtime::sha256_hex(&short));
    let short_ref = publish("acme/short", short.clone()).await;
    std::fs::write(registry.blob_file(&digest), &short[..short.len() / 2]).expect("cut the blob");
    cases.push((
        "an interrupted download".into(),
        "registry_unavailable",
        short_ref,
        &[],
    ));

    for (what, code, reference, extra) in &cases {
        let mut args = vec!["plugins", "install", reference.as_str(), "--yes"];
        args.extend_from_slice(extra);
        let (status, out, err) = operator.cli(&args);
        assert_eq!(status, Some(1), "{what} was not refused:\n{out}{err}");
        assert!(
            err.contains(&format!("error[{code}]")),
            "{what}: wanted {code}:\n{err}"
        );
        assert_eq!(
            operator.state(),
            before,
            "{what} changed the installed version"
        );
        operator.assert_clean();
    }

    // An artifact far larger than the limit is refused by its announced size.
    let small = Operator::new(&registry, &public, "[pool]\nmax_component_size = 4096");
    let (status, _, err) = small.cli(&[
        "plugins",
        "install",
        &registry.reference("acme/greeter", "0.1.0"),
        "--yes",
    ]);
    assert_eq!(status, Some(1));
    assert!(
        err.contains("error[artifact_too_large]") && err.contains("not downloaded"),
        "{err}"
    );
    assert!(!small.plugins().join("acme-greeter.wasm").exists());

    // A signed component for a name its key is not trusted for.
    let elsewhere = signed(vendor.path(), "g.wasm", &built.v2, &key);
    let reference = publish("acme/elsewhere", elsewhere).await;
    let (status, _, err) = operator.cli(&[
        "plugins", "install", &reference, "--yes", "--name", "billing",
    ]);
    assert_eq!(status, Some(1));
    assert!(err.contains("not trusted for the name `billing`"), "{err}");

    // Files: one that is not a component.
    let junk = operator.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").expect("write");
    let (status, _, err) =
        operator.cli(&["plugins", "install", junk.to_str().expect("utf-8"), "--yes"]);
    assert_eq!(status, Some(1));
    assert!(err.contains("error[not_a_component]"), "{err}");
    assert_eq!(operator.state(), before);
    operator.assert_clean();
}

/// Where the signature section (the first after the preamble) ends.
fn signature_end(wasm: &[u8]) -> usize {
    let (mut at, mut size, mut shift) = (9usize, 0usize, 0);
    loop {
        let b = wasm[at];
        at += 1;
        size |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return at + size;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_over_the_api_needs_the_admin_token_and_the_reviewed_digest() {
    let built = tokio::task::spawn_blocking(built).await.expect("build");
    let registry = Registry::start();
    let vendor = tempfile::tempdir().expect("temp dir");
    let (key, public) = keygen(vendor.path(), "acme");
    let v1 = signed(vendor.path(), "a.wasm", &built.v1, &key);
    let reference = registry.reference("acme/greeter", "0.1.0");
    push(vendor.path(), &v1, &reference);
    let (api, admin) = ("api-token-0123456789", "admin-token-0123456789");
    let operator = Operator::new(
        &registry,
        &public,
        &format!("[server]\napi_token = {api:?}\nadmin_token = {admin:?}"),
    );
    let host =
        TestHost::start_with_config(&std::fs::read_to_string(&operator.config).expect("config"));
    let http = {
        schedulezero::install_crypto_provider();
        reqwest::Client::new()
    };
    let call = |method: reqwest::Method, path: &str, token: &str, body: Option<Value>| {
        let r = http
            .request(method, format!("{}{path}", host.url))
            .bearer_auth(token);
        let r = match body {
            Some(b) => r.json(&b),
            None => r,
        };
        async move {
            let response = r.send().await.expect("the host answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    // A call the host refuses, with its status and code.
    let refused = |request: (reqwest::Method, &'static str, &'static str, Option<Value>),
                   (want, code): (u16, &'static str)| {
        let (method, path, token, body) = request;
        let reply = call(method, path, token, body);
        async move {
            let (status, e) = reply.await;
            assert_eq!(
                (status, e["error"]["code"].as_str()),
                (want, Some(code)),
                "{path}: {e}"
            );
        }
    };

    let (status, view) = call(reqwest::Method::GET, "/api/v1/catalog", api, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["can_install"], false);
    assert_eq!(view["trusted_keys"][0]["name"], "acme");
    let inspect = json!({"reference": reference});
    refused(
        (
            reqwest::Method::POST,
            "/api/v1/catalog/inspect",
            api,
            Some(inspect.clone()),
        ),
        (403, "forbidden"),
    )
    .await;
    let (status, review) = call(
        reqwest::Method::POST,
        "/api/v1/catalog/inspect",
        admin,
        Some(inspect),
    )
    .await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["name"], "acme-greeter");
    assert_eq!(review["signature"]["status"], "verified");
    assert_eq!(review["problems"], json!([]));
    let digest = review["digest"].as_str().expect("digest").to_owned();
    let pinned = review["pinned"].as_str().expect("pinned").to_owned();

    // The consent step: no consent, or another digest, installs nothing.
    refused(
        (
            reqwest::Method::POST,
            "/api/v1/catalog/install",
            admin,
            Some(json!({"reference": pinned, "digest": digest, "consent": false})),
        ),
        (409, "consent_required"),
    )
    .await;
    refused(
        (
            reqwest::Method::POST,
            "/api/v1/catalog/install",
            admin,
            Some(json!({"reference": pinned, "digest": "sha256:00", "consent": true})),
        ),
        (409, "consent_required"),
    )
    .await;
    assert!(!operator.plugins().join("acme-greeter.wasm").exists());
    refused(
        (
            reqwest::Method::POST,
            "/api/v1/catalog/install",
            admin,
            Some(json!({"reference": "/etc/passwd.wasm", "digest": digest, "consent": true})),
        ),
        (400, "bad_reference"),
    )
    .await;

    let (status, outcome) = call(
        reqwest::Method::POST,
        "/api/v1/catalog/install",
        admin,
        Some(json!({"reference": pinned, "digest": digest, "consent": true})),
    )
    .await;
    assert_eq!(status, 201, "{outcome}");
    assert_eq!(outcome["installed"]["signer"], "acme");
    // Loaded at once, not after the folder watch.
    let (status, p) = call(
        reqwest::Method::GET,
        "/api/v1/plugins/acme-greeter",
        api,
        None,
    )
    .await;
    assert_eq!((status, p["version"].as_str()), (200, Some("0.1.0")), "{p}");

    let (status, view) = call(reqwest::Method::GET, "/api/v1/catalog", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(view["can_install"], true);
    let row = &view["installed"][0];
    assert_eq!(row["name"], "acme-greeter");
    assert_eq!(row["entry"]["digest"], digest.as_str());
    assert_eq!(row["verification"]["ok"], true, "{row}");
    assert_eq!(row["running"], "0.1.0");

    refused(
        (
            reqwest::Method::GET,
            "/api/v1/catalog/acme-greeter/update",
            admin,
            None,
        ),
        (409, "nothing_to_do"),
    )
    .await;
    refused(
        (
            reqwest::Method::POST,
            "/api/v1/catalog/acme-greeter/rollback",
            admin,
            None,
        ),
        (409, "nothing_to_do"),
    )
    .await;
    refused(
        (
            reqwest::Method::DELETE,
            "/api/v1/catalog/acme-greeter",
            api,
            None,
        ),
        (403, "forbidden"),
    )
    .await;
    let (status, removed) = call(
        reqwest::Method::DELETE,
        "/api/v1/catalog/acme-greeter",
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert!(!operator.plugins().join("acme-greeter.wasm").exists());
    refused(
        (
            reqwest::Method::DELETE,
            "/api/v1/catalog/acme-greeter",
            admin,
            None,
        ),
        (404, "not_installed"),
    )
    .await;
}
