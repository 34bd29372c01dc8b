//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, as `graphql-ws` clients
//! speak it; the older `subscriptions-transport-ws` is accepted too).
//!
//! The `connection_init` payload carries the same credentials as REST headers
//! (`X-Parse-Application-Id`, `X-Parse-Session-Token`, keys — at its root or under
//! `headers`, in any letter case) and is checked by the same code; a refused init closes the
//! socket with 4403. Every answer's errors are mapped to Parse codes as over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage};
use async_graphql::{Data, Executor, Request as GqlRequest, Response as GqlResponse};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::Value;

use super::auth;
use super::envelope;
use super::graphql::map_error;
use super::state::AppState;
use crate::graphql::Caller;

/// An executor that gives every answer its Parse error codes.
#[derive(Clone)]
struct Mapped(async_graphql::dynamic::Schema);

fn mapped(mut response: GqlResponse) -> GqlResponse {
    for error in &mut response.errors {
        map_error(error);
    }
    response
}

impl Executor for Mapped {
    async fn execute(&self, request: GqlRequest) -> GqlResponse {
        mapped(self.0.execute(request).await)
    }

    fn execute_stream(
        &self,
        request: GqlRequest,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, GqlResponse> {
        self.0
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(mapped)
            .boxed()
    }
}

/// The credentials of a `connection_init` payload, as request headers.
fn payload_headers(payload: &Value) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let sources = [Some(payload), payload.get("headers")];
    for source in sources.into_iter().flatten() {
        for (name, value) in source.as_object().into_iter().flatten() {
            let (Some(text), Ok(name)) = (
                value.as_str(),
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            ) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_str(text) {
                headers.insert(name, value);
            }
        }
    }
    headers
}

/// Accepts the upgrade and serves the socket.
pub fn serve(state: AppState, peer: SocketAddr, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["graphql-transport-ws", "graphql-ws"])
        .on_upgrade(move |socket| run(state, peer, socket))
}

async fn run(state: AppState, peer: SocketAddr, socket: WebSocket) {
    let Some(graphql) = state.graphql.clone() else {
        return;
    };
    let protocol = match socket
        .protocol()
        .and_then(|protocol| protocol.to_str().ok())
    {
        Some("graphql-ws") => WebSocketProtocols::SubscriptionsTransportWS,
        _ => WebSocketProtocols::GraphQLWS,
    };
    let Ok(built) = graphql.schema().await else {
        return;
    };
    let (mut sink, stream) = socket.split();
    let incoming = stream
        .take_while(|message| {
            futures::future::ready(matches!(
                message,
                Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_))
            ))
        })
        .filter_map(|message| async move {
            match message {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            }
        });
    let init_state = state.clone();
    let answers = GqlWebSocket::new(Mapped(built.schema.clone()), incoming, protocol)
        .keepalive_timeout(Duration::from_secs(60))
        .on_connection_init(move |payload| async move {
            let headers = payload_headers(&payload);
            let (_, credentials) = envelope::open(
                Method::POST,
                String::new(),
                None,
                &headers,
                Value::Null,
                peer.ip(),
            )
            .map_err(|_| async_graphql::Error::new("Forbidden"))?;
            let auth = auth::authenticate(&init_state, &credentials, peer.ip())
                .await
                .map_err(|error| {
                    let (_, body) = error.status_and_body();
                    async_graphql::Error::new(
                        body.get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("Forbidden")
                            .to_owned(),
                    )
                })?;
            let mut data = Data::default();
            data.insert(Caller::new(auth, peer.ip(), false));
            Ok(data)
        });
    futures::pin_mut!(answers);
    while let Some(message) = answers.next().await {
        let frame = match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(axum::extract::ws::CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        let closing = matches!(frame, Message::Close(_));
        if sink.send(frame).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
