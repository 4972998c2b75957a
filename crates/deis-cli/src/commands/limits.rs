//! `limits:*`: memory and CPU limits per process type.

use std::collections::HashMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use deis_client::v2::{Config, SetConfigRequest};

use super::config;
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::output::sorted;
use crate::pb;
use crate::validate::{self, LimitKind};

/// `limits:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List resource limits for an app
    #[command(name = "limits:list", alias = "limits")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Set resource limits for an app
    ///
    /// Limits apply to each process of the type. Memory takes a unit, B, K, M
    /// or G (web=1G); CPU takes a number of CPUs or millicores (--cpu
    /// web=500m). Give request/limit to set both (web=256M/512M). Setting
    /// limits creates a new release.
    #[command(name = "limits:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        kind: KindArg,
        /// Limits by process type
        #[arg(value_name = "TYPE=LIMIT", required = true)]
        limits: Vec<String>,
    },
    /// Unset resource limits for an app
    #[command(name = "limits:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        kind: KindArg,
        /// Process types whose limit is removed
        #[arg(value_name = "TYPE", required = true)]
        types: Vec<String>,
    },
}

/// `--memory` (default) or `--cpu`.
#[derive(Args, Debug, Clone, Copy)]
pub(crate) struct KindArg {
    /// Limit memory (the default)
    #[arg(short = 'm', long, conflicts_with = "cpu")]
    memory: bool,
    /// Limit CPU
    #[arg(long)]
    cpu: bool,
}

impl KindArg {
    fn kind(self) -> LimitKind {
        if self.cpu {
            LimitKind::Cpu
        } else {
            LimitKind::Memory
        }
    }
}

/// Runs a `limits:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    let (app, change) = match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            let config = config::get(&s, &app).await?;
            return print(ctx, &app.name, &config);
        }
        Cmd::Set { app, kind, limits } => {
            let parsed = limits
                .iter()
                .map(|l| validate::limit(l, kind.kind()))
                .collect::<Result<Vec<_>>>()?;
            (app, change(kind.kind(), pb::set_map(parsed)))
        }
        Cmd::Unset { app, kind, types } => {
            types.iter().try_for_each(|t| validate::proc_type(t))?;
            (app, change(kind.kind(), pb::unset_map(types)))
        }
    };
    let app = s.app(app.get())?;
    let label = "Applying limits...";
    let config = config::apply(ctx, &s, &app, label, change).await?;
    print(ctx, &app.name, &config)
}

fn change(
    kind: LimitKind,
    values: HashMap<String, deis_client::proto::prost_types::Value>,
) -> SetConfigRequest {
    match kind {
        LimitKind::Memory => SetConfigRequest {
            memory: values,
            ..Default::default()
        },
        LimitKind::Cpu => SetConfigRequest {
            cpu: values,
            ..Default::default()
        },
    }
}

fn print(ctx: &Ctx, app: &str, config: &Config) -> Result<()> {
    if ctx.out.json_mode() {
        let json = crate::output::to_json(config)?;
        return ctx
            .out
            .json_value(&serde_json::json!({ "memory": json["memory"], "cpu": json["cpu"] }));
    }
    ctx.out.header(format!("{app} Limits"));
    for (title, map) in [("Memory", &config.memory), ("CPU", &config.cpu)] {
        ctx.out.line(format!("\n--- {title}"));
        if map.is_empty() {
            ctx.out.line("Unlimited");
        } else {
            ctx.out.line(
                ctx.out
                    .kv_table(sorted(map).into_iter().map(|(k, v)| (k.clone(), v.clone()))),
            );
        }
    }
    Ok(())
}
