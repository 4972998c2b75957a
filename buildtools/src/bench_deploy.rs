//! `buildtools/bench deploy`: the local runtime's deploy latency and the
//! supervisor's memory.
//!
//! - Ten deploys of a small Python web app, each measured from the call to
//!   the new release answering on its published endpoint; the app's own
//!   start-up time (the same command started by hand, until its port
//!   accepts) is measured separately and subtracted.
//! - The resident memory of this process (which hosts only the runtime)
//!   before and after starting 50 idle app processes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deis_objects::Objects;
use deis_runtime::{LocalRuntime, RuntimeConfig};
use deis_scheduler::{BuildKind, BuildSpec, DeploySpec, NoLogs, ReleaseSpec, Scheduler};

use crate::{Samples, ms};

const SERVER: &str = r#"import os, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ['WORKFLOW_RELEASE'].encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"#;

fn get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    write!(stream, "GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn spec(
    version: i32,
    image: &str,
    procfile: &[(&str, &str)],
    structure: &[(&str, i32)],
    routable: bool,
) -> DeploySpec {
    DeploySpec {
        release: ReleaseSpec {
            app: "bench".into(),
            version,
            summary: format!("v{version}"),
            created: chrono::Utc::now(),
            build: BuildSpec {
                uuid: "bench-build".into(),
                kind: BuildKind::Buildpack,
                image: image.into(),
                sha: String::new(),
                procfile: procfile
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            config: Default::default(),
            env: [("WORKFLOW_RELEASE".to_string(), format!("v{version}"))].into(),
        },
        structure: structure.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        routable_type: routable.then(|| "web".to_string()),
        deploy_timeout: Duration::from_secs(60),
        autoscale: BTreeMap::new(),
    }
}

/// The app's own start-up: `python3 server.py` until its port accepts.
fn app_startup(dir: &std::path::Path) -> Result<Duration> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let start = Instant::now();
    let mut child = std::process::Command::new("python3")
        .arg("server.py")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("WORKFLOW_RELEASE", "v0")
        .spawn()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect(addr).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the app did not start");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    Ok(took)
}

pub(crate) async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("server.py"), SERVER)?;
    let archive = dir.path().join("slug.tgz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()?;
    anyhow::ensure!(status.success(), "tar failed");
    let objects = Objects::local(&dir.path().join("objects"))?;
    let image = "home/bench:git-00000000/push/slug.tgz";
    objects.put_file(image, &archive).await?;

    let baseline_rss = rss_kib();
    let runtime = LocalRuntime::start(
        RuntimeConfig {
            state_dir: dir.path().join("runtime"),
            node_labels: BTreeMap::new(),
            containers: None,
            app_users: false,
        },
        objects,
        Arc::new(NoLogs),
    )?;
    let web = &[("web", "python3 server.py")];

    let mut startup = Samples::new();
    for _ in 0..10 {
        startup.0.push(app_startup(&src)?);
    }
    let mut deploys = Samples::new();
    for version in 1..=11 {
        let spec = spec(version, image, web, &[("web", 1)], true);
        let start = Instant::now();
        runtime.deploy(&spec).await?;
        let expected = format!("v{version}");
        loop {
            let addrs: Vec<SocketAddr> = runtime
                .endpoints()
                .borrow()
                .get("bench")
                .map(|e| e.iter().map(|e| e.addr).collect())
                .unwrap_or_default();
            if addrs
                .iter()
                .any(|a| get(*a).as_deref() == Some(expected.as_str()))
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("v{version} never answered");
            }
        }
        // The first deploy unpacks the slug; the ten after it are measured.
        if version > 1 {
            deploys.0.push(start.elapsed());
        }
    }
    let overhead = deploys.median().saturating_sub(startup.median());
    println!(
        "app start-up (python3 server.py until its port accepts): median {}",
        ms(startup.median())
    );
    println!(
        "deploy to answering, 10 deploys: median {} p99 {}",
        ms(deploys.median()),
        ms(deploys.percentile(99.0))
    );
    println!(
        "deploy overhead beyond the app's start-up: {} (target <= 1000 ms)",
        ms(overhead)
    );

    // Supervisor memory with 50 idle processes.
    runtime.destroy("bench").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let idle = spec(20, image, &[("worker", "sleep 100000")], &[("worker", 50)], false);
    runtime
        .deploy(&idle)
        .await
        .context("starting 50 idle processes")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_50 = rss_kib();
    let running = runtime.list("bench").await?.len();
    println!(
        "supervisor resident memory: {:.1} MB before the runtime started, {:.1} MB with the runtime idle, \
         {:.1} MB with {running} idle processes: {:.1} MB for the 50 (target <= 20 MB)",
        baseline_rss as f64 / 1024.0,
        before as f64 / 1024.0,
        with_50 as f64 / 1024.0,
        with_50.saturating_sub(before) as f64 / 1024.0
    );
    runtime.shutdown().await;
    Ok(())
}
