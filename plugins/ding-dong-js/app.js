// ding-dong-js: the ding-dong clock, in JavaScript.
//
// The methods of ScheduleZero's ding-dong test handler with the same names, params and results,
// and the chime log kept in the instance's state (it grows while the host reuses a hot
// instance, and starts empty in a fresh one).

import { handler, method, p, config, log, InvalidParams, Setting } from "@schedulezero/sdk";

// Westminster quarters, as the notes of the four changes played at each quarter.
const CHANGES = ["G# F# E B", "E G# F# B", "E F# G# E", "G# E F# B", "B F# G# E"];
// Which changes ring at quarter 1, 2, 3 and 4 (the full hour).
const QUARTERS = [[0], [1, 2], [3, 4, 0], [1, 2, 3, 4]];
// The most entries kept in the log; older ones are dropped first.
const LOG_CAPACITY = 1000;

const rfc3339 = (t) => t.toISOString();
const hhmm = (t) => t.toISOString().slice(11, 16);

function record(state, ctx, sound) {
  if (state.log.length === LOG_CAPACITY) state.log.shift();
  state.log.push({ run_id: ctx.runId, scheduled_time: rfc3339(ctx.scheduledTime), sound });
  return state.log.length;
}

export default handler({
  name: "ding-dong-js",
  version: "0.1.0",
  description:
    "A clock that chimes the Westminster quarters and strikes the hours, keeping a log of what it played (in JavaScript).",
  config: [Setting("location", "Where the clock stands, named in its announcements.")],
  state: () => ({ log: [], calls: 0 }),
  methods: {
    ping: method("Answers pong; shows how many calls this instance has served.", function () {
      this.calls += 1;
      return { pong: true, handler: "ding-dong-js", instance_calls: this.calls };
    }),

    announce_time: method(
      "Announces the scheduled time (and the granted `location`).",
      { greeting: p.string('Words to put before the time, such as "Good morning".').optional() },
      function (ctx, { greeting }) {
        this.calls += 1;
        const location = config.get("location");
        const place = location ? ` from ${location}` : "";
        const words = greeting ? `${greeting}! ` : "";
        const announcement = `${words}Ding dong${place}: it is ${hhmm(ctx.scheduledTime)} UTC.`;
        log.info(announcement);
        return { announcement, scheduled_time: rfc3339(ctx.scheduledTime), now: rfc3339(new Date()) };
      },
    ),

    play_quarter_chime: method(
      "Plays the Westminster chime for a quarter hour.",
      { quarter: p.integer("1, 2, 3 or 4 (4 is the full hour); defaults to the quarter of the scheduled time.").optional() },
      function (ctx, { quarter }) {
        this.calls += 1;
        if (quarter === undefined) quarter = Math.floor(ctx.scheduledTime.getUTCMinutes() / 15) || 4;
        else if (quarter < 1 || quarter > 4) throw new InvalidParams(`quarter must be 1 to 4, not ${quarter}`);
        const changes = QUARTERS[quarter - 1];
        const sound = changes.map((c) => CHANGES[c]).join(" | ");
        const logLength = record(this, ctx, `quarter ${quarter}: ${sound}`);
        log.debug(`played quarter ${quarter}`);
        return { sound, strikes: changes.length, log_length: logLength };
      },
    ),

    play_hour_bongs: method(
      "Strikes the hour: one BONG per hour on a 12-hour dial.",
      { hour: p.integer("The hour to strike, 0 to 23; defaults to the hour of the scheduled time (UTC).").optional() },
      function (ctx, { hour }) {
        this.calls += 1;
        if (hour === undefined) hour = ctx.scheduledTime.getUTCHours();
        else if (hour < 0 || hour > 23) throw new InvalidParams(`hour must be 0 to 23, not ${hour}`);
        const strikes = hour % 12 || 12;
        const sound = Array(strikes).fill("BONG").join(" ");
        const logLength = record(this, ctx, `hour ${hour}: ${sound}`);
        return { sound, strikes, log_length: logLength };
      },
    ),

    get_chime_log: method("Returns what this instance has played so far.", function () {
      this.calls += 1;
      return { entries: [...this.log], instance_calls: this.calls };
    }),

    clear_log: method("Empties the chime log.", function () {
      this.calls += 1;
      const cleared = this.log.length;
      this.log.length = 0;
      return { cleared };
    }),

    echo: method("Returns its params unchanged.", p.any(), function (_ctx, params) {
      this.calls += 1;
      return params;
    }),
  },
});
