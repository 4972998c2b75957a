//! `git:*`: the local git remote of an app (no controller call needed).

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::cli::AppArg;
use crate::context::Ctx;
use crate::git::{self as repo, Builder};

/// `git:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Add the git remote of an application
    #[command(name = "git:remote")]
    Remote {
        #[command(flatten)]
        app: AppArg,
        /// The name of the git remote
        #[arg(short = 'r', long, value_name = "REMOTE", default_value = "deis")]
        remote: String,
        /// Overwrite a remote of that name pointing elsewhere
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove every git remote of an application
    #[command(name = "git:remove")]
    Remove {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `git:*` command.
pub(crate) fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let profile = ctx.load_profile()?;
    let builder = Builder::from_profile(&profile);
    match cmd {
        Cmd::Remote { app, remote, force } => {
            let app = repo::detect_app(app.get(), &builder)?;
            add_app_remote(ctx, &builder, &app.name, &remote, force, false)
        }
        Cmd::Remove { app } => {
            let app = repo::detect_app(app.get(), &builder)?;
            repo::remove_app_remotes(&builder, &app.name)?;
            ctx.out.say(format!("Git remotes for app {} removed.", app.name));
            Ok(())
        }
    }
}

/// Adds remote `remote` for `app`. An identical remote is fine; a different
/// one is replaced only with `force`. After `apps:create` (`after_create`),
/// a directory that is not a repository only earns a notice: the app exists
/// and the remote can be added later.
pub(crate) fn add_app_remote(
    ctx: &Ctx,
    builder: &Builder,
    app: &str,
    remote: &str,
    force: bool,
    after_create: bool,
) -> Result<()> {
    let expected = builder.repo_url(app);
    match repo::remote_url(remote) {
        Some(url) if url == expected => {
            ctx.out.say(format!(
                "Remote {remote} already exists and is correctly configured for app {app}."
            ));
            return Ok(());
        }
        Some(_) if force => {
            ctx.out.say(format!("Deleting git remote {remote}."));
            repo::remove_remote(remote)?;
        }
        Some(url) if after_create => bail!(
            "A git remote with the name {remote} already exists ({url}). To overwrite this remote run:\ndeis git:remote --force --remote {remote} --app {app}"
        ),
        Some(url) => bail!(
            "Remote {remote} already exists, please run 'deis git:remote -f' to overwrite\nExisting remote URL: {url}\nWhen forced, will overwrite with: {expected}"
        ),
        None => {}
    }
    match repo::add_remote(remote, &expected) {
        Ok(()) => {
            ctx.out
                .say(format!("Git remote {remote} successfully created for app {app}."));
            Ok(())
        }
        Err(err) if after_create && err.to_string().contains("not a git repository") => {
            ctx.out.note(format!(
                "Not in a git repository, so no git remote was added; run `deis git:remote -a {app}` inside the app's repository."
            ));
            Ok(())
        }
        Err(err) => Err(err),
    }
}
