//! Hostile and malformed input: each gets its Parse error, never a 5xx, and changes
//! nothing (verified with a count or a read afterwards).

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Values that would break naively built SQL, LIKE patterns or JSON paths.
const HOSTILE: [&str; 14] = [
    "'; DROP TABLE \"Message\";--",
    "Robert'); DROP TABLE Item;--",
    "' OR '1'='1",
    "%",
    "_",
    "50%_off",
    "\"",
    "\\",
    "\\\"'",
    "`tick`",
    "$1 ?1 :name @p",
    "[x]*+",
    "line\nbreak\ttab",
    "ünï©ødé ✓ 𝄞",
];

/// Asserts a 4xx Parse error (never 5xx): status 400/404 with an integer code.
#[track_caller]
fn assert_clean_refusal(reply: &Reply) {
    assert!(
        reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND,
        "status {} for {:?}",
        reply.status,
        reply.body
    );
    assert!(
        reply.body["code"].is_i64() && reply.body["error"].is_string(),
        "{:?}",
        reply.body
    );
}

/// The database still works and the template's tables are intact.
async fn assert_database_intact(server: &TestServer) {
    let message = server.master(Method::GET, "/schemas/Message", None).await;
    assert_eq!(message.status, StatusCode::OK, "{:?}", message.body);
    assert_eq!(server.count("Message").await, 0);
    let session = server
        .create("ChatSession", json!({"participants": []}))
        .await;
    let created = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": "still here", "session": pointer("ChatSession", &session)})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
}

/// Malformed JSON → `400 {"code":107,…}` (§16), with headers or with the JS envelope, and
/// nothing is created or changed.
#[tokio::test]
async fn malformed_json_is_107() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    for body in [
        "{\"title\":",
        "{title: 1}",
        "{\"a\":1}}",
        "[1,",
        "\u{1}",
        "{\"a\":\"\\x\"}",
    ] {
        let reply = server
            .send_raw(
                Method::POST,
                "/classes/Item",
                Some(body.as_bytes().to_vec()),
                Some("application/json"),
                &PUBLIC_HEADERS,
            )
            .await;
        assert_parse_error(&reply, 400, 107, None);
        let reply = server
            .send_raw(
                Method::PUT,
                &format!("/classes/Item/{id}"),
                Some(body.as_bytes().to_vec()),
                Some("text/plain"),
                &MASTER_HEADERS,
            )
            .await;
        assert_parse_error(&reply, 400, 107, None);
    }
    let invalid_utf8 = server
        .send_raw(
            Method::POST,
            "/classes/Item",
            Some(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
            Some("application/json"),
            &PUBLIC_HEADERS,
        )
        .await;
    assert_parse_error(&invalid_utf8, 400, 107, None);
    let js = server
        .send_raw(
            Method::POST,
            "/classes/Item",
            Some(b"{\"_method\":\"GET\",\"_ApplicationId\":".to_vec()),
            Some("text/plain"),
            &[],
        )
        .await;
    assert_parse_error(&js, 400, 107, None);
    // A write body that is JSON but not an object.
    for body in [json!([1, 2]), json!("text"), json!(5)] {
        let reply = server
            .public(Method::POST, "/classes/Item", Some(body.clone()))
            .await;
        assert_parse_error(&reply, 400, 107, None);
    }
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.get("Item", &id).await["title"], "a");
}

/// A body over `max_body_bytes` → `413` with a Parse-style JSON body; nothing is created; a
/// body under the limit still works.
#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = TestServer::with(ServeOptions {
        max_body_bytes: Some(1024),
        ..ServeOptions::default()
    })
    .await;
    server.create("Item", json!({"title": "seed"})).await;
    let big = json!({"title": "x".repeat(2000)});
    let reply = server
        .public(Method::POST, "/classes/Item", Some(big.clone()))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert!(reply.body["code"].is_i64(), "{:?}", reply.body);
    assert!(reply.body["error"].is_string(), "{:?}", reply.body);
    let js = server
        .js_sdk(
            "/classes/Item",
            json!({"title": "x".repeat(2000), "_ApplicationId": APP_ID}),
        )
        .await;
    assert_eq!(js.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(js.body["code"].is_i64(), "{:?}", js.body);
    let batch = server
        .public(Method::POST, "/batch", Some(json!({"requests": [{"method": "POST", "path": "/parse/classes/Item", "body": big}]})))
        .await;
    assert_eq!(batch.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(server.count("Item").await, 1);

    let small = server
        .public(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x".repeat(900)})),
        )
        .await;
    assert_eq!(small.status, StatusCode::CREATED, "{:?}", small.body);
    assert_eq!(server.count("Item").await, 2);
}

fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!({ "a": value });
    }
    value
}

fn nested_or(depth: usize) -> Value {
    let mut value = json!({"title": "x"});
    for _ in 0..depth {
        value = json!({ "$or": [value] });
    }
    value
}

/// A `where` nested 200 (and 60) levels deep is refused with a Parse error (query string
/// and JS envelope), never a crash.
#[tokio::test]
async fn deeply_nested_where_is_refused() {
    let server = TestServer::new().await;
    server
        .create("Item", json!({"title": "x", "meta": {"a": 1}}))
        .await;
    for depth in [60, 200] {
        for where_json in [nested_or(depth), json!({"meta": nested(depth)})] {
            let path = format!("/classes/Item?where={}", encode(&where_json.to_string()));
            let reply = server.public(Method::GET, &path, None).await;
            assert_clean_refusal(&reply);
            assert!(
                matches!(reply.body["code"].as_i64(), Some(102 | 107)),
                "{:?}",
                reply.body
            );
            let js = server
                .js_sdk(
                    "/classes/Item",
                    json!({"_method": "GET", "_ApplicationId": APP_ID, "where": where_json}),
                )
                .await;
            assert_clean_refusal(&js);
            assert!(
                matches!(js.body["code"].as_i64(), Some(102 | 107)),
                "{:?}",
                js.body
            );
        }
    }
    let fine = server
        .find_as(false, "Item", &[("where", nested_or(3))])
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{:?}", fine.body);
    assert_eq!(fine.body["results"].as_array().unwrap().len(), 1);
}

/// A write body nested 200 levels deep → 107; one nested 60 levels is either stored and read
/// back identical or refused cleanly.
#[tokio::test]
async fn deeply_nested_bodies_are_handled() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    let deep = server
        .public(
            Method::POST,
            "/classes/Item",
            Some(json!({"v": nested(200)})),
        )
        .await;
    assert_parse_error(&deep, 400, 107, None);
    let deep_update = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"v": nested(200)})),
        )
        .await;
    assert_parse_error(&deep_update, 400, 107, None);
    assert_eq!(server.count("Item").await, 1);

    let medium = server
        .public(
            Method::POST,
            "/classes/Item",
            Some(json!({"v": nested(60)})),
        )
        .await;
    if medium.status == StatusCode::CREATED {
        let created = medium.body["objectId"].as_str().unwrap();
        assert_eq!(server.get("Item", created).await["v"], nested(60));
    } else {
        assert_clean_refusal(&medium);
        assert_eq!(server.count("Item").await, 1);
    }
}

/// A huge `limit` (1e20) is accepted and returns everything; negative or non-numeric
/// `limit`/`skip` → 102.
#[tokio::test]
async fn huge_and_negative_limits() {
    let server = TestServer::new().await;
    server
        .create_many("Item", (0..5).map(|i| json!({"i": i})).collect())
        .await;
    for limit in ["1e20", "100000000000000000000", "9223372036854775807"] {
        let reply = server
            .public(Method::GET, &format!("/classes/Item?limit={limit}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{limit}: {:?}", reply.body);
        assert_eq!(
            reply.body["results"].as_array().unwrap().len(),
            5,
            "{limit}"
        );
    }
    let reply = server
        .public(Method::GET, "/classes/Item?skip=1e20", None)
        .await;
    assert!(
        reply.status == StatusCode::OK || reply.status == StatusCode::BAD_REQUEST,
        "{:?}",
        reply.body
    );
    if reply.status == StatusCode::OK {
        assert_eq!(reply.body, json!({"results": []}));
    }
    for query in [
        "limit=-1",
        "limit=-100000000000000000000",
        "skip=-1",
        "limit=ten",
        "skip=%22x%22",
        "limit=1.5",
    ] {
        let reply = server
            .public(Method::GET, &format!("/classes/Item?{query}"), None)
            .await;
        assert_parse_error(&reply, 400, 102, None);
    }
    let envelope = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "limit": -5}),
        )
        .await;
    assert_parse_error(&envelope, 400, 102, None);
    // A list operator with too many values is refused cleanly.
    let many: Vec<i64> = (0..5000).collect();
    let reply = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "where": {"i": {"$in": many}}}),
        )
        .await;
    assert_clean_refusal(&reply);
}

/// SQL metacharacters in values (`'`, `"`, `%`, `_`, `\`, …) are stored and matched
/// literally: equality, `$in`, `$ne` and anchored `\Q…\E` regexes find exactly the right
/// objects, and the database is intact afterwards.
#[tokio::test]
async fn hostile_values_are_matched_literally() {
    let server = TestServer::new().await;
    let mut ids = Vec::new();
    for value in HOSTILE {
        ids.push(
            server
                .create(
                    "Item",
                    json!({"title": value, "meta": {"k": value}, "tags": [value]}),
                )
                .await,
        );
    }
    assert_eq!(server.count("Item").await, HOSTILE.len() as u64);
    for (value, id) in HOSTILE.iter().zip(&ids) {
        let object = server.get("Item", id).await;
        assert_eq!(object["title"], *value);
        assert_eq!(object["meta"]["k"], *value);
        for where_json in [
            json!({"title": value}),
            json!({"title": {"$in": [value]}}),
            json!({"meta.k": value}),
            json!({"tags": value}),
            json!({"title": {"$regex": format!("^\\Q{value}\\E$")}}),
        ] {
            let found = server.find("Item", &[("where", where_json.clone())]).await;
            assert_eq!(
                crate::common::ids(&found),
                vec![id.clone()],
                "where {where_json}"
            );
        }
        let others = server
            .find(
                "Item",
                &[
                    ("where", json!({"title": {"$ne": value}})),
                    ("count", json!(1)),
                ],
            )
            .await;
        assert_eq!(others.len(), HOSTILE.len() - 1, "$ne {value}");
    }
    // `%` and `_` are not wildcards.
    let starts = server
        .find(
            "Item",
            &[("where", json!({"title": {"$regex": "^\\Q%\\E"}}))],
        )
        .await;
    assert_eq!(values(&starts, "title"), vec![json!("%")]);
    let underscore = server
        .find(
            "Item",
            &[("where", json!({"title": {"$regex": "^\\Q_\\E"}}))],
        )
        .await;
    assert_eq!(values(&underscore, "title"), vec![json!("_")]);
    assert!(
        server
            .find("Item", &[("where", json!({"title": "%%"}))])
            .await
            .is_empty()
    );
    assert!(
        server
            .find("Item", &[("where", json!({"title": "' OR '1'='1' --"}))])
            .await
            .is_empty()
    );
    // Through the query string too (percent-encoded by the client).
    let via_query = server
        .public(
            Method::GET,
            &format!(
                "/classes/Item?where={}",
                encode(&json!({"title": "%"}).to_string())
            ),
            None,
        )
        .await;
    assert_eq!(
        values(via_query.body["results"].as_array().unwrap(), "title"),
        vec![json!("%")]
    );
    assert_database_intact(&server).await;
}

/// A NUL character in a value is either stored and matched literally, or refused cleanly.
#[tokio::test]
async fn nul_characters_in_values() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "a"})).await;
    server.create("Item", json!({"title": "ab"})).await;
    let value = "a\u{0}b";
    let reply = server
        .master(Method::POST, "/classes/Item", Some(json!({"title": value})))
        .await;
    if reply.status == StatusCode::CREATED {
        let id = reply.body["objectId"].as_str().unwrap();
        assert_eq!(server.get("Item", id).await["title"], value);
        let found = server
            .find("Item", &[("where", json!({"title": value}))])
            .await;
        assert_eq!(crate::common::ids(&found), vec![id.to_owned()]);
        assert_eq!(server.count("Item").await, 3);
    } else {
        assert_clean_refusal(&reply);
        assert_eq!(server.count("Item").await, 2);
    }
    let query = server
        .find_as(true, "Item", &[("where", json!({"title": value}))])
        .await;
    assert!(
        query.status == StatusCode::OK || query.status == StatusCode::BAD_REQUEST,
        "{:?}",
        query.body
    );
    let by_a = server
        .find("Item", &[("where", json!({"title": "a"}))])
        .await;
    assert_eq!(by_a.len(), 1);
}

/// Hostile where keys, dotted sub-keys, order and keys are refused with 105 (or, for
/// `keys`/`include`, ignored): never run as SQL.
#[tokio::test]
async fn hostile_keys_in_queries_are_refused() {
    let server = TestServer::new().await;
    let id = server
        .create(
            "Item",
            json!({"title": "a", "meta": {"k": 1}, "author": pointer("Item", "abcdefghij")}),
        )
        .await;
    for key in [
        "title'; DROP TABLE Item;--",
        "ti\"tle",
        "title%",
        "meta.k'--",
        "meta.k\"",
        "meta.k k",
        "meta.",
        "meta..k",
        "t\u{0}",
    ] {
        let reply = server
            .find_as(true, "Item", &[("where", json!({ key: 1 }))])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "key {key:?}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["code"], 105, "key {key:?}: {:?}", reply.body);
    }
    for order in [
        "title'; DROP TABLE Item;--",
        "title\"",
        "-ti%tle",
        "meta.k'",
    ] {
        let reply = server
            .find_as(true, "Item", &[("order", json!(order))])
            .await;
        assert_parse_error(&reply, 400, 105, None);
    }
    for keys_param in ["title'--", "ti\"tle", "%", "title) FROM x;--", "meta.k'"] {
        let reply = server
            .find_as(true, "Item", &[("keys", json!(keys_param))])
            .await;
        if reply.status == StatusCode::OK {
            let results = reply.body["results"].as_array().unwrap();
            assert_eq!(results.len(), 1);
            assert!(
                results[0].get("title").is_none(),
                "keys {keys_param}: {}",
                results[0]
            );
            assert_eq!(results[0]["objectId"], id.as_str());
        } else {
            assert_clean_refusal(&reply);
        }
    }
    for include in ["author'--", "author\"", "%", "x'y.author"] {
        let reply = server
            .find_as(true, "Item", &[("include", json!(include))])
            .await;
        if reply.status == StatusCode::OK {
            assert_eq!(
                reply.body["results"][0]["author"],
                pointer("Item", "abcdefghij"),
                "include {include}"
            );
        } else {
            assert_clean_refusal(&reply);
        }
    }
    assert_eq!(server.count("Item").await, 1);
    assert_database_intact(&server).await;
}

/// Hostile dotted keys in a write (`{"meta.x'y":1}`) are stored as plain keys inside the
/// Object, or refused cleanly; sibling keys survive.
#[tokio::test]
async fn hostile_dotted_write_keys() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"meta": {"k": 1}})).await;
    for sub_key in ["x'y", "x\"y", "x]y", "x y", "x\\y", "x%_"] {
        let mut body = serde_json::Map::new();
        body.insert(format!("meta.{sub_key}"), json!(7));
        let reply = server
            .public(
                Method::PUT,
                &format!("/classes/Item/{id}"),
                Some(Value::Object(body)),
            )
            .await;
        let meta = server.get("Item", &id).await["meta"].clone();
        assert_eq!(meta["k"], json!(1), "{sub_key}: {meta}");
        if reply.status == StatusCode::OK {
            assert_eq!(meta[sub_key], json!(7), "{sub_key}: {meta}");
        } else {
            assert_clean_refusal(&reply);
            assert!(meta.get(sub_key).is_none(), "{sub_key}: {meta}");
        }
    }
    // `$` or an empty segment in a dotted key is an invalid key.
    for key in ["meta.$x", "meta.", "meta..x"] {
        let mut body = serde_json::Map::new();
        body.insert(key.to_owned(), json!(1));
        let reply = server
            .public(
                Method::PUT,
                &format!("/classes/Item/{id}"),
                Some(Value::Object(body)),
            )
            .await;
        assert_parse_error(&reply, 400, 105, None);
    }
    assert_eq!(server.count("Item").await, 1);
    assert_database_intact(&server).await;
}

/// Hostile or invalid class names: creating → 103 (objects and schemas API); reading
/// finds nothing or is refused cleanly; nothing is created.
#[tokio::test]
async fn hostile_class_names() {
    let server = TestServer::new().await;
    for class_name in [
        "Robert'); DROP TABLE Message;--",
        "Item\"",
        "bad-name",
        "1abc",
        "_Hidden",
        "a b",
        "%",
        "Über",
        "sqlite_master",
    ] {
        let path = format!("/classes/{}", encode(class_name));
        let create = server
            .master(Method::POST, &path, Some(json!({"a": 1})))
            .await;
        if class_name == "sqlite_master" {
            // A valid Parse class name that is also SQLite's catalog: an ordinary class, or a
            // clean refusal, but never a 5xx nor a read of the catalog.
            if create.status == StatusCode::CREATED {
                assert_eq!(server.count("sqlite_master").await, 1);
                let found = server.find("sqlite_master", &[]).await;
                assert_eq!(
                    keys(&found[0]),
                    vec!["a", "createdAt", "objectId", "updatedAt"]
                );
            } else {
                assert_clean_refusal(&create);
                let find = server.master(Method::GET, &path, None).await;
                assert!(
                    find.status.is_client_error() || find.body == json!({"results": []}),
                    "{:?}",
                    find.body
                );
            }
            continue;
        }
        assert_parse_error(&create, 400, 103, None);
        let find = server.master(Method::GET, &path, None).await;
        if find.status == StatusCode::OK {
            assert_eq!(find.body, json!({"results": []}), "{class_name}");
        } else {
            assert_parse_error(&find, 400, 103, None);
        }
        let get = server
            .master(Method::GET, &format!("{path}/abcdefghij"), None)
            .await;
        assert_clean_refusal(&get);
        let put = server
            .master(
                Method::PUT,
                &format!("{path}/abcdefghij"),
                Some(json!({"a": 1})),
            )
            .await;
        assert_clean_refusal(&put);
        let delete = server
            .master(Method::DELETE, &format!("{path}/abcdefghij"), None)
            .await;
        assert_clean_refusal(&delete);
        let schema = server
            .master(
                Method::POST,
                &format!("/schemas/{}", encode(class_name)),
                Some(json!({})),
            )
            .await;
        assert_parse_error(&schema, 400, 103, None);
        let schema = server
            .master(
                Method::POST,
                "/schemas",
                Some(json!({"className": class_name})),
            )
            .await;
        assert_parse_error(&schema, 400, 103, None);
    }
    // A subquery naming a hostile class is refused or matches nothing.
    server
        .create("Item", json!({"p": pointer("Item", "abcdefghij")}))
        .await;
    let reply = server
        .find_as(true, "Item", &[("where", json!({"p": {"$inQuery": {"className": "Item\"; DROP TABLE Item;--", "where": {}}}}))])
        .await;
    if reply.status == StatusCode::OK {
        assert_eq!(reply.body, json!({"results": []}));
    } else {
        assert_clean_refusal(&reply);
    }
    assert_eq!(server.count("Item").await, 1);
    assert_database_intact(&server).await;
}

/// Hostile object ids in paths and queries: GET/PUT/DELETE → 101, queries match nothing,
/// and the real objects are untouched.
#[tokio::test]
async fn hostile_object_ids() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "keep"})).await;
    for object_id in [
        "' OR '1'='1",
        "%",
        "_",
        "abc\"def",
        "*",
        "x' OR objectId LIKE '%",
        "a\\b",
        "%2F",
    ] {
        let path = format!("/classes/Item/{}", encode(object_id));
        assert_parse_error(
            &server.master(Method::GET, &path, None).await,
            404,
            101,
            None,
        );
        assert_parse_error(
            &server
                .master(Method::PUT, &path, Some(json!({"title": "gone"})))
                .await,
            404,
            101,
            None,
        );
        assert_parse_error(
            &server.master(Method::DELETE, &path, None).await,
            404,
            101,
            None,
        );
        assert!(
            server
                .find("Item", &[("where", json!({"objectId": object_id}))])
                .await
                .is_empty(),
            "{object_id}"
        );
    }
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.get("Item", &id).await["title"], "keep");
    assert_database_intact(&server).await;
}

/// Invalid field names in a write → 105 (`length` too, as Parse Server: "Invalid field name:
/// length."); `$` or `.` inside an Object value's keys → 121;
/// nothing is created.
#[tokio::test]
async fn invalid_field_names_are_105() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    let long = "a".repeat(200);
    for key in [
        "bad-name",
        "$set",
        "_private",
        "a b",
        "1abc",
        "ti'tle",
        "",
        long.as_str(),
        "é",
        "length",
    ] {
        let mut body = serde_json::Map::new();
        body.insert(key.to_owned(), json!(1));
        let reply = server
            .master(
                Method::POST,
                "/classes/Item",
                Some(Value::Object(body.clone())),
            )
            .await;
        assert_parse_error(&reply, 400, 105, None);
        if key == "length" {
            assert_eq!(reply.body["error"], "Invalid field name: length.");
        }
        let reply = server
            .public(
                Method::PUT,
                &format!("/classes/Item/{id}"),
                Some(Value::Object(body)),
            )
            .await;
        assert_parse_error(&reply, 400, 105, None);
    }
    for value in [
        json!({"a$b": 1}),
        json!({"a.b": 1}),
        json!({"ok": {"deep.er": 1}}),
    ] {
        let reply = server
            .public(Method::POST, "/classes/Item", Some(json!({"meta": value})))
            .await;
        assert_parse_error(&reply, 400, 121, None);
    }
    assert_eq!(server.count("Item").await, 1);
    let schema = server.master(Method::GET, "/schemas/Item", None).await.body;
    assert_eq!(
        keys(&schema["fields"]),
        vec!["ACL", "createdAt", "objectId", "title", "updatedAt"]
    );
}

/// Wrong and malformed typed values → 111 (106 for a malformed pointer); bad operator
/// payloads → 107 (`Increment` with a string: "incrementing must provide a number"); an
/// unknown `__op` → 108/111; nothing changes.
#[tokio::test]
async fn wrong_types_and_bad_operators() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"n": 1, "title": "t", "when": {"__type": "Date", "iso": "2024-01-01T00:00:00.000Z"}, "tags": ["a"]}))
        .await;
    let path = format!("/classes/Item/{id}");
    let server = &server;
    let path = &path;
    let expect = move |body: Value, code: i64, message: Option<&'static str>| async move {
        let reply = server.public(Method::PUT, path, Some(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["code"], code, "{body}: {:?}", reply.body);
        if let Some(message) = message {
            assert_eq!(reply.body["error"], message, "{body}");
        }
        let created = server
            .public(Method::POST, "/classes/Item", Some(body.clone()))
            .await;
        assert_eq!(
            created.status,
            StatusCode::BAD_REQUEST,
            "create {body}: {:?}",
            created.body
        );
    };
    expect(
        json!({"n": "x"}),
        111,
        Some("schema mismatch for Item.n; expected Number but got String"),
    )
    .await;
    expect(
        json!({"title": true}),
        111,
        Some("schema mismatch for Item.title; expected String but got Boolean"),
    )
    .await;
    expect(
        json!({"when": "2024-01-01"}),
        111,
        Some("schema mismatch for Item.when; expected Date but got String"),
    )
    .await;
    expect(json!({"tags": {"a": 1}}), 111, None).await;
    expect(
        json!({"title": {"__op": "Increment", "amount": 1}}),
        111,
        None,
    )
    .await;
    expect(json!({"n": {"__op": "Add", "objects": [1]}}), 111, None).await;
    expect(
        json!({"other": {"__type": "Date", "iso": "not a date"}}),
        111,
        None,
    )
    .await;
    expect(
        json!({"geo": {"__type": "GeoPoint", "latitude": 100.0, "longitude": 0.0}}),
        111,
        None,
    )
    .await;
    expect(
        json!({"bytes": {"__type": "Bytes", "base64": "***"}}),
        111,
        None,
    )
    .await;
    expect(
        json!({"shape": {"__type": "Polygon", "coordinates": [[0.0, 0.0], [1.0, 1.0]]}}),
        111,
        None,
    )
    .await;
    expect(json!({"file": {"__type": "File"}}), 111, None).await;
    expect(json!({"weird": {"__type": "Weird"}}), 111, None).await;
    expect(
        json!({"ptr": {"__type": "Pointer", "className": "Item"}}),
        106,
        None,
    )
    .await;
    expect(
        json!({"n": {"__op": "Increment", "amount": "5"}}),
        107,
        Some("incrementing must provide a number"),
    )
    .await;
    expect(
        json!({"n": {"__op": "Increment"}}),
        107,
        Some("incrementing must provide a number"),
    )
    .await;
    expect(
        json!({"tags": {"__op": "Add", "objects": "b"}}),
        107,
        Some("objects to add must be an array"),
    )
    .await;
    expect(
        json!({"tags": {"__op": "AddUnique", "objects": {"b": 1}}}),
        107,
        Some("objects to add must be an array"),
    )
    .await;
    expect(json!({"tags": {"__op": "Remove"}}), 107, None).await;
    expect(
        json!({"rel": {"__op": "AddRelation", "objects": ["abc"]}}),
        106,
        None,
    )
    .await;

    let unknown = server
        .public(
            Method::PUT,
            path,
            Some(json!({"n": {"__op": "Multiply", "amount": 2}})),
        )
        .await;
    assert_clean_refusal(&unknown);
    assert!(
        matches!(unknown.body["code"].as_i64(), Some(108 | 111)),
        "{:?}",
        unknown.body
    );

    assert_eq!(server.count("Item").await, 1);
    let object = server.get("Item", &id).await;
    assert_eq!(
        keys(&object),
        vec![
            "createdAt",
            "n",
            "objectId",
            "tags",
            "title",
            "updatedAt",
            "when"
        ]
    );
    assert_eq!(object["n"], json!(1));
    assert_eq!(object["tags"], json!(["a"]));
    assert_eq!(object["updatedAt"], object["createdAt"]);
}

/// A second GeoPoint field in a class → 111 (at most one per class).
#[tokio::test]
async fn only_one_geopoint_field_per_class() {
    let server = TestServer::new().await;
    let id = server
        .create(
            "Place",
            json!({"loc": {"__type": "GeoPoint", "latitude": 1.0, "longitude": 2.0}}),
        )
        .await;
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Place/{id}"),
            Some(json!({"other": {"__type": "GeoPoint", "latitude": 1.0, "longitude": 2.0}})),
        )
        .await;
    assert_parse_error(&reply, 400, 111, None);
    assert!(server.get("Place", &id).await.get("other").is_none());
}
