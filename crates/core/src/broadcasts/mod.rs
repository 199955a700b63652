//! Core operations on notifications: queue a broadcast, report on it, push a test to the
//! caller's own subscription, and the worker that carries broadcasts out.
//!
//! A broadcast is a row in the ledger before the API answers. A worker claims it to start
//! it: the subscriptions that exist then are its scope, split into ranges of ids. Then any
//! worker of any instance claims a range under a lease (with a fencing epoch), walks it
//! in id order a page at a time, and commits each page's outcomes together with the
//! range's cursor; the last range to finish marks the broadcast done. Pushes that must be
//! tried again (429/503, 5xx, timeouts) become durable retry rows of their range, so one
//! slow or throttled push service never holds up the others; a second pass sends them
//! when due, and a push service's `Retry-After` is shared through the database. After a
//! crash a range's lease lapses and the next worker resumes after its cursor and from its
//! retry rows: every subscriber gets the message at least once, and repeats are bounded
//! by the pages in flight of each range the dead worker held (one per instance).

mod engine;
mod targets;
mod test_push;

pub use engine::{drive_range, run_worker, work_once, worker_name, DriveEnd, SHUTDOWN_GRACE};
pub use test_push::send_test;

use crate::error::CoreError;
use crate::sites::Site;
use crate::Clarion;
use clarion_domain::notification::{Notification, NotificationRequest};
use clarion_domain::{BroadcastDetail, BroadcastQueued, BroadcastState, BroadcastStatus};
use clarion_store::{Cancelled, ClickRecorded};
use std::collections::HashMap;

/// Subscriptions read from the database per page of a broadcast: one in-flight window.
pub fn page_size(send_concurrency: usize) -> i64 {
    (send_concurrency as i64).clamp(16, 1024)
}

/// Pages being sent at once. Sending flows on across page boundaries (no page waits for
/// the previous one's slowest push), while pages commit strictly in order.
pub const PAGES_IN_FLIGHT: usize = 3;

/// The most pushes a crash can make a restarted worker send again: everything sent but
/// not yet committed, which is at most the pages in flight.
pub fn max_repeats(send_concurrency: usize) -> i64 {
    page_size(send_concurrency) * PAGES_IN_FLIGHT as i64
}

/// The furthest ahead a send may be scheduled.
pub const MAX_SCHEDULE_DAYS: i64 = 90;

/// Reads `send_at`: an RFC 3339 time after now and at most [`MAX_SCHEDULE_DAYS`] ahead,
/// as unix seconds.
fn parse_send_at(text: &str) -> Result<i64, CoreError> {
    let invalid = |reason: String| CoreError::Invalid { field: "send_at", reason };
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| invalid(format!("is not an RFC 3339 time such as 2026-12-01T09:00:00Z: {e}")))?
        .with_timezone(&chrono::Utc);
    let now = clarion_domain::clock::now();
    if at <= now {
        return Err(invalid("is in the past; leave it out to send now".into()));
    }
    if at > now + chrono::Duration::days(MAX_SCHEDULE_DAYS) {
        return Err(invalid(format!("is more than {MAX_SCHEDULE_DAYS} days ahead")));
    }
    // Whole seconds, rounded up: a send never starts before its time.
    Ok(at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0))
}

/// The audience of a send where it costs nothing to know before it starts (for the
/// audit log): everyone (the kept count) or one endpoint. A send to topics or users is
/// counted when it starts (its status's `total`): counting it now would cost a scan.
pub async fn audience_known_now(core: &Clarion, site: &Site, request: &NotificationRequest) -> Result<Option<i64>, CoreError> {
    if request.endpoint.is_some() {
        return Ok(Some(1));
    }
    if request.topics.is_none() && request.users.is_none() {
        return Ok(Some(core.store.count_subscriptions(&site.name).await?));
    }
    Ok(None)
}

/// Validates a notification to `site`'s subscribers (its audience names the site's
/// topics; a schedule is in the next 90 days) and records it as a queued or scheduled
/// broadcast.
#[tracing::instrument(skip_all, fields(site = %site.name))]
pub async fn queue_broadcast(
    core: &Clarion,
    site: &Site,
    request: NotificationRequest,
    lease_owner: Option<&str>,
) -> Result<BroadcastQueued, CoreError> {
    let send_at = request.send_at.as_deref().map(parse_send_at).transpose()?;
    let mut notification = Notification::build(request, core.payload_format)?;
    crate::audience::check_defined(core, site, "topics", &notification.audience.topics).await?;
    if let Some(endpoint) = &notification.endpoint {
        let Some(stored) = core.store.find_subscription(&site.name, endpoint).await? else {
            return Err(CoreError::NotFound("no subscription with that endpoint".into()));
        };
        // Target the endpoint as stored, however the caller spelled it.
        notification.endpoint = Some(stored.endpoint);
    }
    let warning = notification.payload_is_large().then(|| {
        format!("the payload is {} bytes; some mobile push relays drop messages over about 3000 bytes", notification.max_payload_len())
    });
    let id = core.store.create_broadcast(&site.name, &notification, lease_owner, send_at).await?;
    tracing::info!(
        id,
        bytes = notification.max_payload_len(),
        targeted = notification.endpoint.is_some(),
        topics = notification.audience.topics.len(),
        users = notification.audience.users.len(),
        send_at,
        "broadcast queued"
    );
    if send_at.is_none() {
        core.broadcast_queued.notify_one();
    }
    Ok(BroadcastQueued { id, warning })
}

/// Cancels a broadcast that has not started: scheduled (or queued and not yet claimed).
/// Once it has started it is a conflict (409).
pub async fn cancel_broadcast(core: &Clarion, site: &Site, id: i64) -> Result<BroadcastStatus, CoreError> {
    match core.store.cancel_broadcast(&site.name, id).await? {
        Cancelled::Cancelled => {
            tracing::info!(id, "broadcast cancelled");
            broadcast_status(core, site, id).await
        }
        Cancelled::TooLate(state) => Err(CoreError::Conflict {
            field: "id",
            reason: format!("notification {id} is {}; only a send that has not started can be cancelled", state.as_str()),
        }),
        Cancelled::NotFound => Err(CoreError::NotFound(format!("no notification with id {id}"))),
    }
}

/// A broadcast's status from the ledger, with the storage fault that pauses it, if any.
/// Another site's broadcast is not found.
pub async fn broadcast_status(core: &Clarion, site: &Site, id: i64) -> Result<BroadcastStatus, CoreError> {
    let record = core.store.broadcast(&site.name, id).await?.ok_or_else(|| CoreError::NotFound(format!("no notification with id {id}")))?;
    Ok(BroadcastStatus { fault: core.faults.get(id), ..record.into() })
}

/// Counts a click on broadcast `id`'s notification, reported by the subscription that
/// got it: its owner proves it with the `auth` secret. A subscription's click counts once,
/// and only on a broadcast that was sent; a proven report also marks the subscription seen.
pub async fn record_click(core: &Clarion, site: &Site, id: i64, endpoint: &str, auth: &str) -> Result<(), CoreError> {
    for (field, value) in [("endpoint", endpoint), ("auth", auth)] {
        if value.is_empty() {
            return Err(CoreError::Invalid { field, reason: "is required: a click counts only from the subscription that got it".into() });
        }
    }
    let owned = crate::ownership::prove_ownership(core, site, endpoint, auth).await?;
    core.store.mark_seen(owned.id()).await?;
    match core.store.record_click(&site.name, id, owned.id()).await? {
        ClickRecorded::Counted | ClickRecorded::AlreadyCounted => Ok(()),
        ClickRecorded::NoSuchBroadcast => Err(CoreError::NotFound(format!("no notification with id {id}"))),
        ClickRecorded::NotSent(state) => Err(CoreError::Conflict {
            field: "id",
            reason: format!("notification {id} was not sent (it is {state}): no click counts on it"),
        }),
    }
}

/// The history, newest first; only broadcasts in `state`, when given.
pub async fn list_broadcasts(
    core: &Clarion,
    site: &Site,
    limit: i64,
    before: Option<i64>,
    state: Option<BroadcastState>,
) -> Result<Vec<BroadcastStatus>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcasts(&site.name, limit, before.unwrap_or(i64::MAX), state).await?;
    Ok(rows.into_iter().map(BroadcastStatus::from).collect())
}

/// The history with each broadcast's payload, for the console; only broadcasts in
/// `state`, when given.
pub async fn list_broadcast_details(
    core: &Clarion,
    site: &Site,
    limit: i64,
    before: Option<i64>,
    state: Option<BroadcastState>,
) -> Result<Vec<BroadcastDetail>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcast_details(&site.name, limit, before.unwrap_or(i64::MAX), state).await?;
    Ok(rows.into_iter().map(BroadcastDetail::from).collect())
}

/// History pages hold 1 to 500 broadcasts.
fn check_history_limit(limit: i64) -> Result<(), CoreError> {
    if !(1..=500).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: "must be between 1 and 500".into() });
    }
    Ok(())
}

/// Storage faults of the broadcasts this process is carrying out, for their status: the
/// ledger itself cannot record that it cannot be written.
#[derive(Debug, Default)]
pub struct BroadcastFaults(std::sync::Mutex<HashMap<i64, String>>);

impl BroadcastFaults {
    pub(crate) fn set(&self, id: i64, fault: String) {
        self.0.lock().expect("faults lock").insert(id, fault);
    }

    /// True when there was a fault to clear.
    pub(crate) fn clear(&self, id: i64) -> bool {
        self.0.lock().expect("faults lock").remove(&id).is_some()
    }

    pub(crate) fn get(&self, id: i64) -> Option<String> {
        self.0.lock().expect("faults lock").get(&id).cloned()
    }
}
