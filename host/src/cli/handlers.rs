//! `schedulezero handlers`: a running host's handlers (its plugins and the remote handlers
//! registered over ZeroMQ), and forgetting a remote handler; the live plugins table of
//! `plugins list`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::client::{Client, ClientArgs, Failure, encode, pages, print_json, report};
use super::show::{Column, Table, bytes, relative_opt, wire_name};
use crate::api::plugins::PluginList;
use crate::api::views::{Forgotten, HandlerList};
use crate::config::Config;

/// Arguments of `handlers`.
#[derive(Debug, Args)]
pub struct HandlersArgs {
    #[command(subcommand)]
    action: Option<HandlersAction>,
    #[command(flatten)]
    client: ClientArgs,
    /// Every cell whole, however wide the table.
    #[arg(long)]
    wide: bool,
}

/// What `handlers` does besides listing.
#[derive(Debug, Subcommand)]
enum HandlersAction {
    /// Forget a remote handler that went away for good: it is no longer listed, pinged or
    /// called, until it registers again.
    Forget {
        /// The remote handler's id.
        id: String,
    },
}

/// Runs `handlers`.
pub async fn run(config: &Config, args: HandlersArgs) -> std::process::ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        match &args.action {
            Some(HandlersAction::Forget { id }) => forget(&client, id, json_out).await,
            None => list(&client, args.wide, json_out).await,
        }
    }
    .await;
    report(result, json_out)
}

async fn forget(client: &Client, id: &str, json_out: bool) -> Result<(), Failure> {
    let gone: Forgotten = client
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/handlers/{}", encode(id)),
            None::<&()>,
        )
        .await?;
    if json_out {
        print_json(&gone);
    } else {
        println!("forgot remote handler {id} ({})", gone.address);
    }
    Ok(())
}

async fn list(client: &Client, wide: bool, json_out: bool) -> Result<(), Failure> {
    // Every page: a host may know many remote handlers.
    let (all, _) = pages(
        client,
        None,
        true,
        |after: Option<&String>| match after {
            Some(a) => format!("/api/v1/handlers?limit=1000&after={}", encode(a)),
            None => "/api/v1/handlers?limit=1000".to_owned(),
        },
        |page: HandlerList| (page.handlers, page.next),
    )
    .await?;
    if json_out {
        print_json(&HandlerList {
            handlers: all,
            next: None,
        });
        return Ok(());
    }
    let mut table = Table::new([
        Column::text("ID"),
        Column::fixed("KIND"),
        Column::fixed("STATUS"),
        Column::number("METHODS"),
        Column::number("CALLS"),
        Column::number("ERRORS"),
        Column::number("LAST RTT"),
        Column::fixed("LAST SEEN"),
        Column::text("ADDRESS"),
    ]);
    let count = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    for h in &all {
        // A plugin's status is its lifecycle state (cold, hot, ...), when it has one.
        let status = h
            .state
            .map_or_else(|| h.status.clone(), |s| s.as_str().to_owned());
        table.row(vec![
            h.id.clone(),
            wire_name(&h.kind),
            status,
            h.methods.len().to_string(),
            count(h.calls),
            count(h.errors),
            h.last_latency_ms
                .map_or_else(|| "-".into(), |ms| format!("{ms:.2} ms")),
            relative_opt(h.last_seen),
            h.address.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print(wide);
    println!("{} handler(s)", all.len());
    Ok(())
}

/// The plugins of a running host, with their state and metrics. Fails quickly when no host
/// answers there.
pub async fn live_plugins(config: &Config, args: &ClientArgs) -> Result<PluginList, String> {
    let client = Client::with_timeout(config, args, Duration::from_secs(2)).map_err(|f| f.0)?;
    client
        .get("/api/v1/plugins")
        .await
        .map_err(|f| format!("no host answered at {}: {}", client.base, f.0))
}

/// Prints a running host's plugins as a table (or its JSON).
pub fn print_live_plugins(listed: &PluginList, json_out: bool) {
    if json_out {
        print_json(listed);
        return;
    }
    let mut table = Table::new([
        Column::text("NAME"),
        Column::fixed("VERSION"),
        Column::fixed("STATE"),
        Column::number("INSTANCES"),
        Column::number("MEMORY"),
        Column::number("CALLS"),
        Column::number("ERRORS"),
        Column::number("COLD"),
        Column::number("CALL P50"),
        Column::fixed("LAST USED"),
    ]);
    for p in &listed.plugins {
        table.row(vec![
            p.name.clone(),
            p.version.clone(),
            p.state.as_str().to_owned(),
            format!("{}/{}", p.busy_instances, p.live_instances),
            bytes(p.memory_bytes),
            p.calls.to_string(),
            p.errors.total.to_string(),
            p.cold_starts.to_string(),
            if p.calls > 0 {
                format!("{:.1} µs", p.call_us_p50)
            } else {
                "-".into()
            },
            p.last_used
                .map_or_else(|| "never".into(), |t| relative_opt(Some(t))),
        ]);
    }
    table.print(false);
    if !listed.rejected.is_empty() {
        println!("\nrejected:");
        for r in &listed.rejected {
            println!("  {}: {}", r.file, r.error);
        }
    }
}
