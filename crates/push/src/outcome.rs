//! What became of one push, as a type: the push service's answer mapped to a
//! [`DeliveryOutcome`] in one `match`, `Retry-After` read, and how long a push may take.
//!
//! A leaf module: the sender, the HTTP/2 client and the delivery policy all read these
//! types, and it reads none of them.

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use std::time::Duration;

/// What became of one push, mapped from the push service's answer in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 201: accepted; `Location` names the message.
    Delivered { location: Option<String> },
    /// 404/410: the subscription is gone; delete it.
    Gone { status: u16 },
    /// 401/403: VAPID rejected or the key does not match the subscription.
    Unauthorized { status: u16 },
    /// 413: the payload is too large for this push service.
    PayloadTooLarge,
    /// 429/503: slow down; retry after the given delay if any.
    RateLimited { status: u16, retry_after: Option<Duration> },
    /// 400 and other 4xx, and 3xx (redirects are never followed): the request was refused.
    Rejected { status: u16 },
    /// Other 5xx: transient.
    ServerError { status: u16 },
    /// No HTTP answer: connection refused, timeout, TLS failure.
    Transport { reason: String },
}

impl DeliveryOutcome {
    /// Classifies a push service's answer.
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Self {
        let code = status.as_u16();
        match code {
            200..=299 => DeliveryOutcome::Delivered { location: headers.get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string) },
            404 | 410 => DeliveryOutcome::Gone { status: code },
            401 | 403 => DeliveryOutcome::Unauthorized { status: code },
            413 => DeliveryOutcome::PayloadTooLarge,
            429 | 503 => DeliveryOutcome::RateLimited { status: code, retry_after: parse_retry_after(headers) },
            300..=499 => DeliveryOutcome::Rejected { status: code },
            _ => DeliveryOutcome::ServerError { status: code },
        }
    }

    /// A stable snake_case name for logs and failure counts.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered { .. } => "delivered",
            DeliveryOutcome::Gone { .. } => "gone",
            DeliveryOutcome::Unauthorized { .. } => "vapid_rejected",
            DeliveryOutcome::PayloadTooLarge => "payload_too_large",
            DeliveryOutcome::RateLimited { .. } => "rate_limited",
            DeliveryOutcome::Rejected { .. } => "rejected",
            DeliveryOutcome::ServerError { .. } => "push_service_error",
            DeliveryOutcome::Transport { .. } => "transport_error",
        }
    }

    /// A sentence for people: the page and the CLI show it.
    pub fn describe(&self) -> String {
        match self {
            DeliveryOutcome::Delivered { .. } => "delivered to the push service".into(),
            DeliveryOutcome::Gone { status } => format!("the push service says the subscription is gone ({status})"),
            DeliveryOutcome::Unauthorized { status } => format!(
                "the push service refused our VAPID credentials ({status}): the subscription was likely made with another VAPID key, or the subject is not accepted"
            ),
            DeliveryOutcome::PayloadTooLarge => "the push service says the payload is too large (413)".into(),
            DeliveryOutcome::RateLimited { status, .. } => format!("the push service is rate-limiting us ({status})"),
            DeliveryOutcome::Rejected { status } => format!("the push service rejected the request ({status})"),
            DeliveryOutcome::ServerError { status } => format!("the push service failed ({status})"),
            DeliveryOutcome::Transport { reason } => format!("could not reach the push service: {reason}"),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - clarion_domain::clock::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// How long one push may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushTimeouts {
    /// Establishing the connection (TCP and TLS).
    pub connect: Duration,
    /// The whole request, connection included.
    pub request: Duration,
}

impl PushTimeouts {
    /// `request` for the whole push, of which at most 10 s for the connection.
    pub fn new(request: Duration) -> Self {
        Self { connect: request.min(Duration::from_secs(10)), request }
    }

    /// A broadcast lease that outlasts the slowest push, with time to commit its outcome.
    pub fn lease(&self) -> Duration {
        self.connect + self.request + Duration::from_secs(10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn outcome(code: u16) -> DeliveryOutcome {
        DeliveryOutcome::from_response(StatusCode::from_u16(code).unwrap(), &HeaderMap::new())
    }

    #[test]
    fn maps_every_status_class_in_one_place() {
        assert_eq!(outcome(201), DeliveryOutcome::Delivered { location: None });
        assert_eq!(outcome(404), DeliveryOutcome::Gone { status: 404 });
        assert_eq!(outcome(410), DeliveryOutcome::Gone { status: 410 });
        assert_eq!(outcome(403), DeliveryOutcome::Unauthorized { status: 403 });
        assert_eq!(outcome(413), DeliveryOutcome::PayloadTooLarge);
        assert_eq!(outcome(400), DeliveryOutcome::Rejected { status: 400 });
        assert_eq!(outcome(307), DeliveryOutcome::Rejected { status: 307 });
        assert_eq!(outcome(502), DeliveryOutcome::ServerError { status: 502 });
        assert!(matches!(outcome(429), DeliveryOutcome::RateLimited { status: 429, .. }));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
    }
}
