use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: String,
    pub owner_uuid: String,
    pub name: String,
    pub certificate: String,
    pub private_key: String,
    pub common_name: String,
    pub san: String,
    pub fingerprint: String,
    pub expires: DateTimeUtc,
    pub starts: DateTimeUtc,
    pub issuer: String,
    pub subject: String,
    pub created: DateTimeUtc,
    pub updated: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
