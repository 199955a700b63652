//! The admin console's server side: sign-in sessions, the admin server functions, the
//! payload shapes, and click reports, against the real server and push service.

use crate::helpers::*;
use clarion::domain::PayloadFormat;
use serde_json::{json, Value};

/// A browser's cookie jar for one site: the session cookie, once set.
#[derive(Default)]
struct Browser {
    cookie: std::sync::Mutex<Option<String>>,
    client: reqwest::Client,
}

impl Browser {
    fn with_cookie(cookie: &str) -> Self {
        Browser { cookie: std::sync::Mutex::new(Some(cookie.to_string())), ..Default::default() }
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    /// Sends with the stored cookie and keeps (or clears) what `Set-Cookie` says.
    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = match self.cookie() {
            Some(cookie) => request.header("Cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_string();
            *self.cookie.lock().unwrap() = (!pair.ends_with('=')).then_some(pair);
        }
        response
    }

    /// Reads (session, history, subscribers) are GETs with the arguments in the query;
    /// everything else is a JSON POST, as the console sends them.
    async fn call(&self, app: &TestApp, name: &str, body: &Value) -> reqwest::Response {
        let url = app.url(&format!("/api/fn/{name}"));
        if matches!(name, "admin_session" | "admin_history" | "admin_subscribers" | "admin_audit") {
            let query: Vec<(String, String)> = body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect();
            return self.send(self.client.get(url).query(&query)).await;
        }
        self.send(self.client.post(url).json(body)).await
    }

    async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.send(self.client.get(app.url(path))).await
    }
}

fn browser() -> Browser {
    Browser::default()
}

async fn call(browser: &Browser, app: &TestApp, name: &str, body: &Value) -> reqwest::Response {
    browser.call(app, name, body).await
}

async fn signed_in(app: &TestApp) -> Browser {
    let browser = browser();
    let response = call(&browser, app, "admin_sign_in", &json!({ "token": ADMIN_TOKEN })).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(browser.cookie().is_some());
    browser
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_a_wrong_token_is_refused() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let client = browser();

    let wrong = call(&client, &app, "admin_sign_in", &json!({ "token": "not-the-token" })).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let session = call(&client, &app, "admin_session", &json!({})).await;
    assert_eq!(session.json::<Value>().await.unwrap(), Value::Null, "not signed in");
    assert_eq!(call(&client, &app, "admin_history", &json!({ "limit": 10 })).await.status(), 401);

    let ok = call(&client, &app, "admin_sign_in", &json!({ "token": ADMIN_TOKEN })).await;
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("clarion_admin="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP without a trusted TLS proxy");
    let settings: Value = call(&client, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!(settings["payload_format"], "declarative");
    assert_eq!(settings["subscriptions"], 0);

    // The session also opens the admin REST routes (the console's event stream uses them).
    let listed = client.get(&app, "/api/v1/subscriptions").await;
    assert_eq!(listed.status(), 200);
    let kept = client.cookie().unwrap();

    let out = call(&client, &app, "admin_sign_out", &json!({})).await;
    assert_eq!(out.status(), 200);
    assert!(out.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(call(&client, &app, "admin_history", &json!({ "limit": 10 })).await.status(), 401);
    assert_eq!(client.get(&app, "/api/v1/subscriptions").await.status(), 401);
    // The old cookie, replayed after sign-out, opens nothing either.
    assert_eq!(Browser::with_cookie(&kept).get(&app, "/api/v1/subscriptions").await.status(), 401);
}

#[tokio::test]
async fn a_session_survives_a_restart_and_a_forged_cookie_opens_nothing() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let cookie = signed_in(&app).await.cookie().unwrap();
    let app = app.restart().await;
    let history = Browser::with_cookie(&cookie).call(&app, "admin_history", &json!({ "limit": 5 })).await;
    assert_eq!(history.status(), 200, "sessions are stored, so a restart keeps the admin signed in");
    let forged = Browser::with_cookie("clarion_admin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(forged.call(&app, "admin_history", &json!({ "limit": 5 })).await.status(), 401);
    assert_eq!(forged.get(&app, "/api/v1/notifications").await.status(), 401);
}

#[tokio::test]
async fn the_console_sends_rich_notifications_and_sees_history_and_subscribers() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let key = app.vapid_public_key().await;
    let mut endpoints = Vec::new();
    for _ in 0..2 {
        let subscription = push.mint(Some(&key)).await;
        assert_eq!(app.subscribe(&subscription).await.status(), 201);
        endpoints.push(subscription["endpoint"].as_str().unwrap().to_string());
    }
    let client = signed_in(&app).await;
    let request = json!({
        "title": "Sale", "body": "Everything must go", "url": "/sale", "icon": "/icon-192.png", "image": "/hero.png",
        "tag": "sale", "renotify": true, "require_interaction": true, "app_badge": 2,
        "actions": [{ "title": "Shop", "url": "/shop" }, { "title": "Later", "url": "/later" }],
        "ttl": 600, "urgency": "high", "topic": "sale"
    });
    let queued: Value = call(&client, &app, "admin_send", &json!({ "request": request })).await.json().await.unwrap();
    let id = queued["id"].as_i64().unwrap();
    let status = app.wait_done(id).await;
    assert_eq!((status["total"].as_i64(), status["delivered"].as_i64()), (Some(2), Some(2)));

    for endpoint in &endpoints {
        let messages = push.messages(endpoint).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["urgency"], "high");
        let payload: Value = serde_json::from_str(messages[0]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["app_badge"], 2);
        let n = &payload["notification"];
        assert_eq!(
            (n["title"].as_str(), n["navigate"].as_str(), n["requireInteraction"].as_bool()),
            (Some("Sale"), Some("/sale"), Some(true))
        );
        assert_eq!(n["actions"][1], json!({ "action": "action-1", "title": "Later", "navigate": "/later" }));
        assert_eq!(n["data"]["notification_id"], id);
    }

    // To one subscriber only.
    let one = json!({ "request": { "title": "Just you", "body": "", "endpoint": endpoints[1] } });
    let queued: Value = call(&client, &app, "admin_send", &one).await.json().await.unwrap();
    let one_id = queued["id"].as_i64().unwrap();
    assert_eq!(app.wait_done(one_id).await["delivered"], 1);
    assert_eq!(push.messages(&endpoints[0]).await.len(), 1);
    assert_eq!(push.messages(&endpoints[1]).await.len(), 2);

    // Bad input is a 4xx naming the problem, and queues nothing.
    let bad =
        call(&client, &app, "admin_send", &json!({ "request": { "title": "x", "body": "", "actions": [{ "title": "", "url": "/" }] } }))
            .await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("actions"));

    let history: Vec<Value> = call(&client, &app, "admin_history", &json!({ "limit": 10 })).await.json().await.unwrap();
    assert_eq!(history.len(), 2, "the refused one is not recorded");
    assert_eq!(history[0]["id"], one_id, "newest first");
    assert_eq!(history[0]["targeted"], true);
    assert_eq!(history[1]["targeted"], false);
    let payload: Value = serde_json::from_str(history[1]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["notification"]["title"], "Sale");
    assert_eq!(history[1]["ttl"], 600);

    let page: Value = call(&client, &app, "admin_subscribers", &json!({ "limit": 1 })).await.json().await.unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(page["subscriptions"].as_array().unwrap().len(), 1);
    assert!(page["subscriptions"][0].get("auth").is_none() && page["subscriptions"][0].get("p256dh").is_none());
    let next = page["next"].as_str().unwrap();
    let page2: Value = call(&client, &app, "admin_subscribers", &json!({ "limit": 1, "after": next })).await.json().await.unwrap();
    assert_eq!(page2["subscriptions"][0]["endpoint"], endpoints[1]);
    assert_eq!(page2["next"], Value::Null);

    let deleted = call(&client, &app, "admin_delete_subscriber", &json!({ "endpoint": endpoints[0] })).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(app.list_json().await["total"], 1);
    // Without a session the same call changes nothing.
    let anonymous = call(&browser(), &app, "admin_delete_subscriber", &json!({ "endpoint": endpoints[1] })).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.list_json().await["total"], 1);
}

#[tokio::test]
async fn a_click_counts_once_per_proven_subscription_and_only_on_a_sent_broadcast() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let subscription = push.mint(Some(&app.vapid_public_key().await)).await;
    app.subscribe(&subscription).await;
    let status = app.broadcast(&json!({ "title": "Click me", "body": "" })).await;
    let id = status["id"].as_i64().unwrap();
    assert_eq!(status["clicks"], 0);
    let client = reqwest::Client::new();
    let report = |id: i64, body: Value| client.post(app.url(&format!("/api/v1/notifications/{id}/clicks"))).json(&body).send();
    let proof = json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] });
    for _ in 0..3 {
        assert_eq!(report(id, proof.clone()).await.unwrap().status(), 204);
    }
    assert_eq!(app.notification(id).await["clicks"], 1, "one subscription, one click");
    // No proof, a wrong proof, an unknown subscription: nothing counts.
    let bare = client.post(app.url(&format!("/api/v1/notifications/{id}/clicks"))).send().await.unwrap();
    assert_eq!(bare.status(), 415, "a report is JSON");
    assert!(bare.json::<Value>().await.unwrap()["error"].is_string());
    let missing = report(id, json!({ "endpoint": subscription["endpoint"], "auth": "" })).await.unwrap();
    assert_eq!(missing.status(), 422);
    assert_eq!(missing.json::<Value>().await.unwrap()["field"], "auth");
    assert_eq!(report(id, json!({ "endpoint": subscription["endpoint"], "auth": "ZmFrZWF1dGhmYWtlYXV0aA" })).await.unwrap().status(), 403);
    assert_eq!(
        report(id, json!({ "endpoint": format!("{}x", subscription["endpoint"].as_str().unwrap()), "auth": "ZmFrZWF1dGhmYWtlYXV0aA" }))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(app.notification(id).await["clicks"], 1);
    let unknown = report(999, proof.clone()).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("999"));
    let bad = client.post(app.url("/api/v1/notifications/abc/clicks")).json(&proof).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    // A send that never went out (scheduled, or cancelled before its time) counts none.
    let send_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled: Value = app.notify(&json!({ "title": "later", "send_at": send_at })).await.json().await.unwrap();
    let scheduled = scheduled["id"].as_i64().unwrap();
    assert_eq!(report(scheduled, proof.clone()).await.unwrap().status(), 409);
    let cancelled: Value = app.notify(&json!({ "title": "never", "send_at": send_at })).await.json().await.unwrap();
    let cancelled = cancelled["id"].as_i64().unwrap();
    let cancel = client.delete(app.url(&format!("/api/v1/notifications/{cancelled}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(cancel.status(), 200);
    assert_eq!(report(cancelled, proof.clone()).await.unwrap().status(), 409);
    assert_eq!(
        (app.notification(scheduled).await["clicks"].clone(), app.notification(cancelled).await["clicks"].clone()),
        (json!(0), json!(0))
    );
    // A cross-site page cannot inflate the count.
    let forged = client
        .post(app.url(&format!("/api/v1/notifications/{id}/clicks")))
        .header("Origin", "https://evil.example")
        .json(&proof)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.notification(id).await["clicks"], 1);
}

#[tokio::test]
async fn the_flat_payload_format_keeps_the_original_shape() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.site.payload_format = PayloadFormat::Flat).await;
    let subscription = push.mint(Some(&app.vapid_public_key().await)).await;
    app.subscribe(&subscription).await;
    let status = app.broadcast(&json!({ "title": "Hello", "body": "Flat", "url": "/news" })).await;
    let message = &push.messages(subscription["endpoint"].as_str().unwrap()).await[0];
    let payload: Value = serde_json::from_str(message["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({ "title": "Hello", "body": "Flat", "url": "/news", "notification_id": status["id"] }));
}

#[tokio::test]
async fn a_key_signs_in_to_the_console_with_its_scopes_and_its_session_ends_with_the_key() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let created: Value = app.create_key(&json!({ "name": "viewer", "scopes": ["read"] })).await.json().await.unwrap();
    let viewer = browser();
    let response = call(&viewer, &app, "admin_sign_in", &json!({ "token": created["secret"] })).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let settings: Value = call(&viewer, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!(
        (settings["signed_in_as"].as_str(), settings["scopes"].clone(), settings["sees_audit"].as_bool()),
        (Some("viewer"), json!(["read"]), Some(false))
    );
    assert_eq!(call(&viewer, &app, "admin_history", &json!({ "limit": 10 })).await.status(), 200);
    let refused = call(&viewer, &app, "admin_send", &json!({ "request": { "title": "no", "body": "" } })).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("scope"));
    // Its REST calls carry the key's scopes too.
    assert_eq!(viewer.get(&app, "/api/v1/subscriptions").await.status(), 200);
    assert_eq!(viewer.get(&app, "/api/v1/api-keys").await.status(), 403);
    // The admin's own sign-in does not end the key's session, nor the other way round.
    let admin = signed_in(&app).await;
    assert_eq!(call(&viewer, &app, "admin_history", &json!({ "limit": 10 })).await.status(), 200);
    let audit: Value = call(&admin, &app, "admin_audit", &json!({ "limit": 10 })).await.json().await.unwrap();
    assert_eq!(audit[0]["action"], "api_key.create", "{audit}");
    // Revoked: its session opens nothing any more.
    let id = created["id"].as_i64().unwrap();
    assert_eq!(app.client.delete(app.url(&format!("/api/v1/api-keys/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap().status(), 204);
    let settings: Value = call(&viewer, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!(settings, Value::Null);
    assert_eq!(viewer.get(&app, "/api/v1/subscriptions").await.status(), 401);
    assert_eq!(call(&admin, &app, "admin_history", &json!({ "limit": 10 })).await.status(), 200);
}

#[tokio::test]
async fn the_site_switcher_makes_every_list_count_and_send_the_chosen_sites() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let created = app.client.post(app.url("/api/v1/sites")).bearer_auth(ADMIN_TOKEN).json(&json!({ "name": "shop" })).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let shop_key: Value = app.client.get(app.url("/api/v1/sites/shop/vapid-public-key")).send().await.unwrap().json().await.unwrap();
    let minted = push.mint(shop_key["public_key"].as_str()).await;
    let subscribed = app.client.post(app.url("/api/v1/sites/shop/subscriptions")).json(&minted).send().await.unwrap();
    assert_eq!(subscribed.status(), 201);
    subscribe_minted(&app, &push, 2).await;

    let console = signed_in(&app).await;
    let session: Value = call(&console, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!((session["site"].as_str(), session["subscriptions"].as_i64()), (Some("default"), Some(2)), "{session}");
    assert_eq!(session["sites"], json!(["default", "shop"]));

    assert_eq!(call(&console, &app, "admin_choose_site", &json!({ "site": "nowhere" })).await.status(), 404);
    assert_eq!(call(&console, &app, "admin_choose_site", &json!({ "site": "shop" })).await.status(), 200);
    let session: Value = call(&console, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!((session["site"].as_str(), session["subscriptions"].as_i64()), (Some("shop"), Some(1)), "{session}");
    let page: Value = call(&console, &app, "admin_subscribers", &json!({ "limit": 50 })).await.json().await.unwrap();
    assert_eq!(page["subscriptions"][0]["endpoint"], minted["endpoint"], "{page}");
    let sent = call(&console, &app, "admin_send", &json!({ "request": { "title": "From the console" } })).await;
    assert_eq!(sent.status(), 200);
    let id = sent.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let done = loop {
        let status =
            app.client.get(app.url(&format!("/api/v1/sites/shop/notifications/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        let status: Value = status.json().await.unwrap();
        if status["status"] == "done" {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((done["total"].as_i64(), done["delivered"].as_i64()), (Some(1), Some(1)), "{done}");
    assert_eq!(push.messages(minted["endpoint"].as_str().unwrap()).await.len(), 1);
    // The switch is this session's: another session still works on default.
    let other: Value = call(&signed_in(&app).await, &app, "admin_session", &json!({})).await.json().await.unwrap();
    assert_eq!(other["site"], "default");
}
