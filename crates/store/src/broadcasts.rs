//! The broadcast ledger: queued broadcasts, their ranges, the leases on them (with a
//! fencing epoch), the committed progress of each batch, the durable retries, the shared
//! `Retry-After` holds, and clicks.
//!
//! A queued broadcast is claimed once, to start it: its scope is fixed (the subscriptions
//! stored then) and split into ranges of subscription ids. Then any worker of any
//! instance claims a range at a time, so several instances send one broadcast together.
//! Each range commits its own cursor and adds its outcomes to the broadcast's counts;
//! the last range to finish marks the broadcast done.
//!
//! A targeted broadcast (by topics, users, or both) keeps its audience as rows that its
//! pages join against, so its scope streams in id order like everyone's does. A
//! scheduled one is claimed once its `send_at` has come; until it starts it can be
//! cancelled.

use crate::{now_rfc3339, on_pool, unix_now, Db, LeaseStatus, Store, StoredSubscription, WritePool};
use clarion_domain::notification::Notification;
use clarion_domain::{Audience, BroadcastDetail, BroadcastState, BroadcastStatus, FailureReason, Urgency};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::FromRow;
use std::collections::BTreeMap;

/// Failure reason → count.
pub type FailureCounts = BTreeMap<String, i64>;

/// Origin → why sending to it stopped.
pub type StoppedOrigins = BTreeMap<String, String>;

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
    pub failures: Json<FailureCounts>,
    pub stopped_origins: Json<StoppedOrigins>,
    /// Who it reaches; `None`: everyone.
    pub audience: Option<Json<Audience>>,
    /// When a scheduled send starts (unix seconds).
    pub send_at: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The columns of a [`BroadcastRecord`], for every query that reads one.
macro_rules! broadcast_status_columns {
    () => {
        "id, status, total, delivered, failed, removed, retried, clicks, target_endpoint IS NOT NULL AS targeted, \
         failures, stopped_origins, audience, send_at, created_at, started_at, finished_at"
    };
}

/// Claims a broadcast to start it: the oldest queued one, or scheduled one whose time has
/// come, whose lease is free, lapsed or already ours (`$4` narrows it to one id), and
/// bumps its fencing epoch. The subquery's closing parenthesis comes after the backend's
/// locking clause.
macro_rules! claim_broadcast_sql {
    () => {
        "UPDATE broadcasts SET lease_owner = $1, lease_until = $2, lease_epoch = lease_epoch + 1
         WHERE id = (SELECT id FROM broadcasts WHERE (status = 'queued' OR (status = 'scheduled' AND send_at <= $3))
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
                       AND (CAST($4 AS BIGINT) IS NULL OR id = $4)
                     ORDER BY id LIMIT 1"
    };
}

/// What a claim answers: a [`BroadcastStart`].
macro_rules! claim_broadcast_returning {
    () => {
        " RETURNING id, target_endpoint, by_topics, by_users, lease_epoch"
    };
}

/// A queued broadcast claimed to be started.
#[derive(Clone, Debug, FromRow)]
pub struct BroadcastStart {
    pub id: i64,
    pub target_endpoint: Option<String>,
    /// The scope is filtered by the broadcast's topics, its users, or both.
    pub by_topics: bool,
    pub by_users: bool,
    /// The fencing token of this claim.
    pub lease_epoch: i64,
}

/// A claimed range of a broadcast, with what the broadcast sends.
#[derive(Clone, Debug, FromRow)]
pub struct RangeJob {
    pub broadcast_id: i64,
    pub range_no: i64,
    /// The range holds the subscriptions with ids in `(after_id, last_id]`.
    pub last_id: i64,
    /// Highest id whose outcome is committed; the main pass resumes after it.
    pub cursor: i64,
    /// The fencing token of this claim: every write checks it is still current.
    pub lease_epoch: i64,
    pub payload: String,
    pub ttl: i64,
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
    pub target_endpoint: Option<String>,
    pub by_topics: bool,
    pub by_users: bool,
}

/// A push to try again: a durable retry row of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryDue {
    pub subscription_id: i64,
    /// Sends made so far, the first included.
    pub attempts: u32,
    /// Not before this unix millisecond.
    pub not_before_ms: i64,
}

/// The settled outcomes of one batch of sends, committed together in one transaction.
#[derive(Debug, Default)]
pub struct Progress {
    /// The main pass's new cursor; `None` for a batch of retries.
    pub cursor: Option<i64>,
    pub delivered: Vec<i64>,
    pub removed: Vec<i64>,
    /// (subscription id, failure reason)
    pub failed: Vec<(i64, FailureReason)>,
    /// Failed ids whose refusal counts against the subscription (`vapid_refusals`).
    pub refused: Vec<i64>,
    /// The pushes to try again, and when.
    pub retry: Vec<RetryDue>,
    /// Sends in this batch that were retries.
    pub retried: i64,
    /// Origins this range stopped sending to (added to the broadcast's).
    pub stopped_origins: StoppedOrigins,
    /// Origins that asked to wait (429 `Retry-After`), until when (unix ms): shared with
    /// every instance.
    pub holds: Vec<(String, i64)>,
}

/// The number of subscription ids per range: about 64 ranges per broadcast, at least
/// 1,000 ids each, so a few instances share a large broadcast and a small one is one range.
pub fn range_span(last_id: i64) -> i64 {
    ((last_id + 63) / 64).max(1_000)
}

/// A targeted broadcast's scope: subscriptions with any of the broadcast's topics (`$1`
/// is the broadcast's id). An index probe per subscription looked at.
macro_rules! topic_filter {
    () => {
        " AND EXISTS (SELECT 1 FROM subscription_topics st JOIN broadcast_topics bt ON bt.topic = st.topic
                      WHERE bt.broadcast_id = $1 AND st.subscription_id = s.id)"
    };
}

/// A targeted broadcast's scope: the subscriptions of the broadcast's users.
macro_rules! user_filter {
    () => {
        " AND s.user_id IN (SELECT bu.user_id FROM broadcast_users bu WHERE bu.broadcast_id = $1)"
    };
}

/// The four forms of a query over a broadcast's scope, by audience: `[topics, users,
/// both]`. The plain form (everyone) is written where it is used.
macro_rules! audience_forms {
    ($head:expr, $tail:expr) => {
        [
            concat!($head, topic_filter!(), $tail),
            concat!($head, user_filter!(), $tail),
            concat!($head, topic_filter!(), user_filter!(), $tail),
        ]
    };
}

/// Picks the form of a scope query for a targeted broadcast.
fn audience_form(forms: [&'static str; 3], by_topics: bool, by_users: bool) -> &'static str {
    match (by_topics, by_users) {
        (true, false) => forms[0],
        (false, true) => forms[1],
        _ => forms[2],
    }
}

/// The number of subscription ids per range of a targeted broadcast whose scope up to
/// `last_id` matched `matched` subscriptions: ranges of at least 1,000 matches (so a
/// small audience is one range), at most 64 of them. Ranges that hold few matches would
/// cost more in claims and commits than in sends.
pub fn audience_span(last_id: i64, matched: i64) -> i64 {
    let ranges = (matched / 1_000).clamp(1, 64);
    ((last_id + ranges - 1) / ranges).max(1)
}

/// What cancelling a broadcast did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was scheduled or queued, and is cancelled now.
    Cancelled,
    /// It has started (or finished, or was cancelled before): nothing changed.
    TooLate(BroadcastState),
    NotFound,
}

/// Claims a range: the first open one (of the oldest broadcast) whose lease is free,
/// lapsed or already ours (`$4` narrows it to one broadcast), and bumps its fencing
/// epoch. The subquery's closing parenthesis comes after the backend's locking clause.
macro_rules! claim_range_sql {
    () => {
        "UPDATE broadcast_ranges SET lease_owner = $1, lease_until = $2, lease_epoch = lease_epoch + 1
         WHERE (broadcast_id, range_no) = (SELECT broadcast_id, range_no FROM broadcast_ranges WHERE done = FALSE
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3)
                       AND (CAST($4 AS BIGINT) IS NULL OR broadcast_id = $4)
                     ORDER BY broadcast_id, range_no LIMIT 1"
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

impl Store {
    /// Records a broadcast; it is durable before this returns. The payload carries the
    /// broadcast's own id (for click reports), so it is written once the id is known, in
    /// the same transaction.
    ///
    /// With `send_at` (unix seconds) it is `scheduled` until then. Its audience is stored
    /// twice: as JSON for its status, and as rows its pages join against.
    pub async fn create_broadcast(&self, n: &Notification, lease_owner: Option<&str>, send_at: Option<i64>) -> anyhow::Result<i64> {
        let audience = &n.audience;
        let state = if send_at.is_some() { BroadcastState::Scheduled } else { BroadcastState::Queued };
        let audience_json = (!audience.is_everyone()).then_some(Json(audience));
        let lease_until = lease_owner.map(|_| self.lease_until());
        macro_rules! insert {
            ($tx:expr) => {{
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO broadcasts (payload, ttl, urgency, topic, target_endpoint, created_at, lease_owner, lease_until,
                                             status, send_at, audience, by_topics, by_users)
                     VALUES ('', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                )
                .bind(n.ttl as i64)
                .bind(n.urgency)
                .bind(&n.topic)
                .bind(&n.endpoint)
                .bind(now_rfc3339())
                .bind(lease_owner)
                .bind(lease_until)
                .bind(state)
                .bind(send_at)
                .bind(audience_json)
                .bind(!audience.topics.is_empty())
                .bind(!audience.users.is_empty())
                .fetch_one(&mut *$tx)
                .await?;
                sqlx::query("UPDATE broadcasts SET payload = $1 WHERE id = $2")
                    .bind(n.payload(Some(id)))
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
                id
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                let id = insert!(tx);
                for topic in &audience.topics {
                    sqlx::query("INSERT INTO broadcast_topics (broadcast_id, topic) VALUES ($1, $2)")
                        .bind(id)
                        .bind(topic)
                        .execute(&mut *tx)
                        .await?;
                }
                for user in &audience.users {
                    sqlx::query("INSERT INTO broadcast_users (broadcast_id, user_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(user)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(id)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                let id = insert!(tx);
                if !audience.topics.is_empty() {
                    sqlx::query("INSERT INTO broadcast_topics (broadcast_id, topic) SELECT $1, UNNEST($2::TEXT[])")
                        .bind(id)
                        .bind(&audience.topics)
                        .execute(&mut *tx)
                        .await?;
                }
                if !audience.users.is_empty() {
                    sqlx::query("INSERT INTO broadcast_users (broadcast_id, user_id) SELECT $1, UNNEST($2::TEXT[])")
                        .bind(id)
                        .bind(&audience.users)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(id)
            }
        }
    }

    /// Cancels a broadcast that has not started (scheduled or queued).
    pub async fn cancel_broadcast(&self, id: i64) -> anyhow::Result<Cancelled> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let cancelled = sqlx::query(
                "UPDATE broadcasts SET status = 'cancelled', cancelled_at = $1, finished_at = $1, lease_owner = NULL, lease_until = NULL
                 WHERE id = $2 AND status IN ('scheduled', 'queued')",
            )
            .bind(now_rfc3339())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let outcome = if cancelled.rows_affected() > 0 {
                Cancelled::Cancelled
            } else {
                match sqlx::query_scalar::<_, BroadcastState>("SELECT status FROM broadcasts WHERE id = $1").bind(id).fetch_optional(&mut *tx).await? {
                    Some(state) => Cancelled::TooLate(state),
                    None => Cancelled::NotFound,
                }
            };
            tx.commit().await?;
            Ok(outcome)
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

    /// Newest first; only those in `state`, when given.
    pub async fn list_broadcasts(&self, limit: i64, before: i64, state: Option<BroadcastState>) -> anyhow::Result<Vec<BroadcastRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "SELECT ",
                broadcast_status_columns!(),
                " FROM broadcasts WHERE id < $1 AND (CAST($3 AS TEXT) IS NULL OR status = $3) ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .bind(state)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Newest first, with payloads; only those in `state`, when given.
    pub async fn list_broadcast_details(
        &self,
        limit: i64,
        before: i64,
        state: Option<BroadcastState>,
    ) -> anyhow::Result<Vec<BroadcastDetailRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "SELECT ",
                broadcast_status_columns!(),
                ", payload, ttl, urgency, topic FROM broadcasts WHERE id < $1 AND (CAST($3 AS TEXT) IS NULL OR status = $3)
                 ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .bind(state)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Takes the oldest queued broadcast whose lease is free (or already ours) to start
    /// it, with a new epoch that fences off any earlier holder.
    pub async fn claim_broadcast(&self, owner: &str, only: Option<i64>) -> anyhow::Result<Option<BroadcastStart>> {
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

    /// Starts a claimed broadcast: fixes its scope (the subscriptions that exist now),
    /// splits it into ranges of [`range_span`] ids, marks it sending and hands its lease
    /// back. With nobody in scope it is done at once.
    pub async fn start_broadcast(&self, start: &BroadcastStart, owner: &str) -> anyhow::Result<LeaseStatus> {
        let now = now_rfc3339();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let targeted = start.by_topics || start.by_users;
            let (last_id, total): (i64, i64) = match &start.target_endpoint {
                // The audience, counted once when sending starts: one pass over the
                // scope, never a query per subscription.
                None if targeted => {
                    let forms = audience_forms!("SELECT COALESCE(MAX(s.id), 0), COUNT(*) FROM subscriptions s WHERE TRUE", "");
                    sqlx::query_as(audience_form(forms, start.by_topics, start.by_users)).bind(start.id).fetch_one(&mut *tx).await?
                }
                Some(endpoint) => {
                    sqlx::query_as("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM subscriptions WHERE endpoint = $1")
                        .bind(endpoint)
                        .fetch_one(&mut *tx)
                        .await?
                }
                // The kept count, read in the same snapshot as the highest id: no scan at
                // 1M either. Exact on SQLite (one writer). On PostgreSQL a subscribe whose
                // id was drawn before the snapshot but that commits after it is sent to
                // without being counted in `total`: it subscribed during the start.
                None => {
                    sqlx::query_as(
                        "SELECT (SELECT COALESCE(MAX(id), 0) FROM subscriptions), (SELECT CAST(SUM(stored) AS BIGINT) FROM subscription_count)",
                    )
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            let started = sqlx::query(
                "UPDATE broadcasts SET status = $1, last_id = $2, total = $3, started_at = $4, finished_at = $5,
                 lease_owner = NULL, lease_until = NULL
                 WHERE id = $6 AND status IN ('queued', 'scheduled') AND lease_owner = $7 AND lease_epoch = $8",
            )
            .bind(if total == 0 { BroadcastState::Done } else { BroadcastState::Sending })
            .bind(last_id)
            .bind(total)
            .bind(&now)
            .bind((total == 0).then_some(&now))
            .bind(start.id)
            .bind(owner)
            .bind(start.lease_epoch)
            .execute(&mut *tx)
            .await?;
            if LeaseStatus::of(started.rows_affected()) == LeaseStatus::Lost {
                return Ok(LeaseStatus::Lost); // the transaction rolls back on drop
            }
            if total > 0 {
                let span = match (&start.target_endpoint, targeted) {
                    (Some(_), _) => last_id,
                    (None, true) => audience_span(last_id, total),
                    (None, false) => range_span(last_id),
                };
                let mut after = 0;
                let mut range_no = 0;
                while after < last_id {
                    let up_to = (after + span).min(last_id);
                    sqlx::query("INSERT INTO broadcast_ranges (broadcast_id, range_no, after_id, last_id, cursor) VALUES ($1, $2, $3, $4, $3)")
                        .bind(start.id)
                        .bind(range_no)
                        .bind(after)
                        .bind(up_to)
                        .execute(&mut *tx)
                        .await?;
                    after = up_to;
                    range_no += 1;
                }
            }
            tx.commit().await?;
            Ok(LeaseStatus::Held)
        })
    }

    /// Takes an open range whose lease is free or lapsed (of broadcast `only`, if given),
    /// with a new epoch that fences off any earlier holder.
    pub async fn claim_range(&self, owner: &str, only: Option<i64>) -> anyhow::Result<Option<RangeJob>> {
        let claim = match self.db {
            Db::Sqlite(_) => concat!(claim_range_sql!(), ") RETURNING broadcast_id, range_no"),
            Db::Postgres(_) => concat!(claim_range_sql!(), " FOR UPDATE SKIP LOCKED) RETURNING broadcast_id, range_no"),
        };
        let now = unix_now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed: Option<(i64, i64)> =
                sqlx::query_as(claim).bind(owner).bind(self.lease_until()).bind(now).bind(only).fetch_optional(&mut *tx).await?;
            let Some((broadcast_id, range_no)) = claimed else { return Ok(None) };
            let job: RangeJob = sqlx::query_as(
                "SELECT r.broadcast_id, r.range_no, r.last_id, r.cursor, r.lease_epoch,
                        b.payload, b.ttl, b.urgency, b.topic, b.target_endpoint, b.by_topics, b.by_users
                 FROM broadcast_ranges r JOIN broadcasts b ON b.id = r.broadcast_id
                 WHERE r.broadcast_id = $1 AND r.range_no = $2",
            )
            .bind(broadcast_id)
            .bind(range_no)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(job))
        })
    }

    /// The page of a range's subscriptions after subscription id `after`.
    pub async fn broadcast_page(&self, range: &RangeJob, after: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        match &range.target_endpoint {
            Some(endpoint) => on_pool!(self, pool => Ok(sqlx::query_as(concat!(
                "SELECT ",
                subscription_columns!(),
                " FROM subscriptions WHERE endpoint = $1 AND id > $2 AND id <= $3 LIMIT $4"
            ))
            .bind(endpoint)
            .bind(after)
            .bind(range.last_id)
            .bind(limit)
            .fetch_all(pool)
            .await?)),
            None if range.by_topics || range.by_users => {
                let forms = audience_forms!(
                    concat!("SELECT ", subscription_columns!(), " FROM subscriptions s WHERE s.id > $2 AND s.id <= $3"),
                    " ORDER BY s.id LIMIT $4"
                );
                on_pool!(self, pool => Ok(sqlx::query_as(audience_form(forms, range.by_topics, range.by_users))
                    .bind(range.broadcast_id)
                    .bind(after)
                    .bind(range.last_id)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?))
            }
            None => self.subscriptions_page(after, range.last_id, limit).await,
        }
    }

    /// Commits one batch of a range: its cursor, and the broadcast's counts, failure
    /// reasons and stopped origins, the subscriptions' state, retries and removals, and the
    /// origins' holds, in one transaction; renews the lease. Writes nothing when the
    /// lease was lost (the epoch moved on).
    pub async fn record_progress(&self, range: &RangeJob, owner: &str, batch: &Progress) -> anyhow::Result<LeaseStatus> {
        // Ranges of one broadcast commit concurrently on PostgreSQL: the broadcast's row is
        // locked while its failure reasons and stopped origins are merged.
        let read_merged = match self.db {
            Db::Sqlite(_) => "SELECT failures, stopped_origins FROM broadcasts WHERE id = $1",
            Db::Postgres(_) => "SELECT failures, stopped_origins FROM broadcasts WHERE id = $1 FOR UPDATE",
        };
        let now = now_rfc3339();
        let id = range.broadcast_id;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let held = sqlx::query(
                "UPDATE broadcast_ranges SET cursor = COALESCE($1, cursor), lease_until = $2
                 WHERE broadcast_id = $3 AND range_no = $4 AND lease_owner = $5 AND lease_epoch = $6",
            )
            .bind(batch.cursor)
            .bind(self.lease_until())
            .bind(id)
            .bind(range.range_no)
            .bind(owner)
            .bind(range.lease_epoch)
            .execute(&mut *tx)
            .await?;
            if LeaseStatus::of(held.rows_affected()) == LeaseStatus::Lost {
                return Ok(LeaseStatus::Lost);
            }
            // The failure reasons and stopped origins are read, merged and written back
            // only when the batch adds to them, which a batch that all went through does not.
            let merged = if batch.failed.is_empty() && batch.stopped_origins.is_empty() {
                None
            } else {
                let (Json(mut by_reason), Json(mut stopped)): (Json<FailureCounts>, Json<StoppedOrigins>) =
                    sqlx::query_as(read_merged).bind(id).fetch_one(&mut *tx).await?;
                for (_, reason) in &batch.failed {
                    *by_reason.entry(reason.as_str().to_string()).or_default() += 1;
                }
                for (origin, cause) in &batch.stopped_origins {
                    stopped.entry(origin.clone()).or_insert_with(|| cause.clone());
                }
                Some((by_reason, stopped))
            };
            sqlx::query(
                "UPDATE broadcasts SET delivered = delivered + $1, failed = failed + $2, removed = removed + $3,
                 retried = retried + $4, failures = COALESCE($5, failures), stopped_origins = COALESCE($6, stopped_origins)
                 WHERE id = $7",
            )
            .bind(batch.delivered.len() as i64)
            .bind(batch.failed.len() as i64)
            .bind(batch.removed.len() as i64)
            .bind(batch.retried)
            .bind(merged.as_ref().map(|(by_reason, _)| Json(by_reason)))
            .bind(merged.as_ref().map(|(_, stopped)| Json(stopped)))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.apply_outcomes(id, range.range_no, batch, &now).await?;
            if !batch.holds.is_empty() {
                // Holds that ended a day ago are swept when new ones are written.
                let day_ago = chrono::Utc::now().timestamp_millis() - 86_400_000;
                sqlx::query("DELETE FROM origin_holds WHERE until_ms < $1").bind(day_ago).execute(&mut *tx).await?;
            }
            for (origin, until_ms) in &batch.holds {
                sqlx::query(
                    "INSERT INTO origin_holds (origin, until_ms) VALUES ($1, $2) ON CONFLICT (origin) DO UPDATE
                     SET until_ms = CASE WHEN excluded.until_ms > origin_holds.until_ms THEN excluded.until_ms ELSE origin_holds.until_ms END",
                )
                .bind(origin)
                .bind(until_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(LeaseStatus::Held)
        })
    }

    /// What every sender of broadcast `id` must know about the push services now: the
    /// origins that asked every sender to wait and until when (unix ms), for those still
    /// waiting at `now_ms`, and the origins the broadcast stopped sending to, in one query.
    pub async fn origin_state(&self, id: i64, now_ms: i64) -> anyhow::Result<(Vec<(String, i64)>, StoppedOrigins)> {
        let query = match self.db {
            Db::Sqlite(_) => {
                "SELECT (SELECT json_group_array(json_array(origin, until_ms)) FROM origin_holds WHERE until_ms > $2), stopped_origins
                 FROM broadcasts WHERE id = $1"
            }
            Db::Postgres(_) => {
                "SELECT COALESCE((SELECT json_agg(json_build_array(origin, until_ms)) FROM origin_holds WHERE until_ms > $2), '[]'::json),
                 stopped_origins FROM broadcasts WHERE id = $1"
            }
        };
        let (Json(holds), Json(stopped)) = on_pool!(self, pool => sqlx::query_as(query).bind(id).bind(now_ms).fetch_one(pool).await?);
        Ok((holds, stopped))
    }

    /// A range's retries due by `now_ms`, with the sends already made. Retries whose
    /// subscription was deleted meanwhile are skipped by the join (and dropped when the
    /// range finishes), so each call reads only what it returns: the pass stays linear.
    pub async fn due_retries(&self, range: &RangeJob, now_ms: i64, limit: i64) -> anyhow::Result<Vec<(StoredSubscription, u32)>> {
        #[derive(FromRow)]
        struct DueRetry {
            #[sqlx(flatten)]
            subscription: StoredSubscription,
            attempts: i64,
        }
        // The two tables share no column name, so the subscription columns need no prefix.
        let rows: Vec<DueRetry> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ",
            subscription_columns!(),
            ", r.attempts FROM broadcast_retries r JOIN subscriptions s ON s.id = r.subscription_id
             WHERE r.broadcast_id = $1 AND r.range_no = $2 AND r.not_before <= $3 ORDER BY r.not_before LIMIT $4"
        ))
        .bind(range.broadcast_id)
        .bind(range.range_no)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|row| (row.subscription, row.attempts.max(0) as u32)).collect())
    }

    /// When a range's next retry is due (unix ms), if any remain: the first in
    /// `not_before` order whose subscription still exists (an index walk, not a scan).
    pub async fn next_retry_at(&self, range: &RangeJob) -> anyhow::Result<Option<i64>> {
        on_pool!(self, pool => Ok(sqlx::query_scalar(
            "SELECT r.not_before FROM broadcast_retries r JOIN subscriptions s ON s.id = r.subscription_id
             WHERE r.broadcast_id = $1 AND r.range_no = $2 ORDER BY r.not_before LIMIT 1",
        )
        .bind(range.broadcast_id)
        .bind(range.range_no)
        .fetch_optional(pool)
        .await?))
    }

    /// Extends our claim on a range, if it is still ours.
    pub async fn renew_lease(&self, range: &RangeJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        let renewed = on_pool!(self, pool => sqlx::query(
            "UPDATE broadcast_ranges SET lease_until = $1 WHERE broadcast_id = $2 AND range_no = $3 AND lease_owner = $4 AND lease_epoch = $5",
        )
        .bind(self.lease_until())
        .bind(range.broadcast_id)
        .bind(range.range_no)
        .bind(owner)
        .bind(range.lease_epoch)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(LeaseStatus::of(renewed))
    }

    /// Hands a claim back (on shutdown), so another worker resumes at once instead of
    /// waiting for the lease to lapse.
    pub async fn release_lease(&self, range: &RangeJob, owner: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE broadcast_ranges SET lease_owner = NULL, lease_until = NULL
                 WHERE broadcast_id = $1 AND range_no = $2 AND lease_owner = $3 AND lease_epoch = $4",
            )
            .bind(range.broadcast_id)
            .bind(range.range_no)
            .bind(owner)
            .bind(range.lease_epoch)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Marks a range done (if the lease is still ours) and drops its leftover retry rows;
    /// the last range of a broadcast to finish marks the broadcast done. Answers whether
    /// the broadcast is done now.
    pub async fn finish_range(&self, range: &RangeJob, owner: &str) -> anyhow::Result<(LeaseStatus, bool)> {
        // Ranges finishing at once on PostgreSQL take turns on the broadcast's row, so the
        // last one sees every other as done.
        let lock_broadcast = match self.db {
            Db::Sqlite(_) => "SELECT id FROM broadcasts WHERE id = $1",
            Db::Postgres(_) => "SELECT id FROM broadcasts WHERE id = $1 FOR UPDATE",
        };
        let now = now_rfc3339();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(lock_broadcast).bind(range.broadcast_id).execute(&mut *tx).await?;
            let finished = sqlx::query(
                "UPDATE broadcast_ranges SET done = TRUE, lease_owner = NULL, lease_until = NULL
                 WHERE broadcast_id = $1 AND range_no = $2 AND lease_owner = $3 AND lease_epoch = $4",
            )
            .bind(range.broadcast_id)
            .bind(range.range_no)
            .bind(owner)
            .bind(range.lease_epoch)
            .execute(&mut *tx)
            .await?;
            if LeaseStatus::of(finished.rows_affected()) == LeaseStatus::Lost {
                return Ok((LeaseStatus::Lost, false)); // the transaction rolls back on drop
            }
            sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = $1 AND range_no = $2")
                .bind(range.broadcast_id)
                .bind(range.range_no)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(
                "UPDATE broadcasts SET status = 'done', finished_at = $1 WHERE id = $2 AND status = 'sending'
                 AND NOT EXISTS (SELECT 1 FROM broadcast_ranges WHERE broadcast_id = $2 AND done = FALSE)",
            )
            .bind(&now)
            .bind(range.broadcast_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((LeaseStatus::Held, done.rows_affected() > 0))
        })
    }

    /// Counts one click on a broadcast's notification; false when there is no such broadcast.
    pub async fn record_click(&self, id: i64) -> anyhow::Result<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE broadcasts SET clicks = clicks + 1 WHERE id = $1").bind(id).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

/// Writes a batch's outcomes to the subscriptions and the retry rows, inside the commit's
/// transaction: one statement per kind of outcome on both backends, the ids passed as one
/// array (`json_each` on SQLite, `= ANY` on PostgreSQL).
trait ApplyOutcomes {
    async fn apply_outcomes(&mut self, broadcast_id: i64, range_no: i64, batch: &Progress, now: &str) -> anyhow::Result<()>;
}

/// The retry rows a batch settles: those of its delivered, removed and failed
/// subscriptions, when it is a batch of retries. A main-pass page has none to settle: its
/// subscriptions lie past the range's cursor, and every retry row was committed together
/// with a cursor past its subscription.
fn settled_retries(batch: &Progress) -> Vec<i64> {
    if batch.cursor.is_some() {
        return Vec::new();
    }
    batch.delivered.iter().chain(&batch.removed).chain(batch.failed.iter().map(|(id, _)| id)).copied().collect()
}

/// Ids as a JSON array, for SQLite's `json_each`: a batch's outcomes of one kind are one
/// statement, as on PostgreSQL (`= ANY`), rather than one per subscription, each a
/// round trip to SQLite's thread.
fn json_array<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("numbers serialize")
}

impl ApplyOutcomes for sqlx::Transaction<'static, sqlx::Sqlite> {
    async fn apply_outcomes(&mut self, broadcast_id: i64, range_no: i64, batch: &Progress, now: &str) -> anyhow::Result<()> {
        const EACH: &str = "(SELECT value FROM json_each($1))";
        let failed: Vec<i64> = batch.failed.iter().map(|(id, _)| *id).collect();
        if !batch.delivered.is_empty() {
            sqlx::query(&format!(
                "UPDATE subscriptions SET last_success_at = $2, failure_count = 0, vapid_refusals = 0 WHERE id IN {EACH}"
            ))
            .bind(json_array(&batch.delivered))
            .bind(now)
            .execute(&mut **self)
            .await?;
        }
        if !failed.is_empty() {
            sqlx::query(&format!("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id IN {EACH}"))
                .bind(json_array(&failed))
                .execute(&mut **self)
                .await?;
        }
        if !batch.refused.is_empty() {
            sqlx::query(&format!("UPDATE subscriptions SET vapid_refusals = vapid_refusals + 1 WHERE id IN {EACH}"))
                .bind(json_array(&batch.refused))
                .execute(&mut **self)
                .await?;
        }
        if !batch.removed.is_empty() {
            sqlx::query(&format!("DELETE FROM subscriptions WHERE id IN {EACH}"))
                .bind(json_array(&batch.removed))
                .execute(&mut **self)
                .await?;
        }
        let settled: Vec<i64> = settled_retries(batch);
        if !settled.is_empty() {
            sqlx::query(&format!("DELETE FROM broadcast_retries WHERE broadcast_id = $2 AND subscription_id IN {EACH}"))
                .bind(json_array(&settled))
                .bind(broadcast_id)
                .execute(&mut **self)
                .await?;
        }
        if !batch.retry.is_empty() {
            // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
            sqlx::query(
                "INSERT INTO broadcast_retries (broadcast_id, subscription_id, attempts, not_before, range_no)
                 SELECT $2, value ->> 'subscription_id', value ->> 'attempts', value ->> 'not_before_ms', $3 FROM json_each($1) WHERE true
                 ON CONFLICT (broadcast_id, subscription_id) DO UPDATE SET attempts = excluded.attempts, not_before = excluded.not_before",
            )
            .bind(json_array(&batch.retry))
            .bind(broadcast_id)
            .bind(range_no)
            .execute(&mut **self)
            .await?;
        }
        Ok(())
    }
}

impl ApplyOutcomes for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn apply_outcomes(&mut self, broadcast_id: i64, range_no: i64, batch: &Progress, now: &str) -> anyhow::Result<()> {
        let failed: Vec<i64> = batch.failed.iter().map(|(id, _)| *id).collect();
        if !batch.delivered.is_empty() {
            sqlx::query("UPDATE subscriptions SET last_success_at = $1, failure_count = 0, vapid_refusals = 0 WHERE id = ANY($2)")
                .bind(now)
                .bind(&batch.delivered)
                .execute(&mut **self)
                .await?;
        }
        if !failed.is_empty() {
            sqlx::query("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id = ANY($1)")
                .bind(&failed)
                .execute(&mut **self)
                .await?;
        }
        if !batch.refused.is_empty() {
            sqlx::query("UPDATE subscriptions SET vapid_refusals = vapid_refusals + 1 WHERE id = ANY($1)")
                .bind(&batch.refused)
                .execute(&mut **self)
                .await?;
        }
        if !batch.removed.is_empty() {
            sqlx::query("DELETE FROM subscriptions WHERE id = ANY($1)").bind(&batch.removed).execute(&mut **self).await?;
        }
        let settled: Vec<i64> = settled_retries(batch);
        if !settled.is_empty() {
            sqlx::query("DELETE FROM broadcast_retries WHERE broadcast_id = $1 AND subscription_id = ANY($2)")
                .bind(broadcast_id)
                .bind(&settled)
                .execute(&mut **self)
                .await?;
        }
        if !batch.retry.is_empty() {
            let subscriptions: Vec<i64> = batch.retry.iter().map(|due| due.subscription_id).collect();
            let attempts: Vec<i64> = batch.retry.iter().map(|due| i64::from(due.attempts)).collect();
            let not_before: Vec<i64> = batch.retry.iter().map(|due| due.not_before_ms).collect();
            sqlx::query(
                "INSERT INTO broadcast_retries (broadcast_id, subscription_id, attempts, not_before, range_no)
                 SELECT $1, s, a, n, $5 FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS t (s, a, n)
                 ON CONFLICT (broadcast_id, subscription_id) DO UPDATE SET attempts = excluded.attempts, not_before = excluded.not_before",
            )
            .bind(broadcast_id)
            .bind(&subscriptions)
            .bind(&attempts)
            .bind(&not_before)
            .bind(range_no)
            .execute(&mut **self)
            .await?;
        }
        Ok(())
    }
}

/// A ledger row as the API reports it: times as RFC 3339, the run's duration worked out.
impl From<BroadcastRecord> for BroadcastStatus {
    fn from(r: BroadcastRecord) -> Self {
        let (Json(failures), Json(stopped_origins)) = (r.failures, r.stopped_origins);
        let instant = |t: &Option<String>| t.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let duration_ms = match (instant(&r.started_at), instant(&r.finished_at)) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds()),
            _ => None,
        };
        Self {
            id: r.id,
            status: r.status,
            total: r.total,
            delivered: r.delivered,
            failed: r.failed,
            removed: r.removed,
            retried: r.retried,
            clicks: r.clicks,
            failures,
            stopped_origins,
            targeted: r.targeted,
            audience: r.audience.map(|Json(audience)| audience),
            send_at: r
                .send_at
                .and_then(|at| chrono::DateTime::from_timestamp(at, 0))
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms,
            fault: None,
        }
    }
}

impl From<BroadcastDetailRecord> for BroadcastDetail {
    fn from(r: BroadcastDetailRecord) -> Self {
        Self { status: r.record.into(), payload: r.payload, ttl: r.ttl, urgency: r.urgency, topic: r.topic }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targeted_broadcast_has_ranges_of_about_a_thousand_matches() {
        assert_eq!(audience_span(100_000, 10_000), 10_000, "10 ranges");
        assert_eq!(audience_span(100_000, 999), 100_000, "a small audience is one range");
        assert_eq!(audience_span(1_000_000, 500_000), 15_625, "at most 64 ranges");
        assert_eq!(audience_span(0, 0), 1);
    }
}
