//! `tags:*`: node selectors for all processes of an app.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{Config, SetConfigRequest};

use super::config;
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::output::sorted;
use crate::pb;
use crate::validate;

/// `tags:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List tags for an app
    #[command(name = "tags:list", alias = "tags")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set tags for an app
    ///
    /// Processes only run on nodes that carry every tag (Kubernetes node
    /// labels). Setting tags creates a new release.
    #[command(name = "tags:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// Tags, e.g. environment=production
        #[arg(value_name = "KEY=VALUE", required = true)]
        tags: Vec<String>,
    },
    /// Unset tags for an app
    #[command(name = "tags:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Tags to remove
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// Runs a `tags:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, tags) = match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            return print(ctx, &app.name, &config::get(&s, &app).await?);
        }
        Cmd::Set { app, tags } => {
            let parsed = tags
                .iter()
                .map(|t| validate::tag(t))
                .collect::<Result<Vec<_>>>()?;
            (app, pb::set_map(parsed))
        }
        Cmd::Unset { app, keys } => (app, pb::unset_map(keys)),
    };
    let app = s.app(app.get())?;
    let label = "Applying tags...";
    let config = config::apply(
        ctx,
        &s,
        &app,
        label,
        SetConfigRequest {
            tags,
            ..Default::default()
        },
    )
    .await?;
    print(ctx, &app.name, &config)
}

fn print(ctx: &Ctx, app: &str, config: &Config) -> Result<()> {
    if ctx.out.json_mode() {
        return ctx.out.json_value(&crate::output::to_json(config)?["tags"]);
    }
    ctx.out.header(format!("{app} Tags"));
    if !config.tags.is_empty() {
        ctx.out.line(
            ctx.out.kv_table(
                sorted(&config.tags)
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            ),
        );
    }
    Ok(())
}
