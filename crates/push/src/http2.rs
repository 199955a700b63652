//! HTTP/2 to push services, on the `h2` crate directly.
//!
//! FCM, Mozilla autopush and Apple all speak HTTP/2, and a broadcast sends every push to
//! one of them over one connection. Through reqwest, each push also crossed hyper's
//! dispatch channel to the connection's task, a task spawned for its response and a
//! oneshot back: several thread wake-ups per push, for nothing a push needs. Here a push
//! opens its stream on the shared connection from its own task and waits for the answer,
//! which the connection's task hands it directly. In one run of 20,000 pushes to the
//! benchmark's sink that cut the CPU per push by about a fifth (docs/performance.md).
//!
//! [`Http2Connections`] keeps one connection per push-service origin, opened over TLS with
//! ALPN. It is for `https` endpoints only: an origin whose push service does not choose
//! `h2` is remembered as HTTP/1.1, and its pushes (like those to `http` endpoints, as the
//! local push service serves them) go through the sender's reqwest client. Names resolve
//! through the same [`PublicOnlyResolver`]; IP literals are connected to as given, as
//! reqwest does. An idle connection is let go after [`POOL_IDLE`], as reqwest's pool does.

use crate::connections::POOL_IDLE;
use crate::outcome::PushTimeouts;
use crate::resolver::PublicOnlyResolver;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The push service's answer: its status and headers (the body is never needed).
pub type Answer = (StatusCode, HeaderMap);

/// What became of a push given to [`Http2Connections::post`].
#[derive(Debug)]
pub enum Posted {
    /// The push service answered.
    Answered(Answer),
    /// No answer: connection refused, TLS failure, timeout, reset.
    Unanswered(String),
    /// The push service does not speak HTTP/2 (or the endpoint is not `https`): send the
    /// request another way; here are its headers and body back.
    NotHttp2(HeaderMap, Vec<u8>),
}

/// How to reach one origin.
#[derive(Debug)]
enum Route {
    /// An open HTTP/2 connection, numbered so that a failed one is not mistaken for its
    /// replacement.
    Http2 { connection: u64, requests: h2::client::SendRequest<Bytes>, last_used: Instant },
    /// ALPN chose HTTP/1.1.
    Http1,
}

/// One HTTP/2 connection per push-service origin.
pub struct Http2Connections {
    tls: tokio_rustls::TlsConnector,
    resolver: Arc<PublicOnlyResolver>,
    timeouts: PushTimeouts,
    user_agent: reqwest::header::HeaderValue,
    routes: Arc<Mutex<Routes>>,
    /// Numbers the connections opened.
    opened: AtomicU64,
    /// How long an unused connection is kept: [`POOL_IDLE`].
    idle: Duration,
}

/// By origin, at most [`MAX_TRACKED_ORIGINS`](crate::connections::MAX_TRACKED_ORIGINS):
/// an evicted HTTP/2 route's connection closes once its last stream ends.
type Routes = lru::LruCache<String, Route>;

impl std::fmt::Debug for Http2Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Connections").field("opened", &self.opened.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Http2Connections {
    /// Trusts the Mozilla roots (as the reqwest client does) and the certificates of
    /// `extra_ca_pem`.
    pub fn new(
        extra_ca_pem: Option<&[u8]>,
        resolver: Arc<PublicOnlyResolver>,
        timeouts: PushTimeouts,
        user_agent: &'static str,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(pem) = extra_ca_pem {
            for certificate in CertificateDer::pem_slice_iter(pem) {
                roots.add(certificate?)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            resolver,
            timeouts,
            user_agent: reqwest::header::HeaderValue::from_static(user_agent),
            routes: Arc::new(Mutex::new(lru::LruCache::new(crate::connections::MAX_TRACKED_ORIGINS))),
            opened: AtomicU64::new(0),
            idle: POOL_IDLE,
        })
    }

    /// POSTs `body` to `endpoint` with `headers`, over the origin's connection (opened if
    /// none is). A connection found closed before the request left is replaced once; a
    /// request that may have reached the push service is not repeated here (the delivery
    /// policy decides). Takes at most the request timeout.
    pub async fn post(&self, origin: &str, endpoint: &url::Url, mut headers: HeaderMap, body: Vec<u8>) -> Posted {
        if endpoint.scheme() != "https" {
            return Posted::NotHttp2(headers, body);
        }
        let deadline = tokio::time::Instant::now() + self.timeouts.request;
        let (connection, mut requests) = match tokio::time::timeout_at(deadline, self.ready(origin, endpoint)).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(Unready::NotHttp2)) => return Posted::NotHttp2(headers, body),
            Ok(Err(Unready::Failed(reason))) => return Posted::Unanswered(reason),
            Err(_) => return Posted::Unanswered("timed out".into()),
        };
        headers.insert(reqwest::header::USER_AGENT, self.user_agent.clone());
        headers.insert(reqwest::header::CONTENT_LENGTH, body.len().into());
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = match endpoint.as_str().parse() {
            Ok(uri) => uri,
            Err(e) => return Posted::Unanswered(format!("the endpoint is not a URI: {e}")),
        };
        *request.headers_mut() = headers;
        let exchange = async {
            let (response, mut stream) = requests.send_request(request, false)?;
            stream.send_data(Bytes::from(body), true)?;
            response.await
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(response)) => {
                let (parts, _body) = response.into_parts();
                Posted::Answered((parts.status, parts.headers))
            }
            Ok(Err(e)) => {
                if e.is_go_away() || e.is_io() {
                    self.forget(origin, connection);
                }
                Posted::Unanswered(describe(&e))
            }
            Err(_) => Posted::Unanswered("timed out".into()),
        }
    }

    /// The origin's connection, ready for a new stream: the pooled one, or a new one if
    /// there is none or the pooled one was found closed.
    async fn ready(&self, origin: &str, endpoint: &url::Url) -> Result<(u64, h2::client::SendRequest<Bytes>), Unready> {
        if let Some((connection, requests)) = self.pooled(origin)? {
            match requests.ready().await {
                Ok(ready) => return Ok((connection, ready)),
                // Closed by the push service while idle, or refusing new streams.
                Err(_) => self.forget(origin, connection),
            }
        }
        // Boxed: the TLS handshake's state is kilobytes, and a push future that held it
        // inline would be copied whole each time it is moved, for every push.
        Box::pin(self.open(origin, endpoint)).await
    }

    /// The origin's connection, unless it has been idle for [`POOL_IDLE`];
    /// [`Unready::NotHttp2`] for an origin whose push service chose HTTP/1.1.
    fn pooled(&self, origin: &str) -> Result<Option<(u64, h2::client::SendRequest<Bytes>)>, Unready> {
        let mut routes = self.routes.lock().expect("routes lock");
        match routes.get_mut(origin) {
            Some(Route::Http1) => Err(Unready::NotHttp2),
            Some(Route::Http2 { connection, requests, last_used }) if last_used.elapsed() < self.idle => {
                *last_used = Instant::now();
                Ok(Some((*connection, requests.clone())))
            }
            Some(Route::Http2 { .. }) => {
                // Dropping the last handle lets the idle connection close.
                routes.pop(origin);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Drops the origin's connection if it is still `connection`.
    fn forget(&self, origin: &str, connection: u64) {
        release_if_idle(&self.routes, origin, connection, Duration::ZERO);
    }

    /// Opens a connection to the endpoint's origin, within the connect timeout, and makes
    /// it the origin's route.
    async fn open(&self, origin: &str, endpoint: &url::Url) -> Result<(u64, h2::client::SendRequest<Bytes>), Unready> {
        let connecting = async {
            let host = endpoint.host().ok_or_else(|| Unready::Failed("the endpoint has no host".into()))?;
            let port = endpoint.port_or_known_default().unwrap_or(443);
            let (addresses, name) = match host {
                url::Host::Domain(domain) => {
                    let addresses = self.resolver.lookup(domain).await.map_err(|reason| {
                        tracing::warn!(host = domain, %reason, "refused a push-service address");
                        Unready::Failed(reason)
                    })?;
                    let name = ServerName::try_from(domain.to_string()).map_err(|e| Unready::Failed(e.to_string()))?;
                    (addresses, name)
                }
                url::Host::Ipv4(ip) => (vec![SocketAddr::from((ip, 0))], ServerName::from(std::net::IpAddr::from(ip))),
                url::Host::Ipv6(ip) => (vec![SocketAddr::from((ip, 0))], ServerName::from(std::net::IpAddr::from(ip))),
            };
            let tcp = connect_any(addresses, port).await.map_err(|_| Unready::Failed("connection failed".into()))?;
            tcp.set_nodelay(true).map_err(|e| Unready::Failed(e.to_string()))?;
            let tls = self.tls.connect(name, tcp).await.map_err(|e| Unready::Failed(format!("TLS: {e}")))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                self.routes.lock().expect("routes lock").put(origin.to_string(), Route::Http1);
                return Err(Unready::NotHttp2);
            }
            let (requests, connection) = h2::client::handshake(tls).await.map_err(|e| Unready::Failed(describe(&e)))?;
            let number = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::spawn(drive(connection, self.routes.clone(), origin.to_string(), number, self.idle));
            let ready = requests.clone().ready().await.map_err(|e| Unready::Failed(describe(&e)))?;
            Ok((number, requests, ready))
        };
        let (connection, requests, ready) = match tokio::time::timeout(self.timeouts.connect, connecting).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(outcome)) => return Err(outcome),
            Err(_) => return Err(Unready::Failed("timed out".into())),
        };
        self.routes.lock().expect("routes lock").put(origin.to_string(), Route::Http2 { connection, requests, last_used: Instant::now() });
        Ok((connection, ready))
    }
}

/// Why no connection is ready for a push.
enum Unready {
    Failed(String),
    /// ALPN chose HTTP/1.1.
    NotHttp2,
}

/// Drives one connection until it ends, and lets it go once it has been idle for `idle`
/// (looking again when that time is up since its last use): dropping the route's handle
/// closes it when its last stream is done.
async fn drive<C: std::future::Future<Output = Result<(), h2::Error>>>(
    connection: C,
    routes: Arc<Mutex<Routes>>,
    origin: String,
    number: u64,
    idle: Duration,
) {
    tokio::pin!(connection);
    // None once it is no longer the origin's route.
    let mut look_at = Some(tokio::time::Instant::now() + idle);
    loop {
        let looking = async move {
            match look_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = &mut connection => {
                if let Err(e) = ended {
                    tracing::debug!(%origin, error = %e, "HTTP/2 connection to a push service ended");
                }
                release_if_idle(&routes, &origin, number, Duration::ZERO);
                return;
            }
            () = looking => {
                look_at = match release_if_idle(&routes, &origin, number, idle) {
                    Idleness::InUse { last_used } => Some(tokio::time::Instant::from_std(last_used + idle)),
                    Idleness::Released | Idleness::NotRouted => None,
                };
            }
        }
    }
}

/// What [`release_if_idle`] found.
enum Idleness {
    /// The connection had been idle long enough, and is no longer the origin's route.
    Released,
    /// The connection is the origin's route, last used then.
    InUse { last_used: Instant },
    /// Another connection, or none, is the origin's route.
    NotRouted,
}

/// Drops the origin's route if it is connection `number` and has been idle for `idle`.
fn release_if_idle(routes: &Mutex<Routes>, origin: &str, number: u64, idle: Duration) -> Idleness {
    let mut routes = routes.lock().expect("routes lock");
    match routes.peek(origin) {
        Some(Route::Http2 { connection, last_used, .. }) if *connection == number => {
            if last_used.elapsed() >= idle {
                routes.pop(origin);
                Idleness::Released
            } else {
                Idleness::InUse { last_used: *last_used }
            }
        }
        _ => Idleness::NotRouted,
    }
}

/// Connects to the first of `addresses` that accepts, on `port`.
async fn connect_any(addresses: Vec<SocketAddr>, port: u16) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for mut address in addresses {
        address.set_port(port);
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn describe(e: &h2::Error) -> String {
    let mut text = format!("HTTP/2: {e}");
    text.truncate(200);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clarion_domain::subscription::PushHostPolicy;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::path::Path;
    use std::time::Duration;

    /// A CA, and a certificate and key for 127.0.0.1 signed by it, written into `dir`.
    fn certificates(dir: &Path) -> (Vec<u8>, std::path::PathBuf, std::path::PathBuf) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
        let (cert_file, key_file) = (dir.join("push.pem"), dir.join("push.key"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (ca.pem().into_bytes(), cert_file, key_file)
    }

    fn connections(ca: &[u8]) -> Http2Connections {
        let resolver = Arc::new(PublicOnlyResolver::new(Arc::new(PushHostPolicy::default())));
        Http2Connections::new(Some(ca), resolver, PushTimeouts::new(Duration::from_secs(5)), "clarion-test").unwrap()
    }

    fn push_headers(origin: &str) -> HeaderMap {
        static VAPID: std::sync::LazyLock<crate::vapid::VapidKeys> = std::sync::LazyLock::new(|| {
            crate::vapid::VapidKeys::new(&crate::vapid::VapidKeyMaterial::generate(), "mailto:test@clarion.dev").unwrap()
        });
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, VAPID.authorization(origin));
        headers.insert("ttl", 60.into());
        headers.insert(reqwest::header::CONTENT_ENCODING, reqwest::header::HeaderValue::from_static("aes128gcm"));
        headers
    }

    #[tokio::test]
    async fn pushes_in_flight_share_one_http2_connection_to_the_push_service() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        // The local push service as a sink: it answers 201 to any well-formed push.
        let options = clarion_push_service::Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            sink: true,
            tls: Some((cert, key)),
            handshake_delay: Duration::ZERO,
        };
        let server = clarion_push_service::PushServiceServer::bind(&options).await.unwrap();
        let origin = server.origin().to_string();
        let running = tokio::spawn(server.run());
        let http2 = Arc::new(connections(&ca));
        let endpoint: url::Url = format!("{origin}/push/1").parse().unwrap();

        // The first push opens the connection; the next 20 go at once over it.
        let first = http2.post(&origin, &endpoint, push_headers(&origin), vec![0; 100]).await;
        assert!(matches!(first, Posted::Answered((StatusCode::CREATED, _))), "{first:?}");
        let pushes: Vec<_> = (0..20)
            .map(|_| {
                let (http2, origin, endpoint) = (http2.clone(), origin.clone(), endpoint.clone());
                tokio::spawn(async move { http2.post(&origin, &endpoint, push_headers(&origin), vec![0; 100]).await })
            })
            .collect();
        for push in pushes {
            let posted = push.await.unwrap();
            assert!(matches!(posted, Posted::Answered((StatusCode::CREATED, _))), "{posted:?}");
        }
        assert_eq!(http2.opened.load(Ordering::Relaxed), 1, "one connection carried every push");

        running.abort();
    }

    /// A TLS acceptor for the certificate, offering only `protocol` in ALPN.
    fn tls_acceptor(cert: &Path, key: &Path, protocol: &[u8]) -> tokio_rustls::TlsAcceptor {
        let certs = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![protocol.to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// A push service of the test's own over TLS, offering only `protocol` in ALPN: each
    /// accepted connection, after its handshake, goes to `serve`. Gives the CA to trust, the
    /// origin and the count of TCP connections accepted.
    async fn serve_tls<F, Fut>(dir: &Path, protocol: &[u8], serve: F) -> (Vec<u8>, String, Arc<AtomicU64>)
    where
        F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (ca, cert, key) = certificates(dir);
        let acceptor = tls_acceptor(&cert, &key, protocol);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("https://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        let serve = Arc::new(serve);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                let (acceptor, serve) = (acceptor.clone(), serve.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls).await;
                    }
                });
            }
        });
        (ca, origin, accepted)
    }

    #[tokio::test]
    async fn a_connection_the_push_service_closed_is_replaced_by_the_next_push() {
        let dir = tempfile::tempdir().unwrap();
        // An HTTP/2 push service that answers one push per connection with 201, then
        // closes the connection (GOAWAY), as a push service does when it restarts.
        let (ca, origin, accepted) = serve_tls(dir.path(), b"h2", |tls| async move {
            let mut connection = h2::server::handshake(tls).await.unwrap();
            if let Some(Ok((_request, mut respond))) = connection.accept().await {
                respond.send_response(http::Response::builder().status(201).body(()).unwrap(), true).unwrap();
            }
            connection.graceful_shutdown();
            while connection.accept().await.is_some() {}
        })
        .await;

        let http2 = connections(&ca);
        let endpoint: url::Url = format!("{origin}/push/1").parse().unwrap();
        for round in 1..=3 {
            let posted = http2.post(&origin, &endpoint, push_headers(&origin), vec![1; 100]).await;
            assert!(matches!(posted, Posted::Answered((StatusCode::CREATED, _))), "round {round}: {posted:?}");
            // Let the GOAWAY arrive before the next push.
            tokio::time::timeout(Duration::from_secs(5), async {
                while matches!(http2.routes.lock().unwrap().peek(&origin), Some(Route::Http2 { .. })) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the closed connection is forgotten");
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 3, "each push after a close opened a new connection");
        assert_eq!(http2.opened.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_connection_in_use_is_kept_and_one_left_idle_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        // An HTTP/2 push service that answers every push with 201 and says when Clarion
        // closes a connection.
        let (closing, mut closed) = tokio::sync::mpsc::unbounded_channel();
        let (ca, origin, accepted) = serve_tls(dir.path(), b"h2", move |tls| {
            let closing = closing.clone();
            async move {
                let mut connection = h2::server::handshake(tls).await.unwrap();
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    respond.send_response(http::Response::builder().status(201).body(()).unwrap(), true).unwrap();
                }
                closing.send(()).unwrap();
            }
        })
        .await;
        // The pool's idle time, shortened for the test.
        let idle = Duration::from_millis(500);
        let http2 = Http2Connections { idle, ..connections(&ca) };
        let endpoint: url::Url = format!("{origin}/push/1").parse().unwrap();
        let push = || async {
            let posted = http2.post(&origin, &endpoint, push_headers(&origin), vec![3; 100]).await;
            assert!(matches!(posted, Posted::Answered((StatusCode::CREATED, _))), "{posted:?}");
        };

        // A push every 50 ms, for three idle times: the one connection stays.
        let started = Instant::now();
        let mut last_push = started;
        while started.elapsed() < idle * 3 {
            last_push = Instant::now();
            push().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(http2.opened.load(Ordering::Relaxed), 1, "a connection in use is kept");
        assert!(closed.try_recv().is_err(), "and not closed");

        // Then none: it is let go once idle for `idle`, and the next push opens another.
        tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("the idle connection is closed").unwrap();
        assert!(last_push.elapsed() >= idle, "not before it was idle for {idle:?}");
        assert!(!http2.routes.lock().unwrap().contains(&origin), "and forgotten");
        push().await;
        assert_eq!(http2.opened.load(Ordering::Relaxed), 2);
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_push_service_that_chooses_http1_gets_the_push_back_and_is_not_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, origin, accepted) = serve_tls(dir.path(), b"http/1.1", |_tls| async {}).await;

        let http2 = connections(&ca);
        let endpoint: url::Url = format!("{origin}/push/1").parse().unwrap();
        for _ in 0..3 {
            match http2.post(&origin, &endpoint, push_headers(&origin), vec![7; 100]).await {
                Posted::NotHttp2(headers, body) => {
                    assert_eq!(body, vec![7; 100], "the body comes back whole");
                    assert_eq!(headers, push_headers(&origin), "and the headers as they were");
                }
                other => panic!("{other:?}"),
            }
        }
        // A last connection, accepted after every earlier one: then the count is complete.
        let _marker = TcpStream::connect(endpoint.socket_addrs(|| None).unwrap()[0]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while accepted.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the marker connection is accepted");
        assert_eq!(accepted.load(Ordering::Relaxed), 2, "ALPN is asked once per origin (and the marker)");
        let plain: url::Url = "http://127.0.0.1:9/push/1".parse().unwrap();
        assert!(
            matches!(http2.post("http://127.0.0.1:9", &plain, push_headers(&origin), vec![]).await, Posted::NotHttp2(..)),
            "http endpoints never"
        );
    }
}
