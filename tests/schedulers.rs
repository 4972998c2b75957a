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

use std::path::Path;

use regex::Regex;
use support::up::{UpServer, deis, ok, register_and_push};

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
    let _repo = register_and_push(&server, h, "python", "same");
    let mut steps = Vec::new();
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
    UpServer::start_with_env(
        data,
        None,
        &["--runtime", "kubernetes"],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("DEIS_SLUG_URL_PREFIX", "s3://slugs/"),
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
        (r"\b[0-9a-f]{7}\b|\b[0-9a-f]{40}\b", "<commit>"),
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
/// pointing at it.
struct FakeCluster {
    fake: deis_kube_fake::FakeKube,
    kubeconfig: std::path::PathBuf,
    // Dropped last: the fake's tasks run on it.
    _runtime: tokio::runtime::Runtime,
}

impl FakeCluster {
    fn start(dir: &Path) -> FakeCluster {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fake = runtime.block_on(deis_kube_fake::FakeKube::start()).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_for(fake.url())).unwrap();
        FakeCluster {
            fake,
            kubeconfig,
            _runtime: runtime,
        }
    }
}

fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
         users:\n- name: fake\n  user:\n    token: fake-token\n"
    )
}
