//! Identity tokens and the subscribe edge cases around them: the claims checked (`aud`,
//! `nbf`, `crit`), a re-sync with an expired token, signing out of a shared browser,
//! refused subscribes and the hourly quota, unknown members, and "forget me" in the send
//! history and the log. Real server, real push service; on PostgreSQL too.

use crate::helpers::*;
use serde_json::{json, Value};

async fn app_and_push() -> (TestApp, PushService) {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    (app, push)
}

fn endpoint(subscription: &Value) -> &str {
    subscription["endpoint"].as_str().unwrap()
}

async fn devices(app: &TestApp, user: &str) -> Vec<String> {
    let response = app.client.get(app.url(&format!("/api/v1/users/{user}/subscriptions"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let listed: Value = response.json().await.unwrap();
    listed["subscriptions"].as_array().unwrap().iter().map(|s| s["endpoint"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn identity_tokens_are_checked_for_audience_not_before_and_critical_extensions() {
    let (app, push) = app_and_push().await;
    let now = unix_now();
    let hs256 = json!({ "alg": "HS256", "typ": "JWT" });
    for (header, claims, why) in [
        (hs256.clone(), json!({ "sub": "u", "exp": now + 600, "aud": "billing.example.com" }), "aud"),
        (hs256.clone(), json!({ "sub": "u", "exp": now + 600, "aud": ["a", "b"] }), "aud"),
        (hs256.clone(), json!({ "sub": "u", "exp": now + 600, "nbf": now + 300 }), "nbf"),
        (json!({ "alg": "HS256", "crit": ["exp"], "exp": now + 600 }), json!({ "sub": "u", "exp": now + 600 }), "crit"),
    ] {
        let token = identity_token_with_header(IDENTITY_SECRET, &header, &claims);
        let (status, error, _) = app.subscribe_with(&push, &json!({ "user_token": token })).await;
        assert_eq!((status.as_u16(), error["field"].as_str()), (422, Some("user_token")), "{why}: {error}");
        assert!(error["error"].as_str().unwrap().contains(why), "{why}: {error}");
    }
    assert_eq!(app.list_json().await["total"], 0, "no refused token stored anything");
    // The default audience, a past nbf, and no aud at all are fine.
    for claims in [
        json!({ "sub": "u", "exp": now + 600, "aud": "clarion" }),
        json!({ "sub": "u", "exp": now + 600, "nbf": now - 10 }),
        json!({ "sub": "u", "exp": now + 600 }),
    ] {
        let (status, answer, _) = app.subscribe_with(&push, &json!({ "user_token": identity_token_with(IDENTITY_SECRET, &claims) })).await;
        assert_eq!(status, 201, "{claims}: {answer}");
    }
}

#[tokio::test]
async fn a_configured_audience_must_be_named_by_every_token() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.identity_audience = vec!["push.example.com".into()]).await;
    let now = unix_now();
    let with = |claims: Value| json!({ "user_token": identity_token_with(IDENTITY_SECRET, &claims) });
    let (status, error, _) = app.subscribe_with(&push, &with(json!({ "sub": "u", "exp": now + 600 }))).await;
    assert_eq!(status, 422, "no aud: {error}");
    assert!(error["error"].as_str().unwrap().contains("aud"), "{error}");
    let (status, _, _) = app.subscribe_with(&push, &with(json!({ "sub": "u", "exp": now + 600, "aud": "clarion" }))).await;
    assert_eq!(status, 422, "the default audience is not this one's");
    let (status, _, _) = app.subscribe_with(&push, &with(json!({ "sub": "u", "exp": now + 600, "aud": "push.example.com" }))).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_short_identity_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = serve_args(dir.path().join("data"), "", None);
    args.identity_secret = Some("only-31-bytes-long-0123456789ab".into());
    let error = clarion::server::startup::Application::build(args).await.err().expect("refused");
    let text = format!("{error:#}");
    assert!(text.contains("CLARION_IDENTITY_SECRET") && text.contains("at least 32"), "{text}");
    assert!(!text.contains("only-31-bytes"), "the secret is not printed: {text}");
}

#[tokio::test]
async fn a_re_sync_with_an_expired_token_keeps_the_subscription_and_its_user() {
    let (app, push) = app_and_push().await;
    let (status, _, subscription) = app.subscribe_with(&push, &json!({ "user_token": identity_token("user-42") })).await;
    assert_eq!(status, 201);
    let expired = identity_token_with(IDENTITY_SECRET, &json!({ "sub": "user-42", "exp": unix_now() - 3600 }));
    let mut again = subscription.clone();
    again["user_token"] = json!(expired);
    let response = app.subscribe(&again).await;
    assert_eq!(response.status(), 200, "the page re-synced with the token it had: {}", response.text().await.unwrap());
    assert_eq!(devices(&app, "user-42").await, [endpoint(&subscription)], "it keeps its user");
    // An expired token for another user does not move it either.
    again["user_token"] = json!(identity_token_with(IDENTITY_SECRET, &json!({ "sub": "user-7", "exp": unix_now() - 3600 })));
    assert_eq!(app.subscribe(&again).await.status(), 200);
    assert_eq!(devices(&app, "user-42").await.len(), 1);
    assert!(devices(&app, "user-7").await.is_empty());
    // Other keys, or a new endpoint, with an expired token: refused as before.
    let mut stranger = again.clone();
    stranger["keys"]["auth"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(app.subscribe(&stranger).await.status(), 422);
    let (status, error, _) = app.subscribe_with(&push, &json!({ "user_token": expired })).await;
    assert_eq!((status.as_u16(), error["field"].as_str()), (422, Some("user_token")), "{error}");
    assert_eq!(app.list_json().await["total"], 1);
}

#[tokio::test]
async fn a_signed_in_user_signs_a_shared_browser_out_and_it_keeps_its_topics() {
    let (app, push) = app_and_push().await;
    app.client.put(app.url("/api/v1/topics/news")).bearer_auth(ADMIN_TOKEN).json(&json!({ "label": "News" })).send().await.unwrap();
    let (status, _, subscription) =
        app.subscribe_with(&push, &json!({ "user_token": identity_token("user-42"), "topics": ["news"] })).await;
    assert_eq!(status, 201);
    let sign_out = |auth: &str| {
        app.client
            .post(app.url("/api/v1/subscriptions/sign-out"))
            .json(&json!({ "endpoint": endpoint(&subscription), "auth": auth }))
            .send()
    };
    assert_eq!(sign_out("AAAAAAAAAAAAAAAAAAAAAA").await.unwrap().status(), 403, "a stranger cannot");
    assert_eq!(devices(&app, "user-42").await.len(), 1);
    assert_eq!(sign_out(subscription["keys"]["auth"].as_str().unwrap()).await.unwrap().status(), 204);
    assert!(devices(&app, "user-42").await.is_empty(), "no longer the user's");
    let listed = app.list_json().await;
    assert_eq!(listed["total"], 1, "still subscribed");
    assert_eq!(listed["subscriptions"][0]["topics"], json!(["news"]));
    // A send to the user no longer reaches it.
    let done = app.broadcast(&json!({ "title": "For 42", "users": ["user-42"] })).await;
    assert_eq!(done["delivered"], 0, "{done}");
}

#[tokio::test]
async fn refused_subscribes_do_not_use_up_the_hourly_quota() {
    let push = spawn_push_service().await;
    let app = spawn_app_with(&push.host(), |args| args.subscribe_rate_limit = 2).await;
    let key = app.vapid_public_key().await;
    for _ in 0..5 {
        let mut bad = push.mint(Some(&key)).await;
        bad["keys"]["p256dh"] = json!("not-a-key");
        assert_eq!(app.subscribe(&bad).await.status(), 422);
        let (status, _, _) = app.subscribe_with(&push, &json!({ "user_token": "not-a-jwt" })).await;
        assert_eq!(status, 422);
        let (status, _, _) = app.subscribe_with(&push, &json!({ "topics": ["undefined"] })).await;
        assert_eq!(status, 422);
    }
    for _ in 0..2 {
        let (status, _, _) = app.subscribe_with(&push, &json!({})).await;
        assert_eq!(status, 201, "the quota is whole after fifteen refusals");
    }
    let (status, _, _) = app.subscribe_with(&push, &json!({})).await;
    assert_eq!(status, 429, "and it still holds");
}

#[tokio::test]
async fn unknown_members_of_a_subscribe_are_refused_by_name() {
    let (app, push) = app_and_push().await;
    for member in ["user_tokn", "user_id", "topic"] {
        let (status, error, _) = app.subscribe_with(&push, &json!({ member: "x" })).await;
        assert_eq!(status, 422, "{member}: {error}");
        assert_eq!(error["field"], member, "{error}");
    }
    assert_eq!(app.list_json().await["total"], 0);
}

#[tokio::test]
async fn forget_me_removes_the_user_from_the_send_history() {
    let (app, push) = app_and_push().await;
    app.subscribe_with(&push, &json!({ "user_token": identity_token("user-secret-42") })).await;
    app.subscribe_with(&push, &json!({ "user_token": identity_token("user-7") })).await;
    let done = app.broadcast(&json!({ "title": "Hello", "users": ["user-secret-42", "user-7"] })).await;
    assert_eq!(done["delivered"], 2, "{done}");
    let id = done["id"].as_i64().unwrap();
    let forgotten = app.client.delete(app.url("/api/v1/users/user-secret-42")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(forgotten.status(), 204);
    let status = app.notification(id).await;
    assert!(!status.to_string().contains("user-secret-42"), "{status}");
    assert!(status.to_string().contains("user-7"), "other users stay: {status}");
    let rows = query_i64(&app, "SELECT COUNT(*) FROM broadcast_users WHERE user_id = 'user-secret-42'").await;
    assert_eq!(rows, 0);
}
