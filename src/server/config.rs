//! The `clarion` command line: subcommands, flags and their `CLARION_*` environment
//! variables. Every flag that configures the server has an env var, so the same binary is
//! configured the same way under `cargo leptos watch`, systemd or a container.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Self-hosted web push notifications for any website.
#[derive(Debug, Parser)]
#[command(name = "clarion", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand, `clarion` serves: these are `clarion serve`'s flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web page, the REST API and the service worker (the default).
    Serve(ServeArgs),
    /// Run a local push service (RFC 8030 + Mozilla's WebSocket protocol) for development and tests.
    PushService(PushServiceArgs),
    /// VAPID key tools.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Broadcast a notification to every stored subscription and print a summary.
    Send(SendArgs),
    /// Import subscriptions from a file of JSON lines (one `PushSubscription.toJSON()` each).
    Import(ImportArgs),
    /// A site's VAPID keys: show them, rotate to a new one, import another sender's.
    Sites {
        #[command(subcommand)]
        command: SitesCommand,
    },
    /// API keys with scopes: create (the secret is printed once), list, revoke.
    ApiKeys {
        #[command(subcommand)]
        command: ApiKeysCommand,
    },
    /// Print the audit log: every write made with the admin token, an API key or this command line.
    Audit(AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key; its secret is printed this once (only a hash is stored).
    Create(CreateKeyArgs),
    /// List the keys (never their secrets).
    List(ListArgs),
    /// Revoke a key: refused from the next request on, on every instance.
    Revoke(RevokeKeyArgs),
}

/// `clarion api-keys create`.
#[derive(Debug, Clone, Args)]
pub struct CreateKeyArgs {
    /// Who or what uses it (`deploy bot`, `alice`).
    #[arg(long)]
    pub name: String,
    /// The one site it applies to; without it, every site.
    #[arg(long)]
    pub site: Option<String>,
    /// A scope it holds: read, send, audience or admin (repeat for several).
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// When it stops working (RFC 3339).
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: SiteArgs,
}

/// A listing command.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: SiteArgs,
}

/// `clarion api-keys revoke ID`.
#[derive(Debug, Clone, Args)]
pub struct RevokeKeyArgs {
    pub id: i64,
    #[command(flatten)]
    pub data: SiteArgs,
}

/// `clarion audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only this site's entries.
    #[arg(long)]
    pub site: Option<String>,
    /// Only entries after this id.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Print JSON lines, one entry each.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: SiteArgs,
}

#[derive(Debug, Subcommand)]
pub enum SitesCommand {
    /// Make a site, with its own fresh VAPID key, origins and subject.
    Add(AddSiteArgs),
    /// List the sites, with their origins and subscriptions.
    List(ListSitesArgs),
    /// Remove a site with its topics, sends and keys (with --purge, its subscriptions too).
    Remove(RemoveSiteArgs),
    /// Print a site and its VAPID keys: id, public key, current or not, subscriptions bound.
    Show(SiteNameArgs),
    /// Make a fresh VAPID key the site's current one; the older keys keep signing for
    /// the subscriptions bound to them until those move (on their next visit).
    RotateKey(SiteNameArgs),
    /// Make another sender's VAPID key (PEM or raw base64url, in FILE) the site's current
    /// one, so the subscriptions made with it can be imported and keep working.
    ImportKey(ImportKeyArgs),
}

/// `clarion sites add NAME`.
#[derive(Debug, Clone, Args)]
pub struct AddSiteArgs {
    /// The site's name: 1 to 40 of a-z, 0-9 and '-'.
    pub name: String,
    /// An origin whose pages embed this site (`https://shop.example.com`; repeatable).
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
    /// The site's VAPID subject (`mailto:` or `https:`); without it, CLARION_VAPID_SUBJECT.
    #[arg(long, value_name = "mailto:…")]
    pub subject: Option<String>,
    /// At most this many subscriptions (without it, CLARION_MAX_SUBSCRIPTIONS).
    #[arg(long)]
    pub max_subscriptions: Option<u64>,
    /// At most this many subscriptions from one client address (without it,
    /// CLARION_MAX_SUBSCRIPTIONS_PER_IP).
    #[arg(long)]
    pub max_subscriptions_per_client: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `clarion sites list`.
#[derive(Debug, Clone, Args)]
pub struct ListSitesArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `clarion sites remove NAME`.
#[derive(Debug, Clone, Args)]
pub struct RemoveSiteArgs {
    pub name: String,
    /// Remove its subscriptions too; without it, a site with subscriptions is kept.
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// A command about one site.
#[derive(Debug, Clone, Args)]
pub struct SiteNameArgs {
    /// The site (`default` is the one the `CLARION_*` settings configure).
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `clarion sites import-key NAME FILE`.
#[derive(Debug, Clone, Args)]
pub struct ImportKeyArgs {
    pub name: String,
    /// The private key: a PEM file, or a file holding the raw scalar as base64url.
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new VAPID key pair as base64url (public 65 bytes, private 32 bytes) and as PEM.
    Generate,
}

/// Settings every command that touches the data or sends pushes shares.
#[derive(Debug, Clone, Args)]
pub struct SiteArgs {
    /// Where the SQLite database, the VAPID key and the admin token live (created 0700).
    #[arg(long, env = "CLARION_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL; defaults to `sqlite://<data-dir>/clarion.db` (WAL).
    #[arg(long, env = "CLARION_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// VAPID contact, a `mailto:` or `https:` URL that push services can use to reach you.
    #[arg(long, env = "CLARION_VAPID_SUBJECT", default_value = "mailto:admin@example.com")]
    pub vapid_subject: String,
    /// VAPID private key: base64url of the raw 32-byte scalar, or a path to a PEM file.
    /// Defaults to `<data-dir>/vapid_private.pem`, generated on first start.
    #[arg(long, env = "CLARION_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,
    /// Seals the secrets kept in the database (VAPID keys made by a rotation or imported):
    /// base64url of 32 random bytes. Defaults to `<data-dir>/master_key`, generated on
    /// first start. Instances sharing a PostgreSQL database need the same one.
    #[arg(long, env = "CLARION_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Extra push-service hosts (`host[:port]`, `*.domain`), comma-separated. Only these may
    /// use plain `http://`, a port or an IP address.
    #[arg(long, env = "CLARION_PUSH_HOSTS", default_value = "")]
    pub push_hosts: String,
    /// Push requests in flight at once during a broadcast (the next pages are encrypted meanwhile).
    #[arg(long, env = "CLARION_SEND_CONCURRENCY", default_value_t = 64)]
    pub send_concurrency: usize,
    /// Sends per subscription and broadcast at most, retries included.
    #[arg(long, env = "CLARION_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; it doubles (with jitter) on each further retry.
    #[arg(long, env = "CLARION_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Seconds one push may take, from sending the request to the answer (the connection
    /// gets at most 10 s of it). A broadcast's lease outlasts this.
    #[arg(long, env = "CLARION_PUSH_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub push_timeout: u64,
    /// A PEM file of extra CA certificates to trust for push services (self-hosted or test ones).
    #[arg(long, env = "CLARION_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,
    /// The payload's JSON shape: `declarative` (Declarative Web Push, read by Safari 18.4+
    /// without a service worker and by Clarion's sw.js) or `flat` (the 0.1 shape, for a
    /// site's own service worker that reads it).
    #[arg(long, env = "CLARION_PAYLOAD_FORMAT", default_value = "declarative")]
    pub payload_format: crate::domain::PayloadFormat,
}

/// `clarion serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "CLARION_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Bearer token for the admin API. Generated into `<data-dir>/admin_token` when unset.
    #[arg(long, env = "CLARION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The built site (`scripts/build-site.sh`, or `cargo leptos build`, output).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
    /// The built SDK (`scripts/build-sdk.sh` output), served as `/sdk.js` and `/sdk/*`.
    #[arg(long, env = "CLARION_SDK_DIR", default_value = "target/sdk")]
    pub sdk_dir: String,
    /// New subscriptions one client IP may create per hour; 0 turns the limit off.
    #[arg(long, env = "CLARION_SUBSCRIBE_RATE_LIMIT", default_value_t = 10)]
    pub subscribe_rate_limit: u32,
    /// Writes (POST/DELETE) one client IP may make per minute; 0 turns the limit off.
    #[arg(long, env = "CLARION_WRITE_RATE_LIMIT", default_value_t = 120)]
    pub write_rate_limit: u32,
    /// Test notifications ("Send test notification") per client IP, and per subscription,
    /// per minute; 0 turns the limit off.
    #[arg(long, env = "CLARION_TEST_PUSH_RATE_LIMIT", default_value_t = clarion_core::admission::TEST_PUSHES_PER_MINUTE)]
    pub test_push_rate_limit: u32,
    /// Take the client IP from X-Forwarded-For / Forwarded, trusting the peer as the only
    /// proxy (only behind a proxy you control). With CLARION_TRUSTED_PROXIES, that list
    /// decides instead.
    #[arg(long, env = "CLARION_TRUST_PROXY_HEADERS", default_value_t = false)]
    pub trust_proxy_headers: bool,
    /// Origins (comma-separated, e.g. `https://www.example.com`) allowed to call the REST
    /// API from a browser (CORS). Empty: same origin only.
    #[arg(long, env = "CLARION_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// The most subscriptions stored at once; 0 (the default) is no limit. Floods are
    /// stopped by the per-client limits; this is a ceiling an operator may add.
    #[arg(long, env = "CLARION_MAX_SUBSCRIPTIONS", default_value_t = 0)]
    pub max_subscriptions: u64,
    /// Proxies (comma-separated addresses or CIDRs, e.g. `10.0.0.0/8,2001:db8::/32`) whose
    /// `X-Forwarded-For`/`Forwarded` headers are believed: the client is the rightmost
    /// address in them that is not one of these. Headers from any other peer are ignored.
    #[arg(long, env = "CLARION_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "CLARION_MAX_CONNECTIONS", default_value_t = 2048)]
    pub max_connections: usize,
    /// Connections one client address (an IPv4 address, an IPv6 /64) may hold at once;
    /// 0 (the default) is a quarter of CLARION_MAX_CONNECTIONS. Trusted proxies are exempt.
    #[arg(long, env = "CLARION_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 0)]
    pub max_connections_per_client: usize,
    /// Seconds a new connection has to send its first byte; then it is closed.
    #[arg(long, env = "CLARION_FIRST_BYTES_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub first_bytes_timeout: u64,
    /// Seconds a client has to send a request's headers (for a new connection: from
    /// accept, HTTP/2's preface and SETTINGS included); then the connection is closed.
    #[arg(long, env = "CLARION_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a connection with no request in progress (an idle keep-alive, an HTTP/2
    /// connection with no open stream) stays open.
    #[arg(long, env = "CLARION_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Seconds a client has to send a request's body; then the request fails.
    #[arg(long, env = "CLARION_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Also serve `/metrics` here, without the admin token (for a Prometheus scraper on an
    /// internal network). On the main address `/metrics` needs the admin token.
    #[arg(long, env = "CLARION_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Host names the metrics address answers to (comma-separated, e.g.
    /// `clarion,clarion.internal`), besides IP addresses and `localhost`. A request naming
    /// any other host is refused, so a web page cannot read the metrics through a name of
    /// its own that resolves to this address (DNS rebinding).
    #[arg(long, env = "CLARION_METRICS_HOSTS", default_value = "")]
    pub metrics_hosts: String,
    /// The most stored subscriptions one client IP may have created; 0 is no limit.
    #[arg(long, env = "CLARION_MAX_SUBSCRIPTIONS_PER_IP", default_value_t = 500)]
    pub max_subscriptions_per_ip: u64,
    /// The secret your site's backend signs identity tokens with (JWT, HS256, claims
    /// `sub` and `exp`, at most 24 h long), so a subscription can be tied to a signed-in
    /// user. Unset: identity tokens are refused.
    /// At least 32 bytes; a shorter one is refused at start.
    #[arg(long, env = "CLARION_IDENTITY_SECRET", hide_env_values = true)]
    pub identity_secret: Option<String>,
    /// The `aud` values an identity token may carry, comma-separated. Unset: a token may
    /// leave `aud` out or name `clarion`; set: every token must name one of these.
    #[arg(long, env = "CLARION_IDENTITY_AUDIENCE", value_delimiter = ',')]
    pub identity_audience: Vec<String>,
    /// Remove subscriptions that nobody has seen (page visit, click, topic change) for
    /// this many days; 0 (the default) keeps them.
    #[arg(long, env = "CLARION_IDLE_EXPIRY_DAYS", default_value_t = 0)]
    pub idle_expiry_days: u32,
    /// Seconds between two sweeps for idle subscriptions (with CLARION_IDLE_EXPIRY_DAYS).
    #[arg(long, env = "CLARION_IDLE_SWEEP_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_sweep_seconds: u64,
    /// Sends (and cancels) each API key may make per minute; 0: no limit. The admin token
    /// has none.
    #[arg(long, env = "CLARION_KEY_SEND_RATE_LIMIT", default_value_t = clarion_core::admission::KEY_SENDS_PER_MINUTE)]
    pub key_send_rate_limit: u32,
    /// Days the audit log keeps an entry; older ones are pruned (daily).
    #[arg(long, env = "CLARION_AUDIT_RETENTION_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_days: u32,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `clarion push-service`.
#[derive(Debug, Clone, Args)]
pub struct PushServiceArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "CLARION_PUSH_SERVICE_ADDR", default_value = "127.0.0.1:8090")]
    pub addr: SocketAddr,
    /// Accept every well-formed push with 201 without decrypting or storing it (for benchmarks).
    #[arg(long)]
    pub sink: bool,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Wait this long before each TLS handshake, as a push service a long round trip away
    /// would take (with --tls-cert).
    #[arg(long, default_value_t = 0, requires = "tls_cert")]
    pub handshake_delay_ms: u64,
}

impl From<PushServiceArgs> for clarion_push_service::Options {
    fn from(args: PushServiceArgs) -> Self {
        Self {
            addr: args.addr,
            sink: args.sink,
            tls: args.tls_cert.zip(args.tls_key),
            handshake_delay: std::time::Duration::from_millis(args.handshake_delay_ms),
        }
    }
}

/// `clarion import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to read, one subscription JSON per line; `-` reads standard input.
    pub file: PathBuf,
    /// Replace the keys of endpoints already stored with other keys (reported as
    /// `replaced`). Without it they keep their keys and are listed in `rejected`, as a
    /// subscribe with other keys is refused.
    #[arg(long)]
    pub replace_keys: bool,
    /// The site whose subscriptions they are (made with its current VAPID key).
    #[arg(long = "site", value_name = "SITE", default_value = "default")]
    pub to_site: String,
    #[command(flatten)]
    pub site: SiteArgs,
}

/// `clarion send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[arg(long)]
    pub title: String,
    #[arg(long, default_value = "")]
    pub body: String,
    /// Page to open when the notification is clicked.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds the push service may hold the message (default 24 h).
    #[arg(long)]
    pub ttl: Option<u32>,
    /// Send only to subscriptions with this topic (repeatable: any of them).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Send only to this user's subscriptions (repeatable). With --topic: those matching both.
    #[arg(long = "user", value_name = "USER_ID")]
    pub users: Vec<String>,
    /// Schedule the send for this RFC 3339 time (e.g. 2026-12-01T09:00:00Z) instead of
    /// sending now; a running `clarion serve` sends it then.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The site whose subscribers get it.
    #[arg(long = "site", value_name = "SITE", default_value = "default")]
    pub to_site: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub site: SiteArgs,
}
