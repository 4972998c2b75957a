//! Builds as Kubernetes Jobs, as Deis ran its slugbuilder and dockerbuilder
//! pods: the builder keeps taking `git push` and storing the source tarball
//! in object storage; the build itself runs in a Job in the platform's
//! namespace, and its pod's log is streamed back to the pusher line by line.
//!
//! - A buildpack build is a Job whose one container runs the platform image's
//!   `deis-workflow build-slug`: it fetches the source from object storage
//!   and runs the same steps as a build on the builder's own machine
//!   (restore the cache, build, store the slug, its Procfile and the cache).
//! - A Dockerfile build is a Job whose init container (the platform image)
//!   unpacks the source into an `emptyDir`, and whose container runs buildah
//!   (the platform image again by default: chroot isolation, vfs storage,
//!   root in the container but not privileged) and pushes the image to the
//!   platform's registry; the pushed digest comes back as the container's
//!   termination message.
//!
//! The app's config (and the registry login) reach the pod through a Secret
//! of the build's own, never through the Job's spec. Job and Secret are
//! deleted when the build ends, however it ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deis_builder::executor::{
    BUILD_ARGS_NOTICE, BuildError, BuildExecutor, BuildJob, BuildLog, ImageOutput, ImageTarget, StoredSlug,
    parse_procfile, read_procfile,
};
use deis_objects::{self as objects, Objects};
use futures::AsyncBufReadExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerStatus, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    LocalObjectReference, Pod, PodSpec, PodTemplateSpec, Secret, SecretEnvSource, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};

use crate::render::HERITAGE;
use crate::scheduler::image_cannot_be_pulled;

/// The key of the build Secret holding the app's config as a JSON object.
const CONFIG_KEY: &str = "config.json";
/// Keys of the build Secret holding the registry login of a Dockerfile build.
const REGISTRY_USERNAME_KEY: &str = "registry-username";
const REGISTRY_PASSWORD_KEY: &str = "registry-password";
/// Where a Dockerfile build's init container unpacks the source.
const WORKSPACE: &str = "/workspace";
/// Where it writes the build arguments (outside the build context).
const BUILD_ARGS_FILE: &str = "/tmp/build-args";
/// The containers whose log is the build's output.
const SLUG_CONTAINER: &str = "slugbuilder";
const IMAGE_CONTAINER: &str = "buildah";
/// How long past the build's own timeout the builder waits for the Job
/// (the pod may be slow to schedule or to pull its image).
const GRACE: Duration = Duration::from_secs(120);

/// The platform image, which runs `deis-workflow build-slug`.
pub const DEFAULT_IMAGE: &str = "ghcr.io/deis-workflow-rs/deis-workflow:latest";
/// The image that runs buildah: the platform image has it.
pub const DEFAULT_BUILDAH_IMAGE: &str = DEFAULT_IMAGE;
/// What buildah needs to build as root in a container (see
/// [`image_build_job`]).
const BUILDAH_CAPABILITIES: [&str; 12] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
    "SYS_ADMIN",
];

/// Where and with what build Jobs run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildJobSettings {
    /// The namespace Jobs run in (the platform's).
    pub namespace: String,
    /// The platform image: runs `deis-workflow build-slug`.
    pub image: String,
    /// The image that runs buildah for Dockerfile builds.
    pub buildah_image: String,
    /// `IfNotPresent`, `Always` or `Never`.
    pub image_pull_policy: String,
    /// The object store URL the pod reads sources from and writes slugs to
    /// (`DEIS_OBJECT_STORE`: `s3://bucket`, ...).
    pub object_store: String,
    /// A Secret in `namespace` whose keys become the pod's environment
    /// (the object store's credentials).
    pub object_store_secret: Option<String>,
    /// Pull secrets for the build images.
    pub image_pull_secrets: Vec<String>,
    /// How often the Job and its pod are checked.
    pub poll: Duration,
}

impl Default for BuildJobSettings {
    fn default() -> Self {
        BuildJobSettings {
            namespace: "deis".to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
            buildah_image: DEFAULT_BUILDAH_IMAGE.to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            object_store: String::new(),
            object_store_secret: None,
            image_pull_secrets: Vec::new(),
            poll: Duration::from_secs(1),
        }
    }
}

/// What a build Job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildKind {
    /// A buildpack build: `slugbuild-...`.
    Slug,
    /// A Dockerfile build: `dockerbuild-...`.
    Dockerfile,
}

impl BuildKind {
    fn prefix(self) -> &'static str {
        match self {
            BuildKind::Slug => "slugbuild",
            BuildKind::Dockerfile => "dockerbuild",
        }
    }

    fn container(self) -> &'static str {
        match self {
            BuildKind::Slug => SLUG_CONTAINER,
            BuildKind::Dockerfile => IMAGE_CONTAINER,
        }
    }
}

/// `<kind>-<app>-<sha8>-<suffix>`, within the 63 characters a Job name
/// may have (it becomes its pods' `job-name` label).
pub fn job_name(kind: BuildKind, app: &str, sha: &str, suffix: &str) -> String {
    let short = sha.get(..8).unwrap_or(sha);
    let room = 63usize.saturating_sub(kind.prefix().len() + short.len() + suffix.len() + 3);
    let app = app
        .get(..room.min(app.len()))
        .unwrap_or(app)
        .trim_end_matches('-');
    format!("{}-{app}-{short}-{suffix}", kind.prefix())
}

fn labels(kind: BuildKind, job: &BuildJob) -> BTreeMap<String, String> {
    let short = job.sha.get(..8).unwrap_or(&job.sha);
    BTreeMap::from([
        ("app".to_owned(), job.app.clone()),
        ("type".to_owned(), kind.prefix().to_owned()),
        ("version".to_owned(), format!("git-{short}")),
        (HERITAGE.0.to_owned(), HERITAGE.1.to_owned()),
    ])
}

fn meta(name: &str, settings: &BuildJobSettings, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The build's Secret: the app's config, and the registry login of a
/// Dockerfile build.
pub fn build_secret(
    kind: BuildKind,
    name: &str,
    job: &BuildJob,
    target: Option<&ImageTarget>,
    settings: &BuildJobSettings,
) -> Secret {
    let config = serde_json::to_vec(&job.env).unwrap_or_else(|_| b"{}".to_vec());
    let mut data = BTreeMap::from([(CONFIG_KEY.to_owned(), ByteString(config))]);
    if let Some(target) = target {
        data.insert(
            REGISTRY_USERNAME_KEY.to_owned(),
            ByteString(target.username.clone().into_bytes()),
        );
        data.insert(
            REGISTRY_PASSWORD_KEY.to_owned(),
            ByteString(target.password.clone().into_bytes()),
        );
    }
    Secret {
        metadata: meta(name, settings, labels(kind, job)),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

fn literal(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

/// The environment of `deis-workflow build-slug`, in either kind of Job.
fn build_slug_env(name: &str, job: &BuildJob, settings: &BuildJobSettings) -> Vec<EnvVar> {
    vec![
        literal("DEIS_APP", job.app.clone()),
        literal("SOURCE_VERSION", job.sha.clone()),
        literal("DEIS_OBJECT_STORE", settings.object_store.clone()),
        literal("DEIS_BUILD_TIMEOUT", job.timeout.as_secs().to_string()),
        literal(
            "DEIS_BUILD_MAX_MB",
            job.max_slug_bytes.div_ceil(1024 * 1024).to_string(),
        ),
        literal("HOME", "/tmp"),
        literal("RUST_LOG", "warn"),
        from_secret("DEIS_BUILD_CONFIG", name, CONFIG_KEY),
    ]
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        // The platform image need not declare a user (as in the chart).
        run_as_user: Some(10001),
        run_as_group: Some(10001),
        ..Default::default()
    }
}

fn platform_container(
    name: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    settings: &BuildJobSettings,
) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(vec!["deis-workflow".to_owned(), "build-slug".to_owned()]),
        args: (!args.is_empty()).then_some(args),
        env: Some(env),
        env_from: settings.object_store_secret.as_ref().map(|secret| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: secret.clone(),
                    optional: None,
                }),
                ..Default::default()
            }]
        }),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn job_object(kind: BuildKind, name: &str, job: &BuildJob, settings: &BuildJobSettings, pod: PodSpec) -> Job {
    Job {
        metadata: meta(name, settings, labels(kind, job)),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::try_from(job.timeout.as_secs()).unwrap_or(i64::MAX)),
            // The builder deletes it; this is for a builder that died meanwhile.
            ttl_seconds_after_finished: Some(3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(kind, job)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    image_pull_secrets: (!settings.image_pull_secrets.is_empty()).then(|| {
                        settings
                            .image_pull_secrets
                            .iter()
                            .map(|name| LocalObjectReference { name: name.clone() })
                            .collect()
                    }),
                    ..pod
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Job of a buildpack build: `deis-workflow build-slug` in the
/// platform image.
pub fn slug_build_job(name: &str, job: &BuildJob, settings: &BuildJobSettings) -> Job {
    let container = platform_container(
        SLUG_CONTAINER,
        Vec::new(),
        build_slug_env(name, job, settings),
        settings,
    );
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![empty_dir("tmp")]),
        ..Default::default()
    };
    job_object(BuildKind::Slug, name, job, settings, pod)
}

/// The shell script of a Dockerfile build's buildah container: build the
/// unpacked source (with the build arguments the init container wrote, one
/// `NAME=value` per line: buildah before 1.35 has no `--build-arg-file`),
/// push it, and leave the pushed digest as the container's termination
/// message. Values come from the environment, never from the script's text.
const BUILDAH_SCRIPT: &str = r#"set -eu
set --
if [ -s "$BUILD_ARGS" ]; then
  echo "$BUILD_ARGS_NOTICE"
  while IFS= read -r arg; do set -- "$@" --build-arg "$arg"; done < "$BUILD_ARGS"
fi
echo "-----> Building the Dockerfile with buildah"
buildah --storage-driver vfs bud --isolation chroot --layers=false "$@" -f "$WORKSPACE/Dockerfile" -t "$IMAGE" "$WORKSPACE"
echo "-----> Pushing $IMAGE"
buildah --storage-driver vfs push --tls-verify="$TLS_VERIFY" --creds "$REGISTRY_USERNAME:$REGISTRY_PASSWORD" --digestfile /dev/termination-log "$IMAGE" "docker://$IMAGE"
"#;

/// The Job of a Dockerfile build: the platform image unpacks the source,
/// buildah builds and pushes it.
pub fn image_build_job(name: &str, job: &BuildJob, target: &ImageTarget, settings: &BuildJobSettings) -> Job {
    let mut unpack = platform_container(
        "source",
        vec![
            "--unpack-to".to_owned(),
            WORKSPACE.to_owned(),
            "--build-args-file".to_owned(),
            BUILD_ARGS_FILE.to_owned(),
        ],
        build_slug_env(name, job, settings),
        settings,
    );
    if let Some(mounts) = &mut unpack.volume_mounts {
        mounts.push(VolumeMount {
            name: "workspace".to_owned(),
            mount_path: WORKSPACE.to_owned(),
            ..Default::default()
        });
    }
    let buildah = Container {
        name: IMAGE_CONTAINER.to_owned(),
        image: Some(settings.buildah_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        command: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            BUILDAH_SCRIPT.to_owned(),
        ]),
        env: Some(vec![
            literal("WORKSPACE", WORKSPACE),
            literal("BUILD_ARGS", BUILD_ARGS_FILE),
            literal("BUILD_ARGS_NOTICE", BUILD_ARGS_NOTICE),
            literal("IMAGE", target.reference.clone()),
            literal("TLS_VERIFY", (!target.insecure).to_string()),
            literal("BUILDAH_ISOLATION", "chroot"),
            literal("STORAGE_DRIVER", "vfs"),
            literal("HOME", "/tmp"),
            from_secret("REGISTRY_USERNAME", name, REGISTRY_USERNAME_KEY),
            from_secret("REGISTRY_PASSWORD", name, REGISTRY_PASSWORD_KEY),
        ]),
        // Root in the container, not privileged: buildah's own default
        // capabilities for RUN steps, and SYS_ADMIN for the mount namespace
        // of its chroot isolation (without it buildah falls back to a user
        // namespace, which the pod cannot map). Measured with podman and
        // the platform image (buildtools/build-image).
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(BUILDAH_CAPABILITIES.map(str::to_owned).to_vec()),
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "workspace".to_owned(),
                mount_path: WORKSPACE.to_owned(),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let pod = PodSpec {
        init_containers: Some(vec![unpack]),
        containers: vec![buildah],
        volumes: Some(vec![empty_dir("tmp"), empty_dir("workspace")]),
        ..Default::default()
    };
    job_object(BuildKind::Dockerfile, name, job, settings, pod)
}

/// How a build Job ended.
struct Ended {
    /// The build container's termination message.
    message: Option<String>,
}

/// Runs builds as Jobs; see the module's documentation.
pub struct KubeBuildExecutor {
    client: Client,
    settings: BuildJobSettings,
}

impl KubeBuildExecutor {
    /// An executor creating Jobs with `client`.
    pub fn new(client: Client, settings: BuildJobSettings) -> Self {
        KubeBuildExecutor { client, settings }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// Creates the Secret and the Job, follows the Job to its end and
    /// removes both.
    async fn run(
        &self,
        kind: BuildKind,
        secret: Secret,
        job: Job,
        timeout: Duration,
        log: &BuildLog,
    ) -> Result<Ended, BuildError> {
        let name = job.metadata.name.clone().unwrap_or_default();
        let secrets: Api<Secret> = self.api();
        let jobs: Api<Job> = self.api();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(refused)?;
        let ended = match jobs.create(&PostParams::default(), &job).await {
            Ok(_) => self.follow(kind, &name, timeout, log).await,
            Err(e) => Err(refused(e)),
        };
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        if let Err(e) = jobs.delete(&name, &background).await {
            tracing::warn!(job = %name, error = %e, "could not delete a build Job");
        }
        if let Err(e) = secrets.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(secret = %name, error = %e, "could not delete a build Secret");
        }
        ended
    }

    /// Streams the build container's log to `log` until the Job completes
    /// or fails.
    async fn follow(
        &self,
        kind: BuildKind,
        name: &str,
        timeout: Duration,
        log: &BuildLog,
    ) -> Result<Ended, BuildError> {
        let jobs: Api<Job> = self.api();
        let pods: Api<Pod> = self.api();
        let container = kind.container();
        let deadline = Instant::now() + timeout + GRACE;
        let mut sent = 0usize;
        let mut told_pending = String::new();
        loop {
            let job = jobs.get(name).await.map_err(refused)?;
            let pod = pods
                .list(&ListParams::default().labels(&format!("job-name={name}")))
                .await
                .map_err(refused)?
                .items
                .into_iter()
                .next();
            let finished = job_finished(&job);
            let status = pod.as_ref().and_then(|p| container_status(p, container));
            let started = status.is_some_and(|s| {
                s.state
                    .as_ref()
                    .is_some_and(|state| state.running.is_some() || state.terminated.is_some())
            });
            if started && let Some(pod_name) = pod.as_ref().and_then(|p| p.metadata.name.clone()) {
                sent = self
                    .forward_log(&pods, &pod_name, container, sent, finished.is_some(), log)
                    .await;
            }
            match finished {
                Some(Finish::Complete) => {
                    return Ok(Ended {
                        message: terminated_message(status),
                    });
                }
                Some(Finish::DeadlineExceeded) => return Err(BuildError::Timeout(timeout)),
                Some(Finish::Failed) => {
                    let message = terminated_message(status).or_else(|| {
                        pod.as_ref().and_then(|p| {
                            p.status
                                .as_ref()
                                .and_then(|s| s.init_container_statuses.as_ref())
                                .and_then(|statuses| {
                                    statuses.iter().find_map(|s| terminated_message(Some(s)))
                                })
                        })
                    });
                    let exit = status
                        .and_then(|s| s.state.as_ref())
                        .and_then(|s| s.terminated.as_ref())
                        .map(|t| t.exit_code);
                    return Err(BuildError::Failed(message.unwrap_or_else(|| match exit {
                        Some(code) => format!("The build failed (exit code {code})."),
                        None => "The build's pod failed before the build ran; see `kubectl describe` of its Job.".to_owned(),
                    })));
                }
                None => {}
            }
            if let Some(pod) = &pod {
                if let Some(problem) = image_problem(pod) {
                    return Err(BuildError::Failed(problem));
                }
                let pending = unschedulable(pod);
                if let Some(why) = pending
                    && why != told_pending
                {
                    let _ = log
                        .send(format!("-----> Waiting for a node to run the build: {why}"))
                        .await;
                    told_pending = why;
                }
            }
            if Instant::now() > deadline {
                return Err(BuildError::Timeout(timeout));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Sends the lines of the container's log after the first `sent` ones
    /// and returns how many have been sent. Follows the log while the
    /// container runs; an unfinished last line waits for the next call
    /// unless the Job has `finished`.
    async fn forward_log(
        &self,
        pods: &Api<Pod>,
        pod: &str,
        container: &str,
        mut sent: usize,
        finished: bool,
        log: &BuildLog,
    ) -> usize {
        let params = LogParams {
            container: Some(container.to_owned()),
            follow: !finished,
            ..Default::default()
        };
        let mut stream = match pods.log_stream(pod, &params).await {
            Ok(stream) => Box::pin(stream),
            Err(e) => {
                tracing::debug!(pod, error = %e, "build log not readable yet");
                return sent;
            }
        };
        let mut seen = 0usize;
        let mut line = Vec::new();
        loop {
            line.clear();
            match stream.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return sent,
                Ok(_) => {}
            }
            let complete = line.last() == Some(&b'\n');
            if !complete && !finished {
                return sent;
            }
            seen += 1;
            if seen > sent {
                let text = String::from_utf8_lossy(&line);
                let _ = log.send(text.trim_end_matches(['\n', '\r']).to_owned()).await;
                sent = seen;
            }
        }
    }
}

fn refused(err: kube::Error) -> BuildError {
    BuildError::Failed(format!("The Kubernetes API refused the build Job: {err}"))
}

enum Finish {
    Complete,
    Failed,
    DeadlineExceeded,
}

fn job_finished(job: &Job) -> Option<Finish> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(Finish::Complete),
            "Failed" if c.reason.as_deref() == Some("DeadlineExceeded") => Some(Finish::DeadlineExceeded),
            "Failed" => Some(Finish::Failed),
            _ => None,
        })
}

fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == container)
}

fn terminated_message(status: Option<&ContainerStatus>) -> Option<String> {
    let message = status?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .as_deref()?
        .trim();
    (!message.is_empty()).then(|| message.to_owned())
}

/// Why the pod's images cannot be pulled, as the pusher should read it.
fn image_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for s in all {
        let Some(waiting) = s.state.as_ref().and_then(|state| state.waiting.as_ref()) else {
            continue;
        };
        if waiting.reason.as_deref().is_some_and(image_cannot_be_pulled) {
            return Some(format!(
                "The build image {} cannot be pulled ({}); check the builder's image settings.",
                s.image,
                waiting
                    .message
                    .as_deref()
                    .or(waiting.reason.as_deref())
                    .unwrap_or_default()
            ));
        }
    }
    None
}

/// The scheduler's reason, while the pod cannot be placed on a node.
fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_else(|| "unschedulable".to_owned()))
}

#[async_trait]
impl BuildExecutor for KubeBuildExecutor {
    async fn build_slug(
        &self,
        objects: &Objects,
        job: BuildJob,
        log: BuildLog,
    ) -> Result<StoredSlug, BuildError> {
        let name = job_name(BuildKind::Slug, &job.app, &job.sha, &crate::run::suffix());
        let secret = build_secret(BuildKind::Slug, &name, &job, None, &self.settings);
        let spec = slug_build_job(&name, &job, &self.settings);
        self.run(BuildKind::Slug, secret, spec, job.timeout, &log).await?;
        let Some(stored) = objects
            .get_bytes(&objects::procfile_key(&job.app, &job.sha))
            .await?
        else {
            return Err(BuildError::Failed(
                "The build Job succeeded but stored no process types; push again.".to_owned(),
            ));
        };
        Ok(StoredSlug {
            procfile: parse_procfile(&String::from_utf8_lossy(&stored))?,
        })
    }

    async fn build_image(
        &self,
        job: BuildJob,
        target: ImageTarget,
        log: BuildLog,
    ) -> Result<ImageOutput, BuildError> {
        let name = job_name(BuildKind::Dockerfile, &job.app, &job.sha, &crate::run::suffix());
        let secret = build_secret(BuildKind::Dockerfile, &name, &job, Some(&target), &self.settings);
        let spec = image_build_job(&name, &job, &target, &self.settings);
        let ended = self
            .run(BuildKind::Dockerfile, secret, spec, job.timeout, &log)
            .await?;
        let digest = ended.message.unwrap_or_default();
        if !digest.starts_with("sha256:") {
            return Err(BuildError::Failed(format!(
                "The Dockerfile build pushed no image digest (its container said {digest:?})."
            )));
        }
        Ok(ImageOutput {
            digest,
            procfile: read_procfile(&job.source).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit_a_label_value() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            job_name(BuildKind::Slug, "shop", sha, "x7k2q"),
            "slugbuild-shop-01234567-x7k2q"
        );
        let long = "a-".repeat(40) + "b";
        let name = job_name(BuildKind::Dockerfile, &long, sha, "x7k2q");
        assert!(name.len() <= 63, "{name}");
        assert!(!name.contains("--"), "{name}");
        assert!(name.ends_with("-01234567-x7k2q"), "{name}");
    }
}
