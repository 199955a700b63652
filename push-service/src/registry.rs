//! The push service's in-memory state: channels (endpoints), connected browsers with
//! their undelivered messages, configured faults, and what minted subscriptions received.

use super::crypto::VapidClaims;
use crate::protocol;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Who reads a channel's messages.
pub enum Owner {
    /// Minted through `/_test/subscriptions`: the service holds the keys and decrypts.
    Minted { secret: p256::SecretKey, auth: [u8; 16] },
    /// Registered by a browser over the WebSocket.
    Browser { uaid: String, channel_id: String },
}

pub struct Channel {
    pub owner: Owner,
    /// The `applicationServerKey` the subscription was made with, for the 403 check.
    pub app_server_key: Option<[u8; 65]>,
    /// Unsubscribed or expired: pushes get 410.
    pub gone: bool,
    pub messages: Vec<ReceivedMessage>,
    /// Every push that reached this channel, accepted or not.
    pub requests: u64,
}

impl Channel {
    /// A live channel that has received nothing yet.
    pub fn new(owner: Owner, app_server_key: Option<[u8; 65]>) -> Self {
        Self { owner, app_server_key, gone: false, messages: Vec::new(), requests: 0 }
    }
}

/// What a minted subscription received, as `/_test/messages` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedMessage {
    /// The decrypted payload as UTF-8 (null for browser channels, or when it did not decrypt).
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub claims: Option<VapidClaims>,
    /// The whole `Authorization` header, so tests can see JWT reuse.
    pub authorization: String,
    pub received_at: String,
}

/// A push waiting for a browser's ack.
#[derive(Clone)]
pub struct Pending {
    pub channel_id: String,
    pub version: String,
    pub data: String,
    pub topic: Option<String>,
    pub expires_at: Instant,
}

#[derive(Default)]
pub struct Browser {
    /// The live connection, if any: its id and the queue to its writer task.
    pub connection: Option<(u64, UnboundedSender<String>)>,
    pub pending: Vec<Pending>,
}

/// A configured failure for an endpoint.
#[derive(Clone, Debug)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<String>,
    pub delay: Duration,
    /// How many more pushes it applies to; `None` is every push.
    pub remaining: Option<u32>,
    /// Drop the connection instead of answering.
    pub drop_connection: bool,
    /// Only wait `delay`, then handle the push as usual.
    pub delay_only: bool,
    /// A `Location` header for the answer (e.g. with a 3xx).
    pub location: Option<String>,
}

#[derive(Default)]
pub struct Registry {
    pub channels: HashMap<String, Channel>,
    pub browsers: HashMap<String, Browser>,
    pub faults: HashMap<String, Fault>,
    /// Connections accepted (over TLS, those whose handshake was done).
    pub connections: u64,
    /// Push requests being handled now, and the most there ever were at once.
    pub in_flight: u64,
    pub peak_in_flight: u64,
}

/// One push request being handled: counted in [`Registry::in_flight`] from its arrival
/// until it is dropped, on every way out of the handler (a panic's included).
pub struct InFlight<'a>(&'a PushService);

impl<'a> InFlight<'a> {
    pub fn enter(service: &'a PushService) -> Self {
        let mut registry = service.lock();
        registry.in_flight += 1;
        registry.peak_in_flight = registry.peak_in_flight.max(registry.in_flight);
        Self(service)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut registry = self.0.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        registry.in_flight -= 1;
    }
}

pub struct PushService {
    pub origin: String,
    pub sink: bool,
    pub registry: Mutex<Registry>,
    rng: SystemRandom,
}

impl PushService {
    pub fn new(origin: String, sink: bool) -> Self {
        Self { origin, sink, registry: Mutex::new(Registry::default()), rng: SystemRandom::new() }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("push service registry lock")
    }

    pub fn random_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes).expect("random");
        protocol::encode(&bytes)
    }

    pub fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.rng.fill(&mut bytes).expect("random");
        bytes
    }

    pub fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.origin)
    }

    /// The channel id inside one of this service's endpoint URLs.
    pub fn id_from_endpoint(endpoint: &str) -> Option<&str> {
        endpoint.rsplit_once("/push/").map(|(_, id)| id).filter(|id| !id.is_empty() && !id.contains('/'))
    }
}

impl Registry {
    /// Hands a push to a browser: replaces an undelivered one with the same topic, sends
    /// it now if the browser is connected, and keeps it until acked or expired.
    pub fn deliver_to_browser(&mut self, uaid: &str, pending: Pending, ttl: u64) {
        let browser = self.browsers.entry(uaid.to_string()).or_default();
        browser.pending.retain(|p| p.expires_at > Instant::now());
        if let Some(topic) = &pending.topic {
            browser.pending.retain(|p| !(p.channel_id == pending.channel_id && p.topic.as_ref() == Some(topic)));
        }
        let connected = browser.connection.as_ref().is_some_and(|(_, tx)| !tx.is_closed());
        if connected {
            let (_, tx) = browser.connection.as_ref().expect("connected");
            let _ = tx.send(notification_frame(&pending));
        }
        // TTL 0 means "now or never": never queued for a browser that is away.
        if ttl > 0 || connected {
            browser.pending.push(pending);
        }
    }
}

/// The `notification` frame of Mozilla's protocol.
pub fn notification_frame(p: &Pending) -> String {
    serde_json::json!({
        "messageType": "notification",
        "channelID": p.channel_id,
        "version": p.version,
        "data": p.data,
        "headers": { "encoding": "aes128gcm" },
    })
    .to_string()
}
