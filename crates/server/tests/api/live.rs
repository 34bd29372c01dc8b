//! LiveQuery over a real WebSocket (§11): the protocol frames, the events of §11.4, and the
//! per-subscriber access check.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use parlor_server::config::ServeOptions;

use crate::common::live::{connected, next, open, quiet, send, subscribe};
use crate::common::{APP_ID, TestServer, User};

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
    let User {
        id: alice,
        token: alice_token,
    } = server.sign_up("alice").await;
    let User { id: bob, .. } = server.sign_up("bob").await;
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

/// The fields of an error frame that say what to do: code, message, reconnect, requestId.
fn error_fields(frame: &Value) -> (Value, Value, Value, Value) {
    assert_eq!(frame["op"], "error", "{frame}");
    (
        frame["code"].clone(),
        frame["error"].clone(),
        frame["reconnect"].clone(),
        frame["requestId"].clone(),
    )
}

/// Protocol errors as Parse Server sends them: subscribing before `connect` (2, no
/// requestId, reconnect), an unknown op (1, the schema's words), a wrong app id (4,
/// reconnect), a query live queries cannot evaluate (102), a CLP that forbids the class (119).
#[tokio::test]
async fn protocol_errors() {
    let server = TestServer::new().await;
    let mut socket = open(&server).await;
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {}}}),
    )
    .await;
    assert_eq!(
        error_fields(&next(&mut socket).await),
        (
            json!(2),
            json!("Can not find this client, make sure you connect to server before subscribing"),
            json!(true),
            Value::Null
        )
    );
    send(&mut socket, json!({"op": "unsubscribe", "requestId": 1})).await;
    let (code, _, reconnect, request_id) = error_fields(&next(&mut socket).await);
    assert_eq!(
        (code, reconnect, request_id),
        (json!(2), json!(true), Value::Null)
    );
    send(&mut socket, json!({"op": "dance"})).await;
    assert_eq!(
        error_fields(&next(&mut socket).await),
        (
            json!(1),
            json!("No enum match for: \"dance\""),
            json!(true),
            Value::Null
        )
    );
    send(
        &mut socket,
        json!({"op": "connect", "applicationId": "wrong"}),
    )
    .await;
    assert_eq!(
        error_fields(&next(&mut socket).await),
        (
            json!(4),
            json!("Key in request is not valid"),
            json!(true),
            Value::Null
        )
    );

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

/// Frames that do not fit the protocol's schema for their op — an unknown property, a
/// missing or mistyped one — are refused as Parse Server refuses them (error 1, its message,
/// `reconnect: true`, no `requestId`) and change nothing: no connection, no subscription.
/// The JS SDK reconnects on that error, and subscribes again.
#[tokio::test]
async fn frames_that_do_not_fit_the_protocol_are_refused() {
    let server = TestServer::new().await;
    let refused = |message: &str| (json!(1), json!(message), json!(true), Value::Null);
    let mut socket = open(&server).await;
    send(
        &mut socket,
        json!({"op": "connect", "applicationId": APP_ID, "bogus": 1}),
    )
    .await;
    assert_eq!(
        error_fields(&next(&mut socket).await),
        refused("Additional properties not allowed")
    );
    send(&mut socket, json!({"op": "connect"})).await;
    assert_eq!(
        error_fields(&next(&mut socket).await),
        refused("Missing required property: applicationId")
    );
    // Still not connected: the refused connects did nothing.
    send(
        &mut socket,
        json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {}}}),
    )
    .await;
    assert_eq!(error_fields(&next(&mut socket).await).0, json!(2));

    let mut socket = connected(&server, None).await;
    for (frame, message) in [
        (
            json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {}, "unknownField": "x"}}),
            "Additional properties not allowed",
        ),
        (
            json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note", "where": {}}, "bogus": 1}),
            "Additional properties not allowed",
        ),
        (
            json!({"op": "subscribe", "requestId": "1", "query": {"className": "Note", "where": {}}}),
            "Invalid type: string (expected number)",
        ),
        (
            json!({"op": "subscribe", "requestId": 1, "query": {"className": "Note"}}),
            "Missing required property: where",
        ),
        (
            json!({"op": "update", "requestId": 1, "query": {"className": "Note", "where": {}, "keys": []}}),
            "Array is too short (0), minimum 1",
        ),
        (
            json!({"op": "unsubscribe", "requestId": 1, "bogus": true}),
            "Additional properties not allowed",
        ),
    ] {
        send(&mut socket, frame.clone()).await;
        assert_eq!(
            error_fields(&next(&mut socket).await),
            refused(message),
            "{frame}"
        );
    }
    // None of them subscribed: a new note gives no event, and requestId 1 is free.
    server.create("Note", json!({"text": "x"})).await;
    quiet(&mut socket).await;
    send(&mut socket, json!({"op": "unsubscribe", "requestId": 1})).await;
    let (code, _, reconnect, request_id) = error_fields(&next(&mut socket).await);
    assert_eq!(
        (code, reconnect, request_id),
        (json!(2), json!(true), Value::Null)
    );
    let subscribed = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(subscribed["op"], "subscribed", "{subscribed}");
}

/// A note only `user` may read.
async fn private_note(server: &TestServer, user: &str, text: &str) -> String {
    server
        .create(
            "Note",
            json!({"text": text, "ACL": {user: {"read": true, "write": true}}}),
        )
        .await
}

/// Concurrent writers on one object: its events arrive in the order the writes committed,
/// so a counter's update events count up one by one.
#[tokio::test]
async fn events_of_one_object_arrive_in_commit_order() {
    let server = TestServer::new().await;
    let id = server.create("Counter", json!({"n": 0})).await;
    let mut socket = connected(&server, None).await;
    let subscribed = subscribe(&mut socket, 1, json!({"className": "Counter", "where": {}})).await;
    assert_eq!(subscribed["op"], "subscribed");
    let path = format!("/classes/Counter/{id}");
    let writes = (0..40).map(|_| {
        server.master(
            Method::PUT,
            &path,
            Some(json!({"n": {"__op": "Increment", "amount": 1}})),
        )
    });
    for reply in futures::future::join_all(writes).await {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    for expected in 1..=40 {
        let event = next(&mut socket).await;
        assert_eq!(event["op"], "update");
        assert_eq!(event["object"]["n"], expected, "{event}");
        assert_eq!(event["original"]["n"], expected - 1, "{event}");
    }
}

/// `--live-query-classes` narrows the classes live queries serve; others are refused at
/// subscribe time.
#[tokio::test]
async fn live_query_classes_narrow_what_can_be_subscribed() {
    let server = TestServer::with(ServeOptions {
        live_query_classes: Some(vec!["Note".into()]),
        ..ServeOptions::default()
    })
    .await;
    let mut socket = connected(&server, None).await;
    let refused = subscribe(&mut socket, 1, json!({"className": "Other", "where": {}})).await;
    assert_eq!(
        (
            refused["op"].clone(),
            refused["code"].clone(),
            refused["requestId"].clone()
        ),
        (json!("error"), json!(119), json!(1))
    );
    let accepted = subscribe(&mut socket, 2, json!({"className": "Note", "where": {}})).await;
    assert_eq!(accepted["op"], "subscribed");
    server.create("Other", json!({"x": 1})).await;
    server.create("Note", json!({"x": 1})).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["requestId"].clone()),
        (json!("create"), json!(2))
    );
}

/// One user may hold at most `--live-query-max-connections-per-user` connections; a closed
/// one frees its place. Subscriptions per connection are limited too.
#[tokio::test]
async fn connections_per_user_and_subscriptions_per_connection_are_limited() {
    let server = TestServer::with(ServeOptions {
        live_query_max_connections_per_user: Some(2),
        live_query_max_subscriptions: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let User { token, .. } = server.sign_up("alice").await;
    let mut first = connected(&server, Some(&token)).await;
    let _second = connected(&server, Some(&token)).await;
    let mut third = open(&server).await;
    send(
        &mut third,
        json!({"op": "connect", "applicationId": APP_ID, "sessionToken": token}),
    )
    .await;
    let refused = next(&mut third).await;
    assert_eq!(
        (refused["op"].clone(), refused["code"].clone()),
        (json!("error"), json!(1))
    );
    // Anonymous connections are not counted against alice.
    let _anonymous = connected(&server, None).await;

    for request_id in 1..=2 {
        let frame = subscribe(
            &mut first,
            request_id,
            json!({"className": "Note", "where": {}}),
        )
        .await;
        assert_eq!(frame["op"], "subscribed");
    }
    let frame = subscribe(&mut first, 3, json!({"className": "Note", "where": {}})).await;
    assert_eq!(
        (frame["op"].clone(), frame["requestId"].clone()),
        (json!("error"), json!(3))
    );
    // An update of an existing subscription is not a new one.
    send(
        &mut first,
        json!({"op": "update", "requestId": 2, "query": {"className": "Note", "where": {"x": 1}}}),
    )
    .await;
    assert_eq!(next(&mut first).await["op"], "subscribed");

    drop(first);
    let mut admitted = false;
    for _ in 0..50 {
        let mut socket = open(&server).await;
        send(
            &mut socket,
            json!({"op": "connect", "applicationId": APP_ID, "sessionToken": token}),
        )
        .await;
        if next(&mut socket).await["op"] == "connected" {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a closed connection frees its place");
}

/// A client that does not read is disconnected once its queue is full, with the protocol's
/// error; the server does not buffer events for it without bound.
#[tokio::test]
async fn a_slow_consumer_is_disconnected() {
    let server = TestServer::with(ServeOptions {
        live_query_queue: Some(4),
        ..ServeOptions::default()
    })
    .await;
    let mut socket = connected(&server, None).await;
    let frame = subscribe(&mut socket, 1, json!({"className": "Blob", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    let big = "x".repeat(64 * 1024);
    let total = 300;
    for chunk in 0..(total / 50) {
        let bodies = (0..50)
            .map(|index| json!({"n": chunk * 50 + index, "data": big}))
            .collect();
        server.create_many("Blob", bodies).await;
    }
    // Only now does the client read: what the socket buffers held, then the error, then the end.
    let mut events = 0;
    let mut error = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                match frame["op"].as_str() {
                    Some("create") => events += 1,
                    Some("error") => error = Some(frame),
                    _ => {}
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the slow client was not disconnected"),
        }
    }
    assert!(events < total, "a slow client is cut off ({events} events)");
    let error = error.expect("the client is told why");
    assert_eq!(
        (error["code"].clone(), error["reconnect"].clone()),
        (json!(1), json!(true))
    );
}

/// Logging out ends the events of subscriptions that rely on that session.
#[tokio::test]
async fn logging_out_stops_the_sessions_events() {
    let server = TestServer::new().await;
    let User { id: alice, token } = server.sign_up("alice").await;
    server.create("Note", json!({"text": "setup"})).await;
    let mut socket = connected(&server, Some(&token)).await;
    let frame = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    private_note(&server, &alice, "before").await;
    assert_eq!(next(&mut socket).await["object"]["text"], "before");

    let logout = server
        .send(
            Method::POST,
            "/logout",
            Some(json!({})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", &token),
            ],
        )
        .await;
    assert_eq!(logout.status, 200);
    private_note(&server, &alice, "after").await;
    let error = next(&mut socket).await;
    assert_eq!(
        (
            error["op"].clone(),
            error["code"].clone(),
            error["requestId"].clone()
        ),
        (json!("error"), json!(209), json!(1))
    );
    quiet(&mut socket).await;
    // The connection itself stays, with public rights only.
    let frame = subscribe(&mut socket, 2, json!({"className": "Note", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    private_note(&server, &alice, "still hidden").await;
    quiet(&mut socket).await;
    server.create("Note", json!({"text": "public"})).await;
    assert_eq!(next(&mut socket).await["object"]["text"], "public");
}

/// An expired session's subscriptions end at their first event after the expiry.
#[tokio::test]
async fn an_expired_session_stops_its_events() {
    let server = TestServer::with(ServeOptions {
        session_length: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let User { id: alice, token } = server.sign_up("alice").await;
    let mut socket = connected(&server, Some(&token)).await;
    let frame = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    private_note(&server, &alice, "too late").await;
    let error = next(&mut socket).await;
    assert_eq!(
        (error["code"].clone(), error["requestId"].clone()),
        (json!(209), json!(1))
    );
    quiet(&mut socket).await;
}

/// Role changes reach existing subscriptions: joining a role grants its objects' events,
/// leaving it takes them away.
#[tokio::test]
async fn role_changes_reach_existing_subscriptions() {
    let server = TestServer::new().await;
    let User { id: alice, token } = server.sign_up("alice").await;
    let role = server
        .master(
            Method::POST,
            "/roles",
            Some(json!({"name": "Editors", "ACL": {"*": {"read": true}}})),
        )
        .await;
    let role_id = role.body["objectId"].as_str().unwrap().to_owned();
    let for_editors = |text: &str| json!({"text": text, "ACL": {"role:Editors": {"read": true}}});
    server.create("Note", json!({"text": "setup"})).await;
    let mut socket = connected(&server, Some(&token)).await;
    let frame = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    server.create("Note", for_editors("not yet")).await;
    quiet(&mut socket).await;

    let relation = |op: &str| json!({"users": {"__op": op, "objects": [{"__type": "Pointer", "className": "_User", "objectId": alice}]}});
    let path = format!("/roles/{role_id}");
    server
        .master(Method::PUT, &path, Some(relation("AddRelation")))
        .await;
    server.create("Note", for_editors("now")).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["object"]["text"].clone()),
        (json!("create"), json!("now"))
    );

    server
        .master(Method::PUT, &path, Some(relation("RemoveRelation")))
        .await;
    server.create("Note", for_editors("no longer")).await;
    quiet(&mut socket).await;
}

/// `_Session` subscriptions see the subscriber's own sessions only.
#[tokio::test]
async fn session_subscriptions_see_only_own_sessions() {
    let server = TestServer::new().await;
    let User { id: alice, token } = server.sign_up("alice").await;
    server.sign_up("bob").await;
    let mut socket = connected(&server, Some(&token)).await;
    let frame = subscribe(
        &mut socket,
        1,
        json!({"className": "_Session", "where": {}}),
    )
    .await;
    assert_eq!(frame["op"], "subscribed");
    let log_in = |name: &str| {
        server.public(
            Method::POST,
            "/login",
            Some(json!({"username": name, "password": "pw"})),
        )
    };
    assert_eq!(log_in("bob").await.status, 200);
    quiet(&mut socket).await;
    assert_eq!(log_in("alice").await.status, 200);
    let event = next(&mut socket).await;
    assert_eq!(event["op"], "create");
    assert_eq!(event["object"]["user"]["objectId"], alice.as_str());
}

/// A write that fails publishes nothing: a transactional batch whose last request fails
/// creates no object, and its earlier create gives no event; a refused single write neither.
#[tokio::test]
async fn failed_writes_publish_nothing() {
    let server = TestServer::new().await;
    server
        .create("Note", json!({"text": "setup", "n": 1}))
        .await;
    let mut socket = connected(&server, None).await;
    let frame = subscribe(&mut socket, 1, json!({"className": "Note", "where": {}})).await;
    assert_eq!(frame["op"], "subscribed");
    let batch = server
        .master(
            Method::POST,
            "/batch",
            Some(json!({"transaction": true, "requests": [
                {"method": "POST", "path": "/parse/classes/Note", "body": {"text": "never"}},
                {"method": "PUT", "path": "/parse/classes/Note/doesNotExist", "body": {"text": "x"}},
            ]})),
        )
        .await;
    assert_ne!(batch.status, 200, "{:?}", batch.body);
    let mismatch = server
        .master(
            Method::POST,
            "/classes/Note",
            Some(json!({"n": "not a number"})),
        )
        .await;
    assert_eq!(mismatch.body["code"], 111, "{:?}", mismatch.body);
    quiet(&mut socket).await;
    server.create("Note", json!({"text": "kept"})).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (event["op"].clone(), event["object"]["text"].clone()),
        (json!("create"), json!("kept"))
    );
}

/// `fields`, which Parse Server's subscribe schema once allowed for `keys`, is refused as
/// Parse Server refuses it now (error 1, "Additional properties not allowed"); `keys`
/// limits the fields sent.
#[tokio::test]
async fn fields_is_refused_and_keys_limits() {
    let server = TestServer::new().await;
    server
        .create("Note", json!({"text": "setup", "other": 0}))
        .await;
    let mut socket = connected(&server, None).await;
    let query = json!({"className": "Note", "where": {}, "fields": ["text"]});
    let refused = subscribe(&mut socket, 1, query).await;
    assert_eq!(
        error_fields(&refused),
        (
            json!(1),
            json!("Additional properties not allowed"),
            json!(true),
            Value::Null
        )
    );
    let query = json!({"className": "Note", "where": {}, "keys": ["text"]});
    assert_eq!(subscribe(&mut socket, 1, query).await["op"], "subscribed");
    server
        .create("Note", json!({"text": "hello", "other": 1}))
        .await;
    let event = next(&mut socket).await;
    assert_eq!(event["object"]["text"], "hello");
    assert!(event["object"].get("other").is_none(), "{event}");
}

/// `$exists: true` matches an explicit null in live queries as in REST, also on a field the
/// schema does not know (a null adds no field); `$exists: false` does not.
#[tokio::test]
async fn exists_matches_an_explicit_null_live() {
    let server = TestServer::new().await;
    server.create("Fresh", json!({"other": 1})).await;
    let mut socket = connected(&server, None).await;
    let present = subscribe(
        &mut socket,
        1,
        json!({"className": "Fresh", "where": {"nul": {"$exists": true}}}),
    )
    .await;
    assert_eq!(present["op"], "subscribed", "{present}");
    let id = server.create("Fresh", json!({"nul": null})).await;
    let event = next(&mut socket).await;
    assert_eq!(
        (
            event["op"].clone(),
            event["requestId"].clone(),
            event["object"]["objectId"].clone()
        ),
        (json!("create"), json!(1), json!(id))
    );
    assert_eq!(event["object"].get("nul"), Some(&Value::Null), "{event}");
    server.create("Fresh", json!({"other": 2})).await;
    quiet(&mut socket).await;
}
