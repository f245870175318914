-- The hosts (nodes) working on this store, and which of them holds each unfinished run. A node
-- is one process: its id is fresh at every start. SQLite has one node at a time; the columns
-- are the same as PostgreSQL's so one set of queries serves both.
CREATE TABLE nodes (
    id           TEXT   NOT NULL PRIMARY KEY,
    name         TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    address      TEXT,
    pid          BIGINT NOT NULL,
    -- The plugins it can run (a JSON array of names).
    plugins      TEXT   NOT NULL,
    in_flight    BIGINT NOT NULL DEFAULT 0,
    -- Its clock minus the database's, at its last heartbeat.
    skew_us      BIGINT NOT NULL DEFAULT 0,
    started_us   BIGINT NOT NULL,
    heartbeat_us BIGINT NOT NULL,
    -- Set when it stopped cleanly.
    stopped_us   BIGINT
);

-- The node that holds a run (claimed it, or took it over), until when (the database's clock),
-- and how many times it changed hands: a write about the run by a node that no longer holds
-- it, with the fence it was given, is refused.
ALTER TABLE runs ADD COLUMN node TEXT;
ALTER TABLE runs ADD COLUMN lease_us BIGINT;
ALTER TABLE runs ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;

-- The node that ran an attempt.
ALTER TABLE executions ADD COLUMN node TEXT;
