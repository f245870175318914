//! What the operator grants a plugin, checked against what its manifest requests, and what a call
//! may use: the intersection of the two ([`Effective`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::destination::Destination;
use super::manifest::{Access, Manifest};

/// One grant, as the operator gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantSpec {
    /// Outbound HTTP to the destinations of one allow-list entry.
    Http {
        /// An allow-list entry within one the component requested.
        #[schema(value_type = String)]
        destination: Destination,
    },
    /// A host directory, under the name the component asked for.
    Directory {
        /// The name the component asked for.
        name: String,
        /// The host directory (absolute).
        #[schema(value_type = String)]
        path: PathBuf,
        /// `read-only`, or `read-write` when the component asked to write; defaults to what the
        /// component asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<Access>,
    },
    /// A configuration value.
    Config {
        /// The key the component asked for.
        key: String,
        /// Its value.
        value: String,
    },
    /// A secret, by reference: `env:NAME` (an environment variable of the host) or `file:PATH`
    /// (a file the host reads at each use). The value itself is never stored or shown.
    Secret {
        /// The key the component asked for.
        key: String,
        /// Where the host finds the value.
        #[schema(value_type = String)]
        reference: SecretRef,
    },
    /// The read-only `fleet` view: the host's handlers, the host and the machine, recent
    /// executions per handler, the nodes.
    Fleet {
        /// Whether its pings may call a plugin (`describe`, which loads a cold plugin); without
        /// it a plugin's ping reports its state only.
        #[serde(default)]
        call_plugins: bool,
    },
}

/// What a `fleet` grant allows a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetAccess {
    /// Whether pings may call a plugin.
    pub call_plugins: bool,
}

/// Which grant: its kind and the name within the kind (the destination, directory or key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GrantId {
    /// `http`, `directory`, `config` or `secret`.
    pub kind: String,
    /// The destination, directory name or key.
    pub name: String,
}

/// A grant with who gave it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// What is granted.
    #[serde(flatten)]
    pub spec: GrantSpec,
    /// Who granted it (`config file`, `api`, or what the caller said).
    pub granted_by: String,
    /// When.
    pub granted_at: DateTime<Utc>,
}

impl<'de> Deserialize<'de> for Grant {
    /// The grant's own fields beside `granted_by` and `granted_at` (unknown ones refused).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::deserialize(d)?;
        let take = |map: &mut serde_json::Map<String, serde_json::Value>, key: &'static str| {
            map.remove(key).ok_or_else(|| D::Error::missing_field(key))
        };
        let granted_by =
            serde_json::from_value(take(&mut map, "granted_by")?).map_err(D::Error::custom)?;
        let granted_at =
            serde_json::from_value(take(&mut map, "granted_at")?).map_err(D::Error::custom)?;
        let spec =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Self {
            spec,
            granted_by,
            granted_at,
        })
    }
}

/// The kinds of grant, as written in ids and events.
pub const KINDS: [&str; 5] = ["http", "directory", "config", "secret", "fleet"];

impl GrantSpec {
    /// Its id.
    pub fn id(&self) -> GrantId {
        let (kind, name) = match self {
            Self::Http { destination } => ("http", destination.as_str().to_owned()),
            Self::Directory { name, .. } => ("directory", name.clone()),
            Self::Config { key, .. } => ("config", key.clone()),
            Self::Secret { key, .. } => ("secret", key.clone()),
            Self::Fleet { .. } => ("fleet", "fleet".to_owned()),
        };
        GrantId {
            kind: kind.into(),
            name,
        }
    }

    /// What is granted under the grant's name, as shown and recorded: a directory's path (and
    /// access), a value, a secret's reference (never its value); none for a destination, which
    /// is the name itself.
    pub fn shown(&self) -> Option<String> {
        Some(match self {
            Self::Http { .. } => return None,
            Self::Directory { path, access, .. } => match access {
                Some(a) => format!("{} ({})", path.display(), a.as_str()),
                None => path.display().to_string(),
            },
            Self::Config { value, .. } => value.clone(),
            Self::Secret { reference, .. } => reference.to_string(),
            Self::Fleet { call_plugins: true } => "pings may call plugins".to_owned(),
            Self::Fleet {
                call_plugins: false,
            } => return None,
        })
    }

    /// Checks the grant against what `plugin`'s manifest requests. The error says why it is
    /// refused, in the operator's terms.
    pub fn check(&self, plugin: &str, manifest: &Manifest) -> Result<(), String> {
        match self {
            Self::Http { destination } => {
                if manifest.http.is_empty() {
                    return Err(format!("{plugin} requests no outbound HTTP"));
                }
                if manifest
                    .http
                    .iter()
                    .any(|r| destination.is_covered_by(&r.destination))
                {
                    return Ok(());
                }
                let requested: Vec<&str> = manifest
                    .http
                    .iter()
                    .map(|r| r.destination.as_str())
                    .collect();
                Err(format!(
                    "`{destination}` is not within what {plugin} requests ({})",
                    requested.join(", ")
                ))
            }
            Self::Directory { name, path, access } => {
                let Some(asked) = manifest.directory(name) else {
                    return Err(not_requested(plugin, "directory", name, manifest));
                };
                if *access == Some(Access::ReadWrite) && asked.access == Access::ReadOnly {
                    return Err(format!(
                        "{plugin} asks to read directory `{name}` only: it cannot be granted read-write"
                    ));
                }
                check_dir(path)
            }
            Self::Config { key, .. } => match manifest.config_key(key) {
                None => Err(not_requested(plugin, "config key", key, manifest)),
                Some(c) if c.secret => Err(format!(
                    "`{key}` is a secret: grant it by reference (`env:NAME` or `file:PATH`), not by value"
                )),
                Some(_) => Ok(()),
            },
            Self::Secret { key, .. } => match manifest.config_key(key) {
                None => Err(not_requested(plugin, "secret", key, manifest)),
                Some(c) if !c.secret => Err(format!(
                    "`{key}` is a plain configuration value: grant it as `config`"
                )),
                Some(_) => Ok(()),
            },
            Self::Fleet { .. } => match manifest.fleet {
                Some(_) => Ok(()),
                None => Err(format!("{plugin} does not request `fleet`")),
            },
        }
    }
}

fn not_requested(plugin: &str, what: &str, name: &str, manifest: &Manifest) -> String {
    let asked: Vec<String> = match what {
        "directory" => manifest
            .directories
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        _ => manifest.config.iter().map(|c| c.key.clone()).collect(),
    };
    if asked.is_empty() {
        format!("{plugin} did not request {what} `{name}` (it requests none)")
    } else {
        format!(
            "{plugin} did not request {what} `{name}` (it requests: {})",
            asked.join(", ")
        )
    }
}

/// A directory to grant must be an absolute path to an existing directory.
fn check_dir(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("`{}` is not an absolute path", path.display()));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("`{}` is not a directory", path.display())),
        Err(e) => Err(format!("`{}`: {e}", path.display())),
    }
}

/// Where a secret's value is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable of the host process.
    Env(String),
    /// A file, read at each use (so a rotated secret takes effect at once).
    File(PathBuf),
}

/// The largest secret read from a file.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl std::str::FromStr for SecretRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            return if valid {
                Ok(Self::Env(name.to_owned()))
            } else {
                Err(format!("`{name}` is not an environment variable name"))
            };
        }
        if let Some(path) = text.strip_prefix("file:") {
            let path = PathBuf::from(path);
            return if path.is_absolute() {
                Ok(Self::File(path))
            } else {
                Err(format!("`{}` is not an absolute path", path.display()))
            };
        }
        Err(
            "a secret is given by reference: `env:NAME` (an environment variable) or `file:PATH` \
             (a file); its value is never stored"
                .into(),
        )
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl SecretRef {
    /// The secret's value now. The error names the reference, never a value.
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            Self::Env(name) => std::env::var(name).map_err(|_| format!("env:{name} is not set")),
            Self::File(path) => {
                let size = std::fs::metadata(path)
                    .map_err(|e| format!("file:{}: {e}", path.display()))?
                    .len();
                if size > MAX_SECRET_BYTES {
                    return Err(format!(
                        "file:{} is {size} bytes, more than a secret may be ({MAX_SECRET_BYTES})",
                        path.display()
                    ));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("file:{}: {e}", path.display()))?;
                Ok(text.trim_end_matches(['\n', '\r']).to_owned())
            }
        }
    }
}

/// A directory a call gets: the host path, the name it appears under, and whether it may write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The name the component asked for; it appears as `/<name>`.
    pub name: String,
    /// The host directory.
    pub path: PathBuf,
    /// Whether the component may only read.
    pub read_only: bool,
}

/// What calls of one plugin version may use: what it requested and was granted.
#[derive(Debug, Default)]
pub struct Effective {
    /// Destinations it may reach.
    pub http: Vec<Destination>,
    /// Directories it gets.
    pub directories: Vec<Mount>,
    /// Configuration values.
    pub config: BTreeMap<String, String>,
    /// Secrets, by reference.
    pub secrets: BTreeMap<String, SecretRef>,
    /// The `fleet` view, when granted.
    pub fleet: Option<FleetAccess>,
    /// What it requested, to say what is missing when a call is refused something.
    pub manifest: Manifest,
}

impl Effective {
    /// The intersection of `manifest` and `grants`: a grant for something not requested (by this
    /// version of the component) gives nothing.
    pub fn new(manifest: &Manifest, grants: &[Grant]) -> Self {
        let mut e = Self {
            manifest: manifest.clone(),
            ..Self::default()
        };
        for g in grants {
            if g.spec.check_requested(manifest).is_err() {
                continue;
            }
            match &g.spec {
                GrantSpec::Http { destination } => e.http.push(destination.clone()),
                GrantSpec::Directory { name, path, access } => {
                    let asked = manifest.directory(name).map(|d| d.access);
                    let access = access.or(asked).unwrap_or(Access::ReadOnly);
                    e.directories.push(Mount {
                        name: name.clone(),
                        path: path.clone(),
                        read_only: access == Access::ReadOnly,
                    });
                }
                GrantSpec::Config { key, value } => {
                    e.config.insert(key.clone(), value.clone());
                }
                GrantSpec::Secret { key, reference } => {
                    e.secrets.insert(key.clone(), reference.clone());
                }
                GrantSpec::Fleet { call_plugins } => {
                    e.fleet = Some(FleetAccess {
                        call_plugins: *call_plugins,
                    });
                }
            }
        }
        e
    }

    /// The keys a component can read: configuration values and secrets granted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .config
            .keys()
            .chain(self.secrets.keys())
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

impl GrantSpec {
    /// [`GrantSpec::check`] without looking at the host's files (a directory that went missing
    /// since it was granted fails when the instance is created, with the reason).
    fn check_requested(&self, manifest: &Manifest) -> Result<(), String> {
        match self {
            Self::Directory { name, access, .. } => match manifest.directory(name) {
                Some(asked)
                    if !(*access == Some(Access::ReadWrite)
                        && asked.access == Access::ReadOnly) =>
                {
                    Ok(())
                }
                _ => Err(String::new()),
            },
            other => other.check("", manifest),
        }
    }
}

/// One line per requested capability: granted or missing, and grants that request nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    /// What the component requests, each with whether it is granted.
    pub requested: Vec<Requested>,
    /// Grants that this version of the component does not request (kept, but giving nothing).
    pub unrequested: Vec<Grant>,
}

/// One requested capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Requested {
    /// `http`, `directory`, `config` or `secret`.
    pub kind: String,
    /// The destination, directory name or key.
    pub name: String,
    /// Why the component asks for it.
    pub purpose: String,
    /// For directories: `read-only` or `read-write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// The grants that meet it (none: missing).
    pub granted: Vec<Grant>,
}

impl Requested {
    /// Whether something meets it.
    pub fn is_granted(&self) -> bool {
        !self.granted.is_empty()
    }
}

/// Sets what `manifest` requests beside what `grants` give.
pub fn review(manifest: &Manifest, grants: &[Grant]) -> Review {
    let mut requested = Vec::new();
    let mut used = vec![false; grants.len()];
    let mut take = |pred: &dyn Fn(&GrantSpec) -> bool| -> Vec<Grant> {
        grants
            .iter()
            .enumerate()
            .filter(|(_, g)| pred(&g.spec))
            .map(|(i, g)| {
                used[i] = true;
                g.clone()
            })
            .collect()
    };
    for r in &manifest.http {
        let granted = take(
            &|s| matches!(s, GrantSpec::Http { destination } if destination.is_covered_by(&r.destination)),
        );
        requested.push(Requested {
            kind: "http".into(),
            name: r.destination.as_str().to_owned(),
            purpose: r.purpose.clone(),
            access: None,
            granted,
        });
    }
    for d in &manifest.directories {
        let granted = take(&|s| {
            matches!(s, GrantSpec::Directory { name, .. } if *name == d.name)
                && s.check_requested(manifest).is_ok()
        });
        requested.push(Requested {
            kind: "directory".into(),
            name: d.name.clone(),
            purpose: d.purpose.clone(),
            access: Some(d.access),
            granted,
        });
    }
    for c in &manifest.config {
        let granted = take(&|s| match s {
            GrantSpec::Config { key, .. } => *key == c.key && !c.secret,
            GrantSpec::Secret { key, .. } => *key == c.key && c.secret,
            _ => false,
        });
        requested.push(Requested {
            kind: if c.secret { "secret" } else { "config" }.into(),
            name: c.key.clone(),
            purpose: c.description.clone(),
            access: None,
            granted,
        });
    }
    if let Some(f) = &manifest.fleet {
        let granted = take(&|s| matches!(s, GrantSpec::Fleet { .. }));
        requested.push(Requested {
            kind: "fleet".into(),
            name: "fleet".into(),
            purpose: f.purpose.clone(),
            access: None,
            granted,
        });
    }
    let unrequested = grants
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(g, _)| g.clone())
        .collect();
    Review {
        requested,
        unrequested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_json(
            br#"{"manifest_version":1,
            "http":[{"destination":"*://*:*","purpose":"the endpoint the operator configures"}],
            "directories":[{"name":"input","access":"read-only","purpose":"reads"},
                           {"name":"output","access":"read-write","purpose":"writes"}],
            "config":[{"key":"endpoint","description":"where"},
                      {"key":"api_key","description":"key","secret":true}]}"#,
        )
        .unwrap()
    }

    fn spec(json: &str) -> GrantSpec {
        serde_json::from_str(json).unwrap()
    }

    fn grant(json: &str) -> Grant {
        Grant {
            spec: spec(json),
            granted_by: "test".into(),
            granted_at: Utc::now(),
        }
    }

    #[test]
    fn grants_are_checked_against_the_manifest() {
        let m = manifest();
        let tmp = std::env::temp_dir();
        let dir = format!(r#"{{"kind":"directory","name":"input","path":{:?}}}"#, tmp);
        assert_eq!(spec(&dir).check("cp", &m), Ok(()));
        assert!(
            spec(r#"{"kind":"http","destination":"https://api.example.com"}"#)
                .check("cp", &m)
                .is_ok()
        );
        let cases = [
            (
                r#"{"kind":"config","key":"region","value":"eu"}"#,
                "did not request config key `region` (it requests: endpoint, api_key)",
            ),
            (
                r#"{"kind":"config","key":"api_key","value":"hunter2"}"#,
                "is a secret",
            ),
            (
                r#"{"kind":"secret","key":"endpoint","reference":"env:X"}"#,
                "plain configuration value",
            ),
            (
                r#"{"kind":"directory","name":"cache","path":"/tmp"}"#,
                "did not request directory `cache`",
            ),
            (
                r#"{"kind":"directory","name":"input","path":"/tmp","access":"read-write"}"#,
                "cannot be granted read-write",
            ),
            (
                r#"{"kind":"directory","name":"input","path":"relative/dir"}"#,
                "not an absolute path",
            ),
            (
                r#"{"kind":"directory","name":"input","path":"/no/such/dir/anywhere"}"#,
                "No such file",
            ),
        ];
        for (json, want) in cases {
            let err = spec(json).check("cp", &m).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
        let narrow = Manifest::from_json(
            br#"{"manifest_version":1,"http":[{"destination":"https://*.vendor.example","purpose":""}]}"#,
        )
        .unwrap();
        let err = spec(r#"{"kind":"http","destination":"https://evil.example"}"#)
            .check("cp", &narrow)
            .unwrap_err();
        assert!(
            err.contains("not within what cp requests (https://*.vendor.example)"),
            "{err}"
        );
        let err = spec(r#"{"kind":"http","destination":"https://x.example"}"#)
            .check("dd", &Manifest::default())
            .unwrap_err();
        assert_eq!(err, "dd requests no outbound HTTP");
    }

    #[test]
    fn secret_references() {
        assert!(
            serde_json::from_str::<GrantSpec>(
                r#"{"kind":"secret","key":"k","reference":"hunter2"}"#
            )
            .unwrap_err()
            .to_string()
            .contains("by reference")
        );
        assert!("env:1X".parse::<SecretRef>().is_err());
        assert!("file:relative".parse::<SecretRef>().is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cret\n").unwrap();
        let r: SecretRef = format!("file:{}", file.display()).parse().unwrap();
        assert_eq!(r.resolve().unwrap(), "s3cret");
        let missing: SecretRef = "env:SCHEDULEZERO_TEST_SURELY_UNSET".parse().unwrap();
        assert_eq!(
            missing.resolve().unwrap_err(),
            "env:SCHEDULEZERO_TEST_SURELY_UNSET is not set"
        );
    }

    #[test]
    fn effective_is_the_intersection_and_review_says_what_is_missing() {
        let m = manifest();
        let grants = vec![
            grant(r#"{"kind":"http","destination":"http://127.0.0.1:9000"}"#),
            grant(r#"{"kind":"config","key":"endpoint","value":"http://127.0.0.1:9000/up"}"#),
            grant(r#"{"kind":"config","key":"region","value":"eu"}"#),
            grant(r#"{"kind":"directory","name":"output","path":"/tmp","access":"read-only"}"#),
        ];
        let e = Effective::new(&m, &grants);
        assert_eq!(e.http.len(), 1);
        assert_eq!(e.keys(), vec!["endpoint".to_owned()]);
        assert_eq!(
            e.directories,
            vec![Mount {
                name: "output".into(),
                path: "/tmp".into(),
                read_only: true
            }]
        );
        let r = review(&m, &grants);
        let missing: Vec<&str> = r
            .requested
            .iter()
            .filter(|q| !q.is_granted())
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(missing, vec!["input", "api_key"]);
        assert_eq!(r.unrequested.len(), 1);
        assert_eq!(r.unrequested[0].spec.id().name, "region");
    }

    #[test]
    fn the_fleet_view_is_granted_only_where_requested() {
        let fleet = grant(r#"{"kind":"fleet","call_plugins":true}"#);
        assert_eq!(fleet.spec.id().kind, "fleet");
        assert_eq!(
            fleet.spec.shown().as_deref(),
            Some("pings may call plugins")
        );
        // Not requested: refused, and it gives nothing.
        let m = manifest();
        assert_eq!(
            fleet.spec.check("p", &m),
            Err("p does not request `fleet`".into())
        );
        assert_eq!(Effective::new(&m, std::slice::from_ref(&fleet)).fleet, None);
        assert_eq!(
            review(&m, std::slice::from_ref(&fleet)).unrequested.len(),
            1
        );
        // Requested: granted, with its option; the review lists it.
        let asks = Manifest::from_json(
            br#"{"manifest_version":1,"fleet":{"purpose":"watches the others"}}"#,
        )
        .unwrap();
        assert!(fleet.spec.check("p", &asks).is_ok());
        assert_eq!(
            Effective::new(&asks, std::slice::from_ref(&fleet)).fleet,
            Some(FleetAccess { call_plugins: true })
        );
        let plain = grant(r#"{"kind":"fleet"}"#);
        assert_eq!(
            Effective::new(&asks, std::slice::from_ref(&plain)).fleet,
            Some(FleetAccess {
                call_plugins: false
            })
        );
        let r = review(&asks, &[]);
        assert_eq!(
            (
                r.requested[0].kind.as_str(),
                r.requested[0].purpose.as_str()
            ),
            ("fleet", "watches the others")
        );
        assert!(!r.requested[0].is_granted());
        assert!(review(&asks, &[plain]).requested[0].is_granted());
        // Its only field is the option.
        assert!(serde_json::from_str::<GrantSpec>(r#"{"kind":"fleet","key":"x"}"#).is_err());
    }
}
