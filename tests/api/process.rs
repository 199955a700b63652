//! The real `clarion` binary: files it creates, what it logs, and its CLI commands.

use crate::helpers::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_clarion");

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `clarion serve` as a child process on a free port, with its log collected.
struct ServerProcess {
    child: std::process::Child,
    address: String,
    log: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ServerProcess {
    fn start(data: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("CLARION_ADMIN_TOKEN")
            .env_remove("CLARION_VAPID_PRIVATE_KEY")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = loop {
            let line = log.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the server logs that it listens");
            seen.push(line.clone());
            if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
                break format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        };
        Self { child, address, log, seen }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.seen.extend(self.log.try_iter());
        self.seen.join("\n")
    }
}

#[tokio::test]
async fn serve_creates_private_files_and_never_logs_the_admin_token_an_api_key_or_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[("RUST_LOG", "debug")]);
    let address = server.address.clone();
    let token = std::fs::read_to_string(data.join("admin_token")).unwrap().trim().to_string();
    let private_key = std::fs::read_to_string(data.join("vapid_private.pem")).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin_token")), 0o600);
        assert_eq!(mode(&data.join("vapid_private.pem")), 0o600);
        assert_eq!(mode(&data.join("master_key")), 0o600);
    }
    // The generated token works, and using it does not log it either.
    let client = reqwest::Client::new();
    let listed = client.get(format!("{address}/api/v1/subscriptions")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let refused = client.get(format!("{address}/api/v1/subscriptions?after=1")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // An API key: created, used, refused where it lacks the scope, revoked, refused.
    let created: Value = client
        .post(format!("{address}/api/v1/api-keys"))
        .bearer_auth(&token)
        .json(&json!({ "name": "logged?", "scopes": ["read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(client.get(format!("{address}/api/v1/subscriptions")).bearer_auth(&secret).send().await.unwrap().status(), 200);
    let send = client.post(format!("{address}/api/v1/notifications")).bearer_auth(&secret).json(&json!({ "title": "t" }));
    assert_eq!(send.send().await.unwrap().status(), 403);
    let revoke = client.delete(format!("{address}/api/v1/api-keys/{}", created["id"])).bearer_auth(&token);
    assert_eq!(revoke.send().await.unwrap().status(), 204);
    assert_eq!(client.get(format!("{address}/api/v1/subscriptions")).bearer_auth(&secret).send().await.unwrap().status(), 401);
    // A rotation seals a private key into the database under the master key.
    let rotate = client.post(format!("{address}/api/v1/sites/default/vapid-keys")).bearer_auth(&token);
    assert_eq!(rotate.send().await.unwrap().status(), 201);
    let master_key = std::fs::read_to_string(data.join("master_key")).unwrap().trim().to_string();

    let log = server.kill();
    assert!(log.contains("admin_token"), "the token file's path is logged:\n{log}");
    assert!(!log.contains(&token), "the admin token leaked into the log");
    assert!(!log.contains(&secret) && !log.contains(&secret[4..20]), "the API key leaked into the log");
    assert!(!log.contains(&master_key[..20]), "the master key leaked into the log");
    let key_body: String = private_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!log.contains(&key_body[..40]), "the private key leaked into the log");
}

#[test]
fn keys_generate_prints_a_usable_key_pair() {
    let output = Command::new(BIN).args(["keys", "generate"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value_after = |label: &str| text.lines().find(|l| l.starts_with(label)).unwrap().rsplit(' ').next().unwrap().to_string();
    let public = clarion::domain::base64url::decode(&value_after("public key")).unwrap();
    let private = value_after("private key (base64url");
    assert_eq!(public.len(), 65);
    let material = clarion_push::vapid::VapidKeyMaterial::from_raw_base64url(&private).unwrap();
    assert_eq!(material.public_key().to_vec(), public);
    let pem_start = text.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let from_pem = clarion_push::vapid::VapidKeyMaterial::from_pem(&text[pem_start..]).unwrap();
    assert_eq!(from_pem.public_key().to_vec(), public);
}

#[tokio::test]
async fn send_broadcasts_from_the_command_line() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    let key = app.vapid_public_key().await;
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        let subscription = push.mint(Some(&key)).await;
        assert_eq!(app.subscribe(&subscription).await.status(), 201);
        endpoints.push(subscription["endpoint"].as_str().unwrap().to_string());
    }
    push.expire(&endpoints[2]).await;
    let data_dir = app.data_dir.clone();
    let push_host = push.host();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["send", "--title", "From the CLI", "--body", "Hello", "--url", "/cli", "--json", "--data-dir"])
            .arg(&data_dir)
            .env("CLARION_PUSH_HOSTS", push_host)
            .env("CLARION_VAPID_SUBJECT", SUBJECT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["total"], 3);
    assert_eq!(summary["delivered"], 2);
    assert_eq!(summary["removed"], 1);
    assert_eq!(summary["status"], "done");
    let message = &push.messages(&endpoints[0]).await[0];
    let payload: Value = serde_json::from_str(message["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["web_push"], 8030);
    assert_eq!(payload["notification"]["title"], "From the CLI");
    assert_eq!(payload["notification"]["body"], "Hello");
    assert_eq!(payload["notification"]["navigate"], "/cli");
    assert_eq!(payload["notification"]["data"]["notification_id"], summary["id"]);
}

#[tokio::test]
async fn send_targets_topics_and_users_and_schedules_from_the_command_line() {
    let push = spawn_push_service().await;
    let app = spawn_app(&push.host()).await;
    app.define_topic("news", &json!({ "label": "News" })).await;
    let (_, _, reader) = app.subscribe_with(&push, &json!({ "topics": ["news"] })).await;
    let (_, _, member) = app.subscribe_with(&push, &json!({ "user_token": identity_token("member-1") })).await;
    let (_, _, other) = app.subscribe_with(&push, &json!({})).await;
    let send = |args: Vec<String>| {
        let (data_dir, host) = (app.data_dir.clone(), push.host());
        tokio::task::spawn_blocking(move || {
            let output = Command::new(BIN)
                .arg("send")
                .args(args)
                .args(["--json", "--data-dir"])
                .arg(&data_dir)
                .env("CLARION_PUSH_HOSTS", host)
                .env("CLARION_VAPID_SUBJECT", SUBJECT)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            serde_json::from_slice::<Value>(&output.stdout).unwrap()
        })
    };
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let by_topic = send(strings(&["--title", "CLI news", "--topic", "news"])).await.unwrap();
    assert_eq!((by_topic["total"].as_i64(), by_topic["audience"].clone()), (Some(1), json!({ "topics": ["news"] })));
    let by_user = send(strings(&["--title", "CLI member", "--user", "member-1", "--user", "nobody"])).await.unwrap();
    assert_eq!(by_user["total"], 1);
    for (subscription, expected) in [(&reader, vec!["CLI news"]), (&member, vec!["CLI member"]), (&other, vec![])] {
        let titles: Vec<String> = push
            .messages(subscription["endpoint"].as_str().unwrap())
            .await
            .iter()
            .map(|m| {
                serde_json::from_str::<Value>(m["payload"].as_str().unwrap()).unwrap()["notification"]["title"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(titles, expected);
    }
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = send(strings(&["--title", "Later", "--at", &at])).await.unwrap();
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");
    assert_eq!(app.notification(scheduled["id"].as_i64().unwrap()).await["status"], "scheduled");
}

/// The settings of the interrupted-broadcast tests: two pushes in flight, so pages are
/// small and a broadcast to slow subscribers takes seconds.
/// `env` as the `(name, value)` pairs that `ServerProcess::start` takes.
fn env_pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn interrupted_broadcast_env(host: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLARION_PUSH_HOSTS", host.to_string()),
        ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("CLARION_SEND_CONCURRENCY", "2".to_string()),
        ("CLARION_VAPID_SUBJECT", SUBJECT.to_string()),
        ("CLARION_SUBSCRIBE_RATE_LIMIT", "0".to_string()),
        ("CLARION_MAX_SUBSCRIPTIONS_PER_IP", "0".to_string()),
    ]
}

/// Waits until at least `delivered` pushes of the broadcast are committed, and checks it is
/// still sending (so what follows interrupts it midway).
async fn wait_until_delivered(address: &str, id: i64, delivered: i64) {
    loop {
        let status = status_over_http(address, id).await;
        if status["delivered"].as_i64().unwrap() >= delivered {
            assert_eq!(status["status"], "sending", "interrupted midway, not after the end");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the broadcast to be done, at most `within`.
async fn wait_until_done(address: &str, id: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let status = status_over_http(address, id).await;
        if status["status"] == "done" {
            return status;
        }
        assert!(Instant::now() < deadline, "the restarted server did not finish the broadcast in {within:?}: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every subscriber got the message, and the repeats stay within the pages in flight.
async fn assert_delivered_with_bounded_repeats(push: &PushService, endpoints: &[String]) {
    let mut received = 0;
    for endpoint in endpoints {
        let count = push.messages(endpoint).await.len();
        assert!(count >= 1, "{endpoint} never got the message");
        received += count;
    }
    let bound = clarion_core::broadcasts::max_repeats(2) as usize;
    assert!(received - endpoints.len() <= bound, "{} repeats, more than the pages in flight ({bound})", received - endpoints.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_survives_kill_9_and_resumes_after_a_restart() {
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = interrupted_broadcast_env(&push.host());
    // Pushes take 40 ms here; a short push timeout makes the lease (2 + 2 + 10 s) lapse
    // sooner after the kill.
    env.push(("CLARION_PUSH_TIMEOUT", "2".to_string()));
    let env = env_pairs(&env);
    let (server, endpoints) = server_with_slow_subscribers(&push, &data, &env, 80, 40).await;
    let id = queue_over_http(&server.address, "Survives a crash").await;
    wait_until_delivered(&server.address, id, 16).await;
    server.kill();

    let restarted = ServerProcess::start(&data, &env);
    let status = wait_until_done(&restarted.address, id, Duration::from_secs(60)).await;
    restarted.kill();
    assert_eq!(status["total"], 80);
    assert_eq!(status["delivered"], 80);
    assert_delivered_with_bounded_repeats(&push, &endpoints).await;
}

/// `clarion import` with these lines on standard input, and its JSON report.
async fn import_lines(data: &std::path::Path, host: &str, lines: &[Value], extra: &[&str]) -> Value {
    let text = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let (data, host, extra) = (data.to_path_buf(), host.to_string(), extra.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || {
        let mut import = Command::new(BIN)
            .args(["import", "-", "--data-dir"])
            .arg(&data)
            .args(&extra)
            .env("CLARION_PUSH_HOSTS", host)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut import.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let output = import.wait_with_output().unwrap();
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn import_keeps_the_keys_of_a_known_endpoint_unless_asked_to_replace_them() {
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (owner, stranger) = (push.mint(None).await, push.mint(None).await);
    let mut rekeyed = owner.clone();
    rekeyed["keys"] = stranger["keys"].clone();
    let first = import_lines(&data, &push.host(), std::slice::from_ref(&owner), &[]).await;
    assert_eq!((first["stored"].as_u64(), first["replaced"].as_u64()), (Some(1), Some(0)));
    let refused = import_lines(&data, &push.host(), &[rekeyed.clone()], &[]).await;
    assert_eq!(refused["stored"], 0);
    assert_eq!(refused["rejected"][0]["line"], 1);
    assert!(refused["rejected"][0]["error"].as_str().unwrap().starts_with("keys:"), "{refused}");
    // The owner's keys stayed: a push to the endpoint decrypts with the owner's keys.
    let app = start_app(data.clone(), &push.host(), None).await;
    let endpoint = owner["endpoint"].as_str().unwrap();
    let answer = app
        .client
        .post(app.url("/api/v1/subscriptions/test"))
        .json(&json!({"endpoint": endpoint, "auth": owner["keys"]["auth"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["outcome"], "delivered");
    let replaced = import_lines(&data, &push.host(), &[rekeyed], &["--replace-keys"]).await;
    assert_eq!((replaced["stored"].as_u64(), replaced["replaced"].as_u64()), (Some(1), Some(1)), "{replaced}");
    assert_eq!(replaced["rejected"], json!([]));
}

#[tokio::test]
async fn import_stores_valid_lines_and_reports_the_rest() {
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let good = push.mint(None).await;
    let file = dir.path().join("subscriptions.jsonl");
    let lines = [
        good.to_string(),
        String::new(),
        "{not json".to_string(),
        subscription_with_endpoint("https://evil.example/x").to_string(),
        subscription_with_endpoint("https://fcm.googleapis.com/fcm/send/imported").to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let host = push.host();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN).arg("import").arg(&file).arg("--data-dir").arg(&data).env("CLARION_PUSH_HOSTS", host).output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["stored"], 2);
    let rejected: Vec<u64> = report["rejected"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(rejected, vec![3, 4]);
    assert!(report["rejected"][1]["error"].as_str().unwrap().contains("endpoint"));
    let app = start_app(dir.path().join("data"), &push.host(), None).await;
    assert_eq!(app.list_json().await["total"], 2);
}

impl ServerProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as systemd or a container runtime stops a service; waits for the exit.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration, String) {
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(sent.success());
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "still running 30 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.log.try_iter());
        (status, started.elapsed(), self.seen.join("\n"))
    }

    /// Resident memory, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// A server process with subscriptions minted at `push`, each push to which is delayed.
async fn server_with_slow_subscribers(
    push: &PushService,
    data: &std::path::Path,
    env: &[(&str, &str)],
    count: usize,
    delay_ms: u64,
) -> (ServerProcess, Vec<String>) {
    let server = ServerProcess::start(data, env);
    let client = reqwest::Client::new();
    let key: Value = client.get(format!("{}/api/v1/vapid-public-key", server.address)).send().await.unwrap().json().await.unwrap();
    let mut endpoints = Vec::new();
    for _ in 0..count {
        let subscription = push.mint(key["public_key"].as_str()).await;
        let stored = client.post(format!("{}/api/v1/subscriptions", server.address)).json(&subscription).send().await.unwrap();
        assert_eq!(stored.status(), 201);
        let endpoint = subscription["endpoint"].as_str().unwrap().to_string();
        push.fault(&json!({ "endpoint": endpoint, "mode": "delay", "delay_ms": delay_ms })).await;
        endpoints.push(endpoint);
    }
    (server, endpoints)
}

async fn queue_over_http(address: &str, title: &str) -> i64 {
    let queued = reqwest::Client::new()
        .post(format!("{address}/api/v1/notifications"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "title": title, "body": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    queued.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

async fn status_over_http(address: &str, id: i64) -> Value {
    let url = format!("{address}/api/v1/notifications/{id}");
    reqwest::Client::new().get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap()
}

/// The setting of the interrupted-broadcast tests: 60 subscribers whose pushes each take
/// 100 ms, stored through a server on a fresh data dir.
struct SlowBroadcast {
    push: PushService,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
    endpoints: Vec<String>,
}

impl SlowBroadcast {
    /// The setting, and the server that stored the subscribers.
    async fn start() -> (Self, ServerProcess) {
        let push = spawn_push_service().await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env = interrupted_broadcast_env(&push.host());
        let (server, endpoints) = server_with_slow_subscribers(&push, &data, &env_pairs(&env), 60, 100).await;
        (Self { push, _dir: dir, data, env, endpoints }, server)
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        env_pairs(&self.env)
    }

    /// The lease (50 s by default) was handed back, so a server started now finishes
    /// broadcast `id` at once: to everyone, with repeats within the bound.
    async fn finishes_at_once(&self, id: i64) {
        let restarted = ServerProcess::start(&self.data, &self.env());
        let status = wait_until_done(&restarted.address, id, Duration::from_secs(20)).await;
        restarted.kill();
        assert_eq!(status["delivered"], 60, "{status}");
        assert_delivered_with_bounded_repeats(&self.push, &self.endpoints).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_broadcast_hands_the_lease_back_and_a_restart_resumes_at_once() {
    let (setting, server) = SlowBroadcast::start().await;
    let id = queue_over_http(&server.address, "Survives SIGTERM").await;
    wait_until_delivered(&server.address, id, 8).await;
    let (exit, took, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    eprintln!("SIGTERM mid-broadcast: exited {exit:?} after {took:?}");
    assert!(exit.success(), "exit {exit:?}:\n{log}");
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");
    assert!(log.contains("handed the lease back"), "{log}");
    setting.finishes_at_once(id).await;
}

/// `clarion send` stopped with Ctrl-C (SIGINT) mid-broadcast: it says so and exits with an
/// error, having handed its lease back, so a `clarion serve` started next finishes the
/// broadcast at once rather than after the lease (50 s) lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_send_hands_the_broadcast_back_and_serve_finishes_it_at_once() {
    let (setting, server) = SlowBroadcast::start().await;
    server.kill();

    let mut command = Command::new(BIN);
    command
        .args(["send", "--title", "Interrupted", "--json", "--data-dir"])
        .arg(&setting.data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in setting.env() {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    // Pushes go out in subscription order, two at a time: once the eighth has arrived,
    // the send is well under way and far from done.
    while setting.push.messages(&setting.endpoints[7]).await.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupted = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "an interrupted send is an error: {stderr}");
    assert!(interrupted.elapsed() < Duration::from_secs(10), "took {:?} to stop", interrupted.elapsed());
    let id: i64 = stderr
        .split("interrupted: notification ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("says which notification was handed back: {stderr}"));
    assert!(stderr.contains("is handed back"), "{stderr}");

    setting.finishes_at_once(id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_beside_serve_sends_each_push_once_when_the_push_service_is_slow() {
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = push.host();
    let env = [("CLARION_PUSH_HOSTS", host.as_str()), ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN), ("CLARION_VAPID_SUBJECT", SUBJECT)];
    // The push service answers after 14 s: longer than the old 10 s lease.
    let (server, endpoints) = server_with_slow_subscribers(&push, &data, &env, 1, 14_000).await;
    let (cli_data, cli_host) = (data.clone(), host.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["send", "--title", "Once", "--json", "--data-dir"])
            .arg(&cli_data)
            .env("CLARION_PUSH_HOSTS", cli_host)
            .env("CLARION_VAPID_SUBJECT", SUBJECT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // Give the server's worker time to (wrongly) take the broadcast over, had the lease lapsed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = server.kill();
    let requests = push.requests(&endpoints[0]).await;
    eprintln!("clarion send exited with {:?}; the push service got {requests} request(s)", output.status.code());
    assert!(output.status.success(), "clarion send failed:\n{}\nserver:\n{log}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["delivered"], 1);
    assert_eq!(push.requests(&endpoints[0]).await, 1, "the push was sent once");
}

#[tokio::test]
async fn every_file_is_private_even_in_a_data_dir_made_by_someone_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = ServerProcess::start(&data, &[("CLARION_SUBSCRIBE_RATE_LIMIT", "0")]);
    // A write, so the WAL and its index exist.
    let stored = reqwest::Client::new()
        .post(format!("{}/api/v1/subscriptions", server.address))
        .json(&subscription_with_endpoint("https://fcm.googleapis.com/fcm/send/private"))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    #[cfg(unix)]
    for file in ["clarion.db", "clarion.db-wal", "clarion.db-shm", "admin_token", "vapid_private.pem", "client_hash_key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    server.kill();
}

#[test]
fn help_never_shows_the_value_of_a_secret_bearing_variable() {
    let secrets = [
        ("CLARION_DATABASE_URL", "postgres://clarion:db-password-hunter2@127.0.0.1:1/clarion"),
        ("CLARION_ADMIN_TOKEN", "admin-token-value-0123456789abcdef0123"),
        ("CLARION_VAPID_PRIVATE_KEY", "vapid-private-key-value-0123456789"),
        ("CLARION_IDENTITY_SECRET", "identity-secret-value-0123456789abcdef"),
    ];
    for command in [&["--help"][..], &["serve", "--help"], &["send", "--help"], &["import", "--help"], &["keys", "--help"]] {
        let mut help = Command::new(BIN);
        help.args(command);
        for (key, value) in secrets {
            help.env(key, value);
        }
        let output = help.output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        for (key, value) in secrets {
            assert!(!text.contains(value), "`clarion {}` shows {key}: {text}", command.join(" "));
        }
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn a_database_at_a_path_of_its_own_is_private_too() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let database = elsewhere.join("push.sqlite");
    let url = format!("sqlite://{}", database.display());
    let server =
        ServerProcess::start(&dir.path().join("data"), &[("CLARION_DATABASE_URL", url.as_str()), ("CLARION_SUBSCRIBE_RATE_LIMIT", "0")]);
    let stored = reqwest::Client::new()
        .post(format!("{}/api/v1/subscriptions", server.address))
        .json(&subscription_with_endpoint("https://fcm.googleapis.com/fcm/send/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    #[cfg(unix)]
    for file in ["push.sqlite", "push.sqlite-wal", "push.sqlite-shm"] {
        assert_eq!(mode(&elsewhere.join(file)), 0o600, "{file}");
    }
    server.kill();
}

#[tokio::test]
async fn a_log_written_to_a_pipe_carries_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // `NO_COLOR` empty counts as unset: only the pipe can turn colour off here.
    let server = ServerProcess::start(&dir.path().join("data"), &[("NO_COLOR", ""), ("RUST_LOG", "debug")]);
    let listed = reqwest::Client::new().get(format!("{}/api/v1/subscriptions", server.address)).send().await.unwrap();
    assert_eq!(listed.status(), 401);
    let log = server.kill();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "an ANSI escape code in a piped log: {log:?}");
}

#[tokio::test]
async fn an_endpoint_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[("CLARION_SUBSCRIBE_RATE_LIMIT", "0"), ("RUST_LOG", "debug")]);
    let client = reqwest::Client::new();
    for (i, tail) in ["\n2026-11-27T00:00:00.000000Z  INFO forged: admin signed in", "\u{1b}[31mRED\u{1b}[0m"].iter().enumerate() {
        let endpoint = format!("https://fcm.googleapis.com/fcm/send/{i}{tail}");
        let response = client
            .post(format!("{}/api/v1/subscriptions", server.address))
            .json(&subscription_with_endpoint(&endpoint))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success() || response.status().is_client_error());
    }
    let log = server.kill();
    assert!(!log.lines().any(|l| l.contains("INFO forged")), "a forged line:\n{log}");
    assert!(!log.contains("\u{1b}[31mRED"), "an escape sequence reached the log");
    assert!(log.contains("https://fcm.googleapis.com"), "the parsed origin is logged instead:\n{log}");
}

#[tokio::test]
async fn pushes_ignore_proxy_variables() {
    let push = spawn_push_service().await;
    let dir = tempfile::tempdir().unwrap();
    let host = push.host();
    // A proxy that does not exist: if the sender used it, every push would fail.
    let env = [
        ("CLARION_PUSH_HOSTS", host.as_str()),
        ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN),
        ("CLARION_VAPID_SUBJECT", SUBJECT),
        ("CLARION_MAX_ATTEMPTS", "1"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    let (server, endpoints) = server_with_slow_subscribers(&push, &dir.path().join("data"), &env, 1, 0).await;
    let id = queue_over_http(&server.address, "Direct").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = status_over_http(&server.address, id).await;
        if status["status"] == "done" {
            break status;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.kill();
    assert_eq!(status["delivered"], 1, "{status}");
    assert_eq!(push.messages(&endpoints[0]).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_100_000_distinct_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[("CLARION_TRUST_PROXY_HEADERS", "true")]);
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let url = format!("{}/api/fn/send_test_notification", server.address);
    // Each client asks for a test push to an endpoint it does not own (2 KB long). Before
    // the fix, each such endpoint became a limiter key, and no key was ever forgotten.
    let send = |n: u32| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let endpoint = format!("https://fcm.googleapis.com/fcm/send/{n}-{}", "x".repeat(2000));
            let response = client
                .post(&url)
                .header("X-Forwarded-For", std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string())
                .json(&json!({ "endpoint": endpoint, "auth": "AAECAwQFBgcICQoLDA0ODw" }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "not stored");
        }
    };
    use futures::StreamExt;
    futures::stream::iter(0..10_000u32).for_each_concurrent(32, send).await;
    let warm = server.rss_kib();
    futures::stream::iter(10_000..110_000u32).for_each_concurrent(32, send).await;
    let after = server.rss_kib();
    server.kill();
    let grown_mib = after.saturating_sub(warm) / 1024;
    eprintln!("RSS after 10,000 clients: {} MiB; after 100,000 more: {} MiB", warm / 1024, after / 1024);
    assert!(grown_mib < 24, "RSS grew by {grown_mib} MiB under 100,000 distinct clients");
}

/// Runs `clarion serve` expecting it to refuse to start: answers its log once it exits
/// with an error (it must, within 30 s).
fn refused_start(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("CLARION_ADMIN_TOKEN")
        .env_remove("CLARION_VAPID_PRIVATE_KEY")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the instance started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success(), "it exited with success: {log}");
    log
}

#[tokio::test]
async fn an_instance_with_another_vapid_key_or_admin_token_refuses_to_start_on_a_shared_database() {
    let database = postgres_database(&format!("shared_keys_{}", std::process::id())).await;
    let dir = tempfile::tempdir().unwrap();
    let (first_data, second_data) = (dir.path().join("first"), dir.path().join("second"));
    let env = [("CLARION_DATABASE_URL", database.as_str()), ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN)];
    let first = ServerProcess::start(&first_data, &env);
    let first_key = std::fs::read_to_string(first_data.join("vapid_private.pem")).unwrap();

    // Another data dir generates another VAPID key: refused, naming both fingerprints.
    let log = refused_start(&second_data, &env);
    let fingerprint_of = |log: &str| log.split("fingerprint=").nth(1).map(|rest| rest.split_whitespace().next().unwrap().to_string());
    let first_fingerprint = fingerprint_of(&first.seen.join("\n")).expect("the first instance logs its key's fingerprint");
    let second_fingerprint = fingerprint_of(&log).expect("the refused instance logs its key's fingerprint");
    assert_ne!(first_fingerprint, second_fingerprint);
    assert!(log.contains(&first_fingerprint) && log.contains("CLARION_VAPID_PRIVATE_KEY"), "{log}");
    assert!(log.matches(&second_fingerprint).count() >= 2, "the error names this instance's fingerprint too: {log}");

    // The same key with another admin token: refused too, without the token in the log.
    let other_token = "another-admin-token-0123456789abcdef";
    let same_key = [("CLARION_DATABASE_URL", database.as_str()), ("CLARION_VAPID_PRIVATE_KEY", first_key.as_str())];
    let log = refused_start(&second_data, &[same_key[0], same_key[1], ("CLARION_ADMIN_TOKEN", other_token)]);
    assert!(log.contains("CLARION_ADMIN_TOKEN") && log.contains("differs"), "{log}");
    assert!(!log.contains(other_token) && !log.contains(ADMIN_TOKEN), "a token was logged: {log}");
    // What the database holds of the token is keyed (Argon2id under the deployment's salt),
    // not a digest anyone could recompute from a guess, and the log never shows it.
    let db = sqlx::PgPool::connect(&database).await.unwrap();
    let recorded: String =
        sqlx::query_scalar("SELECT fingerprint FROM deployment_keys WHERE name = 'admin_token'").fetch_one(&db).await.unwrap();
    assert!(recorded.starts_with("argon2id:"), "{recorded}");
    assert!(!log.contains(&recorded) && !log.contains(recorded.trim_start_matches("argon2id:")), "the stored fingerprint was shown: {log}");
    let unsalted = unsalted_admin_fingerprint(ADMIN_TOKEN);
    assert_ne!(recorded, unsalted);

    // A deployment upgraded from a version that recorded the unsalted digest keeps working:
    // the record is recognised and replaced.
    sqlx::query("UPDATE deployment_keys SET fingerprint = $1 WHERE name = 'admin_token'").bind(&unsalted).execute(&db).await.unwrap();
    // The same key and token: a second instance joins.
    let second = ServerProcess::start(&second_data, &[same_key[0], same_key[1], ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let health = reqwest::get(format!("{}/healthz", second.address)).await.unwrap();
    assert_eq!(health.status(), 200);
    let upgraded: String =
        sqlx::query_scalar("SELECT fingerprint FROM deployment_keys WHERE name = 'admin_token'").fetch_one(&db).await.unwrap();
    assert_eq!(upgraded, recorded, "the old record was replaced by the keyed one");
    db.close().await;
    second.kill();
    first.kill();
}

/// How versions before the deployment salt recorded the admin token: SHA-256 of a label
/// and SHA-256 of the token, which a dictionary recomputes at millions a second.
fn unsalted_admin_fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"clarion admin token fingerprint\0");
    hasher.update(Sha256::digest(token.as_bytes()));
    clarion::domain::base64url::encode(&hasher.finalize()[..12])
}

/// Mints `count` subscriptions for `public_key` at the push service and stores them with
/// `clarion import -` (in the database `env` names), in one go.
async fn import_minted(push: &PushService, public_key: &str, count: i64, env: &[(&str, &str)], data: &std::path::Path) {
    let minted: Vec<Value> = push
        .client
        .post(format!("{}/_test/subscriptions/batch", push.origin))
        .json(&json!({ "application_server_key": public_key, "count": count }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines: String = minted.iter().map(|s| format!("{s}\n")).collect();
    let mut import = Command::new(BIN)
        .args(["import", "-", "--data-dir"])
        .arg(data)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut import.stdin.take().unwrap(), lines.as_bytes()).unwrap();
    let report: Value = serde_json::from_slice(&import.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(report["stored"], count);
}

/// `clarion_pushes_total{outcome="delivered"}` of one instance.
async fn delivered_by(address: &str) -> f64 {
    let text =
        reqwest::Client::new().get(format!("{address}/metrics")).bearer_auth(ADMIN_TOKEN).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(r#"clarion_pushes_total{outcome="delivered"} "#))
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_share_a_broadcast_to_20000_and_survive_kill_9() {
    const AUDIENCE: i64 = 20_000;
    const CONCURRENCY: usize = 16;
    let push = spawn_push_service().await;
    let database = postgres_database(&format!("shared_broadcast_{}", std::process::id())).await;
    let dir = tempfile::tempdir().unwrap();
    let key = clarion_push::vapid::VapidKeyMaterial::generate();
    let public_key = clarion::domain::base64url::encode(&key.public_key());
    let private_key = key.private_raw_base64url();
    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("CLARION_DATABASE_URL", database.as_str()),
        ("CLARION_PUSH_HOSTS", &push.host()),
        ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN),
        ("CLARION_VAPID_PRIVATE_KEY", private_key.as_str()),
        ("CLARION_VAPID_SUBJECT", SUBJECT),
        ("CLARION_SEND_CONCURRENCY", concurrency.as_str()),
        // A short push timeout makes a range's lease (2 + 2 + 10 s) lapse sooner after the kill.
        ("CLARION_PUSH_TIMEOUT", "2"),
    ];

    // 20,000 subscriptions minted at the push service, imported in one go.
    import_minted(&push, &public_key, AUDIENCE, &env, &dir.path().join("import")).await;
    // Every push takes 20 ms at the push service, so the broadcast lasts seconds.
    push.fault(&json!({ "endpoint": "*", "mode": "delay", "delay_ms": 20 })).await;

    let mut instances: Vec<ServerProcess> = (0..3).map(|i| ServerProcess::start(&dir.path().join(i.to_string()), &env)).collect();
    let id = queue_over_http(&instances[0].address, "To everyone").await;
    wait_until_delivered(&instances[1].address, id, AUDIENCE / 5).await;
    // Kill an instance that holds a range now (its lease owner names its pid).
    let db = sqlx::PgPool::connect(&database).await.unwrap();
    let holders: Vec<String> =
        sqlx::query_scalar("SELECT lease_owner FROM broadcast_ranges WHERE broadcast_id = $1 AND NOT done AND lease_owner IS NOT NULL")
            .bind(id)
            .fetch_all(&db)
            .await
            .unwrap();
    let victim = instances
        .iter()
        .position(|s| holders.iter().any(|h| h.starts_with(&format!("serve-{}-", s.pid()))))
        .expect("an instance holds a range");
    let victim = instances.remove(victim);
    let sent_by_victim = delivered_by(&victim.address).await;
    victim.kill();

    let status = wait_until_done(&instances[0].address, id, Duration::from_secs(90)).await;
    assert_eq!((status["total"].as_i64(), status["delivered"].as_i64()), (Some(AUDIENCE), Some(AUDIENCE)), "{status}");
    assert_eq!((status["failed"].as_i64(), status["removed"].as_i64()), (Some(0), Some(0)), "{status}");
    let summary = push.summary().await;
    assert!(summary["by_messages"].get("0").is_none(), "every subscriber got it: {summary}");
    // The killed instance held one range at a time; what it had sent but not committed is
    // sent again: at most its pages in flight.
    let repeats = summary["messages"].as_i64().unwrap() - AUDIENCE;
    let bound = clarion_core::broadcasts::max_repeats(CONCURRENCY);
    let ranges: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM broadcast_ranges WHERE broadcast_id = $1").bind(id).fetch_one(&db).await.unwrap();
    let mut sent_by = vec![sent_by_victim];
    for instance in &instances {
        sent_by.push(delivered_by(&instance.address).await);
    }
    eprintln!("{ranges} ranges; delivered per instance (the killed one first): {sent_by:?}; {repeats} repeats (bound {bound}); {summary}");
    assert!(repeats <= bound, "{repeats} repeats, more than the killed instance's pages in flight ({bound})");
    assert!(sent_by.iter().filter(|&&n| n > 0.0).count() >= 2, "at least two instances sent part of it: {sent_by:?}");
    assert!(sent_by[1..].iter().all(|&n| n > 0.0), "both survivors sent part of it: {sent_by:?}");
    for instance in instances {
        instance.kill();
    }
}

#[tokio::test]
async fn forget_me_never_writes_the_user_id_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data, &[("RUST_LOG", "debug")]);
    let token = std::fs::read_to_string(data.join("admin_token")).unwrap().trim().to_string();
    let client = reqwest::Client::new();
    let user = "user-secret-4242";
    let listed = client.get(format!("{}/api/v1/users/{user}/subscriptions", server.address)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let forgotten = client.delete(format!("{}/api/v1/users/{user}", server.address)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(forgotten.status(), 204);
    let log = server.kill();
    assert!(log.contains("/api/v1/users/{user_id}"), "the request is logged, without the id:\n{log}");
    assert!(!log.contains(user), "the user id leaked into the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_clock_runs_two_minutes_ahead_neither_takes_over_a_lease_nor_starts_a_schedule_early() {
    const AUDIENCE: i64 = 400;
    let push = spawn_push_service().await;
    let database = postgres_database(&format!("skewed_clocks_{}", std::process::id())).await;
    let dir = tempfile::tempdir().unwrap();
    let key = clarion_push::vapid::VapidKeyMaterial::generate();
    let public_key = clarion::domain::base64url::encode(&key.public_key());
    let private_key = key.private_raw_base64url();
    let env = [
        ("CLARION_DATABASE_URL", database.as_str()),
        ("CLARION_PUSH_HOSTS", &push.host()),
        ("CLARION_ADMIN_TOKEN", ADMIN_TOKEN),
        ("CLARION_VAPID_PRIVATE_KEY", private_key.as_str()),
        ("CLARION_VAPID_SUBJECT", SUBJECT),
        ("CLARION_SEND_CONCURRENCY", "2"),
    ];
    import_minted(&push, &public_key, AUDIENCE, &env, &dir.path().join("import")).await;
    // 20 ms a push, two at a time: the broadcast takes about four seconds.
    push.fault(&json!({ "endpoint": "*", "mode": "delay", "delay_ms": 20 })).await;

    // An instance with a true clock starts the broadcast and holds its ranges' leases...
    let honest = ServerProcess::start(&dir.path().join("honest"), &env);
    let id = queue_over_http(&honest.address, "Once each").await;
    wait_until_delivered(&honest.address, id, 20).await;
    // ...and one whose clock runs two minutes ahead joins: by its own clock every lease
    // the first took has lapsed long ago.
    let mut skewed_env = env.to_vec();
    skewed_env.push((clarion::domain::clock::OFFSET_VARIABLE, "120"));
    let ahead = ServerProcess::start(&dir.path().join("ahead"), &skewed_env);
    assert!(ahead.seen.join("\n").contains("for tests only"), "the shifted clock is announced");
    let status = wait_until_done(&honest.address, id, Duration::from_secs(60)).await;
    assert_eq!(status["delivered"].as_i64(), Some(AUDIENCE), "{status}");
    let summary = push.summary().await;
    assert_eq!(summary["by_messages"], json!({ "1": AUDIENCE }), "each subscription got exactly one push: {summary}");

    // A send scheduled a minute from now waits for its minute, though by the second
    // instance's clock it is a minute overdue.
    let send_at = (chrono::Utc::now() + chrono::TimeDelta::seconds(60)).to_rfc3339();
    let scheduled = reqwest::Client::new()
        .post(format!("{}/api/v1/notifications", honest.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "title": "Later", "body": "", "send_at": send_at }))
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.status(), 202);
    let later = scheduled.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status_over_http(&ahead.address, later).await["status"], "scheduled", "started early by the instance ahead");
    ahead.kill();
    honest.kill();
}
