//! Child processes of a build: each in its own process group, with its output
//! streamed line by line to the build log, bounded by the build's deadline.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::super::{BuildError, BuildLog};

/// How long the pipes of a finished step may stay open (held by something it
/// left running) before the rest of its process group is killed.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a killed child to be reaped.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// What happens to one output stream of a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Output {
    /// Each line goes to the build log as it comes.
    Stream,
    /// Kept and returned (stdout only).
    Capture,
    /// Thrown away.
    Discard,
}

/// One child process to run.
#[derive(Debug)]
pub(super) struct Cmd {
    /// The name used in error messages (`compile failed with exit code 1`).
    pub(super) step: String,
    pub(super) program: OsString,
    pub(super) args: Vec<OsString>,
    pub(super) cwd: PathBuf,
    /// Added to (or overriding) the build's base environment.
    pub(super) extra_env: Vec<(String, String)>,
    pub(super) stdout: Output,
    pub(super) stderr: Output,
}

impl Cmd {
    pub(super) fn new(step: impl Into<String>, program: impl Into<OsString>, cwd: PathBuf) -> Self {
        Self {
            step: step.into(),
            program: program.into(),
            args: Vec::new(),
            cwd,
            extra_env: Vec::new(),
            stdout: Output::Stream,
            stderr: Output::Stream,
        }
    }

    pub(super) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(super) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    pub(super) fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    pub(super) fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }
}

/// How a child ended.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) status: ExitStatus,
    /// Stdout, when it was captured.
    pub(super) stdout: String,
}

impl Finished {
    /// `Ok` on exit status 0, else `BuildError::Failed` naming the step.
    pub(super) fn check(self, step: &str) -> Result<Self, BuildError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(BuildError::Failed(describe_failure(step, self.status)))
        }
    }
}

/// `"<step> failed with exit code N"` or `"<step> was killed by signal N"`.
pub(super) fn describe_failure(step: &str, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("{step} failed with exit code {code}"),
        (None, Some(signal)) => format!("{step} was killed by signal {signal}"),
        (None, None) => format!("{step} failed"),
    }
}

/// Kills a child's whole process group when dropped while armed, so that a
/// cancelled build leaves nothing running.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (nothing left) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The running build: its log, its deadline and the environment every step
/// gets.
pub(super) struct Session {
    log: BuildLog,
    log_open: bool,
    deadline: Instant,
    timeout: Duration,
    env: Vec<(String, String)>,
}

impl Session {
    pub(super) fn new(log: BuildLog, timeout: Duration, env: Vec<(String, String)>) -> Self {
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or_else(|| far_future(now));
        Self {
            log,
            log_open: true,
            deadline,
            timeout,
            env,
        }
    }

    /// Time left before the build's deadline.
    pub(super) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub(super) fn timeout_error(&self) -> BuildError {
        BuildError::Timeout(self.timeout)
    }

    /// Sends one line to the build log. A log whose receiver is gone is
    /// ignored from then on; a log that blocks past the deadline times the
    /// build out.
    pub(super) async fn say(&mut self, line: impl Into<String>) -> Result<(), BuildError> {
        if !self.log_open {
            return Ok(());
        }
        match timeout_at(self.deadline, self.log.send(line.into())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => {
                self.log_open = false;
                Ok(())
            }
            Err(_elapsed) => Err(self.timeout_error()),
        }
    }

    /// Runs `cmd` to its end (or the build's deadline) and returns how it
    /// ended, whatever the exit status.
    pub(super) async fn run(&mut self, cmd: Cmd) -> Result<Finished, BuildError> {
        if Instant::now() >= self.deadline {
            return Err(self.timeout_error());
        }
        let mut command = tokio::process::Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .current_dir(&cmd.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(cmd.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdio(cmd.stdout))
            .stderr(stdio(cmd.stderr))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            BuildError::Failed(format!(
                "{} could not be started ({}): {e}",
                cmd.step,
                cmd.program.to_string_lossy()
            ))
        })?;
        let mut guard = GroupGuard {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw),
        };
        let stdout = child.stdout.take().map(BufReader::new);
        let stderr = child.stderr.take().map(BufReader::new);
        let capture = cmd.stdout == Output::Capture;
        let result = self
            .supervise(&mut child, &mut guard, stdout, stderr, capture)
            .await;
        match result {
            Ok(finished) => {
                // Whatever the step left behind dies with it.
                guard.kill();
                guard.disarm();
                Ok(finished)
            }
            Err(e) => {
                guard.kill();
                // Reap the child (SIGKILL cannot be ignored); bounded in case
                // it is stuck in the kernel.
                let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
                guard.disarm();
                Err(e)
            }
        }
    }

    async fn supervise(
        &mut self,
        child: &mut Child,
        guard: &mut GroupGuard,
        mut stdout: Option<BufReader<ChildStdout>>,
        mut stderr: Option<BufReader<ChildStderr>>,
        capture: bool,
    ) -> Result<Finished, BuildError> {
        let mut out_buf = Vec::new();
        let mut err_buf = Vec::new();
        let mut captured = String::new();
        let mut status: Option<ExitStatus> = None;
        let mut grace_until: Option<Instant> = None;
        loop {
            if stdout.is_none()
                && stderr.is_none()
                && let Some(status) = status
            {
                return Ok(Finished {
                    status,
                    stdout: captured,
                });
            }
            let grace_at = grace_until.unwrap_or(self.deadline);
            tokio::select! {
                read = next_line(&mut stdout, &mut out_buf), if stdout.is_some() => {
                    match read {
                        Ok(n) if n > 0 => {
                            let line = take_line(&mut out_buf);
                            if capture {
                                captured.push_str(&line);
                                captured.push('\n');
                            } else {
                                self.say(line).await?;
                            }
                        }
                        _ => stdout = None,
                    }
                }
                read = next_line(&mut stderr, &mut err_buf), if stderr.is_some() => {
                    match read {
                        Ok(n) if n > 0 => {
                            let line = take_line(&mut err_buf);
                            self.say(line).await?;
                        }
                        _ => stderr = None,
                    }
                }
                exited = child.wait(), if status.is_none() => {
                    status = Some(exited?);
                    let grace = Instant::now() + LEFTOVER_GRACE;
                    grace_until = Some(grace.min(self.deadline));
                }
                () = sleep_until(grace_at), if grace_until.is_some() => {
                    // The step is over but something it started still holds
                    // its output open: kill it so the pipes close.
                    guard.kill();
                    grace_until = None;
                }
                () = sleep_until(self.deadline) => {
                    return Err(self.timeout_error());
                }
            }
        }
    }
}

fn stdio(output: Output) -> Stdio {
    match output {
        Output::Stream | Output::Capture => Stdio::piped(),
        Output::Discard => Stdio::null(),
    }
}

/// Reads up to the next newline into `buf` (which keeps a partial line across
/// cancellations). Never resolves for a closed stream.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    match reader {
        Some(reader) => reader.read_until(b'\n', buf).await,
        None => std::future::pending().await,
    }
}

/// Takes the line out of `buf`, without its line ending, lossily decoded.
fn take_line(buf: &mut Vec<u8>) -> String {
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    let line = String::from_utf8_lossy(buf).into_owned();
    buf.clear();
    line
}

/// An instant far enough away to stand for "no deadline".
fn far_future(now: Instant) -> Instant {
    // About 30 years; always representable.
    now + Duration::from_secs(60 * 60 * 24 * 365 * 30)
}
