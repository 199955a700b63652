//! Admin console sessions: stored by the hash of their cookie, tied to the admin token
//! that opened them.

use super::{now_rfc3339, unix_now, Store};

impl Store {
    /// Stores a new session, tied to the admin token by `admin_tag`, and sweeps expired ones
    /// and those of earlier tokens.
    pub async fn create_session(&self, token_hash: &str, admin_tag: &str, expires_at: i64) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ? OR admin_tag IS NOT ?")
            .bind(unix_now())
            .bind(admin_tag)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO admin_sessions (token_hash, admin_tag, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(admin_tag)
            .bind(now_rfc3339())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// True when the session exists, has not expired, and was opened with the current token.
    pub async fn session_is_live(&self, token_hash: &str, admin_tag: &str) -> anyhow::Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM admin_sessions WHERE token_hash = ? AND admin_tag = ? AND expires_at > ?")
                .bind(token_hash)
                .bind(admin_tag)
                .bind(unix_now())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    pub async fn delete_session(&self, token_hash: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ?").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }
}
