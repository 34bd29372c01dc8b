//! GraphQL subscriptions over a real WebSocket (`graphql-transport-ws`): class events with the
//! subscriber's own rights, the end of a subscription when its session ends, and
//! `messageStream`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::live::Socket;
use crate::common::*;

/// A `graphql-transport-ws` connection, acknowledged, with these init credentials.
async fn connect(server: &TestServer, token: Option<&str>) -> Socket {
    let url = format!("{}/graphql", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "graphql-transport-ws"
    );
    let mut payload = json!({"X-Parse-Application-Id": APP_ID});
    if let Some(token) = token {
        payload["x-parse-session-token"] = json!(token);
    }
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    socket
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(WsMessage::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message (pings answered), within 5 s.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time");
        match message {
            Some(Ok(WsMessage::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "ping" {
                    send(socket, json!({"type": "pong"})).await;
                    continue;
                }
                return frame;
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return json!({"closed": frame.map(|f| u16::from(f.code))});
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(WsMessage::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(400), socket.next()).await
    {
        panic!("unexpected frame: {text}");
    }
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: Value) {
    send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": {"query": query, "variables": variables}}),
    )
    .await;
}

const MESSAGES: &str = r#"subscription($s: ID!) { message(where: {session: {have: {objectId: {equalTo: $s}}}}) {
    event node { content sender { username } } original { content } } }"#;

/// Participants of a session see its messages come and change; a stranger sees nothing; a
/// bad init is refused; logging out ends the subscription with 209.
#[tokio::test]
async fn class_subscriptions_follow_the_subscribers_rights() {
    let server = TestServer::new().await;
    let owner = server.sign_up("olga").await;
    let stranger = server.sign_up("sam").await;
    let session = server
        .as_user(
            &owner,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"title": "T", "participants": []})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    let session_id = session.body["objectId"].as_str().unwrap().to_owned();

    let mut member = connect(&server, Some(&owner.token)).await;
    subscribe(&mut member, "1", MESSAGES, json!({"s": session_id})).await;
    let mut outsider = connect(&server, Some(&stranger.token)).await;
    subscribe(&mut outsider, "1", MESSAGES, json!({"s": session_id})).await;
    // Subscriptions are registered when the first event is polled: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let created = server
        .as_user(
            &owner,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer("ChatSession", &session_id), "content": "hello"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let message_id = created.body["objectId"].as_str().unwrap().to_owned();
    let frame = next(&mut member).await;
    assert_eq!(frame["type"], "next", "{frame}");
    assert_eq!(frame["id"], "1");
    assert_eq!(
        frame["payload"]["data"]["message"],
        json!({"event": "CREATE", "node": {"content": "hello", "sender": {"username": "olga"}}, "original": null}),
        "{frame}"
    );
    assert_eq!(
        frame["payload"]["data"]["message"],
        json!({"event": "CREATE", "node": {"content": "hello", "sender": {"username": "olga"}}, "original": null})
    );
    quiet(&mut outsider).await;

    let edited = server
        .as_user(
            &owner,
            Method::PUT,
            &format!("/classes/Message/{message_id}"),
            Some(json!({"content": "edited"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let frame = next(&mut member).await;
    assert_eq!(frame["payload"]["data"]["message"]["event"], "UPDATE");
    assert_eq!(
        frame["payload"]["data"]["message"]["node"]["content"],
        "edited"
    );
    assert_eq!(
        frame["payload"]["data"]["message"]["original"]["content"],
        "hello"
    );

    // Log-out ends the subscription that relies on the session.
    let reply = server
        .as_user(&owner, Method::POST, "/logout", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    server
        .create("Message", json!({"session": pointer("ChatSession", &session_id), "content": "after", "sender": pointer("_User", &owner.id)}))
        .await;
    let frame = next(&mut member).await;
    assert_eq!(frame["type"], "next", "{frame}");
    assert_eq!(
        frame["payload"]["errors"][0]["extensions"]["code"], 209,
        "{frame}"
    );
    quiet(&mut outsider).await;

    // An init without the application id is refused.
    let url = format!("{}/graphql", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let frame = next(&mut socket).await;
    assert!(
        frame["closed"].is_number(),
        "no ack, the socket closes: {frame}"
    );
}

/// Subscribing to what the parser cannot follow live (a subquery) is refused; the stream of a
/// finished reply is its text, then `done`.
#[tokio::test]
async fn unsupported_subscriptions_and_message_streams() {
    let server = TestServer::new().await;
    let owner = server.sign_up("olga").await;
    let session = server
        .as_user(
            &owner,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"title": "T", "participants": []})),
        )
        .await;
    let session_id = session.body["objectId"].as_str().unwrap().to_owned();
    let mut socket = connect(&server, Some(&owner.token)).await;
    subscribe(
        &mut socket,
        "q",
        "subscription { chatSession(where: {owner: {have: {username: {equalTo: \"olga\"}}}}) { event } }",
        json!({}),
    )
    .await;
    // A failure of the subscription itself: one result with the error, then the end.
    let frame = next(&mut socket).await;
    assert_eq!(frame["type"], "next", "{frame}");
    assert_eq!(
        frame["payload"]["errors"][0]["extensions"]["code"], 102,
        "{frame}"
    );
    assert_eq!(next(&mut socket).await["type"], "complete");

    let message = server
        .as_user(
            &owner,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer("ChatSession", &session_id), "content": "a finished reply"})),
        )
        .await;
    let message_id = message.body["objectId"].as_str().unwrap().to_owned();
    subscribe(
        &mut socket,
        "m",
        "subscription($id: ID!) { messageStream(id: $id) { offset text done status } }",
        json!({"id": message_id}),
    )
    .await;
    let frame = next(&mut socket).await;
    assert_eq!(
        frame["payload"]["data"]["messageStream"],
        json!({"offset": 0, "text": "a finished reply", "done": false, "status": null})
    );
    let frame = next(&mut socket).await;
    assert_eq!(frame["payload"]["data"]["messageStream"]["done"], true);
    assert_eq!(
        frame["payload"]["data"]["messageStream"]["status"],
        "complete"
    );
    assert_eq!(next(&mut socket).await["type"], "complete");

    // Someone who cannot read the message gets 101, as from REST.
    let stranger = server.sign_up("sam").await;
    let mut other = connect(&server, Some(&stranger.token)).await;
    subscribe(
        &mut other,
        "m",
        "subscription($id: ID!) { messageStream(id: $id) { text } }",
        json!({"id": message_id}),
    )
    .await;
    let frame = next(&mut other).await;
    assert_eq!(
        frame["payload"]["errors"][0]["extensions"]["code"], 101,
        "{frame}"
    );
}
