//! `/api/v1/notifications`: queue or schedule a broadcast (admin), cancel a scheduled one,
//! its status and the history, and the click reports of service workers.

use super::error::{ApiError, AppJson, SEND_BODY_LIMIT};
use super::{Access, ReadScope, SendScope};
use crate::domain::NotificationRequest;
use crate::domain::{BroadcastState, BroadcastStatus};
use crate::server::http::site_scope::RequestSite;
use crate::server::state::AppState;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use clarion_core::access::Caller;
use clarion_core::audit::{self, Action};
use clarion_core::broadcasts;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        // A send may name up to 10,000 users.
        .route("/notifications", post(create).get(history).layer(DefaultBodyLimit::max(SEND_BODY_LIMIT)))
        .route("/notifications/{id}", get(status).delete(cancel))
        .route("/notifications/{id}/events", get(events))
        .route("/notifications/{id}/clicks", post(click))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::bad_request("the notification id must be a number", Some("id")))
}

/// `202 {"id"}`: recorded, and the worker is sending it.
async fn create(
    access: Access<SendScope>,
    State(state): State<AppState>,
    AppJson(request): AppJson<NotificationRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if let Caller::Key(key) = &access.caller {
        state.admission.limits.key_send(key.id)?;
    }
    let audience = broadcasts::audience_known_now(&state.core, &access.site, &request).await?;
    let queued = broadcasts::queue_broadcast(&state.core, &access.site, request, None).await?;
    audit::record(&state.core, access.wrote(Action::NotificationCreate, queued.id.to_string(), audience)).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// `200` with the status `cancelled`; `409` once the send has started.
async fn cancel(access: Access<SendScope>, State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let cancelled = broadcasts::cancel_broadcast(&state.core, &access.site, id).await?;
    audit::record(&state.core, access.wrote(Action::NotificationCancel, id.to_string(), None)).await?;
    Ok(Json(cancelled))
}

/// A click report: the subscription that got the notification, proven by its `auth`
/// secret (a click counts once per subscription, and marks it as seen).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickReport {
    endpoint: String,
    auth: String,
}

/// `204`: a service worker reports a click on this broadcast's notification. Public (the
/// worker has no credentials) but proven: `422` without the subscription, `403` with a
/// wrong `auth`, `404` unknown notification or subscription, `409` a send that was never
/// sent. A second report from the same subscription is a `204` that counts nothing.
async fn click(
    State(state): State<AppState>,
    RequestSite(site): RequestSite,
    Path(id): Path<String>,
    AppJson(report): AppJson<ClickReport>,
) -> Result<impl IntoResponse, ApiError> {
    broadcasts::record_click(&state.core, &site, parse_id(&id)?, &report.endpoint, &report.auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(access: Access<ReadScope>, State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(broadcasts::broadcast_status(&state.core, &access.site, parse_id(&id)?).await?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
    before: Option<i64>,
    /// Only broadcasts in this state (`scheduled`, say).
    status: Option<BroadcastState>,
}

async fn history(
    access: Access<ReadScope>,
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    let notifications =
        broadcasts::list_broadcasts(&state.core, &access.site, query.limit.unwrap_or(50), query.before, query.status).await?;
    Ok(Json(serde_json::json!({ "notifications": notifications })))
}

/// How often the event stream looks at the ledger.
const EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Server-Sent Events: a `progress` event whenever the counts change, then one `done`
/// event with the final status, and the stream ends.
async fn events(access: Access<ReadScope>, State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let first = broadcasts::broadcast_status(&state.core, &access.site, id).await?;
    let (core, site) = (state.core.clone(), access.site.clone());
    let stream = futures::stream::unfold((Some(first), None::<BroadcastStatus>), move |(pending, last)| {
        let (core, site) = (core.clone(), site.clone());
        async move {
            if last.as_ref().is_some_and(|l| l.is_done()) {
                return None;
            }
            let mut current = pending;
            loop {
                let status = match current.take() {
                    Some(status) => status,
                    None => {
                        tokio::time::sleep(EVENT_INTERVAL).await;
                        match broadcasts::broadcast_status(&core, &site, id).await {
                            Ok(status) => status,
                            Err(_) => return None,
                        }
                    }
                };
                if last.as_ref() == Some(&status) {
                    continue;
                }
                let name = if status.is_done() { "done" } else { "progress" };
                let event = Event::default().event(name).json_data(&status).expect("status serializes");
                return Some((Ok::<_, Infallible>(event), (None, Some(status))));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
