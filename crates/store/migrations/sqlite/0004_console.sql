-- The admin console: notification clicks reported by service workers, and sign-in sessions.

ALTER TABLE broadcasts ADD COLUMN clicks INTEGER NOT NULL DEFAULT 0;

-- A session is stored as the SHA-256 of its cookie value, so the database never holds a
-- usable credential. Expired rows are swept on sign-in.
CREATE TABLE admin_sessions (
    token_hash  TEXT    PRIMARY KEY,
    created_at  TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL    -- unix seconds
);
