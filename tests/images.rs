//! Image apps in `deis-workflow up`, with the real tools: a `git push` of
//! a repository with a Dockerfile is built by buildah, pushed to the
//! platform's registry as `<app>:git-<sha8>`, run by podman and answered
//! through the edge router; `deis pull` of that image into a second app
//! (with `deis registry:set` credentials, the image being private) copies
//! it with skopeo as `<app>:v<N>` and deploys it; `deis run` runs a one-off
//! container of it.
//!
//! The image is `FROM scratch` plus Debian's static busybox (no public
//! registry is reachable for base images); `buildtools/test` downloads it
//! and sets `DEIS_TEST_BUSYBOX`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::up::{UpServer, deis, deis_in, deis_on_terminal, git, http_get_host, ok, register_with_key};

fn busybox() -> PathBuf {
    let path = PathBuf::from(std::env::var("DEIS_TEST_BUSYBOX").expect(
        "DEIS_TEST_BUSYBOX is not set: run buildtools/test, which downloads Debian's busybox-static",
    ));
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Waits until `host` answers 200 with `text` through the router.
fn answers(port: u16, host: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = http_get_host(port, host, "/");
        if let Some((200, body)) = &got
            && body.contains(text)
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{host} never answered {text:?}; last: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn podman_containers(data: &Path) -> String {
    let storage = data.join("runtime/containers");
    let out = Command::new("podman")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(deis_images::run_root(&storage))
        .args(["--storage-driver", "vfs", "ps", "--format", "{{.Names}}"])
        .output()
        .expect("podman is needed: run buildtools/test, it installs it");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_dockerfile_app_deploys_through_git_push_and_deis_pull_promotes_its_image() {
    let root = tempfile::tempdir().unwrap();
    // A data directory as long as one under a home directory: podman's run
    // root must not be derived from it (containers/storage refuses > 50).
    let data = root.path().join("home/someone/.local/share/deis-workflow");
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = UpServer::start(&data, None, &[]);
    let key = register_with_key(&server, home);
    let token = ok(home, &["auth:token"]).trim().to_owned();

    // A repository with a Dockerfile at its root.
    let repo = tempfile::tempdir().unwrap();
    support::copy_dir(&support::sample_app("dockerfile"), repo.path());
    std::fs::create_dir_all(repo.path().join("bin")).unwrap();
    std::fs::copy(busybox(), repo.path().join("bin/busybox")).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "init"],
    ] {
        assert!(git(repo.path(), home, &key, args).0);
    }
    let out = deis_in(home, repo.path(), &["create", "dock"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The app's config reaches the build as arguments when asked to.
    ok(
        home,
        &[
            "config:set",
            "GREETING=Howdy",
            "DEIS_DOCKER_BUILD_ARGS_ENABLED=1",
            "-a",
            "dock",
        ],
    );
    let (pushed, output) = git(repo.path(), home, &key, &["push", "deis", "main"]);
    assert!(pushed, "{output}");
    assert!(
        output.contains("Building the Dockerfile with buildah"),
        "{output}"
    );
    assert!(output.contains("Done, dock:v3 deployed"), "{output}");
    let sha = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let image = format!("dock:git-{}", &sha.trim()[..8]);
    assert!(output.contains(&format!("Pushed {image}@sha256:")), "{output}");

    // podman runs it as the `cmd` type (a Dockerfile app's default), on the
    // port the image exposes, behind the router.
    answers(server.http_port, "dock.localhost", "Howdy from a Dockerfile");
    let ps = ok(home, &["ps", "-a", "dock"]);
    assert!(ps.contains("cmd.1") || ps.contains("dock-cmd-1"), "{ps}");
    let creds = format!("alice:{token}");
    let tags = |app: &str| {
        let out = Command::new("skopeo")
            .args(["list-tags", "--tls-verify=false", "--creds", &creds])
            .arg(format!("docker://{}/{app}", server.registry_addr))
            .output()
            .expect("skopeo is needed: run buildtools/test, it installs it");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(tags("dock").contains(&image[5..]), "{}", tags("dock"));
    let logs = ok(home, &["logs", "-a", "dock"]);
    assert!(
        logs.contains("serving on 8000"),
        "the container's output is the app's log: {logs}"
    );

    // `deis pull` of the private image into another app: refused without
    // credentials, with a message that says why...
    ok(home, &["create", "promoted", "--no-remote"]);
    let source = format!("{}/{image}", server.registry_addr);
    let refused = deis(home, &["pull", &source, "-a", "promoted"]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("Cannot pull the image"), "{message}");
    // ...and deployed with them (Deis requires PORT with registry credentials).
    ok(home, &["config:set", "PORT=8000", "-a", "promoted"]);
    ok(
        home,
        &[
            "registry:set",
            "username=alice",
            &format!("password={token}"),
            "-a",
            "promoted",
        ],
    );
    // This time over REST, as Deis's tooling calls it: `POST builds`.
    let body = serde_json::json!({ "image": source }).to_string();
    let built = support::rest::curl(
        server.url.trim_end_matches('/'),
        "POST",
        "/v2/apps/promoted/builds",
        Some(&token),
        Some(&body),
    );
    assert_eq!(built.status, 201, "{}", built.body);
    let build = built.json();
    // The image is copied into the app's own repository as `<app>:v<N>`.
    assert_eq!(
        (build["app"].as_str(), build["image"].as_str()),
        (Some("promoted"), Some("promoted:v4")),
        "{build}"
    );
    answers(server.http_port, "promoted.localhost", "Howdy from a Dockerfile");
    assert!(
        tags("promoted").contains("\"v4\""),
        "copied into the app's own repository: {}",
        tags("promoted")
    );

    // `deis run` runs a one-off command in a new container of the release,
    // with the app's config, and exits with the command's status.
    let out = deis(
        home,
        &[
            "run",
            "-a",
            "promoted",
            "--",
            "cat /www/index.html; echo port=$PORT",
        ],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("Howdy from a Dockerfile") && printed.contains("port=8000"),
        "{printed}"
    );
    let failed = deis(home, &["run", "-a", "promoted", "--", "exit 3"]);
    assert_eq!(
        failed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );

    // `deis run -t` gives the container a terminal and attaches the
    // caller's to it: what is typed reaches the command, which sees a
    // terminal, and its exit status becomes deis's.
    let (code, shown) = deis_on_terminal(
        home,
        &["run", "-t", "-a", "promoted", "--", "sh"],
        "test -t 0 && echo \"terminal-$((40+2))\"; exit 7\n",
    );
    assert_eq!(code, Some(7), "{shown}");
    assert!(shown.contains("terminal-42"), "{shown}");

    // A scale-up runs a second container beside the first.
    ok(home, &["ps:scale", "cmd=2", "-a", "promoted"]);
    let running = podman_containers(&data);
    assert_eq!(
        running
            .lines()
            .filter(|n| n.starts_with("deis-promoted-cmd-"))
            .count(),
        2,
        "{running}"
    );

    // Destroying an app stops its containers.
    ok(home, &["apps:destroy", "-a", "dock", "--confirm=dock"]);
    let running = podman_containers(&data);
    assert!(!running.contains("deis-dock-"), "{running}");
    server.interrupt();
    let running = podman_containers(&data);
    assert!(
        running.trim().is_empty(),
        "a clean stop leaves no container: {running}"
    );
}
