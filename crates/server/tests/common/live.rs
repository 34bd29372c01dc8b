//! A LiveQuery client over a real WebSocket: connect, send frames, read the next text frame.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{APP_ID, TestServer};

/// A LiveQuery WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to the server's LiveQuery endpoint, not yet connected.
pub async fn open(server: &TestServer) -> Socket {
    let url = format!("{}/parse", server.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

/// Sends one JSON frame.
pub async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON text frame, within 5 s; panics when the socket ends.
pub async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).expect("JSON frame");
            }
            Some(Ok(_)) => {}
            other => panic!("live-query socket ended: {other:?}"),
        }
    }
}

/// No text frame arrives within a short while.
pub async fn quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        panic!("unexpected frame: {text}");
    }
}

/// A socket that sent `connect` (with the session token, if any) and got `connected`.
pub async fn connected(server: &TestServer, token: Option<&str>) -> Socket {
    let mut socket = open(server).await;
    let mut connect = json!({"op": "connect", "applicationId": APP_ID});
    if let Some(token) = token {
        connect["sessionToken"] = json!(token);
    }
    send(&mut socket, connect).await;
    let frame = next(&mut socket).await;
    assert_eq!(frame["op"], "connected", "{frame}");
    assert!(frame["clientId"].is_string());
    socket
}

/// Sends a `subscribe` frame and answers the frame that comes back.
pub async fn subscribe(socket: &mut Socket, request_id: i64, query: Value) -> Value {
    send(
        socket,
        json!({"op": "subscribe", "requestId": request_id, "query": query}),
    )
    .await;
    next(socket).await
}

/// Subscribes to every object of `class_name`; panics unless the answer is `subscribed`.
pub async fn subscribe_all(socket: &mut Socket, request_id: i64, class_name: &str) {
    let frame = subscribe(
        socket,
        request_id,
        json!({"className": class_name, "where": {}}),
    )
    .await;
    assert_eq!(frame["op"], "subscribed", "{frame}");
}
