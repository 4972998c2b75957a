//! Store errors and their mapping to the domain taxonomy.

use sea_orm::{DbErr, SqlErr};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write (the caller words the message).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// The row the operation needs is missing.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with existing rows (e.g. a user who owns apps).
    #[error("{0}")]
    Conflict(String),
    /// A stored JSON column did not parse: a bug or a manual edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        // An update of a row another request deleted meanwhile (an app
        // destroyed while it was being transferred): it is gone, not a
        // database failure.
        if matches!(err, DbErr::RecordNotUpdated) {
            return StoreError::NotFound("It was deleted meanwhile.".into());
        }
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => StoreError::Duplicate(detail),
            _ => StoreError::Db(err),
        }
    }
}

impl From<StoreError> for deis_core::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(detail) => {
                deis_core::Error::already_exists(format!("already exists: {detail}"))
            }
            StoreError::NotFound(message) => deis_core::Error::not_found(message),
            StoreError::Conflict(message) => deis_core::Error::conflict(message),
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "corrupt row in the database");
                deis_core::Error::internal(
                    "The platform's database holds data it cannot read; see the controller log.",
                )
            }
            StoreError::Db(err) => {
                tracing::error!(error = %err, "database error");
                deis_core::Error::unavailable(
                    "The platform's database is not answering; try again in a moment.",
                )
            }
        }
    }
}
