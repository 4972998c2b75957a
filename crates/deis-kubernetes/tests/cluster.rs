//! Against a real cluster, opt-in: no Kubernetes API server can run on the
//! machines the rest of the tests run on, so this is `#[ignore]`d there.
//!
//!     KUBECONFIG=~/.kube/config cargo test -p deis-kubernetes --test cluster -- --ignored
//!
//! It deploys a public image as app `deis-cluster-test` (a namespace of
//! that name is created and deleted), scales it, lists its pods, runs a
//! one-off command, and destroys it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use deis_core::ConfigData;
use deis_kubernetes::{KubeScheduler, Settings, Timing};
use deis_scheduler::{BuildKind, BuildSpec, DeploySpec, ProcessState, ReleaseSpec, RunSpec, Scheduler};

const APP: &str = "deis-cluster-test";

fn spec(replicas: i32) -> DeploySpec {
    DeploySpec {
        release: ReleaseSpec {
            app: APP.to_owned(),
            version: 2,
            summary: "cluster test".to_owned(),
            created: Utc::now(),
            build: BuildSpec {
                uuid: "cluster-test".to_owned(),
                kind: BuildKind::Image,
                image: "docker.io/library/busybox:1.37".to_owned(),
                sha: String::new(),
                procfile: BTreeMap::from([(
                    "web".to_owned(),
                    "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && httpd -f -p $PORT -h /tmp/www"
                        .to_owned(),
                )]),
            },
            config: ConfigData::default(),
            env: BTreeMap::from([("PORT".to_owned(), "8080".to_owned())]),
        },
        structure: BTreeMap::from([("web".to_owned(), replicas)]),
        routable_type: Some("web".to_owned()),
        deploy_timeout: Duration::from_secs(180),
        autoscale: BTreeMap::new(),
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: KUBECONFIG=... cargo test -p deis-kubernetes --test cluster -- --ignored"]
async fn an_app_on_a_real_cluster() {
    let client = kube::Client::try_default()
        .await
        .expect("a cluster from KUBECONFIG");
    let kube = KubeScheduler::new(client, Settings::default(), Timing::default());
    kube.deploy(&spec(1)).await.expect("deploys");
    kube.scale(&spec(2)).await.expect("scales");
    let processes = kube.list(APP).await.expect("lists");
    assert_eq!(
        processes.iter().filter(|p| p.state == ProcessState::Up).count(),
        2,
        "{processes:?}"
    );
    let outcome = kube
        .run(&RunSpec {
            release: spec(2).release,
            command: "echo hello".to_owned(),
            timeout: Duration::from_secs(120),
        })
        .await
        .expect("runs");
    assert_eq!((outcome.exit_code, outcome.output.trim()), (0, "hello"));
    kube.destroy(APP).await.expect("destroys");
}
