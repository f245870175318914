//! `schedulezero bench http`: what one outbound GET costs a hot component, next to the same
//! request from native Rust, and the cold start of `cloud-processor` next to ding-dong's. In one
//! process, samples interleaved so all see the same machine:
//! - a local HTTP server on 127.0.0.1 (axum) answering `GET /` with 2 bytes;
//! - native: reqwest, a new connection per request (as the host opens one per guest request),
//!   and, for reference, a kept-alive connection;
//! - a hot component: misbehave's `fetch` through the runtime's call path (the SDK's client over
//!   `wasi:http`, the host's checks, DNS-free: the grant names the address), and misbehave's `ok`
//!   (a call that does nothing), so the call's own cost can be taken out.
//!
//! The host's overhead is `fetch − native (new connection)`; the outbound path's alone is
//! `fetch − ok − native`.

use std::time::Instant;

use serde::Serialize;

use super::runtime::config;
use super::{BenchError, err, spread, us};
use crate::config::PluginConfig;
use crate::runtime::{JobContext, Runtime};

/// The results, with the JSON keys the docs use.
#[derive(Debug, Clone, Serialize)]
pub struct HttpFigures {
    /// Requests measured per kind.
    pub samples: usize,
    /// Native GET on a new connection, median, µs.
    pub native_us_p50: f64,
    /// The same, 99th percentile.
    pub native_us_p99: f64,
    /// Native GET on a kept-alive connection, median, µs.
    pub native_keepalive_us_p50: f64,
    /// A hot component's GET (the whole call), median, µs.
    pub component_us_p50: f64,
    /// The same, 99th percentile.
    pub component_us_p99: f64,
    /// A hot component's call that does nothing, median, µs.
    pub noop_call_us_p50: f64,
    /// `component − native`, medians, µs: what the host adds to a request (target ≤ 100).
    pub host_overhead_us_p50: f64,
    /// `component − noop call − native`, medians, µs: what the outbound path adds beyond a call.
    pub outbound_path_us_p50: f64,
    /// ding-dong's cold start (load the artifact, instantiate), median, µs.
    pub ding_dong_cold_start_us_p50: f64,
    /// cloud-processor's cold start, median, µs.
    pub cloud_processor_cold_start_us_p50: f64,
    /// The components' sizes, bytes.
    pub ding_dong_bytes: u64,
    /// The same for cloud-processor.
    pub cloud_processor_bytes: u64,
}

/// A local server answering every request with `ok`.
async fn server() -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    // The body is read: a server that closes on an unread body resets the connection.
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        drop(body);
        "ok"
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

async fn native(client: &reqwest::Client, url: &str) -> Result<f64, BenchError> {
    let t = Instant::now();
    let body = client
        .get(url)
        .send()
        .await
        .map_err(err)?
        .bytes()
        .await
        .map_err(err)?;
    let took = us(t.elapsed());
    if &body[..] != b"ok" {
        return Err(err("the server answered something else"));
    }
    Ok(took)
}

async fn component(rt: &Runtime, ctx: &JobContext, params: &str) -> Result<f64, BenchError> {
    let t = Instant::now();
    let out = rt
        .invoke("misbehave", "fetch", params, ctx)
        .await
        .map_err(|e| err(format!("misbehave.fetch: {e}")))?;
    let took = us(t.elapsed());
    if !out.result.contains("\"status\":200") {
        return Err(err(format!("misbehave.fetch answered {}", out.result)));
    }
    Ok(took)
}

/// Cold starts (load from the artifact + instantiate, as the call measured them) of `plugin`.
async fn cold_starts(
    rt: &Runtime,
    plugin: &str,
    method: &str,
    params: &str,
    n: usize,
) -> Result<Vec<f64>, BenchError> {
    let p = rt.load(plugin).await.map_err(err)?.plugin;
    let ctx = JobContext::adhoc();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        p.unload();
        let o = rt
            .invoke(plugin, method, params, &ctx)
            .await
            .map_err(|e| err(format!("{plugin}.{method}: {e}")))?;
        if !o.stats.cold_start {
            return Err(err("a sample was not a cold start"));
        }
        out.push((o.stats.load_ns + o.stats.instantiate_ns) as f64 / 1e3);
    }
    Ok(out)
}

/// Runs the benchmark and returns its figures.
pub async fn http(quick: bool) -> Result<HttpFigures, BenchError> {
    let samples = if quick { 300 } else { 3000 };
    let (addr, server_task) = server().await?;
    let base = format!("http://{addr}");
    let data = tempfile::tempdir().map_err(err)?;
    let key = data.path().join("api_key");
    std::fs::write(&key, "bench-key").map_err(err)?;
    let mut c = config(data.path());
    let granted = PluginConfig {
        http: vec![base.clone()],
        config: [("endpoint".to_owned(), base.clone())].into(),
        secrets: [("api_key".to_owned(), format!("file:{}", key.display()))].into(),
        ..PluginConfig::default()
    };
    c.plugins.insert("misbehave".into(), granted.clone());
    c.plugins.insert("cloud-processor".into(), granted);
    let rt = Runtime::new(c).map_err(err)?;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(err)?;
    let kept = reqwest::Client::new();
    let ctx = JobContext::adhoc();
    let url = format!("{base}/");
    let params = serde_json::json!({ "url": url, "max_redirects": 0 }).to_string();
    // Warm: the plugin loads, the first connections are made.
    component(&rt, &ctx, &params).await?;
    native(&fresh, &url).await?;
    native(&kept, &url).await?;
    let (mut n_fresh, mut n_kept, mut wasm, mut noop) = (vec![], vec![], vec![], vec![]);
    for _ in 0..samples {
        n_fresh.push(native(&fresh, &url).await?);
        n_kept.push(native(&kept, &url).await?);
        wasm.push(component(&rt, &ctx, &params).await?);
        let t = Instant::now();
        rt.invoke("misbehave", "ok", "", &ctx).await.map_err(err)?;
        noop.push(us(t.elapsed()));
    }
    let cold_n = samples / 10;
    let dd = cold_starts(&rt, "ding-dong", "ping", "", cold_n).await?;
    let cp = cold_starts(&rt, "cloud-processor", "health_report", "{}", cold_n).await?;
    server_task.abort();
    let size = |name: &str| rt.plugin(name).map_or(0, |p| p.file().size);
    let (native_us_p50, native_us_p99) = spread(n_fresh);
    let (component_us_p50, component_us_p99) = spread(wasm);
    let (noop_call_us_p50, _) = spread(noop);
    Ok(HttpFigures {
        samples,
        native_us_p50,
        native_us_p99,
        native_keepalive_us_p50: spread(n_kept).0,
        component_us_p50,
        component_us_p99,
        noop_call_us_p50,
        host_overhead_us_p50: component_us_p50 - native_us_p50,
        outbound_path_us_p50: component_us_p50 - noop_call_us_p50 - native_us_p50,
        ding_dong_cold_start_us_p50: spread(dd).0,
        cloud_processor_cold_start_us_p50: spread(cp).0,
        ding_dong_bytes: size("ding-dong"),
        cloud_processor_bytes: size("cloud-processor"),
    })
}

/// The figures as a table.
pub fn table(f: &HttpFigures) -> String {
    let mut out = format!(
        "{:<52} {:>10} {:>10}\n",
        format!("outbound GET ({} samples)", f.samples),
        "p50",
        "p99"
    );
    let mut row = |what: &str, p50: f64, p99: Option<f64>| {
        out.push_str(&format!(
            "{what:<52} {:>10} {:>10}\n",
            format!("{p50:.1} µs"),
            p99.map_or_else(String::new, |p| format!("{p:.1} µs")),
        ));
    };
    row(
        "native reqwest, new connection",
        f.native_us_p50,
        Some(f.native_us_p99),
    );
    row(
        "native reqwest, kept-alive connection",
        f.native_keepalive_us_p50,
        None,
    );
    row(
        "hot component (misbehave fetch, whole call)",
        f.component_us_p50,
        Some(f.component_us_p99),
    );
    row(
        "hot component call doing nothing (misbehave ok)",
        f.noop_call_us_p50,
        None,
    );
    row(
        "host overhead: component − native",
        f.host_overhead_us_p50,
        None,
    );
    row(
        "outbound path: component − no-op call − native",
        f.outbound_path_us_p50,
        None,
    );
    row(
        &format!("cold start ding-dong ({} KiB)", f.ding_dong_bytes / 1024),
        f.ding_dong_cold_start_us_p50,
        None,
    );
    row(
        &format!(
            "cold start cloud-processor ({} KiB)",
            f.cloud_processor_bytes / 1024
        ),
        f.cloud_processor_cold_start_us_p50,
        None,
    );
    out
}
