//! One LiveQuery connection: the client's frames in, events out (§11.2–§11.5).
//!
//! One task per connection owns the protocol state and the socket: it reads the client's
//! frames and the change-event bus, and writes what they give through a bounded queue. A
//! client that lets the queue fill (it reads too slowly, or not at all) is told so and
//! disconnected: its memory never grows past the queue.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use parlor_core::Error;
use rand::RngExt;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::frame::{self, Op};
use super::hub::UserSlot;
use super::subscription::{EventKind, Subscription, Subscriptions, project};
use crate::http::AppState;
use crate::http::auth::authenticate;
use crate::http::envelope::Credentials;
use crate::operation::Auth;
use crate::operation::events::{ChangeEvent, Delivery};
use crate::operation::hooks::Trigger;

/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(10);

/// A client silent this long (not even a pong) is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(35);

/// How long a write may find the socket full before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames handed to the socket before one flush, and events taken from the bus at one wake-up:
/// a connection that fell behind catches up in one turn of its task, and a stalled write is a
/// small one.
const WRITE_BATCH: usize = 32;

const NOT_CONNECTED: &str =
    "Can not find this client, make sure you connect to server before subscribing";

/// The protocol state of one client.
struct Client {
    id: String,
    installation_id: Option<String>,
    /// `None` until `connect`.
    auth: Option<Auth>,
    /// The expiry of the connection's own session token.
    expires_at: Option<String>,
    /// Holds this user's place in the per-user connection count.
    slot: Option<UserSlot>,
    subscriptions: Subscriptions,
}

fn error_frame(code: i64, message: &str, reconnect: bool, request_id: Option<i64>) -> Value {
    json!({"op": "error", "code": code, "error": message, "reconnect": reconnect, "requestId": request_id})
}

impl Client {
    fn frame(&self, op: &str, request_id: Option<i64>) -> Map<String, Value> {
        let mut frame = Map::new();
        frame.insert("op".into(), op.into());
        frame.insert("clientId".into(), self.id.clone().into());
        if let Some(installation_id) = &self.installation_id {
            frame.insert("installationId".into(), installation_id.clone().into());
        }
        if let Some(request_id) = request_id {
            frame.insert("requestId".into(), request_id.into());
        }
        frame
    }
}

/// What waits to be written to one client, and why the connection must end.
///
/// A client that lets `pending` fill (it reads too slowly, or not at all) is told so and
/// disconnected: its memory never grows past the queue.
struct Outbox {
    pending: VecDeque<Message>,
    /// Frames handed to the socket but not flushed yet.
    unflushed: bool,
    /// Frames one client may have waiting before it counts as too slow.
    limit: usize,
    /// When a write last found the socket full, while it still is.
    stalled_since: Option<Instant>,
    /// The last frame, sent ahead of whatever is pending, when the server ends the connection.
    last: Option<Value>,
    /// Counts the slow clients cut off.
    hub: Arc<super::Hub>,
}

/// Why the connection stops.
struct Closed;

impl Outbox {
    /// Queues a frame; `Err` when the client is too slow (then it will be told).
    fn push(&mut self, frame: Value) -> Result<(), Closed> {
        self.push_text(frame.to_string())
    }

    fn push_text(&mut self, frame: String) -> Result<(), Closed> {
        if self.pending.len() >= self.limit {
            self.hub.count_slow_consumer();
            self.close_with(error_frame(
                1,
                "The client is too slow reading events; reconnect.",
                true,
                None,
            ));
            return Err(Closed);
        }
        self.pending.push_back(Message::Text(frame.into()));
        Ok(())
    }

    fn push_all(&mut self, frames: Vec<Value>) -> Result<(), Closed> {
        frames.into_iter().try_for_each(|frame| self.push(frame))
    }

    fn close_with(&mut self, frame: Value) {
        self.last.get_or_insert(frame);
    }

    fn has_work(&self) -> bool {
        self.unflushed || !self.pending.is_empty()
    }

    /// Hands the pending frames to the socket, a bounded batch at a time, and flushes each
    /// batch. Cancel-safe: what it took from `pending` is in the socket's hands and
    /// `unflushed` says so.
    fn write(&mut self, sink: &mut WebSocket, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        loop {
            let mut batch = 0;
            while batch < WRITE_BATCH && !self.pending.is_empty() {
                match sink.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(Closed)),
                    Poll::Pending => return self.stalled(),
                }
                let Some(message) = self.pending.pop_front() else {
                    break;
                };
                if sink.start_send_unpin(message).is_err() {
                    return Poll::Ready(Err(Closed));
                }
                self.unflushed = true;
                batch += 1;
            }
            if self.unflushed {
                match sink.poll_flush_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        self.stalled_since = None;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(Closed)),
                    Poll::Pending => return self.stalled(),
                }
            }
            if self.pending.is_empty() {
                // A backlog's room goes with it: ten thousand idle connections would
                // otherwise each keep the largest queue they once had.
                if self.pending.capacity() > 4 {
                    self.pending = VecDeque::new();
                }
                return Poll::Ready(Ok(()));
            }
        }
    }

    fn stalled(&mut self) -> Poll<Result<(), Closed>> {
        self.stalled_since.get_or_insert_with(Instant::now);
        Poll::Pending
    }
}

/// When a connection's one timer must fire next: the next ping, the client's silence limit,
/// or a stalled write's limit. The timer is reset only when it fires, not on every frame
/// heard: it then finds the deadline has moved and sleeps again.
fn next_deadline(next_ping: Instant, heard: Instant, stalled_since: Option<Instant>) -> Instant {
    let deadline = next_ping.min(heard + SILENCE_LIMIT);
    stalled_since.map_or(deadline, |since| deadline.min(since + SEND_TIMEOUT))
}

/// Serves one upgraded socket until the client leaves, is too slow, or the server stops.
///
/// One task per connection reads the client's frames and the change-event bus and writes to
/// the socket: an event costs one wake-up and, when the socket has room, one write.
pub async fn serve_socket(mut socket: WebSocket, state: AppState, peer: IpAddr) {
    let mut events = state.operations.events.subscribe();
    let mut outbox = Outbox {
        pending: VecDeque::new(),
        unflushed: false,
        limit: state.live.config.queue,
        stalled_since: None,
        last: None,
        hub: Arc::clone(&state.live),
    };
    let id: String = {
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    };
    let registration = state.live.register(&id, peer);
    let mut client = Client {
        id,
        installation_id: None,
        auth: None,
        expires_at: None,
        slot: None,
        subscriptions: Subscriptions::new(registration),
    };
    let mut heard = Instant::now();
    let mut next_ping = heard + PING_EVERY;
    let timer = tokio::time::sleep_until(next_deadline(next_ping, heard, None));
    tokio::pin!(timer);
    loop {
        let step = tokio::select! {
            biased;
            step = poll_fn(|cx| poll_socket(&mut socket, &mut outbox, cx)) => match step {
                SocketStep::Written(written) => written,
                SocketStep::Frame(frame) => {
                heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: these futures are large and only live while a frame is handled,
                        // so an idle connection's task stays small.
                        let frames = Box::pin(handle_frame(&state, &mut client, text.as_str(), peer)).await;
                        outbox.push_all(frames)
                    }
                    Some(Ok(Message::Binary(_))) => {
                        outbox.push(error_frame(1, "binary frames are not supported", true, None))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(Closed),
                }
                }
            },
            event = events.recv() => {
                let mut step = on_event(&state, &mut client, &mut outbox, event).await;
                // Whatever else the bus already holds joins the same write.
                for _ in 1..WRITE_BATCH {
                    if step.is_err() {
                        break;
                    }
                    match events.try_recv() {
                        Err(TryRecvError::Empty) => break,
                        Ok(event) => step = on_event(&state, &mut client, &mut outbox, Ok(event)).await,
                        Err(TryRecvError::Lagged(skipped)) => {
                            step = on_event(&state, &mut client, &mut outbox, Err(RecvError::Lagged(skipped))).await;
                        }
                        Err(TryRecvError::Closed) => {
                            step = on_event(&state, &mut client, &mut outbox, Err(RecvError::Closed)).await;
                        }
                    }
                }
                step
            }
            () = &mut timer => {
                let now = Instant::now();
                if now >= heard + SILENCE_LIMIT
                    || outbox.stalled_since.is_some_and(|since| now >= since + SEND_TIMEOUT)
                {
                    Err(Closed)
                } else {
                    if now >= next_ping {
                        outbox.pending.push_back(Message::Ping(Default::default()));
                        next_ping = now + PING_EVERY;
                    }
                    timer.as_mut().reset(next_deadline(next_ping, heard, outbox.stalled_since));
                    Ok(())
                }
            }
        };
        if step.is_err() {
            break;
        }
    }
    // The last error, ahead of whatever is pending; otherwise the pending frames. A client
    // whose socket is full still gets them if it reads before its stall's limit (a slow
    // client is told why it was cut off); one that does not read is cut off at that limit.
    if let Some(frame) = outbox.last.take() {
        outbox.pending.clear();
        outbox
            .pending
            .push_back(Message::Text(frame.to_string().into()));
    }
    let limit = outbox.stalled_since.map_or(SEND_TIMEOUT, |since| {
        (since + SEND_TIMEOUT).saturating_duration_since(Instant::now())
    });
    let _ = tokio::time::timeout(limit, poll_fn(|cx| outbox.write(&mut socket, cx))).await;
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.close()).await;
}

/// What the socket did: a write finished (or failed), or a frame came in.
enum SocketStep {
    Written(Result<(), Closed>),
    Frame(Option<Result<Message, axum::Error>>),
}

/// Drives the pending writes, then looks for the client's next frame: one branch for both,
/// since both need the socket.
fn poll_socket(
    socket: &mut WebSocket,
    outbox: &mut Outbox,
    cx: &mut Context<'_>,
) -> Poll<SocketStep> {
    if outbox.has_work()
        && let Poll::Ready(written) = outbox.write(socket, cx)
    {
        return Poll::Ready(SocketStep::Written(written));
    }
    socket.poll_next_unpin(cx).map(SocketStep::Frame)
}

/// Queues the frames one event (or the bus's failure) gives this client.
async fn on_event(
    state: &AppState,
    client: &mut Client,
    outbox: &mut Outbox,
    event: Result<Arc<ChangeEvent>, RecvError>,
) -> Result<(), Closed> {
    match event {
        Ok(event) => {
            if client.subscriptions.is_empty() {
                return Ok(());
            }
            let (frames, events) = Box::pin(event_frames(state, client, &event)).await;
            let pushed = frames
                .into_iter()
                .try_for_each(|frame| outbox.push_text(frame));
            if pushed.is_ok() {
                state.live.count_events(events);
            }
            pushed
        }
        // The bus moved on more than its capacity past this client.
        Err(RecvError::Lagged(_)) => {
            state.live.count_slow_consumer();
            outbox.close_with(error_frame(
                1,
                "The client fell behind the event stream; reconnect.",
                true,
                None,
            ));
            Err(Closed)
        }
        Err(RecvError::Closed) => Err(Closed),
    }
}

/// Answers one client frame with zero or more frames.
///
/// The error frames follow Parse Server's: a frame of the wrong shape (1), or an op that
/// needs a `connect` first or names an unknown subscription (2), is answered with
/// `reconnect: true` and no `requestId` (the SDKs reconnect and subscribe again); an error
/// that belongs to one subscription's query or rights carries its `requestId` and
/// `reconnect: false`.
async fn handle_frame(
    state: &AppState,
    client: &mut Client,
    text: &str,
    peer: IpAddr,
) -> Vec<Value> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return vec![error_frame(1, "Invalid JSON", true, None)];
    };
    let (op, message) = match frame::check(value) {
        Ok(checked) => checked,
        Err(message) => return vec![error_frame(1, &message, true, None)],
    };
    // A number by the frame's schema; Parlor keeps subscriptions by integer ids.
    let request_id = match message.get("requestId") {
        None => None,
        Some(id) => match id.as_i64() {
            Some(id) => Some(id),
            None => {
                return vec![error_frame(1, "requestId must be an integer", true, None)];
            }
        },
    };
    match (op, request_id) {
        (Op::Connect, _) => connect(state, client, &message, peer).await,
        (Op::Subscribe | Op::Update, Some(request_id)) => {
            subscribe(state, client, &message, request_id).await
        }
        (Op::Unsubscribe, Some(request_id)) => unsubscribe(client, request_id),
        // The schema requires a requestId for these.
        (_, None) => Vec::new(),
    }
}

/// `unsubscribe` (§11.3).
fn unsubscribe(client: &mut Client, request_id: i64) -> Vec<Value> {
    if client.auth.is_none() {
        return vec![error_frame(
            2,
            "Can not find this client, make sure you connect to server before unsubscribing",
            true,
            None,
        )];
    }
    match client.subscriptions.remove(&request_id) {
        Some(subscription) => vec![Value::Object(
            client.frame("unsubscribed", Some(subscription.request_id)),
        )],
        None => vec![error_frame(
            2,
            &format!(
                "Cannot find subscription with clientId {} subscriptionId {request_id}. \
                 Make sure you subscribe to live query server before unsubscribing.",
                client.id
            ),
            true,
            None,
        )],
    }
}

/// `subscribe`, or `update` of an existing subscription (§11.3).
async fn subscribe(
    state: &AppState,
    client: &mut Client,
    message: &Map<String, Value>,
    request_id: i64,
) -> Vec<Value> {
    let Some(connection_auth) = client.auth.clone() else {
        return vec![error_frame(2, NOT_CONNECTED, true, None)];
    };
    let replaces = client.subscriptions.contains_key(&request_id);
    if !replaces && client.subscriptions.len() >= state.live.config.max_subscriptions {
        return vec![error_frame(
            1,
            "Too many subscriptions on this connection",
            false,
            Some(request_id),
        )];
    }
    let query = message.get("query").cloned().unwrap_or(Value::Null);
    let (auth, expires_at) = match message.get("sessionToken").and_then(Value::as_str) {
        Some(token) => subscriber_auth(state, token, &connection_auth).await,
        None => (connection_auth, client.expires_at.clone()),
    };
    let mut query = query;
    if let Some(class_name) = query
        .get("className")
        .and_then(Value::as_str)
        .map(str::to_owned)
        && let Err(error) = state
            .operations
            .before_subscribe(&auth, &class_name, &mut query, request_id)
            .await
    {
        let error = error
            .to_parse_error()
            .unwrap_or_else(|| Error::forbidden("unauthorized: master key is required"));
        return vec![error_from(&error, Some(request_id))];
    }
    // After the app's beforeSubscribe, as Parse Server orders them: its refusal comes first.
    if let Some(class_name) = query.get("className").and_then(Value::as_str)
        && !state.live.serves(class_name)
    {
        return vec![error_frame(
            119,
            &format!("Live queries are not enabled for class {class_name}"),
            false,
            Some(request_id),
        )];
    }
    match Subscription::new(&state.operations, request_id, &query, auth, expires_at) {
        Ok(subscription) => {
            // Parse answers an `update` as a fresh subscription.
            client.subscriptions.insert(request_id, subscription);
            vec![Value::Object(client.frame("subscribed", Some(request_id)))]
        }
        Err(error) => vec![error_from(&error, Some(request_id))],
    }
}

fn error_from(error: &Error, request_id: Option<i64>) -> Value {
    error_frame(
        i64::from(error.code.as_i32()),
        &error.message,
        false,
        request_id,
    )
}

/// `connect`: the app id, the keys and the session token are checked like a REST request's.
async fn connect(
    state: &AppState,
    client: &mut Client,
    message: &Map<String, Value>,
    peer: IpAddr,
) -> Vec<Value> {
    let text = |field: &str| {
        message
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let credentials = Credentials {
        app_id: text("applicationId"),
        master_key: text("masterKey"),
        client_keys: ["javascriptKey", "clientKey", "restAPIKey", "windowsKey"]
            .iter()
            .filter_map(|field| text(field))
            .collect(),
        session_token: None,
        installation_id: text("installationId"),
        request_id: None,
        context: None,
    };
    let mut auth = match authenticate(state, &credentials, peer).await {
        Ok(auth) => auth,
        // Parse Server lets the client retry (`reconnect: true`), as for every connect error
        // but a `beforeConnect` refusal.
        Err(_) => return vec![error_frame(4, "Key in request is not valid", true, None)],
    };
    let mut expires_at = None;
    // An invalid token is not an error here: the client simply sees public objects (§11.5).
    if let Some(token) = text("sessionToken") {
        (auth, expires_at) = subscriber_auth(state, &token, &auth).await;
    }
    // The app's `beforeConnect` may refuse the client: an error frame with its code (141 for
    // a thrown string), and no reconnecting, as Parse Server answers.
    if let Err(error) = state
        .operations
        .before_connect(
            &auth,
            text("sessionToken").as_deref(),
            state.live.connection_count(),
        )
        .await
    {
        let error = error
            .to_parse_error()
            .unwrap_or_else(|| Error::forbidden("unauthorized: master key is required"));
        return vec![error_from(&error, None)];
    }
    // A reconnecting client's `connect` replaces its earlier one; its slot moves with it.
    client.slot = None;
    if let Some(user_id) = &auth.user_id {
        match state.live.admit(user_id) {
            Some(slot) => client.slot = Some(slot),
            None => {
                return vec![error_frame(
                    1,
                    "Too many live-query connections for this user",
                    false,
                    None,
                )];
            }
        }
    }
    client.installation_id = credentials.installation_id;
    client
        .subscriptions
        .registration()
        .set_user(auth.user_id.as_deref());
    client.auth = Some(auth);
    client.expires_at = expires_at;
    vec![Value::Object(client.frame("connected", None))]
}

/// The rights of a session token and its expiry, falling back to the connection's rights
/// without a user when the token does not resolve.
async fn subscriber_auth(
    state: &AppState,
    token: &str,
    connection: &Auth,
) -> (Auth, Option<String>) {
    let operations = &state.operations;
    let Ok(session) = operations.session_info(token).await else {
        return (anonymous(connection), None);
    };
    let roles = operations
        .roles_of(&session.user_id)
        .await
        .unwrap_or_default();
    let auth = Auth {
        user_id: Some(session.user_id),
        roles,
        session_token: Some(token.to_owned()),
        ..connection.clone()
    };
    (auth, session.expires_at)
}

/// `connection`'s rights without its user: what a client with a dead token keeps.
fn anonymous(connection: &Auth) -> Auth {
    Auth {
        user_id: None,
        roles: Vec::new(),
        session_token: None,
        ..connection.clone()
    }
}

/// Before an event is matched: drops subscriptions whose session ended, and rebuilds those
/// whose rights may have changed (a role change, a schema change). Returns the error frames
/// of the subscriptions it ended.
async fn keep_rights_current(
    state: &AppState,
    client: &mut Client,
    event: &ChangeEvent,
) -> Vec<Value> {
    let mut frames = Vec::new();
    let now = &event.at;
    // A deleted session (log-out, password change, revocation) or an expired one ends the
    // subscriptions that rely on it.
    let ended_token = match (&event.before, &event.after) {
        (Some(before), None) if event.class_name == "_Session" => before
            .fields
            .get("sessionToken")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    let session_ended = |auth: &Auth, expires_at: &Option<String>| {
        let revoked = ended_token.is_some() && auth.session_token == ended_token;
        let expired = expires_at.as_ref().is_some_and(|expiry| expiry <= now);
        revoked || expired
    };
    if let Some(auth) = &client.auth
        && auth.session_token.is_some()
        && session_ended(auth, &client.expires_at)
    {
        client.auth = Some(anonymous(auth));
        client.expires_at = None;
        client.slot = None;
        client.subscriptions.registration().set_user(None);
    }
    let ended: Vec<i64> = client
        .subscriptions
        .values()
        .filter(|subscription| {
            subscription.auth.session_token.is_some()
                && session_ended(&subscription.auth, &subscription.expires_at)
        })
        .map(|subscription| subscription.request_id)
        .collect();
    for request_id in ended {
        client.subscriptions.remove(&request_id);
        frames.push(error_frame(
            209,
            "Invalid session token",
            false,
            Some(request_id),
        ));
    }
    let roles_changed = event.class_name == "_Role";
    let mut stale = Vec::new();
    let schema_version = state.operations.schemas.version();
    for subscription in client.subscriptions.values() {
        // Some class's schema changed since the subscription was built (rare): rebuilding
        // picks up its class's new fields and permissions, if they are what changed.
        let schema_changed = subscription.schema_version != schema_version;
        if schema_changed || (roles_changed && subscription.auth.user_id.is_some()) {
            stale.push(subscription.request_id);
        }
    }
    for request_id in stale {
        let Some(subscription) = client.subscriptions.get(&request_id) else {
            continue;
        };
        let mut auth = subscription.auth.clone();
        if let Some(user_id) = &auth.user_id {
            auth.roles = state.operations.roles_of(user_id).await.unwrap_or_default();
        }
        match subscription.rebuild(&state.operations, auth) {
            Ok(rebuilt) => {
                client.subscriptions.insert(request_id, rebuilt);
            }
            Err(error) => {
                client.subscriptions.remove(&request_id);
                frames.push(error_from(&error, Some(request_id)));
            }
        }
    }
    frames
}

/// The frames one change gives this client, as JSON text, and how many of them are events
/// (the rest are errors of subscriptions the change ended).
async fn event_frames(
    state: &AppState,
    client: &mut Client,
    event: &Arc<ChangeEvent>,
) -> (Vec<String>, usize) {
    if client.subscriptions.is_empty() {
        return (Vec::new(), 0);
    }
    let mut frames: Vec<String> = keep_rights_current(state, client, event)
        .await
        .into_iter()
        .map(|frame| frame.to_string())
        .collect();
    let errors = frames.len();
    for subscription in client.subscriptions.values() {
        if subscription.schema.class_name != event.class_name {
            continue;
        }
        let Some(delivery) = delivery(state, subscription, event).await else {
            continue;
        };
        let mut object = Arc::clone(&delivery.object);
        let mut original = delivery.original.clone();
        let operations = &state.operations;
        if operations.has_trigger(Trigger::AfterLiveQueryEvent, &event.class_name) {
            // The app's afterLiveQueryEvent, per subscriber: it may change or hold back what
            // this subscriber gets.
            let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
            let changed = operations
                .after_live_event(
                    &subscription.auth,
                    &event.class_name,
                    delivery.op,
                    parse(&object),
                    original.as_deref().map(parse),
                )
                .await;
            let Some((changed_object, changed_original)) = changed else {
                continue;
            };
            object = Arc::from(changed_object.to_string());
            original = changed_original.map(|value| Arc::from(value.to_string()));
        }
        frames.push(event_frame(
            client,
            delivery.op,
            subscription.request_id,
            &object,
            original.as_deref(),
        ));
    }
    let events = frames.len() - errors;
    (frames, events)
}

/// What a change gives a subscription, worked out once per subscription shape and shared by
/// every subscriber of that shape.
async fn delivery(
    state: &AppState,
    subscription: &Subscription,
    event: &ChangeEvent,
) -> Option<Arc<Delivery>> {
    let known = event.deliveries.lock().ok().and_then(|deliveries| {
        deliveries
            .iter()
            .find(|(shape, _)| {
                Arc::ptr_eq(shape, &subscription.shape.key) || *shape == subscription.shape.key
            })
            .map(|(_, delivery)| delivery.clone())
    });
    if let Some(delivery) = known {
        return delivery;
    }
    let delivery = work_out_delivery(state, subscription, event)
        .await
        .map(Arc::new);
    if let Ok(mut deliveries) = event.deliveries.lock() {
        deliveries.push((Arc::clone(&subscription.shape.key), delivery.clone()));
    }
    delivery
}

async fn work_out_delivery(
    state: &AppState,
    subscription: &Subscription,
    event: &ChangeEvent,
) -> Option<Delivery> {
    let kind = subscription.event_for(event.before.as_ref(), event.after.as_ref())?;
    let (current, which) = match kind {
        EventKind::Delete => event.before.as_ref().map(|object| (object, State::Before)),
        _ => event.after.as_ref().map(|object| (object, State::After)),
    }?;
    // A leave because the subscriber lost the right to read the object: its new state
    // is none of the subscriber's business.
    let object = if kind == EventKind::Leave && !subscription.may_read(current) {
        Arc::from(
            json!({"__type": "Object", "className": event.class_name, "objectId": current.object_id})
                .to_string(),
        )
    } else {
        rendering(state, subscription, event, which).await
    };
    let original = match (kind, &event.before) {
        (EventKind::Update | EventKind::Enter | EventKind::Leave, Some(_)) => {
            Some(rendering(state, subscription, event, State::Before).await)
        }
        _ => None,
    };
    Some(Delivery {
        op: kind.op(),
        object,
        original,
    })
}

/// Which state of a changed object.
#[derive(Debug, Clone, Copy)]
enum State {
    Before,
    After,
}

/// The event frame's text, around renderings shared with other subscribers.
fn event_frame(
    client: &Client,
    op: &str,
    request_id: i64,
    object: &str,
    original: Option<&str>,
) -> String {
    let mut frame = String::with_capacity(96 + object.len() + original.map_or(0, str::len));
    frame.push_str("{\"op\":\"");
    frame.push_str(op);
    // The client id is hex, safe to embed as it is.
    frame.push_str("\",\"clientId\":\"");
    frame.push_str(&client.id);
    frame.push('"');
    if let Some(installation_id) = &client.installation_id {
        frame.push_str(",\"installationId\":");
        frame.push_str(&Value::from(installation_id.as_str()).to_string());
    }
    frame.push_str(",\"requestId\":");
    frame.push_str(&request_id.to_string());
    frame.push_str(",\"object\":");
    frame.push_str(object);
    if let Some(original) = original {
        frame.push_str(",\"original\":");
        frame.push_str(original);
    }
    frame.push('}');
    frame
}

/// A state of the event's object as this subscriber may see it (its protectedFields and
/// server-only fields removed, its `keys` kept), rendered once per distinct set of rights.
async fn rendering(
    state: &AppState,
    subscription: &Subscription,
    event: &ChangeEvent,
    which: State,
) -> Arc<str> {
    let auth = &subscription.auth;
    let key = &subscription.shape.render_keys[match which {
        State::Before => 0,
        State::After => 1,
    }];
    if let Some(text) = event
        .renderings
        .lock()
        .ok()
        .and_then(|renderings| renderings.get(key.as_str()).cloned())
    {
        return text;
    }
    let object = match which {
        State::Before => event.before.clone(),
        State::After => event.after.clone(),
    }
    .unwrap_or_default();
    let mut json = state
        .operations
        .render_one(auth, &subscription.schema, object)
        .await
        .unwrap_or_default();
    json.insert("__type".into(), "Object".into());
    json.insert(
        "className".into(),
        subscription.schema.class_name.clone().into(),
    );
    project(&mut json, subscription.shape.keys.as_deref());
    let text: Arc<str> = Arc::from(Value::Object(json).to_string());
    if let Ok(mut renderings) = event.renderings.lock() {
        renderings.insert(key.clone(), Arc::clone(&text));
    }
    text
}
