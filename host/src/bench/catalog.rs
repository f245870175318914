//! `schedulezero bench catalog`: installing a signed component from an OCI registry on loopback
//! (Debian's `docker-registry`, started for the run): the install as the CLI does it (pull +
//! digest + signature + contract checks + compile + describe + placement), with a fresh artifact
//! cache and with the artifact already compiled; then, on a real host, the time from the API's
//! install to the component's first result (compiling: a removal frees the artifact).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{BenchError, BenchHost, err, spread};
use crate::catalog::{Catalog, Consent, Credentials, Source};
use crate::config::Config;
use crate::runtime::Runtime;

/// The component installed.
const COMPONENT: &str = "ding-dong";

/// The figures.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogFigures {
    /// Installs measured of each kind.
    pub samples: usize,
    /// The component.
    pub component: &'static str,
    /// Its size, signed.
    pub bytes: u64,
    /// Install with an empty artifact cache: pull, checks, compile, describe, place (ms).
    pub install_cold_ms_p50: f64,
    /// The same, p99.
    pub install_cold_ms_p99: f64,
    /// Of which pulling (ms).
    pub pull_ms_p50: f64,
    /// Of which the digest, signature and contract checks (ms).
    pub verify_ms_p50: f64,
    /// Of which compiling and describing (ms).
    pub precompile_cold_ms_p50: f64,
    /// Install when the artifact is already compiled (a reinstall, a rollback) (ms).
    pub install_cached_ms_p50: f64,
    /// On a running host: `POST /api/v1/catalog/install` until the first call's result (ms).
    /// Each sample compiles: a removal between samples frees the artifact, as removals do.
    pub host_install_to_first_result_ms_p50: f64,
    /// The same, p99.
    pub host_install_to_first_result_ms_p99: f64,
}

/// A registry on a free loopback port; stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Result<Self, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(err)?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nlog:\n  level: error\n",
                dir.join("storage").display()
            ),
        )
        .map_err(err)?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                BenchError(format!(
                    "bench catalog runs a registry on loopback with `docker-registry` (Debian's package of distribution): {e}"
                ))
            })?;
        let registry = Self { child, addr };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            if Instant::now() > until {
                return Err(err("docker-registry did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the registry this benchmark needs can be started here.
pub fn available() -> bool {
    Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs the benchmark.
pub async fn catalog(quick: bool) -> Result<CatalogFigures, BenchError> {
    let samples = if quick { 3 } else { 10 };
    let dir = tempfile::tempdir().map_err(err)?;
    let registry = Registry::start(dir.path())?;

    // The vendor: a key, the example component signed with it, pushed.
    let (secret_pem, public) = crate::trust::generate();
    let secret_file = dir.path().join("bench.key");
    std::fs::write(&secret_file, secret_pem).map_err(err)?;
    let secret = crate::trust::SecretKey::from_file(&secret_file).map_err(err)?;
    let original = std::fs::read(
        Path::new(crate::config::BUILTIN_PLUGINS_DIR).join(format!("{COMPONENT}.wasm")),
    )
    .map_err(|e| {
        BenchError(format!(
            "the example plugin {COMPONENT}: {e} (build with cargo build --release)"
        ))
    })?;
    let signed = crate::trust::sign(&original, &secret).map_err(err)?;
    let bytes = signed.len() as u64;
    let reference = format!("{}/bench/{COMPONENT}:0.1.0", registry.addr);
    let parsed = crate::catalog::oci::parse_reference(&reference).map_err(err)?;
    let client = crate::catalog::Registry::new(
        std::slice::from_ref(&registry.addr),
        &Credentials::default(),
    )
    .map_err(err)?;
    client
        .push(
            &parsed,
            signed,
            serde_json::json!({"architecture": "wasm", "os": "wasip2"}),
            Default::default(),
        )
        .await
        .map_err(err)?;

    // The operator: each install into a fresh folder; cold ones with a fresh artifact cache.
    let config_for = |root: &Path, cache: &Path| {
        let mut c = Config {
            plugins_dir: root.join("plugins"),
            data_dir: root.join("data"),
            cache_dir: Some(cache.to_owned()),
            ..Config::default()
        };
        c.catalog.plain_http = vec![registry.addr.clone()];
        c.trust.keys.insert(
            "bench".into(),
            crate::config::TrustedKeyConfig {
                key: Some(public.line()),
                file: None,
                plugins: Vec::new(),
            },
        );
        c
    };
    let install = |root: std::path::PathBuf, cache: std::path::PathBuf| {
        let config = config_for(&root, &cache);
        let source = Source::Registry(parsed.clone());
        async move {
            std::fs::create_dir_all(&config.plugins_dir).map_err(err)?;
            let runtime = Runtime::new(config).map_err(err)?;
            let catalog = Catalog::new(Arc::new(runtime), &Credentials::default());
            let started = Instant::now();
            let fetched = catalog.fetch(&source).await.map_err(err)?;
            let consent = Consent {
                given: true,
                digest: Some(fetched.digest.clone()),
                ..Consent::default()
            };
            let outcome = catalog.install(&fetched, &consent).await.map_err(err)?;
            Ok::<_, BenchError>((started.elapsed(), outcome))
        }
    };
    let (mut cold, mut pull, mut verify, mut compile, mut cached) =
        (vec![], vec![], vec![], vec![], vec![]);
    let shared_cache = dir.path().join("shared-cache");
    for i in 0..samples {
        let root = dir.path().join(format!("cold-{i}"));
        let (took, o) = install(root.clone(), root.join("cache")).await?;
        cold.push(ms(took));
        pull.push(o.fetch_ms);
        verify.push(o.verify_ms);
        compile.push(o.precompile_ms);
        let _ = std::fs::remove_dir_all(&root);
    }
    // Once to fill the shared cache, then measured.
    install(dir.path().join("warm-fill"), shared_cache.clone()).await?;
    for i in 0..samples {
        let root = dir.path().join(format!("warm-{i}"));
        cached.push(ms(install(root.clone(), shared_cache.clone()).await?.0));
        let _ = std::fs::remove_dir_all(&root);
    }

    // A host: install over the API, then call.
    let host_root = dir.path().join("host");
    let host_config = config_for(&host_root, &host_root.join("data/artifacts"));
    std::fs::create_dir_all(&host_config.plugins_dir).map_err(err)?;
    let file = host_root.join("schedulezero.toml");
    std::fs::write(&file, toml::to_string(&host_config).map_err(err)?).map_err(err)?;
    let mut host = BenchHost::start(
        &host_config.data_dir,
        &["--config", &file.display().to_string()],
    )?;
    let http = reqwest::Client::new();
    let post = |path: String, body: serde_json::Value| {
        let request = http.post(format!("{}{path}", host.url)).json(&body);
        async move {
            let response = request.send().await.map_err(err)?;
            let status = response.status();
            let value: serde_json::Value = response.json().await.map_err(err)?;
            if !status.is_success() {
                return Err(BenchError(format!("{path}: {status} {value}")));
            }
            Ok::<_, BenchError>(value)
        }
    };
    let review = post(
        "/api/v1/catalog/inspect".into(),
        serde_json::json!({ "reference": reference }),
    )
    .await?;
    let digest = review["digest"].clone();
    let mut to_result = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        post(
            "/api/v1/catalog/install".into(),
            serde_json::json!({ "reference": reference, "digest": digest, "consent": true }),
        )
        .await?;
        let called = post(
            format!("/api/v1/handlers/{COMPONENT}/call"),
            serde_json::json!({ "method": "ping", "params": {} }),
        )
        .await?;
        if !called["error"].is_null() {
            return Err(BenchError(format!(
                "the installed component failed: {called}"
            )));
        }
        to_result.push(ms(started.elapsed()));
        let removed = http
            .delete(format!("{}/api/v1/catalog/{COMPONENT}", host.url))
            .send()
            .await
            .map_err(err)?;
        if !removed.status().is_success() {
            return Err(BenchError(format!("removing: {}", removed.status())));
        }
    }
    host.stop();
    drop(registry);
    let (install_cold_ms_p50, install_cold_ms_p99) = spread(cold);
    Ok(CatalogFigures {
        samples,
        component: COMPONENT,
        bytes,
        install_cold_ms_p50,
        install_cold_ms_p99,
        pull_ms_p50: spread(pull).0,
        verify_ms_p50: spread(verify).0,
        precompile_cold_ms_p50: spread(compile).0,
        install_cached_ms_p50: spread(cached).0,
        host_install_to_first_result_ms_p50: spread(to_result.clone()).0,
        host_install_to_first_result_ms_p99: spread(to_result).1,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The figures as a table.
pub fn table(f: &CatalogFigures) -> String {
    let mut out = format!(
        "{:<60} {:>10}\n",
        format!(
            "install {} ({} KiB, signed), {} samples",
            f.component,
            f.bytes / 1024,
            f.samples
        ),
        "ms"
    );
    for (what, v) in [
        ("install, empty artifact cache (p50)", f.install_cold_ms_p50),
        ("install, empty artifact cache (p99)", f.install_cold_ms_p99),
        ("  of which pull", f.pull_ms_p50),
        (
            "  of which digest, signature and contract checks",
            f.verify_ms_p50,
        ),
        ("  of which compile and describe", f.precompile_cold_ms_p50),
        (
            "install, artifact compiled before (p50)",
            f.install_cached_ms_p50,
        ),
        (
            "host: API install to first result (p50)",
            f.host_install_to_first_result_ms_p50,
        ),
        (
            "host: API install to first result (p99)",
            f.host_install_to_first_result_ms_p99,
        ),
    ] {
        out.push_str(&format!("{what:<60} {v:>10.1}\n"));
    }
    out
}
