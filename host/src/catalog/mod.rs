//! The service catalog: components pulled from OCI registries (or taken from a file), checked
//! without running them (their digest, signature, contract and requests), installed into the
//! plugins folder with the operator's consent, recorded in a lockfile, updated to newer semver
//! tags, rolled back, removed and verified. The CLI and the API use the same [`Catalog`].
//!
//! Nothing is half-done: a component is fetched and checked into memory, compiled and described
//! in a staging folder, and only then placed in the plugins folder with one rename; the
//! lockfile is replaced whole. A failure at any step leaves the installed version as it was.

pub mod lock;
pub mod oci;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capability::{Manifest, Review};
use crate::config::is_valid_plugin_name;
use crate::runtime::Runtime;
use crate::trust::Verdict;
pub use lock::{Entry, Installed, Lockfile};
pub use oci::{Credentials, Pulled, Pushed, Registry};
pub use world::World;

/// Why a catalog operation was refused. Each has a stable code ([`CatalogError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not a registry reference, or a tag that is not semver.
    #[error("{0}")]
    BadReference(String),
    /// The registry has no such artifact.
    #[error("{0}")]
    NotFound(String),
    /// The registry cannot be reached, answers garbage, or the download broke off.
    #[error("{0}")]
    Registry(String),
    /// Bytes that are not what their digest says.
    #[error("digest mismatch: {0}")]
    Digest(String),
    /// An artifact larger than `pool.max_component_size`.
    #[error(
        "the component is {size} bytes, more than pool.max_component_size ({limit}); it was not downloaded"
    )]
    TooLarge {
        /// Its announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a WebAssembly component artifact.
    #[error("not a component: {0}")]
    NotAComponent(String),
    /// A component this host cannot run (another world, a newer contract).
    #[error("not supported by this host: {0}")]
    Unsupported(String),
    /// Its signature is missing, bad, or by a key not trusted for its name.
    #[error("signature: {0}")]
    Signature(String),
    /// The operator's consent is missing, or was given for other bytes.
    #[error("{0}")]
    Consent(String),
    /// No such plugin in the lockfile.
    #[error("{0}")]
    NotInstalled(String),
    /// Nothing to update to, or to roll back to.
    #[error("{0}")]
    Nothing(String),
    /// The component failed to compile, link or describe itself.
    #[error("the component does not load: {0}")]
    Load(String),
    /// The plugins folder, the data folder or the lockfile could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl CatalogError {
    /// The stable code of the error (the API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadReference(_) => "bad_reference",
            Self::NotFound(_) => "artifact_not_found",
            Self::Registry(_) => "registry_unavailable",
            Self::Digest(_) => "digest_mismatch",
            Self::TooLarge { .. } => "artifact_too_large",
            Self::NotAComponent(_) => "not_a_component",
            Self::Unsupported(_) => "unsupported_component",
            Self::Signature(_) => "signature_refused",
            Self::Consent(_) => "consent_required",
            Self::NotInstalled(_) => "not_installed",
            Self::Nothing(_) => "nothing_to_do",
            Self::Load(_) => "install_failed",
            Self::Io(_) => "catalog_storage",
        }
    }
}

/// Where a component comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on this machine.
    File(PathBuf),
    /// A registry reference.
    Registry(oci::Reference),
}

impl Source {
    /// A path to an existing file or a name ending in `.wasm` is a file; anything else a
    /// registry reference.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let path = Path::new(text);
        if path.is_file() || text.ends_with(".wasm") {
            return Ok(Self::File(path.to_owned()));
        }
        oci::parse_reference(text).map(Self::Registry)
    }
}

/// A component fetched into memory, not yet checked.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its bytes.
    pub wasm: Vec<u8>,
    /// `sha256:<hex>` of them.
    pub digest: String,
    /// Where it came from, as given.
    pub source: String,
    /// The registry reference pinned to the manifest it resolved to.
    pub pinned: Option<String>,
    /// The registry tag's version.
    pub tag: Option<String>,
    /// The manifest's annotations (registry sources).
    pub annotations: BTreeMap<String, String>,
    /// How long fetching took.
    pub took: Duration,
}

/// What a component is and what installing it would mean, told without running it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Inspection {
    /// The plugin name it installs as (its manifest's, or as given).
    pub name: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Who makes it.
    pub vendor: Option<String>,
    /// Its license.
    pub license: Option<String>,
    /// Where its source is.
    pub source_url: Option<String>,
    /// Where it came from.
    pub source: String,
    /// The registry reference pinned to the manifest's digest.
    pub pinned: Option<String>,
    /// The component's digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The contract it was built for, against this host's.
    pub world: World,
    /// What its signature says against the trusted keys.
    #[schema(value_type = Object)]
    pub signature: Verdict,
    /// What it requests next to what the plugin is granted here.
    #[schema(value_type = Option<Object>)]
    pub capabilities: Option<Review>,
    /// Its manifest, when it could be read.
    #[schema(value_type = Option<Object>)]
    pub manifest: Option<Manifest>,
    /// The version installed now under the same name, if any.
    pub installed: Option<Installed>,
    /// What stops it from being installed; empty when it can be.
    pub problems: Vec<String>,
    /// The same, as errors.
    #[serde(skip)]
    refusals: Vec<CatalogError>,
}

impl Inspection {
    /// The first thing that stops it from being installed.
    pub fn refusal(&self) -> Option<&CatalogError> {
        self.refusals.first()
    }
}

/// What an install did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// The plugin.
    pub name: String,
    /// What is installed now.
    pub installed: Installed,
    /// What was installed before, if anything.
    pub replaced: Option<Installed>,
    /// Where the file is.
    pub path: String,
    /// Milliseconds spent fetching (pull or read).
    pub fetch_ms: f64,
    /// Milliseconds spent checking (digest, signature, contract).
    pub verify_ms: f64,
    /// Milliseconds spent compiling, linking and describing it (precompiled: the host loads the
    /// artifact).
    pub precompile_ms: f64,
}

/// One row of `plugins verify`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// The plugin.
    pub name: String,
    /// The version the lockfile records (none for a file the catalog did not install).
    pub version: Option<String>,
    /// Whether everything holds.
    pub ok: bool,
    /// The signature against the trusted keys.
    #[schema(value_type = Object)]
    pub signature: Verdict,
    /// What does not hold.
    pub problems: Vec<String>,
}

/// What the install may go on with.
#[derive(Debug, Clone, Default)]
pub struct Consent {
    /// The operator said yes (`--yes`, or the API's `consent: true`).
    pub given: bool,
    /// The digest the operator reviewed: the install is refused if the bytes differ.
    pub digest: Option<String>,
    /// A name to install under, instead of the manifest's.
    pub name: Option<String>,
    /// Install even when the component is not signed by a trusted key (also
    /// `catalog.allow_unsigned`).
    pub allow_unsigned: bool,
}

/// The catalog of one plugins folder.
pub struct Catalog {
    runtime: Arc<Runtime>,
    credentials: Credentials,
    /// Made on first use: a host that never installs anything holds no HTTP client for it.
    registry: std::sync::OnceLock<Registry>,
}

impl Catalog {
    /// The catalog of the runtime's plugins folder, with its trusted keys and grants.
    pub fn new(runtime: Arc<Runtime>, credentials: &Credentials) -> Self {
        Self {
            runtime,
            credentials: credentials.clone(),
            registry: std::sync::OnceLock::new(),
        }
    }

    fn plugins_dir(&self) -> &Path {
        &self.runtime.config().plugins_dir
    }

    fn blobs_dir(&self) -> PathBuf {
        self.runtime.config().data_dir.join("catalog").join("blobs")
    }

    fn max_bytes(&self) -> u64 {
        self.runtime.config().pool.max_component_size
    }

    /// The registry client.
    pub fn registry(&self) -> Result<&Registry, CatalogError> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let made = Registry::new(&self.runtime.config().catalog.plain_http, &self.credentials)?;
        Ok(self.registry.get_or_init(|| made))
    }

    /// The lockfile's entries.
    pub fn installed(&self) -> Result<Lockfile, CatalogError> {
        Lockfile::read(self.plugins_dir())
    }

    /// Fetches a component into memory: pulled (bounded, digest-checked) or read.
    pub async fn fetch(&self, source: &Source) -> Result<Fetched, CatalogError> {
        let started = Instant::now();
        match source {
            Source::File(path) => {
                let max = self.max_bytes();
                let size = std::fs::metadata(path)
                    .map_err(|e| CatalogError::Io(format!("cannot read {}: {e}", path.display())))?
                    .len();
                if size > max {
                    return Err(CatalogError::TooLarge { size, limit: max });
                }
                let wasm = blocking(|| std::fs::read(path)).map_err(|e| {
                    CatalogError::Io(format!("cannot read {}: {e}", path.display()))
                })?;
                Ok(Fetched {
                    digest: oci::sha256_digest(&wasm),
                    wasm,
                    source: path.display().to_string(),
                    pinned: None,
                    tag: None,
                    annotations: BTreeMap::new(),
                    took: started.elapsed(),
                })
            }
            Source::Registry(reference) => {
                self.allowed(reference)?;
                let tag = reference.tag().map(str::to_owned);
                if reference.digest().is_none() {
                    match tag.as_deref() {
                        Some(t) if oci::tag_version(t).is_some() => {}
                        Some(t) => {
                            return Err(CatalogError::BadReference(format!(
                                "the tag `{t}` is not a semver version (1.2.0): the catalog installs versions, not moving tags"
                            )));
                        }
                        None => {
                            return Err(CatalogError::BadReference(format!(
                                "`{}` names no version: add `:1.2.0` (or pin `@sha256:...`)",
                                reference.whole()
                            )));
                        }
                    }
                }
                let pulled = self.registry()?.pull(reference, self.max_bytes()).await?;
                let pinned = format!(
                    "{}/{}@{}",
                    reference.resolve_registry(),
                    reference.repository(),
                    pulled.manifest_digest
                );
                Ok(Fetched {
                    wasm: pulled.wasm,
                    digest: pulled.digest,
                    source: reference.whole(),
                    pinned: Some(pinned),
                    tag,
                    annotations: pulled.annotations,
                    took: started.elapsed(),
                })
            }
        }
    }

    /// Refuses a reference to a registry `catalog.registries` does not list.
    fn allowed(&self, reference: &oci::Reference) -> Result<(), CatalogError> {
        let allowed = &self.runtime.config().catalog.registries;
        let registry = reference.resolve_registry();
        if allowed.is_empty() || allowed.iter().any(|r| r == registry) {
            return Ok(());
        }
        Err(CatalogError::BadReference(format!(
            "the registry {registry} is not one of catalog.registries ({})",
            allowed.join(", ")
        )))
    }

    /// Checks a fetched component without running it: what it is, whom it is signed by, what
    /// it asks for next to what is granted, and what would stop it from installing.
    pub fn inspect(
        &self,
        fetched: &Fetched,
        name: Option<&str>,
        allow_unsigned: bool,
    ) -> Inspection {
        blocking(|| self.inspect_now(fetched, name, allow_unsigned))
    }

    fn inspect_now(
        &self,
        fetched: &Fetched,
        name: Option<&str>,
        allow_unsigned: bool,
    ) -> Inspection {
        let mut problems: Vec<CatalogError> = Vec::new();
        let world = world::check(&fetched.wasm);
        if let Some(reason) = &world.reason {
            problems.push(if crate::trust::is_component(&fetched.wasm) {
                CatalogError::Unsupported(reason.clone())
            } else {
                CatalogError::NotAComponent(reason.clone())
            });
        }
        let (manifest, manifest_error) = match Manifest::read(&fetched.wasm) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(e) = &manifest_error {
            problems.push(CatalogError::Unsupported(format!(
                "capabilities manifest: {e}"
            )));
        }
        let package = manifest.as_ref().and_then(|m| m.package.clone());
        let note = |key: &str| {
            fetched
                .annotations
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let name = name
            .map(str::to_owned)
            .or_else(|| package.as_ref().map(|p| p.name.clone()))
            .or_else(|| note("org.opencontainers.image.title"));
        match &name {
            None => problems.push(CatalogError::Unsupported(
                "the component does not say its name (no package in its manifest): give one (--name)".into(),
            )),
            Some(n) if !is_valid_plugin_name(n) => problems.push(CatalogError::Unsupported(format!(
                "`{n}` is not a plugin name (lowercase letters, digits and `-`, starting with a letter)"
            ))),
            Some(_) => {}
        }
        let version = package
            .as_ref()
            .map(|p| p.version.clone())
            .filter(|v| !v.is_empty())
            .or_else(|| note("org.opencontainers.image.version"));
        match &version {
            Some(v) if semver::Version::parse(v).is_err() => {
                problems.push(CatalogError::Unsupported(format!(
                    "its version `{v}` is not semver"
                )));
            }
            None => problems.push(CatalogError::Unsupported(
                "the component does not say its version".into(),
            )),
            Some(v) => {
                if let Some(tag) = fetched.tag.as_deref().and_then(oci::tag_version)
                    && tag.to_string() != *v
                {
                    problems.push(CatalogError::Unsupported(format!(
                        "the tag says {tag} but the component says {v}"
                    )));
                }
            }
        }
        let signature = self
            .runtime
            .trust()
            .verify(&fetched.wasm, name.as_deref().unwrap_or(""));
        let unsigned_ok = allow_unsigned || self.runtime.config().catalog.allow_unsigned;
        match &signature {
            Verdict::Verified { .. } => {}
            Verdict::Unsigned if unsigned_ok => {}
            Verdict::UnknownSigner { .. } if unsigned_ok => {}
            other => problems.push(CatalogError::Signature(format!(
                "{other}{}",
                match other {
                    Verdict::Unsigned | Verdict::UnknownSigner { .. } =>
                        " (trust its key in [trust.keys], or install unsigned with --allow-unsigned)",
                    _ => "",
                }
            ))),
        }
        let capabilities = name.as_deref().map(|n| {
            crate::capability::grant::review(
                manifest.as_ref().unwrap_or(&Manifest::default()),
                &self.runtime.grants(n),
            )
        });
        let installed = name.as_deref().and_then(|n| {
            Lockfile::read(self.plugins_dir())
                .ok()?
                .plugins
                .get(n)
                .map(|e| e.current.clone())
        });
        Inspection {
            version,
            description: package
                .as_ref()
                .map(|p| p.description.clone())
                .or_else(|| note("org.opencontainers.image.description")),
            vendor: package
                .as_ref()
                .map(|p| p.vendor.replace(':', ", "))
                .filter(|v| !v.is_empty())
                .or_else(|| note("org.opencontainers.image.vendor")),
            license: package
                .as_ref()
                .map(|p| p.license.clone())
                .filter(|v| !v.is_empty())
                .or_else(|| note("org.opencontainers.image.licenses")),
            source_url: package
                .as_ref()
                .map(|p| p.source.clone())
                .filter(|v| !v.is_empty())
                .or_else(|| note("org.opencontainers.image.source")),
            name,
            source: fetched.source.clone(),
            pinned: fetched.pinned.clone(),
            digest: fetched.digest.clone(),
            size: fetched.wasm.len() as u64,
            world,
            signature,
            capabilities,
            manifest,
            installed,
            problems: problems.iter().map(ToString::to_string).collect(),
            refusals: problems,
        }
    }

    /// Installs a fetched component under the operator's consent: checked, compiled and
    /// described in a staging folder, then placed in the plugins folder with one rename,
    /// recorded in the lockfile (the version before it kept for rollback).
    pub async fn install(
        &self,
        fetched: &Fetched,
        consent: &Consent,
    ) -> Result<Outcome, CatalogError> {
        let checking = Instant::now();
        let inspection = self.inspect(fetched, consent.name.as_deref(), consent.allow_unsigned);
        if let Some(refusal) = inspection.refusal() {
            return Err(refusal.clone());
        }
        if let Some(digest) = &consent.digest
            && *digest != fetched.digest
        {
            return Err(CatalogError::Consent(format!(
                "the component is {} now, not the {digest} that was reviewed: inspect it again",
                fetched.digest
            )));
        }
        if !consent.given {
            return Err(CatalogError::Consent(
                "installing needs the operator's consent (--yes, or `consent: true` with the reviewed digest)".into(),
            ));
        }
        let name = inspection.name.clone().unwrap_or_default();
        let verify_ms = checking.elapsed().as_secs_f64() * 1e3;
        let compiling = Instant::now();
        self.trial(&fetched.wasm, &name).await?;
        let precompile_ms = compiling.elapsed().as_secs_f64() * 1e3;
        let installed = Installed {
            version: inspection.version.clone().unwrap_or_default(),
            digest: fetched.digest.clone(),
            source: fetched.source.clone(),
            pinned: fetched.pinned.clone(),
            signer: inspection.signature.signer().map(str::to_owned),
            key_id: match &inspection.signature {
                Verdict::Verified { key_id, .. } => Some(key_id.clone()),
                _ => None,
            },
            installed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let (path, replaced) =
            blocking(|| self.place(&name, &fetched.wasm, installed.clone(), Placement::New))?;
        tracing::info!(plugin = %name, version = %installed.version, digest = %installed.digest,
            source = %installed.source, signer = ?installed.signer, "plugin installed from the catalog");
        Ok(Outcome {
            name,
            installed,
            replaced,
            path: path.display().to_string(),
            fetch_ms: fetched.took.as_secs_f64() * 1e3,
            verify_ms,
            precompile_ms,
        })
    }

    /// The newest semver tag of an installed plugin's repository above its version (or the
    /// given version), as a reference to fetch.
    pub async fn update_source(
        &self,
        name: &str,
        to: Option<&str>,
    ) -> Result<Source, CatalogError> {
        let entry = self.entry(name)?;
        let reference = oci::parse_reference(&entry.current.source).map_err(|_| {
            CatalogError::Nothing(format!(
                "{name} was installed from a file ({}): install the new file instead",
                entry.current.source
            ))
        })?;
        self.allowed(&reference)?;
        let current = semver::Version::parse(&entry.current.version).ok();
        let tags = self.registry()?.tags(&reference).await?;
        let wanted = match to {
            Some(v) => {
                let v = oci::tag_version(v).ok_or_else(|| {
                    CatalogError::BadReference(format!("`{v}` is not a semver version"))
                })?;
                tags.iter()
                    .find(|t| oci::tag_version(t).as_ref() == Some(&v))
                    .cloned()
                    .ok_or_else(|| {
                        CatalogError::NotFound(format!(
                            "{}/{} has no tag {v}",
                            reference.resolve_registry(),
                            reference.repository()
                        ))
                    })?
            }
            None => tags
                .iter()
                .filter_map(|t| Some((oci::tag_version(t)?, t)))
                .filter(|(v, _)| v.pre.is_empty() && current.as_ref().is_none_or(|c| v > c))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    CatalogError::Nothing(format!(
                        "{name} {} is the newest version in {}/{}",
                        entry.current.version,
                        reference.resolve_registry(),
                        reference.repository()
                    ))
                })?,
        };
        Ok(Source::Registry(oci::Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            wanted,
        )))
    }

    /// Puts the version before the installed one back (its kept component, checked again
    /// against its digest and the trusted keys).
    pub async fn rollback(
        &self,
        name: &str,
        allow_unsigned: bool,
    ) -> Result<Outcome, CatalogError> {
        let entry = self.entry(name)?;
        let Some(previous) = entry.previous.last().cloned() else {
            return Err(CatalogError::Nothing(format!(
                "{name} has no earlier version to roll back to"
            )));
        };
        let started = Instant::now();
        let blob = self.blob_path(&previous.digest);
        let wasm = blocking(|| std::fs::read(&blob)).map_err(|e| {
            CatalogError::Io(format!(
                "the kept component of {name} {} ({}) cannot be read: {e}",
                previous.version,
                blob.display()
            ))
        })?;
        if oci::sha256_digest(&wasm) != previous.digest {
            return Err(CatalogError::Digest(format!(
                "the kept component of {name} {} no longer matches its digest",
                previous.version
            )));
        }
        let fetch_ms = started.elapsed().as_secs_f64() * 1e3;
        let checking = Instant::now();
        let verdict = blocking(|| self.runtime.trust().verify(&wasm, name));
        let unsigned_ok = allow_unsigned
            || self.runtime.config().catalog.allow_unsigned
            || previous.signer.is_none();
        if !(verdict.is_verified()
            || (unsigned_ok
                && matches!(verdict, Verdict::Unsigned | Verdict::UnknownSigner { .. })))
        {
            return Err(CatalogError::Signature(verdict.to_string()));
        }
        let verify_ms = checking.elapsed().as_secs_f64() * 1e3;
        let compiling = Instant::now();
        self.trial(&wasm, name).await?;
        let precompile_ms = compiling.elapsed().as_secs_f64() * 1e3;
        let (path, replaced) =
            blocking(|| self.place(name, &wasm, previous.clone(), Placement::Rollback))?;
        tracing::info!(plugin = %name, version = %previous.version, "plugin rolled back");
        Ok(Outcome {
            name: name.to_owned(),
            installed: previous,
            replaced,
            path: path.display().to_string(),
            fetch_ms,
            verify_ms,
            precompile_ms,
        })
    }

    /// Removes an installed plugin: its file, its lockfile entry and its kept components.
    pub fn remove(&self, name: &str) -> Result<Installed, CatalogError> {
        blocking(|| self.remove_now(name))
    }

    fn remove_now(&self, name: &str) -> Result<Installed, CatalogError> {
        let _held = lock::FolderLock::take(self.plugins_dir())?;
        let mut lockfile = Lockfile::read(self.plugins_dir())?;
        let Some(entry) = lockfile.plugins.remove(name) else {
            return Err(not_installed(name));
        };
        let file = self.plugins_dir().join(format!("{name}.wasm"));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CatalogError::Io(format!(
                    "cannot remove {}: {e}",
                    file.display()
                )));
            }
        }
        lockfile.write(self.plugins_dir())?;
        for kept in std::iter::once(&entry.current).chain(&entry.previous) {
            self.forget_blob(&lockfile, &kept.digest);
        }
        tracing::info!(plugin = %name, version = %entry.current.version, "plugin removed from the catalog");
        Ok(entry.current)
    }

    /// Checks every installed plugin against the lockfile and the trusted keys, and lists the
    /// components in the folder the catalog did not install.
    pub fn verify(&self) -> Result<Vec<Verification>, CatalogError> {
        blocking(|| self.verify_now())
    }

    fn verify_now(&self) -> Result<Vec<Verification>, CatalogError> {
        let lockfile = Lockfile::read(self.plugins_dir())?;
        let mut rows = Vec::new();
        for (name, entry) in &lockfile.plugins {
            let mut problems = Vec::new();
            let path = self.plugins_dir().join(format!("{name}.wasm"));
            let signature = match std::fs::read(&path) {
                Ok(wasm) => {
                    let digest = oci::sha256_digest(&wasm);
                    if digest != entry.current.digest {
                        problems.push(format!(
                            "the file is {digest}, the lockfile says {}: it was changed or replaced outside the catalog",
                            entry.current.digest
                        ));
                    }
                    self.runtime.trust().verify(&wasm, name)
                }
                Err(e) => {
                    problems.push(format!("{} cannot be read: {e}", path.display()));
                    Verdict::Invalid {
                        reason: "no file".into(),
                    }
                }
            };
            match (&signature, &entry.current.signer) {
                (Verdict::Verified { key, .. }, Some(signer)) if key != signer => problems.push(
                    format!("signed by `{key}`, but installed as signed by `{signer}`"),
                ),
                (Verdict::Verified { .. }, _) => {}
                (Verdict::Unsigned | Verdict::UnknownSigner { .. }, None) => {}
                (other, _) => problems.push(other.to_string()),
            }
            rows.push(Verification {
                name: name.clone(),
                version: Some(entry.current.version.clone()),
                ok: problems.is_empty(),
                signature,
                problems,
            });
        }
        if let Ok(entries) = std::fs::read_dir(self.plugins_dir()) {
            let mut others: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                .filter(|p| {
                    p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| !lockfile.plugins.contains_key(s))
                })
                .collect();
            others.sort();
            for path in others {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("?")
                    .to_owned();
                let signature = match std::fs::read(&path) {
                    Ok(wasm) => self.runtime.trust().verify(&wasm, &name),
                    Err(e) => Verdict::Invalid {
                        reason: e.to_string(),
                    },
                };
                let mut problems =
                    vec!["not installed from the catalog (not in the lockfile)".to_owned()];
                if !signature.is_verified() {
                    problems.push(signature.to_string());
                }
                rows.push(Verification {
                    name,
                    version: None,
                    ok: false,
                    signature,
                    problems,
                });
            }
        }
        Ok(rows)
    }

    fn entry(&self, name: &str) -> Result<Entry, CatalogError> {
        Lockfile::read(self.plugins_dir())?
            .plugins
            .get(name)
            .cloned()
            .ok_or_else(|| not_installed(name))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs_dir()
            .join(format!("{}.wasm", digest.replace(':', "-")))
    }

    /// Removes a kept component no entry of the lockfile refers to.
    fn forget_blob(&self, lockfile: &Lockfile, digest: &str) {
        let used = lockfile.plugins.values().any(|e| {
            std::iter::once(&e.current)
                .chain(&e.previous)
                .any(|i| i.digest == digest)
        });
        if !used {
            let _ = std::fs::remove_file(self.blob_path(digest));
        }
    }

    /// Compiles (into the artifact cache the host loads from), links and describes the
    /// component in a staging folder, with the host's own settings; checks it names itself
    /// `name`. Nothing of it is registered anywhere.
    async fn trial(&self, wasm: &[u8], name: &str) -> Result<(), CatalogError> {
        let staging_root = self
            .runtime
            .config()
            .data_dir
            .join("catalog")
            .join("staging");
        std::fs::create_dir_all(&staging_root).map_err(|e| {
            CatalogError::Io(format!("cannot create {}: {e}", staging_root.display()))
        })?;
        let staging = tempfile::Builder::new()
            .prefix("install-")
            .tempdir_in(&staging_root)
            .map_err(|e| CatalogError::Io(format!("cannot create a staging folder: {e}")))?;
        blocking(|| std::fs::write(staging.path().join(format!("{name}.wasm")), wasm))
            .map_err(|e| CatalogError::Io(format!("cannot write to the staging folder: {e}")))?;
        // The signature was checked by the catalog, for the name it installs under; the sibling
        // holds it to the same trusted keys, which verify it again.
        let trial = self.runtime.sibling(staging.path().to_owned());
        let result = trial.load(name).await;
        drop(trial);
        match result {
            Ok(_) => Ok(()),
            Err(crate::runtime::InvokeError::Unavailable { error, .. }) => {
                Err(CatalogError::Load(error.to_string()))
            }
            Err(e) => Err(CatalogError::Load(e.to_string())),
        }
    }

    /// Places a checked component in the plugins folder and records it, under the folder's
    /// lock: the component kept by digest, the file renamed into place, the lockfile replaced.
    /// File-system work that may wait: call it through [`blocking`].
    fn place(
        &self,
        name: &str,
        wasm: &[u8],
        installed: Installed,
        how: Placement,
    ) -> Result<(PathBuf, Option<Installed>), CatalogError> {
        let dir = self.plugins_dir();
        let _held = lock::FolderLock::take(dir)?;
        let mut lockfile = Lockfile::read(dir)?;
        let blobs = self.blobs_dir();
        std::fs::create_dir_all(&blobs)
            .map_err(|e| CatalogError::Io(format!("cannot create {}: {e}", blobs.display())))?;
        let blob = self.blob_path(&installed.digest);
        if !blob.is_file() {
            lock::write_atomically(&blob, wasm)?;
        }
        let path = dir.join(format!("{name}.wasm"));
        // What was there, to put back if the lockfile cannot be written.
        let before = std::fs::read(&path).ok();
        lock::write_atomically(&path, wasm)?;
        let old = lockfile.plugins.remove(name);
        let replaced = old.as_ref().map(|e| e.current.clone());
        let entry = match (how, old) {
            (Placement::New, Some(mut e)) => {
                if e.current.digest != installed.digest {
                    e.previous.push(e.current);
                }
                e.previous.retain(|p| p.digest != installed.digest);
                let excess = e.previous.len().saturating_sub(lock::KEEP_PREVIOUS);
                let dropped: Vec<Installed> = e.previous.drain(..excess).collect();
                let entry = Entry {
                    current: installed,
                    previous: e.previous,
                };
                lockfile.plugins.insert(name.to_owned(), entry.clone());
                for d in dropped {
                    self.forget_blob(&lockfile, &d.digest);
                }
                entry
            }
            (Placement::Rollback, Some(mut e)) => {
                e.previous.pop();
                let entry = Entry {
                    current: installed,
                    previous: e.previous,
                };
                let from = e.current.digest;
                lockfile.plugins.insert(name.to_owned(), entry.clone());
                self.forget_blob(&lockfile, &from);
                entry
            }
            (_, None) => Entry {
                current: installed,
                previous: Vec::new(),
            },
        };
        lockfile.plugins.insert(name.to_owned(), entry);
        if let Err(e) = lockfile.write(dir) {
            // Not recorded, so not installed: the folder goes back to what it held.
            let undone = match &before {
                Some(bytes) => lock::write_atomically(&path, bytes),
                None => std::fs::remove_file(&path).map_err(|e| {
                    CatalogError::Io(format!("cannot remove {}: {e}", path.display()))
                }),
            };
            if let Err(undo) = undone {
                tracing::error!(plugin = %name, error = %undo, "cannot undo a placement the lockfile does not record");
            }
            return Err(e);
        }
        Ok((path, replaced))
    }
}

/// Runs file-system work and hashing of whole components (folder locks that may wait, fsyncs,
/// up to `pool.max_component_size` read and hashed) without holding up the async workers: on a
/// multi-threaded runtime the worker hands its other tasks on while it runs; elsewhere (a
/// current-thread runtime, no runtime) it runs as it is.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Placement {
    New,
    Rollback,
}

fn not_installed(name: &str) -> CatalogError {
    CatalogError::NotInstalled(format!(
        "{name} is not installed from the catalog (not in the plugins folder's {})",
        lock::FILE
    ))
}
