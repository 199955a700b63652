//! Claims: a worker claims a queued broadcast to start it (fixing its scope and splitting
//! it into ranges), then claims ranges under a lease with a fencing epoch, renews the
//! lease, hands it back, and finishes the range (the last one finishes the broadcast).

// The ledger's types, SQL macros and backends, as the parent module declares them.
use super::*;

impl Store {
    /// Takes the oldest queued broadcast whose lease is free (or already ours) to start
    /// it, with a new epoch that fences off any earlier holder.
    pub async fn claim_broadcast(&self, owner: &str, only: Option<i64>) -> anyhow::Result<Option<BroadcastStart>> {
        // Instances claiming at once on PostgreSQL skip each other's locked rows instead of
        // queueing behind them; SQLite has one writer at a time anyway.
        let claim = self.on_db_clock(match self.db {
            Db::Sqlite(_) => concat!(claim_broadcast_sql!(), ")", claim_broadcast_returning!()),
            Db::Postgres(_) => concat!(claim_broadcast_sql!(), " FOR UPDATE SKIP LOCKED)", claim_broadcast_returning!()),
        });
        on_pool!(self, pool => Ok(sqlx::query_as(&claim)
            .bind(owner)
            .bind(self.lease_seconds())
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
                    let forms = audience_forms!("SELECT COALESCE(MAX(s.id), 0), COUNT(*) FROM subscriptions s WHERE s.site = $2", "");
                    sqlx::query_as(audience_form(forms, start.by_topics, start.by_users))
                        .bind(start.id)
                        .bind(&start.site)
                        .fetch_one(&mut *tx)
                        .await?
                }
                Some(endpoint) => {
                    sqlx::query_as("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM subscriptions WHERE endpoint = $1 AND site = $2")
                        .bind(endpoint)
                        .bind(&start.site)
                        .fetch_one(&mut *tx)
                        .await?
                }
                // The kept count, read in the same snapshot as the highest id: no scan at
                // 1M either. Exact on SQLite (one writer). On PostgreSQL a subscribe whose
                // id was drawn before the snapshot but that commits after it is sent to
                // without being counted in `total`: it subscribed during the start.
                None => {
                    sqlx::query_as(
                        "SELECT (SELECT COALESCE(MAX(id), 0) FROM subscriptions WHERE site = $1),
                                (SELECT COALESCE(CAST(SUM(stored) AS BIGINT), 0) FROM subscription_count WHERE site = $1)",
                    )
                    .bind(&start.site)
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
        let claim = self.on_db_clock(match self.db {
            Db::Sqlite(_) => concat!(claim_range_sql!(), ") RETURNING broadcast_id, range_no"),
            Db::Postgres(_) => concat!(claim_range_sql!(), " FOR UPDATE SKIP LOCKED) RETURNING broadcast_id, range_no"),
        });
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed: Option<(i64, i64)> =
                sqlx::query_as(&claim).bind(owner).bind(self.lease_seconds()).bind(only).fetch_optional(&mut *tx).await?;
            let Some((broadcast_id, range_no)) = claimed else { return Ok(None) };
            let job: RangeJob = sqlx::query_as(
                "SELECT r.broadcast_id, r.range_no, b.site, r.last_id, r.cursor, r.lease_epoch,
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

    /// Extends our claim on a range, if it is still ours.
    pub async fn renew_lease(&self, range: &RangeJob, owner: &str) -> anyhow::Result<LeaseStatus> {
        let renew = self.on_db_clock(
            "UPDATE broadcast_ranges SET lease_until = {db_now} + $1 WHERE broadcast_id = $2 AND range_no = $3 AND lease_owner = $4 AND lease_epoch = $5",
        );
        let renewed = on_pool!(self, pool => sqlx::query(&renew)
        .bind(self.lease_seconds())
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
    /// the last range of a broadcast to finish marks the broadcast done.
    pub async fn finish_range(&self, range: &RangeJob, owner: &str) -> anyhow::Result<RangeFinished> {
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
                return Ok(RangeFinished { lease: LeaseStatus::Lost, broadcast_done: false }); // the transaction rolls back on drop
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
            Ok(RangeFinished { lease: LeaseStatus::Held, broadcast_done: done.rows_affected() > 0 })
        })
    }
}
