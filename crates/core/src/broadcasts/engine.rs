//! The broadcast engine: claims broadcasts and their ranges, walks each range a page at
//! a time with the pushes of up to [`PAGES_IN_FLIGHT`] pages in flight, commits each
//! page's outcomes with the range's cursor, and sends the retries as they fall due (see
//! the [module above](super) for the guarantees).

use super::targets::push_target;
use super::{broadcast_status, page_size, PAGES_IN_FLIGHT};
use crate::keyring::Keyring;
use crate::sites::Site;
use crate::Clarion;
use anyhow::Context;
use clarion_domain::clock::unix_millis as now_ms;
use clarion_domain::{base64url, random, BroadcastStatus, FailureReason};
use clarion_push::policy::{GateCheck, OriginGate, MAX_VAPID_REFUSALS};
use clarion_push::{Decision, DeliveryOutcome, PushMessage, RetryPolicy};
use clarion_store::{BroadcastStart, LeaseStatus, OriginState, Progress, RangeFinished, RangeJob, RetryDue, Store, StoredSubscription};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

fn push_message(job: &RangeJob) -> PushMessage {
    PushMessage {
        payload: job.payload.clone().into_bytes(),
        ttl: job.ttl.clamp(0, u32::MAX as i64) as u32,
        urgency: job.urgency,
        topic: job.topic.clone(),
    }
}

/// How long a stopping worker waits for the pushes in flight to settle (so their outcomes
/// are committed) before it abandons them to be sent again on resume.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The pause between attempts while storage is failing: 1 s, doubling up to 30 s, with
/// jitter. It never gives up (`max_attempts` is not consulted).
const STORAGE_BACKOFF: RetryPolicy =
    RetryPolicy { max_attempts: u32::MAX, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30) };

/// How one push settled in this batch.
#[derive(Debug)]
enum Settled {
    Delivered,
    Removed,
    Failed(FailureReason),
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
    keyring: &Keyring,
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
        GateCheck::Stopped => Some((Settled::Failed(FailureReason::VapidRejected), false)),
        GateCheck::HeldUntil(until) => Some((Settled::Retry { attempts, not_before: until }, false)),
        GateCheck::Open => None,
    };
    if let Some(settled) = ask_gate() {
        return settled;
    }
    let Ok(signer) = keyring.signer(&core.store, &row.vapid_key_fingerprint).await else {
        return (Settled::Failed(FailureReason::VapidKeyUnavailable), false);
    };
    let outcome = match core.sender.seal(&target, message) {
        Ok(sealed) => {
            // A page's encryption is one long computation: let the worker run other tasks
            // (the connection's I/O, the API) at least every coop budget's worth of pushes.
            tokio::task::coop::consume_budget().await;
            let _permit = permits.acquire().await.expect("the semaphore is never closed");
            if let Some(settled) = ask_gate() {
                return settled;
            }
            core.sender.deliver(&signer.keys, &target, message, sealed).await
        }
        Err(outcome) => outcome,
    };
    let attempts = attempts + 1;
    let settled = match core.retry.decide(&outcome, attempts, signer.own_key) {
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
    keyring: &Arc<Keyring>,
    message: &Arc<PushMessage>,
    gate: &Arc<OriginGate>,
    permits: &Arc<Semaphore>,
    batch: Vec<(StoredSubscription, u32)>,
) -> Sending {
    use futures::FutureExt;
    let pushes = batch.iter().map(|(row, attempts)| (row.id, *attempts)).collect();
    let (core, keyring, message, gate, permits) = (core.clone(), keyring.clone(), message.clone(), gate.clone(), permits.clone());
    let task = tokio::spawn(async move {
        let (core, keyring, message, gate, permits) = (&core, &*keyring, &*message, &*gate, &*permits);
        // Straight into `join_all`, with no Vec between: each push's future is moved once.
        let sends = batch.iter().map(|(row, attempts)| async move {
            match std::panic::AssertUnwindSafe(deliver_one(core, keyring, message, gate, permits, row, *attempts)).catch_unwind().await {
                Ok(sent) => sent,
                Err(_) => {
                    tracing::error!(id = row.id, "a delivery panicked");
                    (Settled::Failed(FailureReason::InternalError), false)
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
    let unsettled = std::iter::repeat_with(|| (Settled::Failed(FailureReason::InternalError), false));
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
                    progress.failed.push((id, FailureReason::VapidRejected));
                }
            }
            Settled::Refused { .. } => progress.failed.push((id, FailureReason::VapidRejected)),
            Settled::Retry { attempts, not_before } => {
                progress.retry.push(RetryDue { subscription_id: id, attempts, not_before_ms: not_before })
            }
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
    let OriginState { holds, stopped } =
        with_storage(core, id, halt, "read the push services' state", || store.origin_state(id, now_ms())).await?;
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
    // A site made on another instance in the last half second is read now; one that still
    // is not there (removed since, with its broadcasts) ends the drive.
    let site = match core.sites.find(&range.site) {
        Some(site) => site,
        None => {
            core.sites.reload(&core.store).await?;
            core.sites.find(&range.site).with_context(|| format!("site {:?} is not loaded on this instance", range.site))?
        }
    };
    let site = &*site;
    let keyring = &site.keyring;
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
                    in_flight.push_back((last, spawn_batch(core, keyring, &message, &gate, &permits, batch)));
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
            report(core, site, id, on_progress).await;
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
        let Some(progress) = settle(collect_batch(spawn_batch(core, keyring, &message, &gate, &permits, due), &gate), halt).await else {
            return Ok(DriveEnd::Stopped);
        };
        if commit(progress).await? == LeaseStatus::Lost {
            return Ok(DriveEnd::LeaseLost);
        }
        if reporting.due() {
            report(core, site, id, on_progress).await;
        }
    }

    let RangeFinished { lease, broadcast_done } =
        with_storage(core, id, halt, "finish the range", || store.finish_range(range, owner)).await?;
    if lease == LeaseStatus::Lost {
        return Ok(DriveEnd::LeaseLost);
    }
    if let Ok(status) = broadcast_status(core, site, id).await {
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
async fn report(core: &Clarion, site: &Site, id: i64, on_progress: &mut impl FnMut(&BroadcastStatus)) {
    if let Ok(status) = broadcast_status(core, site, id).await {
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
    let bytes: [u8; 8] = random::bytes();
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
