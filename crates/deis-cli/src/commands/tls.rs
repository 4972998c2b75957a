//! `tls:*`: HTTP to HTTPS redirection at the router.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{GetTlsRequest, SetTlsRequest};

use crate::cli::AppArg;
use crate::context::{Ctx, call_app};

/// `tls:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show the TLS settings of an app
    #[command(name = "tls:info", alias = "tls")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Redirect HTTP requests to HTTPS
    #[command(name = "tls:enable")]
    Enable {
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop redirecting HTTP requests to HTTPS
    #[command(name = "tls:disable")]
    Disable {
        #[command(flatten)]
        app: AppArg,
    },
}

/// Runs a `tls:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, enforce) = match cmd {
        Cmd::Info { app } => {
            let app = s.app(app.get())?;
            let tls = call_app(
                &app,
                s.client().await?.settings().get_tls(GetTlsRequest {
                    app: app.name.clone(),
                }),
            )
            .await?
            .tls
            .unwrap_or_default();
            if ctx.out.json_mode() {
                return ctx.out.json(&tls);
            }
            ctx.out.header(format!("{} TLS", app.name));
            let state = tls
                .https_enforced
                .map_or_else(|| "not set".to_owned(), |b| b.to_string());
            ctx.out.line(format!("HTTPS Enforced: {state}"));
            return Ok(());
        }
        Cmd::Enable { app } => (app, true),
        Cmd::Disable { app } => (app, false),
    };
    let app = s.app(app.get())?;
    let label = format!(
        "{} https-only requests for {}...",
        if enforce { "Enabling" } else { "Disabling" },
        app.name
    );
    let request = SetTlsRequest {
        app: app.name.clone(),
        https_enforced: enforce,
    };
    let tls = ctx
        .out
        .step(
            &label,
            call_app(&app, s.client().await?.settings().set_tls(request)),
        )
        .await?
        .tls;
    if ctx.out.json_mode() {
        ctx.out.json(&tls.unwrap_or_default())?;
    }
    Ok(())
}
