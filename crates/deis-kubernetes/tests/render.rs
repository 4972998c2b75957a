//! The rendered objects: snapshot-tested (`tests/snapshots/*.json`;
//! `DEIS_UPDATE_GOLDEN=1` rewrites them) and validated with the real
//! `kubernetes-validate --strict` against the Kubernetes 1.33 and 1.37
//! schemas (`buildtools/test` installs it and sets
//! `DEIS_KUBERNETES_VALIDATE`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use deis_core::ConfigData;
use deis_core::validate::Autoscale;
use deis_kubernetes::render::{self, AppObjects, Settings};
use deis_scheduler::{BuildKind, BuildSpec, DeploySpec, ReleaseSpec, RunSpec};
use serde_json::{Value, json};

fn release(app: &str, kind: BuildKind, procfile: &[(&str, &str)], config: ConfigData) -> ReleaseSpec {
    let image = match kind {
        BuildKind::Buildpack => format!("home/{app}:git-0a1b2c3d/push/slug.tgz"),
        BuildKind::Dockerfile => format!("registry.deis.svc:5000/{app}:git-0a1b2c3d"),
        BuildKind::Image => format!("registry.deis.svc:5000/{app}:v3"),
    };
    let mut env: BTreeMap<String, String> = [
        ("DEIS_APP", app),
        ("WORKFLOW_RELEASE", "v3"),
        ("WORKFLOW_RELEASE_SUMMARY", "alice deployed 0a1b2c3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(config.values.clone());
    ReleaseSpec {
        app: app.to_owned(),
        version: 3,
        summary: "alice deployed 0a1b2c3".to_owned(),
        created: Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .unwrap_or_default(),
        build: BuildSpec {
            uuid: "6b5b8c2e-0000-4000-8000-000000000003".to_owned(),
            kind,
            image,
            sha: if kind == BuildKind::Image {
                String::new()
            } else {
                "0a1b2c3d".repeat(5)
            },
            procfile: procfile
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
        config,
        env,
    }
}

fn spec(release: ReleaseSpec, structure: &[(&str, i32)], routable: Option<&str>) -> DeploySpec {
    DeploySpec {
        release,
        structure: structure.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        routable_type: routable.map(str::to_owned),
        deploy_timeout: Duration::from_secs(120),
        autoscale: BTreeMap::new(),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The apps the snapshots show: one of each build kind, with every setting
/// that reaches the cluster.
fn cases() -> Vec<(&'static str, AppObjects)> {
    let settings = Settings {
        slug_url_prefix: "s3://deis-builds/".to_owned(),
        object_store_secret: Some("objectstorage-keyfile".to_owned()),
        deploy_batches: 2,
        ..Settings::default()
    };
    let healthcheck = json!({
        "web": {
            "livenessProbe": {"httpGet": {"path": "/healthz"}, "initialDelaySeconds": 5, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 5000}, "periodSeconds": 2}
        },
        "worker": {"livenessProbe": {"exec": {"command": ["pgrep", "worker"]}}}
    });
    let buildpack = ConfigData {
        values: map(&[("GREETING", "hello")]),
        memory: map(&[("web", "512M"), ("worker", "256M/1G")]),
        cpu: map(&[("web", "500m"), ("worker", "250M/1")]),
        tags: map(&[("disk", "ssd")]),
        healthcheck: healthcheck.as_object().cloned().unwrap_or_default(),
        termination_grace_period: map(&[("worker", "60")]),
        ..ConfigData::default()
    };
    let autoscale = BTreeMap::from([(
        "web".to_owned(),
        Autoscale {
            min: 2,
            max: 5,
            cpu_percent: 70,
        },
    )]);
    let dockerfile = ConfigData {
        values: map(&[("PORT", "8080")]),
        registry: map(&[
            ("username", "bob"),
            ("password", "s3cret"),
            ("hostname", "quay.io"),
        ]),
        ..ConfigData::default()
    };
    vec![
        (
            "buildpack",
            render::app_objects(
                &DeploySpec {
                    autoscale,
                    ..spec(
                        release(
                            "shop",
                            BuildKind::Buildpack,
                            &[("web", "bin/web"), ("worker", "bin/worker")],
                            buildpack,
                        ),
                        &[("web", 3), ("worker", 1)],
                        Some("web"),
                    )
                },
                &settings,
            ),
        ),
        (
            "dockerfile",
            render::app_objects(
                &spec(
                    release(
                        "api",
                        BuildKind::Dockerfile,
                        &[("cmd", "serve --port 8080"), ("cron", "run-jobs")],
                        dockerfile,
                    ),
                    &[("cmd", 2), ("cron", 0)],
                    Some("cmd"),
                ),
                &settings,
            ),
        ),
        (
            "image",
            render::app_objects(
                &spec(
                    release("batch", BuildKind::Image, &[], ConfigData::default()),
                    &[("cmd", 1)],
                    None,
                ),
                &settings,
            ),
        ),
    ]
}

/// Every object of a case as JSON, in apply order.
fn documents(objects: &AppObjects) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut push =
        |value: Result<Value, serde_json::Error>| docs.push(value.unwrap_or_else(|e| panic!("{e}")));
    push(serde_json::to_value(&objects.namespace));
    push(serde_json::to_value(&objects.env_secret));
    if let Some(secret) = &objects.pull_secret {
        push(serde_json::to_value(secret));
    }
    for deployment in &objects.deployments {
        push(serde_json::to_value(deployment));
    }
    if let Some(service) = &objects.service {
        push(serde_json::to_value(service));
    }
    for hpa in &objects.autoscalers {
        push(serde_json::to_value(hpa));
    }
    docs
}

fn run_pod_case() -> Value {
    let release = release(
        "shop",
        BuildKind::Buildpack,
        &[("web", "bin/web")],
        ConfigData::default(),
    );
    let spec = RunSpec {
        release,
        command: "rake db:migrate".to_owned(),
        timeout: Duration::from_secs(1200),
    };
    serde_json::to_value(render::run_pod(&spec, "shop-run-x7k2q", &Settings::default())).unwrap_or_default()
}

/// The objects of a buildpack and a Dockerfile build Job.
fn build_jobs_case() -> Vec<Value> {
    use deis_builder::executor::{BuildJob, ImageTarget};
    use deis_kubernetes::build::{self, BuildJobSettings, BuildKind};
    let settings = BuildJobSettings {
        object_store: "s3://deis-builds".to_owned(),
        object_store_secret: Some("objectstorage-keyfile".to_owned()),
        image_pull_secrets: vec!["platform-pull".to_owned()],
        ..BuildJobSettings::default()
    };
    let job = BuildJob {
        app: "shop".to_owned(),
        sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        source: PathBuf::from("/var/lib/deis-workflow/builder/work/x/source"),
        work_dir: PathBuf::from("/var/lib/deis-workflow/builder/work/x"),
        env: map(&[("DATABASE_URL", "postgres://db/shop")]),
        buildpack_url: None,
        cache: None,
        timeout: Duration::from_secs(900),
        max_slug_bytes: 1024 * 1024 * 1024,
    };
    let target = ImageTarget {
        reference: "deis-registry.deis:5000/shop:git-01234567".to_owned(),
        username: "builder".to_owned(),
        password: "registry-password".to_owned(),
        insecure: true,
    };
    let slug = build::job_name(BuildKind::Slug, &job.app, &job.sha, "x7k2q");
    let image = build::job_name(BuildKind::Dockerfile, &job.app, &job.sha, "x7k2q");
    [
        serde_json::to_value(build::build_secret(BuildKind::Slug, &slug, &job, None, &settings)),
        serde_json::to_value(build::slug_build_job(&slug, &job, &settings)),
        serde_json::to_value(build::build_secret(
            BuildKind::Dockerfile,
            &image,
            &job,
            Some(&target),
            &settings,
        )),
        serde_json::to_value(build::image_build_job(&image, &job, &target, &settings)),
    ]
    .into_iter()
    .map(|doc| doc.unwrap_or_default())
    .collect()
}

fn snapshots() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo")).join("tests/snapshots")
}

#[test]
fn rendered_objects_match_their_snapshots() {
    let mut all: Vec<(String, Vec<Value>)> = cases()
        .iter()
        .map(|(name, objects)| ((*name).to_owned(), documents(objects)))
        .collect();
    all.push(("run-pod".to_owned(), vec![run_pod_case()]));
    all.push(("build-jobs".to_owned(), build_jobs_case()));
    for (name, docs) in all {
        let text = serde_json::to_string_pretty(&docs).unwrap_or_default() + "\n";
        let path = snapshots().join(format!("{name}.json"));
        if std::env::var_os("DEIS_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(snapshots()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; DEIS_UPDATE_GOLDEN=1 records it", path.display()));
        assert!(
            expected == text,
            "{name}: the rendered objects differ from {} (DEIS_UPDATE_GOLDEN=1 rewrites it):\n{text}",
            path.display()
        );
    }
}

#[test]
fn rendered_objects_pass_kubernetes_validate_strict() {
    let tool = std::env::var("DEIS_KUBERNETES_VALIDATE").expect(
        "DEIS_KUBERNETES_VALIDATE is not set: run buildtools/test, which installs kubernetes-validate",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut docs: Vec<Value> = cases()
        .iter()
        .flat_map(|(_, objects)| documents(objects))
        .collect();
    docs.push(run_pod_case());
    docs.extend(build_jobs_case());
    for (i, doc) in docs.iter().enumerate() {
        let path = dir.path().join(format!("{i:02}.json"));
        std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
        files.push(path);
    }
    for version in ["1.33.0", "1.37.0"] {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And the check can fail: an unknown field is refused.
    let mut broken = docs[0].clone();
    broken["spec"] = json!({"nonsense": true});
    let path = dir.path().join("broken.json");
    std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new(&tool)
        .args(["--strict", "-k", "1.33.0"])
        .arg(&path)
        .output()
        .expect("kubernetes-validate runs");
    assert!(!out.status.success(), "an unknown field must be refused");
}

#[test]
fn deis_conventions_hold() {
    let cases = cases();
    let buildpack = &cases[0].1;
    let web = &buildpack.deployments[0];
    assert_eq!(web.metadata.name.as_deref(), Some("shop-web"));
    let spec = web.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .unwrap();
    assert_eq!(
        serde_json::to_value(rolling).unwrap(),
        json!({"maxSurge": 2, "maxUnavailable": 0}),
        "Deis: batches surge, none unavailable"
    );
    let container = &spec.template.spec.as_ref().unwrap().containers[0];
    let resources = serde_json::to_value(container.resources.as_ref().unwrap()).unwrap();
    assert_eq!(resources, json!({"limits": {"cpu": "500m", "memory": "512Mi"}}));
    let worker = serde_json::to_value(&buildpack.deployments[1]).unwrap();
    assert_eq!(
        worker["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "256Mi"}})
    );
    assert_eq!(
        worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        60
    );
    assert_eq!(worker["spec"]["template"]["metadata"]["labels"]["version"], "v3");
    // The default http port is filled into a probe that names none.
    let web = serde_json::to_value(web).unwrap();
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": 5000})
    );
    assert_eq!(buildpack.env_secret.metadata.name.as_deref(), Some("shop-v3-env"));
    let dockerfile = &cases[1].1;
    let pull = serde_json::to_value(dockerfile.pull_secret.as_ref().unwrap()).unwrap();
    assert_eq!(pull["type"], "kubernetes.io/dockerconfigjson");
    let service = serde_json::to_value(dockerfile.service.as_ref().unwrap()).unwrap();
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(service["spec"]["selector"]["type"], "cmd");
    // A process type scaled to zero keeps its Deployment, at zero.
    assert_eq!(dockerfile.deployments[1].spec.as_ref().unwrap().replicas, Some(0));
    assert!(cases[2].1.service.is_none(), "not routable: no Service");
}
