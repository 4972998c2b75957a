//! AuthService and UsersService: accounts, tokens, administrators.

use deis_core::{Error, validate};
use deis_proto::v2::{
    AdminPerm, CancelAccountRequest, CancelAccountResponse, ChangePasswordRequest, ChangePasswordResponse,
    GrantAdminRequest, GrantAdminResponse, ListAdminsRequest, ListAdminsResponse, ListUsersRequest,
    ListUsersResponse, LoginRequest, LoginResponse, RegenerateTokenRequest, RegenerateTokenResponse,
    RegisterRequest, RegisterResponse, RevokeAdminRequest, RevokeAdminResponse, WhoamiRequest,
    WhoamiResponse, auth_service_server::AuthService, users_service_server::UsersService,
};
use deis_store::{NewUser, PageRequest, StoreError, User};
use tonic::{Request, Response, Status};

use super::Api;
use crate::convert::{self, page_request, paged};
use crate::error::respond;
use crate::{Controller, RegistrationMode};

/// A hash of a random password, verified against when the username is
/// unknown so that a login takes as long for unknown users as for known ones.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| deis_auth::hash_password("not a real password").unwrap_or_default());

fn hash(password: &str) -> deis_core::Result<String> {
    deis_auth::hash_password(password).map_err(|e| Error::internal(e.to_string()))
}

impl Api {
    async fn do_register(&self, request: Request<RegisterRequest>) -> deis_core::Result<RegisterResponse> {
        let caller = self.caller_from(request.metadata()).await?;
        let req = request.into_inner();
        match self.inner.config.registration_mode {
            RegistrationMode::Enabled => {}
            RegistrationMode::Disabled => return Err(Error::permission_denied("Registration is disabled")),
            RegistrationMode::AdminOnly => {
                let first = !self.inner.store.has_users().await?;
                if !first && !caller.as_ref().is_some_and(|u| u.is_superuser) {
                    return Err(Error::permission_denied(
                        "Registration is limited to administrators; ask an administrator to register you.",
                    ));
                }
            }
        }
        validate::username(&req.username).map_err(|e| e.on_field("username"))?;
        validate::password(&req.password).map_err(|e| e.on_field("password"))?;
        validate::email(&req.email).map_err(|e| e.on_field("email"))?;
        for (field, value) in [("first_name", &req.first_name), ("last_name", &req.last_name)] {
            if value.chars().count() > 150 || value.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "{field} must be at most 150 printable characters."
                )));
            }
        }
        let new = NewUser {
            username: req.username,
            email: req.email,
            first_name: req.first_name,
            last_name: req.last_name,
            password_hash: hash(&req.password)?,
        };
        let user = match self.inner.store.create_user(new).await {
            Err(StoreError::Duplicate(_)) => {
                return Err(
                    Error::already_exists("A user with that username already exists.").on_field("username")
                );
            }
            other => other?,
        };
        tracing::info!(username = %user.username, admin = user.is_superuser, "registered user");
        Ok(RegisterResponse {
            user: Some(convert::user(&user)),
        })
    }

    async fn do_login(&self, request: Request<LoginRequest>) -> deis_core::Result<LoginResponse> {
        let addr = request.remote_addr().map(|a| a.ip());
        let req = request.into_inner();
        if let Err(wait) = self.inner.limiter.check(&req.username, addr) {
            return Err(Error::resource_exhausted(format!(
                "Too many failed login attempts; try again in {} seconds.",
                wait.as_secs().max(1)
            )));
        }
        let credentials = self.inner.store.find_user_credentials(&req.username).await?;
        let (user, valid) = match credentials {
            Some((user, stored)) => {
                let valid = user.is_active && deis_auth::verify_password(&req.password, &stored);
                (Some(user), valid)
            }
            None => {
                deis_auth::verify_password(&req.password, &DUMMY_HASH);
                (None, false)
            }
        };
        let Some(user) = user.filter(|_| valid) else {
            self.inner.limiter.record_failure(&req.username, addr);
            return Err(
                Error::unauthenticated("Unable to log in with provided credentials.")
                    .on_field("non_field_errors"),
            );
        };
        self.inner.limiter.record_success(&req.username);
        let issued = deis_auth::issue_token();
        self.inner.store.add_token(&user, &issued.hash).await?;
        Ok(LoginResponse { token: issued.token })
    }

    async fn do_change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> deis_core::Result<ChangePasswordResponse> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        if req.new_password.is_empty() {
            return Err(Error::invalid("new_password is a required field"));
        }
        validate::password(&req.new_password)?;
        let target = if req.username.is_empty() || req.username == caller.username {
            caller.clone()
        } else {
            Controller::require_admin(&caller)?;
            self.find_user(&req.username).await?
        };
        // Administrators may reset someone else's password without knowing it.
        if target.uuid == caller.uuid || !caller.is_superuser {
            if req.password.is_empty() {
                return Err(Error::invalid("password is a required field"));
            }
            let (_, stored) = self
                .inner
                .store
                .find_user_credentials(&target.username)
                .await?
                .ok_or_else(|| Error::not_found("User not found."))?;
            if !deis_auth::verify_password(&req.password, &stored) {
                return Err(Error::unauthenticated("Current password does not match"));
            }
        }
        self.inner
            .store
            .set_password_hash(&target, &hash(&req.new_password)?)
            .await?;
        Ok(ChangePasswordResponse {
            status: "password set".into(),
        })
    }

    async fn do_cancel(
        &self,
        request: Request<CancelAccountRequest>,
    ) -> deis_core::Result<CancelAccountResponse> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        let target = if req.username.is_empty() || req.username == caller.username {
            caller.clone()
        } else {
            Controller::require_admin(&caller)?;
            self.find_user(&req.username).await?
        };
        if target.is_superuser {
            let admins = self
                .inner
                .store
                .list_admins(PageRequest { limit: 2, offset: 0 })
                .await?;
            if admins.count <= 1 {
                return Err(Error::conflict(format!(
                    "{} is the last administrator; make another user an administrator first.",
                    target.username
                )));
            }
        }
        self.inner.store.delete_user(&target).await?;
        // Their certificates went with them.
        self.routing_changed();
        tracing::info!(username = %target.username, by = %caller.username, "cancelled account");
        Ok(CancelAccountResponse {})
    }

    async fn do_regenerate(
        &self,
        request: Request<RegenerateTokenRequest>,
    ) -> deis_core::Result<RegenerateTokenResponse> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        if req.all {
            Controller::require_admin(&caller)?;
            self.inner.store.revoke_all_tokens().await?;
            return Ok(RegenerateTokenResponse { token: String::new() });
        }
        let target = if req.username.is_empty() || req.username == caller.username {
            caller
        } else {
            Controller::require_admin(&caller)?;
            self.find_user(&req.username).await?
        };
        let issued = deis_auth::issue_token();
        self.inner.store.replace_tokens(&target, &issued.hash).await?;
        Ok(RegenerateTokenResponse { token: issued.token })
    }

    async fn admin_target(&self, caller: &User, username: &str) -> deis_core::Result<User> {
        Controller::require_admin(caller)?;
        self.find_user(username).await
    }
}

#[tonic::async_trait]
impl AuthService for Api {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        respond(self.do_register(request).await)
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        respond(self.do_login(request).await)
    }

    async fn whoami(&self, request: Request<WhoamiRequest>) -> Result<Response<WhoamiResponse>, Status> {
        respond(self.caller(&request).await.map(|u| WhoamiResponse {
            user: Some(convert::user(&u)),
        }))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        respond(self.do_change_password(request).await)
    }

    async fn cancel_account(
        &self,
        request: Request<CancelAccountRequest>,
    ) -> Result<Response<CancelAccountResponse>, Status> {
        respond(self.do_cancel(request).await)
    }

    async fn regenerate_token(
        &self,
        request: Request<RegenerateTokenRequest>,
    ) -> Result<Response<RegenerateTokenResponse>, Status> {
        respond(self.do_regenerate(request).await)
    }
}

#[tonic::async_trait]
impl UsersService for Api {
    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        respond(
            async {
                let caller = self.caller(&request).await?;
                Controller::require_admin(&caller)?;
                let req = request.into_inner();
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_users(paging).await?;
                Ok(paged("/v2/users", paging, &page, convert::user))
            }
            .await,
        )
    }

    async fn list_admins(
        &self,
        request: Request<ListAdminsRequest>,
    ) -> Result<Response<ListAdminsResponse>, Status> {
        respond(
            async {
                let caller = self.caller(&request).await?;
                Controller::require_admin(&caller)?;
                let req = request.into_inner();
                let paging = page_request(req.limit, req.offset)?;
                let page = self.inner.store.list_admins(paging).await?;
                Ok(paged("/v2/admin/perms", paging, &page, |u| AdminPerm {
                    username: u.username.clone(),
                    is_superuser: u.is_superuser,
                }))
            }
            .await,
        )
    }

    async fn grant_admin(
        &self,
        request: Request<GrantAdminRequest>,
    ) -> Result<Response<GrantAdminResponse>, Status> {
        respond(async {
            let caller = self.caller(&request).await?;
            let target = self.admin_target(&caller, &request.get_ref().username).await?;
            self.inner.store.set_admin(&target, true).await?;
            tracing::info!(username = %target.username, by = %caller.username, "granted administrator rights");
            Ok(GrantAdminResponse {})
        }
        .await)
    }

    async fn revoke_admin(
        &self,
        request: Request<RevokeAdminRequest>,
    ) -> Result<Response<RevokeAdminResponse>, Status> {
        respond(async {
            let caller = self.caller(&request).await?;
            let target = self.admin_target(&caller, &request.get_ref().username).await?;
            if !target.is_superuser {
                return Err(Error::not_found(format!("{} is not an administrator.", target.username)));
            }
            let admins = self.inner.store.list_admins(PageRequest { limit: 2, offset: 0 }).await?;
            if admins.count <= 1 {
                return Err(Error::conflict(format!("{} is the last administrator.", target.username)));
            }
            self.inner.store.set_admin(&target, false).await?;
            tracing::info!(username = %target.username, by = %caller.username, "revoked administrator rights");
            Ok(RevokeAdminResponse {})
        }
        .await)
    }
}
