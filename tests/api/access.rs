//! API keys with scopes and the audit log, over real HTTP on both backends: a key does
//! what its scopes allow and nothing else, a revoked key is refused on another instance
//! within a second, each write leaves exactly one audit entry, and no secret ever
//! appears in the log.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl TestApp {
    async fn as_key(&self, method: reqwest::Method, path: &str, secret: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn audit(&self) -> Vec<Value> {
        let response = self.client.get(self.url("/api/v1/audit?limit=1000")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["entries"].as_array().unwrap().clone()
    }
}

use reqwest::Method;

#[tokio::test]
async fn each_key_does_what_its_scopes_allow_and_nothing_else() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    subscribe_minted(&app, &push, 2).await;

    // Created once with its secret; listed without it.
    let response = app.create_key(&json!({ "name": "dashboards", "scopes": ["read"] })).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let reader = created["secret"].as_str().unwrap().to_string();
    assert!(reader.starts_with("clk_") && reader.len() >= 4 + 43, "{reader}");
    assert_eq!(
        (created["name"].as_str(), created["scopes"].clone(), created["site"].clone()),
        (Some("dashboards"), json!(["read"]), Value::Null)
    );
    let (_, sender) = app.key_with("deploy bot", &["send"]).await;
    let (_, curator) = app.key_with("editor", &["audience"]).await;
    let listed = app.client.get(app.url("/api/v1/api-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(!listed.contains(&reader) && !listed.contains(&sender), "a listing never shows a secret: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 3);

    // read: listings and status, never a send.
    assert_eq!(app.as_key(Method::GET, "/api/v1/subscriptions", &reader, None).await.0, 200);
    assert_eq!(app.as_key(Method::GET, "/api/v1/notifications", &reader, None).await.0, 200);
    let (status, body) = app.as_key(Method::POST, "/api/v1/notifications", &reader, Some(json!({ "title": "no" }))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("\"send\""), "the refusal names the missing scope: {body}");
    // send: sends, and nothing of the audience or the keys.
    let (status, queued) = app.as_key(Method::POST, "/api/v1/notifications", &sender, Some(json!({ "title": "from a key" }))).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(app.wait_done(queued["id"].as_i64().unwrap()).await["delivered"], 2);
    assert_eq!(app.as_key(Method::PUT, "/api/v1/topics/news", &sender, Some(json!({ "label": "News" }))).await.0, 403);
    assert_eq!(app.as_key(Method::GET, "/api/v1/subscriptions", &sender, None).await.0, 403);
    assert_eq!(app.as_key(Method::POST, "/api/v1/api-keys", &sender, Some(json!({ "name": "x", "scopes": ["admin"] }))).await.0, 403);
    // audience: topics and users.
    assert_eq!(app.as_key(Method::PUT, "/api/v1/topics/news", &curator, Some(json!({ "label": "News" }))).await.0, 201);
    assert_eq!(app.as_key(Method::DELETE, "/api/v1/users/alice", &curator, None).await.0, 204);
    assert_eq!(app.as_key(Method::POST, "/api/v1/sites/default/vapid-keys", &curator, None).await.0, 403);

    // A key bound to a site is not found on another, and cannot manage keys for all.
    let (status, body) =
        app.as_key(Method::POST, "/api/v1/api-keys", ADMIN_TOKEN, Some(json!({ "name": "s", "site": "shop", "scopes": ["send"] }))).await;
    assert_eq!(status, 422, "no site shop yet: {body}");
    let response = app.create_key(&json!({ "name": "site admin", "site": "default", "scopes": ["admin"] })).await;
    let site_admin = response.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string();
    assert_eq!(app.as_key(Method::GET, "/api/v1/sites/default/vapid-keys", &site_admin, None).await.0, 200);
    assert_eq!(app.as_key(Method::GET, "/api/v1/sites/shop/vapid-keys", &site_admin, None).await.0, 404);
    assert_eq!(app.as_key(Method::GET, "/api/v1/api-keys", &site_admin, None).await.0, 403);

    // Bad input changes nothing.
    for bad in [
        json!({ "name": "", "scopes": ["read"] }),
        json!({ "name": "n", "scopes": [] }),
        json!({ "name": "n", "scopes": ["root"] }),
        json!({ "name": "n", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "name": "n", "scopes": ["read"], "expires_at": "tomorrow" }),
        json!({ "name": "n", "scopes": ["read"], "owner": "x" }),
    ] {
        let response = app.create_key(&bad).await;
        assert!(response.status().is_client_error(), "{bad}: {}", response.status());
    }
    let listed: Value = app.client.get(app.url("/api/v1/api-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 4);
    // Made-up and malformed secrets are a 401, like a wrong admin token.
    assert_eq!(app.as_key(Method::GET, "/api/v1/subscriptions", "clk_madeup", None).await.0, 401);
}

#[tokio::test]
async fn each_key_has_its_own_send_quota() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.key_send_rate_limit = 2).await;
    let (_, first) = app.key_with("first", &["send"]).await;
    let (_, second) = app.key_with("second", &["send"]).await;
    for _ in 0..2 {
        assert_eq!(app.as_key(Method::POST, "/api/v1/notifications", &first, Some(json!({ "title": "t" }))).await.0, 202);
    }
    let (status, body) = app.as_key(Method::POST, "/api/v1/notifications", &first, Some(json!({ "title": "t" }))).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(app.as_key(Method::POST, "/api/v1/notifications", &second, Some(json!({ "title": "t" }))).await.0, 202);
    // The admin token has no such quota.
    assert_eq!(app.notify(&json!({ "title": "t" })).await.status(), 202);
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_another_instance_within_a_second() {
    let push = spawn_push_service().await;
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let database = test_database_url(&data).await.unwrap_or_else(|| format!("sqlite://{}", data.join("clarion.db").display()));
    let vapid = clarion_push::vapid::VapidKeyMaterial::generate().private_raw_base64url();
    let start = |data: std::path::PathBuf| {
        let (database, vapid, host) = (database.clone(), vapid.clone(), push.host());
        async move { start_app_with(data, &host, Some(vapid), move |args| args.site.database_url = Some(database)).await }
    };
    let mut first = start(data).await;
    first.keep(Some(dir));
    let mut second = start(other_dir.path().join("data")).await;
    second.keep(Some(other_dir));
    let (id, secret) = first.key_with("leaked", &["read"]).await;
    assert_eq!(second.as_key(Method::GET, "/api/v1/subscriptions", &secret, None).await.0, 200);
    let revoked = first.client.delete(first.url(&format!("/api/v1/api-keys/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(revoked.status(), 204);
    let asked = Instant::now();
    while second.as_key(Method::GET, "/api/v1/subscriptions", &secret, None).await.0 != 401 {
        assert!(asked.elapsed() < Duration::from_secs(1), "the other instance still takes the revoked key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("the other instance refused the revoked key after {:?}", asked.elapsed());
    let again = first.client.delete(first.url(&format!("/api/v1/api-keys/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(again.status(), 404);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn every_write_leaves_exactly_one_audit_entry_and_no_secret() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 3).await;
    let (key_id, secret) = app.key_with("ops", &["send", "audience", "read"]).await;

    let (_, queued) = app.as_key(Method::POST, "/api/v1/notifications", &secret, Some(json!({ "title": "hello" }))).await;
    let sent = queued["id"].as_i64().unwrap();
    let later = clarion::domain::clock::rfc3339_at(unix_now() as i64 + 3600);
    let (_, scheduled) =
        app.as_key(Method::POST, "/api/v1/notifications", &secret, Some(json!({ "title": "later", "send_at": later }))).await;
    let scheduled = scheduled["id"].as_i64().unwrap_or_else(|| panic!("{scheduled}"));
    assert_eq!(app.as_key(Method::DELETE, &format!("/api/v1/notifications/{scheduled}"), &secret, None).await.0, 200);
    assert_eq!(app.as_key(Method::PUT, "/api/v1/topics/news", &secret, Some(json!({ "label": "News" }))).await.0, 201);
    assert_eq!(app.as_key(Method::DELETE, "/api/v1/users/alice@example.com", &secret, None).await.0, 204);
    assert_eq!(app.unsubscribe(&endpoints[0]).await.status(), 204);
    let rotated = app.client.post(app.url("/api/v1/sites/default/vapid-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(rotated.status(), 201);
    let revoked = app.client.delete(app.url(&format!("/api/v1/api-keys/{key_id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(revoked.status(), 204);
    // Refused and read-only requests write nothing.
    assert_eq!(app.as_key(Method::GET, "/api/v1/notifications", &secret, None).await.0, 401);
    assert_eq!(app.notify(&json!({ "title": "" })).await.status(), 422);
    app.list_json().await;

    let entries = app.audit().await;
    let actions: Vec<(&str, &str)> = entries.iter().map(|e| (e["action"].as_str().unwrap(), e["key_name"].as_str().unwrap())).collect();
    assert_eq!(
        actions,
        vec![
            ("api_key.create", "admin token"),
            ("notification.create", "ops"),
            ("notification.create", "ops"),
            ("notification.cancel", "ops"),
            ("topic.put", "ops"),
            ("user.forget", "ops"),
            ("subscription.delete", "admin token"),
            ("vapid_key.rotate", "admin token"),
            ("api_key.revoke", "admin token"),
        ],
        "{entries:#?}"
    );
    let create = &entries[1];
    assert_eq!(
        (create["key_id"].as_i64(), create["site"].as_str(), create["target"].as_str()),
        (Some(key_id), Some("default"), Some(sent.to_string().as_str()))
    );
    assert_eq!(create["audience"], 3, "a send to everyone records its audience");
    assert_eq!(entries[3]["target"], scheduled.to_string());
    assert_eq!(create["client"], "127.0.0.1");
    assert!(entries.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()), "newest last");

    // No secret anywhere: not the key's, not the token, not a subscriber's keys or
    // endpoint, not the forgotten user.
    let log = serde_json::to_string(&entries).unwrap();
    for secret in [secret.as_str(), ADMIN_TOKEN, endpoints[0].as_str(), "alice@example.com"] {
        assert!(!log.contains(secret), "{secret} is in the audit log");
    }
    // Paging: `next` continues where a page ended.
    let page: Value = app.client.get(app.url("/api/v1/audit?limit=4")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 4);
    let next = page["next"].as_i64().unwrap_or_else(|| panic!("{page}"));
    let rest: Value = app
        .client
        .get(app.url(&format!("/api/v1/audit?after={next}&limit=100")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["entries"].as_array().unwrap().len(), entries.len() - 4);
    assert_eq!(rest["next"], Value::Null);
    // There is no way to change it through Clarion.
    for method in [Method::DELETE, Method::PUT, Method::POST] {
        let response = app.client.request(method.clone(), app.url("/api/v1/audit")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
}
