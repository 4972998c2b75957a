//! The local runtime: every app's release runs as supervised processes on
//! this machine, the way Piku and Heroku's dyno manager do, so one machine is
//! a complete platform.
//!
//! Architecture invariants: the runtime implements [`Scheduler`] and knows
//! nothing of the controller or the database; it gets slugs from object
//! storage, sends output to a [`LogSink`], and publishes ready endpoints on
//! a watch channel the router reads. Every process it starts is its own
//! process group, recorded in a ledger on disk, so nothing outlives the
//! platform across a crash.
//!
//! A deploy is zero-downtime: the new release's processes start beside the
//! old ones; only when every one of them is ready are they published as the
//! app's endpoints, and only then are the old ones stopped. A release that
//! does not become ready is refused and the old one keeps serving.

mod containers;
mod launch;
mod ledger;
mod limits;
mod ports;
mod probe;
mod process;
mod run;
mod slugs;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deis_objects::Objects;
use deis_scheduler::{
    AppEndpoints, BuildKind, Capabilities, DeploySpec, Endpoint, EndpointsWatch, LogSink, ProcessCounts,
    ProcessInfo, ProcessSelector, ProcessState, RunIo, RunSpec, Scheduler, SchedulerError,
};
use tokio::sync::watch;

pub use crate::containers::ContainerSettings;
use crate::containers::{ContainerCommand, Podman};
use crate::launch::{ContainerRun, Launch, Unpacked};
use crate::probe::Probe;
use crate::process::{Process, Services, Spec};

/// Settings of the local runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where unpacked slugs and the process ledger live.
    pub state_dir: PathBuf,
    /// Labels of this machine, for `deis tags`.
    pub node_labels: BTreeMap<String, String>,
    /// Where image releases are pulled from (none: they are refused).
    pub containers: Option<ContainerSettings>,
    /// Whether each slug app runs as an operating-system user of its own
    /// (needs root; see `deis-isolation`).
    pub app_users: bool,
}

/// The local runtime (cheap to clone).
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    slugs: slugs::Slugs,
    /// The users slug apps run as, with `--app-users`.
    users: Option<deis_isolation::OsUsers>,
    ports: ports::Ports,
    services: Services,
    node_labels: BTreeMap<String, String>,
    apps: Mutex<HashMap<String, AppProcesses>>,
    /// One change at a time per app: deploys, scales, restarts and destroys
    /// of the same app never interleave.
    changes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    endpoints: watch::Sender<Arc<AppEndpoints>>,
    runs: AtomicU32,
    /// Whether image releases have a registry to come from.
    registry_configured: bool,
}

/// An app's processes on this machine.
struct AppProcesses {
    /// The release that serves (the last one rolled out).
    current: Option<Arc<Unpacked>>,
    /// Its formation.
    structure: BTreeMap<String, i32>,
    /// The process type that receives traffic.
    routable: Option<String>,
    /// How long its processes may take to become ready.
    deploy_timeout: Duration,
    /// Every process not yet stopped (the current release's and, during a
    /// rollout, the previous one's).
    processes: Vec<Arc<Process>>,
}

impl Default for AppProcesses {
    fn default() -> AppProcesses {
        AppProcesses {
            current: None,
            structure: BTreeMap::new(),
            routable: None,
            deploy_timeout: Duration::from_secs(120),
            processes: Vec::new(),
        }
    }
}

/// How long a retired process keeps serving after it left the endpoints.
const DRAIN: Duration = Duration::from_secs(1);

fn failed(message: impl Into<String>) -> SchedulerError {
    SchedulerError::DeployFailed(message.into())
}

impl LocalRuntime {
    /// Starts the runtime: kills whatever a previous run left behind, finds
    /// out which limits this machine enforces, and starts publishing
    /// endpoints.
    pub fn start(
        config: RuntimeConfig,
        objects: Objects,
        logs: Arc<dyn LogSink>,
    ) -> std::io::Result<LocalRuntime> {
        std::fs::create_dir_all(&config.state_dir)?;
        let users = if config.app_users {
            Some(open_app_users(&config.state_dir)?)
        } else {
            None
        };
        let ledger = Arc::new(ledger::Ledger::open_and_reap(
            config.state_dir.join("processes.json"),
        ));
        let limits = limits::Limits::detect("deis-workflow");
        let podman = config
            .containers
            .clone()
            .and_then(|settings| Podman::find(config.state_dir.join("containers"), settings));
        if let Some(podman) = podman.clone() {
            // Containers outlive a crashed supervisor; they are garbage now.
            tokio::spawn(async move { podman.remove_all().await });
        }
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
        let runtime = LocalRuntime {
            inner: Arc::new(Inner {
                slugs: slugs::Slugs::new(config.state_dir.join("slugs"), objects),
                users,
                ports: ports::Ports::default(),
                services: Services {
                    logs,
                    limits,
                    ledger,
                    changed,
                    podman,
                },
                registry_configured: config.containers.is_some(),
                node_labels: config.node_labels,
                apps: Mutex::new(HashMap::new()),
                changes: Mutex::new(HashMap::new()),
                endpoints: watch::channel(Arc::new(AppEndpoints::new())).0,
                runs: AtomicU32::new(0),
            }),
        };
        // Processes report state changes; the endpoints follow.
        let weak = Arc::downgrade(&runtime.inner);
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                while changes.try_recv().is_ok() {}
                let Some(inner) = weak.upgrade() else { return };
                inner.publish();
            }
        });
        Ok(runtime)
    }
}

/// Prepares running each slug app as its own user: only root can, and the
/// users must reach their slugs under `state_dir` and nothing else of the
/// runtime's.
fn open_app_users(state_dir: &Path) -> std::io::Result<deis_isolation::OsUsers> {
    deis_isolation::require_root()?;
    deis_isolation::reachable_by_others(state_dir).map_err(std::io::Error::other)?;
    let slugs = state_dir.join("slugs");
    std::fs::create_dir_all(&slugs)?;
    deis_isolation::lock_down(state_dir, &["slugs"])?;
    std::fs::set_permissions(&slugs, std::fs::Permissions::from_mode(0o711))?;
    deis_isolation::OsUsers::open(state_dir.join("app-users"), deis_isolation::APP_UIDS)
}

/// Waits for every future, running them at once.
async fn futures_join<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    futures::future::join_all(futures).await;
}

impl Inner {
    fn lock_apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppProcesses>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the app's turn to change.
    async fn lock_changes(&self, app: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(app.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Recomputes the ready endpoints of every app and publishes them if
    /// they changed.
    fn publish(&self) {
        let endpoints: AppEndpoints = {
            let apps = self.lock_apps();
            apps.iter()
                .filter_map(|(name, app)| {
                    let routable = app.routable.as_ref()?;
                    let mut ready: Vec<Endpoint> = app
                        .processes
                        .iter()
                        .filter(|p| {
                            &p.spec.ptype == routable
                                && p.is_serving()
                                && p.status().state == ProcessState::Up
                        })
                        .map(|p| Endpoint {
                            addr: std::net::SocketAddr::from(([127, 0, 0, 1], p.spec.port)),
                            process: p.name.clone(),
                            release: format!("v{}", p.spec.release.spec.version),
                        })
                        .collect();
                    ready.sort();
                    (!ready.is_empty()).then(|| (name.clone(), ready))
                })
                .collect()
        };
        self.endpoints.send_if_modified(|current| {
            if **current == endpoints {
                false
            } else {
                *current = Arc::new(endpoints);
                true
            }
        });
    }

    /// The release to run, unpacked.
    async fn unpack(&self, spec: &deis_scheduler::ReleaseSpec) -> Result<Arc<Unpacked>, SchedulerError> {
        if spec.build.kind != BuildKind::Buildpack {
            return self.pull(spec).await;
        }
        let user = match &self.users {
            Some(users) => Some(users.user(&spec.app).map_err(|e| {
                failed(format!(
                    "cannot assign {} an operating-system user: {e}",
                    spec.app
                ))
            })?),
            None => None,
        };
        let slug = self
            .slugs
            .unpack(&spec.app, &spec.build.uuid, &spec.build.image, user)
            .await
            .map_err(failed)?;
        let config_vars = slugs::release_config_vars(&slug);
        Ok(Arc::new(Unpacked {
            spec: spec.clone(),
            slug,
            config_vars,
            image: None,
            user,
        }))
    }

    /// The image of an image release, pulled from the platform's registry.
    async fn pull(&self, spec: &deis_scheduler::ReleaseSpec) -> Result<Arc<Unpacked>, SchedulerError> {
        if !self.registry_configured {
            return Err(failed(
                "This release is an image, and this runtime was not given the platform's registry to pull it from.",
            ));
        }
        let Some(podman) = &self.services.podman else {
            return Err(failed(
                "This release is an image, and running images needs podman on this machine: \
                 install it (apt-get install podman runc catatonit) and deploy again.",
            ));
        };
        let image = podman.pull(&spec.build.image).await.map_err(failed)?;
        Ok(Arc::new(Unpacked {
            spec: spec.clone(),
            slug: podman.work_dir(),
            config_vars: Vec::new(),
            image: Some(image),
            user: None,
        }))
    }

    /// Starts one process of a release.
    fn spawn(
        &self,
        release: &Arc<Unpacked>,
        ptype: &str,
        index: u32,
        routable: Option<&str>,
    ) -> Result<Arc<Process>, SchedulerError> {
        let spec = &release.spec;
        let declared = spec.build.procfile.get(ptype).cloned();
        let container = match release.image {
            Some(_) => Some(container_run(release, ptype, index, declared.clone(), routable)?),
            None => None,
        };
        let command = match (declared, &container) {
            (Some(command), _) => command,
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(failed(format!(
                    "Process type {ptype} is not in the Procfile of v{}",
                    spec.version
                )));
            }
        };
        let allocated = self
            .ports
            .allocate()
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))?;
        let port = release.port(allocated);
        let probes = spec.config.healthcheck_for(ptype);
        let probe = |name: &str| probes.and_then(|p| p.get(name)).and_then(Probe::from_json);
        let readiness =
            probe("readinessProbe").or_else(|| (routable == Some(ptype)).then(Probe::default_tcp));
        let process = Process::start(
            Spec {
                app: spec.app.clone(),
                ptype: ptype.to_owned(),
                index,
                release: release.clone(),
                command,
                port,
                readiness,
                liveness: probe("livenessProbe"),
                grace: grace_period(&spec.config, ptype),
                memory: spec.config.memory.get(ptype).cloned(),
                cpu: spec.config.cpu.get(ptype).cloned(),
                container,
            },
            self.services.clone(),
        );
        Ok(process)
    }

    /// Stops processes in the background, giving their ports back. They
    /// leave the endpoints at once and get SIGTERM only after [`DRAIN`], so
    /// a router still holding the old endpoints finishes in-flight requests.
    fn retire(self: &Arc<Self>, processes: Vec<Arc<Process>>) {
        if processes.is_empty() {
            return;
        }
        for process in &processes {
            process.retire();
        }
        self.publish();
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN).await;
            futures_join(processes.iter().map(|p| p.stop(None))).await;
            let mut apps = inner.lock_apps();
            for process in &processes {
                inner.ports.release(process.spec.port);
                if let Some(app) = apps.get_mut(&process.spec.app) {
                    app.processes.retain(|p| !Arc::ptr_eq(p, process));
                }
            }
        });
    }

    /// Waits until every process is ready; fails fast when one exits first.
    async fn await_ready(&self, processes: &[Arc<Process>], timeout: Duration) -> Result<(), SchedulerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for process in processes {
            let mut status = process.watch();
            let outcome = tokio::time::timeout_at(
                deadline,
                status.wait_for(|s| s.state == ProcessState::Up || (s.exits > 0 && !s.was_ready)),
            )
            .await;
            let explain = |what: String| {
                let output = process.recent_output();
                if output.is_empty() {
                    format!("{what}; it printed nothing.")
                } else {
                    format!("{what}. Its last output:\n{}", output.join("\n"))
                }
            };
            match outcome {
                Ok(Ok(s)) if s.state == ProcessState::Up => {}
                Ok(_) => {
                    let code = process.status().last_exit.unwrap_or(1);
                    return Err(failed(explain(format!(
                        "{} exited with status {code} before it became ready",
                        process.dyno()
                    ))));
                }
                Err(_) => {
                    return Err(failed(explain(format!(
                        "{} did not become ready within {}s",
                        process.dyno(),
                        timeout.as_secs()
                    ))));
                }
            }
        }
        Ok(())
    }

    /// Starts `count` processes of each type, waits for them to be ready,
    /// and on failure stops them again.
    async fn start_ready(
        &self,
        release: &Arc<Unpacked>,
        wanted: &[(String, u32)],
        routable: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<Arc<Process>>, SchedulerError> {
        let mut started = Vec::new();
        for (ptype, index) in wanted {
            match self.spawn(release, ptype, *index, routable) {
                Ok(process) => started.push(process),
                Err(err) => {
                    self.abandon(&started).await;
                    return Err(err);
                }
            }
        }
        if let Err(err) = self.await_ready(&started, timeout).await {
            self.abandon(&started).await;
            return Err(err);
        }
        Ok(started)
    }

    /// Stops the processes of a failed rollout quickly.
    async fn abandon(&self, processes: &[Arc<Process>]) {
        futures_join(processes.iter().map(|p| p.stop(Some(Duration::from_secs(2))))).await;
        for process in processes {
            self.ports.release(process.spec.port);
        }
    }
}

/// How a process of an image release runs, by Deis's rules: `cmd` runs
/// the image's entrypoint (with the Procfile's `cmd` as its arguments, if
/// any); other types run their Procfile command with `/bin/sh -c`. The
/// routable type must have a port: the app's `PORT` or the image's first
/// `EXPOSE`.
fn container_run(
    release: &Unpacked,
    ptype: &str,
    index: u32,
    declared: Option<String>,
    routable: Option<&str>,
) -> Result<ContainerRun, SchedulerError> {
    let spec = &release.spec;
    let command = match (ptype, declared) {
        ("cmd", Some(args)) => ContainerCommand::Args(args.split_whitespace().map(String::from).collect()),
        ("cmd", None) => ContainerCommand::Image,
        (_, Some(line)) => ContainerCommand::Shell(line),
        (_, None) => {
            return Err(failed(format!(
                "Process type {ptype} is not in the Procfile of v{}",
                spec.version
            )));
        }
    };
    let port = release.container_port();
    if port.is_none() && routable == Some(ptype) {
        return Err(failed(
            "Expose a port or make the app non routable by changing the process type",
        ));
    }
    Ok(ContainerRun {
        name: containers::container_name(&format!("{}-{ptype}-{index}", spec.app), spec.version),
        command,
        port,
    })
}

/// A process type's grace period: its `termination_grace_period`, else 30 s.
fn grace_period(config: &deis_core::ConfigData, ptype: &str) -> Duration {
    config.grace_period(ptype)
}

/// Processes to start for a formation: `(type, index)` pairs.
fn formation(structure: &BTreeMap<String, i32>) -> Vec<(String, u32)> {
    structure
        .iter()
        .flat_map(|(ptype, count)| (1..=u32::try_from(*count).unwrap_or(0)).map(move |i| (ptype.clone(), i)))
        .collect()
}

/// Whether two specs describe the same release content.
fn same_release(a: &deis_scheduler::ReleaseSpec, b: &deis_scheduler::ReleaseSpec) -> bool {
    a.version == b.version && a.build == b.build && a.env == b.env && a.config == b.config
}

#[async_trait::async_trait]
impl Scheduler for LocalRuntime {
    async fn deploy(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let _turn = self.inner.lock_changes(&spec.release.app).await;
        self.apply(spec).await
    }

    async fn scale(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let _turn = self.inner.lock_changes(&spec.release.app).await;
        self.apply(spec).await
    }

    async fn restart(
        &self,
        app: &str,
        selector: &ProcessSelector,
    ) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let _turn = self.inner.lock_changes(app).await;
        self.restart_now(app, selector).await?;
        self.list(app).await
    }

    async fn run_attached(&self, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError> {
        let inner = &self.inner;
        let release = inner.unpack(&spec.release).await?;
        let number = inner.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let bounds = run::Bounds {
            timeout: spec.timeout,
            grace: grace_period(&spec.release.config, "run"),
        };
        if let (Some(image), Some(podman)) = (&release.image, &inner.services.podman) {
            let name = containers::container_name(
                &format!("{}-run-{number}", spec.release.app),
                spec.release.version,
            );
            let launch = Launch::one_off(podman, &release, image, &name, &spec.command, io.tty.is_some());
            let result = run::run(launch, io, bounds).await;
            // A command killed at its time limit leaves its container.
            podman.remove(&name).await;
            return result;
        }
        let port = inner
            .ports
            .allocate()
            .map_err(|e| SchedulerError::Unavailable(e.to_string()))?;
        let env = release.environment(release.port(port), &format!("run.{number}"));
        let launch = Launch::new(&release, env, &spec.command, &Default::default());
        let result = run::run(launch, io, bounds).await;
        inner.ports.release(port);
        result
    }

    async fn list(&self, app: &str) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let apps = self.inner.lock_apps();
        Ok(apps
            .get(app)
            .map(|entry| {
                entry
                    .processes
                    .iter()
                    .map(|p| p.info())
                    .filter(|info| info.state != ProcessState::Down)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn destroy(&self, app: &str) -> Result<(), SchedulerError> {
        let _turn = self.inner.lock_changes(app).await;
        let processes = self
            .inner
            .lock_apps()
            .remove(app)
            .map(|a| a.processes)
            .unwrap_or_default();
        self.inner.publish();
        futures_join(processes.iter().map(|p| p.stop(None))).await;
        for process in &processes {
            self.inner.ports.release(process.spec.port);
        }
        self.inner.slugs.remove_app(app).await;
        if let Some(users) = &self.inner.users
            && let Some(user) = users.assigned(app)
        {
            // What the app started outside its process groups (daemons of
            // `deis run`) goes with it.
            let _ = tokio::process::Command::from(user.kill_everything())
                .status()
                .await;
            if let Err(e) = users.forget(app) {
                tracing::warn!(app, error = %e, "cannot forget the destroyed app's user");
            }
        }
        Ok(())
    }

    async fn check_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        if tags.iter().all(|(k, v)| self.inner.node_labels.get(k) == Some(v)) {
            Ok(())
        } else {
            Err(SchedulerError::NoMatchingNodes(format!(
                "No nodes matched the provided labels: {}",
                deis_scheduler::format_tags(tags)
            )))
        }
    }

    fn endpoints(&self) -> EndpointsWatch {
        self.inner.endpoints.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.services.limits.capabilities()
    }

    fn process_counts(&self) -> Option<ProcessCounts> {
        let mut counts = ProcessCounts::default();
        for app in self.inner.lock_apps().values() {
            for process in &app.processes {
                counts.add(process.state());
            }
        }
        Some(counts)
    }

    /// Stops every process (the platform is shutting down).
    async fn shutdown(&self) {
        let all: Vec<Arc<Process>> = {
            let mut apps = self.inner.lock_apps();
            apps.drain().flat_map(|(_, app)| app.processes).collect()
        };
        futures_join(all.iter().map(|p| p.stop(None))).await;
        self.inner.publish();
    }
}

impl LocalRuntime {
    /// Makes the app run `spec` (the caller holds the app's turn). Deploy
    /// and scale are the same request: when the release already runs, only
    /// the formation and routing change (scale, converge after a settings
    /// change); otherwise the release rolls out.
    async fn apply(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let current = {
            let apps = self.inner.lock_apps();
            apps.get(&spec.release.app)
                .and_then(|a| a.current.clone())
                .filter(|c| same_release(&c.spec, &spec.release))
        };
        match current {
            Some(release) => self.adjust(spec, release).await,
            None => self.roll_out(spec).await,
        }
    }

    /// Starts a new release beside the old one, publishes it once ready,
    /// then retires the old processes.
    async fn roll_out(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let inner = &self.inner;
        let app = spec.release.app.clone();
        let release = inner.unpack(&spec.release).await?;
        let started = inner
            .start_ready(
                &release,
                &formation(&spec.structure),
                spec.routable_type.as_deref(),
                spec.deploy_timeout,
            )
            .await?;
        let old = {
            let mut apps = inner.lock_apps();
            let entry = apps.entry(app.clone()).or_default();
            for process in &started {
                process.set_serving(true);
            }
            let old: Vec<Arc<Process>> = entry.processes.drain(..).collect();
            entry.processes = started.iter().cloned().chain(old.iter().cloned()).collect();
            entry.current = Some(release.clone());
            entry.structure = spec.structure.clone();
            entry.routable = spec.routable_type.clone();
            entry.deploy_timeout = spec.deploy_timeout;
            // The new endpoints replace the old before the old stop.
            for process in &old {
                process.retire();
            }
            old
        };
        // Keep this build's slug and the previous one: the retired
        // processes still run from it while they drain, and a rollback to it
        // starts without unpacking.
        let keep: Vec<String> = std::iter::once(spec.release.build.uuid.clone())
            .chain(old.iter().map(|p| p.spec.release.spec.build.uuid.clone()))
            .collect();
        inner.publish();
        inner.retire(old);
        inner.slugs.prune(&app, &keep).await;
        Ok(())
    }

    /// Starts and retires processes of the running release to match the
    /// formation.
    async fn adjust(&self, spec: &DeploySpec, release: Arc<Unpacked>) -> Result<(), SchedulerError> {
        let inner = &self.inner;
        let app = spec.release.app.clone();
        // Which processes to add and which to retire, per type.
        let (wanted, surplus) = {
            let apps = inner.lock_apps();
            let running: Vec<Arc<Process>> = apps
                .get(&app)
                .map(|a| {
                    a.processes
                        .iter()
                        .filter(|p| p.spec.release.spec.version == spec.release.version && p.is_current())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut wanted = Vec::new();
            let mut surplus = Vec::new();
            let mut types: Vec<&String> = spec.structure.keys().collect();
            for p in &running {
                if !types.contains(&&p.spec.ptype) {
                    types.push(&p.spec.ptype);
                }
            }
            for ptype in types {
                let desired = u32::try_from(spec.structure.get(ptype).copied().unwrap_or(0)).unwrap_or(0);
                let mut have: Vec<&Arc<Process>> =
                    running.iter().filter(|p| &p.spec.ptype == ptype).collect();
                have.sort_by_key(|p| p.spec.index);
                for index in 1..=desired {
                    if !have.iter().any(|p| p.spec.index == index) {
                        wanted.push((ptype.clone(), index));
                    }
                }
                surplus.extend(have.into_iter().filter(|p| p.spec.index > desired).cloned());
            }
            (wanted, surplus)
        };
        let started = inner
            .start_ready(
                &release,
                &wanted,
                spec.routable_type.as_deref(),
                spec.deploy_timeout,
            )
            .await?;
        {
            let mut apps = inner.lock_apps();
            let entry = apps.entry(app).or_default();
            for process in &started {
                process.set_serving(true);
            }
            entry.processes.extend(started);
            entry.structure = spec.structure.clone();
            entry.routable = spec.routable_type.clone();
            entry.deploy_timeout = spec.deploy_timeout;
        }
        inner.publish();
        self.inner.retire(surplus);
        Ok(())
    }

    /// Replaces the selected processes one by one (the caller holds the
    /// app's turn).
    async fn restart_now(&self, app: &str, selector: &ProcessSelector) -> Result<(), SchedulerError> {
        let inner = &self.inner;
        let (targets, release, routable, timeout) = {
            let apps = inner.lock_apps();
            let no_processes = AppProcesses::default();
            let entry = apps.get(app).unwrap_or(&no_processes);
            let targets: Vec<Arc<Process>> = entry
                .processes
                .iter()
                .filter(|p| p.is_current())
                .filter(|p| match selector {
                    ProcessSelector::All => true,
                    ProcessSelector::Type(t) => &p.spec.ptype == t,
                    ProcessSelector::Name(n) => &p.name == n,
                })
                .cloned()
                .collect();
            (
                targets,
                entry.current.clone(),
                entry.routable.clone(),
                entry.deploy_timeout,
            )
        };
        match selector {
            _ if !targets.is_empty() => {}
            ProcessSelector::All => {}
            ProcessSelector::Type(ptype) => {
                return Err(SchedulerError::NotFound(format!(
                    "No {ptype} processes run in {app}."
                )));
            }
            ProcessSelector::Name(name) => {
                return Err(SchedulerError::NotFound(format!(
                    "No process named {name} runs in {app}."
                )));
            }
        }
        let Some(release) = release else {
            return Ok(());
        };
        // One at a time: start the replacement, wait until it is ready, swap
        // it in, then stop the old process — no moment without a server.
        for old in targets {
            let replacement = inner
                .start_ready(
                    &release,
                    &[(old.spec.ptype.clone(), old.spec.index)],
                    routable.as_deref(),
                    timeout,
                )
                .await?;
            {
                let mut apps = inner.lock_apps();
                if let Some(entry) = apps.get_mut(app) {
                    for process in &replacement {
                        process.set_serving(true);
                    }
                    entry.processes.extend(replacement);
                }
                old.retire();
            }
            inner.publish();
            inner.retire(vec![old]);
        }
        Ok(())
    }
}
