//! Server functions the page calls. Each is a thin wrapper over a core operation in
//! `server::subscriptions` or `server::broadcasts`; the endpoints are fixed
//! (`/api/fn/<name>`) so tests and proxies can rely on them.

use crate::domain::{SubscriptionJson, TestPushResult};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
fn core() -> Result<crate::server::state::Clarion, ServerFnError> {
    use_context::<crate::server::state::AppState>()
        .map(|s| s.core)
        .ok_or_else(|| ServerFnError::new("server state is missing"))
}

#[cfg(feature = "ssr")]
fn to_server_error(e: crate::server::error::CoreError) -> ServerFnError {
    use crate::server::error::CoreError;
    if let CoreError::Internal(cause) = &e {
        tracing::error!(error = ?cause, "internal error in a server function");
    }
    let status = match &e {
        CoreError::Invalid { .. } => 422,
        CoreError::NotFound(_) => 404,
        CoreError::Forbidden(_) => 403,
        CoreError::Internal(_) => 500,
    };
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(axum::http::StatusCode::from_u16(status).expect("valid status"));
    }
    ServerFnError::new(e.public_message())
}

/// The VAPID public key (base64url), the page's `applicationServerKey`.
#[server(prefix = "/api/fn", endpoint = "vapid_public_key")]
pub async fn vapid_public_key() -> Result<String, ServerFnError> {
    Ok(core()?.sender.vapid().public_key_b64().to_string())
}

/// Stores (or refreshes) this browser's subscription.
#[server(prefix = "/api/fn", endpoint = "save_subscription", input = Json)]
pub async fn save_subscription(subscription: SubscriptionJson) -> Result<i64, ServerFnError> {
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let saved = crate::server::subscriptions::subscribe(&core()?, &subscription, user_agent).await.map_err(to_server_error)?;
    Ok(saved.id())
}

/// Forgets this browser's subscription. Unknown endpoints are not an error here: the goal,
/// "the server does not have it", holds either way.
#[server(prefix = "/api/fn", endpoint = "delete_subscription", input = Json)]
pub async fn delete_subscription(endpoint: String) -> Result<bool, ServerFnError> {
    use crate::server::error::CoreError;
    match crate::server::subscriptions::unsubscribe(&core()?, &endpoint).await {
        Ok(()) => Ok(true),
        Err(CoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(to_server_error(e)),
    }
}

/// Pushes a test notification to this browser's own subscription, proven by its `auth`.
#[server(prefix = "/api/fn", endpoint = "send_test_notification", input = Json)]
pub async fn send_test_notification(endpoint: String, auth: String) -> Result<TestPushResult, ServerFnError> {
    crate::server::broadcasts::send_test(&core()?, &endpoint, &auth).await.map_err(to_server_error)
}
