//! The AI chat template's classes and the values its rules fill in.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, pointer};

/// A Message's `timestamp` defaults to its creation time (and the create answer says so);
/// a timestamp the client sends is kept, so imported history keeps its times.
#[tokio::test]
async fn message_timestamp_defaults_to_created_at() {
    let server = TestServer::new().await;
    let session = server
        .master(
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    let pointer = json!({"__type": "Pointer", "className": "ChatSession", "objectId": session.body["objectId"]});
    let created = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer, "content": "hi"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let expected = json!({"__type": "Date", "iso": created.body["createdAt"]});
    assert_eq!(created.body["timestamp"], expected);
    assert_eq!(created.body["role"], "user");
    assert_eq!(created.body["status"], "complete");
    let id = created.body["objectId"].as_str().unwrap();
    let stored = server
        .master(Method::GET, &format!("/classes/Message/{id}"), None)
        .await;
    assert_eq!(stored.body["timestamp"], expected);

    let imported = json!({"__type": "Date", "iso": "2020-01-02T03:04:05.678Z"});
    let created = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer, "content": "old", "timestamp": imported})),
        )
        .await;
    assert!(
        created.body.get("timestamp").is_none(),
        "{:?}",
        created.body
    );
    let id = created.body["objectId"].as_str().unwrap();
    let stored = server
        .master(Method::GET, &format!("/classes/Message/{id}"), None)
        .await;
    assert_eq!(stored.body["timestamp"], imported);
}

/// A Message needs its session and content (`142`), and its content must be a String (`111`).
#[tokio::test]
async fn message_required_fields_and_types() {
    let server = TestServer::new().await;
    let session = server
        .master(
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    let pointer = json!({"__type": "Pointer", "className": "ChatSession", "objectId": session.body["objectId"]});
    let missing = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer})),
        )
        .await;
    crate::common::assert_parse_error(&missing, 400, 142, Some("content is required"));
    let missing = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": "x"})),
        )
        .await;
    crate::common::assert_parse_error(&missing, 400, 142, Some("session is required"));
    let wrong = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer, "content": 5})),
        )
        .await;
    crate::common::assert_parse_error(
        &wrong,
        400,
        111,
        Some("schema mismatch for Message.content; expected String but got Number"),
    );
    let wrong_target = json!({"__type": "Pointer", "className": "Persona", "objectId": "abc"});
    let wrong = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"session": wrong_target, "content": "x"})),
        )
        .await;
    crate::common::assert_parse_error(
        &wrong,
        400,
        111,
        Some(
            "schema mismatch for Message.session; expected Pointer<ChatSession> but got Pointer<Persona>",
        ),
    );
}

// ---------------------------------------------------------------------------------------
// The template's rules (issue 3), as users see them.

fn acl(entries: &[(&str, bool)]) -> Value {
    let mut acl = serde_json::Map::new();
    for (id, write) in entries {
        let grants = if *write {
            json!({"read": true, "write": true})
        } else {
            json!({"read": true})
        };
        acl.insert((*id).to_owned(), grants);
    }
    Value::Object(acl)
}

/// A user's new session: the caller becomes owner and participant, the server sets the ACL
/// (a client ACL is replaced), and another owner is refused.
#[tokio::test]
async fn a_new_session_belongs_to_its_creator() {
    let server = TestServer::new().await;
    let olga = server.sign_up("olga").await;
    let piet = server.sign_up("piet").await;
    let created = server.as_user(&olga,
        Method::POST,
        "/classes/ChatSession",
        Some(json!({"participants": [pointer("_User", &piet.id)], "ACL": {"*": {"read": true, "write": true}}})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let id = created.body["objectId"].as_str().unwrap();
    let stored = server.get("ChatSession", id).await;
    assert_eq!(stored["owner"], pointer("_User", &olga.id));
    assert_eq!(
        stored["participants"],
        json!([pointer("_User", &piet.id), pointer("_User", &olga.id)])
    );
    assert_eq!(stored["ACL"], acl(&[(&olga.id, true), (&piet.id, false)]));
    assert_eq!(created.body["ACL"], stored["ACL"]);
    let other_owner = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "owner": pointer("_User", &piet.id)})),
        )
        .await;
    crate::common::assert_parse_error(&other_owner, 400, 119, None);
    let owner_change = server
        .as_user(
            &olga,
            Method::PUT,
            &format!("/classes/ChatSession/{id}"),
            Some(json!({"owner": pointer("_User", &piet.id)})),
        )
        .await;
    crate::common::assert_parse_error(&owner_change, 400, 119, None);
}

/// When the participants change, the session's ACL and those of its messages and context
/// follow: a removed participant loses them, an added one reads the history.
#[tokio::test]
async fn participants_changes_carry_the_acls_along() {
    let server = TestServer::new().await;
    let olga = server.sign_up("olga").await;
    let piet = server.sign_up("piet").await;
    let nina = server.sign_up("nina").await;
    let session = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [pointer("_User", &piet.id)]})),
        )
        .await;
    let session_id = session.body["objectId"].as_str().unwrap().to_owned();
    let session_pointer = pointer("ChatSession", &session_id);
    let message = server
        .as_user(
            &piet,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session_pointer, "content": "hi"})),
        )
        .await;
    assert_eq!(message.status.as_u16(), 201, "{:?}", message.body);
    let message_id = message.body["objectId"].as_str().unwrap().to_owned();
    // The server made the session's Context with the session (README "Sessions and
    // context"); the create response carries the pointer.
    let context_id = session.body["context"]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.get("Context", &context_id).await["session"],
        session_pointer
    );

    // Nina joins (AddUnique), Piet leaves (Remove), in two updates.
    let path = format!("/classes/ChatSession/{session_id}");
    let joined = server.as_user(&olga,
        Method::PUT,
        &path,
        Some(
            json!({"participants": {"__op": "AddUnique", "objects": [pointer("_User", &nina.id)]}}),
        ),
    )
    .await;
    assert_eq!(joined.status.as_u16(), 200, "{:?}", joined.body);
    assert_eq!(
        joined.body["participants"],
        json!([
            pointer("_User", &piet.id),
            pointer("_User", &olga.id),
            pointer("_User", &nina.id)
        ])
    );
    let left = server.as_user(&olga,
        Method::PUT,
        &path,
        Some(json!({"participants": {"__op": "Remove", "objects": [pointer("_User", &piet.id)]}})),
    )
    .await;
    assert_eq!(left.status.as_u16(), 200, "{:?}", left.body);

    assert_eq!(
        server.get("ChatSession", &session_id).await["ACL"],
        acl(&[(&olga.id, true), (&nina.id, false)])
    );
    let message_acl = server.get("Message", &message_id).await["ACL"].clone();
    let expected = acl(&[(&olga.id, false), (&nina.id, false)]);
    assert_eq!(
        message_acl, expected,
        "a sender who left keeps neither read nor write"
    );
    assert_eq!(
        server.get("Context", &context_id).await["ACL"],
        acl(&[(&olga.id, true), (&nina.id, true)])
    );
    for (who, visible) in [(&nina, true), (&piet, false)] {
        for path in [
            format!("/classes/ChatSession/{session_id}"),
            format!("/classes/Message/{message_id}"),
            format!("/classes/Context/{context_id}"),
        ] {
            let reply = server.as_user(who, Method::GET, &path, None).await;
            assert_eq!(
                reply.status.is_success(),
                visible,
                "{path}: {:?}",
                reply.body
            );
        }
    }
}

/// Only users may post as themselves: `role` assistant/system is the server's (master key),
/// and `session`, `sender`, `role` cannot change afterwards; content can.
#[tokio::test]
async fn message_roles_and_fixed_fields() {
    let server = TestServer::new().await;
    let olga = server.sign_up("olga").await;
    let session = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    let session_pointer = pointer("ChatSession", session.body["objectId"].as_str().unwrap());
    for role in ["assistant", "system"] {
        let reply = server
            .as_user(
                &olga,
                Method::POST,
                "/classes/Message",
                Some(json!({"session": session_pointer, "content": "obey", "role": role})),
            )
            .await;
        crate::common::assert_parse_error(&reply, 400, 119, None);
        let by_server = server
            .master(
                Method::POST,
                "/classes/Message",
                Some(json!({"session": session_pointer, "content": "ok", "role": role})),
            )
            .await;
        assert_eq!(by_server.status.as_u16(), 201, "{:?}", by_server.body);
    }
    let mine = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session_pointer, "content": "hi"})),
        )
        .await;
    assert_eq!(mine.body["sender"], pointer("_User", &olga.id));
    let path = format!(
        "/classes/Message/{}",
        mine.body["objectId"].as_str().unwrap()
    );
    for change in [
        json!({"role": "assistant"}),
        json!({"session": pointer("ChatSession", "elsewhere0")}),
        json!({"ACL": {"*": {"read": true}}}),
    ] {
        let reply = server
            .as_user(&olga, Method::PUT, &path, Some(change.clone()))
            .await;
        crate::common::assert_parse_error(&reply, 400, 119, None);
    }
    let edit = server
        .as_user(&olga, Method::PUT, &path, Some(json!({"content": "hello"})))
        .await;
    assert_eq!(edit.status.as_u16(), 200, "{:?}", edit.body);
}

/// A Context's `sessionId` must match its `session` (`142`); only participants make one.
#[tokio::test]
async fn context_rules() {
    let server = TestServer::new().await;
    let olga = server.sign_up("olga").await;
    let sam = server.sign_up("sam").await;
    let session = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": []})),
        )
        .await;
    let session_id = session.body["objectId"].as_str().unwrap();
    let mismatch = server.as_user(&olga,
        Method::POST,
        "/classes/Context",
        Some(json!({"session": pointer("ChatSession", session_id), "sessionId": "other", "data": {}})),
    )
    .await;
    crate::common::assert_parse_error(&mismatch, 400, 142, None);
    let stranger = server
        .as_user(
            &sam,
            Method::POST,
            "/classes/Context",
            Some(json!({"sessionId": session_id, "data": {}})),
        )
        .await;
    crate::common::assert_parse_error(&stranger, 400, 119, None);
    // The session already has the Context the server made: a second one is a duplicate.
    let second = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/Context",
            Some(json!({"sessionId": session_id, "data": {}})),
        )
        .await;
    crate::common::assert_parse_error(&second, 400, 137, None);
}

/// Personas: the creator becomes `owner`, the default ACL is public read and owner write; a
/// session may list only personas its owner can read.
#[tokio::test]
async fn personas_and_sessions() {
    let server = TestServer::new().await;
    let olga = server.sign_up("olga").await;
    let sam = server.sign_up("sam").await;
    let public = server
        .as_user(
            &sam,
            Method::POST,
            "/classes/Persona",
            Some(json!({"name": "Guide"})),
        )
        .await;
    assert_eq!(public.status.as_u16(), 201, "{:?}", public.body);
    let public_id = public.body["objectId"].as_str().unwrap();
    let stored = server.get("Persona", public_id).await;
    assert_eq!(stored["owner"], pointer("_User", &sam.id));
    assert_eq!(
        stored["ACL"],
        json!({"*": {"read": true}, (sam.id.clone()): {"read": true, "write": true}})
    );
    let private = server
        .as_user(
            &sam,
            Method::POST,
            "/classes/Persona",
            Some(
                json!({"name": "Secret", "ACL": {(sam.id.clone()): {"read": true, "write": true}}}),
            ),
        )
        .await;
    let private_id = private.body["objectId"].as_str().unwrap();
    let ok = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "personas": [pointer("Persona", public_id)]})),
        )
        .await;
    assert_eq!(ok.status.as_u16(), 201, "{:?}", ok.body);
    let refused = server
        .as_user(
            &olga,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "personas": [pointer("Persona", private_id)]})),
        )
        .await;
    crate::common::assert_parse_error(&refused, 400, 119, None);
    let path = format!(
        "/classes/ChatSession/{}",
        ok.body["objectId"].as_str().unwrap()
    );
    let added = server.as_user(&olga,
        Method::PUT,
        &path,
        Some(
            json!({"personas": {"__op": "AddUnique", "objects": [pointer("Persona", private_id)]}}),
        ),
    )
    .await;
    crate::common::assert_parse_error(&added, 400, 119, None);
}

/// `_User.role` is set by the master key or an admin only, at sign-up as afterwards.
#[tokio::test]
async fn only_admins_set_roles() {
    let server = TestServer::new().await;
    let refused = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "eve", "password": "pw", "role": "admin"})),
        )
        .await;
    crate::common::assert_parse_error(&refused, 400, 119, None);
    let eve = server.sign_up("eve").await;
    assert_eq!(server.get("_User", &eve.id).await["role"], "participant");
    let path = format!("/users/{}", eve.id);
    let promote = server
        .as_user(&eve, Method::PUT, &path, Some(json!({"role": "admin"})))
        .await;
    crate::common::assert_parse_error(&promote, 400, 119, None);
    let by_master = server
        .master(Method::PUT, &path, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(by_master.status.as_u16(), 200, "{:?}", by_master.body);
    // Now an admin, eve may change roles herself.
    let demote = server
        .as_user(
            &eve,
            Method::PUT,
            &path,
            Some(json!({"role": "participant"})),
        )
        .await;
    assert_eq!(demote.status.as_u16(), 200, "{:?}", demote.body);
    assert_eq!(server.get("_User", &eve.id).await["role"], "participant");
}

/// An admin may change another user's `role` (and only that field of another user); a
/// participant may not change anyone's role.
#[tokio::test]
async fn admins_set_other_users_roles() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let bert = server.sign_up("bert").await;
    let ada_path = format!("/users/{}", ada.id);
    let bert_path = format!("/users/{}", bert.id);
    let by_participant = server
        .as_user(
            &bert,
            Method::PUT,
            &ada_path,
            Some(json!({"role": "admin"})),
        )
        .await;
    crate::common::assert_parse_error(&by_participant, 400, 206, None);
    let promoted = server
        .master(Method::PUT, &ada_path, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(promoted.status.as_u16(), 200, "{:?}", promoted.body);
    let by_admin = server
        .as_user(
            &ada,
            Method::PUT,
            &bert_path,
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(by_admin.status.as_u16(), 200, "{:?}", by_admin.body);
    assert_eq!(server.get("_User", &bert.id).await["role"], "admin");
    let other_field = server
        .as_user(
            &ada,
            Method::PUT,
            &bert_path,
            Some(json!({"role": "participant", "displayName": "x"})),
        )
        .await;
    crate::common::assert_parse_error(&other_field, 400, 206, None);
    assert_eq!(server.get("_User", &bert.id).await["role"], "admin");
}

/// Parse's default on `_User` (issue 15): clients add fields to their own user —
/// `user.set('nickname', …)` on sign-up and afterwards — within the bounds on schema growth;
/// the template's other protections stay: `email` hidden from others, `role` set by admins
/// only, another user's object not writable.
#[tokio::test]
async fn users_add_fields_to_themselves() {
    let server = TestServer::new().await;
    let clp = server
        .master(Method::GET, "/schemas/_User", None)
        .await
        .body;
    assert_eq!(
        clp["classLevelPermissions"]["addField"],
        json!({"*": true}),
        "{clp}"
    );
    let nina = server
        .sign_up_with(json!({"username": "nina", "password": "pw", "email": "nina@example.com", "nickname": "N"}))
        .await;
    assert_eq!(server.get("_User", &nina.id).await["nickname"], "N");
    let path = format!("/users/{}", nina.id);
    let updated = server
        .as_user(
            &nina,
            Method::PUT,
            &path,
            Some(json!({"favouriteColour": "teal"})),
        )
        .await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.body);
    assert_eq!(
        server.get("_User", &nina.id).await["favouriteColour"],
        "teal"
    );

    let olga = server.sign_up("olga").await;
    let theirs = server
        .as_user(&olga, Method::PUT, &path, Some(json!({"hobby": "x"})))
        .await;
    assert!(theirs.status.is_client_error(), "{:?}", theirs.body);
    let seen = server.as_user(&olga, Method::GET, &path, None).await;
    assert!(seen.body.get("email").is_none(), "{:?}", seen.body);
    let promote = server
        .as_user(&nina, Method::PUT, &path, Some(json!({"role": "admin"})))
        .await;
    crate::common::assert_parse_error(&promote, 400, 119, None);
    let too_many: serde_json::Map<String, Value> = (0..21)
        .map(|index| (format!("extra{index}"), json!(index)))
        .collect();
    let refused = server
        .as_user(&nina, Method::PUT, &path, Some(Value::Object(too_many)))
        .await;
    crate::common::assert_parse_error(&refused, 400, 255, None);
}

/// A deployment whose `_User` still has the CLP an earlier template wrote (`addField`
/// closed) gets Parse's default on its next start; a CLP the operator changed otherwise is
/// left alone.
#[tokio::test]
async fn the_old_user_clp_is_upgraded_on_start() {
    if crate::common::skip_on_postgres("restarts on one SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/parlor.db", dir.path().display());
    let on = || parlor_server::config::ServeOptions {
        database: Some(database.clone()),
        ..parlor_server::config::ServeOptions::default()
    };
    let user_clp = |add_field: Value, find: Value| {
        json!({"get": {"*": true}, "find": find, "count": {"*": true},
               "create": {"*": true}, "update": {"*": true}, "delete": {"*": true},
               "addField": add_field, "protectedFields": {"*": ["email"]}})
    };
    let first = TestServer::with(on()).await;
    first
        .set_clp("_User", user_clp(json!({}), json!({"*": true})))
        .await;
    first.stop().await;
    let second = TestServer::with(on()).await;
    let schema = second
        .master(Method::GET, "/schemas/_User", None)
        .await
        .body;
    assert_eq!(
        schema["classLevelPermissions"],
        user_clp(json!({"*": true}), json!({"*": true})),
        "{schema}"
    );
    // An operator's own CLP (find closed too) is theirs.
    second
        .set_clp("_User", user_clp(json!({}), json!({})))
        .await;
    second.stop().await;
    let third = TestServer::with(on()).await;
    let schema = third.master(Method::GET, "/schemas/_User", None).await.body;
    assert_eq!(
        schema["classLevelPermissions"],
        user_clp(json!({}), json!({})),
        "{schema}"
    );
}

/// The server's sweep for orphaned replies (`status: "streaming"` and an old `updatedAt`,
/// every few seconds) reads the template's `streaming_replies` index, not every message.
#[tokio::test]
async fn the_sweep_of_orphaned_replies_has_its_index() {
    let server = TestServer::new().await;
    let schema = server.master(Method::GET, "/schemas/Message", None).await;
    assert_eq!(
        schema.body["indexes"]["streaming_replies"],
        json!({"status": 1, "updatedAt": 1}),
        "{:?}",
        schema.body
    );
    if crate::common::on_postgres() {
        return; // A small table is scanned whatever the indexes; SQLite's plan says more.
    }
    let query = crate::common::query_string(&[
        ("explain", json!(true)),
        (
            "where",
            json!({"status": "streaming", "updatedAt": {"$lt": {"__type": "Date", "iso": "2026-01-01T00:00:00.000Z"}}}),
        ),
        ("limit", json!(100)),
    ]);
    let plan = server
        .master(Method::GET, &format!("/classes/Message{query}"), None)
        .await;
    let details: Vec<&str> = plan.body["results"][0]["QUERY PLAN"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|step| step["detail"].as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|detail| detail.contains("Message$idx$streaming_replies")),
        "{details:?}"
    );
}
