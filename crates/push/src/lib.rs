//! Clarion's web push sender, usable on its own: RFC 8291 message encryption
//! (`aes128gcm`), RFC 8292 VAPID signing with a JWT cached per push-service origin, and
//! RFC 8030 delivery over HTTP/2 (one connection per push service) or HTTP/1.1, with
//! the push service's answer mapped to a typed [`DeliveryOutcome`] and a retry
//! [`policy`]. It has no database and no web framework; Clarion's server builds its
//! broadcasts on top of it.
//!
//! The rooms:
//! - [`encryption`]: one message sealed for one subscriber;
//! - [`vapid`]: the key pair and the `Authorization: vapid` header;
//! - [`sender`]: [`PushSender`], which seals and posts, and [`sender::push_headers`];
//! - [`http2`] and [`connections`]: the HTTP/2 client and the one-opener-per-origin rule;
//! - [`resolver`]: names resolve to public addresses only, unless the policy lists the host;
//! - [`outcome`]: [`DeliveryOutcome`] and [`PushTimeouts`], the leaf types;
//! - [`policy`]: what to do with each outcome (retry, remove, fail), and the per-origin gate.
//!
//! # Sending one message
//!
//! Here to the local push service (`clarion push-service`, the `clarion-push-service`
//! crate), which mints a subscription for our key the way a browser would, then checks
//! and decrypts what we send:
//!
//! ```
//! use clarion_domain::subscription::{NewSubscription, PushHostPolicy};
//! use clarion_domain::SubscriptionJson;
//! use clarion_push::vapid::{VapidKeyMaterial, VapidKeys};
//! use clarion_push::{DeliveryOutcome, PushMessage, PushSender, PushTarget, PushTimeouts, Unobserved};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let options = clarion_push_service::Options {
//!     addr: "127.0.0.1:0".parse()?,
//!     sink: false,
//!     tls: None,
//!     handshake_delay: Duration::ZERO,
//! };
//! let push_service = clarion_push_service::PushServiceServer::bind(&options).await?;
//! let origin = push_service.origin().to_string();
//! tokio::spawn(push_service.run());
//!
//! // The application server's identity, and a subscription made with its public key.
//! let vapid = Arc::new(VapidKeys::new(&VapidKeyMaterial::generate(), "mailto:ops@example.com")?);
//! let subscription: SubscriptionJson = reqwest::Client::new()
//!     .post(format!("{origin}/_test/subscriptions"))
//!     .json(&serde_json::json!({ "application_server_key": vapid.public_key_b64() }))
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//!
//! // Only public push services are reached, unless the policy lists a host: here, loopback.
//! let host = origin.trim_start_matches("http://");
//! let policy = Arc::new(PushHostPolicy::from_list(host).map_err(anyhow::Error::msg)?);
//! let subscription = NewSubscription::parse(&subscription, &policy)?;
//! let timeouts = PushTimeouts::new(Duration::from_secs(10));
//! let sender = PushSender::new(None, policy, timeouts, Arc::new(Unobserved))?;
//!
//! let target = PushTarget::new(subscription.endpoint.url().clone(), subscription.p256dh, subscription.auth);
//! let message = PushMessage { payload: br#"{"title":"Hello"}"#.to_vec(), ttl: 60, urgency: None, topic: None };
//! let outcome = sender.send(&vapid, &target, &message).await;
//! assert!(matches!(outcome, DeliveryOutcome::Delivered { .. }), "{}", outcome.describe());
//! # Ok(())
//! # }
//! ```

pub mod connections;
pub mod encryption;
pub mod http2;
pub mod outcome;
pub mod policy;
pub mod resolver;
pub mod sender;
pub mod vapid;

pub use outcome::{DeliveryOutcome, PushTimeouts};
pub use policy::{Decision, RetryPolicy};
pub use sender::{PushMessage, PushObserver, PushSender, PushTarget, Sealed, Unobserved};
