//! Many sites on one Clarion: each site's subscribers, topics and sends are its own, its
//! pushes are signed with its own key (the local push service refuses a push whose `k`
//! is not the subscription's `applicationServerKey`), its origins reach only its own
//! public endpoints, and a key bound to one site learns nothing of another. Runs on
//! SQLite and, in the PostgreSQL pass, on PostgreSQL, with two instances on one database.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SHOP: &str = "https://shop.example.com";

impl TestApp {
    async fn create_site(&self, body: &Value) -> (u16, Value) {
        let response = self.client.post(self.url("/api/v1/sites")).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A request with a bearer token on `path`; answers the status and the JSON body
    /// (`null` when there is none).
    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn site_key(&self, site: &str) -> String {
        let response = self.client.get(self.url(&format!("/api/v1/sites/{site}/vapid-public-key"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["public_key"].as_str().unwrap().to_string()
    }

    /// Subscribes `n` endpoints minted for `site`'s key through its own path.
    async fn subscribe_to_site(&self, push: &PushService, site: &str, n: usize) -> Vec<String> {
        let key = self.site_key(site).await;
        let mut endpoints = Vec::new();
        for _ in 0..n {
            let subscription = push.mint(Some(&key)).await;
            let response =
                self.client.post(self.url(&format!("/api/v1/sites/{site}/subscriptions"))).json(&subscription).send().await.unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
            endpoints.push(subscription["endpoint"].as_str().unwrap().to_string());
        }
        endpoints
    }

    async fn wait_done_as(&self, path: &str, token: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.call(reqwest::Method::GET, path, token, None).await;
            assert_eq!(status, 200, "{body}");
            if body["status"] == "done" {
                return body;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "not done: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A key for `site` (none: every site) with these scopes; answers its secret.
async fn key_for(app: &TestApp, name: &str, site: Option<&str>, scopes: &[&str]) -> String {
    let response = app.create_key(&json!({ "name": name, "site": site, "scopes": scopes })).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string()
}

async fn received(push: &PushService, endpoints: &[String]) -> Vec<usize> {
    let mut counts = Vec::new();
    for endpoint in endpoints {
        counts.push(push.messages(endpoint).await.len());
    }
    counts
}

#[tokio::test]
async fn two_sites_keep_their_subscribers_sends_and_keys_apart() {
    use reqwest::Method;
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;

    // Made with its own key, answered without a secret.
    let (status, shop) = app
        .create_site(
            &json!({ "name": "shop", "origins": [SHOP], "vapid_subject": "mailto:shop@clarion.dev", "identity_secret": "s".repeat(40) }),
        )
        .await;
    assert_eq!(status, 201, "{shop}");
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["origins"], json!([SHOP]));
    assert_eq!(shop["vapid_subject"], "mailto:shop@clarion.dev");
    assert_eq!(shop["identity_tokens"], true);
    assert!(!shop.to_string().contains(&"s".repeat(40)), "no secret in {shop}");
    let default_key = app.vapid_public_key().await;
    let shop_key = shop["vapid_public_key"].as_str().unwrap().to_string();
    assert_ne!(shop_key, default_key);
    assert_eq!(app.site_key("shop").await, shop_key);

    // Bad input changes nothing.
    for (body, field) in [
        (json!({ "name": "Shop" }), "name"),
        (json!({ "name": "x".repeat(41) }), "name"),
        (json!({ "name": "blog", "origins": ["https://blog.example.com/path"] }), "origins"),
        (json!({ "name": "blog", "origins": ["*"] }), "origins"),
        (json!({ "name": "blog", "vapid_subject": "ops@example.com" }), "vapid_subject"),
        (json!({ "name": "blog", "identity_secret": "short" }), "identity_secret"),
    ] {
        let (status, answer) = app.create_site(&body).await;
        assert_eq!((status, answer["field"].as_str()), (422, Some(field)), "{body}: {answer}");
    }
    assert_eq!(app.create_site(&json!({ "name": "blog", "color": "red" })).await.0, 422);
    assert_eq!(app.create_site(&json!({ "name": "shop" })).await.0, 409);
    let (_, sites) = app.call(Method::GET, "/api/v1/sites", ADMIN_TOKEN, None).await;
    let names: Vec<_> = sites["sites"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["default", "shop"]);

    // Subscribers of each, through each site's own path.
    let on_default = subscribe_minted(&app, &push, 2).await;
    let on_shop = app.subscribe_to_site(&push, "shop", 3).await;
    let (_, listing) = app.call(Method::GET, "/api/v1/sites/shop/subscriptions", ADMIN_TOKEN, None).await;
    assert_eq!(listing["total"], 3);
    assert_eq!(app.list_json().await["total"], 2, "the unprefixed paths are default's");
    // An endpoint of one site is not subscribed again into another.
    let taken = app.client.post(app.url("/api/v1/subscriptions")).json(&push_subscription_of(&push, &on_shop[0]).await).send().await;
    assert_eq!(taken.unwrap().status(), 409);

    // A send with shop's send key reaches shop's subscribers only, each push verified
    // against the shop key they were made with.
    let shop_sender = key_for(&app, "shop sender", Some("shop"), &["send", "read"]).await;
    let default_reader = key_for(&app, "default reader", Some("default"), &["read", "send"]).await;
    let (status, queued) =
        app.call(Method::POST, "/api/v1/sites/shop/notifications", &shop_sender, Some(&json!({ "title": "For the shop" }))).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    let done = app.wait_done_as(&format!("/api/v1/sites/shop/notifications/{id}"), &shop_sender).await;
    assert_eq!((done["total"].as_i64(), done["delivered"].as_i64(), done["failed"].as_i64()), (Some(3), Some(3), Some(0)), "{done}");
    assert_eq!(received(&push, &on_shop).await, [1, 1, 1]);
    assert_eq!(received(&push, &on_default).await, [0, 0]);
    let pushed = &push.messages(&on_shop[0]).await[0];
    assert!(pushed.to_string().contains("For the shop"), "{pushed}");

    // Another site's key learns nothing of shop: 404 on its sends and its subscribers.
    let foreign = [
        (Method::GET, format!("/api/v1/sites/shop/notifications/{id}")),
        (Method::GET, "/api/v1/sites/shop/subscriptions".to_string()),
        (Method::POST, "/api/v1/sites/shop/notifications".to_string()),
        (Method::GET, "/api/v1/sites/shop".to_string()),
    ];
    for (method, path) in foreign {
        let (status, body) = app.call(method.clone(), &path, &default_reader, Some(&json!({ "title": "x" }))).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    // Nor does default's own path name shop's send.
    assert_eq!(app.call(Method::GET, &format!("/api/v1/notifications/{id}"), ADMIN_TOKEN, None).await.0, 404);
    // A read key cannot send; the shop key cannot reach default's subscribers.
    let shop_reader = key_for(&app, "shop reader", Some("shop"), &["read"]).await;
    let (status, body) = app.call(Method::POST, "/api/v1/sites/shop/notifications", &shop_reader, Some(&json!({ "title": "x" }))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("send"), "{body}");
    assert_eq!(app.call(Method::POST, "/api/v1/notifications", &shop_sender, Some(&json!({ "title": "x" }))).await.0, 404);
    assert_eq!(app.call(Method::GET, "/api/v1/sites/nowhere/topics", ADMIN_TOKEN, None).await.0, 404);
    let listed = app.call(Method::GET, "/api/v1/sites", &shop_reader, None).await.1;
    assert_eq!(listed["sites"].as_array().unwrap().len(), 1, "a key bound to shop sees shop only: {listed}");

    // Topics are each site's own.
    let (status, _) = app.call(Method::PUT, "/api/v1/sites/shop/topics/deals", ADMIN_TOKEN, Some(&json!({ "label": "Deals" }))).await;
    assert_eq!(status, 201);
    let shop_topics = app.client.get(app.url("/api/v1/sites/shop/topics")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(shop_topics["topics"].as_array().unwrap().len(), 1, "{shop_topics}");
    let default_topics = app.client.get(app.url("/api/v1/topics")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(default_topics["topics"], json!([]));
    let (status, body) =
        app.call(Method::POST, "/api/v1/notifications", ADMIN_TOKEN, Some(&json!({ "title": "x", "topics": ["deals"] }))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("topics")), "{body}");

    // A site's origin reaches its own public endpoints only.
    let from_shop = |path: &str| app.client.post(app.url(path)).header("Origin", SHOP).header("Content-Type", "application/json");
    let minted = push.mint(Some(&shop_key)).await;
    let into_shop = from_shop("/api/v1/sites/shop/subscriptions").body(minted.to_string()).send().await.unwrap();
    assert_eq!(into_shop.status(), 201);
    assert_eq!(into_shop.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(SHOP));
    let minted = push.mint(Some(&default_key)).await;
    let into_default = from_shop("/api/v1/subscriptions").body(minted.to_string()).send().await.unwrap();
    assert_eq!(into_default.status(), 403, "a page of shop cannot subscribe into default");
    let preflight = |path: &str| {
        app.client
            .request(Method::OPTIONS, app.url(path))
            .header("Origin", SHOP)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
    };
    let allowed = preflight("/api/v1/sites/shop/subscriptions").send().await.unwrap();
    assert_eq!(allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(SHOP));
    let refused = preflight("/api/v1/subscriptions").send().await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());

    // default is the CLARION_* settings'; shop can be changed, and removed with purge.
    let (status, body) = app.call(Method::PATCH, "/api/v1/sites/default", ADMIN_TOKEN, Some(&json!({ "origins": [] }))).await;
    assert_eq!(status, 409, "{body}");
    let (status, changed) =
        app.call(Method::PATCH, "/api/v1/sites/shop", ADMIN_TOKEN, Some(&json!({ "origins": [SHOP, "http://localhost:8080"] }))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["origins"], json!([SHOP, "http://localhost:8080"]));
    assert_eq!(changed["vapid_public_key"], shop_key.as_str(), "a change keeps the keys");
    let text = app.client.get(app.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"clarion_site_subscriptions{site="shop"} 4"#), "{text}");
    assert!(text.contains(r#"clarion_site_subscriptions{site="default"} 2"#), "{text}");
    let (status, body) = app.call(Method::DELETE, "/api/v1/sites/shop", ADMIN_TOKEN, None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("4 subscriptions"), "{body}");
    assert_eq!(app.call(Method::DELETE, "/api/v1/sites/shop", &shop_sender, None).await.0, 403);
    let (status, body) = app.call(Method::DELETE, "/api/v1/sites/shop?purge=true", ADMIN_TOKEN, None).await;
    assert_eq!((status, body["removed_subscriptions"].as_i64()), (200, Some(4)), "{body}");
    assert_eq!(app.call(Method::GET, "/api/v1/sites/shop", ADMIN_TOKEN, None).await.0, 404);
    assert_eq!(app.call(Method::GET, "/api/v1/sites/shop/vapid-public-key", ADMIN_TOKEN, None).await.0, 404);
    assert_eq!(app.call(Method::GET, "/api/v1/sites/shop/notifications", &shop_sender, None).await.0, 401, "its keys are revoked");
    assert_eq!(app.list_json().await["total"], 2, "default keeps its subscribers");
    assert_eq!(app.call(Method::DELETE, "/api/v1/sites/default?purge=true", ADMIN_TOKEN, None).await.0, 409);

    // Each write left its one entry.
    let (_, audit) = app.call(Method::GET, "/api/v1/audit?limit=500", ADMIN_TOKEN, None).await;
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("site."))
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["site"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("site.create", "shop"), ("site.update", "shop"), ("site.delete", "shop")];
    assert_eq!(actions, expected.map(|(a, s)| (a.to_string(), s.to_string())));
}

/// The subscription JSON of an endpoint the push service minted (its keys, for a 409
/// with the same keys on another site).
async fn push_subscription_of(push: &PushService, endpoint: &str) -> Value {
    // A fresh mint has other keys; the 409 is about the endpoint either way.
    let mut subscription = push.mint(None).await;
    subscription["endpoint"] = json!(endpoint);
    subscription
}

#[tokio::test]
async fn a_site_made_on_one_instance_is_served_by_the_others_within_a_second() {
    let push = spawn_push_service().await;
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let master = clarion::domain::base64url::encode(&[7u8; 32]);
    let vapid = clarion_push::vapid::VapidKeyMaterial::generate().private_raw_base64url();
    let database = shared_database(&data).await;
    let start = |data: std::path::PathBuf| {
        let (database, vapid, host, master) = (database.clone(), vapid.clone(), push.host(), master.clone());
        async move {
            start_app_with(data, &host, Some(vapid), move |args| {
                args.site.database_url = Some(database);
                args.site.master_key = Some(master);
            })
            .await
        }
    };
    let one = start(data.clone()).await;
    let other = start(other_dir.path().join("data")).await;
    let (status, shop) = one.create_site(&json!({ "name": "shop", "origins": [SHOP] })).await;
    assert_eq!(status, 201, "{shop}");
    let made = Instant::now();
    loop {
        let answer = other.client.get(other.url("/api/v1/sites/shop/vapid-public-key")).send().await.unwrap();
        if answer.status() == 200 {
            assert_eq!(answer.json::<Value>().await.unwrap()["public_key"], shop["vapid_public_key"]);
            break;
        }
        assert!(made.elapsed() < Duration::from_secs(1), "the other instance did not serve the site within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("the other instance served the new site after {:?}", made.elapsed());
    // Subscribed through one, sent from the other, signed with shop's key there too.
    let endpoints = one.subscribe_to_site(&push, "shop", 2).await;
    let on_default = subscribe_minted(&other, &push, 1).await;
    let (status, queued) =
        other.call(reqwest::Method::POST, "/api/v1/sites/shop/notifications", ADMIN_TOKEN, Some(&json!({ "title": "hi" }))).await;
    assert_eq!(status, 202);
    let done = other.wait_done_as(&format!("/api/v1/sites/shop/notifications/{}", queued["id"]), ADMIN_TOKEN).await;
    assert_eq!((done["total"].as_i64(), done["delivered"].as_i64()), (Some(2), Some(2)), "{done}");
    assert_eq!(received(&push, &endpoints).await, [1, 1]);
    assert_eq!(received(&push, &on_default).await, [0]);
    // Removed on one, gone from the other within a second.
    let (status, _) = one.call(reqwest::Method::DELETE, "/api/v1/sites/shop?purge=true", ADMIN_TOKEN, None).await;
    assert_eq!(status, 200);
    let removed = Instant::now();
    while other.client.get(other.url("/api/v1/sites/shop/vapid-public-key")).send().await.unwrap().status() != 404 {
        assert!(removed.elapsed() < Duration::from_secs(1), "the other instance still serves the removed site");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.stop().await;
    one.stop().await;
}

fn clarion(data: &std::path::Path, args: &[&str]) -> String {
    clarion_command(data, "", args)
}

#[tokio::test]
async fn the_command_line_adds_lists_shows_and_removes_sites() {
    if on_postgres() {
        return; // The commands run on the data dir's SQLite file; the REST tests cover PostgreSQL.
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let added: Value = serde_json::from_str(&clarion(
        &data,
        &["sites", "add", "shop", "--origin", SHOP, "--subject", "mailto:shop@clarion.dev", "--json"],
    ))
    .unwrap();
    assert_eq!((added["name"].as_str(), added["origins"].clone()), (Some("shop"), json!([SHOP])));
    let listed: Value = serde_json::from_str(&clarion(&data, &["sites", "list", "--json"])).unwrap();
    assert_eq!(listed["sites"].as_array().unwrap().len(), 2);
    let shown: Value = serde_json::from_str(&clarion(&data, &["sites", "show", "shop", "--json"])).unwrap();
    assert_eq!(shown["vapid_public_key"], added["vapid_public_key"]);
    assert_eq!(shown["keys"].as_array().unwrap().len(), 1);
    assert!(clarion(&data, &["sites", "list"]).contains("mailto:shop@clarion.dev"));
    clarion(&data, &["sites", "remove", "shop"]);
    let listed: Value = serde_json::from_str(&clarion(&data, &["sites", "list", "--json"])).unwrap();
    assert_eq!(listed["sites"].as_array().unwrap().len(), 1);
    let audit = clarion(&data, &["audit", "--json"]);
    assert_eq!(audit.matches("\"site.create\"").count(), 1, "{audit}");
    assert_eq!(audit.matches("\"site.delete\"").count(), 1, "{audit}");
}
