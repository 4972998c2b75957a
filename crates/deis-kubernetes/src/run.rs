//! One-off commands (`deis run`) as Pods: `<app>-run-<5 chars>` with the
//! release's image, environment and limits and `restartPolicy: Never`;
//! its log is the output, its container's exit code the status, and the
//! pod is always deleted afterwards (Deis's `scheduler.run`). With a
//! terminal (`deis run -t`) the pod gets stdin and a TTY, and the client is
//! attached to it (the `attach` subresource, over WebSocket) while it runs:
//! keystrokes and window sizes in, the terminal out.

use std::time::Instant;

use deis_scheduler::{RunInput, RunIo, RunOutput, RunSpec, SchedulerError};
use futures::SinkExt as _;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams, TerminalSize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::render;
use crate::scheduler::{KubeScheduler, image_cannot_be_pulled, unavailable};

pub(crate) async fn run(scheduler: &KubeScheduler, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError> {
    let app = spec.release.app.as_str();
    let name = format!("{app}-run-{}", suffix());
    let pod = render::run_pod(spec, &name, scheduler.settings());
    let pods: Api<Pod> = Api::namespaced(scheduler.client().clone(), app);
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(unavailable)?;
    let outcome = wait_for_exit(scheduler, &pods, &name, spec).await;
    let log = pods.logs(&name, &LogParams::default()).await.unwrap_or_default();
    if let Err(e) = pods.delete(&name, &DeleteParams::default()).await {
        tracing::warn!(pod = %name, error = %e, "could not delete a one-off pod");
    }
    let exit_code = outcome?;
    if !log.is_empty() {
        // The client may have gone; the command ran either way.
        let _ = io.output.send(RunOutput::Stdout(log.into_bytes())).await;
    }
    Ok(exit_code)
}

/// `deis run -t`: the command in a pod with a terminal, attached to the
/// client until it exits.
pub(crate) async fn run_with_terminal(
    scheduler: &KubeScheduler,
    spec: &RunSpec,
    io: RunIo,
) -> Result<i32, SchedulerError> {
    let app = spec.release.app.as_str();
    let name = format!("{app}-run-{}", suffix());
    let pod = render::with_terminal(render::run_pod(spec, &name, scheduler.settings()));
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(scheduler.client().clone(), app);
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(unavailable)?;
    let outcome = attach(scheduler, &pods, &name, &container, spec, io).await;
    if let Err(e) = pods.delete(&name, &DeleteParams::default()).await {
        tracing::warn!(pod = %name, error = %e, "could not delete a one-off pod");
    }
    outcome
}

async fn attach(
    scheduler: &KubeScheduler,
    pods: &Api<Pod>,
    name: &str,
    container: &str,
    spec: &RunSpec,
    io: RunIo,
) -> Result<i32, SchedulerError> {
    let RunIo { output, input, tty } = io;
    if !wait_for_start(scheduler, pods, name, spec).await? {
        // It ended before it could be attached to: its log is all there is.
        let exit_code = wait_for_exit(scheduler, pods, name, spec).await?;
        let log = pods.logs(name, &LogParams::default()).await.unwrap_or_default();
        let _ = output.send(RunOutput::Stdout(log.into_bytes())).await;
        return Ok(exit_code);
    }
    let params = AttachParams::interactive_tty().container(container);
    let mut attached = pods.attach(name, &params).await.map_err(unavailable)?;
    let (Some(mut stdin), Some(mut stdout)) = (attached.stdin(), attached.stdout()) else {
        return Err(SchedulerError::Unavailable(
            "The Kubernetes API attached no terminal to the one-off pod.".to_owned(),
        ));
    };
    let mut sizes = attached.terminal_size();
    if let (Some(size), Some(sizes)) = (tty, sizes.as_mut()) {
        let _ = sizes
            .send(TerminalSize {
                width: size.cols,
                height: size.rows,
            })
            .await;
    }
    let keystrokes = async move {
        let Some(mut input) = input else {
            return std::future::pending().await;
        };
        while let Some(message) = input.recv().await {
            match message {
                RunInput::Stdin(bytes) => {
                    if stdin.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                RunInput::Resize { cols, rows } => {
                    if let Some(sizes) = sizes.as_mut() {
                        let _ = sizes
                            .send(TerminalSize {
                                width: cols,
                                height: rows,
                            })
                            .await;
                    }
                }
                RunInput::Eof => break,
            }
        }
        // stdin closes here; the terminal keeps showing output until the
        // command exits.
        drop(stdin);
        std::future::pending::<()>().await;
    };
    let screen = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stdout.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    let chunk = buffer.get(..n).unwrap_or_default().to_vec();
                    if output.send(RunOutput::Stdout(chunk)).await.is_err() {
                        // The client went away: end the command.
                        return false;
                    }
                }
            }
        }
    };
    let deadline = tokio::time::sleep(spec.timeout);
    let finished = tokio::select! {
        finished = screen => finished,
        () = keystrokes => true,
        () = deadline => {
            attached.abort();
            return Err(SchedulerError::DeployFailed(format!(
                "Timed out ({} s) while running",
                spec.timeout.as_secs()
            )));
        }
    };
    attached.abort();
    if !finished {
        return Err(SchedulerError::Unavailable(
            "The client went away; the one-off pod was stopped.".to_owned(),
        ));
    }
    wait_for_exit(scheduler, pods, name, spec).await
}

/// Waits until the pod's container runs (`true`) or has already ended
/// (`false`); an image that cannot be pulled fails at once, as it does for
/// deploys.
async fn wait_for_start(
    scheduler: &KubeScheduler,
    pods: &Api<Pod>,
    name: &str,
    spec: &RunSpec,
) -> Result<bool, SchedulerError> {
    poll_pod(
        scheduler,
        pods,
        name,
        spec,
        "waiting for the one-off pod to start",
        |status| {
            let state = status
                .container_statuses
                .unwrap_or_default()
                .into_iter()
                .find_map(|s| s.state);
            if let Some(state) = state {
                if state.running.is_some() {
                    return Ok(Some(true));
                }
                if state.terminated.is_some() {
                    return Ok(Some(false));
                }
                if let Some(waiting) = state.waiting
                    && waiting.reason.as_deref().is_some_and(image_cannot_be_pulled)
                {
                    return Err(SchedulerError::DeployFailed(format!(
                        "The one-off pod's image cannot be pulled: {}",
                        waiting.message.or(waiting.reason).unwrap_or_default()
                    )));
                }
            }
            let ended = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            Ok(ended.then_some(false))
        },
    )
    .await
}

/// Waits for the pod's container to exit; returns its exit code.
async fn wait_for_exit(
    scheduler: &KubeScheduler,
    pods: &Api<Pod>,
    name: &str,
    spec: &RunSpec,
) -> Result<i32, SchedulerError> {
    poll_pod(scheduler, pods, name, spec, "while running", |status| {
        let terminated = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find_map(|s| s.state.and_then(|s| s.terminated));
        Ok(match (status.phase.as_deref(), terminated) {
            (_, Some(terminated)) => Some(terminated.exit_code),
            (Some("Succeeded"), None) => Some(0),
            (Some("Failed"), None) => Some(1),
            _ => None,
        })
    })
    .await
}

/// Reads the pod's status every poll until `decide` says something or the
/// run's timeout passes (`Timed out (N s) <doing>`).
async fn poll_pod<T>(
    scheduler: &KubeScheduler,
    pods: &Api<Pod>,
    name: &str,
    spec: &RunSpec,
    doing: &str,
    mut decide: impl FnMut(PodStatus) -> Result<Option<T>, SchedulerError>,
) -> Result<T, SchedulerError> {
    let deadline = Instant::now() + spec.timeout;
    loop {
        let pod = pods.get(name).await.map_err(unavailable)?;
        if let Some(decided) = decide(pod.status.unwrap_or_default())? {
            return Ok(decided);
        }
        if Instant::now() > deadline {
            return Err(SchedulerError::DeployFailed(format!(
                "Timed out ({} s) {doing}",
                spec.timeout.as_secs()
            )));
        }
        tokio::time::sleep(scheduler.timing().poll).await;
    }
}

/// Five lowercase letters and digits, as Kubernetes names generated pods.
pub(crate) fn suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
