//! `buildtools/bench gateway`: the REST API (Deis v2 paths, transcoded in
//! process by `deis-gateway`) against native gRPC, on one controller with
//! SQLite, both on its one port:
//!
//! - `apps:info` (`GET /v2/apps/bench` vs `AppsService.GetApp`) and
//!   `config:set` (`POST /v2/apps/bench/config` vs `ConfigService.SetConfig`,
//!   each a new release): latency of sequential calls, REST and gRPC
//!   alternating in blocks so noise falls on both;
//! - throughput of each with 16 concurrent callers for 3 s.
//!
//! Target: REST adds ≤ 20% over gRPC at p50.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use deis_proto::v2 as pb;
use deis_testkit::{TestPlatform, authed};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost_types::value::Kind;

use crate::{Samples, ms};

const CALLS: usize = 1000;
const BLOCK: usize = 50;
const CALLERS: usize = 16;
const THROUGHPUT_RUN: Duration = Duration::from_secs(3);

#[derive(Clone)]
struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
}

impl Rest {
    async fn call(&self, method: http::Method, path: &str, body: Option<String>) -> Result<()> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("token {}", self.token));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// One operation both ways.
#[derive(Clone, Copy)]
enum Op {
    Info,
    ConfigSet,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Info => "apps:info",
            Op::ConfigSet => "config:set",
        }
    }

    async fn rest(self, rest: &Rest, n: u64) -> Result<()> {
        match self {
            Op::Info => rest.call(http::Method::GET, "/v2/apps/bench", None).await,
            Op::ConfigSet => {
                let body = format!(r#"{{"values": {{"KEY{}": "{n}"}}}}"#, n % 10);
                rest.call(http::Method::POST, "/v2/apps/bench/config", Some(body))
                    .await
            }
        }
    }

    async fn grpc(self, c: &mut deis_testkit::Clients, token: &str, n: u64) -> Result<()> {
        match self {
            Op::Info => {
                c.apps
                    .get_app(authed(token, pb::GetAppRequest { id: "bench".into() }))
                    .await?;
            }
            Op::ConfigSet => {
                let value = prost_types::Value {
                    kind: Some(Kind::StringValue(n.to_string())),
                };
                let request = pb::SetConfigRequest {
                    app: "bench".into(),
                    values: HashMap::from([(format!("KEY{}", n % 10), value)]),
                    ..Default::default()
                };
                c.config.set_config(authed(token, request)).await?;
            }
        }
        Ok(())
    }
}

pub(crate) async fn run() -> Result<()> {
    let platform = TestPlatform::start().await;
    let token = platform.register("bench").await;
    let mut c = platform.clients().await;
    c.apps
        .create_app(authed(&token, pb::CreateAppRequest { id: "bench".into() }))
        .await?;
    let rest = Rest {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: platform.url.trim_end_matches('/').to_owned(),
        token: token.clone(),
    };
    let counter = AtomicU64::new(0);
    let next = || counter.fetch_add(1, Ordering::Relaxed);

    println!(
        "{:<12} {:<6} {:>10} {:>10}  {:>12}",
        "operation", "API", "p50", "p99", "calls/s (16)"
    );
    for op in [Op::Info, Op::ConfigSet] {
        for _ in 0..BLOCK {
            op.rest(&rest, next()).await?;
            op.grpc(&mut c, &token, next()).await?;
        }
        let (mut over_rest, mut over_grpc) = (Samples::new(), Samples::new());
        for _ in 0..CALLS / BLOCK {
            for _ in 0..BLOCK {
                over_grpc.time(op.grpc(&mut c, &token, next())).await?;
            }
            for _ in 0..BLOCK {
                over_rest.time(op.rest(&rest, next())).await?;
            }
        }
        let grpc_rate = throughput(|n| {
            let (mut c, token) = (c.clone(), token.clone());
            async move { op.grpc(&mut c, &token, n).await }
        })
        .await?;
        let rest_rate = throughput(|n| {
            let rest = rest.clone();
            async move { op.rest(&rest, n).await }
        })
        .await?;
        for (api, samples, rate) in [("gRPC", &over_grpc, grpc_rate), ("REST", &over_rest, rest_rate)] {
            println!(
                "{:<12} {api:<6} {:>10} {:>10}  {rate:>12.0}",
                op.name(),
                ms(samples.percentile(50.0)),
                ms(samples.percentile(99.0)),
            );
        }
        let overhead = over_rest.percentile(50.0).as_secs_f64() / over_grpc.percentile(50.0).as_secs_f64();
        println!(
            "{:<12} REST/gRPC at p50: {overhead:.2}x (target <= 1.20x: {})",
            op.name(),
            if overhead <= 1.2 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// Calls per second with [`CALLERS`] concurrent callers for
/// [`THROUGHPUT_RUN`] (connections are warm from the latency run).
async fn throughput<F, Fut>(call: F) -> Result<f64>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + THROUGHPUT_RUN;
    let callers = (0..CALLERS as u64).map(|caller| {
        let (done, call) = (&done, &call);
        async move {
            // Distinct keys per caller, so config:set always changes something.
            let mut n = caller * 1_000_000;
            while Instant::now() < deadline {
                call(n).await?;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Result::<()>::Ok(())
        }
    });
    for result in futures::future::join_all(callers).await {
        result?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
