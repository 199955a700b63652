//! Sending one push message (RFC 8030) and classifying what the push service answered.
//!
//! [`build_request`] and [`DeliveryOutcome::from_response`] are plain functions; the
//! [`PushSender`] only carries them over a pooled HTTP client (rustls, HTTP/2 where the
//! push service offers it, no redirects, connect and request timeouts).
//!
//! A push service with no open connection gets one push first (see [`super::connections`]).

use super::connections::{Connections, POOL_IDLE};
use super::encryption;
use super::metrics::Metrics;
use super::resolver::PublicOnlyResolver;
use super::vapid::VapidKeys;
use crate::domain::subscription::PushHostPolicy;
use crate::domain::subscription::{AuthSecret, P256dhKey};
use crate::domain::Urgency;
use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Delivery options of one message.
#[derive(Debug, Clone)]
pub struct PushMessage {
    pub payload: Vec<u8>,
    pub ttl: u32,
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
}

/// Where a message goes: a stored subscription's endpoint and keys.
#[derive(Debug, Clone)]
pub struct PushTarget {
    pub endpoint: url::Url,
    /// The endpoint's origin, serialized once: it keys the VAPID `aud`, the metrics and
    /// the broadcast's origin gate.
    pub origin: String,
    pub p256dh: P256dhKey,
    pub auth: AuthSecret,
}

impl PushTarget {
    pub fn new(endpoint: url::Url, p256dh: P256dhKey, auth: AuthSecret) -> Self {
        let origin = endpoint.origin().ascii_serialization();
        Self { endpoint, origin, p256dh, auth }
    }
}

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
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Builds the POST for one encrypted message.
pub fn build_request(
    client: &reqwest::Client,
    endpoint: &url::Url,
    authorization: HeaderValue,
    body: Vec<u8>,
    message: &PushMessage,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(endpoint.clone())
        .header("TTL", HeaderValue::from(message.ttl))
        .header(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
        .header(AUTHORIZATION, authorization)
        .body(body);
    if let Some(urgency) = message.urgency {
        request = request.header("Urgency", urgency.as_str());
    }
    if let Some(topic) = &message.topic {
        request = request.header("Topic", topic.as_str());
    }
    request
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

/// Sends pushes: holds the HTTP client, the VAPID keys and the random source.
#[derive(Clone, Debug)]
pub struct PushSender {
    client: reqwest::Client,
    vapid: Arc<VapidKeys>,
    rng: SystemRandom,
    /// Every push's outcome and latency are counted here.
    metrics: Arc<Metrics>,
    connections: Arc<Connections>,
    /// How long a push waits for another to open the connection: the connect timeout.
    patience: Duration,
}

impl PushSender {
    /// `extra_ca_file`: PEM certificates to trust besides the built-in roots. Names
    /// resolve through [`PublicOnlyResolver`] under `policy`. Proxy variables
    /// (`HTTPS_PROXY`, `ALL_PROXY`, ...) are ignored: pushes go straight to the push service
    /// whose address the resolver checked.
    pub fn new(
        vapid: Arc<VapidKeys>,
        extra_ca_file: Option<&std::path::Path>,
        policy: Arc<PushHostPolicy>,
        timeouts: PushTimeouts,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder().no_proxy().dns_resolver(Arc::new(PublicOnlyResolver::new(policy)));
        if let Some(path) = extra_ca_file {
            let pem = std::fs::read(path).with_context(|| format!("Failed to read CLARION_EXTRA_CA_FILE {}", path.display()))?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem).context("CLARION_EXTRA_CA_FILE is not PEM")? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("clarion/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, vapid, rng: SystemRandom::new(), metrics, connections: Arc::default(), patience: timeouts.connect })
    }

    pub fn vapid(&self) -> &VapidKeys {
        &self.vapid
    }

    /// Encrypts and sends one message; never panics, every failure is an outcome. Its span
    /// is at debug level, as is the log of a delivered push: at the default `info` a
    /// broadcast does not build a span per push, and a failure's warning names the origin.
    /// When no connection to the push service is open, one push opens it and the others
    /// wait for its answer (at most the connect timeout).
    #[tracing::instrument(level = "debug", skip_all, fields(endpoint_host = target.endpoint.host_str().unwrap_or("")))]
    pub async fn send(&self, target: &PushTarget, message: &PushMessage) -> DeliveryOutcome {
        let body = match encryption::encrypt(&target.p256dh, &target.auth, &message.payload, &self.rng) {
            Ok(body) => body,
            Err(e) => return DeliveryOutcome::Transport { reason: e.to_string() },
        };
        let authorization = self.vapid.authorization(&target.origin);
        let opening = self.connections.take_turn(&target.origin, self.patience).await;
        let started = Instant::now();
        let outcome = match build_request(&self.client, &target.endpoint, authorization, body, message).send().await {
            Ok(response) => {
                self.connections.answered(&target.origin, Instant::now());
                DeliveryOutcome::from_response(response.status(), response.headers())
            }
            Err(e) => {
                self.connections.unanswered(&target.origin);
                DeliveryOutcome::Transport { reason: transport_reason(&e) }
            }
        };
        // Pushes waiting for this one to open the connection go now.
        drop(opening);
        self.metrics.push_settled(&target.origin, &outcome, started.elapsed());
        match &outcome {
            DeliveryOutcome::Delivered { .. } => tracing::debug!(outcome = outcome.reason(), "push sent"),
            other => tracing::warn!(origin = %target.origin, outcome = other.reason(), detail = %other.describe(), "push not delivered"),
        }
        outcome
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // reqwest's Display names the URL, which is the endpoint (not a secret) but long.
        let mut text = e.to_string();
        text.truncate(200);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
