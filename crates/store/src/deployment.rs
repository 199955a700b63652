//! The keys every instance sharing a database must agree on, recorded by fingerprint (the
//! VAPID key) or hash (the admin token), never the secret itself.
//!
//! Two VAPID keys at once would make a push service answer 403 for the half of the
//! audience that subscribed under the other key; two admin tokens would make the console
//! sign-in depend on which instance a request reaches. So on PostgreSQL the first instance
//! records both, and an instance started with another refuses to start. SQLite serves
//! one process, where changing the key is a rotation (see docs/configuration.md), so nothing is
//! recorded there.

use crate::{now_rfc3339, Db, Store};

/// A key the instances must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentKey {
    Vapid,
    AdminToken,
}

impl DeploymentKey {
    /// Its row in `deployment_keys`.
    fn name(self) -> &'static str {
        match self {
            DeploymentKey::Vapid => "vapid_key",
            DeploymentKey::AdminToken => "admin_token",
        }
    }

    fn described(self) -> &'static str {
        match self {
            DeploymentKey::Vapid => "VAPID key",
            DeploymentKey::AdminToken => "admin token",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            DeploymentKey::Vapid => "CLARION_VAPID_PRIVATE_KEY",
            DeploymentKey::AdminToken => "CLARION_ADMIN_TOKEN",
        }
    }
}

/// An instance's key differs from the one recorded by the instances before it.
#[derive(Debug)]
pub struct KeyMismatch {
    pub key: DeploymentKey,
    /// This instance's fingerprint.
    pub ours: String,
    /// The one in the database.
    pub recorded: String,
}

impl std::fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, setting, name) = (self.key.described(), self.key.setting(), self.key.name());
        write!(
            f,
            "this instance's {what} (fingerprint {}) differs from the one the instances sharing this database use \
             (fingerprint {}, recorded in the database). Give every instance the same {setting}. To replace the \
             {what} on purpose, stop every instance, run `DELETE FROM deployment_keys WHERE name = '{name}'` on the \
             database, and start them all with the new one.",
            self.ours, self.recorded
        )
    }
}

impl std::error::Error for KeyMismatch {}

impl Store {
    /// Records `fingerprint` as the deployment's `key` if none is recorded yet, and errs
    /// with [`KeyMismatch`] when another one is. Always agrees on SQLite.
    pub async fn agree_on_key(&self, key: DeploymentKey, fingerprint: &str) -> anyhow::Result<()> {
        let Db::Postgres(pool) = &self.db else { return Ok(()) };
        sqlx::query("INSERT INTO deployment_keys (name, fingerprint, recorded_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(key.name())
            .bind(fingerprint)
            .bind(now_rfc3339())
            .execute(pool)
            .await?;
        let recorded: String =
            sqlx::query_scalar("SELECT fingerprint FROM deployment_keys WHERE name = $1").bind(key.name()).fetch_one(pool).await?;
        if recorded != fingerprint {
            return Err(KeyMismatch { key, ours: fingerprint.to_string(), recorded }.into());
        }
        Ok(())
    }
}
