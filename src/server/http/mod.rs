//! Clarion's HTTP listener: accepts connections up to a cap, gives each client a deadline
//! for its request headers and one for its body, and drains gracefully on shutdown.
//!
//! A client that opens connections and sends nothing, or half a request, holds a socket
//! and a task; without these bounds a few hundred of them would keep the server from
//! answering anyone. Connections past the cap wait in the kernel's accept queue, so the
//! clients already connected keep being served.

//!
//! The rooms of the web layer: [`rest`] (the REST API, `/healthz`, `/sw.js`), [`admin`]
//! (the console's sign-in), [`client_ip`] and [`origins`] (who is calling, from which
//! site), [`security`] (the extractors and the middleware that defend writes),
//! [`site`] and [`sdk`] (built files), [`metrics`] (`/metrics`).

pub mod admin;
pub mod client_ip;
pub mod metrics;
pub mod origins;
pub mod rest;
pub mod sdk;
pub mod security;
pub mod site;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Bounds on what one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From the start of a request (or of waiting for the next one on a kept-alive
    /// connection) until its headers have arrived.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` fires, then stops accepting and waits for the
/// open connections to finish their requests (the caller bounds that wait). Connections
/// are tasks of this future: dropping it aborts them, so none outlives its server.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(30)));
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
        let _ = tcp.set_nodelay(true);
        // The peer address, as axum's `ConnectInfo` extractor expects it.
        let service = tower::ServiceExt::map_request(router.clone(), move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service)).into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}
