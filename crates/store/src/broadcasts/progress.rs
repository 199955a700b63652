//! Progress: the pages a range's drive reads, the outcomes each batch commits with the
//! range's cursor (in one transaction, fenced by the lease), the durable retries and when
//! they fall due, and the push services' shared `Retry-After` holds.

// The ledger's types, SQL macros and backends, as the parent module declares them.
use super::*;

impl Store {
    /// The page of a range's subscriptions after subscription id `after`.
    pub async fn broadcast_page(&self, range: &RangeJob, after: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        match &range.target_endpoint {
            Some(endpoint) => on_pool!(self, pool => Ok(sqlx::query_as(concat!(
                "SELECT ",
                subscription_columns!(),
                " FROM subscriptions WHERE endpoint = $1 AND id > $2 AND id <= $3 AND site = $5 LIMIT $4"
            ))
            .bind(endpoint)
            .bind(after)
            .bind(range.last_id)
            .bind(limit)
            .bind(&range.site)
            .fetch_all(pool)
            .await?)),
            None if range.by_topics || range.by_users => {
                let forms = audience_forms!(
                    concat!("SELECT ", subscription_columns!(), " FROM subscriptions s WHERE s.site = $5 AND s.id > $2 AND s.id <= $3"),
                    " ORDER BY s.id LIMIT $4"
                );
                on_pool!(self, pool => Ok(sqlx::query_as(audience_form(forms, range.by_topics, range.by_users))
                    .bind(range.broadcast_id)
                    .bind(after)
                    .bind(range.last_id)
                    .bind(limit)
                    .bind(&range.site)
                    .fetch_all(pool)
                    .await?))
            }
            None => self.subscriptions_page(&range.site, after, range.last_id, limit).await,
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
        let hold = self.on_db_clock(
            "UPDATE broadcast_ranges SET cursor = COALESCE($1, cursor), lease_until = {db_now} + $2
             WHERE broadcast_id = $3 AND range_no = $4 AND lease_owner = $5 AND lease_epoch = $6",
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let held = sqlx::query(&hold)
            .bind(batch.cursor)
            .bind(self.lease_seconds())
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
                let day_ago = clarion_domain::clock::unix_millis() - 86_400_000;
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
    pub async fn origin_state(&self, id: i64, now_ms: i64) -> anyhow::Result<OriginState> {
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
        Ok(OriginState { holds, stopped })
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
