//! Server functions the page calls. Each is a thin wrapper over a core operation in
//! `clarion_core` (`admission`, `subscriptions`, `audience`, `ownership`); the endpoints
//! are fixed (`/api/fn/<name>`) so tests and proxies can rely on them. A failure is an
//! [`ApiFailure`], the REST API's error body.

use crate::domain::{SavedSubscription, SubscriptionJson, TestPushResult, Topic};
use leptos::prelude::*;
use leptos::server_fn::codec::{Json, JsonEncoding};
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What a server function answers when it fails: the REST API's error body,
/// `{"error": "...", "field": "..."}` (`field` only when one input is at fault), with the
/// REST API's status. The middleware in front of the server functions (rate limits, body
/// and header limits) answers with the same body, so a caller reads `error` and `field`
/// whichever layer refused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiFailure {
    /// What went wrong, in words fit to show.
    pub error: String,
    /// The input at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl FromServerFnError for ApiFailure {
    type Encoder = JsonEncoding;

    /// A failure of the call itself (the network, an undecodable answer), not of the
    /// operation.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ApiFailure { error: value.to_string(), field: None }
    }
}

impl From<ServerFnErrorErr> for ApiFailure {
    fn from(value: ServerFnErrorErr) -> Self {
        Self::from_server_fn_error(value)
    }
}

#[cfg(feature = "ssr")]
pub(crate) fn state() -> Result<crate::server::state::AppState, ApiFailure> {
    use_context::<crate::server::state::AppState>()
        .ok_or_else(|| to_server_error(clarion_core::CoreError::Internal(anyhow::anyhow!("server state is missing"))))
}

/// The caller's address, found by the same extractor the REST API uses.
#[cfg(feature = "ssr")]
pub(crate) async fn client_ip(state: &crate::server::state::AppState) -> Result<std::net::IpAddr, ApiFailure> {
    let crate::server::http::security::ClientIp(ip) = leptos_axum::extract_with_state(state).await?;
    Ok(ip)
}

/// Answers with the same status (and `Retry-After`) and body as the REST API would.
#[cfg(feature = "ssr")]
pub(crate) fn to_server_error(e: impl Into<crate::server::http::rest::error::ApiError>) -> ApiFailure {
    let e: crate::server::http::rest::error::ApiError = e.into();
    e.log_if_internal();
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(e.status());
        if let Some(seconds) = e.retry_after_seconds() {
            options.insert_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
    }
    ApiFailure { error: e.public_message(), field: e.field().map(str::to_string) }
}

/// The site Clarion's own page serves: `default` (other sites embed the SDK, which calls
/// the REST API under `/api/v1/sites/{site}/…`).
#[cfg(feature = "ssr")]
fn own_site(state: &crate::server::state::AppState) -> Result<std::sync::Arc<clarion_core::sites::Site>, ApiFailure> {
    state.core.sites.get(clarion_core::sites::DEFAULT_SITE).map_err(to_server_error)
}

/// The VAPID public key (base64url), the page's `applicationServerKey`.
#[server(prefix = "/api/fn", endpoint = "vapid_public_key")]
pub async fn vapid_public_key() -> Result<String, ApiFailure> {
    clarion_core::keyring::current_public_key(&state()?.core, clarion_core::sites::DEFAULT_SITE).map_err(to_server_error)
}

/// Stores (or refreshes, marking it seen) this browser's subscription, with the topics
/// chosen (none given: a new subscription gets the default topics, a known one keeps its
/// own) and the identity token the page was given.
#[server(prefix = "/api/fn", endpoint = "save_subscription", input = Json)]
pub async fn save_subscription(
    subscription: SubscriptionJson,
    topics: Option<Vec<String>>,
    user_token: Option<String>,
) -> Result<SavedSubscription, ApiFailure> {
    let state = state()?;
    let ip = client_ip(&state).await?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    use crate::domain::SubscribeRequest;
    let request = SubscribeRequest { topics, user_token, ..SubscribeRequest::from_subscription(subscription) };
    let stored = clarion_core::admission::subscribe_from(&state.core, &*own_site(&state)?, &state.admission, ip, &request, user_agent)
        .await
        .map_err(to_server_error)?;
    Ok(SavedSubscription { id: stored.subscribed.id(), topics: stored.topics })
}

/// The topics this site offers, for the page's checkboxes.
#[server(prefix = "/api/fn", endpoint = "topics", input = leptos::server_fn::codec::GetUrl)]
pub async fn topics() -> Result<Vec<Topic>, ApiFailure> {
    let state = state()?;
    clarion_core::audience::list_topics(&state.core, &*own_site(&state)?).await.map_err(to_server_error)
}

/// Replaces this browser's topics; it proves the subscription is its own with `auth`.
#[server(prefix = "/api/fn", endpoint = "save_topics", input = Json)]
pub async fn save_topics(endpoint: String, auth: String, topics: Vec<String>) -> Result<Vec<String>, ApiFailure> {
    let state = state()?;
    let site = own_site(&state)?;
    let owned = clarion_core::ownership::prove_ownership(&state.core, &site, &endpoint, &auth).await.map_err(to_server_error)?;
    clarion_core::audience::set_topics(&state.core, &site, &owned, &topics).await.map_err(to_server_error)
}

/// Forgets this browser's subscription; it proves the subscription is its own with `auth`.
/// Unknown endpoints are not an error here: the goal, "the server does not have it",
/// holds either way.
#[server(prefix = "/api/fn", endpoint = "delete_subscription", input = Json)]
pub async fn delete_subscription(endpoint: String, auth: String) -> Result<bool, ApiFailure> {
    use clarion_core::subscriptions::Deleter;
    use clarion_core::CoreError;
    let state = state()?;
    match clarion_core::subscriptions::unsubscribe(&state.core, &*own_site(&state)?, &endpoint, Deleter::Owner { auth: &auth }).await {
        Ok(()) => Ok(true),
        Err(CoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(to_server_error(e)),
    }
}

/// Replaces this browser's old subscription (proven by its `auth`) with its new one, made
/// under a rotated VAPID key: the new one takes over the old one's topics and user.
/// `None`: the old one is not stored (the page then saves the new one).
#[server(prefix = "/api/fn", endpoint = "renew_subscription", input = Json)]
pub async fn renew_subscription(
    old_endpoint: String,
    old_auth: String,
    subscription: SubscriptionJson,
) -> Result<Option<Vec<String>>, ApiFailure> {
    use clarion_core::CoreError;
    let state = state()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
    match clarion_core::subscriptions::renew(&state.core, &*own_site(&state)?, &old_endpoint, &old_auth, &subscription, user_agent).await {
        Ok(stored) => Ok(Some(stored.topics)),
        Err(CoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(to_server_error(e)),
    }
}

/// Unbinds this browser's subscription from its signed-in user; proven by its `auth`.
#[server(prefix = "/api/fn", endpoint = "sign_out", input = Json)]
pub async fn sign_out(endpoint: String, auth: String) -> Result<(), ApiFailure> {
    let state = state()?;
    clarion_core::subscriptions::sign_out(&state.core, &*own_site(&state)?, &endpoint, &auth).await.map_err(to_server_error)
}

/// Pushes a test notification to this browser's own subscription, proven by its `auth`.
#[server(prefix = "/api/fn", endpoint = "send_test_notification", input = Json)]
pub async fn send_test_notification(endpoint: String, auth: String) -> Result<TestPushResult, ApiFailure> {
    let state = state()?;
    let ip = client_ip(&state).await?;
    clarion_core::admission::test_push_from(&state.core, &*own_site(&state)?, &state.admission, ip, &endpoint, &auth)
        .await
        .map_err(to_server_error)
}

#[cfg(any(feature = "ssr", feature = "console"))]
pub mod admin;
