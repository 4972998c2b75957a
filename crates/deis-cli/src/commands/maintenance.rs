//! `maintenance:*`: the router answers 503 with a static page while on.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::UpdateAppSettingsRequest;
use serde_json::json;

use super::settings;
use crate::cli::AppArg;
use crate::context::Ctx;

/// `maintenance:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show whether maintenance mode is on
    #[command(name = "maintenance:info", alias = "maintenance")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn maintenance mode on
    #[command(name = "maintenance:on")]
    On {
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn maintenance mode off
    #[command(name = "maintenance:off")]
    Off {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `maintenance:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, on) = match cmd {
        Cmd::Info { app } => {
            let app = s.app(app.get())?;
            let current = settings::get(&s, &app).await?;
            if ctx.out.json_mode() {
                return ctx.out.json_value(&json!({ "maintenance": current.maintenance }));
            }
            ctx.out.line(if current.maintenance {
                "Maintenance mode is on."
            } else {
                "Maintenance mode is off."
            });
            return Ok(());
        }
        Cmd::On { app } => (app, true),
        Cmd::Off { app } => (app, false),
    };
    let app = s.app(app.get())?;
    let label = format!(
        "{} maintenance mode for {}...",
        if on { "Enabling" } else { "Disabling" },
        app.name
    );
    let change = UpdateAppSettingsRequest {
        maintenance: Some(on),
        ..Default::default()
    };
    settings::update(ctx, &s, &app, &label, change).await.map(drop)
}
