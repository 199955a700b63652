//! `/api/v1/api-keys` and `/api/v1/audit`: API keys with scopes (created with their
//! secret shown once, listed without it, revoked), and the audit log of every write.
//! Both are resources of no one site, so they need the `admin` scope on a key for every
//! site (or the admin token).

use super::error::{ApiError, AppJson};
use super::Authenticated;
use crate::domain::{NewApiKey, Scope};
use crate::server::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use clarion_core::access;
use clarion_core::audit::{self, Action};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{id}", delete(revoke_key))
        .route("/audit", get(audit_log))
}

/// The caller, once it holds `admin` for every site.
fn global_admin(who: &Authenticated) -> Result<(), ApiError> {
    Ok(who.caller.require(Scope::Admin, None)?)
}

/// `201 {"id", "secret", "name", "site", "scopes", "expires_at"}`: the secret, this once.
async fn create_key(
    who: Authenticated,
    State(state): State<AppState>,
    AppJson(request): AppJson<NewApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    global_admin(&who)?;
    let known = |site: &str| state.core.sites.exists(site);
    let created = access::create_api_key(&state.core, &request, known).await?;
    let (site, target) = access::audit_subject(created.id, &created.name, created.site.as_deref());
    audit::record(&state.core, who.wrote(&site, Action::ApiKeyCreate, target, None)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `{"api_keys": [{"id", "name", "site", "scopes", "created_at", "last_used_at", "expires_at"}]}`.
async fn list_keys(who: Authenticated, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    global_admin(&who)?;
    Ok(Json(json!({ "api_keys": access::list_api_keys(&state.core).await? })))
}

/// `204`: refused from the next request on, on every instance.
async fn revoke_key(who: Authenticated, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    global_admin(&who)?;
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request("the key id must be a number", Some("id")))?;
    let revoked = access::revoke_api_key(&state.core, id).await?;
    let (site, target) = access::audit_subject(revoked.id, &revoked.name, revoked.site.as_deref());
    audit::record(&state.core, who.wrote(&site, Action::ApiKeyRevoke, target, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    site: Option<String>,
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

/// `{"entries": [{"id", "at", "key_id", "key_name", "site", "action", "target", "audience"?, "client"}], "next"}`,
/// oldest first; `next` is the `after` of the following page, `null` at the end.
async fn audit_log(
    who: Authenticated,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    global_admin(&who)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text(), None))?;
    let (entries, next) = audit::list(&state.core, query.site.as_deref(), query.after, query.limit).await?;
    Ok(Json(json!({ "entries": entries, "next": next })))
}
