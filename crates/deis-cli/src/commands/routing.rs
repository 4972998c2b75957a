//! `routing:*`: whether the router sends traffic to the app.

use anyhow::Result;
use clap::Subcommand;

use super::settings::Toggle;
use crate::cli::AppArg;
use crate::context::Ctx;

/// `routing:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show whether the app is routable
    #[command(name = "routing:info", alias = "routing")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Make the app reachable through the router
    #[command(name = "routing:enable")]
    Enable {
        #[command(flatten)]
        app: AppArg,
    },
    /// Take the app out of the router (internal apps)
    #[command(name = "routing:disable")]
    Disable {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `routing:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Info { app } => Toggle::Routing.run(ctx, app, None).await,
        Cmd::Enable { app } => Toggle::Routing.run(ctx, app, Some(true)).await,
        Cmd::Disable { app } => Toggle::Routing.run(ctx, app, Some(false)).await,
    }
}
