//! REST API v1 (`/api/v1/...`), `/healthz` and `/sw.js`. Handlers parse the wire types,
//! call the core operation and shape the answer; nothing else.

pub mod access;
pub mod audience;
pub mod error;
pub mod notifications;
pub mod sites;
pub mod subscriptions;

use crate::server::http::origins::{intended_method, is_public_endpoint};
use crate::server::http::site_scope::{RequestSite, SiteName};
use crate::server::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use clarion_core::sites::Sites;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The service worker, compiled into the binary so it is served whatever the site root.
const SERVICE_WORKER: &str = include_str!("../../../../sw/sw.js");

/// Routes under `/api/v1`, plus `/healthz` and `/sw.js`. Each site's public endpoints
/// (see [`is_public_endpoint`]) answer its own origins' pages (for `default`,
/// `CLARION_CORS_ORIGINS`), and no other site's: a page of one site cannot subscribe
/// into another. Without origins, only Clarion's own pages can call the API from a
/// browser.
pub fn router(sites: Arc<Sites>) -> Router<AppState> {
    let api = Router::new()
        .route("/vapid-public-key", get(vapid_public_key))
        .merge(subscriptions::router())
        .merge(notifications::router())
        .merge(audience::router())
        .merge(sites::router())
        .merge(access::router())
        .fallback(error::no_such_route)
        .layer(DefaultBodyLimit::max(error::JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn(error::json_errors));
    Router::new()
        .nest("/api/v1", api)
        // The nest covers `/api/v1` and `/api/v1/...`; this, the one path between.
        .route("/api/v1/", axum::routing::any(error::no_such_route))
        .route("/healthz", get(healthz))
        .route("/sw.js", get(service_worker))
        .route("/metrics", get(metrics))
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, request: &Parts| {
                    is_public_endpoint(&intended_method(request), request.uri.path())
                        && origin
                            .to_str()
                            .is_ok_and(|origin| sites.find(SiteName::of(request)).is_some_and(|site| site.allows_origin(origin)))
                }))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([header::CONTENT_TYPE])
                .max_age(std::time::Duration::from_secs(3600)),
        )
}

/// `GET /metrics` on the main address: Prometheus text, for admins only (it shows the
/// audience's size and the push services in use).
async fn metrics(_: Access<ReadScope>, State(state): State<AppState>) -> Result<axum::response::Response, error::ApiError> {
    super::metrics::scrape(&state.core).await
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `{"public_key"}`: the request's site's current key (public).
async fn vapid_public_key(State(state): State<AppState>, RequestSite(site): RequestSite) -> Result<impl IntoResponse, error::ApiError> {
    let public_key = clarion_core::keyring::current_public_key(&state.core, &site.name)?;
    Ok(Json(serde_json::json!({ "public_key": public_key })))
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
            // Sites import it into their own worker (`importScripts`), cross-origin.
            (header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin")),
        ],
        SERVICE_WORKER,
    )
}

/// Admin rights with a scope: the admin token, a console session, or an API key that
/// holds the scope on the request's site.
pub use super::admin::{Access, AdminScope, AudienceScope, Authenticated, ReadScope, SendScope};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_endpoints_are_the_sdks_and_the_workers() {
        let public = [
            (Method::GET, "/api/v1/vapid-public-key"),
            (Method::GET, "/api/v1/topics"),
            (Method::POST, "/api/v1/subscriptions"),
            (Method::DELETE, "/api/v1/subscriptions"),
            (Method::PUT, "/api/v1/subscriptions/topics"),
            (Method::POST, "/api/v1/subscriptions/test"),
            (Method::POST, "/api/v1/notifications/42/clicks"),
            (Method::GET, "/api/v1/sites/default/vapid-public-key"),
        ];
        for (method, path) in public {
            assert!(is_public_endpoint(&method, path), "{method} {path}");
        }
        let admin = [
            (Method::GET, "/api/v1/subscriptions"),
            (Method::POST, "/api/v1/notifications"),
            (Method::GET, "/api/v1/notifications/42"),
            (Method::DELETE, "/api/v1/notifications/42"),
            (Method::PUT, "/api/v1/topics/news"),
            (Method::DELETE, "/api/v1/users/alice"),
            (Method::POST, "/api/v1/notifications/x/clicks"),
            (Method::POST, "/api/v1/notifications//clicks"),
            (Method::POST, "/api/fn/save_subscription"),
            (Method::GET, "/metrics"),
            (Method::GET, "/api/v1/sites/default/vapid-keys"),
            (Method::POST, "/api/v1/sites/default/vapid-keys"),
            (Method::GET, "/api/v1/sites//vapid-public-key"),
        ];
        for (method, path) in admin {
            assert!(!is_public_endpoint(&method, path), "{method} {path}");
        }
    }
}
