//! `POST /push/{id}`: the RFC 8030 receiver. Checks run in a fixed order, each refusal
//! with a JSON reason; a push that passes is `201 Created` with a `Location`.

use super::crypto::{decrypt, verify_vapid};
use super::registry::{InFlight, Owner, Pending, PushService, ReceivedMessage};
use super::Reason;
use crate::protocol::{self, MAX_BODY_BYTES, MAX_TOPIC_CHARS, URGENCIES};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest body a push service accepts.
pub const MAX_BODY: usize = MAX_BODY_BYTES;
/// Longest TTL accepted: 30 days.
pub const MAX_TTL: u64 = 30 * 24 * 3600;

/// A JSON answer carrying its reason for the log.
pub(crate) fn answer(status: StatusCode, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    let mut response = (status, Json(serde_json::json!({ "error": reason }))).into_response();
    response.extensions_mut().insert(Reason(reason));
    response
}

/// A refusal: status and reason, turned into a response only at the handler's edge.
pub(crate) struct Refusal(StatusCode, String);

impl Refusal {
    pub(crate) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self(status, reason.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        answer(self.0, self.1)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// The header checks shared by the strict receiver and the sink.
fn check_headers(headers: &HeaderMap, body_len: usize) -> Result<(u64, Option<String>, Option<String>), Refusal> {
    let ttl = match header_str(headers, "ttl") {
        None => return Err(Refusal::new(StatusCode::BAD_REQUEST, "missing TTL header")),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ttl) if ttl <= MAX_TTL => ttl,
            Ok(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "TTL is over 30 days")),
            Err(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "TTL is not a number")),
        },
    };
    match header_str(headers, "content-encoding") {
        Some(enc) if enc.trim().eq_ignore_ascii_case("aes128gcm") => {}
        Some(other) => return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("Content-Encoding {other:?} is not aes128gcm"))),
        None if body_len == 0 => {}
        None => return Err(Refusal::new(StatusCode::BAD_REQUEST, "missing Content-Encoding: aes128gcm")),
    }
    if body_len > MAX_BODY {
        return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body is {body_len} bytes; the limit is {MAX_BODY}")));
    }
    let topic = header_str(headers, "topic").map(str::to_string);
    if let Some(t) = &topic {
        if t.len() > MAX_TOPIC_CHARS || !protocol::is_strict_base64url(t) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "Topic must be 1 to 32 base64url characters"));
        }
    }
    let urgency = header_str(headers, "urgency").map(str::to_string);
    if let Some(u) = &urgency {
        if !URGENCIES.contains(&u.as_str()) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("Urgency {u:?} is not very-low, low, normal or high")));
        }
    }
    Ok((ttl, urgency, topic))
}

pub async fn push(State(service): State<Arc<PushService>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if service.sink {
        return match check_headers(&headers, body.len()) {
            Err(refusal) => refusal.into_response(),
            Ok(_) if headers.get(header::AUTHORIZATION).is_none() => answer(StatusCode::UNAUTHORIZED, "missing Authorization"),
            Ok(_) => created(&service),
        };
    }

    let _in_flight = InFlight::enter(&service);
    // 1. The subscription.
    {
        let mut registry = service.lock();
        match registry.channels.get_mut(&id) {
            None => return answer(StatusCode::NOT_FOUND, "unknown subscription"),
            Some(channel) => {
                channel.requests += 1;
                if channel.gone {
                    return answer(StatusCode::GONE, "subscription expired or unsubscribed");
                }
            }
        }
    }
    // 2-6. Headers and size.
    let (ttl, urgency, topic) = match check_headers(&headers, body.len()) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    // 7. VAPID.
    let Some(authorization) = header_str(&headers, "authorization") else {
        return answer(StatusCode::UNAUTHORIZED, "missing Authorization: vapid t=…, k=…");
    };
    let vapid = match verify_vapid(authorization, &service.origin, unix_now()) {
        Ok(v) => v,
        Err(reason) => return answer(StatusCode::UNAUTHORIZED, reason),
    };
    // 8. Key binding, then any configured fault.
    let fault = {
        let mut registry = service.lock();
        let Some(channel) = registry.channels.get(&id) else { return answer(StatusCode::GONE, "subscription went away") };
        if channel.app_server_key.is_some_and(|k| k != vapid.public_key) {
            return answer(StatusCode::FORBIDDEN, "VAPID key k does not match the applicationServerKey of this subscription");
        }
        // A fault for this endpoint, else one for every endpoint (`*`).
        let own = service.endpoint(&id);
        let endpoint = if registry.faults.contains_key(&own) { own } else { "*".to_string() };
        match registry.faults.get_mut(&endpoint) {
            Some(fault) => {
                let applied = fault.clone();
                if let Some(n) = fault.remaining.as_mut() {
                    *n -= 1;
                    if *n == 0 {
                        registry.faults.remove(&endpoint);
                    }
                }
                Some(applied)
            }
            None => None,
        }
    };
    if let Some(fault) = fault {
        tokio::time::sleep(fault.delay).await;
        if fault.drop_connection {
            // Unwinding out of the handler makes hyper drop the connection mid-request,
            // which is what a crashed push service looks like to the sender.
            std::panic::resume_unwind(Box::new("fault: drop connection"));
        }
        if !fault.delay_only {
            let mut response = answer(StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "configured fault");
            if let Some(retry_after) = fault.retry_after.and_then(|r| HeaderValue::from_str(&r).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, retry_after);
            }
            if let Some(location) = fault.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return response;
        }
    }
    // 9. Delivery.
    let received_at = protocol::now_rfc3339();
    let mut registry = service.lock();
    let Some(channel) = registry.channels.get_mut(&id) else { return answer(StatusCode::GONE, "subscription went away") };
    match &channel.owner {
        Owner::Minted { secret, auth } => {
            let (payload, decrypt_error) = if body.is_empty() {
                (Some(String::new()), None)
            } else {
                match decrypt(secret, auth, &body) {
                    Ok(plain) => match String::from_utf8(plain) {
                        Ok(text) => (Some(text), None),
                        Err(_) => (None, Some("payload is not UTF-8".to_string())),
                    },
                    Err(e) => (None, Some(e)),
                }
            };
            channel.messages.push(ReceivedMessage {
                payload,
                decrypt_error,
                ttl,
                urgency,
                topic,
                claims: Some(vapid.claims),
                authorization: authorization.to_string(),
                received_at,
            });
        }
        Owner::Browser { uaid, channel_id } => {
            let (uaid, channel_id) = (uaid.clone(), channel_id.clone());
            channel.messages.push(ReceivedMessage {
                payload: None,
                decrypt_error: None,
                ttl,
                urgency,
                topic: topic.clone(),
                claims: Some(vapid.claims),
                authorization: authorization.to_string(),
                received_at,
            });
            let pending = Pending {
                channel_id,
                version: service.random_id(),
                data: protocol::encode(&body),
                topic,
                expires_at: Instant::now() + Duration::from_secs(ttl),
            };
            registry.deliver_to_browser(&uaid, pending, ttl);
        }
    }
    drop(registry);
    created(&service)
}

fn created(service: &PushService) -> Response {
    let location = format!("{}/m/{}", service.origin, service.random_id());
    let mut response = answer(StatusCode::CREATED, "accepted");
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("ascii location"));
    response
}
