//! Domain types that both the server and the browser build use: the wire shapes of a
//! push subscription and a notification, and the lenient base64url codec both sides share.
//!
//! Parsers that need server-only crates (P-256 point validation, URL policy) sit behind
//! `#[cfg(feature = "ssr")]` inside each module. The server's builds also take their one
//! wall clock ([`clock`]) and their one random source ([`random`]) from here, the crate
//! every server crate stands on; nothing else here does I/O.

pub mod access;
pub mod audience;
pub mod base64url;
#[cfg(feature = "ssr")]
pub mod clock;
pub mod ledger;
pub mod notification;
#[cfg(feature = "ssr")]
pub mod random;
pub mod subscription;

#[cfg(all(test, feature = "ssr"))]
mod properties;

pub use access::{ApiKeyInfo, AuditEntry, CreatedApiKey, NewApiKey, Scope};
pub use audience::{Audience, Topic, TopicDefinition};
pub use ledger::{BroadcastDetail, BroadcastQueued, BroadcastState, BroadcastStatus, FailureReason, SubscriptionPage, SubscriptionSummary};
pub use notification::{NotificationAction, NotificationRequest, PayloadFormat, TestPushResult, Urgency};
pub use subscription::{SavedSubscription, SubscribeRequest, SubscriptionJson, SubscriptionKeysJson};
