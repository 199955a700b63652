//! Hardening against the running server: a bad-input suite, rate limits, cross-site
//! writes, CORS and the page's security headers.

use crate::helpers::*;
use serde_json::{json, Value};

const FCM: &str = "https://fcm.googleapis.com/fcm/send/abc";

/// One request of the bad-input suite.
struct Case {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    admin: bool,
}

fn json_case(name: &'static str, path: &'static str, body: Value) -> Case {
    Case {
        name,
        method: reqwest::Method::POST,
        path,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        admin: path.contains("notifications"),
    }
}

fn raw_case(name: &'static str, path: &'static str, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Case {
    Case { name, method: reqwest::Method::POST, path, content_type, body: body.into(), admin: path.contains("notifications") }
}

fn with_endpoint(endpoint: &str) -> Value {
    subscription_with_endpoint(endpoint)
}

fn with(pointer: &str, value: Value) -> Value {
    let mut v = subscription_with_endpoint(FCM);
    *v.pointer_mut(pointer).unwrap() = value;
    v
}

#[tokio::test]
async fn the_bad_input_suite_gets_4xx_json_stores_nothing_and_the_server_stays_up() {
    let app = spawn_app("").await;
    let subs = "/api/v1/subscriptions";
    let notes = "/api/v1/notifications";
    let generator = clarion::domain::base64url::decode(subscription_with_endpoint(FCM)["keys"]["p256dh"].as_str().unwrap()).unwrap();
    let off_curve = {
        let mut b = generator.clone();
        b[40] ^= 0x55;
        clarion::domain::base64url::encode(&b)
    };
    let compressed = {
        let mut b = generator[..33].to_vec();
        b[0] = 2;
        clarion::domain::base64url::encode(&b)
    };
    let mut deep = String::new();
    for _ in 0..200 {
        deep.push('[');
    }
    let cases = vec![
        // Malformed JSON and wrong shapes.
        raw_case("empty body", subs, Some("application/json"), ""),
        raw_case("truncated JSON", subs, Some("application/json"), "{\"endpoint\":"),
        raw_case("trailing garbage", subs, Some("application/json"), format!("{}xyz", with_endpoint(FCM))),
        raw_case("single quotes", subs, Some("application/json"), "{'endpoint': 'x'}"),
        raw_case("a JSON array", subs, Some("application/json"), "[]"),
        raw_case("a JSON string", subs, Some("application/json"), "\"subscription\""),
        raw_case("deeply nested", subs, Some("application/json"), deep.clone()),
        raw_case("invalid UTF-8", subs, Some("application/json"), vec![b'{', 0xff, 0xfe, b'}']),
        raw_case("NUL bytes", subs, Some("application/json"), "{\"endpoint\":\"\u{0}\"}"),
        json_case("endpoint as a number", subs, with("/endpoint", json!(1))),
        json_case("endpoint as an array", subs, with("/endpoint", json!(["https://fcm.googleapis.com/x"]))),
        json_case("keys as a string", subs, with("/keys", json!("p256dh"))),
        json_case("p256dh as a number", subs, with("/keys/p256dh", json!(42))),
        json_case("expirationTime as a string", subs, with("/expirationTime", json!("tomorrow"))),
        json_case("missing endpoint", subs, json!({ "keys": { "p256dh": "x", "auth": "y" } })),
        json_case("missing p256dh", subs, json!({ "endpoint": FCM, "keys": { "auth": "y" } })),
        json_case("empty object", subs, json!({})),
        // Keys.
        json_case("off-curve p256dh", subs, with("/keys/p256dh", json!(off_curve))),
        json_case("compressed p256dh", subs, with("/keys/p256dh", json!(compressed))),
        json_case("64-byte p256dh", subs, with("/keys/p256dh", json!(clarion::domain::base64url::encode(&generator[1..])))),
        json_case("empty p256dh", subs, with("/keys/p256dh", json!(""))),
        json_case("15-byte auth", subs, with("/keys/auth", json!(clarion::domain::base64url::encode(&[7; 15])))),
        json_case("17-byte auth", subs, with("/keys/auth", json!(clarion::domain::base64url::encode(&[7; 17])))),
        json_case("auth not base64", subs, with("/keys/auth", json!("%%%%"))),
        json_case("negative expirationTime", subs, with("/expirationTime", json!(-5))),
        // Endpoint SSRF.
        json_case("loopback IPv4", subs, with_endpoint("https://127.0.0.1/push")),
        json_case("loopback name", subs, with_endpoint("https://localhost/push")),
        json_case("cloud metadata", subs, with_endpoint("http://169.254.169.254/latest/meta-data")),
        json_case("IPv6 loopback", subs, with_endpoint("https://[::1]/push")),
        json_case("decimal IP", subs, with_endpoint("https://2130706433/push")),
        json_case("hex IP", subs, with_endpoint("https://0x7f000001/push")),
        json_case("octal IP", subs, with_endpoint("https://0177.0.0.1/push")),
        json_case("private network", subs, with_endpoint("https://10.0.0.8/push")),
        json_case("userinfo", subs, with_endpoint("https://attacker@fcm.googleapis.com/push")),
        json_case("user and password", subs, with_endpoint("https://a:b@fcm.googleapis.com/push")),
        json_case("allowlisted name as a prefix", subs, with_endpoint("https://fcm.googleapis.com.evil.example/push")),
        json_case("Cyrillic homoglyph host", subs, with_endpoint("https://fсm.googleapis.com/push")),
        json_case("punycode look-alike", subs, with_endpoint("https://xn--fcm-googleapis-8ib.com/push")),
        json_case("trailing-dot host", subs, with_endpoint("https://fcm.googleapis.com./push")),
        json_case("unlisted host", subs, with_endpoint("https://push.example.org/push")),
        json_case("explicit port", subs, with_endpoint("https://fcm.googleapis.com:8443/push")),
        json_case("plain http", subs, with_endpoint("http://fcm.googleapis.com/push")),
        json_case("file scheme", subs, with_endpoint("file:///etc/passwd")),
        json_case("javascript scheme", subs, with_endpoint("javascript:alert(1)")),
        json_case("not a URL", subs, with_endpoint("fcm.googleapis.com/push")),
        json_case("emoji endpoint", subs, with_endpoint("https://🔔.example/push")),
        json_case("endpoint over 2048 bytes", subs, with_endpoint(&format!("{FCM}/{}", "x".repeat(2100)))),
        // Size and type.
        raw_case("body over 8 KiB", subs, Some("application/json"), format!("{{\"endpoint\":\"{}\"}}", "a".repeat(10_000))),
        raw_case("text/plain body", subs, Some("text/plain"), with_endpoint(FCM).to_string()),
        raw_case("form body", subs, Some("application/x-www-form-urlencoded"), "endpoint=x"),
        raw_case("no content type", subs, None, with_endpoint(FCM).to_string()),
        // Notifications.
        json_case("notification without a title", notes, json!({ "body": "x" })),
        json_case("notification title of the wrong type", notes, json!({ "title": 5, "body": "x" })),
        json_case("notification with a negative TTL", notes, json!({ "title": "t", "body": "", "ttl": -1 })),
        json_case("notification TTL over 28 days", notes, json!({ "title": "t", "body": "", "ttl": 2_419_201 })),
        json_case("notification with a bad urgency", notes, json!({ "title": "t", "body": "", "urgency": "asap" })),
        json_case("notification with a long topic", notes, json!({ "title": "t", "body": "", "topic": "t".repeat(33) })),
        json_case("notification with a payload over 3993 bytes", notes, json!({ "title": "t", "body": "ü".repeat(2000) })),
        json_case("notification to an unknown endpoint", notes, json!({ "title": "t", "body": "", "endpoint": FCM })),
        json_case("notification with a data: icon", notes, json!({ "title": "t", "body": "", "icon": "data:image/png;base64,AAAA" })),
    ];
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    for case in &cases {
        let mut request = app.client.request(case.method.clone(), app.url(case.path)).body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("Content-Type", ct);
        }
        if case.admin {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{}: {status}", case.name);
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{}: the body is not JSON ({e})", case.name));
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}: {body}", case.name);
    }
    // Huge headers.
    let huge = app.client.get(app.url("/api/v1/vapid-public-key")).header("X-Big", "a".repeat(128 * 1024)).send().await.unwrap();
    assert_eq!(huge.status(), 431);
    assert!(huge.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("headers"));
    assert_eq!(app.list_json().await["total"], 0, "nothing was stored");
    let history: Value =
        app.client.get(app.url("/api/v1/notifications")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(history["notifications"].as_array().unwrap().len(), 0, "nothing was queued");
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200, "the server is still up");
}

#[tokio::test]
async fn new_subscriptions_are_rate_limited_per_address() {
    let app = spawn_app_with("", |args| args.subscribe_rate_limit = 2).await;
    assert_eq!(app.subscribe(&subscription_with_endpoint(&format!("{FCM}1"))).await.status(), 201);
    assert_eq!(app.subscribe(&subscription_with_endpoint(&format!("{FCM}2"))).await.status(), 201);
    let limited = app.subscribe(&subscription_with_endpoint(&format!("{FCM}3"))).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    assert!(limited.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("too many"));
    // Refreshing a known subscription is not a new one.
    assert_eq!(app.subscribe(&subscription_with_endpoint(&format!("{FCM}1"))).await.status(), 200);
    assert_eq!(app.list_json().await["total"], 2);
}

#[tokio::test]
async fn the_proxy_address_counts_only_when_trusted() {
    let trusting = spawn_app_with("", |args| {
        args.subscribe_rate_limit = 1;
        args.trust_proxy_headers = true;
    })
    .await;
    for (i, client_ip) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let response = trusting
            .client
            .post(trusting.url("/api/v1/subscriptions"))
            .header("X-Forwarded-For", *client_ip)
            .json(&subscription_with_endpoint(&format!("{FCM}{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{client_ip} has its own quota");
    }
    let ignoring = spawn_app_with("", |args| args.subscribe_rate_limit = 1).await;
    for (i, client_ip) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let response = ignoring
            .client
            .post(ignoring.url("/api/v1/subscriptions"))
            .header("X-Forwarded-For", *client_ip)
            .json(&subscription_with_endpoint(&format!("{FCM}{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), if i == 0 { 201 } else { 429 }, "the header is ignored by default");
    }
}

#[tokio::test]
async fn the_subscription_cap_is_enforced() {
    let app = spawn_app_with("", |args| args.max_subscriptions = 1).await;
    assert_eq!(app.subscribe(&subscription_with_endpoint(&format!("{FCM}1"))).await.status(), 201);
    let full = app.subscribe(&subscription_with_endpoint(&format!("{FCM}2"))).await;
    assert_eq!(full.status(), 503);
    assert!(full.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("CLARION_MAX_SUBSCRIPTIONS"));
}

#[tokio::test]
async fn subscriptions_per_address_are_capped() {
    let app = spawn_app_with("", |args| {
        args.max_subscriptions_per_ip = 2;
        args.trust_proxy_headers = true;
    })
    .await;
    let from = |ip: &'static str, i: u32| {
        app.client
            .post(app.url("/api/v1/subscriptions"))
            .header("X-Forwarded-For", ip)
            .json(&subscription_with_endpoint(&format!("{FCM}{i}")))
            .send()
    };
    assert_eq!(from("203.0.113.9", 1).await.unwrap().status(), 201);
    assert_eq!(from("203.0.113.9", 2).await.unwrap().status(), 201);
    let capped = from("203.0.113.9", 3).await.unwrap();
    assert_eq!(capped.status(), 429);
    assert!(capped.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("CLARION_MAX_SUBSCRIPTIONS_PER_IP"));
    assert_eq!(from("203.0.113.10", 3).await.unwrap().status(), 201, "another address has its own cap");
    assert_eq!(app.unsubscribe(&format!("{FCM}1")).await.status(), 204);
    assert_eq!(from("203.0.113.9", 4).await.unwrap().status(), 201, "deleting one frees a place");
    // The database holds no address.
    if on_postgres() {
        let rows = "SELECT COUNT(*) FROM subscriptions s WHERE row_to_json(s)::text LIKE '%203.0.113.9%'";
        assert_eq!(query_i64(&app, rows).await, 0);
        return;
    }
    let db = std::fs::read(app.data_dir.join("clarion.db")).unwrap();
    let wal = std::fs::read(app.data_dir.join("clarion.db-wal")).unwrap_or_default();
    let needle = b"203.0.113.9";
    assert!(!db.windows(needle.len()).any(|w| w == needle) && !wal.windows(needle.len()).any(|w| w == needle));
}

#[tokio::test]
async fn wrong_admin_tokens_are_rate_limited() {
    let app = spawn_app("").await;
    let mut statuses = Vec::new();
    for _ in 0..clarion_core::admission::BAD_TOKENS_PER_MINUTE + 1 {
        statuses.push(app.client.get(app.url("/api/v1/subscriptions")).bearer_auth("guess").send().await.unwrap().status().as_u16());
    }
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 401));
    assert_eq!(*statuses.last().unwrap(), 429);
    // Locked out: not even the right token is checked, so a lucky guess learns nothing.
    let right = app.list("").await;
    assert_eq!(right.status(), 429);
    assert!(right.headers().contains_key("retry-after"));
    let signing_in = app.server_fn("admin_sign_in", &serde_json::json!({ "token": ADMIN_TOKEN })).await;
    assert_eq!(signing_in.status(), 429, "the console's sign-in too");
}

#[tokio::test]
async fn test_pushes_are_rate_limited_per_subscription() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let subscription = push.mint(Some(&app.vapid_public_key().await)).await;
    assert_eq!(app.subscribe(&subscription).await.status(), 201);
    let body = json!({ "endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"] });
    for _ in 0..clarion_core::admission::TEST_PUSHES_PER_MINUTE {
        assert_eq!(app.server_fn("send_test_notification", &body).await.status(), 200);
    }
    let limited = app.server_fn("send_test_notification", &body).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        push.messages(subscription["endpoint"].as_str().unwrap()).await.len(),
        clarion_core::admission::TEST_PUSHES_PER_MINUTE as usize
    );
}

#[tokio::test]
async fn cross_site_writes_are_refused_and_cors_is_opt_in() {
    let app = spawn_app("").await;
    let from = |origin: &str| {
        app.client.post(app.url("/api/v1/subscriptions")).header("Origin", origin.to_string()).json(&subscription_with_endpoint(FCM)).send()
    };
    let forged = from("https://evil.example").await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("evil.example"));
    let forged_fn = app
        .client
        .post(app.url("/api/fn/delete_subscription"))
        .header("Origin", "https://evil.example")
        .json(&json!({ "endpoint": FCM, "auth": "AAECAwQFBgcICQoLDA0ODw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_fn.status(), 403, "server functions are covered too");
    assert_eq!(from(&app.address).await.unwrap().status(), 201, "the site itself may write");

    let open = spawn_app_with("", |args| args.cors_origins = "https://www.example.com".into()).await;
    let preflight = open
        .client
        .request(reqwest::Method::OPTIONS, open.url("/api/v1/subscriptions"))
        .header("Origin", "https://www.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://www.example.com");
    let allowed = open
        .client
        .post(open.url("/api/v1/subscriptions"))
        .header("Origin", "https://www.example.com")
        .json(&subscription_with_endpoint(FCM))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 201);
    let closed = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/subscriptions"))
        .header("Origin", "https://www.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(closed.headers().get("access-control-allow-origin").is_none(), "CORS is off by default");
}

#[tokio::test]
async fn pages_and_api_answers_carry_security_headers() {
    let app = spawn_app("").await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.headers().contains_key("referrer-policy"));
    let html = page.text().await.unwrap();
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_string();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the inline hydration script carries the CSP nonce");
    for directive in ["'wasm-unsafe-eval'", "frame-ancestors 'none'", "object-src 'none'", "default-src 'self'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    let api = app.client.get(app.url("/api/v1/vapid-public-key")).send().await.unwrap();
    assert_eq!(api.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    // The worker runs under its script's policy: it must reach this origin (key, subscriptions,
    // click reports) and load notification icons, and nothing else.
    let worker = app.client.get(app.url("/sw.js")).send().await.unwrap();
    let worker_csp = worker.headers()["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "connect-src 'self'", "img-src 'self' https:"] {
        assert!(worker_csp.contains(directive), "{directive} in {worker_csp}");
    }
}

#[tokio::test]
async fn cors_origins_that_are_not_origins_are_refused_at_start_and_default_ports_are_normalised() {
    for (entry, why) in [
        ("null", "null"),
        ("*", "wildcard"),
        ("https://*.example.com", "wildcard"),
        ("https://www.example.com/app", "path"),
        ("www.example.com", "scheme://host"),
        ("ftp://www.example.com", "http or https"),
        ("https://user:pw@www.example.com", "user or password"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = serve_args(dir.path().join("data"), "", None);
        args.cors_origins = format!("https://good.example, {entry}");
        let error = clarion::server::startup::Application::build(args).await.err().unwrap_or_else(|| panic!("{entry} was accepted"));
        let text = format!("{error:#}");
        assert!(text.contains("CLARION_CORS_ORIGINS") && text.contains(entry) && text.contains(why), "{entry}: {text}");
    }
    // `https://Shop.Example:443/` is the origin browsers send as `https://shop.example`.
    let app = spawn_app_with("", |args| args.cors_origins = "https://Shop.Example:443/, http://localhost:80".into()).await;
    for origin in ["https://shop.example", "http://localhost"] {
        let allowed = app
            .client
            .post(app.url("/api/v1/subscriptions"))
            .header("Origin", origin)
            .json(&subscription_with_endpoint(&format!("{FCM}{}", origin.len())))
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 201, "{origin}");
    }
}

#[tokio::test]
async fn over_tls_the_console_cookie_is_host_prefixed_and_secure_and_the_scheme_is_part_of_the_site() {
    let app = spawn_app_with("", |args| args.trusted_proxies = "127.0.0.1/32".into()).await;
    let sign_in = |proto: &'static str| {
        app.client.post(app.url("/api/fn/admin_sign_in")).header("X-Forwarded-Proto", proto).json(&json!({ "token": ADMIN_TOKEN })).send()
    };
    let secure = sign_in("https").await.unwrap();
    assert_eq!(secure.status(), 200);
    let cookie = secure.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-clarion_admin="), "{cookie}");
    for attribute in ["; Secure", "; Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let list = |cookie: String, proto: &'static str| {
        app.client.get(app.url("/api/v1/subscriptions")).header("Cookie", cookie).header("X-Forwarded-Proto", proto).send()
    };
    assert_eq!(list(format!("__Host-clarion_admin={value}"), "https").await.unwrap().status(), 200);
    // Over TLS only the prefixed cookie counts: one a sibling subdomain planted does not.
    assert_eq!(list(format!("clarion_admin={value}"), "https").await.unwrap().status(), 401);
    // Over plain HTTP the cookie has no prefix and is not Secure (a browser would drop it).
    let plain = sign_in("http").await.unwrap().headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(plain.starts_with("clarion_admin=") && !plain.contains("Secure"), "{plain}");

    // The same host under the other scheme is another site.
    let host = app.address.trim_start_matches("http://").to_string();
    let write = |origin: String, proto: &'static str, i: usize| {
        app.client
            .post(app.url("/api/v1/subscriptions"))
            .header("Origin", origin)
            .header("X-Forwarded-Proto", proto)
            .json(&subscription_with_endpoint(&format!("{FCM}scheme-{i}")))
            .send()
    };
    assert_eq!(write(format!("https://{host}"), "https", 1).await.unwrap().status(), 201);
    let downgraded = write(format!("http://{host}"), "https", 2).await.unwrap();
    assert_eq!(downgraded.status(), 403);
    let error: Value = downgraded.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("scheme"), "{error}");
    assert_eq!(write(format!("https://{host}"), "http", 3).await.unwrap().status(), 403, "https page, plain request");
    assert_eq!(write(format!("http://{host}"), "http", 4).await.unwrap().status(), 201);
}
