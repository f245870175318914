//! The catalog's commands. A vendor's: `plugins new` (a ready crate), `keygen`, `sign`, `push`.
//! An operator's, on this machine's plugins folder (a running host on the same folder takes the
//! change in within `pool.watch_settle`, from the precompiled artifact): `inspect` of a file or a
//! registry reference, `install`, `update`, `rollback`, `remove`, `verify`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::fail;
use super::show::bytes;
use crate::catalog::{Catalog, CatalogError, Consent, Credentials, Inspection, Outcome, Source};
use crate::config::{Config, is_valid_plugin_name};
use crate::runtime::Runtime;
use crate::trust::{self, Verdict};

/// Arguments of `plugins new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The handler's name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Where to create the handler's folder. Default: ./NAME.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Use the SDK at this path (`sdk`, `sdk/python` or `sdk/js` of a checkout) instead of the
    /// project's repository (Rust) or the copy of the SDK written into the folder (Python,
    /// JavaScript).
    #[arg(long, value_name = "PATH")]
    pub sdk_path: Option<PathBuf>,
    /// One line saying what the handler does.
    #[arg(long, default_value = "A ScheduleZero handler.")]
    pub description: String,
    /// Who makes it (the crate's authors).
    #[arg(long, default_value = "")]
    pub vendor: String,
}

/// A language `plugins new` writes a handler in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate with the Rust SDK.
    Rust,
    /// A module with the Python SDK, built with componentize-py.
    Python,
    /// A module with the JavaScript SDK, built with componentize-js.
    Js,
}

/// The Python SDK's files, written into a new Python handler's folder (`vendor/`) so that it
/// builds with the SDK of this host's version.
const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "pyproject.toml",
        include_str!("../../../sdk/python/pyproject.toml"),
    ),
    ("README.md", include_str!("../../../sdk/python/README.md")),
    (
        "schedulezero/__init__.py",
        include_str!("../../../sdk/python/schedulezero/__init__.py"),
    ),
    (
        "schedulezero/_schema.py",
        include_str!("../../../sdk/python/schedulezero/_schema.py"),
    ),
    (
        "schedulezero/_guest.py",
        include_str!("../../../sdk/python/schedulezero/_guest.py"),
    ),
    (
        "schedulezero/build.py",
        include_str!("../../../sdk/python/schedulezero/build.py"),
    ),
    (
        "schedulezero/testing.py",
        include_str!("../../../sdk/python/schedulezero/testing.py"),
    ),
    (
        "schedulezero/wit/handler.wit",
        include_str!("../../../wit/handler.wit"),
    ),
];

/// The JavaScript SDK's files, written into a new JavaScript handler's folder (`vendor/`).
const JS_SDK: &[(&str, &str)] = &[
    ("package.json", include_str!("../../../sdk/js/package.json")),
    (
        "package-lock.json",
        include_str!("../../../sdk/js/package-lock.json"),
    ),
    ("README.md", include_str!("../../../sdk/js/README.md")),
    (
        "schedulezero.js",
        include_str!("../../../sdk/js/schedulezero.js"),
    ),
    (
        "schedulezero.d.ts",
        include_str!("../../../sdk/js/schedulezero.d.ts"),
    ),
    ("build.mjs", include_str!("../../../sdk/js/build.mjs")),
    ("wit/handler.wit", include_str!("../../../wit/handler.wit")),
];

/// Arguments of `plugins keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the keys: PATH.key (secret, readable by you only) and PATH.pub.
    #[arg(long, default_value = "schedulezero", value_name = "PATH")]
    pub out: PathBuf,
    /// Replace keys already there.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `plugins sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The component.
    pub file: PathBuf,
    /// The secret key (`plugins keygen`'s .key file).
    #[arg(long, env = "SCHEDULEZERO_SIGNING_KEY", value_name = "FILE")]
    pub key: PathBuf,
    /// Write the signed component here instead of over the file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How to reach registries.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Reach the registry of the reference over plain HTTP (a development registry on
    /// loopback); also `catalog.plain_http` in the configuration.
    #[arg(long)]
    pub plain_http: bool,
}

/// Arguments of `plugins push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component (signed, normally).
    pub file: PathBuf,
    /// Where to publish it: `registry/repository:VERSION`, the tag being the component's
    /// semver version.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Push an unsigned component anyway.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// The operator's choices of `install` and `update`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConsentArgs {
    /// Consent without being asked (what it requests is still printed).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Install a component that is not signed by a trusted key.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plugins install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A registry reference (`registry/repository:1.2.0`, or `@sha256:...`) or a component file.
    pub source: String,
    /// Install under this name instead of the one the component gives.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub consent: ConsentArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `plugins update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The installed plugin.
    pub plugin: String,
    /// This version instead of the newest.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub consent: ConsentArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Writes a new handler's folder: a crate, a Python module or a JavaScript module, each with a
/// test and a README saying how to build, sign and publish it.
pub fn new_crate(args: &NewArgs) -> ExitCode {
    if !is_valid_plugin_name(&args.name) {
        return fail(&format!(
            "`{}` is not a handler name: lowercase letters, digits and `-`, starting with a letter",
            args.name
        ));
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return fail(&format!("{} exists and is not empty", dir.display()));
    }
    let sdk_path = args.sdk_path.as_ref().map(|p| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    });
    let repository = env!("CARGO_PKG_REPOSITORY");
    let sdk = match &sdk_path {
        Some(p) => format!("schedulezero-sdk = {{ path = {p:?} }}"),
        None => format!("schedulezero-sdk = {{ git = {repository:?} }}"),
    };
    let python_sdk = sdk_path
        .clone()
        .unwrap_or_else(|| "./vendor/schedulezero-sdk".into());
    let js_sdk = format!(
        "file:{}",
        sdk_path
            .clone()
            .unwrap_or_else(|| "vendor/schedulezero-sdk".into())
    );
    let type_name: String = args
        .name
        .split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let fill = |template: &str| {
        template
            .replace("{{name}}", &args.name)
            .replace("{{file}}", &args.name.replace('-', "_"))
            .replace("{{type}}", &type_name)
            .replace("{{description}}", &args.description.replace('"', "'"))
            .replace("{{vendor}}", &args.vendor.replace('"', "'"))
            .replace("{{sdk}}", &sdk)
            .replace("{{python_sdk}}", &python_sdk)
            .replace("{{js_sdk}}", &js_sdk)
    };
    let mut files: Vec<(String, String)> = match args.lang {
        Lang::Rust => vec![
            (
                "Cargo.toml".into(),
                fill(include_str!("scaffold/rust/Cargo.toml.tmpl")),
            ),
            (
                "src/lib.rs".into(),
                fill(include_str!("scaffold/rust/lib.rs.tmpl")),
            ),
            (
                "README.md".into(),
                fill(include_str!("scaffold/rust/README.md.tmpl")),
            ),
            (
                ".gitignore".into(),
                fill(include_str!("scaffold/rust/gitignore.tmpl")),
            ),
        ],
        Lang::Python => vec![
            (
                "app.py".into(),
                fill(include_str!("scaffold/python/app.py.tmpl")),
            ),
            (
                "test_app.py".into(),
                fill(include_str!("scaffold/python/test_app.py.tmpl")),
            ),
            (
                "README.md".into(),
                fill(include_str!("scaffold/python/README.md.tmpl")),
            ),
            (
                ".gitignore".into(),
                fill(include_str!("scaffold/python/gitignore.tmpl")),
            ),
        ],
        Lang::Js => vec![
            (
                "app.js".into(),
                fill(include_str!("scaffold/js/app.js.tmpl")),
            ),
            (
                "test/app.test.mjs".into(),
                fill(include_str!("scaffold/js/app.test.mjs.tmpl")),
            ),
            (
                "package.json".into(),
                fill(include_str!("scaffold/js/package.json.tmpl")),
            ),
            (
                "README.md".into(),
                fill(include_str!("scaffold/js/README.md.tmpl")),
            ),
            (
                ".gitignore".into(),
                fill(include_str!("scaffold/js/gitignore.tmpl")),
            ),
        ],
    };
    let vendored = match args.lang {
        Lang::Python if sdk_path.is_none() => PYTHON_SDK,
        Lang::Js if sdk_path.is_none() => JS_SDK,
        _ => &[],
    };
    files.extend(vendored.iter().map(|(path, text)| {
        (
            format!("vendor/schedulezero-sdk/{path}"),
            (*text).to_owned(),
        )
    }));
    for (path, text) in files {
        let path = dir.join(path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            return fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
    let how = match args.lang {
        Lang::Rust => "build it with `cargo build --release --target wasm32-wasip2` there",
        Lang::Python => &format!(
            "install the SDK there (`pip install {python_sdk}`), then build it with `python -m schedulezero.build .`"
        ),
        Lang::Js => "`npm install` there, then build it with `npm run build`",
    };
    println!(
        "created {} ({}): {how}; its README says how to test, sign and publish it",
        dir.display(),
        args.name
    );
    ExitCode::SUCCESS
}

/// Writes a new signing key pair.
pub fn keygen(args: &KeygenArgs) -> ExitCode {
    let secret_path = args.out.with_extension("key");
    let public_path = args.out.with_extension("pub");
    if !args.force && (secret_path.exists() || public_path.exists()) {
        return fail(&format!(
            "{} or {} exists: pass --force to replace them",
            secret_path.display(),
            public_path.display()
        ));
    }
    let (secret_pem, public) = trust::generate();
    let written = write_private(&secret_path, secret_pem.as_bytes())
        .and_then(|()| std::fs::write(&public_path, format!("{}\n", public.line())));
    if let Err(e) = written {
        return fail(&format!("cannot write the keys: {e}"));
    }
    println!("secret key: {} (keep it private)", secret_path.display());
    println!("public key: {}", public_path.display());
    println!("key id:     {}", public.id());
    println!(
        "\noperators trust it with:\n\n[trust.keys.VENDOR]\nkey = \"{}\"\nplugins = [\"PREFIX-*\"]",
        public.line()
    );
    ExitCode::SUCCESS
}

/// Creates a file readable and writable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Signs a component.
pub fn sign(args: &SignArgs) -> ExitCode {
    let key = match trust::SecretKey::from_file(&args.key) {
        Ok(k) => k,
        Err(e) => return fail(&e.to_string()),
    };
    let wasm = match std::fs::read(&args.file) {
        Ok(w) => w,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.file.display())),
    };
    let signed = match trust::sign(&wasm, &key) {
        Ok(s) => s,
        Err(e) => return fail(&format!("{}: {e}", args.file.display())),
    };
    let out = args.out.clone().unwrap_or_else(|| args.file.clone());
    if let Err(e) = crate::catalog::lock::write_atomically(&out, &signed) {
        return fail(&e.to_string());
    }
    println!(
        "signed {} with key {} ({} bytes, sha256:{})",
        out.display(),
        key.public().id(),
        signed.len(),
        crate::runtime::sha256_hex(&signed)
    );
    ExitCode::SUCCESS
}

/// The registry settings of the configuration, with `--plain-http` adding the reference's
/// registry.
fn with_registry(config: &Config, args: &RegistryArgs, source: Option<&str>) -> Config {
    let mut config = config.clone();
    if args.plain_http
        && let Some(Ok(Source::Registry(r))) = source.map(Source::parse)
    {
        config
            .catalog
            .plain_http
            .push(r.resolve_registry().to_owned());
    }
    config
}

fn catalog_for(config: Config) -> Result<Catalog, CatalogError> {
    let runtime = Runtime::new(config).map_err(|e| CatalogError::Load(e.to_string()))?;
    Ok(Catalog::new(Arc::new(runtime), &Credentials::from_env()))
}

/// Publishes a component to a registry.
pub async fn push(config: &Config, args: &PushArgs) -> ExitCode {
    let config = with_registry(config, &args.registry, Some(&args.reference));
    let result = async {
        let reference = crate::catalog::oci::parse_reference(&args.reference)?;
        let catalog = catalog_for(config)?;
        let fetched = catalog.fetch(&Source::File(args.file.clone())).await?;
        let inspection = catalog.inspect(&fetched, None, true);
        if let Some(reason) = &inspection.world.reason {
            return Err(CatalogError::Unsupported(reason.clone()));
        }
        let version = inspection.version.clone().ok_or_else(|| {
            CatalogError::Unsupported("the component does not say its version".into())
        })?;
        let tag = reference.tag().unwrap_or_default();
        match crate::catalog::oci::tag_version(tag) {
            Some(v) if v.to_string() == version => {}
            Some(v) => {
                return Err(CatalogError::BadReference(format!(
                    "the tag says {v} but the component is version {version}"
                )));
            }
            None => {
                return Err(CatalogError::BadReference(format!(
                    "tag the reference with the component's version: `{}:{version}`",
                    reference.repository()
                )));
            }
        }
        let signed = !matches!(
            inspection.signature,
            Verdict::Unsigned | Verdict::Invalid { .. }
        );
        if !signed && !args.allow_unsigned {
            return Err(CatalogError::Signature(format!(
                "{} is {}: sign it first (`plugins sign`), or pass --allow-unsigned",
                args.file.display(),
                inspection.signature
            )));
        }
        let mut annotations = BTreeMap::new();
        let mut note = |key: &str, value: Option<&String>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                annotations.insert(format!("org.opencontainers.image.{key}"), v.clone());
            }
        };
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        note("title", inspection.name.as_ref());
        note("version", Some(&version));
        note("description", inspection.description.as_ref());
        note("vendor", inspection.vendor.as_ref());
        note("licenses", inspection.license.as_ref());
        note("source", inspection.source_url.as_ref());
        note("created", Some(&created));
        let config_json = serde_json::json!({
            "created": created,
            "author": inspection.vendor.clone().unwrap_or_default(),
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [fetched.digest],
            "component": {
                "exports": inspection.world.exports,
                "imports": inspection.world.imports,
                "target": inspection.world.contract,
            },
        });
        catalog
            .registry()?
            .push(&reference, fetched.wasm, config_json, annotations)
            .await
    }
    .await;
    match result {
        Ok(pushed) => {
            println!(
                "pushed {} ({}, {}) as {}\npinned: {}@{}",
                args.file.display(),
                pushed.digest,
                bytes(pushed.size),
                pushed.reference,
                pushed
                    .reference
                    .rsplit_once(':')
                    .map_or(pushed.reference.as_str(), |(r, _)| r),
                pushed.manifest_digest
            );
            ExitCode::SUCCESS
        }
        Err(e) => catalog_fail(&e),
    }
}

fn catalog_fail(e: &CatalogError) -> ExitCode {
    eprintln!("error[{}]: {e}", e.code());
    ExitCode::FAILURE
}

/// `plugins inspect` of a file or a registry reference: nothing is run or installed.
pub async fn inspect(
    config: &Config,
    source: &str,
    name: Option<&str>,
    json: bool,
    registry: &RegistryArgs,
) -> ExitCode {
    let config = with_registry(config, registry, Some(source));
    let result = async {
        let source = Source::parse(source)?;
        let catalog = catalog_for(config)?;
        let fetched = catalog.fetch(&source).await?;
        Ok::<_, CatalogError>(catalog.inspect(&fetched, name, false))
    }
    .await;
    match result {
        Ok(inspection) if json => {
            println!("{}", serde_json::to_string(&inspection).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(inspection) => {
            print_inspection(&inspection);
            ExitCode::SUCCESS
        }
        Err(e) => catalog_fail(&e),
    }
}

/// An inspection, as an operator reads it before consenting.
pub fn print_inspection(i: &Inspection) {
    println!(
        "{} {}",
        i.name.as_deref().unwrap_or("(no name)"),
        i.version.as_deref().unwrap_or("(no version)")
    );
    if let Some(d) = i.description.as_deref().filter(|d| !d.is_empty()) {
        println!("  {d}");
    }
    println!();
    let line = |label: &str, value: &str| println!("{label:<11}{value}");
    if let Some(v) = &i.vendor {
        line("vendor:", v);
    }
    if let Some(v) = &i.license {
        line("license:", v);
    }
    if let Some(v) = &i.source_url {
        line("repository:", v);
    }
    line("source:", &i.source);
    if let Some(p) = &i.pinned {
        line("pinned:", p);
    }
    line("digest:", &format!("{} ({})", i.digest, bytes(i.size)));
    line(
        "contract:",
        &match (&i.world.contract, &i.world.reason) {
            (Some(c), None) => format!("{c}: supported by this host"),
            (_, Some(reason)) => format!("NOT SUPPORTED: {reason}"),
            (None, None) => "unknown".to_owned(),
        },
    );
    line("signature:", &i.signature.to_string());
    match &i.installed {
        Some(old) => line(
            "installed:",
            &format!("{} ({}, from {})", old.version, old.digest, old.source),
        ),
        None => line("installed:", "no"),
    }
    if let Some(review) = &i.capabilities {
        super::show::print_review(review);
        if !review.requested.is_empty() {
            println!(
                "  (grants of the configuration file; a running host's: `schedulezero plugins grants {}`)",
                i.name.as_deref().unwrap_or("NAME")
            );
        }
    }
    if !i.problems.is_empty() {
        println!("\ncannot be installed:");
        for p in &i.problems {
            println!("  - {p}");
        }
    }
}

/// Asks the operator, at a terminal; refuses without one.
fn ask(question: &str) -> Result<bool, CatalogError> {
    if !std::io::stdin().is_terminal() {
        return Err(CatalogError::Consent(
            "no terminal to ask for consent: review with `plugins inspect`, then pass --yes".into(),
        ));
    }
    print!("\n{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CatalogError::Consent(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Fetches, shows what it is, asks, installs.
async fn install_source(
    catalog: &Catalog,
    source: &Source,
    name: Option<&str>,
    args: &ConsentArgs,
) -> Result<Option<Outcome>, CatalogError> {
    let fetched = catalog.fetch(source).await?;
    let inspection = catalog.inspect(&fetched, name, args.allow_unsigned);
    if !args.json {
        print_inspection(&inspection);
    }
    if let Some(refusal) = inspection.refusal() {
        return Err(refusal.clone());
    }
    if !args.yes {
        let what = match &inspection.installed {
            Some(old) => format!(
                "Replace {} {} with {}",
                inspection.name.as_deref().unwrap_or_default(),
                old.version,
                inspection.version.as_deref().unwrap_or_default()
            ),
            None => format!(
                "Install {} {}",
                inspection.name.as_deref().unwrap_or_default(),
                inspection.version.as_deref().unwrap_or_default()
            ),
        };
        if !ask(&format!("{what} with the requests above?"))? {
            println!("nothing installed");
            return Ok(None);
        }
    }
    let consent = Consent {
        given: true,
        digest: Some(fetched.digest.clone()),
        name: name.map(str::to_owned),
        allow_unsigned: args.allow_unsigned,
    };
    catalog.install(&fetched, &consent).await.map(Some)
}

fn print_outcome(config: &Config, outcome: &Outcome, json: bool) {
    if json {
        println!("{}", serde_json::to_string(outcome).unwrap_or_default());
        return;
    }
    let i = &outcome.installed;
    println!(
        "\n{} {} {} ({}){}: fetched in {:.1} ms, checked in {:.1} ms, compiled and described in {:.1} ms",
        match &outcome.replaced {
            Some(old) if old.digest != i.digest => format!("replaced {} with", old.version),
            _ => "installed".to_owned(),
        },
        outcome.name,
        i.version,
        i.digest,
        i.signer
            .as_deref()
            .map_or_else(|| ", unsigned".to_owned(), |s| format!(", signed by {s}")),
        outcome.fetch_ms,
        outcome.verify_ms,
        outcome.precompile_ms
    );
    println!(
        "{} (recorded in {}); a host serving this folder loads it within {} from the compiled artifact",
        outcome.path,
        config
            .plugins_dir
            .join(crate::catalog::lock::FILE)
            .display(),
        humantime::format_duration(config.pool.watch_settle)
    );
}

/// Prints what an install or update did; nothing installed (no consent) or an error fails.
fn finish(config: &Config, result: Result<Option<Outcome>, CatalogError>, json: bool) -> ExitCode {
    match result {
        Ok(Some(outcome)) => {
            print_outcome(config, &outcome, json);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::FAILURE,
        Err(e) => catalog_fail(&e),
    }
}

/// `plugins install`.
pub async fn install(config: &Config, args: &InstallArgs) -> ExitCode {
    let config = with_registry(config, &args.registry, Some(&args.source));
    let result = async {
        let source = Source::parse(&args.source)?;
        let catalog = catalog_for(config.clone())?;
        install_source(&catalog, &source, args.name.as_deref(), &args.consent).await
    }
    .await;
    finish(&config, result, args.consent.json)
}

/// `plugins update`.
pub async fn update(config: &Config, args: &UpdateArgs) -> ExitCode {
    let mut config = config.clone();
    if args.registry.plain_http
        && let Ok(lock) = crate::catalog::Lockfile::read(&config.plugins_dir)
        && let Some(entry) = lock.plugins.get(&args.plugin)
    {
        config = with_registry(&config, &args.registry, Some(&entry.current.source));
    }
    let result = async {
        let catalog = catalog_for(config.clone())?;
        let source = catalog
            .update_source(&args.plugin, args.to.as_deref())
            .await?;
        install_source(&catalog, &source, Some(&args.plugin), &args.consent).await
    }
    .await;
    finish(&config, result, args.consent.json)
}

/// `plugins rollback`.
pub async fn rollback(config: &Config, plugin: &str, allow_unsigned: bool, json: bool) -> ExitCode {
    let result = async {
        let catalog = catalog_for(config.clone())?;
        catalog.rollback(plugin, allow_unsigned).await
    }
    .await;
    match result {
        Ok(outcome) => {
            print_outcome(config, &outcome, json);
            ExitCode::SUCCESS
        }
        Err(e) => catalog_fail(&e),
    }
}

/// `plugins remove`.
pub fn remove(config: &Config, plugin: &str) -> ExitCode {
    match catalog_for(config.clone()).and_then(|c| c.remove(plugin)) {
        Ok(removed) => {
            println!(
                "removed {plugin} {} ({}); calls to it fail with plugin_removed once a host serving the folder notices",
                removed.version, removed.digest
            );
            ExitCode::SUCCESS
        }
        Err(e) => catalog_fail(&e),
    }
}

/// `plugins verify`: exit code 1 when anything does not hold.
pub fn verify(config: &Config, json: bool) -> ExitCode {
    let rows = match catalog_for(config.clone()).and_then(|c| c.verify()) {
        Ok(r) => r,
        Err(e) => return catalog_fail(&e),
    };
    let ok = rows.iter().all(|r| r.ok);
    if json {
        println!("{}", serde_json::json!({ "ok": ok, "plugins": rows }));
    } else {
        println!("{:<24} {:<10} {:<5} SIGNATURE", "NAME", "VERSION", "OK");
        for r in &rows {
            println!(
                "{:<24} {:<10} {:<5} {}",
                r.name,
                r.version.as_deref().unwrap_or("-"),
                if r.ok { "yes" } else { "NO" },
                r.signature
            );
            for p in &r.problems {
                println!("{:<24} {p}", "");
            }
        }
        if rows.is_empty() {
            println!("(no components in {})", config.plugins_dir.display());
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
