//! Storage: one interface, two backends. SQLite is the embedded default for one machine;
//! PostgreSQL lets any number of instances share one database.
//!
//! [`Store`] is the handle the rest of the server holds. Its methods are split by what
//! they store: `subscriptions`, their `audience` (topics, users, last seen), the
//! broadcast ledger (`broadcasts`), the console's `sessions`, the `deployment` keys that
//! instances sharing a database must agree on, each site's `vapid_keys`, and the API
//! keys and audit log (`access`), and the `sites` themselves. Where the
//! two backends need different SQL, both versions sit side by side in the same method,
//! so a query and its PostgreSQL twin are read together.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`, so a committed write survives a
//! process crash. Each backend has its own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`), run at start.

use anyhow::Context;
use clarion_domain::clock::{rfc3339 as now_rfc3339, unix_seconds as unix_now};
use sqlx::migrate::Migrate;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Connection;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The columns of a [`StoredSubscription`]; before the modules, which all use it.
macro_rules! subscription_columns {
    () => {
        "id, endpoint, p256dh, auth, vapid_key_fingerprint, vapid_refusals"
    };
}

/// The columns of a [`clarion_domain::SubscriptionSummary`] (no key material).
macro_rules! summary_columns {
    () => {
        "id, endpoint, created_at, updated_at, last_success_at, failure_count, user_agent, vapid_key_fingerprint, user_id, last_seen_at"
    };
}

/// A subscription's topics, by name.
macro_rules! read_topics_sql {
    () => {
        "SELECT topic FROM subscription_topics WHERE subscription_id = $1 ORDER BY topic"
    };
}

/// The topics of subscription `$1`'s site, as rows of `subscription_topics`.
macro_rules! site_topics {
    () => {
        "SELECT $1, t.site, t.name FROM topics t JOIN subscriptions s ON s.site = t.site WHERE s.id = $1"
    };
}

/// Replaces the topics of subscription `$id` inside transaction `$tx`: with `$topics`
/// (`Some`: defined names; one deleted since the caller's check is skipped, not an
/// error), or with the default topics (`None`).
macro_rules! replace_topics {
    ($tx:expr, $id:expr, $topics:expr) => {{
        let (id, topics): (i64, Option<&[String]>) = ($id, $topics);
        sqlx::query("DELETE FROM subscription_topics WHERE subscription_id = $1").bind(id).execute(&mut *$tx).await?;
        match topics {
            None => {
                sqlx::query(concat!(
                    "INSERT INTO subscription_topics (subscription_id, site, topic) ",
                    site_topics!(),
                    " AND t.is_default"
                ))
                .bind(id)
                .execute(&mut *$tx)
                .await?;
            }
            Some(topics) => {
                for topic in topics {
                    sqlx::query(concat!(
                        "INSERT INTO subscription_topics (subscription_id, site, topic) ",
                        site_topics!(),
                        " AND t.name = $2"
                    ))
                    .bind(id)
                    .bind(topic)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }
    }};
}

mod access;
mod audience;
mod broadcasts;
mod deployment;
mod sessions;
mod sites;
mod subscriptions;
mod vapid_keys;

pub use access::AuditRecord;
pub use audience::{TopicSaved, FORGOTTEN_USER};
pub use broadcasts::{
    audience_span, range_span, BroadcastDetailRecord, BroadcastRecord, BroadcastStart, Cancelled, ClickRecorded, OriginState, Progress,
    RangeFinished, RangeJob, RetryDue,
};
pub use deployment::{DeploymentKey, KeyMismatch};
pub use sites::{SiteRemoved, StoredSite};
pub use subscriptions::{Imported, StoredSubscription, SubscriberFacts, Upserted};
pub use vapid_keys::{KeyRetired, StoredVapidKey};

/// Handle to the database; cheap to clone. Every operation is a method here, written
/// once where both backends take the same SQL ([`on_pool!`]) and once per backend where
/// they differ.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// The database as broadcast drives use it ([`Store::for_drives`]).
    drives: Db,
    /// How long a claim on a broadcast lasts without renewal.
    lease: Duration,
}

/// The two backends.
#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// In SQL given to [`Store::on_db_clock`]: the database's clock, as unix seconds.
const DB_NOW: &str = "{db_now}";

/// Runs `$body` with `$pool` bound to the store's pool, whichever the backend: for the
/// queries whose SQL is the same on both (`$1`-style parameters work on both). The body
/// is compiled once per backend, so each arm is type-checked against its own driver.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
use on_pool;

/// A transaction for writing, as each backend wants it.
trait WritePool {
    type Database: sqlx::Database;
    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, Self::Database>>;
}

impl WritePool for SqlitePool {
    type Database = sqlx::Sqlite;

    /// Takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a busy database makes it
    /// wait (busy_timeout) instead of failing when a deferred transaction tries to upgrade
    /// from reading to writing.
    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl WritePool for PgPool {
    type Database = sqlx::Postgres;

    /// Read committed; the queries that need more lock their rows (`FOR UPDATE`).
    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.begin().await?)
    }
}

/// Whether a worker still holds the lease it claimed (its epoch is current).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    Held,
    /// Another worker claimed the broadcast since; nothing was written.
    Lost,
}

impl LeaseStatus {
    fn of(rows_affected: u64) -> Self {
        if rows_affected > 0 {
            LeaseStatus::Held
        } else {
            LeaseStatus::Lost
        }
    }
}

/// Connections per instance to PostgreSQL. Each instance needs about one per page being
/// committed and a few for requests; docs/operations.md explains how to size the server's
/// `max_connections` for N instances.
pub const POSTGRES_POOL: u32 = 16;

/// Makes an SQLite database file private before SQLite opens it: creates it empty with
/// mode 0600 if missing, and narrows an existing one (and its `-wal`/`-shm`) to 0600.
/// SQLite creates `-wal` and `-shm` with the database file's mode, so they follow,
/// whatever the directory's mode, the umask or the path the URL names.
fn private_database_files(database: &std::path::Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(database).with_context(|| format!("Failed to create {}", database.display()))?;
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let path = std::path::PathBuf::from(format!("{}{suffix}", database.display()));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("Failed to make {} private", path.display()))?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens the database that `database_url` names (`sqlite://…` or `postgres://…`),
    /// creating a SQLite file (mode 0600, wherever it is) if needed, and runs the
    /// backend's embedded migrations.
    /// `lease` is how long a claim on a broadcast lasts without renewal.
    pub async fn connect(database_url: &str, lease: Duration) -> anyhow::Result<Self> {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(database_url).context("Failed to parse the PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_POOL)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("Failed to connect to PostgreSQL")?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await.context("Failed to run database migrations")?;
            return Ok(Self { db: Db::Postgres(pool.clone()), drives: Db::Postgres(pool), lease });
        }
        if !database_url.starts_with("sqlite:") {
            anyhow::bail!("CLARION_DATABASE_URL must start with sqlite:// or postgres://");
        }
        let options = SqliteConnectOptions::from_str(database_url)
            .context("Failed to parse the database URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // A broadcast's page (up to 1,024 rows) crosses from SQLite's thread in one go,
            // not in handoffs of 50 rows, each a wake-up of both threads.
            .row_buffer_size(1024)
            .foreign_keys(true);
        let file = options.get_filename();
        if file != std::path::Path::new(":memory:") && !file.as_os_str().is_empty() {
            private_database_files(file)?;
        }
        // Migrations run on a connection of their own with foreign keys off, as SQLite's
        // procedure for rebuilding a table requires. When any ran, every key is checked
        // (a scan of every table with keys, so not on a start that migrated nothing).
        let mut migrating =
            SqliteConnection::connect_with(&options.clone().foreign_keys(false)).await.context("Failed to open the database")?;
        let migrator = sqlx::migrate!("./migrations/sqlite");
        migrating.ensure_migrations_table().await.context("Failed to run database migrations")?;
        let applied = migrating.list_applied_migrations().await.context("Failed to run database migrations")?.len();
        migrator.run(&mut migrating).await.context("Failed to run database migrations")?;
        if migrator.iter().count() > applied {
            let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&mut migrating).await?;
            anyhow::ensure!(broken.is_empty(), "the migrated database has rows whose foreign keys point nowhere, in {broken:?}");
        }
        migrating.close().await?;
        // No ping before each acquire: the file is in this process, so the test finds
        // nothing a query would not, and each ping is a round trip to SQLite's thread.
        // (sqlx still pings a connection as it returns to the pool.)
        let pool_of =
            |connections| SqlitePoolOptions::new().max_connections(connections).test_before_acquire(false).connect_with(options.clone());
        let pool = pool_of(8).await.context("Failed to open the database")?;
        // A process drives one range at a time, and its reads and commits take turns.
        let drives = pool_of(1).await.context("Failed to open the database")?;
        Ok(Self { db: Db::Sqlite(pool), drives: Db::Sqlite(drives), lease })
    }

    /// The handle a broadcast's drive reads its pages and commits its progress through.
    /// On SQLite it is a connection of its own: its page cache stays warm across a
    /// broadcast (another connection's commit would make it read its pages afresh), and
    /// every query goes to the same SQLite thread. On PostgreSQL it is the same pool.
    /// Lease renewals stay on the shared pool, so they never wait behind a page.
    pub fn for_drives(&self) -> Store {
        Store { db: self.drives.clone(), drives: self.drives.clone(), lease: self.lease }
    }

    /// The backend's name, for `clarion_build_info`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// How long a lease taken now lasts, in whole seconds (bound where SQL adds it to
    /// [`DB_NOW`]).
    fn lease_seconds(&self) -> i64 {
        self.lease.as_secs().max(1) as i64
    }

    /// `sql` with each [`DB_NOW`] replaced by this backend's clock. Leases and `send_at`
    /// are judged by the database's clock, the one clock all instances share: an
    /// instance whose own clock runs ahead neither takes over a lease early nor starts a
    /// scheduled send early.
    fn on_db_clock(&self, sql: &str) -> String {
        let now = match self.db {
            // SQLite is a file on this machine: its clock is the machine's.
            Db::Sqlite(_) => "CAST(strftime('%s', 'now') AS BIGINT)",
            Db::Postgres(_) => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)",
        };
        sql.replace(DB_NOW, now)
    }

    /// The default database's file name inside the data dir.
    pub const DEFAULT_FILE: &'static str = "clarion.db";

    /// The default database inside a data dir.
    pub fn default_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join(Self::DEFAULT_FILE).display())
    }
}
