//! [`KubeScheduler`]: the [`Scheduler`] on a Kubernetes cluster.
//!
//! Applying is server-side apply with the field manager [`FIELD_MANAGER`]:
//! the rendered objects ([`crate::render`]) are the whole desired state, an
//! unchanged app is a no-op on the server, and fields other managers own
//! (an HPA's replica count) are left alone. A rollout is waited for by
//! reading the Deployment's status and its pods; image-pull errors,
//! scheduling failures and failed probes end it early with the cluster's
//! own message, and a failed rollout re-applies the previous release.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deis_scheduler::routing::{AppEndpoints, EndpointsWatch};
use deis_scheduler::{
    Capabilities, DeploySpec, Enforcement, ProcessInfo, ProcessSelector, ProcessState, RunIo, RunSpec,
    Scheduler, SchedulerError,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::live::{self, Live};
use crate::render::{self, AppObjects, Settings};

/// The field manager of every object the platform applies.
pub const FIELD_MANAGER: &str = "deis-controller";

/// Tuning of waits (the defaults suit a real cluster; tests shorten them).
#[derive(Clone, Debug)]
pub struct Timing {
    /// How often a rollout, restart or run is checked.
    pub poll: Duration,
    /// Longest a one-off command may run (Deis: 20 minutes).
    pub run_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(1),
            run_timeout: Duration::from_secs(20 * 60),
        }
    }
}

/// The scheduler on Kubernetes.
pub struct KubeScheduler {
    client: Client,
    settings: Settings,
    timing: Timing,
    /// The last release each app rolled out, to roll back to.
    deployed: Mutex<HashMap<String, DeploySpec>>,
    endpoints: tokio::sync::watch::Sender<Arc<AppEndpoints>>,
}

/// A request the API server refused or could not be sent.
/// Whether a container's waiting reason means its image will not be pulled
/// without someone changing something.
pub(crate) fn image_cannot_be_pulled(reason: &str) -> bool {
    matches!(
        reason,
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
    )
}

pub(crate) fn unavailable(err: kube::Error) -> SchedulerError {
    SchedulerError::Unavailable(format!("The Kubernetes API refused a request: {err}"))
}

/// An object as it would be applied (stamped with its [`DESIRED_HASH`]).
pub(crate) enum Desired {
    Namespace(Box<Namespace>),
    Secret(Box<Secret>),
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    Autoscaler(Box<HorizontalPodAutoscaler>),
}

/// One write that bringing an app to its desired state takes.
pub(crate) enum Change {
    /// Apply this object.
    Apply(Desired),
    /// Delete the pull Secret, which registry settings no longer ask for.
    DeletePullSecret,
    /// Delete the Service of an app that no longer has a routable type.
    DeleteService(String),
    /// Delete an HPA whose process type is no longer autoscaled.
    DeleteAutoscaler(String),
    /// Copy the platform's object-store Secret of this name into it.
    CopyPlatformSecret(String),
}

/// A stamped object to apply, as a change.
fn apply<K>(stamped: Option<K>, desired: fn(Box<K>) -> Desired) -> Option<Change> {
    stamped.map(|object| Change::Apply(desired(Box::new(object))))
}

/// `object` stamped for applying, unless the cluster already holds this
/// rendering of it.
fn stale<K: Resource + Serialize + Clone>(kind: &'static str, object: &K, live: &Live) -> Option<K> {
    let (object, hash) = live::stamped(object);
    (live.hash(&live::key(kind, &object)) != Some(hash.as_str())).then_some(object)
}

/// Whether `err` is the API's 404.
fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

impl KubeScheduler {
    /// A scheduler using `client`; starts watching EndpointSlices for the
    /// router's feed in the background.
    pub fn new(client: Client, settings: Settings, timing: Timing) -> Arc<KubeScheduler> {
        let (endpoints, _) = tokio::sync::watch::channel(Arc::new(AppEndpoints::new()));
        let scheduler = Arc::new(KubeScheduler {
            client,
            settings,
            timing,
            deployed: Mutex::new(HashMap::new()),
            endpoints,
        });
        tokio::spawn(crate::endpoints::watch(
            scheduler.client.clone(),
            scheduler.endpoints.clone(),
        ));
        scheduler
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The objects `spec` is on the cluster.
    pub fn render(&self, spec: &DeploySpec) -> AppObjects {
        render::app_objects(spec, &self.settings)
    }

    fn namespaced<K>(&self, app: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), app)
    }

    /// Applies `object` unless the cluster already has this rendering of it
    /// ([`DESIRED_HASH`]); returns whether a request was sent.
    async fn apply<K>(
        &self,
        api: &Api<K>,
        kind: &'static str,
        object: &K,
        live: &Live,
    ) -> Result<bool, SchedulerError>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        match stale(kind, object, live) {
            Some(stamped) => self.send_apply(api, &stamped).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Server-side applies `object` (already stamped) as the platform.
    async fn send_apply<K>(&self, api: &Api<K>, object: &K) -> Result<(), SchedulerError>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map(drop)
        .map_err(unavailable)
    }

    async fn delete_if_present<K>(&self, api: &Api<K>, name: &str) -> Result<(), SchedulerError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// What bringing the app's objects to `objects` takes, given `live`:
    /// nothing when the cluster already holds this rendering of every one.
    pub(crate) fn plan(&self, objects: &AppObjects, live: &Live) -> Vec<Change> {
        let app = objects.namespace.metadata.name.clone().unwrap_or_default();
        let mut changes = Vec::new();
        changes.extend(apply(
            stale("Namespace", &objects.namespace, live),
            Desired::Namespace,
        ));
        changes.extend(apply(stale("Secret", &objects.env_secret, live), Desired::Secret));
        match &objects.pull_secret {
            Some(secret) => changes.extend(apply(stale("Secret", secret, live), Desired::Secret)),
            None if live.exists(&("Secret", app.clone(), render::PULL_SECRET.to_owned())) => {
                changes.push(Change::DeletePullSecret);
            }
            None => {}
        }
        if let Some(name) = &self.settings.object_store_secret
            && !live.exists(&("Secret", app.clone(), name.clone()))
        {
            changes.push(Change::CopyPlatformSecret(name.clone()));
        }
        for deployment in &objects.deployments {
            changes.extend(apply(stale("Deployment", deployment, live), Desired::Deployment));
        }
        match &objects.service {
            Some(service) => changes.extend(apply(stale("Service", service, live), Desired::Service)),
            None if live.exists(&("Service", app.clone(), app.clone())) => {
                changes.push(Change::DeleteService(app.clone()));
            }
            None => {}
        }
        for hpa in &objects.autoscalers {
            changes.extend(apply(
                stale("HorizontalPodAutoscaler", hpa, live),
                Desired::Autoscaler,
            ));
        }
        let wanted: Vec<&str> = objects
            .autoscalers
            .iter()
            .filter_map(|h| h.metadata.name.as_deref())
            .collect();
        for name in live.names("HorizontalPodAutoscaler", &app) {
            if !wanted.contains(&name.as_str()) {
                changes.push(Change::DeleteAutoscaler(name));
            }
        }
        changes
    }

    /// Brings the app's objects to `objects`, sending only what differs
    /// from `live`; returns how many writes that took.
    pub async fn apply_all(&self, objects: &AppObjects, live: &Live) -> Result<usize, SchedulerError> {
        let app = objects.namespace.metadata.name.clone().unwrap_or_default();
        let changes = self.plan(objects, live);
        let writes = changes.len();
        for change in changes {
            match change {
                Change::Apply(Desired::Namespace(o)) => {
                    self.send_apply(&Api::all(self.client.clone()), &*o).await?
                }
                Change::Apply(Desired::Secret(o)) => self.send_apply(&self.namespaced(&app), &*o).await?,
                Change::Apply(Desired::Deployment(o)) => self.send_apply(&self.namespaced(&app), &*o).await?,
                Change::Apply(Desired::Service(o)) => self.send_apply(&self.namespaced(&app), &*o).await?,
                Change::Apply(Desired::Autoscaler(o)) => self.send_apply(&self.namespaced(&app), &*o).await?,
                Change::CopyPlatformSecret(name) => self.copy_platform_secret(&app, &name, live).await?,
                Change::DeletePullSecret => {
                    self.delete_if_present(&self.namespaced::<Secret>(&app), render::PULL_SECRET)
                        .await?;
                }
                Change::DeleteService(name) => {
                    self.delete_if_present(&self.namespaced::<Service>(&app), &name)
                        .await?;
                }
                Change::DeleteAutoscaler(name) => {
                    self.delete_if_present(&self.namespaced::<HorizontalPodAutoscaler>(&app), &name)
                        .await?;
                }
            }
        }
        Ok(writes)
    }

    /// Converges many apps at once: reads the cluster's objects in a few
    /// list requests, applies only what differs, then waits for the apps
    /// that changed. An unchanged cluster costs no write at all.
    pub async fn converge(&self, specs: &[DeploySpec]) -> Result<ConvergeReport, SchedulerError> {
        let live = Live::all(&self.client).await.map_err(unavailable)?;
        let mut report = ConvergeReport {
            apps: specs.len(),
            ..ConvergeReport::default()
        };
        let mut changed = Vec::new();
        for spec in specs {
            let objects = self.render(spec);
            let writes = self.apply_all(&objects, &live).await?;
            if writes > 0 {
                report.writes += writes;
                changed.push((spec, objects));
            }
        }
        report.changed_apps = changed.len();
        for (spec, objects) in changed {
            self.wait_rolled_out(&objects, spec.deploy_timeout).await?;
        }
        for spec in specs {
            self.remember(spec);
        }
        Ok(report)
    }

    /// The platform's object-store credentials, copied into the app's
    /// namespace for the slug runner (Deis copied `objectstorage-keyfile`).
    async fn copy_platform_secret(&self, app: &str, name: &str, live: &Live) -> Result<(), SchedulerError> {
        let platform: Api<Secret> = Api::default_namespaced(self.client.clone());
        let Some(source) = platform.get_opt(name).await.map_err(unavailable)? else {
            return Err(SchedulerError::Unavailable(format!(
                "The object-store secret {name} does not exist in the platform's namespace."
            )));
        };
        let copy = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(app.to_owned()),
                labels: Some(BTreeMap::from([("heritage".to_owned(), "deis".to_owned())])),
                ..Default::default()
            },
            data: source.data,
            type_: source.type_,
            ..Secret::default()
        };
        self.apply(&self.namespaced(app), "Secret", &copy, live)
            .await
            .map(|_| ())
    }

    /// Waits until every Deployment of `objects` has rolled out, or reports
    /// why it cannot (the cluster's own words).
    async fn wait_rolled_out(&self, objects: &AppObjects, timeout: Duration) -> Result<(), SchedulerError> {
        let app = objects.namespace.metadata.name.clone().unwrap_or_default();
        let deployments: Api<Deployment> = self.namespaced(&app);
        let deadline = Instant::now() + timeout;
        for wanted in &objects.deployments {
            let name = wanted.metadata.name.clone().unwrap_or_default();
            loop {
                let current = deployments.get(&name).await.map_err(unavailable)?;
                if rolled_out(&current) {
                    break;
                }
                let trouble = self.trouble(&app, wanted).await?;
                if let Some(reason) = trouble.fatal {
                    return Err(SchedulerError::DeployFailed(reason));
                }
                if Instant::now() > deadline {
                    let mut message =
                        format!("{name} did not become ready within {} seconds", timeout.as_secs());
                    if !trouble.hints.is_empty() {
                        message.push_str(": ");
                        message.push_str(&trouble.hints.join("; "));
                    }
                    message.push('.');
                    return Err(SchedulerError::DeployFailed(message));
                }
                tokio::time::sleep(self.timing.poll).await;
            }
        }
        Ok(())
    }

    /// What the cluster says about the new pods of a Deployment: reasons
    /// they can never come up (an image that cannot be pulled, no node to
    /// run on), which end the rollout at once, and signs of trouble (failed
    /// probes, crash loops), reported if it times out. A readiness probe
    /// failing while an app starts is normal, so that alone ends nothing.
    async fn trouble(&self, app: &str, wanted: &Deployment) -> Result<Trouble, SchedulerError> {
        let labels = wanted
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = self.namespaced(app);
        let pods = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(unavailable)?;
        let mut trouble = Trouble::default();
        let mut names = Vec::new();
        for pod in &pods {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            for status in statuses {
                let Some(waiting) = status.state.and_then(|s| s.waiting) else {
                    continue;
                };
                let reason = waiting.reason.unwrap_or_default();
                let message = waiting
                    .message
                    .unwrap_or_else(|| format!("{pod_name} is waiting"));
                match reason.as_str() {
                    r if image_cannot_be_pulled(r) || r == "CreateContainerConfigError" => {
                        trouble.fatal = Some(format!("{reason}: {message}"));
                        return Ok(trouble);
                    }
                    "CrashLoopBackOff" => trouble.hint(format!("{reason}: {message}")),
                    _ => {}
                }
            }
            names.push(pod_name);
        }
        let events: Api<Event> = self.namespaced(app);
        let events = events.list(&ListParams::default()).await.map_err(unavailable)?;
        for event in events {
            let about = event.involved_object.name.clone().unwrap_or_default();
            if !names.contains(&about) {
                continue;
            }
            let reason = event.reason.clone().unwrap_or_default();
            let message = format!("{reason}: {}", event.message.unwrap_or_default());
            match reason.as_str() {
                "FailedScheduling" => {
                    trouble.fatal = Some(message);
                    return Ok(trouble);
                }
                "Unhealthy" | "BackOff" | "Failed" => trouble.hint(message),
                _ => {}
            }
        }
        Ok(trouble)
    }

    /// Removes what an earlier release left: Deployments of process types
    /// the app no longer has, and environment Secrets of other releases.
    async fn clean_up(&self, objects: &AppObjects, keep_versions: &[i32]) -> Result<(), SchedulerError> {
        let app = objects.namespace.metadata.name.clone().unwrap_or_default();
        let deployments: Api<Deployment> = self.namespaced(&app);
        let wanted: Vec<String> = objects
            .deployments
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect();
        let existing = deployments
            .list(&ListParams::default().labels(&format!("app={app},heritage=deis")))
            .await
            .map_err(unavailable)?;
        for deployment in existing {
            let name = deployment.metadata.name.unwrap_or_default();
            if !wanted.contains(&name) {
                self.delete_if_present(&deployments, &name).await?;
            }
        }
        let secrets: Api<Secret> = self.namespaced(&app);
        let kept = keep_versions
            .iter()
            .map(|v| format!("v{v}"))
            .collect::<Vec<_>>()
            .join(",");
        let stale = secrets
            .list(&ListParams::default().labels(&format!("app={app},type=env,version notin ({kept})")))
            .await
            .map_err(unavailable)?;
        for secret in stale {
            self.delete_if_present(&secrets, &secret.metadata.name.unwrap_or_default())
                .await?;
        }
        Ok(())
    }

    fn previous(&self, app: &str) -> Option<DeploySpec> {
        self.deployed.lock().ok().and_then(|d| d.get(app).cloned())
    }

    fn remember(&self, spec: &DeploySpec) {
        if let Ok(mut deployed) = self.deployed.lock() {
            deployed.insert(spec.release.app.clone(), spec.clone());
        }
    }

    async fn roll_out(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let objects = self.render(spec);
        let live = Live::app(&self.client, &spec.release.app)
            .await
            .map_err(unavailable)?;
        self.apply_all(&objects, &live).await?;
        self.wait_rolled_out(&objects, spec.deploy_timeout).await
    }
}

/// What the cluster says about pods that are not ready yet.
#[derive(Debug, Default)]
struct Trouble {
    /// Why they can never come up: the rollout ends now.
    fatal: Option<String>,
    /// Signs of trouble, each once, for the message if the rollout times out.
    hints: Vec<String>,
}

impl Trouble {
    fn hint(&mut self, message: String) {
        if !self.hints.contains(&message) {
            self.hints.push(message);
        }
    }
}

/// What a [`KubeScheduler::converge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvergeReport {
    /// Apps converged.
    pub apps: usize,
    /// Apps whose objects differed from the cluster's.
    pub changed_apps: usize,
    /// Write requests sent.
    pub writes: usize,
}

/// Whether a Deployment's status shows its current template fully rolled out.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
        && status.unavailable_replicas.unwrap_or(0) == 0
}

/// A pod as a process: its type and release from its labels, its state
/// from its phase, conditions and deletion.
pub fn process_info(pod: &Pod) -> Option<ProcessInfo> {
    let labels = pod.metadata.labels.as_ref()?;
    let ptype = labels.get("type")?.clone();
    let release = labels
        .get("version")
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let state = if pod.metadata.deletion_timestamp.is_some() {
        ProcessState::Terminating
    } else {
        match phase {
            "Running" if ready => ProcessState::Up,
            "Running" | "Pending" => ProcessState::Starting,
            "Succeeded" => ProcessState::Down,
            _ => ProcessState::Crashed,
        }
    };
    Some(ProcessInfo {
        name: pod.metadata.name.clone()?,
        ptype,
        state,
        release,
        started: status.and_then(|s| s.start_time.as_ref()).and_then(|t| {
            chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().unsigned_abs())
        }),
    })
}

#[async_trait]
impl Scheduler for KubeScheduler {
    async fn deploy(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        let previous = self.previous(&spec.release.app);
        match self.roll_out(spec).await {
            Ok(()) => {
                let objects = self.render(spec);
                self.clean_up(&objects, &[spec.release.version]).await?;
                self.remember(spec);
                Ok(())
            }
            Err(err) => {
                // Deis: "Rolling back process types to release vM."
                if let Some(previous) = previous
                    && previous.release.version != spec.release.version
                {
                    tracing::warn!(
                        app = %spec.release.app,
                        failed = spec.release.version,
                        back_to = previous.release.version,
                        error = %err,
                        "rollout failed; rolling back"
                    );
                    if let Err(e) = self.roll_out(&previous).await {
                        tracing::error!(app = %spec.release.app, error = %e, "rolling back failed too");
                    }
                }
                Err(err)
            }
        }
    }

    /// Reads the cluster's objects in a few list requests and compares
    /// each app's rendering with them; writes nothing.
    async fn out_of_date(&self, specs: &[DeploySpec]) -> Result<Vec<usize>, SchedulerError> {
        let live = Live::all(&self.client).await.map_err(unavailable)?;
        let mut stale = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            if self.plan(&self.render(spec), &live).is_empty() {
                self.remember(spec);
            } else {
                stale.push(index);
            }
        }
        Ok(stale)
    }

    async fn scale(&self, spec: &DeploySpec) -> Result<(), SchedulerError> {
        self.roll_out(spec).await?;
        self.remember(spec);
        Ok(())
    }

    async fn restart(
        &self,
        app: &str,
        selector: &ProcessSelector,
    ) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let pods: Api<Pod> = self.namespaced(app);
        let labels = match selector {
            ProcessSelector::All => format!("app={app},heritage=deis,type!=run"),
            ProcessSelector::Type(t) => format!("app={app},heritage=deis,type={t}"),
            ProcessSelector::Name(_) => format!("app={app},heritage=deis"),
        };
        let matching: Vec<Pod> = pods
            .list(&ListParams::default().labels(&labels))
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter(|p| match selector {
                ProcessSelector::Name(n) => p.metadata.name.as_deref() == Some(n.as_str()),
                _ => true,
            })
            .collect();
        if matching.is_empty() {
            return Err(SchedulerError::NotFound("No process matches.".to_owned()));
        }
        for pod in &matching {
            self.delete_if_present(&pods, pod.metadata.name.as_deref().unwrap_or_default())
                .await?;
        }
        // Replacements come from the ReplicaSets; wait until the app's
        // Deployments are whole again.
        if let Some(spec) = self.previous(app) {
            let objects = self.render(&spec);
            self.wait_rolled_out(&objects, spec.deploy_timeout).await?;
        }
        self.list(app).await
    }

    async fn run_attached(&self, spec: &RunSpec, io: RunIo) -> Result<i32, SchedulerError> {
        if io.tty.is_some() {
            return crate::run::run_with_terminal(self, spec, io).await;
        }
        crate::run::run(self, spec, io).await
    }

    async fn list(&self, app: &str) -> Result<Vec<ProcessInfo>, SchedulerError> {
        let pods: Api<Pod> = self.namespaced(app);
        match pods
            .list(&ListParams::default().labels(&format!("app={app},heritage=deis,type!=run")))
            .await
        {
            Ok(list) => Ok(list.iter().filter_map(process_info).collect()),
            Err(e) if is_not_found(&e) => Ok(Vec::new()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn destroy(&self, app: &str) -> Result<(), SchedulerError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        self.delete_if_present(&namespaces, app).await?;
        if let Ok(mut deployed) = self.deployed.lock() {
            deployed.remove(app);
        }
        Ok(())
    }

    async fn check_tags(&self, tags: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        if tags.is_empty() {
            return Ok(());
        }
        let selector = tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Api<Node> = Api::all(self.client.clone());
        let matched = nodes
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(unavailable)?;
        if matched.items.is_empty() {
            let shown = tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SchedulerError::NoMatchingNodes(format!(
                "No nodes matched the provided labels: {shown}"
            )));
        }
        Ok(())
    }

    fn endpoints(&self) -> EndpointsWatch {
        self.endpoints.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            memory_limits: Enforcement::Enforced,
            cpu_limits: Enforcement::Enforced,
            autoscaling: Enforcement::Enforced,
        }
    }
}
