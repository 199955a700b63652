//! A browser's push subscription: the wire shape `PushSubscription.toJSON()` produces, and
//! (on the server) the parsed form that code past the API boundary works with.
//!
//! Parsing checks everything a push service would later reject, so that a stored
//! subscription is always sendable:
//! - the endpoint is a URL the [`PushHostPolicy`] allows (https to a known push service,
//!   or any scheme and port for hosts the operator listed in `CLARION_PUSH_HOSTS`);
//! - `p256dh` is a 65-byte uncompressed point on P-256;
//! - `auth` is 16 bytes.

use serde::{Deserialize, Serialize};

/// `PushSubscription.toJSON()`, exactly as browsers send it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionJson {
    /// The push service URL that messages for this browser are POSTed to.
    pub endpoint: String,
    /// Milliseconds since the epoch when the subscription lapses; browsers mostly send null.
    #[serde(default)]
    pub expiration_time: Option<f64>,
    /// The browser's key material.
    pub keys: SubscriptionKeysJson,
}

/// The `keys` member of a subscription, both base64url.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionKeysJson {
    /// The browser's P-256 public key (65 bytes uncompressed).
    pub p256dh: String,
    /// The 16-byte authentication secret; a secret, never logged.
    pub auth: String,
}

/// The body of `POST /api/v1/subscriptions`: the subscription as the browser gave it,
/// plus, optionally, the topics chosen and an identity token from the site's backend.
/// Unknown members are refused (a misspelt `user_tokn` must not silently subscribe
/// without a user).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub endpoint: String,
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeysJson,
    /// Topics to receive; without them a new subscription gets the default topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// A JWT (HS256) the site's backend signed with `CLARION_IDENTITY_SECRET`: whose
    /// device this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
}

/// What storing a subscription answers (`POST /api/v1/subscriptions`, and the page's
/// `save_subscription` server function): its id and the topics it has now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSubscription {
    pub id: i64,
    pub topics: Vec<String>,
}

impl SubscribeRequest {
    /// The browser's subscription alone.
    pub fn subscription(&self) -> SubscriptionJson {
        SubscriptionJson { endpoint: self.endpoint.clone(), expiration_time: self.expiration_time, keys: self.keys.clone() }
    }

    /// A plain subscribe: no topics chosen, no identity.
    pub fn from_subscription(subscription: SubscriptionJson) -> Self {
        let SubscriptionJson { endpoint, expiration_time, keys } = subscription;
        Self { endpoint, expiration_time, keys, topics: None, user_token: None }
    }
}

impl std::fmt::Debug for SubscribeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeRequest")
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys)
            .field("topics", &self.topics)
            .field("user_token", &self.user_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for SubscriptionJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionJson")
            .field("endpoint", &self.endpoint)
            .field("expiration_time", &self.expiration_time)
            .field("keys", &self.keys)
            .finish()
    }
}

impl std::fmt::Debug for SubscriptionKeysJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionKeysJson").field("p256dh", &self.p256dh).field("auth", &"<redacted>").finish()
    }
}

#[cfg(feature = "ssr")]
pub use parsed::*;

#[cfg(feature = "ssr")]
mod parsed {
    use super::SubscriptionJson;
    use crate::base64url;
    use std::fmt;

    /// The longest endpoint accepted, in bytes. Real push services stay far below it.
    pub const MAX_ENDPOINT_LEN: usize = 2048;

    /// Push services every browser vendor runs. A `*.` entry matches any subdomain.
    pub const KNOWN_PUSH_HOSTS: &[&str] = &[
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "*.push.services.mozilla.com",
        "web.push.apple.com",
        "*.push.apple.com",
        "*.notify.windows.com",
    ];

    /// Whose push service an origin is, from a closed set: what metrics label pushes with,
    /// so a visitor who makes up push hosts (`*.notify.windows.com` accepts any) adds no
    /// series. Hosts from `CLARION_PUSH_HOSTS` (a self-hosted autopush, the local push
    /// service) are `other`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum PushVendor {
        /// Google's Firebase Cloud Messaging (Chrome, Edge on Android, most Chromium browsers).
        Fcm,
        /// Mozilla's autopush (Firefox).
        Mozilla,
        /// Apple's push service (Safari).
        Apple,
        /// Windows Push Notification Services (Edge on Windows).
        Wns,
        /// Any other push service.
        Other,
    }

    impl PushVendor {
        /// The vendor of a push-service origin (`https://fcm.googleapis.com`) or host.
        pub fn of(origin: &str) -> Self {
            let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            let host = host.split(['/', ':']).next().unwrap_or_default().to_ascii_lowercase();
            let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
            if under("googleapis.com") {
                Self::Fcm
            } else if under("push.services.mozilla.com") {
                Self::Mozilla
            } else if under("push.apple.com") {
                Self::Apple
            } else if under("notify.windows.com") {
                Self::Wns
            } else {
                Self::Other
            }
        }

        /// The label value: `fcm`, `mozilla`, `apple`, `wns` or `other`.
        pub fn label(self) -> &'static str {
            match self {
                Self::Fcm => "fcm",
                Self::Mozilla => "mozilla",
                Self::Apple => "apple",
                Self::Wns => "wns",
                Self::Other => "other",
            }
        }
    }

    /// A field of a request that failed to parse, and why. Becomes a 4xx naming the field.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("{field}: {reason}")]
    pub struct FieldError {
        /// The JSON path of the offending field, e.g. `keys.p256dh`.
        pub field: &'static str,
        /// What is wrong with it, in words a developer can act on.
        pub reason: String,
    }

    impl FieldError {
        pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
            Self { field, reason: reason.into() }
        }
    }

    /// One allowlist entry: `host`, `host:port`, `*.domain` or `*.domain:port`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HostPattern {
        host: String,
        wildcard: bool,
        port: Option<u16>,
    }

    impl HostPattern {
        /// Parses one `CLARION_PUSH_HOSTS` entry.
        pub fn parse(entry: &str) -> Result<Self, String> {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                return Err("empty host".into());
            }
            let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
                // [v6]:port or [v6]
                let (h, after) = rest.split_once(']').ok_or("unclosed [ in IPv6 host")?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port in {entry}"))?),
                    None if after.is_empty() => None,
                    None => return Err(format!("unexpected text after ] in {entry}")),
                };
                (format!("[{h}]"), port)
            } else {
                match entry.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| format!("bad port in {entry}"))?)),
                    None => (entry.clone(), None),
                }
            };
            let (host, wildcard) = match host.strip_prefix("*.") {
                Some(suffix) => (suffix.to_string(), true),
                None => (host, false),
            };
            if host.is_empty() || host.contains('/') || host.contains('@') {
                return Err(format!("not a host: {entry}"));
            }
            Ok(Self { host, wildcard, port })
        }

        fn matches_host(&self, host: &str) -> bool {
            if self.wildcard {
                host.len() > self.host.len() + 1 && host.ends_with(&self.host) && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
            } else {
                host == self.host
            }
        }

        fn matches(&self, host: &str, port: u16) -> bool {
            self.matches_host(host) && self.port.is_none_or(|p| p == port)
        }
    }

    /// Which push-service hosts subscriptions may point at.
    ///
    /// The built-in vendors must be reached over `https://` on the default port by name.
    /// Hosts the operator lists (`CLARION_PUSH_HOSTS`) are trusted further: plain `http://`,
    /// an explicit port and IP literals are allowed for them, which is what a local push
    /// service for development needs.
    #[derive(Debug, Clone)]
    pub struct PushHostPolicy {
        known: Vec<HostPattern>,
        operator: Vec<HostPattern>,
    }

    impl Default for PushHostPolicy {
        fn default() -> Self {
            Self::with_operator_hosts(Vec::new())
        }
    }

    impl PushHostPolicy {
        /// The built-in vendors plus the operator's extra hosts.
        pub fn with_operator_hosts(operator: Vec<HostPattern>) -> Self {
            let known = KNOWN_PUSH_HOSTS.iter().map(|h| HostPattern::parse(h).expect("built-in host patterns parse")).collect();
            Self { known, operator }
        }

        /// Parses a comma-separated `CLARION_PUSH_HOSTS` value.
        pub fn from_list(list: &str) -> Result<Self, String> {
            let operator = list.split(',').filter(|s| !s.trim().is_empty()).map(HostPattern::parse).collect::<Result<Vec<_>, _>>()?;
            Ok(Self::with_operator_hosts(operator))
        }

        /// True when the operator listed this URL's host (and port, if the entry names one).
        pub fn is_operator_host(&self, url: &url::Url) -> bool {
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                return false;
            };
            self.operator.iter().any(|p| p.matches(host, port))
        }

        /// True when an operator entry names this host (on any of its ports).
        pub fn is_operator_hostname(&self, host: &str) -> bool {
            let host = host.to_ascii_lowercase();
            self.operator.iter().any(|p| p.matches_host(&host))
        }

        /// Checks an endpoint URL against the policy; `Err` says why it is refused.
        pub fn check(&self, url: &url::Url) -> Result<(), String> {
            if !url.username().is_empty() || url.password().is_some() {
                return Err("endpoint must not carry user info".into());
            }
            let Some(host) = url.host() else {
                return Err("endpoint has no host".into());
            };
            if self.is_operator_host(url) {
                return match url.scheme() {
                    "https" | "http" => Ok(()),
                    other => Err(format!("endpoint scheme {other}: is not http(s)")),
                };
            }
            if url.scheme() != "https" {
                return Err("endpoint must use https:// (plain http is allowed only for hosts in CLARION_PUSH_HOSTS)".into());
            }
            let url::Host::Domain(name) = host else {
                return Err("endpoint host must be a push service name, not an IP address".into());
            };
            if url.port().is_some() {
                return Err("endpoint must not name a port (allowed only for hosts in CLARION_PUSH_HOSTS)".into());
            }
            let default_port = 443;
            if self.known.iter().any(|p| p.matches(name, default_port)) {
                Ok(())
            } else {
                Err(format!("endpoint host {name} is not a known push service; add it to CLARION_PUSH_HOSTS to allow it"))
            }
        }
    }

    /// A push service URL that passed the [`PushHostPolicy`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PushEndpoint(url::Url);

    impl PushEndpoint {
        /// Parses and checks an endpoint.
        pub fn parse(raw: &str, policy: &PushHostPolicy) -> Result<Self, FieldError> {
            if raw.is_empty() {
                return Err(FieldError::new("endpoint", "is empty"));
            }
            if raw.len() > MAX_ENDPOINT_LEN {
                return Err(FieldError::new("endpoint", format!("is longer than {MAX_ENDPOINT_LEN} bytes")));
            }
            let url = url::Url::parse(raw).map_err(|e| FieldError::new("endpoint", format!("is not a URL ({e})")))?;
            policy.check(&url).map_err(|reason| FieldError::new("endpoint", reason))?;
            Ok(Self(url))
        }

        /// The endpoint as a string, as stored and as POSTed to.
        pub fn as_str(&self) -> &str {
            self.0.as_str()
        }

        /// The form in which an endpoint is stored, for looking one up: a client sends the
        /// URL exactly as it POSTed it (`https://FCM.googleapis.com:443/x`), which storage
        /// normalised (`https://fcm.googleapis.com/x`). Text that is not a URL stays as it
        /// is (and matches nothing).
        pub fn lookup_key(raw: &str) -> String {
            match url::Url::parse(raw) {
                Ok(url) if raw.len() <= MAX_ENDPOINT_LEN => url.into(),
                _ => raw.to_string(),
            }
        }

        /// The push service's origin (`https://fcm.googleapis.com`): what logs may show of
        /// an endpoint, since the rest identifies a subscriber.
        pub fn origin(&self) -> String {
            self.0.origin().ascii_serialization()
        }

        /// The parsed URL.
        pub fn url(&self) -> &url::Url {
            &self.0
        }
    }

    /// A browser's P-256 public key, checked to be an uncompressed point on the curve.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub struct P256dhKey([u8; 65]);

    impl P256dhKey {
        /// Parses base64url text into a validated point.
        pub fn parse(text: &str) -> Result<Self, FieldError> {
            let bytes = base64url::decode(text).map_err(|e| FieldError::new("keys.p256dh", e.to_string()))?;
            Self::from_bytes(&bytes)
        }

        /// Validates raw bytes: 65 long, `0x04` prefix, and on P-256.
        pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
            let field = "keys.p256dh";
            let arr: [u8; 65] = bytes
                .try_into()
                .map_err(|_| FieldError::new(field, format!("must be a 65-byte uncompressed P-256 point, got {} bytes", bytes.len())))?;
            if arr[0] != 0x04 {
                return Err(FieldError::new(field, "must be an uncompressed point (first byte 0x04)"));
            }
            p256::PublicKey::from_sec1_bytes(&arr).map_err(|_| FieldError::new(field, "is not a point on the P-256 curve"))?;
            Ok(Self(arr))
        }

        /// Rebuilds a key stored after [`P256dhKey::parse`] validated it; only the length
        /// is checked again.
        pub fn from_stored(bytes: &[u8]) -> Option<Self> {
            bytes.try_into().ok().map(Self)
        }

        pub fn as_bytes(&self) -> &[u8; 65] {
            &self.0
        }
    }

    impl fmt::Debug for P256dhKey {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "P256dhKey({})", base64url::encode(&self.0))
        }
    }

    /// The subscription's 16-byte authentication secret. Its `Debug` never shows it.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub struct AuthSecret([u8; 16]);

    impl AuthSecret {
        pub fn parse(text: &str) -> Result<Self, FieldError> {
            let bytes = base64url::decode(text).map_err(|e| FieldError::new("keys.auth", e.to_string()))?;
            Self::from_bytes(&bytes)
        }

        pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
            let arr: [u8; 16] =
                bytes.try_into().map_err(|_| FieldError::new("keys.auth", format!("must be 16 bytes, got {}", bytes.len())))?;
            Ok(Self(arr))
        }

        pub fn as_bytes(&self) -> &[u8; 16] {
            &self.0
        }
    }

    impl fmt::Debug for AuthSecret {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("AuthSecret(<redacted>)")
        }
    }

    /// A subscription that passed every check and can be stored.
    #[derive(Debug, Clone)]
    pub struct NewSubscription {
        pub endpoint: PushEndpoint,
        pub p256dh: P256dhKey,
        pub auth: AuthSecret,
        /// Milliseconds since the epoch, if the browser set one.
        pub expiration_time: Option<i64>,
    }

    impl NewSubscription {
        /// Parses the browser's JSON under the given host policy.
        pub fn parse(json: &SubscriptionJson, policy: &PushHostPolicy) -> Result<Self, FieldError> {
            let expiration_time = match json.expiration_time {
                None => None,
                Some(ms) if ms.is_finite() && ms >= 0.0 => Some(ms as i64),
                Some(_) => return Err(FieldError::new("expirationTime", "must be null or a non-negative number")),
            };
            Ok(Self {
                endpoint: PushEndpoint::parse(&json.endpoint, policy)?,
                p256dh: P256dhKey::parse(&json.keys.p256dh)?,
                auth: AuthSecret::parse(&json.keys.auth)?,
                expiration_time,
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn url(s: &str) -> url::Url {
            url::Url::parse(s).unwrap()
        }

        #[test]
        fn known_vendors_are_allowed_over_https() {
            let policy = PushHostPolicy::default();
            for ok in [
                "https://fcm.googleapis.com/fcm/send/abc",
                "https://updates.push.services.mozilla.com/wpush/v2/x",
                "https://web.push.apple.com/QO",
                "https://db5p.notify.windows.com/w/?token=x",
            ] {
                assert_eq!(policy.check(&url(ok)), Ok(()), "{ok}");
            }
        }

        #[test]
        fn refuses_plain_http_ports_ips_userinfo_and_unknown_hosts() {
            let policy = PushHostPolicy::default();
            for bad in [
                "http://fcm.googleapis.com/x",
                "https://fcm.googleapis.com:8443/x",
                "https://127.0.0.1/x",
                "https://[::1]/x",
                "https://2130706433/x",
                "https://user@fcm.googleapis.com/x",
                "https://evil.example/x",
                "https://fcm.googleapis.com.evil.example/x",
                "https://push.apple.com/x",
                "https://xpush.apple.com/x",
            ] {
                assert!(policy.check(&url(bad)).is_err(), "{bad} should be refused");
            }
        }

        #[test]
        fn operator_hosts_may_use_http_and_ports() {
            let policy = PushHostPolicy::from_list("127.0.0.1:8090, push.local").unwrap();
            assert_eq!(policy.check(&url("http://127.0.0.1:8090/push/1")), Ok(()));
            assert!(policy.check(&url("http://127.0.0.1:8091/push/1")).is_err());
            assert_eq!(policy.check(&url("http://push.local:1234/push/1")), Ok(()));
        }

        #[test]
        fn endpoint_length_is_bounded() {
            let policy = PushHostPolicy::default();
            let long = format!("https://fcm.googleapis.com/{}", "a".repeat(MAX_ENDPOINT_LEN));
            let err = PushEndpoint::parse(&long, &policy).unwrap_err();
            assert_eq!(err.field, "endpoint");
        }

        #[test]
        fn p256dh_must_be_an_uncompressed_point_on_the_curve() {
            // The generator point G of P-256, uncompressed.
            let g = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
            assert!(P256dhKey::parse(g).is_ok());
            let mut off_curve = base64url::decode(g).unwrap();
            off_curve[64] ^= 1;
            assert!(P256dhKey::from_bytes(&off_curve).is_err());
            let mut compressed = base64url::decode(g).unwrap()[..33].to_vec();
            compressed[0] = 0x03;
            assert!(P256dhKey::from_bytes(&compressed).is_err());
        }

        #[test]
        fn auth_must_be_16_bytes() {
            assert!(AuthSecret::from_bytes(&[0; 16]).is_ok());
            assert!(AuthSecret::from_bytes(&[0; 15]).is_err());
            assert!(AuthSecret::from_bytes(&[0; 17]).is_err());
            assert_eq!(format!("{:?}", AuthSecret::from_bytes(&[7; 16]).unwrap()), "AuthSecret(<redacted>)");
        }
    }
}
