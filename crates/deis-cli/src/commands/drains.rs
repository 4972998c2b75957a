//! `drains:*`: where an app's log lines are also sent.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{AddDrainRequest, ListDrainsRequest, RemoveDrainRequest};

use crate::cli::AppArg;
use crate::context::{Ctx, call_app};

/// `drains:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List an app's log drains and how their delivery is going
    #[command(name = "drains:list", alias = "drains")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Send an app's logs to a drain: syslog://host:port, syslog+tls://host:port or an https:// URL
    #[command(name = "drains:add")]
    Add {
        #[command(flatten)]
        app: AppArg,
        /// The drain's URL
        url: String,
    },
    /// Stop sending an app's logs to a drain
    #[command(name = "drains:remove")]
    Remove {
        #[command(flatten)]
        app: AppArg,
        /// The drain's URL or id
        drain: String,
    },
}

/// Runs a `drains:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            let request = ListDrainsRequest {
                app: app.name.clone(),
            };
            let list = call_app(&app, s.client().await?.drains().list_drains(request)).await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&list);
            }
            ctx.out.header(format!("{} Drains", app.name));
            if list.results.is_empty() {
                ctx.out.line("No drains; add one with `deis drains:add URL`.");
                return Ok(());
            }
            let rows = list
                .results
                .iter()
                .map(|d| {
                    let state = if d.healthy {
                        "delivering".to_owned()
                    } else if d.last_error.is_empty() {
                        "starting".to_owned()
                    } else {
                        format!("failing: {}", d.last_error)
                    };
                    vec![
                        d.url.clone(),
                        d.delivered.to_string(),
                        d.buffered.to_string(),
                        d.dropped.to_string(),
                        state,
                    ]
                })
                .collect();
            ctx.out.line(
                ctx.out
                    .table(&["URL", "DELIVERED", "BUFFERED", "DROPPED", "STATE"], rows),
            );
            Ok(())
        }
        Cmd::Add { app, url } => {
            let app = s.app(app.get())?;
            let label = format!("Adding a log drain to {}...", app.name);
            let request = AddDrainRequest {
                app: app.name.clone(),
                url,
            };
            let added = ctx
                .out
                .step(
                    &label,
                    call_app(&app, s.client().await?.drains().add_drain(request)),
                )
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&added.drain.unwrap_or_default())?;
            }
            Ok(())
        }
        Cmd::Remove { app, drain } => {
            let app = s.app(app.get())?;
            let label = format!("Removing the log drain from {}...", app.name);
            let request = RemoveDrainRequest {
                app: app.name.clone(),
                drain,
            };
            ctx.out
                .step(
                    &label,
                    call_app(&app, s.client().await?.drains().remove_drain(request)),
                )
                .await?;
            Ok(())
        }
    }
}
