//! Serving connections: the accept loop, the timeouts of a connection and the cap on open
//! connections. It owns sockets and their lifetimes; what a request means is [`super::router`]'s.
//!
//! `axum::serve` waits on a client for ever and retries a failing `accept` every second, so a
//! few hundred slow or idle sockets could hold every descriptor the process has. Here each
//! connection is an HTTP/1 hyper connection over a [`WatchedStream`] that tracks which phase
//! the connection is in; a sweeper closes the connections whose phase has lasted too long
//! (one scan a fraction of a second apart rather than a timer per connection, which would be
//! reset on every request), and each phase has its own rule:
//!
//! - **headers**: a request's headers must be complete within `header_read_timeout` of the
//!   connection's start or of the request's first byte, else the connection is dropped;
//! - **body**: a body must arrive within `body_read_timeout`, extended by one second per
//!   [`MIN_BODY_RATE`] bytes received, else the request answers `408` (code 124);
//! - **idle**: a keep-alive connection with no traffic for `idle_timeout` between requests is
//!   closed;
//! - **busy** (a request being answered, an SSE stream included) and **upgraded** (a LiveQuery
//!   WebSocket): never timed out here; an SSE stream ends with its reply, and LiveQuery pings
//!   its clients and drops silent ones itself.
//!
//! At `max_connections` open connections (WebSockets included), a newcomer makes room by
//! closing the connection that has waited longest without a request in progress (idle, or
//! still sending headers); when every connection is busy, it is answered `503` (code 100,
//! `Retry-After: 1`) without its request being read, and closed. An `accept` failing for want
//! of descriptors (`EMFILE`) closes such a connection too, then backs off instead of spinning,
//! so new clients keep being answered when the open-file limit is near.

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::error::ApiError;

/// How long clients may take, and how many connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// `None`: derived from the open-file limit at start ([`default_max_connections`]).
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            // Clients send their headers in one packet right after connecting (or after their
            // previous answer); 10 s is many round trips of the slowest mobile link, while a
            // client that sends a byte at a time holds its socket for 10 s, not for ever.
            header_read_timeout: Duration::from_secs(10),
            // API bodies are small JSON; with the extension of MIN_BODY_RATE, a file upload
            // up to the body limit over a 128 kbit/s link still finishes.
            body_read_timeout: Duration::from_secs(30),
            // Parse Server (Node) closes idle sockets after 5 s, so SDKs already cope with a
            // server closing; 60 s lets a chat client reuse its connection between messages,
            // and 1,000 idle sockets cost a minute of descriptors, not all of them.
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

/// The slowest average rate at which a body still earns time past `body_read_timeout`: each
/// chunk received extends the deadline by its share (Apache's `mod_reqtimeout` `MinRate`), so
/// a large upload at a modest rate finishes while a trickle of bytes earns nothing.
pub const MIN_BODY_RATE: u64 = 16 * 1024;

/// How often the sweeper looks for timed-out connections, at most and at least: a quarter of
/// the shortest timeout between these bounds, so a timeout fires at most a quarter late.
const SWEEP_MIN: Duration = Duration::from_millis(100);
const SWEEP_MAX: Duration = Duration::from_secs(1);

/// How long a refused connection (`503`) is given to take its answer before it is closed.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// How often the same kind of accept-loop warning may be logged.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A request body that did not arrive within the body-read timeout (the error a handler's read
/// of the body ends with; `http/error.rs` answers it `408`).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout {
    /// The configured `body_read_timeout`, without the extension earned by bytes received.
    pub after: Duration,
}

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s",
            self.after.as_secs()
        )
    }
}

impl StdError for BodyTimeout {}

impl BodyTimeout {
    /// The timeout somewhere in `error`'s chain of sources, if that is what ended a body read.
    pub fn find(error: &(dyn StdError + 'static)) -> Option<BodyTimeout> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(timeout) = error.downcast_ref::<BodyTimeout>() {
                return Some(*timeout);
            }
            current = error.source();
        }
        None
    }
}

/// Raises the soft limit on open files to the hard limit: every client connection is a
/// descriptor, and the usual soft default of 1,024 caps a server far below what the system
/// allows it. Returns the soft limit before and after.
#[cfg(unix)]
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct it is given, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur >= limit.rlim_max {
        return Ok((before, before));
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, limit.rlim_max))
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no open-file limit to raise on this platform",
    ))
}

/// The connection cap for an open-file limit: the limit minus a reserve for what else the
/// process holds open (database files and pool connections, LLM provider and pub/sub
/// connections, refusals being written): a quarter of the limit, at least 32, at most 1,024.
pub fn default_max_connections(open_file_limit: u64) -> usize {
    let limit = usize::try_from(open_file_limit).unwrap_or(usize::MAX);
    let reserve = (limit / 4).clamp(32, 1024);
    limit.saturating_sub(reserve).max(1)
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, closes the
/// connections that have no request in progress, lets the others finish the request they are
/// answering, and returns when the last one has closed. Upgraded WebSockets live on by
/// themselves, as with `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry::default());
    // Connections watch `draining` to start their graceful shutdown and hold a clone of
    // `closed_rx` until they end, so `closed_tx.closed()` resolves when the last one has.
    let (draining_tx, draining_rx) = watch::channel(false);
    let (closed_tx, closed_rx) = watch::channel(());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true);
    let mut accept_warning = RateLimitedWarning::default();
    let mut capacity_warning = RateLimitedWarning::default();
    // Stopped however `serve` ends: returning, or dropped when its task is aborted.
    let _sweeper = AbortOnDrop(tokio::spawn(sweep(registry.clone(), limits)));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                after_accept_error(&error, &registry, &mut accept_warning).await;
                continue;
            }
        };
        // Streamed answers (SSE tokens, LiveQuery frames) are small writes that must leave at
        // once: Nagle's algorithm would hold one back until the previous is acknowledged.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set on an accepted connection");
        }
        if registry.len() >= max_connections && !registry.evict_oldest_waiting() {
            capacity_warning.warn(|suppressed| {
                tracing::warn!(
                    max_connections,
                    suppressed,
                    "every connection is answering a request; new clients get 503 (see --max-connections)"
                )
            });
            tokio::spawn(refuse(stream));
            continue;
        }
        let (connection, slot) = registry.register();
        let io = TokioIo::new(WatchedStream {
            stream,
            connection: connection.clone(),
            _slot: slot,
        });
        let service = ConnectionService {
            router: router.clone(),
            connection: connection.clone(),
            peer,
            body_read_timeout: limits.body_read_timeout,
        };
        let conn = builder.serve_connection(io, service).with_upgrades();
        let mut draining = draining_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%error, %peer, "connection ended");
                        }
                        break;
                    }
                    // Timed out or evicted; dropping the connection closes its socket: it had
                    // no request in progress.
                    () = connection.closing.notified() => break,
                    _ = draining.changed(), if !shutting_down => {
                        // No request in progress (idle, or headers still coming): close now.
                        if connection.close_if_waiting() {
                            break;
                        }
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    let _ = draining_tx.send(true);
    drop(closed_rx);
    closed_tx.closed().await;
}

/// A task that stops when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes, again and again, the connections whose phase has outlived its timeout.
async fn sweep(registry: Arc<Registry>, limits: ConnectionLimits) {
    let every =
        (limits.header_read_timeout.min(limits.idle_timeout) / 4).clamp(SWEEP_MIN, SWEEP_MAX);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        registry.close_expired(&limits, Instant::now());
    }
}

/// After a failed `accept`: nothing for a connection that died before it was accepted; for a
/// lack of descriptors or memory (the listener stays readable, so retrying at once would
/// spin), close the oldest waiting connection to free one and pause briefly.
async fn after_accept_error(
    error: &io::Error,
    registry: &Registry,
    warning: &mut RateLimitedWarning,
) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    ) {
        return;
    }
    let evicted = registry.evict_oldest_waiting();
    let open = registry.len();
    warning.warn(|suppressed| {
        tracing::warn!(
            %error,
            open,
            evicted,
            suppressed,
            "accepting a connection failed; closing idle connections to make room"
        )
    });
    // An evicted connection's task closes its socket as soon as it runs.
    let pause = if evicted {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(100)
    };
    tokio::time::sleep(pause).await;
}

/// Answers a connection the server has no room for with a `503` in Parse's error shape,
/// without reading its request, then closes it.
async fn refuse(mut stream: TcpStream) {
    let error = ApiError::TooManyConnections;
    let (status, body) = error.status_and_body();
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing with unread data would reset
        // the connection, and the client could lose the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// A warning logged at most once per [`WARNING_INTERVAL`], with how many were left out.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarning {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARNING_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Where a connection is in its life, which decides its timeout.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's headers since this instant: the connection's start, or the
    /// first byte of a request after an idle spell.
    Headers(Instant),
    /// Between requests since the last byte read or written.
    Idle(Instant),
    /// A request is being answered.
    Busy,
    /// Handed over to a WebSocket.
    Upgraded,
    /// Timed out, or closed to make room for a newer connection.
    Closing,
}

/// One open connection's phase, shared by its socket, its service and the registry.
struct Connection {
    phase: Mutex<Phase>,
    /// Woken when the connection is to be closed (timed out, evicted, or idle at shutdown).
    closing: Notify,
}

impl Connection {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        // A phase is a plain value: one left by a panicking holder is still valid.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_some(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Headers(now);
        }
    }

    fn wrote_some(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Idle(now);
        }
    }

    fn begin_request(&self) {
        let mut phase = self.phase();
        if let Phase::Headers(_) | Phase::Idle(_) = *phase {
            *phase = Phase::Busy;
        }
    }

    fn end_request(&self, now: Instant) {
        let mut phase = self.phase();
        if let Phase::Busy = *phase {
            *phase = Phase::Idle(now);
        }
    }

    fn upgrade(&self) {
        let mut phase = self.phase();
        if let Phase::Busy = *phase {
            *phase = Phase::Upgraded;
        }
    }

    /// Closes the connection if its phase has outlived its timeout at `now`.
    fn close_if_expired(&self, limits: &ConnectionLimits, now: Instant) -> bool {
        let mut phase = self.phase();
        let deadline = match *phase {
            Phase::Headers(since) => since + limits.header_read_timeout,
            Phase::Idle(since) => since + limits.idle_timeout,
            Phase::Busy | Phase::Upgraded | Phase::Closing => return false,
        };
        if now < deadline {
            return false;
        }
        *phase = Phase::Closing;
        self.closing.notify_one();
        true
    }

    /// Since when the connection has been waiting for a request, if it has no request in
    /// progress (the ones a newcomer may displace).
    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Headers(since) | Phase::Idle(since) => Some(since),
            Phase::Busy | Phase::Upgraded | Phase::Closing => None,
        }
    }

    /// Closes the connection if it is waiting for a request (no request in progress).
    fn close_if_waiting(&self) -> bool {
        let mut phase = self.phase();
        if let Phase::Headers(_) | Phase::Idle(_) = *phase {
            *phase = Phase::Closing;
            self.closing.notify_one();
            return true;
        }
        false
    }
}

/// The open connections: counted for the cap, scanned for one to evict.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Registry {
    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(self: &Arc<Registry>) -> (Arc<Connection>, Slot) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            phase: Mutex::new(Phase::Headers(Instant::now())),
            closing: Notify::new(),
        });
        self.open().insert(id, connection.clone());
        let slot = Slot {
            registry: self.clone(),
            id,
        };
        (connection, slot)
    }

    fn len(&self) -> usize {
        self.open().len()
    }

    fn close_expired(&self, limits: &ConnectionLimits, now: Instant) {
        for connection in self.open().values() {
            connection.close_if_expired(limits, now);
        }
    }

    /// Evicts the connection that has waited longest without a request in progress; `false`
    /// when every connection is busy or upgraded.
    fn evict_oldest_waiting(&self) -> bool {
        let open = self.open();
        loop {
            let oldest = open
                .values()
                .filter_map(|connection| Some((connection.waiting_since()?, connection)))
                .min_by_key(|(since, _)| *since);
            match oldest {
                None => return false,
                Some((_, connection)) if connection.close_if_waiting() => return true,
                // It began a request since it was looked at, so it is not picked again.
                Some(_) => continue,
            }
        }
    }
}

/// A connection's place in the registry, given back when its socket closes (which, for a
/// WebSocket, is long after hyper has handed the socket over).
struct Slot {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.open().remove(&self.id);
    }
}

/// A client socket that moves its connection's phase along as bytes arrive (a request
/// begins after an idle spell) or leave (an answer is still being taken).
struct WatchedStream {
    stream: TcpStream,
    connection: Arc<Connection>,
    _slot: Slot,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && buf.filled().len() > before
        {
            this.connection.read_some(Instant::now());
        }
        poll
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = poll
            && written > 0
        {
            this.connection.wrote_some(Instant::now());
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = poll
            && written > 0
        {
            this.connection.wrote_some(Instant::now());
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Hands each request to the router with its peer address and a timed body, and tracks the
/// connection's phase around it.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    connection: Arc<Connection>,
    peer: SocketAddr,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<AnswerBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.connection.begin_request();
        let timeout = self.body_read_timeout;
        let mut request = request.map(|body| Body::new(TimedBody::new(body, timeout)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let router = self.router.clone();
        let connection = self.connection.clone();
        Box::pin(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                connection.upgrade();
                return Ok(response.map(|body| AnswerBody {
                    body,
                    connection: None,
                }));
            }
            Ok(response.map(|body| AnswerBody {
                body,
                connection: Some(connection),
            }))
        })
    }
}

/// An answer's body; when it ends (or is dropped: the client left), the connection is idle.
struct AnswerBody {
    body: Body,
    /// `None` once told, and for an upgrade's answer.
    connection: Option<Arc<Connection>>,
}

impl AnswerBody {
    fn finish(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.end_request(Instant::now());
        }
    }
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(poll, Poll::Ready(None | Some(Err(_)))) {
            this.finish();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A request body that fails with [`BodyTimeout`] when it has not arrived in time: within
/// the body-read timeout of the request's headers, plus a second per [`MIN_BODY_RATE`] bytes
/// received.
struct TimedBody {
    body: Incoming,
    started: Instant,
    timeout: Duration,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(body: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            body,
            started: Instant::now(),
            timeout,
            received: 0,
            timer: None,
        }
    }

    fn deadline(&self) -> Instant {
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / MIN_BODY_RATE);
        self.started + self.timeout + earned
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout {
                        after: this.timeout,
                    })))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_keeps_a_reserve_of_descriptors() {
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(64), 32);
        assert_eq!(default_max_connections(1_048_576), 1_047_552);
        assert_eq!(default_max_connections(10), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let (_, after) = raise_open_file_limit().expect("getrlimit/setrlimit");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(limit.rlim_cur, after);
    }

    /// Each phase has its own timeout; a request in progress and a WebSocket have none.
    #[tokio::test]
    async fn a_connection_times_out_only_while_waiting_for_its_client() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let registry = Arc::new(Registry::default());
        let start = Instant::now();
        let (connection, _slot) = registry.register();
        let later = |seconds| start + Duration::from_secs(seconds);
        assert!(!connection.close_if_expired(&limits, later(9)));
        connection.begin_request();
        assert!(!connection.close_if_expired(&limits, later(3600)), "busy");
        connection.end_request(later(100));
        assert!(!connection.close_if_expired(&limits, later(159)));
        connection.wrote_some(later(150));
        assert!(
            !connection.close_if_expired(&limits, later(209)),
            "still taking its answer"
        );
        connection.read_some(later(209));
        assert!(!connection.close_if_expired(&limits, later(218)));
        assert!(
            connection.close_if_expired(&limits, later(219)),
            "headers took 10 s"
        );
        assert!(matches!(*connection.phase(), Phase::Closing));

        let (upgraded, _slot) = registry.register();
        upgraded.begin_request();
        upgraded.upgrade();
        upgraded.end_request(later(1));
        assert!(!upgraded.close_if_expired(&limits, later(3600)));
        assert!(!upgraded.close_if_waiting());
    }

    /// A waiting connection is displaced oldest first; busy and upgraded ones never are.
    #[tokio::test]
    async fn eviction_takes_the_longest_waiting_connection() {
        let registry = Arc::new(Registry::default());
        let (busy, _busy_slot) = registry.register();
        busy.begin_request();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (older, _older_slot) = registry.register();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (newer, newer_slot) = registry.register();
        assert_eq!(registry.len(), 3);
        assert!(registry.evict_oldest_waiting());
        assert!(matches!(*older.phase(), Phase::Closing));
        assert!(matches!(*busy.phase(), Phase::Busy));
        assert!(registry.evict_oldest_waiting());
        assert!(matches!(*newer.phase(), Phase::Closing));
        assert!(!registry.evict_oldest_waiting(), "only busy ones are left");
        drop(newer_slot);
        assert_eq!(registry.len(), 2);
    }
}
