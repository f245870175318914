//! One host per SQLite store: `serve` holds an exclusive lock on a file in the data directory
//! for as long as it runs (an advisory `flock`, released by the kernel when the process ends,
//! however it ends). A second host on the same directory is refused at start and told the pid
//! of the first, which the lock file holds.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "schedulezero.lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "the data directory {dir} is in use by another schedulezero host (pid {pid}); stop it, or give this one another --data-dir"
    )]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it (`unknown` if unreadable).
        pid: String,
    },
    /// The lock file could not be opened or written.
    #[error("cannot lock the data directory {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The file in the data directory that holds its id (made on first use).
pub const HOME_FILE: &str = "schedulezero.home";

/// The data directory's id: what the nodes that run on it share (`Store::set_home`). Made on
/// first use; `None` when it can be neither read nor made (a full disk): the host then waits out
/// its predecessors' leases like any other host's.
pub fn home_id(dir: &Path) -> Option<String> {
    let file = dir.join(HOME_FILE);
    if let Ok(id) = std::fs::read_to_string(&file) {
        let id = id.trim();
        if !id.is_empty() {
            return Some(id.to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(&file, &id).ok()?;
    Some(id)
}

/// Takes the lock on `dir` and writes this process's pid into it.
pub fn lock(dir: &Path) -> Result<DataDirLock, LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_owned(),
        source,
    };
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = match pid.trim() {
            "" => "unknown".to_owned(),
            p => p.to_owned(),
        };
        return Err(LockError::Held {
            dir: dir.to_owned(),
            pid,
        });
    }
    // Written after the lock is held. A full disk leaves the file empty: the lock holds anyway.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{e}"
        );
        drop(held);
        lock(dir.path()).unwrap();
    }
}
