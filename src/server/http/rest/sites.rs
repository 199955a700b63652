//! `/api/v1/sites/{site}/…`: a site's VAPID keys (admin). `POST …/vapid-keys` rotates to
//! a fresh key, `GET` lists the keys with the subscriptions still bound to each, and
//! `DELETE …/vapid-keys/{id}` retires an older one. Every deployment has the site
//! `default`, which the unprefixed paths serve.

use super::error::ApiError;
use super::{Access, AdminScope};
use crate::server::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use clarion_core::audit::{self, Action};
use clarion_core::keyring;
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites/{site}/vapid-public-key", get(vapid_public_key))
        .route("/sites/{site}/vapid-keys", get(list_keys).post(rotate_key))
        .route("/sites/{site}/vapid-keys/{id}", delete(retire_key))
}

/// `{"public_key"}`: the site's current key, public like the unprefixed path.
async fn vapid_public_key(State(state): State<AppState>, Path(site): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "public_key": keyring::current_public_key(&state.core, &site)? })))
}

/// `{"keys": [{"id", "public_key", "current", "subscriptions", "created_at"}]}`.
async fn list_keys(_: Access<AdminScope>, State(state): State<AppState>, Path(site): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "keys": keyring::list_keys(&state.core, &site).await? })))
}

/// `201 {"id", "public_key", …}`: the new current key.
async fn rotate_key(
    access: Access<AdminScope>,
    State(state): State<AppState>,
    Path(site): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = keyring::rotate_key(&state.core, &site).await?;
    audit::record(&state.core, access.wrote(Action::VapidKeyRotate, key.id.to_string(), None)).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetireOptions {
    #[serde(default)]
    force: bool,
}

/// `200 {"retired": id, "removed_subscriptions": n}`; `409` while subscriptions are
/// bound to it (unless `?force=true`) or for the current key.
async fn retire_key(
    access: Access<AdminScope>,
    State(state): State<AppState>,
    Path((site, id)): Path<(String, i64)>,
    Query(options): Query<RetireOptions>,
) -> Result<impl IntoResponse, ApiError> {
    let removed = keyring::retire_key(&state.core, &site, id, options.force).await?;
    let audience = i64::try_from(removed).ok().filter(|&n| n > 0);
    audit::record(&state.core, access.wrote(Action::VapidKeyRetire, id.to_string(), audience)).await?;
    Ok(Json(json!({ "retired": id, "removed_subscriptions": removed })))
}
