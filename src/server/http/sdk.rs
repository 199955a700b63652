//! Serves Clarion's SDK to other sites (built by `scripts/build-sdk.sh` into
//! `CLARION_SDK_DIR`):
//! - `/sdk.js`, the loader sites import: revalidated on every load, so a new Clarion
//!   reaches them at once;
//! - `/sdk/*`, the wasm and its glue: named by their content, so cached for a year, and
//!   sent as the brotli or gzip copy the build made (`Vary: Accept-Encoding`).
//!
//! Any page may load them (`Access-Control-Allow-Origin: *`, without credentials): they
//! are public code. What the SDK may *do* on a site is the API's CORS, which answers only
//! the sites in `CLARION_CORS_ORIGINS`.

use super::site;
use crate::server::state::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// The routes, serving from `sdk_dir`: `sdk.js` and `assets/`.
pub fn routes(sdk_dir: PathBuf) -> Router<AppState> {
    let loader = sdk_dir.join("sdk.js");
    Router::new()
        .route("/sdk.js", get(move || serve_loader(loader.clone())))
        .nest_service(
            "/sdk",
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, site::immutable_when_found))
                .layer(site::vary_on_encoding())
                .service(site::precompressed(&sdk_dir.join("assets"))),
        )
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")))
                .layer(SetResponseHeaderLayer::overriding(
                    header::HeaderName::from_static("cross-origin-resource-policy"),
                    HeaderValue::from_static("cross-origin"),
                )),
        )
}

async fn serve_loader(file: PathBuf) -> Response {
    match tokio::fs::read(&file).await {
        Ok(loader) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            loader,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "the SDK is not built");
            let body = serde_json::json!({ "error": "the SDK is not built on this server: run scripts/build-sdk.sh" });
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        }
    }
}
