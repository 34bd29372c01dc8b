//! Start-up and graceful stop: data, schemas and CLPs survive a restart on the same
//! data directory, and the template is not created twice.

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

fn on(database: &str) -> ServeOptions {
    ServeOptions {
        database: Some(database.to_owned()),
        ..ServeOptions::default()
    }
}

/// `stop()` finishes cleanly (the server task returns `Ok`), and a new server on the same
/// database sees the old objects, relations, schema changes and CLPs; the template classes
/// are not duplicated or reset.
#[tokio::test]
async fn a_restarted_server_sees_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/parlor.db", dir.path().display());

    let first = TestServer::with(on(&database)).await;
    let id = first
        .create(
            "Item",
            json!({"title": "kept", "n": 1, "ACL": {"*": {"read": true}}}),
        )
        .await;
    let member = first.create("Player", json!({"name": "p"})).await;
    first
        .master(Method::PUT, &format!("/classes/Item/{id}"), Some(json!({"members": {"__op": "AddRelation", "objects": [pointer("Player", &member)]}})))
        .await;
    first
        .create_class(
            "Ticket",
            json!({"fields": {"status": {"type": "String", "defaultValue": "open"}}}),
        )
        .await;
    first
        .set_clp(
            "Ticket",
            json!({"get": {"*": true}, "find": {}, "count": {}, "create": {"*": true}, "update": {}, "delete": {}, "addField": {}, "protectedFields": {"*": []}}),
        )
        .await;
    let schemas_before = first.master(Method::GET, "/schemas", None).await.body;
    let object_before = first.get("Item", &id).await;
    first.stop().await;

    let second = TestServer::with(on(&database)).await;
    assert_eq!(second.get("Item", &id).await, object_before);
    assert_eq!(second.count("Item").await, 1);
    let members = second
        .find(
            "Player",
            &[(
                "where",
                json!({"$relatedTo": {"object": pointer("Item", &id), "key": "members"}}),
            )],
        )
        .await;
    assert_eq!(ids(&members), vec![member]);
    let schemas_after = second.master(Method::GET, "/schemas", None).await.body;
    assert_eq!(schemas_after, schemas_before);

    let denied = second.public(Method::GET, "/classes/Ticket", None).await;
    assert_parse_error(
        &denied,
        400,
        119,
        Some("Permission denied for action find on class Ticket."),
    );
    let created = second
        .public(Method::POST, "/classes/Ticket", Some(json!({})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["status"], "open");

    // Writes keep working after the restart, and a third start sees them too.
    let reply = second
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"n": {"__op": "Increment", "amount": 1}})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "the ACL is public read only: {:?}",
        reply.body
    );
    let reply = second
        .master(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"n": {"__op": "Increment", "amount": 1}})),
        )
        .await;
    assert_eq!(reply.body["n"], json!(2));
    second.stop().await;
    let third = TestServer::with(on(&database)).await;
    assert_eq!(third.get("Item", &id).await["n"], json!(2));
    assert_eq!(third.count("Ticket").await, 1);
    third.stop().await;
}

/// A stopped server stops answering; stopping with requests just finished is clean.
#[tokio::test]
async fn stop_closes_the_listener() {
    let server = TestServer::new().await;
    server.create("Item", json!({"a": 1})).await;
    let health = server.url("/health");
    parlor_server::ai::provider::install_crypto_provider();
    let client = reqwest::Client::new();
    server.stop().await;
    let after = client.get(&health).send().await;
    assert!(
        after.is_err(),
        "the server still answers after stop: {after:?}"
    );
}
