//! `RunAttached`: a one-off command attached to the caller over one
//! bidirectional stream. The first half runs against the recording
//! scheduler (output, exit codes, errors, authorization); the second against
//! an echoing scheduler defined here, to pin down how the controller drives a
//! runtime's `RunIo` (input, `eof`, resizes, limits, a client that leaves).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deis_auth::PlatformSecret;
use deis_controller::{Controller, ControllerConfig, RegistrationMode};
use deis_proto::v2 as pb;
use deis_proto::v2::run_attached_request::Kind as In;
use deis_proto::v2::run_attached_response::Kind as Out;
use deis_scheduler::{
    Capabilities, DeploySpec, EndpointsWatch, Enforcement, ProcessInfo, ProcessSelector, RecordedCall,
    RunInput, RunIo, RunOutcome, RunOutput, RunSpec, Scheduler, SchedulerError,
};
use deis_testkit::{Clients, TestPlatform, authed, test_store};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

fn start(app: &str, command: &str) -> pb::RunAttachedRequest {
    pb::RunAttachedRequest {
        kind: Some(In::Start(pb::RunStart {
            app: app.into(),
            command: command.into(),
            ..Default::default()
        })),
    }
}

fn start_tty(app: &str, command: &str, cols: u32, rows: u32) -> pb::RunAttachedRequest {
    pb::RunAttachedRequest {
        kind: Some(In::Start(pb::RunStart {
            app: app.into(),
            command: command.into(),
            tty: true,
            cols,
            rows,
        })),
    }
}

fn stdin(bytes: &[u8]) -> pb::RunAttachedRequest {
    pb::RunAttachedRequest {
        kind: Some(In::Stdin(bytes.to_vec())),
    }
}

fn resize(cols: u32, rows: u32) -> pb::RunAttachedRequest {
    pb::RunAttachedRequest {
        kind: Some(In::Resize(pb::TtyResize { cols, rows })),
    }
}

fn eof() -> pb::RunAttachedRequest {
    pb::RunAttachedRequest {
        kind: Some(In::Eof(pb::RunEof {})),
    }
}

/// What came back from a finished run.
#[derive(Debug, Default)]
struct Transcript {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    /// Anything after `exit` (there must be nothing).
    after_exit: usize,
}

async fn collect(mut responses: Streaming<pb::RunAttachedResponse>) -> Result<Transcript, Status> {
    let mut t = Transcript::default();
    while let Some(message) = responses.message().await? {
        if t.exit.is_some() {
            t.after_exit += 1;
        }
        match message.kind {
            Some(Out::Stdout(b)) => t.stdout.extend(b),
            Some(Out::Stderr(b)) => t.stderr.extend(b),
            Some(Out::Exit(e)) => t.exit = Some(e.exit_code),
            None => {}
        }
    }
    Ok(t)
}

/// Sends `messages` (then closes the request stream) and collects the run.
async fn attach(
    c: &mut Clients,
    token: Option<&str>,
    messages: Vec<pb::RunAttachedRequest>,
) -> Result<Transcript, Status> {
    let stream = tokio_stream::iter(messages);
    let request = match token {
        Some(token) => authed(token, stream),
        None => tonic::Request::new(stream),
    };
    let responses = c.apps.run_attached(request).await?.into_inner();
    collect(responses).await
}

async fn create_app(c: &mut Clients, token: &str, app: &str) {
    c.apps
        .create_app(authed(token, pb::CreateAppRequest { id: app.into() }))
        .await
        .expect("create app");
}

async fn create_build(c: &mut Clients, token: &str, app: &str) {
    c.builds
        .create_build(authed(
            token,
            pb::CreateBuildRequest {
                app: app.into(),
                image: "example/app:v1".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("create build");
}

/// A platform with an app `app` owned by alice that has a build.
async fn platform_with_build(app: &str) -> (TestPlatform, Clients, String) {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    create_app(&mut c, &alice, app).await;
    create_build(&mut c, &alice, app).await;
    (p, c, alice)
}

#[tokio::test]
async fn output_and_exit_code_arrive_and_exit_is_last() {
    let (p, mut c, alice) = platform_with_build("echo").await;
    let t = attach(&mut c, Some(&alice), vec![start("echo", "echo hi"), eof()])
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&t.stdout), "echo hi\n");
    assert!(t.stderr.is_empty());
    assert_eq!(t.exit, Some(0));
    assert_eq!(t.after_exit, 0);
    assert!(p.scheduler.calls_for("echo").contains(&RecordedCall::Run {
        app: "echo".into(),
        version: 2,
        command: "echo hi".into(),
    }));
    // Logged like RunCommand.
    let logs = c
        .apps
        .get_logs(authed(
            &alice,
            pb::GetLogsRequest {
                app: "echo".into(),
                log_lines: 100,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .lines;
    assert!(
        logs.iter().any(|l| l.contains("alice runs 'echo hi'")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn the_exit_code_is_the_commands() {
    let (p, mut c, alice) = platform_with_build("fails").await;
    p.scheduler.set_run_outcome(RunOutcome {
        exit_code: 3,
        output: "boom\n".into(),
    });
    // The client may also just close its stream instead of sending eof.
    let t = attach(&mut c, Some(&alice), vec![start("fails", "false")])
        .await
        .unwrap();
    assert_eq!(
        (t.exit, String::from_utf8_lossy(&t.stdout).as_ref()),
        (Some(3), "boom\n")
    );
}

#[tokio::test]
async fn an_app_without_a_build_cannot_run() {
    let p = TestPlatform::start().await;
    let alice = p.register("alice").await;
    let mut c = p.clients().await;
    create_app(&mut c, &alice, "bare").await;
    let err = attach(&mut c, Some(&alice), vec![start("bare", "ls"), eof()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "No build associated with this release to run this command"
    );
    assert!(p.scheduler.calls_for("bare").is_empty());
}

#[tokio::test]
async fn strangers_and_anonymous_callers_are_refused() {
    let (p, mut c, _alice) = platform_with_build("private").await;
    let mallory = p.register("mallory").await;
    let err = attach(&mut c, Some(&mallory), vec![start("private", "ls"), eof()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = attach(&mut c, None, vec![start("private", "ls"), eof()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = attach(&mut c, Some(&mallory), vec![start("missing", "ls")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        !p.scheduler
            .calls()
            .iter()
            .any(|call| matches!(call, RecordedCall::Run { .. }))
    );
}

#[tokio::test]
async fn the_first_message_must_be_start_and_name_a_command() {
    let (p, mut c, alice) = platform_with_build("strict").await;
    for messages in [vec![stdin(b"ls\n"), start("strict", "ls")], vec![eof()], vec![]] {
        let err = attach(&mut c, Some(&alice), messages).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`start`"), "{}", err.message());
    }
    let err = attach(&mut c, Some(&alice), vec![start("strict", "  ")])
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "command is a required field")
    );
    // RunCommand shares the checks.
    let err = c
        .apps
        .run_command(authed(
            &alice,
            pb::RunCommandRequest {
                app: "strict".into(),
                command: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "command is a required field")
    );
    assert!(
        p.scheduler
            .calls_for("strict")
            .iter()
            .all(|call| !matches!(call, RecordedCall::Run { .. }))
    );
}

// ---------------------------------------------------------------------------
// How the controller drives a runtime's `RunIo`.

/// What the echoing scheduler saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// `io.input` was None.
    NoInput,
    /// The output receiver was dropped (the client went away).
    OutputClosed,
    /// The input closed without `eof`.
    InputClosed,
    /// `eof` arrived.
    Eof,
}

/// Echoes stdin to stdout, reports resizes on stderr, and exits 7 at `eof`
/// (except `wait`, which runs until the client leaves).
struct EchoScheduler {
    seen: mpsc::UnboundedSender<Seen>,
}

#[async_trait::async_trait]
impl Scheduler for EchoScheduler {
    async fn deploy(&self, _spec: &DeploySpec) -> Result<(), SchedulerError> {
        Ok(())
    }

    async fn scale(&self, _spec: &DeploySpec) -> Result<(), SchedulerError> {
        Ok(())
    }

    async fn restart(
        &self,
        _app: &str,
        _selector: &ProcessSelector,
    ) -> Result<Vec<ProcessInfo>, SchedulerError> {
        Ok(Vec::new())
    }

    async fn run_attached(&self, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError> {
        if spec.command == "fail" {
            return Err(SchedulerError::Unavailable("the runtime is down".into()));
        }
        let output = io.output;
        if let Some(tty) = io.tty {
            let _ = output
                .send(RunOutput::Stdout(
                    format!("tty {}x{}\n", tty.cols, tty.rows).into_bytes(),
                ))
                .await;
        }
        let Some(mut input) = io.input else {
            let _ = self.seen.send(Seen::NoInput);
            return Ok(0);
        };
        loop {
            tokio::select! {
                message = input.recv() => match message {
                    Some(RunInput::Stdin(bytes)) => {
                        let _ = output.send(RunOutput::Stdout(bytes)).await;
                    }
                    Some(RunInput::Resize { cols, rows }) => {
                        let _ = output
                            .send(RunOutput::Stderr(format!("resize {cols}x{rows}\n").into_bytes()))
                            .await;
                    }
                    // `wait` keeps running after eof, like a command
                    // that does not read stdin.
                    Some(RunInput::Eof) if spec.command == "wait" => {}
                    Some(RunInput::Eof) => {
                        let _ = self.seen.send(Seen::Eof);
                        return Ok(7);
                    }
                    None => {
                        let _ = self.seen.send(Seen::InputClosed);
                        return Ok(129);
                    }
                },
                () = output.closed() => {
                    let _ = self.seen.send(Seen::OutputClosed);
                    return Ok(137);
                }
            }
        }
    }

    async fn list(&self, _app: &str) -> Result<Vec<ProcessInfo>, SchedulerError> {
        Ok(Vec::new())
    }

    async fn destroy(&self, _app: &str) -> Result<(), SchedulerError> {
        Ok(())
    }

    async fn check_tags(&self, _tags: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        Ok(())
    }

    fn endpoints(&self) -> EndpointsWatch {
        deis_scheduler::no_endpoints()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            memory_limits: Enforcement::NotEnforced,
            cpu_limits: Enforcement::NotEnforced,
            autoscaling: Enforcement::NotEnforced,
        }
    }
}

/// A controller over the echoing scheduler, with alice's app `echo` built.
struct EchoPlatform {
    c: Clients,
    token: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    _store: deis_testkit::StoreGuard,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for EchoPlatform {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl EchoPlatform {
    async fn start() -> EchoPlatform {
        let (store, guard) = test_store().await;
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let controller = Controller::new(
            store,
            Arc::new(EchoScheduler { seen: seen_tx }),
            ControllerConfig {
                registration_mode: RegistrationMode::Enabled,
                ..Default::default()
            },
            PlatformSecret::new(deis_auth::issue_token().token).unwrap(),
            Arc::new(deis_logger::Logger::new(Default::default(), Default::default())),
        );
        let (addr, server) = deis_controller::spawn(controller, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = Clients::new(channel);
        c.auth
            .register(pb::RegisterRequest {
                username: "alice".into(),
                password: "alice-password".into(),
                email: "alice@example.com".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let token = c
            .auth
            .login(pb::LoginRequest {
                username: "alice".into(),
                password: "alice-password".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        create_app(&mut c, &token, "echo").await;
        create_build(&mut c, &token, "echo").await;
        EchoPlatform {
            c,
            token,
            seen,
            _store: guard,
            server,
        }
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("the scheduler reports in time")
            .expect("the scheduler is alive")
    }
}

#[tokio::test]
async fn stdin_resizes_and_eof_reach_the_runtime() {
    let mut e = EchoPlatform::start().await;
    let t = attach(
        &mut e.c,
        Some(&e.token.clone()),
        vec![
            start_tty("echo", "bash", 100, 40),
            stdin(b"hello "),
            resize(120, 50),
            resize(0, 10), // no size: ignored
            stdin(b"world"),
            eof(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&t.stdout), "tty 100x40\nhello world");
    assert_eq!(String::from_utf8_lossy(&t.stderr), "resize 120x50\n");
    assert_eq!((t.exit, t.after_exit), (Some(7), 0));
    assert_eq!(e.next_seen().await, Seen::Eof);

    // Without a terminal: input still flows (a runtime gives the command a
    // pipe), resizes are dropped, and a zero size means 80x24 with a tty.
    let t = attach(
        &mut e.c,
        Some(&e.token.clone()),
        vec![start("echo", "cat"), resize(1, 1), stdin(b"piped"), eof()],
    )
    .await
    .unwrap();
    assert_eq!(
        (t.stdout.as_slice(), t.stderr.is_empty(), t.exit),
        (&b"piped"[..], true, Some(7))
    );
    assert_eq!(e.next_seen().await, Seen::Eof);
    let t = attach(
        &mut e.c,
        Some(&e.token.clone()),
        vec![start_tty("echo", "bash", 0, 0)],
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&t.stdout), "tty 80x24\n");
    // Closing the request stream without eof counts as eof.
    assert_eq!((t.exit, e.next_seen().await), (Some(7), Seen::Eof));
}

#[tokio::test]
async fn oversized_stdin_and_a_second_start_are_refused() {
    let mut e = EchoPlatform::start().await;
    let token = e.token.clone();
    let err = attach(
        &mut e.c,
        Some(&token),
        vec![start("echo", "cat"), stdin(&vec![b'x'; 64 * 1024 + 1])],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("64 KiB"), "{}", err.message());
    // The run was abandoned: the runtime saw its ends of the RunIo dropped.
    assert!(matches!(
        e.next_seen().await,
        Seen::OutputClosed | Seen::InputClosed
    ));

    // Exactly 64 KiB is fine.
    let t = attach(
        &mut e.c,
        Some(&token),
        vec![start("echo", "cat"), stdin(&vec![b'x'; 64 * 1024]), eof()],
    )
    .await
    .unwrap();
    assert_eq!((t.stdout.len(), t.exit), (64 * 1024, Some(7)));
    assert_eq!(e.next_seen().await, Seen::Eof);

    let err = attach(
        &mut e.c,
        Some(&token),
        vec![start("echo", "cat"), start("echo", "cat")],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(matches!(
        e.next_seen().await,
        Seen::OutputClosed | Seen::InputClosed
    ));
}

#[tokio::test]
async fn scheduler_errors_end_the_stream_with_their_status() {
    let mut e = EchoPlatform::start().await;
    let token = e.token.clone();
    let err = attach(&mut e.c, Some(&token), vec![start("echo", "fail"), eof()])
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "the runtime is down")
    );
}

#[tokio::test]
async fn a_client_that_leaves_lets_the_runtime_stop_the_command() {
    let mut e = EchoPlatform::start().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(start_tty("echo", "wait", 80, 24)).await.unwrap();
    tx.send(stdin(b"hi")).await.unwrap();
    let mut responses =
        e.c.apps
            .run_attached(authed(&e.token, ReceiverStream::new(rx)))
            .await
            .unwrap()
            .into_inner();
    let mut seen = Vec::new();
    while seen != b"tty 80x24\nhi" {
        match responses.message().await.unwrap().unwrap().kind {
            Some(Out::Stdout(b)) => seen.extend(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    // The client goes away: its request stream ends (which the controller
    // passes on as eof) and the call is reset.
    drop(responses);
    drop(tx);
    assert!(matches!(
        e.next_seen().await,
        Seen::OutputClosed | Seen::InputClosed
    ));
}
