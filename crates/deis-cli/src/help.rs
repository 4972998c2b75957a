//! Deis-style help: the top-level overview, per-topic command lists, the
//! shortcut table, and the argument rewriting that routes `help`, `-h` and
//! `-v` before clap sees the command line.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::CommandFactory;

use crate::cli::Cli;

/// Shortcuts and what they expand to (Deis's `cli.go`); clap aliases
/// implement them, and a test keeps both in step.
pub(crate) const SHORTCUTS: &[(&str, &str)] = &[
    ("create", "apps:create"),
    ("destroy", "apps:destroy"),
    ("info", "apps:info"),
    ("login", "auth:login"),
    ("logout", "auth:logout"),
    ("logs", "apps:logs"),
    ("open", "apps:open"),
    ("passwd", "auth:passwd"),
    ("pull", "builds:create"),
    ("register", "auth:register"),
    ("rollback", "releases:rollback"),
    ("run", "apps:run"),
    ("scale", "ps:scale"),
    ("sharing", "perms:list"),
    ("sharing:add", "perms:create"),
    ("sharing:list", "perms:list"),
    ("sharing:remove", "perms:delete"),
    ("whoami", "auth:whoami"),
];

/// Topics and their one-line descriptions, in help order.
const TOPICS: &[(&str, &str)] = &[
    ("apps", "manage applications used to provide services"),
    ("auth", "manage users and authentication"),
    ("autoscale", "manage autoscale for applications"),
    ("builds", "manage builds created using 'git push'"),
    ("certs", "manage SSL endpoints for an app"),
    ("config", "manage environment variables that define app config"),
    ("domains", "manage and assign domain names to your applications"),
    (
        "drains",
        "send an application's logs to syslog or HTTPS endpoints",
    ),
    ("git", "manage git for applications"),
    ("healthchecks", "manage healthchecks for applications"),
    ("keys", "manage ssh keys used for 'git push' deployments"),
    ("labels", "manage labels of application"),
    ("limits", "manage resource limits for your application"),
    ("maintenance", "enable or disable maintenance mode for an app"),
    ("perms", "manage permissions for applications"),
    ("ps", "manage processes inside an app container"),
    (
        "registry",
        "manage private registry information for your application",
    ),
    ("releases", "manage releases of an application"),
    ("routing", "manage routability of an application"),
    ("shortcuts", "show valid shortcuts for commands"),
    ("tags", "manage tags for application containers"),
    (
        "timeouts",
        "manage termination grace periods for application processes",
    ),
    ("tls", "manage TLS settings for applications"),
    ("users", "manage users"),
    ("whitelist", "manage whitelisted addresses of an application"),
];

/// The shortcuts shown on the overview page, with what they do.
const MAIN_SHORTCUTS: &[(&str, &str)] = &[
    ("create", "create a new application"),
    ("destroy", "destroy an application"),
    ("info", "view information about the current app"),
    ("login", "login to a controller"),
    ("logout", "logout from the current controller"),
    ("logs", "view aggregated log info for the app"),
    ("open", "open a URL to the app in a browser"),
    ("pull", "imports an image and deploys as a new release"),
    ("register", "register a new user with a controller"),
    ("rollback", "roll back to a previous release"),
    ("run", "run a command in an ephemeral app container"),
    ("scale", "scale processes by type (web=2, worker=1)"),
    ("whoami", "display the current user"),
];

fn section(out: &mut String, title: &str, rows: &[(&str, &str)]) {
    out.push_str(title);
    out.push_str("\n\n");
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 2;
    for (name, about) in rows {
        out.push_str(&format!("  {name:<width$}{about}\n"));
    }
    out.push('\n');
}

/// `deis help`.
pub(crate) fn overview() -> String {
    let mut out = String::from(
        "The Deis command-line client issues API calls to a Deis controller.\n\n\
         Usage: deis <command> [<args>...]\n\n\
         Options:\n\
         \x20 -c, --config <PROFILE>  profile to use: a name under ~/.deis/ (default: client)\n\
         \x20                         or a path ending in .json [env: DEIS_PROFILE]\n\
         \x20     --json              print results as JSON, with protobuf field names\n\
         \x20 -h, --help              display help information\n\
         \x20 -v, --version           display client version\n\n",
    );
    section(
        &mut out,
        "Auth commands, use 'deis help auth' to learn more:",
        &[
            ("register", "register a new user with a controller"),
            ("login", "login to a controller"),
            ("logout", "logout from the current controller"),
        ],
    );
    let mut topics: Vec<(&str, &str)> = TOPICS.iter().copied().filter(|(t, _)| *t != "auth").collect();
    topics.push(("version", "display client version"));
    topics.sort_unstable();
    section(
        &mut out,
        "Subcommands, use 'deis help [subcommand]' to learn more:",
        &topics,
    );
    section(
        &mut out,
        "Shortcut commands, use 'deis shortcuts' to see all:",
        MAIN_SHORTCUTS,
    );
    out.push_str(
        "Use 'git push deis master' to deploy to an application.\n\
         Any other command `deis foo[:bar]` runs the plugin `deis-foo` from PATH.\n",
    );
    out
}

/// Topic names known to the command line (`apps`, `auth`, …).
fn is_topic(name: &str) -> bool {
    TOPICS.iter().any(|(t, _)| *t == name)
}

/// `deis help <topic>`: the topic's commands with their summaries.
pub(crate) fn topic(name: &str) -> Option<String> {
    if !is_topic(name) {
        return None;
    }
    let command = Cli::command();
    let prefix = format!("{name}:");
    let rows: BTreeMap<String, String> = command
        .get_subcommands()
        .filter(|c| c.get_name().starts_with(&prefix))
        .map(|c| {
            (
                c.get_name().to_owned(),
                c.get_about().map(|a| a.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let width = rows.keys().map(String::len).max().unwrap_or(0) + 4;
    let mut out = format!("Valid commands for {name}:\n\n");
    for (command, about) in &rows {
        out.push_str(&format!("{command:<width$}{about}\n"));
    }
    out.push_str("\nUse 'deis help [command]' to learn more.\n");
    Some(out)
}

/// The shortcut table for `shortcuts:list`.
pub(crate) fn shortcuts() -> String {
    let width = SHORTCUTS.iter().map(|(s, _)| s.len()).max().unwrap_or(0) + 1;
    let mut out = String::from("Valid shortcuts:\n\n");
    for (short, long) in SHORTCUTS {
        out.push_str(&format!("{short:<width$}-> {long}\n"));
    }
    out.push_str("\nUse 'deis help [command]' to learn more.\n");
    out
}

/// What to do with the raw arguments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Print this help text and exit successfully.
    Print(String),
    /// Hand these arguments to clap.
    Parse(Vec<OsString>),
}

/// Routes `help`, `-h/--help`, `-v/--version` and bare topics the way Deis
/// does, leaving everything else to clap.
pub(crate) fn plan(args: Vec<OsString>) -> Plan {
    let text: Vec<Option<&str>> = args.iter().map(|a| a.to_str()).collect();
    // Skip leading global options to find the command word.
    let mut index = 0;
    while let Some(Some(arg)) = text.get(index) {
        match *arg {
            "--json" => index += 1,
            "-c" | "--config" => index += 2,
            a if a.starts_with("--config=") || (a.starts_with("-c") && a.len() > 2) => index += 1,
            _ => break,
        }
    }
    let before = || args[..index.min(args.len())].to_vec();
    let word = text.get(index).copied().flatten();
    let rest = || {
        args.get(index + 1..)
            .map(<[OsString]>::to_vec)
            .unwrap_or_default()
    };
    match word {
        None if index >= args.len() => Plan::Print(overview()),
        Some("help" | "-h" | "--help") => match text.get(index + 1).copied().flatten() {
            None => Plan::Print(overview()),
            Some(name) => match topic_help_for(name) {
                Some(help) => Plan::Print(help),
                None => Plan::Parse([before(), vec![name.into(), "--help".into()]].concat()),
            },
        },
        Some("-v" | "--version") => Plan::Parse([before(), vec!["version".into()], rest()].concat()),
        Some(name) if is_topic(name) => {
            let rest_text: Vec<Option<&str>> = text[index + 1..]
                .iter()
                .copied()
                .take_while(|a| *a != Some("--"))
                .collect();
            let wants_help = rest_text.iter().any(|a| matches!(a, Some("-h" | "--help")));
            if wants_help || (rest_text.is_empty() && !resolves(name)) {
                Plan::Print(topic(name).unwrap_or_else(overview))
            } else {
                Plan::Parse(args)
            }
        }
        _ => Plan::Parse(args),
    }
}

/// Topic help for `deis help <name>`, if `<name>` is a topic rather than a command.
fn topic_help_for(name: &str) -> Option<String> {
    topic(name)
}

/// Whether clap knows `name` as a command or alias (a bare topic such as
/// `apps` is an alias of `apps:list`; `auth` and `git` are not).
fn resolves(name: &str) -> bool {
    Cli::command().find_subcommand(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn printed(plan: Plan) -> String {
        match plan {
            Plan::Print(text) => text,
            Plan::Parse(args) => panic!("expected help, got parse of {args:?}"),
        }
    }

    #[test]
    fn every_shortcut_resolves_to_its_command() {
        let command = Cli::command();
        for (short, long) in SHORTCUTS {
            let resolved = command.find_subcommand(short).map(|c| c.get_name().to_owned());
            assert_eq!(resolved.as_deref(), Some(*long), "shortcut {short}");
        }
    }

    #[test]
    fn bare_topics_resolve_to_their_list_or_info() {
        let command = Cli::command();
        for (topic, _) in TOPICS {
            let resolved = command.find_subcommand(topic).map(|c| c.get_name().to_owned());
            match *topic {
                "auth" | "git" => assert_eq!(resolved, None, "{topic}"),
                "maintenance" | "routing" | "tls" => assert_eq!(resolved, Some(format!("{topic}:info"))),
                _ => assert_eq!(resolved, Some(format!("{topic}:list")), "{topic}"),
            }
        }
    }

    #[test]
    fn every_command_belongs_to_a_topic_and_has_a_summary() {
        for command in Cli::command().get_subcommands() {
            let name = command.get_name();
            let topic = name.split(':').next().unwrap_or(name);
            assert!(is_topic(topic) || name == "version", "{name} has no topic");
            assert!(command.get_about().is_some(), "{name} has no summary");
        }
    }

    #[test]
    fn help_routing() {
        assert!(printed(plan(args(&[]))).contains("Usage: deis <command>"));
        assert!(printed(plan(args(&["--help"]))).contains("Subcommands"));
        assert!(printed(plan(args(&["help"]))).contains("Shortcut commands"));
        assert!(printed(plan(args(&["help", "apps"]))).contains("apps:create"));
        assert!(printed(plan(args(&["apps", "--help"]))).contains("apps:destroy"));
        assert!(printed(plan(args(&["auth"]))).contains("auth:login"));
        assert!(printed(plan(args(&["--json", "-c", "x", "help", "config"]))).contains("config:push"));
        assert_eq!(
            plan(args(&["help", "apps:create"])),
            Plan::Parse(args(&["apps:create", "--help"]))
        );
        assert_eq!(
            plan(args(&["-c", "p", "-h", "create"])),
            Plan::Parse(args(&["-c", "p", "create", "--help"]))
        );
        assert_eq!(plan(args(&["-v"])), Plan::Parse(args(&["version"])));
        assert_eq!(plan(args(&["apps"])), Plan::Parse(args(&["apps"])));
        assert_eq!(
            plan(args(&["apps:run", "--", "ls", "--help"])),
            Plan::Parse(args(&["apps:run", "--", "ls", "--help"]))
        );
    }

    #[test]
    fn topic_help_lists_only_that_topic() {
        let help = topic("ps").unwrap_or_default();
        assert!(
            help.contains("ps:scale") && help.contains("ps:restart") && help.contains("ps:list"),
            "{help}"
        );
        assert!(!help.contains("apps:"), "{help}");
        assert_eq!(topic("nope"), None);
    }
}
