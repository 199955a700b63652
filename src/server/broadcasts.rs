//! Core operations on notifications: queue a broadcast, report on it, push a test to the
//! caller's own subscription, and the worker that carries broadcasts out.
//!
//! A broadcast is a row in the ledger before the API answers. The worker holds a lease on
//! it, walks the subscriptions that existed when it started in id order, a page at a
//! time, and commits each page's outcomes together with the cursor. After a crash the
//! lease lapses and the next worker resumes after the cursor: every subscriber gets the
//! message at least once, and repeats are bounded by one page.

use super::error::CoreError;
use super::sender::{DeliveryOutcome, PushMessage, PushTarget};
use super::state::Clarion;
use super::store::{BroadcastJob, BroadcastRecord, PageProgress, StoredSubscription};
use crate::domain::notification::{Notification, NotificationRequest};
use crate::domain::subscription::{AuthSecret, P256dhKey};
use crate::domain::{base64url, TestPushResult, Urgency};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Subscriptions read from the database per page of a broadcast.
pub const PAGE_SIZE: i64 = 256;

/// The answer to queuing a broadcast.
#[derive(Debug, Serialize)]
pub struct BroadcastQueued {
    pub id: i64,
    /// Set when the payload is large enough that some relays may drop it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Progress and outcome of a broadcast.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BroadcastStatus {
    pub id: i64,
    pub status: String,
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
    pub removed: i64,
    pub failures: BTreeMap<String, i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<BroadcastRecord> for BroadcastStatus {
    fn from(r: BroadcastRecord) -> Self {
        let failures = r.failures_by_reason();
        Self {
            id: r.id,
            status: r.status,
            total: r.total,
            delivered: r.delivered,
            failed: r.failed,
            removed: r.removed,
            failures,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// Validates a notification and records it as a queued broadcast.
#[tracing::instrument(skip_all)]
pub async fn queue_broadcast(core: &Clarion, request: NotificationRequest, lease_owner: Option<&str>) -> Result<BroadcastQueued, CoreError> {
    let notification = Notification::try_from(request)?;
    if let Some(endpoint) = &notification.endpoint {
        if core.store.find_subscription(endpoint).await?.is_none() {
            return Err(CoreError::NotFound("no subscription with that endpoint".into()));
        }
    }
    let warning = notification.payload_is_large().then(|| {
        format!("the payload is {} bytes; some mobile push relays drop messages over about 3000 bytes", notification.payload.len())
    });
    let id = core.store.create_broadcast(&notification, lease_owner).await?;
    tracing::info!(id, bytes = notification.payload.len(), targeted = notification.endpoint.is_some(), "broadcast queued");
    core.broadcast_queued.notify_one();
    Ok(BroadcastQueued { id, warning })
}

pub async fn broadcast_status(core: &Clarion, id: i64) -> Result<BroadcastStatus, CoreError> {
    core.store
        .broadcast(id)
        .await?
        .map(BroadcastStatus::from)
        .ok_or_else(|| CoreError::NotFound(format!("no notification with id {id}")))
}

pub async fn list_broadcasts(core: &Clarion, limit: i64, before: Option<i64>) -> Result<Vec<BroadcastStatus>, CoreError> {
    if !(1..=500).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: "must be between 1 and 500".into() });
    }
    let rows = core.store.list_broadcasts(limit, before.unwrap_or(i64::MAX)).await?;
    Ok(rows.into_iter().map(BroadcastStatus::from).collect())
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
    let payload = serde_json::json!({
        "title": "Clarion test notification",
        "body": "Push works: this came from your Clarion server.",
        "url": "/",
        "tag": "clarion-test",
    });
    let message = PushMessage { payload: payload.to_string().into_bytes(), ttl: 60, urgency: Some(Urgency::High), topic: None };
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

/// Carries out one claimed broadcast to the end, page by page. `on_page` sees the running
/// status after each committed page (the CLI draws its progress bar from it).
pub async fn drive_broadcast(
    core: &Clarion,
    owner: &str,
    mut job: BroadcastJob,
    mut on_page: impl FnMut(&BroadcastStatus),
) -> anyhow::Result<()> {
    if job.status == "queued" {
        core.store.start_broadcast(&mut job).await?;
    }
    let message = push_message(&job);
    loop {
        let page = core.store.broadcast_page(&job, PAGE_SIZE).await?;
        let Some(last) = page.last().map(|s| s.id) else { break };
        let outcomes: Vec<(i64, DeliveryOutcome)> = futures::stream::iter(page)
            .map(|row| {
                let message = &message;
                async move {
                    let outcome = match push_target(&row) {
                        Ok(target) => core.sender.send(&target, message).await,
                        Err(reason) => DeliveryOutcome::Transport { reason },
                    };
                    (row.id, outcome)
                }
            })
            .buffer_unordered(core.send_concurrency.max(1))
            .collect()
            .await;
        let mut progress = PageProgress { cursor: last, ..Default::default() };
        for (id, outcome) in outcomes {
            match outcome {
                DeliveryOutcome::Delivered { .. } => progress.delivered.push(id),
                DeliveryOutcome::Gone { .. } => progress.removed.push(id),
                other => progress.failed.push((id, other.reason())),
            }
        }
        core.store.record_page(job.id, owner, &progress).await?;
        job.cursor = last;
        if let Some(record) = core.store.broadcast(job.id).await? {
            on_page(&BroadcastStatus::from(record));
        }
    }
    core.store.finish_broadcast(job.id).await?;
    if let Some(record) = core.store.broadcast(job.id).await? {
        let status = BroadcastStatus::from(record);
        tracing::info!(id = job.id, total = status.total, delivered = status.delivered, failed = status.failed, removed = status.removed, "broadcast done");
        on_page(&status);
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
