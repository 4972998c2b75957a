//! `deis-workflow`: the platform's server binary.
//!
//! `up` runs every component in one process on embedded defaults (SQLite and
//! local files in one data directory); the other subcommands run one
//! component each, for split deployments.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use deis_auth::PlatformSecret;
use deis_controller::{Controller, ControllerConfig, RegistrationMode};
use deis_scheduler::{NoRuntime, Scheduler};
use deis_store::Store;

#[derive(Parser)]
#[command(
    name = "deis-workflow",
    version,
    about = "A Heroku-style platform: git push, get a running app."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole platform on embedded defaults (SQLite and local files in the data directory).
    Up(ServerArgs),
    /// Run only the controller (gRPC API) for split deployments.
    Controller(ServerArgs),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Where the platform keeps its state (database, platform secret).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:pass@host/db); defaults to SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args, Clone)]
struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address of the controller's API (gRPC).
    #[arg(long, env = "DEIS_CONTROLLER_ADDR", default_value = "127.0.0.1:8000")]
    controller_addr: SocketAddr,
    /// Apps answer at <app>.<platform-domain>.
    #[arg(long, env = "DEIS_PLATFORM_DOMAIN", default_value = "localhost")]
    platform_domain: String,
    /// Port the router serves apps on (shown in app URLs).
    #[arg(long, env = "DEIS_ROUTER_PORT", default_value_t = 8080)]
    router_port: u16,
    /// Host users `git push` to (shown in git remotes).
    #[arg(long, env = "DEIS_BUILDER_HOST", default_value = "127.0.0.1")]
    builder_host: String,
    /// Port users `git push` to.
    #[arg(long, env = "DEIS_BUILDER_PORT", default_value_t = 2222)]
    builder_port: u16,
    /// Who may register: enabled, disabled or admin_only (the first user may always register).
    #[arg(long, env = "DEIS_REGISTRATION_MODE", default_value = "admin_only")]
    registration_mode: RegistrationMode,
    /// Comma-separated app names nobody may use.
    #[arg(long, env = "DEIS_RESERVED_NAMES", value_delimiter = ',')]
    reserved_names: Option<Vec<String>>,
    /// The secret platform components authenticate with (default: generated into the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("deis-workflow");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/deis-workflow"),
        None => PathBuf::from("/var/lib/deis-workflow"),
    }
}

impl StoreArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    fn ensure_data_dir(&self) -> Result<PathBuf> {
        let dir = self.data_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The data directory holds the platform secret and every user's
            // certificates: nobody else may read it.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
        }
        Ok(dir)
    }

    fn database_url(&self, data_dir: &Path) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", data_dir.join("deis.sqlite3").display()),
        }
    }

    async fn open(&self) -> Result<(Store, PathBuf)> {
        let dir = self.ensure_data_dir()?;
        let url = self.database_url(&dir);
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("cannot open the database ({})", redact(&url)))?;
        store
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        Ok((store, dir))
    }
}

/// Hides the password of a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn run_controller(args: ServerArgs, embedded: bool) -> Result<()> {
    let (store, data_dir) = args.store.open().await?;
    let secret = match &args.platform_secret {
        Some(secret) => PlatformSecret::new(secret.clone())?,
        None => PlatformSecret::load_or_create(&data_dir.join("platform-secret"))?,
    };
    let mut config = ControllerConfig {
        platform_domain: args.platform_domain.clone(),
        router_port: args.router_port,
        builder_host: args.builder_host.clone(),
        builder_port: args.builder_port,
        registration_mode: args.registration_mode,
        ..ControllerConfig::default()
    };
    if let Some(names) = &args.reserved_names {
        config.reserved_names = names
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
    }
    let scheduler: Arc<dyn Scheduler> = Arc::new(NoRuntime);
    let controller = Controller::new(store, scheduler, config, secret);
    let listener = tokio::net::TcpListener::bind(args.controller_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another deis-workflow running?)",
                args.controller_addr
            )
        })?;
    let addr = listener.local_addr()?;
    tokio::spawn({
        let controller = controller.clone();
        async move { controller.converge().await }
    });
    if embedded {
        print_ready(addr, &args, &data_dir);
    } else {
        tracing::info!(%addr, "controller listening");
    }
    controller
        .serve(listener, shutdown_signal())
        .await
        .context("the controller stopped")?;
    eprintln!("deis-workflow stopped.");
    Ok(())
}

fn print_ready(addr: SocketAddr, args: &ServerArgs, data_dir: &Path) {
    let controller = format!("http://{addr}");
    println!("deis-workflow {} is up.", env!("CARGO_PKG_VERSION"));
    println!();
    println!("  Controller   {controller}");
    println!(
        "  Git remote   ssh://git@{}:{}/<app>.git",
        args.builder_host, args.builder_port
    );
    println!(
        "  App URLs     http://<app>.{}:{}",
        args.platform_domain, args.router_port
    );
    println!("  Data         {}", data_dir.display());
    println!();
    println!("Next:");
    println!("  deis register {controller}");
    println!("  deis create myapp");
    println!("  deis config:set GREETING=hello -a myapp");
    println!();
    println!("Press Ctrl-C to stop.");
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up(args) => run_controller(args, true).await,
        Command::Controller(args) => run_controller(args, false).await,
        Command::Migrate(args) => {
            args.open().await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Version => {
            println!(
                "deis-workflow {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("DEIS_GIT_SHA")
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact("postgres://deis:secret@db/deis"),
            "postgres://deis:***@db/deis"
        );
        assert_eq!(redact("sqlite:///tmp/x?mode=rwc"), "sqlite:///tmp/x?mode=rwc");
    }
}
