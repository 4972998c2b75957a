//! `healthchecks:*`: Kubernetes liveness and readiness probes per process type.

use anyhow::{Result, bail};
use clap::Subcommand;
use deis_client::v2::{Config, SetConfigRequest};
use serde_json::{Map, Value as Json, json};

use super::config;
use crate::cli::AppArg;
use crate::context::Ctx;
use crate::pb;
use crate::validate;

/// Deis's default process type key: the web or cmd process.
const DEFAULT_TYPE: &str = "web/cmd";

/// `healthchecks:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List healthchecks for an app
    #[command(name = "healthchecks:list", alias = "healthchecks")]
    List {
        #[command(flatten)]
        app: AppArg,
        /// Only this process type [default: all]
        #[arg(long = "type", value_name = "TYPE")]
        proc_type: Option<String>,
    },
    /// Set a healthcheck for an app
    ///
    /// A 'liveness' probe restarts a process that fails it; a 'readiness'
    /// probe takes it out of the router until it passes again. 'httpGet'
    /// probes GET a path on a port (200-399 passes), 'tcpSocket' probes open
    /// a connection to a port, 'exec' probes run a command in the container
    /// (exit 0 passes). For httpGet and tcpSocket the argument is the port;
    /// for exec the arguments are the command (put -- before it).
    /// Setting a healthcheck creates a new release.
    #[command(name = "healthchecks:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// liveness or readiness
        #[arg(value_name = "HEALTH_TYPE")]
        health_type: String,
        /// httpGet, exec or tcpSocket
        #[arg(value_name = "PROBE_TYPE")]
        probe_type: String,
        /// The port (httpGet, tcpSocket) or the command (exec)
        #[arg(value_name = "ARGS", required = true)]
        args: Vec<String>,
        /// The path for httpGet probes
        #[arg(short = 'p', long, default_value = "/")]
        path: String,
        /// The process type
        #[arg(long = "type", value_name = "TYPE", default_value = DEFAULT_TYPE)]
        proc_type: String,
        /// HTTP headers for httpGet probes, "Name:Value" separated by commas (repeatable)
        #[arg(long = "headers", alias = "header", value_name = "NAME:VALUE,...")]
        headers: Vec<String>,
        /// Seconds after start before the first probe
        #[arg(long = "initial-delay-timeout", value_name = "SECONDS", default_value_t = 50)]
        initial_delay: i32,
        /// Seconds after which a probe times out
        #[arg(long = "timeout-seconds", value_name = "SECONDS", default_value_t = 50)]
        timeout: i32,
        /// Seconds between probes
        #[arg(long = "period-seconds", value_name = "SECONDS", default_value_t = 10)]
        period: i32,
        /// Consecutive successes to count as healthy after a failure
        #[arg(long = "success-threshold", value_name = "N", default_value_t = 1)]
        success_threshold: i32,
        /// Consecutive failures to count as unhealthy after a success
        #[arg(long = "failure-threshold", value_name = "N", default_value_t = 3)]
        failure_threshold: i32,
    },
    /// Unset healthchecks for an app
    #[command(name = "healthchecks:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// liveness and/or readiness
        #[arg(value_name = "HEALTH_TYPE", required = true)]
        health_types: Vec<String>,
        /// The process type
        #[arg(long = "type", value_name = "TYPE", default_value = DEFAULT_TYPE)]
        proc_type: String,
    },
}

/// The numbers common to every probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timing {
    initial_delay: i32,
    timeout: i32,
    period: i32,
    success_threshold: i32,
    failure_threshold: i32,
}

/// Runs a `healthchecks:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app, proc_type } => {
            let app = s.app(app.get())?;
            let config = config::get(&s, &app).await?;
            print(ctx, &app.name, &config, proc_type.as_deref())
        }
        Cmd::Set {
            app,
            health_type,
            probe_type,
            args,
            path,
            proc_type,
            headers,
            initial_delay,
            timeout,
            period,
            success_threshold,
            failure_threshold,
        } => {
            check_type(&proc_type)?;
            let key = probe_key(&health_type)?;
            let timing = Timing {
                initial_delay,
                timeout,
                period,
                success_threshold,
                failure_threshold,
            };
            let probe = build_probe(&health_type, &probe_type, &args, &path, &headers, timing)?;
            let app = s.app(app.get())?;
            let label = format!("Applying {key} healthcheck...");
            let healthcheck = json!({ proc_type.clone(): { key: probe } });
            let config = config::apply(ctx, &s, &app, &label, change(healthcheck)).await?;
            print(ctx, &app.name, &config, Some(&proc_type))
        }
        Cmd::Unset {
            app,
            health_types,
            proc_type,
        } => {
            check_type(&proc_type)?;
            let mut probes = Map::new();
            for health_type in &health_types {
                probes.insert(probe_key(health_type)?.to_owned(), Json::Null);
            }
            let app = s.app(app.get())?;
            let label = "Removing healthchecks...";
            let config =
                config::apply(ctx, &s, &app, label, change(json!({ proc_type.clone(): probes }))).await?;
            print(ctx, &app.name, &config, Some(&proc_type))
        }
    }
}

fn change(healthcheck: Json) -> SetConfigRequest {
    let fields = match healthcheck {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    SetConfigRequest {
        healthcheck: Some(pb::struct_from_json(fields)),
        ..Default::default()
    }
}

fn check_type(proc_type: &str) -> Result<()> {
    if proc_type == DEFAULT_TYPE {
        Ok(())
    } else {
        validate::proc_type(proc_type)
    }
}

/// `liveness` → `livenessProbe`.
fn probe_key(health_type: &str) -> Result<&'static str> {
    match health_type {
        "liveness" => Ok("livenessProbe"),
        "readiness" => Ok("readinessProbe"),
        _ => bail!("Invalid healthcheck type. Must be one of: \"liveness\", \"readiness\""),
    }
}

/// The Kubernetes probe for the arguments of `healthchecks:set`.
pub(crate) fn build_probe(
    health_type: &str,
    probe_type: &str,
    args: &[String],
    path: &str,
    headers: &[String],
    timing: Timing,
) -> Result<Json> {
    probe_key(health_type)?;
    for (name, value) in [
        ("--initial-delay-timeout", timing.initial_delay),
        ("--timeout-seconds", timing.timeout),
        ("--period-seconds", timing.period),
        ("--success-threshold", timing.success_threshold),
        ("--failure-threshold", timing.failure_threshold),
    ] {
        let minimum = if name == "--initial-delay-timeout" { 0 } else { 1 };
        if value < minimum {
            bail!("{name} must be at least {minimum}");
        }
    }
    if health_type == "liveness" && timing.success_threshold != 1 {
        bail!("--success-threshold must be 1 for liveness probes");
    }
    let mut probe = json!({
        "initialDelaySeconds": timing.initial_delay,
        "timeoutSeconds": timing.timeout,
        "periodSeconds": timing.period,
        "successThreshold": timing.success_threshold,
        "failureThreshold": timing.failure_threshold,
    });
    let (key, action) = match probe_type {
        "httpGet" => {
            let port = single_port(args)?;
            let headers = parse_headers(headers)?;
            (
                "httpGet",
                json!({ "path": path, "port": port, "httpHeaders": headers }),
            )
        }
        "tcpSocket" => ("tcpSocket", json!({ "port": single_port(args)? })),
        "exec" => ("exec", json!({ "command": args })),
        _ => bail!("Invalid probe type. Must be one of: \"httpGet\", \"exec\", \"tcpSocket\""),
    };
    if let Some(map) = probe.as_object_mut() {
        map.insert(key.to_owned(), action);
    }
    Ok(probe)
}

fn single_port(args: &[String]) -> Result<u16> {
    match args {
        [port] => match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => bail!("could not parse port: '{port}' is not a port number (1-65535)"),
        },
        _ => bail!("give exactly one port number for httpGet and tcpSocket probes"),
    }
}

/// `"A:1,B: 2"` (repeatable) → `[{"name":"A","value":"1"}, …]`.
fn parse_headers(headers: &[String]) -> Result<Vec<Json>> {
    let mut parsed = Vec::new();
    for header in headers
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        let Some((name, value)) = header.split_once(':') else {
            bail!("could not parse headers: could not find separator in header ({header})");
        };
        parsed.push(json!({ "name": name.trim(), "value": value.trim() }));
    }
    Ok(parsed)
}

fn print(ctx: &Ctx, app: &str, config: &Config, only: Option<&str>) -> Result<()> {
    let all = config
        .healthcheck
        .as_ref()
        .map(pb::struct_to_json)
        .unwrap_or_else(|| json!({}));
    if ctx.out.json_mode() {
        return ctx.out.json_value(&match only {
            Some(t) => json!({ t: all.get(t).cloned().unwrap_or(Json::Null) }),
            None => all,
        });
    }
    ctx.out.header(format!("{app} Healthchecks"));
    let types: Vec<String> = match only {
        Some(t) => vec![t.to_owned()],
        None => all
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    };
    if types.is_empty() {
        ctx.out.line("No health checks configured.");
    }
    for proc_type in types {
        ctx.out.line(format!("\n{proc_type}:"));
        let probes = all.get(&proc_type);
        for (title, key) in [("Liveness", "livenessProbe"), ("Readiness", "readinessProbe")] {
            if title == "Readiness" {
                ctx.out.blank();
            }
            ctx.out.line(format!("--- {title}"));
            match probes.and_then(|p| p.get(key)).filter(|p| !p.is_null()) {
                Some(probe) => ctx.out.line(describe_probe(probe)),
                None => ctx
                    .out
                    .line(format!("No {} probe configured.", title.to_lowercase())),
            }
        }
    }
    Ok(())
}

/// Deis's text for a probe.
fn describe_probe(probe: &Json) -> String {
    let number = |key: &str| probe.get(key).map_or_else(|| "unset".to_owned(), Json::to_string);
    let action = |key: &str| probe.get(key).filter(|v| !v.is_null());
    let exec = action("exec").map_or_else(
        || "N/A".to_owned(),
        |e| {
            let command: Vec<String> = e
                .get("command")
                .and_then(Json::as_array)
                .map(|c| {
                    c.iter()
                        .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            format!("Command=[{}]", command.join(" "))
        },
    );
    let http = action("httpGet").map_or_else(
        || "N/A".to_owned(),
        |h| {
            let headers: Vec<String> = h
                .get("httpHeaders")
                .and_then(Json::as_array)
                .map(|list| {
                    list.iter()
                        .map(|x| {
                            let field =
                                |k: &str| x.get(k).and_then(Json::as_str).unwrap_or_default().to_owned();
                            format!("{}={}", field("name"), field("value"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "Path=\"{}\" Port={} HTTPHeaders=[{}]",
                h.get("path").and_then(Json::as_str).unwrap_or("/"),
                h.get("port").map_or_else(String::new, Json::to_string),
                headers.join(" ")
            )
        },
    );
    let tcp = action("tcpSocket").map_or_else(
        || "N/A".to_owned(),
        |t| format!("Port={}", t.get("port").map_or_else(String::new, Json::to_string)),
    );
    format!(
        "Initial Delay (seconds): {}\nTimeout (seconds): {}\nPeriod (seconds): {}\nSuccess Threshold: {}\nFailure Threshold: {}\nExec Probe: {exec}\nHTTP GET Probe: {http}\nTCP Socket Probe: {tcp}",
        number("initialDelaySeconds"),
        number("timeoutSeconds"),
        number("periodSeconds"),
        number("successThreshold"),
        number("failureThreshold"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        initial_delay: 50,
        timeout: 50,
        period: 10,
        success_threshold: 1,
        failure_threshold: 3,
    };

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn http_get_probe() -> Result<()> {
        let probe = build_probe(
            "liveness",
            "httpGet",
            &strings(&["5000"]),
            "/health",
            &strings(&["X-A:1, X-B: two"]),
            TIMING,
        )?;
        assert_eq!(
            probe,
            json!({
                "initialDelaySeconds": 50, "timeoutSeconds": 50, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3,
                "httpGet": {"path": "/health", "port": 5000, "httpHeaders": [
                    {"name": "X-A", "value": "1"}, {"name": "X-B", "value": "two"}]}
            })
        );
        let text = describe_probe(&probe);
        assert!(
            text.contains("HTTP GET Probe: Path=\"/health\" Port=5000 HTTPHeaders=[X-A=1 X-B=two]"),
            "{text}"
        );
        assert!(text.contains("Exec Probe: N/A"), "{text}");
        Ok(())
    }

    #[test]
    fn exec_and_tcp_probes() -> Result<()> {
        let exec = build_probe(
            "readiness",
            "exec",
            &strings(&["cat", "/tmp/ready"]),
            "/",
            &[],
            TIMING,
        )?;
        assert_eq!(exec["exec"], json!({"command": ["cat", "/tmp/ready"]}));
        assert!(describe_probe(&exec).contains("Exec Probe: Command=[cat /tmp/ready]"));
        let tcp = build_probe("readiness", "tcpSocket", &strings(&["8080"]), "/", &[], TIMING)?;
        assert_eq!(tcp["tcpSocket"], json!({"port": 8080}));
        Ok(())
    }

    #[test]
    fn probe_errors() {
        let port = strings(&["80"]);
        assert!(build_probe("startup", "httpGet", &port, "/", &[], TIMING).is_err());
        assert!(build_probe("liveness", "grpc", &port, "/", &[], TIMING).is_err());
        assert!(build_probe("liveness", "httpGet", &strings(&["http"]), "/", &[], TIMING).is_err());
        assert!(build_probe("liveness", "tcpSocket", &strings(&["1", "2"]), "/", &[], TIMING).is_err());
        assert!(build_probe("liveness", "httpGet", &port, "/", &strings(&["nocolon"]), TIMING).is_err());
        let twice = Timing {
            success_threshold: 2,
            ..TIMING
        };
        assert!(build_probe("liveness", "httpGet", &port, "/", &[], twice).is_err());
        assert!(build_probe("readiness", "httpGet", &port, "/", &[], twice).is_ok());
        let zero = Timing { period: 0, ..TIMING };
        assert!(build_probe("readiness", "httpGet", &port, "/", &[], zero).is_err());
    }
}
