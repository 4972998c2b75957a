//! gRPC's own xDS client (grpcio, a stricter consumer than Envoy) resolves
//! an app through the feed: a proxyless gRPC client dials `xds:///<app>`
//! and reaches the app's process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use deis_routing::{AppRoute, RouterSettings, RoutingState};
use deis_xds::{Ads, Feed};

/// The virtualenv's Python with grpcio (installed by `buildtools/test`).
fn python() -> PathBuf {
    let path = std::env::var_os("DEIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/deis-workflow/venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run buildtools/test once, it installs grpcio into that virtualenv",
        path.display()
    );
    path
}

/// A gRPC server answering `/probe.Echo/Say` with `echo:<request>`.
const ECHO_SERVER: &str = r#"
import sys, grpc
from concurrent import futures
def say(request, context):
    return b"echo:" + request
handler = grpc.method_handlers_generic_handler("probe.Echo", {
    "Say": grpc.unary_unary_rpc_method_handler(say),
})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

const CLIENT: &str = r#"
import sys, grpc
channel = grpc.insecure_channel("xds:///" + sys.argv[1])
reply = channel.unary_unary("/probe.Echo/Say")(b"hi", timeout=20, wait_for_ready=True)
print(reply.decode())
"#;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_resolves_an_app_through_the_feed() {
    let python = python();
    let mut server = Command::new(&python)
        .args(["-c", ECHO_SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Killed(server);
    let port: u16 = line.trim().parse().expect("the echo server's port");

    let feed = Feed::new();
    let state = RoutingState {
        apps: [(
            "echo".to_string(),
            AppRoute {
                endpoints: vec![SocketAddr::from(([127, 0, 0, 1], port))],
                ..Default::default()
            },
        )]
        .into(),
    };
    feed.update(&RouterSettings::local(), &state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ads_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Ads::new(feed.clone(), "token-not-needed-here").into_service())
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(
        &bootstrap,
        format!(
            r#"{{"xds_servers": [{{"server_uri": "{ads_addr}", "channel_creds": [{{"type": "insecure"}}], "server_features": ["xds_v3"]}}],
 "node": {{"id": "grpc-client", "cluster": "test", "locality": {{"zone": "local"}}}}}}"#
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", CLIENT, "echo"])
            .env("GRPC_XDS_BOOTSTRAP", &bootstrap)
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("the client finishes")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "echo:hi");
    // It accepted a response of every type it asked for, and rejected none.
    let (accepted, rejected) = feed.acknowledgements();
    assert!(accepted >= 4, "{accepted} responses accepted");
    assert_eq!(rejected, 0);
}
