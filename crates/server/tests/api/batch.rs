//! `POST /batch` (§4; checklist items 38–40).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Item 38: a mixed batch of 3 (create, update, delete of a missing object) → `200` with
/// `[{success},{success},{error:{code:101}}]` in request order; the writes happened.
#[tokio::test]
async fn mixed_batch_answers_in_order() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "old"})).await;
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": "new"}},
                {"method": "PUT", "path": format!("/parse/classes/Item/{id}"), "body": {"title": "changed", "n": {"__op": "Increment", "amount": 2}}},
                {"method": "DELETE", "path": "/parse/classes/Item/abcdefghij"},
            ], "transaction": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items = reply.body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(keys(&items[0]), vec!["success"]);
    assert_eq!(keys(&items[0]["success"]), vec!["createdAt", "objectId"]);
    assert!(is_object_id(
        items[0]["success"]["objectId"].as_str().unwrap()
    ));
    assert!(is_parse_date(
        items[0]["success"]["createdAt"].as_str().unwrap()
    ));
    assert_eq!(keys(&items[1]["success"]), vec!["n", "updatedAt"]);
    assert_eq!(items[1]["success"]["n"], json!(2));
    assert_eq!(
        items[2],
        json!({"error": {"code": 101, "error": "Object not found."}})
    );

    let created = items[0]["success"]["objectId"].as_str().unwrap();
    assert_eq!(server.get("Item", created).await["title"], "new");
    assert_eq!(server.get("Item", &id).await["title"], "changed");
    assert_eq!(server.count("Item").await, 2);
}

/// Batch items may read and delete too, and run in order: a later item sees an earlier
/// item's write.
#[tokio::test]
async fn batch_items_read_and_delete_in_order() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    let path = format!("/parse/classes/Item/{id}");
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "PUT", "path": path, "body": {"title": "b"}},
                {"method": "GET", "path": path},
                {"method": "GET", "path": "/parse/classes/Item", "body": {"where": {"title": "b"}}},
                {"method": "DELETE", "path": path},
                {"method": "GET", "path": path},
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items = reply.body.as_array().unwrap();
    assert_eq!(items[1]["success"]["title"], "b");
    assert_eq!(items[2]["success"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(items[3], json!({"success": {}}));
    assert_eq!(items[4]["error"]["code"], 101);
    assert_eq!(server.count("Item").await, 0);
}

/// Item 39: a path without the mount prefix fails that item with 107 (the others still
/// run); an unroutable path fails with 107; `requests` that is not an array → `400 107`.
#[tokio::test]
async fn batch_paths_and_shape_are_checked() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "seed"})).await;
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "POST", "path": "/classes/Item", "body": {"title": "no mount"}},
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": "ok"}},
                {"method": "GET", "path": "/parse/nowhere"},
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items = reply.body.as_array().unwrap();
    assert_eq!(items[0]["error"]["code"], 107);
    assert_eq!(
        items[0]["error"]["error"],
        "cannot route batch path /classes/Item"
    );
    assert!(items[1]["success"]["objectId"].is_string());
    assert_eq!(items[2]["error"]["code"], 107);
    assert!(
        server
            .find("Item", &[("where", json!({"title": "no mount"}))])
            .await
            .is_empty()
    );
    assert_eq!(server.count("Item").await, 2);

    for body in [
        json!({"requests": {"method": "GET"}}),
        json!({"requests": "x"}),
        json!({}),
        json!([1]),
    ] {
        let reply = server
            .public(Method::POST, "/batch", Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body,
            json!({"code": 107, "error": "requests must be an array"}),
            "{body}"
        );
    }
}

/// Each item uses the outer request's auth: a public batch cannot touch a master-only
/// object, a master batch can.
#[tokio::test]
async fn batch_items_use_the_outer_auth() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"title": "locked", "ACL": {}}))
        .await;
    let body = json!({"requests": [{"method": "PUT", "path": format!("/parse/classes/Item/{id}"), "body": {"title": "x"}}]});
    let public = server
        .public(Method::POST, "/batch", Some(body.clone()))
        .await;
    assert_eq!(
        public.body,
        json!([{"error": {"code": 101, "error": "Object not found."}}])
    );
    assert_eq!(server.get("Item", &id).await["title"], "locked");
    let master = server.master(Method::POST, "/batch", Some(body)).await;
    assert!(
        master.body[0]["success"]["updatedAt"].is_string(),
        "{:?}",
        master.body
    );
    assert_eq!(server.get("Item", &id).await["title"], "x");

    // A public batch cannot create a class either.
    let create = server
        .public(Method::POST, "/batch", Some(json!({"requests": [{"method": "POST", "path": "/parse/classes/Nope", "body": {}}]})))
        .await;
    assert_eq!(create.body[0]["error"]["code"], 119);
}

/// Item 40: `transaction:true` with a failing item (a type mismatch) → `400` with that
/// item's code, and none of the other writes persist.
#[tokio::test]
async fn transaction_with_a_failing_item_keeps_nothing() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "old", "n": 1})).await;
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"transaction": true, "requests": [
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": "a"}},
                {"method": "PUT", "path": format!("/parse/classes/Item/{id}"), "body": {"title": "changed"}},
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": 5}},
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": "c"}},
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"code": 111, "error": "schema mismatch for Item.title; expected String but got Number"})
    );
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.get("Item", &id).await["title"], "old");
}

/// Item 40 and §4: a transaction whose failing item is a missing object (detected at
/// commit time) is rolled back and answers `400` with `{code:101,…}` (§4: "We answer 400
/// with the first failing item's {code,error}").
#[tokio::test]
async fn transaction_failing_at_commit_rolls_back() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "old", "n": 1})).await;
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"transaction": true, "requests": [
                {"method": "POST", "path": "/parse/classes/Item", "body": {"title": "a"}},
                {"method": "PUT", "path": format!("/parse/classes/Item/{id}"), "body": {"n": {"__op": "Increment", "amount": 1}}},
                {"method": "DELETE", "path": "/parse/classes/Item/abcdefghij"},
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.body["code"], 101);
    assert!(reply.body["error"].is_string());
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.get("Item", &id).await["n"], json!(1));
}

/// A successful transaction answers every item, in order, and keeps every write.
#[tokio::test]
async fn successful_transaction_keeps_everything() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"n": 1})).await;
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({"transaction": true, "requests": [
                {"method": "POST", "path": "/parse/classes/Item", "body": {"n": 10}},
                {"method": "PUT", "path": format!("/parse/classes/Item/{id}"), "body": {"n": {"__op": "Increment", "amount": 1}}},
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items = reply.body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[0]["success"]["objectId"].is_string());
    assert_eq!(items[1]["success"]["n"], json!(2));
    assert_eq!(server.count("Item").await, 2);
}

/// A batch of 60 creates (more than the JS SDK's chunks of 20) works.
#[tokio::test]
async fn sixty_item_batch_works() {
    let server = TestServer::new().await;
    server.create("Item", json!({"i": -1})).await;
    let requests: Vec<Value> = (0..60)
        .map(|i| json!({"method": "POST", "path": "/parse/classes/Item", "body": {"i": i}}))
        .collect();
    let reply = server
        .public(
            Method::POST,
            "/batch",
            Some(json!({ "requests": requests })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let items = reply.body.as_array().unwrap();
    assert_eq!(items.len(), 60);
    assert!(
        items
            .iter()
            .all(|item| item["success"]["objectId"].is_string()),
        "{:?}",
        reply.body
    );
    assert_eq!(server.count("Item").await, 61);
    let sorted = server
        .find(
            "Item",
            &[
                ("order", json!("i")),
                ("limit", json!(1000)),
                ("where", json!({"i": {"$gte": 0}})),
            ],
        )
        .await;
    assert_eq!(
        values(&sorted, "i"),
        (0..60).map(|i| json!(i)).collect::<Vec<_>>()
    );
}
