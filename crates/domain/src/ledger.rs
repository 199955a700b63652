//! What the admin sees of the ledger: a broadcast's progress and outcome, and the stored
//! subscriptions without their keys. Shared by the REST API, the server functions and the
//! console (which deserializes them in the browser), so all three show the same thing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The answer to queuing a broadcast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BroadcastQueued {
    pub id: i64,
    /// Set when the payload is large enough that some relays may drop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why a push of a broadcast failed: the keys of a broadcast's `failures` counts, stored
/// and served under these snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// 401/403 under the current key, or the push service was stopped for refusing it.
    VapidRejected,
    /// 413: the payload is too large for this push service.
    PayloadTooLarge,
    /// 429/503 past the last attempt.
    RateLimited,
    /// 400, another 4xx, or a redirect (never followed).
    Rejected,
    /// Another 5xx past the last attempt.
    PushServiceError,
    /// No HTTP answer (connection, TLS, timeout) past the last attempt.
    TransportError,
    /// The stored row holds no usable endpoint or keys.
    InvalidSubscription,
    /// Today's `CLARION_PUSH_HOSTS` policy no longer allows the endpoint.
    EndpointNotAllowed,
    /// The subscription's VAPID key is stored sealed under another master key, so this
    /// instance cannot sign for it (its instances' `CLARION_MASTER_KEY` differ).
    VapidKeyUnavailable,
    /// A bug; the log has the details.
    InternalError,
}

impl FailureReason {
    /// Every reason.
    pub const ALL: [FailureReason; 10] = [
        FailureReason::VapidRejected,
        FailureReason::PayloadTooLarge,
        FailureReason::RateLimited,
        FailureReason::Rejected,
        FailureReason::PushServiceError,
        FailureReason::TransportError,
        FailureReason::InvalidSubscription,
        FailureReason::EndpointNotAllowed,
        FailureReason::VapidKeyUnavailable,
        FailureReason::InternalError,
    ];

    /// The stored and served name, e.g. `vapid_rejected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::VapidRejected => "vapid_rejected",
            FailureReason::PayloadTooLarge => "payload_too_large",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Rejected => "rejected",
            FailureReason::PushServiceError => "push_service_error",
            FailureReason::TransportError => "transport_error",
            FailureReason::InvalidSubscription => "invalid_subscription",
            FailureReason::EndpointNotAllowed => "endpoint_not_allowed",
            FailureReason::VapidKeyUnavailable => "vapid_key_unavailable",
            FailureReason::InternalError => "internal_error",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a broadcast is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "lowercase"))]
pub enum BroadcastState {
    /// Recorded with a `send_at` still to come.
    Scheduled,
    /// Recorded; no worker has started it.
    Queued,
    /// Its scope is fixed and pushes are going out.
    Sending,
    /// Every subscription in scope settled.
    Done,
    /// Cancelled before it started; nothing was sent.
    Cancelled,
}

impl BroadcastState {
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastState::Scheduled => "scheduled",
            BroadcastState::Queued => "queued",
            BroadcastState::Sending => "sending",
            BroadcastState::Done => "done",
            BroadcastState::Cancelled => "cancelled",
        }
    }
}

/// Progress and outcome of a broadcast.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BroadcastStatus {
    pub id: i64,
    pub status: BroadcastState,
    /// Subscriptions in scope, fixed when sending starts.
    pub total: i64,
    pub delivered: i64,
    pub failed: i64,
    /// Subscriptions the push service said are gone (404/410); deleted.
    pub removed: i64,
    /// Sends that were retries.
    pub retried: i64,
    /// Notification clicks the service workers reported.
    #[serde(default)]
    pub clicks: i64,
    pub failures: BTreeMap<String, i64>,
    /// Push-service origins this broadcast stopped sending to, with the likely cause.
    pub stopped_origins: BTreeMap<String, String>,
    /// True when it went to one subscription rather than everyone.
    #[serde(default)]
    pub targeted: bool,
    /// Who it reaches, when not everyone: `{"topics"?, "users"?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<crate::Audience>,
    /// When a scheduled send starts (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From start to finish, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Set while sending is paused by a storage fault (disk full, I/O error): what failed
    /// and when it is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl BroadcastStatus {
    /// True once nothing more will happen to it: done, or cancelled.
    pub fn is_done(&self) -> bool {
        matches!(self.status, BroadcastState::Done | BroadcastState::Cancelled)
    }

    /// Settled pushes so far, of `total`.
    pub fn settled(&self) -> i64 {
        self.delivered + self.failed + self.removed
    }
}

/// `2026-11-27T01:24:16.123Z` as `2026-11-27 01:24:16 UTC`, for people.
pub fn readable_time(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((date, time)) => format!("{date} {} UTC", time.split(['.', 'Z', '+']).next().unwrap_or(time)),
        None => rfc3339.to_string(),
    }
}

/// A duration for people: `850 ms`, `2.4 s`.
pub fn readable_duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// A broadcast with the exact payload it carries: the console's history detail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BroadcastDetail {
    #[serde(flatten)]
    pub status: BroadcastStatus,
    pub payload: String,
    pub ttl: i64,
    pub urgency: Option<crate::Urgency>,
    pub topic: Option<String>,
}

/// What the admin listing shows of a subscription: no key material.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct SubscriptionSummary {
    pub id: i64,
    pub endpoint: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_success_at: Option<String>,
    pub failure_count: i64,
    pub user_agent: Option<String>,
    pub vapid_key_fingerprint: String,
    /// The user an identity token vouched for, if any.
    #[serde(default)]
    pub user_id: Option<String>,
    /// When the page, a click or a topic change last showed the subscription alive.
    #[serde(default)]
    pub last_seen_at: Option<String>,
    /// The topics it chose.
    #[serde(default)]
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub topics: Vec<String>,
}

impl SubscriptionSummary {
    /// The push service's host, e.g. `fcm.googleapis.com`.
    pub fn push_host(&self) -> &str {
        let rest = self.endpoint.split_once("://").map_or(self.endpoint.as_str(), |(_, rest)| rest);
        rest.split(['/', '?', '#']).next().unwrap_or(rest)
    }
}

/// One page of the subscription list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubscriptionPage {
    pub total: i64,
    pub subscriptions: Vec<SubscriptionSummary>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_serialize_under_their_stored_names() {
        for reason in FailureReason::ALL {
            assert_eq!(serde_json::to_string(&reason).unwrap(), format!("\"{}\"", reason.as_str()));
        }
    }

    #[test]
    fn times_read_well() {
        assert_eq!(readable_time("2026-11-27T01:24:16.123Z"), "2026-11-27 01:24:16 UTC");
        assert_eq!(readable_time("garbage"), "garbage");
        assert_eq!(readable_duration(850), "850 ms");
        assert_eq!(readable_duration(2449), "2.4 s");
    }

    #[test]
    fn push_host_is_the_endpoint_authority() {
        let summary = |endpoint: &str| SubscriptionSummary {
            id: 1,
            endpoint: endpoint.into(),
            created_at: String::new(),
            updated_at: String::new(),
            last_success_at: None,
            failure_count: 0,
            user_agent: None,
            vapid_key_fingerprint: String::new(),
            user_id: None,
            last_seen_at: None,
            topics: vec![],
        };
        assert_eq!(summary("https://fcm.googleapis.com/fcm/send/abc").push_host(), "fcm.googleapis.com");
        assert_eq!(summary("http://127.0.0.1:8081/push/x?y").push_host(), "127.0.0.1:8081");
    }
}
