//! The router's endpoints from the cluster: EndpointSlices watched with
//! kube-runtime, turned into the same [`AppEndpoints`] the local runtime
//! publishes, so the xDS feed does not know which runtime runs the apps.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use deis_scheduler::routing::{AppEndpoints, Endpoint};
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

/// The label Kubernetes puts on a Service's slices.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

type Key = (String, String);

/// Watches every EndpointSlice until `sender` has no receivers left,
/// publishing the apps' ready endpoints after each change. Reconnects
/// with backoff when the watch breaks.
pub(crate) async fn watch(client: Client, sender: tokio::sync::watch::Sender<Arc<AppEndpoints>>) {
    let api: Api<EndpointSlice> = Api::all(client);
    let mut events = watcher(api).boxed();
    let mut slices: BTreeMap<Key, EndpointSlice> = BTreeMap::new();
    let mut relisting: Option<BTreeMap<Key, EndpointSlice>> = None;
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Init) => {
                relisting = Some(BTreeMap::new());
                false
            }
            Ok(Event::InitApply(slice)) => {
                if let Some(buffer) = relisting.as_mut() {
                    buffer.insert(key(&slice), slice);
                }
                false
            }
            Ok(Event::InitDone) => {
                slices = relisting.take().unwrap_or_default();
                true
            }
            Ok(Event::Apply(slice)) => {
                slices.insert(key(&slice), slice);
                true
            }
            Ok(Event::Delete(slice)) => slices.remove(&key(&slice)).is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "watching EndpointSlices failed; retrying");
                false
            }
        };
        if changed && sender.send(Arc::new(app_endpoints(slices.values()))).is_err() {
            return;
        }
    }
}

fn watcher(
    api: Api<EndpointSlice>,
) -> impl futures::Stream<Item = Result<Event<EndpointSlice>, watcher::Error>> {
    watcher::watcher(api, watcher::Config::default()).default_backoff()
}

fn key(slice: &EndpointSlice) -> Key {
    (
        slice.metadata.namespace.clone().unwrap_or_default(),
        slice.metadata.name.clone().unwrap_or_default(),
    )
}

/// The ready endpoints of apps' Services: an app's Service is `<app>` in
/// namespace `<app>`; slices of other Services are not apps'.
pub fn app_endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> AppEndpoints {
    let mut apps = AppEndpoints::new();
    for slice in slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME))
            .map(String::as_str);
        if service != Some(namespace) {
            continue;
        }
        let Some(port) = slice
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let list = apps.entry(namespace.to_owned()).or_default();
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(false);
            if !ready {
                continue;
            }
            let process = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    list.push(Endpoint {
                        addr: SocketAddr::new(ip, port),
                        process: process.clone(),
                        release: String::new(),
                    });
                }
            }
        }
        list.sort();
    }
    apps.retain(|_, list| !list.is_empty());
    apps
}
