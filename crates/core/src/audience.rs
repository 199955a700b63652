//! Core operations on the audience: topics (define, delete, list, choose), identity tokens
//! that tie a subscription to a signed-in user, a user's subscriptions and "forget me",
//! and the removal of subscriptions nobody has seen for `CLARION_IDLE_EXPIRY_DAYS`.
//!
//! Identity tokens, which tie a subscription to a user, are checked in [`crate::identity`].

use crate::error::CoreError;
use crate::ownership::OwnedSubscription;
use crate::sites::Site;
use crate::Clarion;
use clarion_domain::audience::{self, MAX_TOPICS};
use clarion_domain::{SubscriptionSummary, Topic, TopicDefinition};
use clarion_store::TopicSaved;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Fails with a 422 naming the first topic of `topics` that `site` has not defined.
pub async fn check_defined(core: &Clarion, site: &Site, field: &'static str, topics: &[String]) -> Result<(), CoreError> {
    if topics.is_empty() {
        return Ok(());
    }
    let defined = core.store.topics(&site.name).await?;
    if let Some(unknown) = topics.iter().find(|t| !defined.iter().any(|d| &d.name == *t)) {
        return Err(CoreError::Invalid { field, reason: format!("unknown topic {unknown:?}; GET /api/v1/topics lists the defined ones") });
    }
    Ok(())
}

/// Defines a topic of `site` or changes a defined one.
pub async fn define_topic(core: &Clarion, site: &Site, name: &str, definition: &TopicDefinition) -> Result<TopicSaved, CoreError> {
    audience::check_topic_name("name", name).map_err(invalid)?;
    definition.check().map_err(invalid)?;
    let defined = core.store.topics(&site.name).await?;
    if defined.len() >= MAX_TOPICS && !defined.iter().any(|t| t.name == name) {
        return Err(CoreError::Invalid { field: "name", reason: format!("at most {MAX_TOPICS} topics can be defined") });
    }
    let saved = core.store.save_topic(&site.name, name, definition).await?;
    tracing::info!(site = %site.name, topic = name, ?saved, "topic saved");
    Ok(saved)
}

/// Deletes a topic of `site`, and every subscription's choice of it.
pub async fn delete_topic(core: &Clarion, site: &Site, name: &str) -> Result<(), CoreError> {
    if core.store.delete_topic(&site.name, name).await? {
        tracing::info!(site = %site.name, topic = name, "topic deleted");
        Ok(())
    } else {
        Err(CoreError::NotFound(format!("no topic named {name:?}")))
    }
}

pub async fn list_topics(core: &Clarion, site: &Site) -> Result<Vec<Topic>, CoreError> {
    Ok(core.store.topics(&site.name).await?)
}

/// Checks a subscriber's choice of topics: well-formed names, all defined. Sorted, no repeats.
pub async fn checked_topics(core: &Clarion, site: &Site, topics: &[String]) -> Result<Vec<String>, CoreError> {
    let set = audience::topic_set("topics", topics).map_err(invalid)?;
    check_defined(core, site, "topics", &set).await?;
    Ok(set)
}

/// Replaces the topics of a subscription whose owner proved it; marks it seen.
pub async fn set_topics(core: &Clarion, site: &Site, owned: &OwnedSubscription, topics: &[String]) -> Result<Vec<String>, CoreError> {
    let set = checked_topics(core, site, topics).await?;
    Ok(core.store.replace_subscription_topics(owned.id(), &set).await?)
}

/// The subscriptions of one user, each with its topics.
pub async fn user_subscriptions(core: &Clarion, site: &Site, user_id: &str) -> Result<Vec<SubscriptionSummary>, CoreError> {
    audience::check_user_id("user_id", user_id).map_err(invalid)?;
    Ok(core.store.user_subscriptions(&site.name, user_id).await?)
}

/// Deletes every subscription of a user: the "forget me" of a privacy request.
pub async fn forget_user(core: &Clarion, site: &Site, user_id: &str) -> Result<u64, CoreError> {
    audience::check_user_id("user_id", user_id).map_err(invalid)?;
    let removed = core.store.delete_user(&site.name, user_id).await?;
    tracing::info!(removed, "a user's subscriptions were deleted");
    Ok(removed)
}

fn invalid(e: audience::AudienceError) -> CoreError {
    CoreError::Invalid { field: e.field, reason: e.reason }
}

/// Subscriptions removed per transaction by the idle sweep, so a large sweep never holds
/// the write lock for long.
const IDLE_BATCH: i64 = 1_000;

/// Removes the subscriptions not seen for `days` days; answers how many went.
pub async fn remove_idle(core: &Clarion, days: u32) -> Result<u64, CoreError> {
    let cutoff = clarion_domain::clock::now() - chrono::Duration::days(i64::from(days));
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut removed = 0;
    loop {
        let batch = core.store.remove_idle(&cutoff, IDLE_BATCH).await?;
        removed += batch;
        core.metrics.idle_removed(batch);
        if batch < IDLE_BATCH as u64 {
            break;
        }
    }
    if removed > 0 {
        tracing::info!(removed, days, "removed subscriptions nobody has seen for the idle expiry");
    }
    Ok(removed)
}

/// Sweeps idle subscriptions at start and then every `every`, until `stop` fires.
pub async fn run_idle_expiry(core: Clarion, days: u32, every: Duration, stop: CancellationToken) {
    loop {
        if let Err(e) = remove_idle(&core, days).await {
            tracing::error!(error = ?e, "could not remove idle subscriptions; trying again later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
