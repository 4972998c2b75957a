//! A test double that records every call and keeps the desired state it was
//! given, so controller tests can assert what would have run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::Utc;

use crate::{
    Capabilities, DeploySpec, EndpointsWatch, Enforcement, ProcessInfo, ProcessSelector, ProcessState, RunIo,
    RunOutcome, RunOutput, RunSpec, Scheduler, SchedulerError, format_tags,
};

/// One call the controller made.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordedCall {
    /// `deploy` with the release version and structure.
    Deploy {
        app: String,
        version: i32,
        structure: BTreeMap<String, i32>,
    },
    /// `scale` with the release version and structure.
    Scale {
        app: String,
        version: i32,
        structure: BTreeMap<String, i32>,
    },
    /// `restart`.
    Restart { app: String, selector: ProcessSelector },
    /// `run`.
    Run {
        app: String,
        version: i32,
        command: String,
    },
    /// `destroy`.
    Destroy { app: String },
}

#[derive(Default)]
struct State {
    calls: Vec<RecordedCall>,
    running: BTreeMap<String, (i32, BTreeMap<String, i32>)>,
    fail_next_deploy: Option<SchedulerError>,
    fail_next_scale: Option<SchedulerError>,
    run_outcome: Option<RunOutcome>,
}

/// Records calls; deploys succeed unless a failure was queued.
pub struct RecordingScheduler {
    state: Mutex<State>,
    node_labels: BTreeMap<String, String>,
    endpoints: tokio::sync::watch::Sender<std::sync::Arc<crate::AppEndpoints>>,
}

impl Default for RecordingScheduler {
    fn default() -> Self {
        Self::with_node_labels(BTreeMap::new())
    }
}

impl RecordingScheduler {
    /// A scheduler whose single node carries `labels`.
    pub fn with_node_labels(labels: BTreeMap<String, String>) -> Self {
        RecordingScheduler {
            state: Mutex::new(State::default()),
            node_labels: labels,
            endpoints: tokio::sync::watch::channel(Default::default()).0,
        }
    }

    /// Publishes `addrs` as the app's ready endpoints (what a runtime does
    /// once its processes pass their readiness checks).
    pub fn publish_endpoints(&self, app: &str, addrs: &[std::net::SocketAddr]) {
        self.endpoints.send_modify(|all| {
            let mut next = (**all).clone();
            let endpoints: Vec<crate::Endpoint> = addrs
                .iter()
                .enumerate()
                .map(|(i, addr)| crate::Endpoint {
                    addr: *addr,
                    process: format!("{app}-web-{}", i + 1),
                    release: "v1".into(),
                })
                .collect();
            if endpoints.is_empty() {
                next.remove(app);
            } else {
                next.insert(app.to_owned(), endpoints);
            }
            *all = std::sync::Arc::new(next);
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state().calls.clone()
    }

    /// The calls for one app.
    pub fn calls_for(&self, app: &str) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|call| match call {
                RecordedCall::Deploy { app: a, .. }
                | RecordedCall::Scale { app: a, .. }
                | RecordedCall::Restart { app: a, .. }
                | RecordedCall::Run { app: a, .. }
                | RecordedCall::Destroy { app: a } => a == app,
            })
            .collect()
    }

    /// The release version and structure currently running for an app.
    pub fn running(&self, app: &str) -> Option<(i32, BTreeMap<String, i32>)> {
        self.state().running.get(app).cloned()
    }

    /// Makes the next `deploy` fail with `err`.
    pub fn fail_next_deploy(&self, err: SchedulerError) {
        self.state().fail_next_deploy = Some(err);
    }

    /// Makes the next `scale` fail with `err`.
    pub fn fail_next_scale(&self, err: SchedulerError) {
        self.state().fail_next_scale = Some(err);
    }

    /// What `run` answers (default: exit 0 with the command echoed).
    pub fn set_run_outcome(&self, outcome: RunOutcome) {
        self.state().run_outcome = Some(outcome);
    }

    fn processes(app: &str, version: i32, structure: &BTreeMap<String, i32>) -> Vec<ProcessInfo> {
        structure
            .iter()
            .flat_map(|(ptype, count)| {
                (1..=*count).map(move |n| ProcessInfo {
                    name: format!("{app}-{ptype}-{n}"),
                    ptype: ptype.clone(),
                    state: ProcessState::Up,
                    release: version,
                    started: Some(Utc::now()),
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Scheduler for RecordingScheduler {
    async fn deploy(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let mut state = self.state();
        let app = spec.release.app.clone();
        state.calls.push(RecordedCall::Deploy {
            app: app.clone(),
            version: spec.release.version,
            structure: spec.structure.clone(),
        });
        if let Some(err) = state.fail_next_deploy.take() {
            return Err(err);
        }
        state
            .running
            .insert(app, (spec.release.version, spec.structure.clone()));
        Ok(())
    }

    async fn scale(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let mut state = self.state();
        let app = spec.release.app.clone();
        state.calls.push(RecordedCall::Scale {
            app: app.clone(),
            version: spec.release.version,
            structure: spec.structure.clone(),
        });
        if let Some(err) = state.fail_next_scale.take() {
            return Err(err);
        }
        state
            .running
            .insert(app, (spec.release.version, spec.structure.clone()));
        Ok(())
    }

    async fn restart(
        &self,
        app: &str,
        selector: &ProcessSelector,
    ) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let mut state = self.state();
        state.calls.push(RecordedCall::Restart {
            app: app.into(),
            selector: selector.clone(),
        });
        let all = match state.running.get(app) {
            Some((version, structure)) => Self::processes(app, *version, structure),
            None => Vec::new(),
        };
        let matching: Vec<_> = all
            .into_iter()
            .filter(|p| match selector {
                ProcessSelector::All => true,
                ProcessSelector::Type(t) => &p.ptype == t,
                ProcessSelector::Name(n) => &p.name == n,
            })
            .collect();
        if matching.is_empty() && *selector != ProcessSelector::All {
            return Err(SchedulerError::NotFound(format!(
                "No process matches {selector:?} in {app}"
            )));
        }
        Ok(matching)
    }

    async fn run_attached(&self, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError> {
        let outcome = {
            let mut state = self.state();
            state.calls.push(RecordedCall::Run {
                app: spec.release.app.clone(),
                version: spec.release.version,
                command: spec.command.clone(),
            });
            state.run_outcome.clone().unwrap_or_else(|| RunOutcome {
                exit_code: 0,
                output: format!("{}\n", spec.command),
            })
        };
        let _ = io
            .output
            .send(RunOutput::Stdout(outcome.output.into_bytes()))
            .await;
        Ok(outcome.exit_code)
    }

    async fn list(&self, app: &str) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let state = self.state();
        Ok(match state.running.get(app) {
            Some((version, structure)) => Self::processes(app, *version, structure),
            None => Vec::new(),
        })
    }

    async fn destroy(&self, app: &str) -> Result<(), SchedulerError> {
        let mut state = self.state();
        state.calls.push(RecordedCall::Destroy { app: app.into() });
        state.running.remove(app);
        Ok(())
    }

    async fn check_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        let unmatched: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, v)| self.node_labels.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if unmatched.is_empty() {
            Ok(())
        } else {
            Err(SchedulerError::NoMatchingNodes(format!(
                "No nodes matched the provided labels: {}",
                format_tags(tags)
            )))
        }
    }

    fn endpoints(&self) -> EndpointsWatch {
        self.endpoints.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            memory_limits: Enforcement::NotEnforced,
            cpu_limits: Enforcement::NotEnforced,
            autoscaling: Enforcement::NotEnforced,
        }
    }
}
