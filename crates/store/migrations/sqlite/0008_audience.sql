-- Audience: topics a subscription chose, the user a signed-in site vouched for, when a
-- subscription was last seen, scheduled and cancelled broadcasts, and who a broadcast
-- targets. SQLite cannot change a CHECK constraint, so the broadcasts table is rebuilt
-- the documented way: create the new table, copy, drop the old, rename the new. Migrations
-- run on a connection with foreign keys off (see `Store::connect`), so dropping the old
-- table does not cascade to the ranges and retries that refer to "broadcasts".
CREATE TABLE broadcasts_next (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    payload          TEXT    NOT NULL,
    ttl              INTEGER NOT NULL,
    urgency          TEXT,
    topic            TEXT,
    target_endpoint  TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('scheduled', 'queued', 'sending', 'done', 'cancelled')),
    last_id          INTEGER,
    cursor           INTEGER NOT NULL DEFAULT 0,
    total            INTEGER NOT NULL DEFAULT 0,
    delivered        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    failures         TEXT    NOT NULL DEFAULT '{}',
    lease_owner      TEXT,
    lease_until      INTEGER,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    retried          INTEGER NOT NULL DEFAULT 0,
    stopped_origins  TEXT    NOT NULL DEFAULT '{}',
    clicks           INTEGER NOT NULL DEFAULT 0,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    send_at          INTEGER,                     -- unix seconds; set for a scheduled send
    audience         TEXT,                        -- JSON {"topics"?, "users"?}; NULL: everyone
    by_topics        INTEGER NOT NULL DEFAULT 0,  -- the scope is filtered by broadcast_topics
    by_users         INTEGER NOT NULL DEFAULT 0,  -- the scope is filtered by broadcast_users
    cancelled_at     TEXT
);
INSERT INTO broadcasts_next (id, payload, ttl, urgency, topic, target_endpoint, status, last_id, cursor, total,
    delivered, failed, removed, failures, lease_owner, lease_until, created_at, started_at, finished_at,
    retried, stopped_origins, clicks, lease_epoch)
SELECT id, payload, ttl, urgency, topic, target_endpoint, status, last_id, cursor, total,
    delivered, failed, removed, failures, lease_owner, lease_until, created_at, started_at, finished_at,
    retried, stopped_origins, clicks, lease_epoch FROM broadcasts;
DROP TABLE broadcasts;
ALTER TABLE broadcasts_next RENAME TO broadcasts;
CREATE INDEX broadcasts_unfinished ON broadcasts (status) WHERE status IN ('scheduled', 'queued', 'sending');

-- Who a targeted broadcast reaches, as rows its pages join against.
CREATE TABLE broadcast_topics (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    topic        TEXT    NOT NULL,
    PRIMARY KEY (broadcast_id, topic)
);
CREATE TABLE broadcast_users (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL,
    PRIMARY KEY (broadcast_id, user_id)
);

CREATE TABLE topics (
    name        TEXT    PRIMARY KEY,
    label       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL
);
CREATE TABLE subscription_topics (
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    topic           TEXT    NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    PRIMARY KEY (subscription_id, topic)
);
CREATE INDEX subscription_topics_by_topic ON subscription_topics (topic, subscription_id);

ALTER TABLE subscriptions ADD COLUMN user_id TEXT;
ALTER TABLE subscriptions ADD COLUMN last_seen_at TEXT;
UPDATE subscriptions SET last_seen_at = updated_at;
CREATE INDEX subscriptions_user ON subscriptions (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX subscriptions_last_seen ON subscriptions (last_seen_at);

-- Running totals of housekeeping (idle subscriptions removed).
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
