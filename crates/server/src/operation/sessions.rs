//! Sessions (§5.7): the `_Session` objects behind session tokens — creating them, resolving a
//! token to its user (unknown and expired tokens are `209` on every route), ending them.

use std::time::Duration;

use chrono::Utc;
use parlor_core::Code;
use parlor_core::query::{FindQuery, Operand};
use parlor_core::value::{as_date, as_pointer, date_value, format_date, now_iso, pointer_value};
use parlor_store::WriteOutcome;
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::class_cache::ClassCache;
use super::users::user_pointer;
use super::write::{PlannedWrite, WriteResponse, equals};
use super::{Auth, OpError, OpResult, Operations};

/// `r:` and 32 lowercase hex digits: 128 random bits.
pub fn new_session_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("r:{hex}")
}
pub(super) fn invalid_session() -> OpError {
    OpError::parse(Code::InvalidSessionToken, "Invalid session token")
}

/// How long a token's session is reused without reading `_Session` again, at most. A change
/// made through this server (log-out, revocation, a password change) is seen at once; one made
/// by another instance is seen at once with the relay (it clears the cache), within this time
/// without one — Parse Server's own session cache keeps entries for the same 5 s.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most tokens whose session is kept.
const SESSION_CACHE_TOKENS: usize = 50_000;

/// The session each token names, shared by every request.
pub type SessionCache = ClassCache<SessionInfo>;

/// A session cache with this module's limits.
pub fn session_cache() -> SessionCache {
    ClassCache::new(SESSION_CACHE_TTL, SESSION_CACHE_TOKENS)
}

/// A valid session: whose it is and until when.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user_id: String,
    /// ISO date, as stored; `None`: no expiry.
    pub expires_at: Option<String>,
}

impl Operations {
    /// Plans a new `_Session` for a user; returns the plan and its token.
    pub(super) async fn plan_session(
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
    pub(super) async fn plan_end_sessions(
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
        Ok(self.session_info(token).await?.user_id)
    }

    /// [`Operations::resolve_session`] with the session's expiry, for holders of a token
    /// over time (live-query connections).
    ///
    /// Every request with a token asks this, so the answer is cached ([`SessionCache`]) until
    /// `_Session` changes; expiry is checked on every use, cached or not.
    pub async fn session_info(&self, token: &str) -> OpResult<SessionInfo> {
        let stamp = self.sessions.stamp(self.store.class_generation("_Session"));
        let info = match self.sessions.get(token, stamp) {
            Some(info) => info,
            None => {
                let info = self.load_session(token).await?;
                self.sessions.insert(token, info.clone(), stamp);
                info
            }
        };
        if info
            .expires_at
            .as_ref()
            .is_some_and(|expires_at| *expires_at <= now_iso())
        {
            return Err(OpError::parse(
                Code::InvalidSessionToken,
                "Session token is expired.",
            ));
        }
        Ok(info)
    }

    /// Forgets every cached session; the next requests read `_Session` again (another
    /// instance changed it).
    pub fn invalidate_sessions(&self) {
        self.sessions.clear();
    }

    /// Reads the session of `token` from the store (unknown tokens are `209`).
    async fn load_session(&self, token: &str) -> OpResult<SessionInfo> {
        let Some(sessions) = self.schemas.get("_Session") else {
            return Err(invalid_session());
        };
        let by_token = equals(&sessions, "sessionToken", Operand::String(token.to_owned()));
        let Some(session) = self.find_first(&sessions, by_token).await? else {
            return Err(invalid_session());
        };
        let expires_at = session.fields.get("expiresAt").and_then(as_date);
        let user_id = session
            .fields
            .get("user")
            .and_then(as_pointer)
            .map(|(_, user_id)| user_id.to_owned())
            .ok_or_else(invalid_session)?;
        Ok(SessionInfo {
            user_id,
            expires_at,
        })
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
                // afterLogout: the session is gone; a failure is only logged.
                let mut json = session.to_json();
                json.retain(|key, _| !key.starts_with('_'));
                if let Err(error) = self
                    .run_trigger(
                        auth,
                        super::hooks::Trigger::AfterLogout,
                        "_Session",
                        json!({"object": json}),
                    )
                    .await
                {
                    tracing::warn!("Cloud Code afterLogout failed: {error}");
                }
            }
        }
        Ok(json!({}))
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
}
