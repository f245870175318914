//! `schedulezero schedules ...`: create, show, change, list, delete, pause, resume and run
//! schedules on a running host, through `/api/v1` and its typed bodies.

use std::time::Duration;

use chrono::Utc;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{Client, ClientArgs, Failure, encode, pages, print_json, report};
use super::show::{Column, Table, relative, relative_opt, wire_name};
use crate::api::requests::{NewSchedule, Resume, ScheduleChange};
use crate::api::views::{RunEnded, RunStarted, ScheduleList, ScheduleView};
use crate::config::Config;
use crate::schedule::{ConflictPolicy, Run, RunStatus};

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
enum SchedulesCommand {
    /// Create a schedule: a handler's method on a cron expression, an interval or a date.
    Add(Box<AddArgs>),
    /// Show one schedule in full: trigger (in words and as ScheduleZero writes it), policy,
    /// next fire, runs in progress and the last run.
    Get {
        /// The schedule id.
        id: String,
    },
    /// Change a schedule: only what is given changes (the result is checked as a create would).
    Update(Box<UpdateArgs>),
    /// List schedules, a page at a time (`--all` for every page).
    List(ListArgs),
    /// Delete a schedule (its runs and records stay in the log).
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

/// When a schedule fires.
#[derive(Debug, Args)]
struct TriggerArgs {
    /// A cron expression (5 fields, or 6 with seconds first).
    #[arg(long, group = "when", value_name = "EXPR")]
    cron: Option<String>,
    /// An interval, such as `90s`, `15m` or `1h 30m`.
    #[arg(long, group = "when", value_name = "DURATION", value_parser = humantime::parse_duration)]
    every: Option<Duration>,
    /// A date: ISO 8601 (with an offset, or host local time) or a Unix timestamp.
    #[arg(long, group = "when", value_name = "DATE")]
    at: Option<String>,
    /// Accept an --at date in the past: the run is due at once, and --misfire-grace-time
    /// decides whether it runs or is recorded as missed.
    #[arg(long, requires = "at")]
    allow_past: bool,
    /// The IANA time zone a cron expression is read in. Default: UTC.
    #[arg(long, requires = "cron", value_name = "ZONE")]
    timezone: Option<String>,
}

impl TriggerArgs {
    /// The trigger as `/api/v1` takes it, when one was given.
    fn trigger(&self) -> Option<Value> {
        if let Some(expr) = &self.cron {
            return Some(match &self.timezone {
                Some(tz) => json!({ "type": "cron", "expression": expr, "timezone": tz }),
                None => json!(expr),
            });
        }
        if let Some(every) = self.every {
            return Some(json!({ "type": "interval", "every_seconds": every.as_secs_f64() }));
        }
        self.at.as_ref().map(|at| {
            let run_date = at.parse::<f64>().map_or_else(|_| json!(at), |ts| json!(ts));
            json!({ "type": "date", "run_date": run_date })
        })
    }
}

/// How a schedule runs; each flag sets one field of its policy.
#[derive(Debug, Args)]
struct PolicyArgs {
    /// Attempts per run, the first included.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// The delay before the first retry (it doubles, with jitter), such as `2s`.
    #[arg(long, value_name = "DURATION")]
    retry_backoff: Option<String>,
    /// The failure kinds retried, comma-separated (`timeout,handler_retryable,trap`, ...).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    retry_on: Option<Vec<String>>,
    /// A timeout per attempt, tighter than the plugin's own, such as `5s`.
    #[arg(long, value_name = "DURATION")]
    attempt_timeout: Option<String>,
    /// How many runs may be in progress at once.
    #[arg(long)]
    max_running: Option<u32>,
    /// How late a run may start and still run, such as `30s`.
    #[arg(long, value_name = "DURATION")]
    misfire_grace_time: Option<String>,
    /// Which missed fire times run after downtime.
    #[arg(long, value_parser = ["latest", "earliest", "all"])]
    coalesce: Option<String>,
    /// A random delay of up to this much added to each fire time, such as `10s`.
    #[arg(long, value_name = "DURATION")]
    max_jitter: Option<String>,
}

impl PolicyArgs {
    /// The fields given, as a (partial) policy object.
    fn fields(&self) -> Map<String, Value> {
        let mut policy = Map::new();
        let mut set = |key: &str, v: Option<Value>| {
            if let Some(v) = v {
                policy.insert(key.to_owned(), v);
            }
        };
        set("max_attempts", self.max_attempts.map(Value::from));
        set("retry_backoff", self.retry_backoff.clone().map(Value::from));
        set("retry_on", self.retry_on.clone().map(Value::from));
        set("timeout", self.attempt_timeout.clone().map(Value::from));
        set("max_running", self.max_running.map(Value::from));
        set(
            "misfire_grace_time",
            self.misfire_grace_time.clone().map(Value::from),
        );
        set("coalesce", self.coalesce.clone().map(Value::from));
        set("max_jitter", self.max_jitter.clone().map(Value::from));
        policy
    }
}

/// Arguments of `schedules add`.
#[derive(Debug, Args)]
struct AddArgs {
    /// The handler (a plugin name, or a remote handler's id).
    handler: String,
    /// The method.
    method: String,
    /// The params, as JSON.
    #[arg(long, default_value = "{}")]
    params: String,
    /// The schedule id. Default: a new UUID.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    when: TriggerArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Replace a schedule with the same id.
    #[arg(long)]
    replace: bool,
}

/// Arguments of `schedules update`.
#[derive(Debug, Args)]
struct UpdateArgs {
    /// The schedule id.
    id: String,
    /// Another handler.
    #[arg(long)]
    handler: Option<String>,
    /// Another method.
    #[arg(long)]
    method: Option<String>,
    /// Other params, as JSON.
    #[arg(long)]
    params: Option<String>,
    #[command(flatten)]
    when: TriggerArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Pause it.
    #[arg(long, conflicts_with = "unpause")]
    pause: bool,
    /// Unpause it (from now on; `resume --catch-up` runs what it missed).
    #[arg(long)]
    unpause: bool,
}

/// Arguments of `schedules list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Only this handler's.
    #[arg(long)]
    handler: Option<String>,
    /// Only paused ones.
    #[arg(long, conflicts_with = "state")]
    paused: bool,
    /// Only those in this state (completed: no fire time left).
    #[arg(long, value_parser = ["active", "paused", "completed"])]
    state: Option<String>,
    /// How many per page (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Start after this cursor (the `next` a previous page gave).
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Every page.
    #[arg(long)]
    all: bool,
    /// Every cell whole, however wide the table.
    #[arg(long)]
    wide: bool,
}

/// Runs a `schedules` subcommand.
pub async fn run(config: &Config, args: SchedulesArgs) -> std::process::ExitCode {
    let json_out = args.client.json;
    let result = async {
        let client = Client::new(config, &args.client)?;
        match args.command {
            SchedulesCommand::Add(a) => add(&client, *a, json_out).await,
            SchedulesCommand::Get { id } => get(&client, &id, json_out).await,
            SchedulesCommand::Update(u) => update(&client, *u, json_out).await,
            SchedulesCommand::List(l) => list(&client, l, json_out).await,
            SchedulesCommand::Rm { id } => rm(&client, &id, json_out).await,
            SchedulesCommand::Pause { id } => pause(&client, &id, json_out).await,
            SchedulesCommand::Resume { id, catch_up } => {
                resume(&client, &id, catch_up, json_out).await
            }
            SchedulesCommand::Run { id, wait } => run_now(&client, &id, wait, json_out).await,
        }
    }
    .await;
    report(result, json_out)
}

fn path(id: &str) -> String {
    format!("/api/v1/schedules/{}", encode(id))
}

fn params(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::new(format!("--params is not valid JSON: {e}")))
}

/// `next fire in 5m (2026-11-30 09:00 Europe/London)`, or that there is none.
fn next_fire(s: &ScheduleView) -> String {
    match (s.next_fire_time, &s.next_fire_time_local) {
        (Some(t), Some(local)) => format!("next fire {} ({local})", relative(t, Utc::now())),
        _ => "no fire time left".into(),
    }
}

async fn add(client: &Client, a: AddArgs, json_out: bool) -> Result<(), Failure> {
    let trigger = a.when.trigger().ok_or_else(|| {
        Failure::new("say when it fires: --cron EXPR, --every DURATION or --at DATE")
    })?;
    let policy = a.policy.fields();
    let body = NewSchedule {
        id: a.id,
        handler: a.handler,
        method: a.method,
        params: params(&a.params)?,
        trigger,
        policy: (!policy.is_empty()).then_some(Value::Object(policy)),
        paused: a.paused,
        conflict_policy: if a.replace {
            ConflictPolicy::Replace
        } else {
            ConflictPolicy::Error
        },
        allow_past_date: a.when.allow_past,
    };
    let s: ScheduleView = client
        .send(Method::POST, "/api/v1/schedules", Some(&body))
        .await?;
    if json_out {
        print_json(&s);
    } else {
        println!(
            "schedule {} created: {}.{} {}, {}",
            s.id,
            s.handler,
            s.method,
            s.trigger_description,
            next_fire(&s)
        );
    }
    Ok(())
}

async fn get(client: &Client, id: &str, json_out: bool) -> Result<(), Failure> {
    let s: ScheduleView = client.get(&path(id)).await?;
    if json_out {
        print_json(&s);
        return Ok(());
    }
    print_schedule(&s);
    Ok(())
}

fn print_schedule(s: &ScheduleView) {
    let p = &s.policy;
    let dur = |d: Option<Duration>| {
        d.map_or_else(|| "-".into(), |d| humantime::format_duration(d).to_string())
    };
    println!("schedule  {}", s.id);
    println!("state     {}", wire_name(&s.state));
    println!(
        "runs      {}.{} with params {}",
        s.handler, s.method, s.params
    );
    println!("trigger   {}", s.trigger_description);
    println!("          {} (as ScheduleZero writes it)", s.trigger_text);
    println!("next      {}", next_fire(s));
    println!(
        "policy    max_attempts {}, retry_backoff {}, retry_on {}, timeout {}",
        p.max_attempts,
        dur(Some(p.retry_backoff)),
        p.retry_on.join(","),
        dur(p.timeout)
    );
    println!(
        "          max_running {}, misfire_grace_time {}, coalesce {}, max_jitter {}",
        p.max_running,
        dur(p.misfire_grace_time),
        wire_name(&p.coalesce),
        dur(Some(p.max_jitter))
    );
    println!("running   {}", s.running);
    println!("last run  {}", last_run(s.last_run.as_ref()));
    println!(
        "created   {}, changed {}",
        relative(s.created_at, Utc::now()),
        relative(s.updated_at, Utc::now())
    );
}

fn last_run(run: Option<&Run>) -> String {
    run.map_or_else(
        || "-".into(),
        |r| {
            format!(
                "{} {}",
                r.status.as_str(),
                relative(r.fire_time, Utc::now())
            )
        },
    )
}

async fn update(client: &Client, u: UpdateArgs, json_out: bool) -> Result<(), Failure> {
    let policy = u.policy.fields();
    let change = ScheduleChange {
        handler: u.handler,
        method: u.method,
        params: u.params.as_deref().map(params).transpose()?,
        trigger: u.when.trigger(),
        policy: (!policy.is_empty()).then_some(policy),
        paused: match (u.pause, u.unpause) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        allow_past_date: u.when.allow_past,
    };
    let s: ScheduleView = client
        .send(Method::PATCH, &path(&u.id), Some(&change))
        .await?;
    if json_out {
        print_json(&s);
    } else {
        println!(
            "schedule {} updated: {}.{} {}, {}",
            s.id,
            s.handler,
            s.method,
            s.trigger_description,
            next_fire(&s)
        );
    }
    Ok(())
}

async fn list(client: &Client, l: ListArgs, json_out: bool) -> Result<(), Failure> {
    let mut query = format!("limit={}", l.limit);
    if let Some(h) = &l.handler {
        query.push_str(&format!("&handler={}", encode(h)));
    }
    if l.paused {
        query.push_str("&paused=true");
    }
    if let Some(state) = &l.state {
        query.push_str(&format!("&state={state}"));
    }
    let (all, next) = pages(
        client,
        l.cursor.clone(),
        l.all,
        |after| match after {
            Some(a) => format!("/api/v1/schedules?{query}&after={}", encode(a)),
            None => format!("/api/v1/schedules?{query}"),
        },
        |page: ScheduleList| (page.schedules, page.next),
    )
    .await?;
    if json_out {
        print_json(&ScheduleList {
            schedules: all,
            next,
        });
        return Ok(());
    }
    let mut table = Table::new([
        Column::text("ID"),
        Column::text("HANDLER.METHOD"),
        Column::text("TRIGGER"),
        Column::fixed("STATE"),
        Column::fixed("NEXT FIRE"),
        Column::fixed("LAST RUN"),
    ]);
    for s in &all {
        table.row(vec![
            s.id.clone(),
            format!("{}.{}", s.handler, s.method),
            s.trigger_description.clone(),
            wire_name(&s.state),
            relative_opt(s.next_fire_time),
            last_run(s.last_run.as_ref()),
        ]);
    }
    table.print(l.wide);
    println!("{} schedule(s)", all.len());
    if let Some(next) = next {
        eprintln!("more: pass --cursor {next} for the next page, or --all for every page");
    }
    Ok(())
}

async fn rm(client: &Client, id: &str, json_out: bool) -> Result<(), Failure> {
    client
        .send_raw(Method::DELETE, &path(id), None::<&()>)
        .await?;
    if json_out {
        print_json(&json!({ "deleted": id }));
    } else {
        println!("schedule {id} deleted");
    }
    Ok(())
}

async fn pause(client: &Client, id: &str, json_out: bool) -> Result<(), Failure> {
    let s: ScheduleView = client
        .send(Method::POST, &format!("{}/pause", path(id)), None::<&()>)
        .await?;
    if json_out {
        print_json(&s);
    } else {
        println!("schedule {id} paused");
    }
    Ok(())
}

async fn resume(client: &Client, id: &str, catch_up: bool, json_out: bool) -> Result<(), Failure> {
    let before: ScheduleView = client.get(&path(id)).await?;
    if !before.paused {
        if json_out {
            print_json(&before);
        } else {
            println!(
                "schedule {id} was not paused ({}); nothing to resume",
                wire_name(&before.state)
            );
        }
        return Ok(());
    }
    let s: ScheduleView = client
        .send(
            Method::POST,
            &format!("{}/resume", path(id)),
            Some(&Resume { catch_up }),
        )
        .await?;
    if json_out {
        print_json(&s);
    } else {
        println!("schedule {id} resumed, {}", next_fire(&s));
    }
    Ok(())
}

async fn run_now(client: &Client, id: &str, wait: bool, json_out: bool) -> Result<(), Failure> {
    let run_path = format!("{}/run{}", path(id), if wait { "?wait=true" } else { "" });
    if !wait {
        let r: RunStarted = client.send(Method::POST, &run_path, None::<&()>).await?;
        if json_out {
            print_json(&r);
        } else {
            println!("run {} of {id} started", r.run.id);
        }
        return Ok(());
    }
    let r: RunEnded = client.send(Method::POST, &run_path, None::<&()>).await?;
    if json_out {
        print_json(&r);
    } else {
        println!(
            "run {} of {id}: {} after {} attempt(s)",
            r.run.id,
            r.run.status.as_str(),
            r.attempts
        );
        if let Some(e) = &r.error {
            println!("  error[{}]: {}", e.code, e.message);
        }
    }
    if r.run.status != RunStatus::Success && !json_out {
        return Err(Failure::new(format!(
            "run of {id} ended with {}",
            r.run.status.as_str()
        )));
    }
    Ok(())
}
