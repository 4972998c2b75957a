//! `maintenance:*`: the router answers 503 with a static page while on.

use anyhow::Result;
use clap::Subcommand;

use super::settings::Toggle;
use crate::cli::AppArg;
use crate::context::Ctx;

/// `maintenance:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show whether maintenance mode is on
    #[command(name = "maintenance:info", alias = "maintenance")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn maintenance mode on
    #[command(name = "maintenance:on")]
    On {
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn maintenance mode off
    #[command(name = "maintenance:off")]
    Off {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `maintenance:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Info { app } => Toggle::Maintenance.run(ctx, app, None).await,
        Cmd::On { app } => Toggle::Maintenance.run(ctx, app, Some(true)).await,
        Cmd::Off { app } => Toggle::Maintenance.run(ctx, app, Some(false)).await,
    }
}
