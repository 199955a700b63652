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

use super::delivery::{Decision, GateCheck, OriginGate, RetryPolicy, MAX_VAPID_REFUSALS};
use super::error::CoreError;
use super::sender::{DeliveryOutcome, PushMessage, PushTarget};
use super::state::Clarion;
use super::store::{
    BroadcastDetailRecord, BroadcastRecord, BroadcastStart, Cancelled, LeaseStatus, Progress, RangeJob, Store, StoredSubscription,
};
use crate::domain::notification::{Notification, NotificationRequest};
use crate::domain::subscription::{AuthSecret, P256dhKey, PushHostPolicy};
use crate::domain::{base64url, BroadcastDetail, BroadcastQueued, BroadcastState, BroadcastStatus, TestPushResult, Urgency};
use sqlx::types::Json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

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

/// The furthest ahead a send may be scheduled.
pub const MAX_SCHEDULE_DAYS: i64 = 90;

/// Reads `send_at`: an RFC 3339 time after now and at most [`MAX_SCHEDULE_DAYS`] ahead,
/// as unix seconds.
fn parse_send_at(text: &str) -> Result<i64, CoreError> {
    let invalid = |reason: String| CoreError::Invalid { field: "send_at", reason };
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| invalid(format!("is not an RFC 3339 time such as 2026-12-01T09:00:00Z: {e}")))?
        .with_timezone(&chrono::Utc);
    let now = chrono::Utc::now();
    if at <= now {
        return Err(invalid("is in the past; leave it out to send now".into()));
    }
    if at > now + chrono::Duration::days(MAX_SCHEDULE_DAYS) {
        return Err(invalid(format!("is more than {MAX_SCHEDULE_DAYS} days ahead")));
    }
    // Whole seconds, rounded up: a send never starts before its time.
    Ok(at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0))
}

/// Validates a notification (its audience names defined topics; a schedule is in the
/// next 90 days) and records it as a queued or scheduled broadcast.
#[tracing::instrument(skip_all)]
pub async fn queue_broadcast(
    core: &Clarion,
    request: NotificationRequest,
    lease_owner: Option<&str>,
) -> Result<BroadcastQueued, CoreError> {
    let send_at = request.send_at.as_deref().map(parse_send_at).transpose()?;
    let mut notification = Notification::build(request, core.payload_format)?;
    super::audience::check_defined(core, "topics", &notification.audience.topics).await?;
    if let Some(endpoint) = &notification.endpoint {
        let Some(stored) = core.store.find_subscription(endpoint).await? else {
            return Err(CoreError::NotFound("no subscription with that endpoint".into()));
        };
        // Target the endpoint as stored, however the caller spelled it.
        notification.endpoint = Some(stored.endpoint);
    }
    let warning = notification.payload_is_large().then(|| {
        format!("the payload is {} bytes; some mobile push relays drop messages over about 3000 bytes", notification.max_payload_len())
    });
    let id = core.store.create_broadcast(&notification, lease_owner, send_at).await?;
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
pub async fn cancel_broadcast(core: &Clarion, id: i64) -> Result<BroadcastStatus, CoreError> {
    match core.store.cancel_broadcast(id).await? {
        Cancelled::Cancelled => {
            tracing::info!(id, "broadcast cancelled");
            broadcast_status(core, id).await
        }
        Cancelled::TooLate(state) => Err(CoreError::Conflict {
            field: "id",
            reason: format!("notification {id} is {}; only a send that has not started can be cancelled", state.as_str()),
        }),
        Cancelled::NotFound => Err(CoreError::NotFound(format!("no notification with id {id}"))),
    }
}

/// A broadcast's status from the ledger, with the storage fault that pauses it, if any.
pub async fn broadcast_status(core: &Clarion, id: i64) -> Result<BroadcastStatus, CoreError> {
    let record = core.store.broadcast(id).await?.ok_or_else(|| CoreError::NotFound(format!("no notification with id {id}")))?;
    Ok(BroadcastStatus { fault: core.faults.get(id), ..record.into() })
}

/// Counts a click that a service worker reported. When the worker names its own
/// subscription (endpoint and `auth` secret), that subscription is marked seen; a report
/// that does not prove it still counts the click.
pub async fn record_click(core: &Clarion, id: i64, subscription: Option<(&str, &str)>) -> Result<(), CoreError> {
    if !core.store.record_click(id).await? {
        return Err(CoreError::NotFound(format!("no notification with id {id}")));
    }
    if let Some((endpoint, auth)) = subscription {
        if let Ok(owned) = prove_ownership(core, endpoint, auth).await {
            core.store.mark_seen(owned.id()).await?;
        }
    }
    Ok(())
}

/// The history, newest first; only broadcasts in `state`, when given.
pub async fn list_broadcasts(
    core: &Clarion,
    limit: i64,
    before: Option<i64>,
    state: Option<BroadcastState>,
) -> Result<Vec<BroadcastStatus>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcasts(limit, before.unwrap_or(i64::MAX), state).await?;
    Ok(rows.into_iter().map(BroadcastStatus::from).collect())
}

/// The history with each broadcast's payload, for the console; only broadcasts in
/// `state`, when given.
pub async fn list_broadcast_details(
    core: &Clarion,
    limit: i64,
    before: Option<i64>,
    state: Option<BroadcastState>,
) -> Result<Vec<BroadcastDetail>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcast_details(limit, before.unwrap_or(i64::MAX), state).await?;
    Ok(rows.into_iter().map(BroadcastDetail::from).collect())
}

/// History pages hold 1 to 500 broadcasts.
fn check_history_limit(limit: i64) -> Result<(), CoreError> {
    if !(1..=500).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: "must be between 1 and 500".into() });
    }
    Ok(())
}

/// A stored subscription whose owner proved it (see [`prove_ownership`]).
#[derive(Debug)]
pub struct OwnedSubscription(StoredSubscription);

impl OwnedSubscription {
    pub fn id(&self) -> i64 {
        self.0.id
    }
}

/// Checks that the caller owns a subscription: it presents the endpoint and the
/// subscription's `auth` secret (which only the browser and this server know), compared
/// in constant time.
pub async fn prove_ownership(core: &Clarion, endpoint: &str, auth: &str) -> Result<OwnedSubscription, CoreError> {
    let presented = AuthSecret::parse(auth)?;
    let Some(stored) = core.store.find_subscription(endpoint).await? else {
        return Err(CoreError::NotFound("this subscription is not stored; enable notifications again".into()));
    };
    if !bool::from(stored.auth.as_slice().ct_eq(presented.as_bytes())) {
        return Err(CoreError::Forbidden("the auth secret does not match this subscription".into()));
    }
    Ok(OwnedSubscription(stored))
}

/// Pushes a fixed test notification to the caller's own subscription.
#[tracing::instrument(skip_all, fields(id = owned.id()))]
pub async fn send_test(core: &Clarion, owned: OwnedSubscription) -> Result<TestPushResult, CoreError> {
    let OwnedSubscription(stored) = owned;
    let test = NotificationRequest {
        title: "Clarion test notification".into(),
        body: "Push works: this came from your Clarion server.".into(),
        url: Some("/".into()),
        tag: Some("clarion-test".into()),
        ..Default::default()
    };
    let payload = Notification::build(test, core.payload_format)?.payload(None);
    let message = PushMessage { payload: payload.into_bytes(), ttl: 60, urgency: Some(Urgency::High), topic: None };
    let target = match push_target(&stored, &core.policy) {
        Ok(target) => target,
        Err(refusal) => return Ok(TestPushResult::Failed { reason: refusal.describe() }),
    };
    let outcome = core.sender.send(&target, &message).await;
    Ok(match outcome {
        DeliveryOutcome::Delivered { .. } => {
            core.store.record_delivery(stored.id, true).await?;
            TestPushResult::Delivered
        }
        DeliveryOutcome::Gone { .. } => {
            core.store.delete_subscription(stored.id).await?;
            TestPushResult::Gone
        }
        other => {
            core.store.record_delivery(stored.id, false).await?;
            TestPushResult::Failed { reason: other.describe() }
        }
    })
}

/// Why a stored subscription is not sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unsendable {
    /// The row does not hold a usable endpoint or keys.
    Invalid(String),
    /// Today's `CLARION_PUSH_HOSTS` policy no longer allows the endpoint.
    NotAllowed(String),
}

impl Unsendable {
    fn reason(&self) -> &'static str {
        match self {
            Unsendable::Invalid(_) => "invalid_subscription",
            Unsendable::NotAllowed(_) => "endpoint_not_allowed",
        }
    }

    fn describe(&self) -> String {
        match self {
            Unsendable::Invalid(why) => format!("the stored subscription is unusable: {why}"),
            Unsendable::NotAllowed(why) => format!("the endpoint is not allowed by the current push-host policy: {why}"),
        }
    }
}

/// Rebuilds a send target from a stored row, checking its endpoint against today's
/// policy (a host removed from `CLARION_PUSH_HOSTS` is not sent to any more). Keys were
/// validated on the way in, so only their lengths are checked here (ring still refuses
/// an off-curve point).
fn push_target(row: &StoredSubscription, policy: &PushHostPolicy) -> Result<PushTarget, Unsendable> {
    let endpoint = url::Url::parse(&row.endpoint).map_err(|e| Unsendable::Invalid(format!("the endpoint is not a URL: {e}")))?;
    policy.check(&endpoint).map_err(Unsendable::NotAllowed)?;
    let p256dh = P256dhKey::from_stored(&row.p256dh).ok_or_else(|| Unsendable::Invalid("p256dh has the wrong length".into()))?;
    let auth = AuthSecret::from_bytes(&row.auth).map_err(|e| Unsendable::Invalid(e.to_string()))?;
    Ok(PushTarget::new(endpoint, p256dh, auth))
}

fn push_message(job: &RangeJob) -> PushMessage {
    PushMessage {
        payload: job.payload.clone().into_bytes(),
        ttl: job.ttl.clamp(0, u32::MAX as i64) as u32,
        urgency: job.urgency,
        topic: job.topic.clone(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How long a stopping worker waits for the pushes in flight to settle (so their outcomes
/// are committed) before it abandons them to be sent again on resume.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The pause between attempts while storage is failing: 1 s, doubling up to 30 s, with
/// jitter. It never gives up (`max_attempts` is not consulted).
const STORAGE_BACKOFF: RetryPolicy =
    RetryPolicy { max_attempts: u32::MAX, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30) };

/// Storage faults of the broadcasts this process is carrying out, for their status: the
/// ledger itself cannot record that it cannot be written.
#[derive(Debug, Default)]
pub struct BroadcastFaults(std::sync::Mutex<HashMap<i64, String>>);

impl BroadcastFaults {
    fn set(&self, id: i64, fault: String) {
        self.0.lock().expect("faults lock").insert(id, fault);
    }

    /// True when there was a fault to clear.
    fn clear(&self, id: i64) -> bool {
        self.0.lock().expect("faults lock").remove(&id).is_some()
    }

    fn get(&self, id: i64) -> Option<String> {
        self.0.lock().expect("faults lock").get(&id).cloned()
    }
}

/// How one push settled in this batch.
#[derive(Debug)]
enum Settled {
    Delivered,
    Removed,
    Failed(&'static str),
    /// 401/403 under the current key; `prior` refusals were counted against it before.
    Refused {
        origin: String,
        prior: i64,
    },
    /// Try again at this unix millisecond, with this many sends made.
    Retry {
        attempts: u32,
        not_before: i64,
    },
}

/// One push: ask the origin gate, encrypt, wait for a place among the pushes in flight,
/// ask the gate again (it may have learned something meanwhile), send, and let the policy
/// decide. `attempts` is the number of sends already made to this subscription for this
/// broadcast. Also says whether a request actually went out (the gate can settle a push
/// without one).
///
/// The message is encrypted before the push takes a permit, so the next pages are sealed
/// while this page's requests are in flight: `permits` bounds the requests the push
/// services have from us, not the messages being encrypted.
async fn deliver_one(
    core: &Clarion,
    message: &PushMessage,
    gate: &OriginGate,
    permits: &Semaphore,
    row: &StoredSubscription,
    attempts: u32,
) -> (Settled, bool) {
    let target = match push_target(row, &core.policy) {
        Ok(target) => target,
        Err(refusal) => {
            tracing::warn!(id = row.id, reason = %refusal.describe(), "not sending to a stored subscription");
            return (Settled::Failed(refusal.reason()), false);
        }
    };
    let origin = target.origin.as_str();
    let ask_gate = || match gate.check(origin, now_ms()) {
        GateCheck::Stopped => Some((Settled::Failed("vapid_rejected"), false)),
        GateCheck::HeldUntil(until) => Some((Settled::Retry { attempts, not_before: until }, false)),
        GateCheck::Open => None,
    };
    if let Some(settled) = ask_gate() {
        return settled;
    }
    let outcome = match core.sender.seal(&target, message) {
        Ok(sealed) => {
            // A page's encryption is one long computation: let the worker run other tasks
            // (the connection's I/O, the API) at least every coop budget's worth of pushes.
            tokio::task::coop::consume_budget().await;
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            if let Some(settled) = ask_gate() {
                return settled;
            }
            core.sender.deliver(&target, message, sealed).await
        }
        Err(outcome) => outcome,
    };
    let attempts = attempts + 1;
    let current_key = row.vapid_key_fingerprint == core.sender.vapid().fingerprint();
    let settled = match core.retry.decide(&outcome, attempts, current_key) {
        Decision::Delivered => {
            gate.accepted(origin);
            Settled::Delivered
        }
        Decision::Remove => Settled::Removed,
        Decision::Refused => {
            if gate.refused(origin) {
                tracing::error!(%origin, "configuration error: the push service refuses our VAPID key; stopped sending this broadcast to it");
            }
            Settled::Refused { origin: origin.to_string(), prior: row.vapid_refusals }
        }
        Decision::Fail(reason) => Settled::Failed(reason),
        Decision::Retry(delay) => {
            let not_before = now_ms() + delay.as_millis() as i64;
            if matches!(outcome, DeliveryOutcome::RateLimited { .. }) {
                // The whole origin waits, not just this subscription.
                gate.hold(origin, not_before);
            }
            Settled::Retry { attempts, not_before }
        }
    };
    (settled, true)
}

/// A batch's pushes in flight: each one's subscription id and the sends made before, and
/// the task sending them (aborted if the broadcast is abandoned, so nothing outlives its
/// worker).
struct Sending {
    pushes: Vec<(i64, u32)>,
    task: AbortOnDropHandle<Vec<(Settled, bool)>>,
}

/// Starts one task for a batch (a page, or the retries due), which drives its pushes
/// together; each push is encrypted, then waits for a permit of the shared, fair semaphore,
/// which bounds the requests in flight. One task per batch rather than per push: a task per
/// push cost a spawn and a wake-up of another thread each, and a batch's requests now reach
/// the HTTP/2 connection together, so they leave in fewer writes. The pages in flight are
/// encrypted on all the cores at once, while the requests of the page before are still out.
/// A panic in one push fails that push only.
fn spawn_batch(
    core: &Clarion,
    message: &Arc<PushMessage>,
    gate: &Arc<OriginGate>,
    permits: &Arc<Semaphore>,
    batch: Vec<(StoredSubscription, u32)>,
) -> Sending {
    use futures::FutureExt;
    let pushes = batch.iter().map(|(row, attempts)| (row.id, *attempts)).collect();
    let (core, message, gate, permits) = (core.clone(), message.clone(), gate.clone(), permits.clone());
    let task = tokio::spawn(async move {
        let (core, message, gate, permits) = (&core, &*message, &*gate, &*permits);
        // Straight into `join_all`, with no Vec between: each push's future is moved once.
        let sends = batch.iter().map(|(row, attempts)| async move {
            match std::panic::AssertUnwindSafe(deliver_one(core, message, gate, permits, row, *attempts)).catch_unwind().await {
                Ok(sent) => sent,
                Err(_) => {
                    tracing::error!(id = row.id, "a delivery panicked");
                    (Settled::Failed("internal_error"), false)
                }
            }
        });
        futures::future::join_all(sends).await
    });
    Sending { pushes, task: AbortOnDropHandle::new(task) }
}

/// Waits for a whole batch, then sorts its outcomes into one commit. Refusals are judged
/// only once every push of the batch has settled, so the gate knows whether the same push
/// service accepted any of them.
async fn collect_batch(sending: Sending, gate: &OriginGate) -> Progress {
    let Sending { pushes, task } = sending;
    // A bug must not stop the broadcast: what the task did not report counts as failed.
    let settled = task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a delivery task failed");
        Vec::new()
    });
    let unsettled = std::iter::repeat_with(|| (Settled::Failed("internal_error"), false));
    let mut progress = Progress::default();
    for ((id, attempts_before), (settled, sent)) in pushes.into_iter().zip(settled.into_iter().chain(unsettled)) {
        if sent && attempts_before > 0 {
            progress.retried += 1;
        }
        match settled {
            Settled::Delivered => progress.delivered.push(id),
            Settled::Removed => progress.removed.push(id),
            Settled::Failed(reason) => progress.failed.push((id, reason)),
            // A refusal counts against the subscription only where the push service
            // accepted our key for others; then the last allowed one removes it.
            Settled::Refused { origin, prior } if gate.has_accepted(&origin) => {
                if prior + 1 >= MAX_VAPID_REFUSALS {
                    progress.removed.push(id);
                } else {
                    progress.refused.push(id);
                    progress.failed.push((id, "vapid_rejected"));
                }
            }
            Settled::Refused { .. } => progress.failed.push((id, "vapid_rejected")),
            Settled::Retry { attempts, not_before } => progress.retry.push((id, attempts, not_before)),
        }
    }
    progress.stopped_origins = gate.stopped().into_iter().collect();
    progress.holds = gate.take_unshared_holds();
    progress
}

/// How a drive of a range ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveEnd {
    /// Every subscription of the range settled; the range is done (and the broadcast too,
    /// when it was the last).
    Done,
    /// The worker was asked to stop; the lease was handed back and the range resumes from
    /// its last commit wherever a worker claims it next.
    Stopped,
    /// Another worker claimed the range (our lease lapsed); we stopped sending.
    LeaseLost,
}

/// Renews a drive's lease on its own clock, independent of page commits (one push may
/// take as long as the push timeout), and halts the drive when the lease is lost.
fn keep_lease(core: &Clarion, owner: &str, job: &RangeJob, halt: CancellationToken, lost: Arc<AtomicBool>) -> AbortOnDropHandle<()> {
    let (core, owner, job) = (core.clone(), owner.to_string(), job.clone());
    let every = core.lease / 4;
    AbortOnDropHandle::new(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match core.store.renew_lease(&job, &owner).await {
                Ok(LeaseStatus::Held) => {}
                Ok(LeaseStatus::Lost) => {
                    tracing::warn!(id = job.broadcast_id, range = job.range_no, "another worker took this range over; stopping");
                    lost.store(true, Ordering::SeqCst);
                    halt.cancel();
                    return;
                }
                Err(e) => tracing::error!(id = job.broadcast_id, range = job.range_no, error = ?e, "could not renew the lease"),
            }
        }
    }))
}

/// Runs a storage operation until it succeeds. While storage fails (disk full, I/O
/// error) the broadcast pauses with jittered exponential backoff, and the fault shows in
/// its status and the log; nothing is sent again meanwhile. Gives up only when halted.
async fn with_storage<T, F, Fut>(core: &Clarion, job_id: i64, halt: &CancellationToken, what: &str, mut operation: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut attempts = 0;
    loop {
        match operation().await {
            Ok(value) => {
                if core.faults.clear(job_id) {
                    tracing::info!(id = job_id, "storage works again; the broadcast resumes");
                }
                return Ok(value);
            }
            Err(e) => {
                attempts += 1;
                let wait = STORAGE_BACKOFF.backoff(attempts);
                tracing::error!(id = job_id, error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "could not {what}; the broadcast is paused");
                core.faults.set(job_id, format!("paused: could not {what} ({e:#}); trying again in {} s", wait.as_secs().max(1)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = halt.cancelled() => return Err(e.context(format!("could not {what}"))),
                }
            }
        }
    }
}

/// Starts a claimed broadcast: fixes its scope and splits it into ranges for any worker
/// of any instance to claim. Nothing happens when another worker took it over meanwhile.
async fn start_broadcast(core: &Clarion, owner: &str, start: &BroadcastStart, stop: &CancellationToken) -> anyhow::Result<()> {
    let lease = with_storage(core, start.id, stop, "start the broadcast", || core.store.start_broadcast(start, owner)).await?;
    if lease == LeaseStatus::Held {
        tracing::info!(id = start.id, "broadcast started");
    }
    Ok(())
}

/// Carries out one claimed range of a broadcast: the main pass over its subscriptions in
/// pages, then its retries as they fall due. `on_progress` sees the broadcast's running
/// status after committed batches, at most every [`REPORT_EVERY`] (the CLI draws its
/// progress bar from it). When `stop` fires, no more pushes start; those in flight get
/// [`SHUTDOWN_GRACE`] to settle and be committed, and the lease is handed back.
pub async fn drive_range(
    core: &Clarion,
    owner: &str,
    range: RangeJob,
    stop: &CancellationToken,
    mut on_progress: impl FnMut(&BroadcastStatus),
) -> anyhow::Result<DriveEnd> {
    let halt = stop.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let _lease = keep_lease(core, owner, &range, halt.clone(), lost.clone());
    let end = drive(core, owner, &range, &halt, &mut on_progress).await;
    if lost.load(Ordering::SeqCst) {
        return Ok(DriveEnd::LeaseLost);
    }
    let end = end?;
    if end == DriveEnd::Stopped {
        core.store.release_lease(&range, owner).await?;
        tracing::info!(id = range.broadcast_id, range = range.range_no, "stopped mid-range; handed the lease back");
    }
    Ok(end)
}

/// How often a drive asks the database what other ranges (maybe on other instances)
/// learned about the push services. What this drive learns itself reaches its gate at
/// once; what another learned reaches it within this interval and one page.
const SHARE_EVERY: Duration = Duration::from_millis(100);

/// Lets the gate know what other ranges (maybe on other instances) learned about the push
/// services: the origins that asked any sender to wait (a shared `Retry-After`), and the
/// origins this broadcast stopped sending to. The drive asks before its first page, then
/// at most every [`SHARE_EVERY`].
async fn share_origin_state(
    core: &Clarion,
    store: &Store,
    range: &RangeJob,
    halt: &CancellationToken,
    gate: &OriginGate,
) -> anyhow::Result<()> {
    let id = range.broadcast_id;
    let (holds, stopped) = with_storage(core, id, halt, "read the push services' state", || store.origin_state(id, now_ms())).await?;
    for (origin, until) in holds {
        gate.adopt_hold(&origin, until);
    }
    for (origin, cause) in stopped {
        gate.adopt_stopped(&origin, &cause);
    }
    Ok(())
}

async fn drive(
    core: &Clarion,
    owner: &str,
    range: &RangeJob,
    halt: &CancellationToken,
    on_progress: &mut impl FnMut(&BroadcastStatus),
) -> anyhow::Result<DriveEnd> {
    let id = range.broadcast_id;
    let store = core.store.for_drives();
    let store = &store;
    let message = Arc::new(push_message(range));
    // The stopped origins and holds arrive before the first page.
    let gate = Arc::new(OriginGate::default());
    let mut sharing = AtMostEvery::new(SHARE_EVERY);
    let page_size = page_size(core.send_concurrency);
    let mut reporting = AtMostEvery::new(REPORT_EVERY);
    let commit = |progress: Progress| async move {
        with_storage(core, id, halt, "commit the broadcast's progress", || store.record_progress(range, owner, &progress)).await
    };

    // Main pass: up to PAGES_IN_FLIGHT pages sending at once, committed in order.
    let permits = Arc::new(Semaphore::new(core.send_concurrency.max(1)));
    let mut in_flight: VecDeque<(i64, Sending)> = VecDeque::new();
    let mut fetched_up_to = range.cursor;
    let mut exhausted = false;
    loop {
        while !exhausted && !halt.is_cancelled() && in_flight.len() < PAGES_IN_FLIGHT {
            if sharing.due() {
                share_origin_state(core, store, range, halt, &gate).await?;
            }
            let page = with_storage(core, id, halt, "read the next page", || store.broadcast_page(range, fetched_up_to, page_size)).await?;
            match page.last().map(|s| s.id) {
                None => exhausted = true,
                Some(last) => {
                    fetched_up_to = last;
                    let batch = page.into_iter().map(|row| (row, 0)).collect();
                    in_flight.push_back((last, spawn_batch(core, &message, &gate, &permits, batch)));
                }
            }
        }
        let Some((last, sending)) = in_flight.pop_front() else { break };
        let progress = match settle(collect_batch(sending, &gate), halt).await {
            Some(progress) => progress,
            None => return Ok(DriveEnd::Stopped),
        };
        let progress = Progress { cursor: Some(last), ..progress };
        if commit(progress).await? == LeaseStatus::Lost {
            return Ok(DriveEnd::LeaseLost);
        }
        if reporting.due() {
            report(core, id, on_progress).await;
        }
    }
    if halt.is_cancelled() {
        return Ok(DriveEnd::Stopped);
    }

    // Retries, as they fall due.
    loop {
        let now = now_ms();
        let due = with_storage(core, id, halt, "read due retries", || store.due_retries(range, now, page_size)).await?;
        if due.is_empty() {
            let Some(next) = with_storage(core, id, halt, "read due retries", || store.next_retry_at(range)).await? else {
                break;
            };
            let wait = Duration::from_millis((next - now).clamp(10, 1_000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = halt.cancelled() => return Ok(DriveEnd::Stopped),
            }
        }
        if sharing.due() {
            share_origin_state(core, store, range, halt, &gate).await?;
        }
        let Some(progress) = settle(collect_batch(spawn_batch(core, &message, &gate, &permits, due), &gate), halt).await else {
            return Ok(DriveEnd::Stopped);
        };
        if commit(progress).await? == LeaseStatus::Lost {
            return Ok(DriveEnd::LeaseLost);
        }
        if reporting.due() {
            report(core, id, on_progress).await;
        }
    }

    let (lease, broadcast_done) = with_storage(core, id, halt, "finish the range", || store.finish_range(range, owner)).await?;
    if lease == LeaseStatus::Lost {
        return Ok(DriveEnd::LeaseLost);
    }
    if let Ok(status) = broadcast_status(core, id).await {
        if broadcast_done {
            tracing::info!(
                id,
                total = status.total,
                delivered = status.delivered,
                failed = status.failed,
                removed = status.removed,
                retried = status.retried,
                "broadcast done"
            );
        }
        on_progress(&status);
    }
    Ok(DriveEnd::Done)
}

/// How often a drive reads its broadcast's running status for [`drive_range`]'s caller:
/// a progress bar needs no more, and a page's commit then costs no extra query.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// Shows the running status to the caller of [`drive_range`], which a drive does after
/// commits at most every [`REPORT_EVERY`] (its end shows the final status itself).
async fn report(core: &Clarion, id: i64, on_progress: &mut impl FnMut(&BroadcastStatus)) {
    if let Ok(status) = broadcast_status(core, id).await {
        on_progress(&status);
    }
}

/// A drive's "at most every `period`" for one kind of read: the first ask is due, later
/// ones only once `period` has passed since the last that was.
struct AtMostEvery {
    period: Duration,
    last: Option<std::time::Instant>,
}

impl AtMostEvery {
    fn new(period: Duration) -> Self {
        Self { period, last: None }
    }

    fn due(&mut self) -> bool {
        if self.last.is_some_and(|last| last.elapsed() < self.period) {
            return false;
        }
        self.last = Some(std::time::Instant::now());
        true
    }
}

/// Waits for a batch to settle; once halted, only for [`SHUTDOWN_GRACE`] more. `None`:
/// it did not settle in time (its pushes are aborted when the batch is dropped).
async fn settle(batch: impl std::future::Future<Output = Progress>, halt: &CancellationToken) -> Option<Progress> {
    tokio::pin!(batch);
    tokio::select! {
        progress = &mut batch => return Some(progress),
        _ = halt.cancelled() => {}
    }
    tokio::time::timeout(SHUTDOWN_GRACE, batch).await.ok()
}

/// A name for this process's leases, unique per start.
pub fn worker_name(kind: &str) -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    format!("{kind}-{}-{}", std::process::id(), base64url::encode(&bytes))
}

/// The server's background worker: starts queued broadcasts and works on their ranges
/// (and on orphaned ones, whose lease lapsed) until `stop` fires, then hands back what it
/// holds and returns.
pub async fn run_worker(core: Clarion, owner: String, stop: CancellationToken) {
    tracing::info!(owner = %owner, "broadcast worker started");
    while !stop.is_cancelled() {
        let pause = match work_once(&core, &owner, &stop, None, |_| {}).await {
            Ok(true) => continue,
            // Poll now and then too: another process's lease may lapse.
            Ok(false) => Duration::from_secs(2),
            Err(e) => {
                tracing::error!(error = ?e, "broadcast work interrupted; it will be resumed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = core.broadcast_queued.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => {}
        }
    }
    tracing::info!("broadcast worker stopped");
}

/// One step of work: start a queued broadcast, or else carry out one open range (of
/// broadcast `only`, if given), showing the broadcast's running status to
/// `on_progress`. False when there was nothing to do; after a start, the caller's next
/// step claims the new ranges at once.
pub async fn work_once(
    core: &Clarion,
    owner: &str,
    stop: &CancellationToken,
    only: Option<i64>,
    on_progress: impl FnMut(&BroadcastStatus),
) -> anyhow::Result<bool> {
    if let Some(start) = core.store.claim_broadcast(owner, only).await? {
        core.metrics.broadcast_claimed();
        start_broadcast(core, owner, &start, stop).await?;
        return Ok(true);
    }
    let Some(range) = core.store.claim_range(owner, only).await? else { return Ok(false) };
    core.metrics.range_claimed();
    let (id, range_no) = (range.broadcast_id, range.range_no);
    tracing::debug!(id, range = range_no, "range claimed");
    drive_range(core, owner, range, stop, on_progress).await?;
    Ok(true)
}
