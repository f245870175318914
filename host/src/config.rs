//! The host's configuration: one [`Config`], built as defaults < TOML file < environment
//! (`SCHEDULEZERO_*`) < command-line flags, and checked once by [`Config::validate`] before anything
//! starts. The environment and flags are read by clap (see `cli.rs`); this module owns the file
//! format, the defaults and the rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The plugins directory the build filled with the example components (`host/build.rs`).
pub const BUILTIN_PLUGINS_DIR: &str = env!("SCHEDULEZERO_BUILTIN_PLUGINS_DIR");

/// The file read when no `--config` is given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "schedulezero.toml";

/// A problem with the configuration. Each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line and column.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid setting `{setting}`: {message}")]
    Invalid {
        /// The setting's path, such as `limits.memory_mib`.
        setting: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Everything the host can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where handler components (`<name>.wasm`) are found.
    pub plugins_dir: PathBuf,
    /// Where the host keeps its state.
    pub data_dir: PathBuf,
    /// Where compiled components are cached; defaults to `<data_dir>/artifacts`.
    pub cache_dir: Option<PathBuf>,
    /// Limits applied to every call, unless a plugin's own settings override them.
    pub limits: Limits,
    /// The instance pool shared by all plugins.
    pub pool: PoolConfig,
    /// Per-plugin settings, by plugin name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The REST API and the store `serve` uses.
    pub server: ServerConfig,
    /// The scheduler loop and the execution log.
    pub scheduler: SchedulerConfig,
    /// Handlers' outbound HTTP.
    pub outbound: OutboundConfig,
    /// The keys trusted to sign components, and for which plugin names.
    pub trust: TrustConfig,
    /// Installing components from OCI registries (`plugins install`).
    pub catalog: CatalogConfig,
    /// Several hosts on one PostgreSQL store (docs/cluster.md).
    pub cluster: ClusterConfig,
}

/// How hosts sharing one PostgreSQL store work together (ignored on SQLite, which has one host).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long a host holds a run it claimed without renewing it: after a host dies, its runs
    /// are taken over by another once this has passed. Hosts renew every third of it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Whether hosts wake each other through LISTEN/NOTIFY when a schedule is created,
    /// changed, resumed or run (otherwise each sees it at its next look, within
    /// `scheduler.max_tick`). Turn it off behind a pooler in transaction mode, which does not
    /// carry LISTEN.
    pub notify: bool,
    /// How long a stopped or lost host stays listed among the nodes.
    #[serde(with = "humantime_serde")]
    pub forget_nodes_after: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            lease: crate::store::DEFAULT_LEASE,
            notify: true,
            forget_nodes_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The operator's trusted signing keys (docs/catalog.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// Keys by the operator's name for their owner (`[trust.keys.acme]`): the signer shown for
    /// what each signed.
    pub keys: BTreeMap<String, TrustedKeyConfig>,
}

/// One trusted key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrustedKeyConfig {
    /// The public key as `plugins keygen` prints it (`ed25519:<base64>`), or a PEM key.
    pub key: Option<String>,
    /// Or a file holding it (the `.pub` file `plugins keygen` writes).
    pub file: Option<PathBuf>,
    /// The plugin names it may sign: names, or prefixes ending in `*` (`acme-*`). Default: every
    /// name.
    pub plugins: Vec<String>,
}

/// Settings of `plugins install|update` and their API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// The registries (`HOST:PORT`) components may be pulled from; empty: any. A reference to
    /// another is refused before anything is sent to it.
    pub registries: Vec<String>,
    /// Registries (`HOST:PORT`) reached over plain HTTP instead of HTTPS: a development registry
    /// on loopback, say. Everything else is HTTPS.
    pub plain_http: Vec<String>,
    /// Whether a component that is not signed by a trusted key may be installed (after the
    /// operator's consent; the CLI's `--allow-unsigned`). Off: only verified components install.
    pub allow_unsigned: bool,
}

impl Config {
    /// The trusted keys, read (key files too).
    pub fn trust_store(&self) -> Result<crate::trust::TrustStore, ConfigError> {
        use crate::trust::KeySource;
        let mut keys = Vec::new();
        for (name, k) in &self.trust.keys {
            let source = match (&k.key, &k.file) {
                (Some(text), None) => KeySource::Inline(text.clone()),
                (None, Some(path)) => KeySource::File(path.clone()),
                _ => {
                    return Err(invalid(
                        &format!("trust.keys.{name}"),
                        "give either `key` or `file`",
                    ));
                }
            };
            for p in &k.plugins {
                let bare = p.strip_suffix('*').unwrap_or(p);
                if !(bare.is_empty()
                    || is_valid_plugin_name(bare)
                    || is_valid_plugin_name(bare.trim_end_matches('-')))
                {
                    return Err(invalid(
                        &format!("trust.keys.{name}.plugins"),
                        &format!("`{p}` is neither a plugin name nor a prefix ending in `*`"),
                    ));
                }
            }
            keys.push((name.clone(), source, k.plugins.clone()));
        }
        crate::trust::TrustStore::new(keys).map_err(|e| invalid("trust.keys", &e.to_string()))
    }
}

/// Settings of handlers' outbound HTTP shared by every plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// PEM files of certificate authorities trusted besides the system's roots (for endpoints
    /// with a private CA).
    pub ca_files: Vec<PathBuf>,
}

/// What `schedulezero serve` listens on and stores into.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The REST API's address, `HOST:PORT` (an IP address or a host name). A non-loopback
    /// address needs `api_token`.
    pub listen: String,
    /// The store; default a SQLite file, `<data_dir>/schedulezero.db`.
    pub database_url: Option<String>,
    /// Where remote (ZeroMQ) handlers register.
    pub zmq_listen: String,
    /// When set, every ZeroMQ message is signed and checked with this shared secret
    /// (HMAC-SHA256 over the message and a timestamp; unsigned peers are refused). At least 16
    /// characters.
    pub remote_secret: Option<String>,
    /// How often registered remote handlers are pinged (a handler busy with a call is not).
    #[serde(with = "humantime_serde")]
    pub remote_ping_interval: Duration,
    /// The most bytes one message on the registration endpoint may have. A peer that announces
    /// a longer one is disconnected before anything is allocated for it (a handler's replies to
    /// calls have a limit of their own, 16 MiB).
    pub remote_max_message: usize,
    /// How long a peer of the ZeroMQ endpoint may take over the ZMTP handshake before it is
    /// disconnected (a connection that sends nothing holds no descriptor for longer).
    #[serde(with = "humantime_serde")]
    pub remote_handshake_timeout: Duration,
    /// How often the host samples its figures for the metrics history (the dashboard's
    /// charts); an hour of samples is kept.
    #[serde(with = "humantime_serde")]
    pub history_interval: Duration,
    /// When set, every API request needs `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// The token that installs, updates, rolls back and removes components over the API
    /// (`/api/v1/catalog`): installing code is more than scheduling it. With an API token but no
    /// admin token, those routes are closed.
    pub admin_token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Below this many free bytes on the data directory's volume the host takes no new work
    /// (schedule writes answer 507 `storage_full`, the scheduler claims nothing) and reads go
    /// on, until space returns; 0 turns the floor off.
    pub min_free_space: u64,
    /// This host's name, as `/api/config` reports it.
    pub instance_name: String,
    /// A line about this host, as `/api/config` reports it.
    pub description: String,
    /// Who runs this host, as `/api/config` reports it.
    pub admin_contact: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8888".to_owned(),
            database_url: None,
            zmq_listen: "tcp://127.0.0.1:4242".to_owned(),
            remote_ping_interval: Duration::from_secs(30),
            remote_max_message: 64 * 1024,
            remote_handshake_timeout: Duration::from_secs(10),
            remote_secret: None,
            history_interval: Duration::from_secs(10),
            api_token: None,
            admin_token: None,
            max_body_bytes: 1024 * 1024,
            min_free_space: 64 * 1024 * 1024,
            instance_name: "schedulezero".to_owned(),
            description: "ScheduleZero host".to_owned(),
            admin_contact: String::new(),
        }
    }
}

/// How the scheduler loop runs and how long the execution log is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// The longest the loop sleeps between two looks at the store (it also wakes when the next
    /// fire time is due and when a schedule changes).
    #[serde(with = "humantime_serde")]
    pub max_tick: Duration,
    /// The most schedules claimed in one pass.
    pub batch: u32,
    /// On shutdown, how long running calls may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The most execution records kept (the oldest go first).
    pub retention_records: u64,
    /// Execution records older than this go.
    #[serde(with = "humantime_serde")]
    pub retention_age: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_tick: Duration::from_secs(1),
            batch: 1000,
            shutdown_grace: Duration::from_secs(30),
            retention_records: 100_000,
            retention_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Limits on one call of a handler.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a call may take (`"30s"`, `"500ms"`, at most 24h). Waiting for an instance
    /// slot, loading a cold plugin from its artifact and instantiating count; compiling a
    /// component the host sees for the first time does not.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The most linear memory one instance may use, in MiB.
    pub memory_mib: u64,
    /// Fuel (roughly, wasm instructions) a call may burn; none means unmetered.
    pub fuel: Option<u64>,
    /// The largest result a call may return, in bytes.
    pub max_result_bytes: usize,
    /// How much a call may write to stdout, stderr and the log import together before the rest
    /// is dropped (and counted), in bytes.
    pub max_output_bytes: usize,
    /// How long an outbound HTTP request may take to connect (TCP and TLS). A handler may ask
    /// for less, never more.
    #[serde(with = "humantime_serde")]
    pub http_connect_timeout: Duration,
    /// How long an outbound HTTP request may wait for the response to start.
    #[serde(with = "humantime_serde")]
    pub http_first_byte_timeout: Duration,
    /// How long a response body may pause between chunks.
    #[serde(with = "humantime_serde")]
    pub http_between_bytes_timeout: Duration,
    /// The largest outbound HTTP response body a call may receive, in bytes.
    pub http_max_response_bytes: u64,
    /// The most outbound HTTP requests one call may make (redirects followed count).
    pub http_max_requests: u32,
    /// The most `fleet` requests one call may make (a plugin granted `fleet` only).
    pub fleet_max_requests: u32,
    /// How long a `fleet` ping or metrics request waits for the handler it asks.
    #[serde(with = "humantime_serde")]
    pub fleet_ping_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_mib: 64,
            fuel: None,
            max_result_bytes: 1024 * 1024,
            max_output_bytes: 64 * 1024,
            http_connect_timeout: Duration::from_secs(10),
            http_first_byte_timeout: Duration::from_secs(30),
            http_between_bytes_timeout: Duration::from_secs(30),
            http_max_response_bytes: 16 * 1024 * 1024,
            http_max_requests: 100,
            fleet_max_requests: 1_000,
            fleet_ping_timeout: Duration::from_secs(2),
        }
    }
}

/// How instances are allocated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// The pooling allocator when the machine allows it, otherwise on-demand.
    Auto,
    /// Always the pooling allocator; fail at start if the machine refuses it.
    Pooling,
    /// Allocate every instance on demand (slower instantiation, no up-front reservation).
    OnDemand,
}

/// The instance pool shared by all plugins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// How instances are allocated.
    pub allocator: Allocator,
    /// The most instances alive at once, across all plugins. When the pool is full, a call
    /// waits for a slot (idle instances are evicted first).
    pub max_instances: u32,
    /// How long a plugin stays in memory without a call before it cools down to cold (default
    /// for every plugin).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The most calls that may wait for an instance of one plugin (default for every plugin);
    /// more are refused with `queue_full`.
    pub max_queued: u32,
    /// Whether the plugins folder is watched: new files load, replaced files become a new
    /// version, removed files make their calls fail, all without a restart.
    pub watch: bool,
    /// How long a changed file must stay unchanged before it is loaded (so a file still being
    /// written is not taken for a corrupt one).
    #[serde(with = "humantime_serde")]
    pub watch_settle: Duration,
    /// The largest component file taken from the plugins folder, in bytes; a larger one is
    /// refused by its size, without being read.
    pub max_component_size: u64,
    /// Whether every component in the plugins folder must be signed by a trusted key (for its
    /// name): the folder is the trust boundary, and anything written into it loads within
    /// `watch_settle`. Off by default, for a development folder; one that fails is rejected with
    /// the reason and the version before it keeps serving.
    pub require_signatures: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            allocator: Allocator::Auto,
            max_instances: 256,
            idle_timeout: Duration::from_secs(5 * 60),
            max_queued: 1000,
            watch: true,
            watch_settle: Duration::from_millis(500),
            max_component_size: 64 * 1024 * 1024,
            require_signatures: false,
        }
    }
}

/// Settings of one plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Overrides of the global call limits for this plugin.
    pub limits: LimitOverrides,
    /// The most instances of this plugin alive at once (default 16).
    pub max_instances: Option<u32>,
    /// Whether a hot instance is reused for the next call (default true). When false, every
    /// call gets a fresh instance.
    pub reuse_instances: Option<bool>,
    /// Overrides `pool.idle_timeout` for this plugin.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Overrides `pool.max_queued` for this plugin.
    pub max_queued: Option<u32>,
    /// Configuration values granted to the plugin, readable through its `config` import.
    pub config: BTreeMap<String, String>,
    /// Outbound HTTP destinations granted (`https://api.example.com`, the grammar of
    /// docs/capabilities.md).
    pub http: Vec<String>,
    /// Directories granted: the name the component asked for → a host directory, or
    /// `{ path = "...", access = "read-only" }`.
    pub directories: BTreeMap<String, DirectoryGrant>,
    /// Secrets granted by reference: key → `env:NAME` or `file:PATH`.
    pub secrets: BTreeMap<String, String>,
    /// The read-only `fleet` view: `true`, or `{ call_plugins = true }` to let its pings call
    /// plugins.
    pub fleet: Option<FleetGrant>,
}

/// The `fleet` view granted in the configuration file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum FleetGrant {
    /// `true` grants it (pings do not call plugins), `false` does not.
    Granted(bool),
    /// With its options.
    With {
        /// Whether pings may call plugins.
        call_plugins: bool,
    },
}

/// A directory granted in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DirectoryGrant {
    /// A host directory, with the access the component asked for.
    Path(PathBuf),
    /// A host directory with its access.
    With {
        /// The host directory.
        path: PathBuf,
        /// `read-only` or `read-write`.
        access: crate::capability::Access,
    },
}

impl PluginConfig {
    /// The grants this section gives, read and checked for form (what the component requests is
    /// checked when it is known). The error names the field at fault.
    pub fn grant_specs(&self) -> Result<Vec<crate::capability::GrantSpec>, (String, String)> {
        use crate::capability::GrantSpec;
        let mut specs = Vec::new();
        for entry in &self.http {
            let destination = entry
                .parse()
                .map_err(|e: crate::capability::DestinationError| {
                    ("http".to_owned(), e.to_string())
                })?;
            specs.push(GrantSpec::Http { destination });
        }
        for (name, d) in &self.directories {
            let (path, access) = match d {
                DirectoryGrant::Path(p) => (p.clone(), None),
                DirectoryGrant::With { path, access } => (path.clone(), Some(*access)),
            };
            if !path.is_absolute() {
                return Err((
                    format!("directories.{name}"),
                    format!("`{}` is not an absolute path", path.display()),
                ));
            }
            specs.push(GrantSpec::Directory {
                name: name.clone(),
                path,
                access,
            });
        }
        for (key, value) in &self.config {
            specs.push(GrantSpec::Config {
                key: key.clone(),
                value: value.clone(),
            });
        }
        for (key, reference) in &self.secrets {
            let reference = reference
                .parse()
                .map_err(|e: String| (format!("secrets.{key}"), e))?;
            specs.push(GrantSpec::Secret {
                key: key.clone(),
                reference,
            });
        }
        match self.fleet {
            Some(FleetGrant::Granted(true)) => specs.push(GrantSpec::Fleet {
                call_plugins: false,
            }),
            Some(FleetGrant::With { call_plugins }) => {
                specs.push(GrantSpec::Fleet { call_plugins })
            }
            Some(FleetGrant::Granted(false)) | None => {}
        }
        Ok(specs)
    }
}

/// Per-plugin overrides of [`Limits`]; unset fields keep the global value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::timeout`].
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// See [`Limits::memory_mib`].
    pub memory_mib: Option<u64>,
    /// See [`Limits::fuel`].
    pub fuel: Option<u64>,
    /// See [`Limits::max_result_bytes`].
    pub max_result_bytes: Option<usize>,
    /// See [`Limits::max_output_bytes`].
    pub max_output_bytes: Option<usize>,
    /// See [`Limits::http_connect_timeout`].
    #[serde(with = "humantime_serde")]
    pub http_connect_timeout: Option<Duration>,
    /// See [`Limits::http_first_byte_timeout`].
    #[serde(with = "humantime_serde")]
    pub http_first_byte_timeout: Option<Duration>,
    /// See [`Limits::http_between_bytes_timeout`].
    #[serde(with = "humantime_serde")]
    pub http_between_bytes_timeout: Option<Duration>,
    /// See [`Limits::http_max_response_bytes`].
    pub http_max_response_bytes: Option<u64>,
    /// See [`Limits::http_max_requests`].
    pub http_max_requests: Option<u32>,
    /// See [`Limits::fleet_max_requests`].
    pub fleet_max_requests: Option<u32>,
    /// See [`Limits::fleet_ping_timeout`].
    #[serde(with = "humantime_serde")]
    pub fleet_ping_timeout: Option<Duration>,
}

/// The longest call timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The default number of live instances per plugin.
pub const DEFAULT_PLUGIN_MAX_INSTANCES: u32 = 16;

impl Default for Config {
    fn default() -> Self {
        let data_dir = dirs::data_local_dir()
            .map(|d| d.join("schedulezero"))
            .unwrap_or_else(|| PathBuf::from(".schedulezero"));
        Self {
            plugins_dir: PathBuf::from(BUILTIN_PLUGINS_DIR),
            data_dir,
            cache_dir: None,
            limits: Limits::default(),
            pool: PoolConfig::default(),
            plugins: BTreeMap::new(),
            server: ServerConfig::default(),
            scheduler: SchedulerConfig::default(),
            outbound: OutboundConfig::default(),
            trust: TrustConfig::default(),
            catalog: CatalogConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads `path` if given, else `schedulezero.toml` in the working directory if it exists,
    /// else the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::from_file(p),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => Ok(Self::default()),
        }
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts"))
    }

    /// The limits for one plugin: the global ones with the plugin's overrides applied.
    pub fn limits_for(&self, plugin: &str) -> Limits {
        let mut limits = self.limits.clone();
        if let Some(p) = self.plugins.get(plugin) {
            let o = &p.limits;
            limits.timeout = o.timeout.unwrap_or(limits.timeout);
            limits.memory_mib = o.memory_mib.unwrap_or(limits.memory_mib);
            limits.fuel = o.fuel.or(limits.fuel);
            limits.max_result_bytes = o.max_result_bytes.unwrap_or(limits.max_result_bytes);
            limits.max_output_bytes = o.max_output_bytes.unwrap_or(limits.max_output_bytes);
            let l = &mut limits;
            l.http_connect_timeout = o.http_connect_timeout.unwrap_or(l.http_connect_timeout);
            l.http_first_byte_timeout = o
                .http_first_byte_timeout
                .unwrap_or(l.http_first_byte_timeout);
            l.http_between_bytes_timeout = o
                .http_between_bytes_timeout
                .unwrap_or(l.http_between_bytes_timeout);
            l.http_max_response_bytes = o
                .http_max_response_bytes
                .unwrap_or(l.http_max_response_bytes);
            l.http_max_requests = o.http_max_requests.unwrap_or(l.http_max_requests);
            l.fleet_max_requests = o.fleet_max_requests.unwrap_or(l.fleet_max_requests);
            l.fleet_ping_timeout = o.fleet_ping_timeout.unwrap_or(l.fleet_ping_timeout);
        }
        limits
    }

    /// The largest memory cap of any plugin, in bytes: the size of a pool slot.
    pub fn max_memory_bytes(&self) -> u64 {
        self.plugins
            .values()
            .filter_map(|p| p.limits.memory_mib)
            .chain([self.limits.memory_mib])
            .max()
            .unwrap_or(self.limits.memory_mib)
            * 1024
            * 1024
    }

    /// The idle timeout of one plugin.
    pub fn idle_timeout_for(&self, plugin: &str) -> Duration {
        self.plugins
            .get(plugin)
            .and_then(|p| p.idle_timeout)
            .unwrap_or(self.pool.idle_timeout)
    }

    /// The shortest idle timeout of any plugin: how often idle plugins must be looked at.
    pub fn shortest_idle_timeout(&self) -> Duration {
        self.plugins
            .values()
            .filter_map(|p| p.idle_timeout)
            .chain([self.pool.idle_timeout])
            .min()
            .unwrap_or(self.pool.idle_timeout)
    }

    /// Whether any plugin is metered with fuel (the engine then counts fuel for all).
    pub fn uses_fuel(&self) -> bool {
        self.limits.fuel.is_some() || self.plugins.values().any(|p| p.limits.fuel.is_some())
    }

    /// Checks every setting; the host refuses to start on the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_limits("limits", &self.limits)?;
        self.check_server()?;
        if self.pool.max_instances == 0 {
            return Err(invalid("pool.max_instances", "must be at least 1"));
        }
        check_idle_timeout("pool.idle_timeout", self.pool.idle_timeout)?;
        if self.pool.max_component_size < 1024 {
            return Err(invalid("pool.max_component_size", "must be at least 1024"));
        }
        if self.pool.watch_settle > Duration::from_secs(60) {
            return Err(invalid("pool.watch_settle", "must be at most 1m"));
        }
        self.trust_store()?;
        if self.cluster.lease < Duration::from_secs(1)
            || self.cluster.lease > Duration::from_secs(3600)
        {
            return Err(invalid("cluster.lease", "must be between 1s and 1h"));
        }
        for (setting, registry) in self
            .catalog
            .plain_http
            .iter()
            .map(|r| ("catalog.plain_http", r))
            .chain(
                self.catalog
                    .registries
                    .iter()
                    .map(|r| ("catalog.registries", r)),
            )
        {
            if registry.is_empty() || registry.contains('/') {
                return Err(invalid(
                    setting,
                    &format!("`{registry}` is not a registry's HOST:PORT"),
                ));
            }
        }
        for (name, plugin) in &self.plugins {
            if !is_valid_plugin_name(name) {
                return Err(invalid(
                    &format!("plugins.{name}"),
                    "a plugin name uses lowercase letters, digits and `-`, and starts with a letter",
                ));
            }
            check_limits(&format!("plugins.{name}.limits"), &self.limits_for(name))?;
            if let Some(t) = plugin.idle_timeout {
                check_idle_timeout(&format!("plugins.{name}.idle_timeout"), t)?;
            }
            plugin.grant_specs().map_err(|(field, message)| {
                invalid(&format!("plugins.{name}.{field}"), &message)
            })?;
            if plugin.max_instances == Some(0) {
                return Err(invalid(
                    &format!("plugins.{name}.max_instances"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The database `serve` opens.
    pub fn database_url(&self) -> String {
        self.server.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir.join("schedulezero.db").display()
            )
        })
    }

    fn check_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(token) = &s.api_token
            && token.len() < 16
        {
            return Err(invalid(
                "server.api_token",
                "must be at least 16 characters (use a random string)",
            ));
        }
        if let Some(token) = &s.admin_token {
            if token.len() < 16 {
                return Err(invalid(
                    "server.admin_token",
                    "must be at least 16 characters (use a random string)",
                ));
            }
            if s.api_token.as_deref() == Some(token) {
                return Err(invalid(
                    "server.admin_token",
                    "must differ from server.api_token",
                ));
            }
        }
        let resolved = resolve_listen(&s.listen)?;
        if !resolved.iter().all(|a| a.ip().is_loopback()) && s.api_token.is_none() {
            return Err(invalid(
                "server.listen",
                &format!(
                    "{} is not a loopback address: set an API token (--api-token or SCHEDULEZERO_API_TOKEN) to listen there",
                    s.listen
                ),
            ));
        }
        if s.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if let Some(url) = &s.database_url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err(invalid(
                "server.database_url",
                "this host supports sqlite://PATH (one host) or postgres://USER@HOST/DATABASE (several hosts)",
            ));
        }
        if s.remote_secret.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(invalid(
                "server.remote_secret",
                "must be at least 16 characters",
            ));
        }
        if s.remote_ping_interval < Duration::from_millis(100) {
            return Err(invalid(
                "server.remote_ping_interval",
                "must be at least 100ms",
            ));
        }
        if s.history_interval < Duration::from_millis(100) {
            return Err(invalid("server.history_interval", "must be at least 100ms"));
        }
        if !s.zmq_listen.starts_with("tcp://") {
            return Err(invalid(
                "server.zmq_listen",
                "must be a tcp:// endpoint, such as tcp://127.0.0.1:4242",
            ));
        }
        if !zmq_endpoint_is_loopback(&s.zmq_listen) && s.remote_secret.is_none() {
            return Err(invalid(
                "server.zmq_listen",
                &format!(
                    "{} is not a loopback address: set a shared secret (--remote-secret or SCHEDULEZERO_REMOTE_SECRET) to accept remote handlers there",
                    s.zmq_listen
                ),
            ));
        }
        if s.remote_handshake_timeout < Duration::from_millis(100) {
            return Err(invalid(
                "server.remote_handshake_timeout",
                "must be at least 100ms",
            ));
        }
        if s.remote_max_message < 1024 {
            return Err(invalid(
                "server.remote_max_message",
                "must be at least 1024",
            ));
        }
        let sc = &self.scheduler;
        if sc.batch == 0 {
            return Err(invalid("scheduler.batch", "must be at least 1"));
        }
        if sc.max_tick < Duration::from_millis(10) || sc.max_tick > Duration::from_secs(60) {
            return Err(invalid(
                "scheduler.max_tick",
                "must be between 10ms and 60s",
            ));
        }
        if sc.retention_records == 0 {
            return Err(invalid("scheduler.retention_records", "must be at least 1"));
        }
        Ok(())
    }
}

fn check_limits(prefix: &str, l: &Limits) -> Result<(), ConfigError> {
    if l.timeout.is_zero() || l.timeout > MAX_TIMEOUT {
        return Err(invalid(
            &format!("{prefix}.timeout"),
            "must be longer than zero and at most 24h",
        ));
    } // A Rust component starts with about 1.1 MiB of linear memory (mostly its stack).
    if !(2..=4096).contains(&l.memory_mib) {
        return Err(invalid(
            &format!("{prefix}.memory_mib"),
            "must be between 2 and 4096",
        ));
    }
    if l.fuel == Some(0) {
        return Err(invalid(
            &format!("{prefix}.fuel"),
            "must be more than zero (or unset)",
        ));
    }
    if l.max_result_bytes == 0 {
        return Err(invalid(
            &format!("{prefix}.max_result_bytes"),
            "must be more than zero",
        ));
    }
    for (name, t) in [
        ("http_connect_timeout", l.http_connect_timeout),
        ("http_first_byte_timeout", l.http_first_byte_timeout),
        ("http_between_bytes_timeout", l.http_between_bytes_timeout),
        ("fleet_ping_timeout", l.fleet_ping_timeout),
    ] {
        if t < Duration::from_millis(1) || t > MAX_TIMEOUT {
            return Err(invalid(
                &format!("{prefix}.{name}"),
                "must be between 1ms and 24h",
            ));
        }
    }
    if l.http_max_response_bytes == 0 || l.http_max_requests == 0 || l.fleet_max_requests == 0 {
        return Err(invalid(
            &format!("{prefix}.http_max_response_bytes / http_max_requests / fleet_max_requests"),
            "must be more than zero",
        ));
    }
    Ok(())
}

fn check_idle_timeout(setting: &str, t: Duration) -> Result<(), ConfigError> {
    if t < Duration::from_millis(10) || t > MAX_TIMEOUT {
        return Err(invalid(setting, "must be between 10ms and 24h"));
    }
    Ok(())
}

/// What `schedulezero config` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// This configuration with its secrets replaced by [`REDACTED`]: the API token, the ZeroMQ
    /// secret and the values granted to plugins (a plugin's config may hold a key or a password;
    /// its names stay visible). For printing and logging.
    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        let hide = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some(REDACTED.to_owned());
            }
        };
        hide(&mut c.server.api_token);
        hide(&mut c.server.admin_token);
        hide(&mut c.server.remote_secret);
        for plugin in c.plugins.values_mut() {
            for value in plugin.config.values_mut() {
                REDACTED.clone_into(value);
            }
        }
        c
    }
}

/// The addresses `HOST:PORT` stands for (a host name is looked up).
fn resolve_listen(listen: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| {
            invalid(
                "server.listen",
                &format!("`{listen}` is not HOST:PORT or cannot be resolved: {e}"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(invalid(
            "server.listen",
            &format!("`{listen}` resolves to no address"),
        ));
    }
    Ok(addrs)
}

/// Whether a `tcp://HOST:PORT` endpoint binds to loopback only (`127.0.0.0/8`, `::1` or
/// `localhost`); `*`, `0.0.0.0` and every other address reach beyond this machine.
pub fn zmq_endpoint_is_loopback(endpoint: &str) -> bool {
    let Some((host, _port)) = endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.rsplit_once(':'))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn invalid(setting: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        message: message.to_owned(),
    }
}

/// Whether `name` can name a plugin: lowercase ASCII letters, digits and `-`, starting with a
/// letter, at most 64 characters.
pub fn is_valid_plugin_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_plugins_override_globals() {
        let c = Config::from_toml(
            r#"
            plugins_dir = "/srv/plugins"
            [limits]
            timeout = "2s"
            fuel = 1000000
            [plugins.ding-dong]
            max_instances = 2
            limits = { memory_mib = 16, timeout = "250ms" }
            config = { location = "Big Ben" }
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.plugins_dir, PathBuf::from("/srv/plugins"));
        assert_eq!(c.limits.timeout, Duration::from_secs(2));
        assert_eq!(c.limits.memory_mib, 64);
        let dd = c.limits_for("ding-dong");
        assert_eq!(
            (dd.memory_mib, dd.timeout, dd.fuel),
            (16, Duration::from_millis(250), Some(1_000_000))
        );
        assert_eq!(c.limits_for("other").memory_mib, 64);
        assert_eq!(c.max_memory_bytes(), 64 * 1024 * 1024);
        assert!(c.uses_fuel());
        assert_eq!(c.plugins["ding-dong"].config["location"], "Big Ben");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let e = Config::from_toml("plugin_dir = 'x'").unwrap_err();
        assert!(e.contains("unknown field `plugin_dir`"), "{e}");
        let e = Config::from_toml("[limits]\ntimeout = 'soon'").unwrap_err();
        assert!(e.contains("timeout"), "{e}");

        let mut c = Config::default();
        c.limits.memory_mib = 1;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "limits.memory_mib")
        );

        let mut c = Config::default();
        c.plugins.insert("Bad_Name".into(), PluginConfig::default());
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "plugins.Bad_Name")
        );

        let mut c = Config::default();
        c.plugins.insert(
            "x".into(),
            PluginConfig {
                max_instances: Some(0),
                ..Default::default()
            },
        );
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_public_listen_address_needs_a_token() {
        let mut c = Config::from_toml("[server]\nlisten = '0.0.0.0:8888'").unwrap();
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "server.listen")
        );
        c.server.api_token = Some("short".into());
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "server.api_token")
        );
        c.server.api_token = Some("0123456789abcdef0123".into());
        c.validate().unwrap();
        assert!(c.database_url().ends_with("schedulezero.db"));
    }

    #[test]
    fn the_fleet_view_is_granted_in_the_file_as_true_or_with_its_option() {
        use crate::capability::GrantSpec;
        let specs = |toml: &str| {
            let c = Config::from_toml(toml).unwrap();
            c.validate().unwrap();
            c.plugins["conductor"].grant_specs().unwrap()
        };
        assert_eq!(
            specs("[plugins.conductor]\nfleet = true\n"),
            vec![GrantSpec::Fleet {
                call_plugins: false
            }]
        );
        assert_eq!(
            specs("[plugins.conductor]\nfleet = { call_plugins = true }\n"),
            vec![GrantSpec::Fleet { call_plugins: true }]
        );
        assert_eq!(specs("[plugins.conductor]\nfleet = false\n"), vec![]);
        assert!(Config::from_toml("[plugins.conductor]\nfleet = { calls = true }\n").is_err());
        // Its limits, globally and per plugin.
        let c = Config::from_toml(
            "[limits]\nfleet_max_requests = 5\n\
             [plugins.conductor.limits]\nfleet_ping_timeout = \"250ms\"\n",
        )
        .unwrap();
        let l = c.limits_for("conductor");
        assert_eq!(
            (l.fleet_max_requests, l.fleet_ping_timeout),
            (5, Duration::from_millis(250))
        );
        let mut zero = Config::from_toml("[limits]\nfleet_max_requests = 0\n").unwrap();
        assert!(zero.validate().is_err());
        zero.limits.fleet_max_requests = 1;
        zero.validate().unwrap();
    }

    #[test]
    fn the_listen_address_may_be_a_host_name() {
        let mut c = Config::default();
        c.server.listen = "localhost:8888".into();
        c.validate().unwrap();
        c.server.listen = "no-such-host.invalid:8888".into();
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "server.listen")
        );
        c.server.listen = "8888".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn a_public_zmq_endpoint_needs_a_secret() {
        for loopback in [
            "tcp://127.0.0.1:4242",
            "tcp://127.0.0.2:0",
            "tcp://localhost:4242",
            "tcp://[::1]:4242",
        ] {
            assert!(zmq_endpoint_is_loopback(loopback), "{loopback}");
        }
        for public in [
            "tcp://0.0.0.0:4242",
            "tcp://*:4242",
            "tcp://192.0.2.7:4242",
            "tcp://[::]:1",
        ] {
            assert!(!zmq_endpoint_is_loopback(public), "{public}");
            let mut c = Config::default();
            c.server.zmq_listen = public.into();
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid { setting, .. }) if setting == "server.zmq_listen")
            );
            c.server.remote_secret = Some("0123456789abcdef".into());
            c.validate().unwrap();
        }
    }

    #[test]
    fn plugin_names() {
        assert!(is_valid_plugin_name("ding-dong"));
        assert!(is_valid_plugin_name("a1"));
        assert!(!is_valid_plugin_name("1a"));
        assert!(!is_valid_plugin_name("ding_dong"));
        assert!(!is_valid_plugin_name(""));
        assert!(!is_valid_plugin_name("../etc"));
    }
}
