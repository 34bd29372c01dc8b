//! Cloud functions as persona tools: `Parse.Cloud.define(name, handler, {tool: {description,
//! parameters}})` marks a function as a tool, and [`CloudTools`] is the
//! [`ToolRunner`](crate::ai::tools::ToolRunner) that offers and runs such functions for
//! persona replies.
//!
//! A call runs exactly as `POST /functions/<name>` from the user whose message started the
//! reply would: `request.params` are the model's arguments, `request.user` is that user
//! (`undefined` for an anonymous caller), `request.master` is false, validators apply, and
//! every `Parse.*` call inside runs with that user's rights unless the code asks for the
//! master key. `request.context` says where the call comes from: `{sessionId, personaId,
//! messageId}` (the reply). A thrown error or a validator's refusal reaches the model as the
//! tool's error; `--cloud-timeout` interrupts the JavaScript, and the reply's own per-call
//! limit (`--ai-tool-timeout`) stops waiting for it.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Cloud;
use crate::ai::provider::ToolSpec;
use crate::ai::tools::{ToolCall, ToolRunner};
use crate::operation::Operations;
use crate::operation::hooks::RequestMeta;

/// The functions the loaded code marks as tools (the current code: a reload counts at the
/// next reply).
pub struct CloudTools(pub Arc<Cloud>);

impl std::fmt::Debug for CloudTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let definitions = self.0.definitions();
        f.debug_tuple("CloudTools")
            .field(&definitions.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[async_trait::async_trait]
impl ToolRunner for CloudTools {
    async fn tools(&self) -> Vec<ToolSpec> {
        let definitions = self.0.definitions();
        definitions
            .tools
            .iter()
            .filter(|(name, _)| definitions.functions.contains(*name))
            .map(|(name, tool)| ToolSpec {
                name: name.clone(),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                // A tool that takes nothing may leave `parameters` out; providers want an
                // object schema all the same.
                parameters: tool
                    .get("parameters")
                    .filter(|parameters| parameters.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
            .collect()
    }

    async fn run(&self, operations: &Operations, call: ToolCall) -> Result<Value, String> {
        let params = match call.arguments {
            Value::Object(params) => params,
            Value::Null => Map::new(),
            _ => return Err("the arguments must be a JSON object".to_owned()),
        };
        let mut context = Map::new();
        context.insert("sessionId".into(), json!(call.session_id));
        context.insert("personaId".into(), json!(call.persona_id));
        context.insert("messageId".into(), json!(call.reply_id));
        let meta = RequestMeta {
            context,
            ..RequestMeta::default()
        };
        self.0
            .run_function(operations, &call.caller, &call.name, &params, meta)
            .await
            .map(|result| result.unwrap_or(Value::Null))
            .map_err(|error| error.to_string())
    }
}
