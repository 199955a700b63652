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

use crate::{now_rfc3339, on_pool, Db, LeaseStatus, Store, StoredSubscription, WritePool};
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
/// come, whose lease is free, lapsed or already ours (`$3` narrows it to one id), and
/// bumps its fencing epoch; the lease lasts `$2` seconds. Times are the database's
/// (`{db_now}`, see [`Store::on_db_clock`]). The subquery's closing parenthesis comes
/// after the backend's locking clause.
macro_rules! claim_broadcast_sql {
    () => {
        "UPDATE broadcasts SET lease_owner = $1, lease_until = {db_now} + $2, lease_epoch = lease_epoch + 1
         WHERE id = (SELECT id FROM broadcasts WHERE (status = 'queued' OR (status = 'scheduled' AND send_at <= {db_now}))
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < {db_now})
                       AND (CAST($3 AS BIGINT) IS NULL OR id = $3)
                     ORDER BY id LIMIT 1"
    };
}

/// What a claim answers: a [`BroadcastStart`].
macro_rules! claim_broadcast_returning {
    () => {
        " RETURNING id, site, target_endpoint, by_topics, by_users, lease_epoch"
    };
}

/// A queued broadcast claimed to be started.
#[derive(Clone, Debug, FromRow)]
pub struct BroadcastStart {
    pub id: i64,
    /// The site whose subscriptions it goes to.
    pub site: String,
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
    /// The site whose subscriptions it goes to.
    pub site: String,
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

/// How finishing a range went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeFinished {
    /// `Lost`: another worker holds the range now, and nothing was written.
    pub lease: LeaseStatus,
    /// This was the broadcast's last range, so the broadcast is done now.
    pub broadcast_done: bool,
}

/// What every sender of a broadcast must know about the push services (see
/// [`Store::origin_state`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginState {
    /// Origins that asked every sender to wait, and until when (unix ms).
    pub holds: Vec<(String, i64)>,
    /// Origins this broadcast stopped sending to, and why.
    pub stopped: StoppedOrigins,
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
/// lapsed or already ours (`$3` narrows it to one broadcast), and bumps its fencing
/// epoch; the lease lasts `$2` seconds of the database's clock. The subquery's closing
/// parenthesis comes after the backend's locking clause.
macro_rules! claim_range_sql {
    () => {
        "UPDATE broadcast_ranges SET lease_owner = $1, lease_until = {db_now} + $2, lease_epoch = lease_epoch + 1
         WHERE (broadcast_id, range_no) = (SELECT broadcast_id, range_no FROM broadcast_ranges WHERE done = FALSE
                       AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < {db_now})
                       AND (CAST($3 AS BIGINT) IS NULL OR broadcast_id = $3)
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

// The claims on broadcasts and ranges, and the progress they commit, are rooms of their
// own; the macros and types above are theirs too (declared first, so they see them).
mod claims;
mod progress;

/// The ledger's own operations: record, cancel, read and list broadcasts, count clicks.
impl Store {
    /// Records a broadcast; it is durable before this returns. The payload carries the
    /// broadcast's own id (for click reports), so it is written once the id is known, in
    /// the same transaction.
    ///
    /// With `send_at` (unix seconds) it is `scheduled` until then. Its audience is stored
    /// twice: as JSON for its status, and as rows its pages join against.
    pub async fn create_broadcast(
        &self,
        site: &str,
        n: &Notification,
        lease_owner: Option<&str>,
        send_at: Option<i64>,
    ) -> anyhow::Result<i64> {
        let audience = &n.audience;
        let state = if send_at.is_some() { BroadcastState::Scheduled } else { BroadcastState::Queued };
        let audience_json = (!audience.is_everyone()).then_some(Json(audience));
        let lease_seconds = lease_owner.map(|_| self.lease_seconds());
        let insert_sql = self.on_db_clock(
            "INSERT INTO broadcasts (payload, ttl, urgency, topic, target_endpoint, created_at, lease_owner, lease_until,
                                     status, send_at, audience, by_topics, by_users, site)
             VALUES ('', $1, $2, $3, $4, $5, $6, {db_now} + $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        );
        macro_rules! insert {
            ($tx:expr) => {{
                let id: i64 = sqlx::query_scalar(&insert_sql)
                    .bind(n.ttl as i64)
                    .bind(n.urgency)
                    .bind(&n.topic)
                    .bind(&n.endpoint)
                    .bind(now_rfc3339())
                    .bind(lease_owner)
                    .bind(lease_seconds)
                    .bind(state)
                    .bind(send_at)
                    .bind(audience_json)
                    .bind(!audience.topics.is_empty())
                    .bind(!audience.users.is_empty())
                    .bind(site)
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

    /// Cancels a broadcast of `site` that has not started (scheduled or queued).
    pub async fn cancel_broadcast(&self, site: &str, id: i64) -> anyhow::Result<Cancelled> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let cancelled = sqlx::query(
                "UPDATE broadcasts SET status = 'cancelled', cancelled_at = $1, finished_at = $1, lease_owner = NULL, lease_until = NULL
                 WHERE id = $2 AND site = $3 AND status IN ('scheduled', 'queued')",
            )
            .bind(now_rfc3339())
            .bind(id)
            .bind(site)
            .execute(&mut *tx)
            .await?;
            let outcome = if cancelled.rows_affected() > 0 {
                Cancelled::Cancelled
            } else {
                match sqlx::query_scalar::<_, BroadcastState>("SELECT status FROM broadcasts WHERE id = $1 AND site = $2")
                    .bind(id)
                    .bind(site)
                    .fetch_optional(&mut *tx)
                    .await?
                {
                    Some(state) => Cancelled::TooLate(state),
                    None => Cancelled::NotFound,
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// Broadcast `id` of `site`; another site's is not found.
    pub async fn broadcast(&self, site: &str, id: i64) -> anyhow::Result<Option<BroadcastRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!("SELECT ", broadcast_status_columns!(), " FROM broadcasts WHERE id = $1 AND site = $2"))
                .bind(id)
                .bind(site)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Newest first; only those in `state`, when given.
    pub async fn list_broadcasts(
        &self,
        site: &str,
        limit: i64,
        before: i64,
        state: Option<BroadcastState>,
    ) -> anyhow::Result<Vec<BroadcastRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "SELECT ",
                broadcast_status_columns!(),
                " FROM broadcasts WHERE site = $4 AND id < $1 AND (CAST($3 AS TEXT) IS NULL OR status = $3) ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .bind(state)
            .bind(site)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Newest first, with payloads; only those in `state`, when given.
    pub async fn list_broadcast_details(
        &self,
        site: &str,
        limit: i64,
        before: i64,
        state: Option<BroadcastState>,
    ) -> anyhow::Result<Vec<BroadcastDetailRecord>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "SELECT ",
                broadcast_status_columns!(),
                ", payload, ttl, urgency, topic FROM broadcasts WHERE site = $4 AND id < $1 AND (CAST($3 AS TEXT) IS NULL OR status = $3)
                 ORDER BY id DESC LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .bind(state)
            .bind(site)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Counts a click on a broadcast's notification by a subscription, once per
    /// subscription, and only on a broadcast that was sent (`sending` or `done`).
    pub async fn record_click(&self, site: &str, broadcast_id: i64, subscription_id: i64) -> anyhow::Result<ClickRecorded> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let state: Option<(String,)> = sqlx::query_as("SELECT status FROM broadcasts WHERE id = $1 AND site = $2")
                .bind(broadcast_id)
                .bind(site)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((state,)) = state else { return Ok(ClickRecorded::NoSuchBroadcast) };
            if state != "sending" && state != "done" {
                return Ok(ClickRecorded::NotSent(state));
            }
            let first = sqlx::query(
                "INSERT INTO broadcast_clicks (broadcast_id, subscription_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(broadcast_id)
            .bind(subscription_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if first {
                sqlx::query("UPDATE broadcasts SET clicks = clicks + 1 WHERE id = $1").bind(broadcast_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(if first { ClickRecorded::Counted } else { ClickRecorded::AlreadyCounted })
        })
    }
}

/// What a click report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickRecorded {
    /// The subscription's first click on this broadcast: counted.
    Counted,
    /// This subscription's click was counted before; not again.
    AlreadyCounted,
    /// No broadcast has this id.
    NoSuchBroadcast,
    /// The broadcast was never sent (it is in this state: scheduled, queued, cancelled).
    NotSent(String),
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
