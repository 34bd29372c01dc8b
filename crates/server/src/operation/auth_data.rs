//! `authData` providers (§5.5): each checks the data a client sends for its provider and
//! names the account it proves. Anonymous users come built in; others plug in through
//! [`AuthProvider`] (none of them may need the network in tests).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parlor_core::{Code, Error};
use serde_json::Value;

/// Checks one provider's `authData` and returns the account id it proves.
#[async_trait]
pub trait AuthProvider: Send + Sync {
    async fn validate(&self, auth_data: &Value) -> Result<String, Error>;
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
