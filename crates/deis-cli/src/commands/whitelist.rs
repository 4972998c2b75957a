//! `whitelist:*`: the addresses allowed to reach an app.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{AddWhitelistRequest, ListWhitelistRequest, RemoveWhitelistRequest};

use crate::cli::AppArg;
use crate::context::{Ctx, call_app};
use crate::validate;

/// `whitelist:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the whitelisted addresses of an app (everyone when empty)
    #[command(name = "whitelist:list", alias = "whitelist")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Add addresses to the whitelist of an app
    #[command(name = "whitelist:add")]
    Add {
        #[command(flatten)]
        app: AppArg,
        /// IP addresses or CIDR networks, separated by commas
        #[arg(value_name = "ADDRESSES")]
        addresses: String,
    },
    /// Remove addresses from the whitelist of an app
    #[command(name = "whitelist:remove")]
    Remove {
        #[command(flatten)]
        app: AppArg,
        /// IP addresses or CIDR networks, separated by commas
        #[arg(value_name = "ADDRESSES")]
        addresses: String,
    },
}

/// Runs a `whitelist:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            let list = call_app(
                &app,
                s.client().await?.settings().list_whitelist(ListWhitelistRequest {
                    app: app.name.clone(),
                }),
            )
            .await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&list);
            }
            ctx.out.header(format!("{} Whitelisted Addresses", app.name));
            for address in &list.addresses {
                ctx.out.line(address);
            }
            Ok(())
        }
        Cmd::Add { app, addresses } => {
            let list = validate::addresses(&addresses)?;
            let app = s.app(app.get())?;
            let label = format!("Adding {addresses} to {} whitelist...", app.name);
            let request = AddWhitelistRequest {
                app: app.name.clone(),
                addresses: list,
            };
            let result = ctx
                .out
                .step(
                    &label,
                    call_app(&app, s.client().await?.settings().add_whitelist(request)),
                )
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&result)?;
            }
            Ok(())
        }
        Cmd::Remove { app, addresses } => {
            let list = validate::addresses(&addresses)?;
            let app = s.app(app.get())?;
            let label = format!("Removing {addresses} from {} whitelist...", app.name);
            let request = RemoveWhitelistRequest {
                app: app.name.clone(),
                addresses: list,
            };
            ctx.out
                .step(
                    &label,
                    call_app(&app, s.client().await?.settings().remove_whitelist(request)),
                )
                .await?;
            Ok(())
        }
    }
}
