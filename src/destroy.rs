//! What happens beyond the controller when an app is destroyed: the
//! controller deletes the app's records, stops its processes, forgets its
//! routes and logs, and announces it; the builder, which the controller
//! does not depend on, drops the app's repository and build objects here,
//! and the registry its image repository.

use std::sync::Arc;

use deis_builder::Builder;
use deis_controller::AppDestroyed;
use deis_registry::Registry;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Drops the builder's data (when it runs in this process) and the image
/// repository of every app the controller destroys, until the controller
/// goes away.
pub(crate) async fn forget_destroyed_apps(
    mut destroyed: Receiver<AppDestroyed>,
    builder: Option<Arc<Builder>>,
    registry: Registry,
) {
    loop {
        match destroyed.recv().await {
            Ok(AppDestroyed { app }) => {
                if let Some(builder) = &builder
                    && let Err(err) = builder.forget_app(&app).await
                {
                    tracing::warn!(%app, error = %err, "the destroyed app's build data is left behind");
                }
                if let Err(err) = registry.delete_repository(&app).await {
                    tracing::warn!(%app, error = %err, "the destroyed app's images are left behind");
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "missed app destroy events: those apps' repositories, build objects and images are left behind"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}
