//! `GET {mount}/messages/:objectId/stream`: a persona reply's text as Server-Sent Events.
//!
//! Events: `delta` (`{offset, text}`, with `id:` the offset where the text ends, in bytes of
//! UTF-8) as the text grows, then one `done` (`{status, error?}`). A client joining late gets
//! the text so far in its first delta; one that reconnects with `Last-Event-ID` (or
//! `?lastEventId=`) gets only what follows. A finished reply (or one generated elsewhere)
//! is its stored content as one delta, then `done`.
//!
//! The events come from [`crate::ai::reply_stream`], which GraphQL's `messageStream` shares.
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
use futures::StreamExt;
use serde_json::{Value, json};

use super::auth;
use super::envelope;
use super::error::ApiError;
use super::routes::Route;
use super::state::AppState;
use crate::ai::reply_stream::{ReplyEvent, reply_events};
use crate::operation::Auth;

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
    let offset = parts
        .headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_value("lastEventId"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let events = reply_events(&state.operations, &auth, &object_id, offset).await?;
    let body = Body::from_stream(events.map(|event| {
        Ok::<_, Infallible>(Bytes::from(match event {
            ReplyEvent::Delta { offset, text } => delta_event(offset, &text),
            ReplyEvent::Done { status, error } => done_event(&status, error.as_deref()),
        }))
    }));
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
