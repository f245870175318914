-- Schedules: what to run (handler, method, params), when (trigger), and how (policy).
-- Times are microseconds since the Unix epoch, UTC (BIGINT in PostgreSQL too); JSON is text.
CREATE TABLE schedules (
    id           TEXT    NOT NULL PRIMARY KEY,
    handler_id   TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    trigger_spec TEXT    NOT NULL,
    policy       TEXT    NOT NULL,
    paused       BOOLEAN NOT NULL DEFAULT FALSE,
    -- The next fire time; NULL once the trigger has no more (a date trigger that ran).
    next_fire_us BIGINT,
    created_us   BIGINT  NOT NULL,
    updated_us   BIGINT  NOT NULL
);

-- The scheduler's question: which active schedules are due, soonest first.
CREATE INDEX schedules_due ON schedules (next_fire_us) WHERE paused = FALSE AND next_fire_us IS NOT NULL;
CREATE INDEX schedules_handler ON schedules (handler_id, id);
