//! Builds as Jobs, driven end to end against the in-memory API server
//! (`deis-kube-fake`; no kube-apiserver can run on these machines). The
//! fake holds each build pod running and the test plays its container:
//! it appends log lines and ends the pod with an exit code and a
//! termination message, as a kubelet would report them. The real command
//! the pod runs (`deis-workflow build-slug`) is run by the top-level
//! `tests/schedulers.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deis_builder::executor::{BuildError, BuildExecutor, BuildJob, ImageTarget};
use deis_kube_fake::FakeKube;
use deis_kubernetes::{BuildJobSettings, KubeBuildExecutor};
use deis_objects::{Objects, procfile_key};
use serde_json::Value;
use tokio::sync::mpsc;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const NS: &str = "deis";

struct Cluster {
    fake: Arc<FakeKube>,
    executor: KubeBuildExecutor,
    objects: Objects,
    source: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let fake = Arc::new(FakeKube::start().await.expect("the fake starts"));
    fake.add_namespace(NS);
    fake.hold_pods(NS, "slugbuild");
    fake.hold_pods(NS, "dockerbuild");
    let client =
        kube::Client::try_from(kube::Config::new(fake.url().parse().expect("a URL"))).expect("a client");
    let settings = BuildJobSettings {
        namespace: NS.to_owned(),
        object_store: "s3://builds".to_owned(),
        object_store_secret: Some("objectstorage-keyfile".to_owned()),
        poll: Duration::from_millis(20),
        ..BuildJobSettings::default()
    };
    Cluster {
        fake,
        executor: KubeBuildExecutor::new(client, settings),
        objects: Objects::memory(),
        source: tempfile::tempdir().expect("a temporary directory"),
    }
}

fn job(cluster: &Cluster) -> BuildJob {
    BuildJob {
        app: "shop".to_owned(),
        sha: SHA.to_owned(),
        source: cluster.source.path().to_owned(),
        work_dir: PathBuf::from("/nonexistent"),
        env: BTreeMap::from([("API_KEY".to_owned(), "s3cr3t".to_owned())]),
        buildpack_url: None,
        cache: None,
        timeout: Duration::from_secs(60),
        max_slug_bytes: 100 * 1024 * 1024,
    }
}

/// Waits for the build pod of `prefix` to run; returns its name.
async fn running_pod(fake: &FakeKube, prefix: &str) -> String {
    for _ in 0..500 {
        let pods = fake.list(&format!("/api/v1/namespaces/{NS}/pods"));
        if let Some(pod) = pods.iter().find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
                && p["status"]["phase"] == "Running"
        }) {
            return pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no running {prefix} pod: {:?}", fake.requests());
}

/// Receives a line within 5 s.
async fn line(log: &mut mpsc::Receiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), log.recv())
        .await
        .expect("a log line in time")
        .expect("the log is open")
}

/// No Job, Secret or pod of a build is left once it ended.
fn assert_nothing_left(fake: &FakeKube) {
    for kind in [
        "apis/batch/v1/namespaces/deis/jobs",
        "api/v1/namespaces/deis/secrets",
        "api/v1/namespaces/deis/pods",
    ] {
        let left = fake.list(&format!("/{kind}"));
        assert!(left.is_empty(), "{kind} left behind: {left:?}");
    }
}

fn requests(fake: &FakeKube) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.is_write())
        .map(|r| {
            let query = if r.query.contains("Background") {
                " (background)"
            } else {
                ""
            };
            format!("{} {}{query}", r.method, r.path)
        })
        .collect()
}

#[tokio::test]
async fn a_buildpack_build_runs_as_a_job_and_streams_its_log_as_it_runs() {
    let cluster = cluster().await;
    cluster
        .objects
        .put_bytes(&procfile_key("shop", SHA), b"web: gunicorn app:app\n".to_vec())
        .await
        .unwrap();
    let (tx, mut log) = mpsc::channel(64);
    let build = {
        let executor = &cluster.executor;
        let objects = cluster.objects.clone();
        let job = job(&cluster);
        async move { executor.build_slug(&objects, job, tx).await }
    };
    let kubelet = async {
        let pod = running_pod(&cluster.fake, "slugbuild-shop-01234567-").await;
        // What the pod runs, and what it is given.
        let jobs = cluster.fake.list(&format!("/apis/batch/v1/namespaces/{NS}/jobs"));
        let name = jobs[0]["metadata"]["name"].as_str().unwrap().to_owned();
        let spec = &jobs[0]["spec"];
        assert_eq!(spec["backoffLimit"], 0);
        assert_eq!(spec["activeDeadlineSeconds"], 60);
        let container = &spec["template"]["spec"]["containers"][0];
        assert_eq!(
            container["command"],
            serde_json::json!(["deis-workflow", "build-slug"])
        );
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"],
            "objectstorage-keyfile"
        );
        let env: BTreeMap<&str, &Value> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        assert_eq!(env["DEIS_APP"]["value"], "shop");
        assert_eq!(env["SOURCE_VERSION"]["value"], SHA);
        assert_eq!(env["DEIS_OBJECT_STORE"]["value"], "s3://builds");
        assert_eq!(
            env["DEIS_BUILD_CONFIG"]["valueFrom"]["secretKeyRef"]["key"],
            "config.json"
        );
        let job_text = serde_json::to_string(&spec).unwrap();
        assert!(
            !job_text.contains("s3cr3t"),
            "config values stay out of the Job: {job_text}"
        );
        assert_eq!(
            env["DEIS_BUILD_CONFIG"]["valueFrom"]["secretKeyRef"]["name"],
            name.as_str()
        );
        let secret = cluster
            .fake
            .object(&format!("/api/v1/namespaces/{NS}/secrets/{name}"))
            .expect("the build's Secret");
        // {"API_KEY":"s3cr3t"}
        assert_eq!(secret["data"]["config.json"], "eyJBUElfS0VZIjoiczNjcjN0In0=");

        // Lines reach the pusher while the build runs, an unfinished line
        // only once it is complete.
        cluster
            .fake
            .append_pod_log(NS, &pod, "-----> Python app detected\n");
        assert_eq!(line(&mut log).await, "-----> Python app detected");
        cluster.fake.append_pod_log(NS, &pod, "-----> Installing");
        cluster
            .fake
            .append_pod_log(NS, &pod, " requirements\n-----> Compressing...\n");
        assert_eq!(line(&mut log).await, "-----> Installing requirements");
        assert_eq!(line(&mut log).await, "-----> Compressing...");
        cluster
            .fake
            .append_pod_log(NS, &pod, "-----> Compiled slug size is 33.1 KB\n");
        cluster.fake.finish_pod(NS, &pod, 0, None);
        assert_eq!(line(&mut log).await, "-----> Compiled slug size is 33.1 KB");
        (log, name)
    };
    let (built, (mut log, name)) = tokio::join!(build, kubelet);
    let built = built.expect("the build succeeds");
    assert_eq!(built.procfile["web"], "gunicorn app:app");
    assert!(log.try_recv().is_err(), "no line twice");
    assert_eq!(
        requests(&cluster.fake),
        [
            format!("POST /api/v1/namespaces/{NS}/secrets"),
            format!("POST /apis/batch/v1/namespaces/{NS}/jobs"),
            format!("DELETE /apis/batch/v1/namespaces/{NS}/jobs/{name}"),
            format!("DELETE /api/v1/namespaces/{NS}/secrets/{name}"),
        ]
    );
    assert_nothing_left(&cluster.fake);
}

#[tokio::test]
async fn a_failed_build_reports_its_message_and_leaves_nothing_behind() {
    let cluster = cluster().await;
    for (message, expected) in [
        (
            Some("Unable to select a buildpack"),
            "Unable to select a buildpack",
        ),
        (None, "The build failed (exit code 2)."),
    ] {
        let (tx, mut log) = mpsc::channel(64);
        let build = cluster.executor.build_slug(&cluster.objects, job(&cluster), tx);
        let kubelet = async {
            let pod = running_pod(&cluster.fake, "slugbuild-shop-").await;
            cluster.fake.append_pod_log(NS, &pod, "-----> Detecting\n");
            assert_eq!(line(&mut log).await, "-----> Detecting");
            cluster.fake.finish_pod(NS, &pod, 2, message);
        };
        let (built, ()) = tokio::join!(build, kubelet);
        match built {
            Err(BuildError::Failed(text)) => assert_eq!(text, expected),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_nothing_left(&cluster.fake);
    }
}

#[tokio::test]
async fn an_unpullable_build_image_fails_the_build_with_a_clear_message() {
    let cluster = cluster().await;
    cluster.fake.fail_image(deis_kubernetes::build::DEFAULT_IMAGE);
    let (tx, _log) = mpsc::channel(64);
    let built = tokio::time::timeout(
        Duration::from_secs(10),
        cluster.executor.build_slug(&cluster.objects, job(&cluster), tx),
    )
    .await
    .expect("the build gives up at once");
    match built {
        Err(BuildError::Failed(text)) => assert!(
            text.starts_with(&format!(
                "The build image {} cannot be pulled",
                deis_kubernetes::build::DEFAULT_IMAGE
            )),
            "{text}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_nothing_left(&cluster.fake);
}

#[tokio::test]
async fn a_dockerfile_build_runs_buildah_in_a_job_and_returns_the_pushed_digest() {
    let cluster = cluster().await;
    std::fs::write(cluster.source.path().join("Procfile"), "worker: ./work\n").unwrap();
    let target = ImageTarget {
        reference: "registry.deis:5000/shop:git-01234567".to_owned(),
        username: "builder".to_owned(),
        password: "pushpass".to_owned(),
        insecure: true,
    };
    let (tx, mut log) = mpsc::channel(64);
    let build = cluster.executor.build_image(job(&cluster), target, tx);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let kubelet = async {
        let pod = running_pod(&cluster.fake, "dockerbuild-shop-01234567-").await;
        let jobs = cluster.fake.list(&format!("/apis/batch/v1/namespaces/{NS}/jobs"));
        let spec = &jobs[0]["spec"]["template"]["spec"];
        assert_eq!(
            spec["initContainers"][0]["args"],
            serde_json::json!([
                "--unpack-to",
                "/workspace",
                "--build-args-file",
                "/tmp/build-args"
            ])
        );
        assert_eq!(spec["containers"][0]["name"], "buildah");
        let text = serde_json::to_string(&jobs[0]).unwrap();
        assert!(
            !text.contains("pushpass"),
            "the registry password stays out of the Job"
        );
        cluster.fake.append_pod_log(NS, &pod, "STEP 1/2: FROM alpine\n");
        assert_eq!(line(&mut log).await, "STEP 1/2: FROM alpine");
        cluster.fake.finish_pod(NS, &pod, 0, Some(&digest));
    };
    let (built, ()) = tokio::join!(build, kubelet);
    let built = built.expect("the build succeeds");
    assert_eq!(built.digest, digest);
    assert_eq!(built.procfile["worker"], "./work");
}

#[tokio::test]
async fn a_job_that_stored_no_slug_is_a_failed_build() {
    let cluster = cluster().await;
    let (tx, _log) = mpsc::channel(64);
    let build = cluster.executor.build_slug(&cluster.objects, job(&cluster), tx);
    let kubelet = async {
        let pod = running_pod(&cluster.fake, "slugbuild-shop-").await;
        cluster.fake.finish_pod(NS, &pod, 0, None);
    };
    let (built, ()) = tokio::join!(build, kubelet);
    match built {
        Err(BuildError::Failed(text)) => assert!(text.contains("stored no process types"), "{text}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
