//! `/api/v1/notifications`: queue a broadcast (admin), its status and the history.

use super::error::{ApiError, AppJson};
use super::Admin;
use crate::domain::NotificationRequest;
use crate::server::broadcasts;
use crate::server::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/notifications", post(create).get(history)).route("/notifications/{id}", get(status))
}

/// `202 {"id"}`: recorded, and the worker is sending it.
async fn create(_: Admin, State(state): State<AppState>, AppJson(request): AppJson<NotificationRequest>) -> Result<impl IntoResponse, ApiError> {
    let queued = broadcasts::queue_broadcast(&state.core, request, None).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

async fn status(_: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request("the notification id must be a number", Some("id")))?;
    Ok(Json(broadcasts::broadcast_status(&state.core, id).await?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

async fn history(_: Admin, State(state): State<AppState>, query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    let notifications = broadcasts::list_broadcasts(&state.core, query.limit.unwrap_or(50), query.before).await?;
    Ok(Json(serde_json::json!({ "notifications": notifications })))
}
