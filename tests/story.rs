//! The main job end to end, as a user does it: the real `deis-workflow up`
//! on free ports, the real `deis` CLI, real `git` over real `ssh`, in a
//! temporary home directory. Register, add a key, create an app, push the
//! Python sample, reach it through the edge router, change its config,
//! scale it, read and follow its logs, give it a domain, put it in
//! maintenance, roll it back, survive a failing push, and destroy it with
//! everything it left behind. Runs on SQLite, and on PostgreSQL when
//! `DEIS_TEST_DATABASE_URL` is set (`buildtools/test` does both).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use deis_scheduler::{LogQuery, LogService};
use support::up::{
    UpServer, app_processes, deis, deis_binary, deis_in, deis_on_terminal, git, http_get, http_get_host, ok,
};

const PLAIN: &str = "Hello from Python\n";
const GREETED: &str = "Hello from Python hi\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_pushes_runs_changes_scales_watches_rolls_back_and_destroys_an_app() {
    let database_url = deis_testkit::fresh_postgres_database().await;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || story(database_url.as_deref(), &runtime))
        .await
        .unwrap();
}

/// Waits until `check` holds; returns how long that took.
fn until(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// What the router answers for `host` at `/`.
fn routed(port: u16, host: &str) -> Option<(u16, String)> {
    http_get_host(port, host, "/")
}

/// Runs the CLI and requires failure; returns stderr.
fn fails(home: &Path, args: &[&str]) -> String {
    let out = deis(home, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "deis {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// The versions `deis releases` lists, newest first.
fn release_versions(home: &Path, app: &str) -> Vec<u32> {
    ok(home, &["releases", "-a", app])
        .lines()
        .filter_map(|l| l.strip_prefix('v')?.split('\t').next()?.parse().ok())
        .collect()
}

/// Entries of the object store's `home/` that belong to the app.
fn app_objects(data: &Path, app: &str) -> Vec<String> {
    std::fs::read_dir(data.join("objects/home"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name == app || name.starts_with(&format!("{app}:git-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Lines `deis logs -f` prints, as they come.
struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(home: &Path, app: &str) -> Follower {
        let mut child = Command::new(deis_binary())
            .args(["logs", "-f", "-a", app, "-n", "1"])
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// Waits for a line with every one of `parts`.
    fn expect(&self, parts: &[&str], seen: &mut Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.iter().any(|l| parts.iter().all(|p| l.contains(p))) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("`deis logs -f` never printed {parts:?}; it printed:\n{seen:#?}"));
            seen.push(line);
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs through the router from a thread until stopped, counting answers
/// that are not a 200.
struct Watch {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<Option<(u16, String)>>>,
}

impl Watch {
    fn start(port: u16, host: String) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, answered) = (stop.clone(), answered.clone());
            move || {
                let mut bad = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match routed(port, &host) {
                        Some((200, _)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => bad.push(other),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                bad
            }
        });
        Watch {
            stop,
            answered,
            thread,
        }
    }

    /// Stops; returns (200s, everything else).
    fn finish(self) -> (u64, Vec<Option<(u16, String)>>) {
        self.stop.store(true, Ordering::Relaxed);
        let bad = self.thread.join().unwrap();
        (self.answered.load(Ordering::Relaxed), bad)
    }
}

fn story(database_url: Option<&str>, runtime: &tokio::runtime::Handle) {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (d, h) = (data.path(), home.path());
    // A name of its own: app processes are found by name machine-wide.
    let app = &format!("story-{}", std::process::id());
    let host = &format!("{app}.localhost");
    let domain = &format!("www.{app}.example.com");
    // Dropped after the server (which a failed assertion kills outright).
    let _reaper = Reaper(app.clone());
    println!(
        "database: {}",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let server = UpServer::start(d, database_url, &[]);
    let http = server.http_port;
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    // Register: the first user becomes the administrator.
    let registered = ok(
        h,
        &[
            "register",
            &server.url,
            "--username=alice",
            "--password=s3cret-pw",
            "--email=alice@example.com",
        ],
    );
    assert!(registered.contains("Registered alice"), "{registered}");
    let me = ok(h, &["whoami", "--all"]);
    assert!(
        me.lines()
            .any(|l| l.contains("is_superuser") && l.contains("true")),
        "{me}"
    );

    // keys:add, with a key made by ssh-keygen.
    let key = h.join("id_ed25519");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    ok(h, &["keys:add", key.with_extension("pub").to_str().unwrap()]);
    let keys = ok(h, &["keys:list"]);
    assert!(keys.contains("alice@laptop"), "{keys}");

    // create, inside the app's git repository: a `deis` remote appears.
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    support::copy_dir(&support::sample_app("python"), r);
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "init"],
    ] {
        assert!(git(r, h, &key, args).0);
    }
    let out = deis_in(h, r, &["create", app]);
    let created = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(created.contains(&format!("created {app}")), "{created}");
    let (_, remotes) = git(r, h, &key, &["remote", "-v"]);
    assert!(
        remotes.contains(&format!(":{}/{app}.git", server.builder_port)),
        "{remotes}"
    );
    // Known to the router, but nothing runs yet.
    until(
        Duration::from_secs(2),
        "the router knows the app (503 before the push)",
        || routed(http, host).map(|(s, _)| s) == Some(503),
    );

    // git push: built, released, and answering through the edge router.
    let started = Instant::now();
    let (pushed, output) = git(r, h, &key, &["push", "deis", "main"]);
    assert!(pushed, "{output}");
    for expected in [
        "Python app detected",
        "Build complete.",
        &format!("Done, {app}:v2 deployed"),
        &format!("http://{host}:{http}"),
    ] {
        assert!(
            output.contains(expected),
            "{expected:?} missing from the push:\n{output}"
        );
    }
    let pushed_at = started.elapsed();
    until(
        Duration::from_secs(10),
        "the app answers through the router",
        || routed(http, host).is_some_and(|(s, b)| s == 200 && b == PLAIN),
    );
    timings.push(("git push to the first 200", started.elapsed()));
    println!("git push returned after {pushed_at:?}");
    let repository = d.join(format!("builder/repos/{app}.git"));
    assert!(repository.join("HEAD").exists(), "the builder's repository");
    assert!(
        !app_objects(d, app).is_empty(),
        "the app's source, slug and cache"
    );

    // config:set: a new release, and the app answers with the new value.
    let started = Instant::now();
    let set = ok(h, &["config:set", "GREETING=hi", "-a", app]);
    assert!(set.contains("v3") && set.contains("GREETING"), "{set}");
    until(Duration::from_secs(10), "the new config is live", || {
        routed(http, host).is_some_and(|(s, b)| s == 200 && b == GREETED)
    });
    timings.push(("config:set to the new value served", started.elapsed()));

    // `deis run -t`: a shell in a one-off process of the release, on a
    // terminal, with the new config; its exit status becomes deis's.
    let (code, shown) = deis_on_terminal(
        h,
        &["run", "-t", "-a", app, "--", "bash"],
        "test -t 0 && echo \"$GREETING-$((40+2))\"; exit 7\n",
    );
    assert_eq!(code, Some(7), "{shown}");
    assert!(shown.contains("hi-42"), "{shown}");

    // ps:scale web=2: two processes, each serving on its own port, and the
    // router sends requests to both.
    let started = Instant::now();
    ok(h, &["ps:scale", "web=2", "-a", app]);
    timings.push(("ps:scale web=2 (the command)", started.elapsed()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let processes = loop {
        let processes = app_processes(app);
        let dynos: BTreeSet<&str> = processes.iter().map(|(_, dyno, _)| dyno.as_str()).collect();
        if processes.len() == 2 && dynos == BTreeSet::from(["web.1", "web.2"]) {
            break processes;
        }
        assert!(
            Instant::now() < deadline,
            "two web processes, not {processes:?}:\n{}",
            ok(h, &["ps", "-a", app])
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    for (_, dyno, port) in &processes {
        until(Duration::from_secs(10), "each process answers", || {
            http_get(*port, "/").is_some_and(|(s, b)| s == 200 && b == GREETED)
        });
        println!("{dyno} answers on port {port}");
    }
    let ps = ok(h, &["ps", "-a", app]);
    assert!(
        ps.contains(&format!("{app}-web-1 up (v3)")) && ps.contains(&format!("{app}-web-2 up (v3)")),
        "{ps}"
    );
    timings.push(("ps:scale web=2 to both answering", started.elapsed()));
    for _ in 0..8 {
        assert_eq!(routed(http, host).map(|(s, _)| s), Some(200));
    }
    let router_lines = ok(h, &["logs", "-a", app, "--source", "router", "-n", "100"]);
    for (_, dyno, port) in &processes {
        assert!(
            router_lines.contains(&format!("dyno=127.0.0.1:{port} ")),
            "the router never sent a request to {dyno}:\n{router_lines}"
        );
    }

    // logs: the app's processes, the router and the platform.
    let logs = ok(h, &["logs", "-a", app, "-n", "500"]);
    for expected in [
        format!("{app}[web.1]: listening on"),
        format!("{app}[web.2]: listening on"),
        format!("{app}[web.1]: 127.0.0.1 \"GET / HTTP/1.1\" 200"),
        format!("{app}[router]: at=info method=GET path=\"/\" host={host}"),
        format!("{app}[deis]: alice added GREETING"),
        format!("{app}[deis]: alice scaled"),
    ] {
        assert!(
            logs.contains(&expected),
            "{expected:?} missing from deis logs:\n{logs}"
        );
    }

    // logs -f follows a new request: the app's line and the router's.
    let follower = Follower::start(h, app);
    let mut seen = Vec::new();
    let first = follower
        .lines
        .recv_timeout(Duration::from_secs(10))
        .expect("`deis logs -f` replays the last line");
    seen.push(first);
    let asked = Instant::now();
    assert_eq!(http_get_host(http, host, "/followed").map(|(s, _)| s), Some(200));
    follower.expect(&[&format!("{app}[web."), "GET /followed"], &mut seen);
    timings.push(("request to its line in `deis logs -f`", asked.elapsed()));
    follower.expect(&[&format!("{app}[router]:"), "path=\"/followed\""], &mut seen);
    drop(follower);

    // domains:add: the app answers for its custom domain.
    ok(h, &["domains:add", domain, "-a", app]);
    let domains = ok(h, &["domains", "-a", app]);
    assert!(domains.contains(domain), "{domains}");
    let took = until(Duration::from_secs(2), "the custom domain is routed", || {
        routed(http, domain).is_some_and(|(s, b)| s == 200 && b == GREETED)
    });
    timings.push(("domains:add to routed", took));

    // maintenance: 503 while on, served again when off.
    ok(h, &["maintenance:on", "-a", app]);
    until(Duration::from_secs(2), "maintenance mode", || {
        [host, domain]
            .iter()
            .all(|host| routed(http, host).is_some_and(|(s, b)| s == 503 && b.contains("maintenance")))
    });
    ok(h, &["maintenance:off", "-a", app]);
    until(Duration::from_secs(2), "maintenance off", || {
        routed(http, host).is_some_and(|(s, b)| s == 200 && b == GREETED)
    });

    // releases, then rollback to the release before config:set.
    let versions = release_versions(h, app);
    assert_eq!(versions, vec![3, 2, 1], "releases v1..v3, newest first");
    let releases = ok(h, &["releases", "-a", app]);
    assert!(
        releases.contains("alice added GREETING") && releases.contains("alice deployed"),
        "{releases}"
    );
    let started = Instant::now();
    let rolled = ok(h, &["rollback", "v2", "-a", app]);
    assert!(rolled.contains("Rolling back to v2... done, v4"), "{rolled}");
    until(Duration::from_secs(10), "the earlier config is back", || {
        routed(http, host).is_some_and(|(s, b)| s == 200 && b == PLAIN)
    });
    timings.push(("rollback to the old config served", started.elapsed()));
    assert_eq!(release_versions(h, app), vec![4, 3, 2, 1]);
    let config = ok(h, &["config", "-a", app]);
    assert!(!config.contains("GREETING"), "{config}");
    let ps = ok(h, &["ps", "-a", app]);
    assert!(
        ps.contains(&format!("{app}-web-1 up (v4)")) && ps.contains(&format!("{app}-web-2 up (v4)")),
        "the formation survives the rollback:\n{ps}"
    );

    // A push whose build fails is rejected; the app keeps answering and
    // nothing moves (no release, the branch stays where it was).
    let (_, deployed) = git(r, h, &key, &["rev-parse", "HEAD"]);
    let mut requirements = std::fs::read_to_string(r.join("requirements.txt")).unwrap();
    // A package that exists nowhere, named by a direct reference so pip
    // fails at once and offline (a name alone would make it ask PyPI).
    requirements
        .push_str("deis-story-no-such-package @ file:///nonexistent/deis_story_no_such_package-9.9.9-py3-none-any.whl\n");
    std::fs::write(r.join("requirements.txt"), requirements).unwrap();
    assert!(
        git(
            r,
            h,
            &key,
            &["commit", "-q", "-am", "a dependency that does not exist"]
        )
        .0
    );
    let watch = Watch::start(http, host.clone());
    let (pushed, output) = git(r, h, &key, &["push", "deis", "main"]);
    let (answered, bad) = watch.finish();
    assert!(!pushed, "the failing build was accepted:\n{output}");
    assert!(
        output.contains("deis_story_no_such_package") && output.contains(&format!("Push rejected to {app}")),
        "{output}"
    );
    assert!(
        bad.is_empty() && answered > 0,
        "the app stopped answering during the failed push ({answered} answered): {bad:?}"
    );
    assert_eq!(routed(http, host), Some((200, PLAIN.to_owned())));
    assert_eq!(
        release_versions(h, app).first(),
        Some(&4),
        "no release for a failed build"
    );
    let (_, remote) = git(r, h, &key, &["ls-remote", "deis", "refs/heads/main"]);
    assert!(
        remote.starts_with(deployed.trim()),
        "the branch moved: {remote} (deployed {deployed})"
    );

    // The logger holds the app's lines (read straight from its API, as a
    // component would, with the token derived from the platform secret).
    let secret = deis_auth::PlatformSecret::load_or_create(&d.join("platform-secret")).unwrap();
    let logger_lines = || {
        runtime.block_on(async {
            let logger = deis_logger::remote::RemoteLogger::new(
                &format!("http://{}", server.logger_addr),
                &secret.derive("logger"),
            )
            .unwrap();
            logger
                .tail(
                    app,
                    &LogQuery {
                        lines: 1000,
                        ..LogQuery::default()
                    },
                )
                .await
                .map(|lines| lines.len())
        })
    };
    assert!(
        logger_lines().unwrap() > 0,
        "the logger should hold the app's lines"
    );

    // apps:destroy removes everything: processes, routes, logs, and the
    // builder's repository and objects.
    let started = Instant::now();
    let destroyed = ok(h, &["apps:destroy", "-a", app, "--confirm", app]);
    assert!(destroyed.contains(app), "{destroyed}");
    until(Duration::from_secs(10), "no process of the app is left", || {
        app_processes(app).is_empty()
    });
    until(Duration::from_secs(2), "the app's routes are gone", || {
        [host, domain]
            .iter()
            .all(|host| routed(http, host).map(|(s, _)| s) == Some(404))
    });
    let refused = fails(h, &["logs", "-a", app]);
    assert!(
        refused.contains(&format!("App {app} does not exist")),
        "{refused}"
    );
    let apps = ok(h, &["apps"]);
    assert!(!apps.contains(app), "{apps}");
    until(Duration::from_secs(2), "the logger forgot the app", || {
        logger_lines().is_ok_and(|n| n == 0)
    });
    until(
        Duration::from_secs(5),
        "the builder's repository and objects are gone",
        || !repository.exists() && app_objects(d, app).is_empty(),
    );
    timings.push(("apps:destroy to everything gone", started.elapsed()));
    let runtime_left: Vec<_> = walk(&d.join("runtime"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(app))
        .collect();
    assert!(runtime_left.is_empty(), "the runtime kept {runtime_left:?}");

    println!("timings:");
    for (step, took) in &timings {
        println!("  {step:<40} {:>8.1} ms", took.as_secs_f64() * 1000.0);
    }
    server.interrupt();
}

/// Kills the app's processes if the story fails half-way: the server is
/// then killed outright and would leave them running.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (pid, _, _) in app_processes(&self.0) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}
