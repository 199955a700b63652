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

#[tokio::test]
async fn serve_creates_private_files_and_never_logs_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("CLARION_ADMIN_TOKEN")
        .env_remove("CLARION_VAPID_PRIVATE_KEY")
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let line = rx.recv_timeout(deadline - Instant::now()).expect("server logs that it listens");
        log.push(line.clone());
        if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let token = std::fs::read_to_string(data.join("admin_token")).unwrap().trim().to_string();
    let private_key = std::fs::read_to_string(data.join("vapid_private.pem")).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin_token")), 0o600);
        assert_eq!(mode(&data.join("vapid_private.pem")), 0o600);
    }
    // The generated token works, and using it does not log it either.
    let client = reqwest::Client::new();
    let listed = client.get(format!("http://{address}/api/v1/subscriptions")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let refused = client.get(format!("http://{address}/api/v1/subscriptions?after=1")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status(), 401);

    child.kill().unwrap();
    child.wait().unwrap();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert!(log.contains("admin_token"), "the token file's path is logged:\n{log}");
    assert!(!log.contains(&token), "the admin token leaked into the log");
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
    let material = clarion::server::vapid::VapidKeyMaterial::from_raw_base64url(&private).unwrap();
    assert_eq!(material.public_key().to_vec(), public);
    let pem_start = text.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let from_pem = clarion::server::vapid::VapidKeyMaterial::from_pem(&text[pem_start..]).unwrap();
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
    assert_eq!(payload, json!({ "title": "From the CLI", "body": "Hello", "url": "/cli" }));
}
