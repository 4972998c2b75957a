//! `registry:*`: private registry credentials for `deis pull` images.

use anyhow::Result;
use clap::Subcommand;

use super::config::{ConfigMap, MapEdit};
use crate::cli::AppArg;
use crate::context::Ctx;
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
    let (app, edit) = match cmd {
        Cmd::List { app } => (app, None),
        Cmd::Set { app, items } => {
            let pairs = items
                .iter()
                .map(|item| validate::registry_item(item))
                .collect::<Result<Vec<_>>>()?;
            (app, Some(MapEdit::Set(pairs)))
        }
        Cmd::Unset { app, keys } => (app, Some(MapEdit::Unset(keys))),
    };
    ConfigMap::Registry.run(ctx, app, edit).await
}
