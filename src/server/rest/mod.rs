//! REST API v1 (`/api/v1/...`), `/healthz` and `/sw.js`. Handlers parse the wire types,
//! call the core operation and shape the answer; nothing else.

pub mod audience;
pub mod error;
pub mod notifications;
pub mod subscriptions;

use super::security::AllowedOrigins;
use super::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Method;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The service worker, compiled into the binary so it is served whatever the site root.
const SERVICE_WORKER: &str = include_str!("../../../sw/sw.js");

/// Routes under `/api/v1`, plus `/healthz` and `/sw.js`. `cors` opens the API to those
/// browser origins; without any, only same-origin pages can call it from a browser.
pub fn router(cors: &AllowedOrigins) -> Router<AppState> {
    let mut api = Router::new()
        .route("/vapid-public-key", get(vapid_public_key))
        .merge(subscriptions::router())
        .merge(notifications::router())
        .merge(audience::router())
        .layer(DefaultBodyLimit::max(error::JSON_BODY_LIMIT));
    if !cors.is_empty() {
        api = api.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(cors.header_values()))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .max_age(std::time::Duration::from_secs(3600)),
        );
    }
    Router::new().nest("/api/v1", api).route("/healthz", get(healthz)).route("/sw.js", get(service_worker)).route("/metrics", get(metrics))
}

/// `GET /metrics` on the main address: Prometheus text, for admins only (it shows the
/// audience's size and the push services in use).
async fn metrics(_: Admin, State(state): State<AppState>) -> Result<axum::response::Response, error::ApiError> {
    Ok(crate::server::metrics::scrape(&state.core).await?)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn vapid_public_key(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "public_key": state.core.sender.vapid().public_key_b64() }))
}

/// The service worker's own CSP: a worker is governed by the policy its script came with.
/// It fetches only this origin (the VAPID key, subscriptions, click reports) and loads
/// notification icons and images from this origin or any `https:` one.
pub const SERVICE_WORKER_CSP: &str = "default-src 'none'; connect-src 'self'; img-src 'self' https: data:";

async fn service_worker() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SERVICE_WORKER_CSP)),
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::HeaderName::from_static("service-worker-allowed"), HeaderValue::from_static("/")),
        ],
        SERVICE_WORKER,
    )
}

/// Admin rights: the bearer token or a console session.
pub use super::admin::AdminAccess as Admin;
