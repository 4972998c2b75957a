//! What the cluster holds of the platform's objects, read in a few list
//! requests, so an apply can be skipped when nothing changed.
//!
//! Every object the scheduler applies carries [`DESIRED_HASH`], the hash of
//! the rendered object. Converging compares that with the hash of what it
//! would apply now: equal means no request at all, which is what lets a
//! controller restart converge a thousand unchanged apps without writing.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The annotation holding the hash of the rendered object last applied.
pub const DESIRED_HASH: &str = "deis.io/desired-hash";

/// Which object: kind, namespace (empty for cluster-scoped), name.
pub(crate) type Key = (&'static str, String, String);

/// The platform's objects on the cluster: present ones, with their hash.
#[derive(Debug, Default)]
pub struct Live {
    objects: HashMap<Key, Option<String>>,
}

impl Live {
    /// Whether the object exists.
    pub(crate) fn exists(&self, key: &Key) -> bool {
        self.objects.contains_key(key)
    }

    /// The hash the object was applied with, if it exists and has one.
    pub(crate) fn hash(&self, key: &Key) -> Option<&str> {
        self.objects.get(key).and_then(|h| h.as_deref())
    }

    /// The names of the objects of `kind` in `namespace`.
    pub(crate) fn names(&self, kind: &str, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .objects
            .keys()
            .filter(|(k, ns, _)| *k == kind && ns == namespace)
            .map(|(_, _, name)| name.clone())
            .collect();
        names.sort();
        names
    }

    fn insert<K: Resource>(&mut self, kind: &'static str, object: &K) {
        let meta = object.meta();
        let key = (
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let hash = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_HASH))
            .cloned();
        self.objects.insert(key, hash);
    }

    /// The platform's objects in every namespace (five list requests).
    pub async fn all(client: &Client) -> Result<Live, kube::Error> {
        let mut live = Live::default();
        live.add::<Namespace>(Api::all(client.clone()), "Namespace")
            .await?;
        live.add::<Secret>(Api::all(client.clone()), "Secret").await?;
        live.add::<Deployment>(Api::all(client.clone()), "Deployment")
            .await?;
        live.add::<Service>(Api::all(client.clone()), "Service").await?;
        live.add::<HorizontalPodAutoscaler>(Api::all(client.clone()), "HorizontalPodAutoscaler")
            .await?;
        Ok(live)
    }

    /// The platform's objects of one app (its namespace).
    pub async fn app(client: &Client, app: &str) -> Result<Live, kube::Error> {
        let mut live = Live::default();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let Some(namespace) = namespaces.get_opt(app).await? else {
            return Ok(live);
        };
        live.insert("Namespace", &namespace);
        live.add::<Secret>(Api::namespaced(client.clone(), app), "Secret")
            .await?;
        live.add::<Deployment>(Api::namespaced(client.clone(), app), "Deployment")
            .await?;
        live.add::<Service>(Api::namespaced(client.clone(), app), "Service")
            .await?;
        live.add::<HorizontalPodAutoscaler>(Api::namespaced(client.clone(), app), "HorizontalPodAutoscaler")
            .await?;
        Ok(live)
    }

    async fn add<K>(&mut self, api: Api<K>, kind: &'static str) -> Result<(), kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let list = api.list(&ListParams::default().labels("heritage=deis")).await?;
        for object in &list {
            self.insert(kind, object);
        }
        Ok(())
    }
}

/// The key of a rendered object.
pub(crate) fn key<K: Resource>(kind: &'static str, object: &K) -> Key {
    (kind, object.namespace().unwrap_or_default(), object.name_any())
}

/// `object` with [`DESIRED_HASH`] set to the hash of its rendering, and
/// that hash.
pub(crate) fn stamped<K: Resource + Serialize + Clone>(object: &K) -> (K, String) {
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    let hash = hex::encode(&Sha256::digest(&bytes)[..16]);
    let mut object = object.clone();
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(DESIRED_HASH.to_owned(), hash.clone());
    (object, hash)
}
