-- The PostgreSQL schema: the same tables as SQLite's migrations 0001 to 0007 at their
-- latest, in PostgreSQL's types. Never edit a migration after it lands; add a new one.
-- Integers are BIGINT throughout (the code reads them as i64); times are RFC 3339 text,
-- like SQLite's, except the lease and retry clocks, which are unix numbers.

CREATE TABLE subscriptions (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint              TEXT   NOT NULL UNIQUE,
    p256dh                BYTEA  NOT NULL,            -- 65-byte uncompressed P-256 point
    auth                  BYTEA  NOT NULL,            -- 16-byte secret
    expiration_time       BIGINT,                     -- ms since epoch, as the browser gave it
    vapid_key_fingerprint TEXT   NOT NULL,
    user_agent            TEXT,
    created_at            TEXT   NOT NULL,
    updated_at            TEXT   NOT NULL,
    last_success_at       TEXT,
    failure_count         BIGINT NOT NULL DEFAULT 0,
    client_hash           TEXT,                       -- keyed hash of the creating address
    vapid_refusals        BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX subscriptions_client_hash ON subscriptions (client_hash) WHERE client_hash IS NOT NULL;

-- The number of stored subscriptions, kept by triggers, so no request counts the table.
-- Spread over 16 slots (by id) so that instances inserting at once do not queue on one
-- row; the count is their sum. The triggers run once per statement, so a bulk insert
-- or delete updates each slot once.
CREATE TABLE subscription_count (
    id     INTEGER PRIMARY KEY CHECK (id BETWEEN 0 AND 15),
    stored BIGINT  NOT NULL
);
INSERT INTO subscription_count (id, stored) SELECT slot, 0 FROM generate_series(0, 15) AS slot;

CREATE FUNCTION count_inserted_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscription_count c SET stored = c.stored + n.rows
    FROM (SELECT id % 16 AS slot, COUNT(*) AS rows FROM inserted GROUP BY 1) n WHERE c.id = n.slot;
    RETURN NULL;
END $$;

CREATE FUNCTION count_deleted_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscription_count c SET stored = c.stored - n.rows
    FROM (SELECT id % 16 AS slot, COUNT(*) AS rows FROM deleted GROUP BY 1) n WHERE c.id = n.slot;
    RETURN NULL;
END $$;

CREATE TRIGGER subscription_counted AFTER INSERT ON subscriptions
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_subscriptions();
CREATE TRIGGER subscription_uncounted AFTER DELETE ON subscriptions
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_subscriptions();

CREATE TABLE broadcasts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload          TEXT   NOT NULL,
    ttl              BIGINT NOT NULL,
    urgency          TEXT   CHECK (urgency IN ('very-low', 'low', 'normal', 'high')),
    topic            TEXT,
    target_endpoint  TEXT,
    status           TEXT   NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'done')),
    last_id          BIGINT,                          -- highest subscription id in scope, fixed at start
    cursor           BIGINT NOT NULL DEFAULT 0,
    total            BIGINT NOT NULL DEFAULT 0,
    delivered        BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    removed          BIGINT NOT NULL DEFAULT 0,
    retried          BIGINT NOT NULL DEFAULT 0,
    clicks           BIGINT NOT NULL DEFAULT 0,
    failures         JSONB  NOT NULL DEFAULT '{}',    -- reason -> count
    stopped_origins  JSONB  NOT NULL DEFAULT '{}',    -- origin -> why sending to it stopped
    lease_owner      TEXT,
    lease_until      BIGINT,                          -- unix seconds
    lease_epoch      BIGINT NOT NULL DEFAULT 0,       -- fencing token: bumped by every claim
    created_at       TEXT   NOT NULL,
    started_at       TEXT,
    finished_at      TEXT
);

CREATE INDEX broadcasts_unfinished ON broadcasts (id) WHERE status <> 'done';

-- A broadcast is split into ranges of subscription ids when it starts; any instance
-- claims a range (FOR UPDATE SKIP LOCKED) under a lease with a fencing epoch.
CREATE TABLE broadcast_ranges (
    broadcast_id BIGINT  NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    range_no     BIGINT  NOT NULL,
    after_id     BIGINT  NOT NULL,            -- the range holds ids in (after_id, last_id]
    last_id      BIGINT  NOT NULL,
    cursor       BIGINT  NOT NULL,            -- highest id whose outcome is committed
    done         BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner  TEXT,
    lease_until  BIGINT,                      -- unix seconds
    lease_epoch  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, range_no)
);

CREATE INDEX broadcast_ranges_open ON broadcast_ranges (broadcast_id, range_no) WHERE NOT done;

CREATE TABLE broadcast_retries (
    broadcast_id    BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    subscription_id BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,   -- sends made so far
    not_before      BIGINT NOT NULL,   -- unix milliseconds
    range_no        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (broadcast_id, subscription_id)
);

CREATE INDEX broadcast_retries_range_due ON broadcast_retries (broadcast_id, range_no, not_before);

-- A push service's Retry-After, shared: every instance waits it out, in every broadcast.
CREATE TABLE origin_holds (
    origin   TEXT   PRIMARY KEY,
    until_ms BIGINT NOT NULL     -- unix milliseconds
);

CREATE TABLE admin_sessions (
    token_hash  TEXT   PRIMARY KEY,
    admin_tag   TEXT,
    created_at  TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL    -- unix seconds
);

-- What every instance sharing this database must agree on, by fingerprint or hash (never
-- the secret itself): the VAPID key and the admin token.
CREATE TABLE deployment_keys (
    name        TEXT PRIMARY KEY CHECK (name IN ('vapid_key', 'admin_token')),
    fingerprint TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
