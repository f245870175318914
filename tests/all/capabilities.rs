//! Capabilities, deny by default: cloud-processor reads its granted directory and posts to a real
//! vendor server on 127.0.0.1 (plain and TLS with the test's own CA) with a secret granted by
//! reference; beside every positive case, the refusal: a destination not granted, a redirect out
//! of the list, a name that resolves to loopback, a relative request with a forged `Host`, a
//! response over the limit, too many requests, a directory not granted, a path out of a granted
//! one, a secret not granted, a grant for something not requested.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::host::TestHost;
use crate::support::{TestConfig, TestRuntime, read};
use schedulezero::capability::Review;
use schedulezero::config::{DirectoryGrant, PluginConfig};
use schedulezero::runtime::JobContext;

/// A request the vendor server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The vendor's API: a real HTTP server on 127.0.0.1 that records what it receives.
struct Vendor {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers by path: `.../results` with a receipt, `/big` with 5000 bytes, `/redirect?to=URL` with
/// a 302 there, anything else with `hello`.
async fn answer(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        seen.len()
    };
    match parts.uri.path() {
        p if p.ends_with("/results") => {
            axum::Json(json!({"receipt": format!("r-{n}")})).into_response()
        }
        "/big" => "x".repeat(5000).into_response(),
        "/redirect" => {
            let to = parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("to="))
                .unwrap_or("/")
                .to_owned();
            (StatusCode::FOUND, [("location", to)]).into_response()
        }
        _ => "hello".into_response(),
    }
}

impl Vendor {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (app, tls) = (app.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(tcp).await {
                                let _ = http
                                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await;
                        }
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    async fn plain() -> Self {
        Self::start(None).await
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A CA of the test's own, and a certificate it signed for 127.0.0.1 and localhost.
struct TestCa {
    ca_pem: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TestCa {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "ScheduleZero test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// A runtime whose `plugin` has the grants `grant` writes into its configuration.
fn granted(
    plugin: &str,
    grant: impl FnOnce(&mut PluginConfig, &mut schedulezero::config::Config),
) -> TestRuntime {
    let mut c = TestConfig::new();
    let mut p = PluginConfig::default();
    grant(&mut p, &mut c.config);
    c.config.plugins.insert(plugin.to_owned(), p);
    c.start()
}

/// misbehave's `fetch` of `url` (GET, redirects followed), with `extra` params.
async fn fetch(
    t: &TestRuntime,
    url: &str,
    extra: Value,
) -> Result<Value, schedulezero::runtime::InvokeError> {
    let mut params = json!({ "url": url });
    if let (Some(p), Value::Object(more)) = (params.as_object_mut(), extra) {
        p.extend(more);
    }
    t.call("misbehave", "fetch", &params.to_string()).await
}

/// An input directory with three files, and a secret file holding `s3cret`.
fn input_and_secret() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a.txt"), "1 2 3\nfour\n").unwrap();
    std::fs::write(input.join("b.csv"), "10,20\n30\n").unwrap();
    std::fs::write(input.join("c.log"), "nothing to add\n").unwrap();
    let secret = dir.path().join("api_key");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let reference = format!("file:{}", secret.display());
    (dir, reference)
}

/// cloud-processor granted everything it asks for, against `vendor` (`scheme`).
fn cloud_processor(
    vendor: &Vendor,
    scheme: &str,
    dir: &Path,
    secret: &str,
    ca: Option<&Path>,
) -> TestRuntime {
    let base = vendor.url(scheme);
    granted("cloud-processor", |p, c| {
        p.http = vec![base.clone()];
        p.directories
            .insert("input".into(), DirectoryGrant::Path(dir.join("input")));
        p.config.insert("endpoint".into(), format!("{base}/v1/"));
        p.secrets.insert("api_key".into(), secret.to_owned());
        if let Some(ca) = ca {
            c.outbound.ca_files = vec![ca.to_owned()];
        }
    })
}

async fn process_and_upload(
    t: &TestRuntime,
    run_id: &str,
) -> Result<Value, schedulezero::runtime::InvokeError> {
    let ctx = JobContext {
        run_id: run_id.into(),
        job_id: "nightly-upload".into(),
        ..JobContext::adhoc()
    };
    let out = t
        .runtime
        .invoke(
            "cloud-processor",
            "process_and_upload",
            r#"{"label": "site-7"}"#,
            &ctx,
        )
        .await?;
    assert_eq!(
        out.stats.measure.usage.directories,
        vec!["input".to_owned()]
    );
    Ok(serde_json::from_str(&out.result).unwrap())
}

/// What the vendor must have received from one upload.
fn check_upload(seen: &Seen, vendor: &Vendor, run_id: &str) {
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/results")
    );
    assert_eq!(seen.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(seen.header("idempotency-key"), Some(run_id));
    assert_eq!(seen.header("host"), Some(vendor.addr.to_string().as_str()));
    let report: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(report["job_id"], "nightly-upload");
    assert_eq!(report["label"], "site-7");
    assert_eq!(report["totals"]["files"], 3);
    assert_eq!(report["totals"]["lines"], 5);
    assert_eq!(report["totals"]["total"], 66.0);
    assert_eq!(report["files"][0]["name"], "a.txt");
    assert_eq!(report["files"][1]["total"], 60.0);
}

#[tokio::test]
async fn cloud_processor_aggregates_and_uploads_with_its_secret() {
    let vendor = Vendor::plain().await;
    let (dir, secret) = input_and_secret();
    let t = cloud_processor(&vendor, "http", dir.path(), &secret, None);
    let result = process_and_upload(&t, "run-1").await.unwrap();
    assert_eq!(result["files"], 3);
    assert_eq!(result["bytes"], 35);
    assert_eq!(result["status"], 200);
    assert_eq!(result["receipt"], "r-1", "{result}");
    let seen = vendor.seen();
    assert_eq!(seen.len(), 1);
    check_upload(&seen[0], &vendor, "run-1");

    let report = t
        .call(
            "cloud-processor",
            "health_report",
            r#"{"note": "all quiet"}"#,
        )
        .await
        .unwrap();
    assert_eq!(report, json!({"status": 200, "waiting_files": 3}));
    let seen = vendor.seen();
    assert_eq!(seen[1].path, "/v1/health");
    let health: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(
        (health["status"].as_str(), health["note"].as_str()),
        (Some("ok"), Some("all quiet"))
    );

    // Counted by destination.
    let traffic = t.runtime.plugin("cloud-processor").unwrap().http_traffic();
    let host = &traffic[&vendor.addr.to_string()];
    assert_eq!((host.requests, host.denied, host.errors), (2, 0, 0));
    assert!(host.bytes_out > 300 && host.bytes_in > 10, "{host:?}");
}

#[tokio::test]
async fn tls_with_the_operators_ca_and_not_without_it() {
    let ca = TestCa::new();
    let vendor = Vendor::start(Some(ca.acceptor.clone())).await;
    let (dir, secret) = input_and_secret();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let t = cloud_processor(&vendor, "https", dir.path(), &secret, Some(&ca_file));
    let result = process_and_upload(&t, "run-tls").await.unwrap();
    assert_eq!(result["receipt"], "r-1");
    check_upload(&vendor.seen()[0], &vendor, "run-tls");

    // The system's roots alone do not trust the test CA: nothing is sent.
    let t = cloud_processor(&vendor, "https", dir.path(), &secret, None);
    let e = process_and_upload(&t, "run-untrusted").await.unwrap_err();
    assert_eq!(e.code(), "handler_failed", "{e}");
    assert!(e.to_string().contains("Tls"), "{e}");
    assert_eq!(vendor.seen().len(), 1);
}

#[tokio::test]
async fn a_destination_not_granted_is_refused_before_anything_is_sent() {
    let (vendor, other) = (Vendor::plain().await, Vendor::plain().await);
    let (dir, secret) = input_and_secret();
    // Granted the vendor; the endpoint points at another server.
    let t = granted("cloud-processor", |p, _| {
        p.http = vec![vendor.url("http")];
        p.directories.insert(
            "input".into(),
            DirectoryGrant::Path(dir.path().join("input")),
        );
        p.config.insert("endpoint".into(), other.url("http"));
        p.secrets.insert("api_key".into(), secret.clone());
    });
    let e = process_and_upload(&t, "run-2").await.unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    let want = format!(
        "http://{} is not granted to cloud-processor (granted: {})",
        other.addr,
        vendor.url("http")
    );
    assert!(e.to_string().contains(&want), "{e}");
    assert!(other.seen().is_empty() && vendor.seen().is_empty());
    let traffic = t.runtime.plugin("cloud-processor").unwrap().http_traffic();
    assert_eq!(traffic[&other.addr.to_string()].denied, 1);
}

#[tokio::test]
async fn a_redirect_out_of_the_list_is_not_followed() {
    let (vendor, other) = (Vendor::plain().await, Vendor::plain().await);
    let t = granted("misbehave", |p, _| p.http = vec![vendor.url("http")]);
    // Inside the list it is followed.
    let url = format!("{}/redirect?to=/landing", vendor.url("http"));
    let r = fetch(&t, &url, json!({})).await.unwrap();
    assert_eq!(
        (r["status"].as_u64(), r["body"].as_str()),
        (Some(200), Some("hello"))
    );
    let url = format!(
        "{}/redirect?to={}/stolen",
        vendor.url("http"),
        other.url("http")
    );
    let e = fetch(&t, &url, json!({})).await.unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    assert!(
        e.to_string()
            .contains(&format!("http://{} is not granted", other.addr)),
        "{e}"
    );
    assert!(other.seen().is_empty());
}

#[tokio::test]
async fn a_name_resolving_to_loopback_needs_a_grant_naming_the_address() {
    let vendor = Vendor::plain().await;
    let port = vendor.addr.port();
    let by_name = format!("http://localhost:{port}");
    let t = granted("misbehave", |p, _| p.http = vec![by_name.clone()]);
    let e = fetch(&t, &format!("{by_name}/x"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    assert!(e.to_string().contains("localhost resolves to"), "{e}");
    assert!(e.to_string().contains("loopback address"), "{e}");
    // `*://*:*` names no address either.
    let t = granted("misbehave", |p, _| p.http = vec!["*://*:*".into()]);
    let e = fetch(&t, &format!("{}/x", vendor.url("http")), json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is a loopback address"), "{e}");
    assert!(vendor.seen().is_empty());
    // A grant naming the address lets the name through.
    let t = granted("misbehave", |p, _| {
        p.http = vec![
            by_name.clone(),
            format!("http://127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
        ];
    });
    let r = fetch(&t, &format!("{by_name}/x"), json!({})).await.unwrap();
    assert_eq!(r["body"], "hello");
}

#[tokio::test]
async fn a_relative_request_and_a_forged_host_header_go_nowhere_else() {
    let vendor = Vendor::plain().await;
    let t = granted("misbehave", |p, _| p.http = vec![vendor.url("http")]);
    // No authority, the granted one in a Host header: refused, nothing sent.
    let host = vendor.addr.to_string();
    let e = t
        .call(
            "misbehave",
            "http_raw",
            &json!({"host_header": host}).to_string(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), "capability_denied" | "handler_failed"),
        "{e}"
    );
    assert!(vendor.seen().is_empty());
    // The granted authority with a forged Host: the header the server sees is the authority's.
    let said = t
        .call(
            "misbehave",
            "http_raw",
            &json!({"authority": host, "host_header": "evil.example", "path": "/h"}).to_string(),
        )
        .await
        .unwrap();
    assert!(said.as_str().unwrap().ends_with("status 200"), "{said}");
    let seen = vendor.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("host"), Some(host.as_str()));
}

#[tokio::test]
async fn responses_over_the_limit_and_requests_over_the_count_fail() {
    let vendor = Vendor::plain().await;
    let t = granted("misbehave", |p, _| {
        p.http = vec![vendor.url("http")];
        p.limits.http_max_response_bytes = Some(1000);
        p.limits.http_max_requests = Some(3);
    });
    let big = format!("{}/big", vendor.url("http"));
    let e = fetch(&t, &big, json!({})).await.unwrap_err();
    assert_eq!(e.code(), "handler_failed");
    assert!(
        e.to_string()
            .contains("limits.http_max_response_bytes (1000)"),
        "{e}"
    );
    let e = fetch(&t, &vendor.url("http"), json!({"times": 4}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    assert!(
        e.to_string()
            .contains("request 4 refused: at most 3 HTTP requests per call"),
        "{e}"
    );
    let three = fetch(&t, &vendor.url("http"), json!({"times": 3})).await;
    assert_eq!(three.unwrap()["status"], 200);
}

#[tokio::test]
async fn directories_are_confined_and_read_only_unless_granted_otherwise() {
    let root = tempfile::tempdir().unwrap();
    let (data, scratch) = (root.path().join("data"), root.path().join("scratch"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(data.join("in.txt"), "inside").unwrap();
    std::fs::write(root.path().join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.path().join("outside.txt"), data.join("link")).unwrap();
    let t = granted("misbehave", |p, _| {
        p.directories
            .insert("data".into(), DirectoryGrant::Path(data.clone()));
        p.directories
            .insert("scratch".into(), DirectoryGrant::Path(scratch.clone()));
    });
    let read = |path: &str| json!({"path": path}).to_string();
    assert_eq!(
        t.call("misbehave", "read_file", &read("/data/in.txt"))
            .await
            .unwrap(),
        "inside"
    );
    for escape in ["/data/../outside.txt", "/data/link", "/outside.txt"] {
        let e = t
            .call("misbehave", "read_file", &read(escape))
            .await
            .unwrap_err();
        assert!(
            matches!(e.code(), "capability_denied" | "handler_failed"),
            "{escape}: {e}"
        );
    }
    let write = |path: &str| json!({"path": path, "text": "written"}).to_string();
    let e = t
        .call("misbehave", "write_file", &write("/data/new.txt"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "capability_denied", "{e}");
    assert!(!data.join("new.txt").exists());
    t.call("misbehave", "write_file", &write("/scratch/new.txt"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(scratch.join("new.txt")).unwrap(),
        "written"
    );
}

#[tokio::test]
async fn what_is_not_granted_is_named_in_the_refusal() {
    let vendor = Vendor::plain().await;
    let (dir, secret) = input_and_secret();
    // No directory.
    let t = granted("cloud-processor", |p, _| {
        p.http = vec![vendor.url("http")];
        p.config.insert("endpoint".into(), vendor.url("http"));
        p.secrets.insert("api_key".into(), secret.clone());
    });
    let e = process_and_upload(&t, "run-3").await.unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    assert!(
        e.to_string().contains("directory `input` is not available"),
        "{e}"
    );
    // No secret.
    let t = granted("cloud-processor", |p, _| {
        p.http = vec![vendor.url("http")];
        p.directories.insert(
            "input".into(),
            DirectoryGrant::Path(dir.path().join("input")),
        );
        p.config.insert("endpoint".into(), vendor.url("http"));
    });
    let e = process_and_upload(&t, "run-4").await.unwrap_err();
    assert_eq!(e.code(), "capability_denied");
    assert!(
        e.to_string()
            .contains("secret `api_key` is requested but not granted"),
        "{e}"
    );
    // A secret whose reference does not resolve: named, its value never.
    let t = granted("cloud-processor", |p, _| {
        p.http = vec![vendor.url("http")];
        p.config.insert("endpoint".into(), vendor.url("http"));
        p.secrets
            .insert("api_key".into(), "env:SCHEDULEZERO_TEST_NO_SUCH_KEY".into());
    });
    let e = t
        .call("cloud-processor", "health_report", "{}")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("env:SCHEDULEZERO_TEST_NO_SUCH_KEY is not set"),
        "{e}"
    );
    assert!(vendor.seen().is_empty());
}

/// Grants through the API of a real host: refused when not requested, in effect at the next call
/// without a restart, recorded with who made them, never showing a secret's value; the traffic
/// and the run's use of hosts and directories visible in the API and `/metrics`.
#[tokio::test]
async fn grants_through_the_api_take_effect_at_the_next_call() {
    let vendor = Vendor::plain().await;
    let (dir, secret) = input_and_secret();
    let secret_path = secret.trim_start_matches("file:").to_owned();
    let host = TestHost::start();
    let grants = "/api/v1/plugins/cloud-processor/grants";
    let post = |body: Value| {
        host.http
            .post(format!("{}{grants}", host.url))
            .header("x-schedulezero-actor", "alice")
            .json(&body)
            .send()
    };
    // Refused: not requested, a secret by value, a plugin requesting nothing.
    for (body, want) in [
        (
            json!({"kind": "config", "key": "region", "value": "eu"}),
            "did not request config key `region`",
        ),
        (
            json!({"kind": "config", "key": "api_key", "value": "s3cret"}),
            "is a secret",
        ),
        (
            json!({"kind": "http", "destination": "*"}),
            "every destination",
        ),
    ] {
        let r = post(body).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!(matches!(status, 400 | 422), "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(want),
            "{v}"
        );
    }
    let r = host
        .http
        .post(format!("{}/api/v1/plugins/ding-dong/grants", host.url))
        .json(&json!({"kind": "http", "destination": "https://x.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);

    let body = json!({"method": "process_and_upload", "params": {}});
    let call = || host.post("/api/v1/handlers/cloud-processor/call", &body);
    let (status, v) = call().await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["error"]["code"], "capability_denied", "{v}");

    for body in [
        json!({"kind": "http", "destination": vendor.url("http")}),
        json!({"kind": "directory", "name": "input", "path": dir.path().join("input")}),
        json!({"kind": "config", "key": "endpoint", "value": vendor.url("http")}),
        json!({"kind": "secret", "key": "api_key", "reference": secret}),
    ] {
        let r = post(body).await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let (status, v) = call().await;
    assert_eq!((status, &v["error"]), (200, &Value::Null), "{v}");
    assert_eq!(v["result"]["files"], 3, "{v}");
    assert_eq!(
        vendor.seen()[0].header("authorization"),
        Some("Bearer s3cret")
    );

    let (_, view) = host.get(grants).await;
    let review: Review = read(view["capabilities"].clone());
    assert!(review.requested.iter().all(|r| r.is_granted()), "{view}");
    assert_eq!(view["events"][0]["actor"], "alice");
    assert_eq!(view["events"].as_array().unwrap().len(), 4);
    let (_, plugin) = host.get("/api/v1/plugins/cloud-processor").await;
    assert_eq!(
        plugin["http"][vendor.addr.to_string()]["requests"],
        1,
        "{plugin}"
    );
    let (_, figures) = host.get("/api/v1/metrics").await;
    let traffic = &figures["plugins"]["cloud-processor"]["http"][vendor.addr.to_string()];
    assert_eq!(
        (traffic["requests"].as_u64(), traffic["denied"].as_u64()),
        (Some(1), Some(0)),
        "{figures}"
    );
    // The execution records what the run reached.
    let (_, log) = host.get("/api/v1/executions?handler=cloud-processor").await;
    let reached = log["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["error"].is_null() && e["status"] == "success")
        .map(|e| e["usage"].clone())
        .unwrap();
    assert_eq!(reached["hosts"], json!([vendor.addr.to_string()]), "{log}");
    assert_eq!(reached["directories"], json!(["input"]));
    assert_eq!(reached["http_requests"], 1);
    let (_, _, metrics) = host.get_text("/metrics").await;
    let line = format!(
        "schedulezero_plugin_http_requests_total{{plugin=\"cloud-processor\",host=\"{}\"}} 1",
        vendor.addr
    );
    assert!(metrics.contains(&line), "{line}");
    // The secret's value is nowhere; its reference is.
    let shown = format!("{view}{plugin}{metrics}");
    assert!(!shown.contains("s3cret") && shown.contains(&secret_path));

    // Revoked: the next call is refused, no restart.
    let revoke = || {
        host.http
            .delete(format!("{}{grants}", host.url))
            .query(&[("kind", "http"), ("name", vendor.url("http").as_str())])
            .send()
    };
    assert_eq!(revoke().await.unwrap().status().as_u16(), 204);
    let (_, v) = call().await;
    assert_eq!(v["error"]["code"], "capability_denied", "{v}");
    assert_eq!(vendor.seen().len(), 1);
    assert_eq!(revoke().await.unwrap().status().as_u16(), 404);
}

/// A custom section at the end of a component (valid anywhere in its binary).
fn with_section(wasm: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::try_from(name.len()).unwrap()];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = wasm.to_vec();
    out.push(0);
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn the_manifest_is_read_without_running_and_a_bad_one_is_rejected() {
    let dir = crate::support::plugins_dir_with(&[]);
    let original = std::fs::read(crate::support::builtin_plugins().join("ding-dong.wasm")).unwrap();
    let manifest = |m: &str| with_section(&original, "schedulezero-manifest", m.as_bytes());
    // The same manifest twice is one manifest; a different second one is refused.
    let start = original
        .windows(20)
        .position(|w| w == br#"{"manifest_version":"#)
        .expect("ding-dong has a manifest");
    let mut json = serde_json::Deserializer::from_slice(&original[start..]).into_iter::<Value>();
    json.next().unwrap().unwrap();
    let same = std::str::from_utf8(&original[start..start + json.byte_offset()]).unwrap();
    std::fs::write(dir.path().join("ding-dong.wasm"), manifest(same)).unwrap();
    let mut c = TestConfig::new();
    c.config.plugins_dir = dir.path().to_owned();
    let t = c.start();
    let loaded = t.runtime.load("ding-dong").await.unwrap();
    assert_eq!(loaded.plugin.manifest().config[0].key, "location");
    std::fs::write(
        dir.path().join("ding-dong.wasm"),
        manifest(r#"{"manifest_version":1,"http":[{"destination":"*","purpose":""}]}"#),
    )
    .unwrap();
    let Err(e) = t.runtime.load("ding-dong").await else {
        panic!("a component with two different manifests loaded");
    };
    assert!(
        e.to_string()
            .contains("capabilities manifest: the component holds 2 different"),
        "{e}"
    );
    // The host reads it from the file alone, as `plugins inspect` does for an operator.
    let m = schedulezero::capability::Manifest::read(&original)
        .unwrap()
        .unwrap();
    assert_eq!(m.manifest_version, 1);
}

#[tokio::test]
async fn a_secret_printed_or_failed_with_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "tok-4242-secret\n").unwrap();
    let t = granted("misbehave", |p, _| {
        p.secrets
            .insert("token".into(), format!("file:{}", file.display()));
    });
    let e = t.call("misbehave", "leak_secret", "{}").await.unwrap_err();
    assert_eq!(e.to_string(), "handler failed: the token is [secret]");
    let e = t
        .call("misbehave", "leak_secret", r#"{"panic": true}"#)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "trap");
    assert!(e.to_string().contains("the token is [secret]"), "{e}");
    assert!(!e.to_string().contains("tok-4242"), "{e}");
}

/// `plugins grant|revoke|grants` against a running host: the change recorded as the CLI user's,
/// a refusal with the host's reason and a non-zero exit.
#[tokio::test]
async fn the_cli_grants_and_revokes() {
    let host = TestHost::start();
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        crate::support::cli_against(&host.url, data.path(), args, &[("USER", "carol")])
    };
    let (code, out, err) = cli(&[
        "plugins",
        "grant",
        "cloud-processor",
        "http",
        "https://api.vendor.example",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("cloud-processor: http granted https://api.vendor.example"),
        "{out}"
    );
    let (code, _, err) = cli(&[
        "plugins",
        "grant",
        "cloud-processor",
        "config",
        "region",
        "eu",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("error[grant_refused]: cloud-processor did not request config key `region`"),
        "{err}"
    );
    let (code, out, _) = cli(&[
        "plugins",
        "grant",
        "cloud-processor",
        "secret",
        "api_key",
        "env:VENDOR_KEY",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, err) = cli(&["plugins", "grants", "cloud-processor"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("granted from env:VENDOR_KEY"), "{out}");
    assert!(
        out.contains("MISSING"),
        "the directory and the endpoint are not granted: {out}"
    );
    assert!(out.contains("by cli (carol)"), "{out}");
    let (code, out, _) = cli(&[
        "plugins",
        "revoke",
        "cloud-processor",
        "http",
        "https://api.vendor.example",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = cli(&[
        "plugins",
        "revoke",
        "cloud-processor",
        "http",
        "https://api.vendor.example",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("error[grant_not_found]"), "{err}");
    let (_, view) = host.get("/api/v1/plugins/cloud-processor/grants").await;
    assert_eq!(view["events"][0]["actor"], "cli (carol)", "{view}");
    assert_eq!(view["events"][0]["action"], "revoked");
}
