//! cloud-processor: the service-catalog pattern of ScheduleZero. A vendor ships this handler to a
//! client's site; on the client's schedule it reads the files in the directory the operator
//! granted as `input`, aggregates them, and posts the result to the vendor's API (the `endpoint`
//! the operator configured) with the API key the operator granted as the secret `api_key`.
//!
//! It asks for nothing more (see `CAPABILITIES`), and gets only what the operator grants:
//!
//! ```toml
//! [plugins.cloud-processor]
//! http = ["https://api.vendor.example"]
//! directories = { input = "/srv/exports" }
//! config = { endpoint = "https://api.vendor.example/v1" }
//! secrets = { api_key = "env:VENDOR_API_KEY" }
//! ```

use schedulezero_sdk::capabilities::{Capabilities, Directory, Http, Setting};
use schedulezero_sdk::schemars::{self, JsonSchema};
use schedulezero_sdk::serde_json::{Value, json};
use schedulezero_sdk::{
    Handler, HandlerError, JobContext, Methods, config, dirs, export_handler, http, log,
};
use serde::{Deserialize, Serialize};

/// The largest file read, in bytes; larger ones are counted as skipped.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Default)]
struct CloudProcessor {
    uploads: u64,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct ProcessParams {
    /// Only files whose name ends with this (such as `.csv`); all files when absent.
    suffix: Option<String>,
    /// A label sent with the result (such as the client's site name).
    label: Option<String>,
}

/// What one file holds.
#[derive(Serialize, Clone)]
struct FileSummary {
    name: String,
    bytes: u64,
    lines: u64,
    words: u64,
    /// The sum of the numbers found in the file (each whitespace- or comma-separated token that
    /// reads as one).
    total: f64,
}

#[derive(Serialize)]
struct Processed {
    files: usize,
    skipped: usize,
    bytes: u64,
    lines: u64,
    total: f64,
    status: u16,
    receipt: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct HealthParams {
    /// The status reported (default `ok`).
    status: Option<String>,
    /// A note sent with it.
    note: Option<String>,
}

#[derive(Serialize)]
struct Reported {
    status: u16,
    waiting_files: usize,
}

impl CloudProcessor {
    fn process_and_upload(
        &mut self,
        ctx: &JobContext,
        p: ProcessParams,
    ) -> Result<Processed, HandlerError> {
        let endpoint = config::require("endpoint")?;
        let key = config::secret("api_key")?;
        let (files, skipped) = read_input(p.suffix.as_deref())?;
        let bytes = files.iter().map(|f| f.bytes).sum();
        let lines = files.iter().map(|f| f.lines).sum();
        let total = files.iter().map(|f| f.total).sum();
        let report = json!({
            "run_id": ctx.run_id,
            "job_id": ctx.job_id,
            "label": p.label,
            "files": files,
            "skipped": skipped,
            "totals": {"files": files.len(), "bytes": bytes, "lines": lines, "total": total},
        });
        let response = http::post(format!("{}/results", endpoint.trim_end_matches('/')))
            .bearer(&key)
            // Retries of a run keep its id: the vendor can drop a result it already has.
            .header("idempotency-key", ctx.run_id.as_str())
            .json(&report)?
            .send()?
            .error_for_status()?;
        self.uploads += 1;
        let receipt = response
            .json::<Value>()
            .ok()
            .and_then(|v| v.get("receipt").and_then(Value::as_str).map(str::to_owned));
        log::info(format!(
            "uploaded {} files ({bytes} bytes) to {endpoint}: {}",
            files.len(),
            response.status()
        ));
        Ok(Processed {
            files: files.len(),
            skipped,
            bytes,
            lines,
            total,
            status: response.status(),
            receipt,
        })
    }

    fn health_report(
        &mut self,
        ctx: &JobContext,
        p: HealthParams,
    ) -> Result<Reported, HandlerError> {
        let endpoint = config::require("endpoint")?;
        let key = config::secret("api_key")?;
        let waiting = if dirs::is_granted("input") {
            read_input(None)?.0.len()
        } else {
            0
        };
        let report = json!({
            "handler": Self::NAME,
            "version": Self::VERSION,
            "status": p.status.as_deref().unwrap_or("ok"),
            "note": p.note,
            "uploads_this_instance": self.uploads,
            "waiting_files": waiting,
            "run_id": ctx.run_id,
        });
        let response = http::post(format!("{}/health", endpoint.trim_end_matches('/')))
            .bearer(&key)
            .json(&report)?
            .send()?
            .error_for_status()?;
        Ok(Reported {
            status: response.status(),
            waiting_files: waiting,
        })
    }
}

/// Summaries of the files in the `input` directory (sorted by name), and how many were skipped.
fn read_input(suffix: Option<&str>) -> Result<(Vec<FileSummary>, usize), HandlerError> {
    let dir = dirs::path("input");
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| HandlerError::denied(format!("directory `input` is not available: {e}")))?;
    let mut files = Vec::new();
    let mut skipped = 0;
    for entry in entries {
        let entry = entry.map_err(|e| HandlerError::failed(format!("listing input: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if suffix.is_some_and(|s| !name.ends_with(s)) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() && m.len() <= MAX_FILE_BYTES => m,
            _ => {
                skipped += 1;
                continue;
            }
        };
        let text = match std::fs::read(entry.path()) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        let total = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter_map(|t| t.parse::<f64>().ok())
            .filter(|n| n.is_finite())
            .sum();
        files.push(FileSummary {
            name,
            bytes: meta.len(),
            lines: text.lines().count() as u64,
            words: text.split_whitespace().count() as u64,
            total,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((files, skipped))
}

impl Handler for CloudProcessor {
    const NAME: &'static str = "cloud-processor";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Aggregates the files of a local directory and uploads the result to a vendor's API.";
    const CAPABILITIES: Capabilities = Capabilities {
        http: &[Http::new(
            "*://*:*",
            "The vendor's API: the operator grants the host of `endpoint`.",
        )],
        directories: &[Directory::read_only(
            "input",
            "The files to aggregate; never written to.",
        )],
        config: &[
            Setting::value(
                "endpoint",
                "The vendor API's base URL; results go to <endpoint>/results, reports to <endpoint>/health.",
            ),
            Setting::secret("api_key", "The vendor's API key, sent as a bearer token."),
        ],
        ..Capabilities::NONE
    };

    fn methods(m: &mut Methods<Self>) {
        m.method(
            "process_and_upload",
            "Reads the files in `input`, aggregates them (bytes, lines, words, the sum of their numbers) and posts the result to the vendor.",
            Self::process_and_upload,
        )
        .method(
            "health_report",
            "Posts a small status report to the vendor.",
            Self::health_report,
        );
    }
}

export_handler!(CloudProcessor);
