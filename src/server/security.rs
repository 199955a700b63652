//! Defences for a server on the public internet: the client IP, per-IP rate limits,
//! the `Origin` check against cross-site requests, and CORS.
//!
//! Limits are in memory, per process; the numbers are the defaults a public site needs
//! (`CLARION_SUBSCRIBE_RATE_LIMIT` sets the one for new subscriptions). They are keyed by
//! the client's address, an IPv6 client by its /64 (one subscriber line holds a whole
//! /64), and swept every minute, so their memory stays bounded however many clients come.
//!
//! The client's address is the socket peer, unless the peer is a trusted proxy: then it
//! is the rightmost address in `Forwarded` (or `X-Forwarded-For`) that is not a trusted
//! proxy. Entries left of it are written by the client itself and never believed.

use super::rest::error::ApiError;
use super::subscriptions::Stored;
use crate::domain::SubscribeRequest;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use forwarded_header_value::ForwardedHeaderValue;
use governor::clock::{Clock, DefaultClock, QuantaInstant, Reference};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Per-key limiters, keyed by [`ClientKey`] (or by subscription id).
#[derive(Debug)]
pub struct Limits {
    /// New subscriptions per client per hour (`None`: off).
    subscribe: Option<DefaultKeyedRateLimiter<ClientKey>>,
    /// Writes (POST/DELETE) per client per minute (`None`: off).
    writes: Option<DefaultKeyedRateLimiter<ClientKey>>,
    /// Wrong admin tokens per client per minute.
    bad_tokens: DefaultKeyedRateLimiter<ClientKey>,
    /// Clients that used up `bad_tokens`, until when: while locked out, not even the right
    /// token is checked, so guessing learns nothing.
    locked_out: Mutex<HashMap<ClientKey, QuantaInstant>>,
    /// Test pushes per client, and per subscription (by id, once its owner proved it),
    /// per minute (`None`: off).
    test_push_ip: Option<DefaultKeyedRateLimiter<ClientKey>>,
    test_push_subscription: Option<DefaultKeyedRateLimiter<i64>>,
    clock: DefaultClock,
}

/// What per-client limits are keyed by: an IPv4 address, or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
            v4 => Self(v4),
        }
    }
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
            locked_out: Mutex::default(),
            test_push_ip: test_pushes.map(RateLimiter::keyed),
            test_push_subscription: test_pushes.map(RateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: Clone + std::hash::Hash + Eq>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K, what: &str) -> Result<(), ApiError> {
        limiter.check_key(key).map_err(|not_until| self.limited(what, not_until.wait_time_from(self.clock.now())))
    }

    /// [`Limits::check`] for a limit that may be off.
    fn check_if_on<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<K>>,
        key: &K,
        what: &str,
    ) -> Result<(), ApiError> {
        limiter.as_ref().map_or(Ok(()), |limiter| self.check(limiter, key, what))
    }

    fn limited(&self, what: &str, wait: Duration) -> ApiError {
        ApiError::RateLimited { what: what.to_string(), retry_after: wait.max(Duration::from_secs(1)) }
    }

    /// A new subscription from this client.
    pub fn new_subscription(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check_if_on(&self.subscribe, &ClientKey::of(ip), "new subscriptions from this address")
    }

    pub fn write(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check_if_on(&self.writes, &ClientKey::of(ip), "requests from this address")
    }

    /// Called before an admin credential is checked: errs while this client is locked out
    /// for guessing, whatever it presents now.
    pub fn admin_attempt(&self, ip: IpAddr) -> Result<(), ApiError> {
        let key = ClientKey::of(ip);
        let now = self.clock.now();
        let mut locked = self.locked_out.lock().expect("lock-out lock");
        match locked.get(&key) {
            Some(&until) if until > now => Err(self.limited("wrong admin tokens from this address", until.duration_since(now).into())),
            Some(_) => {
                locked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Called for each wrong admin token; once a client has guessed too often it is
    /// locked out (see [`Limits::admin_attempt`]) until its quota refills.
    pub fn bad_token(&self, ip: IpAddr) -> Result<(), ApiError> {
        let key = ClientKey::of(ip);
        self.bad_tokens.check_key(&key).map_err(|not_until| {
            let now = self.clock.now();
            let wait = not_until.wait_time_from(now);
            self.locked_out.lock().expect("lock-out lock").insert(key, now + wait.into());
            self.limited("wrong admin tokens from this address", wait)
        })
    }

    /// A test push from this client, before anything else is looked at.
    pub fn test_push_from(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check_if_on(&self.test_push_ip, &ClientKey::of(ip), "test notifications from this address")
    }

    /// A test push to this stored subscription, charged only once its owner proved it:
    /// a stranger cannot use up the owner's quota.
    pub fn test_push_to(&self, subscription_id: i64) -> Result<(), ApiError> {
        self.check_if_on(&self.test_push_subscription, &subscription_id, "test notifications to this subscription")
    }

    /// The limiters keyed by client, those that are on.
    fn client_limiters(&self) -> impl Iterator<Item = &DefaultKeyedRateLimiter<ClientKey>> {
        [&self.subscribe, &self.writes, &self.test_push_ip].into_iter().flatten().chain([&self.bad_tokens])
    }

    /// Forgets the state of every key whose quota has refilled, and frees the memory.
    pub fn sweep(&self) {
        for limiter in self.client_limiters() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.test_push_subscription {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = self.clock.now();
        let mut locked = self.locked_out.lock().expect("lock-out lock");
        locked.retain(|_, until| *until > now);
        locked.shrink_to_fit();
    }

    /// Keys held across all limiters (for tests and diagnostics).
    pub fn tracked_keys(&self) -> usize {
        let keyed = self.client_limiters().map(|l| l.len()).sum::<usize>();
        keyed + self.test_push_subscription.as_ref().map_or(0, |l| l.len()) + self.locked_out.lock().expect("lock-out lock").len()
    }
}

/// How often the limiters are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A server's background task: sweeps the limiters every [`SWEEP_INTERVAL`] until `stop`.
pub async fn sweep_limits(limits: Arc<Limits>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_INTERVAL) => limits.sweep(),
            _ = stop.cancelled() => return,
        }
    }
}

/// A client address as stored with the subscriptions it creates: HMAC-SHA256 keyed with
/// a secret of this server, so the database never holds addresses.
/// An IPv6 client is hashed by its /64, like its rate limits.
pub fn client_hash(key: &ring::hmac::Key, ip: IpAddr) -> String {
    let ClientKey(keyed) = ClientKey::of(ip);
    crate::domain::base64url::encode(&ring::hmac::sign(key, keyed.to_string().as_bytes()).as_ref()[..16])
}

/// Subscribes on behalf of a web client (the REST API and the page's server function):
/// admits it, then stores the subscription with the keyed hash of its address.
pub async fn subscribe_from(
    state: &super::state::AppState,
    ip: IpAddr,
    request: &SubscribeRequest,
    user_agent: Option<&str>,
) -> Result<Stored, ApiError> {
    admit_subscription(state, ip, &request.endpoint).await?;
    let client = client_hash(&state.client_key, ip);
    Ok(super::subscriptions::subscribe(&state.core, request, user_agent, Some(&client)).await?)
}

/// Pushes a test notification for a web client (the REST API and the page's server
/// function): to a subscription its `auth` secret proves, within the per-address and
/// per-subscription limits.
pub async fn test_push_from(
    state: &super::state::AppState,
    ip: IpAddr,
    endpoint: &str,
    auth: &str,
) -> Result<crate::domain::TestPushResult, ApiError> {
    state.limits.test_push_from(ip)?;
    let owned = super::broadcasts::prove_ownership(&state.core, endpoint, auth).await?;
    state.limits.test_push_to(owned.id())?;
    Ok(super::broadcasts::send_test(&state.core, owned).await?)
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

/// Which proxies' forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub enum ClientIpPolicy {
    /// None: the client is the socket peer.
    #[default]
    Direct,
    /// `CLARION_TRUST_PROXY_HEADERS` alone: the peer, whatever it is, is the only proxy,
    /// so the client is the last address it appended.
    PeerIsTheProxy,
    /// `CLARION_TRUSTED_PROXIES`: headers are read only from a peer in these networks,
    /// and every address in them is skipped from the right.
    Trusted(Arc<Vec<IpNet>>),
}

impl ClientIpPolicy {
    /// From the settings: a comma-separated list of CIDRs (or bare addresses), and the
    /// older switch that trusts the peer as the only proxy.
    pub fn from_settings(trusted_proxies: &str, trust_proxy_headers: bool) -> Result<Self, String> {
        let networks = trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an address or a CIDR network (e.g. 10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match (networks.is_empty(), trust_proxy_headers) {
            (false, _) => Self::Trusted(Arc::new(networks)),
            (true, true) => Self::PeerIsTheProxy,
            (true, false) => Self::Direct,
        })
    }

    /// True when this peer is a proxy whose headers (`X-Forwarded-*`, `Forwarded`) count.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        match self {
            Self::Direct => false,
            Self::PeerIsTheProxy => true,
            Self::Trusted(networks) => networks.iter().any(|n| n.contains(&canonical(peer))),
        }
    }

    /// The client IP: the socket peer, or, when the peer is a trusted proxy, the rightmost
    /// forwarded address that is not a trusted proxy.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let peer = peer.map(|p| canonical(p.ip())).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        let client = match self {
            Self::Trusted(networks) => hops.iter().rev().find(|ip| !networks.iter().any(|n| n.contains(*ip))).or(hops.first()).copied(),
            _ => hops.last().copied(),
        };
        client.unwrap_or(peer)
    }

    /// The client IP of a request: its headers, and the socket peer that axum's
    /// `ConnectInfo` puts in its extensions.
    pub fn of(&self, headers: &HeaderMap, extensions: &axum::http::Extensions) -> IpAddr {
        self.client_ip(headers, peer(extensions))
    }

    /// True when the request came through a trusted proxy, whose `X-Forwarded-Proto` counts.
    pub fn via_trusted_proxy(&self, extensions: &axum::http::Extensions) -> bool {
        peer(extensions).is_some_and(|p| self.trusts(canonical(p.ip())))
    }
}

fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses a request passed through, client side first: from `X-Forwarded-For`
/// (what nginx, HAProxy and cloud load balancers append), else `Forwarded`. A proxy that
/// writes only `Forwarded` must drop a client's `X-Forwarded-For`. Hops without an
/// address (`unknown`, obfuscated) are left out; an unparsable header yields none.
fn forwarded_hops(headers: &HeaderMap) -> Vec<IpAddr> {
    let parse = |name: header::HeaderName, parser: fn(&str) -> Option<ForwardedHeaderValue>| {
        let joined = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
        (!joined.trim().is_empty()).then(|| parser(&joined)).flatten()
    };
    let value = parse(header::HeaderName::from_static("x-forwarded-for"), |v| ForwardedHeaderValue::from_x_forwarded_for(v).ok())
        .or_else(|| parse(header::FORWARDED, |v| ForwardedHeaderValue::from_forwarded(v).ok()));
    value.map(|v| v.iter().filter_map(|stanza| stanza.forwarded_for_ip()).map(canonical).collect()).unwrap_or_default()
}

/// True when the browser reached us over TLS: only a trusted proxy can say so (with
/// `X-Forwarded-Proto: https`), since Clarion itself listens on plain HTTP.
pub struct OverTls(pub bool);

impl FromRequestParts<super::state::AppState> for OverTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &super::state::AppState) -> Result<Self, Self::Rejection> {
        let proto_https =
            parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Ok(OverTls(proto_https && state.client_ip.via_trusted_proxy(&parts.extensions)))
    }
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
        Self(Arc::new(list.split(',').map(|o| Self::normalize(o.trim())).filter(|o| !o.is_empty()).collect()))
    }

    /// An origin as the list keeps it: lower case, without a trailing slash.
    pub fn normalize(origin: &str) -> String {
        origin.trim_end_matches('/').to_ascii_lowercase()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `origin` (as a browser sent it) is listed.
    pub fn contains(&self, origin: &str) -> bool {
        self.0.contains(&Self::normalize(origin))
    }
}

/// True when a browser's `Origin` is this site itself (its host and port match `Host`).
fn same_site(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

/// Middleware for writes (anything but GET/HEAD/OPTIONS): refuses cross-site browser
/// requests (an `Origin` that is neither this site nor, for the public endpoints, a site
/// in `CLARION_CORS_ORIGINS`) and applies the
/// per-IP write limit. Requests without `Origin` (servers, curl) cannot be cross-site
/// forgeries and pass.
pub async fn guard_writes(State(state): State<super::state::AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin = AllowedOrigins::normalize(origin);
        let listed_site =
            || state.cors_origins.contains(&origin) && super::rest::is_public_endpoint(request.method(), request.uri().path());
        if !same_site(&origin, headers) && !listed_site() {
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
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn proxy_headers_count_only_from_a_trusted_peer() {
        let mut headers = HeaderMap::new();
        // The client wrote 6.6.6.6 itself; the proxy at 10.0.0.1 appended what it saw.
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7"));
        let peer = Some(SocketAddr::from(([10, 0, 0, 1], 9000)));
        let direct = ClientIpPolicy::from_settings("", false).unwrap();
        assert_eq!(direct.client_ip(&headers, peer), ip("10.0.0.1"));
        let alone = ClientIpPolicy::from_settings("", true).unwrap();
        assert_eq!(alone.client_ip(&headers, peer), ip("203.0.113.7"), "the rightmost entry, never the client-written leftmost");
        let listed = ClientIpPolicy::from_settings("10.0.0.0/8, 192.0.2.5", false).unwrap();
        assert_eq!(listed.client_ip(&headers, peer), ip("203.0.113.7"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7, 192.0.2.5"));
        assert_eq!(listed.client_ip(&headers, peer), ip("203.0.113.7"), "trusted proxies are skipped from the right");
        let stranger = Some(SocketAddr::from(([198, 51, 100, 9], 9000)));
        assert_eq!(listed.client_ip(&headers, stranger), ip("198.51.100.9"), "headers from an untrusted peer are ignored");
        assert_eq!(ClientIpPolicy::from_settings("10.0.0.0/8", true).unwrap().client_ip(&headers, stranger), ip("198.51.100.9"));
        assert!(ClientIpPolicy::from_settings("10.0.0.0/33", false).unwrap_err().contains("10.0.0.0/33"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let mut headers = HeaderMap::new();
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=198.51.100.2, for=\"[2001:db8::1]:4711\";proto=https"));
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(ClientIpPolicy::PeerIsTheProxy.client_ip(&headers, peer), ip("2001:db8::1"));
        headers.insert(header::FORWARDED, HeaderValue::from_static("for=unknown"));
        assert_eq!(ClientIpPolicy::PeerIsTheProxy.client_ip(&headers, peer), ip("127.0.0.1"), "no address: the peer");
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64() {
        assert_eq!(ClientKey::of(ip("2001:db8:1:2:aaaa::1")), ClientKey::of(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(ClientKey::of(ip("2001:db8:1:2::1")), ClientKey::of(ip("2001:db8:1:3::1")));
        assert_eq!(ClientKey::of(ip("::ffff:192.0.2.1")), ClientKey::of(ip("192.0.2.1")));
        let limits = Limits::new(1, 0, 0);
        assert!(limits.new_subscription(ip("2001:db8:1:2::1")).is_ok());
        assert!(limits.new_subscription(ip("2001:db8:1:2::2")).is_err(), "the same /64 shares one quota");
    }

    #[test]
    fn a_locked_out_client_waits_even_with_the_right_token() {
        let limits = Limits::new(0, 0, 0);
        let guesser = ip("192.0.2.7");
        for _ in 0..BAD_TOKENS_PER_MINUTE {
            assert!(limits.admin_attempt(guesser).is_ok());
            assert!(limits.bad_token(guesser).is_ok());
        }
        assert!(limits.bad_token(guesser).is_err());
        assert!(matches!(limits.admin_attempt(guesser), Err(ApiError::RateLimited { .. })));
        assert!(limits.admin_attempt(ip("192.0.2.8")).is_ok(), "others are not affected");
    }

    #[test]
    fn sweeping_forgets_refilled_keys() {
        let limits = Limits::new(0, 120, 5);
        for n in 0..1000u32 {
            limits.write(IpAddr::from(n.to_be_bytes())).unwrap();
        }
        assert_eq!(limits.tracked_keys(), 1000);
        // A write quota of 120 a minute refills one cell every 0.5 s; a key used once is
        // dropped one interval after it refilled.
        std::thread::sleep(Duration::from_millis(1100));
        limits.sweep();
        assert_eq!(limits.tracked_keys(), 0);
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
            assert!(off.test_push_from(a).is_ok() && off.test_push_to(1).is_ok());
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
