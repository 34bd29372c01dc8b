//! One LiveQuery connection: the client's frames in, events out (§11.2–§11.5).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use parlor_core::Error;
use rand::RngExt;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::subscription::{EventKind, Subscription, project};
use crate::http::AppState;
use crate::http::auth::authenticate;
use crate::http::envelope::Credentials;
use crate::operation::Auth;
use crate::operation::events::ChangeEvent;

/// How often the server pings; a client that stops answering is dropped by the transport.
const PING_EVERY: Duration = Duration::from_secs(10);

/// At most this many subscriptions per connection.
const MAX_SUBSCRIPTIONS: usize = 1000;

struct Client {
    id: String,
    installation_id: Option<String>,
    /// `None` until `connect`.
    auth: Option<Auth>,
    subscriptions: HashMap<i64, Subscription>,
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

/// Serves one upgraded socket until the client leaves or the server stops.
pub async fn serve_socket(mut socket: WebSocket, state: AppState, peer: IpAddr) {
    let mut events = state.operations.events.subscribe();
    let id: String = {
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    };
    let mut client = Client {
        id,
        installation_id: None,
        auth: None,
        subscriptions: HashMap::new(),
    };
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        if send(&mut socket, error_frame(1, "binary frames are not supported", true, None)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                for frame in handle_frame(&state, &mut client, &text, peer).await {
                    if send(&mut socket, frame).await.is_err() {
                        return;
                    }
                }
            }
            event = events.recv() => {
                match event {
                    Ok(event) => {
                        for frame in event_frames(&state, &client, &event).await {
                            if send(&mut socket, frame).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Too slow to keep up: tell the client and drop it rather than buffer forever.
                    Err(RecvError::Lagged(_)) => {
                        let _ = send(&mut socket, error_frame(1, "The client fell behind the event stream; reconnect.", true, None)).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn send(socket: &mut WebSocket, frame: Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(frame.to_string().into())).await
}

/// Answers one client frame with zero or more frames.
async fn handle_frame(
    state: &AppState,
    client: &mut Client,
    text: &str,
    peer: IpAddr,
) -> Vec<Value> {
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
        return vec![error_frame(1, "Invalid JSON", true, None)];
    };
    let request_id = message.get("requestId").and_then(Value::as_i64);
    let op = message
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match op {
        "connect" => connect(state, client, &message, peer).await,
        "subscribe" | "update" => {
            let Some(connection_auth) = client.auth.clone() else {
                return vec![error_frame(
                    2,
                    "Can not find this client, make sure you connect to server before subscribing",
                    true,
                    request_id,
                )];
            };
            let Some(request_id) = request_id else {
                return vec![error_frame(1, "requestId must be a number", true, None)];
            };
            if op == "subscribe" && client.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                return vec![error_frame(
                    1,
                    "Too many subscriptions on this connection",
                    false,
                    Some(request_id),
                )];
            }
            let auth = match message.get("sessionToken").and_then(Value::as_str) {
                Some(token) => subscriber_auth(state, token, &connection_auth).await,
                None => connection_auth,
            };
            let query = message.get("query").cloned().unwrap_or(Value::Null);
            match Subscription::new(&state.operations, request_id, &query, auth) {
                Ok(subscription) => {
                    client.subscriptions.insert(request_id, subscription);
                    vec![Value::Object(client.frame("subscribed", Some(request_id)))]
                }
                Err(error) => vec![error_from(&error, Some(request_id))],
            }
        }
        "unsubscribe" => {
            if client.auth.is_none() {
                return vec![error_frame(
                    2,
                    "Can not find this client, make sure you connect to server before subscribing",
                    true,
                    request_id,
                )];
            }
            match request_id.and_then(|id| client.subscriptions.remove(&id)) {
                Some(subscription) => vec![Value::Object(
                    client.frame("unsubscribed", Some(subscription.request_id)),
                )],
                None => vec![error_frame(
                    2,
                    "Cannot find subscription with this requestId",
                    true,
                    request_id,
                )],
            }
        }
        _ => vec![error_frame(
            3,
            &format!("Unknown op: {op}"),
            true,
            request_id,
        )],
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
    };
    let mut auth = match authenticate(state, &credentials, peer).await {
        Ok(auth) => auth,
        Err(_) => return vec![error_frame(4, "Key in request is not valid", false, None)],
    };
    // An invalid token is not an error here: the client simply sees public objects (§11.5).
    if let Some(token) = text("sessionToken") {
        auth = subscriber_auth(state, &token, &auth).await;
    }
    client.installation_id = credentials.installation_id;
    client.auth = Some(auth);
    vec![Value::Object(client.frame("connected", None))]
}

/// The rights of a session token, falling back to the connection's when it does not resolve.
async fn subscriber_auth(state: &AppState, token: &str, connection: &Auth) -> Auth {
    let operations = &state.operations;
    let Ok(user_id) = operations.resolve_session(token).await else {
        return Auth {
            user_id: None,
            roles: Vec::new(),
            session_token: None,
            ..connection.clone()
        };
    };
    let roles = operations.roles_of(&user_id).await.unwrap_or_default();
    Auth {
        user_id: Some(user_id),
        roles,
        session_token: Some(token.to_owned()),
        ..connection.clone()
    }
}

/// The frames one change gives this client.
async fn event_frames(state: &AppState, client: &Client, event: &Arc<ChangeEvent>) -> Vec<Value> {
    let mut frames = Vec::new();
    for subscription in client.subscriptions.values() {
        if subscription.schema.class_name != event.class_name {
            continue;
        }
        let Some(kind) = subscription.event_for(event.before.as_ref(), event.after.as_ref()) else {
            continue;
        };
        let render = |object: &parlor_core::object::Object| {
            let object = object.clone();
            async move {
                let mut json = state
                    .operations
                    .render_one(&subscription.auth, &subscription.schema, object)
                    .await
                    .unwrap_or_default();
                json.insert("__type".into(), "Object".into());
                json.insert(
                    "className".into(),
                    subscription.schema.class_name.clone().into(),
                );
                project(&mut json, subscription.keys.as_deref());
                Value::Object(json)
            }
        };
        let mut frame = client.frame(kind.op(), Some(subscription.request_id));
        let current = match kind {
            EventKind::Delete => event.before.as_ref(),
            _ => event.after.as_ref(),
        };
        if let Some(current) = current {
            frame.insert("object".into(), render(current).await);
        }
        if matches!(
            kind,
            EventKind::Update | EventKind::Enter | EventKind::Leave
        ) && let Some(before) = &event.before
        {
            frame.insert("original".into(), render(before).await);
        }
        frames.push(Value::Object(frame));
    }
    frames
}
