//! The logger over gRPC, as a split deployment uses it: `RemoteLogger`
//! pushes, tails, follows and configures drains on a `LoggerApi` server;
//! a wrong token is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use deis_logger::remote::RemoteLogger;
use deis_logger::service::LoggerApi;
use deis_logger::{Logger, StoreOptions};
use deis_scheduler::{DrainSpec, FollowEvent, LogError, LogLine, LogQuery, LogService, LogSink, LogSource};
use futures::StreamExt;

const TOKEN: &str = "logger-test-token";

async fn serve() -> (Arc<Logger>, String) {
    let logger = Arc::new(Logger::new(
        StoreOptions {
            lines_per_app: 50,
            ..StoreOptions::default()
        },
        Default::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = LoggerApi::new(logger.clone(), TOKEN.into()).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (logger, format!("http://{addr}"))
}

fn line(app: &str, process: &str, text: &str) -> LogLine {
    LogLine {
        time: Utc::now(),
        app: app.into(),
        source: LogSource::App,
        process: process.into(),
        release: "v3".into(),
        text: text.into(),
    }
}

fn all(lines: usize) -> LogQuery {
    LogQuery {
        lines,
        ..LogQuery::default()
    }
}

#[tokio::test]
async fn a_remote_logger_pushes_tails_follows_and_configures_drains() {
    let (logger, url) = serve().await;
    let remote = RemoteLogger::new(&url, TOKEN).unwrap();
    let mut follow = remote.follow("api", &all(0)).await.unwrap();

    for n in 0..120 {
        remote.send(line("api", "web.1", &format!("line {n}")));
    }
    remote.send(line("other", "web.1", "elsewhere"));
    // Pushed in batches, asynchronously: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(5);
    while logger.usage().lines < 51 {
        assert!(
            Instant::now() < deadline,
            "pushed lines never arrived: {:?}",
            logger.usage()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(remote.dropped(), 0);

    // The ring keeps the newest 50; the wire keeps every field.
    let tail = remote.tail("api", &all(1000)).await.unwrap();
    assert_eq!(tail.len(), 50);
    assert_eq!(tail[0].text, "line 70");
    assert_eq!(tail[49].text, "line 119");
    assert_eq!(
        (tail[49].process.as_str(), tail[49].release.as_str()),
        ("web.1", "v3")
    );
    assert_eq!(tail[49].source, LogSource::App);

    // The follower saw every line in order.
    for n in 0..120 {
        match tokio::time::timeout(Duration::from_secs(5), follow.next()).await {
            Ok(Some(FollowEvent::Line(l))) => assert_eq!(l.text, format!("line {n}")),
            other => panic!("line {n}: {other:?}"),
        }
    }

    let drains = [DrainSpec {
        id: "d1".into(),
        url: "syslog://127.0.0.1:9".into(),
    }];
    remote.set_drains("api", &drains).await.unwrap();
    let stats = remote.drain_stats("api").await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].id, "d1");
    let bad = [DrainSpec {
        id: "d2".into(),
        url: "udp://127.0.0.1:9".into(),
    }];
    assert!(matches!(
        remote.set_drains("api", &bad).await,
        Err(LogError::Invalid(_))
    ));

    remote.forget("api").await.unwrap();
    assert!(remote.tail("api", &all(10)).await.unwrap().is_empty());
    assert!(remote.drain_stats("api").await.unwrap().is_empty());
    assert_eq!(remote.tail("other", &all(10)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_an_absent_logger_is_unavailable() {
    let (logger, url) = serve().await;
    let stranger = RemoteLogger::new(&url, "not-the-token").unwrap();
    match stranger.tail("api", &all(10)).await {
        Err(LogError::Unavailable(message)) => assert!(message.contains("token"), "{message}"),
        other => panic!("{other:?}"),
    }
    stranger.send(line("api", "web.1", "sneaky"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logger.usage().lines, 0, "lines with a wrong token are not kept");

    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let absent = RemoteLogger::new(&format!("http://127.0.0.1:{port}"), TOKEN).unwrap();
    assert!(matches!(
        absent.tail("api", &all(1)).await,
        Err(LogError::Unavailable(_))
    ));
}
