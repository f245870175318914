//! The `schedulezero` command line: flags and environment variables (clap), merged over the
//! configuration file, and one function per command. `main.rs` only calls [`main`]. The commands
//! that talk to a running host over its REST API are in [`remote`].

mod remote;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{Allocator, Config};
use crate::runtime::{InvokeError, JobContext, LoadReport, Runtime};

/// ScheduleZero: a job scheduler whose handlers are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
// A flag given twice takes its last value, as in most command-line tools.
#[command(
    name = "schedulezero",
    version,
    about,
    long_about = None,
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command takes. Each overrides the configuration file; the environment
/// variable named in its help sits between the two.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./schedulezero.toml when it exists.
    #[arg(long, global = true, env = "SCHEDULEZERO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of handler components (`<name>.wasm`). Default: the example plugins of this build.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_PLUGINS_DIR",
        value_name = "DIR"
    )]
    pub plugins_dir: Option<PathBuf>,
    /// Directory for the host's state. Default: the user's data directory, `schedulezero/` in it.
    #[arg(long, global = true, env = "SCHEDULEZERO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory for compiled components. Default: `<data-dir>/artifacts`.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_CACHE_DIR",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock limit of one call, such as `30s` or `500ms`.
    #[arg(long, global = true, env = "SCHEDULEZERO_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Linear memory cap of one instance, in MiB.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_MEMORY_MIB",
        value_name = "MIB"
    )]
    pub memory_mib: Option<u64>,
    /// Fuel budget of one call (roughly, wasm instructions). Default: unmetered.
    #[arg(long, global = true, env = "SCHEDULEZERO_FUEL", value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Largest result a call may return, in bytes.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_MAX_RESULT_BYTES",
        value_name = "BYTES"
    )]
    pub max_result_bytes: Option<usize>,
    /// How instances are allocated.
    #[arg(long, global = true, env = "SCHEDULEZERO_ALLOCATOR", value_enum)]
    pub allocator: Option<Allocator>,
    /// API token: `serve` requires it on every request; the client commands send it.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Log filter, in `tracing` syntax (`info`, `warn,schedulezero=debug`, ...).
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
    /// Log format on stderr.
    #[arg(long, global = true, env = "SCHEDULEZERO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one method of a handler, without a server, and print its JSON result on stdout.
    ///
    /// Timings go to stderr. On a handler error, trap, timeout or limit, the typed error is
    /// printed (JSON on stdout, a line on stderr) and the exit code is 1.
    Invoke(InvokeArgs),
    /// List and inspect the handler components in the plugins directory.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Print the effective configuration (file, environment and flags merged) as TOML.
    Config,
    /// Run the host: REST API, scheduler and the runtime over the plugins folder, until SIGTERM
    /// or SIGINT.
    Serve(ServeArgs),
    /// Create, list, remove, pause, resume and run schedules on a running host.
    Schedules(Box<remote::SchedulesArgs>),
    /// Show a running host's execution log, newest first.
    Executions(remote::ExecutionsArgs),
    /// List a running host's handlers: its plugins and the remote handlers registered over
    /// ZeroMQ, with status, calls, errors and (remote) last round trip and last seen.
    Handlers(remote::HandlersArgs),
    /// Measure this build on this machine and print a table (or JSON). Without a name, runs
    /// every benchmark.
    Bench(BenchArgs),
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark; all when absent.
    #[arg(value_enum)]
    pub which: Option<BenchName>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Smaller samples, for a quick look (under a minute).
    #[arg(long)]
    pub quick: bool,
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchName {
    /// A real host over its REST API: schedule creation, run-now latency, dispatch throughput,
    /// fire lateness, idle memory with 10,000 schedules.
    Scheduler,
    /// The runtime against bare wasmtime with the same component: cold start, instantiate, hot
    /// call; memory per instance; calls per second on 1 and 2 threads; a host's memory with 100
    /// plugins idle, after a burst and after cool-down.
    Runtime,
    /// A no-op call to remote handlers over ZeroMQ (a Rust SDK handler, a pyzmq one) against the
    /// same call to a hot plugin: median and p99 round trip, calls per second.
    Remote,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct ServeArgs {
    /// Address of the REST API. A non-loopback address needs an API token.
    #[arg(long, env = "SCHEDULEZERO_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// The store. Default: a SQLite file in the data directory.
    #[arg(long, env = "SCHEDULEZERO_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Where remote (ZeroMQ) handlers register.
    #[arg(long, env = "SCHEDULEZERO_ZMQ_LISTEN", value_name = "ENDPOINT")]
    pub zmq_listen: Option<String>,
    /// Sign and check every ZeroMQ message with this shared secret (at least 16 characters).
    #[arg(
        long,
        env = "SCHEDULEZERO_REMOTE_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub remote_secret: Option<String>,
}

/// Arguments of `invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The plugin, by name (`ding-dong` for `ding-dong.wasm`).
    pub plugin: String,
    /// The method, as `describe()` lists it.
    pub method: String,
    /// The params, as JSON. Default: null.
    pub params: Option<String>,
    /// The job id the handler sees.
    #[arg(long, default_value = "adhoc")]
    pub job_id: String,
    /// Call the method this many times in one process (timings of each go to stderr; the last
    /// result is printed). Shows instance reuse.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}

/// `plugins` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins. When a host is running (at --url, or the configured listen address),
    /// its plugins with their lifecycle state, live instances, memory and calls; otherwise load
    /// every component in the plugins directory and list what each says of itself, with the
    /// files that were rejected and why.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The running host's base URL. Default: http:// and the configured listen address.
        #[arg(long, env = "SCHEDULEZERO_URL", value_name = "URL")]
        url: Option<String>,
        /// Read the plugins directory, even when a host is running.
        #[arg(long)]
        local: bool,
    },
    /// Show one plugin in full: description, methods with their params schemas, file, hash,
    /// artifact and limits.
    Inspect {
        /// The plugin, by name.
        plugin: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl GlobalArgs {
    /// The configuration: the file (or defaults), then these flags and variables over it.
    pub fn resolve(&self) -> Result<Config, String> {
        let mut c = Config::load(self.config.as_deref()).map_err(|e| e.to_string())?;
        if let Some(v) = &self.plugins_dir {
            c.plugins_dir = v.clone();
        }
        if let Some(v) = &self.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = &self.cache_dir {
            c.cache_dir = Some(v.clone());
        }
        if let Some(v) = self.timeout {
            c.limits.timeout = v;
        }
        if let Some(v) = self.memory_mib {
            c.limits.memory_mib = v;
        }
        if let Some(v) = self.fuel {
            c.limits.fuel = Some(v);
        }
        if let Some(v) = self.max_result_bytes {
            c.limits.max_result_bytes = v;
        }
        if let Some(v) = self.allocator {
            c.pool.allocator = v;
        }
        if let Some(v) = &self.api_token {
            c.server.api_token = Some(v.clone());
        }
        Ok(c)
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let config = match cli.global.resolve().and_then(|mut c| {
        if let Command::Serve(args) = &cli.command {
            args.apply(&mut c);
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cli.command, config))
}

fn init_logging(global: &GlobalArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log).unwrap_or_else(|e| {
        eprintln!("warning: invalid --log filter ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colours only for a person at a terminal; NO_COLOR (no-color.org) turns them off there too.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match global.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

impl ServeArgs {
    fn apply(&self, c: &mut Config) {
        if let Some(v) = &self.listen {
            c.server.listen.clone_from(v);
        }
        if let Some(v) = &self.database_url {
            c.server.database_url = Some(v.clone());
        }
        if let Some(v) = &self.zmq_listen {
            c.server.zmq_listen.clone_from(v);
        }
        if let Some(v) = &self.remote_secret {
            c.server.remote_secret = Some(v.clone());
        }
    }
}

/// What a stop may take beyond `scheduler.shutdown_grace` (closing the store and the sockets).
const STOP_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes sure the process ends within `limit` of a stop being asked for: whatever might still
/// hold it (a blocked thread of the runtime, say) must not keep a host that was told to stop
/// running. The store's committed writes are safe whatever happens here.
fn stop_within(limit: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("sz-stop-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            tracing::error!(
                ?limit,
                "the host did not stop within scheduler.shutdown_grace and its slack; exiting"
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the stop watchdog");
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

async fn run(command: Command, config: Config) -> ExitCode {
    match command {
        Command::Serve(_) => {
            let grace = config.scheduler.shutdown_grace;
            let shutdown = async move {
                shutdown_signal().await;
                stop_within(grace + STOP_SLACK);
            };
            return match crate::serve::serve(config, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            };
        }
        Command::Schedules(cmd) => return remote::schedules(&config, *cmd).await,
        Command::Executions(args) => return remote::executions(&config, args).await,
        Command::Handlers(args) => return remote::handlers(&config, args).await,
        Command::Bench(args) => return bench(args).await,
        _ => {}
    }
    if let Command::Plugins(PluginsCommand::List {
        json,
        url,
        local: false,
    }) = &command
    {
        match remote::live_plugins(&config, url.clone()).await {
            Ok(listed) => {
                remote::print_live_plugins(&listed, *json);
                return ExitCode::SUCCESS;
            }
            Err(why) => {
                if !*json {
                    eprintln!("{why}; listing the plugins directory instead");
                }
            }
        }
    }
    if let Command::Config = command {
        return match toml::to_string_pretty(&config.redacted()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot print the configuration: {e}")),
        };
    }
    let runtime = match Runtime::new(config) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    match command {
        Command::Invoke(args) => invoke(&runtime, args).await,
        Command::Plugins(PluginsCommand::List { json, .. }) => list(&runtime, json).await,
        Command::Plugins(PluginsCommand::Inspect { plugin, json }) => {
            inspect(&runtime, &plugin, json).await
        }
        Command::Config
        | Command::Serve(_)
        | Command::Schedules(_)
        | Command::Executions(_)
        | Command::Handlers(_)
        | Command::Bench(_) => ExitCode::SUCCESS,
    }
}

async fn bench(args: BenchArgs) -> ExitCode {
    let mut combined = serde_json::Map::new();
    if matches!(args.which, None | Some(BenchName::Runtime)) {
        let figures = crate::bench::runtime::runtime(args.quick);
        let what = "runtime: the host's call path and bare wasmtime, then a host with 100 plugins";
        if let Err(code) = bench_one(&args, &mut combined, what, figures, |f| {
            crate::bench::runtime::table(f)
        })
        .await
        {
            return code;
        }
    }
    if matches!(args.which, None | Some(BenchName::Scheduler)) {
        let figures = crate::bench::scheduler(args.quick);
        let what = "scheduler: starting a host on a temporary data dir";
        if let Err(code) = bench_one(&args, &mut combined, what, figures, crate::bench::table).await
        {
            return code;
        }
    }
    if matches!(args.which, None | Some(BenchName::Remote)) {
        let figures = crate::bench::remote::remote(args.quick);
        let what = "remote: no-op calls over ZeroMQ and to a hot plugin";
        if let Err(code) = bench_one(
            &args,
            &mut combined,
            what,
            figures,
            crate::bench::remote::table,
        )
        .await
        {
            return code;
        }
    }
    if args.json {
        // One benchmark: its object; all of them: one object keyed by benchmark.
        let out = match (args.which.is_some(), combined.values().next()) {
            (true, Some(one)) => one.clone(),
            _ => serde_json::Value::Object(combined),
        };
        println!("{out}");
    }
    ExitCode::SUCCESS
}

/// Runs one benchmark: prints its table, or keeps its figures for the JSON printed at the end.
async fn bench_one<F: serde::Serialize>(
    args: &BenchArgs,
    combined: &mut serde_json::Map<String, serde_json::Value>,
    what: &str,
    figures: impl std::future::Future<Output = Result<F, crate::bench::BenchError>>,
    table: impl Fn(&F) -> String,
) -> Result<(), ExitCode> {
    let name = what.split(':').next().unwrap_or(what);
    if !args.json {
        eprintln!(
            "bench {what}{}...",
            if args.quick { " (quick)" } else { "" }
        );
    }
    match figures.await {
        Ok(f) if args.json => {
            combined.insert(name.into(), serde_json::to_value(&f).unwrap_or_default());
            Ok(())
        }
        Ok(f) => {
            println!("{}", table(&f));
            Ok(())
        }
        Err(e) => Err(fail(&format!("bench {name}: {e}"))),
    }
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn print_invoke_error(e: &InvokeError) -> ExitCode {
    println!(
        "{}",
        json!({ "error": { "code": e.code(), "message": e.to_string() } })
    );
    eprintln!("error[{}]: {e}", e.code());
    ExitCode::FAILURE
}

async fn invoke(runtime: &Runtime, args: InvokeArgs) -> ExitCode {
    let load = match runtime.load(&args.plugin).await {
        Ok(report) => report,
        Err(e) => return print_invoke_error(&e),
    };
    eprintln!("{}", describe_load(&load));
    let params = args.params.as_deref().unwrap_or("null");
    let mut last = None;
    for _ in 0..args.repeat {
        let mut ctx = JobContext::adhoc();
        ctx.job_id.clone_from(&args.job_id);
        match runtime
            .invoke(&args.plugin, &args.method, params, &ctx)
            .await
        {
            Ok(outcome) => {
                let s = &outcome.stats;
                let fuel = s
                    .measure
                    .fuel_used
                    .map_or_else(|| "unmetered".to_owned(), |f| f.to_string());
                eprintln!(
                    "{}.{} ok in {} ({}call {}, memory {}, fuel {}, instance call #{})",
                    args.plugin,
                    args.method,
                    fmt_ns(s.total_ns),
                    if s.fresh_instance {
                        format!("new instance {}, ", fmt_ns(s.instantiate_ns))
                    } else {
                        "hot instance, ".into()
                    },
                    fmt_ns(s.measure.call_ns),
                    fmt_bytes(s.measure.memory_bytes as u64),
                    fuel,
                    s.measure.instance_calls,
                );
                last = Some(outcome.result);
            }
            Err(e) => return print_invoke_error(&e),
        }
    }
    if let Some(result) = last {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{result}");
    }
    ExitCode::SUCCESS
}

fn describe_load(r: &LoadReport) -> String {
    let how = match r.compile_time {
        Some(t) => format!("compiled in {}", fmt_ns(t.as_nanos() as u64)),
        None => "artifact from cache".to_owned(),
    };
    format!(
        "loaded {} {} ({how}, {} in all)",
        r.plugin.name(),
        r.plugin.info().version,
        fmt_ns(r.load_time.as_nanos() as u64)
    )
}

async fn list(runtime: &Runtime, json_out: bool) -> ExitCode {
    let discovery = match runtime.discover().await {
        Ok(d) => d,
        Err(e) => return fail(&e.to_string()),
    };
    if json_out {
        let plugins: Vec<_> = discovery
            .loaded
            .iter()
            .map(|r| plugin_json(runtime, r))
            .collect();
        let rejected: Vec<_> = discovery
            .rejected
            .iter()
            .map(|r| json!({ "file": r.path, "error": r.error.to_string() }))
            .collect();
        println!("{}", json!({ "plugins": plugins, "rejected": rejected }));
        return ExitCode::SUCCESS;
    }
    println!("plugins in {}", runtime.config().plugins_dir.display());
    println!(
        "{:<20} {:<10} {:>7} {:>10}  {:<12}  {:<8}  DESCRIPTION",
        "NAME", "VERSION", "METHODS", "SIZE", "SHA256", "CACHED"
    );
    for r in &discovery.loaded {
        let p = &r.plugin;
        println!(
            "{:<20} {:<10} {:>7} {:>10}  {:<12}  {:<8}  {}",
            p.name(),
            p.info().version,
            p.info().methods.len(),
            fmt_bytes(p.file().size),
            &p.file().sha256[..12],
            if r.cache_hit { "yes" } else { "compiled" },
            p.info().description
        );
    }
    if !discovery.rejected.is_empty() {
        println!("\nrejected:");
        for r in &discovery.rejected {
            println!("  {}: {}", r.path.display(), r.error);
        }
    }
    ExitCode::SUCCESS
}

fn plugin_json(runtime: &Runtime, r: &LoadReport) -> serde_json::Value {
    let p = &r.plugin;
    let limits = &p.settings().limits;
    json!({
        "name": p.name(),
        "version": p.info().version,
        "description": p.info().description,
        "methods": p.info().methods,
        "file": p.file(),
        "artifact": {
            "path": runtime.cache().artifact_path(&p.file().sha256),
            "cached": r.cache_hit,
            "compile_ms": r.compile_time.map(|t| t.as_secs_f64() * 1e3),
        },
        "limits": {
            "timeout_ms": limits.timeout.as_millis() as u64,
            "memory_mib": limits.memory_mib,
            "fuel": limits.fuel,
            "max_result_bytes": limits.max_result_bytes,
            "max_output_bytes": limits.max_output_bytes,
        },
        "max_instances": p.settings().max_instances,
        "reuse_instances": p.settings().reuse_instances,
        "granted_config_keys": p.settings().config.keys().collect::<Vec<_>>(),
    })
}

async fn inspect(runtime: &Runtime, name: &str, json_out: bool) -> ExitCode {
    let report = match runtime.load(name).await {
        Ok(r) => r,
        Err(e) => return print_invoke_error(&e),
    };
    let artifact = runtime.cache().artifact_path(&report.plugin.file().sha256);
    if json_out {
        println!("{}", plugin_json(runtime, &report));
        return ExitCode::SUCCESS;
    }
    let p = &report.plugin;
    let info = p.info();
    println!("{} {}", info.name, info.version);
    println!("  {}", info.description);
    println!();
    println!(
        "file:      {} ({})",
        p.file().path.display(),
        fmt_bytes(p.file().size)
    );
    println!("sha256:    {}", p.file().sha256);
    println!(
        "artifact:  {} ({})",
        artifact.display(),
        match report.compile_time {
            Some(t) => format!(
                "not cached: compiled now in {}",
                fmt_ns(t.as_nanos() as u64)
            ),
            None => "cached".to_owned(),
        }
    );
    let l = &p.settings().limits;
    println!(
        "limits:    timeout {}, memory {} MiB, fuel {}, result {} , output {} per call",
        humantime::format_duration(l.timeout),
        l.memory_mib,
        l.fuel
            .map_or_else(|| "unmetered".to_owned(), |f| f.to_string()),
        fmt_bytes(l.max_result_bytes as u64),
        fmt_bytes(l.max_output_bytes as u64),
    );
    println!(
        "instances: up to {}, {}",
        p.settings().max_instances,
        if p.settings().reuse_instances {
            "reused while hot"
        } else {
            "fresh for every call"
        }
    );
    println!("\nmethods:");
    for m in &info.methods {
        println!("  {:<22} {}", m.name, m.description);
        if let Some(schema) = &m.params_schema {
            println!("  {:<22} params: {}", "", schema);
        }
    }
    ExitCode::SUCCESS
}

fn fmt_ns(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn fmt_bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "plugins_dir = '/from/file'\n[limits]\nmemory_mib = 32\ntimeout = '5s'\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "schedulezero",
            "--config",
            file.to_str().unwrap(),
            "config",
            "--memory-mib",
            "8",
        ])
        .unwrap();
        let c = cli.global.resolve().unwrap();
        c.validate().unwrap();
        assert_eq!(c.plugins_dir, PathBuf::from("/from/file"));
        assert_eq!(c.limits.memory_mib, 8);
        assert_eq!(c.limits.timeout, Duration::from_secs(5));
    }

    #[test]
    fn invalid_values_are_refused() {
        let cli = Cli::try_parse_from(["schedulezero", "config", "--memory-mib", "1"]).unwrap();
        assert!(
            cli.global
                .resolve()
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("limits.memory_mib")
        );
        assert!(Cli::try_parse_from(["schedulezero", "config", "--timeout", "soon"]).is_err());
    }
}
