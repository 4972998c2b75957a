//! `buildtools/bench logs`: the logger's ingest throughput in process, over
//! gRPC (`deis.logger.v1` Push) and over the Fluentd Forward protocol
//! (PackedForward frames on one TCP connection), and the latency from a
//! line's ingest to a follower seeing it while the logger ingests at full
//! speed.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use deis_logger::forward::ForwardOptions;
use deis_logger::service::LoggerApi;
use deis_logger::{Logger, StoreOptions};
use deis_proto::logger::logger_service_client::LoggerServiceClient;
use deis_proto::logger::{LogEntry, LogSource as WireSource, PushRequest};
use deis_scheduler::{FollowEvent, LogLine, LogQuery, LogService, LogSink, LogSource};
use futures::StreamExt;

use crate::{Samples, ms};

const APPS: usize = 100;
const LINES: usize = 1_000_000;
const BATCH: usize = 1000;
const TEXT: &str = "10.0.0.1 - - \"GET /api/v1/items?page=2 HTTP/1.1\" 200 5123 \"-\" \"curl/8.5\"";

fn app_name(n: usize) -> String {
    format!("app-{:03}", n % APPS)
}

/// A logger that keeps every line of the run, so its line count says how
/// many arrived.
fn logger() -> Arc<Logger> {
    Arc::new(Logger::new(
        StoreOptions {
            lines_per_app: LINES,
            max_bytes: usize::MAX,
            ..StoreOptions::default()
        },
        Default::default(),
    ))
}

fn line(n: usize) -> LogLine {
    LogLine {
        time: Utc::now(),
        app: app_name(n),
        source: LogSource::App,
        process: "web.1".into(),
        release: "v7".into(),
        text: TEXT.into(),
    }
}

async fn until_all_arrived(logger: &Logger, expected: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while logger.usage().lines < expected {
        if Instant::now() > deadline {
            bail!("only {} of {expected} lines arrived", logger.usage().lines);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

fn rate(lines: usize, elapsed: Duration) -> f64 {
    lines as f64 / elapsed.as_secs_f64()
}

/// Two threads (the machine's cores) sending prepared lines.
fn in_process() -> f64 {
    let logger = logger();
    let threads = 2;
    let batches: Vec<Vec<LogLine>> = (0..threads)
        .map(|t| (0..LINES / threads).map(|n| line(n * threads + t)).collect())
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for batch in batches {
            let logger = logger.clone();
            scope.spawn(move || {
                for line in batch {
                    logger.send(line);
                }
            });
        }
    });
    rate(LINES, started.elapsed())
}

async fn grpc() -> Result<f64> {
    let logger = logger();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = LoggerApi::new(logger.clone(), "bench".into()).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    let mut client = LoggerServiceClient::connect(format!("http://{addr}")).await?;
    let now = Some(prost_types::Timestamp {
        seconds: Utc::now().timestamp(),
        nanos: 0,
    });
    let batches: Vec<PushRequest> = (0..LINES / BATCH)
        .map(|b| PushRequest {
            entries: (0..BATCH)
                .map(|i| LogEntry {
                    time: now,
                    app: app_name(b * BATCH + i),
                    source: WireSource::App.into(),
                    process: "web.1".into(),
                    release: "v7".into(),
                    text: TEXT.into(),
                })
                .collect(),
        })
        .collect();
    let started = Instant::now();
    let mut request = tonic::Request::new(futures::stream::iter(batches));
    request
        .metadata_mut()
        .insert("authorization", "token bench".parse()?);
    let accepted = client.push(request).await?.into_inner().accepted;
    if accepted as usize != LINES {
        bail!("the logger accepted {accepted} of {LINES} lines");
    }
    until_all_arrived(&logger, LINES).await?;
    Ok(rate(LINES, started.elapsed()))
}

/// msgpack, by hand: what Fluentd's out_forward sends.
fn msgpack_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// One PackedForward frame: `[tag, bin(entries)]`, each entry
/// `[EventTime, {app, process, log}]`.
fn packed_forward_frame(first: usize, count: usize) -> Vec<u8> {
    let now = Utc::now();
    let mut entries = Vec::with_capacity(count * 160);
    for n in first..first + count {
        entries.push(0x92);
        entries.extend_from_slice(&[0xd7, 0x00]);
        entries.extend_from_slice(&(now.timestamp() as u32).to_be_bytes());
        entries.extend_from_slice(&now.timestamp_subsec_nanos().to_be_bytes());
        entries.push(0x83);
        msgpack_str(&mut entries, "app");
        msgpack_str(&mut entries, &app_name(n));
        msgpack_str(&mut entries, "process");
        msgpack_str(&mut entries, "web.1");
        msgpack_str(&mut entries, "log");
        msgpack_str(&mut entries, TEXT);
    }
    let mut frame = vec![0x92];
    msgpack_str(&mut frame, "deis.bench");
    frame.push(0xc6);
    frame.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    frame.extend_from_slice(&entries);
    frame
}

async fn forward() -> Result<f64> {
    let logger = logger();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = deis_logger::forward::serve(listener, logger.clone(), ForwardOptions::default()).await?;
    let addr = server.local_addr();
    let frames: Vec<Vec<u8>> = (0..LINES / BATCH)
        .map(|b| packed_forward_frame(b * BATCH, BATCH))
        .collect();
    let started = Instant::now();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        for frame in frames {
            stream.write_all(&frame)?;
        }
        stream.flush()
    });
    until_all_arrived(&logger, LINES).await?;
    let elapsed = started.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the Forward writer panicked"))??;
    let stats = server.stats();
    server.shutdown().await;
    if stats.records as usize != LINES {
        bail!("the Forward listener took {} of {LINES} records", stats.records);
    }
    Ok(rate(LINES, elapsed))
}

/// A follower of one app while a thread ingests for 100 apps as fast as it
/// can; every 100th line is the followed app's and carries its send time.
async fn follow_latency() -> Result<(Samples, u64, f64)> {
    let logger = logger();
    let mut follow = logger
        .follow(
            "followed",
            &LogQuery {
                lines: 0,
                ..LogQuery::default()
            },
        )
        .await
        .context("follow")?;
    let epoch = Instant::now();
    let total = LINES / 2;
    let producer = {
        let logger = logger.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            for n in 0..total {
                let mut line = line(n);
                if n % 100 == 0 {
                    line.app = "followed".into();
                    line.text = epoch.elapsed().as_nanos().to_string();
                }
                logger.send(line);
            }
            rate(total, started.elapsed())
        })
    };
    let mut samples = Samples::new();
    let mut missed = 0;
    while samples.0.len() + (missed as usize) < total / 100 {
        match tokio::time::timeout(Duration::from_secs(10), follow.next()).await {
            Ok(Some(FollowEvent::Line(line))) => {
                let sent: u128 = line.text.parse()?;
                let now = epoch.elapsed().as_nanos();
                samples
                    .0
                    .push(Duration::from_nanos(now.saturating_sub(sent) as u64));
            }
            Ok(Some(FollowEvent::Missed(n))) => missed += n,
            Ok(None) | Err(_) => break,
        }
    }
    let ingest_rate = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer panicked"))?;
    Ok((samples, missed, ingest_rate))
}

pub(crate) async fn run() -> Result<()> {
    println!("{LINES} lines of {} bytes to {APPS} apps:", TEXT.len());
    let mut in_process_rates: Vec<f64> = (0..3).map(|_| in_process()).collect();
    in_process_rates.sort_by(f64::total_cmp);
    println!(
        "  in process (2 threads)    {:>10.0} lines/s (median of 3)   target >= 500,000",
        in_process_rates[1]
    );
    let mut grpc_rates = Vec::new();
    for _ in 0..3 {
        grpc_rates.push(grpc().await?);
    }
    grpc_rates.sort_by(f64::total_cmp);
    println!(
        "  gRPC Push (1 stream)      {:>10.0} lines/s (median of 3)",
        grpc_rates[1]
    );
    let mut forward_rates = Vec::new();
    for _ in 0..3 {
        forward_rates.push(forward().await?);
    }
    forward_rates.sort_by(f64::total_cmp);
    println!(
        "  Forward (PackedForward)   {:>10.0} lines/s (median of 3)   target >= 100,000",
        forward_rates[1]
    );
    let (samples, missed, ingest_rate) = follow_latency().await?;
    println!(
        "  follow latency while ingesting {ingest_rate:.0} lines/s: p50 {} p99 {} max {} ({} samples, {missed} missed)   target p99 <= 20 ms",
        ms(samples.percentile(50.0)),
        ms(samples.percentile(99.0)),
        ms(samples.percentile(100.0)),
        samples.0.len()
    );
    Ok(())
}
