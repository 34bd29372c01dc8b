//! The access matrix of live events: every kind of caller subscribes to every class of the
//! chat template while a script of writes runs (creates, edits, participant changes that
//! rewrite ACLs, an ACL grant, deletes). After each write, what each subscriber received is
//! compared with what REST lets the same caller read, before and after the write:
//!
//! - readable after and not before → `create` (new object) or `enter`;
//! - readable before and after, and the object changed → `update`;
//! - readable before, not after → `delete` (object gone) or `leave`;
//! - otherwise nothing;
//!
//! and every object an event carries equals the caller's REST view of it (no field more).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::live::{Socket, next, open, send};
use crate::common::*;

const CLASSES: [&str; 5] = ["ChatSession", "Message", "Context", "Persona", "_User"];

/// One object the script made: its class and id.
type Key = (String, String);

struct Cast {
    server: TestServer,
    tokens: BTreeMap<Caller, String>,
    ids: BTreeMap<Caller, String>,
    sockets: BTreeMap<Caller, Socket>,
    objects: Vec<Key>,
}

fn path(class_name: &str, object_id: &str) -> String {
    match class_name {
        "_User" => format!("/users/{object_id}"),
        _ => format!("/classes/{class_name}/{object_id}"),
    }
}

impl Cast {
    async fn call(&self, caller: Caller, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![("x-parse-application-id", APP_ID)];
        if caller == Caller::Master {
            headers.push(("x-parse-master-key", MASTER_KEY));
        }
        if let Some(token) = self.tokens.get(&caller) {
            headers.push(("x-parse-session-token", token.as_str()));
        }
        self.server.send(method, path, body, &headers).await
    }

    /// Creates an object as `caller` and adds it to the objects the oracle watches.
    async fn create(&mut self, caller: Caller, class_name: &str, body: Value) -> String {
        let reply = self
            .call(
                caller,
                Method::POST,
                &format!("/classes/{class_name}"),
                Some(body),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{class_name}: {:?}",
            reply.body
        );
        let id = reply.body["objectId"].as_str().unwrap().to_owned();
        self.objects.push((class_name.to_owned(), id.clone()));
        id
    }

    /// What each caller may read of each watched object, by REST (`None`: nothing), and the
    /// master's `updatedAt` of each (`None`: the object does not exist).
    async fn snapshot(
        &self,
    ) -> (
        BTreeMap<(Caller, Key), Option<Value>>,
        BTreeMap<Key, Option<Value>>,
    ) {
        let mut views = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for key in &self.objects {
            for caller in CALLERS {
                let reply = self
                    .call(caller, Method::GET, &path(&key.0, &key.1), None)
                    .await;
                let view = (reply.status == StatusCode::OK).then_some(reply.body);
                if caller == Caller::Master {
                    versions.insert(
                        key.clone(),
                        view.as_ref().map(|body| body["updatedAt"].clone()),
                    );
                }
                views.insert((caller, key.clone()), view);
            }
        }
        (views, versions)
    }

    /// Every frame each caller received within a short while.
    async fn drain(&mut self) -> BTreeMap<Caller, Vec<Value>> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut received = BTreeMap::new();
        for (caller, socket) in &mut self.sockets {
            let mut frames = Vec::new();
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_millis(60), socket.next()).await
            {
                if let Message::Text(text) = message {
                    frames.push(serde_json::from_str(&text).unwrap());
                }
            }
            received.insert(*caller, frames);
        }
        received
    }
}

async fn subscribed_socket(server: &TestServer, caller: Caller, token: Option<&str>) -> Socket {
    let mut socket = open(server).await;
    let mut connect = json!({"op": "connect", "applicationId": APP_ID});
    if let Some(token) = token {
        connect["sessionToken"] = json!(token);
    }
    if caller == Caller::Master {
        connect["masterKey"] = json!(MASTER_KEY);
    }
    let mut frames = vec![connect];
    for (index, class_name) in CLASSES.iter().enumerate() {
        frames.push(json!({"op": "subscribe", "requestId": index + 1, "query": {"className": class_name, "where": {}}}));
    }
    for frame in frames {
        send(&mut socket, frame).await;
    }
    let mut answers = 0;
    while answers < 1 + CLASSES.len() {
        let frame = next(&mut socket).await;
        // Anonymous callers may not subscribe to the classes that need a user; that
        // refusal is the matrix's first row.
        assert!(
            matches!(frame["op"].as_str(), Some("connected" | "subscribed"))
                || (caller == Caller::Anonymous && frame["op"] == "error"),
            "{caller:?}: {frame}"
        );
        answers += 1;
    }
    socket
}

/// The event a caller should get for one object across one step.
fn expected_op(
    before: &Option<Value>,
    after: &Option<Value>,
    existed: bool,
    exists: bool,
    changed: bool,
) -> Option<&'static str> {
    if !changed {
        return None;
    }
    match (before.is_some(), after.is_some()) {
        (false, true) if !existed => Some("create"),
        (false, true) => Some("enter"),
        (true, true) => Some("update"),
        (true, false) if !exists => Some("delete"),
        (true, false) => Some("leave"),
        (false, false) => None,
    }
}

/// An event's object as REST shows it: without the event-only `__type` and `className`.
fn as_rest(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("__type");
        map.remove("className");
    }
    object
}

#[tokio::test]
async fn live_events_follow_the_rest_access_rules() {
    let server = TestServer::new().await;
    let mut tokens = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (caller, name) in [
        (Caller::Owner, "olga"),
        (Caller::Participant, "piet"),
        (Caller::Stranger, "sam"),
        (Caller::RoleMember, "rita"),
    ] {
        let User { id, token } = server
            .sign_up_with(json!({"username": name, "password": "pw", "email": format!("{name}@example.test")}))
            .await;
        ids.insert(caller, id);
        tokens.insert(caller, token);
    }
    let role = server
        .master(
            Method::POST,
            "/roles",
            Some(json!({"name": "Moderators", "ACL": {"*": {"read": true}},
                "users": {"__op": "AddRelation", "objects": [pointer("_User", &ids[&Caller::RoleMember])]}})),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED);
    let mut sockets = BTreeMap::new();
    for caller in CALLERS {
        let socket =
            subscribed_socket(&server, caller, tokens.get(&caller).map(String::as_str)).await;
        sockets.insert(caller, socket);
    }
    let mut cast = Cast {
        server,
        tokens,
        ids,
        sockets,
        objects: Vec::new(),
    };
    for caller in [
        Caller::Owner,
        Caller::Participant,
        Caller::Stranger,
        Caller::RoleMember,
    ] {
        cast.objects
            .push(("_User".to_owned(), cast.ids[&caller].clone()));
    }

    let owner = cast.ids[&Caller::Owner].clone();
    let participant = cast.ids[&Caller::Participant].clone();
    let mut session = String::new();
    let mut messages = Vec::new();
    let mut role_persona = String::new();
    let mut checked_events = 0;
    for step in 0..13 {
        let (views_before, versions_before) = cast.snapshot().await;
        let what = match step {
            0 => {
                session = cast
                    .create(
                        Caller::Owner,
                        "ChatSession",
                        json!({"title": "Trip", "participants": [pointer("_User", &participant)]}),
                    )
                    .await;
                // The server gives every session its Context, in the same transaction.
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::GET,
                        &path("ChatSession", &session),
                        None,
                    )
                    .await;
                let context = reply.body["context"]["objectId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                cast.objects.push(("Context".to_owned(), context));
                "the owner opens a session with a participant"
            }
            1 => {
                let id = cast
                    .create(
                        Caller::Participant,
                        "Message",
                        json!({"session": pointer("ChatSession", &session), "content": "hi"}),
                    )
                    .await;
                messages.push(id);
                "the participant writes"
            }
            2 => {
                let id = cast
                    .create(
                        Caller::Owner,
                        "Message",
                        json!({"session": pointer("ChatSession", &session), "content": "hello"}),
                    )
                    .await;
                messages.push(id);
                "the owner writes"
            }
            3 => {
                let context = cast
                    .objects
                    .iter()
                    .find(|(class_name, _)| class_name == "Context")
                    .unwrap()
                    .1
                    .clone();
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::PUT,
                        &path("Context", &context),
                        Some(json!({"data": {"topic": "trip"}})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the owner updates the session's context"
            }
            4 => {
                cast.create(Caller::Owner, "Persona", json!({"name": "Guide"}))
                    .await;
                "a public persona"
            }
            5 => {
                role_persona = cast
                    .create(Caller::Master, "Persona", json!({"name": "Helper", "owner": pointer("_User", &owner),
                        "ACL": {(owner.clone()): {"read": true, "write": true}, "role:Moderators": {"read": true}}}))
                    .await;
                "a persona for a role"
            }
            6 => {
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::PUT,
                        &path("ChatSession", &session),
                        Some(json!({"title": "Trip 2"})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the owner renames the session"
            }
            7 => {
                let reply = cast
                    .call(
                        Caller::Participant,
                        Method::PUT,
                        &path("Message", &messages[0]),
                        Some(json!({"content": "hi!"})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the participant edits a message"
            }
            8 => {
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::PUT,
                        &path("ChatSession", &session),
                        Some(json!({"participants": []})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the owner removes the participant"
            }
            9 => {
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::PUT,
                        &path("ChatSession", &session),
                        Some(json!({"participants": [pointer("_User", &participant)]})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the owner adds the participant back"
            }
            10 => {
                let reply = cast
                    .call(
                        Caller::Master,
                        Method::PUT,
                        &path("Persona", &role_persona),
                        Some(json!({"ACL": {"*": {"read": true}}})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the role persona becomes public"
            }
            11 => {
                let reply = cast
                    .call(
                        Caller::Participant,
                        Method::PUT,
                        &path("_User", &participant),
                        Some(json!({"displayName": "Piet"})),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the participant renames itself"
            }
            _ => {
                let reply = cast
                    .call(
                        Caller::Owner,
                        Method::DELETE,
                        &path("Message", &messages[1]),
                        None,
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                "the owner deletes its message"
            }
        };
        let received = cast.drain().await;
        let (views_after, versions_after) = cast.snapshot().await;
        for caller in CALLERS {
            let mut expected = BTreeSet::new();
            for key in &cast.objects {
                let before = views_before.get(&(caller, key.clone())).cloned().flatten();
                let after = views_after.get(&(caller, key.clone())).cloned().flatten();
                let existed = versions_before.get(key).cloned().flatten().is_some();
                let exists = versions_after.get(key).cloned().flatten().is_some();
                let changed = versions_before.get(key) != versions_after.get(key);
                // Anonymous callers hold no subscription on the classes that need a user.
                if let Some(op) = expected_op(&before, &after, existed, exists, changed) {
                    expected.insert((key.1.clone(), op.to_owned()));
                }
            }
            let mut got = BTreeSet::new();
            for frame in &received[&caller] {
                let op = frame["op"].as_str().unwrap_or_default().to_owned();
                assert_ne!(op, "error", "step {step} ({what}), {caller:?}: {frame}");
                let object = &frame["object"];
                let class_name = object["className"].as_str().unwrap().to_owned();
                let id = object["objectId"].as_str().unwrap().to_owned();
                let key = (class_name, id.clone());
                // The object as the event shows it is exactly the caller's REST view of it.
                let view = if op == "delete" {
                    views_before.get(&(caller, key.clone())).cloned().flatten()
                } else {
                    views_after.get(&(caller, key.clone())).cloned().flatten()
                };
                let view = if op == "leave" {
                    // A leave carries the new state only when the caller may still read it.
                    views_after.get(&(caller, key.clone())).cloned().flatten()
                } else {
                    Some(view.unwrap_or_else(|| {
                        panic!("step {step} ({what}): {caller:?} got {op} for {key:?}, which REST hides from it")
                    }))
                };
                match view {
                    Some(view) => assert_eq!(
                        as_rest(object),
                        view,
                        "step {step} ({what}), {caller:?}, {op} {key:?}"
                    ),
                    None => assert_eq!(
                        as_rest(object),
                        json!({"objectId": key.1}),
                        "step {step} ({what}), {caller:?}: a leave reveals nothing"
                    ),
                }
                checked_events += 1;
                got.insert((id, op));
            }
            assert_eq!(got, expected, "step {step} ({what}), {caller:?}");
        }
    }
    assert!(
        checked_events > 40,
        "the script produced {checked_events} events"
    );
}
