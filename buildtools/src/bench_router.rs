//! `buildtools/bench router` and `buildtools/bench converge`.
//!
//! router: `wrk` on loopback against one small upstream (nginx returning a
//! fixed body) through (a) the embedded router, (b) the same with its
//! io_uring turned off (epoll alone), (c) Envoy on the same feed, (d) nginx
//! as a plain reverse proxy (upstream keep-alive, HTTP/1.1, access log
//! off). One worker each. Prints requests/s, p99 latency and the
//! proxy's CPU time per request (from /proc), with ratios to nginx.
//!
//! converge: the time from an API call (`domains:add`) to the first request
//! the router answers with the new route, for both routers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use deis_routing::{AppRoute, RouterSettings, RoutingState};
use deis_xds::{Ads, Feed};

use crate::{Samples, free_port, median, ms};

const TOKEN: &str = "bench-token-0123456789abcdef";
const HOST: &str = "bench.localhost";
/// The embedded router with its io_uring turned off.
const EPOLL: &str = "router, epoll";
/// What the upstream answers.
const UPSTREAM_BODY: &str = "hello from the upstream\n";

/// A child process killed (with its process group) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // The whole group: nginx's worker goes with its master.
        if let Ok(pid) = i32::try_from(self.0.id())
            && pid > 1
        {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(command: &mut Command) -> Result<Proc> {
    use std::os::unix::process::CommandExt;
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    Ok(Proc(child))
}

/// User plus system CPU time of a process and its threads, and of its
/// children (nginx's worker), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let ticks = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0)
    };
    let total: u64 = with_children(pid).into_iter().map(ticks).sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(total * 10)
}

/// A process and its children (nginx's master and its worker).
fn with_children(pid: u32) -> Vec<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    std::iter::once(pid)
        .chain(children.split_whitespace().filter_map(|c| c.parse().ok()))
        .collect()
}

/// Resident memory of a process and its children, in bytes, from /proc.
fn resident_bytes(pid: u32) -> u64 {
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            * 1024
    };
    with_children(pid).into_iter().map(rss).sum()
}

/// Each proxy's resident memory per idle keep-alive connection, in bytes.
type IdleMemory = Vec<(&'static str, f64)>;

/// Idle keep-alive connections held open through each proxy to measure the
/// memory one costs.
const IDLE_CONNECTIONS: usize = 2000;

/// Opens [`IDLE_CONNECTIONS`] keep-alive connections to the proxy on
/// `port`, makes one request on each and leaves it open and idle; what the
/// proxy's resident memory grew by, per connection.
fn memory_per_idle_connection(pid: u32, port: u16) -> Result<f64> {
    use std::io::{Read, Write};
    let before = resident_bytes(pid);
    let mut open = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n")?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !response.ends_with(UPSTREAM_BODY.as_bytes()) {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                bail!("the proxy on port {port} closed a connection before answering");
            }
            response.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        open.push(stream);
    }
    // Let the proxy settle (timers armed, buffers given back).
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_bytes(pid);
    drop(open);
    std::thread::sleep(Duration::from_millis(500));
    Ok(after.saturating_sub(before) as f64 / IDLE_CONNECTIONS as f64)
}

/// Waits until `GET /` with the bench host answers 200 on `port`.
fn wait_for_200(port: u16, host: &str, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if get_status(port, host) == Some(200) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("nothing answered 200 for {host} on port {port} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn get_status(port: u16, host: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

struct WrkResult {
    rps: f64,
    p99: Duration,
    requests: u64,
}

fn wrk(port: u16, seconds: u32) -> Result<WrkResult> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {HOST}")])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = field("99%")
        .and_then(parse_wrk_duration)
        .with_context(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no request count in wrk's output:\n{text}"))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("errors during the run:\n{text}");
    }
    Ok(WrkResult { rps, p99, requests })
}

fn parse_wrk_duration(v: &str) -> Option<Duration> {
    let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

struct Measured {
    name: &'static str,
    rps: f64,
    p99: Duration,
    cpu_per_request: Duration,
}

/// One wrk run through one proxy (process `pid`) on `port`.
fn measure(name: &'static str, pid: u32, port: u16, seconds: u32) -> Result<Measured> {
    let before = cpu_time(pid);
    let result = wrk(port, seconds)?;
    let cpu = cpu_time(pid).saturating_sub(before);
    let cpu_per_request = cpu / u32::try_from(result.requests.max(1)).unwrap_or(u32::MAX);
    println!(
        "    {name:<16} {:>9.0} req/s   p99 {:>8}   CPU {:>6.1} us/request",
        result.rps,
        ms(result.p99),
        cpu_per_request.as_secs_f64() * 1e6
    );
    Ok(Measured {
        name,
        rps: result.rps,
        p99: result.p99,
        cpu_per_request,
    })
}

/// The median of each figure over a proxy's rounds.
fn median_of(name: &'static str, runs: &[Measured]) -> Measured {
    let mine: Vec<&Measured> = runs.iter().filter(|r| r.name == name).collect();
    Measured {
        name,
        rps: median(mine.iter().map(|r| r.rps).collect()),
        p99: median(mine.iter().map(|r| r.p99).collect()),
        cpu_per_request: median(mine.iter().map(|r| r.cpu_per_request).collect()),
    }
}

fn nginx_config(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.conf"));
    let text = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {pid};\nerror_log {err} error;\n\
         events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n  \
         keepalive_requests 1000000;\n{body}\n}}\n",
        pid = dir.join(format!("{name}.pid")).display(),
        err = dir.join(format!("{name}.err")).display(),
        tmp = dir.display(),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

fn envoy_binary() -> PathBuf {
    std::env::var_os("DEIS_ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/deis-workflow/venv/bin/envoy")
        })
}

fn deis_workflow_binary() -> Result<PathBuf> {
    std::env::var_os("DEIS_WORKFLOW_BIN")
        .map(PathBuf::from)
        .context("DEIS_WORKFLOW_BIN is not set (buildtools/bench sets it)")
}

/// The feed, served on a free port.
async fn serve_feed(feed: &Feed) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = Ads::new(feed.clone(), TOKEN).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Ok(addr)
}

/// The embedded router; `epoll` turns its io_uring off, to show what that
/// brings.
fn start_embedded(feed: SocketAddr, epoll: bool) -> Result<Proc> {
    spawn(
        Command::new(deis_workflow_binary()?)
            .args(["router", "--xds-addr", &feed.to_string(), "--xds-token", TOKEN])
            .args(epoll.then_some("--no-io-uring"))
            .args([
                "--node-id",
                "bench-router",
                "--workers",
                "1",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .env("TOKIO_WORKER_THREADS", "1")
            .env("RUST_LOG", "warn"),
    )
}

fn start_envoy(feed: SocketAddr, dir: &Path) -> Result<Proc> {
    let bootstrap = deis_xds::Bootstrap {
        node_id: "bench-envoy",
        admin_port: free_port()?,
        xds_host: "127.0.0.1",
        xds_port: feed.port(),
        xds_token: TOKEN,
        delta: false,
    };
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, bootstrap.render())?;
    spawn(Command::new(envoy_binary()).arg("-c").arg(&path).args([
        "--concurrency",
        "1",
        "--use-dynamic-base-id",
        "-l",
        "error",
    ]))
}

fn settings(http_port: u16) -> RouterSettings {
    RouterSettings {
        http_port,
        ..RouterSettings::local()
    }
}

pub(crate) async fn router() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // More, shorter rounds average out a noisy machine better.
    let seconds = env_number("DEIS_BENCH_SECONDS", 10)?;
    let rounds = env_number("DEIS_BENCH_ROUNDS", 3)?.max(1);
    // The upstream: nginx answering a small fixed body.
    let upstream_port = free_port()?;
    let upstream_conf = nginx_config(
        dir.path(),
        "upstream",
        &format!(
            "  server {{ listen 127.0.0.1:{upstream_port}; location / {{ return 200 \"{}\"; }} }}",
            UPSTREAM_BODY.escape_default()
        ),
    )?;
    let _upstream = spawn(Command::new("nginx").arg("-c").arg(&upstream_conf))?;

    let state = RoutingState {
        apps: [(
            "bench".to_string(),
            AppRoute {
                endpoints: vec![SocketAddr::from(([127, 0, 0, 1], upstream_port))],
                ..Default::default()
            },
        )]
        .into(),
    };
    // The feed says which port the router listens on; the embedded router
    // and Envoy run side by side, so each reads a feed of its own.
    let (proxy_port, epoll_port, envoy_port) = (free_port()?, free_port()?, free_port()?);
    let (embedded_feed, epoll_feed, envoy_feed) = (Feed::new(), Feed::new(), Feed::new());
    embedded_feed.update(&settings(proxy_port), &state);
    epoll_feed.update(&settings(epoll_port), &state);
    envoy_feed.update(&settings(envoy_port), &state);

    // All three run at once and are measured in turn, round after round,
    // so a slow spell of the machine does not fall on one of them.
    let embedded = start_embedded(serve_feed(&embedded_feed).await?, false)?;
    let epoll = start_embedded(serve_feed(&epoll_feed).await?, true)?;
    let envoy = start_envoy(serve_feed(&envoy_feed).await?, dir.path())?;
    let nginx_port = free_port()?;
    let conf = nginx_config(
        dir.path(),
        "proxy",
        &format!(
            "  upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}\n  \
             server {{ listen 127.0.0.1:{nginx_port}; server_name {HOST}; location / {{ proxy_pass http://app; \
             proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; }} }}"
        ),
    )?;
    let nginx = spawn(Command::new("nginx").arg("-c").arg(&conf))?;
    let proxies: [(&'static str, u32, u16); 4] = [
        ("embedded router", embedded.0.id(), proxy_port),
        (EPOLL, epoll.0.id(), epoll_port),
        ("Envoy", envoy.0.id(), envoy_port),
        ("nginx", nginx.0.id(), nginx_port),
    ];
    println!(
        "wrk -t1 -c32 -d{seconds}s through each proxy (one worker each) to one nginx upstream, {rounds} rounds in turn:"
    );
    let (runs, idle) = tokio::task::spawn_blocking(move || -> Result<(Vec<Measured>, IdleMemory)> {
        for (_, _, port) in proxies {
            wait_for_200(port, HOST, Duration::from_secs(20))?;
            wrk(port, 2)?;
        }
        if std::env::var_os("DEIS_BENCH_HOLD").is_some() {
            // For profiling by hand: everything stays up until interrupted.
            for (name, pid, port) in proxies {
                println!("  {name}: pid {pid}, http://127.0.0.1:{port}/ with Host: {HOST}");
            }
            loop {
                std::thread::park();
            }
        }
        let mut runs = Vec::new();
        for round in 1..=rounds {
            println!("  round {round}:");
            // The router and nginx always run back to back, so the ratios
            // taken within a round compare them under the same conditions;
            // which of them goes first, and where the others go, changes
            // from round to round.
            let [router, epoll, envoy, nginx] = proxies;
            let orders = [
                [router, nginx, epoll, envoy],
                [nginx, router, envoy, epoll],
                [epoll, envoy, router, nginx],
                [envoy, epoll, nginx, router],
            ];
            for (name, pid, port) in orders[(round as usize - 1) % orders.len()] {
                runs.push(measure(name, pid, port, seconds)?);
            }
        }
        println!("  holding {IDLE_CONNECTIONS} idle keep-alive connections through each proxy in turn");
        let mut idle = Vec::new();
        for (name, pid, port) in proxies {
            idle.push((name, memory_per_idle_connection(pid, port)?));
        }
        Ok((runs, idle))
    })
    .await??;
    drop((embedded, epoll, envoy, nginx));
    let results: Vec<Measured> = proxies
        .iter()
        .map(|(name, _, _)| median_of(name, &runs))
        .collect();
    println!("\nmedians over {rounds} rounds:");
    for r in &results {
        println!(
            "  {:<16} {:>9.0} req/s   p99 {:>8}   CPU {:>6.1} us/request",
            r.name,
            r.rps,
            ms(r.p99),
            r.cpu_per_request.as_secs_f64() * 1e6
        );
    }
    let nginx = results
        .iter()
        .find(|r| r.name == "nginx")
        .map(|r| (r.rps, r.p99, r.cpu_per_request))
        .context("no nginx result")?;
    println!("\nratios to nginx (throughput: higher is better; p99 and CPU: lower is better):");
    for r in &results {
        println!(
            "  {:<16} throughput {:.2}x   p99 {:.2}x   CPU/request {:.2}x",
            r.name,
            r.rps / nginx.0,
            r.p99.as_secs_f64() / nginx.1.as_secs_f64().max(1e-9),
            r.cpu_per_request.as_secs_f64() / nginx.2.as_secs_f64().max(1e-9),
        );
    }
    // The same ratios taken within each round, where both ran back to
    // back: their median over rounds, and in how many rounds the router
    // came out ahead (`better` says which way that is for the figure).
    let paired = |metric: fn(&Measured) -> f64, better: fn(f64) -> bool| {
        let ratios: Vec<f64> = runs
            .chunks(proxies.len())
            .filter_map(|round| {
                let of = |name: &str| round.iter().find(|r| r.name == name).map(metric);
                Some(of("embedded router")? / of("nginx")?.max(1e-9))
            })
            .collect();
        let ahead = ratios.iter().filter(|&&ratio| better(ratio)).count();
        (median(ratios), ahead)
    };
    let (throughput, more_requests) = paired(|r| r.rps, |ratio| ratio > 1.0);
    let (p99, lower_p99) = paired(|r| r.p99.as_secs_f64(), |ratio| ratio < 1.0);
    println!(
        "  embedded router  within each round, median: throughput {throughput:.2}x   p99 {p99:.2}x\n  \
         embedded router  ahead of nginx in: throughput {more_requests} of {rounds} rounds   p99 {lower_p99} of {rounds} rounds"
    );
    println!("target: embedded router >= 1.0x nginx throughput with no worse p99");
    let nginx_idle = idle
        .iter()
        .find(|(name, _)| *name == "nginx")
        .map_or(0.0, |(_, bytes)| *bytes);
    println!("\nmemory per idle keep-alive connection ({IDLE_CONNECTIONS} held open):");
    for (name, bytes) in &idle {
        println!(
            "  {name:<16} {:>8.1} KiB   {:.1}x nginx",
            bytes / 1024.0,
            bytes / nginx_idle.max(1.0)
        );
    }
    Ok(())
}

/// A whole number from the environment, or `default` when unset.
fn env_number(name: &str, default: u32) -> Result<u32> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value} is not a whole number")),
        Err(_) => Ok(default),
    }
}

pub(crate) async fn converge() -> Result<()> {
    use deis_proto::v2 as pb;
    use deis_testkit::{TestPlatform, authed};

    let dir = tempfile::tempdir()?;
    let upstream_port = free_port()?;
    let upstream_conf = nginx_config(
        dir.path(),
        "upstream",
        &format!("  server {{ listen 127.0.0.1:{upstream_port}; location / {{ return 200 \"ok\\n\"; }} }}"),
    )?;
    let _upstream = spawn(Command::new("nginx").arg("-c").arg(&upstream_conf))?;

    let platform = TestPlatform::start().await;
    let token = platform.register("bench").await;
    let mut clients = platform.clients().await;
    clients
        .apps
        .create_app(authed(&token, pb::CreateAppRequest { id: "bench".into() }))
        .await?;
    platform
        .scheduler
        .publish_endpoints("bench", &[SocketAddr::from(([127, 0, 0, 1], upstream_port))]);
    let proxy_port = free_port()?;
    let feed = Feed::new();
    feed.follow(settings(proxy_port), platform.controller.routing_state());
    let feed_addr = serve_feed(&feed).await?;

    let rounds = 20;
    println!("API call (domains:add) to the first request routed by the new config, {rounds} rounds:");
    for (name, start) in [("embedded router", 0), ("Envoy", 1)] {
        let proc = if start == 0 {
            start_embedded(feed_addr, false)?
        } else {
            start_envoy(feed_addr, dir.path())?
        };
        tokio::task::spawn_blocking(move || wait_for_200(proxy_port, HOST, Duration::from_secs(20)))
            .await??;
        let mut samples = Samples::new();
        for round in 0..rounds {
            let domain = format!("r{round}-{start}.example.com");
            let started = Instant::now();
            clients
                .domains
                .add_domain(authed(
                    &token,
                    pb::AddDomainRequest {
                        app: "bench".into(),
                        domain: domain.clone(),
                    },
                ))
                .await?;
            tokio::task::spawn_blocking(move || wait_for_200(proxy_port, &domain, Duration::from_secs(5)))
                .await??;
            samples.0.push(started.elapsed());
        }
        println!("  {name:<16} {}   (target p99 <= 100ms)", samples.summary());
        drop(proc);
    }
    Ok(())
}
