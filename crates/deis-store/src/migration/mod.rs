//! Numbered schema migrations. Each migration uses only sea-query DDL, so
//! the same migration runs on SQLite and PostgreSQL. Never edit a released
//! migration; add a new one.

use sea_orm_migration::prelude::*;

mod m20261201_000001_initial;
mod m20261201_000002_termination_grace_period;
mod m20261201_000003_drains;

/// The platform's migrator.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_initial::Migration),
            Box::new(m20261201_000002_termination_grace_period::Migration),
            Box::new(m20261201_000003_drains::Migration),
        ]
    }
}
