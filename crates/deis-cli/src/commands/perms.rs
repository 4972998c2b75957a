//! `perms:*` (and the `sharing` shortcuts): collaborators and administrators.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{
    GrantAdminRequest, GrantAppPermRequest, ListAdminsRequest, ListAppPermsRequest, RevokeAdminRequest,
    RevokeAppPermRequest,
};

use crate::cli::{AppArg, LimitArg};
use crate::context::{Ctx, call, call_app};

/// `perms:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the collaborators of an app, or the administrators
    #[command(name = "perms:list", aliases = ["perms", "sharing"], visible_alias = "sharing:list")]
    List {
        #[command(flatten)]
        app: AppArg,
        /// List administrators instead
        #[arg(long, conflicts_with = "app")]
        admin: bool,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Make a user a collaborator on an app, or an administrator
    #[command(name = "perms:create", visible_alias = "sharing:add")]
    Create {
        /// The user
        username: String,
        #[command(flatten)]
        app: AppArg,
        /// Make the user an administrator
        #[arg(long, conflicts_with = "app")]
        admin: bool,
    },
    /// Remove a collaborator from an app, or an administrator
    #[command(name = "perms:delete", visible_alias = "sharing:remove")]
    Delete {
        /// The user
        username: String,
        #[command(flatten)]
        app: AppArg,
        /// Take administrator rights away
        #[arg(long, conflicts_with = "app")]
        admin: bool,
    },
}

/// Runs a `perms:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List {
            admin: true, limit, ..
        } => {
            let page = call(s.client().await?.users().list_admins(ListAdminsRequest {
                limit: s.limit(limit.limit),
                offset: 0,
            }))
            .await?;
            let lines = page.results.iter().map(|admin| admin.username.clone()).collect();
            ctx.out.page(&page, "Administrators", page.count, lines)
        }
        Cmd::List { app, .. } => {
            let app = s.app(app.get())?;
            let perms = call_app(
                &app,
                s.client().await?.perms().list_app_perms(ListAppPermsRequest {
                    app: app.name.clone(),
                }),
            )
            .await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&perms);
            }
            ctx.out.header(format!("{}'s Users", app.name));
            for user in &perms.users {
                ctx.out.line(user);
            }
            Ok(())
        }
        Cmd::Create {
            username,
            admin: true,
            ..
        } => {
            let label = format!("Adding {username} to system administrators...");
            ctx.out
                .step(
                    &label,
                    call(
                        s.client()
                            .await?
                            .users()
                            .grant_admin(GrantAdminRequest { username }),
                    ),
                )
                .await?;
            Ok(())
        }
        Cmd::Create { username, app, .. } => {
            let app = s.app(app.get())?;
            let label = format!("Adding {username} to {} collaborators...", app.name);
            let request = GrantAppPermRequest {
                app: app.name.clone(),
                username,
            };
            ctx.out
                .step(
                    &label,
                    call_app(&app, s.client().await?.perms().grant_app_perm(request)),
                )
                .await?;
            Ok(())
        }
        Cmd::Delete {
            username,
            admin: true,
            ..
        } => {
            let label = format!("Removing {username} from system administrators...");
            ctx.out
                .step(
                    &label,
                    call(
                        s.client()
                            .await?
                            .users()
                            .revoke_admin(RevokeAdminRequest { username }),
                    ),
                )
                .await?;
            Ok(())
        }
        Cmd::Delete { username, app, .. } => {
            let app = s.app(app.get())?;
            let label = format!("Removing {username} from {} collaborators...", app.name);
            let request = RevokeAppPermRequest {
                app: app.name.clone(),
                username,
            };
            ctx.out
                .step(
                    &label,
                    call_app(&app, s.client().await?.perms().revoke_app_perm(request)),
                )
                .await?;
            Ok(())
        }
    }
}
