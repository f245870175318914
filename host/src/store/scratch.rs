//! A throwaway PostgreSQL server in a temporary directory, for the tests and `bench cluster`:
//! `initdb` then `postgres` on a loopback port, from the PostgreSQL installed on the machine
//! (`SCHEDULEZERO_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `postgres` on the
//! `PATH`). PostgreSQL refuses to run as root: a root process runs it as the `postgres` user.
//! The server dies with the process that started it (a parent-death signal), and its directory
//! goes when the value is dropped; directories left by a killed process are swept at the next
//! start.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The prefix of the servers' directories in the temporary directory.
const DIR_PREFIX: &str = "schedulezero-pg-";

/// The role the tests and benchmarks connect as (a superuser of the scratch server).
pub const USER: &str = "schedulezero";

/// Why a scratch server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// No PostgreSQL binaries were found.
    #[error(
        "no PostgreSQL server binaries found (set SCHEDULEZERO_PG_BIN to the directory holding initdb and postgres, or install postgresql)"
    )]
    NotInstalled,
    /// A step failed.
    #[error("scratch PostgreSQL: {0}")]
    Failed(String),
}

fn failed(what: &str, e: impl std::fmt::Display) -> ScratchError {
    ScratchError::Failed(format!("{what}: {e}"))
}

/// A PostgreSQL server of its own, in a temporary directory.
#[derive(Debug)]
pub struct ScratchPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The `postgres` user's uid and gid, when this process is root.
    owner: Option<(u32, u32)>,
    durable: bool,
    /// The server's process, and the line to the thread that started it: a parent-death
    /// signal follows the thread that forked, so that thread lives as long as the server.
    child: Mutex<Option<(Child, std::sync::mpsc::Sender<()>)>>,
}

/// The server shared by a test process, stopped and removed when the process exits.
static SHARED: std::sync::OnceLock<ScratchPostgres> = std::sync::OnceLock::new();

extern "C" fn remove_shared() {
    if let Some(server) = SHARED.get() {
        server.stop();
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}

impl ScratchPostgres {
    /// Creates and starts a server. `durable`: fsync as a production server does (for
    /// benchmarks); otherwise commits are not flushed to disk (tests, which need no crash
    /// safety from the server itself).
    pub fn start(durable: bool) -> Result<Self, ScratchError> {
        let bin = binaries()?;
        sweep_stale();
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| failed("create its directory", e))?;
        let owner = if rustix::process::geteuid().is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let server = Self {
            dir,
            bin,
            port: 0,
            owner,
            durable,
            child: Mutex::new(None),
        };
        if let Some((uid, gid)) = owner {
            chown(&server.dir, uid, gid)?;
        }
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--no-instructions",
        ]);
        if !durable {
            initdb.arg("--no-sync");
        }
        let out = initdb.output().map_err(|e| failed("run initdb", e))?;
        if !out.status.success() {
            return Err(failed(
                "initdb",
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        let mut server = server;
        // A port picked by the kernel, then given to PostgreSQL: another process could take
        // it in between, so a failed start tries another.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| failed("start", "no port")))
    }

    /// One server for the whole process (started on first use, not durable), stopped and
    /// removed when the process exits: tests make a database each on it.
    pub fn shared() -> Result<&'static Self, ScratchError> {
        static START: Mutex<()> = Mutex::new(());
        let _one = START.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = SHARED.get() {
            return Ok(server);
        }
        let server = SHARED.get_or_init(|| match Self::start(false) {
            Ok(s) => s,
            Err(e) => Self::broken(e),
        });
        if server.port == 0 {
            return Err(failed("start", "the shared server failed to start earlier"));
        }
        // SAFETY: registers a plain function, run once at exit.
        unsafe {
            libc::atexit(remove_shared);
        }
        Ok(server)
    }

    fn broken(e: ScratchError) -> Self {
        tracing::error!(error = %e, "scratch PostgreSQL did not start");
        Self {
            dir: PathBuf::new(),
            bin: PathBuf::new(),
            port: 0,
            owner: None,
            durable: false,
            child: Mutex::new(None),
        }
    }

    /// Creates a database with a fresh name and returns its URL.
    pub async fn fresh_database(&self) -> Result<String, ScratchError> {
        self.create_database(&format!("t{}", uuid::Uuid::new_v4().simple()))
            .await
    }

    /// [`ScratchPostgres::fresh_database`] from code that is not async (or runs on a runtime
    /// it must not block): on a thread of its own.
    pub fn fresh_database_blocking(&'static self) -> Result<String, ScratchError> {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| failed("a runtime", e))?
                .block_on(self.fresh_database())
        })
        .join()
        .map_err(|_| failed("create a database", "the thread panicked"))?
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, ScratchError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| failed("connect", e))?;
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await
            .map_err(|e| failed("create a database", e))?;
        let _ = conn.close().await;
        Ok(self.url(name))
    }

    /// Stops the server (a fast shutdown: sessions are ended, what was committed stays) and
    /// waits for it to exit.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((mut c, _keeper)) = child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again after [`ScratchPostgres::stop`], on the same port and data.
    pub fn restart(&self) -> Result<(), ScratchError> {
        self.stop();
        self.launch()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.stdin(Stdio::null())
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .current_dir(&self.dir);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        cmd
    }

    fn launch(&self) -> Result<(), ScratchError> {
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            .args(["-c", "shared_buffers=64MB"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        if !self.durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        // SAFETY: the closure makes one system call (prctl), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // The server goes when the process that started it goes, however it goes.
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::INT))
                    .map_err(std::io::Error::from)
            });
        }
        let (spawned, started) = std::sync::mpsc::channel();
        let (keeper, kept) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _ = spawned.send(cmd.spawn());
            // Until the server is stopped (the sender dropped).
            let _ = kept.recv();
        });
        let mut child = started
            .recv()
            .map_err(|e| failed("start postgres", e))?
            .map_err(|e| failed("start postgres", e))?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(failed(
                    "postgres exited",
                    format!("{status}: {}", log.trim()),
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.accepts_sessions()
            {
                break;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("start postgres", "not ready within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some((child, keeper));
        Ok(())
    }

    /// Whether the server takes sessions yet (it listens before it has finished starting).
    fn accepts_sessions(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether PostgreSQL's server binaries are found.
pub fn installed() -> bool {
    binaries().is_ok()
}

/// The directory of the PostgreSQL server binaries.
fn binaries() -> Result<PathBuf, ScratchError> {
    if let Some(dir) = std::env::var_os("SCHEDULEZERO_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("postgres").exists() && d.join("initdb").exists())
        .ok_or(ScratchError::NotInstalled)
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Result<(u32, u32), ScratchError> {
    let id = |flag: &str| -> Result<u32, ScratchError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| failed("look up the postgres user", e))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                failed(
                    "look up the postgres user",
                    "no `postgres` user (PostgreSQL does not run as root)",
                )
            })
    };
    Ok((id("-u")?, id("-g")?))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), ScratchError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| failed("chown", e))
}

fn free_port() -> Result<u16, ScratchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| failed("find a free port", e))
}

/// Removes the directories of scratch servers whose process is gone (killed before it could
/// clean up).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
