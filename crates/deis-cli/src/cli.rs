//! The command line: global flags and every `topic:command`.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    apps, auth, autoscale, builds, certs, config, domains, drains, git, healthchecks, keys, labels, limits,
    maintenance, perms, ps, registry, releases, routing, shortcuts, tags, timeouts, tls, users, version,
    whitelist,
};

/// The Deis command-line client issues API calls to a Deis controller.
#[derive(Parser, Debug)]
#[command(
    name = "deis",
    bin_name = "deis",
    disable_version_flag = true,
    disable_help_subcommand = true,
    allow_external_subcommands = true,
    subcommand_required = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Profile to use: a name under ~/.deis/ (default: client) or a path ending in .json
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "DEIS_PROFILE",
        hide_env_values = true,
        value_name = "PROFILE",
        display_order = 900
    )]
    pub(crate) config: Option<String>,

    /// Print results as JSON, with protobuf field names
    #[arg(long, global = true, display_order = 901)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Every command; each topic contributes its own `topic:command` set.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    #[command(flatten)]
    Apps(apps::Cmd),
    #[command(flatten)]
    Auth(auth::Cmd),
    #[command(flatten)]
    Autoscale(autoscale::Cmd),
    #[command(flatten)]
    Builds(builds::Cmd),
    #[command(flatten)]
    Certs(certs::Cmd),
    #[command(flatten)]
    Config(config::Cmd),
    #[command(flatten)]
    Domains(domains::Cmd),
    #[command(flatten)]
    Drains(drains::Cmd),
    #[command(flatten)]
    Git(git::Cmd),
    #[command(flatten)]
    Healthchecks(healthchecks::Cmd),
    #[command(flatten)]
    Keys(keys::Cmd),
    #[command(flatten)]
    Labels(labels::Cmd),
    #[command(flatten)]
    Limits(limits::Cmd),
    #[command(flatten)]
    Maintenance(maintenance::Cmd),
    #[command(flatten)]
    Perms(perms::Cmd),
    #[command(flatten)]
    Ps(ps::Cmd),
    #[command(flatten)]
    Registry(registry::Cmd),
    #[command(flatten)]
    Releases(releases::Cmd),
    #[command(flatten)]
    Routing(routing::Cmd),
    #[command(flatten)]
    Shortcuts(shortcuts::Cmd),
    #[command(flatten)]
    Tags(tags::Cmd),
    #[command(flatten)]
    Timeouts(timeouts::Cmd),
    #[command(flatten)]
    Tls(tls::Cmd),
    #[command(flatten)]
    Users(users::Cmd),
    #[command(flatten)]
    Version(version::Cmd),
    #[command(flatten)]
    Whitelist(whitelist::Cmd),
    /// A plugin: `deis foo[:bar] …` runs `deis-foo [bar] …` from PATH.
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

/// `-a/--app` for app-scoped commands.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct AppArg {
    /// The application [default: from the git remote pointing at the builder, else the directory name]
    #[arg(short = 'a', long = "app", value_name = "APP")]
    pub(crate) app: Option<String>,
}

impl AppArg {
    /// The flag's value.
    pub(crate) fn get(&self) -> Option<&str> {
        self.app.as_deref()
    }
}

/// `-l/--limit` for list commands.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct LimitArg {
    /// The maximum number of results to show [default: the profile's response_limit, 100]
    #[arg(short = 'l', long = "limit", value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) limit: Option<i32>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_command() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["deis", "apps:list", "--json", "-c", "staging", "-l", "5"])?;
        assert!(cli.json);
        assert_eq!(cli.config.as_deref(), Some("staging"));
        Ok(())
    }

    #[test]
    fn run_keeps_the_command_flags() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["deis", "run", "-a", "web", "ls", "-la", "--color"])?;
        match cli.command {
            Command::Apps(apps::Cmd::Run { app, command, .. }) => {
                assert_eq!(app.get(), Some("web"));
                assert_eq!(command, ["ls", "-la", "--color"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn unknown_commands_become_plugins() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from(["deis", "foo:bar", "--x", "y"])?;
        match cli.command {
            Command::External(args) => assert_eq!(args, ["foo:bar", "--x", "y"]),
            other => panic!("parsed as {other:?}"),
        }
        Ok(())
    }
}
