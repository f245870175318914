//! The lockfile: what the catalog installed in a plugins folder (`schedulezero.lock`, TOML, in
//! the folder itself, so it travels with it), with the versions before each kept for rollback.
//! Changes happen under an exclusive lock of the folder (`flock` on `.schedulezero.lock.lck`),
//! so a CLI and a host installing at once take turns, and the file is replaced whole (written
//! beside, then renamed).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CatalogError;

/// The lockfile's name in the plugins folder.
pub const FILE: &str = "schedulezero.lock";
/// The format's version.
const VERSION: u32 = 1;
/// How many earlier versions of a plugin are kept for rollback.
pub const KEEP_PREVIOUS: usize = 3;

/// One installed version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Installed {
    /// Its version.
    pub version: String,
    /// The component's digest (`sha256:<hex>` of the file's bytes).
    pub digest: String,
    /// Where it came from: a registry reference with its tag, or a file.
    pub source: String,
    /// The manifest it was pulled by, pinned (`registry/repository@sha256:...`), for a registry
    /// source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The trusted key that signed it; none when it was installed unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The signing key's id (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// When it was installed (RFC 3339).
    pub installed_at: String,
}

/// A plugin the catalog manages: the installed version and the ones before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// The version in the folder.
    #[serde(flatten)]
    pub current: Installed,
    /// Earlier versions, newest last (their components are kept for rollback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<Installed>,
}

/// The lockfile's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    /// The format's version.
    pub version: u32,
    /// By plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Entry>,
}

impl Lockfile {
    /// Reads the lockfile of a plugins folder (empty when there is none).
    pub fn read(plugins_dir: &Path) -> Result<Self, CatalogError> {
        let path = plugins_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    version: VERSION,
                    plugins: BTreeMap::new(),
                });
            }
            Err(e) => {
                return Err(CatalogError::Io(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let lock: Self = toml::from_str(&text).map_err(|e| {
            CatalogError::Io(format!("{} is not a valid lockfile: {e}", path.display()))
        })?;
        if lock.version != VERSION {
            return Err(CatalogError::Io(format!(
                "{} has format version {}; this host reads version {VERSION}",
                path.display(),
                lock.version
            )));
        }
        Ok(lock)
    }

    /// Writes it, whole: beside, synced, then renamed over the old one.
    pub fn write(&self, plugins_dir: &Path) -> Result<(), CatalogError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| CatalogError::Io(format!("cannot write the lockfile: {e}")))?;
        let body = format!(
            "# What `schedulezero plugins install` placed in this folder: name, version, digest, source,\n# signer; earlier versions are kept for `plugins rollback`. Written by schedulezero.\n{text}"
        );
        write_atomically(&plugins_dir.join(FILE), body.as_bytes())
    }
}

/// Writes a file whole: a temporary file beside it (a name the plugins watch ignores), synced,
/// renamed over the target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CatalogError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CatalogError::Io(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    Ok(())
}

/// The folder's lock, held while the catalog changes it.
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Waits for and takes the exclusive lock of a plugins folder.
    pub fn take(plugins_dir: &Path) -> Result<Self, CatalogError> {
        let path: PathBuf = plugins_dir.join(".schedulezero.lock.lck");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CatalogError::Io(format!("cannot open {}: {e}", path.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| CatalogError::Io(format!("cannot lock {}: {e}", path.display())))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockfile_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Lockfile::read(dir.path()).unwrap().plugins.is_empty());
        let installed = Installed {
            version: "1.0.0".into(),
            digest: "sha256:00".into(),
            source: "127.0.0.1:5000/acme/x:1.0.0".into(),
            pinned: Some("127.0.0.1:5000/acme/x@sha256:11".into()),
            signer: Some("acme".into()),
            key_id: Some("ab".into()),
            installed_at: "2026-11-30T00:00:00Z".into(),
        };
        let mut lock = Lockfile::read(dir.path()).unwrap();
        lock.plugins.insert(
            "x".into(),
            Entry {
                current: installed.clone(),
                previous: vec![Installed {
                    signer: None,
                    key_id: None,
                    pinned: None,
                    ..installed
                }],
            },
        );
        let _held = FolderLock::take(dir.path()).unwrap();
        lock.write(dir.path()).unwrap();
        assert_eq!(Lockfile::read(dir.path()).unwrap(), lock);
        std::fs::write(dir.path().join(FILE), "version = 9\n").unwrap();
        assert!(Lockfile::read(dir.path()).is_err());
    }
}
