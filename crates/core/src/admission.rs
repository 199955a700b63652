//! Admission: who may subscribe or push a test, and how often. These are core rules
//! with core errors ([`CoreError::RateLimited`], [`CoreError::TooManyFromAddress`],
//! [`CoreError::Full`]); the web layer finds the client's address and maps the errors to
//! statuses.
//!
//! Limits are in memory, per process; the numbers are the defaults a public site needs
//! (`CLARION_SUBSCRIBE_RATE_LIMIT` sets the one for new subscriptions). They are keyed by
//! the client's address, an IPv6 client by its /64 (one subscriber line holds a whole
//! /64), and swept every minute, so their memory stays bounded however many clients come.

use crate::error::CoreError;
use crate::sites::Site;
use crate::subscriptions::Stored;
use crate::Clarion;
use clarion_domain::SubscribeRequest;
use governor::clock::{Clock, DefaultClock, QuantaInstant, Reference};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a web client's subscriptions and test pushes are admitted by: the rate limits,
/// the caps, and the key that hashes client addresses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    pub limits: Arc<Limits>,
    /// `CLARION_MAX_SUBSCRIPTIONS`; 0: no limit.
    pub max_subscriptions: u64,
    /// `CLARION_MAX_SUBSCRIPTIONS_PER_IP`; 0: no limit.
    pub max_subscriptions_per_ip: u64,
    /// Keys the hash of client addresses stored with subscriptions.
    pub client_key: Arc<ring::hmac::Key>,
}

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
    /// Sends per API key per minute (`None`: off); the admin token has no such limit.
    key_sends: Option<DefaultKeyedRateLimiter<i64>>,
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
/// Sends per API key per minute, by default (`CLARION_KEY_SEND_RATE_LIMIT`).
pub const KEY_SENDS_PER_MINUTE: u32 = 60;
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
            key_sends: NonZeroU32::new(KEY_SENDS_PER_MINUTE).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Sets the sends each API key may make per minute (`CLARION_KEY_SEND_RATE_LIMIT`;
    /// 0: no limit).
    pub fn with_key_sends(mut self, per_minute: u32) -> Self {
        self.key_sends = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        self
    }

    /// A send (or cancel) made with API key `key_id`: each key has its own quota, so one
    /// busy or leaked key cannot use up another's.
    pub fn key_send(&self, key_id: i64) -> Result<(), CoreError> {
        self.check_if_on(&self.key_sends, &key_id, "sends with this API key")
    }

    fn check<K: Clone + std::hash::Hash + Eq>(&self, limiter: &DefaultKeyedRateLimiter<K>, key: &K, what: &str) -> Result<(), CoreError> {
        limiter.check_key(key).map_err(|not_until| self.limited(what, not_until.wait_time_from(self.clock.now())))
    }

    /// [`Limits::check`] for a limit that may be off.
    fn check_if_on<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<K>>,
        key: &K,
        what: &str,
    ) -> Result<(), CoreError> {
        limiter.as_ref().map_or(Ok(()), |limiter| self.check(limiter, key, what))
    }

    fn limited(&self, what: &str, wait: Duration) -> CoreError {
        CoreError::RateLimited { what: what.to_string(), retry_after: wait.max(Duration::from_secs(1)) }
    }

    /// A new subscription from this client.
    pub fn new_subscription(&self, ip: IpAddr) -> Result<(), CoreError> {
        self.check_if_on(&self.subscribe, &ClientKey::of(ip), "new subscriptions from this address")
    }

    pub fn write(&self, ip: IpAddr) -> Result<(), CoreError> {
        self.check_if_on(&self.writes, &ClientKey::of(ip), "requests from this address")
    }

    /// Called before an admin credential is checked: errs while this client is locked out
    /// for guessing, whatever it presents now.
    pub fn admin_attempt(&self, ip: IpAddr) -> Result<(), CoreError> {
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
    pub fn bad_token(&self, ip: IpAddr) -> Result<(), CoreError> {
        let key = ClientKey::of(ip);
        self.bad_tokens.check_key(&key).map_err(|not_until| {
            let now = self.clock.now();
            let wait = not_until.wait_time_from(now);
            self.locked_out.lock().expect("lock-out lock").insert(key, now + wait.into());
            self.limited("wrong admin tokens from this address", wait)
        })
    }

    /// A test push from this client, before anything else is looked at.
    pub fn test_push_from(&self, ip: IpAddr) -> Result<(), CoreError> {
        self.check_if_on(&self.test_push_ip, &ClientKey::of(ip), "test notifications from this address")
    }

    /// A test push to this stored subscription, charged only once its owner proved it:
    /// a stranger cannot use up the owner's quota.
    pub fn test_push_to(&self, subscription_id: i64) -> Result<(), CoreError> {
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
        for limiter in [&self.test_push_subscription, &self.key_sends].into_iter().flatten() {
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
    clarion_domain::base64url::encode(&ring::hmac::sign(key, keyed.to_string().as_bytes()).as_ref()[..16])
}

/// Subscribes on behalf of a web client (the REST API and the page's server function):
/// admits it, then stores the subscription with the keyed hash of its address.
pub async fn subscribe_from(
    core: &Clarion,
    site: &Site,
    admission: &Admission,
    ip: IpAddr,
    request: &SubscribeRequest,
    user_agent: Option<&str>,
) -> Result<Stored, CoreError> {
    // Checked first: a refused request (bad keys, a bad token, unknown topics) never uses
    // up the client's quota of new subscriptions.
    let checked = crate::subscriptions::check_subscribe(core, site, request).await?;
    if !checked.is_known() {
        admit_new_subscription(core, site, admission, ip).await?;
    }
    let client = client_hash(&admission.client_key, ip);
    crate::subscriptions::store_checked(core, site, checked, user_agent, Some(&client)).await
}

/// Pushes a test notification for a web client (the REST API and the page's server
/// function): to a subscription its `auth` secret proves, within the per-address and
/// per-subscription limits.
pub async fn test_push_from(
    core: &Clarion,
    site: &Site,
    admission: &Admission,
    ip: IpAddr,
    endpoint: &str,
    auth: &str,
) -> Result<clarion_domain::TestPushResult, CoreError> {
    admission.limits.test_push_from(ip)?;
    let owned = crate::ownership::prove_ownership(core, site, endpoint, auth).await?;
    admission.limits.test_push_to(owned.id())?;
    crate::broadcasts::send_test(core, site, owned).await
}

/// Lets a new subscription in: within the client's hourly quota, the per-address cap and
/// the cap on the site's subscriptions, each the site's own where it set one, else the
/// server's (`CLARION_MAX_SUBSCRIPTIONS_PER_IP`, `CLARION_MAX_SUBSCRIPTIONS`). (A known
/// endpoint, a re-sync, is always let in.)
async fn admit_new_subscription(core: &Clarion, site: &Site, admission: &Admission, ip: IpAddr) -> Result<(), CoreError> {
    let store = &core.store;
    admission.limits.new_subscription(ip)?;
    let per_client = site.max_subscriptions_per_client.unwrap_or(admission.max_subscriptions_per_ip);
    if per_client > 0 {
        let from_here = store.count_subscriptions_from(&site.name, &client_hash(&admission.client_key, ip)).await?;
        if from_here as u64 >= per_client {
            return Err(CoreError::TooManyFromAddress);
        }
    }
    let most = site.max_subscriptions.unwrap_or(admission.max_subscriptions);
    if most > 0 {
        let count = store.count_subscriptions(&site.name).await?;
        if count as u64 >= most {
            return Err(CoreError::Full);
        }
    }
    Ok(())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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
        assert!(matches!(limits.admin_attempt(guesser), Err(CoreError::RateLimited { .. })));
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
        assert!(matches!(limits.new_subscription(a), Err(CoreError::RateLimited { .. })));
        assert!(limits.new_subscription(b).is_ok(), "another address has its own quota");
        let off = Limits::new(0, 0, 0);
        assert!(off.new_subscription(a).is_ok(), "0 turns the limit off");
        assert!(off.write(a).is_ok());
        for _ in 0..TEST_PUSHES_PER_MINUTE + 1 {
            assert!(off.test_push_from(a).is_ok() && off.test_push_to(1).is_ok());
        }
    }
}
