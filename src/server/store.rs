//! The SQLite store: subscriptions and the broadcast ledger.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`, so a committed write survives a
//! process crash. Migrations are embedded in the binary and run at start.

use crate::domain::notification::Notification;
use crate::domain::subscription::{NewSubscription, PushEndpoint};
use crate::domain::SubscriptionSummary;
use anyhow::Context;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// How long a claim on a broadcast lasts without renewal.
    lease: Duration,
}

/// Whether a worker still holds the lease it claimed (its epoch is current).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    /// Another worker claimed the broadcast since; nothing was written.
    Lost,
}

impl LeaseStatus {
    fn of(rows_affected: u64) -> Self {
        if rows_affected > 0 {
            LeaseStatus::Held
        } else {
            LeaseStatus::Lost
        }
    }
}

/// The columns of a [`StoredSubscription`].
macro_rules! subscription_columns {
    () => {
        "id, endpoint, p256dh, auth, vapid_key_fingerprint, vapid_refusals"
    };
}

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

/// Status of a broadcast.
#[derive(Clone, Debug, Serialize, FromRow)]
pub struct BroadcastRecord {
    pub id: i64,
    pub status: String,
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
    pub removed: i64,
    pub retried: i64,
    pub clicks: i64,
    /// True when it went to one subscription.
    pub targeted: bool,
    /// JSON object of failure reason → count.
    #[serde(skip)]
    pub failures: String,
    /// JSON object of origin → why sending to it stopped.
    #[serde(skip)]
    pub stopped_origins: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The columns of a [`BroadcastRecord`], for every query that reads one.
macro_rules! broadcast_status_columns {
    () => {
        "id, status, total, delivered, failed, removed, retried, clicks, target_endpoint IS NOT NULL AS targeted, \
         failures, stopped_origins, created_at, started_at, finished_at"
    };
}

/// A broadcast's status with what it sends: the console's history. Status reads (the
/// event stream polls them) leave the payload out.
#[derive(Clone, Debug, FromRow)]
pub struct BroadcastDetailRecord {
    #[sqlx(flatten)]
    pub record: BroadcastRecord,
    pub payload: String,
    pub ttl: i64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
}

impl BroadcastRecord {
    pub fn failures_by_reason(&self) -> BTreeMap<String, i64> {
        serde_json::from_str(&self.failures).unwrap_or_default()
    }

    pub fn stopped_origins(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.stopped_origins).unwrap_or_default()
    }
}

/// A broadcast as the worker needs it.
#[derive(Clone, Debug, FromRow)]
pub struct BroadcastJob {
    pub id: i64,
    pub payload: String,
    pub ttl: i64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub target_endpoint: Option<String>,
    pub status: String,
    pub last_id: Option<i64>,
    pub cursor: i64,
    pub stopped_origins: String,
    /// The fencing token of this claim: every write checks it is still current.
    pub lease_epoch: i64,
}

/// The settled outcomes of one batch of sends, committed together in one transaction.
#[derive(Debug, Default)]
pub struct Progress {
    /// The main pass's new cursor; `None` for a batch of retries.
    pub cursor: Option<i64>,
    pub delivered: Vec<i64>,
    pub removed: Vec<i64>,
    /// (subscription id, failure reason)
    pub failed: Vec<(i64, &'static str)>,
    /// Failed ids whose refusal counts against the subscription (`vapid_refusals`).
    pub refused: Vec<i64>,
    /// (subscription id, sends made so far, not before this unix millisecond)
    pub retry: Vec<(i64, u32, i64)>,
    /// Sends in this batch that were retries.
    pub retried: i64,
    /// The broadcast's stopped origins after this batch, as JSON.
    pub stopped_origins: String,
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store {
    /// Opens (creating if needed) the database and runs the embedded migrations. `lease`
    /// is how long a claim on a broadcast lasts without renewal.
    pub async fn connect(database_url: &str, lease: Duration) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(database_url)
            .with_context(|| "Failed to parse the database URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.context("Failed to open the database")?;
        sqlx::migrate!("./migrations").run(&pool).await.context("Failed to run database migrations")?;
        Ok(Self { pool, lease })
    }

    /// The backend's name, for `clarion_build_info`.
    pub fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn lease_until(&self) -> i64 {
        unix_now() + self.lease.as_secs().max(1) as i64
    }

    /// A transaction that takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
    /// busy database makes it wait (busy_timeout) instead of failing when a deferred
    /// transaction tries to upgrade from reading to writing.
    async fn write_transaction(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The default database's file name inside the data dir.
    pub const DEFAULT_FILE: &'static str = "clarion.db";

    /// The default database inside a data dir.
    pub fn default_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join(Self::DEFAULT_FILE).display())
    }

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

    // ---- broadcasts -------------------------------------------------------------------

    /// Records a broadcast; it is durable before this returns. The payload carries the
    /// broadcast's own id (for click reports), so it is written once the id is known, in
    /// the same transaction.
    pub async fn create_broadcast(&self, n: &Notification, lease_owner: Option<&str>) -> anyhow::Result<i64> {
        let lease_until = lease_owner.map(|_| self.lease_until());
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO broadcasts (payload, ttl, urgency, topic, target_endpoint, created_at, lease_owner, lease_until)
             VALUES ('', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(n.ttl as i64)
        .bind(n.urgency.map(|u| u.as_str()))
        .bind(&n.topic)
        .bind(&n.endpoint)
        .bind(now_rfc3339())
        .bind(lease_owner)
        .bind(lease_until)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE broadcasts SET payload = ? WHERE id = ?").bind(n.payload(Some(id))).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn broadcast(&self, id: i64) -> anyhow::Result<Option<BroadcastRecord>> {
        Ok(sqlx::query_as(concat!("SELECT ", broadcast_status_columns!(), " FROM broadcasts WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Newest first.
    pub async fn list_broadcasts(&self, limit: i64, before: i64) -> anyhow::Result<Vec<BroadcastRecord>> {
        Ok(sqlx::query_as(concat!("SELECT ", broadcast_status_columns!(), " FROM broadcasts WHERE id < ? ORDER BY id DESC LIMIT ?"))
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Newest first, with payloads.
    pub async fn list_broadcast_details(&self, limit: i64, before: i64) -> anyhow::Result<Vec<BroadcastDetailRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            broadcast_status_columns!(),
            ", payload, ttl, urgency, topic FROM broadcasts WHERE id < ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Takes the oldest unfinished broadcast whose lease is free (or already ours), with a
    /// new epoch that fences off any earlier holder.
    pub async fn claim_broadcast(&self, owner: &str, only: Option<i64>) -> anyhow::Result<Option<BroadcastJob>> {
        let now = unix_now();
        let job: Option<BroadcastJob> = sqlx::query_as(
            "UPDATE broadcasts SET lease_owner = ?1, lease_until = ?2, lease_epoch = lease_epoch + 1
             WHERE id = (SELECT id FROM broadcasts WHERE status != 'done'
                           AND (lease_owner IS NULL OR lease_owner = ?1 OR lease_until < ?3)
                           AND (?4 IS NULL OR id = ?4)
                         ORDER BY id LIMIT 1)
             RETURNING id, payload, ttl, urgency, topic, target_endpoint, status, last_id, cursor, stopped_origins, lease_epoch",
        )
        .bind(owner)
        .bind(self.lease_until())
        .bind(now)
        .bind(only)
        .fetch_optional(&self.pool)
        .await?;
        Ok(job)
    }

    /// Fixes the broadcast's scope (the subscriptions that exist now) and marks it sending.
    /// Answers the highest subscription id in scope.
    pub async fn start_broadcast(&self, job: &BroadcastJob) -> anyhow::Result<(LeaseStatus, i64)> {
        let mut tx = self.write_transaction().await?;
        let (last_id, total): (i64, i64) = match &job.target_endpoint {
            Some(endpoint) => {
                sqlx::query_as("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM subscriptions WHERE endpoint = ?")
                    .bind(endpoint)
                    .fetch_one(&mut *tx)
                    .await?
            }
            // Inside the write transaction the kept count is exact: no scan at 1M either.
            None => {
                sqlx::query_as("SELECT (SELECT COALESCE(MAX(id), 0) FROM subscriptions), stored FROM subscription_count WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let started = sqlx::query(
            "UPDATE broadcasts SET status = 'sending', last_id = ?, total = ?, started_at = ? WHERE id = ? AND status = 'queued' AND lease_epoch = ?",
        )
        .bind(last_id)
        .bind(total)
        .bind(now_rfc3339())
        .bind(job.id)
        .bind(job.lease_epoch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((LeaseStatus::of(started.rows_affected()), last_id))
    }

    /// The page of a broadcast's subscriptions after subscription id `after`.
    pub async fn broadcast_page(&self, job: &BroadcastJob, after: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        let up_to = job.last_id.unwrap_or(0);
        match &job.target_endpoint {
            Some(endpoint) => Ok(sqlx::query_as(concat!(
                "SELECT ",
                subscription_columns!(),
                " FROM subscriptions WHERE endpoint = ? AND id > ? AND id <= ? LIMIT ?"
            ))
            .bind(endpoint)
            .bind(after)
            .bind(up_to)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?),
            None => self.subscriptions_page(after, up_to, limit).await,
        }
    }

    /// Commits one batch: counts, failure reasons, retries, removals, the cursor and the
    /// stopped origins, in one transaction, and renews the lease. Writes nothing when the
    /// lease was lost (the epoch moved on).
    pub async fn record_progress(&self, job: &BroadcastJob, owner: &str, batch: &Progress) -> anyhow::Result<LeaseStatus> {
        let job_id = job.id;
        let now = now_rfc3339();
        let mut tx = self.write_transaction().await?;
        let failures: String = sqlx::query_scalar("SELECT failures FROM broadcasts WHERE id = ?").bind(job_id).fetch_one(&mut *tx).await?;
        let mut by_reason: BTreeMap<String, i64> = serde_json::from_str(&failures).unwrap_or_default();
        for (_, reason) in &batch.failed {
            *by_reason.entry((*reason).to_string()).or_default() += 1;
        }
        let updated = sqlx::query(
            "UPDATE broadcasts SET cursor = COALESCE(?, cursor), delivered = delivered + ?, failed = failed + ?, removed = removed + ?,
             retried = retried + ?, failures = ?, stopped_origins = ?, lease_until = ? WHERE id = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(batch.cursor)
        .bind(batch.delivered.len() as i64)
        .bind(batch.failed.len() as i64)
        .bind(batch.removed.len() as i64)
        .bind(batch.retried)
        .bind(serde_json::to_string(&by_reason)?)
        .bind(&batch.stopped_origins)
        .bind(self.lease_until())
        .bind(job_id)
        .bind(owner)
        .bind(job.lease_epoch)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(LeaseStatus::Lost);
        }
        for id in &batch.delivered {
            sqlx::query("UPDATE subscriptions SET last_success_at = ?, failure_count = 0, vapid_refusals = 0 WHERE id = ?")
                .bind(&now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (id, _) in &batch.failed {
            sqlx::query("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        for id in &batch.refused {
            sqlx::query("UPDATE subscriptions SET vapid_refusals = vapid_refusals + 1 WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        for id in &batch.removed {
            sqlx::query("DELETE FROM subscriptions WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        let settled = batch.delivered.iter().chain(&batch.removed).chain(batch.failed.iter().map(|(id, _)| id));
        for id in settled {
            sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = ? AND subscription_id = ?")
                .bind(job_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (id, attempts, not_before) in &batch.retry {
            sqlx::query(
                "INSERT INTO broadcast_retries (broadcast_id, subscription_id, attempts, not_before) VALUES (?, ?, ?, ?)
                 ON CONFLICT (broadcast_id, subscription_id) DO UPDATE SET attempts = excluded.attempts, not_before = excluded.not_before",
            )
            .bind(job_id)
            .bind(id)
            .bind(*attempts as i64)
            .bind(not_before)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(LeaseStatus::Held)
    }

    /// Retries due by `now_ms`, with the sends already made. Retries whose subscription
    /// was deleted meanwhile are skipped by the join (and dropped when the broadcast
    /// finishes), so each call reads only what it returns: the pass stays linear.
    pub async fn due_retries(&self, job_id: i64, now_ms: i64, limit: i64) -> anyhow::Result<Vec<(StoredSubscription, u32)>> {
        #[derive(FromRow)]
        struct DueRetry {
            #[sqlx(flatten)]
            subscription: StoredSubscription,
            attempts: i64,
        }
        // The two tables share no column name, so the subscription columns need no prefix.
        let rows: Vec<DueRetry> = sqlx::query_as(concat!(
            "SELECT ",
            subscription_columns!(),
            ", r.attempts FROM broadcast_retries r JOIN subscriptions s ON s.id = r.subscription_id
             WHERE r.broadcast_id = ? AND r.not_before <= ? ORDER BY r.not_before LIMIT ?"
        ))
        .bind(job_id)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|row| (row.subscription, row.attempts.max(0) as u32)).collect())
    }

    /// When the next retry of a broadcast is due (unix ms), if any remain: the first in
    /// `not_before` order whose subscription still exists (an index walk, not a scan).
    pub async fn next_retry_at(&self, job_id: i64) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT r.not_before FROM broadcast_retries r JOIN subscriptions s ON s.id = r.subscription_id
             WHERE r.broadcast_id = ? ORDER BY r.not_before LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Extends our claim on a broadcast, if it is still ours.
    pub async fn renew_lease(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        let done = sqlx::query("UPDATE broadcasts SET lease_until = ? WHERE id = ? AND lease_owner = ? AND lease_epoch = ?")
            .bind(self.lease_until())
            .bind(job.id)
            .bind(owner)
            .bind(job.lease_epoch)
            .execute(&self.pool)
            .await?;
        Ok(LeaseStatus::of(done.rows_affected()))
    }

    /// Hands a claim back (on shutdown), so another worker resumes at once instead of
    /// waiting for the lease to lapse.
    pub async fn release_lease(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE broadcasts SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ? AND lease_epoch = ?")
            .bind(job.id)
            .bind(owner)
            .bind(job.lease_epoch)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts one click on a broadcast's notification; false when there is no such broadcast.
    pub async fn record_click(&self, id: i64) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE broadcasts SET clicks = clicks + 1 WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- admin sessions ---------------------------------------------------------------

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

    /// Marks a broadcast done (if the lease is still ours) and drops its leftover retry rows.
    pub async fn finish_broadcast(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(
            "UPDATE broadcasts SET status = 'done', finished_at = ?, lease_owner = NULL, lease_until = NULL
             WHERE id = ? AND lease_owner = ? AND lease_epoch = ?",
        )
        .bind(now_rfc3339())
        .bind(job.id)
        .bind(owner)
        .bind(job.lease_epoch)
        .execute(&mut *tx)
        .await?;
        if LeaseStatus::of(done.rows_affected()) == LeaseStatus::Lost {
            return Ok(LeaseStatus::Lost); // the transaction rolls back on drop
        }
        sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = ?").bind(job.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(LeaseStatus::Held)
    }
}
