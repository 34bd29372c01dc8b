//! Account mail (§5.6): password-reset and email-verification requests hand a message with a
//! one-time link to the [`crate::mail::Mailer`]; the links' endpoints finish the flow (the
//! pages a browser shows there are `http::pages`).
//!
//! A reset request answers `{}` whether or not the address belongs to a user, so it cannot
//! be used to find accounts. Tokens are 128 random bits, stored with the user, single-use: a
//! reset consumes its token in the transaction that changes the password, on the condition
//! that the token is still there, so two uses of one link cannot both succeed.

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

/// The answer to a link whose token is unknown, used or expired.
fn invalid_link() -> OpError {
    OpError::parse(Code::OtherCause, "Invalid or expired link.")
}

/// Whether `error` says the link itself is no good (rather than what was sent with it).
pub fn is_invalid_link(error: &OpError) -> bool {
    matches!(error, OpError::Parse(error) if error.code == Code::OtherCause)
}

/// A new password sent to a reset link: by its page's form, or by an API client.
#[derive(Debug, Clone, Copy)]
pub struct PasswordReset<'a> {
    pub token: &'a str,
    pub username: &'a str,
    pub new_password: &'a str,
    /// `confirm_new_password`, the page's second field: when sent, it must match.
    pub confirmation: Option<&'a str>,
}

impl Operations {
    fn users(&self) -> OpResult<Arc<ClassSchema>> {
        self.schemas
            .get("_User")
            .ok_or_else(|| OpError::Parse(Error::internal()))
    }

    async fn user_by_username(
        &self,
        username: &str,
    ) -> OpResult<Option<parlor_core::object::Object>> {
        let users = self.users()?;
        let filter = equals(&users, "username", Operand::String(username.to_owned()));
        self.find_first(&users, filter).await
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
                 To choose a new one, open this link within {RESET_LINK_HOURS} hours:\n{link}\n\
                 If you did not ask, ignore this mail: your password stays as it is."
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
        self.send_verification_mail(&user, email).await
    }

    /// `POST /apps/:appId/resend_verification_email {username}`, the button of the page an
    /// invalid verification link shows: a new link to the account's address if it has one
    /// still unverified. Answers the same whether or not a mail went out, so the button cannot
    /// be used to probe accounts.
    pub async fn resend_verification_email(&self, username: &str) -> OpResult<()> {
        if username.is_empty() {
            return Ok(());
        }
        let Some(user) = self.user_by_username(username).await? else {
            return Ok(());
        };
        let email = user.fields.get("email").and_then(Value::as_str);
        let verified = user.fields.get("emailVerified") == Some(&Value::Bool(true));
        match email {
            Some(email) if !email.is_empty() && !verified => {
                self.send_verification_mail(&user, email.to_owned()).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Gives the user a new verification token and mails its link to `email`.
    async fn send_verification_mail(
        &self,
        user: &parlor_core::object::Object,
        email: String,
    ) -> OpResult<Value> {
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
            text: format!(
                "Open this link to confirm that this address belongs to the account {username}:\n{link}"
            ),
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
        if token.is_empty() {
            return Err(invalid_link());
        }
        let filter = equals(&users, "username", Operand::String(username.to_owned())).and(equals(
            &users,
            field,
            Operand::String(token.to_owned()),
        ));
        let user = self.find_first(&users, filter).await?;
        user.ok_or_else(invalid_link)
    }

    /// The user a password-reset link names, if its token matches and has not expired.
    async fn reset_link_user(
        &self,
        token: &str,
        username: &str,
    ) -> OpResult<parlor_core::object::Object> {
        let user = self
            .user_for_link(username, token, "_perishable_token")
            .await?;
        let expired = user
            .fields
            .get("_perishable_token_expires_at")
            .and_then(as_date)
            .is_none_or(|until| until <= now_iso());
        if expired {
            return Err(invalid_link());
        }
        Ok(user)
    }

    /// `GET /apps/:appId/request_password_reset?token=&username=`: whether the link still
    /// works (its page then asks for the new password).
    pub async fn check_reset_link(&self, token: &str, username: &str) -> OpResult<()> {
        self.reset_link_user(token, username).await.map(|_| ())
    }

    /// `POST /apps/:appId/request_password_reset {token, username, new_password}`: sets the
    /// new password, ends every session of the user and unlocks the account (as Parse Server
    /// does), consuming the token. A bad password or confirmation changes nothing and leaves
    /// the link usable.
    pub async fn reset_password(&self, reset: PasswordReset<'_>) -> OpResult<Value> {
        let user = self.reset_link_user(reset.token, reset.username).await?;
        if reset.new_password.is_empty() {
            return Err(OpError::parse(
                Code::PasswordMissing,
                "password is required.",
            ));
        }
        if reset
            .confirmation
            .is_some_and(|confirmation| confirmation != reset.new_password)
        {
            return Err(OpError::parse(
                Code::ValidationError,
                "The two passwords do not match.",
            ));
        }
        let users = self.users()?;
        let mut body = Map::new();
        body.insert("password".into(), reset.new_password.into());
        let still_unused = equals(
            &users,
            "_perishable_token",
            Operand::String(reset.token.to_owned()),
        );
        let plan = self
            .plan_update(&Auth::master(), "_User", &user.object_id, &body)
            .await?
            .only_if(still_unused)
            .with_server_updates(vec![
                unset("_perishable_token"),
                unset("_perishable_token_expires_at"),
                unset("_failed_login_count"),
                unset("_account_lockout_expires_at"),
            ]);
        let mut plans = vec![plan];
        plans.extend(self.plan_end_user_sessions(&user.object_id).await?);
        match self.commit(plans).await {
            Ok(_) => Ok(json!({})),
            // Another use of the same link won the race.
            Err(OpError::Store(parlor_store::StoreError::ObjectNotFound)) => Err(invalid_link()),
            Err(other) => Err(other),
        }
    }

    /// `GET /apps/:appId/verify_email?token=&username=`: marks the email verified. A link
    /// opened again (or fetched first by a mail scanner) finds the address verified already
    /// and succeeds, as in Parse Server.
    pub async fn verify_email(&self, token: &str, username: &str) -> OpResult<Value> {
        let user = match self
            .user_for_link(username, token, "_email_verify_token")
            .await
        {
            Ok(user) => user,
            Err(error) => {
                let verified = !token.is_empty()
                    && self.user_by_username(username).await?.is_some_and(|user| {
                        user.fields.get("emailVerified") == Some(&Value::Bool(true))
                    });
                return if verified { Ok(json!({})) } else { Err(error) };
            }
        };
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
