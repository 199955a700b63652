//! Sending one push message (RFC 8030).
//!
//! [`push_headers`] and [`DeliveryOutcome::from_response`] are plain functions; the
//! [`PushSender`] only carries them to the push service: over HTTP/2 on the `h2` crate
//! where the push service offers it ([`crate::http2`]), otherwise over a pooled reqwest
//! client (HTTP/1.1). Both use rustls, follow no redirects and keep the connect and
//! request timeouts.
//!
//! A push service with no open connection gets one push first (see [`crate::connections`]).

use crate::connections::{Connections, POOL_IDLE};
use crate::encryption;
use crate::http2::{Answer, Http2Connections, Posted};
use crate::outcome::{DeliveryOutcome, PushTimeouts};
use crate::resolver::PublicOnlyResolver;
use crate::vapid::VapidKeys;
use anyhow::Context;
use clarion_domain::subscription::PushHostPolicy;
use clarion_domain::subscription::{AuthSecret, P256dhKey};
use clarion_domain::{random, Urgency};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Told of every push's answer and how long it took: a program's metrics hook in here
/// (Clarion's Prometheus counters do), so the sender needs no metrics library.
pub trait PushObserver: std::fmt::Debug + Send + Sync {
    /// One push to `origin` settled with `outcome`, `took` after it was sent.
    fn push_settled(&self, origin: &str, outcome: &DeliveryOutcome, took: Duration);
}

/// The observer of a sender nobody watches.
#[derive(Debug, Default)]
pub struct Unobserved;

impl PushObserver for Unobserved {
    fn push_settled(&self, _: &str, _: &DeliveryOutcome, _: Duration) {}
}

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

/// Sends pushes: holds the HTTP clients and the connections; each push is signed with the
/// VAPID keys its caller gives (a site may hold several, one per subscription).
#[derive(Clone, Debug)]
pub struct PushSender {
    /// HTTP/1.1, for push services that do not offer HTTP/2 and for `http` endpoints.
    client: reqwest::Client,
    http2: Arc<Http2Connections>,
    /// Every push's outcome and latency are reported here.
    observer: Arc<dyn PushObserver>,
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
        extra_ca_file: Option<&std::path::Path>,
        policy: Arc<PushHostPolicy>,
        timeouts: PushTimeouts,
        observer: Arc<dyn PushObserver>,
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
        Ok(Self { client, http2: Arc::new(http2), observer, connections: Arc::default(), patience: timeouts.connect })
    }

    /// Encrypts and sends one message signed with `vapid`; never panics, every failure is
    /// an outcome.
    pub async fn send(&self, vapid: &VapidKeys, target: &PushTarget, message: &PushMessage) -> DeliveryOutcome {
        match self.seal(target, message) {
            Ok(sealed) => self.deliver(vapid, target, message, sealed).await,
            Err(outcome) => outcome,
        }
    }

    /// Encrypts one message for its subscriber: the CPU-bound half of a push, done before
    /// the push takes its place among the requests in flight.
    pub fn seal(&self, target: &PushTarget, message: &PushMessage) -> Result<Sealed, DeliveryOutcome> {
        encryption::encrypt(&target.p256dh, &target.auth, &message.payload, random::source()).map(Sealed).map_err(|e| {
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
    pub async fn deliver(&self, vapid: &VapidKeys, target: &PushTarget, message: &PushMessage, sealed: Sealed) -> DeliveryOutcome {
        let authorization = vapid.authorization(&target.origin);
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
        self.observer.push_settled(&target.origin, &outcome, started.elapsed());
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
