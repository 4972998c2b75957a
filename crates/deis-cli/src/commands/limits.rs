//! `limits:*`: memory and CPU limits per process type.

use std::collections::HashMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use deis_client::v2::{Config, GetPlatformInfoResponse, SetConfigRequest};

use super::config;
use crate::cli::AppArg;
use crate::context::{Ctx, Session};
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
            return print(ctx, &s, &app.name, &config).await;
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
    print(ctx, &s, &app.name, &config).await
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

async fn print(ctx: &Ctx, s: &Session, app: &str, config: &Config) -> Result<()> {
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
    if config.memory.is_empty() && config.cpu.is_empty() {
        return Ok(());
    }
    // Whether the runtime enforces them is a nicety: without an answer
    // (an older controller, a failed call) nothing more is said.
    let notes = s
        .platform_info()
        .await
        .map(|info| enforcement_notes(config, &info))
        .unwrap_or_default();
    if !notes.is_empty() {
        ctx.out.blank();
        for note in notes {
            ctx.out.line(note);
        }
    }
    Ok(())
}

/// One line for each kind of limit that is set but that the platform's
/// runtime does not fully enforce (as GetPlatformInfo reports it).
fn enforcement_notes(config: &Config, info: &GetPlatformInfoResponse) -> Vec<String> {
    [
        ("memory", &config.memory, info.memory_limits.as_str()),
        ("CPU", &config.cpu, info.cpu_limits.as_str()),
    ]
    .into_iter()
    .filter(|(_, map, _)| !map.is_empty())
    .filter_map(|(kind, _, enforcement)| match enforcement {
        "not-enforced" => Some(format!(
            "Note: {kind} limits are recorded but not enforced by this platform's runtime."
        )),
        "approximated" if kind == "memory" => Some(format!(
            "Note: {kind} limits are approximated (a data-size rlimit, not a cgroup) by this platform's runtime."
        )),
        "approximated" => Some(format!(
            "Note: {kind} limits are approximated by this platform's runtime."
        )),
        // "enforced", or a controller that does not say.
        _ => None,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory: &[(&str, &str)], cpu: &[(&str, &str)]) -> Config {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Config {
            memory: map(memory),
            cpu: map(cpu),
            ..Default::default()
        }
    }

    fn info(memory: &str, cpu: &str) -> GetPlatformInfoResponse {
        GetPlatformInfoResponse {
            memory_limits: memory.into(),
            cpu_limits: cpu.into(),
            ..Default::default()
        }
    }

    #[test]
    fn notes_only_for_limits_that_are_set_and_not_enforced() {
        let both = config(&[("web", "512M")], &[("web", "500m")]);
        assert_eq!(
            enforcement_notes(&both, &info("approximated", "not-enforced")),
            [
                "Note: memory limits are approximated (a data-size rlimit, not a cgroup) by this platform's runtime.",
                "Note: CPU limits are recorded but not enforced by this platform's runtime.",
            ]
        );
        assert_eq!(
            enforcement_notes(&both, &info("not-enforced", "approximated")),
            [
                "Note: memory limits are recorded but not enforced by this platform's runtime.",
                "Note: CPU limits are approximated by this platform's runtime.",
            ]
        );
        assert!(enforcement_notes(&both, &info("enforced", "enforced")).is_empty());
        // An older controller says nothing: no note.
        assert!(enforcement_notes(&both, &info("", "")).is_empty());
        // Only kinds that are set.
        let memory_only = config(&[("web", "1G")], &[]);
        assert_eq!(
            enforcement_notes(&memory_only, &info("not-enforced", "not-enforced")),
            ["Note: memory limits are recorded but not enforced by this platform's runtime."]
        );
        assert!(enforcement_notes(&config(&[], &[]), &info("not-enforced", "not-enforced")).is_empty());
    }
}
