//! `releases:*`: history, details and rollback.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{GetReleaseRequest, ListReleasesRequest, RollbackReleaseRequest};

use crate::cli::{AppArg, LimitArg};
use crate::context::{Ctx, call_app};
use crate::output;
use crate::validate;

/// `releases:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the releases of an app
    #[command(name = "releases:list", alias = "releases")]
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Show a release
    #[command(name = "releases:info")]
    Info {
        #[command(flatten)]
        app: AppArg,
        /// The release, e.g. v3
        #[arg(value_name = "VERSION")]
        version: String,
    },
    /// Roll back to a previous release
    ///
    /// Creates a new release with the build and config of the given release,
    /// by default the one before the current release.
    #[command(name = "releases:rollback", visible_alias = "rollback")]
    Rollback {
        #[command(flatten)]
        app: AppArg,
        /// The release to roll back to, e.g. v3 [default: the previous one]
        #[arg(value_name = "VERSION")]
        version: Option<String>,
    },
}

/// Runs a `releases:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app, limit } => {
            let app = s.app(app.get())?;
            let request = ListReleasesRequest {
                app: app.name.clone(),
                limit: s.limit(limit.limit),
                offset: 0,
            };
            let page = call_app(&app, s.client().await?.releases().list_releases(request)).await?;
            let lines = page
                .results
                .iter()
                .map(|release| {
                    format!(
                        "v{}\t{}\t{}",
                        release.version,
                        output::time(release.created.as_ref()),
                        release.summary
                    )
                })
                .collect();
            ctx.out
                .page(&page, format!("{} Releases", app.name), page.count, lines)
        }
        Cmd::Info { app, version } => {
            let number = validate::release_version(&version)?;
            let app = s.app(app.get())?;
            let request = GetReleaseRequest {
                app: app.name.clone(),
                version: format!("v{number}"),
            };
            let release = call_app(&app, s.client().await?.releases().get_release(request))
                .await?
                .release
                .unwrap_or_default();
            if ctx.out.json_mode() {
                return ctx.out.json(&release);
            }
            ctx.out.header(format!("{} Release v{number}", app.name));
            let mut rows = Vec::new();
            if let Some(build) = &release.build {
                rows.push(("build:", build.clone()));
            }
            rows.extend([
                ("config:", release.config.clone()),
                ("owner:", release.owner.clone()),
                ("created:", output::time(release.created.as_ref())),
                ("summary:", release.summary.clone()),
                ("updated:", output::time(release.updated.as_ref())),
                ("uuid:", release.uuid.clone()),
                ("failed:", release.failed.to_string()),
            ]);
            ctx.out
                .line(ctx.out.kv_table(rows.into_iter().map(|(k, v)| (k.to_owned(), v))));
            Ok(())
        }
        Cmd::Rollback { app, version } => {
            let version = version.as_deref().map(validate::release_version).transpose()?;
            let app = s.app(app.get())?;
            let label = match version {
                Some(v) => format!("Rolling back to v{v}..."),
                None => "Rolling back one release...".to_owned(),
            };
            let request = RollbackReleaseRequest {
                app: app.name.clone(),
                version,
            };
            let result = ctx
                .out
                .progress(
                    &label,
                    call_app(&app, s.client().await?.releases().rollback_release(request)),
                )
                .await?;
            ctx.out.say(format!("{label} done, v{}", result.version));
            if ctx.out.json_mode() {
                ctx.out.json(&result)?;
            }
            Ok(())
        }
    }
}
