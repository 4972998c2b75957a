//! `git push` to the builder with the system's git and OpenSSH client:
//! builds with the built-in buildpacks, authorization by role, refusals,
//! failed builds, one push per app, custom buildpacks, the build cache, the
//! size limit, `git clone`, and connections that never log in.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use deis_proto::v2 as pb;
use deis_scheduler::RecordedCall;
use deis_testkit::authed;
use support::{PushPlatform, buildpack_repo, sample_app};

fn web_structure() -> std::collections::BTreeMap<String, i32> {
    [("web".to_string(), 1)].into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn builtin_buildpacks_build_and_release_each_sample_app() {
    let p = PushPlatform::start().await;
    let alice = p.user("alice").await;
    for (app, sample, web) in [
        ("py", "python", "app.py"),
        ("js", "node", "npm start"),
        ("site", "static", "http.server"),
        ("bin", "procfile", "bin/serve"),
    ] {
        p.create_app(&alice, app).await;
        let repo = alice.repo_from(&sample_app(sample));
        let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), app, "main"));
        assert!(ok, "pushing the {sample} app failed:\n{output}");
        assert!(output.contains(&format!("Done, {app}:v2 deployed")), "{output}");
        assert!(
            output.contains(&format!("http://{app}.localhost:8080")),
            "{output}"
        );
        assert!(!output.contains("remote: remote:"), "{output}");

        let builds = p.builds(&alice, app).await;
        assert_eq!(builds.len(), 1, "{sample}");
        let procfile = &builds[0].procfile;
        assert!(
            procfile.get("web").is_some_and(|c| c.contains(web)),
            "{sample}: {procfile:?}"
        );
        assert_eq!(builds[0].sha.len(), 40);
        assert!(builds[0].image.ends_with("/push/slug.tgz"), "{}", builds[0].image);
        let releases = p.releases(&alice, app).await;
        assert_eq!(
            releases[0].summary,
            format!("alice deployed {}", &builds[0].sha[..7])
        );
        assert!(
            p.platform
                .scheduler
                .calls_for(app)
                .contains(&RecordedCall::Deploy {
                    app: app.into(),
                    version: 2,
                    structure: web_structure()
                })
        );
        // The source and the slug are in object storage, Deis's layout.
        let prefix = format!("home/{app}:git-{}", &builds[0].sha[..8]);
        assert!(p.objects.exists(&format!("{prefix}/tar")).await.unwrap());
        assert!(
            p.objects
                .exists(&format!("{prefix}/push/slug.tgz"))
                .await
                .unwrap()
        );
        assert!(
            p.objects
                .exists(&format!("{prefix}/push/Procfile"))
                .await
                .unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_and_roles_decide_who_may_push() {
    let p = PushPlatform::start().await;
    let owner = p.user("owner").await;
    let friend = p.user("friend").await;
    let other = p.user("other").await;
    p.create_app(&owner, "shared").await;
    let mut perms = p.clients.perms.clone();
    perms
        .grant_app_perm(authed(
            &owner.token,
            pb::GrantAppPermRequest {
                app: "shared".into(),
                username: "friend".into(),
            },
        ))
        .await
        .unwrap();
    let repo = owner.repo_from(&sample_app("procfile"));

    // A key nobody registered cannot even log in.
    let unknown = p.stranger_key();
    let (ok, output) = tokio::task::block_in_place(|| unknown.push(repo.path(), "shared", "main"));
    assert!(!ok && output.contains("Permission denied"), "{output}");
    // A known user without a role on the app is refused before git runs.
    let (ok, output) = tokio::task::block_in_place(|| other.push(repo.path(), "shared", "main"));
    assert!(!ok && output.contains("other may not access shared"), "{output}");
    // An app that does not exist.
    let (ok, output) = tokio::task::block_in_place(|| owner.push(repo.path(), "missing", "main"));
    assert!(!ok && output.contains("App missing does not exist"), "{output}");
    // A collaborator may push.
    let (ok, output) = tokio::task::block_in_place(|| friend.push(repo.path(), "shared", "main"));
    assert!(ok, "{output}");
    assert_eq!(
        p.releases(&owner, "shared").await[0].summary.split(' ').next(),
        Some("friend")
    );
    assert!(p.builder.ssh_addr.ip().is_loopback());

    // Only git's two commands are accepted, never through a shell.
    for command in [
        "ls -la",
        "rm -rf /",
        "git-receive-pack '../etc.git'",
        "git-upload-pack 'a/../../b.git'",
        "echo hi; id",
    ] {
        let out = tokio::task::block_in_place(|| owner.ssh(command));
        assert!(!out.status.success(), "{command} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("refused:") && stderr.trim().lines().count() == 1,
            "{command}: {stderr}"
        );
    }

    // What was pushed can be cloned back by anyone with access.
    let clone_dir = tempfile::tempdir().unwrap();
    let out = tokio::task::block_in_place(|| {
        friend.git(
            clone_dir.path(),
            &["clone", "-q", &friend.remote("shared"), "copy"],
        )
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let original = std::fs::read(sample_app("procfile").join("Procfile")).unwrap();
    assert_eq!(
        std::fs::read(clone_dir.path().join("copy/Procfile")).unwrap(),
        original
    );
    let out = tokio::task::block_in_place(|| {
        other.git(
            clone_dir.path(),
            &["clone", "-q", &other.remote("shared"), "nope"],
        )
    });
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_build_rejects_the_push_and_changes_nothing() {
    let p = PushPlatform::start().await;
    let alice = p.user("alice").await;
    p.create_app(&alice, "broken").await;
    let failing = buildpack_repo(
        "echo 'compiling...'; echo 'boom: missing dependency' >&2; exit 1",
        "true",
    );
    p.set_config(
        &alice,
        "broken",
        "BUILDPACK_URL",
        &format!("file://{}", failing.path().display()),
    )
    .await;
    let releases_before = p.releases(&alice, "broken").await.len();
    let repo = alice.repo_from(&sample_app("procfile"));
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "broken", "main"));
    assert!(!ok, "{output}");
    assert!(
        output.contains("boom: missing dependency"),
        "the build log streams to the pusher:\n{output}"
    );
    assert!(output.contains("pre-receive hook declined"), "{output}");
    assert_eq!(
        p.releases(&alice, "broken").await.len(),
        releases_before,
        "no release"
    );
    let out = tokio::task::block_in_place(|| alice.git(repo.path(), &["ls-remote", &alice.remote("broken")]));
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no ref moved"
    );

    // A repository no buildpack detects, and one with a Dockerfile.
    p.create_app(&alice, "plain").await;
    let nothing = tempfile::tempdir().unwrap();
    std::fs::write(nothing.path().join("README"), "just text\n").unwrap();
    let repo = alice.repo_from(nothing.path());
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "plain", "main"));
    assert!(!ok && output.contains("Unable to select a buildpack"), "{output}");
    std::fs::write(repo.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let _ = alice.git(repo.path(), &["add", "-A"]);
    let _ = alice.git(repo.path(), &["commit", "-q", "-m", "docker"]);
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "plain", "main"));
    assert!(!ok && output.contains("Dockerfile"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_push_per_app_while_apps_push_in_parallel() {
    let p = PushPlatform::start().await;
    let alice = p.user("alice").await;
    let slow = buildpack_repo("echo building slowly; sleep 3", "sleep 1000");
    for app in ["one", "two"] {
        p.create_app(&alice, app).await;
        p.set_config(
            &alice,
            app,
            "BUILDPACK_URL",
            &format!("file://{}", slow.path().display()),
        )
        .await;
    }
    let repo = alice.repo_from(&sample_app("procfile"));
    let started = Instant::now();
    let (first, second, same) = std::thread::scope(|s| {
        let first = s.spawn(|| alice.push(repo.path(), "one", "main"));
        let second = s.spawn(|| alice.push(repo.path(), "two", "main"));
        std::thread::sleep(Duration::from_millis(1500));
        let same = alice.push(repo.path(), "one", "main");
        (first.join().unwrap(), second.join().unwrap(), same)
    });
    assert!(first.0, "{}", first.1);
    assert!(second.0, "{}", second.1);
    assert!(
        !same.0 && same.1.contains("Another git push is ongoing"),
        "{}",
        same.1
    );
    // Two 3-second builds of different apps overlapped.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "builds of different apps ran one after the other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_buildpack_cache_branches_and_size_limit() {
    let p = PushPlatform::start_with(|config| {
        config.max_push_bytes = 512 * 1024;
        // The first build takes over 3 s: a logged-in session outlives
        // the login grace.
        config.ssh_login.grace = Duration::from_secs(1);
    })
    .await;
    let alice = p.user("alice").await;
    p.create_app(&alice, "cached").await;
    // Slow without the cache marker, fast with it.
    let pack = buildpack_repo(
        "echo '-----> Custom buildpack at work'\n\
         if [ -f \"$2/warm\" ]; then echo '       cache hit'; else sleep 3; touch \"$2/warm\"; fi",
        "sleep 1000",
    );
    p.set_config(
        &alice,
        "cached",
        "BUILDPACK_URL",
        &format!("file://{}", pack.path().display()),
    )
    .await;
    let repo = alice.repo_from(&sample_app("procfile"));
    let timed = |repo: &std::path::Path| {
        let start = Instant::now();
        let result = alice.push(repo, "cached", "main");
        (result, start.elapsed())
    };
    let ((ok, output), first) = tokio::task::block_in_place(|| timed(repo.path()));
    assert!(ok && output.contains("Custom buildpack at work"), "{output}");
    let _ = alice.git(repo.path(), &["commit", "-q", "--allow-empty", "-m", "again"]);
    let ((ok, output), second) = tokio::task::block_in_place(|| timed(repo.path()));
    assert!(ok && output.contains("cache hit"), "{output}");
    assert!(
        second + Duration::from_secs(2) < first,
        "cached build {second:?} vs first {first:?}"
    );
    assert!(p.objects.exists("home/cached/cache/cache.tgz").await.unwrap());

    // DEIS_DISABLE_CACHE turns the cache off and deletes it.
    p.set_config(&alice, "cached", "DEIS_DISABLE_CACHE", "1").await;
    let _ = alice.git(repo.path(), &["commit", "-q", "--allow-empty", "-m", "no cache"]);
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "cached", "main"));
    assert!(ok && !output.contains("cache hit"), "{output}");
    assert!(!p.objects.exists("home/cached/cache/cache.tgz").await.unwrap());

    // Other branches are accepted but not deployed.
    let releases = p.releases(&alice, "cached").await.len();
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "cached", "main:feature"));
    assert!(ok && output.contains("only main or master deploy"), "{output}");
    assert_eq!(p.releases(&alice, "cached").await.len(), releases);

    // Over the size limit: refused with a clear message.
    // Random bytes: git cannot compress them below the limit.
    let mut big = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open("/dev/urandom").unwrap(), 2_000_000),
        &mut big,
    )
    .unwrap();
    std::fs::write(repo.path().join("blob.bin"), big).unwrap();
    let _ = alice.git(repo.path(), &["add", "-A"]);
    let _ = alice.git(repo.path(), &["commit", "-q", "-m", "big"]);
    let (ok, output) = tokio::task::block_in_place(|| alice.push(repo.path(), "cached", "main"));
    assert!(!ok && output.contains("maximum allowed size"), "{output}");
}

/// Reads what the server sends until it closes the connection.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    // An error (reset) counts as closed too.
    let _ = stream.read_to_end(&mut received);
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_that_do_not_log_in_are_closed_after_the_login_grace() {
    let grace = Duration::from_secs(1);
    let p = PushPlatform::start_with(|config| {
        config.ssh_login.grace = grace;
        config.ssh_login.max_pending = 2;
    })
    .await;
    let owner = p.user("owner").await;
    let addr = p.builder.ssh_addr;
    tokio::task::block_in_place(|| {
        let connect = || {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            stream
        };
        // Two clients take both login slots: one sends nothing, one stops
        // after its identification line.
        let started = Instant::now();
        let mut silent = connect();
        let mut stalled = connect();
        stalled.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
        // A third waits in the backlog, unanswered, while they hold them.
        let mut third = connect();
        third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut byte = [0u8; 1];
        let early = third.read(&mut byte);
        assert!(
            early.is_err() && started.elapsed() < grace,
            "a third connection was served while two were logging in: {early:?}"
        );

        // Both are closed once the grace is up, after the server's banner.
        for stream in [&mut silent, &mut stalled] {
            let received = read_until_closed(stream);
            assert!(received.starts_with(b"SSH-2.0-deis-builder\r\n"), "{received:?}");
        }
        let closed_after = started.elapsed();
        assert!(
            closed_after >= grace && closed_after < grace * 5,
            "closed after {closed_after:?}"
        );
        // Then the third is served, and closed in its turn.
        third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let received = read_until_closed(&mut third);
        assert!(received.starts_with(b"SSH-2.0-deis-builder\r\n"), "{received:?}");
        assert!(
            started.elapsed() >= grace * 2,
            "closed after {:?}",
            started.elapsed()
        );
    });

    // A client that logs in is served as before.
    let out = tokio::task::block_in_place(|| owner.ssh("ls"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("refused:"), "{stderr}");
}
