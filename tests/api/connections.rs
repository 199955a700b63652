//! What one client can hold of the server's connections: silent sockets, half prefaces,
//! idle keep-alives and idle HTTP/2 connections that answer pings are closed on their
//! deadlines, and no client address holds more than its share. On the main address and
//! on the metrics address alike.

use crate::helpers::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `local` (any 127.0.0.0/8 address works on loopback) to `server`.
async fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(server).await.unwrap()
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// `GET /healthz` on a fresh connection from `local`, with its answer's status line.
async fn healthz_from(local: &str, server: SocketAddr) -> String {
    let mut stream = connect_from(local, server).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}

/// True when the server closed `stream` (or reset it) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

const CAP: usize = 8;

fn tight(args: &mut clarion::server::config::ServeArgs) {
    args.max_connections = CAP;
    args.max_connections_per_client = 2;
    args.first_bytes_timeout = 2;
    args.header_timeout = 3;
    args.idle_timeout = 2;
    args.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
}

/// Fills the cap of `server` with `CAP` connections from four addresses, each sending
/// `opening` (nothing, or half an HTTP/2 preface), then asks `/healthz` from a fifth.
async fn a_full_cap_of(opening: &[u8], server: SocketAddr, deadline: Duration) {
    let mut held = Vec::new();
    for i in 0..CAP {
        let mut stream = connect_from(&format!("127.0.0.{}", 10 + i / 2), server).await;
        if !opening.is_empty() {
            stream.write_all(opening).await.unwrap();
        }
        held.push(stream);
    }
    let asked = Instant::now();
    let status = tokio::time::timeout(deadline + Duration::from_secs(1), healthz_from("127.0.0.40", server)).await;
    assert!(status.is_ok(), "/healthz was not answered {:?} after the cap was filled", deadline + Duration::from_secs(1));
    assert!(status.unwrap().contains("200"), "healthz answered");
    assert!(asked.elapsed() < deadline + Duration::from_secs(1), "answered after {:?}", asked.elapsed());
    for mut stream in held {
        assert!(closed_within(&mut stream, Duration::from_secs(1)).await, "a held connection is still open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_full_of_silent_sockets_is_freed_at_the_first_bytes_deadline() {
    let app = spawn_app_with("", tight).await;
    a_full_cap_of(b"", addr_of(&app.address), Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_full_of_half_http2_prefaces_is_freed_at_the_header_deadline() {
    let app = spawn_app_with("", tight).await;
    a_full_cap_of(b"PRI * HTTP/2.0\r\n", addr_of(&app.address), Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_address_frees_its_cap_too() {
    let app = spawn_app_with("", tight).await;
    let metrics = addr_of(app.metrics_address.as_deref().unwrap());
    let mut held = Vec::new();
    for i in 0..CAP {
        held.push(connect_from(&format!("127.0.0.{}", 10 + i / 2), metrics).await);
    }
    let asked = Instant::now();
    let mut stream = tokio::time::timeout(Duration::from_secs(3), connect_from("127.0.0.40", metrics)).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await.expect("metrics answered").unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    assert!(asked.elapsed() < Duration::from_secs(3), "answered after {:?}", asked.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let app = spawn_app_with("", tight).await;
    let server = addr_of(&app.address);
    let _first = connect_from("127.0.0.50", server).await;
    let _second = connect_from("127.0.0.50", server).await;
    let mut third = connect_from("127.0.0.50", server).await;
    assert!(closed_within(&mut third, Duration::from_millis(500)).await, "a third connection from one address was kept");
    assert!(healthz_from("127.0.0.51", server).await.contains("200"), "another address is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with("", tight).await;
    let mut stream = connect_from("127.0.0.60", addr_of(&app.address)).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await, "an idle keep-alive connection stayed open");
    assert!(idle.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", idle.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_with_no_open_stream_is_closed_though_it_answers_pings() {
    let app = spawn_app_with("", tight).await;
    let tcp = connect_from("127.0.0.70", addr_of(&app.address)).await;
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    // The connection task answers the server's pings until the server closes it.
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("{}/healthz", app.address)).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let idle = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "an HTTP/2 connection with no stream stayed open");
    assert!(idle.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", idle.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_is_a_request_in_progress_not_an_idle_connection() {
    let app = spawn_app_with("", tight).await;
    let send_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let queued: serde_json::Value =
        app.notify(&serde_json::json!({ "title": "later", "send_at": send_at.to_rfc3339() })).await.json().await.unwrap();
    let id = queued["id"].as_i64().unwrap();
    let mut stream = connect_from("127.0.0.80", addr_of(&app.address)).await;
    let request =
        format!("GET /api/v1/notifications/{id}/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..read]));
    // Twice the idle deadline with nothing new to say: still open.
    assert!(!closed_within(&mut stream, Duration::from_secs(4)).await, "an event stream was closed as idle");
}
