//! The fake API server driven by kube-rs, as the Kubernetes scheduler will drive it.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use deis_kube_fake::FakeKube;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;

const MANAGER: &str = "deis-scheduler";

async fn start() -> Result<(FakeKube, Client)> {
    let fake = FakeKube::start()
        .await
        .expect("a loopback port for the fake API server");
    let client = Client::try_from(Config::new(fake.url().parse()?))?;
    Ok((fake, client))
}

/// Polls `f` every 10 ms until it returns `Some`, for at most 10 s.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

async fn apply_namespace(client: &Client, name: &str) -> Result<Namespace> {
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"heritage": "deis"}},
    }))?;
    Ok(Api::<Namespace>::all(client.clone())
        .patch(name, &apply(), &Patch::Apply(&ns))
        .await?)
}

fn deployment(ns: &str, name: &str, image: &str, replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "heritage": "deis"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name, "heritage": "deis"}},
                "spec": {"containers": [{
                    "name": name, "image": image,
                    "ports": [{"name": "http", "containerPort": 5000, "protocol": "TCP"}],
                    "env": [{"name": "PORT", "value": "5000"}],
                }]},
            },
        },
    }))?)
}

async fn apply_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    image: &str,
    replicas: i32,
) -> Result<Deployment> {
    let d = deployment(ns, name, image, replicas)?;
    Ok(Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &apply(), &Patch::Apply(&d))
        .await?)
}

/// Waits until the Deployment has rolled out completely (the way `kubectl rollout status` decides).
async fn wait_rolled_out(client: &Client, ns: &str, name: &str, replicas: i32) -> Result<Deployment> {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    wait_for(&format!("deployment {ns}/{name} to roll out"), || async {
        let d = api.get(name).await?;
        let (Some(status), Some(generation)) = (&d.status, d.metadata.generation) else {
            return Ok(None);
        };
        let progressed = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("NewReplicaSetAvailable"));
        let done = status.observed_generation == Some(generation)
            && status.updated_replicas.unwrap_or(0) == replicas
            && status.replicas.unwrap_or(0) == replicas
            && status.available_replicas.unwrap_or(0) == replicas
            && status.ready_replicas.unwrap_or(0) == replicas
            && status.unavailable_replicas.is_none()
            && progressed;
        Ok(done.then_some(d))
    })
    .await
}

fn api_error(e: &kube::Error) -> Option<(u16, &str)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.as_str())),
        _ => None,
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn server_side_apply_rolls_out_a_deployment() -> Result<()> {
    let (fake, client) = start().await?;
    let ns = apply_namespace(&client, "a").await?;
    assert_eq!(
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("heritage"))
            .map(String::as_str),
        Some("deis")
    );
    let created = apply_deployment(&client, "a", "a-web", "registry.local/a:v1", 2).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some(MANAGER) && m.operation.as_deref() == Some("Apply"))
    );

    let d = wait_rolled_out(&client, "a", "a-web", 2).await?;
    let available = d
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Available");
    assert_eq!(available.map(|c| c.status.as_str()), Some("True"));

    let pods = Api::<Pod>::namespaced(client.clone(), "a")
        .list(&ListParams::default().labels("app=a-web"))
        .await?;
    assert_eq!(pods.items.len(), 2);
    for p in &pods.items {
        assert!(ready(p), "pod {:?} is ready", p.metadata.name);
        let status = p.status.as_ref().context("pod status")?;
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.as_deref().is_some_and(|ip| ip.starts_with("10.")));
        assert!(
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("pod-template-hash"))
        );
        let owner = &p.metadata.owner_references.as_ref().context("owner")?[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("a-web-"));
    }
    let ips: std::collections::HashSet<_> = pods
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2, "pod IPs are unique");

    let rss = Api::<ReplicaSet>::namespaced(client.clone(), "a")
        .list(&ListParams::default())
        .await?;
    assert_eq!(rss.items.len(), 1);
    let rs = &rss.items[0];
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let hash = rs_name.strip_prefix("a-web-").context("rs name")?;
    assert_eq!(hash.len(), 10);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            .map(String::as_str),
        Some(hash)
    );
    assert_eq!(rs.status.as_ref().and_then(|s| s.ready_replicas), Some(2));

    // The same apply again is a no-op: no write, no new resource version, no watch event.
    let before = Api::<Deployment>::namespaced(client.clone(), "a")
        .get("a-web")
        .await?;
    let rv = fake.resource_version().to_string();
    let api = Api::<Deployment>::namespaced(client.clone(), "a");
    let events = tokio::spawn({
        let api = api.clone();
        async move {
            let stream = api.watch(&WatchParams::default().timeout(1), &rv).await?;
            stream.try_collect::<Vec<_>>().await.map_err(anyhow::Error::from)
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.clear_requests();
    let again = apply_deployment(&client, "a", "a-web", "registry.local/a:v1", 2).await?;
    assert_eq!(again.metadata.resource_version, before.metadata.resource_version);
    assert_eq!(again.metadata.generation, Some(1));
    let ns_again = apply_namespace(&client, "a").await?;
    assert_eq!(ns_again.metadata.resource_version, ns.metadata.resource_version);
    let events = events.await??;
    assert!(
        events.is_empty(),
        "a no-op apply sends no watch event: {events:?}"
    );
    let requests = fake.requests();
    let patch = requests
        .iter()
        .find(|r| r.method == "PATCH")
        .context("apply request")?;
    assert_eq!(patch.path, "/apis/apps/v1/namespaces/a/deployments/a-web");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(patch.query.contains("fieldManager=deis-scheduler") && patch.query.contains("force=true"));

    // Helpers for the benchmark's bookkeeping.
    assert!(
        fake.object("/apis/apps/v1/namespaces/a/deployments/a-web")
            .is_some()
    );
    assert_eq!(fake.list("/api/v1/namespaces/a/pods").len(), 2);
    assert_eq!(fake.list("/api/v1/pods").len(), 2);
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn scale_subresource_and_pod_replacement() -> Result<()> {
    let (fake, client) = start().await?;
    apply_namespace(&client, "s").await?;
    apply_deployment(&client, "s", "s-web", "img:v1", 1).await?;
    wait_rolled_out(&client, "s", "s-web", 1).await?;
    let api = Api::<Deployment>::namespaced(client.clone(), "s");

    let scale = api
        .patch_scale(
            "s-web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    let d = wait_rolled_out(&client, "s", "s-web", 3).await?;
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(d.metadata.generation, Some(2));
    let scale = api.get_scale("s-web").await?;
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("app=s-web")
    );

    // Deleting a pod of the ReplicaSet gets it replaced.
    let pods = Api::<Pod>::namespaced(client.clone(), "s");
    let victim = pods.list(&ListParams::default()).await?.items[0]
        .metadata
        .name
        .clone()
        .context("name")?;
    pods.delete(&victim, &DeleteParams::default()).await?;
    let names = wait_for("a replacement pod", || async {
        let items = pods.list(&ListParams::default()).await?.items;
        let names: Vec<String> = items.iter().filter_map(|p| p.metadata.name.clone()).collect();
        Ok((items.len() == 3 && !names.contains(&victim) && items.iter().all(ready)).then_some(names))
    })
    .await?;
    assert_eq!(names.len(), 3);

    // Scaling down with a merge patch of the Deployment itself.
    api.patch(
        "s-web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    wait_rolled_out(&client, "s", "s-web", 1).await?;
    wait_for("pods to scale down", || async {
        Ok((pods.list(&ListParams::default()).await?.items.len() == 1).then_some(()))
    })
    .await?;
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn template_change_rolls_to_a_new_replicaset_seen_by_a_watcher() -> Result<()> {
    let (fake, client) = start().await?;
    fake.set_start_delay(Duration::from_millis(20));
    apply_namespace(&client, "r").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "r");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch_task = tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default().labels("app=r-web")).boxed();
        while let Some(ev) = stream.next().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    apply_deployment(&client, "r", "r-web", "img:v1", 2).await?;
    let first = wait_rolled_out(&client, "r", "r-web", 2).await?;
    let d = apply_deployment(&client, "r", "r-web", "img:v2", 2).await?;
    assert_eq!(
        d.metadata.generation,
        Some(first.metadata.generation.unwrap_or(0) + 1)
    );
    wait_rolled_out(&client, "r", "r-web", 2).await?;

    let rss = Api::<ReplicaSet>::namespaced(client.clone(), "r")
        .list(&ListParams::default())
        .await?
        .items;
    assert_eq!(rss.len(), 2);
    let image = |rs: &ReplicaSet| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers[0].image.clone())
    };
    let replicas = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.replicas);
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .cloned()
    };
    for rs in &rss {
        match image(rs).flatten().as_deref() {
            Some("img:v1") => {
                assert_eq!(replicas(rs), Some(0));
                assert_eq!(revision(rs).as_deref(), Some("1"));
            }
            Some("img:v2") => {
                assert_eq!(replicas(rs), Some(2));
                assert_eq!(revision(rs).as_deref(), Some("2"));
            }
            other => bail!("unexpected image {other:?}"),
        }
    }
    let api = Api::<Pod>::namespaced(client.clone(), "r");
    let current = wait_for("old pods to go", || async {
        let items = api.list(&ListParams::default()).await?.items;
        let images: Vec<String> = items
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.containers[0].image.clone()))
            .collect();
        Ok((images.len() == 2 && images.iter().all(|i| i == "img:v2")).then_some(items))
    })
    .await?;

    // The watcher saw the v2 pods arrive and the v1 pods leave.
    let mut applied_v2 = std::collections::HashSet::new();
    let mut deleted_v1 = 0;
    let image_of = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while deleted_v1 < 2 || applied_v2.len() < 2 {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await?
            .context("watcher ended")??;
        match ev {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p)
                if image_of(&p) == "img:v2" && ready(&p) =>
            {
                applied_v2.insert(p.metadata.name.clone().unwrap_or_default());
            }
            watcher::Event::Delete(p) if image_of(&p) == "img:v1" => deleted_v1 += 1,
            _ => {}
        }
    }
    let current: std::collections::HashSet<String> =
        current.iter().filter_map(|p| p.metadata.name.clone()).collect();
    assert_eq!(applied_v2, current);
    watch_task.abort();
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn endpointslice_follows_the_service_pods() -> Result<()> {
    let (fake, client) = start().await?;
    apply_namespace(&client, "e").await?;
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "e-web", "namespace": "e"},
        "spec": {"selector": {"app": "e-web"}, "ports": [{"name": "http", "port": 80, "targetPort": 5000}]},
    }))?;
    let svc = Api::<Service>::namespaced(client.clone(), "e")
        .patch("e-web", &apply(), &Patch::Apply(&svc))
        .await?;
    let spec = svc.spec.context("service spec")?;
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));

    apply_deployment(&client, "e", "e-web", "img:v1", 2).await?;
    wait_rolled_out(&client, "e", "e-web", 2).await?;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "e");
    let lp = ListParams::default().labels("kubernetes.io/service-name=e-web");
    let slice_with = |n: usize| {
        let slices = slices.clone();
        let lp = lp.clone();
        async move {
            wait_for(&format!("{n} ready endpoints"), || async {
                let items = slices.list(&lp).await?.items;
                Ok(match items.as_slice() {
                    [s] if s.endpoints.len() == n
                        && s.endpoints
                            .iter()
                            .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)) =>
                    {
                        Some(s.clone())
                    }
                    _ => None,
                })
            })
            .await
        }
    };
    let slice = slice_with(2).await?;
    assert_eq!(slice.address_type, "IPv4");
    assert!(
        slice
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("e-web-") && n.len() == "e-web-".len() + 5)
    );
    let ports = slice.ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, Some(5000));
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    let pod_ips: std::collections::BTreeSet<String> = Api::<Pod>::namespaced(client.clone(), "e")
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    let slice_ips: std::collections::BTreeSet<String> =
        slice.endpoints.iter().flat_map(|e| e.addresses.clone()).collect();
    assert_eq!(pod_ips, slice_ips);

    apply_deployment(&client, "e", "e-web", "img:v1", 1).await?;
    slice_with(1).await?;
    apply_deployment(&client, "e", "e-web", "img:v1", 0).await?;
    let empty = wait_for("no endpoints", || async {
        let items = slices.list(&lp).await?.items;
        Ok(items.first().filter(|s| s.endpoints.is_empty()).cloned())
    })
    .await?;
    assert_eq!(
        empty.metadata.name, slice.metadata.name,
        "the same slice is updated"
    );

    // Deleting the Service deletes its EndpointSlice.
    Api::<Service>::namespaced(client.clone(), "e")
        .delete("e-web", &DeleteParams::default())
        .await?;
    assert!(slices.list(&ListParams::default()).await?.items.is_empty());
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it() -> Result<()> {
    let (fake, client) = start().await?;
    fake.set_start_delay(Duration::ZERO);
    apply_namespace(&client, "d").await?;
    apply_namespace(&client, "other").await?;
    apply_deployment(&client, "d", "d-web", "img:v1", 2).await?;
    apply_deployment(&client, "other", "other-web", "img:v1", 1).await?;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "env"}, "data": {"A": "1"}}))?;
    Api::<ConfigMap>::namespaced(client.clone(), "d")
        .create(&PostParams::default(), &cm)
        .await?;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"PASSWORD": "hunter2"}}),
    )?;
    let secret = Api::<Secret>::namespaced(client.clone(), "d")
        .create(&PostParams::default(), &secret)
        .await?;
    let data = secret.data.context("secret data")?;
    assert_eq!(
        data.get("PASSWORD").map(|b| b.0.as_slice()),
        Some(&b"hunter2"[..])
    );
    // With a zero start delay, everything has settled already.
    assert_eq!(fake.list("/api/v1/namespaces/d/pods").len(), 2);

    Api::<Namespace>::all(client.clone())
        .delete("d", &DeleteParams::background())
        .await?;
    for collection in [
        "/api/v1/namespaces/d/pods",
        "/api/v1/namespaces/d/configmaps",
        "/api/v1/namespaces/d/secrets",
        "/apis/apps/v1/namespaces/d/deployments",
        "/apis/apps/v1/namespaces/d/replicasets",
    ] {
        assert!(fake.list(collection).is_empty(), "{collection} is empty");
    }
    let err = Api::<Namespace>::all(client.clone())
        .get("d")
        .await
        .err()
        .context("namespace is gone")?;
    assert_eq!(api_error(&err), Some((404, "NotFound")));
    assert_eq!(
        fake.list("/api/v1/namespaces/other/pods").len(),
        1,
        "other namespaces are untouched"
    );

    // Deleting a Deployment deletes its ReplicaSets and pods.
    Api::<Deployment>::namespaced(client.clone(), "other")
        .delete("other-web", &DeleteParams::default())
        .await?;
    assert!(fake.list("/apis/apps/v1/namespaces/other/replicasets").is_empty());
    assert!(fake.list("/api/v1/namespaces/other/pods").is_empty());
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn failing_image_pull_is_reported_in_status_and_events() -> Result<()> {
    let (fake, client) = start().await?;
    fake.fail_image("registry.local/missing:v9");
    apply_namespace(&client, "f").await?;
    apply_deployment(&client, "f", "f-web", "registry.local/missing:v9", 1).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "f");
    let pod = wait_for("ErrImagePull", || async {
        let items = pods.list(&ListParams::default()).await?.items;
        Ok(items.into_iter().find(|p| {
            let reason = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone());
            matches!(reason.as_deref(), Some("ErrImagePull" | "ImagePullBackOff"))
        }))
    })
    .await?;
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert!(!ready(&pod));
    let name = pod.metadata.name.clone().context("pod name")?;
    let events = Api::<Event>::namespaced(client.clone(), "f")
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?
        .items;
    let failed = events
        .iter()
        .find(|e| {
            e.reason.as_deref() == Some("Failed")
                && e.type_.as_deref() == Some("Warning")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Failed to pull image \"registry.local/missing:v9\": "))
        })
        .context("a Failed event about the image")?;
    assert_eq!(failed.involved_object.kind.as_deref(), Some("Pod"));

    // Later it backs off.
    wait_for("ImagePullBackOff", || async {
        let p = pods.get(&name).await?;
        let reason = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
        Ok((reason.as_deref() == Some("ImagePullBackOff")).then_some(()))
    })
    .await?;

    // The Deployment never becomes available; logs are refused like the real server does.
    let d = Api::<Deployment>::namespaced(client.clone(), "f")
        .get("f-web")
        .await?;
    let status = d.status.context("status")?;
    assert_eq!(status.available_replicas, None);
    assert_eq!(status.unavailable_replicas, Some(1));
    let err = pods
        .logs(&name, &LogParams::default())
        .await
        .err()
        .context("no logs")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn never_ready_and_crash_looping_pods() -> Result<()> {
    let (fake, client) = start().await?;
    fake.never_ready("img:unhealthy");
    apply_namespace(&client, "n").await?;
    apply_deployment(&client, "n", "n-web", "img:unhealthy", 1).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "n");
    let pod = wait_for("a running pod", || async {
        let items = pods.list(&ListParams::default()).await?.items;
        Ok(items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")))
    })
    .await?;
    assert!(!ready(&pod));
    let events = Api::<Event>::namespaced(client.clone(), "n")
        .list(&ListParams::default())
        .await?
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy") && e.type_.as_deref() == Some("Warning"))
    );
    let d = Api::<Deployment>::namespaced(client.clone(), "n")
        .get("n-web")
        .await?;
    let available = d
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Available");
    assert_eq!(available.map(|c| c.status.as_str()), Some("False"));

    // A crashing container of a Deployment goes into CrashLoopBackOff with its exit code.
    apply_deployment(&client, "n", "n-worker", "img:v1", 1).await?;
    wait_rolled_out(&client, "n", "n-worker", 1).await?;
    fake.set_pod_exit("n", "n-worker", 137);
    let crashed = wait_for("CrashLoopBackOff", || async {
        let items = pods
            .list(&ListParams::default().labels("app=n-worker"))
            .await?
            .items;
        Ok(items.into_iter().find(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .is_some_and(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                })
        }))
    })
    .await?;
    let cs = &crashed
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()[0];
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        cs.last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code),
        Some(137)
    );
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn jobs_complete_or_fail_and_pods_have_logs() -> Result<()> {
    let (fake, client) = start().await?;
    apply_namespace(&client, "j").await?;
    fake.set_pod_log("j", "line 1\nline 2\nline 3\n");
    let job = |name: &str| -> Result<Job> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "img:v1", "command": ["true"]}]}}},
        }))?)
    };
    let jobs = Api::<Job>::namespaced(client.clone(), "j");
    jobs.create(&PostParams::default(), &job("ok")?).await?;
    fake.set_pod_exit("j", "bad", 3);
    jobs.create(&PostParams::default(), &job("bad")?).await?;
    let done = wait_for("job ok to complete", || async {
        let j = jobs.get("ok").await?;
        Ok((j.status.as_ref().and_then(|s| s.succeeded) == Some(1)).then_some(j))
    })
    .await?;
    let conds = done
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(conds.iter().any(|c| c.type_ == "Complete" && c.status == "True"));
    assert!(
        done.status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .is_some()
    );
    let failed = wait_for("job bad to fail", || async {
        let j = jobs.get("bad").await?;
        Ok((j.status.as_ref().and_then(|s| s.failed) == Some(1)).then_some(j))
    })
    .await?;
    let conds = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(conds.iter().any(|c| c.type_ == "Failed" && c.status == "True"));

    let pods = Api::<Pod>::namespaced(client.clone(), "j");
    let ok_pods = pods
        .list(&ListParams::default().labels("job-name=ok"))
        .await?
        .items;
    assert_eq!(ok_pods.len(), 1);
    let ok_pod = &ok_pods[0];
    assert!(
        ok_pod
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("ok-") && n.len() == 8)
    );
    assert_eq!(
        ok_pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    let bad_pod = &pods
        .list(&ListParams::default().labels("job-name=bad"))
        .await?
        .items[0];
    assert_eq!(
        bad_pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed")
    );
    let exit = bad_pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs[0].state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    assert_eq!(exit, Some(3));

    // Logs of a pod (a standalone one here, which keeps running).
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "j-run-1", "labels": {"type": "run"}},
        "spec": {"containers": [{"name": "j-run", "image": "img:v1"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    wait_for("the pod to run", || async {
        Ok(ready(&pods.get("j-run-1").await?).then_some(()))
    })
    .await?;
    assert_eq!(
        pods.logs("j-run-1", &LogParams::default()).await?,
        "line 1\nline 2\nline 3\n"
    );
    let tail = pods
        .logs(
            "j-run-1",
            &LogParams {
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await?;
    assert_eq!(tail, "line 3\n");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        pods.get("j-run-1").await?.status.and_then(|s| s.phase).as_deref(),
        Some("Running")
    );
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn errors_are_kubernetes_statuses() -> Result<()> {
    let (fake, client) = start().await?;
    apply_namespace(&client, "x").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "x");
    let err = cms.get("missing").await.err().context("404")?;
    assert_eq!(api_error(&err), Some((404, "NotFound")));
    if let kube::Error::Api(s) = &err {
        assert_eq!(s.message, "configmaps \"missing\" not found");
    }
    assert!(cms.get_opt("missing").await?.is_none());

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "env"}, "data": {"A": "1"}}))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let err = cms
        .create(&PostParams::default(), &cm)
        .await
        .err()
        .context("409")?;
    assert_eq!(api_error(&err), Some((409, "AlreadyExists")));

    let err = Api::<ConfigMap>::namespaced(client.clone(), "nope")
        .create(&PostParams::default(), &cm)
        .await
        .err()
        .context("missing namespace")?;
    assert_eq!(api_error(&err), Some((404, "NotFound")));

    // Replace with the current resource version works; with a stale one it conflicts.
    let mut newer = created.clone();
    newer.data = Some([("A".to_string(), "2".to_string())].into());
    let replaced = cms.replace("env", &PostParams::default(), &newer).await?;
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let err = cms
        .replace("env", &PostParams::default(), &newer)
        .await
        .err()
        .context("stale")?;
    assert_eq!(api_error(&err), Some((409, "Conflict")));

    // Malformed JSON is a 400 Status, and the server keeps serving.
    let request = http::Request::post("/api/v1/namespaces/x/configmaps")
        .header("content-type", "application/json")
        .body(b"{\"metadata\": {".to_vec())?;
    let err = client.request_text(request).await.err().context("400")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    let request = http::Request::patch("/api/v1/namespaces/x/configmaps/env")
        .header("content-type", "application/merge-patch+json")
        .body(b"[not json".to_vec())?;
    let err = client.request_text(request).await.err().context("400")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    let request = http::Request::patch("/api/v1/namespaces/x/configmaps/env?fieldManager=m")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"data:\n  A: '3'\n".to_vec())?;
    let err = client.request_text(request).await.err().context("yaml")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    let request = http::Request::get("/apis/example.com/v1/widgets").body(Vec::new())?;
    let err = client
        .request_text(request)
        .await
        .err()
        .context("unknown group")?;
    assert_eq!(api_error(&err), Some((404, "NotFound")));
    let request = http::Request::get("/api/v1/namespaces/x/widgets").body(Vec::new())?;
    let err = client
        .request_text(request)
        .await
        .err()
        .context("unknown resource")?;
    assert_eq!(api_error(&err), Some((404, "NotFound")));
    let request =
        http::Request::get("/api/v1/namespaces/x/configmaps?labelSelector=a%20in%20b").body(Vec::new())?;
    let err = client.request_text(request).await.err().context("bad selector")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    assert_eq!(cms.list(&ListParams::default()).await?.items.len(), 1);

    // A body of a shape the real server could not decode is a 400 as well.
    let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"}, "spec": 5});
    let request = http::Request::post("/apis/apps/v1/namespaces/x/deployments")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&bad)?)?;
    let err = client.request_text(request).await.err().context("bad shape")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    let request = http::Request::patch("/api/v1/namespaces/x/configmaps/env")
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::to_vec(&json!({"metadata": {"labels": {"a": 1}}}))?)?;
    let err = client.request_text(request).await.err().context("bad labels")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));

    // Apply needs a field manager.
    let err = cms
        .patch("env", &PatchParams::default(), &Patch::Apply(&cm))
        .await
        .err()
        .context("no manager")?;
    assert_eq!(api_error(&err), Some((400, "BadRequest")));
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn selectors_pages_discovery_and_watch_expiry() -> Result<()> {
    let (fake, client) = start().await?;
    apply_namespace(&client, "l").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "l");
    for (name, tier) in [("a", "web"), ("b", "worker"), ("c", "web"), ("d", "cron")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let names = |lp: ListParams| {
        let cms = cms.clone();
        async move {
            Ok::<_, anyhow::Error>(
                cms.list(&lp)
                    .await?
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(names(ListParams::default().labels("tier=web")).await?, ["a", "c"]);
    assert_eq!(
        names(ListParams::default().labels("tier!=web")).await?,
        ["b", "d"]
    );
    assert_eq!(
        names(ListParams::default().labels("tier in (worker,cron)")).await?,
        ["b", "d"]
    );
    assert_eq!(
        names(ListParams::default().labels("tier,tier notin (cron)")).await?,
        ["a", "b", "c"]
    );
    assert_eq!(
        names(ListParams::default().labels("missing")).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        names(ListParams::default().fields("metadata.name=c")).await?,
        ["c"]
    );
    let page = cms.list(&ListParams::default().limit(3)).await?;
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.context("continue token")?;
    assert_eq!(
        names(ListParams::default().limit(3).continue_token(&token)).await?,
        ["d"]
    );

    // Discovery and version.
    let version = client.apiserver_version().await?;
    assert_eq!(version.git_version, "v1.33.0");
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let apps = discovery.get("apps").context("apps group")?;
    assert!(
        apps.recommended_resources()
            .iter()
            .any(|(r, _)| r.plural == "deployments")
    );

    // A watch from a resource version older than the kept history gets 410 Expired.
    fake.set_watch_history_limit(2);
    for name in ["e", "f", "g"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let mut stream = cms.watch(&WatchParams::default(), "1").await?.boxed();
    match stream.try_next().await? {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => bail!("expected a 410 watch error, got {other:?}"),
    }
    // A watch from "0" starts with the current objects, then follows changes.
    let mut stream = cms
        .watch(&WatchParams::default().labels("tier=web"), "0")
        .await?
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..2 {
        if let Some(WatchEvent::Added(cm)) = stream.try_next().await? {
            seen.extend(cm.metadata.name);
        }
    }
    assert_eq!(seen, ["a", "c"]);
    // Relabelling an object out of the selection is a DELETED event for this watcher.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "cron"}}})),
    )
    .await?;
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await?? {
        Some(WatchEvent::Deleted(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("a")),
        other => bail!("expected DELETED, got {other:?}"),
    }
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn nodes_and_node_selectors() -> Result<()> {
    let (fake, client) = start().await?;
    fake.set_start_delay(Duration::ZERO);
    fake.add_node("node-1", &[("kubernetes.io/hostname", "node-1"), ("disk", "ssd")]);
    fake.add_node("node-2", &[("kubernetes.io/hostname", "node-2")]);
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&ListParams::default().labels("disk=ssd"))
        .await?;
    assert_eq!(nodes.items.len(), 1);
    apply_namespace(&client, "t").await?;
    let mut d = deployment("t", "t-web", "img:v1", 2)?;
    if let Some(pod_spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod_spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    }
    Api::<Deployment>::namespaced(client.clone(), "t")
        .patch("t-web", &apply(), &Patch::Apply(&d))
        .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "t")
        .list(&ListParams::default())
        .await?
        .items;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("node-1")
        );
        assert!(ready(p));
    }
    // A selector no node satisfies leaves the pods Pending and Unschedulable, until a node fits.
    if let Some(pod_spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod_spec.node_selector = Some([("gpu".to_string(), "yes".to_string())].into());
    }
    Api::<Deployment>::namespaced(client.clone(), "t")
        .patch("t-web", &apply(), &Patch::Apply(&d))
        .await?;
    let pending: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), "t")
        .list(&ListParams::default().fields("status.phase=Pending"))
        .await?
        .items;
    assert_eq!(pending.len(), 2);
    let events = Api::<Event>::namespaced(client.clone(), "t")
        .list(&ListParams::default())
        .await?
        .items;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedScheduling"))
    );
    fake.add_node("node-3", &[("gpu", "yes")]);
    let d = wait_rolled_out(&client, "t", "t-web", 2).await?;
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn streaming_list_watcher_and_apply_pruning() -> Result<()> {
    let (fake, client) = start().await?;
    fake.set_start_delay(Duration::ZERO);
    apply_namespace(&client, "w").await?;
    apply_deployment(&client, "w", "w-web", "img:v1", 2).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "w");
    let mut stream = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await?
            .context("stream ended")??
        {
            watcher::Event::InitApply(_) => initial += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, 2);
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/w/pods" && r.query.contains("sendInitialEvents=true"))
    );

    // Fields the manager stops applying are removed; fields set by others stay.
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "w");
    let cm = |data: serde_json::Value| -> Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data}),
        )?)
    };
    cms.patch("cfg", &apply(), &Patch::Apply(&cm(json!({"A": "1", "B": "2"}))?))
        .await?;
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"C": "3"}})),
    )
    .await?;
    let after = cms
        .patch("cfg", &apply(), &Patch::Apply(&cm(json!({"A": "1"}))?))
        .await?;
    let keys: Vec<String> = after.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["A", "C"]);
    fake.shutdown().await;
    Ok(())
}
