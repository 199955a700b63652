//! What the SDK relies on from the server: `/sdk.js` and its files for any page, CORS on
//! the public endpoints only (for the sites in `CLARION_CORS_ORIGINS`), and the REST test
//! push. The SDK itself runs in the Playwright suite, in real browsers.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

const SITE: &str = "https://shop.example";

/// A server that lets `SITE` in, with one minted subscriber.
async fn open_to_site() -> (TestApp, PushService, Value) {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.cors_origins = format!("{SITE}, https://other.example")).await;
    let (status, _, subscription) = app.subscribe_with(&push, &json!({})).await;
    assert_eq!(status, 201);
    (app, push, subscription)
}

async fn preflight(app: &TestApp, origin: &str, method: &str, path: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap()
}

fn granted(response: &reqwest::Response) -> Option<&str> {
    response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_site_reaches_the_public_endpoints_and_nothing_else() {
    let (app, _push, subscription) = open_to_site().await;
    let public = [
        ("GET", "/api/v1/vapid-public-key"),
        ("GET", "/api/v1/topics"),
        ("POST", "/api/v1/subscriptions"),
        ("DELETE", "/api/v1/subscriptions"),
        ("PUT", "/api/v1/subscriptions/topics"),
        ("POST", "/api/v1/subscriptions/test"),
        ("POST", "/api/v1/notifications/1/clicks"),
    ];
    for (method, path) in public {
        let answer = preflight(&app, SITE, method, path).await;
        assert_eq!(granted(&answer), Some(SITE), "{method} {path}");
        assert_eq!(granted(&preflight(&app, "https://evil.example", method, path).await), None, "unlisted: {method} {path}");
    }
    let admin = [
        ("GET", "/api/v1/subscriptions"),
        ("POST", "/api/v1/notifications"),
        ("GET", "/api/v1/notifications/1"),
        ("PUT", "/api/v1/topics/news"),
        ("DELETE", "/api/v1/users/alice"),
        ("POST", "/api/fn/save_subscription"),
        ("GET", "/metrics"),
    ];
    for (method, path) in admin {
        assert_eq!(granted(&preflight(&app, SITE, method, path).await), None, "admin: {method} {path}");
    }

    // The real requests: a read answers with the grant, an admin read without one.
    let key = app.client.get(app.url("/api/v1/vapid-public-key")).header("Origin", SITE).send().await.unwrap();
    assert_eq!(granted(&key), Some(SITE));
    assert!(key.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin")));
    let listing = app.client.get(app.url("/api/v1/subscriptions")).header("Origin", SITE).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(granted(&listing), None, "the admin listing never answers another site");

    // Writes from the listed site: public ones pass, admin ones are refused even with the token.
    let choose = app
        .client
        .put(app.url("/api/v1/subscriptions/topics"))
        .header("Origin", SITE)
        .json(&json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"], "topics": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(choose.status(), 200);
    assert_eq!(granted(&choose), Some(SITE));
    let send = app
        .client
        .post(app.url("/api/v1/notifications"))
        .header("Origin", SITE)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "title": "T" }))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 403);
    assert!(send.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("CLARION_CORS_ORIGINS"));
    let server_fn = app
        .client
        .post(app.url("/api/fn/delete_subscription"))
        .header("Origin", SITE)
        .json(&json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(server_fn.status(), 403, "server functions are Clarion's page's own");
    assert_eq!(app.list_json().await["total"], 1, "nothing refused changed anything");

    // A site not in the list: no grant, and its writes are refused as before.
    let stranger = app
        .client
        .delete(app.url("/api/v1/subscriptions"))
        .header("Origin", "https://evil.example")
        .json(&json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    assert_eq!(granted(&stranger), None);
    let deleted = app
        .client
        .delete(app.url("/api/v1/subscriptions"))
        .header("Origin", "https://other.example/")
        .json(&json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "every listed site is let in");
    assert_eq!(app.list_json().await["total"], 0);
}

#[tokio::test]
async fn the_rest_test_push_reaches_only_the_subscription_its_auth_proves() {
    let (app, push, mine) = open_to_site().await;
    let (_, _, other) = app.subscribe_with(&push, &json!({})).await;
    let endpoint = mine["endpoint"].as_str().unwrap();
    let test_push = |auth: &Value| {
        app.client
            .post(app.url("/api/v1/subscriptions/test"))
            .header("Origin", SITE)
            .json(&json!({ "endpoint": endpoint, "auth": auth }))
            .send()
    };
    let wrong = test_push(&other["keys"]["auth"]).await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(push.messages(endpoint).await.is_empty());

    let ok = test_push(&mine["keys"]["auth"]).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(granted(&ok), Some(SITE));
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({ "outcome": "delivered" }));
    assert_eq!(push.messages(endpoint).await.len(), 1);
    assert!(push.messages(other["endpoint"].as_str().unwrap()).await.is_empty());

    let unknown = app
        .client
        .post(app.url("/api/v1/subscriptions/test"))
        .json(&json!({ "endpoint": "https://fcm.googleapis.com/fcm/send/x", "auth": mine["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let extra = app
        .client
        .post(app.url("/api/v1/subscriptions/test"))
        .json(&json!({ "endpoint": endpoint, "auth": mine["keys"]["auth"], "to": "all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(extra.status(), 422);
    assert!(extra.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("to"));
}

#[tokio::test]
async fn any_page_may_load_the_sdk_and_its_files_are_cached_by_content() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("sdk.js"), "import init from './sdk/clarion_sdk.abc.js';\n").unwrap();
    std::fs::write(dir.path().join("assets/clarion_sdk.abc.js"), "export default async function init() {}\n".repeat(50)).unwrap();
    std::fs::write(dir.path().join("assets/clarion_sdk_bg.abc.wasm"), [0u8, 97, 115, 109, 1, 0, 0, 0]).unwrap();
    let sdk_dir = dir.path().to_str().unwrap().to_string();
    let app = spawn_app_with("", move |args| args.sdk_dir = sdk_dir).await;

    let loader = app.client.get(app.url("/sdk.js")).header("Origin", "https://any.example").send().await.unwrap();
    assert_eq!(loader.status(), 200);
    assert_eq!(loader.headers()["access-control-allow-origin"], "*");
    assert_eq!(loader.headers()["cache-control"], "no-cache");
    assert!(loader.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(loader.headers()["cross-origin-resource-policy"], "cross-origin");
    assert!(loader.text().await.unwrap().contains("clarion_sdk.abc.js"));

    let glue = app.client.get(app.url("/sdk/clarion_sdk.abc.js")).header("Accept-Encoding", "br").send().await.unwrap();
    assert_eq!(glue.status(), 200);
    assert_eq!(glue.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(glue.headers()["access-control-allow-origin"], "*");
    assert_eq!(glue.headers()["content-encoding"], "br", "compressed for browsers that take it");
    let wasm = app.client.get(app.url("/sdk/clarion_sdk_bg.abc.wasm")).send().await.unwrap();
    assert_eq!(wasm.headers()["content-type"], "application/wasm", "so browsers can compile it while it streams");
    assert_eq!(app.client.get(app.url("/sdk/nothing.js")).send().await.unwrap().status(), 404);

    let unbuilt = spawn_app_with("", |args| args.sdk_dir = "/nonexistent/clarion-sdk".into()).await;
    let missing = unbuilt.client.get(unbuilt.url("/sdk.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("build-sdk.sh"));
}
