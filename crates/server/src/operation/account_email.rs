//! Account mail (§5.6): password-reset and email-verification requests hand a message with a
//! one-time link to the [`crate::mail::Mailer`]; the links' endpoints finish the flow.
//!
//! A reset request answers `{}` whether or not the address belongs to a user, so it cannot
//! be used to find accounts. Tokens are 128 random bits, stored with the user, single-use.

use std::sync::Arc;

use chrono::Utc;
use parlor_core::ops::{FieldOp, FieldUpdate};
use parlor_core::query::{Cond, FieldRef, Filter, Operand};
use parlor_core::schema::ClassSchema;
use parlor_core::value::{as_date, date_value, format_date, now_iso};
use parlor_core::{Code, Error};
use parlor_store::Write;
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::write::equals;
use super::{Auth, OpError, OpResult, Operations};
use crate::mail::Mail;

/// How long a password-reset link works.
const RESET_LINK_HOURS: i64 = 2;

fn token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn email_of(body: &Map<String, Value>) -> OpResult<String> {
    match body.get("email") {
        None | Some(Value::Null) => Err(OpError::parse(
            Code::EmailMissing,
            "you must provide an email",
        )),
        Some(Value::String(email)) if !email.is_empty() => Ok(email.clone()),
        Some(Value::String(_)) => Err(OpError::parse(
            Code::EmailMissing,
            "you must provide an email",
        )),
        Some(_) => Err(OpError::parse(
            Code::InvalidEmailAddress,
            "you must provide a valid email string",
        )),
    }
}

fn set(field: &str, value: Value) -> FieldUpdate {
    FieldUpdate {
        field: field.to_owned(),
        path: Vec::new(),
        op: FieldOp::Set(value),
    }
}

fn unset(field: &str) -> FieldUpdate {
    FieldUpdate {
        field: field.to_owned(),
        path: Vec::new(),
        op: FieldOp::Delete,
    }
}

fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Operations {
    fn users(&self) -> OpResult<Arc<ClassSchema>> {
        self.schemas
            .get("_User")
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    async fn user_by_email(&self, email: &str) -> OpResult<Option<parlor_core::object::Object>> {
        let users = self.users()?;
        let filter = Filter::Cond {
            field: FieldRef {
                field: "email".into(),
                path: Vec::new(),
                field_type: users.field_type("email").cloned(),
            },
            cond: Cond::EqIgnoreCase(email.to_owned()),
        };
        self.find_first(&users, filter).await
    }

    async fn update_user_fields(&self, user_id: &str, updates: Vec<FieldUpdate>) -> OpResult<()> {
        let write = Write::Update {
            schema: self.users()?,
            object_id: user_id.to_owned(),
            guard: Filter::True,
            updates,
            updated_at: now_iso(),
        };
        self.store.write(vec![write]).await?;
        Ok(())
    }

    /// Sends an account mail; a transport failure is logged and answered as code 1.
    async fn send_account_mail(&self, mail: Mail) -> OpResult<Value> {
        if let Err(error) = self.mailer.send(mail).await {
            tracing::error!(%error, "sending an account mail failed");
            return Err(OpError::Parse(Error::internal()));
        }
        Ok(json!({}))
    }

    fn account_link(&self, page: &str, token: &str, username: &str) -> String {
        format!(
            "{}/apps/{}/{page}?token={token}&username={}",
            self.config.server_url,
            url_encode(&self.config.app_id),
            url_encode(username)
        )
    }

    /// `POST /requestPasswordReset {email}`.
    pub async fn request_password_reset(&self, body: &Map<String, Value>) -> OpResult<Value> {
        let email = email_of(body)?;
        let Some(user) = self.user_by_email(&email).await? else {
            return Ok(json!({}));
        };
        let token = token();
        let expires = format_date(Utc::now() + chrono::Duration::hours(RESET_LINK_HOURS));
        self.update_user_fields(
            &user.object_id,
            vec![
                set("_perishable_token", token.clone().into()),
                set("_perishable_token_expires_at", date_value(&expires)),
            ],
        )
        .await?;
        let username = user
            .fields
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let link = self.account_link("request_password_reset", &token, username);
        let mail = Mail {
            to: email,
            subject: "Password reset".into(),
            text: format!(
                "Someone asked to reset the password of your account {username}.\n\
                 To choose a new one, send it to this link within {RESET_LINK_HOURS} hours:\n{link}\n\
                 (POST with new_password; if you did not ask, ignore this mail.)"
            ),
        };
        self.send_account_mail(mail).await
    }

    /// `POST /verificationEmailRequest {email}`.
    pub async fn request_verification_email(&self, body: &Map<String, Value>) -> OpResult<Value> {
        let email = email_of(body)?;
        let Some(user) = self.user_by_email(&email).await? else {
            return Err(OpError::parse(
                Code::EmailNotFound,
                format!("No user found with email {email}"),
            ));
        };
        if user.fields.get("emailVerified") == Some(&Value::Bool(true)) {
            return Err(OpError::parse(
                Code::OtherCause,
                format!("Email {email} is already verified."),
            ));
        }
        let token = token();
        self.update_user_fields(
            &user.object_id,
            vec![set("_email_verify_token", token.clone().into())],
        )
        .await?;
        let username = user
            .fields
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let link = self.account_link("verify_email", &token, username);
        let mail = Mail {
            to: email,
            subject: "Please verify your email".into(),
            text: format!("Confirm that this address belongs to the account {username}:\n{link}"),
        };
        self.send_account_mail(mail).await
    }

    /// The user a link names, if its token matches (`field` holds the token).
    async fn user_for_link(
        &self,
        username: &str,
        token: &str,
        field: &str,
    ) -> OpResult<parlor_core::object::Object> {
        let users = self.users()?;
        let invalid = || OpError::parse(Code::OtherCause, "Invalid or expired link.");
        if token.is_empty() {
            return Err(invalid());
        }
        let filter = equals(&users, "username", Operand::String(username.to_owned())).and(equals(
            &users,
            field,
            Operand::String(token.to_owned()),
        ));
        let user = self.find_first(&users, filter).await?;
        user.ok_or_else(invalid)
    }

    /// `POST /apps/:appId/request_password_reset {token, username, new_password}`: sets the
    /// new password and ends every session of the user.
    pub async fn reset_password(
        &self,
        token: &str,
        username: &str,
        new_password: &str,
    ) -> OpResult<Value> {
        let user = self
            .user_for_link(username, token, "_perishable_token")
            .await?;
        let expired = user
            .fields
            .get("_perishable_token_expires_at")
            .and_then(as_date)
            .is_none_or(|until| until <= now_iso());
        if expired {
            return Err(OpError::parse(Code::OtherCause, "Invalid or expired link."));
        }
        if new_password.is_empty() {
            return Err(OpError::parse(
                Code::PasswordMissing,
                "password is required.",
            ));
        }
        let mut body = Map::new();
        body.insert("password".into(), new_password.into());
        let plan = self
            .plan_update(&Auth::master(), "_User", &user.object_id, &body)
            .await?;
        let mut plans = vec![plan];
        plans.extend(self.plan_end_user_sessions(&user.object_id).await?);
        self.commit(plans).await?;
        self.update_user_fields(
            &user.object_id,
            vec![
                unset("_perishable_token"),
                unset("_perishable_token_expires_at"),
            ],
        )
        .await?;
        Ok(json!({}))
    }

    /// `GET /apps/:appId/verify_email?token=&username=`: marks the email verified.
    pub async fn verify_email(&self, token: &str, username: &str) -> OpResult<Value> {
        let user = self
            .user_for_link(username, token, "_email_verify_token")
            .await?;
        self.update_user_fields(
            &user.object_id,
            vec![
                set("emailVerified", Value::Bool(true)),
                unset("_email_verify_token"),
            ],
        )
        .await?;
        Ok(json!({}))
    }
}
