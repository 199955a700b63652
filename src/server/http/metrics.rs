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

/// The hosts `CLARION_METRICS_ADDR` answers to: any IP address, `localhost`, and the
/// names of `CLARION_METRICS_HOSTS`. DNS rebinding needs a name of the attacker's that
/// resolves here, so a request naming any other host is refused.
#[derive(Debug, Clone, Default)]
pub struct MetricsHosts(Arc<Vec<String>>);

impl MetricsHosts {
    pub fn parse(list: &str) -> Self {
        Self(Arc::new(
            list.split(',').map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase()).filter(|n| !n.is_empty()).collect(),
        ))
    }

    /// Whether a request's `Host` (or HTTP/2 `:authority`), port and all, is one of ours.
    pub fn allows(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<axum::http::uri::Authority>() else { return false };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        host.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || self.0.contains(&name)
    }
}

/// The router of `CLARION_METRICS_ADDR`: `/metrics` without a token, for an internal
/// scraper on an address the public cannot reach, to requests that name one of `hosts`.
pub fn open_router(core: Clarion, hosts: MetricsHosts) -> Router {
    async fn open_metrics(State(core): State<Clarion>) -> Result<Response, ApiError> {
        scrape(&core).await
    }
    async fn check_host(State(hosts): State<MetricsHosts>, request: Request, next: Next) -> Response {
        let authority = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        match authority {
            Some(authority) if hosts.allows(&authority) => next.run(request).await,
            _ => (
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                axum::Json(serde_json::json!({
                    "error": "this address serves metrics only to requests naming an IP address, localhost or a name in CLARION_METRICS_HOSTS",
                    "field": "Host",
                })),
            )
                .into_response(),
        }
    }
    Router::new().route("/metrics", get(open_metrics)).with_state(core).layer(axum::middleware::from_fn_with_state(hosts, check_host))
}

/// Middleware: counts each answered request by its route pattern and status.
pub async fn count_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "other".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    metrics.request_answered(route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_answer_ip_addresses_localhost_and_listed_names_only() {
        let hosts = MetricsHosts::parse("clarion, Metrics.Internal.");
        for ok in ["127.0.0.1:9100", "10.0.0.5", "[::1]:9100", "localhost:9100", "clarion:9100", "metrics.internal", "METRICS.internal.:1"]
        {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["evil.example:9100", "127.0.0.1.evil.example", "localhost.evil.example", "", "clarion.evil"] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }
}
