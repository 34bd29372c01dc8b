//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with `stream: true`.
//!
//! The stream is `data:` events holding `chat.completion.chunk` objects and ending with
//! `data: [DONE]`. What differs between servers, and is handled here: the final usage chunk
//! asked for with `stream_options.include_usage` has `choices: []` (OpenAI) or `choices:
//! null` (vLLM) or rides on the last content chunk (Ollama); some servers send no usage at
//! all; an error can arrive as a `data:` object with an `error` member after text has
//! started; and a few servers end the body without `[DONE]` after the finish reason.
//!
//! Tools: the request offers `tools` (type `function`); the model's calls stream as
//! `delta.tool_calls` fragments, each with the `index` of its call, the `id` and
//! `function.name` in the first fragment and `function.arguments` split over any number of
//! them, then `finish_reason: "tool_calls"`. They are joined here and yielded as one
//! [`StreamEvent::ToolCalls`] at the end. The calls go back as the assistant message's
//! `tool_calls`, and each result as a `role: "tool"` message naming its `tool_call_id`.

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::transport::{self, Failure, Plan, closed_early, error_info};
use super::{
    ChatMessage, ChatRequest, ChatRole, ProviderConfig, ProviderError, StreamEvent,
    ToolCallRequest, Usage, sanitize_name,
};

/// Builds the HTTP request.
pub(super) fn plan(config: &ProviderConfig, model: &str, request: &ChatRequest) -> Plan {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request
        .system
        .as_deref()
        .filter(|system| !system.is_empty())
    {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        push_message(&mut messages, message);
    }
    let mut body = Map::new();
    body.insert("model".to_owned(), json!(model));
    body.insert("messages".to_owned(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                }})
            })
            .collect();
        body.insert("tools".to_owned(), Value::Array(tools));
    }
    body.insert("stream".to_owned(), json!(true));
    body.insert("stream_options".to_owned(), json!({"include_usage": true}));
    if let Some(temperature) = request.temperature {
        body.insert("temperature".to_owned(), json!(temperature));
    }
    if let Some(max_tokens) = request.max_tokens {
        body.insert(max_tokens_field(model).to_owned(), json!(max_tokens));
    }
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("accept", "text/event-stream".to_owned()),
    ];
    if let Some(key) = config.api_key.as_deref().filter(|key| !key.is_empty()) {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    Plan {
        url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
        headers,
        // Serialising a `Value` with string keys cannot fail.
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
    }
}

/// Appends one turn in OpenAI's shape: tool results become one `role: "tool"` message each,
/// an assistant turn's calls its `tool_calls` (with `content: null` when it said nothing).
fn push_message(messages: &mut Vec<Value>, message: &ChatMessage) {
    if !message.tool_results.is_empty() {
        for result in &message.tool_results {
            let content = if result.is_error {
                json!({"error": result.content}).to_string()
            } else {
                result.content.clone()
            };
            messages
                .push(json!({"role": "tool", "tool_call_id": result.call_id, "content": content}));
        }
        return;
    }
    let role = match message.role {
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    };
    let mut entry = Map::new();
    entry.insert("role".to_owned(), json!(role));
    if message.tool_calls.is_empty() || !message.content.is_empty() {
        entry.insert("content".to_owned(), json!(message.content));
    } else {
        entry.insert("content".to_owned(), Value::Null);
    }
    if let Some(name) = message.name.as_deref().and_then(sanitize_name) {
        entry.insert("name".to_owned(), json!(name));
    }
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({"id": call.id, "type": "function", "function": {
                    "name": call.name,
                    "arguments": call.arguments,
                }})
            })
            .collect();
        entry.insert("tool_calls".to_owned(), Value::Array(calls));
    }
    messages.push(Value::Object(entry));
}

/// OpenAI's reasoning models reject `max_tokens` and want `max_completion_tokens`; every
/// other OpenAI-compatible server knows `max_tokens`.
fn max_tokens_field(model: &str) -> &'static str {
    let name = model.rsplit('/').next().unwrap_or(model);
    let reasoning = ["o1", "o3", "o4", "gpt-5"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.']))
    });
    if reasoning {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

/// The stream's state: what is held back until the end.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    /// Whether a text or reasoning delta has arrived (for the timeouts).
    pub generating: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// The tool calls being streamed, by their `index`.
    tool_calls: Vec<ToolCallRequest>,
}

impl Decoder {
    /// Reads one event; `Ok(true)` at `[DONE]`.
    pub fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, Failure> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.end(out);
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(data).map_err(|err| {
            Failure::fatal(ProviderError::Protocol(format!(
                "a stream event is not JSON ({err}): {}",
                transport::clip(data, 200)
            )))
        })?;
        if let Some(info) = error_info(&value) {
            return Err(transport::classify(None, &info));
        }
        // `choices` is an array, `[]` on OpenAI's usage chunk, or `null` on vLLM's.
        if let Some(choices) = value.get("choices").and_then(Value::as_array) {
            // Only the first choice is asked for (no `n`), but a server may number it.
            let choice = choices
                .iter()
                .find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
            if let Some(choice) = choice {
                if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    self.generating = true;
                    out.push(StreamEvent::Delta(text.to_owned()));
                }
                // vLLM and DeepSeek say `reasoning_content`, Ollama and OpenRouter `reasoning`;
                // the reasoning itself is not part of the answer.
                let reasoning = ["reasoning_content", "reasoning"].iter().any(|field| {
                    choice
                        .get("delta")
                        .and_then(|delta| delta.get(field))
                        .and_then(Value::as_str)
                        .is_some_and(|text| !text.is_empty())
                });
                if reasoning {
                    self.generating = true;
                }
                if let Some(calls) = choice
                    .pointer("/delta/tool_calls")
                    .and_then(Value::as_array)
                {
                    self.generating = true;
                    for (position, fragment) in calls.iter().enumerate() {
                        self.tool_fragment(position, fragment);
                    }
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(reason.to_owned());
                }
            }
        }
        if let Some(usage) = value.get("usage").filter(|usage| usage.is_object()) {
            self.usage = Some(parse_usage(usage));
        }
        Ok(false)
    }

    /// The body ended without `[DONE]`: complete if a finish reason came, else broken.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Failure> {
        if self.finish_reason.is_none() {
            return Err(closed_early());
        }
        self.end(out);
        Ok(())
    }

    /// Joins one `delta.tool_calls` item into its call. Servers that send each call whole
    /// in one chunk sometimes leave out `index`; the item's place in the array stands for it.
    fn tool_fragment(&mut self, position: usize, fragment: &Value) {
        let index = fragment
            .get("index")
            .and_then(Value::as_u64)
            .map_or(position, |index| {
                usize::try_from(index).unwrap_or(usize::MAX)
            });
        // A bounded number of calls: a hostile index must not allocate without limit.
        if index >= MAX_TOOL_CALLS {
            return;
        }
        while self.tool_calls.len() <= index {
            self.tool_calls.push(ToolCallRequest {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
        }
        let call = &mut self.tool_calls[index];
        if let Some(id) = fragment.get("id").and_then(Value::as_str)
            && !id.is_empty()
        {
            call.id = id.to_owned();
        }
        // The name comes whole in a call's first fragment; servers that repeat it in later
        // ones must not double it.
        if let Some(name) = fragment.pointer("/function/name").and_then(Value::as_str)
            && call.name.is_empty()
        {
            call.name = name.to_owned();
        }
        // A string of JSON fragments, as OpenAI streams them; a few servers send the
        // arguments as one object instead.
        match fragment.pointer("/function/arguments") {
            Some(Value::String(arguments)) => call.arguments.push_str(arguments),
            Some(arguments @ Value::Object(_)) => call.arguments = arguments.to_string(),
            _ => {}
        }
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        let calls: Vec<ToolCallRequest> = std::mem::take(&mut self.tool_calls)
            .into_iter()
            .enumerate()
            .filter(|(_, call)| !call.name.is_empty())
            .map(|(index, mut call)| {
                // An id is what the result is matched by; a server that sends none gets one.
                if call.id.is_empty() {
                    call.id = format!("call_{index}");
                }
                call
            })
            .collect();
        if !calls.is_empty() {
            out.push(StreamEvent::ToolCalls(calls));
        }
        if let Some(usage) = self.usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
        out.push(StreamEvent::Finished {
            reason: self.finish_reason.take(),
        });
    }
}

/// The most tool calls read from one answer; more are ignored.
const MAX_TOOL_CALLS: usize = 64;

fn parse_usage(usage: &Value) -> Usage {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    let prompt_tokens = count("prompt_tokens");
    let completion_tokens = count("completion_tokens");
    let total_tokens = match count("total_tokens") {
        0 => prompt_tokens + completion_tokens,
        total => total,
    };
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::provider::{ChatMessage, ProviderKind};

    fn decode(lines: &[&str]) -> (Vec<StreamEvent>, Result<bool, ProviderError>) {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        for line in lines {
            let event = SseEvent {
                event: None,
                data: (*line).to_owned(),
            };
            match decoder.event(&event, &mut out) {
                Ok(false) => {}
                Ok(true) => return (out, Ok(true)),
                Err(failure) => return (out, Err(failure.error)),
            }
        }
        let finished = decoder
            .finish(&mut out)
            .map(|()| false)
            .map_err(|f| f.error);
        (out, finished)
    }

    #[test]
    fn deltas_usage_chunk_and_done() {
        let (events, end) = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            "[DONE]",
        ]);
        assert_eq!(end, Ok(true));
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Hel".to_owned()),
                StreamEvent::Delta("lo".to_owned()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                    total_tokens: 7
                }),
                StreamEvent::Finished {
                    reason: Some("stop".to_owned())
                },
            ]
        );
    }

    #[test]
    fn vllm_null_choices_and_missing_total() {
        let (events, _) = decode(&[
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}"#,
            r#"{"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events[1],
            StreamEvent::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 1,
                total_tokens: 4
            })
        );
    }

    #[test]
    fn end_of_body_without_done() {
        // After a finish reason, a missing `[DONE]` is forgiven.
        let (events, end) =
            decode(&[r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#]);
        assert_eq!(end, Ok(false));
        assert_eq!(events.len(), 2);
        // Before one, the answer is incomplete.
        let (events, end) = decode(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#]);
        assert_eq!(events, vec![StreamEvent::Delta("a".to_owned())]);
        assert!(matches!(end, Err(ProviderError::Stream(_))));
    }

    #[test]
    fn reasoning_counts_as_generating_but_is_not_text() {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        let event = SseEvent {
            event: None,
            data: r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#.to_owned(),
        };
        assert!(!decoder.event(&event, &mut out).unwrap());
        assert!(out.is_empty());
        assert!(decoder.generating);
    }

    #[test]
    fn error_objects_and_garbage() {
        let (events, end) = decode(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            end,
            Err(ProviderError::Stream(
                "The server had an error (server_error)".to_owned()
            ))
        );
        let (_, end) = decode(&["not json"]);
        assert!(matches!(end, Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn request_body() {
        let mut config = ProviderConfig::new("p", ProviderKind::OpenAi, "http://h/v1/");
        config.api_key = Some("sk-1".to_owned());
        let request = ChatRequest {
            model: String::new(),
            system: Some("Be brief.".to_owned()),
            messages: vec![
                ChatMessage::user("hi").with_name("Ada Lovelace"),
                ChatMessage::assistant("hello"),
            ],
            temperature: Some(0.5),
            max_tokens: Some(100),
            tools: Vec::new(),
        };
        let plan = plan(&config, "gpt-4o", &request);
        assert_eq!(plan.url, "http://h/v1/chat/completions");
        assert!(
            plan.headers
                .contains(&("authorization", "Bearer sk-1".to_owned()))
        );
        let body: Value = serde_json::from_slice(&plan.body).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi", "name": "Ada_Lovelace"},
                    {"role": "assistant", "content": "hello"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "max_tokens": 100,
            })
        );
        assert_eq!(max_tokens_field("o3-mini"), "max_completion_tokens");
        assert_eq!(max_tokens_field("gpt-5.1"), "max_completion_tokens");
        assert_eq!(max_tokens_field("openai/o1"), "max_completion_tokens");
        assert_eq!(max_tokens_field("o1x"), "max_tokens");
        assert_eq!(max_tokens_field("llama3"), "max_tokens");
    }

    #[test]
    fn tool_call_fragments_are_joined_by_index() {
        let (events, end) = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"lookupOrder","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"id\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"weather","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"A1\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(end, Ok(true));
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCalls(vec![
                    ToolCallRequest {
                        id: "call_a".to_owned(),
                        name: "lookupOrder".to_owned(),
                        arguments: r#"{"id":"A1"}"#.to_owned(),
                    },
                    ToolCallRequest {
                        id: "call_b".to_owned(),
                        name: "weather".to_owned(),
                        arguments: "{}".to_owned(),
                    },
                ]),
                StreamEvent::Finished {
                    reason: Some("tool_calls".to_owned())
                },
            ]
        );
    }

    #[test]
    fn tools_and_tool_turns_in_the_request() {
        use crate::ai::provider::{ToolResult, ToolSpec};
        let config = ProviderConfig::new("p", ProviderKind::OpenAi, "http://h/v1");
        let call = ToolCallRequest {
            id: "call_1".to_owned(),
            name: "lookupOrder".to_owned(),
            arguments: r#"{"id":"A1"}"#.to_owned(),
        };
        let request = ChatRequest {
            messages: vec![
                ChatMessage::user("where is A1?"),
                ChatMessage::tool_calls("", vec![call]),
                ChatMessage::tool_results(vec![
                    ToolResult {
                        call_id: "call_1".to_owned(),
                        content: r#"{"status":"shipped"}"#.to_owned(),
                        is_error: false,
                    },
                    ToolResult {
                        call_id: "call_2".to_owned(),
                        content: "Object not found.".to_owned(),
                        is_error: true,
                    },
                ]),
            ],
            tools: vec![ToolSpec {
                name: "lookupOrder".to_owned(),
                description: "Finds an order".to_owned(),
                parameters: json!({"type": "object", "properties": {"id": {"type": "string"}}}),
            }],
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&plan(&config, "m", &request).body).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "lookupOrder", "description": "Finds an order", "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "where is A1?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookupOrder", "arguments": "{\"id\":\"A1\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"shipped\"}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "{\"error\":\"Object not found.\"}"},
            ])
        );
    }
}
