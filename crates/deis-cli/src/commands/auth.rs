//! `auth:*`: accounts, logins and tokens.

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, Subcommand};
use deis_client::proto::tonic::{Code, Response, Status};
use deis_client::v2::{
    CancelAccountRequest, ChangePasswordRequest, GetPlatformInfoRequest, GetPlatformInfoResponse,
    LoginRequest, RegenerateTokenRequest, RegisterRequest, WhoamiRequest,
};
use deis_client::{ControllerUrl, DeisClient, describe_status, terminate};
use serde_json::json;

use crate::context::{Ctx, call};
use crate::output;
use crate::profile::{self, DEFAULT_RESPONSE_LIMIT, Profile};
use crate::prompt;

/// `auth:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Register a new user with a controller
    ///
    /// Prompts for the username, password (twice) and email unless given.
    /// When the current profile is logged in to the same controller, its token
    /// is sent along, so an administrator can register users when
    /// registration is restricted to administrators.
    #[command(name = "auth:register", visible_alias = "register")]
    Register {
        /// The controller URL, e.g. http://deis.example.com or 127.0.0.1:8000
        controller: String,
        /// The new user's name
        #[arg(long)]
        username: Option<String>,
        /// The new user's password
        #[arg(long)]
        password: Option<String>,
        /// The new user's email
        #[arg(long)]
        email: Option<String>,
        /// Log in as the new user afterwards (--login=false to stay as you are)
        #[arg(long, value_name = "BOOL", action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        login: bool,
        /// Verify the controller's TLS certificate
        #[arg(long = "ssl-verify", value_name = "BOOL", action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        ssl_verify: bool,
    },
    /// Log in to a controller
    #[command(name = "auth:login", visible_alias = "login")]
    Login {
        /// The controller URL, e.g. http://deis.example.com or 127.0.0.1:8000
        controller: String,
        /// The username
        #[arg(long)]
        username: Option<String>,
        /// The password
        #[arg(long)]
        password: Option<String>,
        /// Verify the controller's TLS certificate
        #[arg(long = "ssl-verify", value_name = "BOOL", action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        ssl_verify: bool,
    },
    /// Log out from the current controller
    #[command(name = "auth:logout", visible_alias = "logout")]
    Logout,
    /// Change a password
    ///
    /// Administrators may change another user's password with --username,
    /// without knowing the current one.
    #[command(name = "auth:passwd", visible_alias = "passwd")]
    Passwd {
        /// The user whose password changes [default: you]
        #[arg(long)]
        username: Option<String>,
        /// The current password
        #[arg(long)]
        password: Option<String>,
        /// The new password
        #[arg(long = "new-password", value_name = "NEW_PASSWORD")]
        new_password: Option<String>,
    },
    /// Display the current user
    #[command(name = "auth:whoami", visible_alias = "whoami")]
    Whoami {
        /// Fetch and show every field of your account
        #[arg(long)]
        all: bool,
    },
    /// Display your API token (the password for `docker login` to the registry)
    #[command(name = "auth:token")]
    Token,
    /// Cancel an account (it must own no apps)
    #[command(name = "auth:cancel")]
    Cancel {
        /// The account to cancel [default: yours]; administrators may cancel others
        #[arg(long)]
        username: Option<String>,
        /// Accepted for compatibility with Deis; the saved token identifies you
        #[arg(long, hide = true)]
        password: Option<String>,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// Regenerate an API token
    ///
    /// Revokes the token and issues a new one. Administrators may do so for
    /// another user (--username) or for everyone (--all).
    #[command(name = "auth:regenerate")]
    Regenerate {
        /// The user whose token is regenerated [default: you]
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Regenerate every user's token
        #[arg(long, conflicts_with = "username")]
        all: bool,
    },
}

/// Runs an `auth:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Register {
            controller,
            username,
            password,
            email,
            login,
            ssl_verify,
        } => register(ctx, &controller, username, password, email, login, ssl_verify).await,
        Cmd::Login {
            controller,
            username,
            password,
            ssl_verify,
        } => login(ctx, &controller, username, password, ssl_verify).await,
        Cmd::Logout => {
            profile::delete(&ctx.profile_path()?)?;
            ctx.out.say("Logged out");
            Ok(())
        }
        Cmd::Passwd {
            username,
            password,
            new_password,
        } => passwd(ctx, username, password, new_password).await,
        Cmd::Whoami { all } => whoami(ctx, all).await,
        Cmd::Token => token(ctx),
        Cmd::Cancel {
            username,
            password: _,
            yes,
        } => cancel(ctx, username, yes).await,
        Cmd::Regenerate { username, all } => regenerate(ctx, username, all).await,
    }
}

/// Connects without a token (or with `token`) and checks that a controller
/// answers there, returning what it says about itself.
async fn reach(
    ctx: &Ctx,
    controller: &str,
    token: Option<String>,
    ssl_verify: bool,
) -> Result<(DeisClient, GetPlatformInfoResponse)> {
    let client = ctx.connect(controller, token, ssl_verify).await?;
    let info = call(client.platform().get_platform_info(GetPlatformInfoRequest {}))
        .await
        .with_context(|| format!("{} does not look like a Deis controller", client.url()))?;
    Ok((client, info))
}

async fn register(
    ctx: &Ctx,
    controller: &str,
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
    login_after: bool,
    ssl_verify: bool,
) -> Result<()> {
    let url = ControllerUrl::parse(controller)?;
    // An administrator registering someone else in admin_only mode must be
    // authenticated: reuse the current login when it is for this controller.
    let token = profile::load_optional(&ctx.profile_path()?)
        .filter(|p| ControllerUrl::parse(&p.controller).is_ok_and(|u| u == url))
        .map(|p| p.token);
    let (client, info) = reach(ctx, url.as_str(), token, ssl_verify).await?;

    let username = match username {
        Some(u) => u,
        None => prompt::required("username: ", "a username", "--username")?,
    };
    let password = match password {
        Some(p) => p,
        None => prompt::new_password(
            "password",
            "--password",
            "Password mismatch, aborting registration.",
        )?,
    };
    let email = match email {
        Some(e) => e,
        None => prompt::line("email: ")?.unwrap_or_default().trim().to_owned(),
    };
    let request = RegisterRequest {
        username: username.clone(),
        password: password.clone(),
        email,
        ..Default::default()
    };
    let mut result = client.auth().register(request.clone()).await;
    if client.has_token() && result.as_ref().is_err_and(|s| s.code() == Code::Unauthenticated) {
        // The saved token is stale; registering needs none unless
        // registration is limited to administrators.
        result = client.with_token(None)?.auth().register(request).await;
    }
    let user = result
        .map(Response::into_inner)
        .map_err(|status| anyhow!(describe_status(&status)))
        .context("Registration failed")?;
    ctx.out.say(format!("Registered {username}"));
    if login_after {
        do_login(
            ctx,
            &client.with_token(None)?,
            &info,
            &username,
            &password,
            ssl_verify,
        )
        .await?;
    }
    if ctx.out.json_mode() {
        ctx.out.json(&user)?;
    }
    Ok(())
}

async fn login(
    ctx: &Ctx,
    controller: &str,
    username: Option<String>,
    password: Option<String>,
    ssl_verify: bool,
) -> Result<()> {
    let (client, info) = reach(ctx, controller, None, ssl_verify).await?;
    let username = match username {
        Some(u) => u,
        None => prompt::required("username: ", "a username", "--username")?,
    };
    let password = match password {
        Some(p) => p,
        None => prompt::password("password: ", "--password")?,
    };
    do_login(ctx, &client, &info, &username, &password, ssl_verify).await
}

/// Exchanges credentials for a token and saves the profile.
async fn do_login(
    ctx: &Ctx,
    client: &DeisClient,
    info: &GetPlatformInfoResponse,
    username: &str,
    password: &str,
    ssl_verify: bool,
) -> Result<()> {
    let request = LoginRequest {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let token = client
        .auth()
        .login(request)
        .await
        .map_err(|status| anyhow!(login_error(&status)))?
        .into_inner()
        .token;
    let path = ctx.profile_path()?;
    let response_limit = profile::load_optional(&path).map_or(DEFAULT_RESPONSE_LIMIT, |p| p.response_limit);
    let saved = Profile {
        username: username.to_owned(),
        ssl_verify,
        controller: client.url().as_str().to_owned(),
        token,
        response_limit,
        builder_host: Some(info.builder_host.clone()).filter(|h| !h.is_empty()),
        builder_port: u16::try_from(info.builder_port).ok().filter(|p| *p != 0),
        platform_domain: Some(info.platform_domain.clone()).filter(|d| !d.is_empty()),
    };
    profile::save(&path, &saved)?;
    ctx.out.say(format!("Logged in as {username}"));
    ctx.out
        .say(format!("Configuration file written to {}", path.display()));
    Ok(())
}

async fn passwd(
    ctx: &Ctx,
    username: Option<String>,
    password: Option<String>,
    new_password: Option<String>,
) -> Result<()> {
    let s = ctx.session()?;
    // Administrators changing someone else's password need not know it.
    let password = match (password, &username) {
        (Some(p), _) => p,
        (None, Some(_)) => String::new(),
        (None, None) => prompt::password("current password: ", "--password")?,
    };
    let new_password = match new_password {
        Some(p) => p,
        None => prompt::new_password(
            "new password",
            "--new-password",
            "Password mismatch, not changing.",
        )?,
    };
    let request = ChangePasswordRequest {
        password,
        new_password,
        username: username.unwrap_or_default(),
    };
    s.client().await?.auth().change_password(request).await.map_err(
        |status| match wrong_current_password(&status) {
            Some(sentence) => anyhow!(sentence),
            None => anyhow!(describe_status(&status)).context("Password change failed"),
        },
    )?;
    ctx.out.say("Password change succeeded.");
    Ok(())
}

/// Why a login failed: refused credentials are a typing matter, not a
/// matter of logging in again.
fn login_error(status: &Status) -> String {
    if status.code() != Code::Unauthenticated {
        return describe_status(status);
    }
    let message = status.message().trim().trim_end_matches('.');
    let message = if message.is_empty() {
        "Unable to log in with provided credentials"
    } else {
        message
    };
    format!("{message}; check the username and password.")
}

/// The controller's "Current password does not match", as just that.
fn wrong_current_password(status: &Status) -> Option<String> {
    let message = status.message().trim();
    (status.code() == Code::Unauthenticated
        && message.trim_end_matches('.') == "Current password does not match")
        .then(|| terminate(message))
}

/// Prints the saved token, as `heroku auth:token` does.
fn token(ctx: &Ctx) -> Result<()> {
    let profile = ctx.load_profile()?;
    if profile.token.is_empty() {
        anyhow::bail!("Not logged in; log in with `deis login`.");
    }
    if ctx.out.json_mode() {
        return ctx
            .out
            .json_value(&json!({"username": profile.username, "token": profile.token}));
    }
    ctx.out.line(&profile.token);
    Ok(())
}

async fn whoami(ctx: &Ctx, all: bool) -> Result<()> {
    if !all {
        let profile = ctx.load_profile()?;
        if ctx.out.json_mode() {
            return ctx
                .out
                .json_value(&json!({"username": profile.username, "controller": profile.controller}));
        }
        ctx.out
            .line(format!("You are {} at {}", profile.username, profile.controller));
        return Ok(());
    }
    let s = ctx.session()?;
    let user = call(s.client().await?.auth().whoami(WhoamiRequest {}))
        .await?
        .user
        .unwrap_or_default();
    if ctx.out.json_mode() {
        return ctx.out.json(&user);
    }
    let rows = [
        ("username", user.username.clone()),
        ("email", user.email.clone()),
        ("first_name", user.first_name.clone()),
        ("last_name", user.last_name.clone()),
        ("is_superuser", user.is_superuser.to_string()),
        ("is_staff", user.is_staff.to_string()),
        ("is_active", user.is_active.to_string()),
        ("last_login", output::time(user.last_login.as_ref())),
        ("date_joined", output::time(user.date_joined.as_ref())),
    ];
    ctx.out
        .line(ctx.out.kv_table(rows.map(|(k, v)| (k.to_owned(), v))));
    Ok(())
}

async fn cancel(ctx: &Ctx, username: Option<String>, yes: bool) -> Result<()> {
    let s = ctx.session()?;
    let target = username.clone().unwrap_or_else(|| s.profile.username.clone());
    if !yes {
        if !prompt::stdin_is_tty() {
            bail!("refusing to cancel the account {target} without confirmation; re-run with --yes");
        }
        let question = format!("cancel account {target} at {}? (y/N): ", s.profile.controller);
        if !prompt::confirm(&question)? {
            ctx.out.note("Account not changed");
            return Ok(());
        }
    }
    let request = CancelAccountRequest {
        username: username.unwrap_or_default(),
    };
    call(s.client().await?.auth().cancel_account(request)).await?;
    if target == s.profile.username {
        profile::delete(&ctx.profile_path()?)?;
    }
    ctx.out.say("Account cancelled");
    Ok(())
}

async fn regenerate(ctx: &Ctx, username: Option<String>, all: bool) -> Result<()> {
    let s = ctx.session()?;
    let yourself = username.is_none() && !all;
    let request = RegenerateTokenRequest {
        username: username.unwrap_or_default(),
        all,
    };
    let token = call(s.client().await?.auth().regenerate_token(request))
        .await?
        .token;
    if yourself {
        if token.is_empty() {
            return Err(anyhow!(
                "the controller returned no new token; run `deis login {}` again",
                s.profile.controller
            ));
        }
        let saved = Profile {
            token,
            ..s.profile.clone()
        };
        profile::save(&ctx.profile_path()?, &saved)?;
    }
    ctx.out.say("Token Regenerated");
    if all {
        ctx.out.note(format!(
            "Every token was revoked, yours included; run `deis login {}` to log in again.",
            s.profile.controller
        ));
    }
    Ok(())
}
