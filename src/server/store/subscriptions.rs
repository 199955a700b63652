//! Stored subscriptions: upsert by endpoint (never re-keying a known one), lookups, the
//! admin listing, the kept count, and a broadcast's pages of them.

use super::{now_rfc3339, Store};
use crate::domain::subscription::{NewSubscription, PushEndpoint};
use crate::domain::SubscriptionSummary;
use sqlx::FromRow;

/// What storing a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(i64),
    /// The endpoint was known with the same keys; its metadata was refreshed.
    Refreshed(i64),
    /// The endpoint is known with other keys; nothing was changed.
    KeysDiffer,
}

/// A stored subscription as the sender needs it.
#[derive(Clone, FromRow)]
pub struct StoredSubscription {
    pub id: i64,
    pub endpoint: String,
    pub p256dh: Vec<u8>,
    pub auth: Vec<u8>,
    /// The server's VAPID key when the browser subscribed (or last re-subscribed).
    pub vapid_key_fingerprint: String,
    /// Counted 401/403 refusals under the current key since the last delivery.
    pub vapid_refusals: i64,
}

impl std::fmt::Debug for StoredSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSubscription").field("id", &self.id).field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Store {
    /// Inserts a subscription, or refreshes a known endpoint presented with the same keys.
    /// A known endpoint with other keys is left alone ([`Upserted::KeysDiffer`]): whoever
    /// knows an endpoint must not be able to re-key it.
    #[tracing::instrument(skip_all, fields(origin = %sub.endpoint.origin()))]
    pub async fn upsert_subscription(
        &self,
        sub: &NewSubscription,
        vapid_fingerprint: &str,
        user_agent: Option<&str>,
        client_hash: Option<&str>,
    ) -> anyhow::Result<Upserted> {
        let now = now_rfc3339();
        let mut tx = self.write_transaction().await?;
        let existing: Option<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT id, p256dh, auth FROM subscriptions WHERE endpoint = ?")
            .bind(sub.endpoint.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let result = match existing {
            Some((_, p256dh, auth)) if p256dh != sub.p256dh.as_bytes() || auth != sub.auth.as_bytes() => Upserted::KeysDiffer,
            Some((id, ..)) => {
                sqlx::query(
                    "UPDATE subscriptions SET expiration_time = ?, vapid_key_fingerprint = ?,
                     user_agent = COALESCE(?, user_agent), updated_at = ?, failure_count = 0 WHERE id = ?",
                )
                .bind(sub.expiration_time)
                .bind(vapid_fingerprint)
                .bind(user_agent)
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Upserted::Refreshed(id)
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO subscriptions (endpoint, p256dh, auth, expiration_time, vapid_key_fingerprint, user_agent, created_at, updated_at, client_hash)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(sub.endpoint.as_str())
                .bind(&sub.p256dh.as_bytes()[..])
                .bind(&sub.auth.as_bytes()[..])
                .bind(sub.expiration_time)
                .bind(vapid_fingerprint)
                .bind(user_agent)
                .bind(&now)
                .bind(&now)
                .bind(client_hash)
                .fetch_one(&mut *tx)
                .await?;
                Upserted::Created(id)
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Stores many checked subscriptions in one transaction (an upsert by endpoint).
    pub async fn upsert_subscriptions(&self, subscriptions: &[NewSubscription], vapid_fingerprint: &str) -> anyhow::Result<()> {
        let now = now_rfc3339();
        let mut tx = self.write_transaction().await?;
        for sub in subscriptions {
            sqlx::query(
                "INSERT INTO subscriptions (endpoint, p256dh, auth, expiration_time, vapid_key_fingerprint, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth,
                   expiration_time = excluded.expiration_time, vapid_key_fingerprint = excluded.vapid_key_fingerprint,
                   updated_at = excluded.updated_at",
            )
            .bind(sub.endpoint.as_str())
            .bind(&sub.p256dh.as_bytes()[..])
            .bind(&sub.auth.as_bytes()[..])
            .bind(sub.expiration_time)
            .bind(vapid_fingerprint)
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes by endpoint (as the client sent it; see [`PushEndpoint::lookup_key`]); false
    /// when it was not stored.
    pub async fn delete_subscription_by_endpoint(&self, endpoint: &str) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE endpoint = ?")
            .bind(PushEndpoint::lookup_key(endpoint))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_subscription(&self, id: i64) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Finds by endpoint, as the client sent it (see [`PushEndpoint::lookup_key`]).
    pub async fn find_subscription(&self, endpoint: &str) -> anyhow::Result<Option<StoredSubscription>> {
        Ok(sqlx::query_as(concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE endpoint = ?"))
            .bind(PushEndpoint::lookup_key(endpoint))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Subscriptions created from one client address (by its keyed hash).
    pub async fn count_subscriptions_from(&self, client_hash: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE client_hash = ?").bind(client_hash).fetch_one(&self.pool).await?)
    }

    /// The number of stored subscriptions, kept by triggers (migration 0006): one row
    /// read, however large the audience.
    pub async fn count_subscriptions(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT stored FROM subscription_count WHERE id = 1").fetch_one(&self.pool).await?)
    }

    /// One page of the admin listing, in id order after `after`.
    pub async fn list_subscriptions(&self, limit: i64, after: i64) -> anyhow::Result<Vec<SubscriptionSummary>> {
        Ok(sqlx::query_as(
            "SELECT id, endpoint, created_at, updated_at, last_success_at, failure_count, user_agent, vapid_key_fingerprint
             FROM subscriptions WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Subscriptions with `after < id <= up_to`, in id order: one page of a broadcast.
    pub async fn subscriptions_page(&self, after: i64, up_to: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        Ok(sqlx::query_as(concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"))
            .bind(after)
            .bind(up_to)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records the outcome of a direct (non-broadcast) send to one subscription.
    pub async fn record_delivery(&self, id: i64, delivered: bool) -> anyhow::Result<()> {
        if delivered {
            sqlx::query("UPDATE subscriptions SET last_success_at = ?, failure_count = 0 WHERE id = ?")
                .bind(now_rfc3339())
                .bind(id)
                .execute(&self.pool)
                .await?;
        } else {
            sqlx::query("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id = ?").bind(id).execute(&self.pool).await?;
        }
        Ok(())
    }
}
