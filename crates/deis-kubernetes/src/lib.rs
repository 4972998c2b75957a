//! The platform on Kubernetes: the [`Scheduler`](deis_scheduler::Scheduler)
//! that runs apps on a cluster, as Deis Workflow did.
//!
//! Architecture: [`render`] turns an app's desired state (a
//! [`DeploySpec`](deis_scheduler::DeploySpec)) into Kubernetes objects with
//! pure functions; [`KubeScheduler`] applies them with server-side apply,
//! waits for rollouts, lists pods as processes, runs one-off pods, and
//! publishes the apps' ready endpoints (from EndpointSlices) to the same
//! routing feed the local runtime feeds. [`build::KubeBuildExecutor`] runs
//! the builder's builds as Jobs.
//!
//! Tested without a cluster (none can run on the machines this is built
//! on): the rendered objects against the Kubernetes schemas
//! (`kubernetes-validate --strict`) and snapshots, and the scheduler end
//! to end against `deis-kube-fake`, an in-memory API server.

pub mod build;
pub mod endpoints;
pub mod live;
pub mod render;
mod run;
mod scheduler;

pub use build::{BuildJobSettings, KubeBuildExecutor};
pub use live::{DESIRED_HASH, Live};
pub use render::{AppObjects, Settings};
pub use scheduler::{ConvergeReport, FIELD_MANAGER, KubeScheduler, Timing, process_info, rolled_out};
