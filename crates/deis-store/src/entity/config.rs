use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "configs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: String,
    pub app_uuid: String,
    pub owner: String,
    pub env_values: String,
    pub memory: String,
    pub cpu: String,
    pub tags: String,
    pub registry: String,
    pub healthcheck: String,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
    /// `{ptype: "seconds"}` (migration 000002).
    pub termination_grace_period: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
