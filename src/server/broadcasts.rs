//! Core operations on notifications: queue a broadcast, report on it, push a test to the
//! caller's own subscription, and the worker that carries broadcasts out.
//!
//! A broadcast is a row in the ledger before the API answers. The worker holds a lease on
//! it, walks the subscriptions that existed when it started in id order, a page at a
//! time, and commits each page's outcomes together with the cursor. Pushes that must be
//! tried again (429/503, 5xx, timeouts) become durable retry rows, so one slow or
//! throttled push service never holds up the others; a second pass sends them when due.
//! After a crash the lease lapses and the next worker resumes after the cursor and from
//! the retry rows: every subscriber gets the message at least once, and repeats are
//! bounded by one page.

use super::delivery::{rejection_cause, Decision, GateCheck, OriginGate};
use super::error::CoreError;
use super::sender::{DeliveryOutcome, PushMessage, PushTarget};
use super::state::Clarion;
use super::store::{BroadcastDetailRecord, BroadcastJob, BroadcastRecord, Progress, StoredSubscription};
use crate::domain::notification::{Notification, NotificationRequest};
use crate::domain::subscription::{AuthSecret, P256dhKey};
use crate::domain::{base64url, BroadcastDetail, BroadcastQueued, BroadcastStatus, TestPushResult, Urgency};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

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
        let failures = r.failures_by_reason();
        let stopped_origins = r.stopped_origins();
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
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms,
        }
    }
}

impl From<BroadcastDetailRecord> for BroadcastDetail {
    fn from(r: BroadcastDetailRecord) -> Self {
        Self { status: r.record.into(), payload: r.payload, ttl: r.ttl, urgency: r.urgency, topic: r.topic }
    }
}

/// Validates a notification and records it as a queued broadcast.
#[tracing::instrument(skip_all)]
pub async fn queue_broadcast(
    core: &Clarion,
    request: NotificationRequest,
    lease_owner: Option<&str>,
) -> Result<BroadcastQueued, CoreError> {
    let notification = Notification::build(request, core.payload_format)?;
    if let Some(endpoint) = &notification.endpoint {
        if core.store.find_subscription(endpoint).await?.is_none() {
            return Err(CoreError::NotFound("no subscription with that endpoint".into()));
        }
    }
    let warning = notification.payload_is_large().then(|| {
        format!("the payload is {} bytes; some mobile push relays drop messages over about 3000 bytes", notification.max_payload_len())
    });
    let id = core.store.create_broadcast(&notification, lease_owner).await?;
    tracing::info!(id, bytes = notification.max_payload_len(), targeted = notification.endpoint.is_some(), "broadcast queued");
    core.broadcast_queued.notify_one();
    Ok(BroadcastQueued { id, warning })
}

pub async fn broadcast_status(core: &Clarion, id: i64) -> Result<BroadcastStatus, CoreError> {
    core.store.broadcast(id).await?.map(BroadcastStatus::from).ok_or_else(|| CoreError::NotFound(format!("no notification with id {id}")))
}

/// Counts a click that a service worker reported. Carries no personal data: only the id.
pub async fn record_click(core: &Clarion, id: i64) -> Result<(), CoreError> {
    if core.store.record_click(id).await? {
        Ok(())
    } else {
        Err(CoreError::NotFound(format!("no notification with id {id}")))
    }
}

pub async fn list_broadcasts(core: &Clarion, limit: i64, before: Option<i64>) -> Result<Vec<BroadcastStatus>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcasts(limit, before.unwrap_or(i64::MAX)).await?;
    Ok(rows.into_iter().map(BroadcastStatus::from).collect())
}

/// The history with each broadcast's payload, for the console.
pub async fn list_broadcast_details(core: &Clarion, limit: i64, before: Option<i64>) -> Result<Vec<BroadcastDetail>, CoreError> {
    check_history_limit(limit)?;
    let rows = core.store.list_broadcast_details(limit, before.unwrap_or(i64::MAX)).await?;
    Ok(rows.into_iter().map(BroadcastDetail::from).collect())
}

/// History pages hold 1 to 500 broadcasts.
fn check_history_limit(limit: i64) -> Result<(), CoreError> {
    if !(1..=500).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: "must be between 1 and 500".into() });
    }
    Ok(())
}

/// Pushes a fixed test notification to the caller's own subscription. The caller proves
/// ownership with the subscription's `auth` secret, compared in constant time.
#[tracing::instrument(skip_all)]
pub async fn send_test(core: &Clarion, endpoint: &str, auth: &str) -> Result<TestPushResult, CoreError> {
    let presented = AuthSecret::parse(auth)?;
    let Some(stored) = core.store.find_subscription(endpoint).await? else {
        return Err(CoreError::NotFound("this subscription is not stored; enable notifications again".into()));
    };
    if !bool::from(stored.auth.as_slice().ct_eq(presented.as_bytes())) {
        return Err(CoreError::Forbidden("the auth secret does not match this subscription".into()));
    }
    let test = NotificationRequest {
        title: "Clarion test notification".into(),
        body: "Push works: this came from your Clarion server.".into(),
        url: Some("/".into()),
        tag: Some("clarion-test".into()),
        ..Default::default()
    };
    let payload = Notification::build(test, core.payload_format)?.payload(None);
    let message = PushMessage { payload: payload.into_bytes(), ttl: 60, urgency: Some(Urgency::High), topic: None };
    let target = push_target(&stored).map_err(anyhow::Error::msg)?;
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

/// Rebuilds a send target from a stored row. Keys were validated on the way in, so only
/// their lengths are checked here (ring still refuses an off-curve point).
fn push_target(row: &StoredSubscription) -> Result<PushTarget, String> {
    let endpoint = url::Url::parse(&row.endpoint).map_err(|e| format!("stored endpoint is not a URL: {e}"))?;
    let p256dh = P256dhKey::from_stored(&row.p256dh).ok_or("stored p256dh has the wrong length")?;
    let auth = AuthSecret::from_bytes(&row.auth).map_err(|e| e.to_string())?;
    Ok(PushTarget { endpoint, p256dh, auth })
}

fn push_message(job: &BroadcastJob) -> PushMessage {
    PushMessage {
        payload: job.payload.clone().into_bytes(),
        ttl: job.ttl.clamp(0, u32::MAX as i64) as u32,
        urgency: job.urgency.as_deref().and_then(Urgency::parse),
        topic: job.topic.clone(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How one push settled in this batch.
#[derive(Debug)]
enum Settled {
    Delivered,
    Removed,
    Failed(&'static str),
    /// Try again at this unix millisecond, with this many sends made.
    Retry {
        attempts: u32,
        not_before: i64,
    },
}

/// One push: ask the origin gate, send, and let the policy decide. `attempts` is the
/// number of sends already made to this subscription for this broadcast. Also says
/// whether a request actually went out (the gate can settle a push without one).
async fn deliver_one(core: &Clarion, message: &PushMessage, gate: &OriginGate, row: &StoredSubscription, attempts: u32) -> (Settled, bool) {
    let target = match push_target(row) {
        Ok(target) => target,
        Err(reason) => {
            tracing::error!(id = row.id, %reason, "stored subscription is unusable");
            return (Settled::Failed("invalid_subscription"), false);
        }
    };
    let origin = target.endpoint.origin().ascii_serialization();
    match gate.check(&origin, now_ms()) {
        GateCheck::Stopped => return (Settled::Failed("vapid_rejected"), false),
        GateCheck::HeldUntil(until) => return (Settled::Retry { attempts, not_before: until }, false),
        GateCheck::Open => {}
    }
    let outcome = core.sender.send(&target, message).await;
    let attempts = attempts + 1;
    let current_key = row.vapid_key_fingerprint == core.sender.vapid().fingerprint();
    let settled = match core.retry.decide(&outcome, attempts, current_key) {
        Decision::Delivered => Settled::Delivered,
        Decision::Remove => Settled::Removed,
        Decision::Fail(reason) => {
            if let DeliveryOutcome::Unauthorized { status } = outcome {
                let cause = rejection_cause(status);
                if gate.stop(&origin, cause.clone()) {
                    tracing::error!(%origin, %cause, "configuration error: stopped sending this broadcast to the origin");
                }
            }
            Settled::Failed(reason)
        }
        Decision::Retry(delay) => {
            let not_before = now_ms() + delay.as_millis() as i64;
            if matches!(outcome, DeliveryOutcome::RateLimited { .. }) {
                // The whole origin waits, not just this subscription.
                gate.hold(&origin, not_before);
            }
            Settled::Retry { attempts, not_before }
        }
    };
    (settled, true)
}

/// One push in flight: its subscription id, the sends made before, and the task.
type Sending = (i64, u32, tokio::task::JoinHandle<(Settled, bool)>);

/// Starts one task per push (so encryption spreads over the cores); each waits for a
/// permit of the shared, fair semaphore, which bounds the pushes in flight.
fn spawn_batch(
    core: &Clarion,
    message: &Arc<PushMessage>,
    gate: &Arc<OriginGate>,
    permits: &Arc<Semaphore>,
    batch: Vec<(StoredSubscription, u32)>,
) -> Vec<Sending> {
    batch
        .into_iter()
        .map(|(row, attempts)| {
            let (core, message, gate, permits) = (core.clone(), message.clone(), gate.clone(), permits.clone());
            let id = row.id;
            let task = tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                deliver_one(&core, &message, &gate, &row, attempts).await
            });
            (id, attempts, task)
        })
        .collect()
}

/// Waits for a batch and sorts its outcomes into one commit.
async fn collect_batch(sending: Vec<Sending>, gate: &OriginGate) -> Progress {
    let mut progress = Progress::default();
    for (id, attempts_before, task) in sending {
        // A bug in one push must not stop the broadcast: it counts as failed.
        let (settled, sent) = task.await.unwrap_or_else(|e| {
            tracing::error!(id, error = %e, "a delivery task failed");
            (Settled::Failed("internal_error"), false)
        });
        if sent && attempts_before > 0 {
            progress.retried += 1;
        }
        match settled {
            Settled::Delivered => progress.delivered.push(id),
            Settled::Removed => progress.removed.push(id),
            Settled::Failed(reason) => progress.failed.push((id, reason)),
            Settled::Retry { attempts, not_before } => progress.retry.push((id, attempts, not_before)),
        }
    }
    progress.stopped_origins = serde_json::to_string(&gate.stopped()).expect("a map of strings serializes");
    progress
}

/// Carries out one claimed broadcast to the end: the main pass over the subscriptions in
/// pages, then the retries as they fall due. `on_progress` sees the running status after
/// each committed batch (the CLI draws its progress bar from it).
pub async fn drive_broadcast(
    core: &Clarion,
    owner: &str,
    mut job: BroadcastJob,
    mut on_progress: impl FnMut(&BroadcastStatus),
) -> anyhow::Result<()> {
    if job.status == "queued" {
        core.store.start_broadcast(&mut job).await?;
    }
    let message = Arc::new(push_message(&job));
    let stopped: HashMap<String, String> = serde_json::from_str(&job.stopped_origins).unwrap_or_default();
    let gate = Arc::new(OriginGate::with_stopped(stopped));
    let page_size = page_size(core.send_concurrency);

    // Main pass: up to PAGES_IN_FLIGHT pages sending at once, committed in order.
    let permits = Arc::new(Semaphore::new(core.send_concurrency.max(1)));
    let mut in_flight: VecDeque<(i64, Vec<Sending>)> = VecDeque::new();
    let mut fetched_up_to = job.cursor;
    let mut exhausted = false;
    loop {
        while !exhausted && in_flight.len() < PAGES_IN_FLIGHT {
            let page = core.store.broadcast_page(&job, fetched_up_to, page_size).await?;
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
        let mut progress = collect_batch(sending, &gate).await;
        progress.cursor = Some(last);
        core.store.record_progress(job.id, owner, &progress).await?;
        if let Ok(status) = broadcast_status(core, job.id).await {
            on_progress(&status);
        }
    }

    loop {
        let now = now_ms();
        let due = core.store.due_retries(job.id, now, page_size).await?;
        if due.is_empty() {
            let Some(next) = core.store.next_retry_at(job.id).await? else { break };
            core.store.renew_lease(job.id, owner).await?;
            let wait = (next - now).clamp(10, 1_000) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            continue;
        }
        let progress = collect_batch(spawn_batch(core, &message, &gate, &permits, due), &gate).await;
        core.store.record_progress(job.id, owner, &progress).await?;
        if let Ok(status) = broadcast_status(core, job.id).await {
            on_progress(&status);
        }
    }

    core.store.finish_broadcast(job.id).await?;
    if let Ok(status) = broadcast_status(core, job.id).await {
        tracing::info!(
            id = job.id,
            total = status.total,
            delivered = status.delivered,
            failed = status.failed,
            removed = status.removed,
            retried = status.retried,
            "broadcast done"
        );
        on_progress(&status);
    }
    Ok(())
}

/// A name for this process's leases, unique per start.
pub fn worker_name(kind: &str) -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    format!("{kind}-{}-{}", std::process::id(), base64url::encode(&bytes))
}

/// The server's background worker: picks up queued (and orphaned) broadcasts until shutdown.
pub async fn run_worker(core: Clarion, owner: String, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tracing::info!(owner = %owner, "broadcast worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match core.store.claim_broadcast(&owner, None).await {
            Ok(Some(job)) => {
                let id = job.id;
                if let Err(e) = drive_broadcast(&core, &owner, job, |_| {}).await {
                    tracing::error!(id, error = ?e, "broadcast interrupted; it will be resumed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Ok(None) => {
                // Poll now and then too: another process's lease may lapse.
                tokio::select! {
                    _ = core.broadcast_queued.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = ?e, "could not claim a broadcast");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!("broadcast worker stopped");
}
