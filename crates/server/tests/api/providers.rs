//! LLM providers over real HTTP against the fake provider (`common::fake_llm`): the OpenAI
//! and Anthropic stream formats, errors before and during the stream, retries before the
//! first token only, the three timeouts, and cancellation by dropping the stream.

use std::time::Duration;

use futures::StreamExt;
use parlor_server::ai::provider::{
    ChatMessage, ChatRequest, EventStream, Provider, ProviderConfig, ProviderError, ProviderKind,
    Providers, StreamEvent, Usage, discover_ollama,
};
use serde_json::json;

use crate::common::fake_llm::{DEFAULT_REPLY, FakeLlm, Outcome, Script};

/// What a stream produced, checked against the stream contract as it is read.
#[derive(Debug, Default)]
struct Answer {
    deltas: Vec<String>,
    tool_calls: Vec<parlor_server::ai::provider::ToolCallRequest>,
    usage: Option<Usage>,
    finished: Option<Option<String>>,
    error: Option<ProviderError>,
}

impl Answer {
    fn text(&self) -> String {
        self.deltas.concat()
    }
}

/// Reads a stream to its end, asserting that nothing follows `Finished` or an error and
/// that `Usage` comes only right before `Finished`.
async fn collect(mut stream: EventStream) -> Answer {
    let mut answer = Answer::default();
    while let Some(item) = stream.next().await {
        assert!(
            answer.finished.is_none() && answer.error.is_none(),
            "item after the end: {item:?}"
        );
        match item {
            Ok(StreamEvent::Delta(text)) => {
                assert!(!text.is_empty());
                assert!(answer.usage.is_none(), "delta after usage");
                answer.deltas.push(text);
            }
            Ok(StreamEvent::ToolCalls(calls)) => {
                assert!(answer.usage.is_none(), "tool calls after usage");
                answer.tool_calls.extend(calls);
            }
            Ok(StreamEvent::Usage(usage)) => {
                assert!(answer.usage.is_none(), "usage twice");
                answer.usage = Some(usage);
            }
            Ok(StreamEvent::Finished { reason }) => answer.finished = Some(reason),
            Err(error) => answer.error = Some(error),
        }
    }
    answer
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user(text)],
        ..ChatRequest::default()
    }
}

/// Short timeouts, for the tests that exercise them.
fn impatient(mut config: ProviderConfig) -> ProviderConfig {
    config.timeouts.connect = Duration::from_millis(400);
    config.timeouts.first_token = Duration::from_millis(400);
    config.timeouts.idle = Duration::from_millis(400);
    config
}

async fn stream_ok(provider: &Provider, text: &str) -> Answer {
    let stream = provider.stream(request(text)).await.expect("stream opens");
    collect(stream).await
}

fn tokens(list: &[&str]) -> Vec<String> {
    list.iter().map(|token| (*token).to_owned()).collect()
}

/// The default script: deltas in order, then the usage chunk, then the finish reason.
#[tokio::test]
async fn openai_deltas_in_order_then_usage() {
    let fake = FakeLlm::start().await;
    let provider = Provider::new(fake.openai_config("main"));
    let answer = stream_ok(&provider, "Hi there, model").await;
    assert_eq!(answer.deltas, tokens(DEFAULT_REPLY));
    assert_eq!(answer.text(), "Hello from the fake model.");
    // The fake counts a quarter of the prompt's 15 characters.
    assert_eq!(
        answer.usage,
        Some(Usage {
            prompt_tokens: 4,
            completion_tokens: 6,
            total_tokens: 10
        })
    );
    assert_eq!(answer.finished, Some(Some("stop".to_owned())));
    assert_eq!(answer.error, None);
    assert_eq!(fake.requests()[0].outcome, Outcome::Completed);
}

/// A server that sends no usage still finishes cleanly, without a `Usage` event.
#[tokio::test]
async fn openai_without_usage_chunk() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b"]).no_usage());
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a", "b"]));
    assert_eq!(answer.usage, None);
    assert_eq!(answer.finished, Some(Some("stop".to_owned())));
}

/// vLLM's final chunk has `choices: null` next to the usage.
#[tokio::test]
async fn openai_vllm_null_choices_usage() {
    let fake = FakeLlm::start().await;
    fake.push(
        Script::reply(&["a", "b"])
            .vllm_usage()
            .prompt_tokens(7)
            .finish_reason("length"),
    );
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a", "b"]));
    assert_eq!(
        answer.usage,
        Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 2,
            total_tokens: 9
        })
    );
    assert_eq!(answer.finished, Some(Some("length".to_owned())));
}

/// `[DONE]` ends the stream; a server that omits it after the finish reason is forgiven.
#[tokio::test]
async fn openai_done_marker_and_its_absence() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a"]).without_done());
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a"]));
    assert!(answer.usage.is_some());
    assert_eq!(answer.finished, Some(Some("stop".to_owned())));
    assert_eq!(answer.error, None);
}

/// A connection cut mid-stream: the deltas already sent, then a `Stream` error.
#[tokio::test]
async fn openai_cut_mid_stream() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b", "c", "d"]).cut_after(2));
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a", "b"]));
    assert!(
        matches!(answer.error, Some(ProviderError::Stream(_))),
        "{:?}",
        answer.error
    );
    assert_eq!(answer.finished, None);
    assert_eq!(fake.requests().len(), 1, "never retried after text");
    assert_eq!(fake.requests()[0].outcome, Outcome::Cut);
}

/// An error object sent as a `data:` event after text: the deltas, then that error, and no
/// retry even though a server error before text would be retried.
#[tokio::test]
async fn openai_error_event_mid_stream_is_not_retried() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b", "c"]).error_after(
        1,
        "server_error",
        "The server had an error",
    ));
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a"]));
    assert_eq!(
        answer.error,
        Some(ProviderError::Stream(
            "The server had an error (server_error)".to_owned()
        ))
    );
    assert_eq!(fake.requests().len(), 1);
}

/// A server error event before any text is retried, and the caller sees one clean answer.
#[tokio::test]
async fn openai_error_event_before_text_is_retried() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a"]).error_after(0, "server_error", "busy"));
    fake.push(Script::reply(&["ok"]));
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["ok"]));
    assert_eq!(answer.error, None);
    assert_eq!(fake.requests().len(), 2);
}

/// 429 then success: retried after the backoff, one answer.
#[tokio::test]
async fn openai_rate_limited_then_success() {
    let fake = FakeLlm::start().await;
    fake.push(Script::rate_limited());
    fake.push(Script::reply(&["fine"]));
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "x").await;
    assert_eq!(answer.deltas, tokens(&["fine"]));
    assert_eq!(answer.error, None);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same request is sent again"
    );
}

/// A `Retry-After` longer than a chat reply can wait is not waited for.
#[tokio::test]
async fn openai_long_retry_after_gives_up_at_once() {
    let fake = FakeLlm::start().await;
    fake.push(Script::rate_limited().retry_after(120));
    let error = Provider::new(fake.openai_config("main"))
        .stream(request("x"))
        .await
        .err()
        .expect("rate limited");
    assert_eq!(
        error,
        ProviderError::RateLimited("Rate limit reached for requests".to_owned())
    );
    assert_eq!(fake.requests().len(), 1);
}

/// 5xx before the stream is retried up to `max_retries` times, then reported.
#[tokio::test]
async fn openai_server_errors_exhaust_the_retries() {
    let fake = FakeLlm::start().await;
    for _ in 0..3 {
        fake.push(Script::http_error(500, "server_error", None, "boom"));
    }
    let mut config = fake.openai_config("main");
    config.max_retries = 1;
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("fails");
    assert_eq!(
        error,
        ProviderError::Status {
            status: 500,
            message: "boom (server_error)".to_owned()
        }
    );
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(
        error.to_string(),
        "the LLM provider answered HTTP 500: boom (server_error)"
    );
}

/// `context_length_exceeded` becomes `ContextOverflow`, and is not retried.
#[tokio::test]
async fn openai_context_overflow_is_mapped() {
    let fake = FakeLlm::start().await;
    fake.push(Script::context_overflow());
    let error = Provider::new(fake.openai_config("main"))
        .stream(request("x"))
        .await
        .err()
        .expect("overflow");
    assert!(
        matches!(error, ProviderError::ContextOverflow(_)),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
    // vLLM words it differently, with no code.
    fake.push(Script::http_error(
        400,
        "BadRequestError",
        None,
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
    ));
    let error = Provider::new(fake.openai_config("main"))
        .stream(request("x"))
        .await
        .err()
        .expect("overflow");
    assert!(
        matches!(error, ProviderError::ContextOverflow(_)),
        "{error:?}"
    );
}

/// Nothing listening: a `Connect` error after the retries.
#[tokio::test]
async fn connect_refused() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = ProviderConfig::new(
        "gone",
        ProviderKind::OpenAi,
        format!("http://127.0.0.1:{port}/v1"),
    );
    config.model = Some("m".to_owned());
    config.max_retries = 1;
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("fails");
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("could not connect to the LLM provider")
    );
}

/// A server whose accept queue is full never completes the TCP handshake: `Timeout("connect")`.
#[tokio::test]
async fn connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    // Fill the accept queue (never accepted) until a handshake no longer completes.
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let mut config = impatient(ProviderConfig::new(
        "slow",
        ProviderKind::OpenAi,
        format!("http://{address}/v1"),
    ));
    config.model = Some("m".to_owned());
    config.max_retries = 0;
    // The first-token clock runs from the send, so it must outlast the connect timeout.
    config.timeouts.first_token = Duration::from_secs(5);
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("fails");
    assert_eq!(error, ProviderError::Timeout("connect"));
    drop(listener);
}

/// TLS is set up (a crypto provider and the platform verifier): an `https` request to a
/// server that closes instead of answering the handshake fails as a connect error.
#[tokio::test]
async fn https_fails_cleanly_without_a_tls_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let mut config =
        ProviderConfig::new("tls", ProviderKind::OpenAi, format!("https://{address}/v1"));
    config.model = Some("m".to_owned());
    config.max_retries = 0;
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("fails");
    assert!(matches!(error, ProviderError::Connect(_)), "{error:?}");
}

/// No response headers within the first-token timeout.
#[tokio::test]
async fn first_token_timeout_before_headers() {
    let fake = FakeLlm::start().await;
    fake.push(Script::hang());
    let error = Provider::new(impatient(fake.openai_config("main")))
        .stream(request("x"))
        .await
        .err()
        .expect("times out");
    assert_eq!(error, ProviderError::Timeout("first token"));
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(5)).await);
}

/// Headers, then no text within the first-token timeout; the connection is closed.
#[tokio::test]
async fn first_token_timeout_after_headers() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["late"]).first_token_delay(Duration::from_secs(30)));
    let answer = stream_ok(&Provider::new(impatient(fake.openai_config("main"))), "x").await;
    assert!(answer.deltas.is_empty());
    assert_eq!(answer.error, Some(ProviderError::Timeout("first token")));
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(5)).await);
}

/// Text, then silence longer than the idle timeout.
#[tokio::test]
async fn idle_timeout() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b", "c"]).hang_after(1));
    let answer = stream_ok(&Provider::new(impatient(fake.openai_config("main"))), "x").await;
    assert_eq!(answer.deltas, tokens(&["a"]));
    assert_eq!(answer.error, Some(ProviderError::Timeout("idle")));
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(5)).await);
}

/// Tokens slower than nothing but faster than the idle timeout are fine.
#[tokio::test]
async fn slow_tokens_within_the_idle_timeout() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b", "c"]).token_delay(Duration::from_millis(100)));
    let answer = stream_ok(&Provider::new(impatient(fake.openai_config("main"))), "x").await;
    assert_eq!(answer.deltas, tokens(&["a", "b", "c"]));
    assert_eq!(answer.error, None);
}

/// Dropping the stream closes the upstream connection, and the provider sees it.
#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let fake = FakeLlm::start().await;
    let many: Vec<String> = (0..100).map(|n| format!("t{n} ")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    fake.push(Script::reply(&many).token_delay(Duration::from_millis(50)));
    let provider = Provider::new(fake.openai_config("main"));
    let mut stream = provider.stream(request("x")).await.unwrap();
    for expected in ["t0 ", "t1 "] {
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            StreamEvent::Delta(expected.to_owned())
        );
    }
    assert_eq!(fake.disconnects(), 0);
    drop(stream);
    assert!(fake.wait_for_disconnects(1, Duration::from_secs(5)).await);
    assert_eq!(fake.requests()[0].outcome, Outcome::ClientDisconnected);
}

/// What an OpenAI-compatible server receives: path, auth, the system prompt first, names,
/// `stream_options`, and the provider's default model when the request names none.
#[tokio::test]
async fn openai_request_body() {
    let fake = FakeLlm::start().await;
    let provider = Provider::new(fake.openai_config("main"));
    let chat = ChatRequest {
        model: String::new(),
        system: Some("You are Ada.".to_owned()),
        messages: vec![
            ChatMessage::user("Hello").with_name("Grace Hopper"),
            ChatMessage::assistant("Hi Grace").with_name("Ada"),
            ChatMessage::user("Bye"),
        ],
        temperature: Some(0.25),
        max_tokens: Some(64),
        tools: Vec::new(),
    };
    collect(provider.stream(chat).await.unwrap()).await;
    let received = &fake.requests()[0];
    assert_eq!(received.method, "POST");
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(received.header("authorization"), Some("Bearer sk-fake"));
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(
        received.body,
        json!({
            "model": "fake-model",
            "messages": [
                {"role": "system", "content": "You are Ada."},
                {"role": "user", "content": "Hello", "name": "Grace_Hopper"},
                {"role": "assistant", "content": "Hi Grace", "name": "Ada"},
                {"role": "user", "content": "Bye"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.25,
            "max_tokens": 64,
        })
    );
}

/// No API key: no `Authorization` header (local servers need none).
#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    let fake = FakeLlm::start().await;
    let mut config = fake.openai_config("local");
    config.api_key = None;
    let answer = stream_ok(&Provider::new(config), "x").await;
    assert_eq!(answer.error, None);
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

/// The echo script answers with the last message, for end-to-end prompt checks.
#[tokio::test]
async fn echo_script() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::echo());
    let answer = stream_ok(&Provider::new(fake.openai_config("main")), "ping me back").await;
    assert_eq!(answer.text(), "Echo: ping me back");
}

/// Many streams at once against one fake, each complete and separate.
#[tokio::test]
async fn concurrent_streams() {
    let fake = FakeLlm::start().await;
    fake.set_default(Script::echo().token_delay(Duration::from_millis(5)));
    let provider = std::sync::Arc::new(Provider::new(fake.openai_config("main")));
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let provider = provider.clone();
            tokio::spawn(async move { stream_ok(&provider, &format!("number {n}")).await })
        })
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let answer = task.await.unwrap();
        assert_eq!(answer.text(), format!("Echo: number {n}"));
    }
    assert_eq!(fake.requests().len(), 20);
}

/// The Anthropic event sequence: deltas, usage from `message_start` and `message_delta`,
/// the stop reason; and the request's headers and shape.
#[tokio::test]
async fn anthropic_sequence_and_request() {
    let fake = FakeLlm::start().await;
    let provider = Provider::new(fake.anthropic_config("claude"));
    let chat = ChatRequest {
        model: "claude-sonnet-4-5".to_owned(),
        system: Some("Be brief.".to_owned()),
        messages: vec![ChatMessage::user("Hello there")],
        temperature: Some(0.5),
        max_tokens: None,
        tools: Vec::new(),
    };
    let answer = collect(provider.stream(chat).await.unwrap()).await;
    assert_eq!(answer.deltas, tokens(DEFAULT_REPLY));
    // The fake counts a quarter of "Be brief." and "Hello there" (20 characters).
    assert_eq!(
        answer.usage,
        Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 6,
            total_tokens: 11
        })
    );
    assert_eq!(answer.finished, Some(Some("end_turn".to_owned())));
    let received = &fake.requests()[0];
    assert_eq!(received.path, "/v1/messages");
    assert_eq!(received.header("x-api-key"), Some("anthropic-fake"));
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received.header("authorization"), None);
    assert_eq!(
        received.body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "stream": true,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello there"}],
            "temperature": 0.5,
        })
    );
}

/// Anthropic without usage fields: no `Usage` event, still finished.
#[tokio::test]
async fn anthropic_without_usage() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a"]).no_usage().finish_reason("length"));
    let answer = stream_ok(&Provider::new(fake.anthropic_config("claude")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a"]));
    assert_eq!(answer.usage, None);
    assert_eq!(answer.finished, Some(Some("max_tokens".to_owned())));
}

/// An `error` event after text: the deltas, then the error, no retry.
#[tokio::test]
async fn anthropic_error_event_mid_stream() {
    let fake = FakeLlm::start().await;
    fake.push(Script::reply(&["a", "b", "c"]).error_after(2, "overloaded_error", "Overloaded"));
    let answer = stream_ok(&Provider::new(fake.anthropic_config("claude")), "x").await;
    assert_eq!(answer.deltas, tokens(&["a", "b"]));
    assert_eq!(
        answer.error,
        Some(ProviderError::Stream(
            "Overloaded (overloaded_error)".to_owned()
        ))
    );
    assert_eq!(fake.requests().len(), 1);
}

/// Anthropic's 529 overloaded before the stream is retried; "prompt is too long" is an
/// overflow; a cut stream is a `Stream` error.
#[tokio::test]
async fn anthropic_errors_before_and_during_the_stream() {
    let fake = FakeLlm::start().await;
    let provider = Provider::new(fake.anthropic_config("claude"));
    fake.push(Script::http_error(
        529,
        "overloaded_error",
        None,
        "Overloaded",
    ));
    fake.push(Script::reply(&["after retry"]));
    let answer = stream_ok(&provider, "x").await;
    assert_eq!(answer.text(), "after retry");
    assert_eq!(fake.requests().len(), 2);

    fake.push(Script::http_error(
        400,
        "invalid_request_error",
        None,
        "prompt is too long: 250000 tokens > 200000 maximum",
    ));
    let error = provider.stream(request("x")).await.err().expect("overflow");
    assert!(
        matches!(error, ProviderError::ContextOverflow(_)),
        "{error:?}"
    );

    fake.push(Script::http_error(
        401,
        "authentication_error",
        None,
        "invalid x-api-key",
    ));
    let error = provider.stream(request("x")).await.err().expect("refused");
    assert_eq!(
        error,
        ProviderError::Status {
            status: 401,
            message: "invalid x-api-key (authentication_error)".to_owned()
        }
    );

    fake.push(Script::reply(&["a", "b"]).cut_after(1));
    let answer = stream_ok(&provider, "x").await;
    assert_eq!(answer.deltas, tokens(&["a"]));
    assert!(
        matches!(answer.error, Some(ProviderError::Stream(_))),
        "{:?}",
        answer.error
    );
}

/// The registry: the default provider, named ones, and clear errors otherwise.
#[tokio::test]
async fn providers_registry() {
    let fake = FakeLlm::start().await;
    let empty = Providers::new(None, Vec::new());
    assert!(empty.is_empty());
    let error = empty.get(None).unwrap_err();
    assert!(matches!(error, ProviderError::NotConfigured(_)));
    assert!(error.to_string().contains("--llm-base-url"), "{error}");

    let providers = Providers::new(
        Some(fake.openai_config("default")),
        vec![fake.anthropic_config("claude")],
    );
    assert_eq!(providers.get(None).unwrap().name(), "default");
    assert_eq!(providers.get(Some("")).unwrap().name(), "default");
    assert_eq!(providers.get(Some("default")).unwrap().name(), "default");
    let claude = providers.get(Some("claude")).unwrap();
    assert_eq!(claude.kind(), ProviderKind::Anthropic);
    assert_eq!(claude.default_model(), Some("claude-fake"));
    let error = providers.get(Some("gemini")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no LLM provider named \"gemini\" (configured: claude, default)"
    );

    // A request with no model, against a provider with no default model.
    let mut config = fake.openai_config("bare");
    config.model = None;
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("no model");
    assert!(
        matches!(error, ProviderError::NotConfigured(_)),
        "{error:?}"
    );
    // A bad URL is reported when used, not at start-up.
    let config = ProviderConfig::new("bad", ProviderKind::OpenAi, "not a url");
    let error = Provider::new(config)
        .stream(request("x"))
        .await
        .err()
        .expect("bad url");
    assert!(error.to_string().contains("invalid base URL"), "{error}");
}

/// Ollama discovery lists the models and picks the first chat model.
#[tokio::test]
async fn ollama_discovery() {
    let fake = FakeLlm::start().await;
    let config = discover_ollama(&fake.root_url).await.expect("found");
    assert_eq!(config.name, "ollama");
    assert_eq!(config.kind, ProviderKind::OpenAi);
    assert_eq!(config.base_url, fake.base_url);
    assert_eq!(config.model.as_deref(), Some("llama3.2:latest"));
    // And it works as a provider against the same server.
    let answer = stream_ok(&Provider::new(config), "x").await;
    assert_eq!(answer.error, None);
    assert_eq!(fake.requests()[0].body["model"], "llama3.2:latest");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    assert!(
        discover_ollama(&format!("http://127.0.0.1:{port}"))
            .await
            .is_none()
    );
}

/// Tool calls streamed in fragments, in both formats, come out whole, after the text and
/// before the usage, with the format's finish reason.
#[tokio::test]
async fn tool_calls_stream_in_both_formats() {
    let fake = FakeLlm::start().await;
    for (config, reason, id) in [
        (fake.openai_config("main"), "tool_calls", "call_1"),
        (fake.anthropic_config("claude"), "tool_use", "toolu_1"),
    ] {
        fake.push(
            Script::tool_calls(&[
                ("now", json!({})),
                ("lookupOrder", json!({"orderId": "A1", "note": "é ✓"})),
            ])
            .saying(&["Let me ", "check."]),
        );
        let answer = collect(Provider::new(config).stream(request("hi")).await.unwrap()).await;
        assert_eq!(answer.error, None);
        assert_eq!(answer.text(), "Let me check.");
        assert_eq!(answer.finished, Some(Some(reason.to_owned())));
        assert_eq!(answer.tool_calls.len(), 2, "{:?}", answer.tool_calls);
        assert_eq!(answer.tool_calls[1].id, id);
        assert_eq!(answer.tool_calls[1].name, "lookupOrder");
        assert_eq!(
            answer.tool_calls[1].parsed_arguments(),
            Ok(json!({"orderId": "A1", "note": "é ✓"}))
        );
        assert!(answer.usage.is_some());
    }
}
