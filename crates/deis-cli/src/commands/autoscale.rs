//! `autoscale:*`: horizontal pod autoscaling per process type.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::UpdateAppSettingsRequest;
use serde_json::{Map, Value as Json, json};

use super::settings;
use crate::cli::AppArg;
use crate::context::{Ctx, Session};
use crate::output::sorted;
use crate::pb;
use crate::validate;

/// `autoscale:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List autoscale settings of an app
    #[command(name = "autoscale:list", alias = "autoscale")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn on autoscaling for a process type
    #[command(name = "autoscale:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// The process type to autoscale
        #[arg(value_name = "PROCESS_TYPE")]
        proc_type: String,
        /// Minimum number of processes to keep
        #[arg(long, value_name = "N")]
        min: i32,
        /// Maximum number of processes to scale up to
        #[arg(long, value_name = "N")]
        max: i32,
        /// Target CPU utilization, in percent of the CPU request
        #[arg(long = "cpu-percent", value_name = "PERCENT")]
        cpu_percent: i32,
    },
    /// Turn off autoscaling for a process type
    #[command(name = "autoscale:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// The process type
        #[arg(value_name = "PROCESS_TYPE")]
        proc_type: String,
    },
}

/// Runs an `autoscale:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, label, entry, proc_type) = match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            let current = settings::get(&s, &app).await?;
            if ctx.out.json_mode() {
                return ctx
                    .out
                    .json_value(&crate::output::to_json(&current)?["autoscale"]);
            }
            ctx.out.header(format!("{} Autoscale", app.name));
            ctx.out.blank();
            if current.autoscale.is_empty() {
                ctx.out.line("No autoscale rules found.");
            }
            for (proc_type, rule) in sorted(&current.autoscale) {
                ctx.out.line(format!("--- {proc_type}:"));
                ctx.out.line(format!(
                    "Min Replicas: {}\nMax Replicas: {}\nCPU: {}%",
                    rule.min, rule.max, rule.cpu_percent
                ));
            }
            if !current.autoscale.is_empty() {
                note_if_not_applied(ctx, &s).await;
            }
            return Ok(());
        }
        Cmd::Set {
            app,
            proc_type,
            min,
            max,
            cpu_percent,
        } => {
            validate::proc_type(&proc_type)?;
            validate::autoscale(min, max, cpu_percent)?;
            let label = format!("Applying autoscale settings for process type {proc_type} on");
            (
                app,
                label,
                json!({ "min": min, "max": max, "cpu_percent": cpu_percent }),
                proc_type,
            )
        }
        Cmd::Unset { app, proc_type } => {
            validate::proc_type(&proc_type)?;
            (
                app,
                format!("Removing autoscale for process type {proc_type} on"),
                Json::Null,
                proc_type,
            )
        }
    };
    let app = s.app(app.get())?;
    let mut fields = Map::new();
    fields.insert(proc_type, entry);
    let change = UpdateAppSettingsRequest {
        autoscale: Some(pb::struct_from_json(fields)),
        ..Default::default()
    };
    let updated = settings::update(ctx, &s, &app, &format!("{label} {}...", app.name), change).await?;
    if !updated.autoscale.is_empty() {
        note_if_not_applied(ctx, &s).await;
    }
    Ok(())
}

/// Says so when the platform's runtime records autoscale rules without
/// applying them (processes on one machine), as `limits` does for limits.
async fn note_if_not_applied(ctx: &Ctx, s: &Session) {
    if s.platform_info()
        .await
        .is_some_and(|info| info.autoscaling == "not-enforced")
    {
        ctx.out.say(NOT_APPLIED);
    }
}

const NOT_APPLIED: &str = "Note: autoscale rules are recorded but not applied by this platform's runtime; they take effect on Kubernetes (--runtime kubernetes).";
