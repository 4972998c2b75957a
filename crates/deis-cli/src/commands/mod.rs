//! One module per topic; each defines its clap subcommands and runs them.

pub(crate) mod apps;
pub(crate) mod auth;
pub(crate) mod autoscale;
pub(crate) mod builds;
pub(crate) mod certs;
pub(crate) mod config;
pub(crate) mod domains;
pub(crate) mod drains;
pub(crate) mod git;
pub(crate) mod healthchecks;
pub(crate) mod keys;
pub(crate) mod labels;
pub(crate) mod limits;
pub(crate) mod maintenance;
pub(crate) mod perms;
mod plugin;
pub(crate) mod ps;
pub(crate) mod registry;
pub(crate) mod releases;
pub(crate) mod routing;
mod settings;
pub(crate) mod shortcuts;
pub(crate) mod tags;
pub(crate) mod timeouts;
pub(crate) mod tls;
pub(crate) mod users;
pub(crate) mod version;
pub(crate) mod whitelist;

use std::fmt;

use anyhow::Result;

use crate::cli::Command;
use crate::context::Ctx;

/// Ends the process with this exit code and no message (`apps:run`).
#[derive(Debug)]
pub(crate) struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Runs a parsed command.
pub(crate) async fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Apps(cmd) => apps::run(ctx, cmd).await,
        Command::Auth(cmd) => auth::run(ctx, cmd).await,
        Command::Autoscale(cmd) => autoscale::run(ctx, cmd).await,
        Command::Builds(cmd) => builds::run(ctx, cmd).await,
        Command::Certs(cmd) => certs::run(ctx, cmd).await,
        Command::Config(cmd) => config::run(ctx, cmd).await,
        Command::Domains(cmd) => domains::run(ctx, cmd).await,
        Command::Drains(cmd) => drains::run(ctx, cmd).await,
        Command::Git(cmd) => git::run(ctx, cmd),
        Command::Healthchecks(cmd) => healthchecks::run(ctx, cmd).await,
        Command::Keys(cmd) => keys::run(ctx, cmd).await,
        Command::Labels(cmd) => labels::run(ctx, cmd).await,
        Command::Limits(cmd) => limits::run(ctx, cmd).await,
        Command::Maintenance(cmd) => maintenance::run(ctx, cmd).await,
        Command::Perms(cmd) => perms::run(ctx, cmd).await,
        Command::Ps(cmd) => ps::run(ctx, cmd).await,
        Command::Registry(cmd) => registry::run(ctx, cmd).await,
        Command::Releases(cmd) => releases::run(ctx, cmd).await,
        Command::Routing(cmd) => routing::run(ctx, cmd).await,
        Command::Shortcuts(cmd) => shortcuts::run(ctx, cmd),
        Command::Tags(cmd) => tags::run(ctx, cmd).await,
        Command::Timeouts(cmd) => timeouts::run(ctx, cmd).await,
        Command::Tls(cmd) => tls::run(ctx, cmd).await,
        Command::Users(cmd) => users::run(ctx, cmd).await,
        Command::Version(cmd) => version::run(ctx, cmd).await,
        Command::Whitelist(cmd) => whitelist::run(ctx, cmd).await,
        Command::External(args) => plugin::run(ctx, args),
    }
}
