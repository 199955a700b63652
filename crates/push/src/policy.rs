//! The delivery policy: what to do with each push service answer, and the per-origin
//! gate that keeps one push service's trouble from affecting the others.
//!
//! The decision for each answer, and what each is counted as, is the table of
//! docs/delivery.md, its one description; [`RetryPolicy::decide`] is its code.
//!
//! A refusal under the current key usually means that one subscription was made with
//! another `applicationServerKey` (posted by a stranger, re-posted by an old cached page,
//! imported), so it fails that push only: one bad subscription never silences a push
//! service for everyone else. It counts against the subscription only when the same push
//! service accepted our key for others in the same broadcast; at [`MAX_VAPID_REFUSALS`]
//! such refusals in a row the subscription is removed. Only a *systemic* refusal stops an
//! origin: [`SYSTEMIC_REFUSALS`] refusals and not one acceptance, which means our own key
//! or subject is refused. Pushes already in flight then still settle, so at most
//! `SYSTEMIC_REFUSALS + CLARION_SEND_CONCURRENCY` requests reach a push service that
//! refuses the key.

use crate::outcome::DeliveryOutcome;
use clarion_domain::{random, FailureReason};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Retry limits and pacing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Sends per subscription at most, the first included.
    pub max_attempts: u32,
    /// The first backoff; each further attempt doubles it.
    pub base_delay: Duration,
    /// No wait is longer than this, whatever `Retry-After` says.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(600) }
    }
}

/// Refusals under the current key, with no acceptance, after which an origin is stopped.
pub const SYSTEMIC_REFUSALS: u32 = 10;

/// Refusals of one subscription (in broadcasts where its push service accepted our key for
/// others) after which it is removed.
pub const MAX_VAPID_REFUSALS: i64 = 3;

/// What becomes of one push after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// The subscription is gone; delete it.
    Remove,
    /// Give up on this subscription for this broadcast, for this reason.
    Fail(FailureReason),
    /// 401/403 under the current key: fail this push and let the origin gate judge whether
    /// the subscription or our own key is at fault.
    Refused,
    /// Try again after the delay.
    Retry(Duration),
}

impl RetryPolicy {
    /// Jittered exponential backoff for the given number of sends already made (≥ 1):
    /// a uniformly random delay in [d/2, d] with d = base · 2^(attempts-1).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(20);
        let full = self.base_delay.saturating_mul(1 << exp).min(self.max_delay);
        // Without randomness the jitter is 0: the full delay, never a failure.
        let mut byte = [255u8; 1];
        let _ = random::fill(&mut byte);
        full.mul_f64(0.5 + f64::from(byte[0]) / 510.0)
    }

    /// Decides what to do after the `attempts`-th send (counting from 1) got `outcome`.
    /// `own_key` says whether the push was signed with the VAPID key the subscription was
    /// made with: a refusal of one signed with another key (its own is no longer held)
    /// says the subscription is stale, not that the key is wrong.
    pub fn decide(&self, outcome: &DeliveryOutcome, attempts: u32, own_key: bool) -> Decision {
        let can_retry = attempts < self.max_attempts;
        match outcome {
            DeliveryOutcome::Delivered { .. } => Decision::Delivered,
            DeliveryOutcome::Gone { .. } => Decision::Remove,
            DeliveryOutcome::Unauthorized { .. } if !own_key => Decision::Remove,
            DeliveryOutcome::Unauthorized { .. } => Decision::Refused,
            DeliveryOutcome::RateLimited { retry_after, .. } if can_retry => {
                Decision::Retry(retry_after.map_or_else(|| self.backoff(attempts), |d| d.min(self.max_delay)))
            }
            DeliveryOutcome::ServerError { .. } | DeliveryOutcome::Transport { .. } if can_retry => Decision::Retry(self.backoff(attempts)),
            DeliveryOutcome::RateLimited { .. } => Decision::Fail(FailureReason::RateLimited),
            DeliveryOutcome::ServerError { .. } => Decision::Fail(FailureReason::PushServiceError),
            DeliveryOutcome::Transport { .. } => Decision::Fail(FailureReason::TransportError),
            DeliveryOutcome::PayloadTooLarge => Decision::Fail(FailureReason::PayloadTooLarge),
            DeliveryOutcome::Rejected { .. } => Decision::Fail(FailureReason::Rejected),
        }
    }
}

/// Per-origin state during one broadcast: how each origin answered our VAPID credentials
/// (and whether it is stopped), and origins that asked us to wait.
#[derive(Debug, Default)]
pub struct OriginGate {
    inner: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    stopped: HashMap<String, String>,
    held_until: HashMap<String, i64>,
    /// Holds this gate placed itself (from a push service's answer) and has not yet handed
    /// out to be shared; holds adopted from other senders are not shared again.
    unshared_holds: HashMap<String, i64>,
    /// Origins that accepted at least one push in this broadcast.
    accepted: HashSet<String>,
    /// Refusals under the current key per origin, in this broadcast.
    refusals: HashMap<String, u32>,
}

/// What the gate says about sending to an origin now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateCheck {
    Open,
    /// Sending stopped: the origin refuses our own VAPID key.
    Stopped,
    /// Rate-limited: do not send before this unix millisecond.
    HeldUntil(i64),
}

impl OriginGate {
    /// Stops an origin that another range (maybe on another instance) stopped.
    pub fn adopt_stopped(&self, origin: &str, cause: &str) {
        let mut state = self.inner.lock().expect("gate lock");
        state.stopped.entry(origin.to_string()).or_insert_with(|| cause.to_string());
    }

    pub fn check(&self, origin: &str, now_ms: i64) -> GateCheck {
        let state = self.inner.lock().expect("gate lock");
        if state.stopped.contains_key(origin) {
            return GateCheck::Stopped;
        }
        match state.held_until.get(origin) {
            Some(&until) if until > now_ms => GateCheck::HeldUntil(until),
            _ => GateCheck::Open,
        }
    }

    /// Records that the origin accepted a push (so it accepts our key).
    pub fn accepted(&self, origin: &str) {
        let mut state = self.inner.lock().expect("gate lock");
        if !state.accepted.contains(origin) {
            state.accepted.insert(origin.to_string());
        }
    }

    /// True when the origin accepted a push in this broadcast.
    pub fn has_accepted(&self, origin: &str) -> bool {
        self.inner.lock().expect("gate lock").accepted.contains(origin)
    }

    /// Records a refusal under the current key. Stops the origin once the refusals look
    /// systemic; true when this call stopped it (so it is logged once).
    pub fn refused(&self, origin: &str) -> bool {
        let mut state = self.inner.lock().expect("gate lock");
        let refusals = state.refusals.entry(origin.to_string()).or_default();
        *refusals += 1;
        let systemic = *refusals >= SYSTEMIC_REFUSALS && !state.accepted.contains(origin);
        systemic && state.stopped.insert(origin.to_string(), systemic_cause(SYSTEMIC_REFUSALS)).is_none()
    }

    /// Holds an origin until the given time, as its push service asked (the later of any
    /// two holds wins); the hold is handed out once by [`OriginGate::take_unshared_holds`].
    pub fn hold(&self, origin: &str, until_ms: i64) {
        let mut state = self.inner.lock().expect("gate lock");
        Self::extend(&mut state.held_until, origin, until_ms);
        Self::extend(&mut state.unshared_holds, origin, until_ms);
    }

    /// Holds an origin that another sender was asked to hold (already shared).
    pub fn adopt_hold(&self, origin: &str, until_ms: i64) {
        Self::extend(&mut self.inner.lock().expect("gate lock").held_until, origin, until_ms);
    }

    fn extend(holds: &mut HashMap<String, i64>, origin: &str, until_ms: i64) {
        let entry = holds.entry(origin.to_string()).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }

    /// The holds placed since the last call, and until when (unix ms), to share with
    /// other senders.
    pub fn take_unshared_holds(&self) -> Vec<(String, i64)> {
        self.inner.lock().expect("gate lock").unshared_holds.drain().collect()
    }

    pub fn stopped(&self) -> HashMap<String, String> {
        self.inner.lock().expect("gate lock").stopped.clone()
    }
}

/// The likely cause of a systemic refusal, for the report and the log.
fn systemic_cause(refusals: u32) -> String {
    format!(
        "the push service refused our VAPID credentials {refusals} times (401/403) and accepted none: most likely it does not accept this server's VAPID key or CLARION_VAPID_SUBJECT, or every subscription at it was made with another key (was the key rotated?)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5) }
    }

    #[test]
    fn follows_the_outcome_table() {
        let p = policy();
        assert_eq!(p.decide(&DeliveryOutcome::Delivered { location: None }, 1, true), Decision::Delivered);
        assert_eq!(p.decide(&DeliveryOutcome::Gone { status: 410 }, 1, true), Decision::Remove);
        assert_eq!(p.decide(&DeliveryOutcome::PayloadTooLarge, 1, true), Decision::Fail(FailureReason::PayloadTooLarge));
        assert_eq!(p.decide(&DeliveryOutcome::Unauthorized { status: 403 }, 1, true), Decision::Refused);
        assert_eq!(p.decide(&DeliveryOutcome::Unauthorized { status: 401 }, 1, false), Decision::Remove, "made under a previous key");
        assert_eq!(p.decide(&DeliveryOutcome::Gone { status: 404 }, 1, false), Decision::Remove);
        assert_eq!(
            p.decide(&DeliveryOutcome::RateLimited { status: 429, retry_after: Some(Duration::from_secs(2)) }, 1, true),
            Decision::Retry(Duration::from_secs(2))
        );
        assert!(matches!(p.decide(&DeliveryOutcome::ServerError { status: 500 }, 2, true), Decision::Retry(_)));
        assert_eq!(p.decide(&DeliveryOutcome::ServerError { status: 500 }, 3, true), Decision::Fail(FailureReason::PushServiceError));
        assert_eq!(p.decide(&DeliveryOutcome::Transport { reason: "x".into() }, 3, true), Decision::Fail(FailureReason::TransportError));
    }

    #[test]
    fn retry_after_is_capped() {
        let p = policy();
        let long = DeliveryOutcome::RateLimited { status: 503, retry_after: Some(Duration::from_secs(3600)) };
        assert_eq!(p.decide(&long, 1, true), Decision::Retry(Duration::from_secs(5)));
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let p = policy();
        for attempts in 1..=4 {
            let full = Duration::from_millis(100 * (1 << (attempts - 1)));
            let d = p.backoff(attempts);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?}");
        }
    }

    #[test]
    fn the_gate_stops_and_holds_origins_independently() {
        let gate = OriginGate::default();
        for _ in 1..SYSTEMIC_REFUSALS {
            assert!(!gate.refused("https://a"));
        }
        assert_eq!(gate.check("https://a", 0), GateCheck::Open, "a few refusals are the subscriptions' fault");
        assert!(gate.refused("https://a"), "the tenth refusal with no acceptance stops the origin");
        assert!(!gate.refused("https://a"), "stopped once");
        assert!(gate.stopped()["https://a"].contains("accepted none"));
        gate.hold("https://b", 2_000);
        assert_eq!(gate.check("https://a", 0), GateCheck::Stopped);
        assert_eq!(gate.check("https://b", 1_000), GateCheck::HeldUntil(2_000));
        assert_eq!(gate.check("https://b", 2_001), GateCheck::Open);
        assert_eq!(gate.check("https://c", 0), GateCheck::Open);
    }

    #[test]
    fn only_holds_the_gate_placed_itself_are_shared_and_each_once() {
        let gate = OriginGate::default();
        gate.adopt_hold("https://other-instance", 5_000);
        gate.hold("https://b", 2_000);
        gate.hold("https://b", 3_000);
        assert_eq!(gate.check("https://other-instance", 1_000), GateCheck::HeldUntil(5_000), "an adopted hold holds");
        assert_eq!(gate.take_unshared_holds(), [("https://b".to_string(), 3_000)], "the later of two, not the adopted one");
        assert!(gate.take_unshared_holds().is_empty(), "shared once");
        assert_eq!(gate.check("https://b", 2_500), GateCheck::HeldUntil(3_000), "sharing does not end the hold");
    }

    #[test]
    fn an_origin_that_accepts_our_key_is_never_stopped_by_refusals() {
        let gate = OriginGate::default();
        gate.accepted("https://fcm");
        for _ in 0..(SYSTEMIC_REFUSALS * 10) {
            assert!(!gate.refused("https://fcm"));
        }
        assert_eq!(gate.check("https://fcm", 0), GateCheck::Open);
        assert!(gate.has_accepted("https://fcm") && !gate.has_accepted("https://other"));
    }
}
