//! `buildtools bench k8s`: the Kubernetes scheduler against the in-memory
//! API server (`deis-kube-fake`): API requests per deploy and per scale,
//! and the time to render and diff 1,000 apps when nothing changed (target:
//! no writes, ≤ 2 s). The fake answers in microseconds, so the times are
//! the scheduler's own work plus loopback HTTP, not a real API server's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use deis_core::ConfigData;
use deis_kube_fake::FakeKube;
use deis_kubernetes::{KubeScheduler, Settings, Timing};
use deis_scheduler::{BuildKind, BuildSpec, DeploySpec, ReleaseSpec, Scheduler};

use crate::median;

const APPS: usize = 1_000;
const ROUNDS: usize = 5;

fn spec(app: &str, version: i32, web: i32) -> DeploySpec {
    DeploySpec {
        release: ReleaseSpec {
            app: app.to_owned(),
            version,
            summary: format!("alice deployed v{version}"),
            created: Utc::now(),
            build: BuildSpec {
                uuid: format!("{app}-build-{version}"),
                kind: BuildKind::Image,
                image: format!("registry.example/{app}:v{version}"),
                sha: String::new(),
                procfile: BTreeMap::from([("web".to_owned(), "serve".to_owned())]),
            },
            config: ConfigData {
                values: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
                memory: BTreeMap::from([("web".to_owned(), "256M".to_owned())]),
                ..ConfigData::default()
            },
            env: BTreeMap::from([("DEIS_APP".to_owned(), app.to_owned())]),
        },
        structure: BTreeMap::from([("web".to_owned(), web)]),
        routable_type: Some("web".to_owned()),
        deploy_timeout: Duration::from_secs(60),
        autoscale: BTreeMap::new(),
    }
}

/// (reads, writes) the fake saw since the last clear.
fn counted(fake: &FakeKube) -> (usize, usize) {
    let requests = fake.requests();
    let writes = requests.iter().filter(|r| r.is_write()).count();
    (requests.len() - writes, writes)
}

pub(crate) async fn run() -> Result<()> {
    let fake = FakeKube::start().await.context("starting the fake API server")?;
    fake.set_start_delay(Duration::ZERO);
    let config = kube::Config::new(fake.url().parse().context("the fake's URL")?);
    let client = kube::Client::try_from(config).context("a Kubernetes client")?;
    let kube = KubeScheduler::new(
        client,
        Settings::default(),
        Timing {
            poll: Duration::from_millis(5),
            run_timeout: Duration::from_secs(60),
        },
    );

    // One app: first deploy, a new release, a scale.
    fake.clear_requests();
    kube.deploy(&spec("one", 2, 2)).await?;
    let first = counted(&fake);
    fake.clear_requests();
    kube.deploy(&spec("one", 3, 2)).await?;
    let release = counted(&fake);
    fake.clear_requests();
    kube.scale(&spec("one", 3, 4)).await?;
    let scale = counted(&fake);
    fake.clear_requests();
    kube.deploy(&spec("one", 3, 4)).await?;
    let same = counted(&fake);
    println!("API requests (reads + writes; reads include the rollout's status polls)");
    println!("  first deploy       {:>3} + {}", first.0, first.1);
    println!("  new release        {:>3} + {}", release.0, release.1);
    println!("  scale              {:>3} + {}", scale.0, scale.1);
    println!("  unchanged deploy   {:>3} + {}", same.0, same.1);

    // 1,000 apps: converged once (every object written), then again with
    // nothing changed.
    let specs: Vec<DeploySpec> = (0..APPS).map(|i| spec(&format!("app-{i:04}"), 2, 1)).collect();
    let started = Instant::now();
    fake.clear_requests();
    let created = kube.converge(&specs).await?;
    let create_time = started.elapsed();
    let create_requests = counted(&fake);
    let mut times = Vec::new();
    let mut last = (0, 0);
    for _ in 0..ROUNDS {
        fake.clear_requests();
        let started = Instant::now();
        let report = kube.converge(&specs).await?;
        times.push(started.elapsed());
        last = counted(&fake);
        ensure!(
            report.writes == 0 && last.1 == 0,
            "an unchanged converge wrote: {report:?}"
        );
    }
    let render_started = Instant::now();
    for spec in &specs {
        std::hint::black_box(kube.render(spec));
    }
    let render_time = render_started.elapsed();
    let noop = median(times);
    println!("{APPS} apps");
    println!(
        "  first converge     {:>7.1} ms, {} writes, {} reads",
        create_time.as_secs_f64() * 1e3,
        created.writes,
        create_requests.0
    );
    println!(
        "  unchanged converge {:>7.1} ms (median of {ROUNDS}), {} writes, {} reads   target: 0 writes, <= 2000 ms",
        noop.as_secs_f64() * 1e3,
        last.1,
        last.0
    );
    println!("  render alone       {:>7.1} ms", render_time.as_secs_f64() * 1e3);
    ensure!(
        noop <= Duration::from_secs(2),
        "the unchanged converge took {noop:?}"
    );
    fake.shutdown().await;
    Ok(())
}
