//! The `schedulezero` command line: flags and environment variables (clap), merged over the
//! configuration file, and one function per command. `main.rs` only calls [`main`]. Each
//! command takes only the flags it uses: the runtime's limits where components run in this
//! process ([`local`], `serve`), the host's URL and token where a running host is asked
//! ([`schedules`], [`executions`], [`handlers`]).

mod catalog;
mod client;
mod executions;
mod grants;
mod handlers;
mod local;
mod schedules;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{Allocator, Config};

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

/// What every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./schedulezero.toml when it exists.
    #[arg(long, global = true, env = "SCHEDULEZERO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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

/// Where components run and under which limits: for the commands that run them in this
/// process. Each overrides the configuration file; the environment variable named in its help
/// sits between the two.
#[derive(Debug, Clone, Default, Args)]
pub struct RuntimeArgs {
    /// Directory of handler components (`<name>.wasm`). Default: the example plugins of this build.
    #[arg(long, env = "SCHEDULEZERO_PLUGINS_DIR", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Directory for the host's state. Default: the user's data directory, `schedulezero/` in it.
    #[arg(long, env = "SCHEDULEZERO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory for compiled components. Default: `<data-dir>/artifacts`.
    #[arg(long, env = "SCHEDULEZERO_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock limit of one call, such as `30s` or `500ms`.
    #[arg(long, env = "SCHEDULEZERO_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Linear memory cap of one instance, in MiB.
    #[arg(long, env = "SCHEDULEZERO_MEMORY_MIB", value_name = "MIB")]
    pub memory_mib: Option<u64>,
    /// Fuel budget of one call (roughly, wasm instructions). Default: unmetered.
    #[arg(long, env = "SCHEDULEZERO_FUEL", value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Largest result a call may return, in bytes.
    #[arg(long, env = "SCHEDULEZERO_MAX_RESULT_BYTES", value_name = "BYTES")]
    pub max_result_bytes: Option<usize>,
    /// How instances are allocated.
    #[arg(long, env = "SCHEDULEZERO_ALLOCATOR", value_enum)]
    pub allocator: Option<Allocator>,
}

impl RuntimeArgs {
    fn apply(&self, c: &mut Config) {
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
    }
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
    /// Run one method of a handler and print its JSON result on stdout: in this process on the
    /// plugins directory, or with --on-host through a running host (any handler, remote ones
    /// too). It says which on stderr.
    ///
    /// Timings go to stderr. On a handler error, trap, timeout or limit, the typed error is
    /// printed (JSON on stdout, a line on stderr) and the exit code is 1.
    Invoke(Box<local::InvokeArgs>),
    /// List and inspect the handler components in the plugins directory.
    #[command(subcommand)]
    Plugins(local::PluginsCommand),
    /// Print the effective configuration (file, environment and flags merged) as TOML.
    Config(ConfigArgs),
    /// Run the host: REST API, scheduler and the runtime over the plugins folder, until SIGTERM
    /// or SIGINT.
    Serve(Box<ServeArgs>),
    /// Create, show, change, list, remove, pause, resume and run schedules on a running host.
    Schedules(Box<schedules::SchedulesArgs>),
    /// Show a running host's execution log, newest first, or one record in full.
    Executions(Box<executions::ExecutionsArgs>),
    /// List a running host's handlers: its plugins and the remote handlers registered over
    /// ZeroMQ, with status, calls, errors and (remote) last round trip and last seen.
    Handlers(handlers::HandlersArgs),
    /// Measure this build on this machine and print a table (or JSON). Without a name, runs
    /// every benchmark.
    Bench(BenchArgs),
    /// Print a shell completion script (`schedulezero completions bash > ...`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Arguments of `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    serve: ServeFlags,
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
    /// One outbound GET from a hot component to a local server against the same request from
    /// native Rust (the host's overhead), and cloud-processor's cold start next to ding-dong's.
    Http,
    /// Installing a signed component from an OCI registry on loopback (Debian's
    /// `docker-registry`, started for the run): pull, checks, compile, with and without the
    /// artifact cached; and a real host's install to first result.
    Catalog,
    /// Hosts on one PostgreSQL server started for the run: durable executions per second with
    /// 1 and 3 hosts (and one host on SQLite), failover after SIGKILL, fire lateness of 10,000
    /// schedules across 3 hosts, a host's memory with 1,000,000 schedules stored.
    Cluster,
    /// The conductor on a real host with 100 plugins and 10 remote handlers: one `health_check`
    /// (plugins from their state; with plugin calls, cold and hot), `collect_metrics`, and the
    /// time of its fleet requests.
    Fleet,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct ServeArgs {
    #[command(flatten)]
    serve: ServeFlags,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// The host's addresses and secrets.
#[derive(Debug, Args)]
pub struct ServeFlags {
    /// Address of the REST API. A non-loopback address needs an API token.
    #[arg(long, env = "SCHEDULEZERO_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// The store: sqlite://PATH (this host alone) or postgres://USER@HOST/DATABASE (shared by
    /// several hosts). Default: a SQLite file in the data directory.
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
    /// The API token every request must carry (but health).
    #[arg(
        long,
        env = "SCHEDULEZERO_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
}

impl ServeFlags {
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
        if let Some(v) = &self.api_token {
            c.server.api_token = Some(v.clone());
        }
    }
}

/// The configuration a command runs with: the file (or defaults), then the command's own flags
/// and variables over it, checked.
pub fn resolve(cli: &Cli) -> Result<Config, String> {
    let mut c = Config::load(cli.global.config.as_deref()).map_err(|e| e.to_string())?;
    match &cli.command {
        Command::Serve(a) => {
            a.runtime.apply(&mut c);
            a.serve.apply(&mut c);
        }
        Command::Config(a) => {
            a.runtime.apply(&mut c);
            a.serve.apply(&mut c);
        }
        Command::Invoke(a) => a.runtime.apply(&mut c),
        Command::Plugins(
            local::PluginsCommand::List { runtime, .. }
            | local::PluginsCommand::Inspect { runtime, .. }
            | local::PluginsCommand::Push { runtime, .. }
            | local::PluginsCommand::Install { runtime, .. }
            | local::PluginsCommand::Update { runtime, .. }
            | local::PluginsCommand::Rollback { runtime, .. }
            | local::PluginsCommand::Remove { runtime, .. }
            | local::PluginsCommand::Verify { runtime, .. },
        ) => runtime.apply(&mut c),
        Command::Plugins(
            local::PluginsCommand::New(_)
            | local::PluginsCommand::Keygen(_)
            | local::PluginsCommand::Sign(_),
        ) => {}
        Command::Plugins(
            local::PluginsCommand::Grant { .. }
            | local::PluginsCommand::Revoke { .. }
            | local::PluginsCommand::Grants { .. },
        )
        | Command::Schedules(_)
        | Command::Executions(_)
        | Command::Handlers(_)
        | Command::Bench(_)
        | Command::Completions { .. } => {}
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    crate::install_crypto_provider();
    let cli = Cli::parse();
    // A benchmark's thousands of outbound requests would each be logged: not by default.
    let quiet = matches!(cli.command, Command::Bench(_)).then_some(
        "schedulezero::runtime::outbound=warn,schedulezero::runtime::loader=warn,schedulezero::catalog=warn,schedulezero_remote=warn",
    );
    init_logging(&cli.global, quiet);
    let config = match resolve(&cli) {
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
    let file = cli.global.config.clone();
    rt.block_on(run(cli.command, config, file))
}

fn init_logging(global: &GlobalArgs, quiet: Option<&str>) {
    let directives = match quiet {
        Some(q) if !global.log.contains("outbound") => format!("{},{q}", global.log),
        _ => global.log.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
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

async fn run(command: Command, config: Config, file: Option<PathBuf>) -> ExitCode {
    match command {
        Command::Serve(_) => {
            let grace = config.scheduler.shutdown_grace;
            let shutdown = async move {
                shutdown_signal().await;
                stop_within(grace + STOP_SLACK);
            };
            match crate::serve::serve(config, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Schedules(args) => schedules::run(&config, *args).await,
        Command::Executions(args) => executions::run(&config, *args).await,
        Command::Handlers(args) => handlers::run(&config, args).await,
        Command::Bench(args) => bench(args).await,
        Command::Invoke(args) => local::invoke(config, *args, file.as_ref()).await,
        Command::Plugins(command) => local::plugins(config, command, file.as_ref()).await,
        Command::Config(_) => match toml::to_string_pretty(&config.redacted()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot print the configuration: {e}")),
        },
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "schedulezero",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
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
    if matches!(args.which, None | Some(BenchName::Http)) {
        let figures = crate::bench::http::http(args.quick);
        let what = "http: a hot component's outbound GET against native Rust's";
        if let Err(code) = bench_one(
            &args,
            &mut combined,
            what,
            figures,
            crate::bench::http::table,
        )
        .await
        {
            return code;
        }
    }
    if matches!(args.which, None | Some(BenchName::Fleet)) {
        let figures = crate::bench::fleet::fleet(args.quick);
        let what = "fleet: the conductor over 100 plugins and 10 remote handlers";
        if let Err(code) = bench_one(
            &args,
            &mut combined,
            what,
            figures,
            crate::bench::fleet::table,
        )
        .await
        {
            return code;
        }
    }
    if matches!(args.which, Some(BenchName::Catalog))
        || (args.which.is_none() && crate::bench::catalog::available())
    {
        let figures = crate::bench::catalog::catalog(args.quick);
        let what = "catalog: installing a signed component from a registry on loopback";
        if let Err(code) = bench_one(
            &args,
            &mut combined,
            what,
            figures,
            crate::bench::catalog::table,
        )
        .await
        {
            return code;
        }
    } else if args.which.is_none() && !args.json {
        eprintln!("bench catalog: not run (it needs `docker-registry` for a registry on loopback)");
    }
    if matches!(args.which, Some(BenchName::Cluster))
        || (args.which.is_none() && crate::bench::cluster::available())
    {
        let figures = crate::bench::cluster::cluster(args.quick);
        let what = "cluster: hosts on one PostgreSQL server";
        if let Err(code) = bench_one(
            &args,
            &mut combined,
            what,
            figures,
            crate::bench::cluster::table,
        )
        .await
        {
            return code;
        }
    } else if args.which.is_none() && !args.json {
        eprintln!("bench cluster: not run (it needs PostgreSQL's server binaries)");
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
        let c = resolve(&cli).unwrap();
        assert_eq!(c.plugins_dir, PathBuf::from("/from/file"));
        assert_eq!(c.limits.memory_mib, 8);
        assert_eq!(c.limits.timeout, Duration::from_secs(5));
    }

    #[test]
    fn invalid_values_are_refused() {
        let cli = Cli::try_parse_from(["schedulezero", "config", "--memory-mib", "1"]).unwrap();
        assert!(resolve(&cli).unwrap_err().contains("limits.memory_mib"));
        assert!(Cli::try_parse_from(["schedulezero", "config", "--timeout", "soon"]).is_err());
    }

    #[test]
    fn client_commands_take_only_their_own_flags() {
        for args in [
            &[
                "schedulezero",
                "schedules",
                "add",
                "h",
                "m",
                "--every",
                "1m",
                "--timeout",
                "5s",
            ][..],
            &["schedulezero", "schedules", "list", "--fuel", "10"],
            &["schedulezero", "executions", "--allocator", "pooling"],
            &["schedulezero", "handlers", "--memory-mib", "8"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} was taken");
        }
        let help = Cli::command()
            .find_subcommand_mut("schedules")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(!help.contains("--fuel") && help.contains("--url"), "{help}");
        assert!(
            Cli::try_parse_from(["schedulezero", "invoke", "p", "m", "--timeout", "5s"]).is_ok()
        );
    }
}
