//! The builder's listeners keep accepting after `accept()` fails for want
//! of file descriptors, without spinning meanwhile: russh's own SSH accept
//! loop would have stopped for good, and a loop that retries at once burns a
//! core. The tests fill the descriptor table for real, so they have a test
//! binary of their own and take turns: nothing else may open files meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use deis_builder::hook::{self, HookHandler, HookRequest, Output, PushContext, Pushes};
use deis_builder::{Builder, BuilderConfig, ControllerClient, HookCommand, LocalExecutor, Objects};
use nix::sys::resource::{Resource, Usage, UsageWho, getrlimit, getrusage, setrlimit};

/// One test at a time fills the table.
static DESCRIPTORS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Lowers the descriptor limit and opens files up to it, then frees one
/// for the caller's client socket. Dropping it gives the table back.
struct FullTable {
    filler: Vec<std::fs::File>,
    limits: (u64, u64),
}

impl FullTable {
    fn fill() -> FullTable {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, 256.min(hard), hard).unwrap();
        let mut filler = Vec::new();
        let full = loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => filler.push(file),
                Err(error) => break error,
            }
        };
        assert_eq!(full.raw_os_error(), Some(nix::libc::EMFILE), "{full}");
        filler.pop();
        FullTable {
            filler,
            limits: (soft, hard),
        }
    }
}

impl Drop for FullTable {
    fn drop(&mut self) {
        self.filler.clear();
        let _ = setrlimit(Resource::RLIMIT_NOFILE, self.limits.0, self.limits.1);
    }
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let usage: Usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let micros =
        |t: nix::sys::time::TimeVal| Duration::from_micros((t.tv_sec() * 1_000_000 + t.tv_usec()) as u64);
    micros(usage.user_time()) + micros(usage.system_time())
}

/// Reads the server's identification line.
fn banner(mut stream: TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            other => panic!("no identification line from the SSH server: {other:?} after {line:?}"),
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_server_accepts_again_once_descriptors_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HookCommand {
        program: "/bin/false".into(),
        args: Vec::new(),
    };
    let config = BuilderConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("builder"), hook);
    // Never called here: the client connects lazily.
    let controller =
        ControllerClient::new("http://127.0.0.1:9", "accept-test-platform-secret-0123456789").unwrap();
    let builder = Builder::start(
        config,
        controller,
        Objects::local(&dir.path().join("objects")).unwrap(),
        Arc::new(LocalExecutor::new(dir.path().join("buildpacks"))),
    )
    .await
    .unwrap();
    let addr = builder.ssh_addr;
    assert_eq!(banner(TcpStream::connect(addr).unwrap()), "SSH-2.0-deis-builder");

    let _turn = DESCRIPTORS.lock().await;
    // Fill the descriptor table, then free one for the client's socket: the
    // connection it makes reaches the server with no descriptor left to
    // accept it with.
    let full = FullTable::fill();
    let client = TcpStream::connect(addr).unwrap();
    // The server tries, fails and backs off meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(full);

    // The waiting connection is served, and so are new ones.
    assert_eq!(banner(client), "SSH-2.0-deis-builder");
    assert_eq!(banner(TcpStream::connect(addr).unwrap()), "SSH-2.0-deis-builder");
}

/// Answers every build with one line of output and success.
struct Succeeds;

#[async_trait::async_trait]
impl HookHandler for Succeeds {
    async fn handle(&self, _: PushContext, _: HookRequest, output: Output) -> i32 {
        let _ = output.send("built".to_owned()).await;
        0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_server_waits_for_descriptors_without_spinning_and_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hook.sock");
    let pushes = Pushes::default();
    let token = pushes.register(PushContext {
        app: "accept-test".into(),
        username: "tester".into(),
        repo: dir.path().join("accept-test.git"),
    });
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(hook::serve(listener, pushes.clone(), Arc::new(Succeeds)));

    let _turn = DESCRIPTORS.lock().await;
    let full = FullTable::fill();
    let mut client = UnixStream::connect(&socket).unwrap();
    // Retrying at once would keep a core busy for the whole wait.
    let before = cpu_time();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let spent = cpu_time() - before;
    drop(full);
    assert!(
        spent < Duration::from_millis(150),
        "{spent:?} of CPU time while no descriptor was free"
    );

    // The waiting connection is served once descriptors are free.
    let request = format!(r#"{{"token":"{}","refs":[]}}"#, token.as_str());
    let answer = tokio::task::spawn_blocking(move || {
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.write_all(format!("{request}\n").as_bytes()).unwrap();
        BufReader::new(client)
            .lines()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(answer, ["obuilt", "x0"]);
    server.abort();
}
