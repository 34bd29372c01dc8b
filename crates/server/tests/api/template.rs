//! The AI chat template's classes and the values its rules fill in.

use reqwest::Method;
use serde_json::json;

use crate::common::TestServer;

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
