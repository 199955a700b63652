-- Sites: one Clarion serves many, each with its own VAPID keys, origins, identity secret,
-- topics and quotas. Everything stored before belongs to the site `default`, which the
-- CLARION_* settings keep configuring. Never edit a migration after it lands; add a new one.
--
-- `sealed_identity_secret` is sealed under the master key (never in the database in
-- clear); NULL: the site takes no identity tokens (for `default`: CLARION_IDENTITY_SECRET).
-- `vapid_subject` NULL: CLARION_VAPID_SUBJECT. `origins` is a JSON array of origins.
CREATE TABLE sites (
    name                          TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 40),
    vapid_subject                 TEXT,
    origins                       TEXT    NOT NULL DEFAULT '[]',
    sealed_identity_secret        TEXT,
    max_subscriptions             INTEGER,
    max_subscriptions_per_client  INTEGER,
    created_at                    TEXT    NOT NULL,
    updated_at                    TEXT    NOT NULL
);
INSERT INTO sites (name, created_at, updated_at)
VALUES ('default', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

-- A subscription and a broadcast belong to one site. A broadcast's pages read a site's
-- subscriptions in id order.
ALTER TABLE subscriptions ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX subscriptions_site ON subscriptions (site, id);
ALTER TABLE broadcasts ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX broadcasts_site ON broadcasts (site, id);

-- The site a console session works on (its site switcher); NULL: default.
ALTER TABLE admin_sessions ADD COLUMN site TEXT;

-- The kept count, per site: one row a site (a new site gets its row when it is made).
CREATE TABLE subscription_count_next (
    site   TEXT    PRIMARY KEY,
    stored INTEGER NOT NULL
);
INSERT INTO subscription_count_next (site, stored) SELECT 'default', COUNT(*) FROM subscriptions;
DROP TRIGGER subscription_counted;
DROP TRIGGER subscription_uncounted;
DROP TABLE subscription_count;
ALTER TABLE subscription_count_next RENAME TO subscription_count;
CREATE TRIGGER subscription_counted AFTER INSERT ON subscriptions
BEGIN
    UPDATE subscription_count SET stored = stored + 1 WHERE site = NEW.site;
END;
CREATE TRIGGER subscription_uncounted AFTER DELETE ON subscriptions
BEGIN
    UPDATE subscription_count SET stored = stored - 1 WHERE site = OLD.site;
END;

-- Topics are a site's: the same name on two sites is two topics. SQLite cannot change a
-- primary key, so both tables are rebuilt; the child goes first, so dropping the parent
-- cascades to nothing, and renaming the new parent updates the child's reference.
CREATE TABLE topics_next (
    site        TEXT    NOT NULL DEFAULT 'default',
    name        TEXT    NOT NULL,
    label       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (site, name)
);
INSERT INTO topics_next (site, name, label, description, is_default, created_at)
SELECT 'default', name, label, description, is_default, created_at FROM topics;
CREATE TABLE subscription_topics_next (
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    site            TEXT    NOT NULL DEFAULT 'default',
    topic           TEXT    NOT NULL,
    PRIMARY KEY (subscription_id, topic),
    FOREIGN KEY (site, topic) REFERENCES topics_next (site, name) ON DELETE CASCADE
);
INSERT INTO subscription_topics_next (subscription_id, site, topic) SELECT subscription_id, 'default', topic FROM subscription_topics;
DROP TABLE subscription_topics;
DROP TABLE topics;
ALTER TABLE topics_next RENAME TO topics;
ALTER TABLE subscription_topics_next RENAME TO subscription_topics;
CREATE INDEX subscription_topics_by_topic ON subscription_topics (site, topic, subscription_id);
