//! `config:*`: environment variables, plus `.env` pull and push.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use deis_client::proto::prost_types::Value;
use deis_client::v2::{Config, GetConfigRequest, SetConfigRequest};

use crate::cli::AppArg;
use crate::context::{Ctx, Session, call_app};
use crate::envfile;
use crate::git::AppRef;
use crate::pb;
use crate::profile;
use crate::prompt;

/// `config:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List environment variables for an app
    #[command(name = "config:list", alias = "config")]
    List {
        #[command(flatten)]
        app: AppArg,
        /// Print the variables on one line: KEY=value KEY2=value2
        #[arg(long, conflicts_with = "diff")]
        oneline: bool,
        /// Print one KEY=value per line, for diffing
        #[arg(long)]
        diff: bool,
    },
    /// Set environment variables for an app
    ///
    /// Each argument is KEY=value; the value is everything after the first
    /// '=' (spaces and further '=' included; quote it for the shell). Setting
    /// variables creates a new release. An SSH_KEY value may be a private key,
    /// or the path of a key file, and is sent base64-encoded.
    #[command(name = "config:set")]
    Set {
        #[command(flatten)]
        app: AppArg,
        /// Variables to set
        #[arg(value_name = "KEY=VALUE", required = true)]
        values: Vec<String>,
    },
    /// Unset environment variables for an app
    #[command(name = "config:unset")]
    Unset {
        #[command(flatten)]
        app: AppArg,
        /// Variables to remove
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// Extract environment variables to .env
    ///
    /// Writes .env in the current directory, or prints to stdout when stdout
    /// is not a terminal.
    #[command(name = "config:pull")]
    Pull {
        #[command(flatten)]
        app: AppArg,
        /// Ask before replacing a value that differs from .env (keeps the other lines)
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Replace an existing .env
        #[arg(short = 'o', long)]
        overwrite: bool,
    },
    /// Import environment variables from a .env file
    ///
    /// Reads the file given with --path, else stdin when it is piped, else
    /// ./.env. Lines are KEY=value; '#' comments, blank lines, 'export ' and
    /// quoted (also multi-line) values are understood.
    #[command(name = "config:push")]
    Push {
        #[command(flatten)]
        app: AppArg,
        /// The file to read
        #[arg(short = 'p', long, value_name = "PATH")]
        path: Option<PathBuf>,
    },
}

/// Runs a `config:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { app, oneline, diff } => {
            let app = s.app(app.get())?;
            let config = get(&s, &app).await?;
            let format = if oneline {
                Format::Oneline
            } else if diff {
                Format::Diff
            } else {
                Format::Table
            };
            print_config(ctx, &app.name, &config, format)
        }
        Cmd::Set { app, values } => {
            let pairs = values
                .iter()
                .map(|v| envfile::parse_config_var(v))
                .collect::<Result<Vec<_>, _>>()?;
            set(ctx, &s, &s.app(app.get())?, pairs).await
        }
        Cmd::Unset { app, keys } => unset(ctx, &s, &s.app(app.get())?, keys).await,
        Cmd::Pull {
            app,
            interactive,
            overwrite,
        } => pull(ctx, &s, &s.app(app.get())?, interactive, overwrite).await,
        Cmd::Push { app, path } => {
            let (source, content) = read_push_source(path.as_deref())?;
            let pairs = envfile::parse(&content).with_context(|| format!("cannot parse {source}"))?;
            if pairs.is_empty() {
                bail!("{source} holds no variables; write KEY=value lines");
            }
            set(ctx, &s, &s.app(app.get())?, pairs).await
        }
    }
}

/// The app's current configuration.
pub(crate) async fn get(s: &Session, app: &AppRef) -> Result<Config> {
    let response = call_app(
        app,
        s.client().await?.config().get_config(GetConfigRequest {
            app: app.name.clone(),
        }),
    )
    .await?;
    Ok(response.config.unwrap_or_default())
}

/// Sends a configuration change behind a spinner labelled `label`, prints
/// Deis's `<label> done` and returns the new configuration. Every topic that
/// edits the config (limits, tags, registry, health checks) goes through here.
pub(crate) async fn apply(
    ctx: &Ctx,
    s: &Session,
    app: &AppRef,
    label: &str,
    change: SetConfigRequest,
) -> Result<Config> {
    let (config, version) = send(ctx, s, app, label, change).await?;
    ctx.out.say(format!("{label} done, v{version}\n"));
    Ok(config)
}

/// [`apply`] without the `done` line; returns the new config and release version.
async fn send(
    ctx: &Ctx,
    s: &Session,
    app: &AppRef,
    label: &str,
    change: SetConfigRequest,
) -> Result<(Config, i32)> {
    let request = SetConfigRequest {
        app: app.name.clone(),
        ..change
    };
    let response = ctx
        .out
        .progress(
            label,
            call_app(app, s.client().await?.config().set_config(request)),
        )
        .await?;
    Ok((response.config.unwrap_or_default(), response.release_version))
}

async fn set(ctx: &Ctx, s: &Session, app: &AppRef, pairs: Vec<(String, String)>) -> Result<()> {
    let mut values: HashMap<String, Value> = HashMap::new();
    for (key, value) in pairs {
        let value = if key == "SSH_KEY" {
            envfile::ssh_key_value(&value, |path| {
                let path = expand_tilde(path);
                path.is_file().then(|| fs::read_to_string(&path).ok()).flatten()
            })
            .map_err(anyhow::Error::msg)?
        } else {
            value
        };
        if key.starts_with("HEALTHCHECK_") {
            ctx.out.note(
                "Hey there! We've noticed that you're using 'deis config:set HEALTHCHECK_URL'\n\
                 to set up healthchecks. This functionality has been deprecated. In the future, please use\n\
                 'deis healthchecks' to set up application health checks. Thanks!",
            );
        }
        values.insert(key, pb::string(value));
    }
    let label = "Creating config...";
    let config = apply(
        ctx,
        s,
        app,
        label,
        SetConfigRequest {
            values,
            ..Default::default()
        },
    )
    .await?;
    print_config(ctx, &app.name, &config, Format::Table)
}

async fn unset(ctx: &Ctx, s: &Session, app: &AppRef, keys: Vec<String>) -> Result<()> {
    let label = "Removing config...";
    let change = SetConfigRequest {
        values: pb::unset_map(keys),
        ..Default::default()
    };
    let config = apply(ctx, s, app, label, change).await?;
    print_config(ctx, &app.name, &config, Format::Table)
}

/// How `config:list` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Oneline,
    Diff,
}

fn print_config(ctx: &Ctx, app: &str, config: &Config, format: Format) -> Result<()> {
    if ctx.out.json_mode() {
        return ctx.out.json(config);
    }
    let values: BTreeMap<&String, &String> = config.values.iter().collect();
    match format {
        Format::Oneline => {
            let line: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            ctx.out.line(line.join(" "));
        }
        Format::Diff => {
            for (key, value) in &values {
                ctx.out.line(format!("{key}={value}"));
            }
        }
        Format::Table => {
            ctx.out.header(format!("{app} Config"));
            if !values.is_empty() {
                ctx.out.line(
                    ctx.out
                        .kv_table(values.iter().map(|(k, v)| ((*k).clone(), (*v).clone()))),
                );
            }
        }
    }
    Ok(())
}

async fn pull(ctx: &Ctx, s: &Session, app: &AppRef, interactive: bool, overwrite: bool) -> Result<()> {
    let config = get(s, app).await?;
    if ctx.out.json_mode() {
        return ctx.out.json(&config);
    }
    let remote: BTreeMap<String, String> = config.values.into_iter().collect();
    if !ctx.out.stdout_is_tty() {
        ctx.out.text(&envfile::format(&remote));
        return Ok(());
    }
    let path = Path::new(".env");
    let existing = path.exists();
    let merged = if interactive {
        let local = if existing {
            let text = fs::read_to_string(path).context("cannot read .env")?;
            envfile::parse(&text)
                .context("cannot parse .env")?
                .into_iter()
                .collect()
        } else {
            BTreeMap::new()
        };
        merge_interactively(local, remote)?
    } else {
        if existing && !overwrite {
            bail!(".env already exists, pass -o to overwrite");
        }
        remote
    };
    profile::write_private(path, envfile::format(&merged).as_bytes()).context("cannot write .env")?;
    Ok(())
}

/// Keeps local values, adds missing remote ones, and asks before replacing
/// a local value with a different remote one.
fn merge_interactively(
    mut local: BTreeMap<String, String>,
    remote: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    for (key, value) in remote {
        match local.get(&key) {
            Some(current) if *current == value => {}
            Some(current) => {
                if prompt::confirm(&format!("{key}: overwrite {current} with {value}? (y/N) "))? {
                    local.insert(key, value);
                }
            }
            None => {
                local.insert(key, value);
            }
        }
    }
    Ok(local)
}

/// `~/x` → `$HOME/x`, for key paths the shell did not expand.
fn expand_tilde(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// What `config:push` reads: `--path`, else piped stdin, else `./.env`.
fn read_push_source(path: Option<&Path>) -> Result<(String, String)> {
    if let Some(path) = path {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok((path.display().to_string(), text));
    }
    if stdin_has_data() {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        return Ok(("stdin".into(), text));
    }
    let text = fs::read_to_string(".env").context("cannot read .env (pass --path to read another file)")?;
    Ok((".env".into(), text))
}

/// Whether stdin is a pipe or a non-empty file (Deis's test): a terminal
/// or /dev/null means "read .env instead".
#[cfg(unix)]
fn stdin_has_data() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.file_type().is_fifo() || (m.is_file() && m.len() > 0))
}

#[cfg(not(unix))]
fn stdin_has_data() -> bool {
    !prompt::stdin_is_tty()
}

/// A map-valued config attribute that has its own topic (`tags:*`,
/// `registry:*`, `timeouts:*`): listing, setting and unsetting work the same
/// for all of them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ConfigMap {
    Tags,
    Registry,
    /// Termination grace periods per process type (Hephy's `timeouts`).
    Timeouts,
}

/// A change to a [`ConfigMap`].
pub(crate) enum MapEdit {
    Set(Vec<(String, String)>),
    Unset(Vec<String>),
}

impl ConfigMap {
    fn field(self) -> &'static str {
        match self {
            ConfigMap::Tags => "tags",
            ConfigMap::Registry => "registry",
            ConfigMap::Timeouts => "termination_grace_period",
        }
    }

    /// The `=== <app> <title>` of the listing.
    fn title(self) -> &'static str {
        match self {
            ConfigMap::Tags => "Tags",
            ConfigMap::Registry => "Registry",
            ConfigMap::Timeouts => "Timeouts",
        }
    }

    /// The spinner label while a change is applied.
    fn label(self) -> &'static str {
        match self {
            ConfigMap::Tags => "Applying tags...",
            ConfigMap::Registry => "Applying registry information...",
            ConfigMap::Timeouts => "Applying timeouts...",
        }
    }

    /// What the listing says when the map is empty, if anything.
    fn when_empty(self) -> Option<&'static str> {
        match self {
            ConfigMap::Tags | ConfigMap::Registry => None,
            ConfigMap::Timeouts => Some("Default (30 sec) or controlled by the runtime"),
        }
    }

    fn of(self, config: &Config) -> &HashMap<String, String> {
        match self {
            ConfigMap::Tags => &config.tags,
            ConfigMap::Registry => &config.registry,
            ConfigMap::Timeouts => &config.termination_grace_period,
        }
    }

    fn request(self, map: HashMap<String, Value>) -> SetConfigRequest {
        match self {
            ConfigMap::Tags => SetConfigRequest {
                tags: map,
                ..Default::default()
            },
            ConfigMap::Registry => SetConfigRequest {
                registry: map,
                ..Default::default()
            },
            ConfigMap::Timeouts => SetConfigRequest {
                termination_grace_period: map,
                ..Default::default()
            },
        }
    }

    /// Lists the map (`edit` is `None`) or applies `edit`, then prints it.
    pub(crate) async fn run(self, ctx: &Ctx, app: AppArg, edit: Option<MapEdit>) -> Result<()> {
        let s = ctx.session()?;
        let app = s.app(app.get())?;
        let config = match edit {
            None => get(&s, &app).await?,
            Some(edit) => {
                let map = match edit {
                    MapEdit::Set(pairs) => pb::set_map(pairs),
                    MapEdit::Unset(keys) => pb::unset_map(keys),
                };
                apply(ctx, &s, &app, self.label(), self.request(map)).await?
            }
        };
        if ctx.out.json_mode() {
            return ctx
                .out
                .json_value(&crate::output::to_json(&config)?[self.field()]);
        }
        ctx.out.header(format!("{} {}", app.name, self.title()));
        let map = self.of(&config);
        if let (true, Some(text)) = (map.is_empty(), self.when_empty()) {
            ctx.out.line(text);
        } else if !map.is_empty() {
            let rows = crate::output::sorted(map)
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()));
            ctx.out.line(ctx.out.kv_table(rows));
        }
        Ok(())
    }
}
