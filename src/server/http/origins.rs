//! Which sites' pages may call Clarion: the origins of `CLARION_CORS_ORIGINS`, and the
//! public endpoints (the ones the SDK and the imported worker call) that answer them.

use axum::http::request::Parts;
use axum::http::{header, Method};
use std::sync::Arc;

/// Origins allowed besides the site's own.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<Vec<String>>);

impl AllowedOrigins {
    pub fn parse(list: &str) -> Self {
        Self(Arc::new(list.split(',').map(|o| Self::normalize(o.trim())).filter(|o| !o.is_empty()).collect()))
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
