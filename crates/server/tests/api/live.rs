//! LiveQuery over a real WebSocket (§11): the protocol frames, the events of §11.4, and the
//! per-subscriber access check.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{APP_ID, TestServer};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &TestServer) -> Socket {
    let url = format!("{}/parse", server.base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
}

/// The next text frame, within 5 s.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time");
        if let Some(Ok(Message::Text(text))) = message {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

/// No text frame arrives within a short while.
async fn quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        panic!("unexpected frame: {text}");
    }
}

async fn sign_up(server: &TestServer, name: &str) -> (String, String) {
    let reply = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": name, "password": "pw"})),
        )
        .await;
    (
        reply.body["objectId"].as_str().unwrap().to_owned(),
        reply.body["sessionToken"].as_str().unwrap().to_owned(),
    )
}

async fn connected(server: &TestServer, token: Option<&str>) -> Socket {
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

/// create / update / leave / enter / delete for a subscription on `room = r1`, with `original`
/// on updates, nothing for objects that never match, and nothing after `unsubscribe`.
#[tokio::test]
async fn events_follow_the_query() {
    let server = TestServer::new().await;
    server
        .master(
            Method::POST,
            "/classes/Note",
            Some(json!({"room": "setup"})),
        )
        .await;
    let mut socket = connected(&server, None).await;
    send(&mut socket, json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {"room": "r1"}}})).await;
    let subscribed = next(&mut socket).await;
    assert_eq!(
        (subscribed["op"].clone(), subscribed["requestId"].clone()),
        (json!("subscribed"), json!(1))
    );

    server
        .master(
            Method::POST,
            "/classes/Note",
            Some(json!({"room": "r2", "text": "elsewhere"})),
        )
        .await;
    let created = server
        .master(
            Method::POST,
            "/classes/Note",
            Some(json!({"room": "r1", "text": "hello"})),
        )
        .await;
    let id = created.body["objectId"].as_str().unwrap().to_owned();
    let event = next(&mut socket).await;
    assert_eq!(event["op"], "create");
    assert_eq!(event["requestId"], 1);
    assert_eq!(event["object"]["__type"], "Object");
    assert_eq!(event["object"]["className"], "Note");
    assert_eq!(event["object"]["objectId"], id.as_str());
    assert_eq!(event["object"]["text"], "hello");
    assert!(event.get("original").is_none());

    let path = format!("/classes/Note/{id}");
    server
        .master(Method::PUT, &path, Some(json!({"text": "edited"})))
        .await;
    let event = next(&mut socket).await;
    assert_eq!(
        (
            event["op"].clone(),
            event["object"]["text"].clone(),
            event["original"]["text"].clone()
        ),
        (json!("update"), json!("edited"), json!("hello"))
    );
    server
        .master(Method::PUT, &path, Some(json!({"room": "r2"})))
        .await;
    assert_eq!(next(&mut socket).await["op"], "leave");
    server
        .master(Method::PUT, &path, Some(json!({"text": "unseen"})))
        .await;
    quiet(&mut socket).await;
    server
        .master(Method::PUT, &path, Some(json!({"room": "r1"})))
        .await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["original"]["room"].clone()),
        (json!("enter"), json!("r2"))
    );
    server.master(Method::DELETE, &path, None).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["object"]["objectId"].clone()),
        (json!("delete"), json!(id))
    );

    send(&mut socket, json!({"op": "unsubscribe", "requestId": 1})).await;
    assert_eq!(next(&mut socket).await["op"], "unsubscribed");
    server
        .master(Method::POST, "/classes/Note", Some(json!({"room": "r1"})))
        .await;
    quiet(&mut socket).await;
}

/// A subscriber never receives an object it could not read by REST; an ACL change that grants
/// it read gives `enter`. `keys` limits the fields sent, and server-only fields never appear.
#[tokio::test]
async fn events_respect_each_subscribers_rights() {
    let server = TestServer::new().await;
    let (alice, alice_token) = sign_up(&server, "alice").await;
    let (bob, _) = sign_up(&server, "bob").await;
    server
        .master(
            Method::POST,
            "/classes/Note",
            Some(json!({"room": "setup"})),
        )
        .await;
    let mut socket = connected(&server, Some(&alice_token)).await;
    send(&mut socket, json!({"op": "subscribe", "requestId": 7, "query": {"className": "Note", "where": {"room": "r"}, "keys": ["text"]}})).await;
    assert_eq!(next(&mut socket).await["op"], "subscribed");

    let hidden = server
        .master(Method::POST, "/classes/Note", Some(json!({"room": "r", "text": "for bob", "other": 1, "ACL": {bob.as_str(): {"read": true}}})))
        .await;
    quiet(&mut socket).await;
    let id = hidden.body["objectId"].as_str().unwrap();
    let acl = json!({bob.as_str(): {"read": true}, alice.as_str(): {"read": true}});
    server
        .master(
            Method::PUT,
            &format!("/classes/Note/{id}"),
            Some(json!({"ACL": acl})),
        )
        .await;
    let event = next(&mut socket).await;
    assert_eq!(event["op"], "enter");
    assert_eq!(event["object"]["text"], "for bob");
    assert!(
        event["object"].get("other").is_none(),
        "keys limits the fields: {event}"
    );

    // _User objects carry no secrets in events.
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 8, "query": {"className": "_User", "where": {}}}),
    )
    .await;
    assert_eq!(next(&mut socket).await["op"], "subscribed");
    server
        .master(
            Method::PUT,
            &format!("/users/{alice}"),
            Some(json!({"displayName": "Alice"})),
        )
        .await;
    let event = next(&mut socket).await;
    let text = event.to_string();
    assert_eq!(event["op"], "update", "{text}");
    assert!(
        !text.contains("_hashed_password") && !text.contains("argon2"),
        "{text}"
    );
}

/// Protocol errors: subscribing before `connect` (2), an unknown op (3), a wrong app id (4),
/// a query live queries cannot evaluate (102), a CLP that forbids the class (119).
#[tokio::test]
async fn protocol_errors() {
    let server = TestServer::new().await;
    let mut socket = open(&server).await;
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {}}}),
    )
    .await;
    let error = next(&mut socket).await;
    assert_eq!(
        (error["op"].clone(), error["code"].clone()),
        (json!("error"), json!(2))
    );
    send(&mut socket, json!({"op": "dance"})).await;
    assert_eq!(next(&mut socket).await["code"], 3);
    send(
        &mut socket,
        json!({"op": "connect", "applicationId": "wrong"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["code"], 4);

    let mut socket = connected(&server, None).await;
    let subquery = json!({"op": "subscribe", "requestId": 2, "query": {"className": "Note", "where": {"x": {"$inQuery": {"className": "Other", "where": {}}}}}});
    send(&mut socket, subquery).await;
    let error = next(&mut socket).await;
    assert_eq!(
        (error["code"].clone(), error["requestId"].clone()),
        (json!(102), json!(2))
    );
    // The chat template's Message class needs a logged-in user.
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 3, "query": {"className": "Message", "where": {}}}),
    )
    .await;
    let error = next(&mut socket).await;
    assert_eq!(
        (error["code"].clone(), error["requestId"].clone()),
        (json!(101), json!(3))
    );
}
