//! `labels:*`: informational labels of an app (never sent to Kubernetes).

use std::collections::HashMap;

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::UpdateAppSettingsRequest;

use super::settings;
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::output::sorted;
use crate::pb;
use crate::validate;

/// `labels:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List labels of an app
    #[command(name = "labels:list", alias = "labels")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set labels of an app
    #[command(name = "labels:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// Labels, e.g. team=frontend
        #[arg(value_name = "KEY=VALUE", required = true)]
        labels: Vec<String>,
    },
    /// Unset labels of an app
    #[command(name = "labels:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Labels to remove
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
}

/// Runs a `labels:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            let current = settings::get(&s, &app).await?;
            if ctx.out.json_mode() {
                return ctx.out.json_value(&crate::output::to_json(&current)?["label"]);
            }
            print_labels(ctx, &app.name, &current.label);
            Ok(())
        }
        Cmd::Set { app, labels } => {
            let parsed = labels
                .iter()
                .map(|l| validate::label(l))
                .collect::<Result<Vec<_>>>()?;
            let app = s.app(app.get())?;
            let label = format!("Applying labels on {}...", app.name);
            let change = UpdateAppSettingsRequest {
                label: pb::set_map(parsed),
                ..Default::default()
            };
            settings::update(ctx, &s, &app, &label, change).await.map(drop)
        }
        Cmd::Unset { app, keys } => {
            let app = s.app(app.get())?;
            let label = format!("Removing labels on {}...", app.name);
            let change = UpdateAppSettingsRequest {
                label: pb::unset_map(keys),
                ..Default::default()
            };
            settings::update(ctx, &s, &app, &label, change).await.map(drop)
        }
    }
}

/// Prints `=== <app> Label` and the labels (also used by `apps:info`).
pub(crate) fn print_labels(ctx: &Ctx, app: &str, labels: &HashMap<String, String>) {
    ctx.out.header(format!("{app} Label"));
    if labels.is_empty() {
        ctx.out.line("No labels found.");
    } else {
        ctx.out.line(
            ctx.out.kv_table(
                sorted(labels)
                    .into_iter()
                    .map(|(k, v)| (format!("{k}:"), v.clone())),
            ),
        );
    }
}
