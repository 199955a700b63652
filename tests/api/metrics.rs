//! `GET /metrics`: who may read it, and that its series count what really happened
//! (pushes through `clarion push-service`, requests, claims, the stored audience).

use crate::helpers::*;
use serde_json::json;

/// The value of the sample whose name-and-labels is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn scrape_with_token(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_pushes_requests_claims_and_the_audience() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    subscribe_minted(&app, &push, 3).await;
    let gone = subscribe_minted(&app, &push, 1).await;
    push.expire(&gone[0]).await;

    let status = app.broadcast(&json!({ "title": "T", "body": "" })).await;
    assert_eq!((status["delivered"].as_i64(), status["removed"].as_i64()), (Some(3), Some(1)));
    assert_eq!(app.client.get(app.url("/no-such-page")).send().await.unwrap().status(), 404);

    let text = scrape_with_token(&app).await;
    let origin = push.origin.trim_end_matches('/');
    assert_eq!(sample(&text, r#"clarion_pushes_total{outcome="delivered"}"#), Some(3.0), "{text}");
    assert_eq!(sample(&text, r#"clarion_pushes_total{outcome="gone"}"#), Some(1.0));
    // Labelled by vendor (the local push service is `other`), never by a host.
    assert_eq!(sample(&text, r#"clarion_push_duration_seconds_count{vendor="other"}"#), Some(4.0), "{text}");
    assert_eq!(sample(&text, r#"clarion_push_duration_seconds_bucket{le="+Inf",vendor="other"}"#), Some(4.0));
    assert!(!text.contains(origin), "no push host in a label");
    assert_eq!(sample(&text, "clarion_broadcasts_claimed_total"), Some(1.0));
    assert_eq!(sample(&text, "clarion_subscriptions_stored"), Some(3.0), "the expired one was removed");
    assert_eq!(sample(&text, r#"clarion_http_requests_total{route="/api/v1/subscriptions",status="201"}"#), Some(4.0));
    assert_eq!(sample(&text, r#"clarion_http_requests_total{route="/api/v1/notifications",status="202"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"clarion_http_requests_total{route="other",status="404"}"#), Some(1.0), "unmatched paths share one series");
    let database = if on_postgres() { "postgres" } else { "sqlite" };
    assert_eq!(
        sample(&text, &format!(r#"clarion_build_info{{version="{}",database="{database}"}}"#, env!("CARGO_PKG_VERSION"))),
        Some(1.0)
    );
    assert!(!text.contains("/push/"), "no endpoint appears in the metrics");
}

#[tokio::test]
async fn metrics_need_the_admin_token_on_the_main_address() {
    let app = spawn_app("").await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("not-the-admin-token-0123456789abcdef").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(sample(&scrape_with_token(&app).await, "clarion_subscriptions_stored").is_some());
}

#[tokio::test]
async fn the_metrics_address_serves_them_without_a_token_and_nothing_else() {
    let app = spawn_app_with("", |args| args.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics = app.metrics_address.clone().expect("CLARION_METRICS_ADDR is bound");
    assert_ne!(metrics, app.address);
    assert_eq!(app.subscribe(&subscription_with_endpoint("https://fcm.googleapis.com/fcm/send/metrics-1")).await.status(), 201);

    let open = app.client.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let text = open.text().await.unwrap();
    assert_eq!(sample(&text, "clarion_subscriptions_stored"), Some(1.0), "{text}");
    // Only the metrics are served there: not the API, not the console.
    for path in ["/api/v1/subscriptions", "/admin", "/"] {
        assert_eq!(app.client.get(format!("{metrics}{path}")).send().await.unwrap().status(), 404, "{path}");
    }
    // The main address still wants the token.
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_metrics_address_answers_only_requests_that_name_it() {
    let app = spawn_app_with("", |args| {
        args.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        args.metrics_hosts = "prometheus-target".into();
    })
    .await;
    let metrics = app.metrics_address.clone().unwrap();
    let port = metrics.rsplit(':').next().unwrap().to_string();
    let with_host = |host: String| app.client.get(format!("{metrics}/metrics")).header("Host", host).send();
    // A page on a name of an attacker's that resolves to this address (DNS rebinding).
    for host in [format!("rebind.evil.example:{port}"), format!("127.0.0.1.evil.example:{port}"), "localhost.evil.example".into()] {
        let refused = with_host(host.clone()).await.unwrap();
        assert_eq!(refused.status(), 421, "{host}");
        assert!(refused.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("CLARION_METRICS_HOSTS"));
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("prometheus-target:{port}")] {
        assert_eq!(with_host(host.clone()).await.unwrap().status(), 200, "{host}");
    }
}
