//! Sending one push message (RFC 8030) and classifying what the push service answered.
//!
//! [`push_headers`] and [`DeliveryOutcome::from_response`] are plain functions; the
//! [`PushSender`] only carries them to the push service: over HTTP/2 on the `h2` crate
//! where the push service offers it ([`super::http2`]), otherwise over a pooled reqwest
//! client (HTTP/1.1). Both use rustls, follow no redirects and keep the connect and
//! request timeouts.
//!
//! A push service with no open connection gets one push first (see [`super::connections`]).

use super::connections::{Connections, POOL_IDLE};
use super::encryption;
use super::http2::{Answer, Http2Connections, Posted};
use super::metrics::Metrics;
use super::resolver::PublicOnlyResolver;
use super::vapid::VapidKeys;
use crate::domain::subscription::PushHostPolicy;
use crate::domain::subscription::{AuthSecret, P256dhKey};
use crate::domain::Urgency;
use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, RETRY_AFTER};
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

/// One message encrypted for one subscriber (RFC 8291), ready to POST.
#[derive(Debug)]
pub struct Sealed(Vec<u8>);

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

/// The headers of one encrypted message's POST (RFC 8030, RFC 8291, RFC 8292), whichever
/// HTTP version carries it.
pub fn push_headers(authorization: HeaderValue, message: &PushMessage) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(TTL, HeaderValue::from(message.ttl));
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("aes128gcm"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(AUTHORIZATION, authorization);
    if let Some(urgency) = message.urgency {
        headers.insert(URGENCY, HeaderValue::from_static(urgency.as_str()));
    }
    if let Some(topic) = message.topic.as_deref().and_then(|topic| HeaderValue::from_str(topic).ok()) {
        headers.insert(TOPIC, topic);
    }
    headers
}

const TTL: HeaderName = HeaderName::from_static("ttl");
const URGENCY: HeaderName = HeaderName::from_static("urgency");
const TOPIC: HeaderName = HeaderName::from_static("topic");

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
    /// HTTP/1.1, for push services that do not offer HTTP/2 and for `http` endpoints.
    client: reqwest::Client,
    http2: Arc<Http2Connections>,
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
        let resolver = Arc::new(PublicOnlyResolver::new(policy));
        let mut builder = reqwest::Client::builder().no_proxy().dns_resolver(resolver.clone()).http1_only();
        let extra_ca = match extra_ca_file {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("Failed to read CLARION_EXTRA_CA_FILE {}", path.display()))?),
            None => None,
        };
        if let Some(pem) = &extra_ca {
            for certificate in reqwest::Certificate::from_pem_bundle(pem).context("CLARION_EXTRA_CA_FILE is not PEM")? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(USER_AGENT)
            .build()?;
        let http2 = Http2Connections::new(extra_ca.as_deref(), resolver, timeouts, USER_AGENT).context("CLARION_EXTRA_CA_FILE")?;
        Ok(Self {
            client,
            http2: Arc::new(http2),
            vapid,
            rng: SystemRandom::new(),
            metrics,
            connections: Arc::default(),
            patience: timeouts.connect,
        })
    }

    pub fn vapid(&self) -> &VapidKeys {
        &self.vapid
    }

    /// Encrypts and sends one message; never panics, every failure is an outcome.
    pub async fn send(&self, target: &PushTarget, message: &PushMessage) -> DeliveryOutcome {
        match self.seal(target, message) {
            Ok(sealed) => self.deliver(target, message, sealed).await,
            Err(outcome) => outcome,
        }
    }

    /// Encrypts one message for its subscriber: the CPU-bound half of a push, done before
    /// the push takes its place among the requests in flight.
    pub fn seal(&self, target: &PushTarget, message: &PushMessage) -> Result<Sealed, DeliveryOutcome> {
        encryption::encrypt(&target.p256dh, &target.auth, &message.payload, &self.rng).map(Sealed).map_err(|e| {
            tracing::warn!(origin = %target.origin, error = %e, "push not encrypted");
            DeliveryOutcome::Transport { reason: e.to_string() }
        })
    }

    /// Sends one sealed message; never panics, every failure is an outcome. Its span is
    /// at debug level, as is the log of a delivered push: at the default `info` a
    /// broadcast does not build a span per push, and a failure's warning names the origin.
    /// When no connection to the push service is open, one push opens it and the others
    /// wait for its answer (at most the connect timeout).
    #[tracing::instrument(level = "debug", skip_all, fields(endpoint_host = target.endpoint.host_str().unwrap_or("")))]
    pub async fn deliver(&self, target: &PushTarget, message: &PushMessage, sealed: Sealed) -> DeliveryOutcome {
        let authorization = self.vapid.authorization(&target.origin);
        let opening = self.connections.take_turn(&target.origin, self.patience).await;
        let started = Instant::now();
        let outcome = match self.post(target, push_headers(authorization, message), sealed.0).await {
            Ok((status, headers)) => {
                self.connections.answered(&target.origin, Instant::now());
                DeliveryOutcome::from_response(status, &headers)
            }
            Err(reason) => {
                self.connections.unanswered(&target.origin);
                DeliveryOutcome::Transport { reason }
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

    /// POSTs one encrypted message: over HTTP/2 where the push service offers it, else
    /// over HTTP/1.1. `Err` says why no answer came.
    async fn post(&self, target: &PushTarget, headers: HeaderMap, body: Vec<u8>) -> Result<Answer, String> {
        let (headers, body) = match self.http2.post(&target.origin, &target.endpoint, headers, body).await {
            Posted::Answered(answer) => return Ok(answer),
            Posted::Unanswered(reason) => return Err(reason),
            Posted::NotHttp2(headers, body) => (headers, body),
        };
        let mut request = reqwest::Request::new(reqwest::Method::POST, target.endpoint.clone());
        *request.headers_mut() = headers;
        *request.body_mut() = Some(body.into());
        match self.client.execute(request).await {
            Ok(mut response) => Ok((response.status(), std::mem::take(response.headers_mut()))),
            Err(e) => Err(transport_reason(&e)),
        }
    }
}

/// Sent with every push.
const USER_AGENT: &str = concat!("clarion/", env!("CARGO_PKG_VERSION"));

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
