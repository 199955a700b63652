//! The keys every instance sharing a database must agree on, recorded by fingerprint (the
//! VAPID key) or keyed hash (the admin token: Argon2id under a deployment salt), never the
//! secret itself; and the salts those hashes use.
//!
//! Two VAPID keys at once would make a push service answer 403 for the half of the
//! audience that subscribed under the other key; two admin tokens would make the console
//! sign-in depend on which instance a request reaches. So on PostgreSQL the first instance
//! records both, and an instance started with another refuses to start. SQLite serves
//! one process, where changing the key is a rotation (see docs/configuration.md), so nothing is
//! recorded there.

use crate::{now_rfc3339, on_pool, Db, Store};
use clarion_domain::base64url;

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
        write!(f, "this instance's {what} differs from the one the instances sharing this database use")?;
        // The VAPID fingerprint is of the public key, which anyone may see; the admin
        // token's digests are never shown, so a log gives a guesser nothing to test against.
        if self.key == DeploymentKey::Vapid {
            write!(f, " (ours has fingerprint {}, the database records {})", self.ours, self.recorded)?;
        }
        write!(
            f,
            ". Give every instance the same {setting}. To replace the {what} on purpose, stop every instance, run \
             `DELETE FROM deployment_keys WHERE name = '{name}'` on the database, and start them all with the new one."
        )
    }
}

impl std::fmt::Debug for KeyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for KeyMismatch {}

impl Store {
    /// Replaces a record of `key` made the way earlier versions made it (`earlier`) with
    /// `current`, so an upgraded deployment keeps agreeing. Anything else is left alone.
    pub async fn upgrade_key_record(&self, key: DeploymentKey, earlier: &str, current: &str) -> anyhow::Result<()> {
        let Db::Postgres(pool) = &self.db else { return Ok(()) };
        sqlx::query("UPDATE deployment_keys SET fingerprint = $1, recorded_at = $2 WHERE name = $3 AND fingerprint = $4")
            .bind(current)
            .bind(now_rfc3339())
            .bind(key.name())
            .bind(earlier)
            .execute(pool)
            .await?;
        Ok(())
    }

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

impl Store {
    /// The deployment's salt called `name` (16 random bytes), made by the first instance
    /// that asks and read back by every later one, so instances sharing a database derive
    /// the same digests.
    pub async fn deployment_salt(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let mut fresh = [0u8; 16];
        clarion_domain::random::fill(&mut fresh)?;
        let now = now_rfc3339();
        let stored: String = on_pool!(self, pool => {
            sqlx::query("INSERT INTO deployment_salts (name, salt, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(base64url::encode(&fresh))
                .bind(&now)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT salt FROM deployment_salts WHERE name = $1").bind(name).fetch_one(pool).await?
        });
        base64url::decode(&stored).map_err(|e| anyhow::anyhow!("deployment salt {name} is not base64url: {e}"))
    }
}
