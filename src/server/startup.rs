//! Building the application (open the store, load the keys, bind the listener) apart from
//! running it, so tests can bind port 0 and read back the real address.

use super::config::{ServeArgs, SiteArgs};
use super::delivery::RetryPolicy;
use super::secrets::{self, AdminToken};
use super::security::{self, AllowedOrigins, ClientIpPolicy, Limits};
use super::sender::PushSender;
use super::state::{AppState, Clarion};
use super::store::Store;
use super::{broadcasts, rest, vapid};
use crate::app::{shell, App};
use crate::domain::subscription::PushHostPolicy;
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::{middleware, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Opens what every command needs: the data dir, the database, the VAPID key, the sender.
pub async fn build_core(site: &SiteArgs) -> anyhow::Result<Clarion> {
    secrets::ensure_data_dir(&site.data_dir)?;
    let database_url = site.database_url.clone().unwrap_or_else(|| Store::default_url(&site.data_dir));
    let store = Store::connect(&database_url).await?;
    let material = vapid::load_or_create(site.vapid_private_key.as_deref(), &site.data_dir)?;
    if let Some(warning) = vapid::subject_warning(&site.vapid_subject) {
        tracing::warn!("{warning}");
    }
    let keys = Arc::new(vapid::VapidKeys::new(&material, &site.vapid_subject)?);
    tracing::info!(public_key = %keys.public_key_b64(), fingerprint = %keys.fingerprint(), "VAPID key loaded");
    let policy = Arc::new(PushHostPolicy::from_list(&site.push_hosts).map_err(|e| anyhow::anyhow!("CLARION_PUSH_HOSTS: {e}"))?);
    Ok(Clarion {
        store,
        sender: PushSender::new(keys, site.extra_ca_file.as_deref(), policy.clone())?,
        policy,
        broadcast_queued: Arc::default(),
        send_concurrency: site.send_concurrency,
        payload_format: site.payload_format,
        retry: RetryPolicy {
            max_attempts: site.max_attempts.max(1),
            base_delay: Duration::from_millis(site.retry_base_ms),
            ..RetryPolicy::default()
        },
    })
}

/// A built server, bound but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    core: Clarion,
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

impl Application {
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let core = build_core(&args.site).await?;
        let admin = AdminToken::load_or_create(args.admin_token.as_deref(), &args.site.data_dir)?;
        let listener = TcpListener::bind(args.addr).await.with_context(|| format!("Failed to listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("clarion")
            .site_root(args.site_root.as_str())
            .site_pkg_dir(env_or("LEPTOS_SITE_PKG_DIR", "pkg"))
            .site_addr(addr)
            .reload_port(env_or("LEPTOS_RELOAD_PORT", "3001").parse::<u32>().unwrap_or(3001))
            .build();
        let state = AppState {
            core: core.clone(),
            admin,
            leptos_options: leptos_options.clone(),
            limits: Arc::new(Limits::new(args.subscribe_rate_limit, args.write_rate_limit, args.test_push_rate_limit)),
            client_ip: ClientIpPolicy { trust_proxy_headers: args.trust_proxy_headers },
            cors_origins: AllowedOrigins::parse(&args.cors_origins),
            max_subscriptions: args.max_subscriptions,
            max_subscriptions_per_ip: args.max_subscriptions_per_ip,
            client_key: Arc::new(secrets::client_hash_key(&args.site.data_dir)?),
        };
        if args.subscribe_rate_limit == 0 {
            tracing::warn!("CLARION_SUBSCRIBE_RATE_LIMIT is 0: new subscriptions are not rate-limited");
        }
        Ok(Self { listener, router: router(state, leptos_options), core })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until Ctrl-C or SIGTERM, running the broadcast worker alongside.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(broadcasts::run_worker(self.core.clone(), broadcasts::worker_name("serve"), stop_rx));
        tracing::info!(addr = %self.local_addr(), "listening");
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        let _ = stop_tx.send(true);
        let _ = worker.await;
        Ok(())
    }
}

fn router(state: AppState, leptos_options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    let context_state = state.clone();
    Router::new()
        .leptos_routes_with_context(&state, routes, move || provide_context(context_state.clone()), move || shell(leptos_options.clone()))
        .merge(rest::router(&state.cors_origins))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(state.clone(), security::guard_writes))
        .layer(middleware::from_fn(security::limit_header_size))
        .layer(DefaultBodyLimit::max(64 * 1024))
        // Pages set their own CSP (with the request's script nonce); this covers the rest.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The path only: query strings are not logged.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut sig) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            sig.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
