//! Plugins: an unknown `deis foo[:bar] args…` runs `deis-foo [bar] args…`
//! found on PATH, like git's and Deis's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, anyhow, bail};

use crate::context::Ctx;
use crate::help;

/// Finds and runs the plugin; its exit code becomes ours.
pub(crate) fn run(ctx: &Ctx, args: Vec<OsString>) -> Result<()> {
    let mut args = args.into_iter();
    let name = args.next().unwrap_or_default();
    let name = name
        .to_str()
        .ok_or_else(|| anyhow!("command names must be valid UTF-8"))?
        .to_owned();
    let (topic, sub) = match name.split_once(':') {
        Some((topic, sub)) => (topic.to_owned(), Some(sub.to_owned())),
        None => (name.clone(), None),
    };
    let program = format!("deis-{topic}");
    let Some(path) = find_on_path(&program) else {
        if help::topic(&topic).is_some() {
            bail!("'{name}' is not a deis command. See 'deis help {topic}'.");
        }
        bail!("'{name}' is not a deis command. See 'deis help'.");
    };
    let mut command = Command::new(&path);
    command.args(sub.into_iter().map(OsString::from).chain(args));
    if let Some(selector) = &ctx.profile_selector {
        // The plugin sees the same profile as a -c given to us.
        command.env("DEIS_PROFILE", selector);
    }
    exec(command, &program)
}

#[cfg(unix)]
fn exec(mut command: Command, program: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    command.arg0(program);
    // `exec` only returns on failure.
    let err = command.exec();
    Err(anyhow!("cannot run {program}: {err}"))
}

#[cfg(not(unix))]
fn exec(mut command: Command, program: &str) -> Result<()> {
    let status = command
        .status()
        .map_err(|err| anyhow!("cannot run {program}: {err}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(super::Exit(u8::try_from(code).unwrap_or(1)).into()),
        None => Err(super::Exit(1).into()),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
