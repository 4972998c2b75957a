//! Shared calls for the topics stored in app settings (autoscale, labels,
//! maintenance, routing).

use anyhow::Result;
use deis_client::v2::{AppSettings, GetAppSettingsRequest, UpdateAppSettingsRequest};

use crate::context::{Ctx, Session, call_app};
use crate::git::AppRef;

/// The app's current settings.
pub(crate) async fn get(s: &Session, app: &AppRef) -> Result<AppSettings> {
    let request = GetAppSettingsRequest {
        app: app.name.clone(),
    };
    Ok(
        call_app(app, s.client().await?.settings().get_app_settings(request))
            .await?
            .settings
            .unwrap_or_default(),
    )
}

/// Applies a settings change behind a spinner, prints `<label> done` and
/// returns the new settings (printed as JSON in `--json` mode).
pub(crate) async fn update(
    ctx: &Ctx,
    s: &Session,
    app: &AppRef,
    label: &str,
    change: UpdateAppSettingsRequest,
) -> Result<AppSettings> {
    let request = UpdateAppSettingsRequest {
        app: app.name.clone(),
        ..change
    };
    let response = ctx
        .out
        .progress(
            label,
            call_app(app, s.client().await?.settings().update_app_settings(request)),
        )
        .await?;
    let settings = response.settings.unwrap_or_default();
    ctx.out.say(format!("{label} done"));
    if ctx.out.json_mode() {
        ctx.out.json(&settings)?;
    }
    Ok(settings)
}
