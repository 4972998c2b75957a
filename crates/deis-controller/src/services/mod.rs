//! The gRPC services. Each handler authenticates, authorizes, then calls
//! into the controller; errors become statuses through `error::respond`.

mod apps;
mod auth;
mod config;
mod internal;
mod logs;
mod perms;
mod platform;
mod resources;
mod settings;

use deis_gateway::{Gateway, GatewayOptions, Readiness, RestOrGrpc};
use deis_proto::internal::internal_service_server::InternalServiceServer;
use deis_proto::v2::{
    apps_service_server::AppsServiceServer, auth_service_server::AuthServiceServer,
    builds_service_server::BuildsServiceServer, certs_service_server::CertsServiceServer,
    config_service_server::ConfigServiceServer, domains_service_server::DomainsServiceServer,
    drains_service_server::DrainsServiceServer, keys_service_server::KeysServiceServer,
    perms_service_server::PermsServiceServer, platform_service_server::PlatformServiceServer,
    ps_service_server::PsServiceServer, releases_service_server::ReleasesServiceServer,
    settings_service_server::SettingsServiceServer, users_service_server::UsersServiceServer,
};
use tonic::service::Routes;
use tower::ServiceBuilder;

pub use internal::PLATFORM_SECRET_METADATA;
pub(crate) use logs::sync_all_drains;

use crate::metrics::{GrpcMetricsLayer, GrpcMetricsService};
use crate::{Controller, MAX_MESSAGE_BYTES};

/// The API's gRPC services. Serving puts the REST gateway and the metrics
/// layer in front ([`layered`]); components the controller does not depend
/// on add their services here first (e.g. the registry's administration).
pub type ApiRouter = Routes;

/// The REST gateway over the public API (`deis.v2`), with Deis v2's
/// conventions.
pub fn gateway(controller: &Controller) -> Result<Gateway, deis_gateway::GatewayError> {
    let store = controller.inner.store.clone();
    let options = GatewayOptions {
        platform_version: env!("CARGO_PKG_VERSION").to_owned(),
        auth_check_method: Some("deis.v2.AuthService.Whoami".to_owned()),
        readiness: Some(Readiness::new(move || {
            let store = store.clone();
            async move { store.ping().await.is_ok() }
        })),
        ..GatewayOptions::default()
    };
    Gateway::for_package(&deis_proto::DESCRIPTOR_POOL, PUBLIC_PACKAGE, options)
}

/// The protobuf package of the public API, the one REST exposes.
pub const PUBLIC_PACKAGE: &str = "deis.v2";

/// One handler type serves every service; the state is the controller.
#[derive(Clone)]
pub(crate) struct Api(pub(crate) Controller);

impl std::ops::Deref for Api {
    type Target = Controller;

    fn deref(&self) -> &Controller {
        &self.0
    }
}

macro_rules! limited {
    ($server:ident, $api:expr) => {
        $server::new($api.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

/// Which requests a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Surface {
    /// gRPC and REST, told apart by content type (the controller's port).
    GrpcAndRest,
    /// REST only (a port of its own); gRPC calls are refused.
    RestOnly,
}

pub(crate) fn router(controller: &Controller) -> ApiRouter {
    let api = Api(controller.clone());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    // Every service is up as soon as the router exists; readiness of the
    // database is reported by the overall ("") status.
    drop(health_reporter);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(deis_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes = Routes::new(health)
        .add_service(limited!(PlatformServiceServer, api))
        .add_service(limited!(AuthServiceServer, api))
        .add_service(limited!(UsersServiceServer, api))
        .add_service(limited!(AppsServiceServer, api))
        .add_service(limited!(ConfigServiceServer, api))
        .add_service(limited!(BuildsServiceServer, api))
        .add_service(limited!(ReleasesServiceServer, api))
        .add_service(limited!(DomainsServiceServer, api))
        .add_service(limited!(DrainsServiceServer, api))
        .add_service(limited!(CertsServiceServer, api))
        .add_service(limited!(KeysServiceServer, api))
        .add_service(limited!(PermsServiceServer, api))
        .add_service(limited!(SettingsServiceServer, api))
        .add_service(limited!(PsServiceServer, api))
        .add_service(limited!(InternalServiceServer, api));
    if let Ok(reflection) = reflection().build_v1() {
        routes = routes.add_service(reflection);
    }
    // Older clients (grpcurl 1.8) speak only v1alpha.
    if let Ok(reflection) = reflection().build_v1alpha() {
        routes = routes.add_service(reflection);
    }
    routes
}

/// The services as served: the REST gateway outermost (REST calls become
/// in-process gRPC calls through everything below it), then metrics.
pub(crate) fn layered(
    controller: &Controller,
    routes: ApiRouter,
    surface: Surface,
) -> RestOrGrpc<GrpcMetricsService<Routes>> {
    // The rules come from the contract compiled into this binary; a bad one
    // is a build defect that every test would show, not a runtime condition.
    let rest = gateway(controller).expect("the API contract's google.api.http rules are valid");
    let layer = match surface {
        Surface::GrpcAndRest => rest.layer(),
        Surface::RestOnly => rest.rest_only_layer(),
    };
    ServiceBuilder::new()
        .layer(layer)
        .layer(GrpcMetricsLayer(controller.inner.metrics.clone()))
        .service(routes.prepare())
}
