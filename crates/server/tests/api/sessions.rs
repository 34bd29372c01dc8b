//! Session tokens without sign-up: the master key writes `_User` and `_Session` rows
//! directly (§5.7 fields), and requests then carry their tokens. Covers checklist items 6,
//! 7, 51, 57 and 58 for a logged-in caller, and the `_Session` read rule of §3.2.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

/// Item 7: an expired session → `400 {"code":209,"error":"Session token is expired."}`, even
/// on a public class; a live one works on the same request.
#[tokio::test]
async fn expired_sessions_are_209() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "a"})).await;
    let User { token: expired, .. } = server.user_with_session("old", -1).await;
    let User { token: live, .. } = server.user_with_session("new", 24).await;
    let reply = server
        .as_user(&expired, Method::GET, "/classes/Item", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 209, "error": "Session token is expired."})
    );
    let reply = server
        .as_user(&live, Method::GET, "/classes/Item", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
}

/// Item 51: an object readable only by user A is visible to A (get, find, count) and
/// invisible to B and to the public; `_SessionToken` in the body works like the header
/// (item 4).
#[tokio::test]
async fn user_acls_follow_the_session() {
    let server = TestServer::new().await;
    let User {
        id: alice,
        token: alice_token,
    } = server.user_with_session("alice", 24).await;
    let User {
        token: bob_token, ..
    } = server.user_with_session("bob", 24).await;
    let id = server
        .create(
            "Note",
            json!({"text": "mine", "ACL": {alice.clone(): {"read": true, "write": true}}}),
        )
        .await;
    server.create("Note", json!({"text": "public"})).await;
    let path = format!("/classes/Note/{id}");

    let own = server.as_user(&alice_token, Method::GET, &path, None).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    assert_eq!(own.body["text"], "mine");
    let body = server
        .js_sdk(
            &path,
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_SessionToken": alice_token}),
        )
        .await;
    assert_eq!(body.status, StatusCode::OK, "{:?}", body.body);
    let count = server
        .as_user(
            &alice_token,
            Method::GET,
            "/classes/Note?count=1&limit=0",
            None,
        )
        .await;
    assert_eq!(count.body, json!({"results": [], "count": 2}));

    let other = server.as_user(&bob_token, Method::GET, &path, None).await;
    assert_parse_error(&other, 404, 101, Some("Object not found."));
    let count = server
        .as_user(
            &bob_token,
            Method::GET,
            "/classes/Note?count=1&limit=0",
            None,
        )
        .await;
    assert_eq!(count.body, json!({"results": [], "count": 1}));
    let write = server
        .as_user(
            &bob_token,
            Method::PUT,
            &path,
            Some(json!({"text": "bob's"})),
        )
        .await;
    assert_parse_error(&write, 404, 101, None);
    let write = server
        .as_user(
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
    let User { id: carol, token } = server.user_with_session("carol", 24).await;
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
    let user = server
        .as_user(&token, Method::POST, "/classes/Message", Some(body))
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{:?}", user.body);
    let find = server
        .as_user(&token, Method::GET, "/classes/Message", None)
        .await;
    assert_eq!(find.body["results"].as_array().unwrap().len(), 1);
}

/// Item 58: `readUserFields:["owner"]` with `get/find:{}`: the owner sees its objects; others
/// get `[]` from find and 101 from get.
#[tokio::test]
async fn read_user_fields_limit_reads_to_the_owner() {
    let server = TestServer::new().await;
    let User {
        id: dave,
        token: dave_token,
    } = server.user_with_session("dave", 24).await;
    let User {
        token: erin_token, ..
    } = server.user_with_session("erin", 24).await;
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
    let own = server.as_user(&dave_token, Method::GET, &path, None).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    let own_find = server
        .as_user(&dave_token, Method::GET, "/classes/Doc", None)
        .await;
    assert_eq!(
        ids(own_find.body["results"].as_array().unwrap()),
        vec![id.clone()]
    );
    let other_find = server
        .as_user(&erin_token, Method::GET, "/classes/Doc", None)
        .await;
    assert_eq!(other_find.body, json!({"results": []}));
    let other_get = server.as_user(&erin_token, Method::GET, &path, None).await;
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
    let User {
        id: frank,
        token: frank_token,
    } = server.user_with_session("frank", 24).await;
    let User {
        token: grace_token, ..
    } = server.user_with_session("grace", 24).await;
    let public = server.public(Method::GET, "/classes/_Session", None).await;
    assert_parse_error(&public, 400, 209, None);
    let own = server
        .as_user(&frank_token, Method::GET, "/classes/_Session", None)
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
    let User { token, .. } = server.user_with_session("henry", 24).await;
    let User { id: other, .. } = server.user_with_session("irene", 24).await;
    let me = server
        .as_user(&token, Method::GET, "/sessions/me", None)
        .await;
    let session_id = me.body["objectId"].as_str().unwrap().to_owned();
    for body in [
        json!({"user": pointer("_User", &other)}),
        json!({"sessionToken": "r:00000000000000000000000000000000"}),
        json!({"ACL": {"*": {"read": true}}}),
    ] {
        let reply = server
            .as_user(
                &token,
                Method::PUT,
                &format!("/sessions/{session_id}"),
                Some(body.clone()),
            )
            .await;
        assert_parse_error(&reply, 400, 105, None);
    }
    let after = server
        .as_user(&token, Method::GET, "/sessions/me", None)
        .await;
    assert_eq!(after.body["sessionToken"], token.as_str());
    assert_eq!(after.body["user"], me.body["user"]);
    assert!(after.body.get("ACL").is_none());
}
