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

/// An on/off app setting with its own topic (`maintenance:*`, `routing:*`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Toggle {
    Maintenance,
    Routing,
}

impl Toggle {
    fn field(self) -> &'static str {
        match self {
            Toggle::Maintenance => "maintenance",
            Toggle::Routing => "routable",
        }
    }

    fn value(self, settings: &AppSettings) -> bool {
        match self {
            Toggle::Maintenance => settings.maintenance,
            Toggle::Routing => settings.routable,
        }
    }

    fn describe(self, on: bool) -> &'static str {
        match (self, on) {
            (Toggle::Maintenance, true) => "Maintenance mode is on.",
            (Toggle::Maintenance, false) => "Maintenance mode is off.",
            (Toggle::Routing, true) => "Routing is enabled.",
            (Toggle::Routing, false) => "Routing is disabled.",
        }
    }

    /// Shows the setting (`turn` is `None`) or turns it on or off.
    pub(crate) async fn run(self, ctx: &Ctx, app: crate::cli::AppArg, turn: Option<bool>) -> Result<()> {
        let s = ctx.session()?;
        let app = s.app(app.get())?;
        let Some(on) = turn else {
            let current = get(&s, &app).await?;
            if ctx.out.json_mode() {
                return ctx
                    .out
                    .json_value(&serde_json::json!({ self.field(): self.value(&current) }));
            }
            ctx.out.line(self.describe(self.value(&current)));
            return Ok(());
        };
        let verb = if on { "Enabling" } else { "Disabling" };
        let (label, change) = match self {
            Toggle::Maintenance => (
                format!("{verb} maintenance mode for {}...", app.name),
                UpdateAppSettingsRequest {
                    maintenance: Some(on),
                    ..Default::default()
                },
            ),
            Toggle::Routing => (
                format!("{verb} routing for {}...", app.name),
                UpdateAppSettingsRequest {
                    routable: Some(on),
                    ..Default::default()
                },
            ),
        };
        update(ctx, &s, &app, &label, change).await.map(drop)
    }
}
