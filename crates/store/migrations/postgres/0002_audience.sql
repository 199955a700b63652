-- Audience: topics a subscription chose, the user a signed-in site vouched for, when a
-- subscription was last seen, scheduled and cancelled broadcasts, and who a broadcast
-- targets. The same tables as SQLite's migration 0008.
ALTER TABLE broadcasts DROP CONSTRAINT broadcasts_status_check;
ALTER TABLE broadcasts ADD CONSTRAINT broadcasts_status_check
    CHECK (status IN ('scheduled', 'queued', 'sending', 'done', 'cancelled'));
ALTER TABLE broadcasts
    ADD COLUMN send_at      BIGINT,                        -- unix seconds; set for a scheduled send
    ADD COLUMN audience     JSONB,                         -- {"topics"?, "users"?}; NULL: everyone
    ADD COLUMN by_topics    BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN by_users     BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN cancelled_at TEXT;
DROP INDEX broadcasts_unfinished;
CREATE INDEX broadcasts_unfinished ON broadcasts (id) WHERE status IN ('scheduled', 'queued', 'sending');

CREATE TABLE broadcast_topics (
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    topic        TEXT   NOT NULL,
    PRIMARY KEY (broadcast_id, topic)
);
CREATE TABLE broadcast_users (
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    user_id      TEXT   NOT NULL,
    PRIMARY KEY (broadcast_id, user_id)
);

CREATE TABLE topics (
    name        TEXT    PRIMARY KEY,
    label       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TEXT    NOT NULL
);
CREATE TABLE subscription_topics (
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    topic           TEXT   NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    PRIMARY KEY (subscription_id, topic)
);
CREATE INDEX subscription_topics_by_topic ON subscription_topics (topic, subscription_id);

ALTER TABLE subscriptions ADD COLUMN user_id TEXT, ADD COLUMN last_seen_at TEXT;
UPDATE subscriptions SET last_seen_at = updated_at;
CREATE INDEX subscriptions_user ON subscriptions (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX subscriptions_last_seen ON subscriptions (last_seen_at);

CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
