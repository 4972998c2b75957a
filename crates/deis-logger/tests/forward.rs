//! The Fluentd Forward listener: every event mode from frames built here,
//! acks, framing over a byte stream, the attribution rules, hostile input,
//! and the real fluent-logger clients (Python and Node) as child processes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deis_logger::forward::{ForwardOptions, ForwardServer, ForwardStats, serve};
use deis_scheduler::{LogLine, LogSink, LogSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// A sink that keeps every line.

#[derive(Default)]
struct Collect {
    lines: Mutex<Vec<LogLine>>,
}

impl LogSink for Collect {
    fn send(&self, line: LogLine) {
        self.lines.lock().unwrap().push(line);
    }
}

impl Collect {
    fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until at least `n` lines have arrived and returns them all.
    async fn wait_for(&self, n: usize) -> Vec<LogLine> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.lines();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} lines, got {}: {lines:#?}",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Server {
    server: ForwardServer,
    sink: Arc<Collect>,
}

impl Server {
    async fn start() -> Server {
        Server::with(ForwardOptions::default()).await
    }

    async fn with(options: ForwardOptions) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Arc::new(Collect::default());
        let server = serve(listener, sink.clone(), options).await.unwrap();
        Server { server, sink }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    async fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Waits until the stats satisfy `done`.
    async fn wait_stats(&self, done: impl Fn(&ForwardStats) -> bool) -> ForwardStats {
        let deadline = Instant::now() + WAIT;
        loop {
            let stats = self.server.stats();
            if done(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "stats never got there: {stats:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// MessagePack, built by hand with rmp.

#[derive(Clone, Debug)]
enum V {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<V>),
    Map(Vec<(V, V)>),
    Ext(i8, Vec<u8>),
}

fn s(text: &str) -> V {
    V::Str(text.to_owned())
}

fn map<const N: usize>(entries: [(&str, V); N]) -> V {
    V::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

impl V {
    fn encode_into(&self, out: &mut Vec<u8>) {
        use rmp::encode::*;
        match self {
            V::Nil => write_nil(out).unwrap(),
            V::Int(n) => {
                write_sint(out, *n).unwrap();
            }
            V::Float(f) => write_f64(out, *f).unwrap(),
            V::Str(text) => write_str(out, text).unwrap(),
            V::Bin(bytes) => write_bin(out, bytes).unwrap(),
            V::Array(items) => {
                write_array_len(out, items.len() as u32).unwrap();
                items.iter().for_each(|item| item.encode_into(out));
            }
            V::Map(entries) => {
                write_map_len(out, entries.len() as u32).unwrap();
                for (k, v) in entries {
                    k.encode_into(out);
                    v.encode_into(out);
                }
            }
            V::Ext(ty, data) => {
                write_ext_meta(out, data.len() as u32, *ty).unwrap();
                out.extend_from_slice(data);
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn event_time(secs: u32, nanos: u32) -> V {
    let mut data = secs.to_be_bytes().to_vec();
    data.extend_from_slice(&nanos.to_be_bytes());
    V::Ext(0, data)
}

fn time(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).unwrap()
}

/// `{app, process, log}`.
fn record(app: &str, process: &str, log: &str) -> V {
    map([("app", s(app)), ("process", s(process)), ("log", s(log))])
}

fn message(tag: &str, time: V, record: V, option: Option<V>) -> Vec<u8> {
    let mut items = vec![s(tag), time, record];
    items.extend(option);
    V::Array(items).encode()
}

fn forward(tag: &str, entries: Vec<(V, V)>, option: Option<V>) -> Vec<u8> {
    let entries = entries.into_iter().map(|(t, r)| V::Array(vec![t, r])).collect();
    let mut items = vec![s(tag), V::Array(entries)];
    items.extend(option);
    V::Array(items).encode()
}

/// The concatenated `[time, record]` entries of PackedForward.
fn packed_entries(entries: &[(V, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, r) in entries {
        V::Array(vec![t.clone(), r.clone()]).encode_into(&mut out);
    }
    out
}

fn packed(tag: &str, blob: V, option: Option<V>) -> Vec<u8> {
    let mut items = vec![s(tag), blob];
    items.extend(option);
    V::Array(items).encode()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `{"ack": chunk}` as the server must send it.
fn ack(chunk: &str) -> Vec<u8> {
    map([("ack", s(chunk))]).encode()
}

async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("no reply in time")
        .expect("reading the reply");
    buf
}

/// Asserts that the server closes `stream` (EOF or reset) without sending
/// anything.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0; 64];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("expected the connection closed, got {:?}", &buf[..n]),
        Err(_) => panic!("the server kept the connection open"),
    }
}

fn assert_line(line: &LogLine, app: &str, process: &str, text: &str, at: DateTime<Utc>) {
    assert_eq!(
        (
            line.app.as_str(),
            line.process.as_str(),
            line.text.as_str(),
            line.time
        ),
        (app, process, text, at),
        "{line:?}"
    );
}

// ---------------------------------------------------------------------------
// Event modes.

#[tokio::test]
async fn message_mode_with_every_time_format() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let frames = [
        message(
            "deis.app",
            V::Int(1_700_000_000),
            record("a", "web.1", "int"),
            None,
        ),
        message(
            "deis.app",
            V::Float(1_700_000_000.25),
            record("a", "web.1", "float"),
            None,
        ),
        message(
            "deis.app",
            event_time(1_700_000_000, 123_456_789),
            record("a", "web.1", "event time"),
            None,
        ),
        message(
            "deis.app",
            V::Int(-1),
            record("a", "web.1", "negative"),
            Some(V::Nil),
        ),
    ];
    for frame in frames {
        stream.write_all(&frame).await.unwrap();
    }
    let lines = server.sink.wait_for(4).await;
    assert_line(&lines[0], "a", "web.1", "int", time(1_700_000_000, 0));
    assert_line(&lines[1], "a", "web.1", "float", time(1_700_000_000, 250_000_000));
    assert_line(
        &lines[2],
        "a",
        "web.1",
        "event time",
        time(1_700_000_000, 123_456_789),
    );
    assert_line(&lines[3], "a", "web.1", "negative", time(-1, 0));
    assert!(
        lines
            .iter()
            .all(|l| l.source == LogSource::App && l.release.is_empty())
    );
    assert_eq!(server.server.stats().records, 4);
}

#[tokio::test]
async fn forward_mode() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let entries = vec![
        (V::Int(10), record("a", "web.1", "one")),
        (event_time(11, 5), record("a", "web.2", "two")),
        (V::Float(12.5), record("b", "worker.1", "three")),
    ];
    stream
        .write_all(&forward("t", entries, Some(map([("chunk", s("fw"))]))))
        .await
        .unwrap();
    assert_eq!(read_exactly(&mut stream, ack("fw").len()).await, ack("fw"));
    let lines = server.sink.lines();
    assert_eq!(lines.len(), 3, "every line is in the sink before the ack");
    assert_line(&lines[0], "a", "web.1", "one", time(10, 0));
    assert_line(&lines[1], "a", "web.2", "two", time(11, 5));
    assert_line(&lines[2], "b", "worker.1", "three", time(12, 500_000_000));
}

#[tokio::test]
async fn packed_forward_with_bin_and_str_entries() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let entries = [
        (event_time(20, 1), record("a", "web.1", "bin 1")),
        (V::Int(21), record("a", "web.1", "bin 2")),
    ];
    let blob = packed_entries(&entries);
    stream.write_all(&packed("t", V::Bin(blob), None)).await.unwrap();
    // As real Fluentd's out_forward sends it: the entries in a str, with the
    // options it sends and a chunk id ending in a newline.
    let entries = [(event_time(22, 2), record("a", "web.2", "str 1"))];
    let blob = packed_entries(&entries);
    let chunk = "ZhQNmd9ml/IoxHXFbXedKQ==\n";
    let mut frame = Vec::new();
    rmp::encode::write_array_len(&mut frame, 3).unwrap();
    rmp::encode::write_str(&mut frame, "t").unwrap();
    rmp::encode::write_str_len(&mut frame, blob.len() as u32).unwrap();
    frame.extend_from_slice(&blob); // not UTF-8: 0x92 ...
    map([
        ("size", V::Int(1)),
        ("compressed", s("text")),
        ("chunk", s(chunk)),
    ])
    .encode_into(&mut frame);
    stream.write_all(&frame).await.unwrap();
    let reply = read_exactly(&mut stream, ack(chunk).len()).await;
    assert_eq!(reply, ack(chunk));
    assert_eq!(reply.last(), Some(&b'\n'));
    let lines = server.sink.wait_for(3).await;
    assert_line(&lines[0], "a", "web.1", "bin 1", time(20, 1));
    assert_line(&lines[1], "a", "web.1", "bin 2", time(21, 0));
    assert_line(&lines[2], "a", "web.2", "str 1", time(22, 2));
}

#[tokio::test]
async fn compressed_packed_forward_with_two_gzip_members() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let first = packed_entries(&[
        (event_time(30, 0), record("a", "web.1", "gz 1")),
        (event_time(31, 0), record("a", "web.1", "gz 2")),
    ]);
    let second = packed_entries(&[(V::Int(32), record("a", "web.1", "gz 3"))]);
    let mut blob = gzip(&first);
    blob.extend_from_slice(&gzip(&second));
    let option = map([("chunk", s("gz")), ("compressed", s("gzip")), ("size", V::Int(3))]);
    stream
        .write_all(&packed("t", V::Bin(blob), Some(option)))
        .await
        .unwrap();
    assert_eq!(read_exactly(&mut stream, ack("gz").len()).await, ack("gz"));
    let lines = server.sink.lines();
    let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["gz 1", "gz 2", "gz 3"]);
    assert_eq!(lines[2].time, time(32, 0));
}

/// Fluent Bit's `forward` output (2.x and later): Forward mode, each time
/// wrapped as `[EventTime, metadata]`, and with `require_ack_response` an
/// option map in a (non-minimal) map32 header holding `fluent_signal`.
#[tokio::test]
async fn fluent_bit_event_format() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let wrapped = |secs, nanos, metadata| V::Array(vec![event_time(secs, nanos), metadata]);
    let entries = V::Array(vec![
        V::Array(vec![wrapped(70, 1, map([])), record("a", "web.1", "fb 1")]),
        V::Array(vec![
            wrapped(71, 2, map([("otel", map([("k", s("v"))]))])),
            record("a", "web.1", "fb 2"),
        ]),
        V::Array(vec![wrapped(72, 3, V::Nil), record("a", "web.1", "fb 3")]),
    ]);
    let mut frame = V::Array(vec![s("app.log"), entries]).encode();
    frame[0] = 0x93; // three elements: the option map follows
    frame.extend_from_slice(&[0xdf, 0, 0, 0, 3]);
    for (key, value) in [
        ("chunk", s("uIOE9Ytf9VkFyzGvT0FB7Q==")),
        ("size", V::Int(3)),
        ("fluent_signal", V::Int(0)),
    ] {
        s(key).encode_into(&mut frame);
        value.encode_into(&mut frame);
    }
    stream.write_all(&frame).await.unwrap();
    let reply = ack("uIOE9Ytf9VkFyzGvT0FB7Q==");
    assert_eq!(read_exactly(&mut stream, reply.len()).await, reply);
    let lines = server.sink.lines();
    assert_eq!(lines.len(), 3);
    assert_line(&lines[0], "a", "web.1", "fb 1", time(70, 1));
    assert_line(&lines[1], "a", "web.1", "fb 2", time(71, 2));
    assert_line(&lines[2], "a", "web.1", "fb 3", time(72, 3));

    // Metrics (fluent_signal 1) and traces (2) are acknowledged and skipped,
    // whatever their entries hold.
    for signal in [1, 2] {
        let option = map([("chunk", s("metrics")), ("fluent_signal", V::Int(signal))]);
        stream
            .write_all(&packed("t", V::Bin(vec![0xc1, 0xc1]), Some(option)))
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut stream, ack("metrics").len()).await,
            ack("metrics")
        );
        let option = map([("chunk", s("traces")), ("fluent_signal", V::Int(signal))]);
        let garbage = V::Array(vec![V::Array(vec![s("not"), s("an entry"), V::Nil])]);
        stream
            .write_all(&forward_raw("t", garbage, option))
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut stream, ack("traces").len()).await,
            ack("traces")
        );
    }
    assert_eq!(server.sink.lines().len(), 3);
    assert_eq!(server.server.stats().refused_connections, 0);
}

fn forward_raw(tag: &str, entries: V, option: V) -> Vec<u8> {
    V::Array(vec![s(tag), entries, option]).encode()
}

// ---------------------------------------------------------------------------
// Acks and framing.

#[tokio::test]
async fn acks_echo_the_chunk_byte_for_byte() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    for chunk in ["plain", "ends with a newline\n", &"long".repeat(20), ""] {
        let option = map([("chunk", s(chunk)), ("other", V::Array(vec![V::Nil]))]);
        stream
            .write_all(&message(
                "t",
                V::Int(1),
                record("a", "web.1", chunk),
                Some(option),
            ))
            .await
            .unwrap();
        assert_eq!(
            read_exactly(&mut stream, ack(chunk).len()).await,
            ack(chunk),
            "{chunk:?}"
        );
    }
    // A chunk sent as bin comes back as bin.
    let option = map([("chunk", V::Bin(b"raw\n".to_vec()))]);
    stream
        .write_all(&message(
            "t",
            V::Int(1),
            record("a", "web.1", "bin"),
            Some(option),
        ))
        .await
        .unwrap();
    let expected = map([("ack", V::Bin(b"raw\n".to_vec()))]).encode();
    assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
    assert_eq!(server.sink.lines().len(), 5);
}

#[tokio::test]
async fn frames_split_one_byte_per_write() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let option = Some(map([("chunk", s("split"))]));
    let blob = packed_entries(&[
        (event_time(40, 0), record("a", "web.1", "split 1")),
        (event_time(41, 0), record("a", "web.1", "split 2")),
    ]);
    let mut bytes = message("t", V::Int(39), record("a", "web.1", "split 0"), None);
    bytes.extend_from_slice(&packed("t", V::Bin(blob), option));
    for byte in &bytes {
        stream.write_all(std::slice::from_ref(byte)).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(read_exactly(&mut stream, ack("split").len()).await, ack("split"));
    let texts: Vec<_> = server.sink.lines().into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["split 0", "split 1", "split 2"]);
}

#[tokio::test]
async fn several_frames_in_one_write() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let mut bytes = message(
        "t",
        V::Int(1),
        record("a", "web.1", "first"),
        Some(map([("chunk", s("c1"))])),
    );
    bytes.extend(forward(
        "t",
        vec![(V::Int(2), record("a", "web.1", "second"))],
        Some(map([("chunk", s("c2"))])),
    ));
    bytes.extend(message("t", V::Int(3), record("a", "web.1", "third"), None));
    stream.write_all(&bytes).await.unwrap();
    let mut expected = ack("c1");
    expected.extend(ack("c2"));
    assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
    let texts: Vec<_> = server
        .sink
        .wait_for(3)
        .await
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
}

// ---------------------------------------------------------------------------
// From records to lines.

#[tokio::test]
async fn record_fields_win() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let kubernetes = map([
        ("namespace_name", s("ns")),
        ("pod_name", s("other-web-5d9f8c7b6-x7k2p")),
        ("labels", map([("app", s("other")), ("type", s("web"))])),
    ]);
    let records = [
        // Every field from the record, over Kubernetes metadata.
        map([
            ("app", s("myapp")),
            ("process", s("web.1")),
            ("source", s("router")),
            ("release", s("v3")),
            ("log", s("from the record\r\n")),
            ("kubernetes", kubernetes.clone()),
        ]),
        // No process: from the pod.
        map([
            ("app", s("myapp")),
            ("source", s("deis")),
            ("message", s("pod process\n")),
            ("kubernetes", kubernetes),
        ]),
        // No process and nothing else: the tag's last segment.
        map([
            ("app", s("myapp")),
            ("msg", s("msg field")),
            ("source", s("unknown")),
        ]),
        // log wins over message and msg; only one newline goes.
        map([
            ("app", s("myapp")),
            ("msg", s("no")),
            ("message", s("no")),
            ("log", s("yes\n\n")),
        ]),
        // Bin keys and values, non-string values ignored, no text at all.
        V::Map(vec![
            (V::Bin(b"app".to_vec()), V::Bin(b"binapp".to_vec())),
            (V::Bin(b"process".to_vec()), V::Int(7)),
            (V::Int(1), V::Int(2)),
            (V::Array(vec![s("k")]), map([("app", s("nested"))])),
        ]),
    ];
    let entries = records.into_iter().map(|r| (V::Int(5), r)).collect();
    stream
        .write_all(&forward("deis.tagproc", entries, None))
        .await
        .unwrap();
    let lines = server.sink.wait_for(5).await;
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.app.as_str(),
                l.process.as_str(),
                l.source,
                l.release.as_str(),
                l.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("myapp", "web.1", LogSource::Router, "v3", "from the record"),
            ("myapp", "web.x7k2p", LogSource::Platform, "", "pod process"),
            ("myapp", "tagproc", LogSource::App, "", "msg field"),
            ("myapp", "tagproc", LogSource::App, "", "yes\n"),
            ("binapp", "tagproc", LogSource::App, "", ""),
        ]
    );
}

#[tokio::test]
async fn kubernetes_metadata() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let k8s = |labels: V, pod: &str| {
        map([
            ("log", s("k8s line\n")),
            ("stream", s("stdout")),
            (
                "kubernetes",
                map([
                    ("pod_name", s(pod)),
                    ("namespace_name", s("myapp")),
                    ("pod_id", s("0a4b6c1e")),
                    ("labels", labels),
                    ("annotations", map([("x", V::Array(vec![V::Nil, V::Float(1.0)]))])),
                    ("container_name", s("myapp-worker")),
                    ("docker_id", s("abc")),
                ]),
            ),
        ])
    };
    let records = [
        // labels.app and labels.type.
        k8s(
            map([("app", s("labelled")), ("type", s("web"))]),
            "labelled-web-5d9f8c7b6-x7k2p",
        ),
        // No type label: the type comes from the pod name.
        k8s(map([("app", s("myapp"))]), "myapp-cmd-5d9f8c7b6-ab12c"),
        // No labels at all: the app is the namespace.
        k8s(map([]), "myapp-long-type-6f7d9c8b5-zz9yy"),
        // A pod name that says nothing: the container name.
        k8s(V::Nil, "myapp-0"),
    ];
    let entries = records.into_iter().map(|r| (event_time(50, 0), r)).collect();
    stream
        .write_all(&forward("kube.whatever", entries, None))
        .await
        .unwrap();
    let lines = server.sink.wait_for(4).await;
    assert_line(&lines[0], "labelled", "web.x7k2p", "k8s line", time(50, 0));
    assert_line(&lines[1], "myapp", "cmd.ab12c", "k8s line", time(50, 0));
    assert_line(&lines[2], "myapp", "long-type.zz9yy", "k8s line", time(50, 0));
    assert_line(&lines[3], "myapp", "worker.0", "k8s line", time(50, 0));
}

#[tokio::test]
async fn fluent_bit_container_log_tags() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let id = "0123456789abcdef".repeat(4);
    let tag = format!("kube.var.log.containers.myapp-web-5d9f8c7b6-x7k2p_myapp_myapp-web-{id}.log");
    let blob = packed_entries(&[
        (
            event_time(60, 7),
            map([("log", s("tail line\n")), ("stream", s("stdout"))]),
        ),
        (
            event_time(61, 0),
            map([("log", s("own app")), ("app", s("override"))]),
        ),
    ]);
    stream.write_all(&packed(&tag, V::Bin(blob), None)).await.unwrap();
    let lines = server.sink.wait_for(2).await;
    assert_line(&lines[0], "myapp", "web.x7k2p", "tail line", time(60, 7));
    assert_line(&lines[1], "override", "web.x7k2p", "own app", time(61, 0));
}

#[tokio::test]
async fn records_without_an_app_are_counted_and_dropped() {
    let server = Server::start().await;
    let mut stream = server.connect().await;
    let entries = vec![
        (V::Int(1), map([("log", s("nobody's"))])),
        (V::Int(2), record("a", "web.1", "somebody's")),
        (V::Int(3), map([("app", s("")), ("log", s("empty app"))])),
        (
            V::Int(4),
            map([
                ("kubernetes", map([("pod_name", s("x-y-z"))])),
                ("log", s("no namespace")),
            ]),
        ),
    ];
    stream
        .write_all(&forward(
            "kube.var.log.containers.bad.log",
            entries,
            Some(map([("chunk", s("u"))])),
        ))
        .await
        .unwrap();
    // Unattributed records are still acknowledged (they were received).
    assert_eq!(read_exactly(&mut stream, ack("u").len()).await, ack("u"));
    let stats = server.server.stats();
    assert_eq!((stats.records, stats.unattributed), (1, 3));
    assert_eq!(server.sink.lines()[0].text, "somebody's");
}

// ---------------------------------------------------------------------------
// Hostile input.

/// Sends `bytes` on a connection of its own (closing it afterwards when
/// `close`), expects the server to close it and count it, then checks that
/// another connection still works.
async fn refuse(server: &Server, bytes: &[u8], close: bool) {
    let before = server.server.stats();
    let mut stream = server.connect().await;
    // The server may close the connection before it has read everything.
    let _ = stream.write_all(bytes).await;
    if close {
        stream.shutdown().await.unwrap();
    }
    assert_closed(&mut stream).await;
    let after = server
        .wait_stats(|s| s.refused_connections == before.refused_connections + 1)
        .await;
    assert_eq!(after.records, before.records, "a refused frame delivers nothing");

    let mut good = server.connect().await;
    good.write_all(&message(
        "t",
        V::Int(1),
        record("a", "web.1", "still serving"),
        Some(map([("chunk", s("ok"))])),
    ))
    .await
    .unwrap();
    assert_eq!(read_exactly(&mut good, ack("ok").len()).await, ack("ok"));
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let server = Server::start().await;
    let good = record("a", "web.1", "never delivered");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a map", map([("tag", s("t"))]).encode()),
        ("JSON", br#"["tag", 1, {"log": "x"}]"#.to_vec()),
        ("one element", V::Array(vec![s("t")]).encode()),
        (
            "five elements",
            V::Array(vec![s("t"), V::Int(1), good.clone(), V::Nil, V::Nil]).encode(),
        ),
        (
            "an integer tag",
            V::Array(vec![V::Int(1), V::Int(1), good.clone()]).encode(),
        ),
        ("a string time", message("t", s("yesterday"), good.clone(), None)),
        (
            "a short EventTime",
            message("t", V::Ext(0, vec![0; 4]), good.clone(), None),
        ),
        (
            "an unknown ext",
            message("t", V::Ext(5, vec![0; 8]), good.clone(), None),
        ),
        (
            "a record that is not a map",
            message("t", V::Int(1), s("log line"), None),
        ),
        (
            "a message without a record",
            V::Array(vec![s("t"), V::Int(1)]).encode(),
        ),
        (
            "options that are not a map",
            message("t", V::Int(1), good.clone(), Some(s("chunk"))),
        ),
        (
            "an integer chunk",
            message("t", V::Int(1), good.clone(), Some(map([("chunk", V::Int(1))]))),
        ),
        (
            "bad entries in Forward",
            // The first entry is fine: nothing of the frame is delivered.
            forward("t", vec![(V::Int(1), good.clone()), (V::Int(2), V::Nil)], None),
        ),
        (
            "entries that are not pairs",
            V::Array(vec![s("t"), V::Array(vec![V::Array(vec![V::Int(1)])])]).encode(),
        ),
        (
            "garbage packed entries",
            packed("t", V::Bin(vec![0x92, 0x01, 0xc1]), None),
        ),
        (
            "a wrapped time without a metadata map",
            forward_raw(
                "t",
                V::Array(vec![V::Array(vec![
                    V::Array(vec![V::Int(1), V::Int(2)]),
                    good.clone(),
                ])]),
                V::Nil,
            ),
        ),
        (
            "a string fluent_signal",
            forward_raw("t", V::Array(vec![]), map([("fluent_signal", s("0"))])),
        ),
        ("truncated packed entries", {
            let blob = packed_entries(&[(V::Int(1), good.clone())]);
            packed("t", V::Bin(blob[..blob.len() - 1].to_vec()), None)
        }),
        (
            "not gzip",
            packed(
                "t",
                V::Bin(b"plain".to_vec()),
                Some(map([("compressed", s("gzip"))])),
            ),
        ),
        (
            "unknown compression",
            packed("t", V::Bin(vec![]), Some(map([("compressed", s("zstd"))]))),
        ),
        ("a reserved marker", vec![0x93, 0xc1, 0x01, 0x80]),
        ("a huge array claim", vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ];
    for (what, bytes) in cases {
        eprintln!("case: {what}");
        refuse(&server, &bytes, false).await;
    }
    assert!(server.sink.lines().iter().all(|l| l.text == "still serving"));
}

#[tokio::test]
async fn truncated_frames_then_close() {
    let server = Server::start().await;
    let frame = message("t", V::Int(1), record("a", "web.1", "cut short"), None);
    for cut in [1, 2, frame.len() / 2, frame.len() - 1] {
        refuse(&server, &frame[..cut], true).await;
    }
    assert!(server.sink.lines().iter().all(|l| l.text == "still serving"));
}

#[tokio::test]
async fn oversized_frames_and_gzip_bombs() {
    let server = Server::with(ForwardOptions {
        max_frame_bytes: 64 * 1024,
        ..ForwardOptions::default()
    })
    .await;
    // Refused from the header, before the bytes arrive.
    let mut header = Vec::new();
    rmp::encode::write_array_len(&mut header, 2).unwrap();
    rmp::encode::write_str(&mut header, "t").unwrap();
    rmp::encode::write_bin_len(&mut header, 1 << 30).unwrap();
    refuse(&server, &header, false).await;
    // Refused once too many bytes have arrived.
    let entries: Vec<_> = (0..2000)
        .map(|i| (V::Int(i), record("a", "web.1", "x".repeat(40).as_str())))
        .collect();
    refuse(&server, &forward("t", entries, None), false).await;
    // 10 MiB of zeros compress to about 10 KiB.
    let mut bomb = Vec::new();
    V::Array(vec![
        V::Int(1),
        map([("app", s("a")), ("log", V::Bin(vec![0; 10 << 20]))]),
    ])
    .encode_into(&mut bomb);
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    refuse(
        &server,
        &packed("t", V::Bin(bomb), Some(map([("compressed", s("gzip"))]))),
        false,
    )
    .await;
    assert!(server.sink.lines().iter().all(|l| l.text == "still serving"));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = Server::with(ForwardOptions {
        idle_timeout: Duration::from_millis(200),
        ..ForwardOptions::default()
    })
    .await;
    let mut stream = server.connect().await;
    stream
        .write_all(&message("t", V::Int(1), record("a", "web.1", "then quiet"), None))
        .await
        .unwrap();
    let started = Instant::now();
    assert_closed(&mut stream).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.sink.lines().len(), 1);
    assert_eq!(server.server.stats().refused_connections, 0);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = Server::with(ForwardOptions {
        max_connections: 2,
        ..ForwardOptions::default()
    })
    .await;
    let chunked = |n: &str| {
        message(
            "t",
            V::Int(1),
            record("a", "web.1", n),
            Some(map([("chunk", s(n))])),
        )
    };
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    for (stream, n) in [(&mut first, "1"), (&mut second, "2")] {
        stream.write_all(&chunked(n)).await.unwrap();
        assert_eq!(read_exactly(stream, ack(n).len()).await, ack(n));
    }
    let mut third = server.connect().await;
    third.write_all(&chunked("3")).await.unwrap();
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waited.is_err(), "a third connection was served: {waited:?}");
    assert_eq!(server.server.stats().connections, 2);

    drop(first);
    assert_eq!(read_exactly(&mut third, ack("3").len()).await, ack("3"));
    assert_eq!(server.server.stats().connections, 3);
    assert_eq!(server.sink.lines().len(), 3);
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_connections() {
    let server = Server::start().await;
    let addr = server.addr();
    let mut stream = server.connect().await;
    stream
        .write_all(&message("t", V::Int(1), record("a", "web.1", "before"), None))
        .await
        .unwrap();
    server.sink.wait_for(1).await;
    assert_eq!(server.server.stats().connections, 1);
    tokio::time::timeout(WAIT, server.server.shutdown())
        .await
        .unwrap();
    assert_closed(&mut stream).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------
// Real clients.

fn client_script(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("tests/clients")
        .join(name)
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run buildtools/test, which installs the real Forward clients and \
             exports it (or `source buildtools/lib/common.sh && ensure_python_tools && ensure_node_tools`)"
        )
    })
}

async fn run_client(mut command: tokio::process::Command) {
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the client ran too long")
        .expect("starting the client");
    assert!(
        output.status.success(),
        "client failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn python_fluent_logger() {
    let python = required_env("DEIS_PYTHON");
    let server = Server::start().await;
    let before = Utc::now();
    let mut command = tokio::process::Command::new(python);
    command
        .arg(client_script("python_sender.py"))
        .arg("127.0.0.1")
        .arg(server.addr().port().to_string());
    run_client(command).await;
    let after = Utc::now();
    let lines = server.sink.wait_for(3).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let now = &lines[0];
    assert_eq!(
        (now.app.as_str(), now.process.as_str(), now.text.as_str()),
        ("pyapp", "web.1", "hello from python")
    );
    assert!(
        before <= now.time && now.time <= after,
        "{} not in [{before}, {after}]",
        now.time
    );
    assert_line(
        &lines[1],
        "pyapp",
        "worker.2",
        "exact time",
        time(1_700_000_000, 123_456_789),
    );
    assert_eq!(lines[1].release, "v7");
    assert_line(
        &lines[2],
        "pyapp",
        "cmd.ab1cd",
        "bytes from kubernetes",
        time(1_700_000_001, 0),
    );
    assert_eq!(server.server.stats().refused_connections, 0);
}

async fn node_client(mode: &str, count: u32) {
    let node_path = required_env("DEIS_NODE_PATH");
    let server = Server::start().await;
    let mut command = tokio::process::Command::new("node");
    command
        .env("NODE_PATH", node_path)
        .arg(client_script("node_sender.js"))
        .arg("127.0.0.1")
        .arg(server.addr().port().to_string())
        .arg(mode)
        .arg(count.to_string());
    // Exits 0 only once every emit callback ran without error: every frame
    // was acknowledged with its chunk.
    run_client(command).await;
    let lines = server.sink.wait_for(count as usize).await;
    assert_eq!(lines.len(), count as usize);
    for (i, line) in lines.iter().enumerate() {
        assert_line(
            line,
            "nodeapp",
            &format!("web.{i}"),
            &format!("node {mode} {i}"),
            time(1_700_000_000 + i as i64, 1000 + i as u32),
        );
    }
    assert_eq!(server.server.stats().refused_connections, 0);
}

#[tokio::test]
async fn node_fluent_logger_message() {
    node_client("Message", 5).await;
}

#[tokio::test]
async fn node_fluent_logger_packed_forward() {
    node_client("PackedForward", 50).await;
}

#[tokio::test]
async fn node_fluent_logger_compressed_packed_forward() {
    node_client("CompressedPackedForward", 50).await;
}

// ---------------------------------------------------------------------------
// Throughput (run by hand, in release mode):
// cargo test --release -p deis-logger --test forward -- --ignored --nocapture throughput

struct Count(AtomicU64);

impl LogSink for Count {
    fn send(&self, line: LogLine) {
        std::hint::black_box(line);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand in release mode"]
async fn throughput() {
    const BATCH: usize = 1000;
    const FRAMES: usize = 1000;
    let sink = Arc::new(Count(AtomicU64::new(0)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve(listener, sink.clone(), ForwardOptions::default())
        .await
        .unwrap();
    // What Fluent Bit sends for a container log line with its kubernetes
    // filter on.
    let record = |i: usize| {
        map([
            (
                "log",
                s(&format!(
                    "10.0.0.1 - - [01/Dec/2026:16:00:00 +0000] \"GET /items/{i} HTTP/1.1\" 200 512\n"
                )),
            ),
            ("stream", s("stdout")),
            ("time", s("2026-12-01T16:00:00.123456789Z")),
            (
                "kubernetes",
                map([
                    ("pod_name", s("myapp-web-5d9f8c7b6-x7k2p")),
                    ("namespace_name", s("myapp")),
                    ("pod_id", s("0a4b6c1e-1111-2222-3333-444455556666")),
                    (
                        "labels",
                        map([("app", s("myapp")), ("type", s("web")), ("heritage", s("deis"))]),
                    ),
                    ("host", s("node-1")),
                    ("container_name", s("myapp-web")),
                    ("docker_id", s(&"ab".repeat(32))),
                ]),
            ),
        ])
    };
    let entries: Vec<_> = (0..BATCH)
        .map(|i| (event_time(1_700_000_000, i as u32), record(i)))
        .collect();
    for (mode, compressed) in [("PackedForward", false), ("CompressedPackedForward", true)] {
        let blob = packed_entries(&entries);
        let (blob, compression) = if compressed {
            (gzip(&blob), "gzip")
        } else {
            (blob, "text")
        };
        let frame = packed(
            "t",
            V::Bin(blob),
            Some(map([("chunk", s("bench")), ("compressed", s(compression))])),
        );
        let start_count = sink.0.load(Ordering::Relaxed);
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let started = Instant::now();
        let reply = ack("bench");
        let mut buf = vec![0; reply.len()];
        // A client that waits for each ack, like Fluent Bit with
        // require_ack_response.
        for _ in 0..FRAMES {
            stream.write_all(&frame).await.unwrap();
            stream.read_exact(&mut buf).await.unwrap();
        }
        let elapsed = started.elapsed();
        let lines = sink.0.load(Ordering::Relaxed) - start_count;
        assert_eq!(lines, (BATCH * FRAMES) as u64);
        println!(
            "{mode}: {lines} lines in {elapsed:.2?} ({:.0} lines/s, frames of {} bytes)",
            lines as f64 / elapsed.as_secs_f64(),
            frame.len()
        );
    }
}
