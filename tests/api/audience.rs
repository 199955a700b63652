//! The audience end to end: topics (defined, chosen, changed), identity tokens and a
//! user's devices, targeted sends, scheduled sends and cancelling them, and idle expiry.
//! Real server, real push service, real HTTP; on PostgreSQL too (`CLARION_TEST_BACKEND`).

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn app_and_push() -> (TestApp, PushService) {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    (app, push)
}

async fn topics(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/api/v1/topics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The subscription's topics as the admin listing shows them.
async fn stored_topics(app: &TestApp, endpoint: &str) -> Vec<String> {
    let list = app.list_json().await;
    let row = list["subscriptions"].as_array().unwrap().iter().find(|s| s["endpoint"] == endpoint).expect("listed");
    serde_json::from_value(row["topics"].clone()).unwrap()
}

fn endpoint(subscription: &Value) -> &str {
    subscription["endpoint"].as_str().unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn topics_are_defined_by_the_admin_and_read_by_anyone() {
    let (app, _push) = app_and_push().await;
    assert_eq!(app.define_topic("news", &json!({ "label": "News", "description": "Daily", "default": true })).await, 201);
    assert_eq!(app.define_topic("sport", &json!({ "label": "Sport" })).await, 201);
    assert_eq!(app.define_topic("news", &json!({ "label": "Breaking news" })).await, 200, "an update");
    assert_eq!(
        topics(&app).await,
        json!({ "topics": [
            { "name": "news", "label": "Breaking news", "description": "Daily", "default": true },
            { "name": "sport", "label": "Sport", "description": "", "default": false }
        ] }),
        "a PUT that leaves description and default out keeps them"
    );
    // Errors: a bad name, no label, an unknown member, no admin token.
    for (name, body, field) in [
        ("Bad Name", json!({ "label": "x" }), "name"),
        (&"x".repeat(65), json!({ "label": "x" }), "name"),
        ("ok", json!({ "label": " " }), "label"),
        ("ok", json!({ "label": "x", "colour": "red" }), "colour"),
    ] {
        let response =
            app.client.put(app.url(&format!("/api/v1/topics/{name}"))).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, 422, "{name} {body}: {error}");
        assert_eq!(error["field"], field, "{error}");
    }
    let anonymous = app.client.put(app.url("/api/v1/topics/x")).json(&json!({ "label": "x" })).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(topics(&app).await["topics"].as_array().unwrap().len(), 2, "nothing changed");
    let gone = app.client.delete(app.url("/api/v1/topics/nope")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_subscription_chooses_topics_gets_the_defaults_and_changes_them_with_its_auth() {
    let (app, push) = app_and_push().await;
    app.define_topic("news", &json!({ "label": "News", "default": true })).await;
    app.define_topic("sport", &json!({ "label": "Sport" })).await;
    app.define_topic("weather", &json!({ "label": "Weather" })).await;

    let (status, answer, chose) = app.subscribe_with(&push, &json!({ "topics": ["sport", "weather", "sport"] })).await;
    assert_eq!(status, 201);
    assert_eq!(answer["topics"], json!(["sport", "weather"]));
    let (status, answer, defaulted) = app.subscribe_with(&push, &json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(answer["topics"], json!(["news"]), "no topics: the defaults");

    // An unknown topic is a 422 naming it, and stores nothing.
    let (status, error, refused) = app.subscribe_with(&push, &json!({ "topics": ["sport", "sprot"] })).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "topics");
    assert!(error["error"].as_str().unwrap().contains("sprot"), "{error}");
    assert!(app.list_json().await["subscriptions"].as_array().unwrap().iter().all(|s| s["endpoint"] != refused["endpoint"]));

    // Re-subscribing without topics keeps the chosen ones.
    assert_eq!(app.subscribe(&chose).await.status(), 200);
    assert_eq!(stored_topics(&app, endpoint(&chose)).await, ["sport", "weather"]);

    // Changing them: the whole set is replaced, proven by the auth secret.
    let change = |auth: &str, topics: Value| json!({ "endpoint": endpoint(&defaulted), "auth": auth, "topics": topics });
    let auth = defaulted["keys"]["auth"].as_str().unwrap();
    let put = |body: Value| app.client.put(app.url("/api/v1/subscriptions/topics")).json(&body).send();
    let response = put(change(auth, json!(["weather", "sport"]))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "topics": ["sport", "weather"] }));
    let response = put(change(auth, json!([]))).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "topics": [] }), "an empty set is a choice too");
    let (status, error) = error_of(put(change("AAAAAAAAAAAAAAAAAAAAAA", json!(["news"]))).await.unwrap()).await;
    assert_eq!((status, error["error"].as_str().unwrap().contains("auth")), (403, true), "{error}");
    let (status, error) = error_of(put(change(auth, json!(["nope"]))).await.unwrap()).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("topics")));
    assert_eq!(stored_topics(&app, endpoint(&defaulted)).await, Vec::<String>::new(), "refusals changed nothing");

    // Deleting a topic removes it from every subscription.
    let deleted = app.client.delete(app.url("/api/v1/topics/sport")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(stored_topics(&app, endpoint(&chose)).await, ["weather"]);
}

#[tokio::test]
async fn identity_tokens_tie_subscriptions_to_a_user_and_bad_ones_store_nothing() {
    let (app, push) = app_and_push().await;
    let now = unix_now();
    let (status, _, laptop) = app.subscribe_with(&push, &json!({ "user_token": identity_token("user-42") })).await;
    assert_eq!(status, 201);
    let (status, _, phone) = app.subscribe_with(&push, &json!({ "user_token": identity_token("user-42") })).await;
    assert_eq!(status, 201);
    app.subscribe_with(&push, &json!({ "user_token": identity_token("user-7") })).await;

    for (token, why) in [
        (identity_token_with(IDENTITY_SECRET, &json!({ "sub": "user-42", "exp": now - 60 })), "expired"),
        (identity_token_with("another-secret-of-enough-length-000000", &json!({ "sub": "user-42", "exp": now + 60 })), "signature"),
        (identity_token_with(IDENTITY_SECRET, &json!({ "sub": "user-42", "exp": now + 2 * 86_400 })), "24 hours"),
        (identity_token_with(IDENTITY_SECRET, &json!({ "exp": now + 60 })), "sub"),
        ("not-a-jwt".to_string(), "JWT"),
    ] {
        let (status, error, _) = app.subscribe_with(&push, &json!({ "user_token": token })).await;
        assert_eq!(status, 422, "{why}");
        assert_eq!(error["field"], "user_token");
        assert!(error["error"].as_str().unwrap().contains(why), "{why}: {error}");
    }
    assert_eq!(app.list_json().await["total"], 3, "no refused token stored anything");

    let devices = |user: &str| {
        let url = app.url(&format!("/api/v1/users/{user}/subscriptions"));
        let client = app.client.clone();
        async move { client.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap() }
    };
    let listed: Value = devices("user-42").await.json().await.unwrap();
    let endpoints: Vec<&str> = listed["subscriptions"].as_array().unwrap().iter().map(|s| s["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints, [endpoint(&laptop), endpoint(&phone)]);
    assert_eq!(listed["subscriptions"][0]["user_id"], "user-42");
    assert_eq!(app.client.get(app.url("/api/v1/users/user-42/subscriptions")).send().await.unwrap().status(), 401);

    // Forget me: every device goes, the other user stays.
    let forgotten = app.client.delete(app.url("/api/v1/users/user-42")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(forgotten.status(), 204);
    assert_eq!(devices("user-42").await.json::<Value>().await.unwrap()["subscriptions"], json!([]));
    assert_eq!(app.list_json().await["total"], 1);
}

#[tokio::test]
async fn without_an_identity_secret_a_user_token_is_refused() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.identity_secret = None).await;
    let (status, error, _) = app.subscribe_with(&push, &json!({ "user_token": identity_token("u") })).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "user_token");
    assert!(error["error"].as_str().unwrap().contains("CLARION_IDENTITY_SECRET"), "{error}");
    assert_eq!(app.list_json().await["total"], 0);
}

/// Which of `subscriptions` received notification `title`.
async fn reached(push: &PushService, subscriptions: &[&Value], title: &str) -> Vec<bool> {
    let mut reached = Vec::new();
    for subscription in subscriptions {
        let messages = push.messages(endpoint(subscription)).await;
        reached.push(messages.iter().any(|m| m["payload"].as_str().is_some_and(|p| p.contains(title))));
    }
    reached
}

#[tokio::test]
async fn a_send_reaches_its_topics_its_users_or_both_and_nobody_else() {
    let (app, push) = app_and_push().await;
    app.define_topic("news", &json!({ "label": "News" })).await;
    app.define_topic("sport", &json!({ "label": "Sport" })).await;
    let (_, _, news) = app.subscribe_with(&push, &json!({ "topics": ["news"] })).await;
    let (_, _, sport) = app.subscribe_with(&push, &json!({ "topics": ["sport"] })).await;
    let (_, _, both) = app.subscribe_with(&push, &json!({ "topics": ["news", "sport"] })).await;
    let (_, _, alice_news) = app.subscribe_with(&push, &json!({ "topics": ["news"], "user_token": identity_token("alice") })).await;
    let (_, _, alice_other) = app.subscribe_with(&push, &json!({ "topics": [], "user_token": identity_token("alice") })).await;
    let all = [&news, &sport, &both, &alice_news, &alice_other];

    let status = app.broadcast(&json!({ "title": "T-news", "topics": ["news"] })).await;
    assert_eq!(status["total"], 3);
    assert_eq!(status["delivered"], 3);
    assert_eq!(status["audience"], json!({ "topics": ["news"] }));
    assert_eq!(reached(&push, &all, "T-news").await, [true, false, true, true, false]);

    let status = app.broadcast(&json!({ "title": "T-any", "topics": ["sport", "news"] })).await;
    assert_eq!(status["total"], 4, "any of the topics");
    assert_eq!(reached(&push, &all, "T-any").await, [true, true, true, true, false]);

    let status = app.broadcast(&json!({ "title": "T-alice", "users": ["alice", "nobody-yet"] })).await;
    assert_eq!(status["total"], 2, "every device of the user");
    assert_eq!(status["audience"], json!({ "users": ["alice", "nobody-yet"] }));
    assert_eq!(reached(&push, &all, "T-alice").await, [false, false, false, true, true]);

    let status = app.broadcast(&json!({ "title": "T-both", "users": ["alice"], "topics": ["news"] })).await;
    assert_eq!(status["total"], 1, "both: the subscriptions that match both");
    assert_eq!(reached(&push, &all, "T-both").await, [false, false, false, true, false]);

    let status = app.broadcast(&json!({ "title": "T-all" })).await;
    assert_eq!(status["total"], 5, "neither: everyone");
    assert!(status.get("audience").is_none());
}

#[tokio::test]
async fn a_misspelt_or_unknown_target_is_a_422_and_never_widens_a_send() {
    let (app, push) = app_and_push().await;
    app.define_topic("news", &json!({ "label": "News" })).await;
    let (_, _, only) = app.subscribe_with(&push, &json!({})).await;
    for (body, field) in [
        (json!({ "title": "t", "userz": ["42"] }), "userz"),
        (json!({ "title": "t", "topic": "ok", "Topics": ["news"] }), "Topics"),
        (json!({ "title": "t", "topics": ["nws"] }), "topics"),
        (json!({ "title": "t", "topics": [] }), "topics"),
        (json!({ "title": "t", "users": [] }), "users"),
        (json!({ "title": "t", "users": [""] }), "users"),
        (json!({ "title": "t", "users": (0..10_001).map(|i| i.to_string()).collect::<Vec<_>>() }), "users"),
        (json!({ "title": "t", "topics": ["news"], "endpoint": endpoint(&only) }), "endpoint"),
    ] {
        let (status, error) = error_of(app.notify(&body).await).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["field"], field, "{error}");
    }
    let (_, misspelt) = error_of(app.notify(&json!({ "title": "t", "userz": ["42"] })).await).await;
    assert!(misspelt["error"].as_str().unwrap().contains("userz"), "the error names the member: {misspelt}");
    let history: Value =
        app.client.get(app.url("/api/v1/notifications")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(history["notifications"], json!([]), "nothing was queued");
    assert_eq!(push.requests(endpoint(&only)).await, 0);

    // 10,000 users fit in one request.
    let many: Vec<String> = (0..10_000).map(|i| format!("user-{i:0>120}")).collect();
    let status = app.broadcast(&json!({ "title": "t", "users": many })).await;
    assert_eq!(status["total"], 0);
    assert_eq!(status["audience"]["users"].as_array().unwrap().len(), 10_000);
}

fn in_seconds(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339()
}

#[tokio::test]
async fn a_scheduled_send_waits_for_its_time_and_can_be_cancelled_until_then() {
    let (app, push) = app_and_push().await;
    let (_, _, subscriber) = app.subscribe_with(&push, &json!({})).await;
    for (send_at, why) in [(in_seconds(-60), "past"), (in_seconds(91 * 86_400), "90 days"), ("tomorrow at 9".into(), "RFC 3339")] {
        let (status, error) = error_of(app.notify(&json!({ "title": "t", "send_at": send_at })).await).await;
        assert_eq!((status, error["field"].as_str()), (422, Some("send_at")), "{why}");
        assert!(error["error"].as_str().unwrap().contains(why), "{why}: {error}");
    }

    // Scheduled a few seconds ahead: `scheduled` until then, sent within seconds after.
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let response = app.notify(&json!({ "title": "Soon", "send_at": at.to_rfc3339() })).await;
    assert_eq!(response.status(), 202);
    let soon = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let status = app.notification(soon).await;
    assert_eq!(status["status"], "scheduled");
    let shown = chrono::DateTime::parse_from_rfc3339(status["send_at"].as_str().unwrap()).unwrap().with_timezone(&chrono::Utc);
    assert!(shown >= at && shown - at < chrono::Duration::seconds(1), "{shown} for {at}: whole seconds, never early");
    assert_eq!(push.requests(endpoint(&subscriber)).await, 0);

    // Another, later: cancelled before it starts.
    let response = app.notify(&json!({ "title": "Later", "send_at": in_seconds(3600) })).await;
    let later = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let cancel = |id: i64| app.client.delete(app.url(&format!("/api/v1/notifications/{id}"))).bearer_auth(ADMIN_TOKEN).send();
    let cancelled = cancel(later).await.unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(cancel(later).await.unwrap().status(), 409, "cancelled already");
    assert_eq!(cancel(999_999).await.unwrap().status(), 404);

    let done = app.wait_done_within(soon, Duration::from_secs(15)).await;
    let started = chrono::DateTime::parse_from_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    assert!(started >= at - chrono::Duration::seconds(1), "started at {started}, scheduled for {at}");
    assert!(started <= at + chrono::Duration::seconds(5), "started at {started}, scheduled for {at}");
    assert_eq!(done["delivered"], 1);
    assert_eq!(cancel(soon).await.unwrap().status(), 409, "once it has started");
    let messages = push.messages(endpoint(&subscriber)).await;
    assert_eq!(messages.len(), 1, "the cancelled one was never sent");
    assert!(messages[0]["payload"].as_str().unwrap().contains("Soon"));

    let scheduled: Value = app
        .client
        .get(app.url("/api/v1/notifications?status=scheduled"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(scheduled["notifications"], json!([]));
}

#[tokio::test]
async fn a_scheduled_send_survives_a_restart() {
    let (app, push) = app_and_push().await;
    let (_, _, subscriber) = app.subscribe_with(&push, &json!({})).await;
    let response = app.notify(&json!({ "title": "After restart", "send_at": in_seconds(3) })).await;
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let app = app.restart().await;
    assert_eq!(app.notification(id).await["status"], "scheduled");
    app.wait_done_within(id, Duration::from_secs(15)).await;
    assert_eq!(push.messages(endpoint(&subscriber)).await.len(), 1);
}

#[tokio::test]
async fn idle_subscriptions_are_removed_and_counted_and_a_click_or_visit_keeps_one() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| {
        args.idle_expiry_days = 30;
        args.idle_sweep_seconds = 1;
    })
    .await;
    app.define_topic("news", &json!({ "label": "News" })).await;
    let (_, _, idle) = app.subscribe_with(&push, &json!({})).await;
    let (_, _, clicked) = app.subscribe_with(&push, &json!({})).await;
    let (_, _, visited) = app.subscribe_with(&push, &json!({})).await;
    let (_, _, chose) = app.subscribe_with(&push, &json!({})).await;
    let sent = app.broadcast(&json!({ "title": "Hello" })).await;
    assert_eq!(sent["delivered"], 4, "a push service's 201 does not count as seen");
    execute_sql(&app, "UPDATE subscriptions SET last_seen_at = '2020-01-01T00:00:00.000Z'").await;

    // A click report naming its subscription, a page visit (re-subscribe), a topic change.
    let click = app
        .client
        .post(app.url(&format!("/api/v1/notifications/{}/clicks", sent["id"])))
        .json(&json!({ "endpoint": endpoint(&clicked), "auth": clicked["keys"]["auth"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 204);
    assert_eq!(app.subscribe(&visited).await.status(), 200);
    let change = json!({ "endpoint": endpoint(&chose), "auth": chose["keys"]["auth"], "topics": ["news"] });
    assert_eq!(app.client.put(app.url("/api/v1/subscriptions/topics")).json(&change).send().await.unwrap().status(), 200);

    let mut left = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = app.list_json().await["subscriptions"].as_array().unwrap().iter().map(|s| s["endpoint"].clone()).collect();
        if left.len() == 3 {
            break;
        }
    }
    assert_eq!(left, [clicked["endpoint"].clone(), visited["endpoint"].clone(), chose["endpoint"].clone()], "only the idle one went");
    assert!(!left.contains(&idle["endpoint"]));
    assert_eq!(query_i64(&app, "SELECT value FROM counters WHERE name = 'idle_removed'").await, 1);
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("clarion_subscriptions_idle_removed_total 1"), "{metrics}");
}

#[tokio::test]
async fn idle_expiry_is_off_by_default() {
    let (app, push) = app_and_push().await;
    app.subscribe_with(&push, &json!({})).await;
    execute_sql(&app, "UPDATE subscriptions SET last_seen_at = '2000-01-01T00:00:00.000Z'").await;
    let app = app.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.list_json().await["total"], 1);
}

// ---- Renewal (pushsubscriptionchange) ------------------------------------------------------

#[tokio::test]
async fn a_renewed_subscription_keeps_its_user_and_topics_and_the_old_one_goes() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    assert_eq!(app.define_topic("news", &json!({ "label": "News", "default": true })).await, 201);
    assert_eq!(app.define_topic("sport", &json!({ "label": "Sport" })).await, 201);
    let (status, _, old) = app.subscribe_with(&push, &json!({ "topics": ["sport"], "user_token": identity_token("renewing-user") })).await;
    assert_eq!(status, 201);
    let renewed = push.mint(Some(&app.vapid_public_key().await)).await;
    let renew = |body: Value| app.client.post(app.url("/api/v1/subscriptions/renew")).json(&body).send();
    // A stranger who knows the old endpoint cannot move it onto his own subscription.
    let forged =
        renew(json!({ "old": { "endpoint": old["endpoint"], "auth": "ZmFrZWF1dGhmYWtlYXV0aA" }, "subscription": renewed })).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.list_json().await["total"], 1, "a refused renewal changes nothing");
    let done =
        renew(json!({ "old": { "endpoint": old["endpoint"], "auth": old["keys"]["auth"] }, "subscription": renewed })).await.unwrap();
    assert_eq!(done.status(), 201);
    assert_eq!(done.json::<Value>().await.unwrap()["topics"], json!(["sport"]), "not the default topics");
    let listed = app.list_json().await;
    assert_eq!(listed["total"], 1, "{listed}");
    let only = &listed["subscriptions"][0];
    assert_eq!((only["endpoint"].clone(), only["user_id"].clone()), (renewed["endpoint"].clone(), json!("renewing-user")));
    // A send to the user reaches the renewed subscription.
    let sent = app.broadcast(&json!({ "title": "Still you", "users": ["renewing-user"] })).await;
    assert_eq!(sent["delivered"], 1);
    assert_eq!(push.messages(renewed["endpoint"].as_str().unwrap()).await.len(), 1);
    // The old one is gone: renewing it again is a 404, and the worker then stores the new one.
    let again =
        renew(json!({ "old": { "endpoint": old["endpoint"], "auth": old["keys"]["auth"] }, "subscription": renewed })).await.unwrap();
    assert_eq!(again.status(), 404);
}
