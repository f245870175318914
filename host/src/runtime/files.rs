//! What may be read from the plugins folder, and how. The folder is the trust boundary of
//! development and anyone may drop anything into it, so every file is vetted before a byte of it
//! is read: its name makes a plugin name, it is a regular file (a FIFO or a device would block
//! the reader), a link does not lead out of the folder, and it is no larger than
//! `pool.max_component_size`. The bytes are read from the descriptor that was checked, opened
//! without blocking, so a file swapped for a FIFO between the check and the read cannot block.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::LoadError;
use crate::config::is_valid_plugin_name;

/// What identifies a version of a file without reading it: its size, modification time and
/// inode (a file replaced by a rename has a new inode even with the same size and time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    len: u64,
    modified: std::time::SystemTime,
    dev: u64,
    ino: u64,
}

impl FileStamp {
    /// The stamp of what `path` names (following a link), without opening it.
    pub(super) fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Self::from_meta(&m))
    }

    fn from_meta(meta: &std::fs::Metadata) -> Option<Self> {
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok()?,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// The plugin name a file's name makes, or why it makes none (with the name to use instead when
/// there is an obvious one: Cargo names `weather-report`'s output `weather_report.wasm`).
pub(super) fn plugin_name(path: &Path) -> Result<String, LoadError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if is_valid_plugin_name(stem) {
        return Ok(stem.to_owned());
    }
    let suggestion = stem.to_ascii_lowercase().replace('_', "-");
    let hint = if is_valid_plugin_name(&suggestion) {
        format!("; rename it to `{suggestion}.wasm`")
    } else {
        String::new()
    };
    Err(LoadError::BadName {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        hint,
    })
}

/// Where `path` really is, if that is a regular file inside `dir`.
fn vetted_target(dir: &Path, path: &Path) -> Result<PathBuf, LoadError> {
    let link = std::fs::symlink_metadata(path).map_err(|e| LoadError::Read(e.to_string()))?;
    let target = if link.file_type().is_symlink() {
        let target = std::fs::canonicalize(path)
            .map_err(|e| LoadError::Read(format!("a link that leads nowhere: {e}")))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| LoadError::Read(e.to_string()))?;
        if !target.starts_with(&dir) {
            return Err(LoadError::OutsideFolder(target.display().to_string()));
        }
        target
    } else {
        path.to_owned()
    };
    let meta = std::fs::metadata(&target).map_err(|e| LoadError::Read(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotAFile);
    }
    Ok(target)
}

/// Reads a plugin file of `dir` after vetting it (see the [module](self)); returns its bytes and
/// the stamp of what was read.
pub(super) fn read(
    dir: &Path,
    path: &Path,
    max_size: u64,
) -> Result<(Vec<u8>, FileStamp), LoadError> {
    let target = vetted_target(dir, path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&target)
        .map_err(|e| LoadError::Read(e.to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| LoadError::Read(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotAFile);
    }
    if meta.len() > max_size {
        return Err(LoadError::TooLarge {
            size: meta.len(),
            limit: max_size,
        });
    }
    if meta.len() == 0 {
        return Err(LoadError::Invalid("the file is empty".to_owned()));
    }
    let stamp = FileStamp::from_meta(&meta)
        .ok_or_else(|| LoadError::Read("no modification time".to_owned()))?;
    // One byte more than the file: reading to its end then needs no second, doubled buffer.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    // A file that grows while it is read is cut at the limit; its new stamp gets it read again.
    file.take(max_size)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Read(e.to_string()))?;
    Ok((bytes, stamp))
}

/// Whether the watcher should look at `path` at all: a `*.wasm` name that is a regular file or a
/// link (vetted when read). Nothing here opens the file.
pub(super) fn is_candidate(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && std::fs::symlink_metadata(path)
            .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_folder_under_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok.wasm"), b"\0asm").unwrap();
        assert_eq!(read(d, &d.join("ok.wasm"), 1024).unwrap().0, b"\0asm");
        assert!(matches!(
            read(d, &d.join("ok.wasm"), 2),
            Err(LoadError::TooLarge { size: 4, limit: 2 })
        ));

        std::fs::write(d.join("empty.wasm"), b"").unwrap();
        assert!(matches!(
            read(d, &d.join("empty.wasm"), 1024),
            Err(LoadError::Invalid(_))
        ));

        let fifo = d.join("fifo.wasm");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(!is_candidate(&fifo));
        assert!(matches!(read(d, &fifo, 1024), Err(LoadError::NotAFile)));

        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("out.wasm")).unwrap();
        assert!(matches!(
            read(d, &d.join("out.wasm"), 1024),
            Err(LoadError::OutsideFolder(_))
        ));
        std::os::unix::fs::symlink(d.join("ok.wasm"), d.join("alias.wasm")).unwrap();
        assert!(
            read(d, &d.join("alias.wasm"), 1024).is_ok(),
            "a link inside the folder is fine"
        );
    }

    #[test]
    fn a_bad_name_says_what_the_file_must_be_called() {
        let e = plugin_name(Path::new("/p/weather_report.wasm")).unwrap_err();
        assert!(
            e.to_string().contains("rename it to `weather-report.wasm`"),
            "{e}"
        );
        let e = plugin_name(Path::new("/p/Bad_Name.wasm")).unwrap_err();
        assert!(e.to_string().contains("`bad-name.wasm`"), "{e}");
        let e = plugin_name(Path::new("/p/9lives.wasm")).unwrap_err();
        assert!(!e.to_string().contains("rename"), "{e}");
        assert_eq!(
            plugin_name(Path::new("/p/ding-dong.wasm")).unwrap(),
            "ding-dong"
        );
    }
}
