//! Who is calling, and what they may do.
//!
//! Roles per app follow Deis: the owner and administrators may do anything;
//! collaborators everything except destroy, share and transfer; anyone else
//! nothing. Keys and certificates belong to their user alone.

use deis_core::{Error, Resource};
use deis_store::{App, User};
use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::Controller;

/// What an operation on an app needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading the app and its resources.
    Read,
    /// Changing config, builds, domains, scale... (collaborators too).
    Write,
    /// Destroying, sharing or transferring (owner and administrators only).
    Own,
}

/// The caller's relation to an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Admin,
    Owner,
    Collaborator,
    Stranger,
}

impl Role {
    fn allows(self, access: Access) -> bool {
        match self {
            Role::Admin | Role::Owner => true,
            Role::Collaborator => access != Access::Own,
            Role::Stranger => false,
        }
    }
}

/// The token in `authorization: token <key>` (keyword case-insensitive).
fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?.trim();
    let (keyword, token) = value.split_once(char::is_whitespace)?;
    keyword
        .eq_ignore_ascii_case("token")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Controller {
    /// The authenticated user, or UNAUTHENTICATED.
    pub(crate) async fn caller<T>(&self, request: &Request<T>) -> deis_core::Result<User> {
        self.caller_from(request.metadata()).await?.ok_or_else(|| {
            Error::unauthenticated("Authentication credentials were not provided; log in with `deis login`.")
        })
    }

    /// The authenticated user if a token was sent; an error if it is bad.
    pub(crate) async fn caller_from(&self, metadata: &MetadataMap) -> deis_core::Result<Option<User>> {
        let Some(token) = bearer_token(metadata) else {
            return Ok(None);
        };
        // The lookup is by the token's hash: the plain token is never stored,
        // and the hash comparison happens inside the database index.
        let hash = deis_auth::token_hash(token);
        match self.inner.store.find_user_by_token(&hash).await? {
            Some(user) => Ok(Some(user)),
            None => Err(Error::unauthenticated(
                "Invalid token; log in again with `deis login`.",
            )),
        }
    }

    /// Requires an administrator.
    pub(crate) fn require_admin(user: &User) -> deis_core::Result<()> {
        if user.is_superuser {
            Ok(())
        } else {
            Err(Error::permission_denied(
                "You do not have permission to perform this action.",
            ))
        }
    }

    /// The caller's role on an app.
    pub(crate) async fn role(&self, user: &User, app: &App) -> deis_core::Result<Role> {
        Ok(if user.is_superuser {
            Role::Admin
        } else if app.owner_uuid == user.uuid {
            Role::Owner
        } else if self.inner.store.is_collaborator(app, user).await? {
            Role::Collaborator
        } else {
            Role::Stranger
        })
    }

    /// Loads an app and checks the caller may access it as asked.
    pub(crate) async fn app_for(&self, user: &User, id: &str, access: Access) -> deis_core::Result<App> {
        let app = self.find_app(id).await?;
        self.authorize(user, &app, access).await?;
        Ok(app)
    }

    /// Checks the caller may access an app as asked.
    pub(crate) async fn authorize(&self, user: &User, app: &App, access: Access) -> deis_core::Result<Role> {
        let role = self.role(user, app).await?;
        if role.allows(access) {
            Ok(role)
        } else {
            Err(Error::permission_denied(
                "You do not have permission to perform this action.",
            ))
        }
    }

    /// An app by id, or NOT_FOUND.
    pub(crate) async fn find_app(&self, id: &str) -> deis_core::Result<App> {
        self.inner
            .store
            .find_app(id)
            .await?
            .ok_or_else(|| Error::no_such(Resource::App, id))
    }

    /// A user by name, or NOT_FOUND.
    pub(crate) async fn find_user(&self, username: &str) -> deis_core::Result<User> {
        self.inner
            .store
            .find_user(username)
            .await?
            .ok_or_else(|| Error::no_such(Resource::User, username))
    }
}

/// What a caller of the container registry asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageScope<'a> {
    /// Only to know it is logged in (the registry's `/v2/` check).
    Login,
    /// To list every repository (administrators only: it names every app).
    Catalog,
    /// To pull the images of an app.
    Pull(&'a str),
    /// To push (or delete) images of an app.
    Push(&'a str),
}

/// The controller's answer to a registry caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageVerdict {
    /// The username and token do not belong together.
    BadCredentials,
    /// A known user without the permission (or the app does not exist).
    Denied,
    /// Go ahead.
    Allowed,
}

impl Controller {
    /// Decides a container registry request from a user's credentials as
    /// `docker login` sends them: the username and an API token (the one
    /// `deis login` stored) as the password. Reading an app's images needs
    /// read access to the app, pushing needs write access, as for the
    /// app's other resources.
    pub async fn image_access(
        &self,
        username: &str,
        token: &str,
        scope: ImageScope<'_>,
    ) -> deis_core::Result<ImageVerdict> {
        let hash = deis_auth::token_hash(token);
        let Some(user) = self.inner.store.find_user_by_token(&hash).await? else {
            return Ok(ImageVerdict::BadCredentials);
        };
        if user.username != username {
            return Ok(ImageVerdict::BadCredentials);
        }
        let (app, access) = match scope {
            ImageScope::Login => return Ok(ImageVerdict::Allowed),
            ImageScope::Catalog => {
                return Ok(if user.is_superuser {
                    ImageVerdict::Allowed
                } else {
                    ImageVerdict::Denied
                });
            }
            ImageScope::Pull(app) => (app, Access::Read),
            ImageScope::Push(app) => (app, Access::Write),
        };
        let Some(app) = self.inner.store.find_app(app).await? else {
            return Ok(ImageVerdict::Denied);
        };
        Ok(if self.role(&user, &app).await?.allows(access) {
            ImageVerdict::Allowed
        } else {
            ImageVerdict::Denied
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_keyword_is_case_insensitive() {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", "Token abc".parse().unwrap());
        assert_eq!(bearer_token(&metadata), Some("abc"));
        metadata.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&metadata), None);
        metadata.insert("authorization", "token ".parse().unwrap());
        assert_eq!(bearer_token(&metadata), None);
    }

    #[test]
    fn roles() {
        assert!(Role::Collaborator.allows(Access::Write));
        assert!(!Role::Collaborator.allows(Access::Own));
        assert!(!Role::Stranger.allows(Access::Read));
        assert!(Role::Owner.allows(Access::Own));
    }
}
