//! A deliberately small model of kube-controller-manager, the scheduler and the kubelet:
//! Deployment → ReplicaSet → Pod, Service → EndpointSlice, Job → Pod, and pod lifecycles.
//!
//! Everything runs under the store's lock: after every API write (synchronously, before the
//! response is sent) and whenever a pod timer is due (from the background task). Each pass
//! repeats until nothing changes, so with a zero start delay a whole rollout settles within the
//! request that caused it.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::json::{hash_hex, int_at, map_path, meta_mut, obj_mut, str_at};
use crate::resources::{
    DEPLOYMENTS, ENDPOINTSLICES, JOBS, NAMESPACES, NODES, PODS, REPLICASETS, SECRETS, SERVICES,
};
use crate::selector::LabelSelector;
use crate::store::{ObjKey, State, TimerAction, controller_ref, now_ts, owned_by, random_suffix};

const REVISION: &str = "deployment.kubernetes.io/revision";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Upper bound on reconcile passes per trigger, against a controller that never settles.
const MAX_PASSES: usize = 64;

fn phase(pod: &Value) -> &str {
    str_at(pod, "/status/phase")
}

fn is_terminated(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn has_condition(obj: &Value, ty: &str, status: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some(status)
            })
        })
}

fn is_ready(pod: &Value) -> bool {
    !is_terminated(pod) && has_condition(pod, "Ready", "True")
}

fn containers(pod: &Value) -> Vec<Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn container_names(pod: &Value) -> Vec<String> {
    containers(pod)
        .iter()
        .map(|c| str_at(c, "/name").to_string())
        .collect()
}

/// Sets a condition in `conditions`, keeping its timestamps when nothing about it changed (so
/// that recomputing a status is idempotent). Deployment-style conditions carry
/// `lastUpdateTime`; pod-style ones carry `lastProbeTime: null`.
fn set_condition(
    conds: &mut Vec<Value>,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    deployment_style: bool,
) {
    let now = now_ts();
    let pos = conds.iter().position(|c| str_at(c, "/type") == ty);
    if let Some(i) = pos {
        let c = &conds[i];
        if str_at(c, "/status") == status
            && str_at(c, "/reason") == reason
            && str_at(c, "/message") == message
        {
            return;
        }
    }
    let transition = match pos {
        Some(i) if str_at(&conds[i], "/status") == status => conds[i]
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(now)),
        _ => json!(now),
    };
    let mut c = Map::new();
    c.insert("type".into(), json!(ty));
    c.insert("status".into(), json!(status));
    if deployment_style {
        c.insert("lastUpdateTime".into(), json!(now));
    } else {
        c.insert("lastProbeTime".into(), Value::Null);
    }
    c.insert("lastTransitionTime".into(), transition);
    if !reason.is_empty() {
        c.insert("reason".into(), json!(reason));
    }
    if !message.is_empty() {
        c.insert("message".into(), json!(message));
    }
    match pos {
        Some(i) => conds[i] = Value::Object(c),
        None => conds.push(Value::Object(c)),
    }
}

fn conditions_of(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Inserts `key: n` unless `n` is 0 (the real API omits zero counts).
fn put_count(m: &mut Map<String, Value>, key: &str, n: i64) {
    if n != 0 {
        m.insert(key.into(), json!(n));
    }
}

/// Whether a pod name is `pattern` or `pattern-...`.
fn name_matches(name: &str, pattern: &str) -> bool {
    name == pattern
        || name
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Resolves a `maxUnavailable`/`maxSurge` style int-or-percent against `total`.
fn int_or_percent(v: Option<&Value>, total: i64, default_percent: i64, round_up: bool) -> i64 {
    let percent = match v {
        Some(Value::Number(n)) => return n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim_end_matches('%').parse::<i64>().unwrap_or(default_percent),
        _ => default_percent,
    };
    let x = total * percent;
    if round_up { (x + 99) / 100 } else { x / 100 }
}

impl State {
    /// Runs the controllers until nothing changes, firing due pod timers on the way.
    pub(crate) fn reconcile(&mut self) {
        for _ in 0..MAX_PASSES {
            let before = self.rv;
            self.fire_timers();
            // Only where something changed (writes mark their namespace).
            let all = std::mem::take(&mut self.dirty_all);
            let dirty = std::mem::take(&mut self.dirty);
            let scopes: Vec<Option<String>> = if all {
                vec![None]
            } else {
                dirty.into_iter().map(Some).collect()
            };
            for scope in &scopes {
                let ns = scope.as_deref();
                self.schedule_pods(ns);
                self.sync_jobs(ns);
                self.sync_deployments(ns);
                self.sync_replicasets(ns);
                self.sync_endpointslices(ns);
            }
            if self.rv == before {
                return;
            }
        }
        tracing::warn!("fake kube controllers did not settle after {MAX_PASSES} passes");
    }

    /// Fills in defaults the real API server would, on create and update. `stored` is the
    /// current object for an update.
    pub(crate) fn apply_defaults(&mut self, res: usize, obj: &mut Value, stored: Option<&Value>) {
        match res {
            NAMESPACES => {
                let name = str_at(obj, "/metadata/name").to_string();
                map_path(obj, &["metadata", "labels"])
                    .insert("kubernetes.io/metadata.name".into(), json!(name));
                let spec = obj_mut(obj, "spec");
                spec.entry("finalizers").or_insert(json!(["kubernetes"]));
                obj_mut(obj, "status").entry("phase").or_insert(json!("Active"));
            }
            PODS => {
                obj_mut(obj, "spec")
                    .entry("restartPolicy")
                    .or_insert(json!("Always"));
                if stored.is_none() {
                    let status = obj_mut(obj, "status");
                    status.entry("phase").or_insert(json!("Pending"));
                    status.entry("qosClass").or_insert(json!("BestEffort"));
                }
            }
            SERVICES => self.default_service(obj, stored),
            DEPLOYMENTS => {
                let spec = obj_mut(obj, "spec");
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("strategy").or_insert(json!({
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                }));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
            }
            REPLICASETS => {
                obj_mut(obj, "spec").entry("replicas").or_insert(json!(1));
            }
            JOBS => {
                let spec = obj_mut(obj, "spec");
                spec.entry("completions").or_insert(json!(1));
                spec.entry("parallelism").or_insert(json!(1));
                spec.entry("backoffLimit").or_insert(json!(6));
            }
            SECRETS => {
                // Secrets: `stringData` is write-only and folded into `data`.
                use base64::Engine as _;
                let Value::Object(m) = obj else { return };
                m.entry("type").or_insert(json!("Opaque"));
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    let data = obj_mut(obj, "data");
                    for (k, v) in sd {
                        let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                        data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
                    }
                }
            }
            _ => {}
        }
    }

    fn default_service(&mut self, obj: &mut Value, stored: Option<&Value>) {
        let ty = str_at(obj, "/spec/type").to_string();
        let ty = if ty.is_empty() {
            "ClusterIP".to_string()
        } else {
            ty
        };
        let stored_ip = stored
            .map(|s| str_at(s, "/spec/clusterIP").to_string())
            .unwrap_or_default();
        let mut ip = str_at(obj, "/spec/clusterIP").to_string();
        if ip.is_empty() && ty != "ExternalName" {
            ip = if stored_ip.is_empty() {
                self.alloc_cluster_ip()
            } else {
                stored_ip
            };
        }
        let stored_ports: Vec<Value> = stored
            .and_then(|s| s.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut ports: Vec<Value> = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for p in &mut ports {
            let Value::Object(pm) = p else { continue };
            pm.entry("protocol").or_insert(json!("TCP"));
            let port = pm.get("port").cloned().unwrap_or(Value::Null);
            pm.entry("targetPort").or_insert(port.clone());
            if matches!(ty.as_str(), "NodePort" | "LoadBalancer") && !pm.contains_key("nodePort") {
                let existing = stored_ports
                    .iter()
                    .find(|sp| sp.get("port") == Some(&port))
                    .and_then(|sp| sp.get("nodePort").cloned());
                let np = existing.unwrap_or_else(|| {
                    self.next_node_port += 1;
                    json!(self.next_node_port - 1)
                });
                pm.insert("nodePort".into(), np);
            }
        }
        let spec = obj_mut(obj, "spec");
        spec.insert("type".into(), json!(ty));
        if !ip.is_empty() {
            spec.insert("clusterIP".into(), json!(ip));
            spec.entry("clusterIPs").or_insert(json!([ip]));
        }
        if !ports.is_empty() {
            spec.insert("ports".into(), json!(ports));
        }
        spec.entry("sessionAffinity").or_insert(json!("None"));
        if stored.is_none() {
            obj_mut(obj, "status").entry("loadBalancer").or_insert(json!({}));
        }
    }

    fn fire_timers(&mut self) {
        loop {
            let Some((&key, _)) = self.timers.iter().next() else {
                return;
            };
            if key.0 > Instant::now() {
                return;
            }
            let Some(timer) = self.timers.remove(&key) else {
                return;
            };
            let Some(pod) = self.get(&timer.pod).cloned() else {
                continue;
            };
            if str_at(&pod, "/metadata/uid") != timer.uid {
                continue;
            }
            match timer.action {
                TimerAction::Start => self.start_pod(&timer.pod, pod),
                TimerAction::ImageBackOff => self.image_backoff(&timer.pod, pod),
                TimerAction::Finish => self.finish_pod(&timer.pod, pod),
            }
        }
    }

    /// Binds pending pods to a node whose labels match their `nodeSelector` and starts them.
    fn schedule_pods(&mut self, ns: Option<&str>) {
        let pending = self.keys_where(PODS, ns, |p| {
            phase(p) == "Pending" && !has_condition(p, "PodScheduled", "True")
        });
        if pending.is_empty() {
            return;
        }
        let nodes: Vec<(String, Value)> = self
            .iter(NODES, None)
            .map(|(k, v)| {
                (
                    k.name.clone(),
                    v.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                )
            })
            .collect();
        let host_ip = |st: &State, node: &str| {
            st.get(&ObjKey::new(NODES, "", node))
                .and_then(|n| n.pointer("/status/addresses").and_then(Value::as_array).cloned())
                .into_iter()
                .flatten()
                .find(|a| str_at(a, "/type") == "InternalIP")
                .map(|a| str_at(&a, "/address").to_string())
                .unwrap_or_else(|| "172.18.0.2".to_string())
        };
        for key in pending {
            let Some(mut pod) = self.get(&key).cloned() else {
                continue;
            };
            let selector = pod.pointer("/spec/nodeSelector").cloned().unwrap_or(json!({}));
            let fits = |labels: &Value| {
                selector
                    .as_object()
                    .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
            };
            let explicit = str_at(&pod, "/spec/nodeName").to_string();
            let node = if !explicit.is_empty() {
                Some(explicit)
            } else {
                let candidates: Vec<&String> =
                    nodes.iter().filter(|(_, l)| fits(l)).map(|(n, _)| n).collect();
                if candidates.is_empty() {
                    let no_selector = selector.as_object().is_none_or(Map::is_empty);
                    if nodes.is_empty() && no_selector {
                        Some("fake-node".to_string())
                    } else {
                        None
                    }
                } else {
                    let n = candidates[self.node_rr % candidates.len()].clone();
                    self.node_rr += 1;
                    Some(n)
                }
            };
            let mut conds = conditions_of(&pod);
            let Some(node) = node else {
                let message = format!(
                    "0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector.",
                    nodes.len(),
                    nodes.len()
                );
                if has_condition(&pod, "PodScheduled", "False") {
                    continue;
                }
                set_condition(
                    &mut conds,
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    &message,
                    false,
                );
                obj_mut(&mut pod, "status").insert("conditions".into(), json!(conds));
                let (pod, _) = self.commit(&key, pod);
                self.record_event(&pod, "Warning", "FailedScheduling", &message, "default-scheduler");
                continue;
            };
            obj_mut(&mut pod, "spec").insert("nodeName".into(), json!(node));
            set_condition(&mut conds, "PodScheduled", "True", "", "", false);
            let statuses: Vec<Value> = containers(&pod)
                .iter()
                .map(|c| {
                    json!({
                        "name": str_at(c, "/name"),
                        "image": str_at(c, "/image"),
                        "imageID": "",
                        "ready": false,
                        "started": false,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                        "lastState": {},
                    })
                })
                .collect();
            let ip = host_ip(self, &node);
            let status = obj_mut(&mut pod, "status");
            status.insert("conditions".into(), json!(conds));
            status.insert("hostIP".into(), json!(ip));
            status.insert("hostIPs".into(), json!([{"ip": ip}]));
            status.insert("startTime".into(), json!(now_ts()));
            status.insert("containerStatuses".into(), json!(statuses));
            let (pod, _) = self.commit(&key, pod);
            let delay = self.start_delay();
            let uid = str_at(&pod, "/metadata/uid").to_string();
            self.add_timer(Instant::now() + delay, &key, &uid, TimerAction::Start);
        }
    }

    fn exit_code_for(&self, key: &ObjKey) -> Option<i32> {
        self.pod_exits
            .iter()
            .rev()
            .find(|(ns, pattern, _)| *ns == key.ns && name_matches(&key.name, pattern))
            .map(|(_, _, code)| *code)
    }

    fn is_job_pod(pod: &Value) -> bool {
        pod.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/kind") == "Job"))
    }

    fn start_pod(&mut self, key: &ObjKey, mut pod: Value) {
        if phase(&pod) != "Pending" {
            return;
        }
        let cs = containers(&pod);
        let now = now_ts();
        let mut conds = conditions_of(&pod);
        set_condition(&mut conds, "PodReadyToStartContainers", "True", "", "", false);
        set_condition(&mut conds, "Initialized", "True", "", "", false);
        if let Some(img) = cs
            .iter()
            .map(|c| str_at(c, "/image"))
            .find(|i| self.fail_images.contains(*i))
        {
            let img = img.to_string();
            let unready: Vec<String> = container_names(&pod);
            let msg = format!("containers with unready status: [{}]", unready.join(" "));
            set_condition(&mut conds, "Ready", "False", "ContainersNotReady", &msg, false);
            set_condition(
                &mut conds,
                "ContainersReady",
                "False",
                "ContainersNotReady",
                &msg,
                false,
            );
            let pull_error = format!(
                "failed to pull and unpack image \"{img}\": failed to resolve reference \"{img}\": not found"
            );
            let statuses: Vec<Value> = cs
                .iter()
                .map(|c| {
                    let waiting = if str_at(c, "/image") == img {
                        json!({"reason": "ErrImagePull", "message": format!("rpc error: code = NotFound desc = {pull_error}")})
                    } else {
                        json!({"reason": "ContainerCreating"})
                    };
                    json!({
                        "name": str_at(c, "/name"), "image": str_at(c, "/image"), "imageID": "",
                        "ready": false, "started": false, "restartCount": 0,
                        "state": {"waiting": waiting}, "lastState": {},
                    })
                })
                .collect();
            let status = obj_mut(&mut pod, "status");
            status.insert("conditions".into(), json!(conds));
            status.insert("containerStatuses".into(), json!(statuses));
            let (pod, _) = self.commit(key, pod);
            let message =
                format!("Failed to pull image \"{img}\": rpc error: code = NotFound desc = {pull_error}");
            self.record_event(&pod, "Warning", "Failed", &message, "kubelet");
            self.record_event(&pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet");
            let delay = self.start_delay().max(Duration::from_millis(100));
            let uid = str_at(&pod, "/metadata/uid").to_string();
            self.add_timer(Instant::now() + delay, key, &uid, TimerAction::ImageBackOff);
            return;
        }
        let ready = !cs.iter().any(|c| self.never_ready.contains(str_at(c, "/image")));
        let ip = self.alloc_pod_ip();
        let r = if ready { "True" } else { "False" };
        let names = container_names(&pod);
        let msg = if ready {
            String::new()
        } else {
            format!("containers with unready status: [{}]", names.join(" "))
        };
        let reason = if ready { "" } else { "ContainersNotReady" };
        set_condition(&mut conds, "Ready", r, reason, &msg, false);
        set_condition(&mut conds, "ContainersReady", r, reason, &msg, false);
        let statuses: Vec<Value> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "name": str_at(c, "/name"), "image": str_at(c, "/image"),
                    "imageID": format!("{}@sha256:{}", str_at(c, "/image"), hash_hex(&json!(str_at(c, "/image")), 64)),
                    "containerID": format!("containerd://{}", hash_hex(&json!([key.ns, key.name, i]), 64)),
                    "ready": ready, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": now}}, "lastState": {},
                })
            })
            .collect();
        let status = obj_mut(&mut pod, "status");
        status.insert("phase".into(), json!("Running"));
        status.insert("conditions".into(), json!(conds));
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{"ip": ip}]));
        status.insert("containerStatuses".into(), json!(statuses));
        let (pod, _) = self.commit(key, pod);
        if !ready {
            self.record_event(
                &pod,
                "Warning",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                "kubelet",
            );
        }
        let held = self
            .held
            .iter()
            .any(|(ns, pattern)| *ns == key.ns && name_matches(&key.name, pattern));
        if !held && (self.exit_code_for(key).is_some() || Self::is_job_pod(&pod)) {
            let delay = self.start_delay();
            let uid = str_at(&pod, "/metadata/uid").to_string();
            self.add_timer(Instant::now() + delay, key, &uid, TimerAction::Finish);
        }
    }

    fn image_backoff(&mut self, key: &ObjKey, mut pod: Value) {
        let mut statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut images = Vec::new();
        for s in &mut statuses {
            if str_at(s, "/state/waiting/reason") == "ErrImagePull" {
                let img = str_at(s, "/image").to_string();
                map_path(s, &[]).insert(
                    "state".into(),
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{img}\"")}}),
                );
                images.push(img);
            }
        }
        if images.is_empty() {
            return;
        }
        obj_mut(&mut pod, "status").insert("containerStatuses".into(), json!(statuses));
        let (pod, _) = self.commit(key, pod);
        for img in images {
            self.record_event(
                &pod,
                "Normal",
                "BackOff",
                &format!("Back-off pulling image \"{img}\""),
                "kubelet",
            );
            self.record_event(&pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet");
        }
    }

    fn finish_pod(&mut self, key: &ObjKey, mut pod: Value) {
        if phase(&pod) != "Running" {
            return;
        }
        let code = self.exit_code_for(key).unwrap_or(0);
        let restart = str_at(&pod, "/spec/restartPolicy").to_string();
        let now = now_ts();
        let exit_reason = if code == 0 { "Completed" } else { "Error" };
        let mut statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut conds = conditions_of(&pod);
        let names = container_names(&pod);
        let unready = format!("containers with unready status: [{}]", names.join(" "));
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let crash_loop = restart.is_empty() || restart == "Always";
        for s in &mut statuses {
            let started_at = s
                .pointer("/state/running/startedAt")
                .cloned()
                .unwrap_or(json!(now));
            let mut terminated = json!({
                "exitCode": code, "reason": exit_reason, "startedAt": started_at, "finishedAt": now,
                "containerID": s.get("containerID").cloned().unwrap_or(Value::Null),
            });
            if let Some(message) = self.termination_messages.get(key) {
                terminated["message"] = json!(message);
            }
            let c = str_at(s, "/name").to_string();
            let m = map_path(s, &[]);
            m.insert("ready".into(), json!(false));
            m.insert("started".into(), json!(false));
            if crash_loop {
                m.insert(
                    "state".into(),
                    json!({"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": format!("back-off 10s restarting failed container={c} pod={}_{}({uid})", key.name, key.ns),
                    }}),
                );
                m.insert("lastState".into(), json!({"terminated": terminated}));
                m.insert("restartCount".into(), json!(1));
            } else {
                m.insert("state".into(), json!({"terminated": terminated}));
            }
        }
        if crash_loop {
            set_condition(
                &mut conds,
                "Ready",
                "False",
                "ContainersNotReady",
                &unready,
                false,
            );
            set_condition(
                &mut conds,
                "ContainersReady",
                "False",
                "ContainersNotReady",
                &unready,
                false,
            );
        } else {
            let reason = if code == 0 { "PodCompleted" } else { "PodFailed" };
            set_condition(&mut conds, "Ready", "False", reason, "", false);
            set_condition(&mut conds, "ContainersReady", "False", reason, "", false);
        }
        let status = obj_mut(&mut pod, "status");
        status.insert("containerStatuses".into(), json!(statuses));
        status.insert("conditions".into(), json!(conds));
        if !crash_loop {
            status.insert(
                "phase".into(),
                json!(if code == 0 { "Succeeded" } else { "Failed" }),
            );
        }
        let (pod, _) = self.commit(key, pod);
        if crash_loop {
            for c in names {
                let msg = format!(
                    "Back-off restarting failed container {c} in pod {}_{}({uid})",
                    key.name, key.ns
                );
                self.record_event(&pod, "Warning", "BackOff", &msg, "kubelet");
            }
        }
    }

    /// Pods by owner uid, with their keys.
    fn pods_by_owner(&self, ns: Option<&str>) -> HashMap<String, Vec<(ObjKey, Value)>> {
        let mut index: HashMap<String, Vec<(ObjKey, Value)>> = HashMap::new();
        for (k, p) in self.iter(PODS, ns) {
            for r in p
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let uid = str_at(r, "/uid");
                if !uid.is_empty() {
                    index
                        .entry(uid.to_string())
                        .or_default()
                        .push((k.clone(), p.clone()));
                }
            }
        }
        index
    }

    /// Creates a pod from a template, named `<prefix>-<5 chars>`.
    fn create_pod_from_template(
        &mut self,
        ns: &str,
        prefix: &str,
        template: &Value,
        owner: &Value,
        extra_labels: &[(&str, &str)],
    ) -> (ObjKey, Value) {
        let mut name = format!("{prefix}-{}", random_suffix());
        while self.get(&ObjKey::new(PODS, ns, &name)).is_some() {
            name = format!("{prefix}-{}", random_suffix());
        }
        let key = ObjKey::new(PODS, ns, &name);
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        if let Value::Object(l) = &mut labels {
            for (k, v) in extra_labels {
                l.insert((*k).into(), json!(v));
            }
        }
        let mut meta = json!({
            "name": name,
            "namespace": ns,
            "generateName": format!("{prefix}-"),
            "labels": labels,
            "ownerReferences": [controller_ref(owner)],
        });
        if let Some(a) = template.pointer("/metadata/annotations") {
            meta["annotations"] = a.clone();
        }
        let mut pod = json!({"metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))});
        self.apply_defaults(PODS, &mut pod, None);
        let (pod, _) = self.commit(&key, pod);
        (key, pod)
    }

    fn sync_replicasets(&mut self, ns: Option<&str>) {
        let keys: Vec<ObjKey> = self.iter(REPLICASETS, ns).map(|(k, _)| k.clone()).collect();
        if keys.is_empty() {
            return;
        }
        let mut index = self.pods_by_owner(ns);
        for key in keys {
            let Some(rs) = self.get(&key).cloned() else {
                continue;
            };
            let uid = str_at(&rs, "/metadata/uid").to_string();
            let desired = int_at(&rs, "/spec/replicas").unwrap_or(1).max(0);
            let mut pods: Vec<(ObjKey, Value)> = index
                .remove(&uid)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, p)| !is_terminated(p))
                .collect();
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            while (pods.len() as i64) < desired {
                let created = self.create_pod_from_template(&key.ns, &key.name, &template, &rs, &[]);
                pods.push(created);
            }
            if (pods.len() as i64) > desired {
                // Delete unscheduled, then not-running, then unready pods first; newest first.
                pods.sort_by_key(|(k, p)| {
                    (
                        has_condition(p, "PodScheduled", "True"),
                        phase(p) == "Running",
                        is_ready(p),
                        std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                        std::cmp::Reverse(k.name.clone()),
                    )
                });
                let excess = pods.len() - desired as usize;
                for (k, _) in pods.drain(..excess) {
                    self.delete(&k);
                }
            }
            let ready = pods.iter().filter(|(_, p)| is_ready(p)).count() as i64;
            let mut status = Map::new();
            status.insert("replicas".into(), json!(pods.len()));
            put_count(&mut status, "fullyLabeledReplicas", pods.len() as i64);
            put_count(&mut status, "readyReplicas", ready);
            put_count(&mut status, "availableReplicas", ready);
            status.insert("observedGeneration".into(), rs["metadata"]["generation"].clone());
            let Some(mut rs) = self.get(&key).cloned() else {
                continue;
            };
            rs["status"] = Value::Object(status);
            self.commit(&key, rs);
        }
    }

    fn sync_deployments(&mut self, ns: Option<&str>) {
        let keys: Vec<ObjKey> = self.iter(DEPLOYMENTS, ns).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.sync_deployment(&key);
        }
    }

    fn sync_deployment(&mut self, key: &ObjKey) {
        let Some(d) = self.get(key).cloned() else { return };
        let uid = str_at(&d, "/metadata/uid").to_string();
        let desired = int_at(&d, "/spec/replicas").unwrap_or(1).max(0);
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = hash_hex(&template, 10);
        let new_name = format!("{}-{hash}", key.name);
        let new_key = ObjKey::new(REPLICASETS, &key.ns, &new_name);
        let recreate = str_at(&d, "/spec/strategy/type") == "Recreate";
        let owned: Vec<(ObjKey, Value)> = self
            .iter(REPLICASETS, Some(&key.ns))
            .filter(|(_, rs)| owned_by(rs, &uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let revision = |rs: &Value| {
            rs.pointer(&format!("/metadata/annotations/{}", REVISION.replace('/', "~1")))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let max_old_rev = owned
            .iter()
            .filter(|(k, _)| *k != new_key)
            .map(|(_, rs)| revision(rs))
            .max()
            .unwrap_or(0);
        let old_active: i64 = owned
            .iter()
            .filter(|(k, _)| *k != new_key)
            .map(|(_, rs)| int_at(rs, "/status/replicas").unwrap_or(0))
            .sum();
        let new_replicas = if recreate && old_active > 0 { 0 } else { desired };
        let surge = if recreate {
            0
        } else {
            int_or_percent(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                desired,
                25,
                true,
            )
        };
        let annotations = |rev: i64| {
            json!({
                REVISION: rev.to_string(),
                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
            })
        };
        match owned.iter().find(|(k, _)| *k == new_key) {
            None => {
                if self.get(&new_key).is_some() {
                    // A ReplicaSet of that name that this Deployment does not own: leave it be.
                    return;
                }
                let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                map_path(&mut labels, &[]).insert("pod-template-hash".into(), json!(hash));
                let mut tpl = template.clone();
                meta_mut(&mut tpl).insert("labels".into(), labels.clone());
                let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
                obj_mut(&mut selector, "matchLabels").insert("pod-template-hash".into(), json!(hash));
                let mut spec = json!({"replicas": new_replicas, "selector": selector, "template": tpl});
                if let Some(m) = d.pointer("/spec/minReadySeconds") {
                    spec["minReadySeconds"] = m.clone();
                }
                let rs = json!({
                    "metadata": {
                        "name": new_name,
                        "namespace": key.ns,
                        "labels": labels,
                        "annotations": annotations(max_old_rev + 1),
                        "ownerReferences": [controller_ref(&d)],
                    },
                    "spec": spec,
                });
                self.commit(&new_key, rs);
            }
            Some((_, rs)) => {
                let mut rs = rs.clone();
                map_path(&mut rs, &["spec"]).insert("replicas".into(), json!(new_replicas));
                let rev = revision(&rs);
                let rev = if rev > max_old_rev { rev } else { max_old_rev + 1 };
                if let Value::Object(new) = annotations(rev) {
                    map_path(&mut rs, &["metadata", "annotations"]).extend(new);
                }
                self.commit(&new_key, rs);
            }
        }
        // Old ReplicaSets go to zero once the new one is fully available (never earlier, which
        // honours `maxUnavailable: 0`), or at once for `Recreate` and for zero replicas.
        let new_available = self
            .get(&new_key)
            .and_then(|rs| int_at(rs, "/status/availableReplicas"))
            .unwrap_or(0);
        if recreate || desired == 0 || new_available >= desired {
            for (k, _) in owned.iter().filter(|(k, _)| *k != new_key) {
                if let Some(mut rs) = self.get(k).cloned()
                    && int_at(&rs, "/spec/replicas") != Some(0)
                {
                    map_path(&mut rs, &["spec"]).insert("replicas".into(), json!(0));
                    self.commit(k, rs);
                }
            }
        }
        self.deployment_status(key, &new_key, desired, recreate);
    }

    fn deployment_status(&mut self, key: &ObjKey, new_key: &ObjKey, desired: i64, recreate: bool) {
        let Some(mut d) = self.get(key).cloned() else {
            return;
        };
        let uid = str_at(&d, "/metadata/uid").to_string();
        let all: Vec<&Value> = self
            .iter(REPLICASETS, Some(&key.ns))
            .filter(|(_, rs)| owned_by(rs, &uid))
            .map(|(_, v)| v)
            .collect();
        let sum = |ptr: &str| all.iter().map(|rs| int_at(rs, ptr).unwrap_or(0)).sum::<i64>();
        let total_spec = sum("/spec/replicas");
        let replicas = sum("/status/replicas");
        let ready = sum("/status/readyReplicas");
        let available = sum("/status/availableReplicas");
        let new_rs = self.get(new_key);
        let updated = new_rs.and_then(|rs| int_at(rs, "/status/replicas")).unwrap_or(0);
        let unavailable = (total_spec - available).max(0);
        let max_unavailable = if recreate {
            0
        } else {
            int_or_percent(
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                desired,
                25,
                false,
            )
        };
        let mut conds = conditions_of(&d);
        if available >= desired - max_unavailable {
            set_condition(
                &mut conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                true,
            );
        } else {
            set_condition(
                &mut conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                true,
            );
        }
        let complete = updated == desired && replicas == desired && available == desired;
        let (reason, message) = if complete {
            (
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{}\" has successfully progressed.", new_key.name),
            )
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{}\" is progressing.", new_key.name),
            )
        };
        set_condition(&mut conds, "Progressing", "True", reason, &message, true);
        // The real controller lists Available before Progressing.
        conds.sort_by_key(|c| match str_at(c, "/type") {
            "Available" => 0,
            "Progressing" => 1,
            _ => 2,
        });
        let mut status = Map::new();
        status.insert("observedGeneration".into(), d["metadata"]["generation"].clone());
        put_count(&mut status, "replicas", replicas);
        put_count(&mut status, "updatedReplicas", updated);
        put_count(&mut status, "readyReplicas", ready);
        put_count(&mut status, "availableReplicas", available);
        put_count(&mut status, "unavailableReplicas", unavailable);
        status.insert("conditions".into(), json!(conds));
        if let Some(c) = d.pointer("/status/collisionCount") {
            status.insert("collisionCount".into(), c.clone());
        }
        d["status"] = Value::Object(status);
        self.commit(key, d);
    }

    fn sync_jobs(&mut self, ns: Option<&str>) {
        let keys: Vec<ObjKey> = self.iter(JOBS, ns).map(|(k, _)| k.clone()).collect();
        if keys.is_empty() {
            return;
        }
        let mut index = self.pods_by_owner(ns);
        for key in keys {
            let Some(job) = self.get(&key).cloned() else {
                continue;
            };
            let uid = str_at(&job, "/metadata/uid").to_string();
            let mut pods: Vec<Value> = index
                .remove(&uid)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            let finished = has_condition(&job, "Complete", "True") || has_condition(&job, "Failed", "True");
            let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
            if pods.is_empty() && !finished && !suspended {
                let mut template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
                obj_mut(&mut template, "spec")
                    .entry("restartPolicy")
                    .or_insert(json!("Never"));
                let labels = [
                    ("job-name", key.name.as_str()),
                    ("batch.kubernetes.io/job-name", key.name.as_str()),
                    ("controller-uid", uid.as_str()),
                    ("batch.kubernetes.io/controller-uid", uid.as_str()),
                ];
                let (_, pod) = self.create_pod_from_template(&key.ns, &key.name, &template, &job, &labels);
                pods.push(pod);
            }
            let count = |f: &dyn Fn(&Value) -> bool| pods.iter().filter(|p| f(p)).count() as i64;
            let active = count(&|p| !is_terminated(p));
            let succeeded = count(&|p| phase(p) == "Succeeded");
            let failed = count(&|p| phase(p) == "Failed");
            let ready = count(&is_ready);
            let completions = int_at(&job, "/spec/completions").unwrap_or(1).max(1);
            let mut status = job
                .get("status")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut conds = conditions_of(&job);
            if !pods.is_empty() {
                status.entry("startTime").or_insert(json!(now_ts()));
            }
            if succeeded >= completions {
                set_condition(
                    &mut conds,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    false,
                );
                set_condition(
                    &mut conds,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    false,
                );
                status.entry("completionTime").or_insert(json!(now_ts()));
            } else if failed > 0 {
                set_condition(
                    &mut conds,
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    false,
                );
                set_condition(
                    &mut conds,
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    false,
                );
            }
            for k in ["active", "succeeded", "failed"] {
                status.remove(k);
            }
            put_count(&mut status, "active", active);
            put_count(&mut status, "succeeded", succeeded);
            put_count(&mut status, "failed", failed);
            status.insert("ready".into(), json!(ready));
            status.insert("terminating".into(), json!(0));
            status.insert("uncountedTerminatedPods".into(), json!({}));
            if !conds.is_empty() {
                status.insert("conditions".into(), json!(conds));
            }
            let Some(mut job) = self.get(&key).cloned() else {
                continue;
            };
            job["status"] = Value::Object(status);
            self.commit(&key, job);
        }
    }

    fn sync_endpointslices(&mut self, ns: Option<&str>) {
        let services: Vec<(ObjKey, Value)> = self
            .iter(SERVICES, ns)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, svc) in services {
            let uid = str_at(&svc, "/metadata/uid").to_string();
            let existing = self.keys_where(ENDPOINTSLICES, Some(&key.ns), |s| {
                str_at(
                    s,
                    &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
                ) == key.name
                    && owned_by(s, &uid)
            });
            let selector = svc
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .filter(|s| !s.is_empty())
                .cloned();
            let Some(selector) = selector else {
                for k in existing {
                    self.delete(&k);
                }
                continue;
            };
            let selector = LabelSelector::from_object(Some(&json!({"matchLabels": selector})));
            let pods: Vec<Value> = self
                .iter(PODS, Some(&key.ns))
                .map(|(_, p)| p)
                .filter(|p| {
                    !is_terminated(p) && !str_at(p, "/status/podIP").is_empty() && selector.matches_object(p)
                })
                .cloned()
                .collect();
            let endpoints: Vec<Value> = pods
                .iter()
                .map(|p| {
                    let ready = is_ready(p);
                    let mut ep = json!({
                        "addresses": [str_at(p, "/status/podIP")],
                        "conditions": {"ready": ready, "serving": ready, "terminating": false},
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": key.ns,
                            "name": str_at(p, "/metadata/name"),
                            "uid": str_at(p, "/metadata/uid"),
                        },
                    });
                    let node = str_at(p, "/spec/nodeName");
                    if !node.is_empty() {
                        ep["nodeName"] = json!(node);
                    }
                    ep
                })
                .collect();
            let ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|sp| {
                    let port = match sp.get("targetPort") {
                        Some(Value::Number(n)) => json!(n),
                        Some(Value::String(named)) => pods
                            .iter()
                            .flat_map(containers)
                            .flat_map(|c| {
                                c.get("ports")
                                    .and_then(Value::as_array)
                                    .cloned()
                                    .unwrap_or_default()
                            })
                            .find(|cp| str_at(cp, "/name") == named)
                            .and_then(|cp| cp.get("containerPort").cloned())
                            .unwrap_or_else(|| sp.get("port").cloned().unwrap_or(Value::Null)),
                        _ => sp.get("port").cloned().unwrap_or(Value::Null),
                    };
                    let mut p = json!({
                        "name": str_at(sp, "/name"),
                        "port": port,
                        "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP")),
                    });
                    if let Some(ap) = sp.get("appProtocol") {
                        p["appProtocol"] = ap.clone();
                    }
                    p
                })
                .collect();
            let mut slice = match existing.first().and_then(|k| self.get(k)) {
                Some(s) => s.clone(),
                None => json!({
                    "metadata": {
                        "generateName": format!("{}-", key.name),
                        "ownerReferences": [controller_ref(&svc)],
                    },
                }),
            };
            let labels = map_path(&mut slice, &["metadata", "labels"]);
            labels.insert(SERVICE_NAME_LABEL.into(), json!(key.name));
            labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
            slice["addressType"] = json!("IPv4");
            slice["endpoints"] = json!(endpoints);
            slice["ports"] = json!(ports);
            let slice_key = match existing.first() {
                Some(k) => k.clone(),
                None => {
                    let mut name = format!("{}-{}", key.name, random_suffix());
                    while self.get(&ObjKey::new(ENDPOINTSLICES, &key.ns, &name)).is_some() {
                        name = format!("{}-{}", key.name, random_suffix());
                    }
                    ObjKey::new(ENDPOINTSLICES, &key.ns, &name)
                }
            };
            self.commit(&slice_key, slice);
            for extra in existing.iter().skip(1) {
                self.delete(extra);
            }
        }
    }

    /// Makes a held pod exit now.
    pub(crate) fn finish_held_pod(&mut self, key: &ObjKey, exit_code: i32, message: Option<&str>) {
        if let Some(message) = message {
            self.termination_messages.insert(key.clone(), message.to_string());
        }
        self.pod_exits.push((key.ns.clone(), key.name.clone(), exit_code));
        if let Some(p) = self.get(key) {
            let uid = str_at(p, "/metadata/uid").to_string();
            self.add_timer(Instant::now(), key, &uid, TimerAction::Finish);
        }
    }

    /// Makes running pods matching a new `set_pod_exit` rule exit now.
    pub(crate) fn exit_matching_pods(&mut self, ns: &str, pattern: &str) {
        let keys = self.keys_where(PODS, Some(ns), |p| {
            phase(p) == "Running" && name_matches(str_at(p, "/metadata/name"), pattern)
        });
        for k in keys {
            if let Some(p) = self.get(&k) {
                let uid = str_at(p, "/metadata/uid").to_string();
                self.add_timer(Instant::now(), &k, &uid, TimerAction::Finish);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 4, 0, false), 1);
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, 0, false), 0);
        assert_eq!(int_or_percent(Some(&json!("25%")), 3, 0, true), 1);
        assert_eq!(int_or_percent(Some(&json!(0)), 3, 25, false), 0);
        assert_eq!(int_or_percent(None, 8, 25, false), 2);
    }

    #[test]
    fn pod_name_patterns() {
        assert!(name_matches("job-x2k4p", "job"));
        assert!(name_matches("job", "job"));
        assert!(!name_matches("jobs-x2k4p", "job"));
    }
}
