//! A notification to send: the request shape the REST API, the server functions, the admin
//! console and the CLI accept; its validation; and the payload the browser receives.
//!
//! Two payload shapes, one builder ([`Notification::payload`]):
//! - **Declarative Web Push** (the default): `{"web_push": 8030, "notification": {"title",
//!   "body", "navigate", "icon", "badge", "image", "tag", "renotify", "requireInteraction",
//!   "silent", "actions", "data"}, "app_badge"?}`. Safari 18.4+ shows it without running a
//!   service worker; Chrome and Firefox hand it to `sw/sw.js`, which reads the same JSON.
//! - **Flat** (`CLARION_PAYLOAD_FORMAT=flat`, the 0.1 format, for sites whose own service
//!   worker reads it): `{"title","body","url","icon","badge","image","tag"}` plus any of the
//!   newer members that are set.
//!
//! Null members are left out of both. A broadcast's id travels in the payload (as
//! `notification.data.notification_id`, or `notification_id` in the flat shape) so the
//! service worker can report clicks. The payload must fit one push message: 4096 bytes of
//! body minus 103 bytes of aes128gcm overhead leaves 3993 bytes of plaintext, checked with
//! the longest possible id.

use super::audience::Audience;
use serde::{Deserialize, Serialize};

/// Largest plaintext that fits one aes128gcm record in a 4096-byte push body.
pub const MAX_PAYLOAD_BYTES: usize = 3993;
/// Above this, some mobile relays drop the message; the API and the console warn.
pub const PAYLOAD_WARN_BYTES: usize = 3000;
/// Default time a push service keeps an undelivered message: 24 hours.
pub const DEFAULT_TTL_SECONDS: u32 = 24 * 60 * 60;
/// Longest TTL Clarion asks for: 28 days (push services cap at about 4 weeks).
pub const MAX_TTL_SECONDS: u32 = 28 * 24 * 60 * 60;
/// Bounds on the human-readable text.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 2000;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_TOPIC_CHARS: usize = 32;
/// Browsers show at most two action buttons.
pub const MAX_ACTIONS: usize = 2;
pub const MAX_ACTION_TITLE_CHARS: usize = 40;
/// The Declarative Web Push marker: the RFC that defines web push.
pub const DECLARATIVE_MARKER: u32 = 8030;
/// Where a click leads when the notification names no URL.
pub const DEFAULT_NAVIGATE: &str = "/";

/// RFC 8030 message urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "kebab-case"))]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }

    /// Parses a header value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "very-low" => Some(Urgency::VeryLow),
            "low" => Some(Urgency::Low),
            "normal" => Some(Urgency::Normal),
            "high" => Some(Urgency::High),
            _ => None,
        }
    }
}

/// Which JSON shape the payload takes; see the module header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    #[default]
    Declarative,
    Flat,
}

impl std::str::FromStr for PayloadFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "declarative" => Ok(PayloadFormat::Declarative),
            "flat" => Ok(PayloadFormat::Flat),
            other => Err(format!("unknown payload format {other:?}; expected declarative or flat")),
        }
    }
}

/// A button on the notification: its label and where it leads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationAction {
    #[serde(alias = "label")]
    pub title: String,
    #[serde(alias = "navigate")]
    pub url: String,
}

/// `POST /api/v1/notifications`: what to show, to whom, when, and how to deliver it. A
/// member it does not know is refused, so a misspelt target never widens a send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Where a click on the notification leads (`navigate` in Declarative Web Push).
    #[serde(default, alias = "navigate", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Up to two buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<NotificationAction>,
    /// Alert again when replacing a notification with the same tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify: Option<bool>,
    /// Keep the notification on screen until the user acts on it.
    #[serde(default, alias = "requireInteraction", skip_serializing_if = "Option::is_none")]
    pub require_interaction: Option<bool>,
    /// No sound or vibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<bool>,
    /// The number to show on the installed app's icon (0 clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_badge: Option<u32>,
    /// Seconds the push service may hold the message; 24 h when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// Replaces an undelivered message with the same topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Send to this one subscription instead of everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Send to the subscriptions with any of these topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Send to every subscription of these user ids (at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// Start sending at this RFC 3339 time instead of now (at most 90 days ahead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
}

/// What a test push to one's own subscription came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TestPushResult {
    /// The push service accepted it.
    Delivered,
    /// The push service forgot the subscription; the server deleted it.
    Gone,
    /// Anything else, in words.
    Failed { reason: String },
}

/// Why a notification request was refused; `field` names the JSON member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct NotificationError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> NotificationError {
    NotificationError { field, reason: reason.into() }
}

/// A checked notification: what to show, in which shape, and how to deliver it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    content: NotificationRequest,
    pub format: PayloadFormat,
    pub ttl: u32,
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
    /// `Some` to reach one subscription only.
    pub endpoint: Option<String>,
    /// Who it reaches when `endpoint` is `None`.
    pub audience: Audience,
}

// ---- the two wire shapes ---------------------------------------------------------------

#[derive(Serialize)]
struct DeclarativeAction<'a> {
    action: String,
    title: &'a str,
    navigate: &'a str,
}

#[derive(Serialize)]
struct ClickData {
    notification_id: i64,
}

/// How the notification looks and behaves: the members both shapes carry alike.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Appearance<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    badge: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renotify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_interaction: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    silent: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeclarativeNotification<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    body: &'a str,
    navigate: &'a str,
    #[serde(flatten)]
    appearance: Appearance<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<DeclarativeAction<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<ClickData>,
}

#[derive(Serialize)]
struct DeclarativePayload<'a> {
    web_push: u32,
    notification: DeclarativeNotification<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_badge: Option<u32>,
}

#[derive(Serialize)]
struct FlatAction<'a> {
    action: String,
    title: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlatPayload<'a> {
    title: &'a str,
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(flatten)]
    appearance: Appearance<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<FlatAction<'a>>,
    #[serde(rename = "app_badge", skip_serializing_if = "Option::is_none")]
    app_badge: Option<u32>,
    #[serde(rename = "notification_id", skip_serializing_if = "Option::is_none")]
    notification_id: Option<i64>,
}

impl NotificationRequest {
    fn appearance(&self) -> Appearance<'_> {
        Appearance {
            icon: self.icon.as_deref(),
            badge: self.badge.as_deref(),
            image: self.image.as_deref(),
            tag: self.tag.as_deref(),
            renotify: self.renotify,
            require_interaction: self.require_interaction,
            silent: self.silent,
        }
    }
}

fn action_id(index: usize) -> String {
    format!("action-{index}")
}

impl Notification {
    /// Validates a request and fixes the payload shape.
    pub fn build(request: NotificationRequest, format: PayloadFormat) -> Result<Self, NotificationError> {
        check(&request)?;
        let audience = super::audience::audience(request.topics.as_deref(), request.users.as_deref())
            .map_err(|e| NotificationError { field: e.field, reason: e.reason })?;
        if request.endpoint.is_some() && !audience.is_everyone() {
            return Err(refuse("endpoint", "names one subscription; it cannot be combined with topics or users"));
        }
        let ttl = request.ttl.unwrap_or(DEFAULT_TTL_SECONDS);
        let (urgency, topic, endpoint) = (request.urgency, request.topic.clone(), request.endpoint.clone());
        let notification = Notification { content: request, format, ttl, urgency, topic, endpoint, audience };
        let size = notification.max_payload_len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(refuse("body", format!("the notification is {size} bytes as JSON; a push carries at most {MAX_PAYLOAD_BYTES}")));
        }
        Ok(notification)
    }

    /// The exact bytes to encrypt. `id` is the broadcast's, for click reports; `None` for
    /// a push that is not a recorded broadcast (a preview, a test).
    pub fn payload(&self, id: Option<i64>) -> String {
        let c = &self.content;
        let json = match self.format {
            PayloadFormat::Declarative => serde_json::to_string(&DeclarativePayload {
                web_push: DECLARATIVE_MARKER,
                notification: DeclarativeNotification {
                    title: &c.title,
                    body: &c.body,
                    navigate: c.url.as_deref().unwrap_or(DEFAULT_NAVIGATE),
                    appearance: c.appearance(),
                    actions: c
                        .actions
                        .iter()
                        .enumerate()
                        .map(|(i, a)| DeclarativeAction { action: action_id(i), title: &a.title, navigate: &a.url })
                        .collect(),
                    data: id.map(|notification_id| ClickData { notification_id }),
                },
                app_badge: c.app_badge,
            }),
            PayloadFormat::Flat => serde_json::to_string(&FlatPayload {
                title: &c.title,
                body: &c.body,
                url: c.url.as_deref(),
                appearance: c.appearance(),
                actions: c
                    .actions
                    .iter()
                    .enumerate()
                    .map(|(i, a)| FlatAction { action: action_id(i), title: &a.title, url: &a.url })
                    .collect(),
                app_badge: c.app_badge,
                notification_id: id,
            }),
        };
        json.expect("a struct of strings, numbers and booleans serializes")
    }

    /// The payload's size with the longest possible broadcast id: what the limit is checked
    /// against, and what the console's size meter shows.
    pub fn max_payload_len(&self) -> usize {
        self.payload(Some(i64::MAX)).len()
    }

    /// True when the payload is large enough that some mobile relays may refuse it.
    pub fn payload_is_large(&self) -> bool {
        self.max_payload_len() > PAYLOAD_WARN_BYTES
    }

    /// What to show, as requested.
    pub fn content(&self) -> &NotificationRequest {
        &self.content
    }
}

/// The default shape, for callers that do not configure one.
impl TryFrom<NotificationRequest> for Notification {
    type Error = NotificationError;

    fn try_from(request: NotificationRequest) -> Result<Self, Self::Error> {
        Notification::build(request, PayloadFormat::default())
    }
}

fn check_link(field: &'static str, value: Option<&str>) -> Result<(), NotificationError> {
    let Some(v) = value else { return Ok(()) };
    if v.len() > MAX_URL_BYTES {
        return Err(refuse(field, format!("is longer than {MAX_URL_BYTES} bytes")));
    }
    let lower = v.to_ascii_lowercase();
    let absolute = lower.starts_with("https://") || lower.starts_with("http://");
    let relative = v.starts_with('/') && !v.starts_with("//");
    if !(absolute || relative) || v.chars().any(char::is_control) {
        return Err(refuse(field, "must be an http(s) URL or a path starting with /"));
    }
    // Browsers read `\` as `/`, so `/\evil.example` opens another site; a path has no
    // business with a backslash, raw or escaped.
    if v.contains('\\') || (relative && lower.contains("%5c")) {
        return Err(refuse(field, "must not contain a backslash (browsers read /\\host as another site)"));
    }
    Ok(())
}

fn check(req: &NotificationRequest) -> Result<(), NotificationError> {
    if req.title.trim().is_empty() {
        return Err(refuse("title", "is required"));
    }
    if req.title.chars().count() > MAX_TITLE_CHARS {
        return Err(refuse("title", format!("is longer than {MAX_TITLE_CHARS} characters")));
    }
    if req.body.chars().count() > MAX_BODY_CHARS {
        return Err(refuse("body", format!("is longer than {MAX_BODY_CHARS} characters")));
    }
    check_link("url", req.url.as_deref())?;
    check_link("icon", req.icon.as_deref())?;
    check_link("badge", req.badge.as_deref())?;
    check_link("image", req.image.as_deref())?;
    if let Some(tag) = &req.tag {
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(refuse("tag", format!("is longer than {MAX_TAG_CHARS} characters")));
        }
    }
    if req.renotify == Some(true) && req.tag.as_deref().is_none_or(str::is_empty) {
        return Err(refuse("renotify", "needs a tag: it alerts again when a notification replaces one with the same tag"));
    }
    if req.actions.len() > MAX_ACTIONS {
        return Err(refuse("actions", format!("at most {MAX_ACTIONS} actions")));
    }
    for action in &req.actions {
        let chars = action.title.trim().chars().count();
        if chars == 0 || chars > MAX_ACTION_TITLE_CHARS {
            return Err(refuse("actions", format!("each action needs a label of 1 to {MAX_ACTION_TITLE_CHARS} characters")));
        }
        check_link("actions", Some(&action.url))?;
    }
    if req.ttl.is_some_and(|ttl| ttl > MAX_TTL_SECONDS) {
        return Err(refuse("ttl", format!("must be at most {MAX_TTL_SECONDS} seconds (28 days)")));
    }
    if let Some(topic) = &req.topic {
        if topic.len() > MAX_TOPIC_CHARS || !crate::base64url::is_strict_alphabet(topic) {
            return Err(refuse("topic", format!("must be 1 to {MAX_TOPIC_CHARS} base64url characters")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request() -> NotificationRequest {
        NotificationRequest { title: "Hello".into(), body: "World".into(), ..Default::default() }
    }

    fn parsed(n: &Notification, id: Option<i64>) -> Value {
        serde_json::from_str(&n.payload(id)).unwrap()
    }

    #[test]
    fn declarative_payload_is_the_default_and_always_navigates() {
        let n = Notification::try_from(request()).unwrap();
        assert_eq!(n.format, PayloadFormat::Declarative);
        assert_eq!(n.payload(None), r#"{"web_push":8030,"notification":{"title":"Hello","body":"World","navigate":"/"}}"#);
        assert_eq!(n.ttl, DEFAULT_TTL_SECONDS);
    }

    #[test]
    fn declarative_payload_carries_every_member_and_the_click_id() {
        let full = NotificationRequest {
            url: Some("https://example.com/news".into()),
            icon: Some("/icon.png".into()),
            badge: Some("/badge.png".into()),
            image: Some("/hero.jpg".into()),
            tag: Some("news".into()),
            renotify: Some(true),
            require_interaction: Some(true),
            silent: Some(false),
            app_badge: Some(3),
            actions: vec![
                NotificationAction { title: "Read".into(), url: "/read".into() },
                NotificationAction { title: "Later".into(), url: "/later".into() },
            ],
            ..request()
        };
        let n = Notification::build(full, PayloadFormat::Declarative).unwrap();
        assert_eq!(
            parsed(&n, Some(42)),
            json!({
                "web_push": 8030,
                "notification": {
                    "title": "Hello", "body": "World", "navigate": "https://example.com/news",
                    "icon": "/icon.png", "badge": "/badge.png", "image": "/hero.jpg", "tag": "news",
                    "renotify": true, "requireInteraction": true, "silent": false,
                    "actions": [
                        { "action": "action-0", "title": "Read", "navigate": "/read" },
                        { "action": "action-1", "title": "Later", "navigate": "/later" }
                    ],
                    "data": { "notification_id": 42 }
                },
                "app_badge": 3
            })
        );
    }

    #[test]
    fn flat_payload_keeps_the_original_contract() {
        let n = Notification::build(NotificationRequest { url: Some("/news".into()), ..request() }, PayloadFormat::Flat).unwrap();
        assert_eq!(n.payload(None), r#"{"title":"Hello","body":"World","url":"/news"}"#);
        assert_eq!(parsed(&n, Some(7))["notification_id"], 7);
        // The flat members are still where the original payload had them.
        assert_eq!(parsed(&n, Some(7))["url"], "/news");
    }

    #[test]
    fn request_accepts_declarative_member_names() {
        let req: NotificationRequest = serde_json::from_value(json!({
            "title": "t", "navigate": "/x", "requireInteraction": true,
            "actions": [{ "label": "Go", "navigate": "/go" }]
        }))
        .unwrap();
        assert_eq!(req.url.as_deref(), Some("/x"));
        assert_eq!(req.require_interaction, Some(true));
        assert_eq!(req.actions, vec![NotificationAction { title: "Go".into(), url: "/go".into() }]);
    }

    #[test]
    fn unknown_members_and_mixed_targets_are_refused() {
        let misspelt = serde_json::from_value::<NotificationRequest>(json!({ "title": "t", "userz": ["42"] }));
        assert!(misspelt.unwrap_err().to_string().contains("unknown field `userz`"));
        let both = NotificationRequest { endpoint: Some("https://x".into()), topics: Some(vec!["news".into()]), ..request() };
        assert_eq!(Notification::try_from(both).unwrap_err().field, "endpoint");
        let empty = NotificationRequest { users: Some(vec![]), ..request() };
        assert_eq!(Notification::try_from(empty).unwrap_err().field, "users");
        let targeted = NotificationRequest { topics: Some(vec!["news".into(), "news".into()]), ..request() };
        assert_eq!(Notification::try_from(targeted).unwrap().audience.topics, vec!["news".to_string()]);
    }

    #[test]
    fn refuses_an_empty_title_and_a_long_ttl() {
        assert_eq!(Notification::try_from(NotificationRequest { title: " ".into(), ..request() }).unwrap_err().field, "title");
        let long_ttl = NotificationRequest { ttl: Some(MAX_TTL_SECONDS + 1), ..request() };
        assert_eq!(Notification::try_from(long_ttl).unwrap_err().field, "ttl");
    }

    #[test]
    fn actions_are_at_most_two_labelled_links() {
        let action = |title: &str, url: &str| NotificationAction { title: title.into(), url: url.into() };
        for bad in [
            vec![action("a", "/a"), action("b", "/b"), action("c", "/c")],
            vec![action(" ", "/a")],
            vec![action("ok", "javascript:alert(1)")],
            vec![action(&"x".repeat(MAX_ACTION_TITLE_CHARS + 1), "/a")],
        ] {
            let req = NotificationRequest { actions: bad.clone(), ..request() };
            assert_eq!(Notification::try_from(req).unwrap_err().field, "actions", "{bad:?}");
        }
    }

    #[test]
    fn renotify_needs_a_tag() {
        let req = NotificationRequest { renotify: Some(true), ..request() };
        assert_eq!(Notification::try_from(req).unwrap_err().field, "renotify");
        let tagged = NotificationRequest { renotify: Some(true), tag: Some("t".into()), ..request() };
        assert!(Notification::try_from(tagged).is_ok());
    }

    #[test]
    fn topic_must_be_short_base64url() {
        let ok = NotificationRequest { topic: Some("a".repeat(32)), ..request() };
        assert!(Notification::try_from(ok).is_ok());
        for bad in ["a".repeat(33), "has space".into(), "pad=".into()] {
            let req = NotificationRequest { topic: Some(bad.clone()), ..request() };
            assert_eq!(Notification::try_from(req).unwrap_err().field, "topic", "{bad}");
        }
    }

    #[test]
    fn links_must_be_http_or_paths() {
        for bad in [
            "javascript:alert(1)",
            "//evil.example/x",
            "data:text/html,x",
            "/\\evil.example/x",
            "/%5Cevil.example",
            "/%5cx",
            "/\t/evil.example",
        ] {
            let req = NotificationRequest { url: Some(bad.into()), ..request() };
            assert_eq!(Notification::try_from(req).unwrap_err().field, "url", "{bad}");
        }
    }

    #[test]
    fn payload_must_fit_one_push_message_in_both_shapes_with_any_id() {
        for format in [PayloadFormat::Declarative, PayloadFormat::Flat] {
            let body = "x".repeat(MAX_BODY_CHARS);
            let fits = Notification::build(NotificationRequest { body, ..request() }, format).unwrap();
            assert!(fits.payload(Some(i64::MAX)).len() <= MAX_PAYLOAD_BYTES);
            assert_eq!(fits.max_payload_len(), fits.payload(Some(i64::MAX)).len());
            // Multi-byte characters: 2000 chars of 3 bytes each is 6000 bytes.
            let too_big = NotificationRequest { body: "€".repeat(MAX_BODY_CHARS), ..request() };
            assert_eq!(Notification::build(too_big, format).unwrap_err().field, "body");
        }
    }

    #[test]
    fn the_limit_counts_the_bytes_of_the_longest_id() {
        // Find a body that fits with a short id but not with the longest one.
        let base = Notification::try_from(request()).unwrap().payload(Some(i64::MAX)).len() - "World".len();
        let remaining = MAX_PAYLOAD_BYTES - base;
        // Two-byte characters keep the body within its 2000-character bound.
        let wide = remaining - MAX_BODY_CHARS + 1;
        let body = "é".repeat(wide) + &"y".repeat(remaining - 2 * wide);
        assert_eq!(body.len(), remaining);
        assert!(Notification::try_from(NotificationRequest { body: body.clone(), ..request() }).is_ok());
        let over = NotificationRequest { body: body + "y", ..request() };
        assert_eq!(Notification::try_from(over).unwrap_err().field, "body");
    }

    #[test]
    fn large_payloads_are_flagged_from_3000_bytes() {
        let small = Notification::try_from(request()).unwrap();
        assert!(!small.payload_is_large());
        let large = Notification::try_from(NotificationRequest { body: "é".repeat(PAYLOAD_WARN_BYTES / 2), ..request() }).unwrap();
        assert!(large.payload_is_large());
    }

    #[test]
    fn urgency_and_format_parse() {
        let u: Urgency = serde_json::from_str("\"very-low\"").unwrap();
        assert_eq!(u, Urgency::VeryLow);
        assert_eq!(Urgency::parse(u.as_str()), Some(u));
        assert!(serde_json::from_str::<Urgency>("\"urgent\"").is_err());
        assert_eq!("flat".parse::<PayloadFormat>(), Ok(PayloadFormat::Flat));
        assert!("xml".parse::<PayloadFormat>().is_err());
    }
}
