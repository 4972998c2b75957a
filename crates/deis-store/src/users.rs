//! Users, tokens and administrator rights.

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::entity::{app, token, user};
use crate::{NewUser, Page, PageRequest, Result, Store, StoreError, User, new_uuid, now};

impl From<user::Model> for User {
    fn from(m: user::Model) -> Self {
        User {
            uuid: m.uuid,
            username: m.username,
            email: m.email,
            first_name: m.first_name,
            last_name: m.last_name,
            is_superuser: m.is_superuser,
            is_staff: m.is_staff,
            is_active: m.is_active,
            date_joined: m.date_joined,
            last_login: m.last_login,
        }
    }
}

impl Store {
    /// Creates a user; the first user ever becomes an administrator.
    /// `Duplicate` if the username is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let txn = self.db.begin().await?;
        let first = user::Entity::find().count(&txn).await? == 0;
        let model = user::ActiveModel {
            uuid: Set(new_uuid()),
            username: Set(new.username),
            email: Set(new.email),
            first_name: Set(new.first_name),
            last_name: Set(new.last_name),
            password_hash: Set(new.password_hash),
            is_superuser: Set(first),
            is_staff: Set(first),
            is_active: Set(true),
            date_joined: Set(now()),
            last_login: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model.into())
    }

    /// Whether any user exists.
    pub async fn has_users(&self) -> Result<bool> {
        Ok(user::Entity::find().limit(1).one(&self.db).await?.is_some())
    }

    /// A user by name.
    pub async fn find_user(&self, username: &str) -> Result<Option<User>> {
        Ok(self.find_user_model(username).await?.map(User::from))
    }

    /// A user by name with the stored password hash.
    pub async fn find_user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        Ok(self.find_user_model(username).await?.map(|m| {
            let hash = m.password_hash.clone();
            (User::from(m), hash)
        }))
    }

    async fn find_user_model(&self, username: &str) -> Result<Option<user::Model>> {
        Ok(user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?)
    }

    /// The active user a token hash belongs to.
    pub async fn find_user_by_token(&self, token_hash: &str) -> Result<Option<User>> {
        let owner = Query::select()
            .column(token::Column::UserUuid)
            .from(token::Entity)
            .and_where(Expr::col(token::Column::TokenHash).eq(token_hash))
            .to_owned();
        let user = user::Entity::find()
            .filter(user::Column::Uuid.in_subquery(owner))
            .filter(user::Column::IsActive.eq(true))
            .one(&self.db)
            .await?;
        Ok(user.map(User::from))
    }

    /// Stores a token hash for a user and records the login time.
    pub async fn add_token(&self, user: &User, token_hash: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        token::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_uuid: Set(user.uuid.clone()),
            created: Set(now()),
        }
        .insert(&txn)
        .await?;
        user::ActiveModel {
            uuid: Set(user.uuid.clone()),
            last_login: Set(Some(now())),
            ..Default::default()
        }
        .update(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Revokes every token of a user and stores a new one, atomically.
    pub async fn replace_tokens(&self, user: &User, token_hash: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        token::Entity::delete_many()
            .filter(token::Column::UserUuid.eq(&user.uuid))
            .exec(&txn)
            .await?;
        token::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_uuid: Set(user.uuid.clone()),
            created: Set(now()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Revokes every token of every user.
    pub async fn revoke_all_tokens(&self) -> Result<()> {
        token::Entity::delete_many().exec(&self.db).await?;
        Ok(())
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&self, user: &User, password_hash: &str) -> Result<()> {
        user::ActiveModel {
            uuid: Set(user.uuid.clone()),
            password_hash: Set(password_hash.to_owned()),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }

    /// Deletes a user with their keys, certificates, tokens and collaborations.
    /// `Conflict` if they still own apps.
    pub async fn delete_user(&self, user: &User) -> Result<()> {
        let txn = self.db.begin().await?;
        let owned = app::Entity::find()
            .filter(app::Column::OwnerUuid.eq(&user.uuid))
            .count(&txn)
            .await?;
        if owned > 0 {
            return Err(StoreError::Conflict(format!(
                "{} still has applications assigned. Delete or transfer ownership",
                user.username
            )));
        }
        user::Entity::delete_by_id(user.uuid.clone()).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Every user, by name.
    pub async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let query = user::Entity::find().order_by_asc(user::Column::Username);
        let count = query.clone().count(&self.db).await?;
        let items = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: items.into_iter().map(User::from).collect(),
        })
    }

    /// The active administrators, by name.
    pub async fn list_admins(&self, page: PageRequest) -> Result<Page<User>> {
        let query = user::Entity::find()
            .filter(user::Column::IsSuperuser.eq(true))
            .filter(user::Column::IsActive.eq(true))
            .order_by_asc(user::Column::Username);
        let count = query.clone().count(&self.db).await?;
        let items = query.offset(page.offset).limit(page.limit).all(&self.db).await?;
        Ok(Page {
            count,
            items: items.into_iter().map(User::from).collect(),
        })
    }

    /// Grants or revokes administrator rights.
    pub async fn set_admin(&self, user: &User, admin: bool) -> Result<()> {
        user::ActiveModel {
            uuid: Set(user.uuid.clone()),
            is_superuser: Set(admin),
            is_staff: Set(admin),
            ..Default::default()
        }
        .update(&self.db)
        .await?;
        Ok(())
    }
}
