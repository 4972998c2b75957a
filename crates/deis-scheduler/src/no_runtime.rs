//! A scheduler for a controller that runs without any runtime attached
//! (for example a split deployment whose runtime is not up yet). It keeps no
//! state and says plainly that nothing can be started.

use std::collections::BTreeMap;

use crate::{
    Capabilities, DeploySpec, EndpointsWatch, Enforcement, ProcessInfo, ProcessSelector, RunIo, RunSpec,
    Scheduler, SchedulerError,
};

/// Refuses to start anything, lists nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRuntime;

const NO_RUNTIME: &str = "No runtime is attached to this controller, so no process can be started.";

#[async_trait::async_trait]
impl Scheduler for NoRuntime {
    async fn deploy(&self, _: &DeploySpec) -> Result<(), SchedulerError> {
        Err(SchedulerError::Unavailable(NO_RUNTIME.into()))
    }

    async fn scale(&self, _: &DeploySpec) -> Result<(), SchedulerError> {
        Err(SchedulerError::Unavailable(NO_RUNTIME.into()))
    }

    async fn restart(&self, _: &str, _: &ProcessSelector) -> Result<Vec<ProcessInfo>, SchedulerError> {
        Err(SchedulerError::Unavailable(NO_RUNTIME.into()))
    }

    async fn run_attached(&self, _: &RunSpec, _: RunIo) -> Result<i32, SchedulerError> {
        Err(SchedulerError::Unavailable(NO_RUNTIME.into()))
    }

    async fn list(&self, _: &str) -> Result<Vec<ProcessInfo>, SchedulerError> {
        Ok(Vec::new())
    }

    async fn destroy(&self, _: &str) -> Result<(), SchedulerError> {
        Ok(())
    }

    async fn check_tags(&self, _: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        // There are no nodes to match against; tags are recorded and applied
        // by whichever runtime is attached later.
        Ok(())
    }

    fn endpoints(&self) -> EndpointsWatch {
        crate::no_endpoints()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            memory_limits: Enforcement::NotEnforced,
            cpu_limits: Enforcement::NotEnforced,
            autoscaling: Enforcement::NotEnforced,
        }
    }
}
