//! `/api/v1/subscriptions`: subscribe (upsert), unsubscribe, a test push to one's own
//! subscription, and the admin listing.

use super::error::{ApiError, AppJson};
use super::Admin;
use crate::domain::{SavedSubscription, SubscribeRequest};
use crate::server::http::security::ClientIp;
use crate::server::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use clarion_core::admission;
use clarion_core::subscriptions::{self, Subscribed};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/subscriptions", post(create).delete(remove).get(list)).route("/subscriptions/test", post(test_push))
}

/// `201 {"id", "topics"}` for a new endpoint, `200` for a known one (refreshed).
async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(request): AppJson<SubscribeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let stored = admission::subscribe_from(&state.core, &state.admission, ip, &request, user_agent).await?;
    let status = match stored.subscribed {
        Subscribed::Created(_) => StatusCode::CREATED,
        Subscribed::Updated(_) => StatusCode::OK,
    };
    Ok((status, Json(SavedSubscription { id: stored.subscribed.id(), topics: stored.topics })))
}

#[derive(Deserialize)]
struct EndpointBody {
    endpoint: String,
}

async fn remove(State(state): State<AppState>, AppJson(body): AppJson<EndpointBody>) -> Result<StatusCode, ApiError> {
    subscriptions::unsubscribe(&state.core, &body.endpoint).await?;
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
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<OwnSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(admission::test_push_from(&state.core, &state.admission, ip, &body.endpoint, &body.auth).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
}

async fn list(
    _: Admin,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    Ok(Json(subscriptions::list(&state.core, query.limit, query.after.as_deref()).await?))
}
