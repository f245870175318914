-- The execution log: one row per attempt of a run, written when the attempt starts and
-- completed when it ends. Ids grow with insertion, so "newest first" is "highest id first".
CREATE TABLE executions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT    NOT NULL,
    job_id         TEXT    NOT NULL,
    handler_id     TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    attempt        INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    started_us     BIGINT  NOT NULL,
    completed_us   BIGINT,
    duration_us    BIGINT,
    result         TEXT,
    error_code     TEXT,
    error          TEXT,
    params_summary TEXT,
    instance       TEXT
);

CREATE INDEX executions_by_job ON executions (job_id, id);
CREATE INDEX executions_by_handler ON executions (handler_id, id);
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_run ON executions (run_id, attempt);
CREATE INDEX executions_by_start ON executions (started_us);

-- Counts that outlive the rows they count (the log is pruned and can be cleared).
CREATE TABLE counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('lifetime_executions', 0);
