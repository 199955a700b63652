//! Core operations on subscriptions: subscribe (upsert), unsubscribe, list.

use crate::error::CoreError;
use crate::identity::TokenRefused;
use crate::sites::Site;
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

/// A subscribe request that passed every check, ready to store: nothing in it was
/// charged to the client yet (see [`check_subscribe`]).
#[derive(Debug)]
pub struct CheckedSubscribe {
    subscription: NewSubscription,
    /// The user the identity token names; `None` leaves a known subscription's user as is.
    user_id: Option<String>,
    topics: Option<Vec<String>>,
    /// Whether the endpoint is stored already (a re-sync, not a new subscriber).
    known: bool,
}

impl CheckedSubscribe {
    /// Whether the endpoint is stored already: a re-sync, which no quota charges.
    pub fn is_known(&self) -> bool {
        self.known
    }
}

/// Checks a subscribe request without storing or charging anything: the subscription,
/// the identity token and the topics. Refused requests end here, so they never use up a
/// client's quota of new subscriptions.
///
/// An expired identity token on a known endpoint that comes with its own stored keys is
/// not an error: the page re-synced with the token it had. The subscription is refreshed
/// (marked seen) and keeps the user it has. With other keys, or on a new endpoint, an
/// expired token is a 422 on `user_token`.
pub async fn check_subscribe(core: &Clarion, site: &Site, request: &SubscribeRequest) -> Result<CheckedSubscribe, CoreError> {
    let subscription = NewSubscription::parse(&request.subscription(), &core.policy)?;
    let known = core.store.find_subscription(&site.name, subscription.endpoint.as_str()).await?;
    let user_id = match (&request.user_token, &site.identity) {
        (None, _) => None,
        (Some(token), Some(secret)) => match secret.verify(token) {
            Ok(user) => Some(user),
            Err(TokenRefused::Expired) if known.as_ref().is_some_and(|k| k.has_keys(&subscription)) => None,
            Err(refused) => return Err(refused.into()),
        },
        (Some(_), None) => {
            return Err(CoreError::Invalid {
                field: "user_token",
                reason: if site.is_default() {
                    "this server does not take identity tokens (CLARION_IDENTITY_SECRET is not set)".into()
                } else {
                    format!("site {:?} does not take identity tokens (it has no identity_secret)", site.name)
                },
            })
        }
    };
    let topics = match &request.topics {
        Some(topics) => Some(crate::audience::checked_topics(core, site, topics).await?),
        None => None,
    };
    Ok(CheckedSubscribe { subscription, user_id, topics, known: known.is_some() })
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
    site: &Site,
    request: &SubscribeRequest,
    user_agent: Option<&str>,
    client_hash: Option<&str>,
) -> Result<Stored, CoreError> {
    let checked = check_subscribe(core, site, request).await?;
    store_checked(core, site, checked, user_agent, client_hash).await
}

/// Stores a subscribe request [`check_subscribe`] passed.
pub async fn store_checked(
    core: &Clarion,
    site: &Site,
    checked: CheckedSubscribe,
    user_agent: Option<&str>,
    client_hash: Option<&str>,
) -> Result<Stored, CoreError> {
    let CheckedSubscribe { subscription, user_id, topics, known: _ } = checked;
    let user_agent = user_agent.map(|ua| ua.chars().take(300).collect::<String>());
    let current = site.keyring.current();
    let fingerprint = current.fingerprint();
    let origin = subscription.endpoint.origin();
    let facts = SubscriberFacts { user_agent: user_agent.as_deref(), client_hash, user_id: user_id.as_deref(), topics: topics.as_deref() };
    let subscribed = match core.store.upsert_subscription(&site.name, &subscription, fingerprint, &facts).await? {
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
                reason: "this endpoint is already subscribed with other keys; a browser that subscribes again gets a new endpoint, and only the owner (with the stored auth secret) or an admin may delete this one".into(),
            });
        }
        Upserted::OtherSite => return Err(other_site()),
    };
    let topics = core.store.subscription_topics(subscribed.id()).await?;
    Ok(Stored { subscribed, topics })
}

/// A subscribe to one site of an endpoint another site holds: each browser subscription
/// is made with one site's key, so this is not a re-sync.
fn other_site() -> CoreError {
    CoreError::Conflict { field: "endpoint", reason: "this endpoint is subscribed to another site".into() }
}

/// Unbinds a subscription from its user (a signed-in user signs out of a shared
/// browser): the subscription and its topics stay, sends to that user no longer reach it.
/// The owner proves it with the `auth` secret.
#[tracing::instrument(skip_all)]
pub async fn sign_out(core: &Clarion, site: &Site, endpoint: &str, auth: &str) -> Result<(), CoreError> {
    let owned = crate::ownership::prove_ownership(core, site, endpoint, auth).await?;
    core.store.unbind_user(owned.id()).await?;
    tracing::info!(id = owned.id(), "subscription signed out of its user");
    Ok(())
}

/// Replaces a subscription the browser renewed (`pushsubscriptionchange`): the worker
/// proves the old one with its `auth` secret, and the renewed one takes over its user and
/// topics while the old one is deleted, in one transaction. Not a new subscriber, so the
/// per-address quota is not charged.
#[tracing::instrument(skip_all)]
pub async fn renew(
    core: &Clarion,
    site: &Site,
    old_endpoint: &str,
    old_auth: &str,
    renewed: &SubscriptionJson,
    user_agent: Option<&str>,
) -> Result<Stored, CoreError> {
    let renewed = NewSubscription::parse(renewed, &core.policy)?;
    let old = crate::ownership::prove_ownership(core, site, old_endpoint, old_auth).await?;
    let user_agent = user_agent.map(|ua| ua.chars().take(300).collect::<String>());
    let current = site.keyring.current();
    let fingerprint = current.fingerprint();
    let subscribed = match core.store.renew_subscription(old.id(), &renewed, fingerprint, user_agent.as_deref()).await? {
        Upserted::Created(id) => Subscribed::Created(id),
        Upserted::Refreshed(id) => Subscribed::Updated(id),
        Upserted::KeysDiffer => {
            return Err(CoreError::Conflict { field: "keys", reason: "the renewed endpoint is already subscribed with other keys".into() })
        }
        Upserted::OtherSite => return Err(other_site()),
    };
    tracing::info!(old = old.id(), new = subscribed.id(), origin = %renewed.endpoint.origin(), "subscription renewed");
    let topics = core.store.subscription_topics(subscribed.id()).await?;
    Ok(Stored { subscribed, topics })
}

/// Who may delete a subscription: its owner, who proves it with the subscription's
/// `auth` secret (as for a test push), or an admin. Knowing an endpoint is not enough:
/// a stranger who could delete one could post it again with his own keys.
#[derive(Debug, Clone, Copy)]
pub enum Deleter<'a> {
    /// The browser that holds the subscription, with its `auth` secret (base64url).
    Owner { auth: &'a str },
    /// The admin token or a console session.
    Admin,
}

/// Forgets a subscription by endpoint, for its owner or an admin (see [`Deleter`]).
#[tracing::instrument(skip_all)]
pub async fn unsubscribe(core: &Clarion, site: &Site, endpoint: &str, deleter: Deleter<'_>) -> Result<(), CoreError> {
    if endpoint.is_empty() {
        return Err(CoreError::Invalid { field: "endpoint", reason: "is required".into() });
    }
    if let Deleter::Owner { auth } = deleter {
        if auth.is_empty() {
            return Err(CoreError::Invalid {
                field: "auth",
                reason: "is required: the subscription's keys.auth proves it is yours".into(),
            });
        }
        crate::ownership::prove_ownership(core, site, endpoint, auth).await?;
    }
    if core.store.delete_subscription_by_endpoint(&site.name, endpoint).await? {
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
pub async fn import(core: &Clarion, site: &Site, lines: impl std::io::BufRead, replace_keys: bool) -> Result<ImportReport, CoreError> {
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
            store_batch(core, site, &mut batch, replace_keys, &mut report).await?;
        }
    }
    store_batch(core, site, &mut batch, replace_keys, &mut report).await?;
    report.rejected.sort_by_key(|rejection| rejection.line);
    tracing::info!(stored = report.stored, rejected = report.rejected.len(), replaced = report.replaced, "import done");
    Ok(report)
}

/// Stores one batch of an import and adds what became of each line to the report.
async fn store_batch(
    core: &Clarion,
    site: &Site,
    batch: &mut Vec<(u64, NewSubscription)>,
    replace_keys: bool,
    report: &mut ImportReport,
) -> Result<(), CoreError> {
    let (lines, subscriptions): (Vec<u64>, Vec<NewSubscription>) = batch.drain(..).unzip();
    let outcomes = core.store.import_subscriptions(&site.name, &subscriptions, site.keyring.current().fingerprint(), replace_keys).await?;
    for (line, outcome) in lines.into_iter().zip(outcomes) {
        match outcome {
            Imported::Stored => report.stored += 1,
            Imported::KeysReplaced => {
                report.stored += 1;
                report.replaced += 1;
            }
            Imported::KeysDiffer => report.rejected.push(ImportRejection {
                line,
                error: "keys: this endpoint is already stored with other keys (or for another site); it keeps them (clarion import --replace-keys replaces a site's own)"
                    .into(),
            }),
        }
    }
    Ok(())
}

pub const MAX_PAGE: i64 = 500;

/// Lists `site`'s subscriptions in creation order, `limit` at a time after the opaque
/// `after` cursor.
pub async fn list(core: &Clarion, site: &Site, limit: Option<i64>, after: Option<&str>) -> Result<SubscriptionPage, CoreError> {
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
    let total = core.store.count_subscriptions(&site.name).await?;
    let mut subscriptions = core.store.list_subscriptions(&site.name, limit + 1, after).await?;
    let next = if subscriptions.len() as i64 > limit {
        subscriptions.truncate(limit as usize);
        subscriptions.last().map(|s| s.id.to_string())
    } else {
        None
    };
    Ok(SubscriptionPage { total, subscriptions, next })
}
