//! What every command needs: the profile, a connection, the app, output.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use deis_client::proto::tonic::{Code, Response, Status};
use deis_client::v2::{GetPlatformInfoRequest, GetPlatformInfoResponse};
use deis_client::{ConnectOptions, DeisClient, describe_status, terminate};
use tokio::sync::OnceCell;

use crate::git::{self, AppRef, Builder};
use crate::output::Output;
use crate::profile::{self, Profile};

/// Global state of one invocation.
pub(crate) struct Ctx {
    /// `-c/--config` or `DEIS_PROFILE`, as given.
    pub(crate) profile_selector: Option<String>,
    /// How to print.
    pub(crate) out: Output,
}

impl Ctx {
    /// The profile file in use.
    pub(crate) fn profile_path(&self) -> Result<PathBuf> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        profile::resolve_path(self.profile_selector.as_deref(), home.as_deref())
    }

    /// The saved login, or the "not logged in" error.
    pub(crate) fn load_profile(&self) -> Result<Profile> {
        profile::load(&self.profile_path()?)
    }

    /// Connects to `controller`.
    pub(crate) async fn connect(
        &self,
        controller: &str,
        token: Option<String>,
        ssl_verify: bool,
    ) -> Result<DeisClient> {
        connect(controller, token, ssl_verify).await
    }

    /// Loads the profile; the connection is made by the first call, so
    /// argument mistakes are reported before any network traffic.
    pub(crate) fn session(&self) -> Result<Session> {
        Ok(Session {
            profile: self.load_profile()?,
            client: OnceCell::new(),
        })
    }
}

async fn connect(controller: &str, token: Option<String>, ssl_verify: bool) -> Result<DeisClient> {
    let options = ConnectOptions {
        tls_verify: ssl_verify,
        user_agent: format!("deis-cli/{}", env!("CARGO_PKG_VERSION")),
        ..ConnectOptions::default()
    };
    Ok(DeisClient::connect_with(controller, token, &options).await?)
}

/// A logged-in profile and, once needed, its connection.
pub(crate) struct Session {
    /// The profile it came from.
    pub(crate) profile: Profile,
    client: OnceCell<DeisClient>,
}

impl Session {
    /// What the platform says of itself (GetPlatformInfo), for notes that
    /// are a nicety: `None` from a controller that cannot say.
    pub(crate) async fn platform_info(&self) -> Option<GetPlatformInfoResponse> {
        let client = self.client().await.ok()?;
        call(client.platform().get_platform_info(GetPlatformInfoRequest {}))
            .await
            .ok()
    }

    /// The connection, carrying the profile's token (connects on first use).
    pub(crate) async fn client(&self) -> Result<&DeisClient> {
        let profile = &self.profile;
        self.client
            .get_or_try_init(|| {
                connect(
                    &profile.controller,
                    Some(profile.token.clone()),
                    profile.ssl_verify,
                )
            })
            .await
    }

    /// Where `git push` goes for this controller.
    pub(crate) fn builder(&self) -> Builder {
        Builder::from_profile(&self.profile)
    }

    /// The app from `-a`, a git remote, or the directory name.
    pub(crate) fn app(&self, flag: Option<&str>) -> Result<AppRef> {
        git::detect_app(flag, &self.builder())
    }

    /// The page size: `-l` if given, else the profile's.
    pub(crate) fn limit(&self, flag: Option<i32>) -> i32 {
        flag.filter(|l| *l > 0).unwrap_or_else(|| self.profile.limit())
    }
}

/// Awaits an RPC and turns a failure into the user-facing sentence.
pub(crate) async fn call<T>(rpc: impl Future<Output = Result<Response<T>, Status>>) -> Result<T> {
    rpc.await
        .map(Response::into_inner)
        .map_err(|status| anyhow!(describe_status(&status)))
}

/// [`call`] for an app-scoped RPC: when the app was guessed and the
/// controller does not know it, say how to name the app.
pub(crate) async fn call_app<T>(
    app: &AppRef,
    rpc: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<T> {
    rpc.await
        .map(Response::into_inner)
        .map_err(|status| anyhow!(describe_app_error(&status, app)))
}

/// The sentence for a failed app-scoped call, with the hint on naming the
/// app only when the controller says the app itself does not exist (not a
/// release, domain, user or process type of it).
pub(crate) fn describe_app_error(status: &Status, app: &AppRef) -> String {
    let message = describe_status(status);
    match app.hint() {
        Some(hint) if is_missing_app(status, &app.name) => format!("{} {hint}", terminate(&message)),
        _ => message,
    }
}

/// Whether `status` is the controller's "App <name> does not exist."
fn is_missing_app(status: &Status, name: &str) -> bool {
    status.code() == Code::NotFound
        && status.message().trim().trim_end_matches('.') == format!("App {name} does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::AppSource;

    fn guessed(name: &str) -> AppRef {
        AppRef {
            name: name.into(),
            source: AppSource::Remote("deis".into()),
        }
    }

    #[test]
    fn the_app_hint_follows_only_a_missing_app() {
        let app = guessed("myapp");
        let missing = describe_app_error(&Status::not_found("App myapp does not exist."), &app);
        assert_eq!(
            missing,
            "App myapp does not exist. The app name `myapp` comes from git remote `deis`; pass -a <app> to choose another."
        );
        // Without the controller's full stop, one is added before the hint.
        let bare = describe_app_error(&Status::not_found("App myapp does not exist"), &app);
        assert!(
            bare.starts_with("App myapp does not exist. The app name"),
            "{bare}"
        );
        for other in [
            "Container type worker does not exist in application",
            "Release v99 does not exist.",
            "Domain nothere.com on myapp does not exist.",
            "User nosuchuser does not exist.",
            "App other does not exist.",
        ] {
            assert_eq!(describe_app_error(&Status::not_found(other), &app), other);
        }
        let flagged = AppRef {
            source: AppSource::Flag,
            ..app
        };
        assert_eq!(
            describe_app_error(&Status::not_found("App myapp does not exist."), &flagged),
            "App myapp does not exist."
        );
        let from_dir = AppRef {
            name: "shop".into(),
            source: AppSource::Directory,
        };
        let text = describe_app_error(&Status::not_found("App shop does not exist."), &from_dir);
        assert!(text.contains("guessed from the current directory"), "{text}");
    }
}
