//! The release history: configs, builds and the releases that pair them.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::entity::{app, build, config, release};
use crate::json::{from_text, to_text};
use crate::{
    App, Build, BuildSource, Config, ConfigSource, Page, PageRequest, Release, ReleaseState, Result, Store,
    StoreError, new_uuid, now,
};

fn release_record(app: &App, m: release::Model) -> Release {
    Release {
        uuid: m.uuid,
        app: app.name.clone(),
        owner: m.owner,
        version: m.version,
        summary: m.summary,
        failed: m.failed,
        config_uuid: m.config_uuid,
        build_uuid: m.build_uuid,
        created: m.created,
        updated: m.updated,
    }
}

fn config_record(app: &App, m: config::Model) -> Result<Config> {
    Ok(Config {
        data: deis_core::ConfigData {
            values: from_text("configs.env_values", &m.env_values)?,
            memory: from_text("configs.memory", &m.memory)?,
            cpu: from_text("configs.cpu", &m.cpu)?,
            tags: from_text("configs.tags", &m.tags)?,
            registry: from_text("configs.registry", &m.registry)?,
            healthcheck: from_text("configs.healthcheck", &m.healthcheck)?,
            termination_grace_period: from_text(
                "configs.termination_grace_period",
                &m.termination_grace_period,
            )?,
        },
        uuid: m.uuid,
        app: app.name.clone(),
        owner: m.owner,
        created: m.created,
        updated: m.updated,
    })
}

fn build_record(app: &App, m: build::Model) -> Result<Build> {
    Ok(Build {
        procfile: from_text("builds.procfile", &m.procfile)?,
        uuid: m.uuid,
        app: app.name.clone(),
        owner: m.owner,
        image: m.image,
        sha: m.sha,
        dockerfile: m.dockerfile,
        created: m.created,
        updated: m.updated,
    })
}

impl Store {
    async fn load_config<C: ConnectionTrait>(&self, conn: &C, app: &App, uuid: &str) -> Result<Config> {
        let m = config::Entity::find_by_id(uuid.to_owned())
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("config {uuid} is missing")))?;
        config_record(app, m)
    }

    async fn load_build<C: ConnectionTrait>(
        &self,
        conn: &C,
        app: &App,
        uuid: Option<&str>,
    ) -> Result<Option<Build>> {
        let Some(uuid) = uuid else {
            return Ok(None);
        };
        let m = build::Entity::find_by_id(uuid.to_owned())
            .one(conn)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("build {uuid} is missing")))?;
        build_record(app, m).map(Some)
    }

    async fn load_state<C: ConnectionTrait>(
        &self,
        conn: &C,
        app: &App,
        m: release::Model,
    ) -> Result<ReleaseState> {
        Ok(ReleaseState {
            config: self.load_config(conn, app, &m.config_uuid).await?,
            build: self.load_build(conn, app, m.build_uuid.as_deref()).await?,
            release: release_record(app, m),
        })
    }

    /// The newest release, failed or not.
    pub async fn latest_release(&self, app: &App) -> Result<Release> {
        let m = release::Entity::find()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(release::Column::Version)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("app {} has no release", app.name)))?;
        Ok(release_record(app, m))
    }

    /// The newest release that did not fail, with its config and build:
    /// what the app is (or should be) running.
    pub async fn current_state(&self, app: &App) -> Result<ReleaseState> {
        let m = release::Entity::find()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .filter(release::Column::Failed.eq(false))
            .order_by_desc(release::Column::Version)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("app {} has no good release", app.name)))?;
        self.load_state(&self.db, app, m).await
    }

    /// A release with its config and build.
    pub async fn release_state(&self, app: &App, version: i32) -> Result<Option<ReleaseState>> {
        match self.find_release_model(app, version).await? {
            Some(m) => Ok(Some(self.load_state(&self.db, app, m).await?)),
            None => Ok(None),
        }
    }

    async fn find_release_model(&self, app: &App, version: i32) -> Result<Option<release::Model>> {
        Ok(release::Entity::find()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .filter(release::Column::Version.eq(version))
            .one(&self.db)
            .await?)
    }

    /// One release by number.
    pub async fn find_release(&self, app: &App, version: i32) -> Result<Option<Release>> {
        Ok(self
            .find_release_model(app, version)
            .await?
            .map(|m| release_record(app, m)))
    }

    /// Makes the next release of an app: records the config and build it
    /// needs and assigns the next version, all in one transaction.
    ///
    /// Versions are `max + 1` under a lock on the app row (PostgreSQL) or the
    /// single writer connection (SQLite), and unique per app in the schema,
    /// so they never repeat and never skip.
    pub async fn create_release(
        &self,
        app: &App,
        owner: &str,
        config: ConfigSource,
        build: BuildSource,
        summary: &str,
    ) -> Result<ReleaseState> {
        let txn = self.db.begin().await?;
        app::Entity::find_by_id(app.uuid.clone())
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("App {} no longer exists", app.name)))?;
        let created = now();
        // The new release's config and build, read back only when they are
        // existing rows (a new row is already in hand).
        let config = match config {
            ConfigSource::Existing(uuid) => self.load_config(&txn, app, &uuid).await?,
            ConfigSource::New(data) => {
                let m = config::ActiveModel {
                    uuid: Set(new_uuid()),
                    app_uuid: Set(app.uuid.clone()),
                    owner: Set(owner.to_owned()),
                    env_values: Set(to_text(&data.values)?),
                    memory: Set(to_text(&data.memory)?),
                    cpu: Set(to_text(&data.cpu)?),
                    tags: Set(to_text(&data.tags)?),
                    registry: Set(to_text(&data.registry)?),
                    healthcheck: Set(to_text(&data.healthcheck)?),
                    termination_grace_period: Set(to_text(&data.termination_grace_period)?),
                    created: Set(created),
                    updated: Set(created),
                }
                .insert(&txn)
                .await?;
                Config {
                    uuid: m.uuid,
                    app: app.name.clone(),
                    owner: m.owner,
                    data,
                    created,
                    updated: created,
                }
            }
        };
        let build = match build {
            BuildSource::Existing(uuid) => self.load_build(&txn, app, uuid.as_deref()).await?,
            BuildSource::New(new) => {
                let m = build::ActiveModel {
                    uuid: Set(new_uuid()),
                    app_uuid: Set(app.uuid.clone()),
                    owner: Set(owner.to_owned()),
                    image: Set(new.image),
                    sha: Set(new.sha),
                    procfile: Set(to_text(&new.procfile)?),
                    dockerfile: Set(new.dockerfile),
                    created: Set(created),
                    updated: Set(created),
                }
                .insert(&txn)
                .await?;
                Some(build_record(app, m)?)
            }
        };
        let latest = release::Entity::find()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(release::Column::Version)
            .one(&txn)
            .await?
            .map_or(0, |r| r.version);
        let model = release::ActiveModel {
            uuid: Set(new_uuid()),
            app_uuid: Set(app.uuid.clone()),
            owner: Set(owner.to_owned()),
            version: Set(latest + 1),
            summary: Set(summary.to_owned()),
            failed: Set(false),
            config_uuid: Set(config.uuid.clone()),
            build_uuid: Set(build.as_ref().map(|b| b.uuid.clone())),
            created: Set(created),
            updated: Set(created),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(ReleaseState {
            release: release_record(app, model),
            config,
            build,
        })
    }

    /// Marks a release failed with the summary that says so.
    pub async fn mark_release_failed(&self, release: &Release, summary: &str) -> Result<()> {
        release::ActiveModel {
            uuid: Set(release.uuid.clone()),
            failed: Set(true),
            summary: Set(summary.to_owned()),
            updated: Set(now()),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// An app's releases, newest first.
    pub async fn list_releases(&self, app: &App, page: PageRequest) -> Result<Page<Release>> {
        let query = release::Entity::find()
            .filter(release::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(release::Column::Version);
        let count = query.clone().count(&self.db).await?;
        let items = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: items.into_iter().map(|m| release_record(app, m)).collect(),
        })
    }

    /// An app's builds, newest first.
    pub async fn list_builds(&self, app: &App, page: PageRequest) -> Result<Page<Build>> {
        let query = build::Entity::find()
            .filter(build::Column::AppUuid.eq(&app.uuid))
            .order_by_desc(build::Column::Created)
            .order_by_desc(build::Column::Uuid);
        let count = query.clone().count(&self.db).await?;
        let items = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: items
                .into_iter()
                .map(|m| build_record(app, m))
                .collect::<Result<_>>()?,
        })
    }

    /// One build of an app.
    pub async fn find_build(&self, app: &App, uuid: &str) -> Result<Option<Build>> {
        build::Entity::find_by_id(uuid.to_owned())
            .filter(build::Column::AppUuid.eq(&app.uuid))
            .one(&self.db)
            .await?
            .map(|m| build_record(app, m))
            .transpose()
    }
}
