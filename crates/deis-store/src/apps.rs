//! Apps and their collaborators.

use std::collections::BTreeMap;

use sea_orm::ExprTrait;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::entity::{app, app_perm, app_settings, app_tls, config, release, user};
use crate::json::{from_text, to_text};
use crate::{App, Page, PageRequest, Result, SettingsData, Store, User, new_uuid, now};

impl Store {
    /// Creates an app with an empty config, release v1, default settings and
    /// TLS rows, all in one transaction. `Duplicate` if the name is taken.
    pub async fn create_app(&self, name: &str, owner: &User, summary: &str) -> Result<App> {
        let txn = self.db.begin().await?;
        let created = now();
        let app_uuid = new_uuid();
        let model = app::ActiveModel {
            uuid: Set(app_uuid.clone()),
            name: Set(name.to_owned()),
            owner_uuid: Set(owner.uuid.clone()),
            owner_name: Set(owner.username.clone()),
            structure: Set("{}".into()),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        let config_uuid = new_uuid();
        let empty = to_text(&BTreeMap::<String, String>::new())?;
        config::ActiveModel {
            uuid: Set(config_uuid.clone()),
            app_uuid: Set(app_uuid.clone()),
            owner: Set(owner.username.clone()),
            env_values: Set(empty.clone()),
            memory: Set(empty.clone()),
            cpu: Set(empty.clone()),
            tags: Set(empty.clone()),
            registry: Set(empty.clone()),
            healthcheck: Set(empty.clone()),
            termination_grace_period: Set(empty),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        release::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app_uuid.clone()),
            owner: Set(owner.username.clone()),
            version: Set(1),
            summary: Set(summary.to_owned()),
            failed: Set(false),
            config_uuid: Set(config_uuid),
            build_uuid: Set(None),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        let defaults = SettingsData::default();
        app_settings::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app_uuid.clone()),
            revision: Set(1),
            owner: Set(owner.username.clone()),
            maintenance: Set(defaults.maintenance),
            routable: Set(defaults.routable),
            whitelist: Set(to_text(&defaults.whitelist)?),
            autoscale: Set(to_text(&defaults.autoscale)?),
            label: Set(to_text(&defaults.label)?),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        app_tls::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app_uuid),
            revision: Set(1),
            owner: Set(owner.username.clone()),
            https_enforced: Set(None),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        app_record(model)
    }

    /// An app by its id.
    pub async fn find_app(&self, name: &str) -> Result<Option<App>> {
        app::Entity::find()
            .filter(app::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(app_record)
            .transpose()
    }

    /// Every app's name, sorted.
    pub async fn app_names(&self) -> Result<Vec<String>> {
        Ok(app::Entity::find()
            .order_by_asc(app::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect())
    }

    /// The apps a user owns or collaborates on (all apps when `all`), by id.
    pub async fn list_apps(&self, user: &User, all: bool, page: PageRequest) -> Result<Page<App>> {
        let mut query = app::Entity::find().order_by_asc(app::Column::Name);
        if !all {
            let shared = Query::select()
                .column(app_perm::Column::AppUuid)
                .from(app_perm::Entity)
                .and_where(Expr::col(app_perm::Column::UserUuid).eq(user.uuid.clone()))
                .to_owned();
            query = query.filter(
                Condition::any()
                    .add(app::Column::OwnerUuid.eq(&user.uuid))
                    .add(app::Column::Uuid.in_subquery(shared)),
            );
        }
        let count = query.clone().count(&self.db).await?;
        let models = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        let items = models.into_iter().map(app_record).collect::<Result<Vec<_>>>()?;
        Ok(Page { count, items })
    }

    /// Every app (for converging the runtime on start).
    pub async fn list_all_apps(&self) -> Result<Vec<App>> {
        let models = app::Entity::find()
            .order_by_asc(app::Column::Name)
            .all(&self.db)
            .await?;
        models.into_iter().map(app_record).collect()
    }

    /// Gives an app to another user; history rows keep their authors.
    pub async fn transfer_app(&self, app: &App, new_owner: &User) -> Result<()> {
        let txn = self.db.begin().await?;
        app::ActiveModel {
            uuid: Set(app.uuid.clone()),
            owner_uuid: Set(new_owner.uuid.clone()),
            owner_name: Set(new_owner.username.clone()),
            updated: Set(now()),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        // A new owner is not also a collaborator.
        app_perm::Entity::delete_many()
            .filter(app_perm::Column::AppUuid.eq(&app.uuid))
            .filter(app_perm::Column::UserUuid.eq(&new_owner.uuid))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Deletes an app and everything that belongs to it.
    pub async fn delete_app(&self, app: &App) -> Result<()> {
        // Foreign keys cascade, but deleting children explicitly keeps the
        // order right for the release → config/build references.
        use crate::entity::{build, domain, drain};
        let txn = self.db.begin().await?;
        release::Entity::delete_many()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        config::Entity::delete_many()
            .filter(config::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        build::Entity::delete_many()
            .filter(build::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        domain::Entity::delete_many()
            .filter(domain::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        drain::Entity::delete_many()
            .filter(drain::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        app_settings::Entity::delete_many()
            .filter(app_settings::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        app_tls::Entity::delete_many()
            .filter(app_tls::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        app_perm::Entity::delete_many()
            .filter(app_perm::Column::AppUuid.eq(&app.uuid))
            .exec(&txn)
            .await?;
        app::Entity::delete_by_id(app.uuid.clone()).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Records a new process formation.
    pub async fn set_structure(&self, app: &App, structure: &BTreeMap<String, i32>) -> Result<()> {
        app::ActiveModel {
            uuid: Set(app.uuid.clone()),
            structure: Set(to_text(structure)?),
            updated: Set(now()),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Whether `user` is a collaborator of `app`.
    pub async fn is_collaborator(&self, app: &App, user: &User) -> Result<bool> {
        Ok(
            app_perm::Entity::find_by_id((app.uuid.clone(), user.uuid.clone()))
                .one(&self.db)
                .await?
                .is_some(),
        )
    }

    /// The collaborators of an app, by name.
    pub async fn list_collaborators(&self, app: &App) -> Result<Vec<String>> {
        let perms = app_perm::Entity::find()
            .filter(app_perm::Column::AppUuid.eq(&app.uuid))
            .all(&self.db)
            .await?;
        let ids: Vec<String> = perms.into_iter().map(|p| p.user_uuid).collect();
        let mut names: Vec<String> = user::Entity::find()
            .filter(user::Column::Uuid.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Adds a collaborator; `Duplicate` if they already are one.
    pub async fn add_collaborator(&self, app: &App, user: &User) -> Result<()> {
        app_perm::ActiveModel {
            app_uuid: Set(app.uuid.clone()),
            user_uuid: Set(user.uuid.clone()),
            created: Set(now()),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// Removes a collaborator; false if they were not one.
    pub async fn remove_collaborator(&self, app: &App, user: &User) -> Result<bool> {
        let result = app_perm::Entity::delete_by_id((app.uuid.clone(), user.uuid.clone()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }
}

pub(crate) fn app_record(m: app::Model) -> Result<App> {
    Ok(App {
        structure: from_text("apps.structure", &m.structure)?,
        uuid: m.uuid,
        name: m.name,
        owner: m.owner_name,
        owner_uuid: m.owner_uuid,
        created: m.created,
        updated: m.updated,
    })
}
