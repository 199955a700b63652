//! Building the application (open the store, load the keys, bind the listener) apart from
//! running it, so tests can bind port 0 and read back the real address.

use super::config::{ServeArgs, SiteArgs};
use super::http::client_ip::ClientIpPolicy;
use super::http::origins::AllowedOrigins;
use super::http::security;
use super::http::site::{self, SiteAssets};
use super::http::{self, metrics, rest, sdk, ConnectionLimits};
use super::state::AppState;
use crate::app::{shell, App};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request};
use axum::{middleware, Router};
use broadcasts::SHUTDOWN_GRACE;
use clarion_core::admission::{self, Admission, Limits};
use clarion_core::audience;
use clarion_core::broadcasts;
use clarion_core::identity::IdentitySecret;
use clarion_core::keyring::MasterKey;
use clarion_core::metrics::Metrics;
use clarion_core::secrets::{self, AdminToken};
use clarion_core::sites::{DefaultSite, Sites, DEFAULT_SITE};
use clarion_core::Clarion;
use clarion_domain::subscription::PushHostPolicy;
use clarion_push::{vapid, PushSender, PushTimeouts, RetryPolicy};
use clarion_store::{DeploymentKey, Store};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

/// Opens what every command needs: the data dir, the database, the VAPID key, the sender.
pub async fn build_core(site: &SiteArgs) -> anyhow::Result<Clarion> {
    secrets::ensure_data_dir(&site.data_dir)?;
    if crate::domain::clock::offset_seconds() != 0 {
        tracing::warn!(
            offset_seconds = crate::domain::clock::offset_seconds(),
            "{} shifts this process's clock; it is for tests only",
            crate::domain::clock::OFFSET_VARIABLE
        );
    }
    let database_url = site.database_url.clone().unwrap_or_else(|| Store::default_url(&site.data_dir));
    let timeouts = PushTimeouts::new(Duration::from_secs(site.push_timeout));
    let store = Store::connect(&database_url, timeouts.lease()).await?;
    let material = secrets::load_or_create_vapid_key(site.vapid_private_key.as_deref(), &site.data_dir)?;
    if let Some(warning) = vapid::subject_warning(&site.vapid_subject) {
        tracing::warn!("{warning}");
    }
    let configured = vapid::VapidKeys::new(&material, &site.vapid_subject)?;
    tracing::info!(public_key = %configured.public_key_b64(), fingerprint = %configured.fingerprint(), "VAPID key loaded");
    // Every instance on a shared database must be configured with the same key.
    store.agree_on_key(DeploymentKey::Vapid, configured.fingerprint()).await?;
    let master = MasterKey::load_or_create(site.master_key.as_deref(), &site.data_dir)?;
    let sites = Sites::open(&store, &site.vapid_subject, &material, master, DefaultSite::default()).await?;
    let current = sites.get(DEFAULT_SITE)?.keyring.current();
    if current.fingerprint() != configured.fingerprint() {
        tracing::info!(public_key = %current.public_key_b64(), "the current VAPID key is one made by a rotation; new subscriptions get it");
    }
    let policy = Arc::new(PushHostPolicy::from_list(&site.push_hosts).map_err(|e| anyhow::anyhow!("CLARION_PUSH_HOSTS: {e}"))?);
    let metrics = Arc::new(Metrics::new(store.backend()));
    Ok(Clarion {
        store,
        sender: PushSender::new(site.extra_ca_file.as_deref(), policy.clone(), timeouts, metrics.clone())?,
        sites: Arc::new(sites),
        policy,
        broadcast_queued: Arc::default(),
        send_concurrency: site.send_concurrency,
        payload_format: site.payload_format,
        retry: RetryPolicy {
            max_attempts: site.max_attempts.max(1),
            base_delay: Duration::from_millis(site.retry_base_ms),
            ..RetryPolicy::default()
        },
        lease: timeouts.lease(),
        faults: Arc::default(),
        metrics,
    })
}

/// A built server, bound but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    core: Clarion,
    limits: Arc<Limits>,
    connection_limits: ConnectionLimits,
    /// `CLARION_METRICS_ADDR`'s listener, when set, and the host names it answers to.
    metrics_listener: Option<TcpListener>,
    metrics_hosts: metrics::MetricsHosts,
    /// `CLARION_IDLE_EXPIRY_DAYS` and the time between sweeps, when set.
    idle_expiry: Option<(u32, Duration)>,
    /// `CLARION_AUDIT_RETENTION_DAYS`.
    audit_retention_days: u32,
}

/// How often the audit log is pruned of entries past their retention.
const AUDIT_SWEEP: Duration = Duration::from_secs(24 * 3600);

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

impl Application {
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let mut core = build_core(&args.site).await?;
        let identity = match args.identity_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => Some(IdentitySecret::new(secret, &args.identity_audience).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let origins = AllowedOrigins::parse(&args.cors_origins).map_err(|e| anyhow::anyhow!("CLARION_CORS_ORIGINS: {e}"))?;
        Arc::get_mut(&mut core.sites)
            .expect("the sites are not shared before the server is built")
            .configure_default(DefaultSite { origins: origins.into_vec(), identity });
        let salt = core.store.deployment_salt(secrets::ADMIN_TOKEN_SALT).await?;
        let admin = AdminToken::load_or_create(args.admin_token.as_deref(), &args.site.data_dir, &salt)?;
        core.store.upgrade_key_record(DeploymentKey::AdminToken, admin.unsalted_fingerprint(), admin.fingerprint()).await?;
        core.store.agree_on_key(DeploymentKey::AdminToken, admin.fingerprint()).await?;
        let listener = TcpListener::bind(args.addr).await.with_context(|| format!("Failed to listen on {}", args.addr))?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("clarion")
            .site_root(args.site_root.as_str())
            .site_pkg_dir(site::PKG_DIR)
            .site_addr(addr)
            .reload_port(env_or("LEPTOS_RELOAD_PORT", "3001").parse::<u32>().unwrap_or(3001))
            .build();
        let assets = Arc::new(SiteAssets::load(std::path::Path::new(&args.site_root))?);
        let limits = Arc::new(
            Limits::new(args.subscribe_rate_limit, args.write_rate_limit, args.test_push_rate_limit)
                .with_key_sends(args.key_send_rate_limit),
        );
        let admission = Admission {
            limits: limits.clone(),
            max_subscriptions: args.max_subscriptions,
            max_subscriptions_per_ip: args.max_subscriptions_per_ip,
            client_key: Arc::new(secrets::client_hash_key(&args.site.data_dir)?),
        };
        let state = AppState {
            core: core.clone(),
            admission,
            admin,
            leptos_options: leptos_options.clone(),
            client_ip: ClientIpPolicy::from_settings(&args.trusted_proxies, args.trust_proxy_headers)
                .map_err(|e| anyhow::anyhow!("CLARION_TRUSTED_PROXIES: {e}"))?,
            idle_expiry_days: args.idle_expiry_days,
        };
        if args.subscribe_rate_limit == 0 {
            tracing::warn!("CLARION_SUBSCRIBE_RATE_LIMIT is 0: new subscriptions are not rate-limited");
        }
        let connection_limits = ConnectionLimits {
            max_connections: args.max_connections,
            max_per_client: match args.max_connections_per_client {
                0 => ConnectionLimits::default_per_client(args.max_connections),
                share => share,
            },
            first_bytes_timeout: Duration::from_secs(args.first_bytes_timeout),
            header_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            proxies: state.client_ip.clone(),
        };
        let body_timeout = Duration::from_secs(args.body_timeout);
        let metrics_listener = match args.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("Failed to listen on CLARION_METRICS_ADDR {addr}"))?),
            None => None,
        };
        let idle_expiry = (args.idle_expiry_days > 0).then(|| (args.idle_expiry_days, Duration::from_secs(args.idle_sweep_seconds)));
        Ok(Self {
            listener,
            router: router(state, leptos_options, assets, args.sdk_dir.clone().into(), body_timeout),
            core,
            limits,
            connection_limits,
            metrics_listener,
            metrics_hosts: metrics::MetricsHosts::parse(&args.metrics_hosts),
            idle_expiry,
            audit_retention_days: args.audit_retention_days,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics` is served without a token, if `CLARION_METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, with the background tasks (the broadcast
    /// worker and its retry pass, the sweepers) alongside. Every one of them stops with
    /// the server: on `shutdown` they are asked to stop and given [`SHUTDOWN_GRACE`]
    /// (the worker commits what settled and hands its lease back), and if this future is
    /// dropped instead (a test aborting it) they are aborted with it, so no task of a
    /// stopped server keeps working on the database.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(broadcasts::run_worker(self.core.clone(), broadcasts::worker_name("serve"), stop.clone()));
        tasks.spawn(admission::sweep_limits(self.limits.clone(), stop.clone()));
        tasks.spawn(clarion_core::sites::keep_loaded(self.core.clone(), stop.clone()));
        tasks.spawn(clarion_core::audit::run_retention(self.core.clone(), self.audit_retention_days, AUDIT_SWEEP, stop.clone()));
        if let Some((days, every)) = self.idle_expiry {
            tasks.spawn(audience::run_idle_expiry(self.core.clone(), days, every, stop.clone()));
        }
        tracing::info!(addr = %self.local_addr(), "listening");
        if let Some(listener) = self.metrics_listener {
            tracing::info!(addr = %listener.local_addr()?, "serving /metrics without a token");
            tasks.spawn(http::serve(
                listener,
                metrics::open_router(self.core.clone(), self.metrics_hosts),
                self.connection_limits.clone(),
                stop.clone(),
            ));
        }
        let mut server = std::pin::pin!(http::serve(self.listener, self.router, self.connection_limits, stop.clone()));
        tokio::select! {
            _ = &mut server => {}
            _ = shutdown => {}
        }
        stop.cancel();
        // Open connections (an event stream, a slow client) get the same grace as the
        // worker; then they are dropped.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(2), async {
            server.await;
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("some connections or tasks did not finish in time; closing them");
        }
        tasks.abort_all();
        tracing::info!("stopped");
        Ok(())
    }
}

fn router(
    state: AppState,
    leptos_options: LeptosOptions,
    assets: Arc<SiteAssets>,
    sdk_dir: std::path::PathBuf,
    body_timeout: Duration,
) -> Router {
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let context = move || provide_context(context_state.clone());
    let site_root = std::path::PathBuf::from(leptos_options.site_root.as_ref());
    let page = {
        let (options, assets) = (leptos_options.clone(), assets.clone());
        move || shell(options.clone(), &assets)
    };
    // A path that is neither a route nor a file: the page's "not found", with a 404.
    let render = leptos_axum::render_app_to_stream_with_context(context.clone(), page.clone());
    let not_found = tower::service_fn(move |request: axum::extract::Request| {
        let answer = render(request);
        async move {
            let mut response = answer.await;
            if response.status() == axum::http::StatusCode::OK {
                *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let app = Router::new()
        .leptos_routes_with_context(&state, routes, context, page)
        .merge(rest::router(state.core.sites.clone()))
        .merge(sdk::routes(sdk_dir))
        .merge(site::files(&site_root, not_found))
        .layer(middleware::from_fn_with_state(state.clone(), security::guard_writes))
        .layer(middleware::from_fn(security::limit_header_size))
        .layer(middleware::from_fn(rest::error::limit_server_fn_body))
        .layer(DefaultBodyLimit::max(rest::error::SERVER_FN_BODY_LIMIT))
        // A client that stops sending its body mid-way is cut off.
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        // Pages set their own CSP (with the request's script nonce); this covers the rest.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Pages (each has its own CSP nonce) and API answers are never reused unchecked;
        // built files set their own (immutable under /pkg, revalidated elsewhere).
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // Pages and JSON are compressed as they are sent (an event stream is not: it would
        // hold events back); built files arrive here already compressed and pass through.
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // The path only: query strings are not logged, nor the user ids in paths.
            tracing::info_span!("http", method = %req.method(), path = %loggable_path(req.uri().path()))
        }))
        // Outermost, so answers from every layer above (429, 413, 431) are counted too.
        .layer(middleware::from_fn_with_state(state.core.metrics.clone(), metrics::count_requests))
        .with_state(state);
    // Before routing: `/api/v1/sites/{site}/…` is served as `/api/v1/…` for that site.
    Router::new().fallback_service(tower::ServiceBuilder::new().map_request(http::site_scope::route_site).service(app))
}

/// A request path as the log shows it: a user id (`/api/v1/users/{user_id}/…`) is personal
/// data, and "forget me" must not leave it behind in the log.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const USERS: &str = "/api/v1/users/";
    match path.strip_prefix(USERS) {
        Some(rest) => {
            let after = rest.find('/').map_or("", |at| &rest[at..]);
            format!("{USERS}{{user_id}}{after}").into()
        }
        None => path.into(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
