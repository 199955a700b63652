//! The axum and Leptos app state: the core plus what only the web server needs.

use super::http::client_ip::ClientIpPolicy;
use axum::extract::FromRef;
use clarion_core::admission::Admission;
use clarion_core::secrets::AdminToken;
use clarion_core::Clarion;
use leptos::config::LeptosOptions;

/// The axum state: the core plus what only the web server needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub core: Clarion,
    /// Rate limits and caps for web clients.
    pub admission: Admission,
    pub admin: AdminToken,
    pub leptos_options: LeptosOptions,
    pub client_ip: ClientIpPolicy,
    /// `CLARION_IDLE_EXPIRY_DAYS` (0: off), for the console.
    pub idle_expiry_days: u32,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
