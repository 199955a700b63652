//! `clarion push-service`: every check of the RFC 8030 receiver, faults, and Mozilla's
//! WebSocket protocol. Requests are built by hand so each can be forged in one way.

use crate::helpers::*;
use clarion::domain::base64url;
use clarion::domain::subscription::{AuthSecret, P256dhKey};
use clarion_push::encryption;
use clarion_push::vapid::{VapidKeyMaterial, VapidKeys};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct Sender {
    keys: VapidKeys,
}

impl Sender {
    fn new() -> Self {
        Self { keys: VapidKeys::new(&VapidKeyMaterial::generate(), SUBJECT).unwrap() }
    }

    fn key(&self) -> String {
        self.keys.public_key_b64().to_string()
    }

    fn authorization(&self, aud: &str, exp: u64) -> String {
        format!("vapid t={}, k={}", self.keys.sign_jwt(aud, exp), self.keys.public_key_b64())
    }

    fn encrypt(subscription: &Value, plaintext: &[u8]) -> Vec<u8> {
        let p256dh = P256dhKey::parse(subscription["keys"]["p256dh"].as_str().unwrap()).unwrap();
        let auth = AuthSecret::parse(subscription["keys"]["auth"].as_str().unwrap()).unwrap();
        encryption::encrypt(&p256dh, &auth, plaintext, &ring::rand::SystemRandom::new()).unwrap()
    }
}

/// A well-formed push; each test then breaks one thing.
fn push_request(client: &reqwest::Client, endpoint: &str, authorization: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post(endpoint)
        .header("TTL", "60")
        .header("Content-Encoding", "aes128gcm")
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", authorization)
        .body(body)
}

/// Sets a header, replacing the one `push_request` put there (reqwest's `header` appends).
fn set(builder: reqwest::RequestBuilder, name: &'static str, value: &str) -> reqwest::RequestBuilder {
    let (client, request) = builder.build_split();
    let mut request = request.unwrap();
    request.headers_mut().insert(name, value.parse().unwrap());
    reqwest::RequestBuilder::from_parts(client, request)
}

async fn reason(response: reqwest::Response) -> String {
    response.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_correct_push_is_accepted_and_decrypts() {
    let push = spawn_push_service().await;
    let sender = Sender::new();
    let subscription = push.mint(Some(&sender.key())).await;
    let endpoint = subscription["endpoint"].as_str().unwrap();
    let auth = sender.authorization(&push.origin, unix_now() + 3600);
    let response = push_request(&push.client, endpoint, &auth, Sender::encrypt(&subscription, b"{\"title\":\"hi\"}"))
        .header("Urgency", "low")
        .header("Topic", "abc_-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers()["location"].to_str().unwrap().starts_with(&push.origin));
    let messages = push.messages(endpoint).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["payload"], "{\"title\":\"hi\"}");
    assert_eq!(messages[0]["ttl"], 60);
    assert_eq!(messages[0]["urgency"], "low");
    assert_eq!(messages[0]["topic"], "abc_-1");
    assert_eq!(messages[0]["claims"]["aud"], push.origin);
}

#[tokio::test]
async fn each_forged_or_malformed_push_gets_its_status() {
    let push = spawn_push_service().await;
    let sender = Sender::new();
    let subscription = push.mint(Some(&sender.key())).await;
    let endpoint = subscription["endpoint"].as_str().unwrap().to_string();
    let now = unix_now();
    let good_auth = sender.authorization(&push.origin, now + 3600);
    let body = Sender::encrypt(&subscription, b"x");
    let client = &push.client;
    let origin_without_port = push.origin.rsplit_once(':').unwrap().0.to_string();
    let other = Sender::new();

    type Case = (&'static str, reqwest::RequestBuilder, u16, &'static str);
    let cases: Vec<Case> = vec![
        ("unknown id", push_request(client, &format!("{}/push/nope", push.origin), &good_auth, body.clone()), 404, "unknown"),
        (
            "no TTL",
            client.post(&endpoint).header("Content-Encoding", "aes128gcm").header("Authorization", &good_auth).body(body.clone()),
            400,
            "TTL",
        ),
        ("TTL not a number", set(push_request(client, &endpoint, &good_auth, body.clone()), "ttl", "soon"), 400, "TTL"),
        ("TTL over 30 days", set(push_request(client, &endpoint, &good_auth, body.clone()), "ttl", "2592001"), 400, "30 days"),
        ("aesgcm encoding", set(push_request(client, &endpoint, &good_auth, body.clone()), "content-encoding", "aesgcm"), 400, "aes128gcm"),
        ("4097 bytes", push_request(client, &endpoint, &good_auth, vec![0; 4097]), 413, "4096"),
        ("33-character Topic", push_request(client, &endpoint, &good_auth, body.clone()).header("Topic", "a".repeat(33)), 400, "Topic"),
        ("Topic with padding", push_request(client, &endpoint, &good_auth, body.clone()).header("Topic", "ab=="), 400, "Topic"),
        ("bad Urgency", push_request(client, &endpoint, &good_auth, body.clone()).header("Urgency", "urgent"), 400, "Urgency"),
        (
            "no Authorization",
            client.post(&endpoint).header("TTL", "60").header("Content-Encoding", "aes128gcm").body(body.clone()),
            401,
            "Authorization",
        ),
        (
            "aud without the port",
            push_request(client, &endpoint, &sender.authorization(&origin_without_port, now + 3600), body.clone()),
            401,
            "aud",
        ),
        ("expired exp", push_request(client, &endpoint, &sender.authorization(&push.origin, now - 10), body.clone()), 401, "expired"),
        (
            "far-future exp",
            push_request(client, &endpoint, &sender.authorization(&push.origin, now + 25 * 3600), body.clone()),
            401,
            "24 hours",
        ),
        (
            "signature that k does not verify",
            push_request(
                client,
                &endpoint,
                &format!("vapid t={}, k={}", sender.keys.sign_jwt(&push.origin, now + 60), other.key()),
                body.clone(),
            ),
            401,
            "signature",
        ),
        ("garbage JWT", push_request(client, &endpoint, &format!("vapid t=abc, k={}", sender.key()), body.clone()), 401, "three parts"),
        (
            "another VAPID key",
            push_request(client, &endpoint, &other.authorization(&push.origin, now + 3600), body.clone()),
            403,
            "applicationServerKey",
        ),
    ];
    for (name, request, status, reason_has) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        let text = reason(response).await;
        assert!(text.contains(reason_has), "{name}: {text}");
    }
    let localhost_subject = VapidKeys::new(&VapidKeyMaterial::generate(), "localhost").unwrap();
    let minted = push.mint(Some(localhost_subject.public_key_b64())).await;
    let header = format!("vapid t={}, k={}", localhost_subject.sign_jwt(&push.origin, now + 60), localhost_subject.public_key_b64());
    let response = push_request(client, minted["endpoint"].as_str().unwrap(), &header, body.clone()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(reason(response).await.contains("sub"));

    assert!(push.messages(&endpoint).await.is_empty(), "no refused push was recorded");
    push.expire(&endpoint).await;
    let gone = push_request(client, &endpoint, &good_auth, body).send().await.unwrap();
    assert_eq!(gone.status(), 410);
}

#[tokio::test]
async fn faults_answer_as_configured_once_or_always() {
    let push = spawn_push_service().await;
    let sender = Sender::new();
    let subscription = push.mint(Some(&sender.key())).await;
    let endpoint = subscription["endpoint"].as_str().unwrap();
    let auth = sender.authorization(&push.origin, unix_now() + 3600);
    let send = || push_request(&push.client, endpoint, &auth, Sender::encrypt(&subscription, b"x")).send();

    push.fault(&json!({ "endpoint": endpoint, "status": 429, "retry_after": 3, "count": 1 })).await;
    let limited = send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3");
    assert_eq!(send().await.unwrap().status(), 201, "a count-1 fault applies once");

    push.fault(&json!({ "endpoint": endpoint, "status": 503 })).await;
    assert_eq!(send().await.unwrap().status(), 503);
    assert_eq!(send().await.unwrap().status(), 503, "a fault without count applies always");

    push.fault(&json!({ "endpoint": endpoint, "mode": "drop", "count": 1 })).await;
    assert!(send().await.is_err(), "drop mode closes the connection");

    push.fault(&json!({ "endpoint": endpoint, "status": 500, "delay_ms": 300, "count": 1 })).await;
    let started = std::time::Instant::now();
    assert_eq!(send().await.unwrap().status(), 500);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(send().await.unwrap().status(), 201);
}

async fn connect(origin: &str) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = origin.replacen("http", "ws", 1).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "push-notification".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "push-notification");
    socket
}

async fn exchange<S>(socket: &mut S, frame: Value) -> Value
where
    S: SinkExt<Message> + StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    <S as futures::Sink<Message>>::Error: std::fmt::Debug,
{
    socket.send(Message::Text(frame.to_string().into())).await.unwrap();
    next_frame(socket).await
}

async fn next_frame<S>(socket: &mut S) -> Value
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.expect("a frame arrives").unwrap().unwrap();
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn the_websocket_protocol_delivers_live_and_queued_pushes_intact() {
    let push = spawn_push_service().await;
    let sender = Sender::new();
    let mut socket = connect(&push.origin).await;

    let hello = exchange(&mut socket, json!({ "messageType": "hello", "use_webpush": true, "broadcasts": {} })).await;
    assert_eq!(hello["status"], 200);
    assert_eq!(hello["use_webpush"], true);
    let uaid = hello["uaid"].as_str().unwrap().to_string();
    assert_eq!(exchange(&mut socket, json!({})).await, json!({}), "ping");

    let register = exchange(&mut socket, json!({ "messageType": "register", "channelID": "ch-1", "key": sender.key() })).await;
    assert_eq!(register["status"], 200);
    assert_eq!(register["channelID"], "ch-1");
    let endpoint = register["pushEndpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with(&format!("{}/push/", push.origin)));

    // Live delivery: the body arrives byte for byte.
    let auth = sender.authorization(&push.origin, unix_now() + 3600);
    let live_body: Vec<u8> = (0..=255u8).collect();
    assert_eq!(push_request(&push.client, &endpoint, &auth, live_body.clone()).send().await.unwrap().status(), 201);
    let notification = next_frame(&mut socket).await;
    assert_eq!(notification["messageType"], "notification");
    assert_eq!(notification["channelID"], "ch-1");
    assert_eq!(notification["headers"]["encoding"], "aes128gcm");
    assert_eq!(base64url::decode(notification["data"].as_str().unwrap()).unwrap(), live_body);
    let version = notification["version"].as_str().unwrap().to_string();
    socket
        .send(Message::Text(
            json!({ "messageType": "ack", "updates": [{ "channelID": "ch-1", "version": version, "code": 100 }] }).to_string().into(),
        ))
        .await
        .unwrap();
    socket.close(None).await.unwrap();
    drop(socket);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    // Away: TTL 0 is dropped, a TTL>0 push is queued, and a newer one with the same
    // Topic replaces the older.
    let queued_body = b"queued message".to_vec();
    let send = |body: Vec<u8>, ttl: &'static str, topic: Option<&'static str>| {
        let mut request = set(push_request(&push.client, &endpoint, &auth, body), "ttl", ttl);
        if let Some(topic) = topic {
            request = request.header("Topic", topic);
        }
        request.send()
    };
    assert_eq!(send(b"now or never".to_vec(), "0", None).await.unwrap().status(), 201);
    assert_eq!(send(b"old news".to_vec(), "600", Some("news")).await.unwrap().status(), 201);
    assert_eq!(send(queued_body.clone(), "600", Some("news")).await.unwrap().status(), 201);

    let mut socket = connect(&push.origin).await;
    let hello = exchange(&mut socket, json!({ "messageType": "hello", "uaid": uaid, "use_webpush": true })).await;
    assert_eq!(hello["uaid"], uaid.as_str(), "the uaid is kept");
    let queued = next_frame(&mut socket).await;
    assert_eq!(base64url::decode(queued["data"].as_str().unwrap()).unwrap(), queued_body);
    let nothing_else = tokio::time::timeout(std::time::Duration::from_millis(300), socket.next()).await;
    assert!(nothing_else.is_err(), "the acked, the TTL-0 and the replaced pushes are not redelivered");

    let unregister = exchange(&mut socket, json!({ "messageType": "unregister", "channelID": "ch-1" })).await;
    assert_eq!(unregister["status"], 200);
    assert_eq!(send(b"late".to_vec(), "60", None).await.unwrap().status(), 410);
}

#[tokio::test]
async fn the_sink_accepts_any_well_formed_push() {
    let server = clarion_push_service::PushServiceServer::bind(&clarion_push_service::Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        sink: true,
        tls: None,
        handshake_delay: std::time::Duration::ZERO,
    })
    .await
    .unwrap();
    let origin = server.origin().to_string();
    tokio::spawn(server.run());
    let client = reqwest::Client::new();
    let ok = push_request(&client, &format!("{origin}/push/anything"), "vapid t=x, k=y", vec![1; 100]).send().await.unwrap();
    assert_eq!(ok.status(), 201);
    let too_big = push_request(&client, &format!("{origin}/push/anything"), "vapid t=x, k=y", vec![1; 5000]).send().await.unwrap();
    assert_eq!(too_big.status(), 413);
}

/// Runs end2end/tools/pywebpush_send.py (pywebpush from PyPI, installed by `./setup.sh test`).
fn pywebpush(args: &[&str]) -> std::process::Output {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/end2end/tools/pywebpush_send.py");
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/end2end/.venv/bin/python");
    assert!(std::path::Path::new(python).exists(), "pywebpush is missing: run ./setup.sh test (it creates end2end/.venv)");
    std::process::Command::new(python).arg(tool).args(args).output().expect("python runs")
}

#[tokio::test]
async fn an_independent_sender_pywebpush_is_accepted_and_decrypts() {
    let push = spawn_push_service().await;
    let keys: Value = serde_json::from_slice(&pywebpush(&["keys"]).stdout).unwrap();
    let public = keys["public_key"].as_str().unwrap().to_string();
    let private_pem = keys["private_pem"].as_str().unwrap().to_string();
    let subscription = push.mint(Some(&public)).await;
    let payload = "{\"title\":\"from pywebpush\",\"body\":\"héllo ✓\"}";
    let sub_json = subscription.to_string();
    let output = tokio::task::spawn_blocking(move || pywebpush(&["send", &sub_json, payload, &private_pem, SUBJECT])).await.unwrap();
    assert!(
        output.status.success(),
        "pywebpush was refused: {} {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["status"], 201);
    let messages = push.messages(subscription["endpoint"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["payload"], payload);
    assert_eq!(messages[0]["ttl"], 120);
    assert_eq!(messages[0]["claims"]["aud"], push.origin);

    // The same sender with another VAPID key is refused with 403.
    let other: Value = serde_json::from_slice(&pywebpush(&["keys"]).stdout).unwrap();
    let other_pem = other["private_pem"].as_str().unwrap().to_string();
    let sub_json = subscription.to_string();
    let refused = tokio::task::spawn_blocking(move || pywebpush(&["send", &sub_json, "x", &other_pem, SUBJECT])).await.unwrap();
    assert!(!refused.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&refused.stdout).unwrap()["status"], 403);
}

// ---- The web-push crate, an independent sender ---------------------------------------------

/// Sends one message with the `web-push` crate (0.11), as its documentation shows: a
/// `VapidSignatureBuilder` from the PEM key for each subscription, a message builder, and
/// its hyper client. Returns the crate's own verdict.
async fn send_with_web_push_crate(subscription: &Value, payload: &str, private_pem: &str) -> Result<(), web_push::WebPushError> {
    use web_push::{ContentEncoding, HyperWebPushClient, SubscriptionInfo, VapidSignatureBuilder, WebPushClient, WebPushMessageBuilder};
    let keys = &subscription["keys"];
    let subscription_info =
        SubscriptionInfo::new(subscription["endpoint"].as_str().unwrap(), keys["p256dh"].as_str().unwrap(), keys["auth"].as_str().unwrap());
    let mut signature = VapidSignatureBuilder::from_pem(private_pem.as_bytes(), &subscription_info)?;
    signature.add_claim("sub", SUBJECT);
    let mut builder = WebPushMessageBuilder::new(&subscription_info);
    builder.set_payload(ContentEncoding::Aes128Gcm, payload.as_bytes());
    builder.set_ttl(120);
    builder.set_vapid_signature(signature.build()?);
    HyperWebPushClient::new().send(builder.build()?).await
}

#[tokio::test]
async fn the_web_push_crate_is_accepted_and_decrypts_on_a_push_service_without_a_port() {
    let push = spawn_push_service_without_port().await;
    assert!(!push.origin.trim_start_matches("http://").contains(':'), "{}", push.origin);
    let material = VapidKeyMaterial::generate();
    let public = base64url::encode(&material.public_key());
    let subscription = push.mint(Some(&public)).await;
    let payload = "{\"title\":\"from the web-push crate\",\"body\":\"héllo ✓\"}";

    send_with_web_push_crate(&subscription, payload, &material.to_pkcs8_pem()).await.expect("the push service accepts it");
    let messages = push.messages(subscription["endpoint"].as_str().unwrap()).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["payload"], payload);
    assert_eq!(messages[0]["ttl"], 120);
    assert_eq!(messages[0]["claims"]["aud"], push.origin);
    assert_eq!(messages[0]["claims"]["sub"], SUBJECT);

    // Another VAPID key than the subscription's: it arrives and is refused (403, which the
    // crate reports as `Other`), as FCM refuses it.
    let other = VapidKeyMaterial::generate().to_pkcs8_pem();
    let refused = send_with_web_push_crate(&subscription, "x", &other).await;
    assert!(matches!(refused, Err(web_push::WebPushError::Other(_))), "{refused:?}");
    let endpoint = subscription["endpoint"].as_str().unwrap();
    assert_eq!(push.requests(endpoint).await, 2);
    assert_eq!(push.messages(endpoint).await.len(), 1);
}

/// Why Clarion signs its own JWTs: the crate's `aud` is `scheme://host`, without the port,
/// so a push service on any other port (every local one, `clarion push-service` included)
/// refuses its pushes, while Clarion's sender is accepted there.
#[tokio::test]
async fn the_web_push_crate_drops_the_port_from_aud_and_is_refused_where_there_is_one() {
    let push = spawn_push_service().await;
    let material = VapidKeyMaterial::generate();
    let subscription = push.mint(Some(&base64url::encode(&material.public_key()))).await;
    let endpoint = subscription["endpoint"].as_str().unwrap();

    // 401: the JWT's aud is not this push service's origin.
    let refused = send_with_web_push_crate(&subscription, "x", &material.to_pkcs8_pem()).await;
    assert!(matches!(refused, Err(web_push::WebPushError::Unauthorized(_))), "{refused:?}");
    assert_eq!(push.requests(endpoint).await, 1);
    assert!(push.messages(endpoint).await.is_empty());

    // The same key through Clarion's header is accepted: its aud keeps the port.
    let keys = VapidKeys::new(&material, SUBJECT).unwrap();
    let body = encryption::encrypt(
        &P256dhKey::parse(subscription["keys"]["p256dh"].as_str().unwrap()).unwrap(),
        &AuthSecret::parse(subscription["keys"]["auth"].as_str().unwrap()).unwrap(),
        b"y",
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let response = push
        .client
        .post(endpoint)
        .header("TTL", "60")
        .header("Content-Encoding", "aes128gcm")
        .header("Authorization", keys.authorization(&push.origin))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(push.messages(endpoint).await[0]["claims"]["aud"], push.origin);
}

// ---- The sender against the push service's own crypto (RustCrypto, not ring) -----------

#[test]
fn the_push_service_decrypts_what_the_ring_sender_encrypts() {
    use clarion_push_service::decrypt;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let material = VapidKeyMaterial::generate();
    let secret = p256::SecretKey::from_slice(&base64url::decode(&material.private_raw_base64url()).unwrap()).unwrap();
    let auth = [9u8; 16];
    let point = secret.public_key().to_encoded_point(false);
    let p256dh = P256dhKey::from_bytes(point.as_bytes()).unwrap();
    let body =
        encryption::encrypt(&p256dh, &AuthSecret::from_bytes(&auth).unwrap(), b"hello push", &ring::rand::SystemRandom::new()).unwrap();
    assert_eq!(body.len(), b"hello push".len() + encryption::OVERHEAD);
    assert_eq!(decrypt(&secret, &auth, &body).unwrap(), b"hello push");
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(decrypt(&secret, &auth, &tampered).is_err());
    assert!(decrypt(&secret, &[0u8; 16], &body).is_err());
}

#[test]
fn the_push_service_verifies_the_senders_vapid_header_and_refuses_forgeries() {
    use clarion_push_service::verify_vapid;
    let keys = VapidKeys::new(&VapidKeyMaterial::generate(), SUBJECT).unwrap();
    let now = 1_900_000_000;
    let origin = "http://127.0.0.1:8090";
    let header = |aud: &str, exp: u64| format!("vapid t={}, k={}", keys.sign_jwt(aud, exp), keys.public_key_b64());
    let ok = verify_vapid(&header(origin, now + 3600), origin, now).unwrap();
    assert_eq!(ok.claims.sub, SUBJECT);
    assert!(verify_vapid(&header("http://127.0.0.1", now + 3600), origin, now).unwrap_err().contains("aud"));
    assert!(verify_vapid(&header(origin, now - 1), origin, now).unwrap_err().contains("expired"));
    assert!(verify_vapid(&header(origin, now + 25 * 3600), origin, now).unwrap_err().contains("24 hours"));
    let other = VapidKeys::new(&VapidKeyMaterial::generate(), SUBJECT).unwrap();
    let wrong_key = format!("vapid t={}, k={}", keys.sign_jwt(origin, now + 60), other.public_key_b64());
    assert!(verify_vapid(&wrong_key, origin, now).unwrap_err().contains("signature"));
}
