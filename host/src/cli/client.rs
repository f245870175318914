//! The client side of the REST API: where the host is, the token, and typed requests whose
//! failures read in the command line's terms (which flag or variable to set, not which HTTP
//! header to send).

use std::time::Duration;

use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::ErrorCode;
use crate::config::Config;

/// Where the host is, the token, and how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The host's base URL. Default: http:// and the configured listen address.
    #[arg(long, global = true, env = "SCHEDULEZERO_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The host's API token, when it has one.
    #[arg(
        long,
        global = true,
        env = "SCHEDULEZERO_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Print the API's JSON instead of a table (times exact, in UTC).
    #[arg(long, global = true)]
    pub json: bool,
}

/// A failed command: what to say, and the API's error body when there is one.
#[derive(Debug)]
pub struct Failure(pub String, pub Option<Value>);

impl Failure {
    /// A failure of the command itself (bad flags, say), with no API body.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into(), None)
    }
}

/// Talks to a running host.
pub struct Client {
    http: reqwest::Client,
    /// The host's base URL.
    pub base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the host `args` name (or the configured listen address).
    pub fn new(config: &Config, args: &ClientArgs) -> Result<Self, Failure> {
        Self::with_timeout(config, args, Duration::from_secs(120))
    }

    /// The same, giving up on a request after `timeout`.
    pub fn with_timeout(
        config: &Config,
        args: &ClientArgs,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let base = args
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.server.listen));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2).min(timeout))
            .build()
            .map_err(|e| Failure::new(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: args
                .api_token
                .clone()
                .or_else(|| config.server.api_token.clone()),
        })
    }

    /// GETs `path` as a `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    /// Sends `body` (when given) with `method` to `path`, and reads the reply as a `T`.
    pub async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Failure> {
        let value = self.send_raw(method, path, body).await?;
        let value = if value.is_null() { json!({}) } else { value };
        serde_json::from_value(value).map_err(|e| {
            Failure::new(format!(
                "the host at {} answered in a form this client does not know ({e}): is it another version?",
                self.base
            ))
        })
    }

    /// Sends and returns the reply's JSON (`null` for an empty body).
    pub async fn send_raw<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        // Who is asking, for the record of changes that keep one (grants).
        request = request.header(crate::api::ACTOR_HEADER, actor());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::new(format!(
                "cannot reach a host at {} ({}): start one with `schedulezero serve`, or point to it with --url or SCHEDULEZERO_URL",
                self.base,
                root_cause(&e)
            ))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::new(format!("cannot read the host's reply: {e}")))?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Failure::new(format!(
                    "the host at {} answered {status} with a body that is not JSON: is it a ScheduleZero host?",
                    self.base
                ))
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("http_error");
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        Err(Failure(
            format!(
                "error[{code}]: {}",
                in_cli_words(code, &message, self.token.is_some())
            ),
            Some(value),
        ))
    }
}

/// This user, as the host records who made a change: `cli (NAME)`.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown user".into());
    format!("cli ({user})")
}

/// The innermost cause of an error (`Connection refused (os error 111)`), which says more than
/// the request's own message.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An API error's message as the command line says it.
fn in_cli_words(code: &str, message: &str, had_token: bool) -> String {
    match (code, had_token) {
        (c, false) if c == ErrorCode::Unauthorized.as_str() => {
            "this host needs an API token: pass --api-token or set SCHEDULEZERO_API_TOKEN".into()
        }
        (c, true) if c == ErrorCode::Unauthorized.as_str() => {
            "the host refused the API token (--api-token / SCHEDULEZERO_API_TOKEN)".into()
        }
        _ => message.to_owned(),
    }
}

/// Reads a list a page at a time: `path(cursor)` addresses a page (`None`: the first), `split`
/// takes a page apart into its items and the next cursor. One page, or every page with `all`;
/// returns the items and the cursor of the page after the last one read.
pub async fn pages<P, I, C>(
    client: &Client,
    first: Option<C>,
    all: bool,
    path: impl Fn(Option<&C>) -> String,
    split: impl Fn(P) -> (Vec<I>, Option<C>),
) -> Result<(Vec<I>, Option<C>), Failure>
where
    P: DeserializeOwned,
{
    let mut items = Vec::new();
    let mut cursor = first;
    loop {
        let (page, next) = split(client.get(&path(cursor.as_ref())).await?);
        items.extend(page);
        match next {
            Some(next) if all => cursor = Some(next),
            next => return Ok((items, next)),
        }
    }
}

/// A path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
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

/// Prints a command's failure (JSON on stdout too with `--json`) and gives its exit code.
pub fn report(result: Result<(), Failure>, json_out: bool) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(Failure(message, body)) => {
            if json_out {
                println!(
                    "{}",
                    body.unwrap_or_else(
                        || json!({ "error": { "code": "client_error", "message": message } })
                    )
                );
            }
            eprintln!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints `value` as one line of JSON.
pub fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).unwrap_or_else(|_| "null".into())
    );
}
