//! Project tooling. `buildtools/bench <name>` runs a benchmark (release
//! build); benchmarks print medians and percentiles and are not part of the
//! timed test suite.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod bench_api;
mod bench_deploy;
mod bench_e2e;
mod bench_gateway;
mod bench_k8s;
mod bench_logs;
mod bench_push;
mod bench_registry;
mod bench_router;

/// Latency samples of one measurement.
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn new() -> Samples {
        Samples(Vec::new())
    }

    pub(crate) async fn time<T, F: std::future::Future<Output = Result<T>>>(&mut self, f: F) -> Result<T> {
        let start = Instant::now();
        let out = f.await?;
        self.0.push(start.elapsed());
        Ok(out)
    }

    pub(crate) fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "n={} p50={} p99={} max={}",
            self.0.len(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.percentile(100.0))
        )
    }

    pub(crate) fn median(&self) -> Duration {
        self.percentile(50.0)
    }
}

/// The middle value (the upper one of an even count); the default for none.
pub(crate) fn median<T: PartialOrd + Copy + Default>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// A free loopback port (for a server started next).
pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs a command to completion; its stdout, or an error with its output.
pub(crate) fn exec(command: &mut std::process::Command) -> Result<String> {
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

/// Writes the OpenAPI document of the REST API: the gateway's own rules
/// over the public package, so the document and the routes cannot disagree.
fn openapi(path: &std::path::Path) -> Result<()> {
    let gateway = deis_gateway::Gateway::for_package(
        &deis_proto::DESCRIPTOR_POOL,
        deis_controller::PUBLIC_PACKAGE,
        deis_gateway::GatewayOptions::default(),
    )?;
    let mut text = serde_json::to_string_pretty(&deis_gateway::openapi::document(&gateway))?;
    text.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["bench", "api"] => bench_api::run().await.context("bench api"),
        ["bench", "push"] => bench_push::run().await.context("bench push"),
        ["bench", "deploy"] => bench_deploy::run().await.context("bench deploy"),
        ["bench", "router"] => bench_router::router().await.context("bench router"),
        ["bench", "converge"] => bench_router::converge().await.context("bench converge"),
        ["bench", "logs"] => bench_logs::run().await.context("bench logs"),
        ["bench", "e2e"] => tokio::task::spawn_blocking(bench_e2e::run)
            .await
            .context("bench e2e")?
            .context("bench e2e"),
        ["bench", "gateway"] => bench_gateway::run().await.context("bench gateway"),
        ["bench", "k8s"] => bench_k8s::run().await.context("bench k8s"),
        ["bench", "registry"] => tokio::task::spawn_blocking(bench_registry::run)
            .await
            .context("bench registry")?
            .context("bench registry"),
        ["openapi", path] => openapi(std::path::Path::new(path)),
        _ => bail!(
            "usage: buildtools bench api|push|deploy|router|converge|logs|e2e|registry|gateway|k8s, or buildtools openapi FILE"
        ),
    }
}
