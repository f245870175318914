//! A native remote handler in a few lines: it binds a free port on loopback, registers with the
//! host, serves `say_hello`, `add` and `slow`, pings the host and registers again when it stops
//! answering, and reports `offline` on SIGINT or SIGTERM.
//!
//!     SCHEDULEZERO_ZMQ=tcp://127.0.0.1:4242 cargo run -p schedulezero-remote --example hello_handler
//!
//! `HANDLER_ID` names it (`rust-hello`), `HANDLER_LISTEN` says where to listen
//! (`tcp://127.0.0.1:0`), `SCHEDULEZERO_SECRET` signs every message with the host's
//! `server.remote_secret`, and `RUST_LOG` sets the log level (`info`).

use std::time::Duration;

use schedulezero_remote::{Handler, request_id, shutdown_signal};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Greet {
    #[serde(default = "world")]
    name: String,
}

fn world() -> String {
    "world".into()
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
struct Slow {
    seconds: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let id = std::env::var("HANDLER_ID").unwrap_or_else(|_| "rust-hello".into());
    let listen = std::env::var("HANDLER_LISTEN").unwrap_or_else(|_| "tcp://127.0.0.1:0".into());

    let handler = Handler::new(id.clone())
        .listen(listen)
        .method("say_hello", |p: Greet| async move {
            Ok::<_, String>(
                json!({ "message": format!("hello {}", p.name), "request_id": request_id() }),
            )
        })
        .method("add", |p: Add| async move {
            p.a.checked_add(p.b).ok_or("the sum overflows")
        })
        .method("slow", |p: Slow| async move {
            tokio::time::sleep(Duration::from_secs_f64(p.seconds.clamp(0.0, 3600.0))).await;
            Ok::<_, String>(json!({ "slept": p.seconds }))
        })
        .method("echo", |p: Value| async move { Ok::<_, String>(p) })
        .bind()
        .await?;
    // Signals are caught from here on: SIGTERM after the line below always ends in `offline`.
    let shutdown = shutdown_signal()?;
    // Registering once up front fails fast when the host is not there; serving keeps it registered.
    handler.register().await?;
    println!("{id} registered, listening on {}", handler.address());
    handler.serve_until(shutdown).await?;
    Ok(())
}
