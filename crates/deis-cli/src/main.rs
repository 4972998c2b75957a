//! `deis`: the command-line client of the platform.
//!
//! Errors end the process with `Error: <one sentence>` on stderr and exit
//! code 1; `apps:run` exits with the remote command's code instead.

mod cli;
mod commands;
mod context;
mod envfile;
mod git;
mod help;
mod output;
mod pb;
mod procfile;
mod profile;
mod prompt;
mod tty;
mod validate;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::commands::Exit;
use crate::context::Ctx;
use crate::help::Plan;
use crate::output::Output;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cli = match help::plan(args) {
        Plan::Print(text) => {
            Output::detect(false).text(&text);
            return ExitCode::SUCCESS;
        }
        Plan::Parse(args) => match parse(args.clone()) {
            Ok(mut cli) => {
                if let Command::Apps(cmd) = &mut cli.command {
                    commands::apps::mark_run_terminator(cmd, &args);
                }
                cli
            }
            Err(code) => return code,
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    let ctx = Ctx {
        profile_selector: cli.config.clone(),
        out: Output::detect(cli.json),
    };
    match runtime.block_on(commands::run(&ctx, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Exit>() {
            Some(Exit(code)) => ExitCode::from(*code),
            None => fail(&err),
        },
    }
}

/// Parses with clap; help and version requests print and succeed, usage
/// errors print one `Error:` sentence plus the usage line.
fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    // The subcommand, for the help pointer: the first word that is neither
    // a flag nor the profile given to `-c`/`--config`.
    let mut words = args.iter().filter_map(|arg| arg.to_str());
    let mut command = None;
    while let Some(word) = words.next() {
        match word {
            "-c" | "--config" => {
                words.next();
            }
            flag if flag.starts_with('-') => {}
            word => {
                command = Some(word.to_owned());
                break;
            }
        }
    }
    let argv = std::iter::once(OsString::from("deis")).chain(args);
    let result = Cli::command()
        .override_help(help::overview())
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    match result {
        Ok(cli) => Ok(cli),
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // Help goes to stdout; a closed pipe is not worth reporting.
            let _ = err.print();
            Err(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!(
                "Error: {}",
                usage_error(&err.render().to_string(), command.as_deref())
            );
            Err(ExitCode::FAILURE)
        }
    }
}

/// Condenses clap's multi-line error into `<sentence>\n<usage line>`, or,
/// where clap gives no usage (an invalid value), `<sentence>` and a pointer
/// to `command`'s help.
fn usage_error(rendered: &str, command: Option<&str>) -> String {
    let mut sentence = Vec::new();
    let mut usage = None;
    for line in rendered.lines() {
        let line = line.trim();
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_owned());
            break;
        }
        if line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() && !line.starts_with("tip:") {
            sentence.push(line.trim_start_matches("error:").trim().to_owned());
        }
    }
    let mut text = sentence.join(" ");
    if let Some(usage) = usage {
        let command = usage.split_whitespace().nth(1).unwrap_or("");
        text.push_str(&format!("\nUsage: {usage}\nSee 'deis help {command}'."));
    } else if let Some(command) = command {
        text = deis_client::terminate(&text);
        text.push_str(&format!("\nSee 'deis help {command}'."));
    }
    text
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {err:#}");
    ExitCode::FAILURE
}
