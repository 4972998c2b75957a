//! How every component is doing, for `deis-workflow status`: the
//! controller checks what it can see itself (the database, the apps'
//! processes, the logger's drains) and asks the checks the binary registered
//! for the components it wired in (builder, feed, router, object storage).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deis_scheduler::ProcessState;

use crate::Controller;

/// How a component is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentState {
    /// Working.
    Ok,
    /// Working, with warnings.
    Degraded,
    /// Not working.
    Down,
}

/// One component's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentReport {
    /// `builder`, `router`, ...
    pub name: String,
    /// Its version (empty when unknown).
    pub version: String,
    /// Where it listens or what it uses.
    pub address: String,
    /// Its state.
    pub state: ComponentState,
    /// One sentence each.
    pub warnings: Vec<String>,
}

impl ComponentReport {
    /// A report of this version; `Degraded` when there are warnings.
    pub fn new(name: &str, address: impl Into<String>, warnings: Vec<String>) -> ComponentReport {
        ComponentReport {
            name: name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: address.into(),
            state: if warnings.is_empty() {
                ComponentState::Ok
            } else {
                ComponentState::Degraded
            },
            warnings,
        }
    }

    /// A component that does not work, and why.
    pub fn down(name: &str, address: impl Into<String>, why: String) -> ComponentReport {
        ComponentReport {
            state: ComponentState::Down,
            ..ComponentReport::new(name, address, vec![why])
        }
    }
}

/// A check the binary registers for a component it runs.
pub type ComponentCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ComponentReport> + Send>> + Send + Sync>;

impl Controller {
    /// Adds a component to `deis-workflow status`.
    pub fn add_component_check(&self, check: ComponentCheck) {
        self.inner
            .component_checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(check);
    }

    /// Every component's report: the controller's own checks, then the
    /// registered ones, in registration order.
    pub async fn platform_status(&self) -> Vec<ComponentReport> {
        let mut reports = vec![self.database_report().await];
        reports.push(self.apps_report().await);
        reports.push(self.drains_report().await);
        let checks: Vec<ComponentCheck> = self
            .inner
            .component_checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for check in checks {
            reports.push(check().await);
        }
        reports
    }

    async fn database_report(&self) -> ComponentReport {
        let backend = match self.inner.store.backend() {
            deis_store::Backend::Postgres => "postgresql",
            deis_store::Backend::Sqlite => "sqlite",
        };
        match self.inner.store.ping().await {
            Ok(()) => ComponentReport::new("database", backend, Vec::new()),
            Err(e) => {
                ComponentReport::down("database", backend, format!("The database does not answer: {e}."))
            }
        }
    }

    /// Processes that crash (a crash loop shows as `crashed` between
    /// restarts).
    async fn apps_report(&self) -> ComponentReport {
        let names = match self.inner.store.app_names().await {
            Ok(names) => names,
            Err(e) => return ComponentReport::down("runtime", "", format!("Cannot list the apps: {e}.")),
        };
        let mut warnings = Vec::new();
        for app in &names {
            match self.inner.scheduler.list(app).await {
                Ok(processes) => {
                    for p in processes.iter().filter(|p| p.state == ProcessState::Crashed) {
                        warnings.push(format!(
                            "{app}: {} is crash-looping; see `deis logs -a {app}`.",
                            p.name
                        ));
                    }
                }
                Err(e) => warnings.push(format!("{app}: the runtime cannot list its processes: {e}.")),
            }
        }
        ComponentReport::new("runtime", count(names.len(), "app"), warnings)
    }

    /// Drains that are failing, as the logger reports them.
    async fn drains_report(&self) -> ComponentReport {
        let drains = match self.inner.store.all_drains().await {
            Ok(drains) => drains,
            Err(e) => return ComponentReport::down("drains", "", format!("Cannot list the drains: {e}.")),
        };
        let mut apps: Vec<&str> = drains.iter().map(|d| d.app.as_str()).collect();
        apps.dedup();
        let mut warnings = Vec::new();
        for app in apps {
            match self.inner.logs.drain_stats(app).await {
                Ok(stats) => {
                    for stat in stats.iter().filter(|s| !s.healthy && s.last_error.is_some()) {
                        let url = drains
                            .iter()
                            .find(|d| d.uuid == stat.id)
                            .map_or(stat.id.as_str(), |d| d.url.as_str());
                        warnings.push(format!(
                            "{app}: the drain {url} is down ({}); {} lines waiting, {} dropped.",
                            stat.last_error.as_deref().unwrap_or("unknown error"),
                            stat.buffered,
                            stat.dropped
                        ));
                    }
                }
                Err(e) => {
                    return ComponentReport::down("drains", "", format!("The logger does not answer: {e}."));
                }
            }
        }
        ComponentReport::new("drains", count(drains.len(), "drain"), warnings)
    }
}

/// `1 app`, `3 apps`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
