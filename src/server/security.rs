//! Defences for a server on the public internet: the client IP, per-IP rate limits,
//! the `Origin` check against cross-site requests, and CORS.
//!
//! Limits are in memory, per process; the numbers are the defaults a public site needs
//! (`CLARION_SUBSCRIBE_RATE_LIMIT` sets the one for new subscriptions).

use super::rest::error::ApiError;
use super::subscriptions::Subscribed;
use crate::domain::SubscriptionJson;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Per-key limiters.
#[derive(Debug)]
pub struct Limits {
    /// New subscriptions per IP per hour (`None`: off).
    subscribe: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Writes (POST/DELETE) per IP per minute (`None`: off).
    writes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Wrong admin tokens per IP per minute.
    bad_tokens: DefaultKeyedRateLimiter<IpAddr>,
    /// Test pushes per IP, and per subscription, per minute.
    /// (`None`: off)
    test_push_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    test_push_subscription: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).expect("non-zero"))
}

/// Wrong admin tokens per IP per minute before 429.
pub const BAD_TOKENS_PER_MINUTE: u32 = 10;
/// Test pushes per IP and per subscription per minute, by default (`CLARION_TEST_PUSH_RATE_LIMIT`).
pub const TEST_PUSHES_PER_MINUTE: u32 = 5;

impl Limits {
    /// Each quota of 0 turns that limit off.
    pub fn new(subscribe_per_hour: u32, writes_per_minute: u32, test_pushes_per_minute: u32) -> Self {
        let test_pushes = NonZeroU32::new(test_pushes_per_minute).map(Quota::per_minute);
        Self {
            subscribe: NonZeroU32::new(subscribe_per_hour).map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            writes: NonZeroU32::new(writes_per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            bad_tokens: RateLimiter::keyed(per_minute(BAD_TOKENS_PER_MINUTE)),
            test_push_ip: test_pushes.map(RateLimiter::keyed),
            test_push_subscription: test_pushes.map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: Clone + std::hash::Hash + Eq>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K, what: &str) -> Result<(), ApiError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { what: what.to_string(), retry_after: wait.max(Duration::from_secs(1)) }
        })
    }

    /// A new subscription from this IP.
    pub fn new_subscription(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.subscribe {
            Some(limiter) => self.check(limiter, &ip, "new subscriptions from this address"),
            None => Ok(()),
        }
    }

    pub fn write(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.writes {
            Some(limiter) => self.check(limiter, &ip, "requests from this address"),
            None => Ok(()),
        }
    }

    /// Called for each wrong admin token; errs once an IP has guessed too often.
    pub fn bad_token(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check(&self.bad_tokens, &ip, "wrong admin tokens from this address")
    }

    pub fn test_push(&self, ip: IpAddr, endpoint: &str) -> Result<(), ApiError> {
        if let (Some(per_ip), Some(per_subscription)) = (&self.test_push_ip, &self.test_push_subscription) {
            self.check(per_ip, &ip, "test notifications from this address")?;
            self.check(per_subscription, &endpoint.to_string(), "test notifications to this subscription")?;
        }
        Ok(())
    }
}

/// A client address as stored with the subscriptions it creates: HMAC-SHA256 keyed with
/// a secret of this server, so the database never holds addresses.
pub fn client_hash(key: &ring::hmac::Key, ip: IpAddr) -> String {
    crate::domain::base64url::encode(&ring::hmac::sign(key, ip.to_string().as_bytes()).as_ref()[..16])
}

/// Subscribes on behalf of a web client (the REST API and the page's server function):
/// admits it, then stores the subscription with the keyed hash of its address.
pub async fn subscribe_from(
    state: &super::state::AppState,
    ip: IpAddr,
    json: &SubscriptionJson,
    user_agent: Option<&str>,
) -> Result<Subscribed, ApiError> {
    admit_subscription(state, ip, &json.endpoint).await?;
    let client = client_hash(&state.client_key, ip);
    Ok(super::subscriptions::subscribe(&state.core, json, user_agent, Some(&client)).await?)
}

/// Lets a subscription in: a known endpoint (an update) always; a new one only within
/// the client's hourly quota, the per-address cap and the server's cap.
async fn admit_subscription(state: &super::state::AppState, ip: IpAddr, endpoint: &str) -> Result<(), ApiError> {
    let store = &state.core.store;
    let internal = |e: anyhow::Error| ApiError::Core(e.into());
    if store.find_subscription(endpoint).await.map_err(internal)?.is_some() {
        return Ok(());
    }
    state.limits.new_subscription(ip)?;
    if state.max_subscriptions_per_ip > 0 {
        let from_here = store.count_subscriptions_from(&client_hash(&state.client_key, ip)).await.map_err(internal)?;
        if from_here as u64 >= state.max_subscriptions_per_ip {
            return Err(ApiError::TooManyFromAddress);
        }
    }
    if state.max_subscriptions > 0 {
        let count = store.count_subscriptions().await.map_err(internal)?;
        if count as u64 >= state.max_subscriptions {
            return Err(ApiError::Full);
        }
    }
    Ok(())
}

/// How to find the client's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIpPolicy {
    pub trust_proxy_headers: bool,
}

impl ClientIpPolicy {
    /// The client IP: the socket peer, or, when proxy headers are trusted, the first
    /// address in `Forwarded: for=` or `X-Forwarded-For`.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let fallback = peer.map(|p| p.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.trust_proxy_headers {
            return fallback;
        }
        forwarded_for(headers).unwrap_or(fallback)
    }

    /// The client IP of a request: its headers, and the socket peer that axum's
    /// `ConnectInfo` puts in its extensions.
    pub fn of(&self, headers: &HeaderMap, extensions: &axum::http::Extensions) -> IpAddr {
        self.client_ip(headers, extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
    }
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    if let Some(forwarded) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        let first = forwarded.split(',').next()?;
        for pair in first.split(';') {
            if let Some(value) = pair.trim().strip_prefix("for=").or_else(|| pair.trim().strip_prefix("For=")) {
                let value = value.trim_matches('"');
                let host =
                    value.strip_prefix('[').and_then(|v| v.split(']').next()).unwrap_or_else(|| value.split(':').next().unwrap_or(value));
                if let Ok(ip) = host.parse() {
                    return Some(ip);
                }
            }
        }
    }
    let xff = headers.get("x-forwarded-for")?.to_str().ok()?;
    xff.split(',').next()?.trim().parse().ok()
}

/// The client's IP, as [`ClientIpPolicy`] finds it.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<super::state::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &super::state::AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(state.client_ip.of(&parts.headers, &parts.extensions)))
    }
}

/// Origins allowed besides the site's own.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<Vec<String>>);

impl AllowedOrigins {
    pub fn parse(list: &str) -> Self {
        Self(Arc::new(list.split(',').map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).filter(|o| !o.is_empty()).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }

    pub fn header_values(&self) -> Vec<HeaderValue> {
        self.0.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect()
    }
}

/// True when a browser's `Origin` is this site itself (its host and port match `Host`).
fn same_site(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

/// Middleware for writes (anything but GET/HEAD/OPTIONS): refuses cross-site browser
/// requests (an `Origin` that is neither this site nor a CORS origin) and applies the
/// per-IP write limit. Requests without `Origin` (servers, curl) cannot be cross-site
/// forgeries and pass.
pub async fn guard_writes(State(state): State<super::state::AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if !same_site(&origin, headers) && !state.cors_origins.contains(&origin) {
            return ApiError::CrossSite(origin).into_response();
        }
    }
    let ip = state.client_ip.of(headers, request.extensions());
    if let Err(limited) = state.limits.write(ip) {
        return limited.into_response();
    }
    next.run(request).await
}

/// Largest total size of a request's header names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Middleware: refuses requests whose headers total more than [`MAX_HEADER_BYTES`].
pub async fn limit_header_size(request: Request, next: Next) -> Response {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge { limit: MAX_HEADER_BYTES }.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_count_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7, 10.0.0.1"));
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(ClientIpPolicy { trust_proxy_headers: false }.client_ip(&headers, peer), IpAddr::from([127, 0, 0, 1]));
        assert_eq!(ClientIpPolicy { trust_proxy_headers: true }.client_ip(&headers, peer), IpAddr::from([203, 0, 113, 7]));
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=\"[2001:db8::1]:4711\";proto=https, for=198.51.100.2"));
        assert_eq!(ClientIpPolicy { trust_proxy_headers: true }.client_ip(&headers, peer), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limits_refuse_past_the_quota_per_key() {
        let limits = Limits::new(2, 120, 5);
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        assert!(limits.new_subscription(a).is_ok());
        assert!(limits.new_subscription(a).is_ok());
        assert!(matches!(limits.new_subscription(a), Err(ApiError::RateLimited { .. })));
        assert!(limits.new_subscription(b).is_ok(), "another address has its own quota");
        let off = Limits::new(0, 0, 0);
        assert!(off.new_subscription(a).is_ok(), "0 turns the limit off");
        assert!(off.write(a).is_ok());
        for _ in 0..TEST_PUSHES_PER_MINUTE + 1 {
            assert!(off.test_push(a, "https://fcm.googleapis.com/x").is_ok());
        }
    }

    #[test]
    fn same_site_compares_host_and_port() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("push.example.com:8443"));
        assert!(same_site("https://push.example.com:8443", &headers));
        assert!(!same_site("https://push.example.com", &headers));
        assert!(!same_site("https://evil.example", &headers));
    }
}
