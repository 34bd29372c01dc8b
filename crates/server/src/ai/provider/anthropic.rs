//! Anthropic Messages: `POST {base}/v1/messages` with `stream: true`.
//!
//! The stream is named events: `message_start` (with the prompt's `input_tokens`),
//! `content_block_start` / `content_block_delta` (`text_delta`) / `content_block_stop` per
//! block, `message_delta` (the `stop_reason` and the running `output_tokens`),
//! `message_stop`, `ping` keep-alives, and `error` (e.g. `overloaded_error`) at any point.
//! Only text blocks become deltas; thinking blocks are not asked for and are skipped if a
//! server sends them.
//!
//! Tools: the request offers `tools` (`name`, `description`, `input_schema`); a call streams
//! as a `content_block_start` of type `tool_use` (its `id` and `name`), `input_json_delta`
//! fragments of its input (`partial_json`), and `content_block_stop`; the message ends with
//! `stop_reason: "tool_use"`. Calls are joined here and yielded as one
//! [`StreamEvent::ToolCalls`] at the end. They go back as the assistant turn's `tool_use`
//! blocks, and the results as `tool_result` blocks of the next user turn (`is_error` for a
//! refusal or a failure).

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::transport::{self, Failure, Plan, closed_early, error_info};
use super::{
    ChatRequest, ChatRole, ProviderConfig, ProviderError, StreamEvent, ToolCallRequest, Usage,
};

/// The most tool calls read from one answer; more are ignored.
const MAX_TOOL_CALLS: usize = 64;

/// The API version these events are read with.
const API_VERSION: &str = "2023-06-01";

/// The output budget when a request gives none; the API requires one.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Builds the HTTP request.
pub(super) fn plan(config: &ProviderConfig, model: &str, request: &ChatRequest) -> Plan {
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(model));
    body.insert(
        "max_tokens".to_owned(),
        json!(request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    body.insert("stream".to_owned(), json!(true));
    if let Some(system) = request
        .system
        .as_deref()
        .filter(|system| !system.is_empty())
    {
        body.insert("system".to_owned(), json!(system));
    }
    body.insert("messages".to_owned(), Value::Array(messages(request)));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".to_owned(), json!(temperature));
    }
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "text/event-stream".to_owned()),
        ("anthropic-version", API_VERSION.to_owned()),
    ];
    if let Some(key) = config.api_key.as_deref().filter(|key| !key.is_empty()) {
        headers.push(("x-api-key", key.to_owned()));
    }
    let base = config.base_url.trim_end_matches('/');
    let url = if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    };
    Plan {
        url,
        headers,
        // Serialising a `Value` with string keys cannot fail.
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
    }
}

/// A turn's content: plain text, or blocks once a turn holds tool calls or results.
enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    fn into_blocks(self) -> Vec<Value> {
        match self {
            Content::Text(text) => vec![json!({"type": "text", "text": text})],
            Content::Blocks(blocks) => blocks,
        }
    }
}

/// The conversation in Anthropic's shape. The API has no speaker names, so a named turn's
/// text is prefixed with `name: `; empty turns are dropped (the API rejects empty text),
/// and consecutive turns of one role are joined, as the API would merge them anyway. Tool
/// calls become `tool_use` blocks after the turn's text, results `tool_result` blocks.
fn messages(request: &ChatRequest) -> Vec<Value> {
    let mut turns: Vec<(ChatRole, Content)> = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let content = if !message.tool_results.is_empty() {
            let blocks = message
                .tool_results
                .iter()
                .map(|result| {
                    json!({
                        "type": "tool_result",
                        "tool_use_id": result.call_id,
                        "content": result.content,
                        "is_error": result.is_error,
                    })
                })
                .collect();
            Content::Blocks(blocks)
        } else {
            let text = match message
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                Some(name) if !message.content.trim().is_empty() => {
                    format!("{name}: {}", message.content)
                }
                _ => message.content.clone(),
            };
            if message.tool_calls.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                Content::Text(text)
            } else {
                let mut blocks = Vec::with_capacity(message.tool_calls.len() + 1);
                if !text.trim().is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in &message.tool_calls {
                    // The API wants the input as an object; arguments the model garbled were
                    // answered with an error, and the call is replayed with no input.
                    let input = call
                        .parsed_arguments()
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                Content::Blocks(blocks)
            }
        };
        match turns.last_mut() {
            Some((role, previous)) if *role == message.role => {
                let joined = match (
                    std::mem::replace(previous, Content::Blocks(Vec::new())),
                    content,
                ) {
                    (Content::Text(mut before), Content::Text(text)) => {
                        before.push_str("\n\n");
                        before.push_str(&text);
                        Content::Text(before)
                    }
                    (before, after) => {
                        let mut blocks = before.into_blocks();
                        blocks.extend(after.into_blocks());
                        Content::Blocks(blocks)
                    }
                };
                *previous = joined;
            }
            _ => turns.push((message.role, content)),
        }
    }
    turns
        .into_iter()
        .map(|(role, content)| {
            let role = match role {
                ChatRole::User => "user",
                ChatRole::Assistant => "assistant",
            };
            match content {
                Content::Text(text) => json!({"role": role, "content": text}),
                Content::Blocks(blocks) => json!({"role": role, "content": blocks}),
            }
        })
        .collect()
}

/// The stream's state: usage and the stop reason, reported at the end.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    /// Whether a text or thinking delta has arrived (for the timeouts).
    pub generating: bool,
    input_tokens: u64,
    output_tokens: u64,
    usage_seen: bool,
    stop_reason: Option<String>,
    /// The `tool_use` blocks being streamed: their block index and the call so far.
    tool_calls: Vec<(u64, ToolCallRequest)>,
    /// The input a `tool_use` block started with, used when no `input_json_delta` follows.
    tool_inputs: Vec<(u64, String)>,
}

impl Decoder {
    /// Reads one event; `Ok(true)` at `message_stop`.
    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, Failure> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(data).map_err(|err| {
            Failure::fatal(ProviderError::Protocol(format!(
                "a stream event is not JSON ({err}): {}",
                transport::clip(data, 200)
            )))
        })?;
        // The data's `type` repeats the event name; it is the one servers never omit.
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                if let Some(usage) = value.pointer("/message/usage") {
                    self.read_usage(usage);
                }
            }
            "content_block_start" => {
                let block = value.get("content_block");
                let is_tool =
                    block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use");
                if is_tool && self.tool_calls.len() < MAX_TOOL_CALLS {
                    self.generating = true;
                    let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let text = |field: &str| {
                        block
                            .and_then(|b| b.get(field))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    self.tool_calls.push((
                        index,
                        ToolCallRequest {
                            id: text("id"),
                            name: text("name"),
                            arguments: String::new(),
                        },
                    ));
                    if let Some(input) = block
                        .and_then(|b| b.get("input"))
                        .filter(|input| input.as_object().is_some_and(|map| !map.is_empty()))
                    {
                        self.tool_inputs.push((index, input.to_string()));
                    }
                }
                let is_text =
                    block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("text");
                if is_text
                    && let Some(text) = block.and_then(|b| b.get("text")).and_then(Value::as_str)
                    && !text.is_empty()
                {
                    out.push(StreamEvent::Delta(text.to_owned()));
                }
            }
            "content_block_delta" => {
                // Thinking deltas count as the model working, though only text is yielded.
                self.generating = true;
                let delta = value.get("delta");
                let is_text =
                    delta.and_then(|d| d.get("type")).and_then(Value::as_str) == Some("text_delta");
                if is_text
                    && let Some(text) = delta.and_then(|d| d.get("text")).and_then(Value::as_str)
                    && !text.is_empty()
                {
                    out.push(StreamEvent::Delta(text.to_owned()));
                }
                let is_input = delta.and_then(|d| d.get("type")).and_then(Value::as_str)
                    == Some("input_json_delta");
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                if is_input
                    && let Some(json) = delta
                        .and_then(|d| d.get("partial_json"))
                        .and_then(Value::as_str)
                    && let Some((_, call)) = self
                        .tool_calls
                        .iter_mut()
                        .find(|(block, _)| *block == index)
                {
                    call.arguments.push_str(json);
                }
            }
            "message_delta" => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = value.get("usage") {
                    self.read_usage(usage);
                }
            }
            "message_stop" => {
                self.end(out);
                return Ok(true);
            }
            "error" => {
                let info = error_info(&value).unwrap_or_default();
                return Err(transport::classify(None, &info));
            }
            // `ping`, `content_block_stop`, and events added to the API later.
            _ => {}
        }
        Ok(false)
    }

    /// The body ended without `message_stop`: complete if the stop reason came.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Failure> {
        if self.stop_reason.is_none() {
            return Err(closed_early());
        }
        self.end(out);
        Ok(())
    }

    /// Takes the counts a usage object carries. `output_tokens` is cumulative; the prompt
    /// is the plain input plus cache writes and reads, all of which the model read.
    fn read_usage(&mut self, usage: &Value) {
        let count = |name: &str| usage.get(name).and_then(Value::as_u64);
        if let Some(input) = count("input_tokens") {
            self.input_tokens = input
                + count("cache_creation_input_tokens").unwrap_or(0)
                + count("cache_read_input_tokens").unwrap_or(0);
            self.usage_seen = true;
        }
        if let Some(output) = count("output_tokens") {
            self.output_tokens = output;
            self.usage_seen = true;
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        let inputs = std::mem::take(&mut self.tool_inputs);
        let calls: Vec<ToolCallRequest> = std::mem::take(&mut self.tool_calls)
            .into_iter()
            .map(|(index, mut call)| {
                if call.arguments.is_empty()
                    && let Some((_, input)) = inputs.iter().find(|(block, _)| *block == index)
                {
                    call.arguments = input.clone();
                }
                call
            })
            .filter(|call| !call.name.is_empty())
            .collect();
        if !calls.is_empty() {
            out.push(StreamEvent::ToolCalls(calls));
        }
        if self.usage_seen {
            out.push(StreamEvent::Usage(Usage {
                prompt_tokens: self.input_tokens,
                completion_tokens: self.output_tokens,
                total_tokens: self.input_tokens + self.output_tokens,
            }));
        }
        out.push(StreamEvent::Finished {
            reason: self.stop_reason.take(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::provider::{ChatMessage, ProviderKind};

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.to_owned()),
            data: data.to_owned(),
        }
    }

    #[test]
    fn the_documented_sequence() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let events = [
            event(
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            event("ping", r#"{"type": "ping"}"#),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}"#,
            ),
            event(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            event(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
        ];
        for item in &events {
            assert!(!decoder.event(item, &mut out).unwrap());
        }
        assert!(
            decoder
                .event(
                    &event("message_stop", r#"{"type":"message_stop"}"#),
                    &mut out
                )
                .unwrap()
        );
        assert_eq!(
            out,
            vec![
                StreamEvent::Delta("Hello".to_owned()),
                StreamEvent::Delta("!".to_owned()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 30,
                    completion_tokens: 15,
                    total_tokens: 45
                }),
                StreamEvent::Finished {
                    reason: Some("end_turn".to_owned())
                },
            ]
        );
    }

    #[test]
    fn errors_in_the_stream() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let overloaded = event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        let failure = decoder.event(&overloaded, &mut out).unwrap_err();
        assert!(failure.retryable);
        assert_eq!(
            failure.error,
            ProviderError::Stream("Overloaded (overloaded_error)".to_owned())
        );
        let too_long = event(
            "error",
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 250000 tokens > 200000 maximum"}}"#,
        );
        let failure = decoder.event(&too_long, &mut out).unwrap_err();
        assert!(matches!(failure.error, ProviderError::ContextOverflow(_)));
        assert!(decoder.finish(&mut out).is_err());
    }

    #[test]
    fn request_body() {
        let mut config = ProviderConfig::new(
            "a",
            ProviderKind::Anthropic,
            "https://api.anthropic.com/v1/",
        );
        config.api_key = Some("key".to_owned());
        let request = ChatRequest {
            model: "claude-x".to_owned(),
            system: Some("Be kind.".to_owned()),
            messages: vec![
                ChatMessage::user("hi").with_name("Ada"),
                ChatMessage::user("there").with_name("Bob"),
                ChatMessage::assistant(""),
                ChatMessage::assistant("hello"),
            ],
            temperature: None,
            max_tokens: None,
            tools: Vec::new(),
        };
        let plan = plan(&config, "claude-x", &request);
        assert_eq!(plan.url, "https://api.anthropic.com/v1/messages");
        assert!(plan.headers.contains(&("x-api-key", "key".to_owned())));
        assert!(
            plan.headers
                .contains(&("anthropic-version", "2023-06-01".to_owned()))
        );
        let body: Value = serde_json::from_slice(&plan.body).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-x",
                "max_tokens": 1024,
                "stream": true,
                "system": "Be kind.",
                "messages": [
                    {"role": "user", "content": "Ada: hi\n\nBob: there"},
                    {"role": "assistant", "content": "hello"},
                ],
            })
        );
    }

    #[test]
    fn tool_use_blocks_are_joined() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let events = [
            event(
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":10,"output_tokens":1}}}"#,
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#,
            ),
            event(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"lookupOrder","input":{}}}"#,
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"id\": \"A"}}"#,
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1\"}"}}"#,
            ),
            event(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"now","input":{}}}"#,
            ),
            event(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":2}"#,
            ),
            event(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}"#,
            ),
        ];
        for item in &events {
            assert!(!decoder.event(item, &mut out).unwrap());
        }
        assert!(
            decoder
                .event(
                    &event("message_stop", r#"{"type":"message_stop"}"#),
                    &mut out
                )
                .unwrap()
        );
        assert_eq!(out[0], StreamEvent::Delta("Checking.".to_owned()));
        assert_eq!(
            out[1],
            StreamEvent::ToolCalls(vec![
                ToolCallRequest {
                    id: "toolu_1".to_owned(),
                    name: "lookupOrder".to_owned(),
                    arguments: r#"{"id": "A1"}"#.to_owned(),
                },
                ToolCallRequest {
                    id: "toolu_2".to_owned(),
                    name: "now".to_owned(),
                    arguments: String::new(),
                },
            ])
        );
        assert_eq!(
            out[3],
            StreamEvent::Finished {
                reason: Some("tool_use".to_owned())
            }
        );
    }

    #[test]
    fn tools_and_tool_turns_in_the_request() {
        use crate::ai::provider::{ToolResult, ToolSpec};
        let config = ProviderConfig::new("a", ProviderKind::Anthropic, "https://api.anthropic.com");
        let request = ChatRequest {
            messages: vec![
                ChatMessage::user("where is A1?").with_name("Ada"),
                ChatMessage::tool_calls(
                    "Checking.",
                    vec![ToolCallRequest {
                        id: "toolu_1".to_owned(),
                        name: "lookupOrder".to_owned(),
                        arguments: r#"{"id":"A1"}"#.to_owned(),
                    }],
                ),
                ChatMessage::tool_results(vec![ToolResult {
                    call_id: "toolu_1".to_owned(),
                    content: "Object not found.".to_owned(),
                    is_error: true,
                }]),
            ],
            tools: vec![ToolSpec {
                name: "lookupOrder".to_owned(),
                description: "Finds an order".to_owned(),
                parameters: json!({"type": "object"}),
            }],
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&plan(&config, "c", &request).body).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"name": "lookupOrder", "description": "Finds an order", "input_schema": {"type": "object"}}])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Ada: where is A1?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookupOrder", "input": {"id": "A1"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Object not found.", "is_error": true},
                ]},
            ])
        );
    }
}
