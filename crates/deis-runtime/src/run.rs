//! One-off processes (`deis run`): the release's environment, output
//! streamed to the client while the command runs, optionally under a
//! pseudo-terminal fed by the client's keystrokes. A one-off process never
//! outlives its client by more than its grace period, nor its time limit.

use std::process::Stdio;
use std::time::Duration;

use deis_scheduler::{RunInput, RunIo, RunOutput, SchedulerError};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::launch::Launch;

/// How a one-off run is bounded.
pub(crate) struct Bounds {
    pub(crate) timeout: Duration,
    pub(crate) grace: Duration,
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Copies a stream to the client as it comes.
async fn forward<R: AsyncRead + Unpin>(
    mut from: R,
    to: mpsc::Sender<RunOutput>,
    wrap: fn(Vec<u8>) -> RunOutput,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to
                    .send(wrap(buffer.get(..n).unwrap_or_default().to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Waits for the child, the time limit, or the client to leave; stops the
/// whole process group in the last two cases.
async fn finish(mut child: Child, output: mpsc::Sender<RunOutput>, bounds: &Bounds) -> i32 {
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let kill = |signal| {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, signal);
        }
    };
    let stop_gracefully = async |child: &mut Child, grace: Duration| {
        kill(Signal::SIGTERM);
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            return status.map_or(1, exit_code);
        }
        kill(Signal::SIGKILL);
        child.wait().await.map_or(1, exit_code)
    };
    let code = tokio::select! {
        status = child.wait() => status.map_or(1, exit_code),
        () = tokio::time::sleep(bounds.timeout) => {
            let _ = output
                .send(RunOutput::Stderr(format!("\nTimed out after {:?}; stopping the command.\n", bounds.timeout).into_bytes()))
                .await;
            stop_gracefully(&mut child, Duration::from_secs(2)).await
        }
        () = output.closed() => stop_gracefully(&mut child, bounds.grace).await,
    };
    // Whatever the command left running in the background goes with it.
    kill(Signal::SIGKILL);
    code
}

/// Runs `launch` attached to `io`.
pub(crate) async fn run(launch: Launch, io: RunIo, bounds: Bounds) -> Result<i32, SchedulerError> {
    match io.tty {
        Some(size) => run_tty(launch, io.output, io.input, size, bounds).await,
        None => run_piped(launch, io.output, io.input, bounds).await,
    }
}

async fn run_piped(
    launch: Launch,
    output: mpsc::Sender<RunOutput>,
    input: Option<mpsc::Receiver<RunInput>>,
    bounds: Bounds,
) -> Result<i32, SchedulerError> {
    let mut command = launch.command();
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| SchedulerError::Unavailable(format!("cannot start the command: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(forward(s, output.clone(), RunOutput::Stdout)));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(forward(s, output.clone(), RunOutput::Stderr)));
    let feeder = match (child.stdin.take(), input) {
        (Some(mut stdin), Some(mut input)) => Some(tokio::spawn(async move {
            while let Some(message) = input.recv().await {
                match message {
                    RunInput::Stdin(bytes) => {
                        if stdin.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    RunInput::Eof => return,
                    RunInput::Resize { .. } => {}
                }
            }
        })),
        _ => None,
    };
    let code = finish(child, output, &bounds).await;
    for task in [stdout, stderr].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    Ok(code)
}

async fn run_tty(
    launch: Launch,
    output: mpsc::Sender<RunOutput>,
    input: Option<mpsc::Receiver<RunInput>>,
    size: deis_scheduler::TtySize,
    bounds: Bounds,
) -> Result<i32, SchedulerError> {
    let unavailable =
        |e: pty_process::Error| SchedulerError::Unavailable(format!("cannot open a terminal: {e}"));
    let (pty, pts) = pty_process::open().map_err(unavailable)?;
    pty.resize(pty_process::Size::new(size.rows.max(1), size.cols.max(1)))
        .map_err(unavailable)?;
    let mut env = launch.env.clone();
    if !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm-256color".into()));
    }
    let child = Launch { env, ..launch }
        .pty_command()
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(unavailable)?;
    let (read, mut write) = pty.into_split();
    let reader = tokio::spawn(forward(read, output.clone(), RunOutput::Stdout));
    let feeder = input.map(|mut input| {
        tokio::spawn(async move {
            while let Some(message) = input.recv().await {
                match message {
                    RunInput::Stdin(bytes) => {
                        if write.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    RunInput::Resize { cols, rows } => {
                        let _ = write.resize(pty_process::Size::new(rows.max(1), cols.max(1)));
                    }
                    RunInput::Eof => {}
                }
            }
        })
    });
    let code = finish(child, output, &bounds).await;
    // The terminal's last output may still be buffered in the pty.
    let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    Ok(code)
}
