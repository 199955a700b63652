//! The broadcast ledger: queued broadcasts, their leases (with a fencing epoch), the
//! committed progress of each batch, the durable retries, and clicks.

use super::{now_rfc3339, on_pool, unix_now, Db, LeaseStatus, Store, StoredSubscription, WritePool};
use crate::domain::notification::Notification;
use crate::domain::{BroadcastState, Urgency};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::FromRow;
use std::collections::BTreeMap;

/// Status of a broadcast.
#[derive(Clone, Debug, Serialize, FromRow)]
pub struct BroadcastRecord {
    pub id: i64,
    pub status: BroadcastState,
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
    pub removed: i64,
    pub retried: i64,
    pub clicks: i64,
    /// True when it went to one subscription.
    pub targeted: bool,
    /// Failure reason → count.
    pub failures: Json<BTreeMap<String, i64>>,
    /// Origin → why sending to it stopped.
    pub stopped_origins: Json<BTreeMap<String, String>>,
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

/// Claims a broadcast: takes the oldest unfinished one whose lease is free, lapsed or
/// already ours (`$4` narrows it to one id), and bumps its fencing epoch. The subquery's
/// closing parenthesis comes after the backend's locking clause.
macro_rules! claim_broadcast_sql {
    () => {
        "UPDATE broadcasts SET lease_owner = $1, lease_until = $2, lease_epoch = lease_epoch + 1
         WHERE id = (SELECT id FROM broadcasts WHERE status != 'done'
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
                       AND (CAST($4 AS BIGINT) IS NULL OR id = $4)
                     ORDER BY id LIMIT 1"
    };
}

/// What a claim answers: a [`BroadcastJob`].
macro_rules! claim_broadcast_returning {
    () => {
        " RETURNING id, payload, ttl, urgency, topic, target_endpoint, status, last_id, cursor, stopped_origins, lease_epoch"
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
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
}

/// A broadcast as the worker needs it.
#[derive(Clone, Debug, FromRow)]
pub struct BroadcastJob {
    pub id: i64,
    pub payload: String,
    pub ttl: i64,
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
    pub target_endpoint: Option<String>,
    pub status: BroadcastState,
    pub last_id: Option<i64>,
    pub cursor: i64,
    pub stopped_origins: Json<BTreeMap<String, String>>,
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
    /// The broadcast's stopped origins after this batch.
    pub stopped_origins: BTreeMap<String, String>,
}

impl Store {
    /// Records a broadcast; it is durable before this returns. The payload carries the
    /// broadcast's own id (for click reports), so it is written once the id is known, in
    /// the same transaction.
    pub async fn create_broadcast(&self, n: &Notification, lease_owner: Option<&str>) -> anyhow::Result<i64> {
        on_pool!(self, pool => {
            let lease_until = lease_owner.map(|_| self.lease_until());
            let mut tx = pool.begin_write().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO broadcasts (payload, ttl, urgency, topic, target_endpoint, created_at, lease_owner, lease_until)
                 VALUES ('', $1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(n.ttl as i64)
            .bind(n.urgency)
            .bind(&n.topic)
            .bind(&n.endpoint)
            .bind(now_rfc3339())
            .bind(lease_owner)
            .bind(lease_until)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("UPDATE broadcasts SET payload = $1 WHERE id = $2").bind(n.payload(Some(id))).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    pub async fn broadcast(&self, id: i64) -> anyhow::Result<Option<BroadcastRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!("SELECT ", broadcast_status_columns!(), " FROM broadcasts WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Newest first.
    pub async fn list_broadcasts(&self, limit: i64, before: i64) -> anyhow::Result<Vec<BroadcastRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!("SELECT ", broadcast_status_columns!(), " FROM broadcasts WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Newest first, with payloads.
    pub async fn list_broadcast_details(&self, limit: i64, before: i64) -> anyhow::Result<Vec<BroadcastDetailRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "SELECT ",
                broadcast_status_columns!(),
                ", payload, ttl, urgency, topic FROM broadcasts WHERE id < $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Takes the oldest unfinished broadcast whose lease is free (or already ours), with a
    /// new epoch that fences off any earlier holder.
    pub async fn claim_broadcast(&self, owner: &str, only: Option<i64>) -> anyhow::Result<Option<BroadcastJob>> {
        // Instances claiming at once on PostgreSQL skip each other's locked rows instead of
        // queueing behind them; SQLite has one writer at a time anyway.
        let claim = match self.db {
            Db::Sqlite(_) => concat!(claim_broadcast_sql!(), ")", claim_broadcast_returning!()),
            Db::Postgres(_) => concat!(claim_broadcast_sql!(), " FOR UPDATE SKIP LOCKED)", claim_broadcast_returning!()),
        };
        let now = unix_now();
        on_pool!(self, pool => Ok(sqlx::query_as(claim)
            .bind(owner)
            .bind(self.lease_until())
            .bind(now)
            .bind(only)
            .fetch_optional(pool)
            .await?))
    }

    /// Fixes the broadcast's scope (the subscriptions that exist now) and marks it sending.
    /// Answers the highest subscription id in scope.
    pub async fn start_broadcast(&self, job: &BroadcastJob) -> anyhow::Result<(LeaseStatus, i64)> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let (last_id, total): (i64, i64) = match &job.target_endpoint {
                Some(endpoint) => {
                    sqlx::query_as("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM subscriptions WHERE endpoint = $1")
                        .bind(endpoint)
                        .fetch_one(&mut *tx)
                        .await?
                }
                // The kept count, read in the same snapshot as the highest id: no scan at 1M
                // either. Exact on SQLite (one writer). On PostgreSQL a subscribe whose id
                // was drawn before the snapshot but that commits after it is sent to
                // without being counted in `total`: it subscribed during the start.
                None => {
                    sqlx::query_as("SELECT (SELECT COALESCE(MAX(id), 0) FROM subscriptions), (SELECT CAST(SUM(stored) AS BIGINT) FROM subscription_count)")
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            let started = sqlx::query(
                "UPDATE broadcasts SET status = 'sending', last_id = $1, total = $2, started_at = $3 WHERE id = $4 AND status = 'queued' AND lease_epoch = $5",
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
        })
    }

    /// The page of a broadcast's subscriptions after subscription id `after`.
    pub async fn broadcast_page(&self, job: &BroadcastJob, after: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        on_pool!(self, pool => {
            let up_to = job.last_id.unwrap_or(0);
            match &job.target_endpoint {
                Some(endpoint) => Ok(sqlx::query_as(concat!(
                    "SELECT ",
                    subscription_columns!(),
                    " FROM subscriptions WHERE endpoint = $1 AND id > $2 AND id <= $3 LIMIT $4"
                ))
                .bind(endpoint)
                .bind(after)
                .bind(up_to)
                .bind(limit)
                .fetch_all(pool)
                .await?),
                None => self.subscriptions_page(after, up_to, limit).await,
            }
        })
    }

    /// Commits one batch: counts, failure reasons, retries, removals, the cursor and the
    /// stopped origins, in one transaction, and renews the lease. Writes nothing when the
    /// lease was lost (the epoch moved on).
    pub async fn record_progress(&self, job: &BroadcastJob, owner: &str, batch: &Progress) -> anyhow::Result<LeaseStatus> {
        let read_failures = match self.db {
            Db::Sqlite(_) => "SELECT failures FROM broadcasts WHERE id = $1",
            Db::Postgres(_) => "SELECT failures FROM broadcasts WHERE id = $1 FOR UPDATE",
        };
        on_pool!(self, pool => {
            let job_id = job.id;
            let now = now_rfc3339();
            let mut tx = pool.begin_write().await?;
            let Json(mut by_reason): Json<BTreeMap<String, i64>> =
                sqlx::query_scalar(read_failures).bind(job_id).fetch_one(&mut *tx).await?;
            for (_, reason) in &batch.failed {
                *by_reason.entry((*reason).to_string()).or_default() += 1;
            }
            let updated = sqlx::query(
                "UPDATE broadcasts SET cursor = COALESCE($1, cursor), delivered = delivered + $2, failed = failed + $3, removed = removed + $4,
                 retried = retried + $5, failures = $6, stopped_origins = $7, lease_until = $8 WHERE id = $9 AND lease_owner = $10 AND lease_epoch = $11",
            )
            .bind(batch.cursor)
            .bind(batch.delivered.len() as i64)
            .bind(batch.failed.len() as i64)
            .bind(batch.removed.len() as i64)
            .bind(batch.retried)
            .bind(Json(&by_reason))
            .bind(Json(&batch.stopped_origins))
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
                sqlx::query("UPDATE subscriptions SET last_success_at = $1, failure_count = 0, vapid_refusals = 0 WHERE id = $2")
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (id, _) in &batch.failed {
                sqlx::query("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            for id in &batch.refused {
                sqlx::query("UPDATE subscriptions SET vapid_refusals = vapid_refusals + 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            for id in &batch.removed {
                sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            let settled = batch.delivered.iter().chain(&batch.removed).chain(batch.failed.iter().map(|(id, _)| id));
            for id in settled {
                sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = $1 AND subscription_id = $2")
                    .bind(job_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (id, attempts, not_before) in &batch.retry {
                sqlx::query(
                    "INSERT INTO broadcast_retries (broadcast_id, subscription_id, attempts, not_before) VALUES ($1, $2, $3, $4)
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
        })
    }

    /// Retries due by `now_ms`, with the sends already made. Retries whose subscription
    /// was deleted meanwhile are skipped by the join (and dropped when the broadcast
    /// finishes), so each call reads only what it returns: the pass stays linear.
    pub async fn due_retries(&self, job_id: i64, now_ms: i64, limit: i64) -> anyhow::Result<Vec<(StoredSubscription, u32)>> {
        on_pool!(self, pool => {
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
                 WHERE r.broadcast_id = $1 AND r.not_before <= $2 ORDER BY r.not_before LIMIT $3"
            ))
            .bind(job_id)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|row| (row.subscription, row.attempts.max(0) as u32)).collect())
        })
    }

    /// When the next retry of a broadcast is due (unix ms), if any remain: the first in
    /// `not_before` order whose subscription still exists (an index walk, not a scan).
    pub async fn next_retry_at(&self, job_id: i64) -> anyhow::Result<Option<i64>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_scalar(
                "SELECT r.not_before FROM broadcast_retries r JOIN subscriptions s ON s.id = r.subscription_id
                 WHERE r.broadcast_id = $1 ORDER BY r.not_before LIMIT 1",
            )
            .bind(job_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Extends our claim on a broadcast, if it is still ours.
    pub async fn renew_lease(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE broadcasts SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND lease_epoch = $4")
                .bind(self.lease_until())
                .bind(job.id)
                .bind(owner)
                .bind(job.lease_epoch)
                .execute(pool)
                .await?;
            Ok(LeaseStatus::of(done.rows_affected()))
        })
    }

    /// Hands a claim back (on shutdown), so another worker resumes at once instead of
    /// waiting for the lease to lapse.
    pub async fn release_lease(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE broadcasts SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3")
                .bind(job.id)
                .bind(owner)
                .bind(job.lease_epoch)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Counts one click on a broadcast's notification; false when there is no such broadcast.
    pub async fn record_click(&self, id: i64) -> anyhow::Result<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE broadcasts SET clicks = clicks + 1 WHERE id = $1").bind(id).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Marks a broadcast done (if the lease is still ours) and drops its leftover retry rows.
    pub async fn finish_broadcast(&self, job: &BroadcastJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE broadcasts SET status = 'done', finished_at = $1, lease_owner = NULL, lease_until = NULL
                 WHERE id = $2 AND lease_owner = $3 AND lease_epoch = $4",
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
            sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = $1").bind(job.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(LeaseStatus::Held)
        })
    }
}
