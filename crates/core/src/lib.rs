//! Clarion's core: the operations every caller shares (REST handlers, the console's
//! server functions, the SDK's endpoints and the CLI are thin callers of them), over the
//! [`clarion_push`] sender and the [`clarion_store`] database.
//!
//! - [`subscriptions`]: subscribe (upsert), unsubscribe, list;
//! - [`access`]: the admin token and API keys with scopes, bound to a site or to all;
//! - [`audit`]: the append-only log of every write made with a key or the token;
//! - [`admission`]: who may subscribe or push a test, and how often (rate limits, caps);
//! - [`ownership`]: a subscription its owner proved with its `auth` secret;
//! - [`audience`]: topics, users, idle expiry; [`identity`]: the identity tokens that
//!   tie a subscription to a user;
//! - [`broadcasts`]: queue, report on and cancel sends, the test push, and the engine
//!   that carries broadcasts out;
//! - [`sites`]: the sites one Clarion serves, each with its keys, origins, identity
//!   secret, topics and quotas;
//! - [`keyring`]: a site's VAPID keys (current and older), rotation, and the master key
//!   that seals the private keys kept in the database;
//! - [`secrets`]: the data dir, key files and the admin token;
//! - [`metrics`]: the process's Prometheus registry.
//!
//! Nothing here knows HTTP: errors are [`CoreError`]s, which the web layer maps to
//! statuses, and the crate does not depend on axum or Leptos.

pub mod access;
pub mod admission;
pub mod audience;
pub mod audit;
pub mod broadcasts;
pub mod error;
pub mod identity;
pub mod keyring;
pub mod metrics;
pub mod ownership;
pub mod secrets;
pub mod sites;
pub mod subscriptions;

pub use error::CoreError;

use clarion_domain::subscription::PushHostPolicy;
use clarion_push::{PushSender, RetryPolicy};
use clarion_store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// The core services: storage, the sender and the endpoint policy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clarion {
    pub store: Store,
    pub sender: PushSender,
    /// The sites, each with its VAPID keys: each push is signed with its subscription's
    /// own.
    pub sites: Arc<sites::Sites>,
    pub policy: Arc<PushHostPolicy>,
    /// Wakes the broadcast worker when a broadcast is queued.
    pub broadcast_queued: Arc<Notify>,
    /// Pushes in flight at once during a broadcast.
    pub send_concurrency: usize,
    /// The JSON shape of every payload this server sends.
    pub payload_format: clarion_domain::PayloadFormat,
    /// How failed pushes are retried.
    pub retry: RetryPolicy,
    /// How long a claim on a broadcast lasts without renewal: longer than the slowest
    /// push ([`clarion_push::PushTimeouts::lease`]), renewed every quarter of it.
    pub lease: std::time::Duration,
    /// Storage faults pausing this process's broadcasts, shown in their status.
    pub faults: Arc<broadcasts::BroadcastFaults>,
    /// This process's Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
}
