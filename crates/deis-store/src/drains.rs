//! Per-app log drains.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use crate::entity::{app, drain};
use crate::{App, Drain, Result, Store, StoreError, new_uuid, now};

fn record(app: &str, m: drain::Model) -> Drain {
    Drain {
        uuid: m.uuid,
        app: app.to_owned(),
        owner: m.owner,
        url: m.url,
        created: m.created,
    }
}

impl Store {
    /// An app's drains, oldest first.
    pub async fn list_drains(&self, app: &App) -> Result<Vec<Drain>> {
        Ok(drain::Entity::find()
            .filter(drain::Column::AppUuid.eq(&app.uuid))
            .order_by_asc(drain::Column::Created)
            .order_by_asc(drain::Column::Uuid)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| record(&app.name, m))
            .collect())
    }

    /// Every app's drains (to configure the logger at start).
    pub async fn all_drains(&self) -> Result<Vec<Drain>> {
        let names: HashMap<String, String> = app::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.uuid, a.name))
            .collect();
        let rows = drain::Entity::find()
            .order_by_asc(drain::Column::Created)
            .order_by_asc(drain::Column::Uuid)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|d| names.get(&d.app_uuid).map(|name| record(name, d)))
            .collect())
    }

    /// Adds a drain unless the app already has `limit` drains (`Conflict`)
    /// or one with this URL (`Duplicate`). The count and the insert happen
    /// in one transaction.
    pub async fn add_drain(&self, app: &App, owner: &str, url: &str, limit: u64) -> Result<Drain> {
        let txn = self.db.begin().await?;
        let count = drain::Entity::find()
            .filter(drain::Column::AppUuid.eq(&app.uuid))
            .count(&txn)
            .await?;
        if count >= limit {
            return Err(StoreError::Conflict(format!(
                "{} already has {count} drains, the most an app may have; remove one first with `deis drains:remove`.",
                app.name
            )));
        }
        let created = now();
        let m = drain::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app.uuid.clone()),
            owner: Set(owner.to_owned()),
            url: Set(url.to_owned()),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(record(&app.name, m))
    }

    /// Removes a drain given by its id or URL; false if the app has none
    /// such.
    pub async fn remove_drain(&self, app: &App, id_or_url: &str) -> Result<bool> {
        let result = drain::Entity::delete_many()
            .filter(drain::Column::AppUuid.eq(&app.uuid))
            .filter(
                Condition::any()
                    .add(drain::Column::Uuid.eq(id_or_url))
                    .add(drain::Column::Url.eq(id_or_url)),
            )
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }
}
