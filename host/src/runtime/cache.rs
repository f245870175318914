//! The on-disk cache of compiled components.
//!
//! A component is compiled once; its native artifact is stored under a name made of the sha256
//! of the `.wasm`, and a key of the engine (the wasmtime version and the engine's compatibility
//! hash), so a new wasmtime or a different engine setting never loads a stale artifact.
//!
//! Deserializing an artifact runs its machine code, so only files this host wrote are ever
//! loaded. The cache directory must belong to the host's user and is kept private (mode 0700);
//! artifacts are written to a temporary file and renamed into place (mode 0600); before loading
//! one the host checks that it is a regular file (not a link), owned by the host's user and
//! writable by nobody else, in that private directory. Anyone who can still forge such a file
//! already runs code as the host's user.

use std::collections::HashMap;
use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::flat;
use super::{LoadError, RuntimeError};

/// The file extension of cached artifacts.
const ARTIFACT_EXT: &str = "cwasm";

/// The artifact cache of one engine.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    compilations: Arc<AtomicU64>,
    /// One lock per component being compiled (by sha256), so that loads of the same bytes at
    /// once (copies of a component, loaded in the background together) compile it once.
    compiling: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
}

/// A `Hasher` over sha256, so the engine's compatibility hash is the same in every process.
struct StableHasher(Sha256);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The sha256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ArtifactCache {
    /// Opens (creating it if needed, private to this user) the cache directory for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, RuntimeError> {
        create_private_dir(dir).map_err(|e| RuntimeError::Cache {
            dir: dir.to_owned(),
            message: e,
        })?;
        let mut hasher = StableHasher(Sha256::new());
        hasher.write(env!("SCHEDULEZERO_WASMTIME_VERSION").as_bytes());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key,
            compilations: Arc::default(),
            compiling: Arc::default(),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of the component with this sha256 lives.
    pub fn artifact_path(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.{ARTIFACT_EXT}", self.engine_key))
    }

    /// How many times this cache was asked to compile a component (failures included).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Whether an artifact for this sha256 is in the cache.
    pub fn contains(&self, wasm_sha256: &str) -> bool {
        self.artifact_path(wasm_sha256).is_file()
    }

    /// The component from its cached artifact, or compiled now and stored (with the compile
    /// time); a compile of the same bytes under way elsewhere is waited for, not repeated.
    /// Blocks: call it from a blocking thread.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> Result<(Component, Option<Duration>), LoadError> {
        if let Some(c) = self.load(engine, wasm_sha256)? {
            return Ok((c, None));
        }
        let lock = {
            let mut locks = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(wasm_sha256.to_owned()).or_default().clone()
        };
        let result = {
            let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
            match self.load(engine, wasm_sha256) {
                // Compiled meanwhile by the load this one waited for.
                Ok(Some(c)) => Ok((c, None)),
                Ok(None) => self
                    .compile(engine, wasm, wasm_sha256)
                    .map(|(c, took)| (c, Some(took))),
                Err(e) => Err(e),
            }
        };
        let mut locks = self.compiling.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&lock) == 2 {
            locks.remove(wasm_sha256);
        }
        result
    }

    /// Compiles a component (validating it) and stores its artifact. Blocks for tens of
    /// milliseconds: call it from a blocking thread.
    pub fn compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> Result<(Component, Duration), LoadError> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let component = Component::new(engine, wasm).map_err(|e| LoadError::Invalid(flat(&e)))?;
        let took = started.elapsed();
        let bytes = component
            .serialize()
            .map_err(|e| LoadError::Cache(format!("serialize: {}", flat(&e))))?;
        let path = self.artifact_path(wasm_sha256);
        if let Err(e) = self.write_atomically(&path, &bytes) {
            // A full disk, say: the compiled component serves from memory, and is compiled
            // again when it is next needed cold.
            tracing::warn!(artifact = %path.display(), error = %e,
                "cannot store the compiled artifact; the component is used without caching it");
        }
        Ok((component, took))
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        // NamedTempFile is created with mode 0600 and O_EXCL in the private directory.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes the artifacts of this engine that belong to none of `keep` (sha256s of the
    /// component files in use) and those of other engines (another wasmtime version, other
    /// settings): on a small volume, versions of plugins long replaced must not fill it.
    /// Returns the bytes freed.
    pub fn prune(&self, keep: &std::collections::HashSet<String>) -> u64 {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut freed = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(&format!(".{ARTIFACT_EXT}")) else {
                continue;
            };
            let current = stem
                .split_once('-')
                .is_some_and(|(sha, key)| key == self.engine_key && keep.contains(sha));
            if !current {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if fs::remove_file(&path).is_ok() {
                    freed += size;
                }
            }
        }
        freed
    }

    /// Loads a cached artifact, or `Ok(None)` when there is none (or it failed the provenance
    /// check, in which case it is removed so it gets rebuilt).
    pub fn load(&self, engine: &Engine, wasm_sha256: &str) -> Result<Option<Component>, LoadError> {
        let path = self.artifact_path(wasm_sha256);
        match check_provenance(&self.dir, &path) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(reason) => {
                tracing::warn!(artifact = %path.display(), %reason, "refusing a cached artifact; it will be rebuilt");
                let _ = fs::remove_file(&path);
                return Ok(None);
            }
        }
        // SAFETY: `check_provenance` established that this file was written by this host's user
        // into its private cache directory, under a name that binds it to the wasm's hash and to
        // this engine; wasmtime then checks the artifact's header against the engine as well.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Ok(Some(component)),
            Err(e) => {
                tracing::warn!(artifact = %path.display(), error = %format!("{e:#}"), "cached artifact unusable; it will be rebuilt");
                let _ = fs::remove_file(&path);
                Ok(None)
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = fs::metadata(dir).map_err(|e| e.to_string())?;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(
                "it belongs to another user; use a directory of the host's own user".into(),
            );
        }
        if meta.mode() & 0o077 != 0 {
            // Ours, but open to others (made by hand, say): close it before trusting its files.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make it private: {e}"))?;
        }
    }
    Ok(())
}

/// `Ok(false)`: no artifact. `Err`: there is a file, but this host cannot vouch for it.
fn check_provenance(dir: &Path, path: &Path) -> Result<bool, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        let dir_meta = fs::metadata(dir).map_err(|e| e.to_string())?;
        if dir_meta.uid() != me || dir_meta.mode() & 0o077 != 0 {
            return Err("the cache directory is not private to the host's user".into());
        }
        if meta.uid() != me {
            return Err("owned by another user".into());
        }
        if meta.mode() & 0o022 != 0 {
            return Err("writable by other users".into());
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_links_and_foreign_writable_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        create_private_dir(&cache_dir).unwrap();
        let missing = cache_dir.join("missing.cwasm");
        assert_eq!(check_provenance(&cache_dir, &missing), Ok(false));

        let good = cache_dir.join("good.cwasm");
        fs::write(&good, b"x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(check_provenance(&cache_dir, &good), Ok(true));
            fs::set_permissions(&good, fs::Permissions::from_mode(0o666)).unwrap();
            assert!(check_provenance(&cache_dir, &good).is_err());

            let link = cache_dir.join("link.cwasm");
            std::os::unix::fs::symlink(&good, &link).unwrap();
            assert_eq!(
                check_provenance(&cache_dir, &link),
                Err("not a regular file".into())
            );

            fs::set_permissions(&good, fs::Permissions::from_mode(0o600)).unwrap();
            fs::set_permissions(&cache_dir, fs::Permissions::from_mode(0o755)).unwrap();
            assert!(
                check_provenance(&cache_dir, &good).is_err(),
                "a directory others can read into"
            );
            create_private_dir(&cache_dir).unwrap();
            assert_eq!(
                fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
            assert_eq!(check_provenance(&cache_dir, &good), Ok(true));

            // Files and directories of another user are never trusted (needs root to set up).
            let other = 4242;
            if std::os::unix::fs::chown(&good, Some(other), None).is_ok() {
                assert_eq!(
                    check_provenance(&cache_dir, &good),
                    Err("owned by another user".into())
                );
                let foreign = dir.path().join("foreign");
                fs::create_dir(&foreign).unwrap();
                std::os::unix::fs::chown(&foreign, Some(other), None).unwrap();
                assert!(
                    create_private_dir(&foreign)
                        .unwrap_err()
                        .contains("another user")
                );
            }
        }
    }
}
