//! `registry:*`: private registry credentials for `deis pull` images.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{Config, SetConfigRequest};

use super::config;
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::output::sorted;
use crate::pb;
use crate::validate;

/// `registry:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List private registry settings for an app
    #[command(name = "registry:list", alias = "registry")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set private registry settings for an app
    ///
    /// Credentials for pulling the app's image from a private registry:
    /// username=<user> password=<password>. The app also needs PORT set in
    /// its config. Creates a new release.
    #[command(name = "registry:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// username=… and/or password=…
        #[arg(value_name = "KEY=VALUE", required = true)]
        items: Vec<String>,
    },
    /// Unset private registry settings for an app
    #[command(name = "registry:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Keys to remove (username, password)
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// Runs a `registry:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, registry) = match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            return print(ctx, &app.name, &config::get(&s, &app).await?);
        }
        Cmd::Set { app, items } => {
            let parsed = items
                .iter()
                .map(|i| validate::registry_item(i))
                .collect::<Result<Vec<_>>>()?;
            (app, pb::set_map(parsed))
        }
        Cmd::Unset { app, keys } => (app, pb::unset_map(keys)),
    };
    let app = s.app(app.get())?;
    let label = "Applying registry information...";
    let config = config::apply(
        ctx,
        &s,
        &app,
        label,
        SetConfigRequest {
            registry,
            ..Default::default()
        },
    )
    .await?;
    print(ctx, &app.name, &config)
}

fn print(ctx: &Ctx, app: &str, config: &Config) -> Result<()> {
    if ctx.out.json_mode() {
        return ctx.out.json_value(&crate::output::to_json(config)?["registry"]);
    }
    ctx.out.header(format!("{app} Registry"));
    if !config.registry.is_empty() {
        ctx.out.line(
            ctx.out.kv_table(
                sorted(&config.registry)
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            ),
        );
    }
    Ok(())
}
