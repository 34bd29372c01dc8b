//! A fake LLM provider over real HTTP on `127.0.0.1:0`, speaking OpenAI's and Anthropic's
//! streaming formats from scripts.
//!
//! Routes: `POST /v1/chat/completions` and `POST /chat/completions` (OpenAI SSE),
//! `POST /v1/messages` (Anthropic SSE), `GET /api/tags` (Ollama's model list, for
//! discovery). Each request follows the first [`ToolRule`] that applies to it, else takes the
//! next pushed [`Script`], or the default script when the queue is empty.
//!
//! Tool calls, in both formats: a script with [`Script::tool_calls`] streams its text, then
//! the calls (OpenAI `delta.tool_calls` fragments, `finish_reason: "tool_calls"`; Anthropic
//! `tool_use` blocks with `input_json_delta` fragments, `stop_reason: "tool_use"`).
//! [`FakeLlm::on_asked`] scripts a whole exchange: "when the user's latest message contains
//! X, call tool T with arguments A; once the result is back, answer with it". Every request is recorded ([`FakeLlm::requests`]) with its outcome, so
//! tests check the prompt Parlor assembled and that a cancel closed the connection.
//!
//! HTTP/1.1 is written by hand rather than with axum: a hand-written loop can watch the
//! socket for the client's close while it waits between tokens, which is exactly the
//! observation a cancel test needs, and it can cut a chunked body in the middle.
//! One instance per test; instances share nothing.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parlor_server::ai::provider::{ProviderConfig, ProviderKind};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// The default answer: "Hello from the fake model." in six tokens, with usage.
pub const DEFAULT_REPLY: &[&str] = &["Hello", " from", " the", " fake", " model", "."];

/// A running fake provider; it stops accepting when dropped.
pub struct FakeLlm {
    /// The OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub base_url: String,
    /// The Anthropic base URL (`http://127.0.0.1:PORT`).
    pub anthropic_base_url: String,
    /// The server root, which is also where Ollama's `/api/tags` is answered.
    pub root_url: String,
    shared: Arc<Mutex<State>>,
    accept_task: JoinHandle<()>,
}

/// How a fake stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still being answered (or hanging).
    InProgress,
    /// Answered to the end.
    Completed,
    /// The client closed the connection before the end.
    ClientDisconnected,
    /// The script cut the connection on purpose.
    Cut,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
    pub outcome: Outcome,
}

impl RecordedRequest {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An error as a script sends it; rendered in each protocol's shape.
#[derive(Debug, Clone)]
pub struct ScriptError {
    /// OpenAI `type` / Anthropic `error.type`, e.g. `server_error`, `overloaded_error`.
    pub kind: String,
    /// OpenAI `code`, e.g. `context_length_exceeded`; Anthropic has none.
    pub code: Option<String>,
    pub message: String,
}

/// How (and whether) usage is reported at the end of an OpenAI stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStyle {
    /// OpenAI's final chunk with `choices: []`, when the request asked for it.
    Chunk,
    /// vLLM's final chunk with `choices: null`.
    VllmNull,
    /// No usage at all.
    Off,
}

/// Where a script stops answering without closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    /// Before sending the response headers.
    BeforeHeaders,
    /// After this many tokens.
    AfterTokens(usize),
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub struct Script {
    pub tokens: Vec<String>,
    /// Answer with the last message's words instead of `tokens`.
    pub echo: bool,
    pub first_token_delay: Duration,
    pub token_delay: Duration,
    pub usage: UsageStyle,
    /// The reported prompt tokens; `None` counts a quarter of the prompt's characters.
    pub prompt_tokens: Option<u64>,
    /// OpenAI's finish reason (`stop`, `length`); Anthropic gets `end_turn` / `max_tokens`.
    pub finish_reason: String,
    /// Close the connection abruptly after this many tokens.
    pub cut_after: Option<usize>,
    /// Send an error event after this many tokens, then end the stream.
    pub error_after: Option<(usize, ScriptError)>,
    /// Answer with this HTTP status and error body instead of a stream.
    pub http_error: Option<(u16, ScriptError)>,
    /// A `Retry-After` header (seconds) on the HTTP error.
    pub retry_after: Option<u64>,
    pub hang: Option<Hang>,
    /// Send OpenAI's `data: [DONE]` at the end.
    pub done_marker: bool,
    /// Tools called after the text: `(name, arguments)`; the finish reason becomes
    /// `tool_calls` (OpenAI) / `tool_use` (Anthropic).
    pub tool_calls: Vec<(String, Value)>,
    /// Answer with the last tool result in the request ("Tool said: …") instead of `tokens`.
    pub answer_from_tool: bool,
}

/// "When the latest user message contains `asked`, call `tool` with `arguments`; once
/// `rounds` results are back (after that message), answer from the last one."
#[derive(Debug, Clone)]
pub struct ToolRule {
    pub asked: String,
    pub tool: String,
    pub arguments: Value,
    /// Tool rounds before the answer; `usize::MAX` calls the tool forever.
    pub rounds: usize,
    /// Text said before each call.
    pub preface: Option<String>,
}

impl Default for Script {
    fn default() -> Script {
        Script::reply(DEFAULT_REPLY)
    }
}

impl Script {
    /// A successful answer in these tokens, with usage and `[DONE]`.
    pub fn reply(tokens: &[&str]) -> Script {
        Script {
            tokens: tokens.iter().map(|token| (*token).to_owned()).collect(),
            echo: false,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            usage: UsageStyle::Chunk,
            prompt_tokens: None,
            finish_reason: "stop".to_owned(),
            cut_after: None,
            error_after: None,
            http_error: None,
            retry_after: None,
            hang: None,
            done_marker: true,
            tool_calls: Vec::new(),
            answer_from_tool: false,
        }
    }

    /// Calls these tools (after `tokens`, none by default).
    pub fn tool_calls(calls: &[(&str, Value)]) -> Script {
        Script {
            tool_calls: calls
                .iter()
                .map(|(name, arguments)| ((*name).to_owned(), arguments.clone()))
                .collect(),
            finish_reason: "tool_calls".to_owned(),
            ..Script::reply(&[])
        }
    }

    /// Answers "Tool said: <the last tool result's content>".
    pub fn answer_from_tool() -> Script {
        Script {
            answer_from_tool: true,
            ..Script::reply(&[])
        }
    }

    /// The text said before the tool calls.
    pub fn saying(mut self, tokens: &[&str]) -> Script {
        self.tokens = tokens.iter().map(|token| (*token).to_owned()).collect();
        self
    }

    /// Answers with the last message's text, word by word ("Echo: " first).
    pub fn echo() -> Script {
        Script {
            echo: true,
            ..Script::reply(&[])
        }
    }

    /// An HTTP error answer.
    pub fn http_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Script {
        Script {
            http_error: Some((
                status,
                ScriptError {
                    kind: kind.to_owned(),
                    code: code.map(str::to_owned),
                    message: message.to_owned(),
                },
            )),
            ..Script::reply(&[])
        }
    }

    /// HTTP 429 as OpenAI sends it.
    pub fn rate_limited() -> Script {
        Script::http_error(
            429,
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests",
        )
    }

    /// HTTP 400 `context_length_exceeded` as OpenAI sends it.
    pub fn context_overflow() -> Script {
        Script::http_error(
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
            "This model's maximum context length is 8192 tokens. However, your messages \
             resulted in 9000 tokens. Please reduce the length of the messages.",
        )
    }

    /// Never answers: no headers, no close.
    pub fn hang() -> Script {
        Script {
            hang: Some(Hang::BeforeHeaders),
            ..Script::reply(&[])
        }
    }

    pub fn hang_after(mut self, tokens: usize) -> Script {
        self.hang = Some(Hang::AfterTokens(tokens));
        self
    }

    pub fn token_delay(mut self, delay: Duration) -> Script {
        self.token_delay = delay;
        self
    }

    pub fn first_token_delay(mut self, delay: Duration) -> Script {
        self.first_token_delay = delay;
        self
    }

    pub fn no_usage(mut self) -> Script {
        self.usage = UsageStyle::Off;
        self
    }

    pub fn vllm_usage(mut self) -> Script {
        self.usage = UsageStyle::VllmNull;
        self
    }

    pub fn prompt_tokens(mut self, tokens: u64) -> Script {
        self.prompt_tokens = Some(tokens);
        self
    }

    pub fn finish_reason(mut self, reason: &str) -> Script {
        self.finish_reason = reason.to_owned();
        self
    }

    pub fn cut_after(mut self, tokens: usize) -> Script {
        self.cut_after = Some(tokens);
        self
    }

    pub fn error_after(mut self, tokens: usize, kind: &str, message: &str) -> Script {
        self.error_after = Some((
            tokens,
            ScriptError {
                kind: kind.to_owned(),
                code: None,
                message: message.to_owned(),
            },
        ));
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Script {
        self.retry_after = Some(seconds);
        self
    }

    pub fn without_done(mut self) -> Script {
        self.done_marker = false;
        self
    }
}

struct State {
    rules: Vec<ToolRule>,
    scripts: VecDeque<Script>,
    default: Script,
    requests: Vec<RecordedRequest>,
}

impl FakeLlm {
    /// Starts a fake on a free port.
    pub async fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake LLM");
        let address = listener.local_addr().expect("fake LLM address");
        let shared = Arc::new(Mutex::new(State {
            rules: Vec::new(),
            scripts: VecDeque::new(),
            default: Script::default(),
            requests: Vec::new(),
        }));
        let accept_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(accept_shared.clone(), stream));
            }
        });
        let root_url = format!("http://{address}");
        FakeLlm {
            base_url: format!("{root_url}/v1"),
            anthropic_base_url: root_url.clone(),
            root_url,
            shared,
            accept_task,
        }
    }

    /// Queues a script for the next request.
    pub fn push(&self, script: Script) {
        self.state().scripts.push_back(script);
    }

    /// Scripts a tool exchange: a request whose latest user message contains `asked` calls
    /// `tool` with `arguments` until `rounds` results are back after that message, then
    /// answers from the last result ("Tool said: …"). Rules come before the queue.
    pub fn on_asked(&self, asked: &str, tool: &str, arguments: Value, rounds: usize) {
        self.add_rule(ToolRule {
            asked: asked.to_owned(),
            tool: tool.to_owned(),
            arguments,
            rounds,
            preface: None,
        });
    }

    pub fn add_rule(&self, rule: ToolRule) {
        self.state().rules.push(rule);
    }

    /// Replaces the script used when the queue is empty.
    pub fn set_default(&self, script: Script) {
        self.state().default = script;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// How many streams the client closed before their end.
    pub fn disconnects(&self) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|request| request.outcome == Outcome::ClientDisconnected)
            .count()
    }

    /// Waits until at least `count` requests have arrived; false on timeout.
    pub async fn wait_for_requests(&self, count: usize, within: Duration) -> bool {
        self.wait_until(within, |state| state.requests.len() >= count)
            .await
    }

    /// Waits until at least `count` clients have disconnected early; false on timeout.
    pub async fn wait_for_disconnects(&self, count: usize, within: Duration) -> bool {
        self.wait_until(within, |state| {
            state
                .requests
                .iter()
                .filter(|request| request.outcome == Outcome::ClientDisconnected)
                .count()
                >= count
        })
        .await
    }

    /// An OpenAI-compatible provider configuration pointing here.
    pub fn openai_config(&self, name: &str) -> ProviderConfig {
        let mut config = ProviderConfig::new(name, ProviderKind::OpenAi, self.base_url.clone());
        config.model = Some("fake-model".to_owned());
        config.api_key = Some("sk-fake".to_owned());
        config
    }

    /// An Anthropic provider configuration pointing here.
    pub fn anthropic_config(&self, name: &str) -> ProviderConfig {
        let mut config = ProviderConfig::new(
            name,
            ProviderKind::Anthropic,
            self.anthropic_base_url.clone(),
        );
        config.model = Some("claude-fake".to_owned());
        config.api_key = Some("anthropic-fake".to_owned());
        config
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    async fn wait_until(&self, within: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.state()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

fn lock(shared: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The wire format of a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenAi,
    Anthropic,
}

/// The client went away.
struct Gone;

/// Answers one connection (one request: every answer says `connection: close`).
async fn serve(shared: Arc<Mutex<State>>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Some((method, path, headers, body)) = read_request(&mut stream).await else {
        return;
    };
    let format = match (method.as_str(), path.as_str()) {
        ("GET", "/api/tags") => {
            let body = json!({"models": [{"name": "nomic-embed-text:latest"}, {"name": "llama3.2:latest"}]});
            let _ = write_json(&mut stream, 200, &body, None).await;
            return;
        }
        ("POST", "/v1/chat/completions" | "/chat/completions") => Format::OpenAi,
        ("POST", "/v1/messages") => Format::Anthropic,
        _ => {
            let body = json!({"error": {"message": format!("no route {method} {path}"), "type": "not_found"}});
            let _ = write_json(&mut stream, 404, &body, None).await;
            return;
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (index, script) = {
        let mut state = lock(&shared);
        let by_rule = state
            .rules
            .iter()
            .find_map(|rule| rule_script(rule, format, &body));
        let script = match by_rule {
            Some(script) => script,
            None => state
                .scripts
                .pop_front()
                .unwrap_or_else(|| state.default.clone()),
        };
        state.requests.push(RecordedRequest {
            method,
            path,
            headers,
            body: body.clone(),
            outcome: Outcome::InProgress,
        });
        (state.requests.len() - 1, script)
    };
    let outcome = answer(&mut stream, format, &script, &body).await;
    lock(&shared).requests[index].outcome = outcome;
}

/// Reads one request: the head, then a `content-length` body.
async fn read_request(
    stream: &mut TcpStream,
) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Some((method, path, headers, body))
}

async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    body: &Value,
    retry_after: Option<u64>,
) -> std::io::Result<()> {
    let body = body.to_string();
    let retry_after = retry_after
        .map(|seconds| format!("retry-after: {seconds}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry_after}connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Plays a script on the connection.
async fn answer(
    stream: &mut TcpStream,
    format: Format,
    script: &Script,
    request: &Value,
) -> Outcome {
    if let Some((status, error)) = &script.http_error {
        let body = error_body(format, error);
        let _ = write_json(stream, *status, &body, script.retry_after).await;
        return Outcome::Completed;
    }
    let (reader, writer) = stream.split();
    let mut wire = Wire { reader, writer };
    if script.hang == Some(Hang::BeforeHeaders) {
        wire.hang().await;
        return Outcome::ClientDisconnected;
    }
    match play(&mut wire, format, script, request).await {
        Ok(outcome) => {
            let _ = wire.writer.shutdown().await;
            outcome
        }
        Err(Gone) => Outcome::ClientDisconnected,
    }
}

async fn play(
    wire: &mut Wire<'_>,
    format: Format,
    script: &Script,
    request: &Value,
) -> Result<Outcome, Gone> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    wire.write(head.as_bytes()).await?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model");
    let tokens = if script.echo {
        echo_tokens(request)
    } else if script.answer_from_tool {
        let said = conversation(format, request)
            .last_result
            .unwrap_or_else(|| "nothing".to_owned());
        vec!["Tool said: ".to_owned(), said]
    } else {
        script.tokens.clone()
    };
    let prompt_tokens = script
        .prompt_tokens
        .unwrap_or_else(|| estimate_prompt(request));
    if format == Format::Anthropic {
        let usage = (script.usage != UsageStyle::Off)
            .then(|| json!({"input_tokens": prompt_tokens, "output_tokens": 1}));
        let mut message = json!({"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": null, "stop_sequence": null});
        if let Some(usage) = usage {
            message["usage"] = usage;
        }
        wire.event(
            format,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        )
        .await?;
        wire.event(format, "content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})).await?;
        wire.event(format, "ping", &json!({"type": "ping"})).await?;
    } else {
        let first = chunk(
            model,
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        );
        wire.event(format, "", &first).await?;
    }
    wire.pause(script.first_token_delay).await?;
    for (index, token) in tokens.iter().enumerate() {
        if script.cut_after == Some(index) {
            return Ok(Outcome::Cut);
        }
        if script.hang == Some(Hang::AfterTokens(index)) {
            wire.hang().await;
            return Err(Gone);
        }
        if let Some((after, error)) = &script.error_after
            && *after == index
        {
            wire.event(format, "error", &error_body(format, error))
                .await?;
            wire.write(b"0\r\n\r\n").await?;
            return Ok(Outcome::Completed);
        }
        if index > 0 {
            wire.pause(script.token_delay).await?;
        }
        let event = match format {
            Format::OpenAi => chunk(
                model,
                json!([{"index": 0, "delta": {"content": token}, "finish_reason": null}]),
            ),
            Format::Anthropic => {
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}})
            }
        };
        wire.event(format, "content_block_delta", &event).await?;
    }
    // The limits checked before each token also apply after the last one.
    let count = tokens.len();
    if script.cut_after.is_some_and(|after| after >= count) {
        return Ok(Outcome::Cut);
    }
    if script
        .hang
        .is_some_and(|hang| matches!(hang, Hang::AfterTokens(after) if after >= count))
    {
        wire.hang().await;
        return Err(Gone);
    }
    if let Some((after, error)) = &script.error_after
        && *after >= count
    {
        wire.event(format, "error", &error_body(format, error))
            .await?;
        wire.write(b"0\r\n\r\n").await?;
        return Ok(Outcome::Completed);
    }
    let completion_tokens = count as u64;
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    match format {
        Format::OpenAi => {
            for (index, (name, arguments)) in script.tool_calls.iter().enumerate() {
                let start = chunk(
                    model,
                    json!([{"index": 0, "delta": {"tool_calls": [{"index": index, "id": format!("call_{index}"), "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]),
                );
                wire.event(format, "", &start).await?;
                for part in halves(&arguments.to_string()) {
                    let fragment = chunk(
                        model,
                        json!([{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {"arguments": part}}]}, "finish_reason": null}]),
                    );
                    wire.event(format, "", &fragment).await?;
                }
            }
            let last = chunk(
                model,
                json!([{"index": 0, "delta": {}, "finish_reason": script.finish_reason}]),
            );
            wire.event(format, "", &last).await?;
            let asked = request
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
            match script.usage {
                UsageStyle::Chunk if asked => {
                    let mut usage_chunk = chunk(model, json!([]));
                    usage_chunk["usage"] = usage;
                    wire.event(format, "", &usage_chunk).await?;
                }
                UsageStyle::VllmNull => {
                    let mut usage_chunk = chunk(model, Value::Null);
                    usage_chunk["usage"] = usage;
                    wire.event(format, "", &usage_chunk).await?;
                }
                _ => {}
            }
            if script.done_marker {
                wire.write_chunk(b"data: [DONE]\n\n").await?;
            }
        }
        Format::Anthropic => {
            wire.event(
                format,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            )
            .await?;
            for (position, (name, arguments)) in script.tool_calls.iter().enumerate() {
                let index = position + 1;
                wire.event(format, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{position}"), "name": name, "input": {}}})).await?;
                for part in halves(&arguments.to_string()) {
                    wire.event(format, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}})).await?;
                }
                wire.event(
                    format,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": index}),
                )
                .await?;
            }
            let stop_reason = match script.finish_reason.as_str() {
                "stop" => "end_turn",
                "length" => "max_tokens",
                "tool_calls" => "tool_use",
                other => other,
            };
            let mut delta = json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}});
            if script.usage != UsageStyle::Off {
                delta["usage"] = json!({"output_tokens": completion_tokens});
            }
            wire.event(format, "message_delta", &delta).await?;
            if script.done_marker {
                wire.event(format, "message_stop", &json!({"type": "message_stop"}))
                    .await?;
            }
        }
    }
    wire.write(b"0\r\n\r\n").await?;
    Ok(Outcome::Completed)
}

/// A text in two fragments (split at a character boundary), as models stream arguments.
fn halves(text: &str) -> Vec<String> {
    let middle = text.chars().count() / 2;
    let cut = text
        .char_indices()
        .nth(middle)
        .map_or(text.len(), |(at, _)| at);
    vec![text[..cut].to_owned(), text[cut..].to_owned()]
}

/// What a request's conversation holds, as the tool rules read it.
#[derive(Debug, Default)]
struct Conversation {
    /// The text of the latest user turn that is not tool results.
    last_user_text: Option<String>,
    /// Tool results after that turn.
    results_after: usize,
    /// The content of the last tool result.
    last_result: Option<String>,
}

fn conversation(format: Format, request: &Value) -> Conversation {
    let mut seen = Conversation::default();
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for message in &messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let content = message.get("content");
        match (format, role) {
            (Format::OpenAi, "tool") => {
                seen.results_after += 1;
                seen.last_result = content.and_then(Value::as_str).map(str::to_owned);
            }
            (_, "user") => match content {
                Some(Value::String(text)) => {
                    seen.last_user_text = Some(text.clone());
                    seen.results_after = 0;
                }
                Some(Value::Array(blocks)) => {
                    for block in blocks {
                        match block.get("type").and_then(Value::as_str) {
                            Some("tool_result") => {
                                seen.results_after += 1;
                                let text =
                                    block.get("content").and_then(Value::as_str).unwrap_or("");
                                let error =
                                    block.get("is_error").and_then(Value::as_bool) == Some(true);
                                seen.last_result = Some(if error {
                                    format!("error: {text}")
                                } else {
                                    text.to_owned()
                                });
                            }
                            Some("text") => {
                                seen.last_user_text =
                                    block.get("text").and_then(Value::as_str).map(str::to_owned);
                                seen.results_after = 0;
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    seen
}

/// The script a rule gives this request, if the rule applies.
fn rule_script(rule: &ToolRule, format: Format, request: &Value) -> Option<Script> {
    let seen = conversation(format, request);
    if !seen.last_user_text?.contains(&rule.asked) {
        return None;
    }
    if seen.results_after >= rule.rounds {
        return Some(Script::answer_from_tool());
    }
    let script = Script::tool_calls(&[(rule.tool.as_str(), rule.arguments.clone())]);
    Some(match &rule.preface {
        Some(text) => script.saying(&[text.as_str()]),
        None => script,
    })
}

/// An OpenAI `chat.completion.chunk`.
fn chunk(model: &str, choices: Value) -> Value {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices})
}

/// An error object in the format's shape.
fn error_body(format: Format, error: &ScriptError) -> Value {
    match format {
        Format::OpenAi => {
            json!({"error": {"message": error.message, "type": error.kind, "code": error.code}})
        }
        Format::Anthropic => {
            json!({"type": "error", "error": {"type": error.kind, "message": error.message}})
        }
    }
}

/// The last message's words, each with its leading space, after "Echo:".
fn echo_tokens(request: &Value) -> Vec<String> {
    let text = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|message| message.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    std::iter::once("Echo:".to_owned())
        .chain(text.split_whitespace().map(|word| format!(" {word}")))
        .collect()
}

/// A quarter of the characters of the system prompt and every message, at least one.
fn estimate_prompt(request: &Value) -> u64 {
    let mut characters = request
        .get("system")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        for message in messages {
            characters += message
                .get("content")
                .and_then(Value::as_str)
                .map_or(0, str::len);
        }
    }
    (characters as u64).div_ceil(4).max(1)
}

/// The two halves of a connection being answered: writes go out, and reads only watch for
/// the client's close.
struct Wire<'a> {
    reader: ReadHalf<'a>,
    writer: WriteHalf<'a>,
}

impl Wire<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        self.writer.write_all(bytes).await.map_err(|_| Gone)?;
        self.writer.flush().await.map_err(|_| Gone)
    }

    /// One chunk of the chunked body.
    async fn write_chunk(&mut self, data: &[u8]) -> Result<(), Gone> {
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        self.write(&framed).await
    }

    /// One SSE event in its own chunk; Anthropic's carry their name.
    async fn event(&mut self, format: Format, name: &str, data: &Value) -> Result<(), Gone> {
        let text = match format {
            Format::OpenAi => format!("data: {data}\n\n"),
            Format::Anthropic => format!("event: {name}\ndata: {data}\n\n"),
        };
        self.write_chunk(text.as_bytes()).await
    }

    /// Waits, noticing if the client closes meanwhile.
    async fn pause(&mut self, delay: Duration) -> Result<(), Gone> {
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = sleep(delay) => Ok(()),
            () = wait_for_close(&mut self.reader) => Err(Gone),
        }
    }

    /// Sends nothing more and returns when the client closes.
    async fn hang(&mut self) {
        wait_for_close(&mut self.reader).await;
    }
}

async fn wait_for_close(reader: &mut ReadHalf<'_>) {
    let mut buffer = [0u8; 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
