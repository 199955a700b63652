//! Which site a request is for. Every REST path exists under `/api/v1/sites/{site}/…`;
//! the unprefixed `/api/v1/…` paths are site `default`'s. Before routing,
//! [`route_site`] takes the `{site}` out of the path and puts it beside the request as a
//! [`SiteName`], so one router serves every site, and each handler, the CORS layer, the
//! write guard and [`Access`](super::admin::Access) read the same site. `/api/v1/sites`
//! and `/api/v1/sites/{site}` themselves (site management) are left as they are.

use super::rest::error::ApiError;
use crate::server::state::AppState;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Uri;
use clarion_core::sites::{Site, DEFAULT_SITE};
use std::sync::Arc;

/// The site a request addresses, as [`route_site`] found it in the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteName(pub String);

impl SiteName {
    /// The request's site: its `/api/v1/sites/{site}/…`, else `default`.
    pub fn of(parts: &Parts) -> &str {
        Self::of_request(&parts.extensions)
    }

    /// [`SiteName::of`] from a request's extensions.
    pub fn of_request(extensions: &axum::http::Extensions) -> &str {
        extensions.get::<SiteName>().map_or(DEFAULT_SITE, |name| name.0.as_str())
    }
}

const SITES_PREFIX: &str = "/api/v1/sites/";

/// Rewrites `/api/v1/sites/{site}/{rest}` to `/api/v1/{rest}` with a [`SiteName`]; any
/// other request passes as it is. An empty `{site}` is left alone (no route matches it).
pub fn route_site(mut request: Request) -> Request {
    let Some(rest) = request.uri().path().strip_prefix(SITES_PREFIX) else { return request };
    let Some((site, rest)) = rest.split_once('/') else { return request };
    if site.is_empty() {
        return request;
    }
    let (site, path) = (site.to_string(), format!("/api/v1/{rest}"));
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = request.uri().clone().into_parts();
    let Ok(path_and_query) = path_and_query.parse() else { return request };
    parts.path_and_query = Some(path_and_query);
    let Ok(uri) = Uri::from_parts(parts) else { return request };
    *request.uri_mut() = uri;
    request.extensions_mut().insert(SiteName(site));
    request
}

/// The site a request addresses, as this instance serves it; `404` naming it when there
/// is no such site.
pub struct RequestSite(pub Arc<Site>);

impl FromRequestParts<AppState> for RequestSite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RequestSite(state.core.sites.get(SiteName::of(parts))?))
    }
}

/// Whether a page of `origin` may call `site`'s public endpoints (its origins; for
/// `default`, `CLARION_CORS_ORIGINS`).
pub fn site_allows(state: &AppState, site: &str, origin: &str) -> bool {
    state.core.sites.find(site).is_some_and(|site| site.allows_origin(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(uri: &str) -> (String, Option<String>) {
        let request = route_site(Request::builder().uri(uri).body(axum::body::Body::empty()).unwrap());
        (request.uri().to_string(), request.extensions().get::<SiteName>().map(|s| s.0.clone()))
    }

    #[test]
    fn a_sites_path_is_the_unprefixed_one_for_that_site() {
        assert_eq!(routed("/api/v1/sites/shop/subscriptions"), ("/api/v1/subscriptions".into(), Some("shop".into())));
        assert_eq!(routed("/api/v1/sites/shop/notifications/4?x=1"), ("/api/v1/notifications/4?x=1".into(), Some("shop".into())));
        assert_eq!(routed("/api/v1/sites/shop/"), ("/api/v1/".into(), Some("shop".into())));
        // Site management, the unprefixed paths and an empty name are not rewritten.
        assert_eq!(routed("/api/v1/sites/shop"), ("/api/v1/sites/shop".into(), None));
        assert_eq!(routed("/api/v1/sites"), ("/api/v1/sites".into(), None));
        assert_eq!(routed("/api/v1/subscriptions"), ("/api/v1/subscriptions".into(), None));
        assert_eq!(routed("/api/v1/sites//topics"), ("/api/v1/sites//topics".into(), None));
    }
}
