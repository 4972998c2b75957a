//! `version`: the client's version, and with --all the platform's.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::GetPlatformInfoRequest;
use serde_json::json;

use crate::context::{Ctx, call};

/// This client's version.
pub(crate) const CLIENT_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// `version`.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Display the client version
    #[command(name = "version")]
    Version {
        /// Also show the platform and API versions of the controller
        #[arg(short = 'a', long)]
        all: bool,
    },
}

/// Runs `version`.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let Cmd::Version { all } = cmd;
    if !all {
        if ctx.out.json_mode() {
            return ctx.out.json_value(&json!({ "client_version": CLIENT_VERSION }));
        }
        ctx.out.line(CLIENT_VERSION);
        return Ok(());
    }
    let profile = ctx.load_profile()?;
    // The platform answers this without a token; only its address is needed.
    let client = ctx.connect(&profile.controller, None, profile.ssl_verify).await?;
    let info = call(client.platform().get_platform_info(GetPlatformInfoRequest {})).await?;
    if ctx.out.json_mode() {
        let mut value = crate::output::to_json(&info)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("client_version".into(), json!(CLIENT_VERSION));
        }
        return ctx.out.json_value(&value);
    }
    ctx.out.line(ctx.out.kv_table([
        ("Client version:".to_owned(), CLIENT_VERSION.to_owned()),
        ("Platform version:".to_owned(), info.platform_version),
        ("API version:".to_owned(), info.api_version),
        ("Controller:".to_owned(), client.url().to_string()),
    ]));
    Ok(())
}
