//! The embedded edge router: an HTTP/1.1, HTTP/2, TLS and TCP reverse proxy
//! that runs in the platform's own process and serves whatever
//! [`config::RouterConfig`] it was last given (built from the xDS feed, so it
//! follows the same semantics as Envoy fed the same resources).
//!
//! [`Router::apply`] swaps the whole configuration at once; every request
//! looks the configuration up when it starts, so keep-alive connections pick
//! up new routes without being dropped.

pub mod config;
pub mod xds;

mod access_log;
mod body;
mod drain;
mod headers;
mod lean_server;
mod listener;
mod metrics;
mod pool;
mod proxy;
mod raw;
mod router;
mod routes;
mod tcp;
mod timer;
mod tls;
mod workers;

pub use access_log::{AccessEntry, AccessLog, NoAccessLog, ProxyError, TracingAccessLog, format_heroku};
pub use metrics::RouterMetrics;
pub use router::{ApplyError, Router, RouterOptions};
