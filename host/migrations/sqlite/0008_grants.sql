-- What the operator granted each plugin: one row per (plugin, kind, name), kind being http,
-- directory, config or secret, name the destination, directory name or key. `spec` is the grant
-- as JSON; a secret is stored as its reference (env:NAME, file:PATH), never its value.
CREATE TABLE grants (
    plugin TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_us BIGINT NOT NULL,
    PRIMARY KEY (plugin, kind, name)
);

-- Every change to grants, with who made it and when.
CREATE TABLE grant_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin TEXT NOT NULL,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    detail TEXT,
    actor TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX grant_events_by_plugin ON grant_events (plugin, id);
