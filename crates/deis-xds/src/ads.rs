//! The Aggregated Discovery Service, state-of-the-world and incremental
//! (delta), over the feed's snapshots.
//!
//! Protocol rules followed (Envoy's xDS docs): a response carries a nonce;
//! a request echoing the last nonce of its type is an ACK, or a NACK when it
//! has `error_detail` (logged with the client's message; the client keeps
//! its last good config, and the feed's health reports it); a request with
//! an older nonce is stale and ignored; a first request without names, or a
//! `*`, subscribes to everything meant for wildcard subscribers; updates go
//! out clusters and endpoints first, then listeners and routes
//! (make-before-break); a state-of-the-world response carries every
//! subscribed resource of its type, a delta response only what changed.
//!
//! Clients that present the platform's xDS token (`authorization: token
//! <token>`) get everything; others get only what proxyless gRPC clients
//! need (no listeners with certificates, no platform routes).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::feed::{Feed, Rejection};
use crate::snapshot::{Snapshot, Subscription};
use crate::translate::ORDER;

/// Largest xDS request accepted (resource names of thousands of apps fit).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The ADS service.
#[derive(Clone)]
pub struct Ads {
    feed: Feed,
    token: Arc<str>,
}

impl Ads {
    /// Serves `feed`; `token` unlocks private resources.
    pub fn new(feed: Feed, token: impl Into<Arc<str>>) -> Ads {
        Ads {
            feed,
            token: token.into(),
        }
    }

    /// The tonic service.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Ads> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX)
    }

    /// Whether the caller presented the token; a wrong one is refused.
    fn trusted<T>(&self, request: &Request<T>) -> Result<bool, Status> {
        let Some(value) = request.metadata().get("authorization") else {
            return Ok(false);
        };
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let presented = value
            .strip_prefix("token ")
            .or_else(|| value.strip_prefix("Bearer "))
            .unwrap_or(value)
            .trim();
        if constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            Ok(true)
        } else {
            Err(Status::unauthenticated(
                "the xDS token is wrong; take it from `deis-workflow envoy-bootstrap`",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let trusted = self.trusted(&request)?;
        let (tx, rx) = mpsc::channel(16);
        let stream = Sotw {
            session: Session::new(self.feed.clone(), trusted, false, tx),
            types: HashMap::new(),
        };
        tokio::spawn(run(stream, request.into_inner()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let trusted = self.trusted(&request)?;
        let (tx, rx) = mpsc::channel(16);
        let stream = Delta {
            session: Session::new(self.feed.clone(), trusted, true, tx),
            types: HashMap::new(),
        };
        tokio::spawn(run(stream, request.into_inner()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// What both stream flavours share: the client, its snapshot view, nonces.
struct Session<T> {
    feed: Feed,
    id: u64,
    node: String,
    trusted: bool,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The snapshot every answer is drawn from. A newer one is taken only
    /// when it is pushed to every subscribed type in make-before-break
    /// order, so that answering a request never sends, say, listeners of a
    /// snapshot whose clusters the client has not been sent.
    current: Arc<Snapshot>,
    nonces: u64,
    out: mpsc::Sender<Result<T, Status>>,
}

impl<T> Session<T> {
    fn new(feed: Feed, trusted: bool, delta: bool, out: mpsc::Sender<Result<T, Status>>) -> Session<T> {
        let id = feed.connect(delta);
        let mut snapshots = feed.subscribe();
        let current = snapshots.borrow_and_update().clone();
        Session {
            snapshots,
            current,
            feed,
            id,
            node: String::new(),
            trusted,
            nonces: 0,
            out,
        }
    }

    fn next_nonce(&mut self) -> String {
        self.nonces += 1;
        self.nonces.to_string()
    }

    fn saw_node(&mut self, node: Option<&envoy_types::pb::envoy::config::core::v3::Node>) {
        if let Some(node) = node
            && self.node.is_empty()
            && !node.id.is_empty()
        {
            self.node = node.id.clone();
            let id = node.id.clone();
            self.feed.with_client(self.id, |c| c.node = id);
        }
    }

    /// Records an ACK or a NACK of `version` of `type_url`.
    fn acknowledge(&mut self, type_url: &str, version: &str, error: Option<&str>) {
        self.feed.count_acknowledgement(error.is_none());
        match error {
            Some(message) => {
                tracing::warn!(
                    node = %self.node, type_url, version, error = message,
                    "an xDS client rejected the config; it keeps its last good one"
                );
                let rejection = Rejection {
                    version: version.to_owned(),
                    message: message.to_owned(),
                };
                self.feed.with_client(self.id, |c| {
                    c.rejected.insert(type_url.to_owned(), rejection);
                });
            }
            None => self.feed.with_client(self.id, |c| {
                c.rejected.remove(type_url);
                c.accepted.insert(type_url.to_owned(), version.to_owned());
            }),
        }
    }

    async fn send(&self, message: T) -> bool {
        self.out.send(Ok(message)).await.is_ok()
    }
}

impl<T> Drop for Session<T> {
    fn drop(&mut self) {
        self.feed.disconnect(self.id);
    }
}

/// Types in the order updates go out: known types make-before-break, then
/// any other type a client asked for (answered empty).
fn push_order<'a>(types: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut order: Vec<String> = ORDER.iter().map(|t| (*t).to_owned()).collect();
    let mut others: Vec<String> = types.filter(|t| !ORDER.contains(&t.as_str())).cloned().collect();
    others.sort();
    order.extend(others);
    order
}

/// One ADS stream: what differs between state-of-the-world and delta.
trait Protocol: Send + Sized + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Send + 'static;

    fn session(&mut self) -> &mut Session<Self::Response>;
    /// Types the client subscribed to.
    fn subscribed(&self) -> Vec<String>;
    /// Handles one request; false when the client is gone.
    fn on_request(&mut self, request: Self::Request) -> impl Future<Output = bool> + Send;
    /// Sends what changed of one type; false when the client is gone.
    fn push(&mut self, type_url: &str) -> impl Future<Output = bool> + Send;
}

/// Serves one stream: requests as they come, and every snapshot change to
/// each subscribed type in make-before-break order.
async fn run<P: Protocol>(mut stream: P, mut inbound: Streaming<P::Request>) {
    loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(request)) => {
                    if !stream.on_request(request).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(node = %stream.session().node, %status, "xDS stream ended");
                    return;
                }
            },
            changed = stream.session().snapshots.changed() => {
                if changed.is_err() || !push_newest(&mut stream).await {
                    return;
                }
            }
        }
    }
}

/// Takes the newest snapshot and sends what changed of each subscribed type,
/// in make-before-break order; false when the client is gone.
async fn push_newest<P: Protocol>(stream: &mut P) -> bool {
    let session = stream.session();
    session.current = session.snapshots.borrow_and_update().clone();
    let subscribed = stream.subscribed();
    for type_url in push_order(subscribed.iter()) {
        if subscribed.contains(&type_url) && !stream.push(&type_url).await {
            return false;
        }
    }
    true
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn session(&mut self) -> &mut Session<DiscoveryResponse> {
        &mut self.session
    }

    fn subscribed(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    fn on_request(&mut self, request: DiscoveryRequest) -> impl Future<Output = bool> + Send {
        Sotw::on_request(self, request)
    }

    fn push(&mut self, type_url: &str) -> impl Future<Output = bool> + Send {
        self.respond(type_url, false)
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn session(&mut self) -> &mut Session<DeltaDiscoveryResponse> {
        &mut self.session
    }

    fn subscribed(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    fn on_request(&mut self, request: DeltaDiscoveryRequest) -> impl Future<Output = bool> + Send {
        Delta::on_request(self, request)
    }

    fn push(&mut self, type_url: &str) -> impl Future<Output = bool> + Send {
        self.respond(type_url, false)
    }
}

/// One type of a state-of-the-world stream.
#[derive(Default)]
struct SotwType {
    subscription: Subscription,
    /// The first request named nothing: an empty list stays a wildcard.
    legacy_wildcard: bool,
    /// Nonce, version and resource versions of the last response.
    sent: Option<(String, String, BTreeMap<String, u64>)>,
}

struct Sotw {
    session: Session<DiscoveryResponse>,
    types: HashMap<String, SotwType>,
}

impl Sotw {
    async fn on_request(&mut self, request: DiscoveryRequest) -> bool {
        self.session.saw_node(request.node.as_ref());
        let first = !self.types.contains_key(&request.type_url);
        let state = self.types.entry(request.type_url.clone()).or_default();
        if !request.response_nonce.is_empty() {
            match &state.sent {
                Some((nonce, version, _)) if *nonce == request.response_nonce => {
                    let version = version.clone();
                    let error = request.error_detail.as_ref().map(|e| e.message.as_str());
                    self.session.acknowledge(&request.type_url, &version, error);
                }
                // Stale: answers a response that a newer one replaced.
                _ => return true,
            }
        }
        let state = self.types.entry(request.type_url.clone()).or_default();
        let mut subscription = Subscription::from_names(&request.resource_names, first);
        if first {
            state.legacy_wildcard = request.resource_names.is_empty();
        } else if state.legacy_wildcard && request.resource_names.is_empty() {
            subscription.wildcard = true;
        }
        state.subscription = subscription;
        self.respond(&request.type_url, request.response_nonce.is_empty())
            .await
    }

    /// Sends the type's resources if they differ from the last response
    /// (or always, on `force`). Returns false when the client is gone.
    async fn respond(&mut self, type_url: &str, force: bool) -> bool {
        let snapshot = Arc::clone(&self.session.current);
        let Some(state) = self.types.get(type_url) else {
            return true;
        };
        let selected = snapshot.select(type_url, &state.subscription, self.session.trusted);
        let versions: BTreeMap<String, u64> = selected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.version))
            .collect();
        if !force && state.sent.as_ref().is_some_and(|(_, _, sent)| *sent == versions) {
            return true;
        }
        let nonce = self.session.next_nonce();
        let version = snapshot.version.to_string();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: selected.values().map(|v| v.resource.body.clone()).collect(),
            type_url: type_url.to_owned(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        if let Some(state) = self.types.get_mut(type_url) {
            state.sent = Some((nonce, version, versions));
        }
        self.session.send(response).await
    }
}

/// One type of a delta stream.
#[derive(Default)]
struct DeltaType {
    subscription: Subscription,
    /// What the client has: name to version.
    known: BTreeMap<String, String>,
    /// Nonce and system version of the last response.
    sent: Option<(String, String)>,
}

struct Delta {
    session: Session<DeltaDiscoveryResponse>,
    types: HashMap<String, DeltaType>,
}

impl Delta {
    async fn on_request(&mut self, request: DeltaDiscoveryRequest) -> bool {
        self.session.saw_node(request.node.as_ref());
        let first = !self.types.contains_key(&request.type_url);
        let state = self.types.entry(request.type_url.clone()).or_default();
        if !request.response_nonce.is_empty()
            && let Some((nonce, version)) = &state.sent
            && *nonce == request.response_nonce
        {
            let version = version.clone();
            let error = request.error_detail.as_ref().map(|e| e.message.as_str());
            self.session.acknowledge(&request.type_url, &version, error);
        }
        let state = self.types.entry(request.type_url.clone()).or_default();
        if first {
            state.subscription = Subscription::from_names(&request.resource_names_subscribe, true);
            state.known = request.initial_resource_versions.into_iter().collect();
        } else {
            let added = Subscription::from_names(&request.resource_names_subscribe, false);
            state.subscription.wildcard |= added.wildcard;
            state.subscription.names.extend(added.names);
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                state.subscription.wildcard = false;
            } else {
                state.subscription.names.remove(name);
                state.known.remove(name);
            }
        }
        self.respond(&request.type_url, first).await
    }

    /// Sends what changed for the client since it last heard (or an empty
    /// response on `force`). Returns false when the client is gone.
    async fn respond(&mut self, type_url: &str, force: bool) -> bool {
        let snapshot = Arc::clone(&self.session.current);
        let trusted = self.session.trusted;
        let Some(state) = self.types.get_mut(type_url) else {
            return true;
        };
        let selected = snapshot.select(type_url, &state.subscription, trusted);
        let mut resources = Vec::new();
        for (name, versioned) in &selected {
            let version = versioned.version.to_string();
            if state.known.get(*name) != Some(&version) {
                resources.push(Resource {
                    name: (*name).to_owned(),
                    version: version.clone(),
                    resource: Some(versioned.resource.body.clone()),
                    ..Default::default()
                });
                state.known.insert((*name).to_owned(), version);
            }
        }
        let removed: Vec<String> = state
            .known
            .keys()
            .filter(|name| !selected.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in &removed {
            state.known.remove(name);
        }
        if !force && resources.is_empty() && removed.is_empty() {
            return true;
        }
        let nonce = self.session.next_nonce();
        let version = snapshot.version.to_string();
        if let Some(state) = self.types.get_mut(type_url) {
            state.sent = Some((nonce.clone(), version.clone()));
        }
        let response = DeltaDiscoveryResponse {
            system_version_info: version,
            resources,
            type_url: type_url.to_owned(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        self.session.send(response).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use deis_routing::{AppRoute, RouterSettings, RoutingState};

    use super::*;
    use crate::translate::{CLUSTER, LISTENER};

    fn apps(names: &[&str]) -> RoutingState {
        RoutingState {
            apps: names
                .iter()
                .map(|name| {
                    let route = AppRoute {
                        endpoints: vec![SocketAddr::from(([127, 0, 0, 1], 5000))],
                        ..Default::default()
                    };
                    (name.to_string(), route)
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn wildcard(type_url: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: type_url.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn next(rx: &mut mpsc::Receiver<Result<DiscoveryResponse, Status>>) -> DiscoveryResponse {
        rx.try_recv().expect("a response was sent").expect("not an error")
    }

    /// A request answered while a newer snapshot waits to be pushed gets the
    /// snapshot the client already has the rest of; the newer one follows,
    /// clusters first. Answering from the newest instead sent listeners
    /// whose clusters never followed: the push saw nothing new.
    #[tokio::test]
    async fn a_request_is_answered_from_the_snapshot_already_pushed() {
        let feed = Feed::new();
        let settings = RouterSettings::local();
        feed.update(&settings, &apps(&["alpha"]));
        let (tx, mut rx) = mpsc::channel(16);
        let mut stream = Sotw {
            session: Session::new(feed.clone(), true, false, tx),
            types: HashMap::new(),
        };
        assert!(stream.on_request(wildcard(CLUSTER, "")).await);
        let clusters = next(&mut rx);
        assert_eq!(clusters.version_info, "1");

        // A new app lands just as the client asks for listeners.
        feed.update(&settings, &apps(&["alpha", "beta"]));
        assert!(stream.on_request(wildcard(LISTENER, "")).await);
        let listeners = next(&mut rx);
        assert_eq!(
            listeners.version_info, "1",
            "listeners of a snapshot whose clusters were not sent"
        );

        assert!(stream.session.snapshots.has_changed().unwrap());
        assert!(push_newest(&mut stream).await);
        let pushed: Vec<(String, String)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| {
                let r = r.unwrap();
                (r.type_url, r.version_info)
            })
            .collect();
        // The socket listener is the same in both snapshots: only the
        // clusters changed.
        assert_eq!(pushed, [(CLUSTER.to_owned(), "2".to_owned())]);
    }
}
