//! Sites in storage: their settings (subject, origins, the sealed identity secret,
//! quotas), made, changed and removed with everything that is theirs. The site `default`
//! is made by the migration and never removed.

use crate::{now_rfc3339, on_pool, Db, Store, WritePool};
use sqlx::FromRow;

/// One stored site, as every instance reads it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StoredSite {
    pub name: String,
    /// `None`: the instance's `CLARION_VAPID_SUBJECT`.
    pub vapid_subject: Option<String>,
    /// A JSON array of origins.
    pub origins: String,
    /// The identity secret, sealed under the master key; `None`: no identity tokens.
    pub sealed_identity_secret: Option<String>,
    pub max_subscriptions: Option<i64>,
    pub max_subscriptions_per_client: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// What removing a site did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteRemoved {
    /// Removed, with this many subscriptions.
    Removed {
        subscriptions: i64,
    },
    /// It still has subscriptions, and the removal did not say to purge them.
    HasSubscriptions(i64),
    NotFound,
}

const SITE_COLUMNS: &str =
    "name, vapid_subject, origins, sealed_identity_secret, max_subscriptions, max_subscriptions_per_client, created_at, updated_at";

impl Store {
    /// Every site, by name.
    pub async fn sites(&self) -> anyhow::Result<Vec<StoredSite>> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY name");
        Ok(on_pool!(self, pool => sqlx::query_as::<_, StoredSite>(&sql).fetch_all(pool).await?))
    }

    /// Stores a new site with its first VAPID key (`(fingerprint, public key, sealed
    /// private key)`, current) and its kept subscription count (one row on SQLite, 16
    /// slots on PostgreSQL), in one transaction, so no instance sees a site without a
    /// key; false when the name is taken.
    pub async fn create_site(&self, site: &StoredSite, key: (&str, &str, &str)) -> anyhow::Result<bool> {
        let count_rows = match self.db {
            Db::Sqlite(_) => "INSERT INTO subscription_count (site, stored) VALUES ($1, 0)",
            Db::Postgres(_) => "INSERT INTO subscription_count (site, id, stored) SELECT $1, slot, 0 FROM generate_series(0, 15) AS slot",
        };
        let now = now_rfc3339();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let created = sqlx::query(
                "INSERT INTO sites (name, vapid_subject, origins, sealed_identity_secret, max_subscriptions, max_subscriptions_per_client,
                                    created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&site.name)
            .bind(&site.vapid_subject)
            .bind(&site.origins)
            .bind(&site.sealed_identity_secret)
            .bind(site.max_subscriptions)
            .bind(site.max_subscriptions_per_client)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if created {
                sqlx::query(count_rows).bind(&site.name).execute(&mut *tx).await?;
                let (fingerprint, public_key, sealed) = key;
                sqlx::query(
                    "INSERT INTO vapid_keys (site, fingerprint, public_key, sealed_private_key, is_current, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&site.name)
                .bind(fingerprint)
                .bind(public_key)
                .bind(sealed)
                .bind(true)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Ok(created)
        })
    }

    /// Writes a site's settings (all of them: the caller merged a change into the stored
    /// ones); false when there is no such site.
    pub async fn update_site(&self, site: &StoredSite) -> anyhow::Result<bool> {
        let updated = on_pool!(self, pool => sqlx::query(
            "UPDATE sites SET vapid_subject = $2, origins = $3, sealed_identity_secret = $4, max_subscriptions = $5,
                              max_subscriptions_per_client = $6, updated_at = $7
             WHERE name = $1",
        )
        .bind(&site.name)
        .bind(&site.vapid_subject)
        .bind(&site.origins)
        .bind(&site.sealed_identity_secret)
        .bind(site.max_subscriptions)
        .bind(site.max_subscriptions_per_client)
        .bind(now_rfc3339())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(updated > 0)
    }

    /// Removes a site and everything that is its own, in one transaction: subscriptions
    /// (refused while it has some, unless `purge`), topics, sends, VAPID keys (private
    /// halves included), and the API keys bound to it are revoked. The audit log keeps
    /// its entries.
    pub async fn remove_site(&self, name: &str, purge: bool) -> anyhow::Result<SiteRemoved> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let known: Option<String> = sqlx::query_scalar("SELECT name FROM sites WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
            if known.is_none() {
                return Ok(SiteRemoved::NotFound);
            }
            let subscriptions: i64 =
                sqlx::query_scalar("SELECT COALESCE(CAST(SUM(stored) AS BIGINT), 0) FROM subscription_count WHERE site = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if subscriptions > 0 && !purge {
                return Ok(SiteRemoved::HasSubscriptions(subscriptions));
            }
            for sql in [
                "DELETE FROM subscriptions WHERE site = $1",
                "DELETE FROM topics WHERE site = $1",
                "DELETE FROM broadcasts WHERE site = $1",
                "DELETE FROM vapid_keys WHERE site = $1",
                "DELETE FROM subscription_count WHERE site = $1",
                "DELETE FROM sites WHERE name = $1",
            ] {
                sqlx::query(sql).bind(name).execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE site = $1 AND revoked_at IS NULL")
                .bind(name)
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(SiteRemoved::Removed { subscriptions })
        })
    }
}
