//! A local push service (party 2 of web push), run as `clarion push-service`, so the whole
//! loop runs offline, in tests, in demos and in real Firefox. It is Clarion's judge in
//! every test, so it is a crate of its own: it shares no code with the sender it judges
//! (see [`protocol`] for its own limits).
//!
//! - `POST /push/{id}` is an RFC 8030 receiver that checks what a strict push service
//!   checks (TTL, encoding, size, Topic, Urgency, the VAPID JWT and key binding).
//! - `/_test/...` mints subscriptions it can decrypt, shows what arrived and how many
//!   connections were opened, injects faults.
//! - `GET /` upgraded to a WebSocket speaks Mozilla's push protocol, so Firefox with
//!   `dom.push.serverURL` pointing here subscribes and receives through it.
//!
//! All state is in memory.

mod crypto;
pub mod protocol;
mod receiver;
mod registry;
mod test_api;
mod websocket;

pub use crypto::{decrypt, verify_vapid, VapidClaims};

use anyhow::Context;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use registry::PushService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Why the push service answered as it did; the request log line shows it.
#[derive(Clone, Debug)]
pub(crate) struct Reason(pub String);

/// How to run a push service.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Accept every well-formed push with 201 without decrypting or storing it.
    pub sink: bool,
    /// Serve HTTPS with this PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Wait this long before each TLS handshake, as a push service far away would take.
    pub handshake_delay: Duration,
}

/// A bound push service, not yet serving.
pub struct PushServiceServer {
    listener: TcpListener,
    router: Router,
    origin: String,
    tls: Option<(TlsAcceptor, Duration)>,
    service: Arc<PushService>,
}

impl PushServiceServer {
    /// Binds the address (port 0 picks one); the origin in `aud` checks and endpoints
    /// follows the bound address.
    pub async fn bind(args: &Options) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(args.addr).await?;
        let tls = match &args.tls {
            Some((cert, key)) => Some((tls_acceptor(cert, key)?, args.handshake_delay)),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let origin = serialize_origin(scheme, listener.local_addr()?);
        let service = Arc::new(PushService::new(origin.clone(), args.sink));
        let router = Router::new()
            .route("/", get(websocket::upgrade))
            .route("/push/{id}", post(receiver::push))
            .route("/_test/subscriptions", post(test_api::mint).delete(test_api::expire))
            .route("/_test/subscriptions/batch", post(test_api::mint_many))
            .route("/_test/summary", get(test_api::summary))
            .route("/_test/messages", get(test_api::messages))
            .route("/_test/faults", post(test_api::fault))
            .route("/_test/state", delete(test_api::reset))
            .route("/_test/browsers", get(test_api::browsers))
            .route("/_test/requests", get(test_api::requests))
            .layer(middleware::from_fn(log_request))
            .with_state(service.clone());
        Ok(Self { listener, router, origin, tls, service })
    }

    /// `http://host:port`, or `http://host` on the scheme's default port.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self.tls {
            None => {
                use axum::serve::ListenerExt;
                let service = self.service;
                let listener = self.listener.tap_io(move |tcp| {
                    let _ = tcp.set_nodelay(true);
                    service.lock().connections += 1;
                });
                axum::serve(listener, self.router).await?
            }
            Some((acceptor, handshake_delay)) => serve_tls(self.listener, acceptor, handshake_delay, self.router, self.service).await?,
        }
        Ok(())
    }
}

/// An origin as RFC 6454 serializes it, which is what a VAPID `aud` must be: the port is
/// left out when it is the scheme's default (80 for http, 443 for https), as for
/// `https://fcm.googleapis.com`.
fn serialize_origin(scheme: &str, addr: SocketAddr) -> String {
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    if addr.port() == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{}", addr.port())
    }
}

/// TLS with ALPN `h2` and `http/1.1`, as real push services offer.
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("Failed to read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .context("--tls-cert is not a PEM certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections and serves each with HTTP/1.1 or HTTP/2 (and WebSocket upgrades).
/// Replies leave at once (`TCP_NODELAY`), as from a real push service: an HTTP/2
/// connection carries many small frames, which Nagle's algorithm would hold back.
/// Connections are counted once their handshake is done.
async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_delay: Duration,
    router: Router,
    push_service: Arc<PushService>,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, push_service) = (acceptor.clone(), router.clone(), push_service.clone());
        tokio::spawn(async move {
            tokio::time::sleep(handshake_delay).await;
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            push_service.lock().connections += 1;
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds and serves until the process ends (`clarion push-service`).
pub async fn run(args: Options) -> anyhow::Result<()> {
    let server = PushServiceServer::bind(&args).await?;
    tracing::info!(origin = %server.origin(), websocket = %server.origin().replacen("http", "ws", 1), sink = args.sink, "push service listening");
    server.run().await
}

/// One log line per request: method, path, status and the reason.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let version = request.version();
    let response = next.run(request).await;
    let reason = response.extensions().get::<Reason>().map(|r| r.0.clone()).unwrap_or_default();
    tracing::info!(target: "push_service", %method, %path, ?version, status = response.status().as_u16(), %reason);
    response
}

#[cfg(test)]
mod tests {
    use super::serialize_origin;

    #[test]
    fn an_origin_leaves_out_the_default_port_only() {
        let at = |addr: &str| addr.parse().unwrap();
        assert_eq!(serialize_origin("http", at("127.0.0.1:80")), "http://127.0.0.1");
        assert_eq!(serialize_origin("https", at("127.0.0.1:443")), "https://127.0.0.1");
        assert_eq!(serialize_origin("http", at("127.0.0.1:443")), "http://127.0.0.1:443");
        assert_eq!(serialize_origin("https", at("127.0.0.1:8443")), "https://127.0.0.1:8443");
        assert_eq!(serialize_origin("http", at("[::1]:8080")), "http://[::1]:8080");
    }
}
