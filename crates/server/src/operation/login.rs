//! Log-in (§5.3): password checks with the same error and about the same time whether the
//! user exists or not, the account lockout, the per-address rate limit, `/verifyPassword` and
//! `/loginAs`.

use std::net::IpAddr;

use chrono::Utc;
use parlor_core::Code;
use parlor_core::object::Object;
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, Filter, FindQuery, Operand};
use parlor_core::schema::ClassSchema;
use parlor_core::value::{as_date, date_value, format_date, now_iso};
use parlor_store::Write;
use serde_json::Value;

use super::hooks::Trigger;
use super::password::{self, Verified};
use super::users::field;
use super::write::equals;
use super::{Auth, OpError, OpResult, Operations};

/// What `POST /login` (or `GET /login`) carries.
#[derive(Debug, Clone, Default)]
pub struct LogIn {
    pub username: Option<Value>,
    pub email: Option<Value>,
    pub password: Option<Value>,
}
fn invalid_login() -> OpError {
    OpError::parse(Code::ObjectNotFound, "Invalid username/password.")
}

impl Operations {
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
        // beforeLogin: after the password check, before the session exists (§10.3).
        let user_auth = Auth {
            user_id: Some(user_id.clone()),
            installation_id: installation_id.map(str::to_owned),
            ..Auth::default()
        };
        let user_json = || {
            let mut json = user.to_json();
            json.retain(|key, _| !key.starts_with('_'));
            Value::Object(json)
        };
        self.run_trigger(
            &user_auth,
            Trigger::BeforeLogin,
            "_User",
            serde_json::json!({"object": user_json()}),
        )
        .await?;
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
        let user_auth = Auth {
            session_token: Some(token.clone()),
            ..user_auth
        };
        if let Err(error) = self
            .run_trigger(
                &user_auth,
                Trigger::AfterLogin,
                "_User",
                serde_json::json!({"object": user_json()}),
            )
            .await
        {
            tracing::warn!("Cloud Code afterLogin failed: {error}");
        }
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
