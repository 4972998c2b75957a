//! `ps:*`: processes of an app.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{ListPodsRequest, Pod, RestartPodsRequest, ScalePodsRequest};

use crate::cli::AppArg;
use crate::context::{Ctx, Session, call_app};
use crate::git::AppRef;
use crate::validate;

/// `ps:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the processes of an app
    #[command(name = "ps:list", alias = "ps")]
    List {
        #[command(flatten)]
        app: AppArg,
    },
    /// Restart processes: all, those of a type, or one by name
    #[command(name = "ps:restart")]
    Restart {
        #[command(flatten)]
        app: AppArg,
        /// A process type (web), or one process: web.1, or its name as `deis ps` shows it (myapp-web-1)
        #[arg(value_name = "TYPE|NAME")]
        target: Option<String>,
    },
    /// Scale processes by type, e.g. web=4 worker=2
    #[command(name = "ps:scale", visible_alias = "scale")]
    Scale {
        #[command(flatten)]
        app: AppArg,
        /// Process counts by type
        #[arg(value_name = "TYPE=NUM", required = true)]
        targets: Vec<String>,
    },
}

/// Runs a `ps:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app } => {
            let app = s.app(app.get())?;
            list(ctx, &s, &app).await
        }
        Cmd::Restart { app, target } => {
            let app = s.app(app.get())?;
            let (r#type, name) = target
                .map(|t| validate::restart_target(&t, &app.name))
                .unwrap_or_default();
            ctx.out
                .say(format!("Restarting processes... but first, {}!", drink()));
            let started = Instant::now();
            let request = RestartPodsRequest {
                app: app.name.clone(),
                r#type,
                name,
            };
            let restarted = ctx
                .out
                .progress(
                    "Restarting...",
                    call_app(&app, s.client().await?.ps().restart_pods(request)),
                )
                .await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&restarted);
            }
            if restarted.results.is_empty() {
                ctx.out.line("Could not find any processes to restart");
            } else {
                ctx.out.line(format!("done in {}s", started.elapsed().as_secs()));
                print_processes(ctx, &app.name, &restarted.results);
            }
            Ok(())
        }
        Cmd::Scale { app, targets } => {
            let structure = targets
                .iter()
                .map(|t| validate::scale_target(t))
                .collect::<Result<_>>()?;
            let app = s.app(app.get())?;
            ctx.out
                .say(format!("Scaling processes... but first, {}!", drink()));
            let started = Instant::now();
            let request = ScalePodsRequest {
                app: app.name.clone(),
                structure,
            };
            ctx.out
                .progress(
                    "Scaling...",
                    call_app(&app, s.client().await?.ps().scale_pods(request)),
                )
                .await?;
            ctx.out.say(format!("done in {}s", started.elapsed().as_secs()));
            list(ctx, &s, &app).await
        }
    }
}

/// What to wait with; Deis's `DEIS_DRINK_OF_CHOICE`.
fn drink() -> String {
    std::env::var("DEIS_DRINK_OF_CHOICE")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "coffee".into())
}

async fn list(ctx: &Ctx, s: &Session, app: &AppRef) -> Result<()> {
    let request = ListPodsRequest {
        app: app.name.clone(),
        ..Default::default()
    };
    let pods = call_app(app, s.client().await?.ps().list_pods(request)).await?;
    if ctx.out.json_mode() {
        return ctx.out.json(&pods);
    }
    print_processes(ctx, &app.name, &pods.results);
    Ok(())
}

/// web-1, web-2, ..., web-10: by instance number, not by name.
fn instance_order(name: &str) -> (bool, Option<u64>, &str) {
    let number = name.rsplit_once('-').and_then(|(_, n)| n.parse::<u64>().ok());
    (number.is_none(), number, name)
}

/// Deis's process listing: `=== <app> Processes`, then per type `--- web:`
/// and `<name> <state> (<release>)` lines (also used by `apps:info`).
pub(crate) fn print_processes(ctx: &Ctx, app: &str, pods: &[Pod]) {
    ctx.out.header(format!("{app} Processes"));
    let mut by_type: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        by_type.entry(pod.r#type.as_str()).or_default().push(pod);
    }
    for (proc_type, mut pods) in by_type {
        pods.sort_by_key(|pod| instance_order(&pod.name));
        ctx.out.line(format!("--- {proc_type}:"));
        for pod in pods {
            ctx.out
                .line(format!("{} {} ({})", pod.name, pod.state, pod.release));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn instances_list_in_numeric_order() {
        let mut names = ["app-web-10", "app-web-2", "app-web-1", "app-web-x"];
        names.sort_by_key(|name| super::instance_order(name));
        assert_eq!(names, ["app-web-1", "app-web-2", "app-web-10", "app-web-x"]);
    }
}
