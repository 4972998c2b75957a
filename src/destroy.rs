//! What happens beyond the controller when an app is destroyed: the
//! controller deletes the app's records, stops its processes, forgets its
//! routes and logs, and announces it; the builder, which the controller
//! does not depend on, drops the app's repository and build objects here.

use std::sync::Arc;

use deis_builder::Builder;
use deis_controller::AppDestroyed;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// Drops the builder's data of every app the controller destroys, until the
/// controller goes away.
pub(crate) async fn forget_destroyed_apps(mut destroyed: Receiver<AppDestroyed>, builder: Arc<Builder>) {
    loop {
        match destroyed.recv().await {
            Ok(AppDestroyed { app }) => {
                if let Err(err) = builder.forget_app(&app).await {
                    tracing::warn!(%app, error = %err, "the destroyed app's build data is left behind");
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "missed app destroy events: those apps' repositories and build objects are left behind"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}
