//! The scheduler end to end against `deis-kube-fake`, an in-memory
//! Kubernetes API server (no real API server can run on the machines this
//! is built on): create → deploy → scale → restart → run → failed rollout
//! rolled back → destroy, with the requests it makes asserted.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use deis_core::ConfigData;
use deis_core::validate::Autoscale;
use deis_kube_fake::FakeKube;
use deis_kubernetes::{KubeScheduler, Settings, Timing};
use deis_scheduler::{
    BuildKind, BuildSpec, DeploySpec, ProcessSelector, ProcessState, ReleaseSpec, RunSpec, Scheduler,
    SchedulerError,
};

fn spec(version: i32, image: &str, web: i32) -> DeploySpec {
    DeploySpec {
        release: ReleaseSpec {
            app: "shop".to_owned(),
            version,
            summary: format!("alice deployed v{version}"),
            created: Utc::now(),
            build: BuildSpec {
                uuid: format!("build-{version}"),
                kind: BuildKind::Image,
                image: image.to_owned(),
                sha: String::new(),
                procfile: BTreeMap::from([("web".to_owned(), "serve".to_owned())]),
            },
            config: ConfigData::default(),
            env: BTreeMap::from([("DEIS_APP".to_owned(), "shop".to_owned())]),
        },
        structure: BTreeMap::from([("web".to_owned(), web)]),
        routable_type: Some("web".to_owned()),
        deploy_timeout: Duration::from_secs(10),
        autoscale: BTreeMap::new(),
    }
}

async fn scheduler(fake: &FakeKube) -> std::sync::Arc<KubeScheduler> {
    let config = kube::Config::new(fake.url().parse().expect("a URL"));
    let client = kube::Client::try_from(config).expect("a client");
    KubeScheduler::new(
        client,
        Settings::default(),
        Timing {
            poll: Duration::from_millis(20),
            run_timeout: Duration::from_secs(10),
        },
    )
}

/// The writes among the recorded requests: `METHOD path`.
fn writes(fake: &FakeKube) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn an_app_lives_its_whole_life_on_the_cluster() {
    let fake = FakeKube::start()
        .await
        .expect("a loopback port for the fake API server");
    let kube = scheduler(&fake).await;
    let mut endpoints = kube.endpoints();

    // Deploy: every object applied with server-side apply, then the
    // rollout waited for.
    let v2 = spec(2, "registry.example/shop:v2", 2);
    kube.deploy(&v2).await.expect("v2 rolls out");
    assert_eq!(
        writes(&fake),
        vec![
            "PATCH /api/v1/namespaces/shop",
            "PATCH /api/v1/namespaces/shop/secrets/shop-v2-env",
            "PATCH /apis/apps/v1/namespaces/shop/deployments/shop-web",
            "PATCH /api/v1/namespaces/shop/services/shop",
        ]
    );
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .all(
                |r| r.content_type.as_deref() == Some("application/apply-patch+yaml")
                    && r.query.contains("fieldManager=deis-controller")
            ),
        "server-side apply with our field manager"
    );
    let processes = kube.list("shop").await.expect("pods list");
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert!(
        processes
            .iter()
            .all(|p| p.state == ProcessState::Up && p.release == 2)
    );

    // The router's endpoints follow the Service's ready pods.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let current = endpoints.borrow_and_update().clone();
        if current.get("shop").map(Vec::len) == Some(2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "endpoints: {current:?}");
        let _ = tokio::time::timeout(Duration::from_millis(200), endpoints.changed()).await;
    }

    // The same desired state again: not a single write, whether deployed
    // alone or converged with every app.
    fake.clear_requests();
    kube.deploy(&v2).await.expect("a no-op deploy");
    let report = kube.converge(std::slice::from_ref(&v2)).await.expect("converges");
    assert_eq!((report.apps, report.changed_apps, report.writes), (1, 0, 0));
    assert_eq!(
        writes(&fake),
        Vec::<String>::new(),
        "an unchanged app is not rewritten"
    );

    // What a restarted controller asks first: which apps do not run as
    // specified. Five list requests answer it for every app, writing nothing.
    fake.clear_requests();
    let scaled = spec(2, "registry.example/shop:v2", 5);
    let other = DeploySpec {
        release: ReleaseSpec {
            app: "cart".to_owned(),
            ..v2.release.clone()
        },
        ..v2.clone()
    };
    let stale = kube
        .out_of_date(&[v2.clone(), scaled, other])
        .await
        .expect("compares");
    assert_eq!(stale, vec![1, 2], "the scaled app and the app never deployed");
    let requests = fake.requests();
    assert_eq!(writes(&fake), Vec::<String>::new());
    assert_eq!(requests.len(), 5, "{requests:?}");

    // Scale.
    kube.scale(&spec(2, "registry.example/shop:v2", 3))
        .await
        .expect("scales");
    assert_eq!(kube.list("shop").await.unwrap().len(), 3);

    // Autoscaling: an HPA while it is set, none once it is unset.
    let hpa = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/shop-web";
    let mut autoscaled = spec(2, "registry.example/shop:v2", 3);
    autoscaled.autoscale = BTreeMap::from([(
        "web".to_owned(),
        Autoscale {
            min: 2,
            max: 5,
            cpu_percent: 70,
        },
    )]);
    kube.scale(&autoscaled).await.expect("autoscaling on");
    let created = fake.object(hpa).expect("an HPA");
    assert_eq!(
        (
            created["spec"]["minReplicas"].as_i64(),
            created["spec"]["maxReplicas"].as_i64()
        ),
        (Some(2), Some(5))
    );
    kube.scale(&spec(2, "registry.example/shop:v2", 3))
        .await
        .expect("autoscaling off");
    assert!(fake.object(hpa).is_none(), "the HPA is gone");

    // Restart one type: its pods are replaced.
    let before: Vec<String> = kube
        .list("shop")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    let after = kube
        .restart("shop", &ProcessSelector::Type("web".to_owned()))
        .await
        .expect("restarts");
    let up: Vec<&str> = after
        .iter()
        .filter(|p| p.state == ProcessState::Up)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(up.len(), 3, "{after:?}");
    assert!(
        up.iter().all(|name| !before.iter().any(|b| b == name)),
        "{before:?} → {up:?}"
    );

    // A one-off command: a pod, its log, its exit code; the pod is gone after.
    fake.set_pod_log("shop", "hello from run\n");
    fake.set_pod_exit("shop", "shop-run", 0);
    let outcome = kube
        .run(&RunSpec {
            release: spec(2, "registry.example/shop:v2", 3).release,
            command: "echo hello from run".to_owned(),
            timeout: Duration::from_secs(10),
        })
        .await
        .expect("runs");
    assert_eq!(
        (outcome.exit_code, outcome.output.as_str()),
        (0, "hello from run\n")
    );
    assert!(
        fake.list("/api/v1/namespaces/shop/pods")
            .iter()
            .all(|p| p["metadata"]["labels"]["type"] != "run"),
        "the run pod is deleted"
    );
    assert!(
        writes(&fake)
            .iter()
            .any(|w| w.starts_with("POST /api/v1/namespaces/shop/pods"))
    );
    fake.set_pod_exit("shop", "shop-run", 3);
    let failed = kube
        .run(&RunSpec {
            release: spec(2, "registry.example/shop:v2", 3).release,
            command: "exit 3".to_owned(),
            timeout: Duration::from_secs(10),
        })
        .await
        .expect("runs");
    assert_eq!(failed.exit_code, 3, "the command's own status");

    // A release whose image cannot be pulled fails with the cluster's
    // reason, and the previous release is applied again.
    fake.fail_image("registry.example/shop:v3");
    let failed = kube.deploy(&spec(3, "registry.example/shop:v3", 3)).await;
    match failed {
        Err(SchedulerError::DeployFailed(message)) => assert!(message.contains("ErrImagePull"), "{message}"),
        other => panic!("a failed rollout, not {other:?}"),
    }
    let deployment = fake
        .object("/apis/apps/v1/namespaces/shop/deployments/shop-web")
        .expect("the Deployment");
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["version"], "v2",
        "rolled back to v2"
    );

    // A release that runs but never passes its readiness probe is given
    // its deploy timeout (failing probes while starting are normal), then
    // refused with what the cluster said.
    fake.never_ready("registry.example/shop:v4");
    let mut slow = spec(4, "registry.example/shop:v4", 3);
    slow.deploy_timeout = Duration::from_secs(1);
    match kube.deploy(&slow).await {
        Err(SchedulerError::DeployFailed(message)) => assert!(
            message.contains("did not become ready within 1 seconds") && message.contains("Unhealthy"),
            "{message}"
        ),
        other => panic!("a timed-out rollout, not {other:?}"),
    }

    // Tags: a node must carry them.
    let tags = BTreeMap::from([("disk".to_owned(), "ssd".to_owned())]);
    assert!(matches!(
        kube.check_tags(&tags).await,
        Err(SchedulerError::NoMatchingNodes(_))
    ));
    fake.add_node("node-1", &[("disk", "ssd")]);
    kube.check_tags(&tags).await.expect("a node carries the tags");

    // Destroy: the namespace and everything in it.
    fake.clear_requests();
    kube.destroy("shop").await.expect("destroys");
    assert_eq!(writes(&fake), vec!["DELETE /api/v1/namespaces/shop"]);
    assert!(fake.list("/apis/apps/v1/namespaces/shop/deployments").is_empty());
    assert!(kube.list("shop").await.unwrap().is_empty());
}

/// `deis run -t`: the client is attached to the pod's terminal while the
/// command runs (the fake serves `attach` over WebSocket; the test plays
/// the container), and the pod is deleted after.
#[tokio::test]
async fn an_interactive_run_is_attached_to_the_pods_terminal() {
    use deis_kube_fake::AttachInput;
    use deis_scheduler::{RunInput, RunIo, RunOutput, TtySize};

    let fake = FakeKube::start().await.expect("the fake starts");
    fake.add_namespace("shop");
    let kube = scheduler(&fake).await;
    let (output, mut screen) = tokio::sync::mpsc::channel(16);
    let (keys, input) = tokio::sync::mpsc::channel(16);
    let interactive = RunSpec {
        release: spec(2, "registry.example/shop:v2", 1).release,
        command: "bash".to_owned(),
        timeout: Duration::from_secs(10),
    };
    let run = kube.run_attached(
        &interactive,
        RunIo {
            output,
            input: Some(input),
            tty: Some(TtySize { cols: 120, rows: 40 }),
        },
    );
    let container = async {
        let pod = loop {
            let pods = fake.list("/api/v1/namespaces/shop/pods");
            if let Some(pod) = pods.iter().find(|p| p["status"]["phase"] == "Running") {
                break pod.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            (&c["stdin"], &c["stdinOnce"], &c["tty"]),
            (
                &serde_json::json!(true),
                &serde_json::json!(true),
                &serde_json::json!(true)
            )
        );
        let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        let mut attached = tokio::time::timeout(Duration::from_secs(5), fake.attachment("shop", &name))
            .await
            .expect("the client attaches");
        // The client's terminal size first, then what it types.
        assert_eq!(
            attached.next().await,
            Some(AttachInput::Resize {
                width: 120,
                height: 40
            })
        );
        attached.write(b"$ ");
        keys.send(RunInput::Stdin(b"echo hi\r".to_vec())).await.unwrap();
        assert_eq!(
            attached.next().await,
            Some(AttachInput::Stdin(b"echo hi\r".to_vec()))
        );
        attached.write(b"echo hi\r\nhi\r\n$ ");
        keys.send(RunInput::Resize { cols: 80, rows: 24 }).await.unwrap();
        assert_eq!(
            attached.next().await,
            Some(AttachInput::Resize {
                width: 80,
                height: 24
            })
        );
        keys.send(RunInput::Stdin(b"exit 3\r".to_vec())).await.unwrap();
        assert_eq!(
            attached.next().await,
            Some(AttachInput::Stdin(b"exit 3\r".to_vec()))
        );
        attached.write(b"exit 3\r\n");
        attached.exit(3);
        keys
    };
    let (exit_code, _keys) = tokio::join!(run, container);
    assert_eq!(exit_code.expect("the run ends"), 3, "the command's own status");
    let mut shown = Vec::new();
    while let Ok(RunOutput::Stdout(bytes)) = screen.try_recv() {
        shown.extend(bytes);
    }
    assert_eq!(String::from_utf8_lossy(&shown), "$ echo hi\r\nhi\r\n$ exit 3\r\n");
    assert!(
        fake.list("/api/v1/namespaces/shop/pods").is_empty(),
        "the run pod is deleted"
    );
    let attach = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/attach"))
        .expect("an attach request");
    assert!(
        attach.query.contains("tty=true") && attach.query.contains("stdin=true"),
        "{attach:?}"
    );
}
