//! `live_fanout`: LiveQuery fan-out. N WebSocket subscribers (held by this process, not the
//! server's) subscribe to one chat session's messages; a writer then creates messages in that
//! session through REST at a fixed rate, and every `create` event each subscriber receives is
//! recorded and matched to its message by objectId.
//!
//! Users: `--fanout-users K` users sign up (default 1); the first creates the `ChatSession`
//! with all K as participants and writes the messages; subscriber `i` connects and subscribes
//! with user `i mod K`'s session token (so with K = 1 all N share one token, and the server
//! needs `--live-query-max-connections-per-user` ≥ N, which the harness passes).
//!
//! Latency of one delivery, three ways (all in ms, percentiles over every delivery):
//! - `latency_ms` (headline): receipt time (wall clock) − the message's `createdAt`. The server
//!   stamps `createdAt` before its commit, with ms precision (truncated), so this is an upper
//!   bound of commit → receipt (by up to ~1 ms plus the time between stamping and commit).
//! - `latency_from_response_ms`: receipt − the moment the POST's response arrived. The commit
//!   precedes the response, so this is a lower bound (it can be negative: an event may arrive
//!   before the response).
//! - `latency_from_request_ms`: receipt − the moment the POST was sent.
//!
//! With several instances ([`Servers`]), the subscribers connect to one and the writer posts to
//! another, so every event is relayed between instances; memory and CPU are summed over them.
//!
//! A receipt is stamped when the subscriber's task reads the frame, so a load generator
//! short of CPU adds its own delay; the `cpu` fields say how busy it was.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use reqwest::Client;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::load::Keys;
use crate::seed::{pointer, text, truncate};
use crate::server::{cpu_seconds, machine_busy_seconds, memory, round1, round2};
use crate::topology;

/// The aim of the issue: every event delivered, p99 < 50 ms, whole server < 150 MB resident,
/// and the writer's POSTs p99 < 50 ms while the subscribers are fed.
pub const GOAL_P99_MS: f64 = 50.0;
pub const GOAL_RSS_MB: f64 = 150.0;
pub const GOAL_POST_P99_MS: f64 = 50.0;

/// Parse Server's figures from the issue.
pub const PARSE_REFERENCE: &str = "Parse Server: 1,000 subscribers p99 82–100 ms; 5,000 subscribers at 10 messages/s fell minutes behind (p99 ≈ 50 s); 135 MB resident idle, ≈ 400 MB after the fan-out runs";

/// How long one connection's handshake, `connect` and `subscribe` may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct FanoutOptions {
    pub subscribers: Vec<usize>,
    pub messages: usize,
    /// Messages per second.
    pub rate: f64,
    /// Connections being set up at once.
    pub connect_batch: usize,
    pub users: usize,
    /// Seconds to wait after the last POST's response for the remaining events.
    pub drain: f64,
    pub label: String,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A participant of the benchmark session.
pub(crate) struct User {
    pub id: String,
    pub token: String,
}

/// Only what is needed of a server frame; the rest is skipped without being built.
#[derive(Deserialize)]
struct Frame {
    op: String,
    #[serde(rename = "requestId")]
    request_id: Option<i64>,
    object: Option<FrameObject>,
    error: Option<Value>,
    code: Option<Value>,
}

#[derive(Deserialize)]
struct FrameObject {
    #[serde(rename = "objectId")]
    object_id: Option<String>,
}

fn id_key(object_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    object_id.hash(&mut hasher);
    hasher.finish()
}

/// Nanoseconds since `epoch`.
pub(crate) fn since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What one subscriber saw.
#[derive(Default)]
struct Received {
    /// (objectId key, receipt in ns since the epoch) of each `create` event.
    events: Vec<(u64, u64)>,
    /// Other frames after `subscribed`, by op (errors by code), with a few samples.
    other: BTreeMap<String, u64>,
    samples: Vec<String>,
    /// The server closed the connection (or it failed) before we asked to stop.
    closed_early: bool,
    /// Bytes of the first event frame.
    first_event_bytes: Option<usize>,
}

/// Sends a text frame and reads until a frame whose `op` is `want` (or an error).
async fn request(socket: &mut Socket, frame: String, want: &str) -> anyhow::Result<()> {
    socket
        .send(WsMessage::Text(frame.into()))
        .await
        .context("sending")?;
    while let Some(message) = socket.next().await {
        match message.context("reading")? {
            WsMessage::Text(text) => {
                let frame: Frame = serde_json::from_str(text.as_str())
                    .with_context(|| format!("bad frame {}", truncate(text.as_str(), 200)))?;
                if frame.op == want {
                    return Ok(());
                }
                if frame.op == "error" {
                    bail!("error frame: {}", truncate(text.as_str(), 300));
                }
            }
            WsMessage::Close(close) => bail!("closed by the server: {close:?}"),
            _ => {}
        }
    }
    bail!("connection ended while waiting for {want}")
}

/// Opens one subscriber: WebSocket handshake, `connect`, `subscribe`.
async fn open(url: &str, app_id: &str, token: &str, session_id: &str) -> anyhow::Result<Socket> {
    // Small buffers: frames here are < 1 KiB, and 10,000 sockets × the 128 KiB default would
    // weigh on the load generator.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .context("WebSocket handshake")?;
    let connect = json!({ "op": "connect", "applicationId": app_id, "sessionToken": token });
    request(&mut socket, connect.to_string(), "connected")
        .await
        .context("connect")?;
    let subscribe = json!({
        "op": "subscribe",
        "requestId": 1,
        "query": {
            "className": "Message",
            "where": { "session": pointer("ChatSession", session_id) },
        },
        "sessionToken": token,
    });
    request(&mut socket, subscribe.to_string(), "subscribed")
        .await
        .context("subscribe")?;
    Ok(socket)
}

/// Reads events until told to stop (then closes politely) or the server ends the connection.
async fn listen(
    mut socket: Socket,
    epoch: Instant,
    capacity: usize,
    received_total: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut out = Received {
        events: Vec::with_capacity(capacity),
        ..Received::default()
    };
    // One wait for the stop signal for the whole run: a fresh one per frame would register
    // with the signal again for every event, 10,000 subscribers at a time.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = &mut stopped => break,
        };
        let Some(Ok(message)) = message else {
            out.closed_early = true;
            return out;
        };
        let at = since(epoch);
        let text = match message {
            WsMessage::Text(text) => text,
            WsMessage::Close(close) => {
                out.closed_early = true;
                *out.other.entry("close".to_owned()).or_default() += 1;
                if out.samples.len() < 2 {
                    out.samples.push(format!("close: {close:?}"));
                }
                return out;
            }
            _ => continue,
        };
        match serde_json::from_str::<Frame>(text.as_str()) {
            Ok(Frame {
                op,
                request_id: Some(1),
                object:
                    Some(FrameObject {
                        object_id: Some(id),
                    }),
                ..
            }) if op == "create" => {
                out.events.push((id_key(&id), at));
                out.first_event_bytes.get_or_insert(text.len());
                received_total.fetch_add(1, Ordering::Relaxed);
            }
            Ok(frame) => {
                let key = match (&frame.op[..], &frame.code) {
                    ("error", Some(code)) => format!("error {code}"),
                    _ => frame.op.clone(),
                };
                *out.other.entry(key).or_default() += 1;
                if out.samples.len() < 2 {
                    out.samples.push(format!(
                        "{}: {:?}",
                        frame.op,
                        frame.error.unwrap_or_default()
                    ));
                }
            }
            Err(_) => {
                *out.other.entry("unparsed".to_owned()).or_default() += 1;
                if out.samples.len() < 2 {
                    out.samples.push(truncate(text.as_str(), 200));
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
    out
}

/// One POST of the writer.
#[derive(Default)]
struct Write {
    /// ns since the epoch.
    sent: u64,
    answered: u64,
    object_id: Option<String>,
    /// `createdAt` in ns since the Unix epoch.
    created_at_unix_ns: Option<i128>,
    error: Option<String>,
}

async fn post_message(
    client: Client,
    url: String,
    app_id: String,
    token: String,
    body: String,
    epoch: Instant,
) -> Write {
    let sent = since(epoch);
    let outcome = async {
        let response = client
            .post(&url)
            .header("X-Parse-Application-Id", &app_id)
            .header("X-Parse-Session-Token", &token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        anyhow::Ok((status, text))
    }
    .await;
    let answered = since(epoch);
    match outcome {
        Ok((status, text)) => {
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let object_id = value
                .get("objectId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let created_at_unix_ns = value
                .get("createdAt")
                .and_then(Value::as_str)
                .and_then(|date| chrono::DateTime::parse_from_rfc3339(date).ok())
                .and_then(|date| date.timestamp_nanos_opt())
                .map(i128::from);
            let error = (!(200..300).contains(&status) || object_id.is_none())
                .then(|| format!("{status}: {}", truncate(&text, 300)));
            Write {
                sent,
                answered,
                object_id,
                created_at_unix_ns,
                error,
            }
        }
        Err(error) => Write {
            sent,
            answered,
            error: Some(format!("{error:#}")),
            ..Write::default()
        },
    }
}

/// Percentiles of microsecond samples, in ms.
pub(crate) fn percentiles(samples: &mut [i64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    samples.sort_unstable();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        round2(samples[rank.clamp(1, samples.len()) - 1] as f64 / 1000.0)
    };
    let avg = samples.iter().map(|&v| v as f64).sum::<f64>() / samples.len() as f64 / 1000.0;
    json!({
        "count": samples.len(),
        "avg": round2(avg), "p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0),
        "p999": pct(99.9), "max": pct(100.0), "min": round2(samples[0] as f64 / 1000.0),
    })
}

pub(crate) fn rss(pid: Option<u32>) -> Value {
    pid.map(memory).unwrap_or(Value::Null)
}

/// Memory of every instance (see [`topology::memory`]).
fn rss_of(pids: &[u32]) -> Value {
    topology::memory(pids)
}

/// Signs up one user; returns its id and session token.
pub(crate) async fn sign_up(
    client: &Client,
    keys: &Keys,
    base: &str,
    username: &str,
) -> anyhow::Result<User> {
    let response = client
        .post(format!("{base}/users"))
        .header("X-Parse-Application-Id", &keys.app_id)
        .json(&json!({ "username": username, "password": "bench-pass-1" }))
        .send()
        .await
        .context("POST /users")?;
    let status = response.status();
    let value: Value = response.json().await.context("sign-up answer")?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    match (field("objectId"), field("sessionToken")) {
        (Some(id), Some(token)) if status.is_success() => Ok(User { id, token }),
        _ => bail!(
            "sign-up of {username}: {status} {}",
            truncate(&value.to_string(), 300)
        ),
    }
}

/// Creates the session the subscribers follow, as `owner` with every user a participant.
async fn create_session(
    client: &Client,
    keys: &Keys,
    base: &str,
    owner: &User,
    users: &[User],
    title: &str,
) -> anyhow::Result<String> {
    let participants: Vec<Value> = users.iter().map(|u| pointer("_User", &u.id)).collect();
    let response = client
        .post(format!("{base}/classes/ChatSession"))
        .header("X-Parse-Application-Id", &keys.app_id)
        .header("X-Parse-Session-Token", &owner.token)
        .json(&json!({ "title": title, "participants": participants }))
        .send()
        .await
        .context("POST /classes/ChatSession")?;
    let status = response.status();
    let value: Value = response.json().await.context("ChatSession answer")?;
    match value.get("objectId").and_then(Value::as_str) {
        Some(id) if status.is_success() => Ok(id.to_owned()),
        _ => bail!(
            "creating the ChatSession: {status} {}",
            truncate(&value.to_string(), 300)
        ),
    }
}

/// Server, load generator and machine CPU seconds so far.
pub(crate) fn cpu_now(pid: Option<u32>) -> [Option<f64>; 3] {
    [
        pid.and_then(cpu_seconds),
        cpu_seconds(std::process::id()),
        machine_busy_seconds(),
    ]
}

/// Server (all instances), load generator and machine CPU seconds so far.
fn cpu_now_of(pids: &[u32]) -> [Option<f64>; 3] {
    [
        topology::cpu_seconds(pids),
        cpu_seconds(std::process::id()),
        machine_busy_seconds(),
    ]
}

pub(crate) fn cpu_delta(before: [Option<f64>; 3], after: [Option<f64>; 3]) -> [Option<f64>; 3] {
    [0, 1, 2].map(|i| before[i].zip(after[i]).map(|(b, a)| a - b))
}

/// Where the scenario connects: with several instances, subscribers on one and the writer on
/// another, so that every event crosses instances.
pub struct Servers<'a> {
    /// The base URL the subscribers' WebSockets connect to.
    pub subscribe_base: &'a str,
    /// The base URL the users sign up at and the writer posts to.
    pub write_base: &'a str,
    /// The server processes, for memory and CPU (none: not known).
    pub pids: &'a [u32],
}

/// Runs the scenario once per subscriber count; returns one JSON line per count.
pub async fn run(
    client: &Client,
    keys: &Keys,
    servers: &Servers<'_>,
    options: &FanoutOptions,
    emit: &dyn Fn(&Value),
) -> anyhow::Result<Vec<Value>> {
    let before_sign_up = rss_of(servers.pids);
    let users_wanted = options.users.max(1);
    eprintln!("[fanout] signing up {users_wanted} user(s) ...");
    let mut users = Vec::with_capacity(users_wanted);
    for i in 0..users_wanted {
        let name = format!("bench_fo_{}_{i}", std::process::id());
        users.push(sign_up(client, keys, servers.write_base, &name).await?);
    }
    let mut lines = Vec::new();
    for (run, &subscribers) in options.subscribers.iter().enumerate() {
        let mut line =
            run_one(client, keys, servers, options, &users, subscribers, run + 1).await?;
        // Sign-up's password hash (argon2id, 19 MiB) stays resident: the server before it.
        line["server_memory"]["before_sign_up"] = before_sign_up.clone();
        emit(&line);
        lines.push(line);
    }
    Ok(lines)
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    client: &Client,
    keys: &Keys,
    servers: &Servers<'_>,
    options: &FanoutOptions,
    users: &[User],
    subscribers: usize,
    run: usize,
) -> anyhow::Result<Value> {
    let Some(writer) = users.first() else {
        bail!("no users");
    };
    let session_id = create_session(
        client,
        keys,
        servers.write_base,
        writer,
        users,
        &format!("fanout-{subscribers}"),
    )
    .await?;
    let ws_url = servers
        .subscribe_base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let messages = options.messages;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_idle = rss_of(servers.pids);
    eprintln!(
        "[fanout] {subscribers} subscribers: server RSS idle {} MB; connecting {} at a time ...",
        mem_idle["rss_mb"], options.connect_batch
    );

    // Connect and subscribe, `connect_batch` at a time.
    let epoch = Instant::now();
    let epoch_unix_ns = i128::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    )
    .unwrap_or_default();
    let received_total = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let cpu_connect_start = cpu_now_of(servers.pids);
    let connect_started = Instant::now();
    // Each subscriber starts reading as soon as it has subscribed (it must answer the server's
    // pings while the others connect).
    let opened: Vec<anyhow::Result<tokio::task::JoinHandle<Received>>> =
        futures::stream::iter(0..subscribers)
            .map(|i| {
                let url = ws_url.clone();
                let app_id = keys.app_id.clone();
                let token = users[i % users.len()].token.clone();
                let session_id = session_id.clone();
                let received_total = received_total.clone();
                let stopped = stopped.clone();
                async move {
                    let socket = tokio::time::timeout(
                        SETUP_TIMEOUT,
                        open(&url, &app_id, &token, &session_id),
                    )
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("setup timed out")))?;
                    Ok(tokio::spawn(listen(
                        socket,
                        epoch,
                        messages,
                        received_total,
                        stopped,
                    )))
                }
            })
            .buffer_unordered(options.connect_batch.max(1))
            .collect()
            .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let mut listeners = Vec::with_capacity(subscribers);
    let mut connect_failures: BTreeMap<String, u64> = BTreeMap::new();
    for outcome in opened {
        match outcome {
            Ok(listener) => listeners.push(listener),
            Err(error) => {
                let key = truncate(&format!("{error:#}"), 200);
                *connect_failures.entry(key).or_default() += 1;
            }
        }
    }
    let connected = listeners.len();
    let cpu_connect = cpu_delta(cpu_connect_start, cpu_now_of(servers.pids));
    eprintln!(
        "[fanout]   {connected}/{subscribers} subscribed in {connect_seconds:.1} s{}",
        if connect_failures.is_empty() {
            String::new()
        } else {
            format!(", failures: {connect_failures:?}")
        }
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mem_subscribed = rss_of(servers.pids);

    // The writer: message i is sent at start + i / rate, each POST on its own task so a slow
    // answer does not delay the next.
    eprintln!(
        "[fanout]   server RSS subscribed {} MB; writing {messages} messages at {}/s ...",
        mem_subscribed["rss_mb"], options.rate
    );
    let url = format!("{}/classes/Message", servers.write_base);
    let filler = text(100);
    let cpu_start = cpu_now_of(servers.pids);
    let write_started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.001));
    let mut posts = Vec::with_capacity(messages);
    for i in 0..messages {
        let at = write_started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let body = json!({
            "content": format!("fanout message {i}: {filler}"),
            "role": "user",
            "session": pointer("ChatSession", &session_id),
            "sender": pointer("_User", &writer.id),
        })
        .to_string();
        posts.push(tokio::spawn(post_message(
            client.clone(),
            url.clone(),
            keys.app_id.clone(),
            writer.token.clone(),
            body,
            epoch,
        )));
    }
    let mut writes = Vec::with_capacity(messages);
    for post in posts {
        writes.push(post.await.unwrap_or_else(|error| Write {
            error: Some(format!("writer task: {error}")),
            ..Write::default()
        }));
    }
    let write_seconds = write_started.elapsed().as_secs_f64();
    let created = writes.iter().filter(|w| w.error.is_none()).count();
    let expected = (connected * created) as u64;

    // Wait for the remaining events: until all arrived, or `drain` seconds without completion.
    let drain_started = Instant::now();
    let drain_limit = Duration::from_secs_f64(options.drain);
    while received_total.load(Ordering::Relaxed) < expected && drain_started.elapsed() < drain_limit
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    let window = write_started.elapsed().as_secs_f64();
    let cpu = cpu_delta(cpu_start, cpu_now_of(servers.pids));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem_after = rss_of(servers.pids);

    // Disconnect every subscriber and collect what each saw.
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(connected);
    for listener in listeners {
        seen.push(listener.await.unwrap_or_else(|_| Received {
            closed_early: true,
            ..Received::default()
        }));
    }
    // The allocator gives freed memory back with a delay.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mem_disconnected = rss_of(servers.pids);

    // Match events to messages.
    let index: HashMap<u64, usize> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.object_id.as_deref().map(|id| (id_key(id), i)))
        .collect();
    let mut from_created = Vec::new();
    let mut from_response = Vec::new();
    let mut from_request = Vec::new();
    // The last receipt of each message over all subscribers (ns since the epoch).
    let mut last_receipt: Vec<Option<u64>> = vec![None; writes.len()];
    let (mut delivered, mut duplicates, mut unexpected) = (0u64, 0u64, 0u64);
    let mut other: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples: Vec<String> = Vec::new();
    let mut closed_early = 0u64;
    let mut event_bytes = None;
    let mut per_message = vec![0u32; writes.len()];
    for received in &seen {
        let mut got = vec![false; writes.len()];
        for &(key, at) in &received.events {
            let Some(&i) = index.get(&key) else {
                unexpected += 1;
                continue;
            };
            if got[i] {
                duplicates += 1;
                continue;
            }
            got[i] = true;
            delivered += 1;
            per_message[i] += 1;
            let write = &writes[i];
            let us = |ns: i128| i64::try_from(ns / 1000).unwrap_or(i64::MAX);
            let at_i = i128::from(at);
            from_response.push(us(at_i - i128::from(write.answered)));
            from_request.push(us(at_i - i128::from(write.sent)));
            if let Some(created) = write.created_at_unix_ns {
                from_created.push(us(epoch_unix_ns + at_i - created));
            }
            let last = &mut last_receipt[i];
            *last = Some(last.map_or(at, |l| l.max(at)));
        }
        for (key, count) in &received.other {
            *other.entry(key.clone()).or_default() += count;
        }
        for sample in &received.samples {
            if samples.len() < 5 && !samples.contains(sample) {
                samples.push(sample.clone());
            }
        }
        closed_early += u64::from(received.closed_early);
        event_bytes = event_bytes.or(received.first_event_bytes);
    }
    let missing = expected.saturating_sub(delivered);
    let mut complete: Vec<i64> = writes
        .iter()
        .zip(&last_receipt)
        .zip(&per_message)
        .filter(|((_, last), count)| last.is_some() && **count as usize == connected)
        .filter_map(|((write, last), _)| {
            last.map(|l| (i128::from(l) - i128::from(write.answered)) / 1000)
        })
        .filter_map(|us| i64::try_from(us).ok())
        .collect();
    let mut post_latency: Vec<i64> = writes
        .iter()
        .filter(|w| w.error.is_none())
        .filter_map(|w| i64::try_from((w.answered.saturating_sub(w.sent)) / 1000).ok())
        .collect();
    let write_errors: Vec<&String> = writes.iter().filter_map(|w| w.error.as_ref()).collect();
    let latency = percentiles(&mut from_created);
    let p99 = latency["p99"].as_f64();
    let post_percentiles = percentiles(&mut post_latency);
    let post_p99 = post_percentiles["p99"].as_f64();
    // With several instances, the goal is each one's memory.
    let peak_rss = [&mem_idle, &mem_subscribed, &mem_after, &mem_disconnected]
        .iter()
        .filter_map(|m| topology::largest_rss(m))
        .fold(0.0_f64, f64::max);
    let meets_goal = connected == subscribers
        && created == messages
        && missing == 0
        && duplicates == 0
        && p99.is_some_and(|p| p < GOAL_P99_MS)
        && post_p99.is_some_and(|p| p < GOAL_POST_P99_MS)
        && !servers.pids.is_empty()
        && peak_rss < GOAL_RSS_MB;
    let [server_s, bench_s, busy_s] = cpu;
    let deliveries = delivered.max(1) as f64;
    let line = json!({
        "scenario": "live_fanout",
        "run": run,
        "label": options.label,
        "subscribers": subscribers,
        "users": users.len(),
        "connected": connected,
        "connect_failures": connect_failures,
        "connect_seconds": round2(connect_seconds),
        "connect_batch": options.connect_batch,
        "messages": messages,
        "messages_created": created,
        "write_errors": write_errors.len(),
        "write_error_samples": write_errors.iter().take(3).collect::<Vec<_>>(),
        "rate_per_s": options.rate,
        "write_seconds": round2(write_seconds),
        "drain_seconds": round2(drain_seconds),
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "subscribers_closed_early": closed_early,
        "other_frames": other,
        "other_frame_samples": samples,
        "event_frame_bytes": event_bytes,
        "latency_ms": latency,
        "latency_note": "receipt − createdAt (commit stamp, ms precision): upper bound of commit → receipt",
        "latency_from_response_ms": percentiles(&mut from_response),
        "latency_from_request_ms": percentiles(&mut from_request),
        "fanout_complete_ms": percentiles(&mut complete),
        "post_latency_ms": post_percentiles,
        "server_memory": {
            "idle": mem_idle, "subscribed": mem_subscribed, "after": mem_after,
            "after_disconnect": mem_disconnected,
        },
        "cpu": {
            "window_s": round2(window),
            "server_seconds": server_s.map(round2),
            "server_cores": server_s.map(|s| round2(s / window)),
            "server_us_per_delivery": server_s.map(|s| round1(s * 1e6 / deliveries)),
            "load_generator_seconds": bench_s.map(round2),
            "load_generator_cores": bench_s.map(|s| round2(s / window)),
            "load_generator_us_per_delivery": bench_s.map(|s| round1(s * 1e6 / deliveries)),
            "machine_busy_cores": busy_s.map(|s| round2(s / window)),
        },
        "connect_cpu": {
            "server_seconds": cpu_connect[0].map(round2),
            "load_generator_seconds": cpu_connect[1].map(round2),
        },
        "goal": format!("all {subscribers} subscribed, every event delivered once, p99 < {GOAL_P99_MS} ms, POST p99 < {GOAL_POST_P99_MS} ms, server RSS < {GOAL_RSS_MB} MB throughout"),
        "meets_goal": meets_goal,
        "parse_reference": PARSE_REFERENCE,
    });
    eprintln!(
        "[fanout]   delivered {delivered}/{expected} (missing {missing}, duplicates {duplicates}), \
         commit→receipt p50 {} p90 {} p99 {} max {} ms (from response: p50 {} p99 {}); \
         POST p50 {} p99 {} ms; \
         server RSS idle/subscribed/after/disconnected {}/{}/{}/{} MB; \
         server CPU {} s ({} cores), load generator {} s ({} cores); goal met: {meets_goal}",
        latency["p50"],
        latency["p90"],
        latency["p99"],
        latency["max"],
        line["latency_from_response_ms"]["p50"],
        line["latency_from_response_ms"]["p99"],
        line["post_latency_ms"]["p50"],
        line["post_latency_ms"]["p99"],
        mem_idle["rss_mb"],
        mem_subscribed["rss_mb"],
        mem_after["rss_mb"],
        mem_disconnected["rss_mb"],
        line["cpu"]["server_seconds"],
        line["cpu"]["server_cores"],
        line["cpu"]["load_generator_seconds"],
        line["cpu"]["load_generator_cores"],
    );
    Ok(line)
}

/// A row of the summary.
pub fn summary_row(line: &Value) -> Value {
    json!({
        "scenario": "live_fanout",
        "run": line["run"],
        "subscribers": line["subscribers"],
        "connected": line["connected"],
        "delivered": line["delivered"],
        "expected": line["expected"],
        "missing": line["missing"],
        "duplicates": line["duplicates"],
        "p50_ms": line["latency_ms"]["p50"],
        "p99_ms": line["latency_ms"]["p99"],
        "max_ms": line["latency_ms"]["max"],
        "post_p99_ms": line["post_latency_ms"]["p99"],
        "rss_mb": {
            "before_sign_up": line["server_memory"]["before_sign_up"]["rss_mb"],
            "idle": line["server_memory"]["idle"]["rss_mb"],
            "subscribed": line["server_memory"]["subscribed"]["rss_mb"],
            "after": line["server_memory"]["after"]["rss_mb"],
            "after_disconnect": line["server_memory"]["after_disconnect"]["rss_mb"],
        },
        "server_cpu_s": line["cpu"]["server_seconds"],
        "load_generator_cpu_s": line["cpu"]["load_generator_seconds"],
        "meets_goal": line["meets_goal"],
    })
}

/// Raises this process's open-file limit to its hard limit (the server started afterwards
/// inherits it) and returns the soft limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}
