//! Clarion's HTTP listener: accepts connections up to a cap, holds each client address to a
//! share of it, gives every connection deadlines for its first bytes, its first request
//! and its idle time, and drains gracefully on shutdown.
//!
//! A connection is worth a socket and a task. One that never speaks, or speaks half a
//! request, or keeps an HTTP/2 connection open with nothing on it (answering pings), would
//! hold both forever without these bounds, and a few hundred of them would keep the server
//! from answering anyone. The deadlines, in the order a connection meets them:
//! 1. **first bytes** ([`ConnectionLimits::first_bytes_timeout`]): from accept until the
//!    client has sent anything at all; hyper does not start its own header timer before it
//!    has chosen HTTP/1 or HTTP/2, which needs bytes;
//! 2. **first request** ([`ConnectionLimits::header_timeout`]): from accept until the first
//!    request's headers (HTTP/1) or the preface, SETTINGS and a first stream's headers
//!    (HTTP/2) have arrived; later requests on a kept-alive HTTP/1 connection get the
//!    same time for their headers from hyper;
//! 3. **idle** ([`ConnectionLimits::idle_timeout`]): a connection with no request in
//!    progress (no open stream, no response still streaming) for this long is asked to
//!    close (HTTP/1 closes, HTTP/2 gets GOAWAY), and dropped if it has not a few seconds
//!    later.
//!
//! Connections past the cap wait in the kernel's accept queue, so the clients already
//! connected keep being served; a client address past its share is closed at once.

use super::client_ip::ClientIpPolicy;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use clarion_core::admission::canonical;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a connection asked to close (idle, or the server stopping) may take to do so
/// before it is dropped; the server's own shutdown bounds its wait separately.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bounds on what one client may hold.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client address (an IPv4 address, an IPv6 /64) may hold at once.
    /// Trusted proxies (`CLARION_TRUSTED_PROXIES`) are not held to it.
    pub max_per_client: usize,
    /// From accept until the client's first byte.
    pub first_bytes_timeout: Duration,
    /// From accept until the first request's headers; for later requests on a kept-alive
    /// HTTP/1 connection, from the start of each request until its headers.
    pub header_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Whose connections are not counted per client (proxies that many clients share).
    pub proxies: ClientIpPolicy,
}

impl ConnectionLimits {
    /// The share of `max_connections` one client may hold when none is configured: a
    /// quarter, so four busy clients (or a flood from one) never fill the cap alone.
    pub fn default_per_client(max_connections: usize) -> usize {
        (max_connections / 4).max(1)
    }
}

/// Serves `router` on `listener` until `stop` fires, then stops accepting and waits for the
/// open connections to finish their requests (the caller bounds that wait). Connections
/// are tasks of this future: dropping it aborts them, so none outlives its server.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, stop: CancellationToken) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(ClientCounts::default());
    let mut connections = JoinSet::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    loop {
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let peer_ip = canonical(peer.ip());
        let slot = if limits.proxies.trusts(peer_ip) {
            None
        } else {
            match clients.take(peer_ip, limits.max_per_client) {
                Some(slot) => Some(slot),
                None => {
                    // Over its share: closed at once, so it holds nothing.
                    tracing::debug!(client = %peer_ip, "connection refused: the client holds its share of connections");
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let (router, limits, builder, stop) = (router.clone(), limits.clone(), builder.clone(), stop.clone());
        connections.spawn(async move {
            serve_connection(tcp, peer, router, &limits, &builder, stop).await;
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One connection, from its first byte to its close.
async fn serve_connection(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    builder: &auto::Builder<TokioExecutor>,
    stop: CancellationToken,
) {
    let accepted = Instant::now();
    let mut probe = [0u8; 1];
    let spoke = tokio::select! {
        peeked = tokio::time::timeout(limits.first_bytes_timeout, tcp.peek(&mut probe)) => matches!(peeked, Ok(Ok(n)) if n > 0),
        _ = stop.cancelled() => false,
    };
    if !spoke {
        return;
    }
    let activity = Arc::new(Activity::new(accepted));
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            // The peer address, as axum's `ConnectInfo` extractor expects it.
            request.extensions_mut().insert(ConnectInfo(peer));
            // In progress from its headers until the last byte of its response body, so
            // a long answer (an event stream, a large file) is never idle.
            let in_progress = activity.begin();
            let answer = tower::ServiceExt::oneshot(router.clone(), request);
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
                        let _ = &in_progress;
                        frame
                    }))
                }))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    // Set once the connection has been asked to close: when it is dropped if it has not.
    let mut drop_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let deadline = async {
            match drop_at {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    Verdict::Drop
                }
                None => activity.verdict(limits).await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stop.cancelled(), if !stopping => {
                // The server's shutdown bounds this wait itself.
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            verdict = deadline, if !stopping => match verdict {
                Verdict::Drop => return,
                Verdict::Close => {
                    connection.as_mut().graceful_shutdown();
                    drop_at = Some(Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}

/// What the deadlines decided for a connection.
enum Verdict {
    /// Silent past its first-request deadline, or not closed in its grace: dropped.
    Drop,
    /// Idle: asked to close.
    Close,
}

/// The requests of one connection: how many are in progress (from their headers until
/// their response body ends), whether there has been one, and since when it is idle.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    in_progress: usize,
    any_request: bool,
    since: Instant,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Self { state: Mutex::new(ActivityState { in_progress: 0, any_request: false, since: accepted }), changed: Notify::new() }
    }

    /// A request has begun; it lasts while the returned guard lives.
    fn begin(self: &Arc<Self>) -> RequestInProgress {
        let mut state = self.state.lock().expect("activity lock");
        state.in_progress += 1;
        state.any_request = true;
        drop(state);
        self.changed.notify_one();
        RequestInProgress(self.clone())
    }

    fn end(&self) {
        let mut state = self.state.lock().expect("activity lock");
        state.in_progress -= 1;
        state.since = Instant::now();
        drop(state);
        self.changed.notify_one();
    }

    /// Completes when a deadline passes: the first request's while there has been none,
    /// the idle one while nothing is in progress; waits while a request is in progress.
    async fn verdict(&self, limits: &ConnectionLimits) -> Verdict {
        loop {
            let changed = self.changed.notified();
            let deadline = {
                let state = self.state.lock().expect("activity lock");
                if !state.any_request {
                    Some((state.since + limits.header_timeout, Verdict::Drop))
                } else if state.in_progress == 0 {
                    Some((state.since + limits.idle_timeout, Verdict::Close))
                } else {
                    None
                }
            };
            match deadline {
                Some((at, verdict)) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => return verdict,
                    _ = changed => {}
                },
                None => changed.await,
            }
        }
    }
}

/// A request in progress on its connection; ends when dropped.
struct RequestInProgress(Arc<Activity>);

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Connections held per client address.
#[derive(Default)]
struct ClientCounts(Mutex<HashMap<ClientKey, usize>>);

/// A client address as connection shares count it: IPv4 by address, IPv6 by /64 (one
/// host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl ClientCounts {
    /// One more connection for `ip`, or `None` when it already holds `share`.
    fn take(self: &Arc<Self>, ip: IpAddr, share: usize) -> Option<ClientSlot> {
        let key = ClientKey::of(ip);
        let mut counts = self.0.lock().expect("client counts lock");
        let held = counts.entry(key).or_default();
        if *held >= share.max(1) {
            return None;
        }
        *held += 1;
        Some(ClientSlot { counts: self.clone(), key })
    }
}

/// One of a client's connections; gives its place back when dropped.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    key: ClientKey,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("client counts lock");
        if let Some(held) = counts.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let counts = Arc::new(ClientCounts::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = counts.take(ip, 2).unwrap();
        let _second = counts.take(ip, 2).unwrap();
        assert!(counts.take(ip, 2).is_none());
        assert!(counts.take("192.0.2.8".parse().unwrap(), 2).is_some(), "another address has its own share");
        drop(first);
        assert!(counts.take(ip, 2).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(ClientKey::of("2001:db8::1".parse().unwrap()), ClientKey::of("2001:db8::ffff:1".parse().unwrap()));
        assert_ne!(ClientKey::of("2001:db8::1".parse().unwrap()), ClientKey::of("2001:db8:0:1::1".parse().unwrap()));
        assert_eq!(ClientKey::of("::ffff:192.0.2.1".parse().unwrap()), ClientKey::of("192.0.2.1".parse().unwrap()));
    }
}
