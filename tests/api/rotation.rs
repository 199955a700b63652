//! VAPID key rotation that loses nobody: after `POST /api/v1/sites/default/vapid-keys`,
//! new subscriptions get the new key and the ones made before keep receiving, each push
//! signed with the key its subscription was made with (the local push service refuses a
//! push whose `k` is not the subscription's `applicationServerKey`). Runs on SQLite and,
//! in the PostgreSQL pass, on PostgreSQL, with several instances on one database.

use crate::helpers::*;
use clarion_push::vapid::VapidKeyMaterial;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl TestApp {
    async fn keys(&self) -> Value {
        let response = self.client.get(self.url("/api/v1/sites/default/vapid-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn rotate(&self) -> Value {
        let response = self.client.post(self.url("/api/v1/sites/default/vapid-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn retire(&self, id: &Value, query: &str) -> (u16, Value) {
        let url = self.url(&format!("/api/v1/sites/default/vapid-keys/{id}{query}"));
        let response = self.client.delete(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn broadcast_to_all(&self, title: &str) -> Value {
        let queued = self.broadcast(&json!({ "title": title })).await;
        self.wait_done(queued["id"].as_i64().unwrap()).await
    }
}

/// Each endpoint received exactly `n` pushes.
async fn assert_received(push: &PushService, endpoints: &[String], n: usize) {
    for endpoint in endpoints {
        assert_eq!(push.messages(endpoint).await.len(), n, "{endpoint}");
    }
}

#[tokio::test]
async fn a_rotation_keeps_every_subscriber_and_signs_each_push_with_its_own_key() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let old_key = app.vapid_public_key().await;
    let on_old_key = subscribe_minted(&app, &push, 3).await;

    let unauthorized = app.client.post(app.url("/api/v1/sites/default/vapid-keys")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let rotated = app.rotate().await;
    let new_key = rotated["public_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(rotated["current"], true);
    assert_eq!(app.vapid_public_key().await, new_key, "new subscriptions get the new key");
    let by_site: Value = app.client.get(app.url("/api/v1/sites/default/vapid-public-key")).send().await.unwrap().json().await.unwrap();
    assert_eq!(by_site["public_key"], new_key.as_str());
    let on_new_key = subscribe_minted(&app, &push, 3).await;

    // One broadcast reaches both: each push is signed with its subscription's key, or
    // the push service would refuse it (403) and nothing would be delivered.
    let status = app.broadcast_to_all("after the rotation").await;
    assert_eq!(
        (status["total"].as_i64(), status["delivered"].as_i64(), status["failed"].as_i64()),
        (Some(6), Some(6), Some(0)),
        "{status}"
    );
    assert_received(&push, &on_old_key, 1).await;
    assert_received(&push, &on_new_key, 1).await;

    let keys = app.keys().await["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(
        (keys[0]["public_key"].as_str(), keys[0]["current"].as_bool(), keys[0]["subscriptions"].as_i64()),
        (Some(old_key.as_str()), Some(false), Some(3))
    );
    assert_eq!(
        (keys[1]["public_key"].as_str(), keys[1]["current"].as_bool(), keys[1]["subscriptions"].as_i64()),
        (Some(new_key.as_str()), Some(true), Some(3))
    );
    assert_eq!(keys[1]["id"], rotated["id"]);

    // Retiring: not while subscribers are bound to it, never the current key.
    let (status, body) = app.retire(&keys[0]["id"], "").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("3 subscriptions"), "{body}");
    let (status, body) = app.retire(&keys[1]["id"], "").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("current"), "{body}");
    assert_eq!(app.retire(&json!(987654), "").await.0, 404);
    let elsewhere = app.client.get(app.url("/api/v1/sites/shop/vapid-keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    let still = app.broadcast_to_all("nothing was retired").await;
    assert_eq!(still["delivered"], 6, "{still}");

    // Forced, it removes the subscribers left on the key and says how many.
    let (status, body) = app.retire(&keys[0]["id"], "?force=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed_subscriptions"], 3);
    let keys = app.keys().await["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(app.list_json().await["total"], 3);

    // The keys survive a restart: sealed in the database under the master key (0600).
    let app = app.restart().await;
    assert_eq!(app.vapid_public_key().await, new_key);
    let status = app.broadcast_to_all("after a restart").await;
    assert_eq!((status["total"].as_i64(), status["delivered"].as_i64()), (Some(3), Some(3)), "{status}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.data_dir.join("master_key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_rotation_on_one_instance_reaches_the_others_within_a_second() {
    let push = spawn_push_service().await;
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let master = clarion::domain::base64url::encode(&[42u8; 32]);
    let vapid = VapidKeyMaterial::generate().private_raw_base64url();
    let database = shared_database(&data).await;
    let start = |data: std::path::PathBuf, master: String| {
        let (database, vapid, host) = (database.clone(), vapid.clone(), push.host());
        async move {
            start_app_with(data, &host, Some(vapid), move |args| {
                args.site.database_url = Some(database);
                args.site.master_key = Some(master);
            })
            .await
        }
    };
    let mut first = start(data.clone(), master.clone()).await;
    first.keep(Some(dir));
    let mut second = start(other_dir.path().join("data"), master.clone()).await;
    second.keep(Some(other_dir));
    let on_old_key = subscribe_minted(&second, &push, 2).await;

    let rotated = first.rotate().await;
    let new_key = rotated["public_key"].as_str().unwrap();
    let asked = Instant::now();
    while second.vapid_public_key().await != new_key {
        assert!(asked.elapsed() < Duration::from_secs(1), "the other instance still gives the old key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("the other instance gave the new key after {:?}", asked.elapsed());
    let on_new_key = subscribe_minted(&second, &push, 2).await;
    // Sent by the first instance: it signs the second's new subscriptions with the key
    // it made, and the older ones with theirs.
    let status = first.broadcast_to_all("both keys, two instances").await;
    assert_eq!((status["total"].as_i64(), status["delivered"].as_i64()), (Some(4), Some(4)), "{status}");
    assert_received(&push, &on_old_key, 1).await;
    assert_received(&push, &on_new_key, 1).await;

    // An instance with another master key cannot open the stored key: it refuses to
    // start, naming the setting to align.
    let third_dir = tempfile::tempdir().unwrap();
    let mut args = serve_args(third_dir.path().join("data"), &push.host(), Some(vapid.clone()));
    args.site.database_url = Some(database.clone());
    args.site.master_key = Some(clarion::domain::base64url::encode(&[7u8; 32]));
    let refused = clarion::server::startup::Application::build(args).await.err().expect("a foreign master key is refused");
    let message = format!("{refused:#}");
    assert!(message.contains("CLARION_MASTER_KEY"), "{message}");
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn an_instance_that_cannot_open_a_rotated_key_fails_those_pushes_and_removes_nobody() {
    let push = spawn_push_service().await;
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    let vapid = VapidKeyMaterial::generate().private_raw_base64url();
    let database = shared_database(&data).await;
    let start = |data: std::path::PathBuf, master: [u8; 32]| {
        let (database, vapid, host) = (database.clone(), vapid.clone(), push.host());
        async move {
            let master = clarion::domain::base64url::encode(&master);
            start_app_with(data, &host, Some(vapid), move |args| {
                args.site.database_url = Some(database);
                args.site.master_key = Some(master);
            })
            .await
        }
    };
    let mut first = start(data.clone(), [1; 32]).await;
    first.keep(Some(dir));
    // Started before any key was sealed, with another master key: it starts.
    let mut other = start(other_dir.path().join("data"), [2; 32]).await;
    other.keep(Some(other_dir));
    let on_old_key = subscribe_minted(&first, &push, 2).await;
    first.rotate().await;
    let on_new_key = subscribe_minted(&first, &push, 2).await;
    first.stop().await;
    // Only the instance without the new key sends: it signs the old key's pushes, and
    // fails the new key's without sending them (signed with another key, the push
    // service would refuse them and the subscriptions would be removed).
    let status = other.broadcast_to_all("sent by the instance without the key").await;
    assert_eq!(
        (status["delivered"].as_i64(), status["failed"].as_i64(), status["removed"].as_i64()),
        (Some(2), Some(2), Some(0)),
        "{status}"
    );
    assert_eq!(status["failures"]["vapid_key_unavailable"], 2, "{status}");
    assert_received(&push, &on_old_key, 1).await;
    assert_received(&push, &on_new_key, 0).await;
    assert_eq!(other.list_json().await["total"], 4, "nobody was removed");
    other.stop().await;
}

fn clarion(data: &std::path::Path, host: &str, args: &[&str]) -> String {
    clarion_command(data, host, args)
}

#[tokio::test]
async fn an_imported_key_keeps_the_audience_of_the_sender_it_replaces() {
    if on_postgres() {
        return; // The commands run on the data dir's SQLite file; the REST test covers PostgreSQL.
    }
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Subscriptions another sender made with its own key.
    let theirs = VapidKeyMaterial::generate();
    let their_key = clarion::domain::base64url::encode(&theirs.public_key());
    let key_file = dir.path().join("their_key.pem");
    std::fs::write(&key_file, theirs.to_pkcs8_pem()).unwrap();
    let mut lines = Vec::new();
    for _ in 0..2 {
        lines.push(push.mint(Some(&their_key)).await.to_string());
    }
    let subscriptions = dir.path().join("subscriptions.jsonl");
    std::fs::write(&subscriptions, lines.join("\n")).unwrap();
    let endpoints: Vec<String> =
        lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap()["endpoint"].as_str().unwrap().to_string()).collect();

    let host = push.host();
    let (imported, report, shown) = tokio::task::spawn_blocking({
        let (data, host) = (data.clone(), host.clone());
        move || {
            let imported = clarion(&data, &host, &["sites", "import-key", "default", key_file.to_str().unwrap(), "--json"]);
            let report = clarion(&data, &host, &["import", subscriptions.to_str().unwrap()]);
            let shown = clarion(&data, &host, &["sites", "show", "default", "--json"]);
            (imported, report, shown)
        }
    })
    .await
    .unwrap();
    let imported: Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(imported["public_key"], their_key.as_str());
    assert_eq!(serde_json::from_str::<Value>(&report).unwrap()["stored"], 2);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the generated key and the imported one: {shown}");
    assert_eq!((keys[1]["current"].as_bool(), keys[1]["subscriptions"].as_i64()), (Some(true), Some(2)));

    let app = start_app(data.clone(), &host, None).await;
    assert_eq!(app.vapid_public_key().await, their_key);
    let status = app.broadcast_to_all("moved to Clarion").await;
    assert_eq!(status["delivered"], 2, "{status}");
    assert_received(&push, &endpoints, 1).await;
    // A rotation from the command line, while the server runs: it serves the new key
    // within a second and still reaches the imported subscribers.
    let rotated = tokio::task::spawn_blocking({
        let (data, host) = (data.clone(), host.clone());
        move || clarion(&data, &host, &["sites", "rotate-key", "default", "--json"])
    })
    .await
    .unwrap();
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    let asked = Instant::now();
    while app.vapid_public_key().await != rotated["public_key"].as_str().unwrap() {
        assert!(asked.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = app.broadcast_to_all("after a rotation from the command line").await;
    assert_eq!(status["delivered"], 2, "{status}");
    app.stop().await;
}
