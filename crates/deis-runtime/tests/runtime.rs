//! The local runtime with real processes: slugs from object storage, a
//! Python HTTP app, real HTTP requests against the published endpoints.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deis_core::ConfigData;
use deis_objects::Objects;
use deis_runtime::{LocalRuntime, RuntimeConfig};
use deis_scheduler::{
    BuildKind, BuildSpec, DeploySpec, LogLine, LogSink, ProcessSelector, ProcessState, ReleaseSpec, RunInput,
    RunIo, RunOutput, RunSpec, Scheduler, SchedulerError, TtySize,
};

/// The app every test runs: answers `GET /` with its greeting, dyno and
/// release, `GET /env/<NAME>` with a variable, `GET /status/<code>` with
/// that status, `GET /pid` with its pid; prints a line per request.
const SERVER: &str = r#"
import os, sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        status, body = 200, ""
        if self.path.startswith("/env/"):
            body = os.environ.get(self.path[5:], "<unset>")
        elif self.path.startswith("/status/"):
            status = int(self.path[8:])
        elif self.path == "/pid":
            body = str(os.getpid())
        else:
            body = "%s from %s %s" % (os.environ.get("GREETING", "hello"), os.environ["DYNO"], os.environ["WORKFLOW_RELEASE"])
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, fmt, *args):
        print("request " + (fmt % args), flush=True)
print("listening on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

struct Logs(std::sync::Mutex<Vec<LogLine>>);

impl LogSink for Logs {
    fn send(&self, line: LogLine) {
        self.0.lock().unwrap().push(line);
    }
}

struct Env {
    runtime: LocalRuntime,
    objects: Objects,
    logs: Arc<Logs>,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(&dir.path().join("objects")).unwrap();
        let logs = Arc::new(Logs(Default::default()));
        let runtime = LocalRuntime::start(
            RuntimeConfig {
                state_dir: dir.path().join("runtime"),
                node_labels: BTreeMap::new(),
                containers: None,
                app_users: false,
            },
            objects.clone(),
            logs.clone(),
        )
        .unwrap();
        Env {
            runtime,
            objects,
            logs,
            dir,
        }
    }

    /// A slug with `files` (path, content) uploaded as build `build`.
    async fn slug(&self, build: &str, files: &[(&str, &str)]) -> String {
        let src = self.dir.path().join(format!("src-{build}"));
        for (path, content) in files {
            let path = src.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        let archive = self.dir.path().join(format!("{build}.tgz"));
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let key = format!("home/app:git-{build}/push/slug.tgz");
        self.objects.put_file(&key, &archive).await.unwrap();
        key
    }

    async fn web_slug(&self, build: &str) -> String {
        self.slug(build, &[("server.py", SERVER)]).await
    }
}

fn release(
    app: &str,
    version: i32,
    build: &str,
    image: &str,
    procfile: &[(&str, &str)],
    env: &[(&str, &str)],
) -> ReleaseSpec {
    let mut full_env: BTreeMap<String, String> = [
        ("DEIS_APP".to_string(), app.to_string()),
        ("WORKFLOW_RELEASE".to_string(), format!("v{version}")),
    ]
    .into();
    full_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ReleaseSpec {
        app: app.into(),
        version,
        summary: format!("v{version}"),
        created: chrono::Utc::now(),
        build: BuildSpec {
            uuid: build.into(),
            kind: BuildKind::Buildpack,
            image: image.into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            procfile: procfile
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        config: ConfigData::default(),
        env: full_env,
    }
}

fn deploy_spec(release: ReleaseSpec, structure: &[(&str, i32)]) -> DeploySpec {
    DeploySpec {
        release,
        structure: structure.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        routable_type: Some("web".into()),
        deploy_timeout: Duration::from_secs(20),
        autoscale: BTreeMap::new(),
    }
}

const WEB: &[(&str, &str)] = &[("web", "python3 server.py")];

/// One HTTP/1.1 GET; returns the status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn endpoints(runtime: &LocalRuntime, app: &str) -> Vec<SocketAddr> {
    runtime
        .endpoints()
        .borrow()
        .get(app)
        .map(|e| e.iter().map(|e| e.addr).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploys_run_slugrunner_style_and_publish_ready_endpoints() {
    let env = Env::new();
    let image = env
        .slug(
            "b1",
            &[
                ("server.py", SERVER),
                (".profile.d/greeting.sh", "export FROM_PROFILE=sourced\n"),
                (
                    ".release",
                    "---\nconfig_vars:\n  GREETING: slug-default\n  SLUG_ONLY: kept\n",
                ),
            ],
        )
        .await;
    let spec = deploy_spec(
        release("web-app", 2, "b1", &image, WEB, &[("GREETING", "hi")]),
        &[("web", 2)],
    );
    let started = Instant::now();
    env.runtime.deploy(&spec).await.unwrap();
    let took = started.elapsed();
    let addrs = endpoints(&env.runtime, "web-app");
    assert_eq!(addrs.len(), 2, "both processes are endpoints once ready");
    let mut bodies: Vec<String> = addrs.iter().map(|a| get(*a, "/").unwrap().1).collect();
    bodies.sort();
    assert_eq!(bodies, ["hi from web.1 v2", "hi from web.2 v2"]);
    for (var, expected) in [
        ("FROM_PROFILE", "sourced"),
        ("SLUG_ONLY", "kept"),
        ("DEIS_APP", "web-app"),
        ("HOME", ""),
    ] {
        let (_, value) = get(addrs[0], &format!("/env/{var}")).unwrap();
        if expected.is_empty() {
            assert!(
                value.ends_with("/runtime/slugs/web-app/b1"),
                "HOME is the unpacked slug: {value}"
            );
        } else {
            assert_eq!(value, expected, "{var}");
        }
    }
    let (_, port) = get(addrs[0], "/env/PORT").unwrap();
    assert_eq!(port, addrs[0].port().to_string());
    let ps = env.runtime.list("web-app").await.unwrap();
    assert_eq!(ps.len(), 2);
    assert!(
        ps.iter()
            .all(|p| p.state == ProcessState::Up && p.release == 2 && p.name.starts_with("web-app-web-"))
    );
    // What metrics read: the same processes by state.
    let counts = env
        .runtime
        .process_counts()
        .expect("the local runtime counts its processes");
    assert_eq!((counts.up, counts.starting, counts.crashed), (2, 0, 0));
    // Output is captured line by line, tagged with process and release.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = env.logs.0.lock().unwrap().clone();
    assert!(
        logs.iter().any(|l| l.process == "web.1"
            && l.release == "v2"
            && l.text.starts_with("request \"GET / HTTP/1.1\" 200")),
        "{logs:?}"
    );
    println!("deploy of 2 processes took {took:?}");
    env.runtime.destroy("web-app").await.unwrap();
    assert!(endpoints(&env.runtime, "web-app").is_empty());
    assert!(get(addrs[0], "/").is_err(), "destroyed processes are gone");
    assert!(!env.dir.path().join("runtime/slugs/web-app").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_deploys_and_a_restart_under_load_drop_no_request() {
    let env = Env::new();
    let image = env.web_slug("z1").await;
    env.runtime
        .deploy(&deploy_spec(
            release("steady", 1, "z1", &image, WEB, &[]),
            &[("web", 2)],
        ))
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (runtime, stop, ok, failed) = (env.runtime.clone(), stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let addrs = endpoints(&runtime, "steady");
                i += 1;
                match addrs.get(i % addrs.len().max(1)).map(|a| get(*a, "/")) {
                    Some(Ok((200, _))) => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        })
    };
    for version in 2..=4 {
        let spec = deploy_spec(
            release(
                "steady",
                version,
                "z1",
                &image,
                WEB,
                &[("GREETING", &format!("v{version}"))],
            ),
            &[("web", 2)],
        );
        env.runtime.deploy(&spec).await.unwrap();
        let (_, body) = get(endpoints(&env.runtime, "steady")[0], "/").unwrap();
        assert!(body.starts_with(&format!("v{version} from")), "{body}");
    }
    env.runtime
        .restart("steady", &ProcessSelector::All)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(
        ok.load(Ordering::SeqCst) > 50,
        "the load loop ran ({} requests)",
        ok.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed during deploys and restart"
    );
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_that_never_gets_ready_fails_and_the_old_one_keeps_serving() {
    let env = Env::new();
    let image = env.web_slug("ok").await;
    env.runtime
        .deploy(&deploy_spec(
            release("sturdy", 1, "ok", &image, WEB, &[]),
            &[("web", 1)],
        ))
        .await
        .unwrap();
    let before = endpoints(&env.runtime, "sturdy");

    // A web process that exits at once.
    let broken = env
        .slug(
            "bad",
            &[("crash.sh", "echo 'fatal: missing config' >&2; exit 3\n")],
        )
        .await;
    let spec = deploy_spec(
        release("sturdy", 2, "bad", &broken, &[("web", "bash crash.sh")], &[]),
        &[("web", 1)],
    );
    let started = Instant::now();
    let err = env.runtime.deploy(&spec).await.unwrap_err();
    let SchedulerError::DeployFailed(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("web.1 exited with status 3 before it became ready"),
        "{message}"
    );
    assert!(
        message.contains("fatal: missing config"),
        "the user sees why: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing fast, not after the deploy timeout"
    );
    assert_eq!(endpoints(&env.runtime, "sturdy"), before);
    assert_eq!(get(before[0], "/").unwrap().0, 200);

    // A readiness check on a path that answers 500 keeps the release out.
    let mut spec = deploy_spec(release("sturdy", 3, "ok", &image, WEB, &[]), &[("web", 1)]);
    spec.release.config.healthcheck.insert(
        "web".into(),
        serde_json::json!({"readinessProbe": {"httpGet": {"path": "/status/500"}, "periodSeconds": 1}}),
    );
    spec.deploy_timeout = Duration::from_secs(3);
    let err = env.runtime.deploy(&spec).await.unwrap_err();
    assert!(
        err.to_string().contains("did not become ready within 3s"),
        "{err}"
    );
    assert_eq!(endpoints(&env.runtime, "sturdy"), before);
    let ps = env.runtime.list("sturdy").await.unwrap();
    assert!(ps.iter().all(|p| p.release == 1), "{ps:?}");
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_restarting_and_crash_loops() {
    let env = Env::new();
    let image = env
        .slug(
            "s1",
            &[("server.py", SERVER), ("flaky.sh", "echo flaking; exit 1\n")],
        )
        .await;
    let procfile = &[("web", "python3 server.py"), ("worker", "bash flaky.sh")];
    let base = release("scaly", 1, "s1", &image, procfile, &[]);
    env.runtime
        .deploy(&deploy_spec(base.clone(), &[("web", 1)]))
        .await
        .unwrap();
    env.runtime
        .scale(&deploy_spec(base.clone(), &[("web", 3)]))
        .await
        .unwrap();
    assert_eq!(endpoints(&env.runtime, "scaly").len(), 3);
    env.runtime
        .scale(&deploy_spec(base.clone(), &[("web", 1)]))
        .await
        .unwrap();
    assert_eq!(
        endpoints(&env.runtime, "scaly").len(),
        1,
        "scaled-down processes leave the endpoints at once"
    );

    // Restarting one process replaces it (a new pid behind the same name).
    let (_, pid_before) = get(endpoints(&env.runtime, "scaly")[0], "/pid").unwrap();
    let after = env
        .runtime
        .restart("scaly", &ProcessSelector::Name("scaly-web-1".into()))
        .await
        .unwrap();
    assert!(
        after
            .iter()
            .any(|p| p.name == "scaly-web-1" && p.state == ProcessState::Up)
    );
    let addr = endpoints(&env.runtime, "scaly")[0];
    let (status, pid_after) = get(addr, "/pid").unwrap();
    assert_eq!(status, 200);
    assert_ne!(pid_before, pid_after, "a new process answers");
    let err = env
        .runtime
        .restart("scaly", &ProcessSelector::Name("scaly-web-7".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SchedulerError::NotFound("No process named scaly-web-7 runs in scaly.".into())
    );
    let err = env
        .runtime
        .restart("scaly", &ProcessSelector::Type("clock".into()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SchedulerError::NotFound("No clock processes run in scaly.".into())
    );

    // A crashing worker is restarted with growing delays and shows as crashed.
    env.runtime
        .scale(&deploy_spec(base.clone(), &[("web", 1), ("worker", 1)]))
        .await
        .unwrap();
    // Sampled every 100 ms for 4 s, the worker spends most of its time
    // waiting out its backoff, shown as crashed.
    let mut crashed_samples = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ps = env.runtime.list("scaly").await.unwrap();
        let worker = ps.iter().find(|p| p.ptype == "worker").unwrap();
        crashed_samples += usize::from(worker.state == ProcessState::Crashed);
    }
    assert!(
        crashed_samples >= 20,
        "crashed in {crashed_samples} of 40 samples"
    );
    let flaky: Vec<LogLine> = env
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.process == "worker.1")
        .cloned()
        .collect();
    let runs = flaky.iter().filter(|l| l.text == "flaking").count();
    // 0.5 + 1 + 2 s of backoff fit in 4 s: three or four runs, not hundreds.
    assert!((2..=5).contains(&runs), "{runs} runs in 4 s: {flaky:?}");
    assert!(flaky.iter().any(|l| l.text == "Process exited with status 1"));
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_in_quick_succession_leave_exactly_the_formation() {
    let env = Env::new();
    let image = env.web_slug("q1").await;
    let v1 = deploy_spec(release("quick", 1, "q1", &image, WEB, &[]), &[("web", 2)]);
    env.runtime.deploy(&v1).await.unwrap();
    let v2 = deploy_spec(
        release("quick", 2, "q1", &image, WEB, &[("GREETING", "v2")]),
        &[("web", 2)],
    );
    env.runtime.deploy(&v2).await.unwrap();
    // Right after a deploy the old processes drain: listed as terminating,
    // never as up, and never restarted.
    let ps = env.runtime.list("quick").await.unwrap();
    assert!(
        ps.iter()
            .all(|p| (p.release == 1) == (p.state == ProcessState::Terminating)),
        "{ps:?}"
    );
    // A restart, a scale and another restart at once.
    let scale_up = deploy_spec(v2.release.clone(), &[("web", 3)]);
    let web = ProcessSelector::Type("web".into());
    let (a, b, c) = tokio::join!(
        env.runtime.restart("quick", &ProcessSelector::All),
        env.runtime.scale(&scale_up),
        env.runtime.restart("quick", &web),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = env.runtime.list("quick").await.unwrap();
        let mut names: Vec<String> = ps.iter().map(|p| p.name.clone()).collect();
        names.sort();
        if names == ["quick-web-1", "quick-web-2", "quick-web-3"]
            && ps.iter().all(|p| p.state == ProcessState::Up && p.release == 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{ps:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let endpoints = endpoints(&env.runtime, "quick");
    assert_eq!(endpoints.len(), 3);
    for addr in endpoints {
        assert_eq!(get(addr, "/").unwrap().1.split(' ').next(), Some("v2"));
    }
    // Only the running build's slug stays unpacked.
    let slugs: Vec<_> = std::fs::read_dir(env.dir.path().join("runtime/slugs/quick"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(slugs, ["q1"]);
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_liveness_probe_restarts_the_process() {
    let env = Env::new();
    // Alive while `alive` exists in its working directory (the slug).
    let image = env.slug("l1", &[("server.py", SERVER), ("alive", "")]).await;
    let mut spec = deploy_spec(release("lively", 1, "l1", &image, WEB, &[]), &[("web", 1)]);
    spec.release.config.healthcheck.insert(
        "web".into(),
        serde_json::json!({"livenessProbe": {
            "exec": {"command": ["test", "-f", "alive"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        }}),
    );
    env.runtime.deploy(&spec).await.unwrap();
    let addr = endpoints(&env.runtime, "lively")[0];
    let (_, first_pid) = get(addr, "/pid").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(addr, "/pid").unwrap().1,
        first_pid,
        "a live process is left alone"
    );

    std::fs::remove_file(env.dir.path().join("runtime/slugs/lively/l1/alive")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        let addrs = endpoints(&env.runtime, "lively");
        if let Some(pid) = addrs.first().and_then(|a| get(*a, "/pid").ok()).map(|r| r.1)
            && !pid.is_empty()
            && pid != first_pid
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "never restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(restarted, first_pid);
    let logs = env.logs.0.lock().unwrap().clone();
    assert!(
        logs.iter()
            .any(|l| l.process == "web.1" && l.text.contains("Liveness check failed")),
        "{logs:?}"
    );
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_terms_then_kills_the_whole_group() {
    let env = Env::new();
    let script = "trap '' TERM\nsleep 600 &\necho $! > child.pid\npython3 server.py\n";
    let image = env
        .slug("g1", &[("server.py", SERVER), ("stubborn.sh", script)])
        .await;
    let mut spec = deploy_spec(
        release("grace", 1, "g1", &image, &[("web", "bash stubborn.sh")], &[]),
        &[("web", 1)],
    );
    spec.release
        .config
        .termination_grace_period
        .insert("web".into(), "2".into());
    env.runtime.deploy(&spec).await.unwrap();
    let slug = env.dir.path().join("runtime/slugs/grace/g1");
    let child: i32 = std::fs::read_to_string(slug.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{child}")).exists());
    let started = Instant::now();
    env.runtime.destroy("grace").await.unwrap();
    assert!(
        !Path::new(&format!("/proc/{child}/status")).exists() || zombie(child),
        "no orphan survives"
    );
    // The script ignores SIGTERM (and so do its children): SIGKILL came after
    // the 2 s grace period, not the default 30 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("State:\tZ"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_off_runs_report_exit_codes_and_stream_output() {
    let env = Env::new();
    let image = env.web_slug("r1").await;
    let spec = |command: &str| RunSpec {
        release: release("runner", 5, "r1", &image, WEB, &[("GREETING", "yo")]),
        command: command.into(),
        timeout: Duration::from_secs(30),
    };
    let outcome = env
        .runtime
        .run(&spec("echo $GREETING $DEIS_APP; echo oops >&2"))
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, 0);
    assert!(
        outcome.output.contains("yo runner") && outcome.output.contains("oops"),
        "{}",
        outcome.output
    );
    assert_eq!(env.runtime.run(&spec("exit 1")).await.unwrap().exit_code, 1);
    assert_eq!(env.runtime.run(&spec("kill -9 $$")).await.unwrap().exit_code, 137);

    // Output arrives while the command runs.
    let (output, mut received) = tokio::sync::mpsc::channel(16);
    let runtime = env.runtime.clone();
    let streaming = spec("echo first; sleep 1; echo second");
    let task = tokio::spawn(async move {
        runtime
            .run_attached(
                &streaming,
                RunIo {
                    output,
                    input: None,
                    tty: None,
                },
            )
            .await
    });
    let first = tokio::time::timeout(Duration::from_millis(800), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, RunOutput::Stdout(b"first\n".to_vec()));
    assert_eq!(task.await.unwrap().unwrap(), 0);

    // A terminal session.
    let (output, mut received) = tokio::sync::mpsc::channel(64);
    let (input, input_rx) = tokio::sync::mpsc::channel(16);
    let runtime = env.runtime.clone();
    let shell = spec("bash");
    let task = tokio::spawn(async move {
        runtime
            .run_attached(
                &shell,
                RunIo {
                    output,
                    input: Some(input_rx),
                    tty: Some(TtySize { cols: 80, rows: 24 }),
                },
            )
            .await
    });
    input
        .send(RunInput::Resize { cols: 100, rows: 30 })
        .await
        .unwrap();
    input
        .send(RunInput::Stdin(
            b"echo \"app=$DEIS_APP\"; tput cols; test -t 0 && echo tty-yes\n".to_vec(),
        ))
        .await
        .unwrap();
    input.send(RunInput::Stdin(b"exit 7\n".to_vec())).await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(RunOutput::Stdout(bytes))) =
        tokio::time::timeout(Duration::from_millis(200), received.recv()).await
    {
        seen.extend(bytes);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert_eq!(code, 7);
    assert!(seen.contains("app=runner"), "{seen}");
    assert!(seen.contains("tty-yes"), "{seen}");
    assert!(seen.contains("100"), "the resize reached the terminal: {seen}");

    // A client that goes away takes its command with it.
    let (output, received) = tokio::sync::mpsc::channel(4);
    let runtime = env.runtime.clone();
    let mut long = spec("sleep 600");
    long.release.config.healthcheck.clear();
    let task = tokio::spawn(async move {
        runtime
            .run_attached(
                &long,
                RunIo {
                    output,
                    input: None,
                    tty: None,
                },
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(received);
    let code = tokio::time::timeout(Duration::from_secs(40), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(code, 128 + 15, "SIGTERM ended it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_limits_are_enforced_when_the_machine_allows() {
    let env = Env::new();
    let caps = env.runtime.capabilities();
    println!(
        "memory limits: {}, cpu limits: {}",
        caps.memory_limits.as_str(),
        caps.cpu_limits.as_str()
    );
    let image = env.web_slug("m1").await;
    let mut spec = RunSpec {
        release: release("hungry", 1, "m1", &image, WEB, &[]),
        command: "python3 -c 'x = bytearray(300 << 20); print(len(x))'".into(),
        timeout: Duration::from_secs(30),
    };
    spec.release.config.memory.insert("run".into(), "64M".into());
    // One-off runs are not limited; a process type is.
    let hog = env
        .slug(
            "m2",
            &[(
                "hog.sh",
                "python3 -c 'x = bytearray(300 << 20); import time; time.sleep(600)'\n",
            )],
        )
        .await;
    let mut deploy = deploy_spec(
        release("hungry", 2, "m2", &hog, &[("worker", "bash hog.sh")], &[]),
        &[("worker", 1)],
    );
    deploy.routable_type = None;
    deploy.release.config.memory.insert("worker".into(), "64M".into());
    env.runtime.deploy(&deploy).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = env.logs.0.lock().unwrap().iter().any(|l| {
        l.process == "worker.1" && (l.text.contains("status 137") || l.text.contains("MemoryError"))
    });
    match caps.memory_limits {
        deis_scheduler::Enforcement::Enforced | deis_scheduler::Enforcement::Approximated => {
            assert!(killed, "a 300 MB allocation under a 64 MB limit must fail")
        }
        deis_scheduler::Enforcement::NotEnforced => {
            println!("memory limits are not enforced on this machine")
        }
    }
    let _ = env.runtime.run(&spec).await.unwrap();
    env.runtime.shutdown().await;
}
