//! Server functions of the admin console (`/admin`). Sign-in exchanges the admin token for
//! a session cookie (see `server::http::admin`); every other function here refuses a request
//! without admin rights, with 401, through the same extractor as the REST admin routes.
//! Each is a thin wrapper over the same core operation the REST API and the CLI call.
//! Reads are GETs (so the per-address write limit does not apply to them); changes are
//! JSON POSTs, guarded like every write.

use crate::domain::{
    AuditEntry, BroadcastDetail, BroadcastQueued, BroadcastStatus, NotificationRequest, PayloadFormat, Scope, SubscriptionPage, Topic,
};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use serde::{Deserialize, Serialize};

use super::ApiFailure;
#[cfg(feature = "ssr")]
use super::{client_ip, state, to_server_error};

/// What the console needs to know about this server once signed in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsoleSettings {
    /// The payload shape this server sends, so the size meter measures the real thing.
    pub payload_format: PayloadFormat,
    pub subscriptions: i64,
    /// The topics a send can target.
    pub topics: Vec<Topic>,
    /// `CLARION_IDLE_EXPIRY_DAYS` (0: off).
    pub idle_expiry_days: u32,
    /// Subscriptions removed for being idle, ever.
    pub idle_removed: i64,
    /// Who signed in: `admin` (the admin token) or the API key's name.
    pub signed_in_as: String,
    /// What the session may do; the console offers only that (the server checks anyway).
    pub scopes: Vec<Scope>,
    /// Whether the session may read the audit log (the token, or an `admin` key for every site).
    pub sees_audit: bool,
    /// The site the console works on: every list, count and send is this site's.
    pub site: String,
    /// The sites the session may switch to (those it may read), by name.
    pub sites: Vec<String>,
}

impl ConsoleSettings {
    /// Whether the session holds `scope`.
    pub fn can(&self, scope: Scope) -> bool {
        scope.granted_by(&self.scopes)
    }
}

/// Refuses the request (401) unless it carries rights with scope `S` on the site the
/// console session works on (its site switcher; `default` without one), checked by the
/// same extractor as the REST admin routes (a session cookie, or a bearer token or key):
/// `403` naming the scope a key's session lacks.
#[cfg(feature = "ssr")]
async fn require<S: crate::server::http::admin::ScopeNeeded + Send + Sync>(
    state: &crate::server::state::AppState,
) -> Result<crate::server::http::admin::Access<S>, ApiFailure> {
    use axum::extract::FromRequestParts;
    let mut parts = use_context::<axum::http::request::Parts>()
        .ok_or_else(|| to_server_error(clarion_core::CoreError::Internal(anyhow::anyhow!("the request is missing"))))?;
    let tls = crate::server::http::security::OverTls::from_request_parts(&mut parts, state).await.expect("infallible");
    if let Some(site) = crate::server::http::admin::session_site(state, &parts.headers, tls).await.map_err(to_server_error)? {
        parts.extensions.insert(crate::server::http::site_scope::SiteName(site));
    }
    crate::server::http::admin::Access::<S>::from_request_parts(&mut parts, state).await.map_err(to_server_error)
}

#[cfg(feature = "ssr")]
use crate::server::http::admin::{AudienceScope, ReadScope, SendScope};

/// Appends the audit entry of a write the console made.
#[cfg(feature = "ssr")]
async fn audited(state: &crate::server::state::AppState, written: clarion_core::audit::Written<'_>) -> Result<(), ApiFailure> {
    clarion_core::audit::record(&state.core, written).await.map_err(to_server_error)
}

#[cfg(feature = "ssr")]
fn set_cookie(value: axum::http::HeaderValue) {
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.append_header(axum::http::header::SET_COOKIE, value);
    }
}

/// Exchanges the admin token for a session cookie.
#[server(prefix = "/api/fn", endpoint = "admin_sign_in", input = Json)]
pub async fn admin_sign_in(token: String) -> Result<(), ApiFailure> {
    let state = state()?;
    let ip = client_ip(&state).await?;
    let tls: crate::server::http::security::OverTls = leptos_axum::extract_with_state(&state).await?;
    let cookie = crate::server::http::admin::sign_in(&state, ip, tls, &token).await.map_err(to_server_error)?;
    set_cookie(cookie);
    Ok(())
}

/// Ends the session and clears the cookie.
#[server(prefix = "/api/fn", endpoint = "admin_sign_out", input = Json)]
pub async fn admin_sign_out() -> Result<(), ApiFailure> {
    let state = state()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let tls: crate::server::http::security::OverTls = leptos_axum::extract_with_state(&state).await?;
    let cookie = crate::server::http::admin::sign_out(&state, &headers, tls).await.map_err(to_server_error)?;
    set_cookie(cookie);
    Ok(())
}

/// The console's settings when signed in; `None` when not (not an error: the console then
/// shows the sign-in form).
#[server(prefix = "/api/fn", endpoint = "admin_session", input = GetUrl)]
pub async fn admin_session() -> Result<Option<ConsoleSettings>, ApiFailure> {
    let state = state()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let tls: crate::server::http::security::OverTls = leptos_axum::extract_with_state(&state).await?;
    let Some(caller) = crate::server::http::admin::session_caller(&state, &headers, tls).await.map_err(to_server_error)? else {
        return Ok(None);
    };
    let signed_in_as = match &caller {
        clarion_core::access::Caller::Key(key) => key.name.clone(),
        _ => "admin".to_string(),
    };
    let sees_audit = caller.require(Scope::Admin, None).is_ok();
    let scopes = caller.scopes();
    let internal = |e| to_server_error(clarion_core::CoreError::Internal(e));
    let sites: Vec<String> = state
        .core
        .sites
        .all()
        .into_iter()
        .map(|site| site.name.clone())
        .filter(|name| caller.require(Scope::Read, Some(name)).is_ok())
        .collect();
    // The session's site, while it exists and the session may read it; else the first it may.
    let chosen = crate::server::http::admin::session_site(&state, &headers, tls).await.map_err(to_server_error)?;
    let name = chosen
        .filter(|name| sites.contains(name))
        .or_else(|| sites.iter().find(|name| *name == clarion_core::sites::DEFAULT_SITE).cloned())
        .or_else(|| sites.first().cloned())
        .unwrap_or_else(|| clarion_core::sites::DEFAULT_SITE.to_string());
    let site = state.core.sites.get(&name).map_err(to_server_error)?;
    let subscriptions = state.core.store.count_subscriptions(&site.name).await.map_err(internal)?;
    let idle_removed = state.core.store.idle_removed().await.map_err(internal)?;
    let topics = clarion_core::audience::list_topics(&state.core, &site).await.map_err(to_server_error)?;
    Ok(Some(ConsoleSettings {
        payload_format: state.core.payload_format,
        subscriptions,
        topics,
        idle_expiry_days: state.idle_expiry_days,
        idle_removed,
        signed_in_as,
        scopes,
        sees_audit,
        site: site.name.clone(),
        sites,
    }))
}

/// The console's site switcher: every list, count and send of this session is `site`'s
/// from now on (`404` for a site the session may not read).
#[server(prefix = "/api/fn", endpoint = "admin_choose_site", input = Json)]
pub async fn admin_choose_site(site: String) -> Result<(), ApiFailure> {
    let state = state()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let tls: crate::server::http::security::OverTls = leptos_axum::extract_with_state(&state).await?;
    let Some(caller) = crate::server::http::admin::session_caller(&state, &headers, tls).await.map_err(to_server_error)? else {
        return Err(to_server_error(crate::server::http::rest::error::ApiError::Unauthorized));
    };
    caller.require(Scope::Read, Some(&site)).map_err(to_server_error)?;
    state.core.sites.get(&site).map_err(to_server_error)?;
    crate::server::http::admin::choose_site(&state, &headers, tls, &site).await.map_err(to_server_error)
}

/// Sends that are scheduled and have not started, with their payloads, newest first.
#[server(prefix = "/api/fn", endpoint = "admin_scheduled", input = GetUrl)]
pub async fn admin_scheduled() -> Result<Vec<BroadcastDetail>, ApiFailure> {
    let state = state()?;
    let access = require::<ReadScope>(&state).await?;
    clarion_core::broadcasts::list_broadcast_details(&state.core, &access.site, 500, None, Some(crate::domain::BroadcastState::Scheduled))
        .await
        .map_err(to_server_error)
}

/// Cancels a scheduled send (409 once it has started).
#[server(prefix = "/api/fn", endpoint = "admin_cancel", input = Json)]
pub async fn admin_cancel(id: i64) -> Result<BroadcastStatus, ApiFailure> {
    let state = state()?;
    let access = require::<SendScope>(&state).await?;
    let cancelled = clarion_core::broadcasts::cancel_broadcast(&state.core, &access.site, id).await.map_err(to_server_error)?;
    audited(&state, access.wrote(clarion_core::audit::Action::NotificationCancel, id.to_string(), None)).await?;
    Ok(cancelled)
}

/// Queues (or schedules) a notification for everyone, its topics or users, or the one
/// subscription its `endpoint` names.
#[server(prefix = "/api/fn", endpoint = "admin_send", input = Json)]
pub async fn admin_send(request: NotificationRequest) -> Result<BroadcastQueued, ApiFailure> {
    let state = state()?;
    let access = require::<SendScope>(&state).await?;
    let audience = clarion_core::broadcasts::audience_known_now(&state.core, &access.site, &request).await.map_err(to_server_error)?;
    let queued = clarion_core::broadcasts::queue_broadcast(&state.core, &access.site, request, None).await.map_err(to_server_error)?;
    audited(&state, access.wrote(clarion_core::audit::Action::NotificationCreate, queued.id.to_string(), audience)).await?;
    Ok(queued)
}

/// Past broadcasts with their payloads, newest first, `limit` at a time before `before`.
#[server(prefix = "/api/fn", endpoint = "admin_history", input = GetUrl)]
pub async fn admin_history(limit: i64, before: Option<i64>) -> Result<Vec<BroadcastDetail>, ApiFailure> {
    let state = state()?;
    let access = require::<ReadScope>(&state).await?;
    clarion_core::broadcasts::list_broadcast_details(&state.core, &access.site, limit, before, None).await.map_err(to_server_error)
}

/// One page of subscribers, in the order they subscribed.
#[server(prefix = "/api/fn", endpoint = "admin_subscribers", input = GetUrl)]
pub async fn admin_subscribers(limit: i64, after: Option<String>) -> Result<SubscriptionPage, ApiFailure> {
    let state = state()?;
    let access = require::<ReadScope>(&state).await?;
    clarion_core::subscriptions::list(&state.core, &access.site, Some(limit), after.as_deref()).await.map_err(to_server_error)
}

/// Deletes one subscriber.
#[server(prefix = "/api/fn", endpoint = "admin_delete_subscriber", input = Json)]
pub async fn admin_delete_subscriber(endpoint: String) -> Result<(), ApiFailure> {
    let state = state()?;
    let access = require::<AudienceScope>(&state).await?;
    clarion_core::subscriptions::unsubscribe(&state.core, &access.site, &endpoint, clarion_core::subscriptions::Deleter::Admin)
        .await
        .map_err(to_server_error)?;
    let host = clarion_core::audit::endpoint_host(&endpoint);
    audited(&state, access.wrote(clarion_core::audit::Action::SubscriptionDelete, host, Some(1))).await
}

/// The newest `limit` entries of the audit log, newest first (the admin token, or an
/// `admin` key for every site).
#[server(prefix = "/api/fn", endpoint = "admin_audit", input = GetUrl)]
pub async fn admin_audit(limit: i64) -> Result<Vec<AuditEntry>, ApiFailure> {
    let state = state()?;
    let access = require::<crate::server::http::admin::AdminScope>(&state).await?;
    access.caller.require(Scope::Admin, None).map_err(to_server_error)?;
    clarion_core::audit::latest(&state.core, limit).await.map_err(to_server_error)
}
