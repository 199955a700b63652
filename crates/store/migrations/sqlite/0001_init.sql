-- Subscriptions and the broadcast ledger. Never edit a migration after it lands; add a new one.

CREATE TABLE subscriptions (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint              TEXT    NOT NULL UNIQUE,
    p256dh                BLOB    NOT NULL,            -- 65-byte uncompressed P-256 point
    auth                  BLOB    NOT NULL,            -- 16-byte secret
    expiration_time       INTEGER,                     -- ms since epoch, as the browser gave it
    vapid_key_fingerprint TEXT    NOT NULL,            -- which VAPID key the subscription is bound to
    user_agent            TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    last_success_at       TEXT,
    failure_count         INTEGER NOT NULL DEFAULT 0
);

-- A broadcast is recorded before the API answers 202; a worker then walks the
-- subscriptions in id order. `cursor` is the highest subscription id whose outcome is
-- committed, so a restarted worker resumes after it.
CREATE TABLE broadcasts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    payload          TEXT    NOT NULL,
    ttl              INTEGER NOT NULL,
    urgency          TEXT,
    topic            TEXT,
    target_endpoint  TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'done')),
    last_id          INTEGER,                          -- highest subscription id in scope, fixed at start
    cursor           INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL DEFAULT 0,
    delivered        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    failures         TEXT    NOT NULL DEFAULT '{}',    -- JSON object: reason -> count
    lease_owner      TEXT,
    lease_until      INTEGER,                          -- unix seconds
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);

CREATE INDEX broadcasts_unfinished ON broadcasts (status) WHERE status != 'done';
