//! `deis-workflow up` as a user runs it: the real binary on a free port with
//! its own data directory, driven by the real `deis` CLI; then stopped with
//! Ctrl-C (SIGINT) and started again, resuming where it left off; and run
//! out of file descriptors.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::up::{UpServer, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_cli_and_resumes_after_ctrl_c() {
    let database_url = deis_testkit::fresh_postgres_database().await;
    tokio::task::spawn_blocking(move || scenario(database_url.as_deref()))
        .await
        .unwrap();
}

/// Runs `deis-workflow up` on `data` with `extra` arguments and `env`, which
/// must refuse to start and say `why`.
fn up_refuses(data: &std::path::Path, extra: &[&std::ffi::OsStr], env: &[(&str, &str)], why: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
        .envs(env.iter().copied())
        .args(["up", "--controller-addr", "127.0.0.1:0"])
        // Refusals may come after listeners are opened: none on a fixed
        // port, so that tests refused side by side do not collide.
        .args(["--builder-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"])
        .args(["--metrics-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0"])
        .args(["--logger-addr", "127.0.0.1:0", "--forward-addr", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(why), "{said}");
}

fn register_admin(home: &std::path::Path, url: &str) {
    ok(
        home,
        &[
            "register",
            url,
            "--username=admin",
            "--password=adm1n-pw",
            "--email=a@example.com",
        ],
    );
}

fn scenario(database_url: Option<&str>) {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = UpServer::start(data.path(), database_url, &[]);
    register_admin(home.path(), &server.url);

    // A second platform on the same data directory would run every app
    // twice and stop the first one's processes: it is refused at once.
    up_refuses(
        data.path(),
        &[],
        &[],
        &format!(
            "the data directory {} is in use by another deis-workflow (pid {})",
            data.path().display(),
            server.child.id()
        ),
    );
    ok(home.path(), &["create", "persisted", "--no-remote"]);
    ok(home.path(), &["config:set", "KEEP=me", "-a", "persisted"]);
    let version = ok(home.path(), &["version", "--all"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    server.interrupt();

    if database_url.is_none() {
        assert!(data.path().join("deis.sqlite3").exists());
    }
    assert!(data.path().join("platform-secret").exists());
    assert!(
        data.path()
            .join("builder/host-keys/ssh_host_ed25519_key")
            .exists()
    );
    let server = UpServer::start(data.path(), database_url, &[]);
    // The saved profile points at the old port; log in to the new one.
    ok(
        home.path(),
        &["login", &server.url, "--username=admin", "--password=adm1n-pw"],
    );
    let config = ok(home.path(), &["config", "-a", "persisted"]);
    assert!(config.contains("KEEP") && config.contains("me"), "{config}");
    let releases = ok(home.path(), &["releases", "-a", "persisted"]);
    assert!(releases.contains("v2"), "{releases}");
    server.interrupt();
}

/// User plus system CPU time of process `pid`, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's USER_HZ is 100 on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

/// The soft and hard limits on open files of process `pid`.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Sends an HTTP/2 client preface and returns the type of the first frame
/// the server answers with.
fn first_http2_frame(mut stream: TcpStream) -> u8 {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).unwrap();
    header[3]
}

/// `up` takes the hard limit on open files. Out of file descriptors all the
/// same (here: Forward clients holding connections open under a limit
/// lowered again), the gRPC listeners wait instead of spinning, and serve
/// the connections that waited once descriptors are free again.
#[test]
fn up_waits_out_running_out_of_descriptors_and_serves_again() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // Start it with a soft limit of 1024 (or less), as many systems do.
    let (_, hard) = open_files_limits(std::process::id());
    let lowered = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), "--nofile=1024:"])
        .status()
        .unwrap();
    assert!(lowered.success(), "prlimit failed");
    let server = UpServer::start(data.path(), None, &[]);
    let pid = server.child.id();
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap();
    let expected = match hard.parse::<u64>() {
        Ok(hard) => hard.min(nr_open.trim().parse().unwrap()).to_string(),
        Err(_) => nr_open.trim().to_owned(),
    };
    assert_eq!(open_files_limits(pid).0, expected);

    let limit = open_descriptors(pid) + 16;
    let lowered = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .unwrap();
    assert!(lowered.success(), "prlimit failed");
    let mut forward_clients = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_descriptors(pid) < limit {
        assert!(
            Instant::now() < deadline,
            "the Forward listener did not take up the descriptors"
        );
        if forward_clients.len() < 64 {
            forward_clients.push(TcpStream::connect(&server.forward_addr).unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two connections that cannot be accepted while the table is full.
    let logger_client = TcpStream::connect(&server.logger_addr).unwrap();
    let feed_client = TcpStream::connect(&server.xds_addr).unwrap();

    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_time(pid) - before;
    assert!(
        spent < Duration::from_millis(400),
        "deis-workflow used {spent:?} of CPU time in 2 s while out of descriptors"
    );

    drop(forward_clients);
    assert_eq!(
        first_http2_frame(logger_client),
        4,
        "the logger API did not answer with SETTINGS"
    );
    assert_eq!(
        first_http2_frame(feed_client),
        4,
        "the routing feed did not answer with SETTINGS"
    );
    register_admin(home.path(), &server.url);
    server.interrupt();
}

#[test]
fn logs_written_to_a_file_or_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_deis-workflow"))
        .args(["migrate", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    assert!(logged.contains("INFO"), "nothing was logged: {logged}");
    assert!(!logged.contains('\u{1b}'), "colour codes in a pipe: {logged:?}");
}

/// A platform certificate and the key of another one.
fn mismatched_platform_certificate() -> (std::path::PathBuf, std::path::PathBuf) {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/deis-core/tests/fixtures/certs");
    (fixtures.join("san.crt"), fixtures.join("rsa-other.key"))
}

#[test]
fn a_platform_certificate_with_another_certificates_key_is_refused_at_start() {
    let (cert, key) = mismatched_platform_certificate();
    let data = tempfile::tempdir().unwrap();
    up_refuses(
        data.path(),
        &[
            "--platform-cert".as_ref(),
            cert.as_os_str(),
            "--platform-key".as_ref(),
            key.as_os_str(),
        ],
        &[],
        &format!("{} is not the private key of {}", key.display(), cert.display()),
    );
}

#[test]
fn on_off_settings_from_the_environment_take_1_yes_true_and_their_opposites() {
    let (cert, key) = mismatched_platform_certificate();
    let data = tempfile::tempdir().unwrap();
    let extra = [
        "--platform-cert".as_ref(),
        cert.as_os_str(),
        "--platform-key".as_ref(),
        key.as_os_str(),
    ];
    // Each value is taken: `up` goes on to a later check, the certificate,
    // and stops there.
    for value in ["1", "yes", "true", "on", "0", "no", "false", "off"] {
        up_refuses(
            data.path(),
            &extra,
            &[("DEIS_ROUTER_NO_IO_URING", value)],
            "is not the private key of",
        );
    }
    for value in ["0", "no", "false", "off"] {
        up_refuses(
            data.path(),
            &extra,
            &[("DEIS_APP_USERS", value)],
            "is not the private key of",
        );
    }
    // Anything else is refused, by name.
    up_refuses(
        data.path(),
        &extra,
        &[("DEIS_ROUTER_NO_IO_URING", "maybe")],
        "invalid value 'maybe' for '--no-io-uring'",
    );
}

/// The uid a process runs as (`Uid:` of /proc/PID/status, real uid).
fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap()
}

/// `deis run` in `app`; returns whether it succeeded and what the command
/// printed (its standard output, then its errors).
fn run_in(home: &std::path::Path, app: &str, command: &str) -> (bool, String) {
    let out = support::up::deis(home, &["run", "-a", app, "--", command]);
    let errors = String::from_utf8_lossy(&out.stderr);
    let errors = errors.trim_start_matches(&format!("Running '{command}'...\n"));
    (
        out.status.success(),
        format!("{}{errors}", String::from_utf8_lossy(&out.stdout)),
    )
}

/// `--app-users`: each build runs as an operating-system user of its own,
/// and each slug app (its processes, `deis run`) as another, which can read
/// neither the platform's data nor another app's slug, and still serves and
/// writes its own files.
#[test]
fn apps_run_as_users_of_their_own() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: --app-users needs the platform to run as root");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (d, h) = (data.path(), home.path());
    let server = UpServer::start(d, None, &["--app-users"]);
    let first = &format!("owned-{}", std::process::id());
    let second = &format!("other-{}", std::process::id());
    let key = support::up::register_with_key(&server, h);
    // The first app's build says who it runs as and what it can read.
    let first_repo = tempfile::tempdir().unwrap();
    support::copy_dir(&support::sample_app("procfile"), first_repo.path());
    let hook = first_repo.path().join("bin/pre-compile");
    let secret = d.join("platform-secret");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"build uid $(id -u)\"\ncat {} 2>&1 | sed 's/^/secret: /'\n",
            secret.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pushed = support::up::push_dir(h, &key, first_repo.path(), first);
    let build_uid: u32 = pushed
        .lines()
        .find_map(|line| line.split("build uid ").nth(1))
        .and_then(|uid| uid.trim().parse().ok())
        .unwrap_or_else(|| panic!("{pushed}"));
    assert!(build_uid >= 1_895_825_408, "{build_uid}");
    assert!(
        pushed.contains(&format!("secret: cat: {}: Permission denied", secret.display())),
        "{pushed}"
    );
    let _second_repo = support::up::push_sample(h, &key, "procfile", second);
    // A failing build streams its output and says why, as without app users.
    let failing = &format!("failing-{}", std::process::id());
    let failing_repo = tempfile::tempdir().unwrap();
    support::copy_dir(&support::sample_app("failing"), failing_repo.path());
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "init"],
    ] {
        assert!(support::up::git(failing_repo.path(), h, &key, args).0);
    }
    let created = support::up::deis_in(h, failing_repo.path(), &["create", failing]);
    assert!(created.status.success(), "{created:?}");
    let (pushed, said) = support::up::git(failing_repo.path(), h, &key, &["push", "deis", "main"]);
    assert!(!pushed, "{said}");
    for expected in [
        "Failing on purpose",
        "compile failed with exit code 1",
        "Push rejected",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    // Nothing a build started outlives it.
    let build_processes: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}"))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) >= 1_895_825_408)
        })
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .collect();
    assert!(build_processes.is_empty(), "{build_processes:?}");

    // Both serve through the router, each as its own user.
    for app in [first, second] {
        let answer = support::up::http_get_host(server.http_port, &format!("{app}.localhost"), "/");
        assert_eq!(answer.map(|(status, _)| status), Some(200), "{app}");
    }
    let web_uid = |app: &str| {
        let processes = support::up::app_processes(app);
        assert_eq!(processes.len(), 1, "{app}: {processes:?}");
        uid_of(processes[0].0)
    };
    let (first_uid, second_uid) = (web_uid(first), web_uid(second));
    assert!(first_uid >= 1_879_048_192, "{first_uid}");
    assert!(
        second_uid >= 1_879_048_192 && second_uid != first_uid,
        "{second_uid}"
    );
    let (ran, said) = run_in(h, first, "id -u; id -G");
    assert!(ran, "{said}");
    assert_eq!(
        said.trim(),
        format!("{first_uid}\n{first_uid}"),
        "no other group either"
    );
    // On a terminal too (`deis run -t`).
    let (code, shown) = support::up::deis_on_terminal(
        h,
        &["run", "-t", "-a", first, "--", "bash"],
        "test -t 0 && echo \"uid-$(id -u)\"; exit 3\n",
    );
    assert_eq!(code, Some(3), "{shown}");
    assert!(shown.contains(&format!("uid-{first_uid}")), "{shown}");

    // The platform's files are out of reach.
    for path in [
        "platform-secret",
        "deis.sqlite3",
        "objects",
        "builder",
        "builder/repos",
        "builder/host-keys",
        "builder/build-users",
        "runtime/app-users",
    ] {
        let command = format!(
            "if [ -d {0} ]; then ls {0}; else cat {0}; fi",
            d.join(path).display()
        );
        let (ran, said) = run_in(h, first, &command);
        assert!(!ran && said.contains("Permission denied"), "{path}: {said}");
    }
    assert!(d.join("platform-secret").is_file() && d.join("deis.sqlite3").is_file());
    // So is the other app's slug, though its own is writable.
    let (ran, home_dir) = run_in(h, first, "echo $HOME && touch $HOME/written");
    assert!(ran, "{home_dir}");
    let (ran, said) = run_in(h, second, &format!("ls {}", home_dir.trim()));
    assert!(!ran && said.contains("Permission denied"), "{said}");

    // A daemon left by `deis run` dies with its app.
    // (Given a moment to leave the command's process group, which ends with it.)
    let (ran, said) = run_in(h, second, "setsid sleep 600 </dev/null >/dev/null 2>&1 & sleep 1");
    assert!(ran, "{said}");
    let sleeping = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
                    && std::fs::metadata(format!("/proc/{pid}"))
                        .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == second_uid)
            })
            .count()
    };
    assert_eq!(sleeping(), 1);
    ok(h, &["destroy", "-a", second, "--confirm", second]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sleeping() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon outlived its app"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.interrupt();
}
