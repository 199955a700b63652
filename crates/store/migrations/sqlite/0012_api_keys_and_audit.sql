-- API keys with scopes, and the audit log of every write made with a key or the admin
-- token. Never edit a migration after it lands; add a new one.
--
-- A key's secret is never stored: only its SHA-256 (the secret is 256 random bits, so a
-- stretched hash would add nothing). `site` NULL: the key applies to every site.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    site          TEXT,
    scopes        TEXT    NOT NULL,                    -- comma-separated: read,send,audience,admin
    secret_hash   TEXT    NOT NULL UNIQUE,
    created_at    TEXT    NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT
);

-- Append-only through Clarion: there is no way to edit or delete an entry, except the
-- retention sweep (CLARION_AUDIT_RETENTION_DAYS). Never a secret, a token or keys.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,
    key_id    INTEGER,                                 -- NULL: the admin token
    key_name  TEXT    NOT NULL,
    site      TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    audience  INTEGER,
    client    TEXT    NOT NULL
);

CREATE INDEX audit_log_site ON audit_log (site, id);
