//! The handler process's own figures, which it reports to the host's fleet view when asked
//! (`get_metrics`, answered by the SDK unless the handler registers a method of that name):
//! resident memory, CPU use since the previous report, threads, uptime, calls served, status.
//! Read from `/proc/self` on Linux; elsewhere the figures it cannot read are left out.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

/// The method the host calls.
pub(crate) const METHOD: &str = "get_metrics";

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// What the process has done since it started serving.
pub(crate) struct Figures {
    started: Instant,
    calls: AtomicU64,
    /// The CPU time read at the previous report, and when.
    last_cpu: Mutex<Option<(Instant, f64)>>,
}

impl Figures {
    pub(crate) fn new() -> Self {
        let figures = Self {
            started: Instant::now(),
            calls: AtomicU64::new(0),
            last_cpu: Mutex::new(None),
        };
        *figures.last_cpu.lock().unwrap_or_else(|p| p.into_inner()) =
            cpu_seconds().map(|cpu| (Instant::now(), cpu));
        figures
    }

    /// One more call served.
    pub(crate) fn served(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The report, as the host's fleet view reads it.
    pub(crate) fn report(&self) -> Value {
        let status = read_status();
        let now = Instant::now();
        let cpu_percent = cpu_seconds().and_then(|cpu| {
            let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
            let percent = last.and_then(|(at, before)| {
                let wall = now.duration_since(at).as_secs_f64();
                (wall > 0.0).then(|| ((cpu - before) / wall * 1000.0).round() / 10.0)
            });
            *last = Some((now, cpu));
            percent
        });
        json!({
            "rss_bytes": status.as_ref().and_then(|s| number_field(s, "VmRSS:")).map(|k| k * 1024),
            "cpu_percent": cpu_percent,
            "threads": status.as_ref().and_then(|s| number_field(s, "Threads:")),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "calls_served": self.calls.load(Ordering::Relaxed),
            "pid": std::process::id(),
            "status": "ok",
        })
    }
}

fn read_status() -> Option<String> {
    std::fs::read_to_string("/proc/self/status").ok()
}

/// The number after `name` on its line of `/proc/self/status` (`VmRSS:  1234 kB`).
fn number_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User and system CPU time of the process so far, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_process_as_it_is() {
        let f = Figures::new();
        f.served();
        f.served();
        // Burn a little CPU so that the second report has some to show.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let r = f.report();
        assert_eq!(r["calls_served"], 2);
        assert_eq!(r["status"], "ok");
        assert_eq!(r["pid"], std::process::id());
        if cfg!(target_os = "linux") {
            assert!(r["rss_bytes"].as_u64().unwrap() > 1024 * 1024, "{r}");
            assert!(r["threads"].as_u64().unwrap() >= 1, "{r}");
            assert!(r["cpu_percent"].as_f64().unwrap() >= 0.0, "{r}");
        }
        assert_eq!(
            number_field("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        assert_eq!(number_field("Name:\tx\n", "VmRSS:"), None);
    }
}
