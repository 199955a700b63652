//! `/_test/...`: mint subscriptions the service can decrypt, read what they received,
//! configure faults, expire a subscription, and reset everything.

use super::receiver::{answer, Refusal};
use super::registry::{Channel, Fault, Owner, PushService, Registry};
use crate::protocol;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, Default)]
pub struct MintRequest {
    application_server_key: Option<String>,
}

#[derive(Deserialize)]
pub struct MintManyRequest {
    application_server_key: Option<String>,
    count: usize,
}

/// The most subscriptions one `/_test/subscriptions/batch` mints.
const MAX_BATCH: usize = 100_000;

fn parse_body<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, Refusal> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("body: {e}")))
}

/// `POST /_test/subscriptions {"application_server_key"?}` → 201 and a PushSubscription.
pub async fn mint(State(service): State<Arc<PushService>>, body: Bytes) -> Response {
    let request: MintRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let app_server_key = match parse_app_server_key(request.application_server_key.as_deref()) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    (StatusCode::CREATED, Json(mint_one(&service, app_server_key))).into_response()
}

/// `POST /_test/subscriptions/batch {"application_server_key"?, "count"}` → 201 and an
/// array of `count` PushSubscriptions: for tests with a large audience.
pub async fn mint_many(State(service): State<Arc<PushService>>, body: Bytes) -> Response {
    let request: MintManyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    if !(1..=MAX_BATCH).contains(&request.count) {
        return answer(StatusCode::BAD_REQUEST, format!("count must be between 1 and {MAX_BATCH}"));
    }
    let app_server_key = match parse_app_server_key(request.application_server_key.as_deref()) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let minted: Vec<serde_json::Value> = (0..request.count).map(|_| mint_one(&service, app_server_key)).collect();
    (StatusCode::CREATED, Json(minted)).into_response()
}

fn parse_app_server_key(key: Option<&str>) -> Result<Option<[u8; 65]>, Refusal> {
    match key.map(protocol::decode) {
        None => Ok(None),
        Some(Ok(bytes)) => match <[u8; 65]>::try_from(bytes.as_slice()) {
            Ok(key) if p256::PublicKey::from_sec1_bytes(&key).is_ok() => Ok(Some(key)),
            _ => Err(Refusal::new(StatusCode::BAD_REQUEST, "application_server_key must be a 65-byte P-256 point")),
        },
        Some(Err(e)) => Err(Refusal::new(StatusCode::BAD_REQUEST, format!("application_server_key: {e}"))),
    }
}

/// A new subscription the service can decrypt, as the browser's `PushSubscription` JSON.
fn mint_one(service: &PushService, app_server_key: Option<[u8; 65]>) -> serde_json::Value {
    let secret = loop {
        if let Ok(secret) = p256::SecretKey::from_slice(&service.random_bytes::<32>()) {
            break secret;
        }
    };
    let auth = service.random_bytes::<16>();
    let p256dh = protocol::encode(secret.public_key().to_encoded_point(false).as_bytes());
    let id = service.random_id();
    let endpoint = service.endpoint(&id);
    service.lock().channels.insert(id, Channel::new(Owner::Minted { secret, auth }, app_server_key));
    serde_json::json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": { "p256dh": p256dh, "auth": protocol::encode(&auth) },
    })
}

/// `GET /_test/summary` → `{"subscriptions", "messages", "by_messages": {"0": n, "1": n,
/// …}, "connections", "peak_in_flight"}`: how many minted subscriptions received how many
/// messages, in one answer, how many connections were accepted (any client's, this one's
/// included), and the most push requests that were being handled at once.
pub async fn summary(State(service): State<Arc<PushService>>) -> Response {
    let registry = service.lock();
    let mut by_messages = std::collections::BTreeMap::<usize, u64>::new();
    let mut messages = 0;
    let mut subscriptions = 0;
    for channel in registry.channels.values().filter(|c| matches!(c.owner, Owner::Minted { .. })) {
        subscriptions += 1;
        messages += channel.messages.len();
        *by_messages.entry(channel.messages.len()).or_default() += 1;
    }
    let by_messages: serde_json::Map<String, serde_json::Value> = by_messages.into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    Json(serde_json::json!({
        "subscriptions": subscriptions,
        "messages": messages,
        "by_messages": by_messages,
        "connections": registry.connections,
        "peak_in_flight": registry.peak_in_flight,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct EndpointQuery {
    endpoint: String,
}

fn channel_id(endpoint: &str) -> Result<String, Refusal> {
    PushService::id_from_endpoint(endpoint)
        .map(str::to_string)
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "endpoint is not one of this push service's"))
}

/// `GET /_test/messages?endpoint=…` → what the subscription received, oldest first.
pub async fn messages(State(service): State<Arc<PushService>>, Query(query): Query<EndpointQuery>) -> Response {
    let id = match channel_id(&query.endpoint) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    match service.lock().channels.get(&id) {
        Some(channel) => Json(channel.messages.clone()).into_response(),
        None => answer(StatusCode::NOT_FOUND, "unknown subscription"),
    }
}

/// `DELETE /_test/subscriptions?endpoint=…`: the subscription expires; pushes get 410.
pub async fn expire(State(service): State<Arc<PushService>>, Query(query): Query<EndpointQuery>) -> Response {
    let id = match channel_id(&query.endpoint) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    match service.lock().channels.get_mut(&id) {
        Some(channel) => {
            channel.gone = true;
            StatusCode::NO_CONTENT.into_response()
        }
        None => answer(StatusCode::NOT_FOUND, "unknown subscription"),
    }
}

#[derive(Deserialize)]
pub struct FaultRequest {
    endpoint: String,
    #[serde(default)]
    status: Option<u16>,
    retry_after: Option<serde_json::Value>,
    #[serde(default)]
    delay_ms: u64,
    count: Option<u32>,
    /// A `Location` header to answer with (for redirects).
    location: Option<String>,
    /// `"drop"` closes the connection instead of answering; `"delay"` only waits
    /// `delay_ms`, then handles the push as usual.
    mode: Option<String>,
}

/// `POST /_test/faults`: the next `count` pushes (default: all) to `endpoint` fail;
/// `"endpoint": "*"` applies to every endpoint without a fault of its own.
pub async fn fault(State(service): State<Arc<PushService>>, body: Bytes) -> Response {
    let request: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let drop_connection = request.mode.as_deref() == Some("drop");
    let delay_only = request.mode.as_deref() == Some("delay");
    if let Some(mode) = request.mode.as_deref().filter(|m| !matches!(*m, "drop" | "delay")) {
        return answer(StatusCode::BAD_REQUEST, format!("mode {mode:?} is not drop or delay"));
    }
    let status = match request.status {
        Some(s) if (100..=599).contains(&s) => s,
        None if drop_connection || delay_only => 0,
        _ => return answer(StatusCode::BAD_REQUEST, "status must be an HTTP status (or mode \"drop\")"),
    };
    if request.count == Some(0) {
        return answer(StatusCode::BAD_REQUEST, "count must be at least 1");
    }
    let retry_after = request.retry_after.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    let fault = Fault {
        status,
        retry_after,
        delay: Duration::from_millis(request.delay_ms),
        remaining: request.count,
        drop_connection,
        delay_only,
        location: request.location,
    };
    service.lock().faults.insert(request.endpoint, fault);
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /_test/state`: forget everything.
pub async fn reset(State(service): State<Arc<PushService>>) -> Response {
    *service.lock() = Registry::default();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_test/browsers` → `{"connected": [uaid, …]}`: browsers with a live WebSocket.
/// Firefox drops a `subscribe()` made before its `hello`, so tests wait for one here.
pub async fn browsers(State(service): State<Arc<PushService>>) -> Response {
    let registry = service.lock();
    let connected: Vec<&String> = registry
        .browsers
        .iter()
        .filter(|(_, b)| b.connection.as_ref().is_some_and(|(_, tx)| !tx.is_closed()))
        .map(|(uaid, _)| uaid)
        .collect();
    Json(serde_json::json!({ "connected": connected })).into_response()
}

/// `GET /_test/requests?endpoint=…` → `{"requests": n}`: pushes that reached the
/// subscription, refused ones included.
pub async fn requests(State(service): State<Arc<PushService>>, Query(query): Query<EndpointQuery>) -> Response {
    let id = match channel_id(&query.endpoint) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    match service.lock().channels.get(&id) {
        Some(channel) => Json(serde_json::json!({ "requests": channel.requests })).into_response(),
        None => answer(StatusCode::NOT_FOUND, "unknown subscription"),
    }
}
