//! A notification to send: the request shape the REST API, the server functions and the
//! CLI accept, its validation, and the JSON payload the service worker receives.
//!
//! The payload is a flat JSON object (`{"title","body","url","icon","badge","image","tag"}`,
//! null fields left out) that `sw/sw.js` reads. It must fit a single push message: 4096
//! bytes of body minus 103 bytes of aes128gcm overhead leaves 3993 bytes of plaintext.

use serde::{Deserialize, Serialize};

/// Largest plaintext that fits one aes128gcm record in a 4096-byte push body.
pub const MAX_PAYLOAD_BYTES: usize = 3993;
/// Above this, some mobile relays drop the message; the API warns.
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

/// RFC 8030 message urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

/// `POST /api/v1/notifications`: what to show and how to deliver it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotificationRequest {
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
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
}

/// The JSON object the service worker receives, with null fields left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationPayload {
    pub title: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
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

/// A checked notification: the serialized payload plus delivery options.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The exact bytes that get encrypted.
    pub payload: String,
    pub ttl: u32,
    pub urgency: Option<Urgency>,
    pub topic: Option<String>,
    /// `Some` to reach one subscription only.
    pub endpoint: Option<String>,
}

impl Notification {
    /// True when the payload is large enough that some mobile relays may refuse it.
    pub fn payload_is_large(&self) -> bool {
        self.payload.len() > PAYLOAD_WARN_BYTES
    }
}

fn check_link(field: &'static str, value: &Option<String>) -> Result<(), NotificationError> {
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
    Ok(())
}

impl TryFrom<NotificationRequest> for Notification {
    type Error = NotificationError;

    fn try_from(req: NotificationRequest) -> Result<Self, Self::Error> {
        if req.title.trim().is_empty() {
            return Err(refuse("title", "is required"));
        }
        if req.title.chars().count() > MAX_TITLE_CHARS {
            return Err(refuse("title", format!("is longer than {MAX_TITLE_CHARS} characters")));
        }
        if req.body.chars().count() > MAX_BODY_CHARS {
            return Err(refuse("body", format!("is longer than {MAX_BODY_CHARS} characters")));
        }
        check_link("url", &req.url)?;
        check_link("icon", &req.icon)?;
        check_link("badge", &req.badge)?;
        check_link("image", &req.image)?;
        if let Some(tag) = &req.tag {
            if tag.chars().count() > MAX_TAG_CHARS {
                return Err(refuse("tag", format!("is longer than {MAX_TAG_CHARS} characters")));
            }
        }
        let ttl = req.ttl.unwrap_or(DEFAULT_TTL_SECONDS);
        if ttl > MAX_TTL_SECONDS {
            return Err(refuse("ttl", format!("must be at most {MAX_TTL_SECONDS} seconds (28 days)")));
        }
        if let Some(topic) = &req.topic {
            if topic.len() > MAX_TOPIC_CHARS || !crate::domain::base64url::is_strict_alphabet(topic) {
                return Err(refuse("topic", format!("must be 1 to {MAX_TOPIC_CHARS} base64url characters")));
            }
        }
        let payload = serde_json::to_string(&NotificationPayload {
            title: req.title,
            body: req.body,
            url: req.url,
            icon: req.icon,
            badge: req.badge,
            image: req.image,
            tag: req.tag,
        })
        .expect("a struct of strings serializes");
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(refuse(
                "body",
                format!("the notification is {} bytes as JSON; a push carries at most {MAX_PAYLOAD_BYTES}", payload.len()),
            ));
        }
        Ok(Notification { payload, ttl, urgency: req.urgency, topic: req.topic, endpoint: req.endpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> NotificationRequest {
        NotificationRequest { title: "Hello".into(), body: "World".into(), ..Default::default() }
    }

    #[test]
    fn payload_leaves_out_null_fields() {
        let n = Notification::try_from(NotificationRequest { url: Some("/news".into()), ..request() }).unwrap();
        assert_eq!(n.payload, r#"{"title":"Hello","body":"World","url":"/news"}"#);
        assert_eq!(n.ttl, DEFAULT_TTL_SECONDS);
    }

    #[test]
    fn refuses_an_empty_title_and_a_long_ttl() {
        assert_eq!(Notification::try_from(NotificationRequest { title: " ".into(), ..request() }).unwrap_err().field, "title");
        let long_ttl = NotificationRequest { ttl: Some(MAX_TTL_SECONDS + 1), ..request() };
        assert_eq!(Notification::try_from(long_ttl).unwrap_err().field, "ttl");
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
        for bad in ["javascript:alert(1)", "//evil.example/x", "data:text/html,x"] {
            let req = NotificationRequest { url: Some(bad.into()), ..request() };
            assert_eq!(Notification::try_from(req).unwrap_err().field, "url", "{bad}");
        }
    }

    #[test]
    fn payload_must_fit_one_push_message() {
        let body = "x".repeat(MAX_BODY_CHARS);
        let fits = Notification::try_from(NotificationRequest { body, ..request() }).unwrap();
        assert!(fits.payload.len() <= MAX_PAYLOAD_BYTES);
        // Multi-byte characters: 2000 chars of 3 bytes each is 6000 bytes.
        let too_big = NotificationRequest { body: "€".repeat(MAX_BODY_CHARS), ..request() };
        assert_eq!(Notification::try_from(too_big).unwrap_err().field, "body");
    }

    #[test]
    fn urgency_round_trips_in_kebab_case() {
        let u: Urgency = serde_json::from_str("\"very-low\"").unwrap();
        assert_eq!(u, Urgency::VeryLow);
        assert_eq!(Urgency::parse(u.as_str()), Some(u));
        assert!(serde_json::from_str::<Urgency>("\"urgent\"").is_err());
    }
}
