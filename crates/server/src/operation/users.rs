//! Users (§5): sign-up (with `authData` log-in for anonymous users), the current user, updates
//! and deletes of one's own user, password changes that end the user's sessions.
//!
//! Sign-up writes the user and its first session in one transaction. Log-in is in
//! [`super::login`], sessions in [`super::sessions`], hashing in [`super::password`].

use std::time::Duration;

use parlor_core::object::{Acl, Object, Permission};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::{Code, Error};
use parlor_store::WriteOutcome;
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::sessions::invalid_session;
use super::write::{WriteResponse, equals};
use super::{Auth, OpError, OpResult, Operations};

/// Settings of accounts and sessions.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// How long a session lasts (Parse's `sessionLength`).
    pub session_length: Duration,
    /// Failed log-ins in a row that lock an account; 0 turns the lockout off.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked.
    pub lockout_duration: Duration,
    /// Log-in attempts allowed per client address per minute; 0: no limit.
    pub login_attempts_per_minute: u32,
    /// Whether logged-in users find each other's public profiles ([`super::user_directory`]).
    pub user_directory: bool,
    /// Directory listings one user may request per minute; 0: no limit.
    pub directory_searches_per_minute: u32,
}

impl Default for AccountConfig {
    fn default() -> AccountConfig {
        AccountConfig {
            session_length: Duration::from_secs(31_536_000),
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(300),
            login_attempts_per_minute: 60,
            user_directory: true,
            directory_searches_per_minute: 120,
        }
    }
}

pub(super) fn field(schema: &ClassSchema, name: &str) -> FieldRef {
    FieldRef {
        field: name.to_owned(),
        path: Vec::new(),
        field_type: schema.field_type(name).cloned(),
    }
}

pub(super) fn user_pointer(user_id: &str) -> Operand {
    Operand::Pointer {
        class_name: "_User".to_owned(),
        object_id: user_id.to_owned(),
    }
}

impl Operations {
    pub(super) fn class(&self, class_name: &str) -> OpResult<std::sync::Arc<ClassSchema>> {
        self.schemas
            .get(class_name)
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    /// `POST /users` (and `POST /classes/_User`): signs up, or logs in with `authData`.
    pub async fn sign_up(&self, auth: &Auth, body: &Map<String, Value>) -> OpResult<WriteResponse> {
        // `authData` whose providers are all `null` links nothing (the SDK's sign-up of an
        // anonymous user unlinks it so): a plain sign-up.
        let links_nothing = |value: &Value| match value {
            Value::Null => true,
            Value::Object(links) => !links.is_empty() && links.values().all(Value::is_null),
            _ => false,
        };
        if let Some(auth_data) = body.get("authData").filter(|value| !links_nothing(value)) {
            return self.log_in_with_auth_data(auth, auth_data, body).await;
        }
        let mut body = body.clone();
        body.remove("authData");
        let username = body
            .get("username")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty());
        let Some(username) = username else {
            return Err(OpError::parse(
                Code::UsernameMissing,
                "bad or missing username",
            ));
        };
        if body
            .get("password")
            .and_then(Value::as_str)
            .is_none_or(|password| password.is_empty())
        {
            return Err(OpError::parse(
                Code::PasswordMissing,
                "password is required",
            ));
        }
        self.check_unique_identity(Some(username), body.get("email"), None)
            .await?;
        self.create_user(auth, body, "password").await
    }

    /// Username and email are unique, ignoring letter case (`202`/`203`); an email must look
    /// like one (`125`).
    async fn check_unique_identity(
        &self,
        username: Option<&str>,
        email: Option<&Value>,
        except: Option<&str>,
    ) -> OpResult<()> {
        let users = self.class("_User")?;
        let taken = |field_name: &str, value: &str| {
            let mut filter = Filter::Cond {
                field: field(&users, field_name),
                cond: Cond::EqIgnoreCase(value.to_owned()),
            };
            if let Some(except) = except {
                filter = filter.and(Filter::Cond {
                    field: field(&users, "objectId"),
                    cond: Cond::Ne(Operand::String(except.to_owned())),
                });
            }
            FindQuery {
                limit: Some(1),
                ..FindQuery::filter(filter)
            }
        };
        if let Some(username) = username
            && !self
                .store
                .find(&users, &taken("username", username))
                .await?
                .is_empty()
        {
            return Err(OpError::parse(
                Code::UsernameTaken,
                "Account already exists for this username.",
            ));
        }
        match email {
            None | Some(Value::Null) => {}
            Some(Value::String(email)) => {
                let looks_like_email = email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
                if !looks_like_email {
                    return Err(OpError::parse(
                        Code::InvalidEmailAddress,
                        "Email address format is invalid.",
                    ));
                }
                if !self
                    .store
                    .find(&users, &taken("email", email))
                    .await?
                    .is_empty()
                {
                    return Err(OpError::parse(
                        Code::EmailTaken,
                        "Account already exists for this email address.",
                    ));
                }
            }
            Some(_) => {
                return Err(OpError::parse(
                    Code::InvalidEmailAddress,
                    "Email address format is invalid.",
                ));
            }
        }
        Ok(())
    }

    /// Creates a user and its first session in one transaction.
    async fn create_user(
        &self,
        auth: &Auth,
        body: Map<String, Value>,
        provider: &str,
    ) -> OpResult<WriteResponse> {
        let mut plan = self.plan_create(auth, "_User", &body).await?;
        let Some(user) = plan.created_object_mut() else {
            return Err(OpError::Parse(Error::internal()));
        };
        // Whatever ACL the client sends, the owner keeps read and write (§5.2).
        let user_id = user.object_id.clone();
        let mut acl = user.acl.take().unwrap_or_default();
        acl.entries.insert(
            user_id.clone(),
            Permission {
                read: true,
                write: true,
            },
        );
        user.acl = Some(acl);
        let (session, token) = self
            .plan_session(
                &user_id,
                "signup",
                provider,
                auth.installation_id.as_deref(),
            )
            .await?;
        let mut responses = self
            .commit(vec![plan, session])
            .await
            .map_err(map_user_conflict)?;
        let mut response = responses.swap_remove(0);
        response.body["sessionToken"] = token.into();
        Ok(response)
    }

    /// `authData` sign-up or log-in (§5.5): an existing link logs in (`200`), a new one signs
    /// up (`201`, with a random username).
    async fn log_in_with_auth_data(
        &self,
        auth: &Auth,
        auth_data: &Value,
        body: &Map<String, Value>,
    ) -> OpResult<WriteResponse> {
        let providers = auth_data
            .as_object()
            .filter(|map| !map.is_empty())
            .ok_or_else(|| {
                OpError::parse(
                    Code::UnsupportedService,
                    "This authentication method is unsupported.",
                )
            })?;
        let mut linked: Option<(String, Value)> = None;
        for (provider, data) in providers {
            if data.is_null() {
                continue;
            }
            let id = self.validate_auth_data(auth, provider, data).await?;
            linked.get_or_insert((provider.clone(), id));
        }
        let Some((provider, id)) = linked else {
            return Err(OpError::parse(
                Code::UnsupportedService,
                "This authentication method is unsupported.",
            ));
        };
        let users = self.class("_User")?;
        if let Some(user) = self.linked_user(&users, &provider, &id).await? {
            let (session, token) = self
                .plan_session(
                    &user.object_id,
                    "login",
                    &provider,
                    auth.installation_id.as_deref(),
                )
                .await?;
            let user_id = user.object_id.clone();
            let mut plans = match auth.installation_id.as_deref() {
                Some(installation_id) => {
                    self.plan_end_sessions(&user_id, Some(installation_id))
                        .await?
                }
                None => Vec::new(),
            };
            plans.push(session);
            self.commit(plans).await?;
            let mut rendered = self.render_self(&users, user, &user_id).await?;
            rendered.insert("sessionToken".into(), token.into());
            return Ok(WriteResponse {
                status: 200,
                body: Value::Object(rendered),
                location: None,
                outcome: WriteOutcome::Deleted(Object::default()),
            });
        }
        let mut body = body.clone();
        let generated = body.get("username").and_then(Value::as_str).is_none();
        if generated {
            let username: String = (0..25)
                .map(|_| (b'a' + rand::rng().random_range(0..26u8)) as char)
                .collect();
            body.insert("username".into(), username.into());
        } else {
            self.check_unique_identity(
                body.get("username").and_then(Value::as_str),
                body.get("email"),
                None,
            )
            .await?;
        }
        body.insert(
            "authData".into(),
            json!({ provider.clone(): auth_data[&provider].clone() }),
        );
        let username = body.get("username").cloned();
        let mut response = self.create_user(auth, body, &provider).await?;
        if generated && let Some(username) = username {
            response.body["username"] = username;
        }
        Ok(response)
    }

    /// A user as the user itself reads it (no hidden fields but the server's own).
    pub(super) async fn render_self(
        &self,
        users: &ClassSchema,
        user: Object,
        user_id: &str,
    ) -> OpResult<Map<String, Value>> {
        let reader = Auth {
            user_id: Some(user_id.to_owned()),
            ..Auth::default()
        };
        self.render_one(&reader, users, user).await
    }

    /// `GET /users/me`.
    pub async fn current_user(&self, auth: &Auth) -> OpResult<Value> {
        let (Some(user_id), Some(token)) = (&auth.user_id, &auth.session_token) else {
            return Err(invalid_session());
        };
        let users = self.class("_User")?;
        let filter = equals(&users, "objectId", Operand::String(user_id.clone()));
        let Some(user) = self.find_first(&users, filter).await? else {
            return Err(invalid_session());
        };
        let mut rendered = self.render_self(&users, user, user_id).await?;
        rendered.insert("sessionToken".into(), token.clone().into());
        Ok(Value::Object(rendered))
    }

    /// `PUT /users/:id`: only the user itself (or the master key). A new password ends the
    /// user's sessions but the one that made the change, as Parse Server does (the SDKs keep
    /// using their token; a fresh one in the answer would be ignored and the next call fail).
    pub async fn update_user(
        &self,
        auth: &Auth,
        user_id: &str,
        body: &Map<String, Value>,
    ) -> OpResult<WriteResponse> {
        // An admin of the chat template may change another user's `role`, and nothing else.
        let admin_setting_role = !auth.master
            && !body.is_empty()
            && body.keys().all(|key| key == "role")
            && auth
                .user_id
                .as_deref()
                .is_some_and(|caller| caller != user_id)
            && self.caller_is_admin(auth).await?;
        if admin_setting_role {
            let plan = self
                .plan_update(&Auth::master(), "_User", user_id, body)
                .await?;
            return self.commit_one(plan).await;
        }
        if !auth.master {
            match &auth.user_id {
                None => {
                    return Err(OpError::parse(
                        Code::SessionMissing,
                        format!("Cannot modify user {user_id}."),
                    ));
                }
                Some(caller) if caller != user_id => {
                    return Err(OpError::parse(Code::SessionMissing, "Insufficient auth."));
                }
                Some(_) => {}
            }
        }
        let username = body.get("username").and_then(Value::as_str);
        if body.contains_key("username") && username.is_none_or(str::is_empty) {
            return Err(OpError::parse(
                Code::UsernameMissing,
                "bad or missing username",
            ));
        }
        self.check_unique_identity(username, body.get("email"), Some(user_id))
            .await?;
        let mut body = body.clone();
        if !auth.master
            && let Some(acl) = body.get("ACL").filter(|acl| acl.is_object())
        {
            // A user cannot lock itself out of its own object (§7.2).
            let mut acl = Acl::from_json(acl)?;
            acl.entries.insert(
                user_id.to_owned(),
                Permission {
                    read: true,
                    write: true,
                },
            );
            body.insert("ACL".into(), acl.to_json());
        }
        if let Some(Value::Object(links)) = body.get("authData") {
            let merged = self.linked_auth_data(auth, user_id, links).await?;
            body.insert("authData".into(), merged);
        }
        let plan = self.plan_update(auth, "_User", user_id, &body).await?;
        let password_changed = plan.password_changed();
        let mut plans = vec![plan];
        if password_changed {
            let own_session = auth
                .session_token
                .as_deref()
                .filter(|_| !auth.master && auth.user_id.as_deref() == Some(user_id));
            plans.extend(self.plan_end_sessions_but(user_id, own_session).await?);
        }
        let mut responses = self.commit(plans).await.map_err(map_user_conflict)?;
        Ok(responses.swap_remove(0))
    }

    /// The user whose `authData.<provider>.id` is `id`, if any.
    async fn linked_user(
        &self,
        users: &ClassSchema,
        provider: &str,
        id: &Value,
    ) -> OpResult<Option<Object>> {
        let id = match id {
            Value::Number(number) => Operand::Number(number.as_f64().unwrap_or_default()),
            other => Operand::String(other.as_str().unwrap_or_default().to_owned()),
        };
        let by_link = Filter::Cond {
            field: FieldRef {
                field: "authData".into(),
                path: vec![provider.to_owned(), "id".into()],
                field_type: Some(FieldType::Object),
            },
            cond: Cond::Eq(id),
        };
        self.find_first(users, by_link).await
    }

    /// The user's `authData` after an update's links (Parse's link and unlink): a provider
    /// given as `null` is removed, another is set — its data validated (unless unchanged or
    /// set with the master key) and refused with `208` when another user holds that
    /// account — and the providers not named are kept. A `Delete` when none is left.
    async fn linked_auth_data(
        &self,
        auth: &Auth,
        user_id: &str,
        links: &Map<String, Value>,
    ) -> OpResult<Value> {
        let users = self.class("_User")?;
        let filter = equals(&users, "objectId", Operand::String(user_id.to_owned()));
        let current = self.find_first(&users, filter).await?;
        let mut merged = current
            .and_then(|user| {
                user.fields
                    .get("authData")
                    .and_then(Value::as_object)
                    .cloned()
            })
            .unwrap_or_default();
        for (provider, data) in links {
            if data.is_null() {
                merged.remove(provider);
                continue;
            }
            if !auth.master && merged.get(provider) != Some(data) {
                let id = self.validate_auth_data(auth, provider, data).await?;
                let holder = self.linked_user(&users, provider, &id).await?;
                if holder.is_some_and(|holder| holder.object_id != user_id) {
                    return Err(OpError::parse(
                        Code::AccountAlreadyLinked,
                        "this auth is already used",
                    ));
                }
            }
            merged.insert(provider.clone(), data.clone());
        }
        Ok(if merged.is_empty() {
            json!({"__op": "Delete"})
        } else {
            Value::Object(merged)
        })
    }

    /// `DELETE /users/:id`: only the user itself (or the master key); its sessions go too.
    pub async fn delete_user(&self, auth: &Auth, user_id: &str) -> OpResult<Value> {
        if !auth.master && auth.user_id.as_deref() != Some(user_id) {
            return Err(OpError::parse(
                Code::SessionMissing,
                "Insufficient auth to delete user",
            ));
        }
        let mut plans = vec![self.plan_delete(auth, "_User", user_id).await?];
        plans.extend(self.plan_end_sessions(user_id, None).await?);
        self.commit(plans).await?;
        Ok(json!({}))
    }
}

/// A unique-index conflict on `_User` is a username or email taken by a concurrent sign-up.
fn map_user_conflict(error: OpError) -> OpError {
    match error {
        OpError::Store(parlor_store::StoreError::DuplicateValue) => OpError::parse(
            Code::UsernameTaken,
            "Account already exists for this username.",
        ),
        other => other,
    }
}
