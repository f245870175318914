-- Runs: one row per scheduled fire time of a schedule. The UNIQUE key makes a fire time run at
-- most once, whichever host claims it and however often it is retried or recovered.
CREATE TABLE runs (
    id          TEXT   NOT NULL PRIMARY KEY,
    schedule_id TEXT   NOT NULL,
    fire_us     BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    created_us  BIGINT NOT NULL,
    updated_us  BIGINT NOT NULL,
    UNIQUE (schedule_id, fire_us)
);

CREATE INDEX runs_by_status ON runs (status, fire_us);
