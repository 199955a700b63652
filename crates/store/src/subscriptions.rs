//! Stored subscriptions: upsert by endpoint (never re-keying a known one), lookups, the
//! admin listing, the kept count, and a broadcast's pages of them.

use crate::{now_rfc3339, on_pool, Db, Store, WritePool};
use clarion_domain::subscription::{NewSubscription, PushEndpoint};
use clarion_domain::SubscriptionSummary;
use sqlx::FromRow;

/// What an import did with one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Stored new, or refreshed (the endpoint was known with the same keys).
    Stored,
    /// The endpoint is stored with other keys, which were kept.
    KeysDiffer,
    /// The endpoint was stored with other keys, and the import replaced them.
    KeysReplaced,
}

/// What storing a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(i64),
    /// The endpoint was known with the same keys; its metadata was refreshed.
    Refreshed(i64),
    /// The endpoint is known with other keys; nothing was changed.
    KeysDiffer,
    /// The endpoint is subscribed to another site; nothing was changed.
    OtherSite,
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

/// What the server knows of a subscriber besides the subscription itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriberFacts<'a> {
    pub user_agent: Option<&'a str>,
    /// The keyed hash of the creating address (for the per-address cap).
    pub client_hash: Option<&'a str>,
    /// The user a verified identity token named; `None` leaves a known one as it is.
    pub user_id: Option<&'a str>,
    /// Defined topics it chose (the caller checked them). `None`: a new subscription gets
    /// the default topics, a known one keeps its own.
    pub topics: Option<&'a [String]>,
}

impl std::fmt::Debug for StoredSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSubscription").field("id", &self.id).field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl StoredSubscription {
    /// Whether `sub` comes with this subscription's own keys (a re-sync by its browser).
    pub fn has_keys(&self, sub: &NewSubscription) -> bool {
        self.p256dh == sub.p256dh.as_bytes() && self.auth == sub.auth.as_bytes()
    }
}

/// In the write transaction `$tx`: inserts `$sub`, or refreshes the row of its endpoint
/// when that row has the same keys (marking it seen, keeping a user it has unless one is
/// given); evaluates to the [`Upserted`]. A known endpoint with other keys is left alone.
/// `$find_known` reads the known row ([`Store::find_known_sql`]). Subscribing and renewing
/// share it.
macro_rules! insert_or_refresh {
    ($tx:ident, $find_known:expr, $site:expr, $sub:expr, $fingerprint:expr, $user_agent:expr, $now:expr, $client_hash:expr, $user_id:expr) => {{
        let site: &str = $site;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO subscriptions (endpoint, p256dh, auth, expiration_time, vapid_key_fingerprint, user_agent, created_at, updated_at, last_seen_at, client_hash, user_id, site)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $8, $9, $10) ON CONFLICT (endpoint) DO NOTHING RETURNING id",
        )
        .bind($sub.endpoint.as_str())
        .bind(&$sub.p256dh.as_bytes()[..])
        .bind(&$sub.auth.as_bytes()[..])
        .bind($sub.expiration_time)
        .bind($fingerprint)
        .bind($user_agent)
        .bind($now)
        .bind($client_hash)
        .bind($user_id)
        .bind(site)
        .fetch_optional(&mut *$tx)
        .await?;
        match created {
            Some(id) => Upserted::Created(id),
            None => {
                let (id, p256dh, auth, known_site): (i64, Vec<u8>, Vec<u8>, String) =
                    sqlx::query_as($find_known).bind($sub.endpoint.as_str()).fetch_one(&mut *$tx).await?;
                if known_site != site {
                    Upserted::OtherSite
                } else if p256dh != $sub.p256dh.as_bytes() || auth != $sub.auth.as_bytes() {
                    Upserted::KeysDiffer
                } else {
                    sqlx::query(
                        "UPDATE subscriptions SET expiration_time = $1, vapid_key_fingerprint = $2,
                         user_agent = COALESCE($3, user_agent), updated_at = $4, last_seen_at = $4, failure_count = 0,
                         user_id = COALESCE($5, user_id) WHERE id = $6",
                    )
                    .bind($sub.expiration_time)
                    .bind($fingerprint)
                    .bind($user_agent)
                    .bind($now)
                    .bind($user_id)
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?;
                    Upserted::Refreshed(id)
                }
            }
        }
    }};
}

impl Store {
    /// Reads a known endpoint's id and keys. PostgreSQL locks the row until the refresh
    /// commits; SQLite's write lock already covers the whole transaction.
    fn find_known_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "SELECT id, p256dh, auth, site FROM subscriptions WHERE endpoint = $1",
            Db::Postgres(_) => "SELECT id, p256dh, auth, site FROM subscriptions WHERE endpoint = $1 FOR UPDATE",
        }
    }

    /// Inserts a subscription, or refreshes a known endpoint presented with the same keys.
    /// A known endpoint with other keys is left alone ([`Upserted::KeysDiffer`]): whoever
    /// knows an endpoint must not be able to re-key it. Two instances storing the same new
    /// endpoint at once cannot both insert it: the loser finds the winner's row.
    #[tracing::instrument(skip_all, fields(origin = %sub.endpoint.origin()))]
    ///
    /// Either way the subscription is marked seen now, gets `facts.user_id` when given,
    /// and `facts.topics` (see [`SubscriberFacts`]).
    pub async fn upsert_subscription(
        &self,
        site: &str,
        sub: &NewSubscription,
        vapid_fingerprint: &str,
        facts: &SubscriberFacts<'_>,
    ) -> anyhow::Result<Upserted> {
        let now = now_rfc3339();
        let find_known = self.find_known_sql();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let result = insert_or_refresh!(tx, find_known, site, sub, vapid_fingerprint, facts.user_agent, &now, facts.client_hash, facts.user_id);
            let chosen = match (result, facts.topics) {
                (Upserted::KeysDiffer | Upserted::OtherSite, _) => None,
                (Upserted::Created(id), None) => Some((id, None)),
                (Upserted::Created(id) | Upserted::Refreshed(id), Some(topics)) => Some((id, Some(topics))),
                (Upserted::Refreshed(_), None) => None,
            };
            if let Some((id, topics)) = chosen {
                replace_topics!(tx, id, topics);
            }
            tx.commit().await?;
            Ok(result)
        })
    }

    /// Stores many checked subscriptions in one transaction, by endpoint, and says what
    /// became of each: a new endpoint is stored, a known one with the same keys is
    /// refreshed, and a known one with other keys is left as it is ([`Imported::KeysDiffer`])
    /// unless `replace_keys`, which replaces its keys ([`Imported::KeysReplaced`]). The same
    /// rule as a subscribe: a known endpoint is never re-keyed on a stranger's word. An
    /// imported subscription counts as seen at its import, for the idle expiry.
    pub async fn import_subscriptions(
        &self,
        site: &str,
        subscriptions: &[NewSubscription],
        vapid_fingerprint: &str,
        replace_keys: bool,
    ) -> anyhow::Result<Vec<Imported>> {
        let now = now_rfc3339();
        let mut outcomes = Vec::with_capacity(subscriptions.len());
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for sub in subscriptions {
                let stored = sqlx::query(
                    "INSERT INTO subscriptions (endpoint, p256dh, auth, expiration_time, vapid_key_fingerprint, created_at, updated_at, last_seen_at, site)
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7)
                     ON CONFLICT (endpoint) DO UPDATE SET expiration_time = excluded.expiration_time,
                       vapid_key_fingerprint = excluded.vapid_key_fingerprint, updated_at = excluded.updated_at,
                       last_seen_at = excluded.last_seen_at
                     WHERE subscriptions.p256dh = excluded.p256dh AND subscriptions.auth = excluded.auth
                       AND subscriptions.site = excluded.site",
                )
                .bind(sub.endpoint.as_str())
                .bind(&sub.p256dh.as_bytes()[..])
                .bind(&sub.auth.as_bytes()[..])
                .bind(sub.expiration_time)
                .bind(vapid_fingerprint)
                .bind(&now)
                .bind(site)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let outcome = match (stored > 0, replace_keys) {
                    (true, _) => Imported::Stored,
                    (false, false) => Imported::KeysDiffer,
                    (false, true) => {
                        // Only the site's own endpoint is re-keyed; another site's is
                        // refused like a known endpoint with other keys.
                        let replaced = sqlx::query(
                            "UPDATE subscriptions SET p256dh = $2, auth = $3, expiration_time = $4, vapid_key_fingerprint = $5,
                               vapid_refusals = 0, updated_at = $6, last_seen_at = $6
                             WHERE endpoint = $1 AND site = $7",
                        )
                        .bind(sub.endpoint.as_str())
                        .bind(&sub.p256dh.as_bytes()[..])
                        .bind(&sub.auth.as_bytes()[..])
                        .bind(sub.expiration_time)
                        .bind(vapid_fingerprint)
                        .bind(&now)
                        .bind(site)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if replaced > 0 { Imported::KeysReplaced } else { Imported::KeysDiffer }
                    }
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
        });
        Ok(outcomes)
    }

    /// Replaces subscription `old_id` with `renewed` (a browser's `pushsubscriptionchange`)
    /// in one transaction: the renewed one is stored (or refreshed, when it is known with
    /// the same keys) with the old one's user, creating address and topics, and the old
    /// one is deleted. `KeysDiffer` (a known endpoint with other keys) changes nothing.
    pub async fn renew_subscription(
        &self,
        old_id: i64,
        renewed: &NewSubscription,
        vapid_fingerprint: &str,
        user_agent: Option<&str>,
    ) -> anyhow::Result<Upserted> {
        let now = now_rfc3339();
        let find_known = self.find_known_sql();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let old: Option<(Option<String>, Option<String>, String)> =
                sqlx::query_as("SELECT user_id, client_hash, site FROM subscriptions WHERE id = $1").bind(old_id).fetch_optional(&mut *tx).await?;
            let Some((user_id, client_hash, site)) = old else { anyhow::bail!("subscription {old_id} is gone") };
            let result = insert_or_refresh!(tx, find_known, &site, renewed, vapid_fingerprint, user_agent, &now, client_hash.as_deref(), user_id.as_deref());
            let (Upserted::Created(new_id) | Upserted::Refreshed(new_id)) = result else { return Ok(result) };
            if new_id != old_id {
                sqlx::query("DELETE FROM subscription_topics WHERE subscription_id = $1").bind(new_id).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO subscription_topics (subscription_id, site, topic) SELECT $1, site, topic FROM subscription_topics WHERE subscription_id = $2")
                    .bind(new_id)
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(old_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(result)
        })
    }

    /// Deletes by endpoint (as the client sent it; see [`PushEndpoint::lookup_key`]); false
    /// when it was not stored.
    pub async fn delete_subscription_by_endpoint(&self, site: &str, endpoint: &str) -> anyhow::Result<bool> {
        let deleted = on_pool!(self, pool => sqlx::query("DELETE FROM subscriptions WHERE endpoint = $1 AND site = $2")
            .bind(PushEndpoint::lookup_key(endpoint))
            .bind(site)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted > 0)
    }

    pub async fn delete_subscription(&self, id: i64) -> anyhow::Result<bool> {
        let deleted =
            on_pool!(self, pool => sqlx::query("DELETE FROM subscriptions WHERE id = $1").bind(id).execute(pool).await?.rows_affected());
        Ok(deleted > 0)
    }

    /// Finds `site`'s subscription by endpoint, as the client sent it (see
    /// [`PushEndpoint::lookup_key`]); another site's is not found.
    pub async fn find_subscription(&self, site: &str, endpoint: &str) -> anyhow::Result<Option<StoredSubscription>> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE endpoint = $1 AND site = $2"))
            .bind(PushEndpoint::lookup_key(endpoint))
            .bind(site)
            .fetch_optional(pool)
            .await?),
        )
    }

    /// Subscriptions created from one client address (by its keyed hash): an index range
    /// no longer than the per-address cap.
    pub async fn count_subscriptions_from(&self, site: &str, client_hash: &str) -> anyhow::Result<i64> {
        Ok(on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE client_hash = $1 AND site = $2")
            .bind(client_hash)
            .bind(site)
            .fetch_one(pool)
            .await?))
    }

    /// The number of `site`'s subscriptions, kept by triggers: one row read (16 on
    /// PostgreSQL), however large the audience.
    pub async fn count_subscriptions(&self, site: &str) -> anyhow::Result<i64> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT COALESCE(CAST(SUM(stored) AS BIGINT), 0) FROM subscription_count WHERE site = $1")
            .bind(site)
            .fetch_one(pool)
            .await?),
        )
    }

    /// One page of the admin listing, in id order after `after`.
    pub async fn list_subscriptions(&self, site: &str, limit: i64, after: i64) -> anyhow::Result<Vec<SubscriptionSummary>> {
        let mut rows = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", summary_columns!(), " FROM subscriptions WHERE site = $3 AND id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .bind(site)
        .fetch_all(pool)
        .await?);
        self.attach_topics(&mut rows).await?;
        Ok(rows)
    }

    /// `site`'s subscriptions with `after < id <= up_to`, in id order: one page of a
    /// broadcast.
    pub async fn subscriptions_page(&self, site: &str, after: i64, up_to: i64, limit: i64) -> anyhow::Result<Vec<StoredSubscription>> {
        Ok(on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE site = $4 AND id > $1 AND id <= $2 ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .bind(site)
        .fetch_all(pool)
        .await?))
    }

    /// Records the outcome of a direct (non-broadcast) send to one subscription.
    pub async fn record_delivery(&self, id: i64, delivered: bool) -> anyhow::Result<()> {
        if delivered {
            let now = now_rfc3339();
            on_pool!(self, pool => {
                sqlx::query("UPDATE subscriptions SET last_success_at = $1, failure_count = 0 WHERE id = $2")
                    .bind(&now)
                    .bind(id)
                    .execute(pool)
                    .await?;
            });
        } else {
            on_pool!(self, pool => {
                sqlx::query("UPDATE subscriptions SET failure_count = failure_count + 1 WHERE id = $1").bind(id).execute(pool).await?;
            });
        }
        Ok(())
    }
}
