//! The ADS protocol over a real gRPC connection: wildcard and named
//! subscriptions, ACKs that send nothing, NACKs that are reported and keep
//! the last good config, stale nonces, make-before-break ordering, the
//! token, and delta xDS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use deis_routing::{AppRoute, RouterSettings, RoutingState};
use deis_xds::translate::{CLUSTER, ENDPOINTS, HTTP, LISTENER, ROUTES};
use deis_xds::{Ads, Feed};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

const TOKEN: &str = "test-token-0123456789";

fn state(apps: &[(&str, &[u16])]) -> RoutingState {
    RoutingState {
        apps: apps
            .iter()
            .map(|(name, ports)| {
                let route = AppRoute {
                    endpoints: ports
                        .iter()
                        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                        .collect(),
                    ..Default::default()
                };
                (name.to_string(), route)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

async fn serve(feed: Feed) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let service = Ads::new(feed, TOKEN).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("token {token}").parse().unwrap());
    }
    request
}

/// A state-of-the-world client.
struct Client {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl Client {
    async fn connect(channel: Channel, token: Option<&str>) -> Result<Client, tonic::Status> {
        let (requests, rx) = mpsc::channel(16);
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let responses = client
            .stream_aggregated_resources(with_token(ReceiverStream::new(rx), token))
            .await?
            .into_inner();
        Ok(Client { requests, responses })
    }

    async fn request(&self, type_url: &str, names: &[&str], version: &str, nonce: &str, error: Option<&str>) {
        let request = DiscoveryRequest {
            node: Some(Node {
                id: "test-node".into(),
                ..Default::default()
            }),
            type_url: type_url.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            error_detail: error.map(|message| RpcStatus {
                code: 3,
                message: message.into(),
                details: Vec::new(),
            }),
            ..Default::default()
        };
        self.requests.send(request).await.unwrap();
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.responses.message())
            .await
            .expect("a response within 5 s")
            .unwrap()
            .expect("the stream is open")
    }

    /// Asserts nothing arrives for a while.
    async fn quiet(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.responses.message()).await;
        assert!(next.is_err(), "unexpected response: {next:?}");
    }
}

fn names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| match response.type_url.as_str() {
            CLUSTER => {
                <envoy_types::pb::envoy::config::cluster::v3::Cluster as prost::Message>::decode(&*any.value)
                    .unwrap()
                    .name
            }
            ENDPOINTS => <envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as prost::Message>::decode(
                &*any.value,
            )
            .unwrap()
            .cluster_name,
            LISTENER => {
                <envoy_types::pb::envoy::config::listener::v3::Listener as prost::Message>::decode(&*any.value)
                    .unwrap()
                    .name
            }
            ROUTES => {
                <envoy_types::pb::envoy::config::route::v3::RouteConfiguration as prost::Message>::decode(
                    &*any.value,
                )
                .unwrap()
                .name
            }
            other => panic!("unexpected type {other}"),
        })
        .collect()
}

#[tokio::test]
async fn wildcard_and_named_subscriptions_acks_and_updates() {
    let feed = Feed::new();
    let settings = RouterSettings::local();
    feed.update(&settings, &state(&[("alpha", &[5001])]));
    let channel = serve(feed.clone()).await;
    let mut envoy = Client::connect(channel, Some(TOKEN)).await.unwrap();

    // Envoy's first requests: wildcard CDS and LDS.
    envoy.request(CLUSTER, &[], "", "", None).await;
    let cds = envoy.next().await;
    assert_eq!(names(&cds), ["alpha"]);
    assert_eq!(cds.version_info, "1");
    envoy.request(ENDPOINTS, &["alpha"], "", "", None).await;
    let eds = envoy.next().await;
    assert_eq!(names(&eds), ["alpha"]);
    envoy.request(CLUSTER, &[], "1", &cds.nonce, None).await;
    envoy.request(LISTENER, &[], "", "", None).await;
    let lds = envoy.next().await;
    // Wildcard listeners are the sockets; API listeners only when named.
    assert_eq!(names(&lds), [HTTP]);
    envoy.request(ENDPOINTS, &["alpha"], "1", &eds.nonce, None).await;
    envoy.request(LISTENER, &[], "1", &lds.nonce, None).await;
    envoy.request(ROUTES, &[HTTP], "", "", None).await;
    let rds = envoy.next().await;
    assert_eq!(names(&rds), [HTTP]);
    envoy.request(ROUTES, &[HTTP], "1", &rds.nonce, None).await;
    // ACKs send nothing back.
    envoy.quiet().await;
    assert_eq!(feed.clients()[0].node, "test-node");
    assert_eq!(
        feed.clients()[0].accepted.get(CLUSTER).map(String::as_str),
        Some("1")
    );

    // A new app: clusters before listeners before routes; endpoints only
    // for the names asked for.
    feed.update(&settings, &state(&[("alpha", &[5001]), ("beta", &[5002])]));
    let first = envoy.next().await;
    assert_eq!(first.type_url, CLUSTER);
    assert_eq!(names(&first), ["alpha", "beta"]);
    assert_eq!(first.version_info, "2");
    let second = envoy.next().await;
    assert_eq!(
        second.type_url, ROUTES,
        "the listener did not change; the routes did"
    );
    // Endpoints of alpha did not change: nothing for EDS until beta is named.
    envoy.request(CLUSTER, &[], "2", &first.nonce, None).await;
    envoy.request(ROUTES, &[HTTP], "2", &second.nonce, None).await;
    envoy
        .request(ENDPOINTS, &["alpha", "beta"], "1", &eds.nonce, None)
        .await;
    let eds = envoy.next().await;
    assert_eq!(names(&eds), ["alpha", "beta"]);
    // Nothing changed: no version is spent, nothing is sent.
    assert_eq!(
        feed.update(&settings, &state(&[("alpha", &[5001]), ("beta", &[5002])])),
        2
    );
    envoy.quiet().await;
}

#[tokio::test]
async fn a_nack_is_reported_and_a_later_ack_clears_it() {
    let feed = Feed::new();
    let settings = RouterSettings::local();
    feed.update(&settings, &state(&[("alpha", &[5001])]));
    let channel = serve(feed.clone()).await;
    let mut envoy = Client::connect(channel, Some(TOKEN)).await.unwrap();
    let mut health = feed.health();
    envoy.request(LISTENER, &[], "", "", None).await;
    let lds = envoy.next().await;
    envoy
        .request(
            LISTENER,
            &[],
            "",
            &lds.nonce,
            Some("Error adding listener: duplicate address"),
        )
        .await;
    tokio::time::timeout(Duration::from_secs(2), health.wait_for(|h| !*h))
        .await
        .expect("health turns bad")
        .unwrap();
    let client = &feed.clients()[0];
    let rejection = client.rejected.get(LISTENER).unwrap();
    assert_eq!(rejection.version, "1");
    assert_eq!(rejection.message, "Error adding listener: duplicate address");
    // The same content is not pushed again after a NACK.
    envoy.quiet().await;

    // A stale nonce (an older response) is ignored.
    let mut with_certificate = state(&[("alpha", &[5001])]);
    if let Some(alpha) = with_certificate.apps.get_mut("alpha") {
        alpha.certificates.push(deis_routing::TlsCertificate {
            name: "www".into(),
            server_names: vec!["www.example.com".into()],
            certificate_chain: "chain".into(),
            private_key: "key".into(),
        });
    }
    feed.update(&settings, &with_certificate);
    let lds2 = envoy.next().await;
    assert_eq!(lds2.type_url, LISTENER);
    envoy.request(LISTENER, &[], "", &lds.nonce, None).await;
    envoy.quiet().await;
    assert!(feed.clients()[0].rejected.contains_key(LISTENER));
    // Accepting the newer version clears the rejection.
    envoy.request(LISTENER, &[], "2", &lds2.nonce, None).await;
    tokio::time::timeout(Duration::from_secs(2), health.wait_for(|h| *h))
        .await
        .expect("health recovers")
        .unwrap();
}

#[tokio::test]
async fn only_token_holders_get_private_resources() {
    let feed = Feed::new();
    feed.update(&RouterSettings::local(), &state(&[("alpha", &[5001])]));
    let channel = serve(feed).await;

    let err = Client::connect(channel.clone(), Some("wrong"))
        .await
        .err()
        .expect("a wrong token is refused");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Anonymous: what a proxyless gRPC client needs, nothing else.
    let mut grpc = Client::connect(channel.clone(), None).await.unwrap();
    grpc.request(LISTENER, &["alpha", HTTP], "", "", None).await;
    assert_eq!(names(&grpc.next().await), ["alpha"]);
    grpc.request(ROUTES, &["alpha", HTTP], "", "", None).await;
    assert_eq!(names(&grpc.next().await), ["alpha"]);
    grpc.request(CLUSTER, &["alpha"], "", "", None).await;
    assert_eq!(names(&grpc.next().await), ["alpha"]);

    let mut envoy = Client::connect(channel, Some(TOKEN)).await.unwrap();
    envoy.request(LISTENER, &["alpha", HTTP], "", "", None).await;
    assert_eq!(names(&envoy.next().await), ["alpha", HTTP]);
}

#[tokio::test]
async fn delta_clients_get_changes_and_removals_only() {
    let feed = Feed::new();
    let settings = RouterSettings::local();
    feed.update(&settings, &state(&[("alpha", &[5001]), ("beta", &[5002])]));
    let channel = serve(feed.clone()).await;
    let (requests, rx) = mpsc::channel(16);
    let mut responses = AggregatedDiscoveryServiceClient::new(channel)
        .delta_aggregated_resources(with_token(ReceiverStream::new(rx), Some(TOKEN)))
        .await
        .unwrap()
        .into_inner();
    let mut next = async || -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), responses.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    requests
        .send(DeltaDiscoveryRequest {
            node: Some(Node {
                id: "delta-node".into(),
                ..Default::default()
            }),
            type_url: CLUSTER.into(),
            // It already has alpha at version 1 (a reconnect).
            initial_resource_versions: [("alpha".to_string(), "1".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first = next().await;
    let got: Vec<&str> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(got, ["beta"], "alpha is already current");
    requests
        .send(DeltaDiscoveryRequest {
            type_url: CLUSTER.into(),
            response_nonce: first.nonce.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    feed.update(&settings, &state(&[("alpha", &[5001]), ("gamma", &[5003])]));
    let update = next().await;
    let got: Vec<&str> = update.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(got, ["gamma"]);
    assert_eq!(update.removed_resources, ["beta"]);
    assert_eq!(update.resources[0].version, "2");
    assert!(feed.clients()[0].delta);
}
