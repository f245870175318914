//! Watching the plugins folder: a new `*.wasm` becomes a plugin, a changed one a new version
//! (calls in flight finish on the old one), a removed one makes its calls fail with
//! `plugin_removed` until it returns. A file is acted on only once it has stayed the same (size
//! and modification time) for `pool.watch_settle`, so a file still being written is not taken
//! for a corrupt one. File-system notifications (inotify) make it quick; a rescan every few
//! seconds catches anything they miss (or stands in for them where they are unavailable).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::files;
use super::loader::wasm_files;
use super::plugin::FileStamp;
use super::{Runtime, sha256_hex};

/// How often the folder is listed again, whatever the notifications say.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// A running watch; dropping it stops watching.
pub struct PluginWatch {
    _notify: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PluginWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Runtime {
    /// Starts watching the plugins folder (see the [module](self) for what changes do). It
    /// compares the folder with what the runtime has loaded (load the folder first with
    /// [`Runtime::discover`]): a file that changed since it was read is loaded again.
    pub fn watch(self: &Arc<Self>) -> PluginWatch {
        let dir = self.config.plugins_dir.clone();
        let settle = self.config.pool.watch_settle;
        let (tx, rx) = mpsc::unbounded_channel();
        let notify = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // The receiver is gone only when the watch is being dropped.
            let _ = tx.send(event);
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        // Anything that changed between the loads and now is picked up by the first rescan,
        // which runs at once.
        let notify = match notify {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot watch the plugins folder for changes; looking at it every {}s instead",
                    RESCAN_EVERY.as_secs());
                None
            }
        };
        let known = self.known_stamps();
        let task = tokio::spawn(run(Arc::downgrade(self), dir, settle, known, rx));
        PluginWatch {
            _notify: notify,
            task,
        }
    }
}

/// The stamp of every `*.wasm` file in `dir`.
fn stamps(dir: &Path) -> HashMap<PathBuf, FileStamp> {
    wasm_files(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| FileStamp::of(&p).map(|s| (p, s)))
        .collect()
}

async fn run(
    runtime: Weak<Runtime>,
    dir: PathBuf,
    settle: Duration,
    mut known: HashMap<PathBuf, FileStamp>,
    mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
) {
    // Files that changed, with their stamp when last seen and when to look again.
    let mut pending: HashMap<PathBuf, (Option<FileStamp>, Instant)> = HashMap::new();
    let mut rescan = tokio::time::interval(RESCAN_EVERY);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notifications = true;
    loop {
        let next_due = pending.values().map(|(_, due)| *due).min();
        tokio::select! {
            event = events.recv(), if notifications => match event {
                // Reading a file (ours included) is no change to it.
                Some(Ok(event)) if event.kind.is_access() => {}
                Some(Ok(event)) => {
                    for path in event.paths.into_iter().filter(|p| is_wasm(p)) {
                        pending.insert(path.clone(), (FileStamp::of(&path), Instant::now() + settle));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "plugins folder watch error; rescanning");
                    changed(&dir, &known, &mut pending, settle);
                }
                None => notifications = false,
            },
            _ = rescan.tick() => changed(&dir, &known, &mut pending, settle),
            _ = sleep_until(next_due) => {
                let now = Instant::now();
                let due: Vec<PathBuf> = pending
                    .iter()
                    .filter(|(_, (_, at))| *at <= now)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in due {
                    let Some((seen, _)) = pending.remove(&path) else { continue };
                    let stamp = FileStamp::of(&path);
                    if stamp != seen {
                        // Still changing: look again once it has been quiet for `settle`.
                        pending.insert(path, (stamp, now + settle));
                        continue;
                    }
                    let Some(runtime) = runtime.upgrade() else { return };
                    apply(&runtime, &path, stamp).await;
                    match stamp {
                        Some(s) => known.insert(path, s),
                        None => known.remove(&path),
                    };
                }
            }
        }
        if runtime.strong_count() == 0 {
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

/// Queues the files whose stamp differs from the known one, and the known files that are gone.
fn changed(
    dir: &Path,
    known: &HashMap<PathBuf, FileStamp>,
    pending: &mut HashMap<PathBuf, (Option<FileStamp>, Instant)>,
    settle: Duration,
) {
    let now = stamps(dir);
    let due = Instant::now() + settle;
    for (path, stamp) in &now {
        if known.get(path) != Some(stamp) && !pending.contains_key(path) {
            pending.insert(path.clone(), (Some(*stamp), due));
        }
    }
    for path in known.keys() {
        if !now.contains_key(path) && !pending.contains_key(path) {
            pending.insert(path.clone(), (None, due));
        }
    }
}

/// Acts on a file that has settled: load it in the background (new or changed), or forget its
/// plugin (removed).
async fn apply(runtime: &Arc<Runtime>, path: &Path, stamp: Option<FileStamp>) {
    let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
        return;
    };
    if stamp.is_none() {
        if !runtime.remove(name) {
            runtime.forget_rejected(path);
        }
        return;
    }
    if !files::is_candidate(path) {
        // A FIFO, a socket, a device or a folder with a `.wasm` name: not a plugin file.
        return;
    }
    if runtime.rejected_as(path, stamp) || runtime.compiling_as(path, stamp) {
        // Rejected as it is (not read or compiled again until it changes), or being loaded.
        return;
    }
    if let Some(current) = runtime.plugin(name) {
        if current.stamp == stamp {
            return;
        }
        // Touched, or written again with the same bytes: nothing new.
        let (dir, file, max) = (
            runtime.config.plugins_dir.clone(),
            path.to_owned(),
            runtime.config.pool.max_component_size,
        );
        let same = tokio::task::spawn_blocking(move || files::read(&dir, &file, max))
            .await
            .is_ok_and(|read| {
                read.is_ok_and(|(bytes, _)| sha256_hex(&bytes) == current.file.sha256)
            });
        if same {
            return;
        }
    }
    // On a task of its own: a compile of seconds does not hold up the watch (the plugin is
    // listed as compiling meanwhile, and calls for it wait).
    drop(runtime.load_in_background(path.to_owned()));
}
