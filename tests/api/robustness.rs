//! Faults real deployments meet: a stopped server's tasks, one bad subscription among
//! many, a stranger re-keying an endpoint, lost leases, failing storage, forged proxy
//! headers, slow clients, and inputs that look alike but are spelled differently.

use crate::helpers::*;
use clarion_push::policy::{MAX_VAPID_REFUSALS, SYSTEMIC_REFUSALS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn other_key() -> String {
    clarion::domain::base64url::encode(&clarion_push::vapid::VapidKeyMaterial::generate().public_key())
}

async fn status_of(app: &TestApp, id: i64) -> Value {
    app.notification(id).await
}

async fn queue(app: &TestApp, body: Value) -> i64 {
    let response = app.notify(&body).await;
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

// ---- 1. A stopped server leaves nothing running ---------------------------------------

/// Queues a broadcast straight into the database, with no server of its own to send it.
async fn queue_without_a_worker(data_dir: &std::path::Path, host: &str) -> (clarion_core::Clarion, i64) {
    let site = clarion::server::config::SiteArgs {
        data_dir: data_dir.to_path_buf(),
        database_url: test_database_url(data_dir).await,
        vapid_subject: SUBJECT.into(),
        vapid_private_key: None,
        master_key: None,
        push_hosts: host.into(),
        send_concurrency: 4,
        max_attempts: 3,
        retry_base_ms: 50,
        push_timeout: 30,
        extra_ca_file: None,
        payload_format: Default::default(),
    };
    let core = clarion::server::startup::build_core(&site).await.unwrap();
    let request = clarion::domain::NotificationRequest { title: "Nobody should send this".into(), ..Default::default() };
    let queued = clarion_core::broadcasts::queue_broadcast(&core, &core.sites.get("default").unwrap(), request, None).await.unwrap();
    (core, queued.id)
}

#[tokio::test]
async fn no_task_of_a_stopped_server_keeps_working_on_its_database() {
    let push = spawn_push_service().await;
    for abort in [false, true] {
        let app = spawn_app(&push.host()).await;
        let key = app.vapid_public_key().await;
        let endpoints = subscribe_minted_with_key(&app, &push, &key, 1).await;
        let (data_dir, host) = (app.data_dir.clone(), app.push_hosts.clone());
        let _guard = if abort { app.abort().await } else { app.stop().await };
        let (core, id) = queue_without_a_worker(&data_dir, &host).await;
        // A live worker polls every 2 s; give a leftover one time to claim and send.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let status = clarion_core::broadcasts::broadcast_status(&core, &core.sites.get("default").unwrap(), id).await.unwrap();
        assert_eq!(
            status.status,
            clarion::domain::BroadcastState::Queued,
            "a worker of the stopped server took the broadcast (abort: {abort})"
        );
        assert_eq!(push.requests(&endpoints[0]).await, 0, "nothing was sent (abort: {abort})");
    }
}

// ---- 2. Refusals are judged per subscription --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_subscription_among_300_does_not_silence_its_push_service() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.write_rate_limit = 0).await;
    let key = app.vapid_public_key().await;
    // The stranger's subscription comes first, so it is refused before anything else.
    let refused = subscribe_minted_with_key(&app, &push, &other_key(), 1).await.remove(0);
    let good = subscribe_minted_with_key(&app, &push, &key, 299).await;
    for round in 1..=MAX_VAPID_REFUSALS {
        let status = app.broadcast(&json!({ "title": format!("Round {round}"), "body": "" })).await;
        assert_eq!(status["delivered"], 299, "round {round}: {status}");
        assert_eq!(status["stopped_origins"], json!({}), "round {round}: one refusal is not systemic");
        if round < MAX_VAPID_REFUSALS {
            assert_eq!(status["failures"]["vapid_rejected"], 1, "round {round}: {status}");
            assert_eq!(status["removed"], 0);
        } else {
            assert_eq!(status["removed"], 1, "refused {MAX_VAPID_REFUSALS} times while the push service accepted others: removed");
        }
    }
    for endpoint in good.iter().step_by(37) {
        assert_eq!(push.messages(endpoint).await.len(), MAX_VAPID_REFUSALS as usize);
    }
    assert_eq!(app.list_json().await["total"], 299);
    assert!(app.list_json().await["subscriptions"].as_array().unwrap().iter().all(|s| s["endpoint"] != refused.as_str()));
}

#[tokio::test]
async fn a_push_service_that_refuses_our_key_is_stopped_after_a_bounded_number_of_tries_and_nothing_is_deleted() {
    let (rejecting, healthy) = (spawn_push_service().await, spawn_push_service().await);
    // One push in flight at a time, so the bound is exact.
    let app = spawn_app_with(&format!("{},{}", rejecting.host(), healthy.host()), |args| args.site.send_concurrency = 1).await;
    let key = app.vapid_public_key().await;
    // Every subscription at this push service was made with another key: to the server,
    // that looks exactly like its own key being refused.
    let refused = subscribe_minted_with_key(&app, &rejecting, &other_key(), 25).await;
    let fine = subscribe_minted_with_key(&app, &healthy, &key, 2).await;
    for round in 0..MAX_VAPID_REFUSALS {
        let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
        assert_eq!(status["delivered"], 2, "round {round}");
        assert_eq!(status["failures"]["vapid_rejected"], 25, "round {round}");
        let stopped = status["stopped_origins"].as_object().unwrap();
        assert_eq!(stopped.len(), 1, "{status}");
        assert!(stopped[&rejecting.origin].as_str().unwrap().contains("accepted none"), "{status}");
    }
    let mut requests = 0;
    for endpoint in &refused {
        requests += rejecting.requests(endpoint).await;
    }
    assert_eq!(
        requests,
        u64::from(SYSTEMIC_REFUSALS) * MAX_VAPID_REFUSALS as u64,
        "each broadcast stopped after {SYSTEMIC_REFUSALS} tries"
    );
    for endpoint in &fine {
        assert_eq!(healthy.messages(endpoint).await.len(), MAX_VAPID_REFUSALS as usize);
    }
    assert_eq!(app.list_json().await["total"], 27, "a refusal of our own key deletes nothing");
}

// ---- 3. Nobody re-keys a known endpoint ------------------------------------------------

#[tokio::test]
async fn a_known_endpoint_with_other_keys_is_refused_with_409_and_keeps_its_keys() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let subscription = push.mint(Some(&app.vapid_public_key().await)).await;
    assert_eq!(app.subscribe(&subscription).await.status(), 201);
    assert_eq!(app.subscribe(&subscription).await.status(), 200, "the same keys: an upsert");
    let mut hijack = subscription_with_endpoint(subscription["endpoint"].as_str().unwrap());
    hijack["keys"]["auth"] = json!("ZmFrZWF1dGhmYWtlYXV0aA");
    let refused = app.subscribe(&hijack).await;
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["field"], "keys");
    assert!(body["error"].as_str().unwrap().contains("other keys"), "{body}");
    let refused_fn = app.server_fn("save_subscription", &json!({ "subscription": hijack })).await;
    assert_eq!(refused_fn.status(), 409, "the page's server function too");
    // The owner still gets messages it can decrypt.
    let status = app.broadcast(&json!({ "title": "Still yours", "body": "" })).await;
    assert_eq!(status["delivered"], 1);
    let messages = push.messages(subscription["endpoint"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0]["payload"].to_string().contains("Still yours"), "{messages:?}");
}

#[tokio::test]
async fn a_stranger_who_knows_an_endpoint_can_neither_delete_nor_re_key_it() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let subscription = push.mint(Some(&app.vapid_public_key().await)).await;
    let endpoint = subscription["endpoint"].as_str().unwrap();
    let mut with_user = subscription.clone();
    with_user["user_token"] = json!(identity_token("owner-1"));
    assert_eq!(app.subscribe(&with_user).await.status(), 201);
    // Without the auth secret (an old page, or a stranger): 422 naming `auth`.
    let bare = app.unsubscribe_as(&json!({ "endpoint": endpoint })).await;
    assert_eq!(bare.status(), 422);
    assert_eq!(bare.json::<Value>().await.unwrap()["field"], "auth");
    // With a made-up one: 403.
    let forged = app.unsubscribe_as(&json!({ "endpoint": endpoint, "auth": "ZmFrZWF1dGhmYWtlYXV0aA" })).await;
    assert_eq!(forged.status(), 403);
    let forged_fn = app.server_fn("delete_subscription", &json!({ "endpoint": endpoint, "auth": "ZmFrZWF1dGhmYWtlYXV0aA" })).await;
    assert_eq!(forged_fn.status(), 403, "the page's server function too");
    // So re-posting it with his keys is still a 409, and the owner keeps user and messages.
    let mut hijack = subscription_with_endpoint(endpoint);
    hijack["keys"]["auth"] = json!("ZmFrZWF1dGhmYWtlYXV0aA");
    assert_eq!(app.subscribe(&hijack).await.status(), 409);
    let listed = app.list_json().await;
    assert_eq!(listed["subscriptions"][0]["user_id"], "owner-1", "{listed}");
    let status = app.broadcast(&json!({ "title": "Still yours", "body": "" })).await;
    assert_eq!(status["delivered"], 1);
    // The owner, with the secret, may.
    let own = app.unsubscribe_as(&json!({ "endpoint": endpoint, "auth": subscription["keys"]["auth"] })).await;
    assert_eq!(own.status(), 204);
    assert_eq!(app.list_json().await["total"], 0);
}

// ---- 4. Leases and storage faults -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_storage_pauses_a_broadcast_without_sending_anything_twice() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted_with_key(&app, &push, &app.vapid_public_key().await, 48).await;
    // Every commit of progress fails, as on a full disk, until the trigger is dropped.
    let (inject, heal) = if on_postgres() {
        (
            "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'database or disk is full (injected)'; END $$;
             CREATE TRIGGER injected_fault BEFORE UPDATE OF delivered ON broadcasts
               FOR EACH ROW WHEN (NEW.delivered > OLD.delivered) EXECUTE FUNCTION injected_fault();",
            "DROP TRIGGER injected_fault ON broadcasts",
        )
    } else {
        (
            "CREATE TRIGGER injected_fault BEFORE UPDATE OF delivered ON broadcasts WHEN NEW.delivered > OLD.delivered
             BEGIN SELECT RAISE(ABORT, 'database or disk is full (injected)'); END",
            "DROP TRIGGER injected_fault",
        )
    };
    execute_sql(&app, inject).await;
    let id = queue(&app, json!({ "title": "Once only", "body": "" })).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let paused = loop {
        let status = status_of(&app, id).await;
        if status["fault"].is_string() {
            break status;
        }
        assert!(Instant::now() < deadline, "the fault never showed in the status: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(paused["fault"].as_str().unwrap().contains("disk is full"), "{paused}");
    assert_eq!(paused["status"], "sending");
    // Several seconds of failing commits: before, every second re-sent the same pages.
    tokio::time::sleep(Duration::from_secs(4)).await;
    execute_sql(&app, heal).await;
    let status = app.wait_done(id).await;
    assert_eq!(status["delivered"], 48, "{status}");
    assert!(status.get("fault").is_none(), "the fault clears: {status}");
    let mut copies = Vec::new();
    for endpoint in &endpoints {
        copies.push(push.messages(endpoint).await.len());
    }
    eprintln!(
        "copies per subscriber after 4 s of failing commits: max {}, total {}",
        copies.iter().max().unwrap(),
        copies.iter().sum::<usize>()
    );
    assert!(copies.iter().all(|&n| n == 1), "{copies:?}");
}

// ---- 5. The client's address ------------------------------------------------------------

#[tokio::test]
async fn only_the_rightmost_untrusted_forwarded_address_is_the_client() {
    let app = spawn_app_with("", |args| {
        args.subscribe_rate_limit = 1;
        args.trusted_proxies = "127.0.0.1/32, 10.0.0.0/8".into();
    })
    .await;
    let from = |forwarded: &'static str, i: u32| {
        app.client
            .post(app.url("/api/v1/subscriptions"))
            .header("X-Forwarded-For", forwarded)
            .json(&subscription_with_endpoint(&format!("https://fcm.googleapis.com/fcm/send/xff-{i}")))
            .send()
    };
    // The client writes what it likes on the left; the proxies append what they saw.
    assert_eq!(from("1.1.1.1, 203.0.113.5, 10.1.2.3", 1).await.unwrap().status(), 201);
    assert_eq!(from("2.2.2.2, 203.0.113.5, 10.9.9.9", 2).await.unwrap().status(), 429, "the same client behind a forged left entry");
    assert_eq!(from("203.0.113.6", 3).await.unwrap().status(), 201, "another client");
    // IPv6 clients share a quota per /64.
    assert_eq!(from("2001:db8:1:2::1", 4).await.unwrap().status(), 201);
    assert_eq!(from("2001:db8:1:2:ffff::9", 5).await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_short_configured_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = serve_args(dir.path().join("data"), "", None);
    args.admin_token = Some("too-short-0123456789".into());
    let error = clarion::server::startup::Application::build(args).await.err().expect("refused");
    let text = format!("{error:#}");
    assert!(text.contains("CLARION_ADMIN_TOKEN") && text.contains("at least 32"), "{text}");
}

#[tokio::test]
async fn console_sessions_end_when_the_admin_token_changes() {
    let app = spawn_app("").await;
    let signed_in = app.server_fn("admin_sign_in", &json!({ "token": ADMIN_TOKEN })).await;
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let history = |app: &TestApp| app.client.get(app.url("/api/v1/notifications")).header("cookie", cookie.clone()).send();
    assert_eq!(history(&app).await.unwrap().status(), 200);
    let (data_dir, guard) = (app.data_dir.clone(), app.stop().await);
    forget_deployment_key(&data_dir, "admin_token").await;
    let mut changed =
        start_app_with(data_dir, "", None, |args| args.admin_token = Some("another-admin-token-0123456789abcdef".into())).await;
    changed.keep(guard);
    assert_eq!(history(&changed).await.unwrap().status(), 401, "the session belonged to the old token");
}

// ---- 6. Slow clients, stored endpoints, spelling -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_while_others_are_served() {
    let app = spawn_app_with("", |args| {
        args.header_timeout = 2;
        args.body_timeout = 2;
        // Every connection here comes from 127.0.0.1, one client; the per-client share
        // is the subject of connections.rs, the deadlines are this test's.
        args.max_connections_per_client = args.max_connections;
    })
    .await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let partial = if i % 2 == 0 {
            // Headers that never end.
            "POST /api/v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".to_string()
        } else {
            // A body that never comes.
            "POST /api/v1/subscriptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"endpoint\":"
                .to_string()
        };
        stream.write_all(partial.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    let answered = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(answered.status(), 200, "others are served meanwhile");
    let started = Instant::now();
    for mut stream in stalled {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buffer)).await;
        assert!(read.is_ok(), "a half-sent request was still open after {:?}", started.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_stored_endpoint_is_checked_against_todays_push_hosts() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted_with_key(&app, &push, &app.vapid_public_key().await, 2).await;
    let (data_dir, guard) = (app.data_dir.clone(), app.stop().await);
    // The operator removes the host from CLARION_PUSH_HOSTS.
    let mut app = start_app(data_dir, "", None).await;
    app.keep(guard);
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], 0);
    assert_eq!(status["failures"]["endpoint_not_allowed"], 2, "{status}");
    for endpoint in &endpoints {
        assert_eq!(push.requests(endpoint).await, 0);
    }
}

#[tokio::test]
async fn an_endpoint_is_found_however_it_was_spelled_when_posted() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let fcm = "https://FCM.googleapis.com:443/fcm/send/spelled";
    assert_eq!(app.subscribe(&subscription_with_endpoint(fcm)).await.status(), 201);
    assert_eq!(app.list_json().await["subscriptions"][0]["endpoint"], "https://fcm.googleapis.com/fcm/send/spelled");
    assert_eq!(app.unsubscribe(fcm).await.status(), 204, "DELETE with exactly the string that was POSTed");
    // Against the local push service, a send to the endpoint as spelled reaches it too.
    let mut minted = push.mint(Some(&app.vapid_public_key().await)).await;
    let stored = minted["endpoint"].as_str().unwrap().to_string();
    let spelled = stored.replacen("http://", "HTTP://", 1).replacen("/push/", "/push/./", 1);
    minted["endpoint"] = json!(spelled);
    assert_eq!(app.subscribe(&minted).await.status(), 201);
    let status = app.broadcast(&json!({ "title": "T", "body": "", "endpoint": spelled })).await;
    assert_eq!(status["delivered"], 1, "{status}");
    assert_eq!(push.messages(&stored).await.len(), 1);
    assert_eq!(app.unsubscribe(&spelled).await.status(), 204);
    assert_eq!(app.list_json().await["total"], 0);
}

#[tokio::test]
async fn links_that_browsers_open_as_another_site_are_refused() {
    let app = spawn_app("").await;
    for url in ["/\\evil.example/x", "/%5Cevil.example", "/%5cevil.example"] {
        let response = app.notify(&json!({ "title": "T", "body": "", "url": url })).await;
        assert_eq!(response.status(), 422, "{url}");
        assert_eq!(response.json::<Value>().await.unwrap()["field"], "url");
    }
}

#[tokio::test]
async fn a_server_function_body_over_the_limit_gets_413_json() {
    let app = spawn_app("").await;
    let huge = json!({ "subscription": subscription_with_endpoint(&format!("https://fcm.googleapis.com/{}", "x".repeat(100_000))) });
    let response = app.server_fn("save_subscription", &huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than"), "{body}");
}

// ---- 7. Every answer of the API is JSON -------------------------------------------------

/// The API's error body: `error` names the problem.
async fn json_error(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = response.text().await.unwrap();
    assert!(kind.starts_with("application/json"), "{status}: {kind}: {body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    (status, error["error"].as_str().expect("an error member").to_string())
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_oversize_bodies_get_json_errors_everywhere_under_api_v1() {
    let app = spawn_app("").await;
    let client = &app.client;
    for (method, path) in [("GET", "/api/v1/nope"), ("GET", "/api/v1"), ("POST", "/api/v1/"), ("DELETE", "/api/v1/subscriptions/x/y")] {
        let response = client.request(method.parse().unwrap(), app.url(path)).send().await.unwrap();
        let (status, error) = json_error(response).await;
        assert_eq!(status, 404, "{method} {path}");
        assert!(error.contains(path), "{error}");
    }
    for (method, path, allowed) in [
        ("PUT", "/api/v1/subscriptions", "POST"),
        ("DELETE", "/api/v1/vapid-public-key", "GET"),
        ("GET", "/api/v1/subscriptions/test", "POST"),
    ] {
        let response = client.request(method.parse().unwrap(), app.url(path)).send().await.unwrap();
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
        let (status, error) = json_error(response).await;
        assert_eq!(status, 405, "{method} {path}");
        assert!(error.contains(method) && error.contains(path), "{error}");
    }
    // Each route's own limit (8 KiB for the JSON of the public endpoints), and a body larger
    // than any route takes on routes that read none.
    let small_limit = "x".repeat(9 * 1024);
    let any_limit = "x".repeat(2 * 1024 * 1024 + 1);
    let oversize = [
        ("POST", "/api/v1/subscriptions", &small_limit),
        ("DELETE", "/api/v1/subscriptions", &small_limit),
        ("PUT", "/api/v1/subscriptions/topics", &small_limit),
        ("POST", "/api/v1/subscriptions/test", &small_limit),
        ("POST", "/api/v1/subscriptions/renew", &small_limit),
        ("POST", "/api/v1/subscriptions/sign-out", &small_limit),
        ("POST", "/api/v1/notifications/1/clicks", &small_limit),
        ("PUT", "/api/v1/topics/news", &small_limit),
        ("POST", "/api/v1/notifications", &any_limit),
        ("DELETE", "/api/v1/users/someone", &any_limit),
        ("DELETE", "/api/v1/notifications/1", &any_limit),
        ("GET", "/api/v1/vapid-public-key", &any_limit),
        ("GET", "/api/v1/nope", &any_limit),
    ];
    for (method, path, body) in oversize {
        let response = client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, error) = json_error(response).await;
        assert_eq!(status, 413, "{method} {path}: {error}");
    }
    assert_eq!(app.list_json().await["total"], 0, "nothing was changed");
}
