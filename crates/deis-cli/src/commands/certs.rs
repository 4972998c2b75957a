//! `certs:*`: TLS certificates and the domains they serve.

use std::fs;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Subcommand;
use deis_client::v2::{
    AttachCertRequest, Certificate, CreateCertRequest, DeleteCertRequest, DetachCertRequest, GetCertRequest,
    ListCertsRequest,
};

use crate::cli::LimitArg;
use crate::context::{Ctx, call};
use crate::output;

/// `certs:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List your certificates
    #[command(name = "certs:list", alias = "certs")]
    List {
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Add a certificate and its private key
    #[command(name = "certs:add")]
    Add {
        /// A name: lowercase letters, digits and hyphens
        name: String,
        /// The certificate (chain) file, PEM
        #[arg(value_name = "CERT_FILE")]
        cert: String,
        /// The private key file, PEM
        #[arg(value_name = "KEY_FILE")]
        key: String,
    },
    /// Remove a certificate (detaching it from its domains first)
    #[command(name = "certs:remove")]
    Remove {
        /// The certificate's name
        name: String,
    },
    /// Show a certificate
    #[command(name = "certs:info")]
    Info {
        /// The certificate's name
        name: String,
    },
    /// Attach a certificate to a domain of one of your apps
    #[command(name = "certs:attach")]
    Attach {
        /// The certificate's name
        name: String,
        /// The domain
        domain: String,
    },
    /// Detach a certificate from a domain
    #[command(name = "certs:detach")]
    Detach {
        /// The certificate's name
        name: String,
        /// The domain
        domain: String,
    },
}

/// Runs a `certs:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { limit } => {
            let page = call(s.client().await?.certs().list_certs(ListCertsRequest {
                limit: s.limit(limit.limit),
                offset: 0,
            }))
            .await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&page);
            }
            if page.results.is_empty() {
                ctx.out.line("No certs");
                return Ok(());
            }
            let headers = [
                "Name",
                "Common Name",
                "SubjectAltName",
                "Expires",
                "Fingerprint",
                "Domains",
                "Updated",
                "Created",
            ];
            let rows = page.results.iter().map(row).collect();
            ctx.out.line(ctx.out.table(&headers, rows));
            Ok(())
        }
        Cmd::Add { name, cert, key } => {
            let certificate =
                fs::read_to_string(&cert).with_context(|| format!("cannot read the certificate {cert}"))?;
            let key =
                fs::read_to_string(&key).with_context(|| format!("cannot read the private key {key}"))?;
            let label = "Adding SSL endpoint...";
            let request = CreateCertRequest {
                name,
                certificate,
                key,
            };
            let created = ctx
                .out
                .step(label, call(s.client().await?.certs().create_cert(request)))
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&created.cert.unwrap_or_default())?;
            }
            Ok(())
        }
        Cmd::Remove { name } => {
            let label = format!("Removing {name}...");
            ctx.out
                .step(
                    &label,
                    call(s.client().await?.certs().delete_cert(DeleteCertRequest { name })),
                )
                .await?;
            Ok(())
        }
        Cmd::Info { name } => {
            let cert = call(s.client().await?.certs().get_cert(GetCertRequest { name }))
                .await?
                .cert
                .unwrap_or_default();
            if ctx.out.json_mode() {
                return ctx.out.json(&cert);
            }
            print_info(ctx, &cert);
            Ok(())
        }
        Cmd::Attach { name, domain } => {
            let label = format!("Attaching certificate {name} to domain {domain}...");
            ctx.out
                .step(
                    &label,
                    call(
                        s.client()
                            .await?
                            .certs()
                            .attach_cert(AttachCertRequest { name, domain }),
                    ),
                )
                .await?;
            Ok(())
        }
        Cmd::Detach { name, domain } => {
            let label = format!("Detaching certificate {name} from domain {domain}...");
            ctx.out
                .step(
                    &label,
                    call(
                        s.client()
                            .await?
                            .certs()
                            .detach_cert(DetachCertRequest { name, domain }),
                    ),
                )
                .await?;
            Ok(())
        }
    }
}

/// One `certs:list` row; the fingerprint is shortened as Deis does.
fn row(cert: &Certificate) -> Vec<String> {
    let fingerprint = output::shorten(&cert.fingerprint, 5, 5, "[...]");
    vec![
        cert.name.clone(),
        cert.common_name.clone(),
        cert.san.join(","),
        expires(cert),
        fingerprint,
        cert.domains.join(","),
        output::date(cert.updated.as_ref()),
        output::date(cert.created.as_ref()),
    ]
}

/// `14 Mar 2027 (in 1 year)` or `1 Jan 2020 (expired)`.
fn expires(cert: &Certificate) -> String {
    let Some(at) = output::to_datetime(cert.expires.as_ref()) else {
        return "unknown".into();
    };
    let date = output::date(cert.expires.as_ref());
    let days = (at - Utc::now()).num_days();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match days {
        d if d < 0 => format!("{date} (expired)"),
        d if d >= 365 => format!("{date} (in {})", plural(d / 365, "year")),
        d if d >= 30 => format!("{date} (in {})", plural(d / 30, "month")),
        d => format!("{date} (in {})", plural(d, "day")),
    }
}

fn print_info(ctx: &Ctx, cert: &Certificate) {
    let or = |text: String, fallback: &str| {
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text
        }
    };
    ctx.out.header(format!("{} Certificate", cert.name));
    let rows = [
        ("Common Name(s):", cert.common_name.clone()),
        ("Expires At:", output::date(cert.expires.as_ref())),
        ("Starts At:", output::date(cert.starts.as_ref())),
        ("Fingerprint:", cert.fingerprint.clone()),
        ("Subject Alt Name:", or(cert.san.join(","), "N/A")),
        ("Issuer:", cert.issuer.clone()),
        ("Subject:", cert.subject.clone()),
        (
            "Connected Domains:",
            or(cert.domains.join(","), "No connected domains"),
        ),
        ("Owner:", cert.owner.clone()),
        ("Created:", output::date(cert.created.as_ref())),
        ("Updated:", output::date(cert.updated.as_ref())),
    ];
    ctx.out
        .line(ctx.out.kv_table(rows.map(|(k, v)| (k.to_owned(), v))));
}
