//! The platform's routing state as an Envoy xDS feed: [`translate`] turns a
//! [`deis_routing::RoutingState`] into Listeners, RouteConfigurations,
//! Clusters and ClusterLoadAssignments; [`Feed`] keeps the versioned
//! snapshot and what every client accepted or rejected; [`Ads`] serves it
//! over the Aggregated Discovery Service (state-of-the-world and delta) to
//! real Envoy, proxyless gRPC clients and the embedded router.
//!
//! Architecture invariant: the feed is a pure function of the routing state
//! and the router settings; nothing here reads the database or the runtime.

mod ads;
pub mod bootstrap;
mod feed;
pub mod snapshot;
pub mod translate;

pub use ads::{Ads, MAX_REQUEST_BYTES};
pub use bootstrap::Bootstrap;
pub use feed::{ClientStatus, Feed, Rejection};
pub use snapshot::{Snapshot, Subscription};
