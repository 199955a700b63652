//! Broadcasts end to end: the server encrypts and signs, the project's push service
//! verifies the JWT, decrypts, and shows what arrived.

use crate::helpers::*;
use serde_json::{json, Value};

/// An app that trusts the push service, with `n` subscriptions minted there.
async fn app_with_subscribers(n: usize) -> (TestApp, PushService, Vec<Value>) {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let key = app.vapid_public_key().await;
    let mut subscriptions = Vec::new();
    for _ in 0..n {
        let subscription = push.mint(Some(&key)).await;
        assert_eq!(app.subscribe(&subscription).await.status(), 201);
        subscriptions.push(subscription);
    }
    (app, push, subscriptions)
}

#[tokio::test]
async fn a_broadcast_decrypts_at_the_push_service_with_a_valid_jwt() {
    let (app, push, subscriptions) = app_with_subscribers(3).await;
    let status =
        app.broadcast(&json!({ "title": "Hello", "body": "From the test", "url": "/news", "urgency": "high", "topic": "news1" })).await;
    assert_eq!(status["total"], 3);
    assert_eq!(status["delivered"], 3);
    assert_eq!(status["failed"], 0);
    assert_eq!(status["removed"], 0);
    let now = unix_now();
    for subscription in &subscriptions {
        let messages = push.messages(subscription["endpoint"].as_str().unwrap()).await;
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        let payload: Value = serde_json::from_str(message["payload"].as_str().expect("decrypted")).unwrap();
        assert_eq!(
            payload,
            json!({ "web_push": 8030, "notification": {
                "title": "Hello", "body": "From the test", "navigate": "/news", "data": { "notification_id": status["id"] }
            } }),
            "Declarative Web Push, null fields left out, the id for click reports"
        );
        assert_eq!(message["ttl"], 86_400);
        assert_eq!(message["urgency"], "high");
        assert_eq!(message["topic"], "news1");
        // aud is the push service's origin, port included.
        assert_eq!(message["claims"]["aud"], push.origin);
        assert!(push.origin.rsplit(':').next().unwrap().parse::<u16>().is_ok());
        let exp = message["claims"]["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 24 * 3600);
        assert_eq!(message["claims"]["sub"], SUBJECT);
    }
}

#[tokio::test]
async fn the_jwt_is_signed_once_per_origin_and_reused() {
    let (app, push, subscriptions) = app_with_subscribers(2).await;
    app.broadcast(&json!({ "title": "One", "body": "" })).await;
    app.broadcast(&json!({ "title": "Two", "body": "" })).await;
    let mut headers = Vec::new();
    for subscription in &subscriptions {
        for message in push.messages(subscription["endpoint"].as_str().unwrap()).await {
            headers.push(message["authorization"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(headers.len(), 4);
    assert!(headers.iter().all(|h| h == &headers[0]), "one JWT for one origin");
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_others_still_delivered() {
    let (app, push, subscriptions) = app_with_subscribers(2).await;
    let gone = subscriptions[0]["endpoint"].as_str().unwrap();
    push.expire(gone).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "B" })).await;
    assert_eq!(status["delivered"], 1);
    assert_eq!(status["removed"], 1);
    let list = app.list_json().await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["subscriptions"][0]["endpoint"], subscriptions[1]["endpoint"]);
}

#[tokio::test]
async fn other_failures_are_counted_by_reason_and_keep_the_subscription() {
    let (app, push, subscriptions) = app_with_subscribers(2).await;
    push.fault(&json!({ "endpoint": subscriptions[0]["endpoint"], "status": 413 })).await;
    push.fault(&json!({ "endpoint": subscriptions[1]["endpoint"], "status": 500 })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "B" })).await;
    assert_eq!(status["failed"], 2);
    assert_eq!(status["failures"]["payload_too_large"], 1);
    assert_eq!(status["failures"]["push_service_error"], 1);
    assert_eq!(app.list_json().await["total"], 2);
}

#[tokio::test]
async fn a_subscription_made_with_another_key_is_refused_with_403_and_kept() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let other_key = clarion_push::vapid::VapidKeyMaterial::generate();
    let subscription = push.mint(Some(&clarion::domain::base64url::encode(&other_key.public_key()))).await;
    assert_eq!(app.subscribe(&subscription).await.status(), 201);
    let status = app.broadcast(&json!({ "title": "T", "body": "B" })).await;
    assert_eq!(status["failures"]["vapid_rejected"], 1);
    assert_eq!(app.list_json().await["total"], 1);
}

#[tokio::test]
async fn a_notification_to_one_endpoint_reaches_only_it() {
    let (app, push, subscriptions) = app_with_subscribers(2).await;
    let target = subscriptions[1]["endpoint"].as_str().unwrap();
    let status = app.broadcast(&json!({ "title": "Just you", "body": "", "endpoint": target, "ttl": 60 })).await;
    assert_eq!(status["total"], 1);
    assert_eq!(status["delivered"], 1);
    assert_eq!(push.messages(target).await[0]["ttl"], 60);
    assert!(push.messages(subscriptions[0]["endpoint"].as_str().unwrap()).await.is_empty());
    let unknown = app.notify(&json!({ "title": "T", "body": "", "endpoint": "https://fcm.googleapis.com/nobody" })).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn bad_notifications_are_refused_and_sending_needs_the_token() {
    let (app, _push, _) = app_with_subscribers(0).await;
    for (body, field) in [
        (json!({ "body": "no title" }), "title"),
        (json!({ "title": "", "body": "" }), "title"),
        (json!({ "title": "T", "body": "", "ttl": 99_999_999 }), "ttl"),
        (json!({ "title": "T", "body": "", "urgency": "urgent" }), "urgency"),
        (json!({ "title": "T", "body": "", "topic": "a".repeat(33) }), "topic"),
        (json!({ "title": "T", "body": "€".repeat(2000) }), "body"),
        (json!({ "title": "T", "body": "", "url": "javascript:alert(1)" }), "url"),
    ] {
        let response = app.notify(&body).await;
        assert!(response.status().is_client_error(), "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["field"], field, "{body}");
    }
    let anonymous = app.client.post(app.url("/api/v1/notifications")).json(&json!({ "title": "T", "body": "" })).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let history: Value =
        app.client.get(app.url("/api/v1/notifications")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(history["notifications"].as_array().unwrap().len(), 0, "refused requests queue nothing");
}

#[tokio::test]
async fn the_page_test_push_needs_the_auth_secret_and_reaches_only_that_browser() {
    let (app, push, subscriptions) = app_with_subscribers(2).await;
    let mine = &subscriptions[0];
    let endpoint = mine["endpoint"].as_str().unwrap();
    let wrong = app.server_fn("send_test_notification", &json!({ "endpoint": endpoint, "auth": subscriptions[1]["keys"]["auth"] })).await;
    assert_eq!(wrong.status(), 403);
    assert!(push.messages(endpoint).await.is_empty());

    let ok = app.server_fn("send_test_notification", &json!({ "endpoint": endpoint, "auth": mine["keys"]["auth"] })).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["outcome"], "delivered");
    let messages = push.messages(endpoint).await;
    assert_eq!(messages.len(), 1);
    let payload: Value = serde_json::from_str(messages[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["notification"]["title"], "Clarion test notification");
    assert!(payload["notification"].get("data").is_none(), "a test push is no broadcast: no id to report clicks on");
    assert!(push.messages(subscriptions[1]["endpoint"].as_str().unwrap()).await.is_empty());

    push.expire(endpoint).await;
    let gone = app.server_fn("send_test_notification", &json!({ "endpoint": endpoint, "auth": mine["keys"]["auth"] })).await;
    assert_eq!(gone.json::<Value>().await.unwrap()["outcome"], "gone");
    assert_eq!(app.list_json().await["total"], 1, "the gone subscription was deleted");
}

#[tokio::test]
async fn the_page_server_functions_save_and_delete() {
    let (app, push, _) = app_with_subscribers(0).await;
    let key_response = app.server_fn("vapid_public_key", &json!({})).await;
    assert_eq!(key_response.status(), 200);
    assert_eq!(key_response.json::<String>().await.unwrap(), app.vapid_public_key().await);
    let subscription = push.mint(None).await;
    let saved = app.server_fn("save_subscription", &json!({ "subscription": subscription })).await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());
    assert_eq!(app.list_json().await["total"], 1);
    let refused =
        app.server_fn("save_subscription", &json!({ "subscription": subscription_with_endpoint("https://evil.example/x") })).await;
    assert_eq!(refused.status(), 422);
    let deleted =
        app.server_fn("delete_subscription", &json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] })).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(app.list_json().await["total"], 0);
}
