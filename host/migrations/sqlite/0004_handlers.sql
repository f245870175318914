-- Handlers the host knows: its WebAssembly plugins (synced from the plugins folder) and remote
-- handlers (registered over ZeroMQ, kept so they survive a host restart). Methods are a JSON
-- array of names.
CREATE TABLE handlers (
    id            TEXT   NOT NULL PRIMARY KEY,
    kind          TEXT   NOT NULL,
    address       TEXT,
    version       TEXT,
    methods       TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    registered_us BIGINT NOT NULL,
    updated_us    BIGINT NOT NULL
);
