//! Per-app log drains: where an app's log lines are also sent.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const TABLE: &str = "drains";

// sea-orm-migration's trait is written with async-trait and elided lifetimes.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string("uuid").primary_key())
                    .col(string("app_uuid"))
                    .col(string("owner"))
                    .col(string("url"))
                    .col(timestamp_with_time_zone("created"))
                    .col(timestamp_with_time_zone("updated"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-drains-app_uuid")
                            .from(TABLE, "app_uuid")
                            .to("apps", "uuid")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-drains-app_uuid-url")
                    .table(TABLE)
                    .col("app_uuid")
                    .col("url")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TABLE).to_owned()).await
    }
}
