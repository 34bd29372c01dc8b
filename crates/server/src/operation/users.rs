//! Users and sessions (§5): sign-up, log-in, log-out, the current user, password changes,
//! `authData` log-in (anonymous users), and the `_Session` objects behind session tokens.
//!
//! Sign-up and log-in write the user and its session in one transaction. Passwords are
//! hashed in [`super::password`]; a failed log-in costs the same time whether the user exists
//! or not, counts towards the account lockout, and answers the same error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use parlor_core::object::{Acl, Object, Permission};
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::{ClassSchema, FieldType};
use parlor_core::value::{as_date, as_pointer, date_value, format_date, now_iso, pointer_value};
use parlor_core::{Code, Error};
use parlor_store::{Write, WriteOutcome};
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::password::{self, Verified};
use super::write::{PlannedWrite, WriteResponse, equals};
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
}

impl Default for AccountConfig {
    fn default() -> AccountConfig {
        AccountConfig {
            session_length: Duration::from_secs(31_536_000),
            lockout_threshold: 5,
            lockout_duration: Duration::from_secs(300),
            login_attempts_per_minute: 60,
        }
    }
}

/// Log-in attempts per client address in the current minute: a fixed window is enough to
/// stop password guessing at speed, and costs one small map.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimiter {
    /// Counts an attempt; `false` when the address is over its limit.
    fn admit(&self, ip: IpAddr, per_minute: u32) -> bool {
        if per_minute == 0 {
            return true;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let now = Instant::now();
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= per_minute
    }
}

/// What `POST /login` (or `GET /login`) carries.
#[derive(Debug, Clone, Default)]
pub struct LogIn {
    pub username: Option<Value>,
    pub email: Option<Value>,
    pub password: Option<Value>,
}

/// `r:` and 32 lowercase hex digits: 128 random bits.
pub fn new_session_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("r:{hex}")
}

fn invalid_login() -> OpError {
    OpError::parse(Code::ObjectNotFound, "Invalid username/password.")
}

fn invalid_session() -> OpError {
    OpError::parse(Code::InvalidSessionToken, "Invalid session token")
}

fn field(schema: &ClassSchema, name: &str) -> FieldRef {
    FieldRef {
        field: name.to_owned(),
        path: Vec::new(),
        field_type: schema.field_type(name).cloned(),
    }
}

fn user_pointer(user_id: &str) -> Operand {
    Operand::Pointer {
        class_name: "_User".to_owned(),
        object_id: user_id.to_owned(),
    }
}

impl Operations {
    fn class(&self, class_name: &str) -> OpResult<std::sync::Arc<ClassSchema>> {
        self.schemas
            .get(class_name)
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    /// Plans a new `_Session` for a user; returns the plan and its token.
    async fn plan_session(
        &self,
        user_id: &str,
        action: &str,
        provider: &str,
        installation_id: Option<&str>,
    ) -> OpResult<(PlannedWrite, String)> {
        let token = new_session_token();
        let length = chrono::Duration::from_std(self.config.accounts.session_length)
            .unwrap_or(chrono::Duration::days(365));
        let mut body = Map::new();
        body.insert("sessionToken".into(), token.clone().into());
        body.insert("user".into(), pointer_value("_User", user_id));
        body.insert(
            "createdWith".into(),
            json!({"action": action, "authProvider": provider}),
        );
        body.insert(
            "expiresAt".into(),
            date_value(&format_date(Utc::now() + length)),
        );
        if let Some(installation_id) = installation_id {
            body.insert("installationId".into(), installation_id.into());
        }
        let plan = self.plan_create(&Auth::master(), "_Session", &body).await?;
        Ok((plan, token))
    }

    /// Plans deleting every session of the user.
    pub(super) async fn plan_end_user_sessions(
        &self,
        user_id: &str,
    ) -> OpResult<Vec<PlannedWrite>> {
        self.plan_end_sessions(user_id, None).await
    }

    /// Plans deleting the user's sessions (all, or those of one installation).
    async fn plan_end_sessions(
        &self,
        user_id: &str,
        installation_id: Option<&str>,
    ) -> OpResult<Vec<PlannedWrite>> {
        let sessions = self.class("_Session")?;
        let mut filter = equals(&sessions, "user", user_pointer(user_id));
        if let Some(installation_id) = installation_id {
            filter = filter.and(equals(
                &sessions,
                "installationId",
                Operand::String(installation_id.to_owned()),
            ));
        }
        let found = self
            .store
            .find(&sessions, &FindQuery::filter(filter))
            .await?;
        let mut plans = Vec::with_capacity(found.len());
        for session in found {
            plans.push(
                self.plan_delete(&Auth::master(), "_Session", &session.object_id)
                    .await?,
            );
        }
        Ok(plans)
    }

    /// The user of a session token. Unknown and expired tokens are `209`.
    pub async fn resolve_session(&self, token: &str) -> OpResult<String> {
        let Some(sessions) = self.schemas.get("_Session") else {
            return Err(invalid_session());
        };
        let by_token = equals(&sessions, "sessionToken", Operand::String(token.to_owned()));
        let Some(session) = self.find_first(&sessions, by_token).await? else {
            return Err(invalid_session());
        };
        let expires_at = session.fields.get("expiresAt").and_then(as_date);
        if expires_at.is_some_and(|expires_at| expires_at <= now_iso()) {
            return Err(OpError::parse(
                Code::InvalidSessionToken,
                "Session token is expired.",
            ));
        }
        session
            .fields
            .get("user")
            .and_then(as_pointer)
            .map(|(_, user_id)| user_id.to_owned())
            .ok_or_else(invalid_session)
    }

    /// `POST /users` (and `POST /classes/_User`): signs up, or logs in with `authData`.
    pub async fn sign_up(&self, auth: &Auth, body: &Map<String, Value>) -> OpResult<WriteResponse> {
        if let Some(auth_data) = body.get("authData").filter(|value| !value.is_null()) {
            return self.log_in_with_auth_data(auth, auth_data, body).await;
        }
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
        self.create_user(auth, body.clone(), "password").await
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
        let mut linked: Option<(String, String)> = None;
        for (provider, data) in providers {
            if data.is_null() {
                continue;
            }
            let id = self.auth_providers.validate(provider, data).await?;
            linked.get_or_insert((provider.clone(), id));
        }
        let Some((provider, id)) = linked else {
            return Err(OpError::parse(
                Code::UnsupportedService,
                "This authentication method is unsupported.",
            ));
        };
        let users = self.class("_User")?;
        let by_link = Filter::Cond {
            field: FieldRef {
                field: "authData".into(),
                path: vec![provider.clone(), "id".into()],
                field_type: Some(FieldType::Object),
            },
            cond: Cond::Eq(Operand::String(id.clone())),
        };
        let query = FindQuery {
            limit: Some(1),
            ..FindQuery::filter(by_link)
        };
        if let Some(user) = self.store.find(&users, &query).await?.into_iter().next() {
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

    /// `POST /login` and `GET /login`.
    pub async fn log_in(
        &self,
        request: LogIn,
        installation_id: Option<&str>,
        client_ip: IpAddr,
    ) -> OpResult<Value> {
        if !self
            .login_limiter
            .admit(client_ip, self.config.accounts.login_attempts_per_minute)
        {
            return Err(OpError::parse(
                Code::ConnectionFailed,
                "Too many log-in attempts; try again in a minute.",
            ));
        }
        let username = request.username.as_ref().filter(|value| !value.is_null());
        let email = request.email.as_ref().filter(|value| !value.is_null());
        if username.is_none() && email.is_none() {
            return Err(OpError::parse(
                Code::UsernameMissing,
                "username/email is required.",
            ));
        }
        let Some(password_value) = request.password.filter(|value| !value.is_null()) else {
            return Err(OpError::parse(
                Code::PasswordMissing,
                "password is required.",
            ));
        };
        let (Some(identity), Some(password)) = (
            username.or(email).and_then(Value::as_str),
            password_value.as_str(),
        ) else {
            return Err(invalid_login());
        };
        let users = self.class("_User")?;
        // PS matches the username, or else the email (§5.3).
        let by_name = Filter::Cond {
            field: field(&users, "username"),
            cond: Cond::Eq(Operand::String(identity.to_owned())),
        };
        let by_email = Filter::Cond {
            field: field(&users, "email"),
            cond: Cond::EqIgnoreCase(identity.to_owned()),
        };
        let filter = match (username.is_some(), email.is_some()) {
            (true, _) => Filter::Or(vec![by_name, by_email]),
            (false, _) => by_email,
        };
        let found = self
            .store
            .find(
                &users,
                &FindQuery {
                    limit: Some(1),
                    ..FindQuery::filter(filter)
                },
            )
            .await?;
        let user = found.into_iter().next();
        let stored_hash = user
            .as_ref()
            .and_then(|user| user.fields.get("_hashed_password"))
            .and_then(Value::as_str)
            .unwrap_or(password::DECOY_HASH)
            .to_owned();
        if let Some(user) = &user
            && let Some(until) = user
                .fields
                .get("_account_lockout_expires_at")
                .and_then(as_date)
            && until > now_iso()
        {
            let minutes = self.config.accounts.lockout_duration.as_secs().div_ceil(60);
            return Err(OpError::parse(
                Code::ObjectNotFound,
                format!(
                    "Your account is locked due to multiple failed login attempts. Please try again after {minutes} minute(s)"
                ),
            ));
        }
        let verified = password::verify(password.to_owned(), stored_hash).await;
        let Some(user) = user else {
            return Err(invalid_login());
        };
        if verified == Verified::No {
            self.count_failed_login(&users, &user).await?;
            return Err(invalid_login());
        }
        // An empty ACL makes a user master-only: it cannot log in (§7.1).
        if user.acl.as_ref().is_some_and(|acl| acl.entries.is_empty()) {
            return Err(invalid_login());
        }
        let user_id = user.object_id.clone();
        // A new log-in from the same installation replaces that installation's session; other
        // devices (and clients that send no installation id) keep theirs (§5.3).
        let mut plans = match installation_id {
            Some(installation_id) => {
                self.plan_end_sessions(&user_id, Some(installation_id))
                    .await?
            }
            None => Vec::new(),
        };
        let mut resets = Vec::new();
        if user
            .fields
            .get("_failed_login_count")
            .and_then(Value::as_f64)
            .is_some_and(|count| count > 0.0)
            || user.fields.contains_key("_account_lockout_expires_at")
        {
            resets.push(FieldUpdate {
                field: "_failed_login_count".into(),
                path: Vec::new(),
                op: FieldOp::Delete,
            });
            resets.push(FieldUpdate {
                field: "_account_lockout_expires_at".into(),
                path: Vec::new(),
                op: FieldOp::Delete,
            });
        }
        if verified == Verified::YesRehash {
            let hashed = password::hash(password.to_owned()).await?;
            resets.push(FieldUpdate {
                field: "_hashed_password".into(),
                path: Vec::new(),
                op: FieldOp::Set(Value::String(hashed)),
            });
        }
        let (session, token) = self
            .plan_session(&user_id, "login", "password", installation_id)
            .await?;
        plans.push(session);
        let mut writes: Vec<Write> = Vec::new();
        if !resets.is_empty() {
            writes.push(Write::Update {
                schema: users.clone(),
                object_id: user_id.clone(),
                guard: Filter::True,
                updates: resets,
                updated_at: user.updated_at.clone(),
            });
        }
        self.store.write(writes).await?;
        self.commit(plans).await?;
        let mut rendered = self.render_self(&users, user, &user_id).await?;
        rendered.insert("sessionToken".into(), token.into());
        Ok(Value::Object(rendered))
    }

    /// Counts a failed log-in; at the threshold the account locks for the configured time.
    async fn count_failed_login(
        &self,
        users: &std::sync::Arc<ClassSchema>,
        user: &Object,
    ) -> OpResult<()> {
        let threshold = self.config.accounts.lockout_threshold;
        if threshold == 0 {
            return Ok(());
        }
        let failures = user
            .fields
            .get("_failed_login_count")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        let updates = if failures >= u64::from(threshold) {
            let length = chrono::Duration::from_std(self.config.accounts.lockout_duration)
                .unwrap_or(chrono::Duration::minutes(5));
            vec![
                FieldUpdate {
                    field: "_failed_login_count".into(),
                    path: Vec::new(),
                    op: FieldOp::Delete,
                },
                FieldUpdate {
                    field: "_account_lockout_expires_at".into(),
                    path: Vec::new(),
                    op: FieldOp::Set(date_value(&format_date(Utc::now() + length))),
                },
            ]
        } else {
            vec![FieldUpdate {
                field: "_failed_login_count".into(),
                path: Vec::new(),
                op: FieldOp::Increment(serde_json::Number::from(1)),
            }]
        };
        let write = Write::Update {
            schema: users.clone(),
            object_id: user.object_id.clone(),
            guard: Filter::True,
            updates,
            updated_at: user.updated_at.clone(),
        };
        self.store.write(vec![write]).await?;
        Ok(())
    }

    /// A user as the user itself reads it (no hidden fields but the server's own).
    async fn render_self(
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

    /// `POST /logout`: ends the caller's session.
    pub async fn log_out(&self, auth: &Auth) -> OpResult<Value> {
        if let Some(token) = &auth.session_token {
            let sessions = self.class("_Session")?;
            let filter = equals(&sessions, "sessionToken", Operand::String(token.clone()));
            for session in self
                .store
                .find(&sessions, &FindQuery::filter(filter))
                .await?
            {
                let plan = self
                    .plan_delete(&Auth::master(), "_Session", &session.object_id)
                    .await?;
                self.commit(vec![plan]).await?;
            }
        }
        Ok(json!({}))
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

    /// `GET /sessions/me`.
    pub async fn current_session(&self, auth: &Auth) -> OpResult<Value> {
        let Some(token) = &auth.session_token else {
            return Err(OpError::parse(
                Code::InvalidSessionToken,
                "Session token not found.",
            ));
        };
        let sessions = self.class("_Session")?;
        let filter = equals(&sessions, "sessionToken", Operand::String(token.clone()));
        let Some(session) = self.find_first(&sessions, filter).await? else {
            return Err(OpError::parse(
                Code::InvalidSessionToken,
                "Session token not found.",
            ));
        };
        Ok(Value::Object(
            self.render_one(&Auth::master(), &sessions, session).await?,
        ))
    }

    /// `PUT /users/:id`: only the user itself (or the master key). A new password ends the
    /// user's sessions; a user changing its own password gets a new session in the answer.
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
        let plan = self.plan_update(auth, "_User", user_id, &body).await?;
        let password_changed = plan.password_changed();
        let mut plans = vec![plan];
        let mut new_token = None;
        if password_changed {
            plans.extend(self.plan_end_sessions(user_id, None).await?);
            if !auth.master && auth.user_id.as_deref() == Some(user_id) {
                let (session, token) = self
                    .plan_session(
                        user_id,
                        "login",
                        "password",
                        auth.installation_id.as_deref(),
                    )
                    .await?;
                plans.push(session);
                new_token = Some(token);
            }
        }
        let mut responses = self.commit(plans).await.map_err(map_user_conflict)?;
        let mut response = responses.swap_remove(0);
        if let Some(token) = new_token {
            response.body["sessionToken"] = token.into();
        }
        Ok(response)
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

    /// `POST /sessions`: a further session for the caller's user.
    pub async fn create_session(
        &self,
        auth: &Auth,
        body: &Map<String, Value>,
    ) -> OpResult<WriteResponse> {
        if auth.master {
            return self
                .commit_one(self.plan_create(auth, "_Session", body).await?)
                .await;
        }
        let Some(user_id) = &auth.user_id else {
            return Err(invalid_session());
        };
        if body.contains_key("ACL") {
            return Err(OpError::parse(
                Code::InvalidKeyName,
                "Cannot set ACL on a Session.",
            ));
        }
        let installation_id = body
            .get("installationId")
            .and_then(Value::as_str)
            .or(auth.installation_id.as_deref());
        let (plan, token) = self
            .plan_session(user_id, "create", "password", installation_id)
            .await?;
        let mut response = self.commit_one(plan).await?;
        if let WriteOutcome::Created(session) = &response.outcome {
            let sessions = self.class("_Session")?;
            let mut rendered = self
                .render_one(&Auth::master(), &sessions, session.clone())
                .await?;
            rendered.insert("sessionToken".into(), token.into());
            response.body = Value::Object(rendered);
        }
        Ok(response)
    }

    /// `POST /loginAs` (master key): a session for any user.
    pub async fn log_in_as(&self, auth: &Auth, user_id: Option<&str>) -> OpResult<Value> {
        super::schema::require_master(auth)?;
        let Some(user_id) = user_id.filter(|id| !id.is_empty()) else {
            return Err(OpError::parse(
                Code::InvalidValue,
                "userId must not be empty, null, or undefined",
            ));
        };
        let users = self.class("_User")?;
        let filter = equals(&users, "objectId", Operand::String(user_id.to_owned()));
        let Some(user) = self.find_first(&users, filter).await? else {
            return Err(OpError::parse(Code::ObjectNotFound, "user not found"));
        };
        let (session, token) = self
            .plan_session(
                user_id,
                "login",
                "masterkey",
                auth.installation_id.as_deref(),
            )
            .await?;
        self.commit(vec![session]).await?;
        let mut rendered = self.render_self(&users, user, user_id).await?;
        rendered.insert("sessionToken".into(), token.into());
        Ok(Value::Object(rendered))
    }

    /// `GET`/`POST /verifyPassword`: checks a password without creating a session.
    pub async fn verify_password(&self, request: LogIn, client_ip: IpAddr) -> OpResult<Value> {
        if !self
            .login_limiter
            .admit(client_ip, self.config.accounts.login_attempts_per_minute)
        {
            return Err(OpError::parse(
                Code::ConnectionFailed,
                "Too many log-in attempts; try again in a minute.",
            ));
        }
        let identity = request
            .username
            .as_ref()
            .or(request.email.as_ref())
            .and_then(Value::as_str);
        let (Some(identity), Some(password)) =
            (identity, request.password.as_ref().and_then(Value::as_str))
        else {
            return Err(OpError::parse(
                Code::UsernameMissing,
                "username/email is required.",
            ));
        };
        let users = self.class("_User")?;
        let filter = Filter::Or(vec![
            Filter::Cond {
                field: field(&users, "username"),
                cond: Cond::Eq(Operand::String(identity.to_owned())),
            },
            Filter::Cond {
                field: field(&users, "email"),
                cond: Cond::EqIgnoreCase(identity.to_owned()),
            },
        ]);
        let user = self.find_first(&users, filter).await?;
        let stored = user
            .as_ref()
            .and_then(|user| user.fields.get("_hashed_password"))
            .and_then(Value::as_str)
            .unwrap_or(password::DECOY_HASH)
            .to_owned();
        let verified = password::verify(password.to_owned(), stored).await;
        match user {
            Some(user) if verified != Verified::No => {
                let user_id = user.object_id.clone();
                Ok(Value::Object(
                    self.render_self(&users, user, &user_id).await?,
                ))
            }
            _ => Err(invalid_login()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_have_128_random_bits() {
        let token = new_session_token();
        assert_eq!(token.len(), 34);
        assert!(token.starts_with("r:"));
        assert!(
            token[2..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(token, new_session_token());
    }

    #[test]
    fn the_login_limiter_counts_per_address_and_minute() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!((0..3).all(|_| limiter.admit(ip, 3)));
        assert!(!limiter.admit(ip, 3));
        assert!(limiter.admit(other, 3));
        assert!(limiter.admit(ip, 0));
    }
}
