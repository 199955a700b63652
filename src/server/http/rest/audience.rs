//! `/api/v1/topics`, `/api/v1/subscriptions/topics` and `/api/v1/users`: the topics a site
//! offers (defined by the admin, read by anyone), a subscriber's choice of them (proven by
//! its `auth` secret), and a signed-in user's subscriptions (admin).

use super::error::{ApiError, AppJson};
use super::{Access, AudienceScope, ReadScope};
use crate::domain::TopicDefinition;
use crate::server::http::site_scope::RequestSite;
use crate::server::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use clarion_core::audience;
use clarion_core::audit::{self, Action};
use clarion_store::TopicSaved;
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{name}", put(define_topic).delete(delete_topic))
        .route("/subscriptions/topics", put(choose_topics))
        .route("/users/{user_id}", axum::routing::delete(forget_user))
        .route("/users/{user_id}/subscriptions", get(user_subscriptions))
}

/// `{"topics": [{"name", "label", "description", "default"}]}`; public, for the page.
async fn list_topics(State(state): State<AppState>, RequestSite(site): RequestSite) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "topics": audience::list_topics(&state.core, &site).await? })))
}

/// `201` for a new topic, `200` for a change; the topic as stored.
async fn define_topic(
    access: Access<AudienceScope>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(definition): AppJson<TopicDefinition>,
) -> Result<impl IntoResponse, ApiError> {
    let status = match audience::define_topic(&state.core, &access.site, &name, &definition).await? {
        TopicSaved::Created => StatusCode::CREATED,
        TopicSaved::Updated => StatusCode::OK,
    };
    audit::record(&state.core, access.wrote(Action::TopicPut, name.clone(), None)).await?;
    let topic = audience::list_topics(&state.core, &access.site).await?.into_iter().find(|t| t.name == name);
    Ok((status, Json(topic)))
}

async fn delete_topic(
    access: Access<AudienceScope>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    audience::delete_topic(&state.core, &access.site, &name).await?;
    audit::record(&state.core, access.wrote(Action::TopicDelete, name, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChooseTopics {
    endpoint: String,
    auth: String,
    topics: Vec<String>,
}

/// `200 {"topics"}`: replaces the caller's own subscription's topics.
async fn choose_topics(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    AppJson(body): AppJson<ChooseTopics>,
) -> Result<impl IntoResponse, ApiError> {
    let owned = clarion_core::ownership::prove_ownership(&state.core, &site, &body.endpoint, &body.auth).await?;
    let topics = audience::set_topics(&state.core, &site, &owned, &body.topics).await?;
    Ok(Json(json!({ "topics": topics })))
}

/// `{"user_id", "subscriptions": [...]}`.
async fn user_subscriptions(
    access: Access<ReadScope>,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let subscriptions = audience::user_subscriptions(&state.core, &access.site, &user_id).await?;
    Ok(Json(json!({ "user_id": user_id, "subscriptions": subscriptions })))
}

/// `204`: every subscription of the user is deleted (none is not an error: the user is
/// forgotten either way). The audit entry does not name the user: that would keep what
/// "forget me" removes.
async fn forget_user(
    access: Access<AudienceScope>,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    audience::forget_user(&state.core, &access.site, &user_id).await?;
    audit::record(&state.core, access.wrote(Action::UserForget, clarion_store::FORGOTTEN_USER, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}
