//! The object store: objects, the global resource version, the watch history and garbage
//! collection by namespace and owner references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::json::{meta_mut, str_at};
use crate::resources::{NAMESPACES, RESOURCES};

/// Identifies a stored object. Cluster-scoped objects have an empty namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub(crate) res: usize,
    pub(crate) ns: String,
    pub(crate) name: String,
}

impl ObjKey {
    pub(crate) fn new(res: usize, ns: &str, name: &str) -> Self {
        Self {
            res,
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EvType {
    Added,
    Modified,
    Deleted,
}

impl EvType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One write, as kept for watchers.
#[derive(Debug, Clone)]
pub(crate) struct HistEvent {
    pub(crate) rv: u64,
    pub(crate) ty: EvType,
    pub(crate) res: usize,
    pub(crate) ns: String,
    pub(crate) object: Arc<Value>,
    /// The previous state for `Modified`, so that a label-filtered watch can turn a change
    /// that moves an object in or out of the selection into `ADDED` or `DELETED`.
    pub(crate) old: Option<Arc<Value>>,
}

/// What a pod timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerAction {
    /// The containers start (or fail to pull their image).
    Start,
    /// `ErrImagePull` turns into `ImagePullBackOff`.
    ImageBackOff,
    /// The containers exit.
    Finish,
}

#[derive(Debug, Clone)]
pub(crate) struct Timer {
    pub(crate) pod: ObjKey,
    pub(crate) uid: String,
    pub(crate) action: TimerAction,
}

/// Default bound of the watch history.
pub(crate) const HISTORY_LIMIT: usize = 10_000;

/// Everything the fake knows, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) objects: BTreeMap<ObjKey, Value>,
    /// The last resource version handed out.
    pub(crate) rv: u64,
    pub(crate) history: VecDeque<HistEvent>,
    /// Events up to and including this resource version have been dropped from the history.
    pub(crate) dropped_up_to: u64,
    pub(crate) history_limit: usize,
    /// Namespaces written to since the controllers last looked: they only
    /// look there (every controller is namespace-local), which keeps a
    /// write's cost independent of how many apps the cluster has.
    pub(crate) dirty: BTreeSet<String>,
    /// A cluster-scoped object other than a Namespace (a Node) changed:
    /// every namespace needs a look.
    pub(crate) dirty_all: bool,
    /// The last configuration each field manager applied, by (object uid, manager).
    pub(crate) applied: HashMap<(String, String), Value>,
    pub(crate) timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    next_pod_ip: u32,
    next_cluster_ip: u32,
    pub(crate) next_node_port: u32,
    pub(crate) node_rr: usize,
    pub(crate) fail_images: HashSet<String>,
    pub(crate) never_ready: HashSet<String>,
    pub(crate) pod_logs: HashMap<String, String>,
    /// (namespace, pod name or name prefix, exit code)
    pub(crate) pod_exits: Vec<(String, String, i32)>,
    /// (namespace, pod name or name prefix) of pods that keep running until finished by hand.
    pub(crate) held: Vec<(String, String)>,
    /// Logs and termination messages of single pods, overriding `pod_logs`.
    pub(crate) pod_log_of: HashMap<ObjKey, String>,
    pub(crate) termination_messages: HashMap<ObjKey, String>,
    /// `None`: a random delay of 0–50 ms per pod.
    pub(crate) start_delay: Option<Duration>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            dropped_up_to: 0,
            history_limit: HISTORY_LIMIT,
            dirty: BTreeSet::new(),
            dirty_all: false,
            applied: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            next_pod_ip: 2,
            next_cluster_ip: 10,
            next_node_port: 30000,
            node_rr: 0,
            fail_images: HashSet::new(),
            never_ready: HashSet::new(),
            pod_logs: HashMap::new(),
            pod_exits: Vec::new(),
            held: Vec::new(),
            pod_log_of: HashMap::new(),
            termination_messages: HashMap::new(),
            start_delay: None,
        }
    }
}

/// RFC 3339 timestamp with second precision, like the real server.
pub(crate) fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Five random characters, as in generated names (`web-7d4b9c-x2k4p`).
pub(crate) fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// Whether the object's `metadata.ownerReferences` name this uid.
pub(crate) fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

/// An owner reference to `owner` marking it as the controller.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": str_at(owner, "/metadata/name"),
        "uid": str_at(owner, "/metadata/uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(crate) fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one type, in one namespace (`Some`) or all (`None`), ordered by namespace and name.
    pub(crate) fn iter(&self, res: usize, ns: Option<&str>) -> impl Iterator<Item = (&ObjKey, &Value)> {
        let start = ObjKey {
            res,
            ns: ns.unwrap_or_default().to_string(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.res == res && ns.is_none_or(|ns| k.ns == ns))
    }

    /// Keys of one type in a namespace whose object satisfies `pred`.
    pub(crate) fn keys_where(
        &self,
        res: usize,
        ns: Option<&str>,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<ObjKey> {
        self.iter(res, ns)
            .filter(|(_, v)| pred(v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(crate) fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&ObjKey::new(NAMESPACES, "", ns))
    }

    fn push_event(&mut self, ev: HistEvent) {
        if RESOURCES[ev.res].namespaced {
            self.dirty.insert(ev.ns.clone());
        } else if ev.res == NAMESPACES {
            self.dirty
                .insert(str_at(&ev.object, "/metadata/name").to_string());
        } else {
            self.dirty_all = true;
        }
        self.history.push_back(ev);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.dropped_up_to = old.rv;
            }
        }
    }

    /// Stores `obj` under `key`, filling in the server-owned metadata: `kind`/`apiVersion`,
    /// `uid`, `creationTimestamp`, `generation` (1 on create, +1 when `spec` changes) and a new
    /// `resourceVersion`. An update that changes nothing (ignoring `resourceVersion`) is not
    /// written: no new resource version and no watch event. Returns the stored object and
    /// whether it was written.
    pub(crate) fn commit(&mut self, key: &ObjKey, mut obj: Value) -> (Value, bool) {
        let def = &RESOURCES[key.res];
        if let Value::Object(m) = &mut obj {
            m.insert("kind".into(), Value::String(def.kind.into()));
            m.insert("apiVersion".into(), Value::String(def.api_version()));
        }
        {
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), Value::String(key.name.clone()));
            if def.namespaced {
                meta.insert("namespace".into(), Value::String(key.ns.clone()));
            } else {
                meta.remove("namespace");
            }
        }
        match self.objects.get(key) {
            Some(stored) => {
                let stored_meta = stored.get("metadata").cloned().unwrap_or_default();
                let spec_changed = stored.get("spec") != obj.get("spec");
                let generation = stored_meta.get("generation").and_then(Value::as_i64).unwrap_or(1)
                    + i64::from(spec_changed);
                {
                    let meta = meta_mut(&mut obj);
                    for field in ["uid", "creationTimestamp", "resourceVersion"] {
                        match stored_meta.get(field) {
                            Some(v) => meta.insert(field.into(), v.clone()),
                            None => meta.remove(field),
                        };
                    }
                    meta.insert("generation".into(), json!(generation));
                }
                if &obj == stored {
                    return (obj, false);
                }
                let rv = self.next_rv();
                meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
                let old = self.objects.insert(key.clone(), obj.clone()).map(Arc::new);
                self.push_event(HistEvent {
                    rv,
                    ty: EvType::Modified,
                    res: key.res,
                    ns: key.ns.clone(),
                    object: Arc::new(obj.clone()),
                    old,
                });
                (obj, true)
            }
            None => {
                let rv = self.next_rv();
                {
                    let meta = meta_mut(&mut obj);
                    meta.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
                    meta.insert("creationTimestamp".into(), Value::String(now_ts()));
                    meta.insert("generation".into(), json!(1));
                    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                }
                self.objects.insert(key.clone(), obj.clone());
                self.push_event(HistEvent {
                    rv,
                    ty: EvType::Added,
                    res: key.res,
                    ns: key.ns.clone(),
                    object: Arc::new(obj.clone()),
                    old: None,
                });
                (obj, true)
            }
        }
    }

    /// Deletes an object and, like the garbage collector, everything it owns (by owner
    /// reference, recursively) and, for a Namespace, everything in it. Returns the deleted
    /// object as last seen (with the deletion's resource version).
    pub(crate) fn delete(&mut self, key: &ObjKey) -> Option<Value> {
        if !self.objects.contains_key(key) {
            return None;
        }
        if key.res == NAMESPACES {
            let inside: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| RESOURCES[k.res].namespaced && k.ns == key.name)
                .cloned()
                .collect();
            for k in inside {
                self.delete(&k);
            }
        }
        let mut obj = self.objects.remove(key)?;
        let uid = str_at(&obj, "/metadata/uid").to_string();
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.push_event(HistEvent {
            rv,
            ty: EvType::Deleted,
            res: key.res,
            ns: key.ns.clone(),
            object: Arc::new(obj.clone()),
            old: None,
        });
        self.applied.retain(|(u, _), _| *u != uid);
        // Dependents live in the owner's namespace (or anywhere, for a cluster-scoped owner).
        let ns = RESOURCES[key.res].namespaced.then_some(key.ns.clone());
        let dependents: Vec<ObjKey> = self
            .objects
            .iter()
            .filter(|(k, v)| ns.as_ref().is_none_or(|ns| &k.ns == ns) && owned_by(v, &uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in dependents {
            self.delete(&k);
        }
        Some(obj)
    }

    /// Schedules a pod timer.
    pub(crate) fn add_timer(&mut self, at: Instant, pod: &ObjKey, uid: &str, action: TimerAction) {
        self.timer_seq += 1;
        self.timers.insert(
            (at, self.timer_seq),
            Timer {
                pod: pod.clone(),
                uid: uid.to_string(),
                action,
            },
        );
    }

    /// When the next timer is due.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// The delay before a new pod's containers start.
    pub(crate) fn start_delay(&self) -> Duration {
        match self.start_delay {
            Some(d) => d,
            None => Duration::from_millis(rand::rng().random_range(0..=50)),
        }
    }

    /// A fresh pod IP, `10.244.x.y` onwards.
    pub(crate) fn alloc_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip += 1;
        format!("10.{}.{}.{}", 244 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
    }

    /// A fresh Service cluster IP, `10.96.x.y` onwards.
    pub(crate) fn alloc_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip += 1;
        format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
    }

    /// Records a core v1 Event about `involved` in its namespace.
    pub(crate) fn record_event(
        &mut self,
        involved: &Value,
        ty: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = str_at(involved, "/metadata/namespace").to_string();
        if ns.is_empty() || !self.namespace_exists(&ns) {
            return;
        }
        let name = format!(
            "{}.{:016x}",
            str_at(involved, "/metadata/name"),
            rand::rng().random::<u64>()
        );
        let now = now_ts();
        let event = json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "kind": str_at(involved, "/kind"),
                "namespace": ns,
                "name": str_at(involved, "/metadata/name"),
                "uid": str_at(involved, "/metadata/uid"),
                "apiVersion": str_at(involved, "/apiVersion"),
                "resourceVersion": str_at(involved, "/metadata/resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": ty,
            "eventTime": null,
            "reportingComponent": component,
            "reportingInstance": "",
        });
        let key = ObjKey::new(crate::resources::EVENTS, &ns, &name);
        self.commit(&key, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{DEPLOYMENTS, PODS, REPLICASETS};

    #[test]
    fn commit_and_cascade() {
        let mut st = State::default();
        let ns = ObjKey::new(NAMESPACES, "", "a");
        st.commit(&ns, json!({}));
        let d = ObjKey::new(DEPLOYMENTS, "a", "web");
        let (dep, written) = st.commit(&d, json!({"spec": {"replicas": 1}}));
        assert!(written);
        assert_eq!(dep["metadata"]["generation"], 1);
        let (_, written) = st.commit(&d, json!({"spec": {"replicas": 1}}));
        assert!(!written, "an identical write is a no-op");
        let (dep2, _) = st.commit(&d, json!({"spec": {"replicas": 2}}));
        assert_eq!(dep2["metadata"]["generation"], 2);
        assert_eq!(dep2["metadata"]["uid"], dep["metadata"]["uid"]);
        let rs = ObjKey::new(REPLICASETS, "a", "web-1");
        let (rs_obj, _) = st.commit(
            &rs,
            json!({"metadata": {"ownerReferences": [controller_ref(&dep2)]}}),
        );
        let pod = ObjKey::new(PODS, "a", "web-1-x");
        st.commit(
            &pod,
            json!({"metadata": {"ownerReferences": [controller_ref(&rs_obj)]}}),
        );
        st.delete(&d);
        assert!(st.get(&rs).is_none());
        assert!(st.get(&pod).is_none());
        st.commit(&pod, json!({}));
        st.delete(&ns);
        assert_eq!(st.objects.len(), 0);
        let types: Vec<_> = st.history.iter().map(|e| e.ty).collect();
        assert_eq!(types.last(), Some(&EvType::Deleted));
    }

    #[test]
    fn history_is_bounded() {
        let mut st = State {
            history_limit: 3,
            ..State::default()
        };
        for i in 0..5 {
            st.commit(&ObjKey::new(NAMESPACES, "", &format!("n{i}")), json!({}));
        }
        assert_eq!(st.history.len(), 3);
        assert_eq!(st.dropped_up_to, 2);
    }
}
