//! The audience in storage: defined topics, the topics each subscription chose, the
//! subscriptions of a user, when a subscription was last seen, and the removal of idle
//! ones (with its running count).

use crate::{now_rfc3339, on_pool, Store, WritePool};
use clarion_domain::{SubscriptionSummary, Topic, TopicDefinition};
use sqlx::FromRow;

/// Whether a `PUT` of a topic defined it or changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSaved {
    Created,
    Updated,
}

#[derive(FromRow)]
struct TopicRow {
    name: String,
    label: String,
    description: String,
    is_default: bool,
}

impl From<TopicRow> for Topic {
    fn from(row: TopicRow) -> Self {
        Topic { name: row.name, label: row.label, description: row.description, default: row.is_default }
    }
}

/// The counter of subscriptions removed for being idle.
const IDLE_REMOVED: &str = "idle_removed";

/// What the send history shows in place of a user id that "forget me" removed.
pub const FORGOTTEN_USER: &str = "(forgotten)";

impl Store {
    /// Defines a topic of `site`, or changes the label, description and default of a
    /// defined one.
    pub async fn save_topic(&self, site: &str, name: &str, definition: &TopicDefinition) -> anyhow::Result<TopicSaved> {
        let description = definition.description.clone().unwrap_or_default();
        let is_default = definition.default.unwrap_or(false);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let created = sqlx::query(
                "INSERT INTO topics (name, label, description, is_default, created_at, site) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (site, name) DO NOTHING",
            )
            .bind(name)
            .bind(definition.label.trim())
            .bind(&description)
            .bind(is_default)
            .bind(now_rfc3339())
            .bind(site)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !created {
                // A field left out of the PUT keeps its value.
                sqlx::query(
                    "UPDATE topics SET label = $1, description = COALESCE($2, description), is_default = COALESCE($3, is_default)
                     WHERE name = $4 AND site = $5",
                )
                .bind(definition.label.trim())
                .bind(&definition.description)
                .bind(definition.default)
                .bind(name)
                .bind(site)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(if created { TopicSaved::Created } else { TopicSaved::Updated })
        })
    }

    /// Deletes a topic; every subscription's choice of it goes with it (a cascade).
    /// False when it was not defined.
    pub async fn delete_topic(&self, site: &str, name: &str) -> anyhow::Result<bool> {
        let deleted = on_pool!(self, pool => sqlx::query("DELETE FROM topics WHERE name = $1 AND site = $2")
            .bind(name)
            .bind(site)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted > 0)
    }

    /// Every topic `site` defined, by name.
    pub async fn topics(&self, site: &str) -> anyhow::Result<Vec<Topic>> {
        let rows: Vec<TopicRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT name, label, description, is_default FROM topics WHERE site = $1 ORDER BY name"
        )
        .bind(site)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(Topic::from).collect())
    }

    /// The topics a subscription chose, by name.
    pub async fn subscription_topics(&self, id: i64) -> anyhow::Result<Vec<String>> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(read_topics_sql!()).bind(id).fetch_all(pool).await?))
    }

    /// Replaces a subscription's topics with `topics` (defined ones; the caller checked
    /// them) and marks it seen. Answers the set now stored.
    pub async fn replace_subscription_topics(&self, id: i64, topics: &[String]) -> anyhow::Result<Vec<String>> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            replace_topics!(tx, id, Some(topics));
            sqlx::query("UPDATE subscriptions SET last_seen_at = $1 WHERE id = $2").bind(now_rfc3339()).bind(id).execute(&mut *tx).await?;
            let stored = sqlx::query_scalar(read_topics_sql!()).bind(id).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(stored)
        })
    }

    /// Marks a subscription as seen now (a click on its notification, say).
    pub async fn mark_seen(&self, id: i64) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE subscriptions SET last_seen_at = $1 WHERE id = $2").bind(now_rfc3339()).bind(id).execute(pool).await?;
        });
        Ok(())
    }

    /// A user's subscriptions, in the order they subscribed (an index range: a user has
    /// a handful of devices).
    pub async fn user_subscriptions(&self, site: &str, user_id: &str) -> anyhow::Result<Vec<SubscriptionSummary>> {
        let mut rows: Vec<SubscriptionSummary> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT ", summary_columns!(), " FROM subscriptions WHERE user_id = $1 AND site = $2 ORDER BY id"
        ))
        .bind(user_id)
        .bind(site)
        .fetch_all(pool)
        .await?);
        self.attach_topics(&mut rows).await?;
        Ok(rows)
    }

    /// Fills in the topics of a page of summaries (in id order): one range read.
    pub async fn attach_topics(&self, rows: &mut [SubscriptionSummary]) -> anyhow::Result<()> {
        let (Some(first), Some(last)) = (rows.first().map(|r| r.id), rows.last().map(|r| r.id)) else { return Ok(()) };
        let chosen: Vec<(i64, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT subscription_id, topic FROM subscription_topics WHERE subscription_id BETWEEN $1 AND $2 ORDER BY subscription_id, topic"
        )
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await?);
        for row in rows.iter_mut() {
            row.topics.clear();
        }
        for (id, topic) in chosen {
            if let Ok(at) = rows.binary_search_by_key(&id, |r| r.id) {
                rows[at].topics.push(topic);
            }
        }
        Ok(())
    }

    /// Deletes every subscription of a user of `site`, and the user id from the site's
    /// send history; answers how many subscriptions there were.
    pub async fn delete_user(&self, site: &str, user_id: &str) -> anyhow::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM subscriptions WHERE user_id = $1 AND site = $2")
                .bind(user_id)
                .bind(site)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The send history keeps no trace of the user: a send that named them shows
            // `FORGOTTEN_USER` in its place, and its scope rows go.
            let named: Vec<(i64, sqlx::types::Json<clarion_domain::audience::Audience>)> = sqlx::query_as(
                "SELECT id, audience FROM broadcasts WHERE audience IS NOT NULL AND site = $2
                   AND id IN (SELECT broadcast_id FROM broadcast_users WHERE user_id = $1)",
            )
            .bind(user_id)
            .bind(site)
            .fetch_all(&mut *tx)
            .await?;
            for (id, sqlx::types::Json(mut audience)) in named {
                for user in audience.users.iter_mut().filter(|u| *u == user_id) {
                    *user = FORGOTTEN_USER.to_string();
                }
                sqlx::query("UPDATE broadcasts SET audience = $1 WHERE id = $2")
                    .bind(sqlx::types::Json(&audience))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM broadcast_users WHERE user_id = $1 AND broadcast_id IN (SELECT id FROM broadcasts WHERE site = $2)")
                .bind(user_id)
                .bind(site)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Unbinds one subscription from its user (sign-out); it keeps its topics.
    pub async fn unbind_user(&self, subscription_id: i64) -> anyhow::Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE subscriptions SET user_id = NULL WHERE id = $1")
            .bind(subscription_id)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Removes up to `limit` subscriptions not seen since `cutoff` (RFC 3339), oldest
    /// first, and adds them to the running count; answers how many went. An index range.
    pub async fn remove_idle(&self, cutoff: &str, limit: i64) -> anyhow::Result<u64> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query(
                "DELETE FROM subscriptions WHERE id IN
                   (SELECT id FROM subscriptions WHERE last_seen_at < $1 ORDER BY last_seen_at LIMIT $2)",
            )
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if removed > 0 {
                sqlx::query(
                    "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                )
                .bind(IDLE_REMOVED)
                .bind(removed as i64)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Subscriptions removed for being idle, since the database was made.
    pub async fn idle_removed(&self) -> anyhow::Result<i64> {
        let value: Option<i64> = on_pool!(self, pool => sqlx::query_scalar("SELECT value FROM counters WHERE name = $1")
            .bind(IDLE_REMOVED)
            .fetch_optional(pool)
            .await?);
        Ok(value.unwrap_or(0))
    }
}
