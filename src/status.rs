//! `deis-workflow status`: each component's health, version and address,
//! with warnings for anything degraded, and whether a newer release exists
//! (`--release-feed`). The controller gathers the reports; the checks of
//! components wired in this process are registered here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use deis_auth::PlatformSecret;
use deis_builder::Objects;
use deis_controller::{ComponentCheck, ComponentReport, Controller};
use deis_proto::internal::internal_service_client::InternalServiceClient;
use deis_proto::internal::{ComponentState, GetPlatformStatusRequest, GetPlatformStatusResponse};
use deis_xds::Feed;

/// A check that resolves to `report()` each time.
fn check<F, Fut>(report: F) -> ComponentCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ComponentReport> + Send + 'static,
{
    Arc::new(move || Box::pin(report()))
}

/// Registers the checks of the components `up` and `controller` run.
pub(crate) fn register_controller(controller: &Controller, url: &str) {
    let url = url.to_owned();
    controller.add_component_check(check(move || {
        let url = url.clone();
        async move { ComponentReport::new("controller", url, Vec::new()) }
    }));
}

/// The builder's SSH server answers.
pub(crate) fn register_builder(controller: &Controller, ssh: SocketAddr) {
    controller.add_component_check(check(move || async move {
        let address = format!("ssh://{ssh}");
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(ssh)).await {
            Ok(Ok(_)) => ComponentReport::new("builder", address, Vec::new()),
            Ok(Err(e)) => ComponentReport::down(
                "builder",
                address,
                format!("The SSH server does not accept connections: {e}."),
            ),
            Err(_) => ComponentReport::down(
                "builder",
                address,
                "The SSH server did not answer within 2 s.".into(),
            ),
        }
    }));
}

/// The registry answers the OCI version check (401 without credentials).
pub(crate) fn register_registry(controller: &Controller, addr: SocketAddr) {
    controller.add_component_check(check(move || async move {
        let address = format!("http://{addr}");
        let answer = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map(|client| client.get(format!("{address}/v2/")).send());
        let answer = match answer {
            Ok(request) => request.await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(response) if response.headers().contains_key("docker-distribution-api-version") => {
                ComponentReport::new("registry", address, Vec::new())
            }
            Ok(response) => ComponentReport::down(
                "registry",
                address,
                format!(
                    "The registry answered {} without the OCI version header.",
                    response.status()
                ),
            ),
            Err(e) => {
                ComponentReport::down("registry", address, format!("The registry does not answer: {e}."))
            }
        }
    }));
}

/// Routing feed clients that rejected config.
pub(crate) fn register_feed(controller: &Controller, feed: Feed, addr: SocketAddr) {
    controller.add_component_check(check(move || {
        let feed = feed.clone();
        async move {
            let clients = feed.clients();
            let warnings = clients
                .iter()
                .flat_map(|client| {
                    client.rejected.iter().map(move |(kind, rejection)| {
                        let kind = kind.rsplit('.').next().unwrap_or(kind);
                        format!(
                            "The xDS client {} rejected {kind} version {}: {}",
                            client.node, rejection.version, rejection.message
                        )
                    })
                })
                .collect();
            ComponentReport::new(
                "routing feed",
                format!("{addr}; xDS clients: {}", clients.len()),
                warnings,
            )
        }
    }));
}

/// The embedded router listens.
pub(crate) fn register_router(controller: &Controller, router: deis_router::Router) {
    controller.add_component_check(check(move || {
        let router = router.clone();
        async move {
            let addrs = router.local_addrs();
            let address = addrs
                .iter()
                .map(|(name, addr)| format!("{name} {addr}"))
                .collect::<Vec<_>>()
                .join(", ");
            if addrs.is_empty() {
                ComponentReport::down("router", address, "The router listens on nothing yet.".into())
            } else {
                ComponentReport::new("router", address, Vec::new())
            }
        }
    }));
}

/// The logger's listeners and what it holds.
pub(crate) fn register_logger(controller: &Controller, logger: &crate::logging::RunningLogger) {
    let (grpc, forward, store) = (
        logger.grpc_addr,
        logger.forward.local_addr(),
        logger.logger.clone(),
    );
    controller.add_component_check(check(move || {
        let store = store.clone();
        async move {
            let usage = store.usage();
            ComponentReport::new(
                "logger",
                format!(
                    "gRPC {grpc}, Forward {forward}; {} lines of {} apps",
                    usage.lines, usage.apps
                ),
                Vec::new(),
            )
        }
    }));
}

/// Object storage answers.
pub(crate) fn register_objects(controller: &Controller, objects: Objects, location: String) {
    controller.add_component_check(check(move || {
        let (objects, location) = (objects.clone(), location.clone());
        async move {
            match objects.exists("deis-status-probe").await {
                Ok(_) => ComponentReport::new("object storage", location, Vec::new()),
                Err(e) => ComponentReport::down(
                    "object storage",
                    location,
                    format!("Object storage does not answer: {e}."),
                ),
            }
        }
    }));
}

/// How an operator's command reaches the running platform.
#[derive(Args, Clone)]
pub(crate) struct PlatformArgs {
    /// The controller to ask.
    #[arg(long, env = "DEIS_CONTROLLER_URL", default_value = "http://127.0.0.1:8000")]
    controller_url: String,
    /// Where the platform keeps its state (for the platform secret).
    #[arg(long, env = "DEIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The platform secret (default: the one in the data directory).
    #[arg(long, env = "DEIS_PLATFORM_SECRET", hide_env_values = true)]
    platform_secret: Option<String>,
}

/// A connection to the controller, and the platform secret to present.
pub(crate) struct PlatformClient {
    pub(crate) channel: tonic::transport::Channel,
    secret: tonic::metadata::AsciiMetadataValue,
}

impl PlatformClient {
    /// A request carrying the platform secret.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert(deis_controller::PLATFORM_SECRET_METADATA, self.secret.clone());
        request
    }
}

impl PlatformArgs {
    /// Connects to the controller with the platform secret.
    pub(crate) async fn connect(&self) -> Result<PlatformClient> {
        // A command that asks the platform never creates its secret: a
        // new one could not match the running platform's.
        let secret = match &self.platform_secret {
            Some(secret) => PlatformSecret::new(secret.clone())?,
            None => {
                let dir = self.data_dir.clone().unwrap_or_else(crate::default_data_dir);
                let path = dir.join("platform-secret");
                PlatformSecret::load(&path)?.with_context(|| {
                    format!(
                        "There is no platform secret at {}; pass the running platform's --data-dir or --platform-secret.",
                        path.display()
                    )
                })?
            }
        };
        let channel = tonic::transport::Endpoint::from_shared(self.controller_url.clone())
            .with_context(|| format!("{} is not a URL", self.controller_url))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| {
                format!(
                    "The controller at {} does not answer; is `deis-workflow up` running?",
                    self.controller_url
                )
            })?;
        let secret = secret
            .expose()
            .parse()
            .context("the platform secret is not header text")?;
        Ok(PlatformClient { channel, secret })
    }
}

#[derive(Args, Clone)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    platform: PlatformArgs,
    /// A URL answering with the newest release (JSON `{"version": "1.2.3"}`, GitHub's `{"tag_name": "v1.2.3"}`, or the bare version).
    #[arg(long, env = "DEIS_RELEASE_FEED")]
    release_feed: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn fetch_status(args: &StatusArgs) -> Result<GetPlatformStatusResponse> {
    let client = args.platform.connect().await?;
    let response = InternalServiceClient::new(client.channel.clone())
        .get_platform_status(client.request(GetPlatformStatusRequest {}))
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    Ok(response.into_inner())
}

/// The newest version a release feed announces.
async fn latest_release(url: &str) -> Result<String> {
    let body = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let version = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(json) => json
            .get("version")
            .or_else(|| json.get("tag_name"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .context("the release feed's JSON has no version or tag_name")?,
        Err(_) => body.trim().to_owned(),
    };
    Ok(version.trim_start_matches('v').to_owned())
}

/// `1.10.0` is newer than `1.9.3`; anything unparsable is never newer.
fn is_newer(candidate: &str, current: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> {
        v.split(['.', '-', '+'])
            .take(3)
            .map(|part| part.parse().ok())
            .collect()
    };
    match (parse(candidate), parse(current)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

fn state_name(state: i32) -> &'static str {
    match ComponentState::try_from(state) {
        Ok(ComponentState::Ok) => "ok",
        Ok(ComponentState::Degraded) => "degraded",
        Ok(ComponentState::Down) => "down",
        _ => "unknown",
    }
}

/// Runs `deis-workflow status`; fails (exit 1) when anything is not ok.
pub(crate) async fn status(args: StatusArgs) -> Result<()> {
    let status = fetch_status(&args).await?;
    let newer = match &args.release_feed {
        Some(url) => match latest_release(url).await {
            Ok(latest) if is_newer(&latest, &status.platform_version) => Some(Ok(latest)),
            Ok(_) => None,
            Err(e) => Some(Err(format!("The release feed {url} could not be read: {e}."))),
        },
        None => None,
    };
    let unhealthy = status
        .components
        .iter()
        .filter(|c| c.state != i32::from(ComponentState::Ok))
        .count();
    if args.json {
        let components: Vec<serde_json::Value> = status
            .components
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "state": state_name(c.state), "version": c.version,
                    "address": c.address, "warnings": c.warnings,
                })
            })
            .collect();
        let mut value = serde_json::json!({
            "platform_version": status.platform_version,
            "components": components,
        });
        if let Some(Ok(latest)) = &newer {
            value["newer_version"] = serde_json::json!(latest);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&status));
        match &newer {
            Some(Ok(latest)) => println!(
                "\nA newer release is out: {latest} (this platform runs {}).",
                status.platform_version
            ),
            Some(Err(e)) => println!("\n{e}"),
            None => {}
        }
    }
    if unhealthy > 0 {
        let (count, verb) = if unhealthy == 1 {
            ("1 component".to_owned(), "needs")
        } else {
            (format!("{unhealthy} components"), "need")
        };
        bail!("{count} {verb} attention (see the warnings above)");
    }
    Ok(())
}

/// The status as a table, then the warnings.
fn render(status: &GetPlatformStatusResponse) -> String {
    let width = |f: fn(&deis_proto::internal::ComponentStatus) -> usize| {
        status.components.iter().map(f).max().unwrap_or(0)
    };
    let name_w = width(|c| c.name.len()).max("COMPONENT".len());
    let version_w = width(|c| c.version.len()).max("VERSION".len());
    let mut out = format!(
        "deis-workflow {}\n\n{:name_w$}  {:8}  {:version_w$}  ADDRESS\n",
        status.platform_version, "COMPONENT", "STATE", "VERSION"
    );
    for c in &status.components {
        out.push_str(&format!(
            "{:name_w$}  {:8}  {:version_w$}  {}\n",
            c.name,
            state_name(c.state),
            c.version,
            c.address
        ));
    }
    let warnings: Vec<String> = status
        .components
        .iter()
        .flat_map(|c| c.warnings.iter().map(move |w| format!("  {}: {w}", c.name)))
        .collect();
    if !warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in warnings {
            out.push_str(&w);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_newer;

    #[test]
    fn versions_compare_numerically() {
        assert!(is_newer("0.10.0", "0.9.3"));
        assert!(is_newer("1.0.0", "0.1.0"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("0.0.9", "0.1.0"));
        assert!(!is_newer("garbage", "0.1.0"));
    }
}
