//! The initial schema: users and tokens, apps and collaborators, the
//! immutable release history (configs, builds, releases), domains,
//! certificates, SSH keys, and the settings and TLS histories.
//!
//! History rows keep the acting user's name (not a foreign key) so that
//! cancelling an account never rewrites or blocks an app's history.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn fk(
    table: &str,
    column: &str,
    to_table: &str,
    to_column: &str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk-{table}-{column}"))
        .from(table.to_owned(), column.to_owned())
        .to(to_table.to_owned(), to_column.to_owned())
        .on_delete(on_delete)
        .to_owned()
}

fn index(table: &str, columns: &[&str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("idx-{table}-{}", columns.join("-")))
        .table(table.to_owned());
    for column in columns {
        stmt.col(String::from(*column));
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

fn uuid_pk(name: &str) -> ColumnDef {
    string(name.to_owned()).primary_key().to_owned()
}

fn stamps(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(timestamp_with_time_zone("created"))
        .col(timestamp_with_time_zone("updated"))
}

// sea-orm-migration's trait is written with async-trait and elided lifetimes.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, Restrict, SetNull};

        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(uuid_pk("uuid"))
                    .col(string_uniq("username"))
                    .col(string("email"))
                    .col(string("first_name"))
                    .col(string("last_name"))
                    .col(text("password_hash"))
                    .col(boolean("is_superuser"))
                    .col(boolean("is_staff"))
                    .col(boolean("is_active"))
                    .col(timestamp_with_time_zone("date_joined"))
                    .col(timestamp_with_time_zone_null("last_login"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("tokens")
                    .col(string("token_hash").primary_key())
                    .col(string("user_uuid"))
                    .col(timestamp_with_time_zone("created"))
                    .foreign_key(&mut fk("tokens", "user_uuid", "users", "uuid", Cascade))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("tokens", &["user_uuid"], false))
            .await?;

        let mut apps = Table::create();
        apps.table("apps")
            .col(uuid_pk("uuid"))
            .col(string_uniq("name"))
            .col(string("owner_uuid"))
            // Usernames never change, so the owner's name is kept on the row
            // and listing apps needs no join.
            .col(string("owner_name"))
            .col(text("structure"))
            .foreign_key(&mut fk("apps", "owner_uuid", "users", "uuid", Restrict));
        manager.create_table(stamps(&mut apps).to_owned()).await?;
        manager
            .create_index(index("apps", &["owner_uuid"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("app_perms")
                    .col(string("app_uuid"))
                    .col(string("user_uuid"))
                    .col(timestamp_with_time_zone("created"))
                    .primary_key(Index::create().col("app_uuid").col("user_uuid"))
                    .foreign_key(&mut fk("app_perms", "app_uuid", "apps", "uuid", Cascade))
                    .foreign_key(&mut fk("app_perms", "user_uuid", "users", "uuid", Cascade))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("app_perms", &["user_uuid"], false))
            .await?;

        let mut configs = Table::create();
        configs
            .table("configs")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(string("owner"))
            .col(text("env_values"))
            .col(text("memory"))
            .col(text("cpu"))
            .col(text("tags"))
            .col(text("registry"))
            .col(text("healthcheck"))
            .foreign_key(&mut fk("configs", "app_uuid", "apps", "uuid", Cascade));
        manager.create_table(stamps(&mut configs).to_owned()).await?;
        manager
            .create_index(index("configs", &["app_uuid"], false))
            .await?;

        let mut builds = Table::create();
        builds
            .table("builds")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(string("owner"))
            .col(text("image"))
            .col(string("sha"))
            .col(text("procfile"))
            .col(text("dockerfile"))
            .foreign_key(&mut fk("builds", "app_uuid", "apps", "uuid", Cascade));
        manager.create_table(stamps(&mut builds).to_owned()).await?;
        manager
            .create_index(index("builds", &["app_uuid", "created"], false))
            .await?;

        let mut releases = Table::create();
        releases
            .table("releases")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(string("owner"))
            .col(integer("version"))
            .col(text("summary"))
            .col(boolean("failed"))
            .col(string("config_uuid"))
            .col(string_null("build_uuid"))
            .foreign_key(&mut fk("releases", "app_uuid", "apps", "uuid", Cascade))
            .foreign_key(&mut fk("releases", "config_uuid", "configs", "uuid", Restrict))
            .foreign_key(&mut fk("releases", "build_uuid", "builds", "uuid", Restrict));
        manager.create_table(stamps(&mut releases).to_owned()).await?;
        // Versions never repeat: the database refuses a second vN for an app
        // even if two writers race past the controller's own serialisation.
        manager
            .create_index(index("releases", &["app_uuid", "version"], true))
            .await?;

        let mut certificates = Table::create();
        certificates
            .table("certificates")
            .col(uuid_pk("uuid"))
            .col(string("owner_uuid"))
            .col(string_uniq("name"))
            .col(text("certificate"))
            .col(text("private_key"))
            .col(text("common_name"))
            .col(text("san"))
            .col(string("fingerprint"))
            .col(timestamp_with_time_zone("expires"))
            .col(timestamp_with_time_zone("starts"))
            .col(text("issuer"))
            .col(text("subject"))
            .foreign_key(&mut fk("certificates", "owner_uuid", "users", "uuid", Cascade));
        manager.create_table(stamps(&mut certificates).to_owned()).await?;
        manager
            .create_index(index("certificates", &["owner_uuid"], false))
            .await?;

        let mut domains = Table::create();
        domains
            .table("domains")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(string("owner"))
            .col(string_uniq("domain"))
            .col(string_null("certificate_uuid"))
            .foreign_key(&mut fk("domains", "app_uuid", "apps", "uuid", Cascade))
            .foreign_key(&mut fk(
                "domains",
                "certificate_uuid",
                "certificates",
                "uuid",
                SetNull,
            ));
        manager.create_table(stamps(&mut domains).to_owned()).await?;
        manager
            .create_index(index("domains", &["app_uuid"], false))
            .await?;

        let mut keys = Table::create();
        keys.table("ssh_keys")
            .col(uuid_pk("uuid"))
            .col(string("owner_uuid"))
            .col(string_uniq("name"))
            .col(text("public_key"))
            .col(string_uniq("md5_fingerprint"))
            .col(string_uniq("sha256_fingerprint"))
            .foreign_key(&mut fk("ssh_keys", "owner_uuid", "users", "uuid", Cascade));
        manager.create_table(stamps(&mut keys).to_owned()).await?;
        manager
            .create_index(index("ssh_keys", &["owner_uuid"], false))
            .await?;

        let mut settings = Table::create();
        settings
            .table("app_settings")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(integer("revision"))
            .col(string("owner"))
            .col(boolean("maintenance"))
            .col(boolean("routable"))
            .col(text("whitelist"))
            .col(text("autoscale"))
            .col(text("label"))
            .foreign_key(&mut fk("app_settings", "app_uuid", "apps", "uuid", Cascade));
        manager.create_table(stamps(&mut settings).to_owned()).await?;
        manager
            .create_index(index("app_settings", &["app_uuid", "revision"], true))
            .await?;

        let mut tls = Table::create();
        tls.table("app_tls")
            .col(uuid_pk("uuid"))
            .col(string("app_uuid"))
            .col(integer("revision"))
            .col(string("owner"))
            .col(boolean_null("https_enforced"))
            .foreign_key(&mut fk("app_tls", "app_uuid", "apps", "uuid", Cascade));
        manager.create_table(stamps(&mut tls).to_owned()).await?;
        manager
            .create_index(index("app_tls", &["app_uuid", "revision"], true))
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "app_tls",
            "app_settings",
            "ssh_keys",
            "domains",
            "certificates",
            "releases",
            "builds",
            "configs",
            "app_perms",
            "apps",
            "tokens",
            "users",
        ] {
            manager
                .drop_table(Table::drop().table(table.to_owned()).to_owned())
                .await?;
        }
        Ok(())
    }
}
