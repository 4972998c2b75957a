//! `domains:*`: the host names an app answers to.

use anyhow::Result;
use clap::Subcommand;
use deis_client::v2::{AddDomainRequest, ListDomainsRequest, ListDomainsResponse, RemoveDomainRequest};

use crate::cli::{AppArg, LimitArg};
use crate::context::{Ctx, call_app};

/// `domains:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List the domains of an app
    #[command(name = "domains:list", alias = "domains")]
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Add a domain to an app
    #[command(name = "domains:add")]
    Add {
        #[command(flatten)]
        app: AppArg,
        /// The domain, e.g. www.example.com or *.example.com
        domain: String,
    },
    /// Remove a domain from an app
    #[command(name = "domains:remove")]
    Remove {
        #[command(flatten)]
        app: AppArg,
        /// The domain
        domain: String,
    },
}

/// Runs a `domains:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app, limit } => {
            let app = s.app(app.get())?;
            let request = ListDomainsRequest {
                app: app.name.clone(),
                limit: s.limit(limit.limit),
                offset: 0,
            };
            let page = call_app(&app, s.client().await?.domains().list_domains(request)).await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&page);
            }
            print_domains(ctx, &app.name, &page);
            Ok(())
        }
        Cmd::Add { app, domain } => {
            let app = s.app(app.get())?;
            let label = format!("Adding {domain} to {}...", app.name);
            let request = AddDomainRequest {
                app: app.name.clone(),
                domain,
            };
            let added = ctx
                .out
                .step(
                    &label,
                    call_app(&app, s.client().await?.domains().add_domain(request)),
                )
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&added.domain.unwrap_or_default())?;
            }
            Ok(())
        }
        Cmd::Remove { app, domain } => {
            let app = s.app(app.get())?;
            let label = format!("Removing {domain} from {}...", app.name);
            let request = RemoveDomainRequest {
                app: app.name.clone(),
                domain,
            };
            ctx.out
                .step(
                    &label,
                    call_app(&app, s.client().await?.domains().remove_domain(request)),
                )
                .await?;
            Ok(())
        }
    }
}

/// Prints `=== <app> Domains` and one domain per line (also for `apps:info`).
pub(crate) fn print_domains(ctx: &Ctx, app: &str, page: &ListDomainsResponse) {
    ctx.out
        .page_header(format!("{app} Domains"), page.results.len(), page.count);
    for domain in &page.results {
        ctx.out.line(&domain.domain);
    }
}
