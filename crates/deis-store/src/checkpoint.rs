//! SQLite WAL checkpoints off the request path.
//!
//! With automatic checkpoints, the request whose commit fills the WAL pays
//! for copying it back into the database and syncing it. Instead, automatic
//! checkpoints are off and a task with its own connection runs a PASSIVE
//! checkpoint every half second: it never blocks the writer, and the WAL
//! stays small.

use std::time::Duration;

use sea_orm::sqlx::ConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use tokio::task::JoinHandle;

use crate::{Result, StoreError};

/// How often the WAL is checkpointed.
const PERIOD: Duration = Duration::from_millis(500);

/// The connection settings every SQLite connection of the store uses.
pub(crate) fn tune(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable against application crashes in WAL mode; only a
        // power loss can drop the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .create_if_missing(true)
}

/// Runs checkpoints until dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer(JoinHandle<()>);

impl Checkpointer {
    pub(crate) async fn spawn(url: &str) -> Result<Checkpointer> {
        let options: SqliteConnectOptions = url
            .parse()
            .map_err(|e: sea_orm::sqlx::Error| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        let mut conn = tune(options)
            .disable_statement_logging()
            .connect()
            .await
            .map_err(|e| StoreError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        Ok(Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = sea_orm::sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::warn!(error = %err, "SQLite checkpoint failed");
                }
            }
        })))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}
