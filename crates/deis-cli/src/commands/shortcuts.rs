//! `shortcuts:list`: the shortcut table.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Map, Value};

use crate::context::Ctx;
use crate::help;

/// `shortcuts:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Show valid shortcuts for commands
    #[command(name = "shortcuts:list", alias = "shortcuts")]
    List,
}

/// Runs `shortcuts:list` (no controller needed).
pub(crate) fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let Cmd::List = cmd;
    if ctx.out.json_mode() {
        let map: Map<String, Value> = help::SHORTCUTS
            .iter()
            .map(|(s, l)| ((*s).to_owned(), Value::String((*l).to_owned())))
            .collect();
        return ctx.out.json_value(&Value::Object(map));
    }
    ctx.out.text(&help::shortcuts());
    Ok(())
}
