//! The delivery policy against `clarion push-service` faults: each row of the outcome
//! table, per-origin isolation, JWT reuse, and the progress event stream.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The operator rotates the VAPID key: the app stops, the recorded key is forgotten, and
/// the app starts again on the same data with a new key.
async fn with_a_new_vapid_key(app: TestApp) -> TestApp {
    let (data_dir, host) = (app.data_dir.clone(), app.push_hosts.clone());
    let rotated = clarion_push::vapid::VapidKeyMaterial::generate();
    let guard = app.stop().await;
    forget_deployment_key(&data_dir, "vapid_key").await;
    let mut again = start_app(data_dir, &host, Some(rotated.private_raw_base64url())).await;
    again.keep(guard);
    again
}

/// Two push services (two origins) that the app trusts.
async fn two_origins(tweak: impl FnOnce(&mut clarion::server::config::ServeArgs)) -> (TestApp, PushService, PushService) {
    let (a, b) = (spawn_push_service().await, spawn_push_service().await);
    let app = spawn_app_with(&format!("{},{}", a.host(), b.host()), tweak).await;
    (app, a, b)
}

async fn queue(app: &TestApp, body: Value) -> i64 {
    let response = app.notify(&body).await;
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// A push service with no open connection gets one push first: the rest of the window
/// waits for its answer, then goes over the connection it opened (HTTP/2 by ALPN), instead
/// of each opening its own. The push service is 100 ms away: before, every push of the
/// window that started during the handshake opened a TLS connection of its own.
#[tokio::test]
async fn a_broadcast_opens_one_tls_connection_to_a_push_service_and_sends_every_push_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (push, ca_file) = spawn_tls_push_service(dir.path(), Duration::from_millis(100)).await;
    let app = spawn_app_with(&push.host(), |args| {
        args.site.extra_ca_file = Some(ca_file);
        args.site.send_concurrency = 64;
        args.write_rate_limit = 0;
    })
    .await;
    let n = 150;
    subscribe_minted(&app, &push, n).await;
    // The test's own client made one connection (minting); it is counted before and after.
    let before = push.summary().await["connections"].as_u64().unwrap();
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], n, "{status}");
    let summary = push.summary().await;
    assert_eq!(summary["by_messages"]["1"], n, "each subscriber got it once: {summary}");
    assert_eq!(summary["connections"].as_u64().unwrap() - before, 1, "Clarion opened one connection: {summary}");
}

/// `CLARION_SEND_CONCURRENCY` bounds the requests a push service has from Clarion at once,
/// though the pushes of the next pages are encrypted while a page's requests are out. Each
/// push waits 50 ms at the push service, so the permits are all taken most of the time.
#[tokio::test]
async fn the_requests_in_flight_never_exceed_the_send_concurrency() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| {
        args.site.send_concurrency = 4;
        args.write_rate_limit = 0;
    })
    .await;
    let n = 40;
    subscribe_minted(&app, &push, n).await;
    push.fault(&json!({ "endpoint": "*", "mode": "delay", "delay_ms": 50 })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], n, "{status}");
    let summary = push.summary().await;
    assert_eq!(summary["by_messages"]["1"], n, "each subscriber got it once: {summary}");
    assert_eq!(summary["peak_in_flight"], 4, "at most 4 requests at once, and the 4 were used: {summary}");
}

#[tokio::test]
async fn a_429_is_waited_out_per_retry_after_then_delivered() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 1).await;
    push.fault(&json!({ "endpoint": endpoints[0], "status": 429, "retry_after": 1, "count": 1 })).await;
    let started = Instant::now();
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], 1);
    assert_eq!(status["retried"], 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(push.requests(&endpoints[0]).await, 2);
}

#[tokio::test]
async fn a_500_is_retried_then_delivered_or_after_the_limit_failed() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 2).await;
    push.fault(&json!({ "endpoint": endpoints[0], "status": 500, "count": 1 })).await;
    push.fault(&json!({ "endpoint": endpoints[1], "status": 500 })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], 1);
    assert_eq!(status["failed"], 1);
    assert_eq!(status["failures"]["push_service_error"], 1);
    // max_attempts is 3 in tests: one retry for the first, two for the second.
    assert_eq!(status["retried"], 3);
    assert_eq!(push.requests(&endpoints[0]).await, 2);
    assert_eq!(push.requests(&endpoints[1]).await, 3);
    assert_eq!(app.list_json().await["total"], 2, "a failing push service is not a dead subscription");
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 1).await;
    push.fault(&json!({ "endpoint": endpoints[0], "mode": "drop", "count": 1 })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], 1);
    assert_eq!(status["retried"], 1);
}

#[tokio::test]
async fn a_404_removes_the_subscription_and_a_413_keeps_it() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 2).await;
    push.fault(&json!({ "endpoint": endpoints[0], "status": 404 })).await;
    push.fault(&json!({ "endpoint": endpoints[1], "status": 413 })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["removed"], 1);
    assert_eq!(status["failures"]["payload_too_large"], 1);
    assert_eq!(status["retried"], 0);
    let list = app.list_json().await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["subscriptions"][0]["endpoint"], endpoints[1]);
}

#[tokio::test]
async fn a_redirect_is_neither_followed_nor_retried() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 1).await;
    // The redirect points at a subscription Clarion does not know; following it would show there.
    let elsewhere = push.mint(Some(&app.vapid_public_key().await)).await;
    let elsewhere = elsewhere["endpoint"].as_str().unwrap();
    push.fault(&json!({ "endpoint": endpoints[0], "status": 307, "location": elsewhere })).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["failures"]["rejected"], 1);
    assert_eq!(status["retried"], 0);
    assert_eq!(push.requests(&endpoints[0]).await, 1);
    assert_eq!(push.requests(elsewhere).await, 0, "the redirect was not followed");
}

#[tokio::test]
async fn a_few_refused_subscriptions_fail_alone_and_affect_no_other_origin() {
    // One push in flight at a time, so every request made is observable.
    let (app, rejecting, healthy) = two_origins(|args| args.site.send_concurrency = 1).await;
    let other_key = clarion_push::vapid::VapidKeyMaterial::generate();
    let other_key = clarion::domain::base64url::encode(&other_key.public_key());
    let mut refused = Vec::new();
    for _ in 0..3 {
        let subscription = rejecting.mint(Some(&other_key)).await;
        assert_eq!(app.subscribe(&subscription).await.status(), 201);
        refused.push(subscription["endpoint"].as_str().unwrap().to_string());
    }
    let fine = subscribe_minted(&app, &healthy, 2).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["failures"]["vapid_rejected"], 3);
    assert_eq!(status["delivered"], 2);
    assert_eq!(status["stopped_origins"], json!({}), "three refusals are the subscriptions' fault, not our key's");
    for endpoint in &refused {
        assert_eq!(rejecting.requests(endpoint).await, 1, "each refused subscription was tried once");
    }
    for endpoint in &fine {
        assert_eq!(healthy.messages(endpoint).await.len(), 1);
    }
    assert_eq!(app.list_json().await["total"], 5, "a configuration error deletes nothing");
}

#[tokio::test]
async fn a_slow_origin_does_not_stall_another() {
    let (app, slow, fast) = two_origins(|_| {}).await;
    let stalled = subscribe_minted(&app, &slow, 1).await;
    let quick = subscribe_minted(&app, &fast, 5).await;
    push_fault_delay(&slow, &stalled[0], 3_000).await;
    let started = Instant::now();
    let id = queue(&app, json!({ "title": "T", "body": "" })).await;
    for endpoint in &quick {
        while fast.messages(endpoint).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(2), "the fast origin waited for the slow one");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let status = app.wait_done(id).await;
    assert_eq!(status["delivered"], 6);
}

async fn push_fault_delay(push: &PushService, endpoint: &str, delay_ms: u64) {
    push.fault(&json!({ "endpoint": endpoint, "mode": "delay", "delay_ms": delay_ms, "count": 1 })).await;
}

#[tokio::test]
async fn a_throttled_origin_does_not_stall_another() {
    let (app, throttled, fast) = two_origins(|_| {}).await;
    let held = subscribe_minted(&app, &throttled, 1).await;
    let quick = subscribe_minted(&app, &fast, 3).await;
    throttled.fault(&json!({ "endpoint": held[0], "status": 503, "retry_after": 2, "count": 1 })).await;
    let started = Instant::now();
    let id = queue(&app, json!({ "title": "T", "body": "" })).await;
    for endpoint in &quick {
        while fast.messages(endpoint).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(1), "the fast origin waited for the throttled one");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(app.notification(id).await["status"], "sending", "the throttled push is still pending");
    let status = app.wait_done(id).await;
    assert_eq!(status["delivered"], 4);
    assert_eq!(status["retried"], 1);
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn the_jwt_is_reused_per_origin_and_differs_between_origins() {
    let (app, a, b) = two_origins(|_| {}).await;
    let at_a = subscribe_minted(&app, &a, 2).await;
    let at_b = subscribe_minted(&app, &b, 2).await;
    app.broadcast(&json!({ "title": "One", "body": "" })).await;
    app.broadcast(&json!({ "title": "Two", "body": "" })).await;
    let headers = |push: &PushService, endpoints: Vec<String>| {
        let push_client = push.client.clone();
        let origin = push.origin.clone();
        async move {
            let mut all = Vec::new();
            for endpoint in endpoints {
                let messages: Vec<Value> = push_client
                    .get(format!("{origin}/_test/messages"))
                    .query(&[("endpoint", &endpoint)])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                all.extend(messages.iter().map(|m| m["authorization"].as_str().unwrap().to_string()));
            }
            all
        }
    };
    let (ha, hb) = (headers(&a, at_a).await, headers(&b, at_b).await);
    assert_eq!(ha.len(), 4);
    assert_eq!(hb.len(), 4);
    assert!(ha.iter().all(|h| h == &ha[0]), "one token for every push to origin A");
    assert!(hb.iter().all(|h| h == &hb[0]), "one token for every push to origin B");
    assert_ne!(ha[0], hb[0], "each origin has its own token (its own aud)");
}

#[tokio::test]
async fn progress_streams_as_server_sent_events_until_done() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 3).await;
    push.fault(&json!({ "endpoint": endpoints[0], "status": 500, "count": 1 })).await;
    let id = queue(&app, json!({ "title": "T", "body": "" })).await;
    let response = app.client.get(app.url(&format!("/api/v1/notifications/{id}/events"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(20), response.text()).await.expect("the stream ends after done").unwrap();
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).unwrap()))
        })
        .collect();
    let (last_name, last) = events.last().expect("at least one event");
    assert_eq!(*last_name, "done");
    assert_eq!(last["delivered"], 3);
    assert_eq!(last["retried"], 1);
    assert!(events[..events.len() - 1].iter().all(|(name, _)| *name == "progress"));
    let unknown = app.client.get(app.url("/api/v1/notifications/999/events")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let anonymous = app.client.get(app.url(&format!("/api/v1/notifications/{id}/events"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn after_a_key_rotation_old_subscriptions_are_removed_without_stopping_the_origin() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    // Two browsers subscribe under the first key, then the operator rotates it.
    let stale = subscribe_minted(&app, &push, 2).await;
    let app = with_a_new_vapid_key(app).await;
    // A third browser subscribes under the new key; the old ones have not come back yet.
    let fresh = subscribe_minted(&app, &push, 1).await;
    let status = app.broadcast(&json!({ "title": "After the rotation", "body": "" })).await;
    assert_eq!(status["total"], 3);
    assert_eq!(status["delivered"], 1, "{status}");
    assert_eq!(status["removed"], 2, "{status}");
    assert_eq!(status["failed"], 0, "{status}");
    assert_eq!(status["stopped_origins"], json!({}), "the current key works, so the origin stays open");
    assert_eq!(push.messages(&fresh[0]).await.len(), 1);
    let listed: Vec<String> =
        app.list_json().await["subscriptions"].as_array().unwrap().iter().map(|s| s["endpoint"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, fresh, "the unusable ones are gone: {stale:?}");
}

#[tokio::test]
async fn a_test_push_judges_a_refusal_as_a_broadcast_does() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let minted = push.mint(Some(&app.vapid_public_key().await)).await;
    let created = app.client.post(app.url("/api/v1/subscriptions")).json(&minted).send().await.unwrap();
    assert_eq!(created.status(), 201);
    // The operator rotates the key; the browser has not come back since.
    let app = with_a_new_vapid_key(app).await;
    let answer = app
        .client
        .post(app.url("/api/v1/subscriptions/test"))
        .json(&json!({ "endpoint": minted["endpoint"], "auth": minted["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A broadcast removes a subscription its push service refuses under a previous key;
    // the test push goes through the same policy, so it does too.
    assert_eq!(answer.json::<Value>().await.unwrap()["outcome"], "gone");
    assert_eq!(app.list_json().await["total"], 0);
}

#[tokio::test]
async fn a_retry_after_that_another_instance_recorded_is_honoured() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let endpoints = subscribe_minted(&app, &push, 2).await;
    // Another instance got `429 Retry-After: 2` from this push service a moment ago and
    // shared it through the database.
    let until = chrono::Utc::now().timestamp_millis() + 2_000;
    let origin = push.origin.trim_end_matches('/');
    execute_sql(&app, &format!("INSERT INTO origin_holds (origin, until_ms) VALUES ('{origin}', {until})")).await;
    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!(status["delivered"], 2, "{status}");
    assert!(chrono::Utc::now().timestamp_millis() >= until, "sent only once the hold ended");
    for endpoint in &endpoints {
        assert_eq!(push.requests(endpoint).await, 1, "nothing was sent to it while it was held");
    }
}
