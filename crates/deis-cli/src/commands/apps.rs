//! `apps:*`: create, list, inspect, open, logs, run, destroy, transfer.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use deis_client::proto::tonic::{Code, Response, Status, Streaming};
use deis_client::v2::{
    CreateAppRequest, DeleteAppRequest, FollowLogsRequest, GetAppRequest, GetAppSettingsRequest,
    GetLogsRequest, ListAppsRequest, ListDomainsRequest, ListPodsRequest, LogLine, RunAttachedRequest,
    RunAttachedResponse, RunCommandRequest, RunCommandResponse, RunEof, RunStart, SetConfigRequest,
    TransferAppRequest, TtyResize, follow_logs_response, run_attached_request, run_attached_response,
};
use deis_client::{ControllerUrl, describe_status};
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Exit, domains, labels, ps};
use crate::cli::{AppArg, LimitArg};
use crate::context::{Ctx, Session, call, call_app};
use crate::git::{self, AppRef, Builder};
use crate::output::{self, to_json};
use crate::pb;
use crate::profile::Profile;
use crate::prompt;
use crate::tty;

/// Requests buffered for an attached run (keystrokes, resizes).
const RUN_CHANNEL: usize = 64;
/// The most stdin sent in one message (the controller accepts 64 KiB).
const STDIN_CHUNK: usize = 16 * 1024;

/// `apps:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Create a new application
    ///
    /// Creates an application (named for you when no name is given) and a git
    /// remote pointing at the builder, so `git push deis master` deploys it.
    #[command(name = "apps:create", visible_alias = "create")]
    Create {
        /// The application name: lowercase letters, digits and hyphens [default: generated]
        #[arg(value_name = "APP")]
        id: Option<String>,
        /// Do not create a git remote for the application
        #[arg(long)]
        no_remote: bool,
        /// A buildpack URL to use for this application (sets BUILDPACK_URL)
        #[arg(short = 'b', long, value_name = "URL")]
        buildpack: Option<String>,
        /// The name of the git remote to create
        #[arg(short = 'r', long, value_name = "REMOTE", default_value = "deis")]
        remote: String,
    },
    /// List accessible applications
    #[command(name = "apps:list", alias = "apps")]
    List {
        #[command(flatten)]
        limit: LimitArg,
    },
    /// View info about an application
    #[command(name = "apps:info", visible_alias = "info")]
    Info {
        #[command(flatten)]
        app: AppArg,
    },
    /// Open the application in a browser
    #[command(name = "apps:open", visible_alias = "open")]
    Open {
        #[command(flatten)]
        app: AppArg,
    },
    /// View aggregated application logs
    #[command(name = "apps:logs", visible_alias = "logs")]
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// The number of lines to show [default: 100]
        #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        lines: Option<i32>,
        /// Keep printing new lines as they come (Ctrl-C to stop)
        #[arg(short = 'f', long, visible_alias = "tail")]
        follow: bool,
        /// Only this process type (web) or process (web.1)
        #[arg(short = 'p', long, visible_alias = "ps", value_name = "TYPE")]
        process: Option<String>,
        /// Only lines from this source: app, router or deis
        #[arg(short = 's', long, value_name = "SOURCE", value_parser = ["app", "router", "deis"])]
        source: Option<String>,
    },
    /// Run a command in an ephemeral app container
    ///
    /// The command's output is printed as it runs, and deis exits with the
    /// command's exit code. Without --tty the command reads no input; with
    /// --tty it runs under a terminal wired to yours (for shells and
    /// consoles). As in Deis, -a/--app may also follow the command's words;
    /// put -- before a command that has options of its own, -a included
    /// (`deis run -- ls -a`): everything after it is the command, verbatim.
    #[command(name = "apps:run", visible_alias = "run")]
    Run {
        #[command(flatten)]
        app: RunApp,
        /// The command to run
        #[arg(
            value_name = "COMMAND",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<String>,
        /// Whether `--` came right before the command (clap drops it; see
        /// [`mark_run_terminator`]).
        #[arg(skip)]
        after_terminator: bool,
    },
    /// Destroy an application
    ///
    /// Without --confirm, asks to type the application name (on a terminal only).
    #[command(name = "apps:destroy", visible_alias = "destroy")]
    Destroy {
        #[command(flatten)]
        app: AppArg,
        /// Skip the question by repeating the application name
        #[arg(long, value_name = "APP")]
        confirm: Option<String>,
    },
    /// Transfer app ownership to another user
    #[command(name = "apps:transfer")]
    Transfer {
        /// The user who becomes the owner
        username: String,
        #[command(flatten)]
        app: AppArg,
    },
}

/// `apps:run`'s options: the app, and whether to attach a terminal.
#[derive(Args, Debug)]
pub(crate) struct RunApp {
    #[command(flatten)]
    app: AppArg,
    /// Run under a terminal and send it your keystrokes (needs a terminal)
    #[arg(short = 't', long)]
    tty: bool,
}

impl RunApp {
    /// The `-a` flag's value.
    pub(crate) fn get(&self) -> Option<&str> {
        self.app.get()
    }
}

/// Runs an `apps:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::Create {
            id,
            no_remote,
            buildpack,
            remote,
        } => create(ctx, &s, id, no_remote, buildpack, &remote).await,
        Cmd::List { limit } => list(ctx, &s, s.limit(limit.limit)).await,
        Cmd::Info { app } => info(ctx, &s, &s.app(app.get())?).await,
        Cmd::Open { app } => open(ctx, &s, &s.app(app.get())?).await,
        Cmd::Logs {
            app,
            lines,
            follow,
            process,
            source,
        } => {
            let query = LogsQuery {
                lines: lines.unwrap_or(0),
                process: process.unwrap_or_default(),
                source: source.unwrap_or_default(),
            };
            let app = s.app(app.get())?;
            if follow {
                follow_logs(ctx, &s, &app, query).await
            } else {
                logs(ctx, &s, &app, query).await
            }
        }
        Cmd::Run {
            app,
            command,
            after_terminator,
        } => {
            let (flag, command) = run_app_and_command(app.get(), command, after_terminator)?;
            run_command(ctx, &s, &s.app(flag.as_deref())?, &command.join(" "), app.tty).await
        }
        Cmd::Destroy { app, confirm } => destroy(ctx, &s, &s.app(app.get())?, confirm).await,
        Cmd::Transfer { username, app } => transfer(ctx, &s, &s.app(app.get())?, &username).await,
    }
}

/// Records on a parsed `apps:run` whether its command followed a `--` that
/// ended deis's options. Clap consumes that `--` without a trace, and the
/// command is always the tail of the raw arguments `args`, so the `--` is
/// the argument just before that tail (a `--` inside the command, such as
/// the second one of `deis run -- -- x`, is part of the tail).
pub(crate) fn mark_run_terminator(cmd: &mut Cmd, args: &[OsString]) {
    if let Cmd::Run {
        command,
        after_terminator,
        ..
    } = cmd
    {
        *after_terminator = args.len().checked_sub(command.len() + 1).is_some_and(|at| {
            args[at] == "--" && args[at + 1..].iter().zip(command.iter()).all(|(a, c)| *a == **c)
        });
    }
}

/// Splits `-a/--app` out of the words of `deis run`, as Deis's parser took
/// the option wherever it appeared: `-a <app>`, `--app <app>` and
/// `--app=<app>` among the command's words name the app (`-a<app>` does not:
/// there it is far more often the command's own flags, as in `ls -al`), up
/// to a literal `--`, which ends the options (it and everything after it
/// stay in the command). After a `--` that came before the command, nothing is taken.
/// `before` is the `-a` given before the command.
fn run_app_and_command(
    before: Option<&str>,
    words: Vec<String>,
    after_terminator: bool,
) -> Result<(Option<String>, Vec<String>)> {
    let mut app = before.map(str::to_owned);
    if after_terminator {
        return Ok((app, words));
    }
    let mut command = Vec::with_capacity(words.len());
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let value = match word.as_str() {
            "--" => {
                command.push(word);
                command.extend(words.by_ref());
                break;
            }
            "-a" | "--app" => match words.next() {
                Some(value) if !value.is_empty() && !value.starts_with('-') => value,
                _ => bail!(
                    "{word} needs an app name after it; to pass {word} to the command instead, put -- before the command: deis run -- <command>"
                ),
            },
            w if w.starts_with("--app=") => w["--app=".len()..].to_owned(),
            _ => {
                command.push(word);
                continue;
            }
        };
        if value.is_empty() {
            bail!(
                "{word} needs an app name; to pass {word} to the command instead, put -- before the command: deis run -- <command>"
            );
        }
        if let Some(first) = &app {
            bail!(
                "The app is given twice ({first} and {value}); give -a/--app once, or put -- before the command to pass {word} to it."
            );
        }
        app = Some(value);
    }
    if command.is_empty() {
        bail!("no command to run; give it after the options: deis run [-a <app>] [--] <command>");
    }
    Ok((app, command))
}

async fn create(
    ctx: &Ctx,
    s: &Session,
    id: Option<String>,
    no_remote: bool,
    buildpack: Option<String>,
    remote: &str,
) -> Result<()> {
    if !no_remote {
        check_remote_free(&s.builder(), id.as_deref(), remote)?;
    }
    let label = "Creating Application...";
    let request = CreateAppRequest {
        id: id.unwrap_or_default(),
    };
    let created = ctx
        .out
        .progress(label, call(s.client().await?.apps().create_app(request)))
        .await?;
    let app = created
        .app
        .ok_or_else(|| anyhow!("the controller did not return the new app"))?;
    ctx.out.say(format!("{label} done, created {}", app.id));

    if let Some(url) = buildpack {
        let request = SetConfigRequest {
            app: app.id.clone(),
            values: pb::set_map([("BUILDPACK_URL", url)]),
            ..Default::default()
        };
        ctx.out
            .progress(
                "Setting BUILDPACK_URL...",
                call(s.client().await?.config().set_config(request)),
            )
            .await?;
    }

    if no_remote {
        ctx.out.say(format!(
            "If you want to add a git remote for this app later, use `deis git:remote -a {}`",
            app.id
        ));
    } else {
        super::git::add_app_remote(ctx, &s.builder(), &app.id, remote, false, true)?;
    }
    if ctx.out.json_mode() {
        ctx.out.json(&app)?;
    }
    Ok(())
}

/// Refuses, before anything is created, to create an app whose git remote
/// cannot be added because a remote of that name already points elsewhere
/// (one already pointing at the named app is fine).
fn check_remote_free(builder: &Builder, id: Option<&str>, remote: &str) -> Result<()> {
    match git::remote_url(remote) {
        Some(url) if id.is_none_or(|id| url != builder.repo_url(id)) => bail!(
            "A git remote named {remote} already exists ({url}), so no app was created; pass --remote <name> to name the new app's remote differently, or --no-remote to create the app without one."
        ),
        _ => Ok(()),
    }
}

async fn list(ctx: &Ctx, s: &Session, limit: i32) -> Result<()> {
    let page = call(
        s.client()
            .await?
            .apps()
            .list_apps(ListAppsRequest { limit, offset: 0 }),
    )
    .await?;
    let lines = page.results.iter().map(|app| app.id.clone()).collect();
    ctx.out.page(&page, "Apps", page.count, lines)
}

async fn info(ctx: &Ctx, s: &Session, app: &AppRef) -> Result<()> {
    let id = app.name.clone();
    let found = call_app(
        app,
        s.client().await?.apps().get_app(GetAppRequest { id: id.clone() }),
    )
    .await?;
    let details = found.app.unwrap_or_default();
    let pods = call_app(
        app,
        s.client().await?.ps().list_pods(ListPodsRequest {
            app: id.clone(),
            ..Default::default()
        }),
    )
    .await?;
    let domain_page = call_app(
        app,
        s.client().await?.domains().list_domains(ListDomainsRequest {
            app: id.clone(),
            limit: s.limit(None),
            offset: 0,
        }),
    )
    .await?;
    let settings = call_app(
        app,
        s.client()
            .await?
            .settings()
            .get_app_settings(GetAppSettingsRequest { app: id.clone() }),
    )
    .await?
    .settings
    .unwrap_or_default();

    if ctx.out.json_mode() {
        return ctx.out.json_value(&json!({
            "app": to_json(&details)?,
            "processes": to_json(&pods)?["results"],
            "domains": to_json(&domain_page)?["results"],
            "labels": to_json(&settings)?["label"],
        }));
    }
    let first_domain = domain_page.results.first().map(|d| d.domain.as_str());
    let url = app_url(&details.url, first_domain, &s.profile)
        .unwrap_or_else(|| format!("No domain assigned to {id}"));
    ctx.out.header(format!("{id} Application"));
    let rows = [
        ("updated:", output::time(details.updated.as_ref())),
        ("uuid:", details.uuid.clone()),
        ("created:", output::time(details.created.as_ref())),
        ("url:", url),
        ("owner:", details.owner.clone()),
        ("id:", details.id.clone()),
    ];
    ctx.out
        .line(ctx.out.kv_table(rows.map(|(k, v)| (k.to_owned(), v))));
    ctx.out.blank();
    ps::print_processes(ctx, &id, &pods.results);
    ctx.out.blank();
    domains::print_domains(ctx, &id, &domain_page);
    ctx.out.blank();
    labels::print_labels(ctx, &id, &settings.label);
    Ok(())
}

/// Where the app answers: the controller's `url`, else its first domain
/// (a bare name is completed with the platform domain or, as Deis did, the
/// controller's host minus its first label).
pub(crate) fn app_url(url: &str, first_domain: Option<&str>, profile: &Profile) -> Option<String> {
    if !url.is_empty() {
        return Some(url.to_owned());
    }
    let domain = first_domain.filter(|d| !d.is_empty())?;
    if domain.contains('.') {
        return Some(domain.to_owned());
    }
    if let Some(platform) = profile.platform_domain.as_deref().filter(|p| !p.is_empty()) {
        return Some(format!("{domain}.{platform}"));
    }
    let host = ControllerUrl::parse(&profile.controller).ok()?.host().to_owned();
    match host.split_once('.') {
        Some((_, rest)) if host.parse::<std::net::IpAddr>().is_err() => Some(format!("{domain}.{rest}")),
        _ => Some(domain.to_owned()),
    }
}

async fn open(ctx: &Ctx, s: &Session, app: &AppRef) -> Result<()> {
    let found = call_app(
        app,
        s.client()
            .await?
            .apps()
            .get_app(GetAppRequest { id: app.name.clone() }),
    )
    .await?;
    let details = found.app.unwrap_or_default();
    let first = if details.url.is_empty() {
        let page = call_app(
            app,
            s.client().await?.domains().list_domains(ListDomainsRequest {
                app: app.name.clone(),
                limit: 1,
                offset: 0,
            }),
        )
        .await?;
        page.results.into_iter().next().map(|d| d.domain)
    } else {
        None
    };
    let Some(url) = app_url(&details.url, first.as_deref(), &s.profile) else {
        bail!("No domain assigned to {}", app.name);
    };
    let url = if url.starts_with("http://") || url.starts_with("https://") {
        url
    } else {
        format!("http://{url}")
    };
    if ctx.out.json_mode() {
        return ctx.out.json_value(&json!({ "url": url }));
    }
    ctx.out.line(&url);
    if ctx.out.stdout_is_tty() {
        // Best effort: a missing browser is not an error, the URL is printed.
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        let _ = Command::new(opener)
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
    Ok(())
}

/// What `deis logs` asks for.
struct LogsQuery {
    lines: i32,
    process: String,
    source: String,
}

/// A log line as Deis prints it, the app and process coloured on a
/// terminal.
fn log_line(ctx: &Ctx, line: &LogLine) -> String {
    let time = output::to_datetime(line.time.as_ref())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default();
    let colour = match line.source.as_str() {
        "router" => 35,
        "deis" => 33,
        _ => 36,
    };
    let who = ctx
        .out
        .colored(&format!("{}[{}]:", line.app, line.process), colour);
    format!("{time} {who} {}", line.text.trim_end_matches('\n'))
}

async fn logs(ctx: &Ctx, s: &Session, app: &AppRef, query: LogsQuery) -> Result<()> {
    let request = GetLogsRequest {
        app: app.name.clone(),
        log_lines: query.lines,
        process: query.process,
        source: query.source,
    };
    let response = call_app(app, s.client().await?.apps().get_logs(request)).await?;
    if ctx.out.json_mode() {
        return ctx.out.json(&response);
    }
    for line in &response.entries {
        ctx.out.line(log_line(ctx, line));
    }
    Ok(())
}

/// `logs -f`: the latest lines, then new ones as they come; with `--json`
/// one JSON object per line.
async fn follow_logs(ctx: &Ctx, s: &Session, app: &AppRef, query: LogsQuery) -> Result<()> {
    let request = FollowLogsRequest {
        app: app.name.clone(),
        log_lines: query.lines,
        process: query.process,
        source: query.source,
    };
    let mut stream = call_app(app, s.client().await?.apps().follow_logs(request)).await?;
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(message) = message.map_err(|status| anyhow!(describe_status(&status)))? else {
            bail!(
                "The log stream of {} ended; run the command again to resume.",
                app.name
            );
        };
        match message.event {
            Some(follow_logs_response::Event::Line(line)) => {
                if ctx.out.json_mode() {
                    ctx.out.json(&line)?;
                } else {
                    ctx.out.line(log_line(ctx, &line));
                }
            }
            Some(follow_logs_response::Event::Missed(n)) => {
                ctx.out
                    .note(format!("({n} lines skipped: this terminal read too slowly)"));
            }
            None => {}
        }
    }
}

/// `apps:run`: attached to the command over `RunAttached`; on a controller
/// without it, the whole output once the command ends (`RunCommand`).
async fn run_command(ctx: &Ctx, s: &Session, app: &AppRef, command: &str, tty: bool) -> Result<()> {
    if tty && !tty::is_interactive() {
        bail!("--tty needs a terminal: run deis from one (stdin and stdout), or leave out --tty");
    }
    if tty && ctx.out.json_mode() {
        bail!("--tty and --json cannot be combined");
    }
    ctx.out.note(format!("Running '{command}'..."));
    let (cols, rows) = if tty {
        tty::size().map_or((0, 0), |(c, r)| (c.into(), r.into()))
    } else {
        (0, 0)
    };
    let (requests, outgoing) = mpsc::channel(RUN_CHANNEL);
    let start = RunStart {
        app: app.name.clone(),
        command: command.to_owned(),
        tty,
        cols,
        rows,
    };
    // The receiver is alive, so these cannot fail.
    let _ = requests
        .send(request(run_attached_request::Kind::Start(start)))
        .await;
    if !tty {
        // Like Heroku: without a terminal the command gets no input.
        let _ = requests
            .send(request(run_attached_request::Kind::Eof(RunEof {})))
            .await;
    }
    let call = s
        .client()
        .await?
        .apps()
        .run_attached(ReceiverStream::new(outgoing))
        .await;
    let responses = match call {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == Code::Unimplemented => {
            if tty {
                ctx.out
                    .note("This controller cannot attach a terminal; running without one.");
            }
            return run_unary(ctx, s, app, command).await;
        }
        // The same message (with the app hint) as every other app call.
        Err(status) => return call_app(app, async { Err::<Response<()>, _>(status) }).await,
    };
    let exit_code = if ctx.out.json_mode() {
        let result = collect_run(responses).await?;
        ctx.out.json(&result)?;
        result.exit_code
    } else if tty {
        run_in_terminal(responses, requests).await?
    } else {
        drop(requests);
        print_run(responses).await?
    };
    exit_with(exit_code)
}

fn request(kind: run_attached_request::Kind) -> RunAttachedRequest {
    RunAttachedRequest { kind: Some(kind) }
}

/// Ends `deis` with the remote command's exit code.
fn exit_with(code: i32) -> Result<()> {
    match code {
        0 => Ok(()),
        code => Err(Exit(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1)).into()),
    }
}

fn stream_error(status: &Status) -> anyhow::Error {
    anyhow!(describe_status(status))
}

fn no_exit() -> anyhow::Error {
    anyhow!("the controller ended the run without its exit status")
}

/// Writes remote output; `Ok(false)` when stdout's reader went away.
async fn write_out(out: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<bool> {
    match async {
        out.write_all(bytes).await?;
        out.flush().await
    }
    .await
    {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(anyhow!("cannot print the command's output: {err}")),
    }
}

/// Prints output as it arrives; returns the exit code.
async fn print_run(mut responses: Streaming<RunAttachedResponse>) -> Result<i32> {
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    while let Some(message) = responses.message().await.map_err(|s| stream_error(&s))? {
        match message.kind {
            Some(run_attached_response::Kind::Stdout(bytes)) => {
                let reader_left = !write_out(&mut stdout, &bytes).await?;
                if reader_left {
                    // `deis run ... | head -1`: stop quietly, as a command
                    // killed by SIGPIPE would; leaving ends the remote
                    // command too.
                    return Ok(0);
                }
            }
            Some(run_attached_response::Kind::Stderr(bytes)) => {
                // A closed stderr leaves nowhere to report anything.
                let _ = write_out(&mut stderr, &bytes).await;
            }
            Some(run_attached_response::Kind::Exit(exit)) => return Ok(exit.exit_code),
            None => {}
        }
    }
    Err(no_exit())
}

/// The whole run as `RunCommand` would have answered it (for `--json`).
async fn collect_run(mut responses: Streaming<RunAttachedResponse>) -> Result<RunCommandResponse> {
    let mut output = Vec::new();
    while let Some(message) = responses.message().await.map_err(|s| stream_error(&s))? {
        match message.kind {
            Some(run_attached_response::Kind::Stdout(bytes) | run_attached_response::Kind::Stderr(bytes)) => {
                output.extend_from_slice(&bytes)
            }
            Some(run_attached_response::Kind::Exit(exit)) => {
                return Ok(RunCommandResponse {
                    exit_code: exit.exit_code,
                    output: String::from_utf8_lossy(&output).into_owned(),
                });
            }
            None => {}
        }
    }
    Err(no_exit())
}

/// `run --tty`: the local terminal in raw mode, keystrokes and window
/// changes to the command, its screen to ours. Returns the exit code; a
/// terminating signal here ends the run with 128 + its number.
async fn run_in_terminal(
    mut responses: Streaming<RunAttachedResponse>,
    requests: mpsc::Sender<RunAttachedRequest>,
) -> Result<i32> {
    // Registered before raw mode, so a failure leaves the terminal alone.
    let mut window = signal(SignalKind::window_change())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let _raw = tty::RawMode::enable().context("cannot put the terminal in raw mode")?;
    forward_stdin(requests.clone())?;
    let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
    loop {
        tokio::select! {
            message = responses.message() => match message.map_err(|s| stream_error(&s))?.and_then(|m| m.kind) {
                Some(run_attached_response::Kind::Stdout(bytes)) => {
                    write_out(&mut stdout, &bytes).await?;
                }
                Some(run_attached_response::Kind::Stderr(bytes)) => {
                    let _ = write_out(&mut stderr, &bytes).await;
                }
                Some(run_attached_response::Kind::Exit(exit)) => return Ok(exit.exit_code),
                None => return Err(no_exit()),
            },
            Some(()) = window.recv() => {
                if let Some((cols, rows)) = tty::size() {
                    let resize = TtyResize { cols: cols.into(), rows: rows.into() };
                    let _ = requests.send(request(run_attached_request::Kind::Resize(resize))).await;
                }
            }
            // Leaving closes the connection, which stops the remote command.
            Some(()) = hangup.recv() => return Ok(128 + 1),
            Some(()) = interrupt.recv() => return Ok(128 + 2),
            Some(()) = terminate.recv() => return Ok(128 + 15),
        }
    }
}

/// Sends stdin to the command from a thread of its own: a blocking read on
/// a terminal cannot be cancelled, and this way it never holds up the end of
/// the process.
fn forward_stdin(requests: mpsc::Sender<RunAttachedRequest>) -> Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buffer = vec![0; STDIN_CHUNK];
            loop {
                let kind = match stdin.read(&mut buffer) {
                    Ok(0) | Err(_) => run_attached_request::Kind::Eof(RunEof {}),
                    Ok(n) => run_attached_request::Kind::Stdin(buffer[..n].to_vec()),
                };
                let last = matches!(kind, run_attached_request::Kind::Eof(_));
                if requests.blocking_send(request(kind)).is_err() || last {
                    return;
                }
            }
        })
        .context("cannot start reading the terminal")?;
    Ok(())
}

/// `RunCommand`: the output once the command has ended.
async fn run_unary(ctx: &Ctx, s: &Session, app: &AppRef, command: &str) -> Result<()> {
    let request = RunCommandRequest {
        app: app.name.clone(),
        command: command.to_owned(),
    };
    let result = ctx
        .out
        .progress(
            "Running...",
            call_app(app, s.client().await?.apps().run_command(request)),
        )
        .await?;
    if ctx.out.json_mode() {
        ctx.out.json(&result)?;
    } else if result.exit_code == 0 {
        ctx.out.text(&result.output);
    } else {
        eprint!("{}", result.output);
    }
    exit_with(result.exit_code)
}

async fn destroy(ctx: &Ctx, s: &Session, app: &AppRef, confirm: Option<String>) -> Result<()> {
    let id = &app.name;
    let answer = match confirm {
        Some(answer) => answer,
        None if prompt::stdin_is_tty() => {
            ctx.out.note(format!(
                " !    WARNING: Potentially Destructive Action\n !    This command will destroy the application: {id}\n !    To proceed, type \"{id}\" or re-run this command with --confirm={id}\n"
            ));
            prompt::line("> ")?.unwrap_or_default().trim().to_owned()
        }
        None => bail!("refusing to destroy {id} without confirmation; re-run with --confirm={id}"),
    };
    if answer != *id {
        bail!("App {id} does not match confirm {answer}, aborting.");
    }
    let started = Instant::now();
    ctx.out.say(format!("Destroying {id}..."));
    // The line above already names the app; the spinner says what it waits for.
    ctx.out
        .progress(
            "stopping its processes and removing its routes and data",
            call_app(
                app,
                s.client()
                    .await?
                    .apps()
                    .delete_app(DeleteAppRequest { id: id.clone() }),
            ),
        )
        .await?;
    ctx.out.say(format!("done in {}s", started.elapsed().as_secs()));
    remove_remotes(ctx, &s.builder(), id);
    Ok(())
}

/// Removes git remotes that pointed at a destroyed app; a failure is only
/// reported, the app is gone either way.
fn remove_remotes(ctx: &Ctx, builder: &Builder, app: &str) {
    match git::remove_app_remotes(builder, app) {
        Ok(removed) if !removed.is_empty() => ctx.out.say(format!("Git remotes for app {app} removed.")),
        Ok(_) => {}
        Err(err) => ctx.out.note(format!(
            "Warning: could not remove the git remotes of {app}: {err:#}"
        )),
    }
}

async fn transfer(ctx: &Ctx, s: &Session, app: &AppRef, username: &str) -> Result<()> {
    let request = TransferAppRequest {
        id: app.name.clone(),
        owner: username.to_owned(),
    };
    call_app(app, s.client().await?.apps().transfer_app(request)).await?;
    ctx.out
        .say(format!("Transferring {} to {username}... done", app.name));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(controller: &str, platform: Option<&str>) -> Profile {
        Profile {
            controller: controller.into(),
            platform_domain: platform.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn run_takes_tty_only_before_the_command() {
        use clap::Parser;
        let parse = |args: &[&str]| match crate::cli::Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(crate::cli::Command::Apps(Cmd::Run { app, command, .. })) => (app.tty, command),
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(
            parse(&["deis", "run", "-t", "bash"]),
            (true, vec!["bash".to_owned()])
        );
        assert_eq!(
            parse(&["deis", "apps:run", "--tty", "-a", "web", "--", "ls", "-t"]),
            (true, vec!["ls".to_owned(), "-t".to_owned()])
        );
        assert_eq!(
            parse(&["deis", "run", "ls", "-t"]),
            (false, vec!["ls".to_owned(), "-t".to_owned()])
        );
    }

    /// `deis <args>` as `apps:run` sees it: the app flag and the command.
    fn run_words(args: &[&str]) -> Result<(Option<String>, Vec<String>)> {
        use clap::Parser;
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        let argv = std::iter::once(OsString::from("deis")).chain(raw.iter().cloned());
        let mut command = crate::cli::Cli::try_parse_from(argv)?.command;
        match &mut command {
            crate::cli::Command::Apps(cmd) => mark_run_terminator(cmd, &raw),
            other => bail!("parsed as {other:?}"),
        }
        match command {
            crate::cli::Command::Apps(Cmd::Run {
                app,
                command,
                after_terminator,
            }) => run_app_and_command(app.get(), command, after_terminator),
            other => bail!("parsed as {other:?}"),
        }
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn run_takes_the_app_after_the_command_as_deis_did() -> Result<()> {
        let second = Some("second".to_owned());
        for args in [
            &["run", "echo $DEIS_APP", "-a", "second"][..],
            &["run", "echo $DEIS_APP", "--app", "second"],
            &["run", "echo $DEIS_APP", "--app=second"],
            &["apps:run", "echo", "-a", "second", "$DEIS_APP"],
        ] {
            let (app, command) = run_words(args)?;
            assert_eq!(app, second, "{args:?}");
            assert_eq!(command.join(" "), "echo $DEIS_APP", "{args:?}");
        }
        assert_eq!(run_words(&["run", "ls", "-al"])?, (None, words(&["ls", "-al"])));
        assert_eq!(
            run_words(&["run", "-a", "web", "ls", "-la", "-t"])?,
            (Some("web".to_owned()), words(&["ls", "-la", "-t"]))
        );
        Ok(())
    }

    #[test]
    fn run_keeps_everything_after_a_double_dash() -> Result<()> {
        assert_eq!(
            run_words(&["run", "--", "ls", "-a"])?,
            (None, words(&["ls", "-a"]))
        );
        assert_eq!(
            run_words(&["run", "-a", "web", "--", "ls", "--app=x", "--", "-a"])?,
            (Some("web".to_owned()), words(&["ls", "--app=x", "--", "-a"]))
        );
        // A `--` inside the command after an earlier one is the command's.
        assert_eq!(
            run_words(&["run", "--", "--", "-a", "x"])?,
            (None, words(&["--", "-a", "x"]))
        );
        // A `--` among the command's words ends the options there and stays.
        assert_eq!(
            run_words(&["run", "git", "-a", "web", "log", "--", "-a"])?,
            (Some("web".to_owned()), words(&["git", "log", "--", "-a"]))
        );
        // A word that merely equals `--` elsewhere is not a terminator.
        assert_eq!(
            run_words(&["run", "echo", "--", "-a", "x"])?,
            (None, words(&["echo", "--", "-a", "x"]))
        );
        Ok(())
    }

    #[test]
    fn run_refuses_the_app_twice_or_without_a_name() {
        let message = |args: &[&str]| run_words(args).err().map(|e| e.to_string()).unwrap_or_default();
        for args in [
            &["run", "-a", "first", "echo", "-a", "second"][..],
            &["run", "echo", "--app=first", "-a", "second"],
        ] {
            let text = message(args);
            assert!(
                text.starts_with("The app is given twice (first and second)"),
                "{text}"
            );
            assert_eq!(text.lines().count(), 1, "{text}");
        }
        for args in [
            &["run", "ls", "-a"][..],
            &["run", "ls", "-a", "--", "x"],
            &["run", "ls", "--app="],
        ] {
            let text = message(args);
            assert!(
                text.contains("needs an app name") && text.contains("deis run --"),
                "{text}"
            );
        }
    }

    #[test]
    fn app_url_prefers_controller_url_then_domains() {
        let p = profile("http://deis.example.com", None);
        assert_eq!(
            app_url("http://x.io", Some("y"), &p).as_deref(),
            Some("http://x.io")
        );
        assert_eq!(
            app_url("", Some("www.shop.com"), &p).as_deref(),
            Some("www.shop.com")
        );
        assert_eq!(app_url("", Some("shop"), &p).as_deref(), Some("shop.example.com"));
        assert_eq!(app_url("", None, &p), None);
    }

    #[test]
    fn bare_domain_uses_platform_domain_or_keeps_ip_hosts_alone() {
        assert_eq!(
            app_url(
                "",
                Some("shop"),
                &profile("http://127.0.0.1:8000", Some("local.deis"))
            )
            .as_deref(),
            Some("shop.local.deis")
        );
        assert_eq!(
            app_url("", Some("shop"), &profile("http://127.0.0.1:8000", None)).as_deref(),
            Some("shop")
        );
    }
}
