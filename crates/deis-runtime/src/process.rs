//! One supervised app process: started from its release, its output sent
//! to the log sink line by line, checked by its probes, restarted with
//! exponential backoff when it exits, and stopped with SIGTERM, a grace
//! period and SIGKILL for its whole process group.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deis_scheduler::{LogLine, LogSink, LogSource, ProcessInfo, ProcessState};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::watch;

use crate::containers::Podman;
use crate::launch::{ContainerRun, Launch, Unpacked};
use crate::ledger::Ledger;
use crate::limits::{Applied, Limits};
use crate::probe::Probe;

/// Lines kept to explain a failure.
const RECENT_LINES: usize = 20;
/// Longest line handed to the log sink (longer ones are split).
const MAX_LINE: usize = 16 * 1024;
/// Restart backoff bounds; the backoff resets after a run this long.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const STABLE_RUN: Duration = Duration::from_secs(60);
/// How often readiness is checked until the first success (fast deploys).
const STARTUP_POLL: Duration = Duration::from_millis(50);
/// How long podman may take beyond a container's grace period to stop it.
const CONTAINER_STOP_SLACK: Duration = Duration::from_secs(10);

/// What a process is doing, with what the deploy logic needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) state: ProcessState,
    /// Times it exited.
    pub(crate) exits: u32,
    /// Its last exit status (code, or 128 + signal).
    pub(crate) last_exit: Option<i32>,
    /// Whether it ever became ready.
    pub(crate) was_ready: bool,
}

/// Everything a process needs, fixed for its life.
pub(crate) struct Spec {
    pub(crate) app: String,
    pub(crate) ptype: String,
    pub(crate) index: u32,
    pub(crate) release: Arc<Unpacked>,
    pub(crate) command: String,
    pub(crate) port: u16,
    pub(crate) readiness: Option<Probe>,
    pub(crate) liveness: Option<Probe>,
    pub(crate) grace: Duration,
    pub(crate) memory: Option<String>,
    pub(crate) cpu: Option<String>,
    /// How it runs as a container (image releases only).
    pub(crate) container: Option<ContainerRun>,
}

/// Shared services of the runtime a process uses.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) logs: Arc<dyn LogSink>,
    pub(crate) limits: Limits,
    pub(crate) ledger: Arc<Ledger>,
    /// Told about every state change (to republish endpoints).
    pub(crate) changed: tokio::sync::mpsc::UnboundedSender<()>,
    /// Runs image releases, when podman is installed and a registry set up.
    pub(crate) podman: Option<Podman>,
}

/// A supervised process.
pub(crate) struct Process {
    pub(crate) spec: Spec,
    pub(crate) name: String,
    status: watch::Sender<Status>,
    started: Mutex<Option<DateTime<Utc>>>,
    /// Whether the router may send it traffic (set by the deploy logic).
    serving: AtomicBool,
    /// Replaced or scaled away: draining, then stopping.
    retired: AtomicBool,
    stop: watch::Sender<bool>,
    recent: Mutex<VecDeque<String>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    grace_override: Mutex<Option<Duration>>,
}

impl Process {
    /// Starts supervising a process.
    pub(crate) fn start(spec: Spec, services: Services) -> Arc<Process> {
        let name = format!("{}-{}-{}", spec.app, spec.ptype, spec.index);
        let process = Arc::new(Process {
            name,
            spec,
            status: watch::channel(Status {
                state: ProcessState::Starting,
                exits: 0,
                last_exit: None,
                was_ready: false,
            })
            .0,
            started: Mutex::new(None),
            serving: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            stop: watch::channel(false).0,
            recent: Mutex::new(VecDeque::new()),
            task: Mutex::new(None),
            grace_override: Mutex::new(None),
        });
        let task = tokio::spawn(supervise(process.clone(), services));
        *process.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        process
    }

    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub(crate) fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    pub(crate) fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    /// Takes it out of service for good; it shows as terminating from now on.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.set_serving(false);
    }

    /// Serving, or about to: neither retired nor stopped.
    pub(crate) fn is_current(&self) -> bool {
        !self.retired.load(Ordering::SeqCst) && self.is_serving()
    }

    /// `web.1`.
    pub(crate) fn dyno(&self) -> String {
        format!("{}.{}", self.spec.ptype, self.spec.index)
    }

    /// The last lines it printed.
    pub(crate) fn recent_output(&self) -> Vec<String> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Its state as `deis ps` shows it: a retired process is terminating.
    pub(crate) fn state(&self) -> ProcessState {
        match self.status.borrow().state {
            ProcessState::Down => ProcessState::Down,
            _ if self.retired.load(Ordering::SeqCst) => ProcessState::Terminating,
            state => state,
        }
    }

    pub(crate) fn info(&self) -> ProcessInfo {
        ProcessInfo {
            name: self.name.clone(),
            ptype: self.spec.ptype.clone(),
            state: self.state(),
            release: self.spec.release.spec.version,
            started: *self.started.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Stops it (SIGTERM, its grace period, SIGKILL) and waits until it is
    /// gone; `grace` overrides the grace period (for processes of a failed
    /// rollout, which nobody is waiting on).
    pub(crate) async fn stop(&self, grace: Option<Duration>) {
        self.retire();
        if let Some(grace) = grace {
            *self.grace_override.lock().unwrap_or_else(|p| p.into_inner()) = Some(grace);
        }
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn set_state(&self, state: ProcessState, services: &Services) {
        self.status.send_modify(|s| {
            s.state = state;
            if state == ProcessState::Up {
                s.was_ready = true;
            }
        });
        let _ = services.changed.send(());
    }

    fn remember(&self, line: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line.to_owned());
    }
}

/// Sends every line of `stream` to the log sink.
async fn pump<R: AsyncRead + Unpin>(process: Arc<Process>, stream: R, logs: Arc<dyn LogSink>) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        // Read one line, but never more than MAX_LINE bytes of it at once.
        let mut limited = (&mut reader).take(MAX_LINE as u64);
        match limited.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buffer);
        let text = text.trim_end_matches(['\n', '\r']);
        process.remember(text);
        logs.send(LogLine {
            time: Utc::now(),
            app: process.spec.app.clone(),
            source: LogSource::App,
            process: process.dyno(),
            release: format!("v{}", process.spec.release.spec.version),
            text: text.to_owned(),
        });
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

fn signal_group(pgid: Option<i32>, signal: Signal) {
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// Runs an exec probe's command in the process's environment.
async fn exec_probe(launch: Launch, command: Vec<String>) -> bool {
    let command: Vec<String> = launch
        .exec_prefix
        .iter()
        .flatten()
        .cloned()
        .chain(command)
        .collect();
    let mut c = tokio::process::Command::new(command.first().map_or("false", String::as_str));
    c.args(command.iter().skip(1))
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&launch.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    c.status().await.is_ok_and(|s| s.success())
}

/// What ended one run of the process.
enum Ended {
    Exited(i32),
    Stopped,
    Unhealthy,
}

async fn supervise(process: Arc<Process>, services: Services) {
    let spec = &process.spec;
    let container = match (&spec.container, &services.podman, &spec.release.image) {
        (Some(run), Some(podman), Some(image)) => {
            Some(Launch::container(podman, spec, image, run, &process.dyno()))
        }
        _ => None,
    };
    // A container's limits are podman's; a plain process gets cgroups here.
    let applied: Applied = match container {
        Some(_) => Applied::default(),
        None => services
            .limits
            .apply(&process.name, spec.memory.as_deref(), spec.cpu.as_deref()),
    };
    let launch = container.unwrap_or_else(|| {
        Launch::new(
            &spec.release,
            spec.release.environment(spec.port, &process.dyno()),
            &spec.command,
            &applied,
        )
    });
    let mut stop = process.stop.subscribe();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            break;
        }
        process.set_state(ProcessState::Starting, &services);
        let began = Instant::now();
        let ended = run_once(&process, &services, &launch, &mut stop).await;
        match ended {
            Ended::Stopped => break,
            _ if *stop.borrow() => break,
            Ended::Exited(code) => {
                process.status.send_modify(|s| {
                    s.exits += 1;
                    s.last_exit = Some(code);
                });
                services.logs.send(platform_line(
                    &process,
                    format!("Process exited with status {code}"),
                ));
            }
            Ended::Unhealthy => {
                process.status.send_modify(|s| s.exits += 1);
                services.logs.send(platform_line(
                    &process,
                    "Liveness check failed; restarting the process".into(),
                ));
            }
        }
        process.set_state(ProcessState::Crashed, &services);
        if began.elapsed() > STABLE_RUN {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    services.limits.release(&applied);
    process.set_state(ProcessState::Down, &services);
}

fn platform_line(process: &Process, text: String) -> LogLine {
    LogLine {
        time: Utc::now(),
        app: process.spec.app.clone(),
        source: LogSource::Platform,
        process: process.dyno(),
        release: format!("v{}", process.spec.release.spec.version),
        text,
    }
}

/// Starts the process once and watches it until it exits, fails its
/// liveness probe, or is asked to stop.
async fn run_once(
    process: &Arc<Process>,
    services: &Services,
    launch: &Launch,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut command = launch.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            process.remember(&format!("cannot start: {err}"));
            return Ended::Exited(127);
        }
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    if let Some(pgid) = pgid {
        services.ledger.add(pgid, &process.name);
    }
    *process.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Utc::now());
    if process.spec.readiness.is_none() {
        // Nothing to wait for: a process without a readiness check is up as
        // soon as it runs (a crash right after is a crash, not a failed start).
        process.set_state(ProcessState::Up, services);
    }
    let pumps: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(process.clone(), s, services.logs.clone()))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(process.clone(), s, services.logs.clone()))),
    ]
    .into_iter()
    .flatten()
    .collect();

    let health = watch_health(process.clone(), services.clone(), launch.clone());
    tokio::pin!(health);
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status.map_or(1, exit_code)),
        () = &mut health => Ended::Unhealthy,
        _ = stop.wait_for(|stopped| *stopped) => Ended::Stopped,
    };
    let container = launch.container.as_deref().zip(services.podman.as_ref());
    match ended {
        Ended::Exited(_) => {
            // The main process is gone; nothing it started may linger.
            signal_group(pgid, Signal::SIGKILL);
            if let Some((name, podman)) = container {
                podman.remove(name).await;
            }
        }
        Ended::Stopped | Ended::Unhealthy => {
            if matches!(ended, Ended::Stopped) {
                process.set_serving(false);
            }
            process.set_state(ProcessState::Terminating, services);
            let grace = match ended {
                Ended::Stopped => process
                    .grace_override
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or(process.spec.grace),
                _ => Duration::from_secs(5),
            };
            if let Some((name, podman)) = container {
                // A container's main process may be PID 1, which ignores a
                // forwarded SIGTERM; podman stop kills it after the grace
                // period, and the foreground client exits with it.
                let both = async { tokio::join!(podman.stop(name, grace), child.wait()) };
                if tokio::time::timeout(grace + CONTAINER_STOP_SLACK, both)
                    .await
                    .is_err()
                {
                    signal_group(pgid, Signal::SIGKILL);
                    let _ = child.wait().await;
                    podman.remove(name).await;
                }
            } else {
                signal_group(pgid, Signal::SIGTERM);
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    signal_group(pgid, Signal::SIGKILL);
                    let _ = child.wait().await;
                }
            }
            signal_group(pgid, Signal::SIGKILL);
        }
    }
    for pump in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
    }
    if let Some(pgid) = pgid {
        services.ledger.remove(pgid);
    }
    ended
}

/// Marks the process Up once its readiness probe passes, then runs its
/// liveness probe; returns when liveness fails (never otherwise).
async fn watch_health(process: Arc<Process>, services: Services, launch: Launch) {
    let port = process.spec.port;
    let exec = |launch: Launch| move |command: Vec<String>| exec_probe(launch, command);
    if let Some(probe) = &process.spec.readiness {
        tokio::time::sleep(probe.initial_delay).await;
        let mut successes = 0;
        loop {
            if probe.check(port, exec(launch.clone())).await {
                successes += 1;
                if successes >= probe.success_threshold {
                    break;
                }
            } else {
                successes = 0;
            }
            tokio::time::sleep(STARTUP_POLL.min(probe.period)).await;
        }
        process.set_state(ProcessState::Up, &services);
    }
    let Some(probe) = &process.spec.liveness else {
        return std::future::pending().await;
    };
    tokio::time::sleep(probe.initial_delay).await;
    let mut failures = 0;
    loop {
        tokio::time::sleep(probe.period).await;
        if probe.check(port, exec(launch.clone())).await {
            failures = 0;
        } else {
            failures += 1;
            if failures >= probe.failure_threshold {
                return;
            }
        }
    }
}
