-- Sites: one Clarion serves many, each with its own VAPID keys, origins, identity secret,
-- topics and quotas. The same tables as SQLite's migration 0013. Everything stored before
-- belongs to the site `default`, which the CLARION_* settings keep configuring.
CREATE TABLE sites (
    name                          TEXT   PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 40),
    vapid_subject                 TEXT,
    origins                       TEXT   NOT NULL DEFAULT '[]',
    sealed_identity_secret        TEXT,
    max_subscriptions             BIGINT,
    max_subscriptions_per_client  BIGINT,
    created_at                    TEXT   NOT NULL,
    updated_at                    TEXT   NOT NULL
);
INSERT INTO sites (name, created_at, updated_at)
VALUES ('default', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));

ALTER TABLE subscriptions ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX subscriptions_site ON subscriptions (site, id);
ALTER TABLE broadcasts ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX broadcasts_site ON broadcasts (site, id);

-- The site a console session works on (its site switcher); NULL: default.
ALTER TABLE admin_sessions ADD COLUMN site TEXT;

-- The kept count, per site, still spread over 16 slots a site (by id) so instances
-- inserting at once do not queue on one row. A new site gets its slots when it is made.
ALTER TABLE subscription_count ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
ALTER TABLE subscription_count DROP CONSTRAINT subscription_count_pkey;
ALTER TABLE subscription_count ADD PRIMARY KEY (site, id);

CREATE OR REPLACE FUNCTION count_inserted_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscription_count c SET stored = c.stored + n.rows
    FROM (SELECT site, id % 16 AS slot, COUNT(*) AS rows FROM inserted GROUP BY 1, 2) n WHERE c.site = n.site AND c.id = n.slot;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION count_deleted_subscriptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE subscription_count c SET stored = c.stored - n.rows
    FROM (SELECT site, id % 16 AS slot, COUNT(*) AS rows FROM deleted GROUP BY 1, 2) n WHERE c.site = n.site AND c.id = n.slot;
    RETURN NULL;
END $$;

-- Topics are a site's: the same name on two sites is two topics.
ALTER TABLE subscription_topics DROP CONSTRAINT subscription_topics_topic_fkey;
ALTER TABLE topics ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
ALTER TABLE topics DROP CONSTRAINT topics_pkey;
ALTER TABLE topics ADD PRIMARY KEY (site, name);
ALTER TABLE subscription_topics ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
ALTER TABLE subscription_topics ADD CONSTRAINT subscription_topics_topic_fkey
    FOREIGN KEY (site, topic) REFERENCES topics (site, name) ON DELETE CASCADE;
DROP INDEX subscription_topics_by_topic;
CREATE INDEX subscription_topics_by_topic ON subscription_topics (site, topic, subscription_id);
