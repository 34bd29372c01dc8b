//! `authData` providers (§5.5): each checks the data a client sends for its provider and
//! names the account it proves. Anonymous users come built in; others plug in through
//! [`AuthProvider`] (none of them may need the network in tests), and an app's own adapter
//! modules (`--auth-adapters`, Parse Server's `auth` option) run in Cloud Code through
//! [`CloudHooks`](super::hooks::CloudHooks), ahead of the built-in ones.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parlor_core::{Code, Error};
use serde_json::Value;

use super::{Auth, OpResult, Operations};

/// Checks one provider's `authData` and returns the account id it proves.
#[async_trait]
pub trait AuthProvider: Send + Sync {
    async fn validate(&self, auth_data: &Value) -> Result<String, Error>;
}

/// The account id an adapter-validated `authData` names: its `id`, a string or a number as
/// sent (Parse keys links by `authData.<provider>.id`).
fn account_id(provider: &str, auth_data: &Value) -> Result<Value, Error> {
    match auth_data.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 256 => {
            Ok(Value::String(id.clone()))
        }
        Some(Value::Number(id)) => Ok(Value::Number(id.clone())),
        _ => Err(Error::new(
            Code::InvalidValue,
            format!("{provider} authData needs an id"),
        )),
    }
}

impl Operations {
    /// Validates one provider's `authData` — with the app's adapter module when it has one,
    /// else a built-in provider (unknown: `252`) — and returns the account id it proves.
    pub(crate) async fn validate_auth_data(
        &self,
        auth: &Auth,
        provider: &str,
        auth_data: &Value,
    ) -> OpResult<Value> {
        if !auth_data.is_object() {
            return Err(Error::new(
                Code::InvalidValue,
                format!("authData.{provider} should be an object"),
            )
            .into());
        }
        if let Some(cloud) = self
            .cloud
            .as_ref()
            .filter(|cloud| cloud.has_auth_adapter(provider))
        {
            cloud
                .validate_auth_data(self, auth, provider, auth_data)
                .await?;
            return Ok(account_id(provider, auth_data)?);
        }
        Ok(Value::String(
            self.auth_providers.validate(provider, auth_data).await?,
        ))
    }
}

/// `{"anonymous": {"id": "<uuid>"}}`: the id is the account; nothing to verify.
pub struct AnonymousProvider;

#[async_trait]
impl AuthProvider for AnonymousProvider {
    async fn validate(&self, auth_data: &Value) -> Result<String, Error> {
        match auth_data.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && id.len() <= 256 => Ok(id.to_owned()),
            _ => Err(Error::new(
                Code::InvalidValue,
                "anonymous authData needs a string id",
            )),
        }
    }
}

/// The providers a server accepts, by name.
#[derive(Clone)]
pub struct AuthProviders {
    providers: HashMap<String, Arc<dyn AuthProvider>>,
}

impl Default for AuthProviders {
    fn default() -> AuthProviders {
        let mut providers: HashMap<String, Arc<dyn AuthProvider>> = HashMap::new();
        providers.insert("anonymous".to_owned(), Arc::new(AnonymousProvider));
        AuthProviders { providers }
    }
}

impl AuthProviders {
    /// Adds (or replaces) a provider.
    pub fn register(&mut self, name: &str, provider: Arc<dyn AuthProvider>) {
        self.providers.insert(name.to_owned(), provider);
    }

    /// Validates `data` with the named provider; an unknown provider is `252`.
    pub async fn validate(&self, name: &str, data: &Value) -> Result<String, Error> {
        let Some(provider) = self.providers.get(name) else {
            return Err(Error::new(
                Code::UnsupportedService,
                "This authentication method is unsupported.",
            ));
        };
        provider.validate(data).await
    }
}
