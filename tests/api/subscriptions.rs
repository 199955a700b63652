//! The subscription REST contract: create (upsert), validation, delete, admin listing,
//! persistence across a restart.

use crate::helpers::*;
use serde_json::{json, Value};

const FCM: &str = "https://fcm.googleapis.com/fcm/send/abc123";

#[tokio::test]
async fn health_check_and_vapid_key_are_served() {
    let app = spawn_app("").await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let key = app.vapid_public_key().await;
    let bytes = clarion::domain::base64url::decode(&key).unwrap();
    assert_eq!(bytes.len(), 65);
    assert_eq!(bytes[0], 4);
}

#[tokio::test]
async fn subscribe_returns_201_then_200_for_the_same_endpoint() {
    let app = spawn_app("").await;
    let first = app.subscribe(&subscription_with_endpoint(FCM)).await;
    assert_eq!(first.status(), 201);
    let id = first.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let again = app.subscribe(&subscription_with_endpoint(FCM)).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"].as_i64().unwrap(), id);
    let list = app.list_json().await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["subscriptions"][0]["endpoint"], FCM);
    assert!(list["subscriptions"][0]["created_at"].is_string());
    // Key material is never listed.
    assert!(list["subscriptions"][0].get("auth").is_none());
}

#[tokio::test]
async fn bad_subscriptions_get_a_4xx_naming_the_field_and_store_nothing() {
    let app = spawn_app("").await;
    let valid = subscription_with_endpoint(FCM);
    let with = |pointer: &str, value: Value| {
        let mut v = valid.clone();
        *v.pointer_mut(pointer).unwrap() = value;
        v
    };
    let without = |object: &str, field: &str| {
        let mut v = valid.clone();
        v.pointer_mut(object).unwrap().as_object_mut().unwrap().remove(field);
        v
    };
    let off_curve = {
        let mut bytes = clarion::domain::base64url::decode(valid["keys"]["p256dh"].as_str().unwrap()).unwrap();
        bytes[64] ^= 1;
        clarion::domain::base64url::encode(&bytes)
    };
    let compressed = {
        let mut bytes = clarion::domain::base64url::decode(valid["keys"]["p256dh"].as_str().unwrap()).unwrap();
        bytes.truncate(33);
        bytes[0] = 3;
        clarion::domain::base64url::encode(&bytes)
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing endpoint", without("", "endpoint"), 400, "endpoint"),
        ("missing keys", without("", "keys"), 400, "keys"),
        ("missing auth", without("/keys", "auth"), 400, "keys.auth"),
        ("endpoint of the wrong type", with("/endpoint", json!(42)), 400, "endpoint"),
        ("plain http endpoint", with("/endpoint", json!("http://fcm.googleapis.com/x")), 422, "endpoint"),
        ("unknown push host", with("/endpoint", json!("https://evil.example/x")), 422, "endpoint"),
        ("loopback endpoint", with("/endpoint", json!("https://127.0.0.1/x")), 422, "endpoint"),
        ("metadata endpoint", with("/endpoint", json!("http://169.254.169.254/latest")), 422, "endpoint"),
        ("userinfo endpoint", with("/endpoint", json!("https://user@fcm.googleapis.com/x")), 422, "endpoint"),
        ("endpoint over 2048 bytes", with("/endpoint", json!(format!("{FCM}{}", "a".repeat(2100)))), 422, "endpoint"),
        ("p256dh off the curve", with("/keys/p256dh", json!(off_curve)), 422, "keys.p256dh"),
        ("p256dh compressed", with("/keys/p256dh", json!(compressed)), 422, "keys.p256dh"),
        ("p256dh not base64", with("/keys/p256dh", json!("!!!")), 422, "keys.p256dh"),
        ("auth of 15 bytes", with("/keys/auth", json!(clarion::domain::base64url::encode(&[1; 15]))), 422, "keys.auth"),
        ("auth of 17 bytes", with("/keys/auth", json!(clarion::domain::base64url::encode(&[1; 17]))), 422, "keys.auth"),
    ];
    for (name, body, status, field) in cases {
        let response = app.subscribe(&body).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["field"], field, "{name}: {error}");
        assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()), "{name}");
    }

    let malformed = app.subscribe_raw("application/json", "{\"endpoint\": ").await;
    assert_eq!(malformed.status(), 400);
    assert!(malformed.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("not valid JSON"));
    let wrong_type = app.subscribe_raw("text/plain", serde_json::to_vec(&valid).unwrap()).await;
    assert_eq!(wrong_type.status(), 415);
    let oversized = app.subscribe_raw("application/json", format!("{{\"endpoint\":\"{}\"}}", "a".repeat(9000))).await;
    assert_eq!(oversized.status(), 413);
    assert!(oversized.json::<Value>().await.unwrap()["error"].is_string());

    assert_eq!(app.list_json().await["total"], 0, "nothing may be stored");
}

#[tokio::test]
async fn operator_hosts_may_use_http_and_a_port() {
    let app = spawn_app("127.0.0.1:8090").await;
    let response = app.subscribe(&subscription_with_endpoint("http://127.0.0.1:8090/push/x")).await;
    assert_eq!(response.status(), 201);
    let other_port = app.subscribe(&subscription_with_endpoint("http://127.0.0.1:8091/push/x")).await;
    assert_eq!(other_port.status(), 422);
}

#[tokio::test]
async fn delete_returns_204_then_404() {
    let app = spawn_app("").await;
    assert_eq!(app.subscribe(&subscription_with_endpoint(FCM)).await.status(), 201);
    assert_eq!(app.unsubscribe(FCM).await.status(), 204);
    let again = app.unsubscribe(FCM).await;
    assert_eq!(again.status(), 404);
    assert!(again.json::<Value>().await.unwrap()["error"].is_string());
    assert_eq!(app.list_json().await["total"], 0);
}

#[tokio::test]
async fn listing_requires_the_admin_token() {
    let app = spawn_app("").await;
    for auth in [None, Some("Bearer wrong"), Some("Basic dGVzdA==")] {
        let mut request = app.client.get(app.url("/api/v1/subscriptions"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let app = spawn_app("").await;
    for i in 0..5 {
        assert_eq!(app.subscribe(&subscription_with_endpoint(&format!("{FCM}{i}"))).await.status(), 201);
    }
    let first: Value = app.list("?limit=2").await.json().await.unwrap();
    assert_eq!(first["total"], 5);
    assert_eq!(first["subscriptions"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap().to_string();
    let second: Value = app.list(&format!("?limit=2&after={next}")).await.json().await.unwrap();
    assert_eq!(second["subscriptions"][0]["endpoint"], format!("{FCM}2"));
    let last: Value = app.list(&format!("?limit=2&after={}", second["next"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(last["subscriptions"].as_array().unwrap().len(), 1);
    assert!(last["next"].is_null());
    assert_eq!(app.list("?limit=0").await.status(), 422);
    assert_eq!(app.list("?limit=abc").await.status(), 400);
}

#[tokio::test]
async fn subscriptions_and_the_vapid_key_survive_a_restart() {
    let app = spawn_app("").await;
    let key = app.vapid_public_key().await;
    assert_eq!(app.subscribe(&subscription_with_endpoint(FCM)).await.status(), 201);
    let app = app.restart().await;
    assert_eq!(app.vapid_public_key().await, key);
    let list = app.list_json().await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["subscriptions"][0]["endpoint"], FCM);
}

#[tokio::test]
async fn a_configured_raw_vapid_key_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let material = clarion_push::vapid::VapidKeyMaterial::generate();
    let app = start_app(dir.path().join("data"), "", Some(material.private_raw_base64url())).await;
    assert_eq!(app.vapid_public_key().await, clarion::domain::base64url::encode(&material.public_key()));
    assert!(!dir.path().join("data/vapid_private.pem").exists());
}

#[tokio::test]
async fn the_service_worker_and_the_page_are_served() {
    let app = spawn_app("").await;
    let sw = app.client.get(app.url("/sw.js")).send().await.unwrap();
    assert_eq!(sw.status(), 200);
    assert!(sw.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(sw.headers()["cache-control"], "no-cache");
    assert!(sw.text().await.unwrap().contains("addEventListener('push'"));
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("Enable notifications"), "the server-rendered page names its button");
    assert!(html.contains("data-state=\"checking\""));
    // A binary built without LEPTOS_OUTPUT_NAME would ask for clarion_bg.wasm and never
    // hydrate (tests/api/site.rs checks which bundle each page loads).
    assert!(!html.contains("clarion_bg.wasm"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_subscribes_all_succeed() {
    // Regression: deferred SQLite transactions that read then write failed with
    // "database is locked" (a 500) under concurrency; writes now take the lock up front.
    let app = std::sync::Arc::new(spawn_app("").await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move { app.subscribe(&subscription_with_endpoint(&format!("{FCM}/c{i}"))).await.status().as_u16() }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    assert_eq!(app.list_json().await["total"], 64);
}
