//! Cloud Code functions as persona tools: `Parse.Cloud.define(name, handler, {tool:
//! {description, parameters}})` marks a function as a tool, and the pool is the
//! [`ToolRunner`] the AI's replies call (`ai::tools`), running the function with the rights
//! of the user whose message started the reply, like any call of it.

use serde_json::{Map, Value, json};

use super::Cloud;
use crate::ai::provider::ToolSpec;
use crate::ai::tools::{ToolCall, ToolRunner};
use crate::operation::Operations;

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("entry", &self.shared.settings.entry)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ToolRunner for Cloud {
    async fn tools(&self) -> Vec<ToolSpec> {
        self.definitions()
            .tools
            .iter()
            .map(|(name, tool)| ToolSpec {
                name: name.clone(),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                parameters: tool
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
            .collect()
    }

    async fn run(&self, operations: &Operations, call: ToolCall) -> Result<Value, String> {
        let cloud = self
            .me
            .upgrade()
            .ok_or_else(|| "Cloud Code is shutting down".to_owned())?;
        let params = match call.arguments {
            Value::Object(params) => params,
            _ => Map::new(),
        };
        cloud
            .run_function(
                operations,
                &call.caller,
                &call.name,
                &params,
                Default::default(),
            )
            .await
            .map_err(|error| match error.to_parse_error() {
                Some(error) => error.message.into_owned(),
                None => "unauthorized: master key is required".to_owned(),
            })
    }
}
