//! Which sites' pages may call Clarion: the origins of `CLARION_CORS_ORIGINS` (the site
//! `default`'s; other sites keep theirs in the database), and the public endpoints (the
//! ones the SDK and the imported worker call) that answer them.

//!
//! The list is checked at start: what a browser would never send as `Origin` is refused.

use axum::http::request::Parts;
use axum::http::{header, Method};
use clarion_core::sites::{normalize_origin, parse_origin};

/// Origins allowed besides Clarion's own: `CLARION_CORS_ORIGINS`, the site `default`'s.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// The comma-separated list of `CLARION_CORS_ORIGINS`, each entry a site's origin
    /// (`https://www.example.com`, `http://localhost:8080`), kept as browsers serialise
    /// it (see [`clarion_core::sites::parse_origin`]). An entry that is not an origin is
    /// an error naming it.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = parse_origin(entry).map_err(|why| format!("{entry:?} is not a site's origin: {why}"))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self(origins))
    }

    /// An origin as the lists keep it: lower case, without a trailing slash.
    pub fn normalize(origin: &str) -> String {
        normalize_origin(origin)
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
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
