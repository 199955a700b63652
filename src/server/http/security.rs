//! Defences for a server on the public internet, as axum extractors and middleware: the
//! client's address ([`ClientIp`], found by [`super::client_ip`]), whether it came over
//! TLS, the `Origin` check against cross-site requests, the per-IP write limit, and the
//! header size limit. The limits themselves are the core's admission rules
//! ([`clarion_core::admission`]).

use super::origins::{is_public_endpoint, AllowedOrigins};
use super::rest::error::ApiError;
use super::site_scope::{site_allows, SiteName};
use crate::server::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use forwarded_header_value::{ForwardedHeaderValue, Protocol};
use std::net::IpAddr;

/// True when the browser reached us over TLS: only a trusted proxy can say so (with
/// `X-Forwarded-Proto: https` or `Forwarded: proto=https`), since Clarion itself listens
/// on plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls(pub bool);

impl OverTls {
    /// What the request's headers say, believed only from a trusted proxy.
    pub fn of(state: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> Self {
        OverTls(claims_tls(headers) && state.client_ip.via_trusted_proxy(extensions))
    }

    /// The scheme the browser used.
    pub fn scheme(self) -> &'static str {
        if self.0 {
            "https"
        } else {
            "http"
        }
    }
}

impl FromRequestParts<AppState> for OverTls {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(OverTls::of(state, &parts.headers, &parts.extensions))
    }
}

/// Whether the request's headers say the browser came over TLS (true only when a trusted
/// proxy sent them; see [`OverTls::of`]).
fn claims_tls(headers: &HeaderMap) -> bool {
    let https = |value: &str| value.trim().trim_matches('"').eq_ignore_ascii_case("https");
    // Proxies in a chain may append: TLS only when every hop that names a scheme says
    // https, so a browser's forged first element cannot upgrade a plain request.
    let forwarded_proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|value| value.split(',').all(https));
    // `Forwarded` is parsed as the client address is (`client_ip`), by its crate.
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ForwardedHeaderValue::from_forwarded(v).ok())
        .is_some_and(|value| {
            let mut protos = value.iter().filter_map(|stanza| stanza.forwarded_proto).peekable();
            protos.peek().is_some() && protos.all(|proto| proto == Protocol::Https)
        });
    forwarded_proto || forwarded
}

/// The client's IP, as [`ClientIpPolicy`] finds it.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(state.client_ip.of(&parts.headers, &parts.extensions)))
    }
}

/// True when a browser's `Origin` is this site itself: its scheme is the one the request
/// came by, and its host and port match `Host`.
fn same_site(origin: &str, headers: &HeaderMap, tls: OverTls) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, origin_host)) = origin.split_once("://") else { return false };
    scheme.eq_ignore_ascii_case(tls.scheme()) && origin_host.eq_ignore_ascii_case(host)
}

/// Middleware for writes (anything but GET/HEAD/OPTIONS): refuses cross-site browser
/// requests (an `Origin` that is neither this site nor, for the public endpoints, one of
/// the addressed site's origins: `CLARION_CORS_ORIGINS` for `default`) and applies the
/// per-IP write limit. Requests without `Origin` (servers, curl) cannot be cross-site
/// forgeries and pass.
pub async fn guard_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin = AllowedOrigins::normalize(origin);
        let listed_site = || {
            is_public_endpoint(request.method(), request.uri().path())
                && site_allows(&state, SiteName::of_request(request.extensions()), &origin)
        };
        let tls = OverTls::of(&state, headers, request.extensions());
        if !same_site(&origin, headers, tls) && !listed_site() {
            if same_site(&origin, headers, OverTls(!tls.0)) {
                return ApiError::OtherScheme { origin, scheme: tls.scheme() }.into_response();
            }
            return ApiError::CrossSite(origin).into_response();
        }
    }
    let ip = state.client_ip.of(headers, request.extensions());
    if let Err(limited) = state.admission.limits.write(ip) {
        return ApiError::from(limited).into_response();
    }
    next.run(request).await
}

/// Largest total size of a request's header names and values.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Middleware: refuses requests whose headers total more than [`MAX_HEADER_BYTES`].
pub async fn limit_header_size(request: Request, next: Next) -> Response {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge { limit: MAX_HEADER_BYTES }.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tls_is_claimed_only_when_every_hop_that_names_a_scheme_says_https() {
        let claims = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            claims_tls(&headers)
        };
        assert!(claims("x-forwarded-proto", "https"));
        assert!(claims("x-forwarded-proto", "https, https"));
        assert!(!claims("x-forwarded-proto", "https, http"), "a forged first element cannot upgrade a plain hop");
        assert!(!claims("x-forwarded-proto", "http"));
        assert!(claims("forwarded", "for=192.0.2.1;proto=https"));
        assert!(claims("forwarded", "for=192.0.2.1;proto=https, for=10.0.0.1"));
        assert!(!claims("forwarded", "for=192.0.2.1;proto=https, for=10.0.0.1;proto=http"));
        assert!(!claims("forwarded", "for=192.0.2.1"), "no hop names a scheme");
        assert!(!claims("forwarded", "proto=gopher"));
        assert!(!claims("accept", "https"));
    }

    #[test]
    fn same_site_compares_scheme_host_and_port() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("push.example.com:8443"));
        assert!(same_site("https://push.example.com:8443", &headers, OverTls(true)));
        assert!(!same_site("http://push.example.com:8443", &headers, OverTls(true)), "another scheme is another site");
        assert!(!same_site("https://push.example.com:8443", &headers, OverTls(false)));
        assert!(same_site("http://push.example.com:8443", &headers, OverTls(false)));
        assert!(!same_site("https://push.example.com", &headers, OverTls(true)));
        assert!(!same_site("https://evil.example", &headers, OverTls(true)));
    }
}
