//! `builds:*`: builds of an app, and deploying an image (`deis pull`).

use std::fs;
use std::io;

use anyhow::{Context, Result};
use clap::Subcommand;
use deis_client::v2::{CreateBuildRequest, ListBuildsRequest};

use crate::cli::{AppArg, LimitArg};
use crate::context::{Ctx, call_app};
use crate::output;
use crate::procfile;

/// `builds:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the builds of an app
    #[command(name = "builds:list", alias = "builds")]
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Deploy a Docker image as a new release
    ///
    /// The process types come from --procfile, else from ./Procfile when it
    /// exists ("type: command" lines); without either the image runs as the
    /// 'cmd' process.
    #[command(name = "builds:create", visible_alias = "pull")]
    Create {
        #[command(flatten)]
        app: AppArg,
        /// The image, e.g. deis/example-go:latest or registry.example.com/team/app:v2
        image: String,
        /// A Procfile as YAML text, e.g. "web: ./server"
        #[arg(short = 'p', long, value_name = "YAML")]
        procfile: Option<String>,
    },
}

/// Runs a `builds:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app, limit } => {
            let app = s.app(app.get())?;
            let request = ListBuildsRequest {
                app: app.name.clone(),
                limit: s.limit(limit.limit),
                offset: 0,
            };
            let page = call_app(&app, s.client().await?.builds().list_builds(request)).await?;
            let lines = page
                .results
                .iter()
                .map(|build| format!("{} {}", build.uuid, output::time(build.created.as_ref())))
                .collect();
            ctx.out
                .page(&page, format!("{} Builds", app.name), page.count, lines)
        }
        Cmd::Create { app, image, procfile } => {
            let text = match procfile {
                Some(text) => Some(text),
                None => match fs::read_to_string("Procfile") {
                    Ok(text) => Some(text),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => None,
                    Err(err) => return Err(err).context("cannot read ./Procfile"),
                },
            };
            let procfile = text
                .as_deref()
                .map(procfile::parse)
                .transpose()
                .context("invalid Procfile")?;
            let app = s.app(app.get())?;
            let label = "Creating build...";
            let request = CreateBuildRequest {
                app: app.name.clone(),
                image,
                procfile: procfile.unwrap_or_default().into_iter().collect(),
                ..Default::default()
            };
            let build = ctx
                .out
                .step(
                    label,
                    call_app(&app, s.client().await?.builds().create_build(request)),
                )
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&build.build.unwrap_or_default())?;
            } else {
                ctx.out
                    .say(format!("Released {} v{}\n", app.name, build.release_version));
            }
            Ok(())
        }
    }
}
