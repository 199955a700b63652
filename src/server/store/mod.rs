//! The SQLite store, split by what it stores: [`subscriptions`], the broadcast ledger
//! ([`broadcasts`]) and the console's [`sessions`]. This module opens the database and
//! holds what they share.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`, so a committed write survives a
//! process crash. Migrations are embedded in the binary and run at start.

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The columns of a [`StoredSubscription`]; before the modules, which all use it.
macro_rules! subscription_columns {
    () => {
        "id, endpoint, p256dh, auth, vapid_key_fingerprint, vapid_refusals"
    };
}

mod broadcasts;
mod sessions;
mod subscriptions;

pub use broadcasts::{BroadcastDetailRecord, BroadcastJob, BroadcastRecord, Progress};
pub use subscriptions::{StoredSubscription, Upserted};

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// How long a claim on a broadcast lasts without renewal.
    lease: Duration,
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

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store {
    /// Opens (creating if needed) the database and runs the embedded migrations. `lease`
    /// is how long a claim on a broadcast lasts without renewal.
    pub async fn connect(database_url: &str, lease: Duration) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(database_url)
            .with_context(|| "Failed to parse the database URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.context("Failed to open the database")?;
        sqlx::migrate!("./migrations").run(&pool).await.context("Failed to run database migrations")?;
        Ok(Self { pool, lease })
    }

    /// The backend's name, for `clarion_build_info`.
    pub fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn lease_until(&self) -> i64 {
        unix_now() + self.lease.as_secs().max(1) as i64
    }

    /// A transaction that takes SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
    /// busy database makes it wait (busy_timeout) instead of failing when a deferred
    /// transaction tries to upgrade from reading to writing.
    async fn write_transaction(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The default database's file name inside the data dir.
    pub const DEFAULT_FILE: &'static str = "clarion.db";

    /// The default database inside a data dir.
    pub fn default_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join(Self::DEFAULT_FILE).display())
    }
}
