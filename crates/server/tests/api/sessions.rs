//! Session tokens without sign-up: the master key writes `_User` and `_Session` rows
//! directly (§5.7 fields), and requests then carry their tokens. Covers checklist items 6,
//! 7, 51, 57 and 58 for a logged-in caller, and the `_Session` read rule of §3.2.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Makes a user and a session for it with the master key; returns (user id, token).
async fn login(server: &TestServer, name: &str, expires_in_hours: i64) -> (String, String) {
    let user = server
        .create(
            "_User",
            json!({"username": name, "password": "pw", "ACL": {}}),
        )
        .await;
    let hex: String = name.bytes().map(|byte| format!("{byte:02x}")).collect();
    let token = format!("r:{hex:0>32}");
    let expires = chrono::Utc::now() + chrono::Duration::hours(expires_in_hours);
    server
        .create(
            "_Session",
            json!({
                "user": pointer("_User", &user),
                "sessionToken": token,
                "createdWith": {"action": "login", "authProvider": "password"},
                "expiresAt": {"__type": "Date", "iso": expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()},
            }),
        )
        .await;
    (user, token)
}

async fn as_user(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    server
        .send(
            method,
            path,
            body,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", token),
            ],
        )
        .await
}

/// Item 7: an expired session → `400 {"code":209,"error":"Session token is expired."}`, even
/// on a public class; a live one works on the same request.
#[tokio::test]
async fn expired_sessions_are_209() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "a"})).await;
    let (_, expired) = login(&server, "old", -1).await;
    let (_, live) = login(&server, "new", 24).await;
    let reply = as_user(&server, &expired, Method::GET, "/classes/Item", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 209, "error": "Session token is expired."})
    );
    let reply = as_user(&server, &live, Method::GET, "/classes/Item", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
}

/// Item 51: an object readable only by user A is visible to A (get, find, count) and
/// invisible to B and to the public; `_SessionToken` in the body works like the header
/// (item 4).
#[tokio::test]
async fn user_acls_follow_the_session() {
    let server = TestServer::new().await;
    let (alice, alice_token) = login(&server, "alice", 24).await;
    let (_, bob_token) = login(&server, "bob", 24).await;
    let id = server
        .create(
            "Note",
            json!({"text": "mine", "ACL": {alice.clone(): {"read": true, "write": true}}}),
        )
        .await;
    server.create("Note", json!({"text": "public"})).await;
    let path = format!("/classes/Note/{id}");

    let own = as_user(&server, &alice_token, Method::GET, &path, None).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    assert_eq!(own.body["text"], "mine");
    let body = server
        .js_sdk(
            &path,
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_SessionToken": alice_token}),
        )
        .await;
    assert_eq!(body.status, StatusCode::OK, "{:?}", body.body);
    let count = as_user(
        &server,
        &alice_token,
        Method::GET,
        "/classes/Note?count=1&limit=0",
        None,
    )
    .await;
    assert_eq!(count.body, json!({"results": [], "count": 2}));

    let other = as_user(&server, &bob_token, Method::GET, &path, None).await;
    assert_parse_error(&other, 404, 101, Some("Object not found."));
    let count = as_user(
        &server,
        &bob_token,
        Method::GET,
        "/classes/Note?count=1&limit=0",
        None,
    )
    .await;
    assert_eq!(count.body, json!({"results": [], "count": 1}));
    let write = as_user(
        &server,
        &bob_token,
        Method::PUT,
        &path,
        Some(json!({"text": "bob's"})),
    )
    .await;
    assert_parse_error(&write, 404, 101, None);
    let write = as_user(
        &server,
        &alice_token,
        Method::PUT,
        &path,
        Some(json!({"text": "edited"})),
    )
    .await;
    assert_eq!(write.status, StatusCode::OK, "{:?}", write.body);
    assert_eq!(server.get("Note", &id).await["text"], "edited");
}

/// Item 57: CLP `requiresAuthentication` lets a caller with a session through, and the
/// public gets 101.
#[tokio::test]
async fn requires_authentication_admits_sessions() {
    let server = TestServer::new().await;
    let (carol, token) = login(&server, "carol", 24).await;
    let session = server
        .create(
            "ChatSession",
            json!({"participants": [pointer("_User", &carol)]}),
        )
        .await;
    let body = json!({"content": "hi", "session": pointer("ChatSession", &session)});
    let public = server
        .public(Method::POST, "/classes/Message", Some(body.clone()))
        .await;
    assert_parse_error(
        &public,
        404,
        101,
        Some("Permission denied, user needs to be authenticated."),
    );
    let user = as_user(
        &server,
        &token,
        Method::POST,
        "/classes/Message",
        Some(body),
    )
    .await;
    assert_eq!(user.status, StatusCode::CREATED, "{:?}", user.body);
    let find = as_user(&server, &token, Method::GET, "/classes/Message", None).await;
    assert_eq!(find.body["results"].as_array().unwrap().len(), 1);
}

/// Item 58: `readUserFields:["owner"]` with `get/find:{}`: the owner sees its objects; others
/// get `[]` from find and 101 from get.
#[tokio::test]
async fn read_user_fields_limit_reads_to_the_owner() {
    let server = TestServer::new().await;
    let (dave, dave_token) = login(&server, "dave", 24).await;
    let (_, erin_token) = login(&server, "erin", 24).await;
    let id = server
        .create(
            "Doc",
            json!({"title": "d", "owner": pointer("_User", &dave)}),
        )
        .await;
    server
        .set_clp(
            "Doc",
            json!({"get": {}, "find": {}, "count": {}, "create": {"*": true}, "update": {}, "delete": {}, "addField": {},
                   "readUserFields": ["owner"], "protectedFields": {"*": []}}),
        )
        .await;
    let path = format!("/classes/Doc/{id}");
    let own = as_user(&server, &dave_token, Method::GET, &path, None).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    let own_find = as_user(&server, &dave_token, Method::GET, "/classes/Doc", None).await;
    assert_eq!(
        ids(own_find.body["results"].as_array().unwrap()),
        vec![id.clone()]
    );
    let other_find = as_user(&server, &erin_token, Method::GET, "/classes/Doc", None).await;
    assert_eq!(other_find.body, json!({"results": []}));
    let other_get = as_user(&server, &erin_token, Method::GET, &path, None).await;
    assert_parse_error(&other_get, 404, 101, None);
    let public = server.public(Method::GET, "/classes/Doc", None).await;
    assert!(
        public.status.is_client_error() || public.body == json!({"results": []}),
        "{:?}",
        public.body
    );
}

/// §3.2 and §5.7: without the master key, `_Session` is never listed to strangers: with no
/// user a find → 209, and a user sees only its own sessions (never another's token).
#[tokio::test]
async fn sessions_are_not_readable_by_others() {
    let server = TestServer::new().await;
    let (frank, frank_token) = login(&server, "frank", 24).await;
    let (_, grace_token) = login(&server, "grace", 24).await;
    let public = server.public(Method::GET, "/classes/_Session", None).await;
    assert_parse_error(&public, 400, 209, None);
    let own = as_user(
        &server,
        &frank_token,
        Method::GET,
        "/classes/_Session",
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    // Frank's sessions: the one sign-up made, and the one the test wrote.
    let results = own.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{:?}", own.body);
    assert!(
        results
            .iter()
            .all(|session| session["user"] == pointer("_User", &frank))
    );
    assert!(
        !own.body.to_string().contains(&grace_token),
        "{:?}",
        own.body
    );
}

/// A user may not move its session to another user or token, nor attach an ACL (`105`);
/// the session stays as it was.
#[tokio::test]
async fn sessions_cannot_be_moved_or_given_an_acl() {
    let server = TestServer::new().await;
    let (_, token) = login(&server, "henry", 24).await;
    let (other, _) = login(&server, "irene", 24).await;
    let me = as_user(&server, &token, Method::GET, "/sessions/me", None).await;
    let session_id = me.body["objectId"].as_str().unwrap().to_owned();
    for body in [
        json!({"user": pointer("_User", &other)}),
        json!({"sessionToken": "r:00000000000000000000000000000000"}),
        json!({"ACL": {"*": {"read": true}}}),
    ] {
        let reply = as_user(
            &server,
            &token,
            Method::PUT,
            &format!("/sessions/{session_id}"),
            Some(body.clone()),
        )
        .await;
        assert_parse_error(&reply, 400, 105, None);
    }
    let after = as_user(&server, &token, Method::GET, "/sessions/me", None).await;
    assert_eq!(after.body["sessionToken"], token.as_str());
    assert_eq!(after.body["user"], me.body["user"]);
    assert!(after.body.get("ACL").is_none());
}
