//! Admin console sessions: stored by the hash of their cookie, tied to the admin token
//! that opened them. The same SQL on both backends.

use crate::{now_rfc3339, on_pool, unix_now, Store};

impl Store {
    /// Stores a new session, tied to the admin token by `admin_tag`, and sweeps expired ones
    /// and those of earlier tokens.
    pub async fn create_session(&self, token_hash: &str, admin_tag: &str, expires_at: i64) -> anyhow::Result<()> {
        let now = now_rfc3339();
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1 OR admin_tag IS DISTINCT FROM $2")
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

    pub async fn delete_session(&self, token_hash: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
        });
        Ok(())
    }
}
