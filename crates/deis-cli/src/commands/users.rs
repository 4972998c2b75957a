//! `users:list`: every user (administrators only).

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::ListUsersRequest;

use crate::cli::LimitArg;
use crate::context::{Ctx, call};

/// `users:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List users (administrators only); administrators are marked with *
    #[command(name = "users:list", alias = "users")]
    List {
        #[command(flatten)]
        limit: LimitArg,
    },
}

/// Runs a `users:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let Cmd::List { limit } = cmd;
    let page = call(s.client().await?.users().list_users(ListUsersRequest {
        limit: s.limit(limit.limit),
        offset: 0,
    }))
    .await?;
    let lines = page
        .results
        .iter()
        .map(|user| format!("{}{}", if user.is_superuser { "*" } else { "" }, user.username))
        .collect();
    ctx.out.page(&page, "Users (*=admin)", page.count, lines)
}
