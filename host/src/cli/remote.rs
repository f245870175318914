//! The client commands: `schedules ...` and `executions` talk to a running host over `/api/v1`
//! (URL and token from flags or the environment) and print tables, or the API's JSON with `--json`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::config::Config;

/// Where the host is and how to print.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The host's base URL. Default: http:// and the configured listen address.
    #[arg(long, global = true, env = "SCHEDULEZERO_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `schedules` and its subcommands.
#[derive(Debug, Args)]
pub struct SchedulesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: SchedulesCommand,
}

/// `schedules` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Create a schedule: a handler's method on a cron expression, an interval or a date.
    Add(Box<AddArgs>),
    /// List schedules.
    List {
        /// Only this handler's.
        #[arg(long)]
        handler: Option<String>,
        /// Only paused ones.
        #[arg(long, conflicts_with = "state")]
        paused: bool,
        /// Only those in this state: active, paused, or completed (no fire time left).
        #[arg(long, value_parser = ["active", "paused", "completed"])]
        state: Option<String>,
    },
    /// Delete a schedule.
    Rm {
        /// The schedule id.
        id: String,
    },
    /// Pause a schedule: it stops firing until resumed.
    Pause {
        /// The schedule id.
        id: String,
    },
    /// Resume a paused schedule from now on (or catching up on what it missed).
    Resume {
        /// The schedule id.
        id: String,
        /// Run the fire times missed while paused, by the schedule's coalesce policy.
        #[arg(long)]
        catch_up: bool,
    },
    /// Run a schedule now, outside its trigger.
    Run {
        /// The schedule id.
        id: String,
        /// Wait for the run to end and print its outcome.
        #[arg(long)]
        wait: bool,
    },
}

/// Arguments of `schedules add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The handler (a plugin name, or a remote handler's id).
    pub handler: String,
    /// The method.
    pub method: String,
    /// The params, as JSON.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// The schedule id. Default: a new UUID.
    #[arg(long)]
    pub id: Option<String>,
    /// A cron expression (5 fields, or 6 with seconds first).
    #[arg(long, group = "when", value_name = "EXPR")]
    pub cron: Option<String>,
    /// An interval, such as `90s`, `15m` or `1h 30m`.
    #[arg(long, group = "when", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
    /// A date: ISO 8601 (with an offset, or host local time) or a Unix timestamp.
    #[arg(long, group = "when", value_name = "DATE")]
    pub at: Option<String>,
    /// Accept an --at date in the past: the run is due at once, and --misfire-grace-time
    /// decides whether it runs or is recorded as missed.
    #[arg(long, requires = "at")]
    pub allow_past: bool,
    /// The IANA time zone a cron expression is read in. Default: UTC.
    #[arg(long, requires = "cron", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Attempts per run, the first included.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// The delay before the first retry (it doubles, with jitter).
    #[arg(long, value_name = "DURATION")]
    pub retry_backoff: Option<String>,
    /// A timeout per attempt (tighter than the plugin's own).
    #[arg(long, value_name = "DURATION")]
    pub attempt_timeout: Option<String>,
    /// How many runs may be in progress at once.
    #[arg(long)]
    pub max_running: Option<u32>,
    /// How late a run may start and still run.
    #[arg(long, value_name = "DURATION")]
    pub misfire_grace_time: Option<String>,
    /// Which missed fire times run after downtime: latest, earliest or all.
    #[arg(long)]
    pub coalesce: Option<String>,
    /// A random delay of up to this much added to each fire time.
    #[arg(long, value_name = "DURATION")]
    pub max_jitter: Option<String>,
    /// Create it paused.
    #[arg(long)]
    pub paused: bool,
    /// Replace a schedule with the same id.
    #[arg(long)]
    pub replace: bool,
}

/// Arguments of `executions`.
#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this schedule's.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Only this handler's.
    #[arg(long)]
    pub handler: Option<String>,
    /// Only this status (running, success, retry, error, skipped, missed).
    #[arg(long)]
    pub status: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Arguments of `handlers`.
#[derive(Debug, Args)]
pub struct HandlersArgs {
    #[command(subcommand)]
    action: Option<HandlersAction>,
    #[command(flatten)]
    client: ClientArgs,
}

/// What `handlers` does besides listing.
#[derive(Debug, clap::Subcommand)]
enum HandlersAction {
    /// Forget a remote handler that went away for good: it is no longer listed, pinged or
    /// called, until it registers again.
    Forget {
        /// The remote handler's id.
        id: String,
    },
}

/// A failed request: what to print and the exit code.
#[derive(Debug)]
struct Failure(String, Option<Value>);

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(config: &Config, args: &ClientArgs) -> Result<Self, Failure> {
        let base = args
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.server.listen));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Failure(format!("cannot build an HTTP client: {e}"), None))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: config.server.api_token.clone(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            Failure(
                format!(
                    "cannot reach the host at {}: {e} (is `schedulezero serve` running? set --url or SCHEDULEZERO_URL)",
                    self.base
                ),
                None,
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure(format!("cannot read the reply: {e}"), None))?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Failure(
                    format!("the host answered {status} with a body that is not JSON"),
                    None,
                )
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("http_error");
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        Err(Failure(format!("error[{code}]: {message}"), Some(value)))
    }
}

fn report(result: Result<(), Failure>, json_out: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, body)) => {
            if json_out {
                println!(
                    "{}",
                    body.unwrap_or_else(
                        || json!({ "error": { "code": "unreachable", "message": message } })
                    )
                );
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a `schedules` subcommand.
pub async fn schedules(config: &Config, args: SchedulesArgs) -> ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        schedules_with(&client, args.command, json_out).await
    }
    .await;
    report(result, json_out)
}

fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn schedules_with(
    client: &Client,
    command: SchedulesCommand,
    json_out: bool,
) -> Result<(), Failure> {
    use reqwest::Method;
    match command {
        SchedulesCommand::Add(a) => {
            let body = add_body(*a)?;
            let created = client
                .send(Method::POST, "/api/v1/schedules", Some(body))
                .await?;
            if json_out {
                println!("{created}");
            } else {
                println!(
                    "schedule {} created: {} {}.{}, next fire {}",
                    created["id"].as_str().unwrap_or_default(),
                    created["trigger_text"].as_str().unwrap_or_default(),
                    created["handler"].as_str().unwrap_or_default(),
                    created["method"].as_str().unwrap_or_default(),
                    created["next_fire_time_local"].as_str().unwrap_or("none"),
                );
            }
        }
        SchedulesCommand::List {
            handler,
            paused,
            state,
        } => {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut path = "/api/v1/schedules?limit=1000".to_owned();
                if let Some(h) = &handler {
                    path.push_str(&format!("&handler={}", encode(h)));
                }
                if paused {
                    path.push_str("&paused=true");
                }
                if let Some(state) = &state {
                    path.push_str(&format!("&state={state}"));
                }
                if let Some(a) = &after {
                    path.push_str(&format!("&after={}", encode(a)));
                }
                let page = client.send(Method::GET, &path, None).await?;
                if let Some(list) = page["schedules"].as_array() {
                    all.extend(list.iter().cloned());
                }
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
            if json_out {
                println!("{}", json!({ "schedules": all }));
            } else {
                print_schedules(&all);
            }
        }
        SchedulesCommand::Rm { id } => {
            client
                .send(
                    Method::DELETE,
                    &format!("/api/v1/schedules/{}", encode(&id)),
                    None,
                )
                .await?;
            if json_out {
                println!("{}", json!({ "deleted": id }));
            } else {
                println!("schedule {id} deleted");
            }
        }
        SchedulesCommand::Pause { id } => {
            let s = client
                .send(
                    Method::POST,
                    &format!("/api/v1/schedules/{}/pause", encode(&id)),
                    None,
                )
                .await?;
            if json_out {
                println!("{s}");
            } else {
                println!("schedule {id} paused");
            }
        }
        SchedulesCommand::Resume { id, catch_up } => {
            let s = client
                .send(
                    Method::POST,
                    &format!("/api/v1/schedules/{}/resume", encode(&id)),
                    Some(json!({ "catch_up": catch_up })),
                )
                .await?;
            if json_out {
                println!("{s}");
            } else {
                println!(
                    "schedule {id} resumed, next fire {}",
                    s["next_fire_time_local"].as_str().unwrap_or("none")
                );
            }
        }
        SchedulesCommand::Run { id, wait } => {
            let path = format!(
                "/api/v1/schedules/{}/run{}",
                encode(&id),
                if wait { "?wait=true" } else { "" }
            );
            let r = client.send(Method::POST, &path, None).await?;
            if json_out {
                println!("{r}");
            } else if wait {
                let status = r["run"]["status"].as_str().unwrap_or_default();
                println!(
                    "run {} of {id}: {status} after {} attempt(s)",
                    r["run"]["id"].as_str().unwrap_or_default(),
                    r["attempts"]
                );
                if let Some(e) = r["error"].as_object() {
                    println!(
                        "  error[{}]: {}",
                        e["code"].as_str().unwrap_or_default(),
                        e["message"].as_str().unwrap_or_default()
                    );
                }
                if status != "success" {
                    return Err(Failure(format!("run of {id} ended with {status}"), None));
                }
            } else {
                println!(
                    "run {} of {id} started",
                    r["run"]["id"].as_str().unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn add_body(a: AddArgs) -> Result<Value, Failure> {
    let params: Value = serde_json::from_str(&a.params)
        .map_err(|e| Failure(format!("--params is not valid JSON: {e}"), None))?;
    let trigger = match (a.cron, a.every, a.at) {
        (Some(expr), _, _) => match a.timezone {
            Some(tz) => json!({ "type": "cron", "expression": expr, "timezone": tz }),
            None => json!(expr),
        },
        (None, Some(every), _) => {
            json!({ "type": "interval", "every_seconds": every.as_secs_f64() })
        }
        (None, None, Some(at)) => {
            let run_date = at.parse::<f64>().map_or_else(|_| json!(at), |ts| json!(ts));
            json!({ "type": "date", "run_date": run_date })
        }
        (None, None, None) => {
            return Err(Failure(
                "say when: --cron EXPR, --every DURATION or --at DATE".into(),
                None,
            ));
        }
    };
    let mut policy = serde_json::Map::new();
    let mut set = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            policy.insert(key.to_owned(), v);
        }
    };
    set("max_attempts", a.max_attempts.map(Value::from));
    set("retry_backoff", a.retry_backoff.map(Value::from));
    set("timeout", a.attempt_timeout.map(Value::from));
    set("max_running", a.max_running.map(Value::from));
    set("misfire_grace_time", a.misfire_grace_time.map(Value::from));
    set("coalesce", a.coalesce.map(Value::from));
    set("max_jitter", a.max_jitter.map(Value::from));
    let mut body = json!({
        "handler": a.handler,
        "method": a.method,
        "params": params,
        "trigger": trigger,
        "allow_past_date": a.allow_past,
        "paused": a.paused,
    });
    if let Some(id) = a.id {
        body["id"] = json!(id);
    }
    if !policy.is_empty() {
        body["policy"] = Value::Object(policy);
    }
    if a.replace {
        body["conflict_policy"] = json!("replace");
    }
    Ok(body)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_schedules(all: &[Value]) {
    println!(
        "{:<28} {:<24} {:<30} {:<9} NEXT FIRE",
        "ID", "HANDLER.METHOD", "TRIGGER", "STATE"
    );
    for s in all {
        println!(
            "{:<28} {:<24} {:<30} {:<9} {}",
            text(&s["id"]),
            format!("{}.{}", text(&s["handler"]), text(&s["method"])),
            text(&s["trigger_text"]),
            text(&s["state"]),
            text(&s["next_fire_time_local"]),
        );
    }
    println!("{} schedule(s)", all.len());
}

/// Runs `executions`.
pub async fn executions(config: &Config, args: ExecutionsArgs) -> ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        let mut path = format!("/api/v1/executions?limit={}", args.limit.clamp(1, 1000));
        for (key, value) in [
            ("schedule", &args.schedule),
            ("handler", &args.handler),
            ("status", &args.status),
        ] {
            if let Some(v) = value {
                path.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        let page = client.send(reqwest::Method::GET, &path, None).await?;
        if json_out {
            println!("{page}");
            return Ok(());
        }
        println!(
            "{:>6} {:<28} {:<24} {:>7} {:<8} {:<27} {:>10}  ERROR",
            "ID", "SCHEDULE", "HANDLER.METHOD", "ATTEMPT", "STATUS", "STARTED", "MS"
        );
        let list = page["executions"].as_array().cloned().unwrap_or_default();
        for e in &list {
            println!(
                "{:>6} {:<28} {:<24} {:>7} {:<8} {:<27} {:>10}  {}",
                text(&e["id"]),
                text(&e["schedule_id"]),
                format!("{}.{}", text(&e["handler"]), text(&e["method"])),
                format!("{}/{}", text(&e["attempt"]), text(&e["max_attempts"])),
                text(&e["status"]),
                text(&e["started_at"]),
                e["duration_ms"]
                    .as_f64()
                    .map_or_else(|| "-".into(), |d| format!("{d:.2}")),
                match e["not_retried"].as_str() {
                    Some(why) => format!(
                        "{} (not retried: {why})",
                        e["error"].as_str().unwrap_or_default()
                    ),
                    None => e["error"].as_str().unwrap_or_default().to_owned(),
                },
            );
        }
        println!("{} record(s)", list.len());
        Ok(())
    }
    .await;
    report(result, json_out)
}

/// Lists a running host's handlers, plugins and remote handlers alike (`/api/v1/handlers`).
pub async fn handlers(config: &Config, args: HandlersArgs) -> ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        if let Some(HandlersAction::Forget { id }) = &args.action {
            let gone = client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/handlers/{}", encode(id)),
                    None,
                )
                .await?;
            if json_out {
                println!("{gone}");
            } else {
                println!("forgot remote handler {id} ({})", text(&gone["address"]));
            }
            return Ok(());
        }
        // Every page: a host may know many remote handlers.
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/api/v1/handlers?limit=1000&after={}", encode(a)),
                None => "/api/v1/handlers?limit=1000".to_owned(),
            };
            let page = client.send(reqwest::Method::GET, &path, None).await?;
            all.extend(page["handlers"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let listed = serde_json::json!({ "handlers": all });
        if json_out {
            println!("{listed}");
            return Ok(());
        }
        println!(
            "{:<20} {:<7} {:<12} {:>7} {:>8} {:>7} {:>10} {:<27}  ADDRESS",
            "ID", "KIND", "STATUS", "METHODS", "CALLS", "ERRORS", "LAST RTT", "LAST SEEN"
        );
        let list = listed["handlers"].as_array().cloned().unwrap_or_default();
        for h in &list {
            // A plugin's status is its lifecycle state when it has one (cold, hot, ...).
            let status = h["state"].as_str().or(h["status"].as_str()).unwrap_or("-");
            println!(
                "{:<20} {:<7} {:<12} {:>7} {:>8} {:>7} {:>10} {:<27}  {}",
                text(&h["id"]),
                text(&h["kind"]),
                status,
                h["methods"].as_array().map_or(0, Vec::len),
                h["calls"]
                    .as_u64()
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                h["errors"]
                    .as_u64()
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                h["last_latency_ms"]
                    .as_f64()
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.2} ms")),
                h["last_seen"].as_str().unwrap_or("-"),
                h["address"].as_str().unwrap_or("-"),
            );
        }
        println!("{} handler(s)", list.len());
        Ok(())
    }
    .await;
    report(result, json_out)
}

/// The plugins of a running host, with their state and metrics (`/api/v1/plugins`). Fails
/// quickly when no host answers there.
pub async fn live_plugins(config: &Config, url: Option<String>) -> Result<Value, String> {
    let args = ClientArgs { url, json: true };
    let mut client = Client::new(config, &args).map_err(|f| f.0)?;
    client.http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    client
        .send(reqwest::Method::GET, "/api/v1/plugins", None)
        .await
        .map_err(|f| format!("no host answered at {}: {}", client.base, f.0))
}

/// Prints a running host's plugins as a table (or its JSON).
pub fn print_live_plugins(listed: &Value, json_out: bool) {
    if json_out {
        println!("{listed}");
        return;
    }
    let empty = Vec::new();
    let plugins = listed["plugins"].as_array().unwrap_or(&empty);
    println!(
        "{:<20} {:<10} {:<8} {:>9} {:>10} {:>8} {:>7} {:>6} {:>11}  LAST USED",
        "NAME", "VERSION", "STATE", "INSTANCES", "MEMORY", "CALLS", "ERRORS", "COLD", "CALL P50"
    );
    for p in plugins {
        let s = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        println!(
            "{:<20} {:<10} {:<8} {:>9} {:>10} {:>8} {:>7} {:>6} {:>11}  {}",
            s("name"),
            s("version"),
            s("state"),
            format!("{}/{}", n("busy_instances"), n("live_instances")),
            human_bytes(n("memory_bytes")),
            n("calls"),
            p["errors"]["total"].as_u64().unwrap_or(0),
            n("cold_starts"),
            match p["call_us_p50"].as_f64() {
                Some(us) if n("calls") > 0 => format!("{us:.1} µs"),
                _ => "-".into(),
            },
            p["last_used"].as_str().unwrap_or("never"),
        );
    }
    let rejected = listed["rejected"].as_array().unwrap_or(&empty);
    if !rejected.is_empty() {
        println!("\nrejected:");
        for r in rejected {
            println!(
                "  {}: {}",
                r["file"].as_str().unwrap_or("?"),
                r["error"].as_str().unwrap_or("?")
            );
        }
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        0 => "0".into(),
        b if b < 1 << 20 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}
