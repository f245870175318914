"""ding-dong-py: the ding-dong clock, in Python.

The methods of ScheduleZero's ding-dong test handler, as a ScheduleZero user would move them over:
the same names, the same params and results, the same chime log kept in the instance's memory
(so it shows when the host reuses a hot instance, and starts empty in a fresh one). What
changed: the class names its handler, each method is marked with `@method`, and its keyword
parameters (with their type hints) are the params it accepts, checked before it runs.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from schedulezero import Handler, InvalidParams, JobContext, Setting, config, log, method

# Westminster quarters, as the notes of the four changes played at each quarter.
CHANGES = ["G# F# E B", "E G# F# B", "E F# G# E", "G# E F# B", "B F# G# E"]
# Which changes ring at quarter 1, 2, 3 and 4 (the full hour).
QUARTERS = [[0], [1, 2], [3, 4, 0], [1, 2, 3, 4]]
# The most entries kept in the log; older ones are dropped first.
LOG_CAPACITY = 1000


def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DingDong(
    Handler,
    name="ding-dong-py",
    version="0.1.0",
    description="A clock that chimes the Westminster quarters and strikes the hours, keeping a log of what it played (in Python).",
    config=[Setting("location", "Where the clock stands, named in its announcements.")],
):
    def __init__(self) -> None:
        self.log: list[dict[str, str]] = []
        self.calls = 0

    def record(self, ctx: JobContext, sound: str) -> int:
        if len(self.log) == LOG_CAPACITY:
            self.log.pop(0)
        self.log.append({"run_id": ctx.run_id, "scheduled_time": rfc3339(ctx.scheduled_time), "sound": sound})
        return len(self.log)

    @method
    def ping(self) -> dict[str, Any]:
        """Answers pong; shows how many calls this instance has served."""
        self.calls += 1
        return {"pong": True, "handler": "ding-dong-py", "instance_calls": self.calls}

    @method
    def announce_time(
        self, ctx: JobContext, greeting: Annotated[str | None, 'Words to put before the time, such as "Good morning".'] = None
    ) -> dict[str, str]:
        """Announces the scheduled time (and the granted `location`)."""
        self.calls += 1
        location = config.get("location")
        place = f" from {location}" if location else ""
        words = f"{greeting}! " if greeting else ""
        at = ctx.scheduled_time
        announcement = f"{words}Ding dong{place}: it is {at:%H:%M} UTC."
        log.info(announcement)
        now = datetime.datetime.now(datetime.timezone.utc)
        return {"announcement": announcement, "scheduled_time": rfc3339(at), "now": rfc3339(now)}

    @method
    def play_quarter_chime(
        self,
        ctx: JobContext,
        quarter: Annotated[int | None, "1, 2, 3 or 4 (4 is the full hour); defaults to the quarter of the scheduled time."] = None,
    ) -> dict[str, Any]:
        """Plays the Westminster chime for a quarter hour."""
        self.calls += 1
        if quarter is None:
            quarter = ctx.scheduled_time.minute // 15 or 4
        elif not 1 <= quarter <= 4:
            raise InvalidParams(f"quarter must be 1 to 4, not {quarter}")
        changes = QUARTERS[quarter - 1]
        sound = " | ".join(CHANGES[c] for c in changes)
        length = self.record(ctx, f"quarter {quarter}: {sound}")
        log.debug(f"played quarter {quarter}")
        return {"sound": sound, "strikes": len(changes), "log_length": length}

    @method
    def play_hour_bongs(
        self,
        ctx: JobContext,
        hour: Annotated[int | None, "The hour to strike, 0 to 23; defaults to the hour of the scheduled time (UTC)."] = None,
    ) -> dict[str, Any]:
        """Strikes the hour: one BONG per hour on a 12-hour dial."""
        self.calls += 1
        if hour is None:
            hour = ctx.scheduled_time.hour
        elif not 0 <= hour <= 23:
            raise InvalidParams(f"hour must be 0 to 23, not {hour}")
        strikes = hour % 12 or 12
        sound = " ".join(["BONG"] * strikes)
        length = self.record(ctx, f"hour {hour}: {sound}")
        return {"sound": sound, "strikes": strikes, "log_length": length}

    @method
    def get_chime_log(self) -> dict[str, Any]:
        """Returns what this instance has played so far."""
        self.calls += 1
        return {"entries": list(self.log), "instance_calls": self.calls}

    @method
    def clear_log(self) -> dict[str, int]:
        """Empties the chime log."""
        self.calls += 1
        cleared = len(self.log)
        self.log.clear()
        return {"cleared": cleared}

    @method
    def echo(self, params: Any) -> Any:
        """Returns its params unchanged."""
        self.calls += 1
        return params
