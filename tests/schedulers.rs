//! One behaviour suite, run over both schedulers: the same `git push` and
//! `deis` commands against `up` on the local runtime and against `up
//! --runtime kubernetes`, and the same answers from both.
//!
//! No Kubernetes API server can run on these machines, so the Kubernetes
//! side talks to `deis-kube-fake` (the in-memory API server the scheduler's
//! own tests use) through an ordinary kubeconfig. Everything else is real:
//! the `up` binary, the builder building the slug from a `git push`, the CLI.
//! The fake runs no containers, so the suite compares what the controller
//! says and records (releases, config, scale, process lists, errors), not
//! what the apps answer; the local runtime's apps are checked for that in
//! `story.rs` and `platform.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deis_kube_fake::FakeKube;
use regex::Regex;
use support::up::{UpServer, deis, ok, register_and_push, register_and_push_output};

#[derive(Clone, Copy, Debug)]
enum Runtime {
    Local,
    Kubernetes,
}

#[test]
fn the_controller_behaves_the_same_on_the_local_runtime_and_on_kubernetes() {
    let local = transcript(Runtime::Local);
    let kubernetes = transcript(Runtime::Kubernetes);
    let differences: Vec<String> = local
        .iter()
        .zip(&kubernetes)
        .filter(|(l, k)| l != k)
        .map(|(l, k)| format!("local runtime:\n{l}\nKubernetes:\n{k}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n\n{}",
        differences.len(),
        local.len(),
        differences.join("\n\n")
    );
    assert_eq!(local.len(), kubernetes.len());
    println!("{}", local.join("\n"));
    assert!(local.len() > 20, "the suite ran {} steps", local.len());
}

/// Runs the suite on one scheduler; returns each step's command and its
/// normalised output.
fn transcript(runtime: Runtime) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cluster = match runtime {
        Runtime::Local => None,
        Runtime::Kubernetes => Some(FakeCluster::start(data.path())),
    };
    let server = match &cluster {
        None => UpServer::start(data.path(), None, &[]),
        Some(cluster) => up_on_kubernetes(data.path(), &cluster.kubeconfig),
    };
    let h = home.path();
    let (_repo, pushed) = register_and_push_output(&server, h, "python", "same");
    // On Kubernetes the build ran in a Job: its output is the pod's log.
    let mut steps = vec![normalise(&format!("$ git push deis main\n{pushed}"))];
    let mut step = |args: &[&str]| {
        let out = deis(h, args);
        let text = format!(
            "$ deis {}\nexit {}\n{}{}",
            args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        steps.push(normalise(&text));
    };
    step(&["releases", "-a", "same"]);
    step(&["config:set", "GREETING=hello", "-a", "same"]);
    step(&["config:list", "-a", "same"]);
    wait_until_up(h, 1);
    step(&["ps:list", "-a", "same"]);
    step(&["ps:scale", "web=3", "-a", "same"]);
    wait_until_up(h, 3);
    step(&["ps:list", "-a", "same"]);
    step(&["ps:scale", "worker=1", "-a", "same"]);
    step(&["ps:scale", "web=-1", "-a", "same"]);
    step(&["ps:scale", "web=1", "-a", "same"]);
    wait_until_up(h, 1);
    step(&["ps:list", "-a", "same"]);
    step(&["limits:set", "web=64M", "-a", "same"]);
    step(&["limits:list", "-a", "same"]);
    step(&["healthchecks:set", "readiness", "httpGet", "/", "-a", "same"]);
    step(&["tags:set", "disk=ssd", "-a", "same"]);
    step(&[
        "autoscale:set",
        "web",
        "--min=1",
        "--max=3",
        "--cpu-percent=60",
        "-a",
        "same",
    ]);
    step(&["autoscale:list", "-a", "same"]);
    step(&["autoscale:unset", "web", "-a", "same"]);
    step(&["config:unset", "GREETING", "-a", "same"]);
    step(&["releases", "-a", "same"]);
    step(&["rollback", "v3", "-a", "same"]);
    step(&["config:list", "-a", "same"]);
    step(&["rollback", "v1", "-a", "same"]);
    step(&["releases:info", "v9", "-a", "same"]);
    step(&["ps:restart", "web", "-a", "same"]);
    wait_until_up(h, 1);
    step(&["ps:list", "-a", "same"]);
    step(&["apps:info", "-a", "same"]);
    step(&["apps:destroy", "--app=same", "--confirm=same"]);
    step(&["ps:list", "-a", "same"]);
    step(&["apps:list"]);
    drop(server);
    steps
}

/// A restarted controller compares every app with the cluster in a few
/// list requests and, when nothing changed, reads and writes nothing more.
#[test]
fn a_restarted_controller_rewrites_nothing_on_kubernetes() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let FakeCluster { fake, kubeconfig, .. } = &FakeCluster::start(data.path());
    let server = up_on_kubernetes(data.path(), kubeconfig);
    let _repo = register_and_push(&server, home.path(), "python", "same");
    ok(home.path(), &["ps:scale", "web=2", "-a", "same"]);
    server.interrupt();

    fake.clear_requests();
    let _server = up_on_kubernetes(data.path(), kubeconfig);
    let listed = |kind: &str| {
        fake.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with(kind) && r.query.contains("heritage"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ![
        "namespaces",
        "secrets",
        "deployments",
        "services",
        "horizontalpodautoscalers",
    ]
    .iter()
    .all(|kind| listed(kind))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted controller did not compare the apps with the cluster: {:?}",
            fake.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Give a redeploy, were one wrongly decided, time to start writing.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let writes: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "an unchanged app was rewritten");
    // Cluster-wide lists only: the app's own objects were not read one by
    // one, as a redeploy would.
    let app_reads: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/namespaces/same"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(app_reads, Vec::<String>::new(), "the app was redeployed");
}

/// `up --runtime kubernetes` on the cluster `kubeconfig` points at.
fn up_on_kubernetes(data: &Path, kubeconfig: &Path) -> UpServer {
    // Build pods read sources from, and store slugs in, the object store;
    // the ones run by `run_build_pods` reach it on this machine.
    let objects = format!("file://{}", data.join("objects").display());
    UpServer::start_with_env(
        data,
        None,
        &["--runtime", "kubernetes"],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("DEIS_SLUG_URL_PREFIX", "s3://slugs/"),
            ("DEIS_BUILD_NAMESPACE", BUILD_NAMESPACE),
            ("DEIS_BUILD_EXECUTOR", "kubernetes"),
            ("DEIS_OBJECT_STORE", &objects),
        ],
    )
}

/// Waits until `ps:list` shows `count` processes and every one `up`.
fn wait_until_up(home: &Path, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listed = ok(home, &["ps:list", "-a", "same"]);
        let up = listed.lines().filter(|l| l.contains(" up (v")).count();
        let all = listed.lines().filter(|l| l.contains(" (v")).count();
        if up == count && all == count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {count} processes up within 30 s:\n{listed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Replaces what differs by nature between runs and schedulers: process
/// names, dates, durations, ports, commits and generated identifiers.
fn normalise(text: &str) -> String {
    let rules = [
        // Deis's pod names: <app>-<type>-<replica set hash>-<pod hash>, or
        // the local runtime's <app>-<type>-<n>-<suffix>.
        (r"same-(web|worker)-[a-z0-9]+(-[a-z0-9]+)?", "same-$1-<process>"),
        // Each `up` picks its own router port.
        (r"\.localhost:\d+", ".localhost:<port>"),
        // Processes being stopped are listed while they stop, for as long as
        // that takes: the fake API server removes pods at once, a real
        // cluster after their grace period. That is timing, not behaviour.
        (r"(?m)^same-\w+-<process> terminating \(v\d+\)\n", ""),
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?",
            "<date>",
        ),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<uuid>",
        ),
        (r"\b\d+(\.\d+)?(ms|s)\b", "<duration>"),
        // Commits: the same files, committed at another time.
        (r"\b[0-9a-f]{7,8}\b|\b[0-9a-f]{40}\b", "<commit>"),
        // Each `up` picks its own builder port.
        (r"ssh://127\.0\.0\.1:\d+/", "ssh://<builder>/"),
        // Compressed slugs differ by a few bytes (file times, paths).
        (r"slug size is [\d.]+ KB", "slug size is <n> KB"),
        // Only Kubernetes applies autoscale rules, and the local runtime
        // says so (checked in deis-cli's tests): a difference by design.
        (r"(?m)^Note: autoscale rules are recorded but not applied.*\n", ""),
    ];
    let mut text = text.to_owned();
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

/// The in-memory API server, on a runtime of its own, and a kubeconfig
/// pointing at it. Build Jobs' pods are run by [`run_build_pods`].
struct FakeCluster {
    fake: Arc<FakeKube>,
    kubeconfig: PathBuf,
    // Dropped last: the fake's tasks run on it.
    _runtime: tokio::runtime::Runtime,
}

/// The namespace `up_on_kubernetes` runs build Jobs in.
const BUILD_NAMESPACE: &str = "deis";

impl FakeCluster {
    fn start(dir: &Path) -> FakeCluster {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fake = Arc::new(runtime.block_on(FakeKube::start()).unwrap());
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_for(fake.url())).unwrap();
        fake.add_namespace(BUILD_NAMESPACE);
        fake.hold_pods(BUILD_NAMESPACE, "slugbuild");
        runtime.spawn(run_build_pods(fake.clone(), dir.join("build-pods")));
        FakeCluster {
            fake,
            kubeconfig,
            _runtime: runtime,
        }
    }
}

/// Plays the kubelet for build Jobs, which the fake API server cannot run:
/// it holds their pods running, and this runs each pod's container for
/// real on this machine: `deis-workflow build-slug` with the pod's
/// environment (its Secret references resolved from the fake), its output
/// appended to the pod's log line by line as it comes, and the pod ended
/// with the command's exit code and termination message.
async fn run_build_pods(fake: Arc<FakeKube>, scratch: PathBuf) {
    let mut started = std::collections::HashSet::new();
    loop {
        for pod in fake.list(&format!("/api/v1/namespaces/{BUILD_NAMESPACE}/pods")) {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if pod["status"]["phase"] == "Running" && started.insert(name.clone()) {
                tokio::spawn(run_build_pod(fake.clone(), pod, scratch.join(&name)));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn run_build_pod(fake: Arc<FakeKube>, pod: serde_json::Value, scratch: PathBuf) {
    use base64::Engine as _;
    use tokio::io::AsyncBufReadExt as _;
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let container = &pod["spec"]["containers"][0];
    let command: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(container["args"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert_eq!(command[..2], ["deis-workflow", "build-slug"], "{pod}");
    std::fs::create_dir_all(&scratch).unwrap();
    let message_file = scratch.join("termination-log");
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_deis-workflow"));
    // The image's own environment is this machine's (which has the
    // buildpacks' tools and package mirrors); the pod's goes on top.
    process.args(&command[1..]);
    for var in container["env"].as_array().into_iter().flatten() {
        let value = match var["valueFrom"]["secretKeyRef"].as_object() {
            Some(from) => {
                let secret = fake
                    .object(&format!(
                        "/api/v1/namespaces/{BUILD_NAMESPACE}/secrets/{}",
                        from["name"].as_str().unwrap_or_default()
                    ))
                    .expect("the build's Secret exists before its pod");
                let encoded = secret["data"][from["key"].as_str().unwrap_or_default()]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
            }
            None => var["value"].as_str().unwrap_or_default().to_owned(),
        };
        process.env(var["name"].as_str().unwrap_or_default(), value);
    }
    // The container's own filesystem: its /tmp and its termination log.
    process
        .env("HOME", &scratch)
        .env("DEIS_BUILD_WORK_DIR", scratch.join("build"))
        .env("DEIS_TERMINATION_LOG", &message_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let mut child = process.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        fake.append_pod_log(BUILD_NAMESPACE, &name, &format!("{line}\n"));
    }
    let code = child.wait().await.unwrap().code().unwrap_or(137);
    let message = std::fs::read_to_string(&message_file).ok();
    fake.finish_pod(BUILD_NAMESPACE, &name, code, message.as_deref());
}

fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
         users:\n- name: fake\n  user:\n    token: fake-token\n"
    )
}

/// The platform image's slug runner (`/runner/init`: `deis-workflow
/// slug-run`, Deis's slugrunner contract), which the Kubernetes scheduler's
/// buildpack pods run: the slug is fetched from object storage and
/// unpacked, then a Procfile type or a given command runs in it, with HOME
/// at the app and `.profile.d` sourced.
#[test]
fn slug_run_starts_the_slugs_processes_from_object_storage() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join(".profile.d")).unwrap();
    std::fs::write(
        app.join("Procfile"),
        "web: echo \"web on $PORT with $GREETING in $HOME\"\nworker: exit 7\n",
    )
    .unwrap();
    std::fs::write(app.join(".profile.d/greeting.sh"), "export GREETING=hello\n").unwrap();
    let push = dir.path().join("objects/home/shop:git-01234567/push");
    std::fs::create_dir_all(&push).unwrap();
    let packed = std::process::Command::new("tar")
        .arg("-czf")
        .arg(push.join("slug.tgz"))
        .arg("-C")
        .arg(&app)
        .arg(".")
        .status()
        .unwrap();
    assert!(packed.success());
    let slug_url = format!("file://{}/slug.tgz", push.display());
    let run = |url: &str, into: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
            .arg("slug-run")
            .args(args)
            .env("SLUG_URL", url)
            .env("DEIS_APP_DIR", dir.path().join(into))
            .env("PORT", "5000")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let home = |name: &str| dir.path().join(name).display().to_string();

    let (code, stdout, stderr) = run(&slug_url, "web", &["start", "web"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("web on 5000 with hello in {}\n", home("web")));
    let (code, ..) = run(&slug_url, "worker", &["start", "worker"]);
    assert_eq!(code, Some(7), "the process's own exit status");
    let (code, stdout, stderr) = run(&slug_url, "run", &["/bin/sh", "-c", "echo $GREETING; pwd"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("hello\n{}\n", home("run")));

    let (code, _, stderr) = run(&slug_url, "clock", &["start", "clock"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("The slug's Procfile has no process type \"clock\" (it has: web, worker)."),
        "{stderr}"
    );
    let missing = slug_url.replace("git-01234567", "git-89abcdef");
    let (code, _, stderr) = run(&missing, "gone", &["start", "web"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("There is no slug at"), "{stderr}");
}
