//! `GET {mount}/messages/:objectId/stream`: a persona reply's text as Server-Sent Events.
//!
//! Events: `delta` (`{offset, text}`, with `id:` the offset where the text ends, in bytes of
//! UTF-8) as the text grows, then one `done` (`{status, error?}`). A client joining late gets
//! the text so far in its first delta; one that reconnects with `Last-Event-ID` (or
//! `?lastEventId=`) gets only what follows. A finished reply (or one generated elsewhere)
//! is its stored content as one delta, then `done`.
//!
//! Authorised like any request (application id and session token headers) or, for browsers'
//! `EventSource`, which cannot send headers, by `?sessionToken=` and `?_ApplicationId=`. The
//! caller must be able to read the message through the ordinary read path. The reply belongs
//! to the server: closing this connection only stops the events.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use super::auth;
use super::envelope;
use super::error::ApiError;
use super::routes::Route;
use super::state::AppState;
use crate::ai::generation::StreamView;
use crate::operation::events::ChangeEvent;
use crate::operation::{Auth, GetRequest};

/// The message id when `request` asks for a reply's stream.
pub fn message_id(state: &AppState, request: &Request) -> Option<String> {
    if request.method() != Method::GET {
        return None;
    }
    let rest = request
        .uri()
        .path()
        .strip_prefix(state.config.mount_path.as_str())?;
    match Route::resolve(&Method::GET, rest)? {
        Route::MessageStream { object_id } => Some(object_id),
        _ => None,
    }
}

/// Answers the stream request (errors in Parse's JSON shape, before any event).
pub async fn handle(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    object_id: String,
) -> Response {
    match open(state, peer, request, object_id).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn open(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    object_id: String,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
    let query_value = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    let (_, mut credentials) = envelope::open(
        Method::GET,
        parts.uri.path().to_owned(),
        None,
        &parts.headers,
        Value::Null,
        peer.ip(),
    )?;
    if credentials.session_token.is_none() {
        credentials.session_token = query_value("sessionToken");
    }
    if credentials.app_id.is_none() {
        credentials.app_id = query_value("_ApplicationId").or_else(|| query_value("appId"));
    }
    let auth: Auth = auth::authenticate(state, &credentials, peer.ip()).await?;
    let operations = &state.operations;
    // The read path decides: a caller who cannot GET the message gets no stream either.
    operations
        .get(&auth, "Message", &object_id, GetRequest::default())
        .await?;
    let offset = parts
        .headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_value("lastEventId"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let running = operations
        .generation
        .as_ref()
        .and_then(|generator| generator.running(&object_id));
    let body = match running {
        Some(running) => Body::from_stream(live_events(running.view.subscribe(), offset)),
        None => {
            // Listening before reading, so no change between the two is missed. The reply
            // may also have finished since the check above, or run on another server.
            let events = operations.events.subscribe();
            let message = operations
                .get(&auth, "Message", &object_id, GetRequest::default())
                .await?;
            let state = Followed {
                text: message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                status: message
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("complete")
                    .to_owned(),
                error: message
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            Body::from_stream(followed_events(events, object_id, state, offset))
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the events.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The events of a running reply from `offset`: each change of its text, then `done`.
fn live_events(
    view: watch::Receiver<StreamView>,
    offset: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(Some((view, offset)), |state| async move {
        let (mut view, mut offset) = state?;
        loop {
            // The borrow ends before any await: the generator must never wait for us.
            let (chunk, end) = {
                let current = view.borrow_and_update();
                let start = floor_boundary(&current.text, offset);
                let chunk =
                    (start < current.text.len()).then(|| (start, current.text[start..].to_owned()));
                (chunk, current.end.clone())
            };
            if let Some((start, text)) = chunk {
                offset = start + text.len();
                let event = delta_event(start, &text);
                return Some((Ok(Bytes::from(event)), Some((view, offset))));
            }
            if let Some(end) = end {
                let event = done_event(end.status.as_str(), end.error.as_deref());
                return Some((Ok(Bytes::from(event)), None));
            }
            if view.changed().await.is_err() {
                // The reply task is gone without an end (it cannot be, short of a panic).
                let event = done_event("failed", Some("the reply stopped unexpectedly"));
                return Some((Ok(Bytes::from(event)), None));
            }
        }
    })
}

/// A reply as its message shows it.
struct Followed {
    text: String,
    status: String,
    error: Option<String>,
}

/// The SSE events of a reply that runs on another server (or ended): its text as the
/// message's updates bring it (at the pace that server writes them), until its status is no
/// longer `streaming`.
fn followed_events(
    events: broadcast::Receiver<Arc<ChangeEvent>>,
    message_id: String,
    state: Followed,
    offset: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures::stream::unfold(
        Some((events, message_id, state, offset)),
        |progress| async move {
            let (mut events, message_id, mut state, mut offset) = progress?;
            loop {
                let start = floor_boundary(&state.text, offset);
                if start < state.text.len() {
                    let event = delta_event(start, &state.text[start..]);
                    offset = state.text.len();
                    return Some((
                        Ok(Bytes::from(event)),
                        Some((events, message_id, state, offset)),
                    ));
                }
                if state.status != "streaming" {
                    let event = done_event(&state.status, state.error.as_deref());
                    return Some((Ok(Bytes::from(event)), None));
                }
                let change = match events.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                let Some(after) = &change.after else {
                    continue;
                };
                if change.class_name != "Message" || after.object_id != message_id {
                    continue;
                }
                let field = |name: &str| after.fields.get(name).and_then(Value::as_str);
                state.text = field("content").unwrap_or_default().to_owned();
                state.status = field("status").unwrap_or("complete").to_owned();
                state.error = field("error").map(str::to_owned);
            }
        },
    )
}

/// `offset` moved back onto a character boundary of `text` (and into it).
fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn delta_event(offset: usize, text: &str) -> String {
    let data = json!({"offset": offset, "text": text});
    format!(
        "id: {}\nevent: delta\ndata: {data}\n\n",
        offset + text.len()
    )
}

fn done_event(status: &str, error: Option<&str>) -> String {
    let mut data = json!({"status": status});
    if let Some(error) = error {
        data["error"] = json!(error);
    }
    format!("event: done\ndata: {data}\n\n")
}
