//! The standard gRPC services every port carries: health and reflection
//! (with the HTTP rule options preserved in the descriptors it serves).

use deis_testkit::TestPlatform;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test]
async fn health_reports_serving() {
    let p = TestPlatform::start().await;
    let mut health = HealthClient::new(p.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn reflection_lists_every_service_and_keeps_http_rules() {
    let p = TestPlatform::start().await;
    let mut reflection = ServerReflectionClient::new(p.channel().await);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = tokio_stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("deis.v2.AppsService".into())),
    ]);
    let mut responses = reflection
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "deis.v2.AppsService",
        "deis.v2.ConfigService",
        "deis.internal.v1.InternalService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    // The google.api.http option travels with the descriptors, so clients
    // (grpcurl, a REST gateway) can see the Deis paths.
    let raw: Vec<u8> = files.file_descriptor_proto.concat();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("/v2/apps/{id}"),
        "HTTP rules were stripped from the descriptors"
    );
}
