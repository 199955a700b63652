//! `/metrics` over HTTP: the response a scraper reads, the router of
//! `CLARION_METRICS_ADDR`, and the middleware that counts requests by route and status.
//! The registry itself is the core's ([`clarion_core::metrics`]).

use super::rest::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clarion_core::metrics::{Metrics, CONTENT_TYPE};
use clarion_core::Clarion;
use std::sync::Arc;

/// The metrics as a scraper reads them, in the text exposition format.
pub async fn scrape(core: &Clarion) -> Result<Response, ApiError> {
    let text = clarion_core::metrics::scrape(core).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// The router of `CLARION_METRICS_ADDR`: `/metrics` without a token, for an internal
/// scraper on an address the public cannot reach.
pub fn open_router(core: Clarion) -> Router {
    async fn open_metrics(State(core): State<Clarion>) -> Result<Response, ApiError> {
        scrape(&core).await
    }
    Router::new().route("/metrics", get(open_metrics)).with_state(core)
}

/// Middleware: counts each answered request by its route pattern and status.
pub async fn count_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "other".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    metrics.request_answered(route, response.status().as_u16());
    response
}
