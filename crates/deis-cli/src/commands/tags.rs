//! `tags:*`: node selectors for all processes of an app.

use anyhow::Result;
use clap::Subcommand;

use super::config::{ConfigMap, MapEdit};
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::validate;

/// `tags:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List tags for an app
    #[command(name = "tags:list", alias = "tags")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set tags for an app
    ///
    /// Processes only run on nodes that carry every tag (Kubernetes node
    /// labels). Setting tags creates a new release.
    #[command(name = "tags:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// Tags, e.g. environment=production
        #[arg(value_name = "KEY=VALUE", required = true)]
        tags: Vec<String>,
    },
    /// Unset tags for an app
    #[command(name = "tags:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Tags to remove
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// Runs a `tags:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let (app, edit) = match cmd {
        Cmd::List { app } => (app, None),
        Cmd::Set { app, tags } => {
            let pairs = tags
                .iter()
                .map(|item| validate::tag(item))
                .collect::<Result<Vec<_>>>()?;
            (app, Some(MapEdit::Set(pairs)))
        }
        Cmd::Unset { app, keys } => (app, Some(MapEdit::Unset(keys))),
    };
    ConfigMap::Tags.run(ctx, app, edit).await
}
