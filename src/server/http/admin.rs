//! Admin sign-in for the console: the admin token is exchanged for a session cookie.
//!
//! The cookie is random, HttpOnly, SameSite=Strict and expires after
//! [`SESSION_SECONDS`]. Over TLS (through a trusted proxy) it is `__Host-clarion_admin`
//! and `Secure`: the prefix makes browsers refuse it unless it is Secure, for the whole
//! host and from this host alone, so a sibling subdomain cannot plant one; and only the
//! prefixed cookie counts then. Over plain HTTP (development) it is `clarion_admin`.
//! The database keeps only its SHA-256, so a leaked database holds no
//! usable session, and sessions survive a restart. Each session is tied to the admin token
//! it was opened with ([`AdminToken::session_tag`]): changing the token ends every session.
//! Every admin server function and every admin REST route (as an alternative to a
//! bearer token or API key) checks it through [`Access`], which also checks the scope
//! and site an API key is limited to.
//!
//! A client that guessed wrong too often is locked out before anything it presents is
//! checked, so even the right token waits: guessing can never confirm a hit.
//!
//! [`AdminToken::session_tag`]: clarion_core::secrets::AdminToken::session_tag

use super::rest::error::ApiError;
use super::security::{ClientIp, OverTls};
use super::site_scope::SiteName;
use crate::domain::Scope;
use crate::domain::{base64url, clock, random};
use crate::server::state::AppState;
use axum::extract::FromRequestParts;
use axum::extract::OptionalFromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use clarion_core::access::{self, Caller};
use clarion_core::audit::{Action, Written};
use clarion_core::sites::Site;
use clarion_core::CoreError;
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::sync::Arc;

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "clarion_admin";
/// The session cookie's name over TLS.
pub const SECURE_SESSION_COOKIE: &str = "__Host-clarion_admin";

/// The cookie's name for a request that came over TLS (`tls`) or not.
fn cookie_name(tls: bool) -> &'static str {
    if tls {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}
/// How long a session lasts: 12 hours.
pub const SESSION_SECONDS: i64 = 12 * 60 * 60;

fn token_hash(cookie_value: &str) -> String {
    base64url::encode(&Sha256::digest(cookie_value.as_bytes()))
}

/// The session cookie's value, if the request carries one under the name its scheme
/// uses (see [`cookie_name`]).
fn session_cookie(headers: &HeaderMap, OverTls(tls): OverTls) -> Option<&str> {
    let wanted = cookie_name(tls);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim() == wanted)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn cookie(value: &str, max_age: i64, tls: bool) -> HeaderValue {
    let (name, secure) = (cookie_name(tls), if tls { "; Secure" } else { "" });
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("base64url and fixed text make a valid header")
}

/// Checks the admin token or an API key and opens a session; answers the `Set-Cookie`
/// value (`Secure` when `tls`). A wrong one counts against the caller's address like a
/// wrong bearer token does. A key's session acts with the key's scopes and site, and
/// ends when the key is revoked or expires.
pub async fn sign_in(state: &AppState, ip: std::net::IpAddr, OverTls(tls): OverTls, token: &str) -> Result<HeaderValue, ApiError> {
    state.admission.limits.admin_attempt(ip)?;
    let token = token.trim();
    let tag = if access::looks_like_api_key(token) {
        access::authenticate(&state.core, token).await?.map(|key| access::session_tag_of(&key))
    } else {
        state.admin.verify(token).then(|| state.admin.session_tag().to_string())
    };
    let Some(tag) = tag else {
        state.admission.limits.bad_token(ip)?;
        return Err(ApiError::Unauthorized);
    };
    let mut bytes = [0u8; 32];
    random::fill(&mut bytes).map_err(|e| CoreError::Internal(e.into()))?;
    let value = base64url::encode(&bytes);
    let expires_at = clock::unix_seconds() + SESSION_SECONDS;
    state.core.store.create_session(&token_hash(&value), &tag, expires_at).await.map_err(CoreError::Internal)?;
    tracing::info!("console signed in");
    Ok(cookie(&value, SESSION_SECONDS, tls))
}

/// Ends the request's session (if any); answers the `Set-Cookie` value that clears it.
pub async fn sign_out(state: &AppState, headers: &HeaderMap, tls: OverTls) -> Result<HeaderValue, ApiError> {
    if let Some(value) = session_cookie(headers, tls) {
        state.core.store.delete_session(&token_hash(value)).await.map_err(CoreError::Internal)?;
    }
    Ok(cookie("", 0, tls.0))
}

/// The site the request's console session works on (its site switcher); `None`
/// without a session, or for `default`.
pub async fn session_site(state: &AppState, headers: &HeaderMap, tls: OverTls) -> Result<Option<String>, ApiError> {
    let Some(value) = session_cookie(headers, tls) else { return Ok(None) };
    Ok(state.core.store.session_site(&token_hash(value)).await.map_err(CoreError::Internal)?)
}

/// Makes the request's console session work on `site` (checked by the caller).
pub async fn choose_site(state: &AppState, headers: &HeaderMap, tls: OverTls, site: &str) -> Result<(), ApiError> {
    let Some(value) = session_cookie(headers, tls) else { return Err(ApiError::Unauthorized) };
    state.core.store.set_session_site(&token_hash(value), site).await.map_err(CoreError::Internal)?;
    Ok(())
}

/// Who the request's live session cookie acts for: the admin token (a session opened
/// with the current one) or a live API key; `None` without one.
pub async fn session_caller(state: &AppState, headers: &HeaderMap, tls: OverTls) -> Result<Option<Caller>, ApiError> {
    let Some(value) = session_cookie(headers, tls) else { return Ok(None) };
    let Some(tag) = state.core.store.session_tag(&token_hash(value)).await.map_err(CoreError::Internal)? else { return Ok(None) };
    if tag == state.admin.session_tag() {
        return Ok(Some(Caller::Root));
    }
    Ok(access::session_key(&state.core, &tag).await?.map(Caller::Key))
}

/// An authenticated caller of an admin route: `Authorization: Bearer <admin token>` or
/// `Bearer clk_…` (an API key), or a live console session cookie; with its address, for
/// the audit log. Which scope and site it may use is checked by [`Access`].
pub struct Authenticated {
    pub caller: Caller,
    pub client: std::net::IpAddr,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await.expect("infallible");
        let tls = OverTls::from_request_parts(parts, state).await.expect("infallible");
        state.admission.limits.admin_attempt(ip)?;
        let bearer =
            parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let caller = match bearer {
            Some(secret) if access::looks_like_api_key(secret) => access::authenticate(&state.core, secret).await?.map(Caller::Key),
            Some(token) => state.admin.verify(token).then_some(Caller::Root),
            None => session_caller(state, &parts.headers, tls).await?,
        };
        if let Some(caller) = caller {
            return Ok(Authenticated { caller, client: ip });
        }
        // Guessing is rate-limited per client address.
        state.admission.limits.bad_token(ip)?;
        Err(ApiError::Unauthorized)
    }
}

impl Authenticated {
    /// The audit entry of a write this caller made on `site`.
    pub fn wrote<'a>(&'a self, site: &'a str, action: Action, target: String, audience: Option<i64>) -> Written<'a> {
        Written { caller: &self.caller, site, action, target, audience, client: self.client.to_string() }
    }
}

/// The scope a route needs, as a type: `Access<Send>` in a handler's arguments.
pub trait ScopeNeeded {
    const SCOPE: Scope;
}

macro_rules! scope_marker {
    ($($(#[$doc:meta])* $name:ident => $scope:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl ScopeNeeded for $name {
            const SCOPE: Scope = $scope;
        }
    )*};
}

scope_marker! {
    /// Listings, a send's status and events, metrics.
    ReadScope => Scope::Read;
    /// Creating and cancelling sends.
    SendScope => Scope::Send;
    /// Topics, users, deleting subscriptions.
    AudienceScope => Scope::Audience;
    /// Sites, keys and the audit log.
    AdminScope => Scope::Admin;
}

/// An authenticated caller holding scope `S` on the request's site (its [`SiteName`]:
/// the `{site}` of `/api/v1/sites/{site}/…`, else `default`), with that site. A key
/// bound to another site gets `404`, as does a site that does not exist; a key without
/// the scope `403`, naming it.
pub struct Access<S> {
    pub caller: Caller,
    pub client: std::net::IpAddr,
    pub site: Arc<Site>,
    scope: PhantomData<S>,
}

impl<S> Access<S> {
    /// The audit entry of a write made through this request.
    pub fn wrote(&self, action: Action, target: impl Into<String>, audience: Option<i64>) -> Written<'_> {
        Written { caller: &self.caller, site: &self.site.name, action, target: target.into(), audience, client: self.client.to_string() }
    }
}

impl<S: ScopeNeeded + Send + Sync> FromRequestParts<AppState> for Access<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated { caller, client } = Authenticated::from_request_parts(parts, state).await?;
        let site = SiteName::of(parts);
        caller.require(S::SCOPE, Some(site))?;
        let site = state.core.sites.get(site)?;
        Ok(Access { caller, client, site, scope: PhantomData })
    }
}

/// `Option<Access<S>>`: `None` when the request presents no admin credentials at all
/// (no bearer token, no session cookie), so a route can serve owners and admins alike; a
/// presented credential that is wrong is still a 401.
impl<S: ScopeNeeded + Send + Sync> OptionalFromRequestParts<AppState> for Access<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        let tls = <OverTls as FromRequestParts<AppState>>::from_request_parts(parts, state).await.expect("infallible");
        if !parts.headers.contains_key(header::AUTHORIZATION) && session_cookie(&parts.headers, tls).is_none() {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
    }
}

/// Full admin rights on the request's site (the console's server functions).
pub type AdminAccess = Access<AdminScope>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("theme=dark; clarion_admin=abc123 ; other=1"));
        assert_eq!(session_cookie(&headers, OverTls(false)), Some("abc123"));
        assert_eq!(session_cookie(&headers, OverTls(true)), None, "over TLS only the prefixed cookie counts");
        headers.append(header::COOKIE, HeaderValue::from_static("__Host-clarion_admin=def456"));
        assert_eq!(session_cookie(&headers, OverTls(true)), Some("def456"));
        headers.clear();
        headers.append(header::COOKIE, HeaderValue::from_static("clarion_admin="));
        assert_eq!(session_cookie(&headers, OverTls(false)), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = cookie("v", SESSION_SECONDS, false);
        let text = c.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict") && text.contains("Max-Age=43200"));
        assert!(!text.contains("Secure"));
        let secure = cookie("v", 0, true);
        assert!(secure.to_str().unwrap().starts_with("__Host-clarion_admin=v; Path=/;"));
        assert!(secure.to_str().unwrap().ends_with("; Secure"));
    }
}
