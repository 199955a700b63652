-- Random salts the instances sharing this database derive keyed digests with (the admin
-- token's fingerprint and session tag are Argon2id of the token under its salt). A salt
-- is not secret; it makes each deployment's digests its own and a dictionary costly.
CREATE TABLE deployment_salts (
    name        TEXT PRIMARY KEY,
    salt        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
