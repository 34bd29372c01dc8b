//! Anthropic Messages: `POST {base}/v1/messages` with `stream: true`.
//!
//! The stream is named events: `message_start` (with the prompt's `input_tokens`),
//! `content_block_start` / `content_block_delta` (`text_delta`) / `content_block_stop` per
//! block, `message_delta` (the `stop_reason` and the running `output_tokens`),
//! `message_stop`, `ping` keep-alives, and `error` (e.g. `overloaded_error`) at any point.
//! Only text blocks become deltas; thinking and tool-use blocks are not asked for and are
//! skipped if a server sends them.

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::transport::{self, Failure, Plan, closed_early, error_info};
use super::{ChatRequest, ChatRole, ProviderConfig, ProviderError, StreamEvent, Usage};

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

/// The conversation in Anthropic's shape. The API has no speaker names, so a named turn's
/// text is prefixed with `name: `; empty turns are dropped (the API rejects empty text),
/// and consecutive turns of one role are joined, as the API would merge them anyway.
fn messages(request: &ChatRequest) -> Vec<Value> {
    let mut turns: Vec<(ChatRole, String)> = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        if message.content.trim().is_empty() {
            continue;
        }
        let text = match message
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => format!("{name}: {}", message.content),
            None => message.content.clone(),
        };
        match turns.last_mut() {
            Some((role, previous)) if *role == message.role => {
                previous.push_str("\n\n");
                previous.push_str(&text);
            }
            _ => turns.push((message.role, text)),
        }
    }
    turns
        .into_iter()
        .map(|(role, text)| {
            let role = match role {
                ChatRole::User => "user",
                ChatRole::Assistant => "assistant",
            };
            json!({"role": role, "content": text})
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
}
