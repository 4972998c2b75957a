//! `timeouts:*`: how long each process type gets to stop (Hephy's
//! termination grace period): the seconds between SIGTERM and SIGKILL.

use anyhow::Result;
use clap::Subcommand;

use super::config::{ConfigMap, MapEdit};
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::validate;

/// `timeouts:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List termination grace periods for an app
    #[command(name = "timeouts:list", alias = "timeouts")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set termination grace periods for an app
    ///
    /// How many seconds (0 to 3600) a process of the type gets between
    /// SIGTERM and SIGKILL when it is stopped, e.g. web=30 worker=300. A type
    /// without one gets 30 seconds. Setting timeouts creates a new release.
    #[command(name = "timeouts:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// Seconds by process type
        #[arg(value_name = "TYPE=SECONDS", required = true)]
        timeouts: Vec<String>,
    },
    /// Unset termination grace periods for an app
    ///
    /// The process types go back to the default of 30 seconds. Creates a new
    /// release.
    #[command(name = "timeouts:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Process types whose grace period is removed
        #[arg(value_name = "TYPE", required = true)]
        types: Vec<String>,
    },
}

/// Runs a `timeouts:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let (app, edit) = match cmd {
        Cmd::List { app } => (app, None),
        Cmd::Set { app, timeouts } => {
            let pairs = timeouts
                .iter()
                .map(|item| validate::timeout(item))
                .collect::<Result<Vec<_>>>()?;
            (app, Some(MapEdit::Set(pairs)))
        }
        Cmd::Unset { app, types } => {
            types.iter().try_for_each(|t| validate::proc_type(t))?;
            (app, Some(MapEdit::Unset(types)))
        }
    };
    ConfigMap::Timeouts.run(ctx, app, edit).await
}
