//! Limits a client can reach (issue 10): how far writes without the master key may grow a
//! class (`--max-new-fields-per-request`, `--max-fields-per-class`), and the database's own
//! limits (columns per table, name lengths, value sizes, query size), each answered with a
//! Parse 4xx that changes nothing — never a 500.

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::common::*;

/// A body with `count` new Number fields `k0…`, plus `base`.
fn with_keys(base: Value, count: usize) -> Value {
    let mut body: Map<String, Value> = base.as_object().cloned().unwrap_or_default();
    for index in 0..count {
        body.insert(format!("k{index}"), json!(index));
    }
    Value::Object(body)
}

/// The field names of a class, as the master key sees them.
async fn field_names(server: &TestServer, class_name: &str) -> Vec<String> {
    let schema = server
        .master(Method::GET, &format!("/schemas/{class_name}"), None)
        .await;
    assert_eq!(schema.status, StatusCode::OK, "{:?}", schema.body);
    schema.body["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

/// The probe: an anonymous `POST /installations` with 2,100 new keys is refused at
/// once with `255` (20 new fields per write by default) and adds nothing; 20 new fields are
/// accepted, on create and on update alike.
#[tokio::test]
async fn a_client_write_adds_at_most_20_new_fields() {
    let server = TestServer::new().await;
    let before = field_names(&server, "_Installation").await;
    let probe = server
        .public(
            Method::POST,
            "/installations",
            Some(with_keys(
                json!({"deviceType": "ios", "installationId": "probe-1"}),
                2100,
            )),
        )
        .await;
    assert_parse_error(&probe, 400, 255, None);
    let message = probe.body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("Too many new fields") && message.contains("at most 20"),
        "{message}"
    );
    assert_eq!(field_names(&server, "_Installation").await, before);
    let installations = server
        .find_as(
            true,
            "_Installation",
            &[("count", json!(1)), ("limit", json!(0))],
        )
        .await;
    assert_eq!(installations.body["count"], 0, "{:?}", installations.body);

    // A class without a CLP: 21 new fields are refused, 20 are fine; updates count the same.
    server.create_class("Note", json!({})).await;
    let refused = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(with_keys(json!({}), 21)),
        )
        .await;
    assert_parse_error(&refused, 400, 255, None);
    assert_eq!(server.count("Note").await, 0);
    let created = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(with_keys(json!({}), 20)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["objectId"].as_str().unwrap().to_owned();
    let mut more: Map<String, Value> = Map::new();
    for index in 0..21 {
        more.insert(format!("m{index}"), json!("x"));
    }
    let path = format!("/classes/Note/{id}");
    let update = server
        .public(Method::PUT, &path, Some(Value::Object(more)))
        .await;
    assert_parse_error(&update, 400, 255, None);
    let fields = field_names(&server, "Note").await;
    assert!(
        !fields.iter().any(|name| name.starts_with('m')),
        "{fields:?}"
    );
    assert!(server.get("Note", &id).await.get("m0").is_none());

    // The master key is not bound by it.
    let by_master = server
        .master(
            Method::POST,
            "/classes/Note",
            Some(with_keys(json!({}), 40)),
        )
        .await;
    assert_eq!(
        by_master.status,
        StatusCode::CREATED,
        "{:?}",
        by_master.body
    );
}

/// `--max-fields-per-class`: writes without the master key may not take a class past it
/// (the default fields count); the master key still may; 0 turns a limit off.
#[tokio::test]
async fn client_writes_stop_at_the_class_field_cap() {
    let server = TestServer::with(ServeOptions {
        max_fields_per_class: Some(10),
        max_new_fields_per_request: Some(0),
        ..ServeOptions::default()
    })
    .await;
    // objectId, createdAt, updatedAt, ACL and a: 5 fields.
    server
        .create_class("Note", json!({"fields": {"a": {"type": "String"}}}))
        .await;
    let up_to_the_cap = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(json!({"b": 1, "c": 1, "d": 1, "e": 1, "f": 1})),
        )
        .await;
    assert_eq!(
        up_to_the_cap.status,
        StatusCode::CREATED,
        "{:?}",
        up_to_the_cap.body
    );
    let past_it = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(json!({"a": "x", "g": 1})),
        )
        .await;
    assert_parse_error(&past_it, 400, 255, None);
    let message = past_it.body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("Note has 10 fields") && message.contains("past 10"),
        "{message}"
    );
    assert_eq!(server.count("Note").await, 1);
    assert!(!field_names(&server, "Note").await.contains(&"g".to_owned()));
    // Known fields are still written.
    let known = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(json!({"a": "x", "b": 2})),
        )
        .await;
    assert_eq!(known.status, StatusCode::CREATED, "{:?}", known.body);
    // The per-write limit is off (0): a big write fits under a higher cap.
    let by_master = server
        .master(Method::POST, "/classes/Note", Some(json!({"g": 1})))
        .await;
    assert_eq!(
        by_master.status,
        StatusCode::CREATED,
        "{:?}",
        by_master.body
    );
}

/// The database's column limit (SQLite 2,000, PostgreSQL 1,600 per table) is a `255` that
/// changes nothing, even for the master key, and the class keeps working afterwards.
#[tokio::test]
async fn the_databases_column_limit_is_a_client_error() {
    let server = TestServer::new().await;
    let before = field_names(&server, "_Installation").await;
    let reply = server
        .master(
            Method::POST,
            "/installations",
            Some(with_keys(
                json!({"deviceType": "ios", "installationId": "probe-2"}),
                2100,
            )),
        )
        .await;
    assert_parse_error(&reply, 400, 255, None);
    let message = reply.body["error"].as_str().unwrap_or_default();
    assert!(message.contains("Too many fields"), "{message}");
    assert_eq!(field_names(&server, "_Installation").await, before);
    let registered = server
        .public(
            Method::POST,
            "/installations",
            Some(json!({"deviceType": "ios", "installationId": "after-the-probe", "k0": 1})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );

    // PostgreSQL counts the columns of deleted fields until the table is rewritten: only
    // the database knows, and its refusal is the same 255.
    if on_postgres() {
        let fields = |range: std::ops::Range<usize>, definition: Value| {
            let fields: Map<String, Value> = range
                .map(|index| (format!("w{index}"), definition.clone()))
                .collect();
            json!({ "fields": fields })
        };
        server
            .create_class("Wide", fields(0..1500, json!({"type": "Number"})))
            .await;
        let deleted = server
            .master(
                Method::PUT,
                "/schemas/Wide",
                Some(fields(0..1500, json!({"__op": "Delete"}))),
            )
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
        let again = server
            .master(
                Method::PUT,
                "/schemas/Wide",
                Some(fields(2000..2200, json!({"type": "Number"}))),
            )
            .await;
        assert_parse_error(&again, 400, 255, None);
        assert_eq!(field_names(&server, "Wide").await.len(), 4);
    }
}

/// Names PostgreSQL would cut to 63 bytes (and so could confuse) are refused there with
/// `105`/`103` before anything changes; SQLite keeps them whole.
#[tokio::test]
async fn names_longer_than_the_database_keeps() {
    let server = TestServer::new().await;
    server.create_class("Note", json!({})).await;
    let long_field = format!("f{}", "x".repeat(70));
    let reply = server
        .public(
            Method::POST,
            "/classes/Note",
            Some(json!({ long_field.clone(): 1 })),
        )
        .await;
    let long_class = format!("C{}", "y".repeat(70));
    let class_reply = server
        .master(
            Method::POST,
            &format!("/classes/{long_class}"),
            Some(json!({"a": 1})),
        )
        .await;
    if on_postgres() {
        assert_parse_error(&reply, 400, 105, None);
        assert!(!field_names(&server, "Note").await.contains(&long_field));
        assert_parse_error(&class_reply, 400, 103, None);
        let schemas = server.master(Method::GET, "/schemas", None).await.body;
        assert!(!schemas.to_string().contains(&long_class), "{schemas}");
    } else {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        assert_eq!(
            class_reply.status,
            StatusCode::CREATED,
            "{:?}",
            class_reply.body
        );
    }
}

/// Queries within the parser's own bounds (1,000 values per `$in`, 1,000 terms per
/// `$or`/`$and`) can still pass the database's: an expression tree deeper than SQLite builds
/// (its `OR` chains), more bound values than PostgreSQL's protocol carries (65,535). Such a
/// query is a `102` — or it runs — never a 500.
#[tokio::test]
async fn oversized_queries_are_refused_cleanly() {
    let server = TestServer::new().await;
    server.create("Note", json!({"n": 1})).await;
    let long_or: Vec<Value> = (0..1000).map(|n| json!({"n": n})).collect();
    let wide_and: Vec<Value> = (0..70)
        .map(|_| json!({"n": {"$in": (0..999).collect::<Vec<i64>>()}}))
        .collect();
    for (what, constraint) in [
        ("$or", json!({"$or": long_or})),
        ("$and of $in", json!({"$and": wide_and})),
    ] {
        let reply = server
            .js_sdk(
                "/classes/Note",
                json!({"_method": "GET", "_ApplicationId": APP_ID, "where": constraint}),
            )
            .await;
        match reply.status {
            StatusCode::OK => {
                assert_eq!(
                    reply.body["results"].as_array().map(Vec::len),
                    Some(1),
                    "{what}: {:?}",
                    reply.body
                );
            }
            _ => assert_parse_error(&reply, 400, 102, None),
        }
    }
}

/// A value past PostgreSQL's index-row limit (an 8,000-character username in its unique
/// index) is a `116` there; SQLite stores it.
#[tokio::test]
async fn values_too_large_for_an_index() {
    let server = TestServer::new().await;
    // Not repetitive, so that PostgreSQL cannot compress it under the limit.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let username: String = (0..8000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let reply = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": username, "password": "pw"})),
        )
        .await;
    if on_postgres() {
        assert_parse_error(&reply, 400, 116, None);
        assert_eq!(
            server
                .find_as(true, "_User", &[("count", json!(1)), ("limit", json!(0))])
                .await
                .body["count"],
            0
        );
    } else {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
}
