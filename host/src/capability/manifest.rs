//! A component's capabilities manifest: what it asks the operator for, written at build time into
//! a custom section named [`SECTION`] and read here from the file without running it.
//!
//! The section holds UTF-8 JSON (the format is documented in `docs/capabilities.md`):
//!
//! ```json
//! {"manifest_version": 1,
//!  "http": [{"destination": "https://*.vendor.example", "purpose": "uploads results"}],
//!  "directories": [{"name": "input", "access": "read-only", "purpose": "files to process"}],
//!  "config": [{"key": "api_key", "description": "the vendor's API key", "secret": true}],
//!  "fleet": {"purpose": "checks the other handlers' health"}}
//! ```
//!
//! A component without the section asks for nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::destination::Destination;

/// The name of the custom section that holds the manifest.
pub const SECTION: &str = "schedulezero-manifest";

/// The manifest version this host reads.
pub const VERSION: u32 = 1;

/// The largest manifest read, in bytes.
const MAX_BYTES: usize = 64 * 1024;

/// What a component asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The format's version; this host reads version 1.
    pub manifest_version: u32,
    /// What the component is (the SDK writes it; other toolchains may not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    /// Outbound HTTP destinations.
    #[serde(default)]
    pub http: Vec<HttpRequest>,
    /// Directories, by the name the component uses for each.
    #[serde(default)]
    pub directories: Vec<DirectoryRequest>,
    /// Configuration values and secrets, by key.
    #[serde(default)]
    pub config: Vec<ConfigRequest>,
    /// The read-only view of the host's handlers, the host and the machine (the `fleet`
    /// import); a component that imports it must ask for it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetRequest>,
}

/// The `fleet` view, asked for with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    /// What the component does with what it sees.
    pub purpose: String,
}

/// What a component says it is, read without running it (`describe()` says the same once it
/// runs; the host holds the component to the name of its file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The handler's name.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Who makes it (the crate's authors).
    #[serde(default)]
    pub vendor: String,
    /// Its license (SPDX).
    #[serde(default)]
    pub license: String,
    /// Where its source is.
    #[serde(default)]
    pub source: String,
}

/// Outbound HTTP to destinations of one allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// An allow-list entry (`https://api.example.com`, `https://*.example.com:8443`): the widest
    /// the operator may grant.
    #[schema(value_type = String)]
    pub destination: Destination,
    /// What the component sends there, and why.
    pub purpose: String,
}

/// A directory the component uses, by a name of its own; the operator maps it to a host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRequest {
    /// The name (letters, digits, `-`, `_`); the directory appears to the component as `/<name>`.
    pub name: String,
    /// Whether it only reads there, or also writes.
    pub access: Access,
    /// What it does with the files.
    pub purpose: String,
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Reads files and lists directories only.
    ReadOnly,
    /// Also creates, writes and removes.
    ReadWrite,
}

impl Access {
    /// `read-only` or `read-write`, as written in manifests and grants.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }
}

/// A configuration value or a secret, by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// The key the component reads (`config.get(key)`).
    pub key: String,
    /// What the value is.
    pub description: String,
    /// A secret is granted by reference (`env:NAME`, `file:PATH`) and never shown again.
    #[serde(default)]
    pub secret: bool,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The component's bytes could not be parsed far enough to find the section.
    #[error("cannot read the component: {0}")]
    Parse(String),
    /// More than one manifest section, with different contents.
    #[error("the component holds {0} different `{SECTION}` sections")]
    Several(usize),
    /// The section is larger than the host reads.
    #[error("the manifest is {0} bytes, more than the {MAX_BYTES} read")]
    TooLarge(usize),
    /// The section is not a manifest.
    #[error("the manifest is not valid: {0}")]
    Invalid(String),
    /// A version this host does not read.
    #[error("manifest version {0} is not supported (this host reads version {VERSION})")]
    Version(u32),
}

impl Manifest {
    /// Reads the manifest of a component (or core module) from its bytes; none when it has no
    /// manifest section.
    pub fn read(wasm: &[u8]) -> Result<Option<Self>, ManifestError> {
        let mut found: Vec<&[u8]> = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            let payload = payload.map_err(|e| ManifestError::Parse(e.to_string()))?;
            if let wasmparser::Payload::CustomSection(c) = payload
                && c.name() == SECTION
                && !found.contains(&c.data())
            {
                found.push(c.data());
            }
        }
        match found.as_slice() {
            [] => Ok(None),
            [one] => Self::from_json(one).map(Some),
            several => Err(ManifestError::Several(several.len())),
        }
    }

    /// Reads a manifest from its JSON text, and checks it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        match value
            .get("manifest_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => return Err(ManifestError::Version(u32::try_from(v).unwrap_or(u32::MAX))),
            None => {
                return Err(ManifestError::Invalid(
                    "`manifest_version` is missing (this host reads version 1)".into(),
                ));
            }
        }
        let manifest: Self = crate::json::read(value).map_err(ManifestError::Invalid)?;
        manifest.check().map_err(ManifestError::Invalid)?;
        Ok(manifest)
    }

    /// Names are well formed and not repeated.
    fn check(&self) -> Result<(), String> {
        let mut dirs = BTreeSet::new();
        for d in &self.directories {
            if !is_valid_key(&d.name) {
                return Err(format!(
                    "directory name `{}`: use letters, digits, `-` and `_` (at most 64)",
                    d.name
                ));
            }
            if !dirs.insert(d.name.as_str()) {
                return Err(format!("directory `{}` is asked for twice", d.name));
            }
        }
        let mut keys = BTreeSet::new();
        for c in &self.config {
            if !is_valid_key(&c.key) {
                return Err(format!(
                    "config key `{}`: use letters, digits, `-` and `_` (at most 64)",
                    c.key
                ));
            }
            if !keys.insert(c.key.as_str()) {
                return Err(format!("config key `{}` is asked for twice", c.key));
            }
        }
        Ok(())
    }

    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty()
            && self.directories.is_empty()
            && self.config.is_empty()
            && self.fleet.is_none()
    }

    /// The directory asked for under `name`.
    pub fn directory(&self, name: &str) -> Option<&DirectoryRequest> {
        self.directories.iter().find(|d| d.name == name)
    }

    /// The configuration value or secret asked for under `key`.
    pub fn config_key(&self, key: &str) -> Option<&ConfigRequest> {
        self.config.iter().find(|c| c.key == key)
    }
}

/// A directory name or config key: letters, digits, `-`, `_` and `.`, 1 to 64 of them.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with the given custom sections (name, data).
    fn module(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        for (name, data) in sections {
            let mut body = vec![u8::try_from(name.len()).unwrap()];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            wasm.push(0);
            let mut len = body.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    wasm.push(byte);
                    break;
                }
                wasm.push(byte | 0x80);
            }
            wasm.extend_from_slice(&body);
        }
        wasm
    }

    const FULL: &str = r#"{"manifest_version":1,
        "http":[{"destination":"https://*.vendor.example","purpose":"uploads"}],
        "directories":[{"name":"input","access":"read-only","purpose":"reads"}],
        "config":[{"key":"endpoint","description":"where"},{"key":"api_key","description":"key","secret":true}]}"#;

    #[test]
    fn reads_the_section_and_none_without_it() {
        let m = Manifest::read(&module(&[("other", b"x"), (SECTION, FULL.as_bytes())]))
            .unwrap()
            .unwrap();
        assert_eq!(m.http[0].destination.as_str(), "https://*.vendor.example");
        assert_eq!(m.directories[0].access, Access::ReadOnly);
        assert!(m.config_key("api_key").unwrap().secret);
        assert!(!m.config_key("endpoint").unwrap().secret);
        assert_eq!(Manifest::read(&module(&[("other", b"x")])).unwrap(), None);
        // The same section twice (a module inside a component, say) is one manifest.
        let twice = module(&[(SECTION, FULL.as_bytes()), (SECTION, FULL.as_bytes())]);
        assert!(Manifest::read(&twice).unwrap().is_some());
        let two = module(&[(SECTION, FULL.as_bytes()), (SECTION, b"{}")]);
        assert_eq!(Manifest::read(&two), Err(ManifestError::Several(2)));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = |text: &str| {
            Manifest::from_json(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"manifest_version":2}"#).contains("version 2 is not supported"));
        assert!(err("not json").contains("not valid"));
        assert!(
            err(r#"{"manifest_version":1,"http":[{"destination":"*","purpose":""}]}"#)
                .contains("every destination")
        );
        assert!(err(r#"{"manifest_version":1,"network":[]}"#).contains("network"));
        assert!(err(r#"{"manifest_version":1,"directories":[{"name":"../x","access":"read-only","purpose":""}]}"#)
            .contains("directory name"));
        assert!(err(r#"{"manifest_version":1,"config":[{"key":"a","description":""},{"key":"a","description":""}]}"#)
            .contains("twice"));
        assert!(
            err(
                r#"{"manifest_version":1,"directories":[{"name":"a","access":"all","purpose":""}]}"#
            )
            .contains("access")
        );
    }
}
