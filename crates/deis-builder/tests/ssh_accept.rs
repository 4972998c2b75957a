//! The builder's SSH server keeps accepting after `accept()` fails for want
//! of file descriptors; russh's own accept loop would have stopped for good.
//! The test fills this process's descriptor table for real, so it has a
//! test binary of its own: no other test may be opening files meanwhile.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use deis_builder::{Builder, BuilderConfig, ControllerClient, HookCommand, LocalExecutor, Objects};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

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

    // Fill the descriptor table, then free one for the client's socket: the
    // connection it makes reaches the server with no descriptor left to
    // accept it with.
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
    let client = TcpStream::connect(addr).unwrap();
    // The server tries, fails and backs off meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(filler);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    // The waiting connection is served, and so are new ones.
    assert_eq!(banner(client), "SSH-2.0-deis-builder");
    assert_eq!(banner(TcpStream::connect(addr).unwrap()), "SSH-2.0-deis-builder");
}
