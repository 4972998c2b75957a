//! `routing:*`: whether the router sends traffic to the app.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::UpdateAppSettingsRequest;
use serde_json::json;

use super::settings;
use crate::cli::AppArg;
use crate::context::Ctx;

/// `routing:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show whether the app is routable
    #[command(name = "routing:info", alias = "routing")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Make the app reachable through the router
    #[command(name = "routing:enable")]
    Enable {
        #[command(flatten)]
        app: AppArg,
    },
    /// Take the app out of the router (internal apps)
    #[command(name = "routing:disable")]
    Disable {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `routing:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, on) = match cmd {
        Cmd::Info { app } => {
            let app = s.app(app.get())?;
            let current = settings::get(&s, &app).await?;
            if ctx.out.json_mode() {
                return ctx.out.json_value(&json!({ "routable": current.routable }));
            }
            ctx.out.line(if current.routable {
                "Routing is enabled."
            } else {
                "Routing is disabled."
            });
            return Ok(());
        }
        Cmd::Enable { app } => (app, true),
        Cmd::Disable { app } => (app, false),
    };
    let app = s.app(app.get())?;
    let label = format!(
        "{} routing for {}...",
        if on { "Enabling" } else { "Disabling" },
        app.name
    );
    let change = UpdateAppSettingsRequest {
        routable: Some(on),
        ..Default::default()
    };
    settings::update(ctx, &s, &app, &label, change).await.map(drop)
}
