//! Core operations on subscriptions: subscribe (upsert), unsubscribe, list.

use crate::error::CoreError;
use crate::Clarion;
use clarion_domain::subscription::NewSubscription;
use clarion_domain::SubscriptionPage;
use clarion_domain::{SubscribeRequest, SubscriptionJson};
use clarion_store::{Imported, SubscriberFacts, Upserted};
use serde::Serialize;

/// Whether a subscribe call stored a new subscription or refreshed a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    Created(i64),
    Updated(i64),
}

impl Subscribed {
    pub fn id(self) -> i64 {
        match self {
            Subscribed::Created(id) | Subscribed::Updated(id) => id,
        }
    }
}

/// What a subscribe call did, and the topics the subscription has now (the page shows
/// them as its checkboxes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub subscribed: Subscribed,
    pub topics: Vec<String>,
}

/// Validates and stores a browser's subscription, bound to the current VAPID key, with
/// the topics it chose (defined ones; the default topics when it chose none) and the user
/// its identity token names. Nothing is stored when any of them is refused.
/// `client_hash` is the keyed hash of the creating address (for the per-address cap).
/// A known endpoint is refreshed (and marked seen) when it comes with the same keys, and
/// refused ([`CoreError::Conflict`], 409) with other keys: a browser that really
/// subscribes again gets a new endpoint, so new keys on a known endpoint can only be
/// somebody else's.
#[tracing::instrument(skip_all)]
pub async fn subscribe(
    core: &Clarion,
    request: &SubscribeRequest,
    user_agent: Option<&str>,
    client_hash: Option<&str>,
) -> Result<Stored, CoreError> {
    let subscription = NewSubscription::parse(&request.subscription(), &core.policy)?;
    let user_id = match (&request.user_token, &core.identity) {
        (None, _) => None,
        (Some(token), Some(secret)) => Some(secret.verify(token)?),
        (Some(_), None) => {
            return Err(CoreError::Invalid {
                field: "user_token",
                reason: "this server does not take identity tokens (CLARION_IDENTITY_SECRET is not set)".into(),
            })
        }
    };
    let topics = match &request.topics {
        Some(topics) => Some(crate::audience::checked_topics(core, topics).await?),
        None => None,
    };
    let user_agent = user_agent.map(|ua| ua.chars().take(300).collect::<String>());
    let fingerprint = core.sender.vapid().fingerprint();
    let origin = subscription.endpoint.origin();
    let facts = SubscriberFacts { user_agent: user_agent.as_deref(), client_hash, user_id: user_id.as_deref(), topics: topics.as_deref() };
    let subscribed = match core.store.upsert_subscription(&subscription, fingerprint, &facts).await? {
        Upserted::Created(id) => {
            tracing::info!(id, %origin, "subscription stored");
            Subscribed::Created(id)
        }
        Upserted::Refreshed(id) => {
            tracing::info!(id, %origin, "subscription refreshed");
            Subscribed::Updated(id)
        }
        Upserted::KeysDiffer => {
            tracing::warn!(%origin, "refused new keys for a known endpoint");
            return Err(CoreError::Conflict {
                field: "keys",
                reason: "this endpoint is already subscribed with other keys; a browser that subscribes again gets a new endpoint (delete the old subscription first to replace it)".into(),
            });
        }
    };
    let topics = core.store.subscription_topics(subscribed.id()).await?;
    Ok(Stored { subscribed, topics })
}

/// Forgets a subscription by endpoint.
#[tracing::instrument(skip_all)]
pub async fn unsubscribe(core: &Clarion, endpoint: &str) -> Result<(), CoreError> {
    if endpoint.is_empty() {
        return Err(CoreError::Invalid { field: "endpoint", reason: "is required".into() });
    }
    if core.store.delete_subscription_by_endpoint(endpoint).await? {
        tracing::info!("subscription deleted");
        Ok(())
    } else {
        Err(CoreError::NotFound("no subscription with that endpoint".into()))
    }
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Subscriptions stored (new or refreshed, and those whose keys were replaced).
    pub stored: u64,
    /// Lines refused, with the line number and why: invalid ones, and known endpoints
    /// with other keys (unless the import replaces keys).
    pub rejected: Vec<ImportRejection>,
    /// Known endpoints whose keys the import replaced (only with `replace_keys`).
    pub replaced: u64,
}

#[derive(Debug, Serialize)]
pub struct ImportRejection {
    pub line: u64,
    pub error: String,
}

/// Lines validated and stored per transaction during an import.
const IMPORT_BATCH: usize = 1000;

/// Imports subscriptions from JSON lines (`PushSubscription.toJSON()` each), with the
/// same checks and the same rule as `subscribe`: a known endpoint with other keys is not
/// re-keyed, but reported in `rejected`, unless `replace_keys` (`clarion import
/// --replace-keys`), which replaces them and counts them in `replaced`.
pub async fn import(core: &Clarion, lines: impl std::io::BufRead, replace_keys: bool) -> Result<ImportReport, CoreError> {
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    for (index, line) in lines.lines().enumerate() {
        let line_number = index as u64 + 1;
        let line = line.map_err(|e| CoreError::Internal(anyhow::Error::new(e).context("Failed to read the import file")))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<SubscriptionJson>(&line)
            .map_err(|e| e.to_string())
            .and_then(|json| NewSubscription::parse(&json, &core.policy).map_err(|e| e.to_string()));
        match parsed {
            Ok(subscription) => batch.push((line_number, subscription)),
            Err(error) => report.rejected.push(ImportRejection { line: line_number, error }),
        }
        if batch.len() == IMPORT_BATCH {
            store_batch(core, &mut batch, replace_keys, &mut report).await?;
        }
    }
    store_batch(core, &mut batch, replace_keys, &mut report).await?;
    report.rejected.sort_by_key(|rejection| rejection.line);
    tracing::info!(stored = report.stored, rejected = report.rejected.len(), replaced = report.replaced, "import done");
    Ok(report)
}

/// Stores one batch of an import and adds what became of each line to the report.
async fn store_batch(
    core: &Clarion,
    batch: &mut Vec<(u64, NewSubscription)>,
    replace_keys: bool,
    report: &mut ImportReport,
) -> Result<(), CoreError> {
    let (lines, subscriptions): (Vec<u64>, Vec<NewSubscription>) = batch.drain(..).unzip();
    let outcomes = core.store.import_subscriptions(&subscriptions, core.sender.vapid().fingerprint(), replace_keys).await?;
    for (line, outcome) in lines.into_iter().zip(outcomes) {
        match outcome {
            Imported::Stored => report.stored += 1,
            Imported::KeysReplaced => {
                report.stored += 1;
                report.replaced += 1;
            }
            Imported::KeysDiffer => report.rejected.push(ImportRejection {
                line,
                error: "keys: this endpoint is already stored with other keys; it keeps them (clarion import --replace-keys replaces them)"
                    .into(),
            }),
        }
    }
    Ok(())
}

pub const MAX_PAGE: i64 = 500;

/// Lists subscriptions in creation order, `limit` at a time after the opaque `after` cursor.
pub async fn list(core: &Clarion, limit: Option<i64>, after: Option<&str>) -> Result<SubscriptionPage, CoreError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: format!("must be between 1 and {MAX_PAGE}") });
    }
    let after = match after {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse::<i64>()
            .map_err(|_| CoreError::Invalid { field: "after", reason: "is not a cursor from a previous page".into() })?,
    };
    let total = core.store.count_subscriptions().await?;
    let mut subscriptions = core.store.list_subscriptions(limit + 1, after).await?;
    let next = if subscriptions.len() as i64 > limit {
        subscriptions.truncate(limit as usize);
        subscriptions.last().map(|s| s.id.to_string())
    } else {
        None
    };
    Ok(SubscriptionPage { total, subscriptions, next })
}
