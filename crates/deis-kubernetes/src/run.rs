//! One-off commands (`deis run`) as Pods: `<app>-run-<5 chars>` with the
//! release's image, environment and limits and `restartPolicy: Never`;
//! its log is the output, its container's exit code the status, and the
//! pod is always deleted afterwards (Deis's `scheduler.run`).

use std::time::Instant;

use deis_scheduler::{RunIo, RunOutput, RunSpec, SchedulerError};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};

use crate::render;
use crate::scheduler::{KubeScheduler, unavailable};

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

async fn wait_for_exit(
    scheduler: &KubeScheduler,
    pods: &Api<Pod>,
    name: &str,
    spec: &RunSpec,
) -> Result<i32, SchedulerError> {
    let deadline = Instant::now() + spec.timeout;
    loop {
        let pod = pods.get(name).await.map_err(unavailable)?;
        let status = pod.status.unwrap_or_default();
        let terminated = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .find_map(|s| s.state.and_then(|s| s.terminated));
        match (status.phase.as_deref(), terminated) {
            (_, Some(terminated)) => return Ok(terminated.exit_code),
            (Some("Succeeded"), None) => return Ok(0),
            (Some("Failed"), None) => return Ok(1),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(SchedulerError::DeployFailed(format!(
                "Timed out ({} s) while running",
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
