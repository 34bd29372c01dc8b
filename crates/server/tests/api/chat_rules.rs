//! The chat template's protective rules tried from both sides (issue 10): what the master
//! key (and so the server's own replies and greetings) creates gets the same ACLs a member's
//! create gets, a client cannot forge the fields that describe a generation, and membership
//! holds for every write of a Message or Context, not only for its create.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Reply, TestServer, User, assert_parse_error, pointer};

/// What `user` can see of `class_name`/`object_id`: by get, by find and by count.
async fn visible_to(server: &TestServer, user: &User, class_name: &str, object_id: &str) -> bool {
    let get = server
        .as_user(
            user,
            Method::GET,
            &format!("/classes/{class_name}/{object_id}"),
            None,
        )
        .await;
    let find = server
        .as_user(user, Method::GET, &format!("/classes/{class_name}"), None)
        .await;
    let found = find.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|object| object["objectId"] == object_id);
    assert_eq!(get.status.is_success(), found, "get and find agree");
    found
}

/// A Message or Context the master key creates without an ACL gets its session's ACL: an
/// outsider can neither read nor change it (before: public read + write); an explicit ACL
/// from the master still wins.
#[tokio::test]
async fn master_creates_get_the_session_acl() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let session_id = server.session_with(&ada, &[&bob]).await;
    let session = pointer("ChatSession", &session_id);

    let created = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "from the operator"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let message_id = created.body["objectId"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["ACL"],
        json!({ada.id.clone(): {"read": true}, bob.id.clone(): {"read": true}})
    );
    assert!(visible_to(&server, &ada, "Message", &message_id).await);
    assert!(visible_to(&server, &bob, "Message", &message_id).await);
    assert!(!visible_to(&server, &eve, "Message", &message_id).await);
    let edit = server
        .as_user(
            &eve,
            Method::PUT,
            &format!("/classes/Message/{message_id}"),
            Some(json!({"content": "defaced"})),
        )
        .await;
    assert_parse_error(&edit, 404, 101, None);
    // Nobody but the server writes a message without a sender, members included.
    let edit = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Message/{message_id}"),
            Some(json!({"content": "defaced"})),
        )
        .await;
    assert_parse_error(&edit, 404, 101, None);
    assert_eq!(
        server.get("Message", &message_id).await["content"],
        "from the operator"
    );

    // An explicit ACL from the master wins.
    let public = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "notice", "ACL": {"*": {"read": true}}})),
        )
        .await;
    let public_id = public.body["objectId"].as_str().unwrap();
    assert!(visible_to(&server, &eve, "Message", public_id).await);

    // The session's own Context was made with it; once the master removed it, a new one the
    // master creates gets the members' read+write.
    let context_id = server.get("ChatSession", &session_id).await["context"]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = server
        .master(
            Method::DELETE,
            &format!("/classes/Context/{context_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 200);
    let context = server
        .master(
            Method::POST,
            "/classes/Context",
            Some(json!({"sessionId": session_id, "data": {"k": 1}})),
        )
        .await;
    assert_eq!(context.status.as_u16(), 201, "{:?}", context.body);
    let context_id = context.body["objectId"].as_str().unwrap();
    assert!(visible_to(&server, &bob, "Context", context_id).await);
    assert!(!visible_to(&server, &eve, "Context", context_id).await);
    let edit = server
        .as_user(
            &eve,
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"data": {"k": 2}})),
        )
        .await;
    assert_parse_error(&edit, 404, 101, None);
    assert_eq!(
        server.get("Context", context_id).await["data"],
        json!({"k": 1})
    );
}

/// A ChatSession the master creates answers with its `context` pointer (as a user's does),
/// that Context exists with the members' ACL, and a second Context for the session is
/// refused with `137` — for the master too.
#[tokio::test]
async fn master_sessions_keep_one_context() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let eve = server.sign_up("eve").await;
    let created = server
        .master(
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"title": "ops", "participants": [pointer("_User", &ada.id)]})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let session_id = created.body["objectId"].as_str().unwrap().to_owned();
    let context_id = created.body["context"]["objectId"]
        .as_str()
        .expect("the create answer carries the context pointer")
        .to_owned();
    let context = server.get("Context", &context_id).await;
    assert_eq!(context["sessionId"], session_id);
    assert!(visible_to(&server, &ada, "ChatSession", &session_id).await);
    assert!(visible_to(&server, &ada, "Context", &context_id).await);
    assert!(!visible_to(&server, &eve, "Context", &context_id).await);

    let before = server.count("Context").await;
    for body in [
        json!({"sessionId": session_id, "data": {}}),
        json!({"sessionId": session_id, "session": pointer("ChatSession", &session_id), "data": {}}),
    ] {
        let second = server
            .master(Method::POST, "/classes/Context", Some(body))
            .await;
        assert_parse_error(
            &second,
            400,
            137,
            Some("This session already has its Context."),
        );
    }
    assert_eq!(server.count("Context").await, before);
}

/// A Message or Context naming a session that does not exist is refused, also for the
/// master key (the README's walk-through used to "work" with made-up ids).
#[tokio::test]
async fn writes_must_name_an_existing_session() {
    let server = TestServer::new().await;
    let ghost = pointer("ChatSession", "doesNotExi");
    let message = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": ghost, "content": "hello?"})),
        )
        .await;
    assert_parse_error(
        &message,
        400,
        142,
        Some("session must name an existing ChatSession."),
    );
    let context = server
        .master(
            Method::POST,
            "/classes/Context",
            Some(json!({"sessionId": "doesNotExi", "data": {}})),
        )
        .await;
    assert_parse_error(&context, 400, 142, None);
    assert_eq!(server.count("Message").await, 0);
    assert_eq!(server.count("Context").await, 0);
}

/// The fields that describe a generation and its cost are the server's: a user's create or
/// update that sets one is refused with `119` and changes nothing.
#[tokio::test]
async fn clients_cannot_set_server_owned_message_fields() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let session_id = server.session_with(&ada, &[]).await;
    let session = pointer("ChatSession", &session_id);
    let persona = server.create("Persona", json!({"name": "Bot"})).await;
    let forged = [
        ("persona", pointer("Persona", &persona)),
        ("status", json!("streaming")),
        ("usage", json!({"total_tokens": 999_999})),
        ("usage.total_tokens", json!(999_999)),
        ("model", json!("gpt-9")),
        ("firstTokenMs", json!(1)),
        ("error", json!("made up")),
    ];
    for (field, value) in &forged {
        let mut body = json!({"session": session, "content": "hi"});
        body[*field] = value.clone();
        let reply = server
            .as_user(&ada, Method::POST, "/classes/Message", Some(body))
            .await;
        assert_parse_error(&reply, 400, 119, None);
        let top = field.split('.').next().unwrap();
        assert!(
            reply.body["error"].as_str().unwrap().contains(top),
            "{field}: {:?}",
            reply.body
        );
    }
    assert_eq!(server.count("Message").await, 0);

    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "hi"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let message_id = created.body["objectId"].as_str().unwrap().to_owned();
    let stored = server.get("Message", &message_id).await;
    for (field, value) in &forged {
        let mut body = json!({"content": "edited"});
        body[*field] = value.clone();
        let reply = server
            .as_user(
                &ada,
                Method::PUT,
                &format!("/classes/Message/{message_id}"),
                Some(body),
            )
            .await;
        assert_parse_error(&reply, 400, 119, None);
    }
    assert_eq!(server.get("Message", &message_id).await, stored);
    // Plain edits of one's own message still work.
    let edit = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/classes/Message/{message_id}"),
            Some(json!({"content": "edited"})),
        )
        .await;
    assert_eq!(edit.status.as_u16(), 200, "{:?}", edit.body);
}

/// A participant who left a session can no longer edit or delete what it wrote there, nor
/// its Context — even where an ACL the master wrote still grants it write.
#[tokio::test]
async fn membership_holds_for_updates_and_deletes() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let session_id = server.session_with(&ada, &[&bob]).await;
    let session = pointer("ChatSession", &session_id);
    let mut ids = Vec::new();
    for content in ["one", "two"] {
        let reply = server
            .as_user(
                &bob,
                Method::POST,
                "/classes/Message",
                Some(json!({"session": session, "content": content})),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        ids.push(reply.body["objectId"].as_str().unwrap().to_owned());
    }
    let context_id = server.get("ChatSession", &session_id).await["context"]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    let removed = server
        .change_participants(&ada, &session_id, "Remove", &bob)
        .await;
    assert_eq!(removed.status.as_u16(), 200, "{:?}", removed.body);
    // The master hands Bob write on his second message and on the Context again.
    let bob_writes = json!({bob.id.clone(): {"read": true, "write": true}});
    for (class_name, id) in [("Message", &ids[1]), ("Context", &context_id)] {
        let reply = server
            .master(
                Method::PUT,
                &format!("/classes/{class_name}/{id}"),
                Some(json!({"ACL": bob_writes})),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    }

    let edit = server
        .as_user(
            &bob,
            Method::PUT,
            &format!("/classes/Message/{}", ids[0]),
            Some(json!({"content": "rewritten"})),
        )
        .await;
    assert_parse_error(&edit, 404, 101, None);
    let edit = server
        .as_user(
            &bob,
            Method::PUT,
            &format!("/classes/Message/{}", ids[1]),
            Some(json!({"content": "rewritten"})),
        )
        .await;
    assert_parse_error(&edit, 400, 119, None);
    let edit = server
        .as_user(
            &bob,
            Method::PUT,
            &format!("/classes/Context/{context_id}"),
            Some(json!({"data": {"bob": "was here"}})),
        )
        .await;
    assert_parse_error(&edit, 400, 119, None);
    for id in &ids {
        let delete = server
            .as_user(
                &bob,
                Method::DELETE,
                &format!("/classes/Message/{id}"),
                None,
            )
            .await;
        assert!(
            !delete.status.is_success(),
            "a former member deleted {id}: {:?}",
            delete.body
        );
    }
    assert_eq!(server.get("Message", &ids[0]).await["content"], "one");
    assert_eq!(server.get("Message", &ids[1]).await["content"], "two");
    assert_eq!(server.get("Context", &context_id).await["data"], json!({}));
}

/// `user` posts `content` to session `session_id`.
async fn post_message(server: &TestServer, user: &User, session_id: &str, content: &str) -> Reply {
    let body = json!({"session": pointer("ChatSession", session_id), "content": content});
    server
        .as_user(user, Method::POST, "/classes/Message", Some(body))
        .await
}

/// Who may post is decided by the session as it is now: a participant who posted (so its
/// session was read and kept for the next message) is refused as soon as the owner removes
/// it, or the master takes its read away while it stays listed, and may post again once let
/// back in; an outsider never may.
#[tokio::test]
async fn posting_follows_the_session_as_it_is_now() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let eve = server.sign_up("eve").await;
    let session_id = server.session_with(&ada, &[&bob]).await;
    let session_path = format!("/classes/ChatSession/{session_id}");
    for content in ["one", "two"] {
        let reply = post_message(&server, &bob, &session_id, content).await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    }
    let outsider = post_message(&server, &eve, &session_id, "let me in").await;
    assert_parse_error(&outsider, 400, 119, None);

    for (op, allowed) in [("Remove", false), ("AddUnique", true)] {
        let reply = server
            .change_participants(&ada, &session_id, op, &bob)
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
        let post = post_message(&server, &bob, &session_id, op).await;
        if allowed {
            assert_eq!(post.status.as_u16(), 201, "{:?}", post.body);
        } else {
            assert_parse_error(&post, 400, 119, None);
        }
    }

    // Still listed, but the ACL the master wrote no longer lets Bob read the session.
    let acl = json!({"ACL": {ada.id.clone(): {"read": true, "write": true}}});
    let reply = server.master(Method::PUT, &session_path, Some(acl)).await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let unread = post_message(&server, &bob, &session_id, "unread").await;
    assert_parse_error(&unread, 400, 119, None);

    let stored = server.master(Method::GET, "/classes/Message", None).await;
    let contents: Vec<&Value> = stored.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| &message["content"])
        .collect();
    assert_eq!(
        contents,
        ["one", "two", "AddUnique"],
        "only accepted posts are stored"
    );
}

/// `participants` and `personas` take pointers; a plain objectId string is refused with a
/// `111` that shows the expected shape (not a misleading "cannot read" refusal).
#[tokio::test]
async fn session_lists_take_pointers() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bob = server.sign_up("bob").await;
    let persona = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Persona",
            Some(json!({"name": "Mine"})),
        )
        .await;
    let persona_id = persona.body["objectId"].as_str().unwrap().to_owned();
    for (body, expected) in [
        (
            json!({"participants": [bob.id.clone()]}),
            "participants must be an array of _User pointers",
        ),
        (
            json!({"participants": [], "personas": [persona_id.clone()]}),
            "personas must be an array of Persona pointers",
        ),
    ] {
        let reply = server
            .as_user(&ada, Method::POST, "/classes/ChatSession", Some(body))
            .await;
        assert_parse_error(&reply, 400, 111, None);
        assert!(
            reply.body["error"].as_str().unwrap().starts_with(expected),
            "{:?}",
            reply.body
        );
    }
    let created = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [pointer("_User", &bob.id)], "personas": [pointer("Persona", &persona_id)]})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
}
