//! The commands that run in this process, on the plugins directory: `invoke` (or, with
//! `--on-host`, the same call through a running host), `plugins list` and `plugins inspect`,
//! `config`. Each says which configuration and directories it used.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{Client, ClientArgs, Failure, encode, report};
use super::show::{bytes, nanos};
use super::{RuntimeArgs, fail};
use crate::api::requests::CallRequest;
use crate::api::views::CallResult;
use crate::config::Config;
use crate::runtime::{InvokeError, JobContext, LoadReport, Runtime};

/// Arguments of `invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The handler: a plugin name (`ding-dong` for `ding-dong.wasm`), or with --on-host any
    /// handler of the running host, remote ones too.
    pub handler: String,
    /// The method, as `describe()` lists it.
    pub method: String,
    /// The params, as JSON. Default: null here, `{}` on a host.
    pub params: Option<String>,
    /// Call the handler through the running host (at --url) instead of in this process: the
    /// call is recorded in the host's execution log.
    #[arg(long)]
    pub on_host: bool,
    /// The host's base URL, with --on-host. Default: http:// and the configured listen address.
    #[arg(
        long,
        env = "SCHEDULEZERO_URL",
        value_name = "URL",
        requires = "on_host"
    )]
    pub url: Option<String>,
    /// The host's API token, with --on-host.
    #[arg(
        long,
        env = "SCHEDULEZERO_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// The job id the handler sees (in this process).
    #[arg(long, default_value = "adhoc", conflicts_with = "on_host")]
    pub job_id: String,
    /// Call the method this many times in one process (timings of each go to stderr; the last
    /// result is printed). Shows instance reuse.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "on_host")]
    pub repeat: u32,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// `plugins` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins. When a host is running (at --url, or the configured listen address),
    /// its plugins with their lifecycle state, live instances, memory and calls; otherwise load
    /// every component in the plugins directory and list what each says of itself, with the
    /// files that were rejected and why.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Read the plugins directory, even when a host is running.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Show one plugin in full: description, methods with their params schemas, file, hash,
    /// artifact and limits. Given a component file or a registry reference instead, show what
    /// it is without running or installing it: name, version, vendor, contract and whether this
    /// host supports it, signature and signer, what it requests beside what is granted, size
    /// and digest.
    Inspect {
        /// A plugin of the plugins folder by name, a component file, or a registry reference
        /// (`registry/repository:1.2.0`).
        plugin: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// For a file or reference: the name it would be installed under.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        registry: super::catalog::RegistryArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Create a handler crate: the SDK as dependency, a release profile for small components,
    /// one method with params and a test, a README on building, signing and publishing.
    New(super::catalog::NewArgs),
    /// Make an Ed25519 key pair for signing components.
    Keygen(super::catalog::KeygenArgs),
    /// Sign a component (wasmsign2's format, embedded): the signature covers every byte of it,
    /// its manifest included.
    Sign(super::catalog::SignArgs),
    /// Publish a component to an OCI registry (the CNCF Wasm artifact layout, tagged with its
    /// version; name, version, vendor, description, license and source as annotations).
    Push {
        #[command(flatten)]
        args: super::catalog::PushArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Install a component from a registry (or a file) into the plugins folder: pulled by tag
    /// and pinned by digest, its signature checked against the trusted keys, its contract
    /// against this host, what it requests shown beside what is granted, then (with consent)
    /// compiled, placed and recorded in the folder's lockfile.
    Install {
        #[command(flatten)]
        args: super::catalog::InstallArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Update an installed plugin to the newest semver tag of its repository (or --to), with
    /// the same checks and consent; calls in flight finish on the old version.
    Update {
        #[command(flatten)]
        args: super::catalog::UpdateArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Put back the version installed before (kept by digest), checked again.
    Rollback {
        /// The installed plugin.
        plugin: String,
        /// Also when that version is not signed by a trusted key.
        #[arg(long)]
        allow_unsigned: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Remove an installed plugin: its file, its lockfile entry and its kept versions.
    Remove {
        /// The installed plugin.
        plugin: String,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Check every component of the plugins folder against the lockfile (digest) and the
    /// trusted keys (signature, signer); list the ones the catalog did not install. Exit code 1
    /// when anything does not hold.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Grant a plugin something its component requests, on the running host: an outbound HTTP
    /// destination, a directory, a configuration value or a secret by reference. Checked against
    /// the component's manifest, recorded with who granted it, in effect from the next call.
    Grant {
        /// The plugin.
        plugin: String,
        #[command(subcommand)]
        what: super::grants::GrantWhat,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a grant on the running host.
    Revoke {
        /// The plugin.
        plugin: String,
        /// `http`, `directory`, `config` or `secret`.
        kind: String,
        /// The destination, directory name or key.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// What a plugin's component requests, what it is granted (secrets by reference) and what
    /// is missing, with the latest changes and who made them.
    Grants {
        /// The plugin.
        plugin: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Says, on stderr, which configuration and directories a command in this process uses.
pub fn say_where(config: &Config, file: Option<&PathBuf>) {
    let file = match file {
        Some(f) => f.display().to_string(),
        None if std::path::Path::new(crate::config::DEFAULT_CONFIG_FILE).exists() => {
            crate::config::DEFAULT_CONFIG_FILE.to_owned()
        }
        None => "none (defaults)".to_owned(),
    };
    eprintln!(
        "in this process: configuration {file}, plugins {}, data {}",
        config.plugins_dir.display(),
        config.data_dir.display()
    );
}

/// Runs `invoke`: in this process, or through the running host.
pub async fn invoke(config: Config, args: InvokeArgs, file: Option<&PathBuf>) -> ExitCode {
    if args.on_host {
        return invoke_on_host(&config, args).await;
    }
    say_where(&config, file);
    let runtime = match Runtime::new(config) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    invoke_local(&runtime, args).await
}

/// The same call through the running host's `/api/v1/handlers/{id}/call`.
async fn invoke_on_host(config: &Config, args: InvokeArgs) -> ExitCode {
    let client_args = ClientArgs {
        url: args.url.clone(),
        api_token: args.api_token.clone(),
        json: true,
    };
    let result = async {
        let client = Client::new(config, &client_args)?;
        let params = match &args.params {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| Failure::new(format!("the params are not valid JSON: {e}")))?,
            None => json!({}),
        };
        let request = CallRequest {
            method: args.method.clone(),
            params,
        };
        let started = std::time::Instant::now();
        let call: CallResult = client
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/handlers/{}/call", encode(&args.handler)),
                Some(&request),
            )
            .await?;
        eprintln!(
            "called {}.{} on the host at {} in {} (recorded as {}{})",
            args.handler,
            args.method,
            client.base,
            nanos(started.elapsed().as_nanos() as u64),
            call.schedule_id,
            call.instance
                .as_deref()
                .map_or_else(String::new, |i| format!(", ran on {i}"))
        );
        Ok(call)
    }
    .await;
    match result {
        Ok(call) => match call.error {
            None => {
                println!("{}", call.result.unwrap_or(serde_json::Value::Null));
                ExitCode::SUCCESS
            }
            Some(e) => print_call_error(&e.code, &e.message),
        },
        Err(failure) => report(Err(failure), false),
    }
}

/// A call's failure: its JSON on stdout and a line on stderr.
fn print_call_error(code: &str, message: &str) -> ExitCode {
    println!(
        "{}",
        json!({ "error": { "code": code, "message": message } })
    );
    eprintln!("error[{code}]: {message}");
    ExitCode::FAILURE
}

fn print_invoke_error(e: &InvokeError) -> ExitCode {
    print_call_error(e.code(), &e.to_string())
}

/// Runs `invoke` in this process, on the plugins directory.
async fn invoke_local(runtime: &Runtime, args: InvokeArgs) -> ExitCode {
    let load = match runtime.load(&args.handler).await {
        Ok(report) => report,
        Err(e) => {
            if matches!(e, InvokeError::UnknownPlugin { .. }) {
                eprintln!(
                    "no plugin `{}` in {}: a remote handler is called through a running host (--on-host)",
                    args.handler,
                    runtime.config().plugins_dir.display()
                );
            }
            return print_invoke_error(&e);
        }
    };
    eprintln!("{}", describe_load(&load));
    let params = args.params.as_deref().unwrap_or("null");
    let mut last = None;
    for _ in 0..args.repeat {
        let mut ctx = JobContext::adhoc();
        ctx.job_id.clone_from(&args.job_id);
        match runtime
            .invoke(&args.handler, &args.method, params, &ctx)
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
                    args.handler,
                    args.method,
                    nanos(s.total_ns),
                    if s.fresh_instance {
                        format!("new instance {}, ", nanos(s.instantiate_ns))
                    } else {
                        "hot instance, ".into()
                    },
                    nanos(s.measure.call_ns),
                    bytes(s.measure.memory_bytes as u64),
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
        Some(t) => format!("compiled in {}", nanos(t.as_nanos() as u64)),
        None => "artifact from cache".to_owned(),
    };
    format!(
        "loaded {} {} ({how}, {} in all)",
        r.plugin.name(),
        r.plugin.info().version,
        nanos(r.load_time.as_nanos() as u64)
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
            bytes(p.file().size),
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
        "manifest": p.manifest(),
        "capabilities": runtime.review(p.name()),
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
        bytes(p.file().size)
    );
    println!("sha256:    {}", p.file().sha256);
    println!(
        "artifact:  {} ({})",
        artifact.display(),
        match report.compile_time {
            Some(t) => format!("not cached: compiled now in {}", nanos(t.as_nanos() as u64)),
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
        bytes(l.max_result_bytes as u64),
        bytes(l.max_output_bytes as u64),
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
    if let Some(review) = runtime.review(p.name()) {
        super::show::print_review(&review);
        if !review.requested.is_empty() {
            println!(
                "  (grants of the configuration file; `schedulezero plugins grants {}` shows a running host's)",
                p.name()
            );
        }
    }
    println!("\nmethods:");
    for m in &info.methods {
        println!("  {:<22} {}", m.name, m.description);
        if let Some(schema) = &m.params_schema {
            println!("  {:<22} params: {}", "", schema);
        }
    }
    ExitCode::SUCCESS
}

/// Runs `plugins list` in this process (no host answered, or `--local`).
pub async fn plugins(config: Config, command: PluginsCommand, file: Option<&PathBuf>) -> ExitCode {
    use super::catalog;
    match &command {
        PluginsCommand::New(args) => return catalog::new_crate(args),
        PluginsCommand::Keygen(args) => return catalog::keygen(args),
        PluginsCommand::Sign(args) => return catalog::sign(args),
        PluginsCommand::Push { args, .. } => return catalog::push(&config, args).await,
        PluginsCommand::Install { args, .. } => return catalog::install(&config, args).await,
        PluginsCommand::Update { args, .. } => return catalog::update(&config, args).await,
        PluginsCommand::Rollback {
            plugin,
            allow_unsigned,
            json,
            ..
        } => return catalog::rollback(&config, plugin, *allow_unsigned, *json).await,
        PluginsCommand::Remove { plugin, .. } => return catalog::remove(&config, plugin),
        PluginsCommand::Verify { json, .. } => return catalog::verify(&config, *json),
        PluginsCommand::Inspect {
            plugin,
            json,
            name,
            registry,
            ..
        } if !(crate::config::is_valid_plugin_name(plugin)
            && config.plugins_dir.join(format!("{plugin}.wasm")).is_file()) =>
        {
            return catalog::inspect(&config, plugin, name.as_deref(), *json, registry).await;
        }
        PluginsCommand::Grant { .. }
        | PluginsCommand::Revoke { .. }
        | PluginsCommand::Grants { .. } => {
            return on_host(&config, command).await;
        }
        _ => {}
    }
    if let PluginsCommand::List {
        client,
        local: false,
        ..
    } = &command
    {
        match super::handlers::live_plugins(&config, client).await {
            Ok(listed) => {
                super::handlers::print_live_plugins(&listed, client.json);
                return ExitCode::SUCCESS;
            }
            Err(why) => {
                if !client.json {
                    eprintln!("{why}; listing the plugins directory instead");
                }
            }
        }
    }
    say_where(&config, file);
    let runtime = match Runtime::new(config) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    match command {
        PluginsCommand::List { client, .. } => list(&runtime, client.json).await,
        PluginsCommand::Inspect { plugin, json, .. } => inspect(&runtime, &plugin, json).await,
        other => on_host(runtime.config(), other).await,
    }
}

/// The `plugins` commands that change or read grants on the running host.
async fn on_host(config: &Config, command: PluginsCommand) -> ExitCode {
    use super::grants;
    match command {
        PluginsCommand::Grant {
            plugin,
            what,
            client,
        } => grants::grant(config, &client, &plugin, what).await,
        PluginsCommand::Revoke {
            plugin,
            kind,
            name,
            client,
        } => grants::revoke(config, &client, &plugin, &kind, &name).await,
        PluginsCommand::Grants { plugin, client } => grants::list(config, &client, &plugin).await,
        _ => ExitCode::FAILURE,
    }
}
