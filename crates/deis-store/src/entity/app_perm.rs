use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "app_perms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub app_uuid: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_uuid: String,
    pub created: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
