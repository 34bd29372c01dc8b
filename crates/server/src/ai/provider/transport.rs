//! What both wire formats share: sending the request, turning error answers into
//! [`ProviderError`]s, the three timeouts, retries before the first token, and the event
//! stream handed to callers.
//!
//! The stream is a plain state machine ([`Source`]) driven by `futures::stream::unfold`, not
//! a spawned task: it owns the `reqwest::Response`, so dropping the stream drops the
//! response, and hyper closes a connection whose body was not read to the end. That is
//! what makes cancelling a generation stop the provider's work.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;
use tokio::time::{Instant, sleep, timeout, timeout_at};

use super::sse::{SseEvent, SseParser};
use super::{EventStream, ProviderError, ProviderKind, StreamEvent, Timeouts, anthropic, openai};

/// The first pause between attempts; it doubles with each retry.
const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// The longest pause taken between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// The longest `Retry-After` honoured. A provider asking for longer will not be ready
/// within a chat reply's patience, so the error is reported at once instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The HTTP request for one completion, built once and sent again on retries.
pub(super) struct Plan {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Everything needed to (re)send one completion request.
pub(super) struct Upstream {
    pub client: reqwest::Client,
    pub plan: Plan,
    pub kind: ProviderKind,
    pub timeouts: Timeouts,
    pub max_retries: u32,
}

/// A failed attempt, and whether another attempt may succeed.
#[derive(Debug)]
pub(super) struct Failure {
    pub error: ProviderError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn fatal(error: ProviderError) -> Failure {
        Failure {
            error,
            retryable: false,
            retry_after: None,
        }
    }

    pub fn retryable(error: ProviderError) -> Failure {
        Failure {
            error,
            retryable: true,
            retry_after: None,
        }
    }
}

/// Sends the request (with retries) and wraps the accepted response in an [`EventStream`].
pub(super) async fn open_stream(upstream: Upstream) -> Result<EventStream, ProviderError> {
    let mut attempt = 0;
    let (response, deadline) = upstream.connect(&mut attempt).await?;
    let source = Source {
        decoder: Decoder::new(upstream.kind),
        upstream,
        response: Some(response),
        deadline,
        attempt,
        parser: SseParser::new(),
        pending: VecDeque::new(),
        yielded_text: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        source,
        |mut source| async move {
            let item = source.next().await?;
            Some((item, source))
        },
    )))
}

impl Upstream {
    /// Sends the request until the provider accepts it, retrying what may succeed later.
    /// Returns the response and the first-token deadline of the attempt that got it.
    async fn connect(
        &self,
        attempt: &mut u32,
    ) -> Result<(reqwest::Response, Instant), ProviderError> {
        loop {
            // The first-token clock restarts with each attempt: it measures one request.
            let deadline = Instant::now() + self.timeouts.first_token;
            match self.send(deadline).await {
                Ok(response) => return Ok((response, deadline)),
                Err(failure) => self.pause_before_retry(attempt, failure).await?,
            }
        }
    }

    /// Waits before another attempt, or hands the failure back when none is allowed.
    async fn pause_before_retry(
        &self,
        attempt: &mut u32,
        failure: Failure,
    ) -> Result<(), ProviderError> {
        if !failure.retryable || *attempt >= self.max_retries {
            return Err(failure.error);
        }
        let Some(delay) = backoff(*attempt, failure.retry_after) else {
            return Err(failure.error);
        };
        *attempt += 1;
        tracing::info!(
            attempt = *attempt,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %failure.error,
            "retrying the LLM request"
        );
        sleep(delay).await;
        Ok(())
    }

    /// One attempt: the request, and the status and headers of the answer.
    async fn send(&self, deadline: Instant) -> Result<reqwest::Response, Failure> {
        let mut builder = self.client.post(&self.plan.url);
        for (name, value) in &self.plan.headers {
            builder = builder.header(*name, value);
        }
        let builder = builder.body(self.plan.body.clone());
        let response = match timeout_at(deadline, builder.send()).await {
            Err(_elapsed) => return Err(Failure::fatal(ProviderError::Timeout("first token"))),
            Ok(Err(err)) => return Err(send_failure(err)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if status.is_success() && !json {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = match timeout_at(deadline, response.bytes()).await {
            Ok(Ok(body)) => body.to_vec(),
            _ => Vec::new(),
        };
        if status.is_success() {
            // Some gateways answer 200 with a JSON error instead of a stream.
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(match error_info(&value) {
                Some(info) => classify(None, &info),
                None => Failure::fatal(ProviderError::Protocol(
                    "expected an event stream but got a JSON document; check that the \
                     server supports streaming"
                        .to_owned(),
                )),
            });
        }
        let mut failure = http_failure(status, &body);
        failure.retry_after = retry_after;
        Err(failure)
    }
}

/// Maps a failure to send (nothing was answered) to an error.
fn send_failure(err: reqwest::Error) -> Failure {
    let connect = err.is_connect();
    let timed_out = err.is_timeout();
    let message = describe(&err.without_url());
    if connect && timed_out {
        return Failure::retryable(ProviderError::Timeout("connect"));
    }
    // Refused, reset or closed before an answer: the provider did no work worth keeping,
    // so another attempt is safe.
    Failure::retryable(ProviderError::Connect(message))
}

/// An error with its sources, which is where reqwest keeps the useful part.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// The pause before retry number `attempt + 1`, or `None` to give up.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
    match retry_after {
        Some(wait) if wait <= MAX_RETRY_AFTER => Some(wait),
        Some(_) => None,
        None => Some(
            BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(BACKOFF_MAX),
        ),
    }
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds; HTTP dates are not used by LLM
/// providers and are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(millis) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(millis / 1000.0).ok();
    }
    let seconds = header("retry-after")?.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// What an error object says, in the shapes providers use:
/// OpenAI `{"error": {"message", "type", "code"}}`, Anthropic `{"type": "error", "error":
/// {"type", "message"}}`, Ollama `{"error": "text"}`, and a bare `{"message": "text"}`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ErrorInfo {
    pub kind: String,
    pub code: String,
    pub message: String,
}

/// The error a JSON document reports, or `None` when it reports none.
pub(super) fn error_info(value: &Value) -> Option<ErrorInfo> {
    let text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    match value.get("error") {
        Some(Value::String(message)) => Some(ErrorInfo {
            message: message.clone(),
            ..ErrorInfo::default()
        }),
        Some(error @ Value::Object(_)) => Some(ErrorInfo {
            kind: text(error.get("type")),
            code: text(error.get("code")),
            message: text(error.get("message")),
        }),
        _ if value.get("type").and_then(Value::as_str) == Some("error") => Some(ErrorInfo {
            message: text(value.get("message")),
            ..ErrorInfo::default()
        }),
        _ => None,
    }
}

/// Maps an HTTP error answer.
fn http_failure(status: reqwest::StatusCode, body: &[u8]) -> Failure {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let info = error_info(&value)
        .or_else(|| {
            let message = value.get("message").or_else(|| value.get("detail"))?;
            Some(ErrorInfo {
                message: message
                    .as_str()
                    .map_or_else(|| message.to_string(), str::to_owned),
                ..ErrorInfo::default()
            })
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            ErrorInfo {
                message: if text.is_empty() {
                    status.canonical_reason().unwrap_or("no details").to_owned()
                } else {
                    clip(text, 300)
                },
                ..ErrorInfo::default()
            }
        });
    classify(Some(status.as_u16()), &info)
}

/// Classifies an error from its HTTP status (`None` for an error sent inside the stream)
/// and what the provider said.
pub(super) fn classify(status: Option<u16>, info: &ErrorInfo) -> Failure {
    let message = describe_info(info);
    if status != Some(429) && is_context_overflow(info) {
        return Failure::fatal(ProviderError::ContextOverflow(message));
    }
    let rate_limited = status == Some(429)
        || info.kind == "rate_limit_error"
        || info.kind == "rate_limit_exceeded"
        || info.code == "rate_limit_exceeded";
    if rate_limited {
        // An exhausted quota or balance is a 429 too, but waiting will not fix it.
        let lasting = info.code == "insufficient_quota" || info.kind == "insufficient_quota";
        let error = ProviderError::RateLimited(message);
        return if lasting {
            Failure::fatal(error)
        } else {
            Failure::retryable(error)
        };
    }
    match status {
        Some(status) if status >= 500 => {
            Failure::retryable(ProviderError::Status { status, message })
        }
        Some(status) => Failure::fatal(ProviderError::Status { status, message }),
        None => {
            let transient = matches!(
                info.kind.as_str(),
                "overloaded_error" | "api_error" | "server_error" | "service_unavailable"
            );
            let error = ProviderError::Stream(message);
            if transient {
                Failure::retryable(error)
            } else {
                Failure::fatal(error)
            }
        }
    }
}

/// Whether the provider says the prompt is longer than the model's window. Each server
/// words it differently: OpenAI's `context_length_exceeded`, vLLM's "maximum context
/// length is N tokens", llama.cpp's `exceed_context_size_error`, Anthropic's "prompt is too
/// long".
fn is_context_overflow(info: &ErrorInfo) -> bool {
    if info.code == "context_length_exceeded"
        || info.kind == "context_length_exceeded"
        || info.kind == "exceed_context_size_error"
    {
        return true;
    }
    let message = info.message.to_lowercase();
    [
        "maximum context length",
        "context length exceeded",
        "exceeds the context",
        "exceeds the maximum context",
        "context window",
        "prompt is too long",
        "exceed_context_size",
        "exceeds the available context size",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// The provider's message with its error type, for people reading the failure.
fn describe_info(info: &ErrorInfo) -> String {
    let label = if info.kind.is_empty() {
        &info.code
    } else {
        &info.kind
    };
    match (info.message.is_empty(), label.is_empty()) {
        (true, true) => "no details given".to_owned(),
        (true, false) => label.clone(),
        (false, true) => info.message.clone(),
        (false, false) if info.message.contains(label.as_str()) => info.message.clone(),
        (false, false) => format!("{} ({label})", info.message),
    }
}

/// At most `limit` characters of `text`, marked when cut.
pub(super) fn clip(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The per-format part of reading a stream.
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    fn new(kind: ProviderKind) -> Decoder {
        match kind {
            ProviderKind::OpenAi => Decoder::OpenAi(openai::Decoder::default()),
            ProviderKind::Anthropic => Decoder::Anthropic(anthropic::Decoder::default()),
        }
    }

    /// Reads one event, appending what it yields; `Ok(true)` when the answer is complete.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, Failure> {
        match self {
            Decoder::OpenAi(decoder) => decoder.event(event, out),
            Decoder::Anthropic(decoder) => decoder.event(event, out),
        }
    }

    /// Whether the model has produced anything yet, text or reasoning.
    fn generating(&self) -> bool {
        match self {
            Decoder::OpenAi(decoder) => decoder.generating,
            Decoder::Anthropic(decoder) => decoder.generating,
        }
    }

    /// The body ended without the format's end marker: finish if the answer is complete
    /// anyway, else fail.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Failure> {
        match self {
            Decoder::OpenAi(decoder) => decoder.finish(out),
            Decoder::Anthropic(decoder) => decoder.finish(out),
        }
    }
}

/// The error for a body that ended before the answer did.
pub(super) fn closed_early() -> Failure {
    Failure::fatal(ProviderError::Stream(
        "the provider closed the connection before the answer was complete".to_owned(),
    ))
}

/// One answer being read: the state behind an [`EventStream`].
struct Source {
    upstream: Upstream,
    /// `None` once the answer is complete or failed: nothing more is read.
    response: Option<reqwest::Response>,
    /// The first-token deadline of the current attempt.
    deadline: Instant,
    /// Retries used so far, across sending and reading.
    attempt: u32,
    parser: SseParser,
    decoder: Decoder,
    /// Decoded items not yet handed out; an error is always last.
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    /// Whether a delta has been handed out: from then on nothing is retried and the idle
    /// timeout replaces the first-token deadline.
    yielded_text: bool,
}

impl Source {
    async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if matches!(item, Ok(StreamEvent::Delta(_))) {
                    self.yielded_text = true;
                }
                return Some(item);
            }
            let response = self.response.as_mut()?;
            // Reasoning models think (streaming reasoning, not text) before they answer;
            // once the model produces anything, silence is measured by the idle timeout.
            let generating = self.yielded_text || self.decoder.generating();
            let read = if generating {
                timeout(self.upstream.timeouts.idle, response.chunk()).await
            } else {
                timeout_at(self.deadline, response.chunk()).await
            };
            let mut events = Vec::new();
            let ended = match read {
                Err(_elapsed) => {
                    self.response = None;
                    let stage = if generating { "idle" } else { "first token" };
                    return Some(Err(ProviderError::Timeout(stage)));
                }
                Ok(Err(err)) => {
                    let message = describe(&err.without_url());
                    Err(Failure::fatal(ProviderError::Stream(message)))
                }
                Ok(Ok(Some(bytes))) => {
                    self.parser.push(&bytes, &mut events);
                    self.decode(&events)
                }
                Ok(Ok(None)) => {
                    self.parser.finish(&mut events);
                    match self.decode(&events) {
                        Ok(false) => {
                            let mut out = Vec::new();
                            let finished = self.decoder.finish(&mut out);
                            self.pending.extend(out.into_iter().map(Ok));
                            finished.map(|()| true)
                        }
                        other => other,
                    }
                }
            };
            match ended {
                Ok(false) => {}
                Ok(true) => self.response = None,
                Err(failure) => self.fail(failure).await,
            }
        }
    }

    /// Decodes events into `pending`; `Ok(true)` when the answer is complete.
    fn decode(&mut self, events: &[SseEvent]) -> Result<bool, Failure> {
        let mut out = Vec::new();
        for event in events {
            let result = self.decoder.event(event, &mut out);
            self.pending.extend(out.drain(..).map(Ok));
            if result? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Handles a failure while reading: another attempt when no text has been produced
    /// and the failure is transient, else the error after the deltas already decoded.
    async fn fail(&mut self, failure: Failure) {
        self.response = None;
        let any_text = self.yielded_text
            || self
                .pending
                .iter()
                .any(|item| matches!(item, Ok(StreamEvent::Delta(_))));
        if any_text || !failure.retryable {
            self.pending.push_back(Err(failure.error));
            return;
        }
        self.pending.clear();
        let reconnected = match self
            .upstream
            .pause_before_retry(&mut self.attempt, failure)
            .await
        {
            Ok(()) => self.upstream.connect(&mut self.attempt).await,
            Err(error) => Err(error),
        };
        match reconnected {
            Ok((response, deadline)) => {
                self.response = Some(response);
                self.deadline = deadline;
                self.parser = SseParser::new();
                self.decoder = Decoder::new(self.upstream.kind);
            }
            Err(error) => self.pending.push_back(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: &str, code: &str, message: &str) -> ErrorInfo {
        ErrorInfo {
            kind: kind.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn error_objects_in_every_shape() {
        let openai = serde_json::json!({"error": {"message": "m", "type": "t", "code": "c"}});
        assert_eq!(error_info(&openai), Some(info("t", "c", "m")));
        let numeric = serde_json::json!({"error": {"message": "m", "code": 500}});
        assert_eq!(error_info(&numeric), Some(info("", "500", "m")));
        let ollama = serde_json::json!({"error": "model not found"});
        assert_eq!(error_info(&ollama), Some(info("", "", "model not found")));
        let anthropic = serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        assert_eq!(
            error_info(&anthropic),
            Some(info("overloaded_error", "", "Overloaded"))
        );
        assert_eq!(error_info(&serde_json::json!({"choices": []})), None);
        assert_eq!(error_info(&serde_json::json!({"error": null})), None);
    }

    #[test]
    fn context_overflow_in_every_wording() {
        for (kind, code, message) in [
            (
                "invalid_request_error",
                "context_length_exceeded",
                "too long",
            ),
            (
                "BadRequestError",
                "400",
                "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
            ),
            (
                "exceed_context_size_error",
                "400",
                "the request exceeds the available context size",
            ),
            (
                "invalid_request_error",
                "",
                "prompt is too long: 208310 tokens > 200000 maximum",
            ),
        ] {
            let failure = classify(Some(400), &info(kind, code, message));
            assert!(
                matches!(failure.error, ProviderError::ContextOverflow(_)),
                "{message}: {:?}",
                failure.error
            );
            assert!(!failure.retryable);
        }
    }

    #[test]
    fn statuses_and_retryability() {
        let failure = classify(
            Some(429),
            &info("requests", "rate_limit_exceeded", "slow down"),
        );
        assert!(matches!(failure.error, ProviderError::RateLimited(_)) && failure.retryable);
        let failure = classify(
            Some(429),
            &info("insufficient_quota", "insufficient_quota", "pay"),
        );
        assert!(matches!(failure.error, ProviderError::RateLimited(_)) && !failure.retryable);
        let failure = classify(Some(503), &info("", "", "busy"));
        assert!(
            matches!(failure.error, ProviderError::Status { status: 503, .. }) && failure.retryable
        );
        let failure = classify(
            Some(401),
            &info("invalid_request_error", "invalid_api_key", "bad key"),
        );
        assert_eq!(
            failure.error,
            ProviderError::Status {
                status: 401,
                message: "bad key (invalid_request_error)".to_owned()
            }
        );
        assert!(!failure.retryable);
        let failure = classify(None, &info("overloaded_error", "", "Overloaded"));
        assert!(matches!(failure.error, ProviderError::Stream(_)) && failure.retryable);
        let failure = classify(None, &info("invalid_request_error", "", "bad"));
        assert!(!failure.retryable);
    }

    #[test]
    fn backoff_doubles_and_honours_short_retry_after() {
        assert_eq!(backoff(0, None), Some(Duration::from_millis(250)));
        assert_eq!(backoff(2, None), Some(Duration::from_secs(1)));
        assert_eq!(backoff(30, None), Some(BACKOFF_MAX));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(
            "retry-after",
            reqwest::header::HeaderValue::from_static("2"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            "retry-after-ms",
            reqwest::header::HeaderValue::from_static("150"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 2), "hi");
    }
}
