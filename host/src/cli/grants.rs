//! `schedulezero plugins grant|revoke|grants`: a plugin's capabilities on the running host. A
//! grant is checked against what the plugin's component requests, recorded with who made it
//! (this user, on this machine), and in effect from the next call.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::client::{self, Client, ClientArgs, Failure, encode};
use super::show::{grant_text, print_review};
use crate::api::GrantsView;
use crate::capability::Grant;
use crate::config::Config;

/// What to grant.
#[derive(Debug, Subcommand)]
pub enum GrantWhat {
    /// Outbound HTTP to the destinations of an allow-list entry (`https://api.example.com`,
    /// `https://*.example.com:8443`, `http://127.0.0.1:8000..8100`).
    Http {
        /// The entry; it must be within one the component requests.
        destination: String,
    },
    /// A host directory, under the name the component asked for (it sees it as `/NAME`).
    Directory {
        /// The name the component asked for.
        name: String,
        /// The host directory (absolute).
        path: std::path::PathBuf,
        /// Grant it read-only, even though the component asked to write.
        #[arg(long)]
        read_only: bool,
    },
    /// A configuration value.
    Config {
        /// The key the component asked for.
        key: String,
        /// Its value.
        value: String,
    },
    /// A secret, by reference: `env:NAME` (a variable of the host's environment) or
    /// `file:PATH` (read at each use). Its value is never stored or shown.
    Secret {
        /// The key the component asked for.
        key: String,
        /// `env:NAME` or `file:PATH`.
        reference: String,
    },
    /// The read-only fleet view: the host's handlers, the host and the machine, recent
    /// executions, the nodes (revoke it as `fleet fleet`).
    Fleet {
        /// Let its pings call plugins (`describe`, which loads a cold plugin).
        #[arg(long)]
        call_plugins: bool,
    },
}

/// `plugins grant`.
pub async fn grant(
    config: &Config,
    client: &ClientArgs,
    plugin: &str,
    what: GrantWhat,
) -> ExitCode {
    let body = match what {
        GrantWhat::Http { destination } => json!({"kind": "http", "destination": destination}),
        GrantWhat::Directory {
            name,
            path,
            read_only,
        } => {
            let path = std::path::absolute(&path).unwrap_or(path);
            let mut b = json!({"kind": "directory", "name": name, "path": path});
            if read_only {
                b["access"] = json!("read-only");
            }
            b
        }
        GrantWhat::Config { key, value } => json!({"kind": "config", "key": key, "value": value}),
        GrantWhat::Secret { key, reference } => {
            json!({"kind": "secret", "key": key, "reference": reference})
        }
        GrantWhat::Fleet { call_plugins } => json!({"kind": "fleet", "call_plugins": call_plugins}),
    };
    let result = async {
        let c = Client::new(config, client)?;
        let path = format!("/api/v1/plugins/{}/grants", encode(plugin));
        let granted: Grant = c.send(reqwest::Method::POST, &path, Some(&body)).await?;
        if client.json {
            client::print_json(&granted);
        } else {
            println!(
                "{plugin}: {} {}",
                granted.spec.id().kind,
                grant_text(&granted.spec)
            );
        }
        Ok::<_, Failure>(())
    };
    client::report(result.await, client.json)
}

/// `plugins revoke`.
pub async fn revoke(
    config: &Config,
    client: &ClientArgs,
    plugin: &str,
    kind: &str,
    name: &str,
) -> ExitCode {
    let result = async {
        let c = Client::new(config, client)?;
        let path = format!(
            "/api/v1/plugins/{}/grants?kind={}&name={}",
            encode(plugin),
            encode(kind),
            encode(name)
        );
        c.send_raw(reqwest::Method::DELETE, &path, None::<&()>)
            .await?;
        if client.json {
            client::print_json(&json!({"revoked": {"plugin": plugin, "kind": kind, "name": name}}));
        } else {
            println!("{plugin}: {kind} {name} revoked");
        }
        Ok::<_, Failure>(())
    };
    client::report(result.await, client.json)
}

/// `plugins grants`.
pub async fn list(config: &Config, client: &ClientArgs, plugin: &str) -> ExitCode {
    let result = async {
        let c = Client::new(config, client)?;
        let path = format!("/api/v1/plugins/{}/grants", encode(plugin));
        if client.json {
            let raw = c.send_raw(reqwest::Method::GET, &path, None::<&()>).await?;
            client::print_json(&raw);
            return Ok(());
        }
        let view: GrantsView = c.get(&path).await?;
        println!("{}", view.plugin);
        print_review(&view.capabilities);
        if !view.events.is_empty() {
            println!("\nchanges (newest first):");
            for e in &view.events {
                println!(
                    "  {}  {:<8} {} {}{}  by {}",
                    e.at.format("%Y-%m-%d %H:%M:%S"),
                    e.action,
                    e.kind,
                    e.name,
                    e.detail
                        .as_deref()
                        .map(|d| format!(" = {d}"))
                        .unwrap_or_default(),
                    e.actor
                );
            }
        }
        Ok::<_, Failure>(())
    };
    client::report(result.await, client.json)
}
