//! `ai_generation`: the latency Parlor adds to persona replies, and how many it sustains.
//!
//! A fake OpenAI-compatible provider runs inside this process ([`FakeProvider`], a minimal
//! HTTP/1.1 server on its own thread and single-threaded runtime, so its CPU can be told apart
//! from the load generator's). The server is started with `--llm-base-url` pointing at it.
//! `POST /v1/chat/completions` answers with SSE chunks
//! `data: {"choices":[{"delta":{"content":"t<nanos>;"}}]}` at a fixed pace (`--gen-rate` tokens
//! per second, `--gen-tokens` of them), where `<nanos>` is the moment the chunk is written to
//! the socket, in ns since an `Instant` the load side shares (same process, same monotonic
//! clock). Every receipt of a token is therefore timed against its own send time.
//!
//! For each stream count N (`--gen-streams`, in turn): N `ChatSession`s with one persona each
//! (spread over `--gen-users` users); the user messages are posted over `--gen-ramp` seconds;
//! each stream then finds its assistant message (a REST query), opens the SSE stream
//! (`GET /messages/<id>/stream`), and only then does the fake provider start emitting (it
//! holds the request, after sending the response headers, until that stream's SSE client is
//! connected; the stream is recognised by a marker in the user message, which reaches the
//! provider in the prompt). `--gen-live-query` of the streams also have a LiveQuery subscriber
//! on their session, opened before the message is posted.
//!
//! Measured:
//! - `sse_token_latency_ms`: every token, provider send → SSE client receipt.
//! - `live_query_token_latency_ms`: every token, provider send → receipt of the first
//!   LiveQuery `update` whose `content` contains it. The server writes the growing text at most
//!   every 75 ms (by design), so this is dominated by the throttle (up to ~75 ms + the write).
//! - `commit_to_request_ms`: user message POST answered → provider request received (the
//!   commit precedes the answer, so this is a lower bound of commit → request; `from the POST
//!   sent` is an upper bound).
//! - completion (every stream `done` with `complete` and all its tokens), server CPU and RSS,
//!   the load generator's CPU and the fake provider thread's CPU, and how late the provider
//!   sent its tokens against the schedule (it shares the 2 cores too).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::fanout::{User, cpu_delta, cpu_now, percentiles, rss, sign_up, since};
use crate::load::Keys;
use crate::seed::{encode, pointer, truncate};
use crate::server::{memory, round1, round2};

/// The aim of the issue: under 1 ms median and 5 ms p99 added, with 1,000 concurrent streams.
pub const GOAL_P50_MS: f64 = 1.0;
pub const GOAL_P99_MS: f64 = 5.0;

/// LLM gateways' added median latency (the issue's anchors).
pub const REFERENCE: &str =
    "LLM gateways add 0.35 ms (TensorZero, Rust) to 3–4 ms (LiteLLM) median";

/// The model name the server is started with.
pub const MODEL: &str = "bench-fake";

/// How long the provider holds a request waiting for the stream's SSE client.
const GATE_TIMEOUT: Duration = Duration::from_secs(20);

pub struct GenerationOptions {
    pub streams: Vec<usize>,
    pub tokens: usize,
    /// Tokens per second per stream.
    pub rate: f64,
    pub users: usize,
    /// Streams that also have a LiveQuery subscriber.
    pub live_query: usize,
    /// Seconds over which the user messages are posted.
    pub ramp: f64,
    pub label: String,
}

/// What the provider and the load side share about one stream.
struct Gate {
    /// Set once the stream's SSE client is connected: the provider starts emitting then.
    ready: watch::Sender<bool>,
    /// When the provider request arrived (ns since the epoch; 0: not yet).
    arrival: AtomicU64,
    requests: AtomicU64,
}

/// What the provider saw during one run.
#[derive(Default)]
struct ProviderLog {
    gates: HashMap<String, Arc<Gate>>,
    /// Microseconds each token was written after its scheduled time.
    lateness_us: Vec<i64>,
    unknown_requests: u64,
    gate_timeouts: u64,
    write_errors: u64,
    bad_requests: Vec<String>,
}

/// The in-process OpenAI-compatible provider.
pub struct FakeProvider {
    epoch: Instant,
    tokens: usize,
    interval: Duration,
    log: Mutex<ProviderLog>,
    /// The provider thread's id, for its CPU time.
    tid: AtomicU64,
    pub port: u16,
}

impl FakeProvider {
    /// Binds 127.0.0.1:`port` (0: any) and serves on a thread of its own.
    pub fn start(epoch: Instant, tokens: usize, rate: f64, port: u16) -> anyhow::Result<Arc<Self>> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .context("binding the fake provider")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let provider = Arc::new(FakeProvider {
            epoch,
            tokens,
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            log: Mutex::default(),
            tid: AtomicU64::new(0),
            port,
        });
        let serving = provider.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the fake provider's runtime")?;
        std::thread::Builder::new()
            .name("fake-provider".to_owned())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                serving
                    .tid
                    .store(u64::try_from(tid).unwrap_or(0), Ordering::Relaxed);
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        eprintln!("[generation] the fake provider could not listen");
                        return;
                    };
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serving.clone().serve(socket));
                    }
                });
            })
            .context("starting the fake provider's thread")?;
        Ok(provider)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log(&self) -> MutexGuard<'_, ProviderLog> {
        self.log.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// CPU seconds of the provider thread so far.
    fn cpu_seconds(&self) -> Option<f64> {
        let tid = self.tid.load(Ordering::Relaxed);
        let stat = std::fs::read_to_string(format!("/proc/{}/task/{tid}/stat", std::process::id()))
            .ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    }

    /// One connection: one request, answered with `Connection: close`.
    async fn serve(self: Arc<Self>, mut socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let Some((head, body)) = read_request(&mut socket).await else {
            return;
        };
        let arrival = since(self.epoch);
        if !head.starts_with("POST ") || !head.contains("/chat/completions") {
            self.log()
                .bad_requests
                .push(truncate(head.lines().next().unwrap_or_default(), 120));
            let _ = socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            return;
        }
        let gate = marker(&body).and_then(|key| self.log().gates.get(&key).cloned());
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        match &gate {
            Some(gate) => {
                let _ =
                    gate.arrival
                        .compare_exchange(0, arrival, Ordering::Relaxed, Ordering::Relaxed);
                gate.requests.fetch_add(1, Ordering::Relaxed);
                let mut ready = gate.ready.subscribe();
                let opened = tokio::time::timeout(GATE_TIMEOUT, ready.wait_for(|r| *r)).await;
                if opened.is_err() {
                    self.log().gate_timeouts += 1;
                }
            }
            None => self.log().unknown_requests += 1,
        }
        let start = Instant::now();
        let mut lateness = Vec::with_capacity(self.tokens);
        for i in 0..self.tokens {
            let due = start + self.interval.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            lateness.push(i64::try_from(due.elapsed().as_micros()).unwrap_or(i64::MAX));
            let now = since(self.epoch);
            let chunk = format!(
                "data: {{\"id\":\"b\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{now};\"}}}}]}}\n\n"
            );
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                let mut log = self.log();
                log.write_errors += 1;
                log.lateness_us.extend(lateness);
                return;
            }
        }
        let tail = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":20,\"completion_tokens\":{n},\"total_tokens\":{t}}}}}\n\n\
             data: [DONE]\n\n",
            n = self.tokens,
            t = self.tokens + 20
        );
        let _ = socket.write_all(tail.as_bytes()).await;
        let _ = socket.shutdown().await;
        self.log().lateness_us.extend(lateness);
    }
}

/// Reads one HTTP/1.1 request: its head (as text) and its body (by `content-length`).
async fn read_request(socket: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Some((head, buffer[head_end..head_end + length].to_vec()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The stream key in a prompt: `bench-gen-<run>-<i>`.
fn marker(body: &[u8]) -> Option<String> {
    let at = find(body, b"bench-gen-")?;
    let key: String = body[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .map(|b| char::from(*b))
        .collect();
    Some(key)
}

/// Send times (ns since the epoch) of the complete tokens `t<nanos>;` in `pending` + `text`;
/// an incomplete last token stays in `pending`.
fn tokens_in(pending: &mut String, text: &str) -> Vec<u64> {
    pending.push_str(text);
    let mut out = Vec::new();
    let mut consumed = 0;
    while let Some(end) = pending[consumed..].find(';') {
        let token = &pending[consumed..consumed + end];
        if let Some(ns) = token.strip_prefix('t').and_then(|n| n.parse::<u64>().ok()) {
            out.push(ns);
        }
        consumed += end + 1;
    }
    pending.drain(..consumed);
    out
}

fn us_between(from_ns: u64, to_ns: u64) -> i64 {
    i64::try_from((i128::from(to_ns) - i128::from(from_ns)) / 1000).unwrap_or(i64::MAX)
}

/// What one stream saw.
#[derive(Default)]
struct StreamOutcome {
    post_sent: u64,
    post_answered: u64,
    post_error: Option<String>,
    /// When the assistant message was found, and after how many queries.
    found: Option<u64>,
    queries: u32,
    sse_open: Option<u64>,
    sse_latency_us: Vec<i64>,
    sse_tokens: usize,
    done: Option<String>,
    done_error: Option<String>,
    error: Option<String>,
}

/// What one LiveQuery subscriber saw.
#[derive(Default)]
struct LiveOutcome {
    latency_us: Vec<i64>,
    tokens: usize,
    updates: u64,
    final_status: Option<String>,
    error: Option<String>,
}

struct Setup {
    user: usize,
    session_id: String,
    key: String,
    gate: Arc<Gate>,
}

async fn post_json(
    client: &Client,
    url: String,
    app_id: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .header("X-Parse-Application-Id", app_id)
        .header("X-Parse-Session-Token", token)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let value: Value = response.json().await?;
    if !status.is_success() {
        bail!("{status}: {}", truncate(&value.to_string(), 300));
    }
    Ok(value)
}

fn object_id(value: &Value) -> anyhow::Result<String> {
    value
        .get("objectId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no objectId in {}", truncate(&value.to_string(), 200)))
}

/// Runs the scenario once per stream count; returns one JSON line per count.
pub async fn run(
    client: &Client,
    keys: &Keys,
    base: &str,
    pid: Option<u32>,
    provider: &Arc<FakeProvider>,
    options: &GenerationOptions,
    emit: &dyn Fn(&Value),
) -> anyhow::Result<Vec<Value>> {
    let most = options.streams.iter().copied().max().unwrap_or(1).max(1);
    let user_count = options.users.clamp(1, most);
    eprintln!("[generation] signing up {user_count} user(s), one persona each ...");
    let mut users = Vec::with_capacity(user_count);
    let mut personas = Vec::with_capacity(user_count);
    for i in 0..user_count {
        let name = format!("bench_gen_{}_{i}", std::process::id());
        let user = sign_up(client, keys, base, &name).await?;
        let persona = post_json(
            client,
            format!("{base}/classes/Persona"),
            &keys.app_id,
            &user.token,
            &json!({
                "name": format!("Bench{i}"),
                "systemPrompt": "You are a benchmark persona.",
                "owner": pointer("_User", &user.id),
            }),
        )
        .await
        .context("creating the persona")?;
        personas.push(object_id(&persona)?);
        users.push(user);
    }
    // Streams may outlive a request's default timeout: no overall timeout on this client.
    let sse_client = Client::builder()
        .pool_max_idle_per_host(most + 64)
        .tcp_nodelay(true)
        .no_proxy()
        .http1_only()
        .build()
        .context("building the SSE client")?;
    let mut lines = Vec::new();
    for (run, &streams) in options.streams.iter().enumerate() {
        let line = run_once(
            client,
            &sse_client,
            keys,
            base,
            pid,
            provider,
            options,
            &users,
            &personas,
            streams,
            run + 1,
        )
        .await?;
        emit(&line);
        lines.push(line);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(lines)
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    client: &Client,
    sse_client: &Client,
    keys: &Keys,
    base: &str,
    pid: Option<u32>,
    provider: &Arc<FakeProvider>,
    options: &GenerationOptions,
    users: &[User],
    personas: &[String],
    streams: usize,
    run: usize,
) -> anyhow::Result<Value> {
    let epoch = provider.epoch;
    let mem_before = rss(pid);
    eprintln!("[generation] {streams} streams: creating the sessions ...");
    let setups: Vec<anyhow::Result<Setup>> = futures::stream::iter(0..streams)
        .map(|i| {
            let user = i % users.len();
            let body = json!({
                "title": format!("gen-{run}-{i}"),
                "participants": [pointer("_User", &users[user].id)],
                "personas": [pointer("Persona", &personas[user])],
            });
            let url = format!("{base}/classes/ChatSession");
            async move {
                let value = post_json(client, url, &keys.app_id, &users[user].token, &body)
                    .await
                    .context("creating a ChatSession")?;
                Ok(Setup {
                    user,
                    session_id: object_id(&value)?,
                    key: format!("bench-gen-{run}-{i}"),
                    gate: Arc::new(Gate {
                        ready: watch::Sender::new(false),
                        arrival: AtomicU64::new(0),
                        requests: AtomicU64::new(0),
                    }),
                })
            }
        })
        .buffered(16)
        .collect()
        .await;
    let setups: Vec<Setup> = setups.into_iter().collect::<anyhow::Result<_>>()?;
    {
        let mut log = provider.log();
        *log = ProviderLog::default();
        for setup in &setups {
            log.gates.insert(setup.key.clone(), setup.gate.clone());
        }
    }

    // LiveQuery subscribers for the first `live_query` streams, before any message.
    let live_count = options.live_query.min(streams);
    let ws_url = base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let (stop, stopped) = watch::channel(false);
    let mut live = Vec::with_capacity(live_count);
    for setup in setups.iter().take(live_count) {
        let socket = subscribe(
            &ws_url,
            &keys.app_id,
            &users[setup.user].token,
            &setup.session_id,
        )
        .await
        .context("LiveQuery subscribe")?;
        live.push(tokio::spawn(listen_live(socket, epoch, stopped.clone())));
    }

    eprintln!(
        "[generation]   {live_count} LiveQuery subscribers; posting {streams} messages over {} s, \
         {} tokens each at {}/s ...",
        options.ramp, options.tokens, options.rate
    );
    let cpu_start = cpu_now(pid);
    let provider_cpu_start = provider.cpu_seconds();
    let window_start = Instant::now();
    // RSS readings while the streams run.
    let (sampling, sampler_stop) = watch::channel(false);
    let sampler = tokio::spawn(sample_rss(pid, sampler_stop));
    let expected_seconds = options.ramp + options.tokens as f64 / options.rate.max(0.001);
    let stream_timeout = Duration::from_secs_f64(expected_seconds + 120.0);
    let mut tasks = Vec::with_capacity(streams);
    for (i, setup) in setups.iter().enumerate() {
        let at = window_start + Duration::from_secs_f64(options.ramp * i as f64 / streams as f64);
        let context = StreamContext {
            client: client.clone(),
            sse_client: sse_client.clone(),
            base: base.to_owned(),
            app_id: keys.app_id.clone(),
            user: users[setup.user].id.clone(),
            token: users[setup.user].token.clone(),
            session_id: setup.session_id.clone(),
            key: setup.key.clone(),
            gate: setup.gate.clone(),
            epoch,
            start_at: at,
        };
        tasks.push(tokio::spawn(async move {
            match tokio::time::timeout(stream_timeout, one_stream(context)).await {
                Ok(outcome) => outcome,
                Err(_) => StreamOutcome {
                    error: Some("timed out".to_owned()),
                    ..StreamOutcome::default()
                },
            }
        }));
    }
    let mut outcomes = Vec::with_capacity(streams);
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|error| StreamOutcome {
            error: Some(format!("stream task: {error}")),
            ..StreamOutcome::default()
        }));
    }
    let window = window_start.elapsed().as_secs_f64();
    let cpu = cpu_delta(cpu_start, cpu_now(pid));
    let provider_cpu = provider
        .cpu_seconds()
        .zip(provider_cpu_start)
        .map(|(a, b)| a - b);
    let _ = sampling.send(true);
    let peak_during = sampler.await.unwrap_or(Value::Null);
    // LiveQuery subscribers stop at the final update; give stragglers a moment.
    let live_deadline = Instant::now() + Duration::from_secs(5);
    while live.iter().any(|task| !task.is_finished()) && Instant::now() < live_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let mut live_outcomes = Vec::with_capacity(live.len());
    for task in live {
        live_outcomes.push(task.await.unwrap_or_else(|error| LiveOutcome {
            error: Some(format!("listener task: {error}")),
            ..LiveOutcome::default()
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_after = rss(pid);

    // Figures.
    let tokens = options.tokens;
    let mut sse_latency: Vec<i64> = Vec::new();
    let mut commit_to_request: Vec<i64> = Vec::new();
    let mut sent_to_request: Vec<i64> = Vec::new();
    let mut post_latency: Vec<i64> = Vec::new();
    let mut found_after: Vec<i64> = Vec::new();
    let mut queries: Vec<i64> = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut completed = 0usize;
    let mut tokens_received = 0usize;
    for (outcome, setup) in outcomes.iter_mut().zip(&setups) {
        sse_latency.append(&mut outcome.sse_latency_us);
        tokens_received += outcome.sse_tokens;
        let status = outcome.done.clone().unwrap_or_else(|| "none".to_owned());
        if status == "complete" && outcome.sse_tokens == tokens {
            completed += 1;
        }
        *statuses.entry(status).or_default() += 1;
        for error in [&outcome.post_error, &outcome.error, &outcome.done_error]
            .into_iter()
            .flatten()
        {
            *errors.entry(truncate(error, 160)).or_default() += 1;
        }
        let arrival = setup.gate.arrival.load(Ordering::Relaxed);
        if outcome.post_error.is_none() && outcome.post_answered > 0 {
            post_latency.push(us_between(outcome.post_sent, outcome.post_answered));
            if arrival > 0 {
                commit_to_request.push(us_between(outcome.post_answered, arrival));
                sent_to_request.push(us_between(outcome.post_sent, arrival));
            }
            if let Some(found) = outcome.found {
                found_after.push(us_between(outcome.post_answered, found));
                queries.push(i64::from(outcome.queries));
            }
        }
    }
    let provider_log = std::mem::take(&mut *provider.log());
    let provider_requests: u64 = setups
        .iter()
        .map(|s| s.gate.requests.load(Ordering::Relaxed))
        .sum();
    let mut lateness = provider_log.lateness_us;
    let mut live_latency: Vec<i64> = Vec::new();
    let (mut live_tokens, mut live_updates, mut live_complete) = (0usize, 0u64, 0usize);
    for outcome in &mut live_outcomes {
        live_latency.append(&mut outcome.latency_us);
        live_tokens += outcome.tokens;
        live_updates += outcome.updates;
        if outcome.final_status.as_deref() == Some("complete") && outcome.tokens == tokens {
            live_complete += 1;
        }
        if let Some(error) = &outcome.error {
            *errors.entry(truncate(error, 160)).or_default() += 1;
        }
    }
    let sse = percentiles(&mut sse_latency);
    let [server_s, process_s, busy_s] = cpu;
    let load_s = process_s.zip(provider_cpu).map(|(p, f)| p - f);
    let all_tokens = (streams * tokens).max(1) as f64;
    let meets_goal = completed == streams
        && sse["p50"].as_f64().is_some_and(|p| p < GOAL_P50_MS)
        && sse["p99"].as_f64().is_some_and(|p| p < GOAL_P99_MS);
    let line = json!({
        "scenario": "ai_generation",
        "run": run,
        "label": options.label,
        "streams": streams,
        "tokens_per_stream": tokens,
        "rate_per_s": options.rate,
        "ramp_s": options.ramp,
        "users": users.len(),
        "live_query_subscribers": live_count,
        "completed": completed,
        "done_status": statuses,
        "sse_tokens_received": tokens_received,
        "sse_tokens_expected": streams * tokens,
        "errors": errors,
        "sse_token_latency_ms": sse,
        "live_query_token_latency_ms": percentiles(&mut live_latency),
        "live_query": {
            "tokens_received": live_tokens,
            "tokens_expected": live_count * tokens,
            "updates": live_updates,
            "complete": live_complete,
        },
        "commit_to_request_ms": percentiles(&mut commit_to_request),
        "post_sent_to_request_ms": percentiles(&mut sent_to_request),
        "post_latency_ms": percentiles(&mut post_latency),
        "assistant_found_after_answer_ms": percentiles(&mut found_after),
        "assistant_queries": percentiles(&mut queries.iter().map(|q| q * 1000).collect::<Vec<_>>()),
        "provider": {
            "requests": provider_requests,
            "unknown_requests": provider_log.unknown_requests,
            "gate_timeouts": provider_log.gate_timeouts,
            "write_errors": provider_log.write_errors,
            "bad_requests": provider_log.bad_requests.iter().take(3).collect::<Vec<_>>(),
            "send_lateness_ms": percentiles(&mut lateness),
        },
        "server_memory": { "before": mem_before, "peak_during": peak_during, "after": mem_after },
        "cpu": {
            "window_s": round2(window),
            "server_seconds": server_s.map(round2),
            "server_cores": server_s.map(|s| round2(s / window)),
            "server_us_per_token": server_s.map(|s| round1(s * 1e6 / all_tokens)),
            "load_generator_cores": load_s.map(|s| round2(s / window)),
            "fake_provider_cores": provider_cpu.map(|s| round2(s / window)),
            "machine_busy_cores": busy_s.map(|s| round2(s / window)),
        },
        "goal": format!("every stream complete; provider → SSE p50 < {GOAL_P50_MS} ms and p99 < {GOAL_P99_MS} ms"),
        "meets_goal": meets_goal,
        "reference": REFERENCE,
    });
    eprintln!(
        "[generation]   {completed}/{streams} complete; provider→SSE p50 {} p99 {} max {} ms; \
         provider→LiveQuery p50 {} p99 {} ms; commit→request p50 {} p99 {} ms; \
         server {} cores, RSS peak {} MB; load generator {} cores, provider {} cores; goal met: {meets_goal}",
        line["sse_token_latency_ms"]["p50"],
        line["sse_token_latency_ms"]["p99"],
        line["sse_token_latency_ms"]["max"],
        line["live_query_token_latency_ms"]["p50"],
        line["live_query_token_latency_ms"]["p99"],
        line["commit_to_request_ms"]["p50"],
        line["commit_to_request_ms"]["p99"],
        line["cpu"]["server_cores"],
        line["server_memory"]["peak_during"]["rss_mb"],
        line["cpu"]["load_generator_cores"],
        line["cpu"]["fake_provider_cores"],
    );
    Ok(line)
}

/// The highest RSS read every 250 ms until told to stop.
async fn sample_rss(pid: Option<u32>, mut stop: watch::Receiver<bool>) -> Value {
    let Some(pid) = pid else {
        return Value::Null;
    };
    let mut peak = memory(pid);
    loop {
        tokio::select! {
            _ = stop.changed() => return peak,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = memory(pid);
        if now["rss_mb"].as_f64() > peak["rss_mb"].as_f64() {
            peak = now;
        }
    }
}

struct StreamContext {
    client: Client,
    sse_client: Client,
    base: String,
    app_id: String,
    user: String,
    token: String,
    session_id: String,
    key: String,
    gate: Arc<Gate>,
    epoch: Instant,
    start_at: Instant,
}

/// One stream: post the user message, find the reply, read its SSE stream to `done`.
async fn one_stream(context: StreamContext) -> StreamOutcome {
    let mut out = StreamOutcome::default();
    tokio::time::sleep_until(context.start_at.into()).await;
    let body = json!({
        "content": format!("{} Hello, persona: please answer.", context.key),
        "role": "user",
        "session": pointer("ChatSession", &context.session_id),
        "sender": pointer("_User", &context.user),
    });
    out.post_sent = since(context.epoch);
    let posted = post_json(
        &context.client,
        format!("{}/classes/Message", context.base),
        &context.app_id,
        &context.token,
        &body,
    )
    .await;
    out.post_answered = since(context.epoch);
    if let Err(error) = posted {
        out.post_error = Some(format!("POST Message: {error:#}"));
        return out;
    }
    // The reply is created right after the commit, in a task of its own: look for it.
    let query = format!(
        "{}/classes/Message?where={}&keys=objectId&limit=1",
        context.base,
        encode(
            &json!({"session": pointer("ChatSession", &context.session_id), "role": "assistant"})
                .to_string()
        )
    );
    let mut pause = Duration::from_millis(5);
    let message_id = loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
        out.queries += 1;
        let found = async {
            let response = context
                .client
                .get(&query)
                .header("X-Parse-Application-Id", &context.app_id)
                .header("X-Parse-Session-Token", &context.token)
                .send()
                .await?;
            let value: Value = response.json().await?;
            anyhow::Ok(value["results"][0]["objectId"].as_str().map(str::to_owned))
        }
        .await;
        match found {
            Ok(Some(id)) => break id,
            Ok(None) if out.queries < 200 => {}
            Ok(None) => {
                out.error = Some("no assistant message appeared".to_owned());
                return out;
            }
            Err(error) if out.queries < 200 => {
                out.error = Some(format!("looking for the reply: {error:#}"));
            }
            Err(error) => {
                out.error = Some(format!("looking for the reply: {error:#}"));
                return out;
            }
        }
    };
    out.error = None;
    out.found = Some(since(context.epoch));
    let url = format!(
        "{}/messages/{message_id}/stream?sessionToken={}&_ApplicationId={}",
        context.base,
        encode(&context.token),
        encode(&context.app_id)
    );
    let mut response = match context.sse_client.get(url).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            out.error = Some(format!("SSE {status}: {}", truncate(&text, 200)));
            context.gate.ready.send_replace(true);
            return out;
        }
        Err(error) => {
            out.error = Some(format!("SSE: {error:#}"));
            context.gate.ready.send_replace(true);
            return out;
        }
    };
    out.sse_open = Some(since(context.epoch));
    context.gate.ready.send_replace(true);
    let mut buffer = String::new();
    let mut pending = String::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                out.error = Some(format!("SSE read: {error:#}"));
                break;
            }
        };
        let at = since(context.epoch);
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut name = "message";
            let mut data = "";
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = value.trim();
                }
            }
            let data: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match name {
                "delta" => {
                    let text = data["text"].as_str().unwrap_or_default();
                    for sent in tokens_in(&mut pending, text) {
                        out.sse_latency_us.push(us_between(sent, at));
                        out.sse_tokens += 1;
                    }
                }
                "done" => {
                    out.done = data["status"].as_str().map(str::to_owned);
                    out.done_error = data["error"].as_str().map(str::to_owned);
                    return out;
                }
                _ => {}
            }
        }
    }
    out
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Sends a frame and reads until one whose `op` is `want`.
async fn request(socket: &mut Socket, frame: String, want: &str) -> anyhow::Result<()> {
    socket.send(WsMessage::Text(frame.into())).await?;
    while let Some(message) = socket.next().await {
        if let WsMessage::Text(text) = message? {
            let value: Value = serde_json::from_str(text.as_str())?;
            match value["op"].as_str() {
                Some(op) if op == want => return Ok(()),
                Some("error") => bail!("error frame: {}", truncate(text.as_str(), 300)),
                _ => {}
            }
        }
    }
    bail!("connection ended while waiting for {want}")
}

/// A LiveQuery subscriber on one session's messages.
async fn subscribe(
    url: &str,
    app_id: &str,
    token: &str,
    session_id: &str,
) -> anyhow::Result<Socket> {
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    let connect = json!({ "op": "connect", "applicationId": app_id, "sessionToken": token });
    request(&mut socket, connect.to_string(), "connected").await?;
    let subscribe = json!({
        "op": "subscribe",
        "requestId": 1,
        "query": { "className": "Message", "where": { "session": pointer("ChatSession", session_id) } },
        "sessionToken": token,
    });
    request(&mut socket, subscribe.to_string(), "subscribed").await?;
    Ok(socket)
}

/// Times every token of the assistant message's `content` as updates reveal it; ends at its
/// final status (or when told to stop).
async fn listen_live(
    mut socket: Socket,
    epoch: Instant,
    mut stop: watch::Receiver<bool>,
) -> LiveOutcome {
    let mut out = LiveOutcome::default();
    let mut seen = 0usize;
    let mut pending = String::new();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.changed() => break,
        };
        let Some(Ok(message)) = message else {
            out.error = Some("LiveQuery connection closed early".to_owned());
            return out;
        };
        let at = since(epoch);
        let WsMessage::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let op = frame["op"].as_str().unwrap_or_default();
        let object = &frame["object"];
        if !matches!(op, "create" | "update") || object["role"] != "assistant" {
            continue;
        }
        out.updates += u64::from(op == "update");
        let content = object["content"].as_str().unwrap_or_default();
        if content.len() > seen && content.is_char_boundary(seen) {
            for sent in tokens_in(&mut pending, &content[seen..]) {
                out.latency_us.push(us_between(sent, at));
                out.tokens += 1;
            }
            seen = content.len();
        }
        let status = object["status"].as_str().unwrap_or_default();
        if !status.is_empty() && status != "streaming" {
            out.final_status = Some(status.to_owned());
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
    out
}

/// A row of the summary.
pub fn summary_row(line: &Value) -> Value {
    json!({
        "scenario": "ai_generation",
        "run": line["run"],
        "streams": line["streams"],
        "completed": line["completed"],
        "sse_p50_ms": line["sse_token_latency_ms"]["p50"],
        "sse_p99_ms": line["sse_token_latency_ms"]["p99"],
        "sse_max_ms": line["sse_token_latency_ms"]["max"],
        "live_query_p50_ms": line["live_query_token_latency_ms"]["p50"],
        "live_query_p99_ms": line["live_query_token_latency_ms"]["p99"],
        "commit_to_request_p50_ms": line["commit_to_request_ms"]["p50"],
        "commit_to_request_p99_ms": line["commit_to_request_ms"]["p99"],
        "server_cores": line["cpu"]["server_cores"],
        "server_peak_rss_mb": line["server_memory"]["peak_during"]["rss_mb"],
        "load_generator_cores": line["cpu"]["load_generator_cores"],
        "fake_provider_cores": line["cpu"]["fake_provider_cores"],
        "meets_goal": line["meets_goal"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_across_deltas() {
        let mut pending = String::new();
        assert_eq!(tokens_in(&mut pending, "t12;t3"), vec![12]);
        assert_eq!(tokens_in(&mut pending, "4;t5;"), vec![34, 5]);
        assert!(pending.is_empty());
    }

    #[test]
    fn marker_in_prompt() {
        let body = br#"{"messages":[{"content":"bench-gen-2-17 Hello"}]}"#;
        assert_eq!(marker(body).as_deref(), Some("bench-gen-2-17"));
    }
}
