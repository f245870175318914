//! `schedulezero executions`: a running host's execution log, newest first, a page at a time;
//! `executions show ID` for one record in full.

use chrono::Utc;
use clap::{Args, Subcommand};

use super::client::{Client, ClientArgs, Failure, encode, pages, print_json, report};
use super::show::{Column, Table, relative};
use crate::api::views::{ExecutionList, ExecutionView};
use crate::config::Config;

/// `executions`: list (the default) or show one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExecutionsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Option<ExecutionsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

/// `executions` subcommands.
#[derive(Debug, Subcommand)]
enum ExecutionsCommand {
    /// List records, newest first (what `executions` alone does).
    List(ListArgs),
    /// Show one record in full: result or error, why it was not retried, its run and schedule.
    Show {
        /// The record's id.
        id: i64,
    },
}

/// Which records to list.
#[derive(Debug, Clone, Args)]
struct ListArgs {
    /// Only this schedule's.
    #[arg(long)]
    schedule: Option<String>,
    /// Only this handler's.
    #[arg(long)]
    handler: Option<String>,
    /// Only this run's.
    #[arg(long)]
    run: Option<String>,
    /// Only this status.
    #[arg(long, value_parser = ["running", "success", "retry", "error", "skipped", "missed"])]
    status: Option<String>,
    /// How many per page (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Start after this cursor (the `next` a previous page gave).
    #[arg(long, conflicts_with = "all")]
    cursor: Option<i64>,
    /// Every page.
    #[arg(long)]
    all: bool,
    /// Every cell whole, however wide the table.
    #[arg(long)]
    wide: bool,
}

/// Runs `executions`.
pub async fn run(config: &Config, args: ExecutionsArgs) -> std::process::ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        match args.command {
            Some(ExecutionsCommand::Show { id }) => show(&client, id, json_out).await,
            Some(ExecutionsCommand::List(list_args)) => list(&client, list_args, json_out).await,
            None => list(&client, args.list, json_out).await,
        }
    }
    .await;
    report(result, json_out)
}

async fn list(client: &Client, l: ListArgs, json_out: bool) -> Result<(), Failure> {
    let mut query = format!("limit={}", l.limit);
    for (key, value) in [
        ("schedule", &l.schedule),
        ("handler", &l.handler),
        ("run", &l.run),
        ("status", &l.status),
    ] {
        if let Some(v) = value {
            query.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    let (all, next) = pages(
        client,
        l.cursor,
        l.all,
        |before| match before {
            Some(b) => format!("/api/v1/executions?{query}&before={b}"),
            None => format!("/api/v1/executions?{query}"),
        },
        |page: ExecutionList| (page.executions, page.next),
    )
    .await?;
    if json_out {
        print_json(&ExecutionList {
            executions: all,
            next,
        });
        return Ok(());
    }
    let mut table = Table::new([
        Column::number("ID"),
        Column::text("SCHEDULE"),
        Column::text("HANDLER.METHOD"),
        Column::number("ATTEMPT"),
        Column::fixed("STATUS"),
        Column::fixed("STARTED"),
        Column::number("MS"),
        Column::text("ERROR"),
    ]);
    let now = Utc::now();
    for e in &all {
        table.row(vec![
            e.id.to_string(),
            e.schedule_id.clone(),
            format!("{}.{}", e.handler, e.method),
            format!("{}/{}", e.attempt, e.max_attempts),
            e.status.as_str().to_owned(),
            relative(e.started_at, now),
            e.duration_ms
                .map_or_else(|| "-".into(), |d| format!("{d:.2}")),
            match (&e.error, &e.not_retried) {
                (Some(error), Some(why)) => format!("{error} (not retried: {why})"),
                (Some(error), None) => error.clone(),
                _ => String::new(),
            },
        ]);
    }
    table.print(l.wide);
    println!("{} record(s)", all.len());
    if let Some(next) = next {
        eprintln!("more: pass --cursor {next} for the next page, or --all for every page");
    }
    Ok(())
}

async fn show(client: &Client, id: i64, json_out: bool) -> Result<(), Failure> {
    let e: ExecutionView = client.get(&format!("/api/v1/executions/{id}")).await?;
    if json_out {
        print_json(&e);
        return Ok(());
    }
    let now = Utc::now();
    println!("execution {}", e.id);
    println!("status    {}", e.status.as_str().to_owned());
    println!("schedule  {}", e.schedule_id);
    println!("run       {}", e.run_id);
    println!("call      {}.{}", e.handler, e.method);
    println!("attempt   {} of {}", e.attempt, e.max_attempts);
    println!(
        "started   {} ({})",
        relative(e.started_at, now),
        crate::time::format(e.started_at)
    );
    if let Some(done) = e.completed_at {
        println!(
            "ended     {} ({}), took {} ms",
            relative(done, now),
            crate::time::format(done),
            e.duration_ms
                .map_or_else(|| "-".into(), |d| format!("{d:.2}"))
        );
    }
    if let Some(i) = &e.instance {
        println!("instance  {i}");
    }
    if let Some(p) = &e.params_summary {
        println!("params    {p}");
    }
    if let Some(r) = &e.result {
        println!("result    {r}");
    }
    if let Some(err) = &e.error {
        println!(
            "error     [{}] {err}",
            e.error_code.as_deref().unwrap_or("error")
        );
    }
    if let Some(why) = &e.not_retried {
        println!("not retried: {why}");
    }
    Ok(())
}
