//! ding-dong: a clock that chimes.
//!
//! The example handler of ScheduleZero: schedule `play_quarter_chime` every fifteen minutes and
//! `play_hour_bongs` on the hour, and read back what the clock played with `get_chime_log`. The log
//! lives in the instance's memory, so it shows when the host reuses a hot instance (the log keeps
//! growing) and when it starts a fresh one (the log is empty again).

use chrono::{DateTime, Timelike, Utc};
use schedulezero_sdk::capabilities::{Capabilities, Setting};
use schedulezero_sdk::schemars::{self, JsonSchema};
use schedulezero_sdk::serde_json::Value;
use schedulezero_sdk::{Handler, HandlerError, JobContext, Methods, config, export_handler, log};
use serde::{Deserialize, Serialize};

/// Westminster quarters, as the notes of the four changes played at each quarter.
const CHANGES: [&str; 5] = [
    "G# F# E B",
    "E G# F# B",
    "E F# G# E",
    "G# E F# B",
    "B F# G# E",
];

/// Which changes ring at quarter 1, 2, 3 and 4 (the full hour).
const QUARTERS: [&[usize]; 4] = [&[0], &[1, 2], &[3, 4, 0], &[1, 2, 3, 4]];

/// The most entries kept in the log; older ones are dropped first.
const LOG_CAPACITY: usize = 1000;

#[derive(Default)]
struct DingDong {
    log: Vec<LogEntry>,
    calls: u64,
}

#[derive(Clone, Serialize)]
struct LogEntry {
    run_id: String,
    scheduled_time: String,
    sound: String,
}

#[derive(Serialize)]
struct Pong {
    pong: bool,
    handler: &'static str,
    instance_calls: u64,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct AnnounceParams {
    /// Words to put before the time, such as "Good morning".
    greeting: Option<String>,
}

#[derive(Serialize)]
struct Announcement {
    announcement: String,
    scheduled_time: String,
    now: String,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct QuarterParams {
    /// 1, 2, 3 or 4 (4 is the full hour); defaults to the quarter of the scheduled time.
    quarter: Option<u8>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
struct HourParams {
    /// The hour to strike, 0 to 23; defaults to the hour of the scheduled time (UTC).
    hour: Option<u8>,
}

#[derive(Serialize)]
struct Chime {
    sound: String,
    strikes: usize,
    log_length: usize,
}

#[derive(Serialize)]
struct ChimeLog {
    entries: Vec<LogEntry>,
    instance_calls: u64,
}

#[derive(Serialize)]
struct Cleared {
    cleared: usize,
}

impl DingDong {
    fn record(&mut self, ctx: &JobContext, sound: String) -> usize {
        if self.log.len() == LOG_CAPACITY {
            self.log.remove(0);
        }
        self.log.push(LogEntry {
            run_id: ctx.run_id.clone(),
            scheduled_time: rfc3339(scheduled(ctx)),
            sound,
        });
        self.log.len()
    }

    fn ping(&mut self, _ctx: &JobContext, _: ()) -> Result<Pong, HandlerError> {
        self.calls += 1;
        Ok(Pong {
            pong: true,
            handler: Self::NAME,
            instance_calls: self.calls,
        })
    }

    fn announce_time(
        &mut self,
        ctx: &JobContext,
        p: AnnounceParams,
    ) -> Result<Announcement, HandlerError> {
        self.calls += 1;
        let at = scheduled(ctx);
        let place = config::get("location")
            .map(|l| format!(" from {l}"))
            .unwrap_or_default();
        let greeting = p.greeting.map(|g| format!("{g}! ")).unwrap_or_default();
        let announcement = format!(
            "{greeting}Ding dong{place}: it is {} UTC.",
            at.format("%H:%M")
        );
        log::info(&announcement);
        Ok(Announcement {
            announcement,
            scheduled_time: rfc3339(at),
            now: rfc3339(Utc::now()),
        })
    }

    fn play_quarter_chime(
        &mut self,
        ctx: &JobContext,
        p: QuarterParams,
    ) -> Result<Chime, HandlerError> {
        self.calls += 1;
        let quarter = match p.quarter {
            Some(q @ 1..=4) => q,
            Some(q) => {
                return Err(HandlerError::invalid_params(format!(
                    "quarter must be 1 to 4, not {q}"
                )));
            }
            None => match scheduled(ctx).minute() / 15 {
                0 => 4,
                q => q as u8,
            },
        };
        let changes = QUARTERS[usize::from(quarter - 1)];
        let sound = changes
            .iter()
            .map(|&c| CHANGES[c])
            .collect::<Vec<_>>()
            .join(" | ");
        let log_length = self.record(ctx, format!("quarter {quarter}: {sound}"));
        log::debug(format!("played quarter {quarter}"));
        Ok(Chime {
            sound,
            strikes: changes.len(),
            log_length,
        })
    }

    fn play_hour_bongs(&mut self, ctx: &JobContext, p: HourParams) -> Result<Chime, HandlerError> {
        self.calls += 1;
        let hour = match p.hour {
            Some(h @ 0..=23) => h,
            Some(h) => {
                return Err(HandlerError::invalid_params(format!(
                    "hour must be 0 to 23, not {h}"
                )));
            }
            None => scheduled(ctx).hour() as u8,
        };
        let strikes = match hour % 12 {
            0 => 12,
            h => usize::from(h),
        };
        let sound = vec!["BONG"; strikes].join(" ");
        let log_length = self.record(ctx, format!("hour {hour}: {sound}"));
        Ok(Chime {
            sound,
            strikes,
            log_length,
        })
    }

    fn get_chime_log(&mut self, _ctx: &JobContext, _: ()) -> Result<ChimeLog, HandlerError> {
        self.calls += 1;
        Ok(ChimeLog {
            entries: self.log.clone(),
            instance_calls: self.calls,
        })
    }

    fn clear_log(&mut self, _ctx: &JobContext, _: ()) -> Result<Cleared, HandlerError> {
        self.calls += 1;
        let cleared = self.log.len();
        self.log.clear();
        Ok(Cleared { cleared })
    }

    fn echo(&mut self, _ctx: &JobContext, params: Value) -> Result<Value, HandlerError> {
        self.calls += 1;
        Ok(params)
    }
}

impl Handler for DingDong {
    const NAME: &'static str = "ding-dong";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "A clock that chimes the Westminster quarters and strikes the hours, keeping a log of what it played.";
    const CAPABILITIES: Capabilities = Capabilities {
        config: &[Setting::value(
            "location",
            "Where the clock stands, named in its announcements.",
        )],
        ..Capabilities::NONE
    };

    fn methods(m: &mut Methods<Self>) {
        m.method(
            "ping",
            "Answers pong; shows how many calls this instance has served.",
            Self::ping,
        )
        .method(
            "announce_time",
            "Announces the scheduled time (and the granted `location`).",
            Self::announce_time,
        )
        .method(
            "play_quarter_chime",
            "Plays the Westminster chime for a quarter hour.",
            Self::play_quarter_chime,
        )
        .method(
            "play_hour_bongs",
            "Strikes the hour: one BONG per hour on a 12-hour dial.",
            Self::play_hour_bongs,
        )
        .method(
            "get_chime_log",
            "Returns what this instance has played so far.",
            Self::get_chime_log,
        )
        .method("clear_log", "Empties the chime log.", Self::clear_log)
        .method("echo", "Returns its params unchanged.", Self::echo);
    }
}

fn scheduled(ctx: &JobContext) -> DateTime<Utc> {
    DateTime::<Utc>::from(ctx.scheduled_time)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

export_handler!(DingDong);
