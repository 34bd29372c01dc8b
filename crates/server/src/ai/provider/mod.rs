//! LLM providers: the operator's configured back-ends, each turning a [`ChatRequest`] into
//! one stream of [`StreamEvent`]s.
//!
//! Two wire formats are spoken: OpenAI-compatible chat completions (OpenAI, Ollama, vLLM,
//! llama.cpp, LM Studio, OpenRouter, Groq, …; `openai.rs`) and Anthropic Messages
//! (`anthropic.rs`). Both stream Server-Sent Events ([`sse`]); `transport.rs` owns what they
//! share: sending, mapping errors, timeouts, retries before the first token, and the stream.
//!
//! The stream's contract, whatever the provider:
//! - zero or more [`StreamEvent::Delta`]s, then at most one [`StreamEvent::ToolCalls`] (when
//!   the request offered tools and the model called some: every call of the turn, its
//!   arguments complete), then at most one [`StreamEvent::Usage`] (when the provider reported
//!   usage), then one [`StreamEvent::Finished`], then the end;
//! - or, at any point, one `Err` and then the end (deltas already yielded stay valid);
//! - nothing is retried once a delta has been yielded, so no text is ever repeated;
//! - dropping the stream closes the upstream HTTP connection, which is how a cancelled
//!   generation stops costing tokens.
//!
//! Configuration never comes from clients, and API keys stay inside [`ProviderConfig`]
//! (its `Debug` hides them) and the request headers.

mod anthropic;
mod openai;
pub mod sse;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ai::tokens;

/// What the error says when no provider is configured at all.
pub const HOW_TO_CONFIGURE: &str = "no LLM provider is configured: set --llm-base-url (or \
     PARLOR_LLM_BASE_URL) to an OpenAI-compatible endpoint, with --llm-api-key and \
     --llm-model as needed, add providers to parlor.toml, or run Ollama on 127.0.0.1:11434";

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions: `POST {base}/chat/completions`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages: `POST {base}/v1/messages`.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl ProviderKind {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The vendor's own endpoint, for a configuration that names a kind but no URL.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(text: &str) -> Result<ProviderKind, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" | "openai_compatible" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(format!(
                "unknown LLM provider kind \"{other}\": use \"openai\" (any OpenAI-compatible \
                 server) or \"anthropic\""
            )),
        }
    }
}

/// How long to wait at each stage of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request to the first text delta: covers queueing at the provider,
    /// loading a local model and reading the prompt, which can take long for big prompts.
    pub first_token: Duration,
    /// Between two reads once text flows; keep-alive comments and pings count as activity.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

/// One configured provider.
#[derive(Clone, PartialEq)]
pub struct ProviderConfig {
    /// How personas name it (`provider` field); the default provider has one too.
    pub name: String,
    pub kind: ProviderKind,
    /// OpenAI-compatible: the base that `/chat/completions` is appended to (e.g.
    /// `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`). Anthropic: the host
    /// (`https://api.anthropic.com`; a trailing `/v1` is accepted too).
    pub base_url: String,
    /// Sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic); never logged.
    pub api_key: Option<String>,
    /// The model used when a request names none.
    pub model: Option<String>,
    pub timeouts: Timeouts,
    /// Further attempts after a connect failure, 429 or 5xx before the first token.
    pub max_retries: u32,
    /// Overrides the known window of the model (see [`tokens::context_window`]), for servers
    /// started with a different one.
    pub context_window: Option<u32>,
}

impl ProviderConfig {
    /// A configuration with the default timeouts and retries.
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: impl Into<String>) -> Self {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url: base_url.into(),
            api_key: None,
            model: None,
            timeouts: Timeouts::default(),
            max_retries: 2,
            context_window: None,
        }
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeouts", &self.timeouts)
            .field("max_retries", &self.max_retries)
            .field("context_window", &self.context_window)
            .finish()
    }
}

/// One completion request, provider-neutral.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The model; empty means the provider's default model.
    pub model: String,
    /// The system prompt: OpenAI's first `system` message, Anthropic's top-level `system`.
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f64>,
    /// The output budget. Anthropic requires one, so 1024 is sent when this is `None`.
    pub max_tokens: Option<u32>,
    /// The tools the model may call (OpenAI `tools` of type `function`, Anthropic `tools`);
    /// none are sent when empty.
    pub tools: Vec<ToolSpec>,
}

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// `[a-zA-Z0-9_-]{1,64}`, which both wire formats accept.
    pub name: String,
    pub description: String,
    /// A JSON Schema of the arguments (an `object` schema).
    pub parameters: Value,
}

/// One call of a tool the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRequest {
    /// The provider's id of the call, which the result must name.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: a JSON text (OpenAI streams it in fragments,
    /// Anthropic's `input_json_delta`s are joined into one). Parsed by the caller, which
    /// tells the model when it is not JSON.
    pub arguments: String,
}

impl ToolCallRequest {
    /// The arguments as JSON: `{}` for an empty text, an error sentence when not JSON.
    pub fn parsed_arguments(&self) -> Result<Value, String> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_str(&self.arguments)
            .map_err(|err| format!("the arguments are not valid JSON ({err})"))
    }
}

/// What a tool answered, as sent back to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The [`ToolCallRequest::id`] it answers.
    pub call_id: String,
    /// The result's JSON text, or the sentence saying why the tool did not run or failed.
    pub content: String,
    /// Whether `content` is an error: Anthropic marks it with `is_error`, OpenAI's
    /// `content` is `{"error": …}` then.
    pub is_error: bool,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    #[default]
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
    /// The speaker, for sessions with several users or personas. OpenAI-compatible
    /// providers get it as `name` (sanitised to `[a-zA-Z0-9_-]{1,64}`); Anthropic has no
    /// such field, so the text is prefixed with `name: ` instead.
    pub name: Option<String>,
    /// An assistant turn's tool calls, after its text (OpenAI `tool_calls`, Anthropic
    /// `tool_use` blocks).
    pub tool_calls: Vec<ToolCallRequest>,
    /// A user turn that answers the tool calls of the assistant turn before it (OpenAI:
    /// one `role: "tool"` message each; Anthropic: `tool_result` blocks); `content` is
    /// then unused.
    pub tool_results: Vec<ToolResult>,
}

impl ChatMessage {
    /// A user's message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: ChatRole::User,
            content: content.into(),
            ..ChatMessage::default()
        }
    }

    /// An assistant's message.
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: ChatRole::Assistant,
            content: content.into(),
            ..ChatMessage::default()
        }
    }

    /// An assistant turn that called tools (its text, possibly empty, came first).
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCallRequest>) -> ChatMessage {
        ChatMessage {
            role: ChatRole::Assistant,
            content: content.into(),
            tool_calls: calls,
            ..ChatMessage::default()
        }
    }

    /// The results of the tool calls of the assistant turn before it.
    pub fn tool_results(results: Vec<ToolResult>) -> ChatMessage {
        ChatMessage {
            role: ChatRole::User,
            tool_results: results,
            ..ChatMessage::default()
        }
    }

    /// The same message attributed to `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> ChatMessage {
        self.name = Some(name.into());
        self
    }
}

/// One item of a provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More text, never empty.
    Delta(String),
    /// The tools the model called in this turn, in its order, each complete.
    ToolCalls(Vec<ToolCallRequest>),
    /// What the provider counted, once, just before [`StreamEvent::Finished`].
    Usage(Usage),
    /// The end, with the provider's reason (`stop`, `length`, `end_turn`, `max_tokens`,
    /// `tool_calls`, `tool_use`, …).
    Finished { reason: Option<String> },
}

/// Token usage as the provider reported it, in OpenAI's field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// Why a request or stream failed. `Display` is a sentence an end user can read; it never
/// contains the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No usable provider: nothing configured, an unknown name, no model, a bad URL.
    #[error("{0}")]
    NotConfigured(String),
    /// The connection could not be opened (refused, DNS, TLS).
    #[error("could not connect to the LLM provider: {0}")]
    Connect(String),
    /// A stage took too long: `"connect"`, `"first token"` or `"idle"`.
    #[error("{}", timeout_message(.0))]
    Timeout(&'static str),
    /// The provider refused the request with this HTTP status.
    #[error("the LLM provider answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    /// The prompt does not fit the model's context window.
    #[error("the conversation is too long for the model's context window: {0}")]
    ContextOverflow(String),
    /// The provider is rate limiting (HTTP 429 or a rate-limit error event).
    #[error("the LLM provider is rate limiting requests: {0}")]
    RateLimited(String),
    /// The stream broke off: the connection dropped or the provider sent an error event.
    #[error("the LLM stream broke off: {0}")]
    Stream(String),
    /// The provider sent something that is not its protocol.
    #[error("the LLM provider sent an invalid response: {0}")]
    Protocol(String),
}

impl ProviderError {
    /// A short name of the kind of failure, for the `llm_provider_errors` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured(_) => "not_configured",
            ProviderError::Connect(_) => "connect",
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Status { .. } => "http_status",
            ProviderError::ContextOverflow(_) => "context_overflow",
            ProviderError::RateLimited(_) => "rate_limited",
            ProviderError::Stream(_) => "stream",
            ProviderError::Protocol(_) => "protocol",
        }
    }
}

fn timeout_message(stage: &str) -> String {
    match stage {
        "connect" => "timed out connecting to the LLM provider".to_owned(),
        "first token" => "the LLM provider sent no text before the first-token timeout".to_owned(),
        "idle" => "the LLM provider stopped sending text (idle timeout)".to_owned(),
        other => format!("the LLM provider timed out ({other})"),
    }
}

/// A provider's answer as it arrives.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// One configured provider with its HTTP client (which pools connections to it).
pub struct Provider {
    config: ProviderConfig,
    /// The client, or why it could not be built (reported on every request, so a bad
    /// entry in `parlor.toml` fails the personas that use it rather than the server).
    client: Result<reqwest::Client, String>,
}

impl Provider {
    /// A provider for `config`. Never fails: a bad configuration is reported by
    /// [`Provider::stream`] as [`ProviderError::NotConfigured`].
    pub fn new(config: ProviderConfig) -> Provider {
        let client = build_client(&config);
        Provider { config, client }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> Option<&str> {
        self.config
            .model
            .as_deref()
            .filter(|model| !model.is_empty())
    }

    /// The context window to budget for `model`: the configured one, else the known one.
    pub fn context_window(&self, model: &str) -> u32 {
        self.config
            .context_window
            .unwrap_or_else(|| tokens::context_window(model))
    }

    /// Sends `request` and returns its answer as a stream once the provider has accepted
    /// it (HTTP 2xx). Connect failures, 429 and 5xx are retried here with backoff; errors
    /// the provider reports before accepting come back as `Err`.
    pub async fn stream(&self, request: ChatRequest) -> Result<EventStream, ProviderError> {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(message) => return Err(ProviderError::NotConfigured(message.clone())),
        };
        let model = if request.model.is_empty() {
            match self.default_model() {
                Some(model) => model.to_owned(),
                None => {
                    return Err(ProviderError::NotConfigured(format!(
                        "no model is set for LLM provider \"{}\": give the persona a model or \
                         configure the provider's default model",
                        self.config.name
                    )));
                }
            }
        } else {
            request.model.clone()
        };
        let plan = match self.config.kind {
            ProviderKind::OpenAi => openai::plan(&self.config, &model, &request),
            ProviderKind::Anthropic => anthropic::plan(&self.config, &model, &request),
        };
        let upstream = transport::Upstream {
            client,
            plan,
            kind: self.config.kind,
            timeouts: self.config.timeouts,
            max_retries: self.config.max_retries,
        };
        transport::open_stream(upstream).await
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Every configured provider: the default one (from the command line, or a discovered
/// Ollama) and the named ones from `parlor.toml`.
#[derive(Debug, Default, Clone)]
pub struct Providers {
    default: Option<Arc<Provider>>,
    named: HashMap<String, Arc<Provider>>,
}

impl Providers {
    pub fn new(default: Option<ProviderConfig>, named: Vec<ProviderConfig>) -> Providers {
        let named = named
            .into_iter()
            .map(|config| (config.name.clone(), Arc::new(Provider::new(config))))
            .collect();
        Providers {
            default: default.map(|config| Arc::new(Provider::new(config))),
            named,
        }
    }

    /// The provider a persona names, or the default one for `None` (or an empty name).
    pub fn get(&self, name: Option<&str>) -> Result<Arc<Provider>, ProviderError> {
        let name = name.map(str::trim).filter(|name| !name.is_empty());
        let Some(name) = name else {
            return match &self.default {
                Some(provider) => Ok(provider.clone()),
                None => Err(ProviderError::NotConfigured(HOW_TO_CONFIGURE.to_owned())),
            };
        };
        if let Some(provider) = self.named.get(name) {
            return Ok(provider.clone());
        }
        if let Some(provider) = self.default.as_ref().filter(|p| p.name() == name) {
            return Ok(provider.clone());
        }
        let mut known: Vec<&str> = self.names().collect();
        known.sort_unstable();
        let known = if known.is_empty() {
            "none is configured".to_owned()
        } else {
            format!("configured: {}", known.join(", "))
        };
        Err(ProviderError::NotConfigured(format!(
            "no LLM provider named \"{name}\" ({known})"
        )))
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.named.is_empty()
    }

    /// The names of all providers, the default one included.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.default
            .iter()
            .map(|provider| provider.name())
            .chain(self.named.keys().map(String::as_str))
    }

    /// A local Ollama on its default port, as an OpenAI-compatible provider named
    /// `ollama`, or `None` when nothing answers there quickly.
    pub async fn discover_local_ollama() -> Option<ProviderConfig> {
        discover_ollama("http://127.0.0.1:11434").await
    }
}

/// Probes an Ollama server at `root` (no `/v1`) by listing its models; the first model that
/// is not an embedding model becomes the default model.
pub async fn discover_ollama(root: &str) -> Option<ProviderConfig> {
    let root = root.trim_end_matches('/');
    // Probed at start-up, so a missing Ollama must cost next to nothing.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(1500))
        .build()
        .ok()?;
    let response = client.get(format!("{root}/api/tags")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let tags: serde_json::Value = response.json().await.ok()?;
    let models = tags.get("models")?.as_array()?;
    let model = models
        .iter()
        .filter_map(|model| model.get("name").and_then(serde_json::Value::as_str))
        .find(|name| !name.contains("embed"))
        .map(str::to_owned);
    let mut config = ProviderConfig::new("ollama", ProviderKind::OpenAi, format!("{root}/v1"));
    config.model = model;
    // A local model is loaded into memory on its first request, which can take minutes.
    config.timeouts.first_token = Duration::from_secs(300);
    // Ollama serves every model with a 4096-token window unless started otherwise, and
    // silently drops the start of longer prompts.
    config.context_window = Some(4096);
    Some(config)
}

/// Builds the HTTP client for one provider.
fn build_client(config: &ProviderConfig) -> Result<reqwest::Client, String> {
    let url = reqwest::Url::parse(&config.base_url).map_err(|err| {
        format!(
            "LLM provider \"{}\" has an invalid base URL \"{}\": {err}",
            config.name, config.base_url
        )
    })?;
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.timeouts.connect)
        .tcp_nodelay(true)
        .user_agent(concat!("parlor/", env!("CARGO_PKG_VERSION")));
    // A proxy from the environment is for reaching the internet, not a local model server.
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if loopback {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|err| {
        format!(
            "could not set up the HTTP client for LLM provider \"{}\": {err}",
            config.name
        )
    })
}

/// Makes ring the process's rustls crypto provider unless one is installed already.
/// reqwest's own default would be aws-lc, a much heavier build; certificates are checked by
/// the platform verifier (the system's CA store). Every process that builds a
/// `reqwest::Client` with this crate's build of reqwest must call it first (the server does at
/// start; tests and tools that embed it too).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another part of the process installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Keeps `[a-zA-Z0-9_-]`, replaces anything else with `_`, cuts at 64 characters; `None`
/// when nothing recognisable is left. OpenAI rejects other `name`s with a 400.
pub fn sanitize_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.chars().all(|ch| ch == '_') {
        return None;
    }
    Some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised_for_openai() {
        assert_eq!(sanitize_name("Ada").as_deref(), Some("Ada"));
        assert_eq!(sanitize_name("Dr. Who").as_deref(), Some("Dr__Who"));
        assert_eq!(sanitize_name("émile").as_deref(), Some("_mile"));
        assert_eq!(sanitize_name("你好"), None);
        assert_eq!(sanitize_name("  "), None);
        assert_eq!(sanitize_name(&"x".repeat(100)).map(|n| n.len()), Some(64));
    }

    #[test]
    fn kinds_parse_from_configuration() {
        assert_eq!("openai".parse(), Ok(ProviderKind::OpenAi));
        assert_eq!("Anthropic".parse(), Ok(ProviderKind::Anthropic));
        assert!("gemini".parse::<ProviderKind>().is_err());
    }

    #[test]
    fn debug_hides_the_api_key() {
        let mut config = ProviderConfig::new("main", ProviderKind::OpenAi, "http://x/v1");
        config.api_key = Some("sk-secret".to_owned());
        let text = format!("{:?}", Provider::new(config));
        assert!(!text.contains("sk-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            ProviderError::Timeout("first token").to_string(),
            "the LLM provider sent no text before the first-token timeout"
        );
        assert_eq!(
            ProviderError::Status {
                status: 401,
                message: "Incorrect API key provided".to_owned()
            }
            .to_string(),
            "the LLM provider answered HTTP 401: Incorrect API key provided"
        );
    }
}
