//! Admin console sessions: stored by the hash of their cookie, tied to what opened them
//! (`admin_tag`): the admin token's session tag, or `key:<id>` for an API key, which the
//! caller checks is still live on every use; and the site each works on (the console's
//! site switcher). The same SQL on both backends.

use crate::{now_rfc3339, on_pool, unix_now, Store};

impl Store {
    /// Stores a new session, tied to the admin token or an API key by `admin_tag`, and
    /// sweeps expired ones and those of earlier admin tokens (a key's sessions end with
    /// the key, which the caller checks).
    pub async fn create_session(&self, token_hash: &str, admin_tag: &str, expires_at: i64) -> anyhow::Result<()> {
        let now = now_rfc3339();
        on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM admin_sessions WHERE expires_at <= $1
                 OR (admin_tag IS DISTINCT FROM $2 AND admin_tag NOT LIKE 'key:%' AND $2 NOT LIKE 'key:%')",
            )
                .bind(unix_now())
                .bind(admin_tag)
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO admin_sessions (token_hash, admin_tag, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash)
                .bind(admin_tag)
                .bind(&now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// True when the session exists, has not expired, and was opened with the current token.
    pub async fn session_is_live(&self, token_hash: &str, admin_tag: &str) -> anyhow::Result<bool> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM admin_sessions WHERE token_hash = $1 AND admin_tag = $2 AND expires_at > $3)",
        )
        .bind(token_hash)
        .bind(admin_tag)
        .bind(unix_now())
        .fetch_one(pool)
        .await?))
    }

    /// What opened the live session with this hash (its `admin_tag`), if there is one.
    pub async fn session_tag(&self, token_hash: &str) -> anyhow::Result<Option<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar("SELECT admin_tag FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(unix_now())
            .fetch_optional(pool)
            .await?))
    }

    /// The site the live session with this hash works on (`None`: default, or no session).
    pub async fn session_site(&self, token_hash: &str) -> anyhow::Result<Option<String>> {
        let site: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar("SELECT site FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(unix_now())
                .fetch_optional(pool)
                .await?);
        Ok(site.flatten())
    }

    /// Makes the session with this hash work on `site` (the console's site switcher).
    pub async fn set_session_site(&self, token_hash: &str, site: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE admin_sessions SET site = $2 WHERE token_hash = $1").bind(token_hash).bind(site).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
        });
        Ok(())
    }
}
