//! The Kubernetes objects an app's desired state is, as pure functions of
//! a [`DeploySpec`] and the cluster [`Settings`]: no I/O, so they are
//! snapshot-tested and validated against the Kubernetes schemas offline,
//! and a converge of an unchanged app can be decided without the cluster.
//!
//! Names, labels and annotations follow Deis Workflow (`deis-v2.md` §3.6)
//! where they still mean something here: a Namespace `<app>`, a Deployment
//! `<app>-<type>` per process type (labels `app`, `type`, `heritage: deis`;
//! pods also `version: vN`), a Secret `<app>-v<N>-env` with the release's
//! environment, a Service `<app>` for the routable type, an HPA per
//! autoscaled type, and a `private-registry` pull secret. Deis's
//! `router.deis.io/*` Service annotations are not written: the router here
//! is fed by the controller's xDS feed, not by watching Services.

use std::collections::BTreeMap;

use base64::Engine as _;
use deis_core::validate::Autoscale;
use deis_scheduler::{BuildKind, DeploySpec, ReleaseSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, LocalObjectReference, Namespace, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, Secret, SecretEnvSource, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// Label every object of the platform carries (Deis's).
pub const HERITAGE: (&str, &str) = ("heritage", "deis");
/// The port an app listens on when its config sets none (Deis's slugrunner `PORT`).
pub const DEFAULT_PORT: u16 = 5000;
/// The pull secret made from an app's `registry` settings (Deis's name).
pub const PULL_SECRET: &str = "private-registry";

/// How the cluster runs apps: images and policies the platform decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The image that runs buildpack slugs (`/runner/init start <type>`,
    /// Deis's slugrunner contract): by default the platform image, whose
    /// `/runner/init` is `deis-workflow slug-run`.
    pub slug_runner_image: String,
    /// Where slug keys are fetched from: `SLUG_URL` is this prefix and the
    /// build's object key (e.g. `s3://bucket/`).
    pub slug_url_prefix: String,
    /// A Secret in each app's namespace whose keys become the slug runner's
    /// environment (object-store credentials), copied there by the scheduler.
    pub object_store_secret: Option<String>,
    /// `IfNotPresent` (Deis's default), `Always` or `Never`.
    pub image_pull_policy: String,
    /// Pods a rollout adds at once (Deis's `DEIS_DEPLOY_BATCHES`); at least 1.
    pub deploy_batches: i32,
    /// ReplicaSets kept for history.
    pub revision_history_limit: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            slug_runner_image: crate::build::DEFAULT_IMAGE.to_owned(),
            slug_url_prefix: String::new(),
            object_store_secret: None,
            image_pull_policy: "IfNotPresent".to_owned(),
            deploy_batches: 1,
            revision_history_limit: 10,
        }
    }
}

/// Everything that makes up one app on the cluster at one release.
#[derive(Clone, Debug, PartialEq)]
pub struct AppObjects {
    /// The app's namespace.
    pub namespace: Namespace,
    /// The release's environment.
    pub env_secret: Secret,
    /// Credentials for a private registry, when the app has some.
    pub pull_secret: Option<Secret>,
    /// One per process type, including those scaled to zero.
    pub deployments: Vec<Deployment>,
    /// The routable type's Service, when the app is routable.
    pub service: Option<Service>,
    /// One per autoscaled process type.
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
}

/// The Deployment of a process type: `<app>-<type>`.
pub fn deployment_name(app: &str, ptype: &str) -> String {
    format!("{app}-{ptype}")
}

/// The Secret holding release `version`'s environment: `<app>-v<N>-env`.
pub fn env_secret_name(app: &str, version: i32) -> String {
    format!("{app}-v{version}-env")
}

/// The labels selecting an app's pods of one type (`app`, `type`, `heritage`).
pub fn selector_labels(app: &str, ptype: &str) -> BTreeMap<String, String> {
    labels(&[("app", app), ("type", ptype), HERITAGE])
}

/// The app's objects for `spec`.
pub fn app_objects(spec: &DeploySpec, settings: &Settings) -> AppObjects {
    let release = &spec.release;
    let app = release.app.as_str();
    let port = port(release);
    let pull_secret = pull_secret(release);
    let mut deployments: Vec<Deployment> = spec
        .structure
        .iter()
        .map(|(ptype, replicas)| {
            deployment(
                release,
                ptype,
                *replicas,
                port,
                spec.routable_type.as_deref() == Some(ptype.as_str()),
                pull_secret.is_some(),
                settings,
            )
        })
        .collect();
    deployments.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    AppObjects {
        namespace: Namespace {
            metadata: ObjectMeta {
                name: Some(app.to_owned()),
                labels: Some(labels(&[HERITAGE])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        },
        env_secret: env_secret(release, port),
        pull_secret,
        deployments,
        service: spec
            .routable_type
            .as_deref()
            .map(|ptype| service(app, ptype, port)),
        autoscalers: spec
            .autoscale
            .iter()
            .filter(|(ptype, _)| spec.structure.contains_key(*ptype))
            .map(|(ptype, scale)| autoscaler(app, ptype, scale))
            .collect(),
    }
}

/// The port the app's processes listen on: its `PORT`, else Deis's 5000.
pub fn port(release: &ReleaseSpec) -> u16 {
    release
        .env
        .get("PORT")
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_PORT)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn meta(app: &str, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(app.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn env_secret(release: &ReleaseSpec, port: u16) -> Secret {
    let app = release.app.as_str();
    let version = format!("v{}", release.version);
    let mut env = release.env.clone();
    env.entry("PORT".to_owned()).or_insert_with(|| port.to_string());
    Secret {
        metadata: meta(
            app,
            &env_secret_name(app, release.version),
            labels(&[("app", app), HERITAGE, ("version", &version), ("type", "env")]),
        ),
        data: Some(
            env.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// `kubernetes.io/dockerconfigjson` from the app's `registry` settings.
fn pull_secret(release: &ReleaseSpec) -> Option<Secret> {
    let registry = &release.config.registry;
    let (username, password) = (registry.get("username")?, registry.get("password")?);
    let host = registry
        .get("hostname")
        .cloned()
        .or_else(|| image_registry(&release.build.image))
        .unwrap_or_else(|| "https://index.docker.io/v1/".to_owned());
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let config = serde_json::json!({
        "auths": { host: { "username": username, "password": password, "auth": auth } }
    });
    Some(Secret {
        metadata: meta(
            &release.app,
            PULL_SECRET,
            labels(&[("app", &release.app), HERITAGE]),
        ),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_string().into_bytes()),
        )])),
        type_: Some("kubernetes.io/dockerconfigjson".to_owned()),
        ..Secret::default()
    })
}

/// The registry host of an image reference, if it names one.
fn image_registry(image: &str) -> Option<String> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then(|| first.to_owned())
}

fn deployment(
    release: &ReleaseSpec,
    ptype: &str,
    replicas: i32,
    port: u16,
    routable: bool,
    pull_secret: bool,
    settings: &Settings,
) -> Deployment {
    let app = release.app.as_str();
    let name = deployment_name(app, ptype);
    let version = format!("v{}", release.version);
    let mut pod_labels = selector_labels(app, ptype);
    pod_labels.insert("version".to_owned(), version);
    let mut metadata = meta(app, &name, selector_labels(app, ptype));
    metadata.annotations = Some(BTreeMap::from([(
        "kubernetes.io/change-cause".to_owned(),
        release.summary.clone(),
    )]));
    let surge = settings.deploy_batches.clamp(1, replicas.max(1));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas.max(0)),
            revision_history_limit: Some(settings.revision_history_limit),
            selector: LabelSelector {
                match_labels: Some(selector_labels(app, ptype)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(surge)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(release, ptype, port, routable, pull_secret, settings)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The pod of a process type (also a one-off `run` pod's, with `run`).
pub fn pod_spec(
    release: &ReleaseSpec,
    ptype: &str,
    port: u16,
    routable: bool,
    pull_secret: bool,
    settings: &Settings,
) -> PodSpec {
    let app = release.app.as_str();
    let config = &release.config;
    let (image, command, args) = entrypoint(release, ptype, settings);
    let mut env_from = vec![EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: env_secret_name(app, release.version),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }];
    if release.build.kind == BuildKind::Buildpack
        && let Some(secret) = &settings.object_store_secret
    {
        env_from.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }
    let mut env = Vec::new();
    if release.build.kind == BuildKind::Buildpack {
        env.push(k8s_openapi::api::core::v1::EnvVar {
            name: "SLUG_URL".to_owned(),
            value: Some(format!("{}{}", settings.slug_url_prefix, release.build.image)),
            ..Default::default()
        });
    }
    let (liveness, readiness) = probes(release, ptype, port, routable);
    PodSpec {
        containers: vec![Container {
            name: deployment_name(app, ptype),
            image: Some(image),
            image_pull_policy: Some(settings.image_pull_policy.clone()),
            command,
            args,
            env: (!env.is_empty()).then_some(env),
            env_from: Some(env_from),
            ports: routable.then(|| {
                vec![ContainerPort {
                    container_port: i32::from(port),
                    name: Some("http".to_owned()),
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                }]
            }),
            resources: resources(config.memory.get(ptype), config.cpu.get(ptype)),
            liveness_probe: liveness,
            readiness_probe: readiness,
            ..Container::default()
        }],
        node_selector: (!config.tags.is_empty()).then(|| config.tags.clone()),
        termination_grace_period_seconds: Some(
            i64::try_from(config.grace_period(ptype).as_secs()).unwrap_or(i64::MAX),
        ),
        image_pull_secrets: pull_secret.then(|| {
            vec![LocalObjectReference {
                name: PULL_SECRET.to_owned(),
            }]
        }),
        // Apps have no business with the Kubernetes API.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        restart_policy: Some(if ptype == "run" { "Never" } else { "Always" }.to_owned()),
        ..PodSpec::default()
    }
}

/// Image, command and arguments (Deis's `_get_entrypoint`/`_get_command`,
/// with `/bin/sh` where Deis used `/bin/bash`, as the local runtime does).
fn entrypoint(
    release: &ReleaseSpec,
    ptype: &str,
    settings: &Settings,
) -> (String, Option<Vec<String>>, Option<Vec<String>>) {
    let build = &release.build;
    let command = build.procfile.get(ptype);
    match build.kind {
        BuildKind::Buildpack => (
            settings.slug_runner_image.clone(),
            Some(vec!["/runner/init".to_owned()]),
            Some(match (ptype, command) {
                // A one-off command runs in the slug's environment.
                ("run", Some(line)) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
                _ => vec!["start".to_owned(), ptype.to_owned()],
            }),
        ),
        BuildKind::Dockerfile | BuildKind::Image => match (ptype, command) {
            ("cmd", Some(line)) => (
                build.image.clone(),
                None,
                Some(line.split_whitespace().map(str::to_owned).collect()),
            ),
            ("cmd", None) | (_, None) => (build.image.clone(), None, None),
            (_, Some(line)) => (
                build.image.clone(),
                Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
                Some(vec![line.clone()]),
            ),
        },
    }
}

/// The process type's probes from its healthcheck config; a routable type
/// without a readiness probe gets Deis's default (TCP on the port).
fn probes(release: &ReleaseSpec, ptype: &str, port: u16, routable: bool) -> (Option<Probe>, Option<Probe>) {
    let configured = release.config.healthcheck_for(ptype);
    let probe = |key: &str| -> Option<Probe> {
        let mut value = configured?.get(key)?.clone();
        // Deis fills in PORT for an httpGet probe that names none.
        if let Some(http) = value.get_mut("httpGet").and_then(Value::as_object_mut) {
            http.entry("port").or_insert_with(|| Value::from(port));
        }
        serde_json::from_value(value).ok()
    };
    let liveness = probe("livenessProbe");
    let readiness = probe("readinessProbe").or_else(|| {
        routable.then(|| Probe {
            tcp_socket: Some(k8s_openapi::api::core::v1::TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                host: None,
            }),
            initial_delay_seconds: Some(1),
            timeout_seconds: Some(5),
            period_seconds: Some(5),
            success_threshold: Some(1),
            failure_threshold: Some(1),
            ..Probe::default()
        })
    });
    (liveness, readiness)
}

/// Deis's limits: a single value is the limit, `R/L` request and limit;
/// memory units become Kubernetes's binary ones (`512M` → `512Mi`).
fn resources(memory: Option<&String>, cpu: Option<&String>) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let mut add = |key: &str, value: &str, convert: fn(&str) -> String| match value.split_once('/') {
        Some((request, limit)) => {
            requests.insert(key.to_owned(), Quantity(convert(request)));
            limits.insert(key.to_owned(), Quantity(convert(limit)));
        }
        None => {
            limits.insert(key.to_owned(), Quantity(convert(value)));
        }
    };
    if let Some(memory) = memory {
        add("memory", memory, memory_quantity);
    }
    if let Some(cpu) = cpu {
        add("cpu", cpu, |c| c.to_ascii_lowercase());
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    })
}

/// `512M` → `512Mi`, `1GB` → `1Gi`, `2048K` → `2048Ki`, `100B` → `100`.
fn memory_quantity(value: &str) -> String {
    let upper = value.trim().to_ascii_uppercase();
    let digits: String = upper.chars().take_while(char::is_ascii_digit).collect();
    match upper[digits.len()..].chars().next() {
        Some('K') => format!("{digits}Ki"),
        Some('M') => format!("{digits}Mi"),
        Some('G') => format!("{digits}Gi"),
        _ => digits,
    }
}

fn service(app: &str, ptype: &str, port: u16) -> Service {
    Service {
        metadata: meta(app, app, labels(&[("app", app), HERITAGE])),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(app, ptype)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::Int(i32::from(port))),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn autoscaler(app: &str, ptype: &str, scale: &Autoscale) -> HorizontalPodAutoscaler {
    let name = deployment_name(app, ptype);
    HorizontalPodAutoscaler {
        metadata: meta(app, &name, selector_labels(app, ptype)),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name,
            },
            min_replicas: Some(scale.min),
            max_replicas: scale.max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(scale.cpu_percent),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

/// Makes a one-off pod attachable with a terminal (`deis run -t`): its
/// container gets stdin, once, and a TTY.
pub fn with_terminal(mut pod: k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod {
    if let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        container.stdin = Some(true);
        container.stdin_once = Some(true);
        container.tty = Some(true);
    }
    pod
}

/// The pod of a one-off command: the release's pod for process type `run`,
/// running `spec.command` (under the slug runner for buildpack apps).
pub fn run_pod(
    spec: &deis_scheduler::RunSpec,
    name: &str,
    settings: &Settings,
) -> k8s_openapi::api::core::v1::Pod {
    let release = &spec.release;
    let app = release.app.as_str();
    let mut pod_spec = pod_spec(
        release,
        "run",
        port(release),
        false,
        pull_secret(release).is_some(),
        settings,
    );
    if let Some(container) = pod_spec.containers.first_mut() {
        container.name = format!("{app}-run");
        match release.build.kind {
            BuildKind::Buildpack => container.args = Some(vec![spec.command.clone()]),
            BuildKind::Dockerfile | BuildKind::Image => {
                container.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
                container.args = Some(vec![spec.command.clone()]);
            }
        }
    }
    let version = format!("v{}", release.version);
    k8s_openapi::api::core::v1::Pod {
        metadata: meta(
            app,
            name,
            labels(&[("app", app), ("version", &version), ("type", "run"), HERITAGE]),
        ),
        spec: Some(pod_spec),
        ..Default::default()
    }
}
