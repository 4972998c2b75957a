//! The platform's state, in SQLite (embedded default) or PostgreSQL.
//!
//! Architecture invariant: this is the only crate that knows SQL or the
//! table layout. It exposes plain record types and repository methods; every
//! method that changes more than one row runs in one transaction, so a
//! failure leaves the previous state intact.

mod apps;
mod checkpoint;
mod drains;
mod entity;
mod error;
mod json;
pub mod migration;
mod records;
mod releases;
mod resources;
mod routing;
mod settings;
mod users;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use error::StoreError;
pub use records::*;
pub use routing::{RoutedDomain, RoutingCertificate, RoutingInputs, RoutingRecord};

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database behind the platform.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite only: the task that checkpoints the WAL off the request path;
    /// stopped when the last clone of the store is dropped.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

/// Which database a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (one file, WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Store {
    /// Connects to `url` (`sqlite://path?mode=rwc` or `postgres://...`).
    pub async fn connect(url: &str) -> Result<Store> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .acquire_timeout(Duration::from_secs(30));
        if url.starts_with("sqlite:") {
            // One connection serialises writers, which is what SQLite does
            // anyway; it also makes version assignment race-free in process.
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            options.map_sqlx_sqlite_opts(|opts| {
                checkpoint::tune(opts)
                    // Checkpoints run in a background task instead of in
                    // whichever request happens to fill the WAL.
                    .pragma("wal_autocheckpoint", "0")
            });
            let db = Database::connect(options).await?;
            let checkpointer = checkpoint::Checkpointer::spawn(url).await?;
            return Ok(Store {
                db,
                _checkpointer: Some(Arc::new(checkpointer)),
            });
        }
        options.max_connections(16).min_connections(1);
        let db = Database::connect(options).await?;
        Ok(Store {
            db,
            _checkpointer: None,
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        migration::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.db.get_database_backend() {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// SQLite's journal mode and synchronous level (`None` on PostgreSQL),
    /// so operators and tests can see the durability settings in force.
    pub async fn sqlite_pragmas(&self) -> Result<Option<(String, i64)>> {
        use sea_orm::{ConnectionTrait, Statement};
        if self.backend() != Backend::Sqlite {
            return Ok(None);
        }
        let query = |sql: &str| Statement::from_string(DbBackend::Sqlite, sql.to_owned());
        let journal = self.db.query_one_raw(query("PRAGMA journal_mode")).await?;
        let synchronous = self.db.query_one_raw(query("PRAGMA synchronous")).await?;
        let journal: String = journal
            .map(|row| row.try_get_by_index(0))
            .transpose()?
            .unwrap_or_default();
        let synchronous: i64 = synchronous
            .map(|row| row.try_get_by_index(0))
            .transpose()?
            .unwrap_or(-1);
        Ok(Some((journal, synchronous)))
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await?;
        Ok(())
    }
}

/// The current time at the precision both databases keep (microseconds).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
