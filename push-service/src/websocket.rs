//! Mozilla's WebSocket push protocol (what Firefox's `dom.push.serverURL` speaks):
//! `hello`, `register`, `unregister`, `ack`, `ping` and `broadcast_subscribe`, and
//! `notification` frames to the browser. Undelivered pushes wait for the next `hello`.

use super::registry::{notification_frame, Channel, Owner, PushService};
use crate::protocol;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

pub async fn upgrade(
    State(service): State<Arc<PushService>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(ws) => ws.protocols(["push-notification"]).on_upgrade(move |socket| session(service, socket)).into_response(),
        Err(_) => {
            "clarion push service: POST /push/{id} for RFC 8030, or connect a WebSocket here (Mozilla push protocol)\n".into_response()
        }
    }
}

async fn session(service: Arc<PushService>, socket: WebSocket) {
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let mut uaid: Option<String> = None;
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => match serde_json::from_str::<Value>(&text) {
                Ok(frame) => handle(&service, &frame, &tx, &mut uaid, connection),
                Err(e) => tracing::warn!(target: "push_service", error = %e, "ignored a frame that is not JSON"),
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    if let Some(uaid) = &uaid {
        let mut registry = service.lock();
        if let Some(browser) = registry.browsers.get_mut(uaid) {
            if browser.connection.as_ref().is_some_and(|(id, _)| *id == connection) {
                browser.connection = None;
            }
        }
    }
    tracing::info!(target: "push_service", connection, uaid = uaid.as_deref().unwrap_or(""), "websocket closed");
    writer.abort();
}

fn handle(service: &PushService, frame: &Value, tx: &mpsc::UnboundedSender<String>, uaid: &mut Option<String>, connection: u64) {
    let message_type = frame.get("messageType").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let str_field = |name: &str| frame.get(name).and_then(Value::as_str).map(str::to_string);
    let reply = |value: Value| {
        let _ = tx.send(value.to_string());
    };
    match message_type.as_deref() {
        None if frame.as_object().is_some_and(|o| o.is_empty()) => reply(json!({})),
        Some("hello") => {
            let id = str_field("uaid")
                .filter(|u| !u.is_empty() && u.len() <= 64)
                .unwrap_or_else(|| service.random_id().replace(['-', '_'], "0"));
            let mut registry = service.lock();
            let browser = registry.browsers.entry(id.clone()).or_default();
            browser.connection = Some((connection, tx.clone()));
            browser.pending.retain(|p| p.expires_at > Instant::now());
            let queued: Vec<String> = browser.pending.iter().map(notification_frame).collect();
            drop(registry);
            reply(json!({ "messageType": "hello", "status": 200, "uaid": id, "use_webpush": true, "broadcasts": {} }));
            tracing::info!(target: "push_service", uaid = %id, queued = queued.len(), "hello");
            for frame in queued {
                let _ = tx.send(frame);
            }
            *uaid = Some(id);
        }
        Some("register") => {
            let (Some(browser), Some(channel_id)) = (uaid.clone(), str_field("channelID")) else {
                return reply(json!({ "messageType": "register", "status": 401, "error": "hello first, and name a channelID" }));
            };
            let app_server_key = match str_field("key").map(|k| protocol::decode(&k)) {
                None => None,
                Some(Ok(bytes)) => match <[u8; 65]>::try_from(bytes.as_slice()) {
                    Ok(key) => Some(key),
                    Err(_) => {
                        return reply(
                            json!({ "messageType": "register", "channelID": channel_id, "status": 400, "error": "key must be 65 bytes" }),
                        )
                    }
                },
                Some(Err(_)) => {
                    return reply(
                        json!({ "messageType": "register", "channelID": channel_id, "status": 400, "error": "key is not base64url" }),
                    )
                }
            };
            let id = service.random_id();
            let endpoint = service.endpoint(&id);
            service
                .lock()
                .channels
                .insert(id, Channel::new(Owner::Browser { uaid: browser.clone(), channel_id: channel_id.clone() }, app_server_key));
            tracing::info!(target: "push_service", uaid = %browser, channel = %channel_id, %endpoint, "register");
            reply(json!({ "messageType": "register", "status": 200, "channelID": channel_id, "uaid": browser, "pushEndpoint": endpoint }));
        }
        Some("unregister") => {
            let channel_id = str_field("channelID").unwrap_or_default();
            let mut registry = service.lock();
            for channel in registry.channels.values_mut() {
                if let Owner::Browser { uaid: owner, channel_id: ch } = &channel.owner {
                    if Some(owner) == uaid.as_ref() && *ch == channel_id {
                        channel.gone = true;
                    }
                }
            }
            drop(registry);
            tracing::info!(target: "push_service", channel = %channel_id, "unregister");
            reply(json!({ "messageType": "unregister", "status": 200, "channelID": channel_id }));
        }
        Some("ack") => {
            let versions: Vec<String> = frame
                .get("updates")
                .and_then(Value::as_array)
                .map(|updates| updates.iter().filter_map(|u| u.get("version").and_then(Value::as_str).map(str::to_string)).collect())
                .unwrap_or_default();
            if let Some(id) = uaid.as_ref() {
                if let Some(browser) = service.lock().browsers.get_mut(id) {
                    browser.pending.retain(|p| !versions.contains(&p.version));
                }
            }
            tracing::info!(target: "push_service", acked = versions.len(), "ack");
        }
        Some("ping") => reply(json!({ "messageType": "ping" })),
        Some("broadcast_subscribe") | Some("nack") => {}
        other => tracing::warn!(target: "push_service", message_type = ?other, "ignored an unknown frame"),
    }
}
