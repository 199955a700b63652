//! Server functions the page calls. Each is a thin wrapper over a core operation in
//! `server::subscriptions` or `server::broadcasts`; the endpoints are fixed
//! (`/api/fn/<name>`) so tests and proxies can rely on them.

use crate::domain::{SavedSubscription, SubscriptionJson, TestPushResult, Topic};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
pub(crate) fn state() -> Result<crate::server::state::AppState, ServerFnError> {
    use_context::<crate::server::state::AppState>().ok_or_else(|| ServerFnError::new("server state is missing"))
}

/// The caller's address, found by the same extractor the REST API uses.
#[cfg(feature = "ssr")]
pub(crate) async fn client_ip(state: &crate::server::state::AppState) -> Result<std::net::IpAddr, ServerFnError> {
    let crate::server::http::security::ClientIp(ip) = leptos_axum::extract_with_state(state).await?;
    Ok(ip)
}

/// Answers with the same status (and `Retry-After`) as the REST API would.
#[cfg(feature = "ssr")]
pub(crate) fn to_server_error(e: impl Into<crate::server::http::rest::error::ApiError>) -> ServerFnError {
    use crate::server::http::rest::error::ApiError;
    use clarion_core::CoreError;
    let e: ApiError = e.into();
    if let ApiError::Core(CoreError::Internal(cause)) = &e {
        tracing::error!(error = ?cause, "internal error in a server function");
    }
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(e.status());
        if let Some(seconds) = e.retry_after_seconds() {
            options.insert_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
    }
    let message = match &e {
        ApiError::Core(core) => core.public_message(),
        other => other.to_string(),
    };
    ServerFnError::new(message)
}

/// The VAPID public key (base64url), the page's `applicationServerKey`.
#[server(prefix = "/api/fn", endpoint = "vapid_public_key")]
pub async fn vapid_public_key() -> Result<String, ServerFnError> {
    Ok(state()?.core.sender.vapid().public_key_b64().to_string())
}

/// Stores (or refreshes, marking it seen) this browser's subscription, with the topics
/// chosen (none given: a new subscription gets the default topics, a known one keeps its
/// own) and the identity token the page was given.
#[server(prefix = "/api/fn", endpoint = "save_subscription", input = Json)]
pub async fn save_subscription(
    subscription: SubscriptionJson,
    topics: Option<Vec<String>>,
    user_token: Option<String>,
) -> Result<SavedSubscription, ServerFnError> {
    let state = state()?;
    let ip = client_ip(&state).await?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    use crate::domain::SubscribeRequest;
    let request = SubscribeRequest { topics, user_token, ..SubscribeRequest::from_subscription(subscription) };
    let stored =
        clarion_core::admission::subscribe_from(&state.core, &state.admission, ip, &request, user_agent).await.map_err(to_server_error)?;
    Ok(SavedSubscription { id: stored.subscribed.id(), topics: stored.topics })
}

/// The topics this site offers, for the page's checkboxes.
#[server(prefix = "/api/fn", endpoint = "topics", input = leptos::server_fn::codec::GetUrl)]
pub async fn topics() -> Result<Vec<Topic>, ServerFnError> {
    clarion_core::audience::list_topics(&state()?.core).await.map_err(to_server_error)
}

/// Replaces this browser's topics; it proves the subscription is its own with `auth`.
#[server(prefix = "/api/fn", endpoint = "save_topics", input = Json)]
pub async fn save_topics(endpoint: String, auth: String, topics: Vec<String>) -> Result<Vec<String>, ServerFnError> {
    let state = state()?;
    let owned = clarion_core::ownership::prove_ownership(&state.core, &endpoint, &auth).await.map_err(to_server_error)?;
    clarion_core::audience::set_topics(&state.core, &owned, &topics).await.map_err(to_server_error)
}

/// Forgets this browser's subscription. Unknown endpoints are not an error here: the goal,
/// "the server does not have it", holds either way.
#[server(prefix = "/api/fn", endpoint = "delete_subscription", input = Json)]
pub async fn delete_subscription(endpoint: String) -> Result<bool, ServerFnError> {
    use clarion_core::CoreError;
    match clarion_core::subscriptions::unsubscribe(&state()?.core, &endpoint).await {
        Ok(()) => Ok(true),
        Err(CoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(to_server_error(e)),
    }
}

/// Pushes a test notification to this browser's own subscription, proven by its `auth`.
#[server(prefix = "/api/fn", endpoint = "send_test_notification", input = Json)]
pub async fn send_test_notification(endpoint: String, auth: String) -> Result<TestPushResult, ServerFnError> {
    let state = state()?;
    let ip = client_ip(&state).await?;
    clarion_core::admission::test_push_from(&state.core, &state.admission, ip, &endpoint, &auth).await.map_err(to_server_error)
}

#[cfg(any(feature = "ssr", feature = "console"))]
pub mod admin;
