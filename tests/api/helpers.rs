//! `spawn_app()` and `spawn_push_service()`, and one helper per endpoint.

use clarion::server::config::{ServeArgs, SiteArgs};
use clarion::server::startup::Application;
use clarion_push_service::{Options, PushServiceServer};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdefghij";
/// The secret test servers check identity tokens with (see [`identity_token`]).
pub const IDENTITY_SECRET: &str = "test-identity-secret-0123456789abcdefghij";
pub const SUBJECT: &str = "mailto:ops@clarion.dev";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub push_hosts: String,
    /// `http://` + `CLARION_METRICS_ADDR`'s bound address, when the test set one.
    pub metrics_address: Option<String>,
    server: JoinHandle<()>,
    /// Stops the server the way SIGTERM does.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    // Keeps the directory alive for the test's duration.
    _dir: Option<TempDir>,
}

/// The backend the test servers use: `CLARION_TEST_BACKEND=postgres` runs the suite on
/// PostgreSQL (the cluster that `CLARION_TEST_DATABASE_URL` names; `scripts/test-all.sh`
/// starts one), anything else on SQLite.
pub fn on_postgres() -> bool {
    std::env::var("CLARION_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// The test cluster's URL; the PostgreSQL tests cannot run without one.
pub fn postgres_admin_url() -> String {
    std::env::var("CLARION_TEST_DATABASE_URL").expect(
        "CLARION_TEST_DATABASE_URL is not set: run the tests with scripts/test-all.sh, or start a cluster with \
         `source scripts/pg-cluster.sh && pg_cluster_start`",
    )
}

/// A database of its own on the test cluster, named `name` (created if missing); answers
/// its URL.
pub async fn postgres_database(name: &str) -> String {
    let admin_url = postgres_admin_url();
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("the test cluster answers");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)").bind(name).fetch_one(&admin).await.unwrap();
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await.expect("CREATE DATABASE");
    }
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("the URL names a database");
    format!("{base}/{name}")
}

/// On the PostgreSQL run, the database of the server with this data dir: named after the
/// directory, so a server restarted on it finds its data again. `None` (the data dir's
/// SQLite file) otherwise.
pub async fn test_database_url(data_dir: &std::path::Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    Some(postgres_database(&format!("clarion_{:016x}", hasher.finish())).await)
}

/// Replacing a shared key on purpose, as docs/operations.md says: on PostgreSQL, with every
/// instance stopped, the recorded fingerprint is deleted (a new key is refused otherwise).
/// Nothing is recorded on SQLite.
pub async fn forget_deployment_key(data_dir: &std::path::Path, name: &str) {
    if let Some(url) = test_database_url(data_dir).await {
        let db = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM deployment_keys WHERE name = $1").bind(name).execute(&db).await.unwrap();
        db.close().await;
    }
}

/// `clarion …` (this build's binary) on a data dir, trusting `push_hosts`, as an
/// operator runs it; answers stdout, and fails the test when the command fails.
pub fn clarion_command(data: &std::path::Path, push_hosts: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clarion"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("CLARION_PUSH_HOSTS", push_hosts)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A URL several instances open as one database: the PostgreSQL pass's database of
/// `data_dir`, else its SQLite file.
pub async fn shared_database(data_dir: &std::path::Path) -> String {
    test_database_url(data_dir).await.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("clarion.db").display()))
}

/// Runs raw SQL (`;`-separated statements) on a test server's database, whichever the
/// backend: for tests that inject faults or look at what is stored.
pub async fn execute_sql(app: &TestApp, sql: &str) {
    match test_database_url(&app.data_dir).await {
        Some(url) => {
            let db = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&db).await.unwrap();
            db.close().await;
        }
        None => {
            let db = sqlx::SqlitePool::connect(&sqlite_url(app)).await.unwrap();
            sqlx::raw_sql(sql).execute(&db).await.unwrap();
            db.close().await;
        }
    }
}

/// One BIGINT from a query on a test server's database, whichever the backend.
pub async fn query_i64(app: &TestApp, sql: &str) -> i64 {
    match test_database_url(&app.data_dir).await {
        Some(url) => {
            let db = sqlx::PgPool::connect(&url).await.unwrap();
            let value = sqlx::query_scalar(sql).fetch_one(&db).await.unwrap();
            db.close().await;
            value
        }
        None => {
            let db = sqlx::SqlitePool::connect(&sqlite_url(app)).await.unwrap();
            let value = sqlx::query_scalar(sql).fetch_one(&db).await.unwrap();
            db.close().await;
            value
        }
    }
}

fn sqlite_url(app: &TestApp) -> String {
    format!("sqlite://{}", app.data_dir.join("clarion.db").display())
}

pub struct PushService {
    pub origin: String,
    pub client: reqwest::Client,
    _server: JoinHandle<()>,
}

/// A push service over TLS, offering HTTP/2 and HTTP/1.1 by ALPN as real ones do, with a
/// certificate for 127.0.0.1 from a CA made for this test, that waits `handshake_delay`
/// before each handshake. Answers the service and the CA's PEM file (in `dir`), for the
/// app's `extra_ca_file`.
pub async fn spawn_tls_push_service(dir: &std::path::Path, handshake_delay: Duration) -> (PushService, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Clarion test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let (ca_file, cert_file, key_file) = (dir.join("ca.pem"), dir.join("push.pem"), dir.join("push.key"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let options = Options { addr: "127.0.0.1:0".parse().unwrap(), sink: false, tls: Some((cert_file, key_file)), handshake_delay };
    let trust = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(trust).build().unwrap();
    (serve_push_service(&options, client).await.expect("push service binds"), ca_file)
}

pub async fn spawn_push_service() -> PushService {
    spawn_push_service_at("127.0.0.1:0".parse().unwrap()).await.expect("push service binds")
}

/// A push service on port 80, so that its origin has no port (`http://127.x.y.z`), as a
/// real push service's has none: on a loopback address of its own (all of 127/8 is this
/// machine), so tests running at once never share one. Binding port 80 needs root or
/// `CAP_NET_BIND_SERVICE`, as `./setup.sh test` and CI run.
pub async fn spawn_push_service_without_port() -> PushService {
    use std::hash::{BuildHasher, RandomState};
    let mut last_error = None;
    for attempt in 0u64..32 {
        // A random address in 127.1.0.0/16 .. 127.254.255.254: another test's is taken.
        let seed = RandomState::new().hash_one(attempt);
        let [a, b, c, ..] = seed.to_le_bytes();
        let addr = std::net::SocketAddr::from(([127, a.clamp(1, 254), b, c.clamp(1, 254)], 80));
        match spawn_push_service_at(addr).await {
            Ok(push) => return push,
            Err(e) => last_error = Some(e),
        }
    }
    panic!("no loopback address could bind port 80 (this test needs root or CAP_NET_BIND_SERVICE): {last_error:?}")
}

async fn spawn_push_service_at(addr: std::net::SocketAddr) -> anyhow::Result<PushService> {
    serve_push_service(&Options { addr, sink: false, tls: None, handshake_delay: Duration::ZERO }, reqwest::Client::new()).await
}

/// Binds a push service and serves it in the background; `client` is the test's own.
async fn serve_push_service(options: &Options, client: reqwest::Client) -> anyhow::Result<PushService> {
    let server = PushServiceServer::bind(options).await?;
    let origin = server.origin().to_string();
    let handle = tokio::spawn(async move {
        server.run().await.expect("push service runs");
    });
    Ok(PushService { origin, client, _server: handle })
}

/// A server with a fresh data dir that trusts `push_hosts`.
pub async fn spawn_app(push_hosts: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut app = start_app(data_dir, push_hosts, None).await;
    app._dir = Some(dir);
    app
}

pub async fn start_app(data_dir: PathBuf, push_hosts: &str, vapid_private_key: Option<String>) -> TestApp {
    start_app_with(data_dir, push_hosts, vapid_private_key, |_| {}).await
}

/// A server with a fresh data dir, its settings adjusted by `tweak`.
pub async fn spawn_app_with(push_hosts: &str, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start_app_with(dir.path().join("data"), push_hosts, None, tweak).await;
    app._dir = Some(dir);
    app
}

/// The settings every test server starts from.
pub fn serve_args(data_dir: PathBuf, push_hosts: &str, vapid_private_key: Option<String>) -> ServeArgs {
    ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(ADMIN_TOKEN.into()),
        site_root: "target/site".into(),
        sdk_dir: "target/sdk".into(),
        // Tests create many subscriptions from 127.0.0.1; the limit has its own test.
        subscribe_rate_limit: 0,
        write_rate_limit: 120,
        test_push_rate_limit: clarion_core::admission::TEST_PUSHES_PER_MINUTE,
        trust_proxy_headers: false,
        trusted_proxies: String::new(),
        max_connections: 512,
        max_connections_per_client: 0,
        first_bytes_timeout: 5,
        header_timeout: 10,
        idle_timeout: 60,
        body_timeout: 30,
        cors_origins: String::new(),
        max_subscriptions: 0,
        max_subscriptions_per_ip: 0,
        metrics_addr: None,
        metrics_hosts: String::new(),
        identity_secret: Some(IDENTITY_SECRET.into()),
        identity_audience: Vec::new(),
        idle_expiry_days: 0,
        idle_sweep_seconds: 3600,
        key_send_rate_limit: clarion_core::admission::KEY_SENDS_PER_MINUTE,
        audit_retention_days: 365,
        site: SiteArgs {
            data_dir: data_dir.clone(),
            database_url: None,
            vapid_subject: SUBJECT.into(),
            vapid_private_key,
            master_key: None,
            push_hosts: push_hosts.into(),
            send_concurrency: 16,
            max_attempts: 3,
            retry_base_ms: 50,
            push_timeout: 30,
            extra_ca_file: None,
            payload_format: Default::default(),
        },
    }
}

pub async fn start_app_with(
    data_dir: PathBuf,
    push_hosts: &str,
    vapid_private_key: Option<String>,
    tweak: impl FnOnce(&mut ServeArgs),
) -> TestApp {
    let mut args = serve_args(data_dir.clone(), push_hosts, vapid_private_key);
    args.site.database_url = test_database_url(&data_dir).await;
    tweak(&mut args);
    let app = Application::build(args).await.expect("application builds");
    let address = format!("http://{}", app.local_addr());
    let metrics_address = app.metrics_addr().map(|addr| format!("http://{addr}"));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async move {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        data_dir,
        push_hosts: push_hosts.into(),
        metrics_address,
        server,
        shutdown: Some(shutdown),
        _dir: None,
    }
}

impl TestApp {
    /// Stops this server and starts another on the same data dir (and temp dir guard).
    pub async fn restart(self) -> TestApp {
        let (data_dir, push_hosts) = (self.data_dir.clone(), self.push_hosts.clone());
        let dir = self.stop().await;
        let mut again = start_app(data_dir, &push_hosts, None).await;
        again._dir = dir;
        again
    }

    /// Stops this server as SIGTERM would and waits until it and all its background tasks
    /// have stopped; hands back its temp dir guard (pass it to [`TestApp::keep`]).
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.server)
            .await
            .expect("the server stops within 15 s")
            .expect("the server task ends cleanly");
        self._dir.take()
    }

    /// Drops the server's future mid-flight (as aborting its task does), handing back the
    /// temp dir guard.
    pub async fn abort(mut self) -> Option<TempDir> {
        self.server.abort();
        let _ = (&mut self.server).await;
        self._dir.take()
    }

    /// Keeps a temp dir alive as long as this server.
    pub fn keep(&mut self, dir: Option<TempDir>) {
        self._dir = dir;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn vapid_public_key(&self) -> String {
        let body: Value = self.client.get(self.url("/api/v1/vapid-public-key")).send().await.unwrap().json().await.unwrap();
        body["public_key"].as_str().unwrap().to_string()
    }

    pub async fn subscribe(&self, subscription: &Value) -> reqwest::Response {
        self.client.post(self.url("/api/v1/subscriptions")).json(subscription).send().await.unwrap()
    }

    pub async fn subscribe_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client.post(self.url("/api/v1/subscriptions")).header("Content-Type", content_type).body(body).send().await.unwrap()
    }

    /// `DELETE /api/v1/subscriptions` with admin rights.
    pub async fn unsubscribe(&self, endpoint: &str) -> reqwest::Response {
        self.client
            .delete(self.url("/api/v1/subscriptions"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "endpoint": endpoint }))
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /api/v1/subscriptions` as a browser does it: `body` carries the endpoint and
    /// (or not) the subscription's `auth` secret.
    pub async fn unsubscribe_as(&self, body: &Value) -> reqwest::Response {
        self.client.delete(self.url("/api/v1/subscriptions")).json(body).send().await.unwrap()
    }

    pub async fn list(&self, query: &str) -> reqwest::Response {
        self.client.get(self.url(&format!("/api/v1/subscriptions{query}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap()
    }

    pub async fn list_json(&self) -> Value {
        let response = self.list("").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn notify(&self, body: &Value) -> reqwest::Response {
        self.client.post(self.url("/api/v1/notifications")).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap()
    }

    pub async fn notification(&self, id: i64) -> Value {
        let response = self.client.get(self.url(&format!("/api/v1/notifications/{id}"))).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Queues a notification and waits until the worker reports it done.
    pub async fn broadcast(&self, body: &Value) -> Value {
        let response = self.notify(body).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        self.wait_done(id).await
    }

    pub async fn wait_done(&self, id: i64) -> Value {
        self.wait_done_within(id, Duration::from_secs(10)).await
    }

    /// Waits until notification `id` is done, at most `within`; answers its status.
    pub async fn wait_done_within(&self, id: i64, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let status = self.notification(id).await;
            if status["status"] == "done" {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "notification {id} did not finish in {within:?}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Calls a Leptos server function the way the page does.
    pub async fn server_fn(&self, name: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(&format!("/api/fn/{name}"))).json(body).send().await.unwrap()
    }
}

impl PushService {
    /// `GET /_test/summary`: messages per minted subscription, and connections accepted.
    pub async fn summary(&self) -> Value {
        self.client.get(format!("{}/_test/summary", self.origin)).send().await.unwrap().json().await.unwrap()
    }

    pub fn host(&self) -> String {
        self.origin.trim_start_matches("http://").trim_start_matches("https://").to_string()
    }

    pub async fn mint(&self, application_server_key: Option<&str>) -> Value {
        let body = match application_server_key {
            Some(key) => json!({ "application_server_key": key }),
            None => json!({}),
        };
        let response = self.client.post(format!("{}/_test/subscriptions", self.origin)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn messages(&self, endpoint: &str) -> Vec<Value> {
        let response = self.client.get(format!("{}/_test/messages", self.origin)).query(&[("endpoint", endpoint)]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn fault(&self, fault: &Value) {
        let response = self.client.post(format!("{}/_test/faults", self.origin)).json(fault).send().await.unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    }

    /// Pushes that reached this subscription, refused ones included.
    pub async fn requests(&self, endpoint: &str) -> u64 {
        let response = self.client.get(format!("{}/_test/requests", self.origin)).query(&[("endpoint", endpoint)]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["requests"].as_u64().unwrap()
    }

    pub async fn expire(&self, endpoint: &str) {
        let response =
            self.client.delete(format!("{}/_test/subscriptions", self.origin)).query(&[("endpoint", endpoint)]).send().await.unwrap();
        assert_eq!(response.status(), 204);
    }
}

/// A subscription JSON with a real key pair but an endpoint of our choosing.
/// Subscribes `n` endpoints minted by `push` for the app's key; answers their endpoints.
pub async fn subscribe_minted(app: &TestApp, push: &PushService, n: usize) -> Vec<String> {
    subscribe_minted_with_key(app, push, &app.vapid_public_key().await, n).await
}

/// Subscribes `n` endpoints minted by `push` for `key` (maybe not the app's).
pub async fn subscribe_minted_with_key(app: &TestApp, push: &PushService, key: &str, n: usize) -> Vec<String> {
    let mut endpoints = Vec::new();
    for _ in 0..n {
        let subscription = push.mint(Some(key)).await;
        assert_eq!(app.subscribe(&subscription).await.status(), 201);
        endpoints.push(subscription["endpoint"].as_str().unwrap().to_string());
    }
    endpoints
}

pub fn subscription_with_endpoint(endpoint: &str) -> Value {
    json!({
        "endpoint": endpoint,
        "expirationTime": null,
        // The P-256 generator point: a valid public key.
        "keys": {
            "p256dh": "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
            "auth": "AAECAwQFBgcICQoLDA0ODw",
        }
    })
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An identity token as a site's backend mints it: a JWT, HS256 over `claims`, signed
/// with `secret`. Written here with ring, independently of the server's JWT crate.
pub fn identity_token_with(secret: &str, claims: &Value) -> String {
    identity_token_with_header(secret, &json!({ "alg": "HS256", "typ": "JWT" }), claims)
}

/// An HS256 JWT with the given header (which should say `"alg": "HS256"`).
pub fn identity_token_with_header(secret: &str, header: &Value, claims: &Value) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

/// A valid identity token for `user`, good for an hour.
pub fn identity_token(user: &str) -> String {
    identity_token_with(IDENTITY_SECRET, &json!({ "sub": user, "exp": unix_now() + 3600 }))
}

impl TestApp {
    /// Defines (or changes) a topic; answers the status.
    pub async fn define_topic(&self, name: &str, body: &Value) -> reqwest::StatusCode {
        let response =
            self.client.put(self.url(&format!("/api/v1/topics/{name}"))).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
        response.status()
    }

    /// Subscribes a new endpoint minted by `push`, with extra members (topics, user_token)
    /// merged into the body; answers the response status and body, and the subscription.
    pub async fn subscribe_with(&self, push: &PushService, extra: &Value) -> (reqwest::StatusCode, Value, Value) {
        let subscription = push.mint(Some(&self.vapid_public_key().await)).await;
        let mut body = subscription.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = self.subscribe(&body).await;
        let status = response.status();
        let answer = response.json().await.unwrap_or(Value::Null);
        (status, answer, subscription)
    }
}

impl TestApp {
    /// `POST /api/v1/api-keys` with the admin token.
    pub async fn create_key(&self, body: &Value) -> reqwest::Response {
        self.client.post(self.url("/api/v1/api-keys")).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap()
    }

    /// A key with these scopes; answers its id and secret.
    pub async fn key_with(&self, name: &str, scopes: &[&str]) -> (i64, String) {
        let response = self.create_key(&json!({ "name": name, "scopes": scopes })).await;
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        (created["id"].as_i64().unwrap(), created["secret"].as_str().unwrap().to_string())
    }
}
