//! `/api/v1/sites`: the sites one Clarion serves (admin): make one (`POST`, answering
//! `201` with the site and never a secret), list them, show, change (`PATCH`) and remove
//! one (`DELETE`, refused with `409` while it has subscriptions unless `?purge=true`).
//!
//! And a site's VAPID keys, `/api/v1/sites/{site}/vapid-keys` (or `/api/v1/vapid-keys`
//! for `default`): `POST` rotates to a fresh key, `GET` lists the keys with the
//! subscriptions still bound to each, and `DELETE …/vapid-keys/{id}` retires an older one.

use super::error::{ApiError, AppJson};
use super::{Access, AdminScope, Authenticated};
use crate::domain::Scope;
use crate::server::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use clarion_core::audit::{self, Action};
use clarion_core::keyring;
use clarion_core::sites::{self, NewSite, SiteChange};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites", get(list_sites).post(create_site))
        .route("/sites/{site}", get(show_site).patch(change_site).delete(remove_site))
        .route("/vapid-keys", get(list_keys).post(rotate_key))
        .route("/vapid-keys/{id}", delete(retire_key))
}

/// `201 {"name", "origins", "vapid_subject", "vapid_public_key", …}`; needs `admin` for
/// every site.
async fn create_site(
    who: Authenticated,
    State(state): State<AppState>,
    AppJson(new): AppJson<NewSite>,
) -> Result<impl IntoResponse, ApiError> {
    who.caller.require(Scope::Admin, None)?;
    let site = sites::create_site(&state.core, &new).await?;
    audit::record(&state.core, who.wrote(&site.name, Action::SiteCreate, site.name.clone(), None)).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

/// `{"sites": [...]}`: every site for a key of every site, its own for a key bound to one.
async fn list_sites(who: Authenticated, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let all = sites::list_sites(&state.core).await?;
    let visible: Vec<_> = all.into_iter().filter(|site| who.caller.require(Scope::Read, Some(&site.name)).is_ok()).collect();
    if visible.is_empty() {
        // A key without `read` learns why.
        who.caller.require(Scope::Read, None)?;
    }
    Ok(Json(json!({ "sites": visible })))
}

async fn show_site(who: Authenticated, State(state): State<AppState>, Path(name): Path<String>) -> Result<impl IntoResponse, ApiError> {
    who.caller.require(Scope::Read, Some(&name))?;
    Ok(Json(sites::show_site(&state.core, &name).await?))
}

/// `200` with the site as changed; `409` for `default` (its `CLARION_*` settings).
async fn change_site(
    who: Authenticated,
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(change): AppJson<SiteChange>,
) -> Result<impl IntoResponse, ApiError> {
    who.caller.require(Scope::Admin, Some(&name))?;
    let site = sites::change_site(&state.core, &name, &change).await?;
    audit::record(&state.core, who.wrote(&site.name, Action::SiteUpdate, site.name.clone(), None)).await?;
    Ok(Json(site))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveOptions {
    #[serde(default)]
    purge: bool,
}

/// `200 {"removed", "removed_subscriptions"}`; `409` while it has subscriptions (unless
/// `?purge=true`) and for `default`. Needs `admin` for every site.
async fn remove_site(
    who: Authenticated,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(options): Query<RemoveOptions>,
) -> Result<impl IntoResponse, ApiError> {
    who.caller.require(Scope::Admin, None)?;
    let removed = sites::remove_site(&state.core, &name, options.purge).await?;
    audit::record(&state.core, who.wrote(&name, Action::SiteDelete, name.clone(), (removed > 0).then_some(removed))).await?;
    Ok(Json(json!({ "removed": name, "removed_subscriptions": removed })))
}

/// `{"keys": [{"id", "public_key", "current", "subscriptions", "created_at"}]}`.
async fn list_keys(access: Access<AdminScope>, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "keys": keyring::list_keys(&state.core, &access.site.name).await? })))
}

/// `201 {"id", "public_key", …}`: the new current key.
async fn rotate_key(access: Access<AdminScope>, State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let key = keyring::rotate_key(&state.core, &access.site.name).await?;
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
    Path(id): Path<i64>,
    Query(options): Query<RetireOptions>,
) -> Result<impl IntoResponse, ApiError> {
    let removed = keyring::retire_key(&state.core, &access.site.name, id, options.force).await?;
    let audience = i64::try_from(removed).ok().filter(|&n| n > 0);
    audit::record(&state.core, access.wrote(Action::VapidKeyRetire, id.to_string(), audience)).await?;
    Ok(Json(json!({ "retired": id, "removed_subscriptions": removed })))
}
