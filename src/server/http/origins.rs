//! Which sites' pages may call Clarion: the origins of `CLARION_CORS_ORIGINS`, and the
//! public endpoints (the ones the SDK and the imported worker call) that answer them.

//!
//! The list is checked at start: what a browser would never send as `Origin` is refused.

use axum::http::request::Parts;
use axum::http::{header, Method};
use std::sync::Arc;

/// Origins allowed besides the site's own.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<Vec<String>>);

impl AllowedOrigins {
    /// The comma-separated list of `CLARION_CORS_ORIGINS`, each entry a site's origin
    /// (`https://www.example.com`, `http://localhost:8080`), kept as browsers serialise
    /// it: lower case, punycode, without a default port or a trailing slash. An entry that
    /// is not an origin (`null`, a wildcard, a path, another scheme) is an error naming it,
    /// never an entry that silently matches nothing or everything.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = Self::origin_of(entry).map_err(|why| format!("{entry:?} is not a site's origin: {why}"))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self(Arc::new(origins)))
    }

    fn origin_of(entry: &str) -> Result<String, &'static str> {
        if entry.eq_ignore_ascii_case("null") {
            return Err("`null` is the origin of sandboxed frames and local files, which any page can make; list real sites");
        }
        if entry.contains('*') {
            return Err("wildcards are not supported; list each site");
        }
        let url = url::Url::parse(entry).map_err(|_| "write it as scheme://host[:port], e.g. https://www.example.com")?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("a site is served over http or https");
        }
        if url.host().is_none() {
            return Err("it names no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("an origin has no user or password");
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("an origin has no path, query or fragment (browsers send scheme://host[:port] only)");
        }
        Ok(url.origin().ascii_serialization())
    }

    /// An origin as the list keeps it: lower case, without a trailing slash.
    pub fn normalize(origin: &str) -> String {
        origin.trim_end_matches('/').to_ascii_lowercase()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `origin` (as a browser sent it) is listed.
    pub fn contains(&self, origin: &str) -> bool {
        self.0.contains(&Self::normalize(origin))
    }
}

/// The endpoints a site's pages and its worker call (the SDK and the imported `sw.js`):
/// the VAPID key, subscribe and unsubscribe, the topics and a subscriber's choice of them,
/// the test push, a worker's renewal and click reports. Only these answer the origins in
/// `CLARION_CORS_ORIGINS`; admin endpoints and server functions never answer a foreign
/// origin.
pub fn is_public_endpoint(method: &Method, path: &str) -> bool {
    let Some(endpoint) = path.strip_prefix("/api/v1/") else { return false };
    // A site's own paths are public where the unprefixed ones (site `default`'s) are.
    let endpoint = match endpoint.strip_prefix("sites/").and_then(|rest| rest.split_once('/')) {
        Some((site, rest)) if !site.is_empty() => rest,
        _ => endpoint,
    };
    let read = matches!(*method, Method::GET | Method::HEAD);
    match endpoint {
        "vapid-public-key" | "topics" => read,
        "subscriptions" => matches!(*method, Method::POST | Method::DELETE),
        "subscriptions/topics" => *method == Method::PUT,
        "subscriptions/test" | "subscriptions/renew" | "subscriptions/sign-out" => *method == Method::POST,
        _ => {
            *method == Method::POST
                && endpoint
                    .strip_prefix("notifications/")
                    .and_then(|rest| rest.strip_suffix("/clicks"))
                    .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

/// The method a request is about: a CORS preflight asks for another one.
pub fn intended_method(request: &Parts) -> Method {
    if request.method == Method::OPTIONS {
        if let Some(asked) = request.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        {
            return asked;
        }
    }
    request.method.clone()
}
