//! Shared state: the core services every operation needs, and the axum/Leptos app state.

use super::secrets::AdminToken;
use super::security::{AllowedOrigins, ClientIpPolicy, Limits};
use super::sender::PushSender;
use super::store::Store;
use crate::domain::subscription::PushHostPolicy;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;
use tokio::sync::Notify;

/// The core services: storage, the sender and the endpoint policy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clarion {
    pub store: Store,
    pub sender: PushSender,
    pub policy: Arc<PushHostPolicy>,
    /// Wakes the broadcast worker when a broadcast is queued.
    pub broadcast_queued: Arc<Notify>,
    /// Pushes in flight at once during a broadcast.
    pub send_concurrency: usize,
    /// The JSON shape of every payload this server sends.
    pub payload_format: crate::domain::PayloadFormat,
    /// How failed pushes are retried.
    pub retry: super::delivery::RetryPolicy,
    /// How long a claim on a broadcast lasts without renewal: longer than the slowest
    /// push ([`super::sender::PushTimeouts::lease`]), renewed every quarter of it.
    pub lease: std::time::Duration,
    /// Storage faults pausing this process's broadcasts, shown in their status.
    pub faults: Arc<super::broadcasts::BroadcastFaults>,
    /// This process's Prometheus metrics.
    pub metrics: Arc<super::metrics::Metrics>,
    /// `CLARION_IDENTITY_SECRET`: checks identity tokens; `None` refuses them.
    pub identity: Option<super::audience::IdentitySecret>,
}

/// The axum state: the core plus what only the web server needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub core: Clarion,
    pub admin: AdminToken,
    pub leptos_options: LeptosOptions,
    pub limits: Arc<Limits>,
    pub client_ip: ClientIpPolicy,
    pub cors_origins: AllowedOrigins,
    /// 0: no limit.
    pub max_subscriptions: u64,
    /// 0: no limit.
    pub max_subscriptions_per_ip: u64,
    /// Keys the hash of client addresses stored with subscriptions.
    pub client_key: Arc<ring::hmac::Key>,
    /// `CLARION_IDLE_EXPIRY_DAYS` (0: off), for the console.
    pub idle_expiry_days: u32,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
