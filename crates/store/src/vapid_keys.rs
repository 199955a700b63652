//! A site's VAPID keys in storage: the current one, the older ones still bound to
//! subscriptions (by fingerprint), and the retired ones. Private keys made at run time are
//! stored sealed (the caller seals and opens them; this module never sees the master
//! key); the key each instance has from its configuration is recorded without one.

use crate::{now_rfc3339, on_pool, Store, WritePool};
use sqlx::FromRow;

/// One stored key, with the number of subscriptions bound to it.
#[derive(Debug, Clone, FromRow)]
pub struct StoredVapidKey {
    pub id: i64,
    pub site: String,
    pub fingerprint: String,
    /// base64url of the 65-byte public key.
    pub public_key: String,
    /// `None`: the configured key, which each instance holds itself.
    pub sealed_private_key: Option<String>,
    pub is_current: bool,
    pub created_at: String,
}

/// What [`Store::retire_vapid_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRetired {
    /// Retired; `removed` subscriptions that were still bound to it went with it.
    Retired {
        removed: u64,
    },
    /// Subscriptions are still bound to it, and removing them was not asked for.
    StillBound {
        subscriptions: i64,
    },
    /// The current key is never retired: rotate first.
    Current,
    NotFound,
}

const KEY_COLUMNS: &str = "id, site, fingerprint, public_key, sealed_private_key, is_current, created_at";

impl Store {
    /// The keys of `site` that are not retired, oldest first.
    pub async fn vapid_keys(&self, site: &str) -> anyhow::Result<Vec<StoredVapidKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM vapid_keys WHERE site = $1 AND retired_at IS NULL ORDER BY id");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, StoredVapidKey>(&sql).bind(site).fetch_all(pool).await?))
    }

    /// The number of subscriptions bound to each of `site`'s keys, in the order of
    /// [`Store::vapid_keys`]: one indexed count per key.
    pub async fn vapid_key_subscriptions(&self, keys: &[StoredVapidKey]) -> anyhow::Result<Vec<i64>> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let count: i64 = on_pool!(self, pool => {
                sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE vapid_key_fingerprint = $1")
                    .bind(&key.fingerprint)
                    .fetch_one(pool)
                    .await?
            });
            counts.push(count);
        }
        Ok(counts)
    }

    /// Records the key this instance was configured with, and makes it `site`'s current
    /// key when it is new (a first start, or a configured key changed on purpose) or
    /// when the current key is another configured one (the configuration changed back).
    /// A key made by a rotation stays current: the configuration does not undo it.
    pub async fn record_configured_vapid_key(&self, site: &str, fingerprint: &str, public_key: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let known: Option<(bool, Option<String>)> = sqlx::query_as("SELECT is_current, retired_at FROM vapid_keys WHERE fingerprint = $1")
                .bind(fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
            let current_is_rotated: bool = sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM vapid_keys WHERE site = $1 AND is_current AND sealed_private_key IS NOT NULL",
            )
            .bind(site)
            .fetch_one(&mut *tx)
            .await?;
            let make_current = match known {
                None => true,
                Some((is_current, retired_at)) => !is_current && retired_at.is_none() && !current_is_rotated,
            };
            if make_current {
                sqlx::query("UPDATE vapid_keys SET is_current = $1 WHERE site = $2 AND is_current").bind(false).bind(site).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO vapid_keys (site, fingerprint, public_key, sealed_private_key, is_current, created_at)
                     VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (fingerprint) DO UPDATE SET is_current = excluded.is_current",
                )
                .bind(site)
                .bind(fingerprint)
                .bind(public_key)
                .bind(true)
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores a key made or imported at run time, sealed, as `site`'s current key (the
    /// one before stays, bound to its subscriptions). An imported key already stored is
    /// made current again and un-retired.
    pub async fn add_current_vapid_key(
        &self,
        site: &str,
        fingerprint: &str,
        public_key: &str,
        sealed_private_key: &str,
    ) -> anyhow::Result<i64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE vapid_keys SET is_current = $1 WHERE site = $2 AND is_current").bind(false).bind(site).execute(&mut *tx).await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO vapid_keys (site, fingerprint, public_key, sealed_private_key, is_current, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (fingerprint) DO UPDATE SET is_current = excluded.is_current, retired_at = NULL,
                     sealed_private_key = COALESCE(vapid_keys.sealed_private_key, excluded.sealed_private_key)
                 WHERE vapid_keys.site = excluded.site
                 RETURNING id",
            )
            .bind(site)
            .bind(fingerprint)
            .bind(public_key)
            .bind(sealed_private_key)
            .bind(true)
            .bind(now_rfc3339())
            .fetch_optional(&mut *tx)
            .await?;
            // A key is one site's: another site's key is not taken over (the transaction
            // rolls back on drop).
            let Some(id) = id else { anyhow::bail!("this VAPID key belongs to another site") };
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Retires key `id` of `site`. With subscriptions still bound to it, only when
    /// `force` says to remove them too (in the same transaction).
    pub async fn retire_vapid_key(&self, site: &str, id: i64, force: bool) -> anyhow::Result<KeyRetired> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let key: Option<(String, bool)> = sqlx::query_as(
                "SELECT fingerprint, is_current FROM vapid_keys WHERE id = $1 AND site = $2 AND retired_at IS NULL",
            )
            .bind(id)
            .bind(site)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((fingerprint, is_current)) = key else { return Ok(KeyRetired::NotFound) };
            if is_current {
                return Ok(KeyRetired::Current);
            }
            let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE vapid_key_fingerprint = $1")
                .bind(&fingerprint)
                .fetch_one(&mut *tx)
                .await?;
            if bound > 0 && !force {
                return Ok(KeyRetired::StillBound { subscriptions: bound });
            }
            let removed = sqlx::query("DELETE FROM subscriptions WHERE vapid_key_fingerprint = $1").bind(&fingerprint).execute(&mut *tx).await?.rows_affected();
            sqlx::query("UPDATE vapid_keys SET retired_at = $1, sealed_private_key = NULL WHERE id = $2").bind(now_rfc3339()).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(KeyRetired::Retired { removed })
        })
    }
}
