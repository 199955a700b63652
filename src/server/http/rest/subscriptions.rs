//! `/api/v1/subscriptions`: subscribe (upsert), unsubscribe, a test push to one's own
//! subscription, and the admin listing.

use super::error::{ApiError, AppJson};
use super::{Access, AudienceScope, ReadScope};
use crate::domain::{SavedSubscription, SubscribeRequest};
use crate::server::http::security::ClientIp;
use crate::server::http::site_scope::RequestSite;
use crate::server::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use clarion_core::admission;
use clarion_core::audit::{self, Action};
use clarion_core::subscriptions::{self, Deleter, Subscribed};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/subscriptions", post(create).delete(remove).get(list))
        .route("/subscriptions/test", post(test_push))
        .route("/subscriptions/renew", post(renew))
        .route("/subscriptions/sign-out", post(sign_out))
}

/// `201 {"id", "topics"}` for a new endpoint, `200` for a known one (refreshed).
async fn create(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(request): AppJson<SubscribeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let stored = admission::subscribe_from(&state.core, &site, &state.admission, ip, &request, user_agent).await?;
    let status = match stored.subscribed {
        Subscribed::Created(_) => StatusCode::CREATED,
        Subscribed::Updated(_) => StatusCode::OK,
    };
    Ok((status, Json(SavedSubscription { id: stored.subscribed.id(), topics: stored.topics })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    endpoint: String,
    /// The subscription's `keys.auth`; not needed with admin rights.
    #[serde(default)]
    auth: Option<String>,
}

/// `204`: the owner (with the subscription's `auth` secret) or an admin deletes it.
async fn remove(
    admin: Option<Access<AudienceScope>>,
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    AppJson(body): AppJson<DeleteBody>,
) -> Result<StatusCode, ApiError> {
    let deleter = match (&admin, &body.auth) {
        (Some(_), _) => Deleter::Admin,
        (None, auth) => Deleter::Owner { auth: auth.as_deref().unwrap_or_default() },
    };
    subscriptions::unsubscribe(&state.core, &site, &body.endpoint, deleter).await?;
    if let Some(access) = &admin {
        let host = audit::endpoint_host(&body.endpoint);
        audit::record(&state.core, access.wrote(Action::SubscriptionDelete, host, Some(1))).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnSubscription {
    endpoint: String,
    auth: String,
}

/// `200 {"outcome": "delivered" | "gone" | "failed", "reason"?}`: a test notification to
/// the caller's own subscription, proven by its `auth` secret.
async fn test_push(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<OwnSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(admission::test_push_from(&state.core, &site, &state.admission, ip, &body.endpoint, &body.auth).await?))
}

/// `204`: the subscription is no longer bound to its user (a signed-in user signs out of
/// a shared browser); it keeps its topics. Proven by its `auth` secret.
async fn sign_out(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    AppJson(body): AppJson<OwnSubscription>,
) -> Result<StatusCode, ApiError> {
    subscriptions::sign_out(&state.core, &site, &body.endpoint, &body.auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a service worker sends on `pushsubscriptionchange`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Renewal {
    /// The subscription the browser replaced, proven by its `auth` secret.
    old: OwnSubscription,
    /// The browser's new subscription, `PushSubscription.toJSON()`.
    subscription: crate::domain::SubscriptionJson,
}

/// `201`/`200 {"id", "topics"}`: the renewed subscription, with the old one's user and
/// topics; the old one is deleted. `403` wrong `auth`, `404` the old one is not stored.
async fn renew(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    headers: HeaderMap,
    AppJson(body): AppJson<Renewal>,
) -> Result<impl IntoResponse, ApiError> {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let stored = subscriptions::renew(&state.core, &site, &body.old.endpoint, &body.old.auth, &body.subscription, user_agent).await?;
    let status = match stored.subscribed {
        Subscribed::Created(_) => StatusCode::CREATED,
        Subscribed::Updated(_) => StatusCode::OK,
    };
    Ok((status, Json(SavedSubscription { id: stored.subscribed.id(), topics: stored.topics })))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
}

async fn list(
    access: Access<ReadScope>,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    Ok(Json(subscriptions::list(&state.core, &access.site, query.limit, query.after.as_deref()).await?))
}
