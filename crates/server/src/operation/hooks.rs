//! The hook seam: what the operation layer asks of code that is not its own — an app's
//! Cloud Code (`cloud/`) — without knowing how that code runs.
//!
//! Every entry point (REST, batch, GraphQL, LiveQuery, the web app, cloud code itself)
//! reaches functions and triggers through [`Operations`] and this trait, so a rule written in
//! cloud code holds whichever way a request comes in.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Auth, OpResult, Operations};

/// What a request carries besides its credentials: `request.headers`, `ip`, `context`.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub headers: Map<String, Value>,
    pub ip: Option<String>,
    /// `X-Parse-Cloud-Context` (or the body's `_context`).
    pub context: Map<String, Value>,
}

/// An app's code, as the operation layer sees it.
#[async_trait::async_trait]
pub trait CloudHooks: Send + Sync {
    /// The functions `POST /functions/:name` runs (GraphQL's `callCloudCode` lists them).
    fn function_names(&self) -> Vec<String>;

    /// Runs the function `name`; its `result`.
    async fn call_function(
        &self,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> OpResult<Value>;
}

impl Operations {
    /// Runs `app code` hooks through `hooks`.
    pub fn with_cloud(mut self, hooks: Arc<dyn CloudHooks>) -> Operations {
        self.cloud = Some(hooks);
        self
    }

    /// Whether the app's code defines the function `name`.
    pub fn has_cloud_function(&self, name: &str) -> bool {
        self.cloud
            .as_ref()
            .is_some_and(|cloud| cloud.function_names().iter().any(|known| known == name))
    }
}
