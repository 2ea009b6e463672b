-- Schema 1: sessions, their messages, scenarios and request lifecycle
-- summaries, plus the marker for a WAL truncation still owed after a delete.
-- Applied once, in one transaction, by src/store/migrate.rs; never edit a
-- shipped migration: add 0002_*.sql (and a tests/fixtures/store/v2.sqlite).

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    kb          TEXT,
    model       TEXT,
    settings    TEXT -- json
);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    role        TEXT NOT NULL,  -- user|assistant
    text        TEXT NOT NULL,
    status      TEXT NOT NULL,  -- sent|unsent|running|done|incomplete|cancelled|failed
    detail      TEXT,           -- failure reason or no-lore reason
    backend     TEXT,
    passages    TEXT,           -- json snapshot of the cited passages
    request_id  TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    timings     TEXT,           -- json
    UNIQUE (session_id, seq)
);

CREATE TABLE scenarios (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    prompt      TEXT,
    seed        TEXT,           -- u64 as text
    title       TEXT,
    markdown    TEXT,
    sources     TEXT,           -- json
    status      TEXT,
    created_ms  INTEGER NOT NULL,
    UNIQUE (session_id, seq)
);

CREATE TABLE requests (
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,  -- ULID
    parent      TEXT,
    kind        TEXT,
    backend     TEXT,
    outcome     TEXT,
    detail      TEXT,
    attempts    INTEGER,
    created_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    events      TEXT,           -- json
    PRIMARY KEY (session_id, id)
);

-- Trimming to the per-session bound and loading the newest requests walk this.
CREATE INDEX requests_by_age ON requests (session_id, created_ms, id);

-- One row while a deleted session's text may still sit in the write-ahead
-- log (another connection kept the log from being truncated).
CREATE TABLE pending_truncation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    since_ms    INTEGER NOT NULL
);
