-- A site's VAPID keys: one current (new subscriptions are made with it) and older ones
-- that keep signing pushes to the subscriptions bound to them (by fingerprint). Never
-- edit a migration after it lands; add a new one.
--
-- `sealed_private_key` is the private key under AES-256-GCM with the master key
-- (`CLARION_MASTER_KEY` or `<data-dir>/master_key`, never in the database); NULL for the
-- key each instance has from its own configuration (`CLARION_VAPID_PRIVATE_KEY` or
-- `<data-dir>/vapid_private.pem`). A retired key keeps its row, so a configured key
-- that was retired is not made current again by the next start.
CREATE TABLE vapid_keys (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    site                TEXT    NOT NULL DEFAULT 'default',
    fingerprint         TEXT    NOT NULL UNIQUE,
    public_key          TEXT    NOT NULL,              -- base64url, 65-byte uncompressed point
    sealed_private_key  TEXT,
    is_current          INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT    NOT NULL,
    retired_at          TEXT
);

CREATE UNIQUE INDEX vapid_keys_one_current ON vapid_keys (site) WHERE is_current = 1;
-- Counting a key's subscriptions, and retiring it.
CREATE INDEX subscriptions_vapid_key ON subscriptions (vapid_key_fingerprint);
