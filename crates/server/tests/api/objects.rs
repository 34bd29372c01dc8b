//! The object API: create, get, update, delete, types and field operators (§2; checklist
//! items 11–23, 61).

use std::collections::BTreeSet;

use futures::future::join_all;
use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Items 11–12: a create answers `201`, a `Location` naming the object, and exactly
/// `{objectId, createdAt}`; the id is 10 alphanumerics, the dates are ISO with 3 fractional
/// digits and `Z`, and `createdAt == updatedAt` on the new object.
#[tokio::test]
async fn create_answers_201_with_location_and_id() {
    let server = TestServer::new().await;
    let reply = server
        .master(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "hello", "n": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(keys(&reply.body), vec!["createdAt", "objectId"]);
    let id = reply.body["objectId"].as_str().unwrap();
    assert!(is_object_id(id), "{id}");
    let created_at = reply.body["createdAt"].as_str().unwrap();
    assert!(is_parse_date(created_at), "{created_at}");
    let location = reply.headers.get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("{}/parse/classes/Item/{id}", server.base));

    let object = server.get("Item", id).await;
    assert_eq!(object["createdAt"], created_at);
    assert_eq!(object["updatedAt"], created_at);
    assert!(is_parse_date(object["updatedAt"].as_str().unwrap()));
    assert_eq!(
        object,
        json!({"objectId": id, "title": "hello", "n": 1, "createdAt": created_at, "updatedAt": created_at})
    );

    // Ids are random: a second object gets another one.
    let other = server.create("Item", json!({})).await;
    assert_ne!(other, id);
    assert!(is_object_id(&other));

    // Clients cannot set the timestamps.
    let forged = server
        .master(Method::POST, "/classes/Item", Some(json!({"createdAt": "2001-01-01T00:00:00.000Z", "updatedAt": "2001-01-01T00:00:00.000Z"})))
        .await;
    assert_eq!(forged.status, StatusCode::CREATED);
    assert_ne!(forged.body["createdAt"], "2001-01-01T00:00:00.000Z");
}

/// Item 13: a client-chosen `objectId` (or `id`) on create → `105 "objectId is an invalid
/// field name."`, and nothing is created; with `allow_custom_object_id` it is used.
#[tokio::test]
async fn custom_object_ids_are_refused_unless_allowed() {
    let server = TestServer::new().await;
    server.create("Item", json!({})).await;
    let reply = server
        .master(
            Method::POST,
            "/classes/Item",
            Some(json!({"objectId": "abc", "title": "x"})),
        )
        .await;
    assert_parse_error(&reply, 400, 105, Some("objectId is an invalid field name."));
    let reply = server
        .public(Method::POST, "/classes/Item", Some(json!({"id": "abc"})))
        .await;
    assert_parse_error(&reply, 400, 105, None);
    assert_eq!(server.count("Item").await, 1);

    let allowing = TestServer::with(ServeOptions {
        allow_custom_object_id: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let reply = allowing
        .master(
            Method::POST,
            "/classes/Item",
            Some(json!({"objectId": "myOwnId01", "title": "x"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["objectId"], "myOwnId01");
    assert_eq!(allowing.get("Item", "myOwnId01").await["title"], "x");
}

/// Item 14: every data type written in typed JSON reads back identical (get and find);
/// a Polygon reads back closed; integers stay integers.
#[tokio::test]
async fn every_data_type_round_trips() {
    let server = TestServer::new().await;
    let target = server.create("Target", json!({"name": "t"})).await;
    let date = json!({"__type": "Date", "iso": "2024-05-01T12:34:56.789Z"});
    let body = json!({
        "text": "héllo \"quoted\" ✓",
        "int": 42,
        "negative": -7,
        "big": 9007199254740991_i64,
        "float": 1.5,
        "zero": 0,
        "yes": true,
        "no": false,
        "when": date,
        "target": pointer("Target", &target),
        "place": {"__type": "GeoPoint", "latitude": 40.0, "longitude": -30.5},
        "file": {"__type": "File", "name": "d41d8cd98f00b204e9800998ecf8427e_avatar.png", "url": "http://files.example.com/d41d8cd98f00b204e9800998ecf8427e_avatar.png"},
        "bytes": {"__type": "Bytes", "base64": "AAEC"},
        "area": {"__type": "Polygon", "coordinates": [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]},
        "meta": {"model": "gpt", "usage": {"tokens": 12, "ratio": 0.5}, "list": [1, "two", null], "none": null},
        "list": [1, "two", {"three": 3}, [4], date, pointer("Target", &target)],
        "empty": [],
        "nothing": null,
    });
    let id = server.create("Typed", body.clone()).await;
    let object = server.get("Typed", &id).await;

    let mut expected = body.as_object().unwrap().clone();
    expected.insert(
        "area".into(),
        json!({"__type": "Polygon", "coordinates": [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]}),
    );
    for (field, value) in &expected {
        if value.is_null() {
            continue;
        }
        assert_eq!(&object[field], value, "field {field}");
    }
    // Integers are not turned into floats.
    assert_eq!(object["int"].to_string(), "42");
    assert_eq!(object["big"].to_string(), "9007199254740991");
    assert_eq!(object["zero"].to_string(), "0");
    assert_eq!(object["meta"]["usage"]["tokens"].to_string(), "12");

    let found = server.find("Typed", &[]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], object);

    // The schema learned the types.
    let schema = server
        .master(Method::GET, "/schemas/Typed", None)
        .await
        .body;
    let type_of = |field: &str| {
        schema["fields"][field]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(type_of("text"), "String");
    assert_eq!(type_of("int"), "Number");
    assert_eq!(type_of("yes"), "Boolean");
    assert_eq!(type_of("when"), "Date");
    assert_eq!(type_of("target"), "Pointer");
    assert_eq!(schema["fields"]["target"]["targetClass"], "Target");
    assert_eq!(type_of("place"), "GeoPoint");
    assert_eq!(type_of("file"), "File");
    assert_eq!(type_of("bytes"), "Bytes");
    assert_eq!(type_of("area"), "Polygon");
    assert_eq!(type_of("meta"), "Object");
    assert_eq!(type_of("list"), "Array");
}

/// A Polygon sent already closed reads back unchanged (closed once, not twice).
#[tokio::test]
async fn a_closed_polygon_stays_as_written() {
    let server = TestServer::new().await;
    let closed = json!({"__type": "Polygon", "coordinates": [[10.0, 20.0], [10.0, 21.0], [11.0, 21.0], [10.0, 20.0]]});
    let id = server.create("Area", json!({"shape": closed})).await;
    assert_eq!(server.get("Area", &id).await["shape"], closed);
}

/// Item 15: writing a Number into a String field → `111 "schema mismatch for X.f; expected
/// String but got Number"`, on create and on update, and nothing changes.
#[tokio::test]
async fn schema_mismatch_is_111_with_the_exact_message() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"f": "text"})).await;
    let create = server
        .master(Method::POST, "/classes/Item", Some(json!({"f": 1})))
        .await;
    assert_parse_error(
        &create,
        400,
        111,
        Some("schema mismatch for Item.f; expected String but got Number"),
    );
    let update = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"f": 2})),
        )
        .await;
    assert_parse_error(
        &update,
        400,
        111,
        Some("schema mismatch for Item.f; expected String but got Number"),
    );
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.get("Item", &id).await["f"], "text");

    // Pointers compare their target class too.
    server
        .create("Item", json!({"p": pointer("A", "aaaaaaaaaa")}))
        .await;
    let other = server
        .master(
            Method::POST,
            "/classes/Item",
            Some(json!({"p": pointer("B", "bbbbbbbbbb")})),
        )
        .await;
    assert_parse_error(
        &other,
        400,
        111,
        Some("schema mismatch for Item.p; expected Pointer<A> but got Pointer<B>"),
    );

    // A template class: Message.content is a String.
    let session = server
        .create("ChatSession", json!({"participants": []}))
        .await;
    let message = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": 5, "session": pointer("ChatSession", &session)})),
        )
        .await;
    assert_parse_error(
        &message,
        400,
        111,
        Some("schema mismatch for Message.content; expected String but got Number"),
    );
    // `null` is allowed for any type.
    let null = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"f": null})),
        )
        .await;
    assert_eq!(null.status, StatusCode::OK, "{:?}", null.body);
}

/// Item 16: `Increment` answers the resulting value and `updatedAt`, and does not echo plain
/// fields; it works on a missing field, with negative and fractional amounts.
#[tokio::test]
async fn increment_echoes_the_resulting_value_only() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"n": 3, "title": "a"})).await;
    let path = format!("/classes/Item/{id}");
    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"n": {"__op": "Increment", "amount": 2}, "title": "b"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(keys(&reply.body), vec!["n", "updatedAt"]);
    assert_eq!(reply.body["n"], json!(5));
    assert!(is_parse_date(reply.body["updatedAt"].as_str().unwrap()));
    let object = server.get("Item", &id).await;
    assert_eq!(object["n"], json!(5));
    assert_eq!(object["title"], "b");
    assert_eq!(object["updatedAt"], reply.body["updatedAt"]);
    assert!(object["updatedAt"].as_str().unwrap() >= object["createdAt"].as_str().unwrap());

    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"n": {"__op": "Increment", "amount": -10}})),
        )
        .await;
    assert_eq!(reply.body["n"], json!(-5));
    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"fresh": {"__op": "Increment", "amount": 4}})),
        )
        .await;
    assert_eq!(reply.body["fresh"], json!(4));
    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"fresh": {"__op": "Increment", "amount": 0.5}})),
        )
        .await;
    assert_eq!(reply.body["fresh"], json!(4.5));

    // A plain update answers `updatedAt` alone.
    let plain = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"title": "c", "other": [1]})),
        )
        .await;
    assert_eq!(keys(&plain.body), vec!["updatedAt"]);

    // On create, Increment sets the field to the amount.
    let created = server
        .create("Item", json!({"n": {"__op": "Increment", "amount": 7}}))
        .await;
    assert_eq!(server.get("Item", &created).await["n"], json!(7));
}

/// Item 17: `Add`, `AddUnique` (no duplicates, pointers compared by class and id, order
/// kept) and `Remove` give the expected arrays, and the response holds the whole array.
#[tokio::test]
async fn array_operators_answer_the_whole_array() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"tags": ["a"], "title": "t"}))
        .await;
    let path = format!("/classes/Item/{id}");

    let add = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"tags": {"__op": "Add", "objects": ["b", "a"]}, "title": "u"})),
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{:?}", add.body);
    assert_eq!(keys(&add.body), vec!["tags", "updatedAt"]);
    assert_eq!(add.body["tags"], json!(["a", "b", "a"]));

    let unique = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"tags": {"__op": "AddUnique", "objects": ["c", "a", "d", "c"]}})),
        )
        .await;
    assert_eq!(unique.body["tags"], json!(["a", "b", "a", "c", "d"]));

    let remove = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"tags": {"__op": "Remove", "objects": ["a", "zz"]}})),
        )
        .await;
    assert_eq!(remove.body["tags"], json!(["b", "c", "d"]));
    assert_eq!(
        server.get("Item", &id).await["tags"],
        json!(["b", "c", "d"])
    );

    // Pointers: the same class and id is the same item; another class is not.
    let p1 = pointer("User2", "aaaaaaaaaa");
    let p1_other_class = pointer("Other", "aaaaaaaaaa");
    let people = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"people": {"__op": "AddUnique", "objects": [p1.clone()]}})),
        )
        .await;
    assert_eq!(people.body["people"], json!([p1.clone()]));
    let people = server
        .public(Method::PUT, &path, Some(json!({"people": {"__op": "AddUnique", "objects": [p1.clone(), p1_other_class.clone()]}})))
        .await;
    assert_eq!(
        people.body["people"],
        json!([p1.clone(), p1_other_class.clone()])
    );
    let people = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"people": {"__op": "Remove", "objects": [p1.clone()]}})),
        )
        .await;
    assert_eq!(people.body["people"], json!([p1_other_class]));

    // Objects compare by deep equality.
    let objects = server
        .public(Method::PUT, &path, Some(json!({"objs": {"__op": "AddUnique", "objects": [{"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}]}})))
        .await;
    assert_eq!(objects.body["objs"], json!([{"a": 1, "b": [1, 2]}]));

    // On create: Add makes the array, Remove yields [].
    let created = server
        .create("Item", json!({"tags": {"__op": "Add", "objects": ["x"]}, "gone": {"__op": "Remove", "objects": ["x"]}}))
        .await;
    let object = server.get("Item", &created).await;
    assert_eq!(object["tags"], json!(["x"]));
    assert_eq!(object["gone"], json!([]));
}

/// Item 18: `{"f":{"__op":"Delete"}}` removes `f` from later reads; on create it is ignored.
#[tokio::test]
async fn delete_op_unsets_a_field() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"f": "x", "g": 1})).await;
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"f": {"__op": "Delete"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(keys(&reply.body), vec!["updatedAt"]);
    let object = server.get("Item", &id).await;
    assert!(object.get("f").is_none(), "{object}");
    assert_eq!(object["g"], json!(1));
    assert!(
        server
            .find("Item", &[("where", json!({"f": "x"}))])
            .await
            .is_empty()
    );
    assert_eq!(
        server
            .find("Item", &[("where", json!({"f": {"$exists": false}}))])
            .await
            .len(),
        1
    );

    let created = server
        .create("Item", json!({"f": {"__op": "Delete"}, "g": 2}))
        .await;
    let object = server.get("Item", &created).await;
    assert!(object.get("f").is_none(), "{object}");
}

/// Item 19: `AddRelation` makes a Relation field; the parent shows the Relation marker;
/// `$relatedTo` finds the members (also with `redirectClassNameForKey`); `RemoveRelation`
/// takes one out.
#[tokio::test]
async fn relations_add_query_and_remove() {
    let server = TestServer::new().await;
    let team = server.create("Team", json!({"name": "red"})).await;
    let players: Vec<String> = {
        let mut ids = Vec::new();
        for name in ["p1", "p2", "p3"] {
            ids.push(server.create("Player", json!({"name": name})).await);
        }
        ids
    };
    let add = server
        .public(
            Method::PUT,
            &format!("/classes/Team/{team}"),
            Some(json!({"members": {"__op": "AddRelation", "objects": [pointer("Player", &players[0]), pointer("Player", &players[1])]}})),
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{:?}", add.body);
    assert_eq!(keys(&add.body), vec!["updatedAt"]);

    let parent = server.get("Team", &team).await;
    assert_eq!(
        parent["members"],
        json!({"__type": "Relation", "className": "Player"})
    );
    let schema = server.master(Method::GET, "/schemas/Team", None).await.body;
    assert_eq!(
        schema["fields"]["members"],
        json!({"type": "Relation", "targetClass": "Player"})
    );

    let related = json!({"$relatedTo": {"object": pointer("Team", &team), "key": "members"}});
    let members = server
        .find(
            "Player",
            &[("where", related.clone()), ("order", json!("name"))],
        )
        .await;
    assert_eq!(values(&members, "name"), vec![json!("p1"), json!("p2")]);
    let public = server
        .find_as(
            false,
            "Player",
            &[("where", related.clone()), ("order", json!("name"))],
        )
        .await;
    assert_eq!(
        values(public.body["results"].as_array().unwrap(), "name"),
        vec![json!("p1"), json!("p2")]
    );

    // The JS SDK's relation.query(): the query names the parent class.
    let redirected = server
        .find(
            "Team",
            &[
                ("where", related.clone()),
                ("redirectClassNameForKey", json!("members")),
                ("order", json!("name")),
            ],
        )
        .await;
    assert_eq!(values(&redirected, "name"), vec![json!("p1"), json!("p2")]);
    // Each result names the class it was redirected to (the SDK's `first()` reads it there).
    assert!(
        redirected
            .iter()
            .all(|player| player["className"] == "Player")
    );

    // Adding an existing member again changes nothing.
    let again = server
        .public(Method::PUT, &format!("/classes/Team/{team}"), Some(json!({"members": {"__op": "AddRelation", "objects": [pointer("Player", &players[1])]}})))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        server
            .find("Player", &[("where", related.clone())])
            .await
            .len(),
        2
    );

    let remove = server
        .public(Method::PUT, &format!("/classes/Team/{team}"), Some(json!({"members": {"__op": "RemoveRelation", "objects": [pointer("Player", &players[0])]}})))
        .await;
    assert_eq!(remove.status, StatusCode::OK, "{:?}", remove.body);
    let members = server.find("Player", &[("where", related)]).await;
    assert_eq!(ids(&members), vec![players[1].clone()]);

    // A relation on create works too.
    let blue = server.create("Team", json!({"name": "blue", "members": {"__op": "AddRelation", "objects": [pointer("Player", &players[2])]}})).await;
    let blue_members = server
        .find(
            "Player",
            &[(
                "where",
                json!({"$relatedTo": {"object": pointer("Team", &blue), "key": "members"}}),
            )],
        )
        .await;
    assert_eq!(ids(&blue_members), vec![players[2].clone()]);

    // Related objects must all be of one class.
    let mixed = server
        .public(
            Method::PUT,
            &format!("/classes/Team/{team}"),
            Some(json!({"members": {"__op": "AddRelation", "objects": [pointer("Player", &players[0]), pointer("Team", &team)]}})),
        )
        .await;
    assert_parse_error(&mixed, 400, 111, None);
}

/// Item 20: a dotted update `{"meta.a":1}` sets only `meta.a` and keeps the other keys of
/// `meta`; dotted Increment works inside the Object.
#[tokio::test]
async fn dotted_updates_keep_sibling_keys() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"meta": {"a": 0, "b": "x", "c": {"d": 1}}}))
        .await;
    let path = format!("/classes/Item/{id}");
    let reply = server
        .public(Method::PUT, &path, Some(json!({"meta.a": 1})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        server.get("Item", &id).await["meta"],
        json!({"a": 1, "b": "x", "c": {"d": 1}})
    );

    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"meta.c.e": "new", "meta.tokens": {"__op": "Increment", "amount": 5}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        server.get("Item", &id).await["meta"],
        json!({"a": 1, "b": "x", "c": {"d": 1, "e": "new"}, "tokens": 5})
    );
    let reply = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"meta.tokens": {"__op": "Increment", "amount": 5}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(server.get("Item", &id).await["meta"]["tokens"], json!(10));
}

/// Item 21: a missing id → `404 {"code":101,"error":"Object not found."}` for GET, PUT and
/// DELETE; DELETE of an existing object → `200 {}`, then GET → 101.
#[tokio::test]
async fn missing_objects_are_101_and_delete_works() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    let not_found = json!({"code": 101, "error": "Object not found."});

    let get = server
        .public(Method::GET, "/classes/Item/abcdefghij", None)
        .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(get.body, not_found);
    let put = server
        .public(
            Method::PUT,
            "/classes/Item/abcdefghij",
            Some(json!({"title": "b"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
    assert_eq!(put.body, not_found);
    let delete = server
        .public(Method::DELETE, "/classes/Item/abcdefghij", None)
        .await;
    assert_parse_error(&delete, 404, 101, None);
    let other_class = server
        .public(Method::GET, &format!("/classes/NoSuchClass/{id}"), None)
        .await;
    assert_eq!(other_class.body, not_found);

    let deleted = server
        .public(Method::DELETE, &format!("/classes/Item/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body, json!({}));
    let gone = server
        .public(Method::GET, &format!("/classes/Item/{id}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body, not_found);
    let twice = server
        .public(Method::DELETE, &format!("/classes/Item/{id}"), None)
        .await;
    assert_parse_error(&twice, 404, 101, None);
    assert_eq!(server.count("Item").await, 0);
}

/// Item 22: `GET /classes/X/id?foo=1` → `102 "Improper encode of parameter"`;
/// `GET /classes/X?foo=1` → `102 "Invalid parameter for query: foo"`; allowed ones work.
#[tokio::test]
async fn unknown_parameters_are_refused() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a", "n": 1})).await;
    let reply = server
        .public(Method::GET, &format!("/classes/Item/{id}?foo=1"), None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 102, "error": "Improper encode of parameter"})
    );
    let reply = server
        .public(
            Method::GET,
            &format!("/classes/Item/{id}?where=%7B%7D"),
            None,
        )
        .await;
    assert_parse_error(&reply, 400, 102, Some("Improper encode of parameter"));

    let reply = server
        .public(Method::GET, "/classes/Item?foo=1", None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 102, "error": "Invalid parameter for query: foo"})
    );

    let ok = server
        .public(
            Method::GET,
            &format!("/classes/Item/{id}?keys=title&readPreference=PRIMARY"),
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(
        keys(&ok.body),
        vec!["createdAt", "objectId", "title", "updatedAt"]
    );
    let ok = server
        .public(Method::GET, "/classes/Item?readPreference=PRIMARY&hint=x&explain=false&comment=hi&includeReadPreference=x&subqueryReadPreference=x", None)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["results"].as_array().unwrap().len(), 1);
}

/// Item 23: a non-master create in a missing class → `119 "This user is not allowed to
/// access non-existent class: Foo"` and no class appears; the master key creates it, and
/// after that the public may write to it. With `allow_client_class_creation` anyone may.
#[tokio::test]
async fn only_master_creates_classes_by_default() {
    let server = TestServer::new().await;
    let reply = server
        .public(Method::POST, "/classes/Foo", Some(json!({"a": 1})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 119, "error": "This user is not allowed to access non-existent class: Foo"})
    );
    let schema = server.master(Method::GET, "/schemas/Foo", None).await;
    assert_parse_error(&schema, 400, 103, Some("Class Foo does not exist."));
    // A find on a class that does not exist is simply empty.
    let find = server.public(Method::GET, "/classes/Foo", None).await;
    assert_eq!(find.body, json!({"results": []}));

    let master = server
        .master(Method::POST, "/classes/Foo", Some(json!({"a": 1})))
        .await;
    assert_eq!(master.status, StatusCode::CREATED);
    let public = server
        .public(Method::POST, "/classes/Foo", Some(json!({"a": 2})))
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{:?}", public.body);
    assert_eq!(server.count("Foo").await, 2);

    let open = TestServer::with(ServeOptions {
        allow_client_class_creation: Some(true),
        ..ServeOptions::default()
    })
    .await;
    let reply = open
        .public(Method::POST, "/classes/Bar", Some(json!({"a": 1})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

/// 50 concurrent HTTP `PUT`s, each incrementing by 1, lose nothing: the final value is
/// exactly 50 and the responses echo each value from 1 to 50 once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_increments_lose_nothing() {
    let server = TestServer::new().await;
    let id = server.create("Counter", json!({"n": 0})).await;
    let path = format!("/classes/Counter/{id}");
    let replies = join_all((0..50).map(|_| {
        server.public(
            Method::PUT,
            &path,
            Some(json!({"n": {"__op": "Increment", "amount": 1}})),
        )
    }))
    .await;
    let mut seen = BTreeSet::new();
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        seen.insert(reply.body["n"].as_i64().unwrap());
    }
    assert_eq!(server.get("Counter", &id).await["n"], json!(50));
    assert_eq!(seen, (1..=50).collect::<BTreeSet<i64>>());
}

/// Concurrent `AddUnique` of distinct values keeps every value.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_add_unique_keeps_every_value() {
    let server = TestServer::new().await;
    let id = server.create("Bag", json!({"items": []})).await;
    let path = format!("/classes/Bag/{id}");
    let replies = join_all((0..40).map(|i| {
        server.public(
            Method::PUT,
            &path,
            Some(json!({"items": {"__op": "AddUnique", "objects": [format!("v{i}")]}})),
        )
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let items: BTreeSet<String> = server.get("Bag", &id).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        items,
        (0..40)
            .map(|i| format!("v{i}"))
            .collect::<BTreeSet<String>>()
    );
    assert_eq!(
        server.get("Bag", &id).await["items"]
            .as_array()
            .unwrap()
            .len(),
        40
    );
}

/// Concurrent creates in a new class (schema-on-write racing) all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_creates_with_new_fields_all_succeed() {
    let server = TestServer::new().await;
    server.create("Race", json!({})).await;
    let replies = join_all((0..30).map(|i| {
        let mut body = serde_json::Map::new();
        body.insert(format!("f{}", i % 5), json!(i));
        server.public(Method::POST, "/classes/Race", Some(Value::Object(body)))
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    assert_eq!(server.count("Race").await, 31);
}

/// Items 61 and the schema rules of §8.2: a required field missing, null or empty →
/// `142 "<f> is required"` (on create and update); a `defaultValue` fills an absent field and
/// comes back in the 201 body.
#[tokio::test]
async fn defaults_and_required_fields_apply() {
    let server = TestServer::new().await;
    server
        .create_class(
            "Ticket",
            json!({"fields": {
                "title": {"type": "String", "required": true},
                "status": {"type": "String", "defaultValue": "open"},
                "f": {"type": "String", "required": true, "defaultValue": "d"},
                "priority": {"type": "Number", "defaultValue": 3},
            }}),
        )
        .await;

    for body in [
        json!({}),
        json!({"title": null}),
        json!({"title": ""}),
        json!({"title": {"__op": "Delete"}}),
    ] {
        let reply = server
            .public(Method::POST, "/classes/Ticket", Some(body.clone()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body,
            json!({"code": 142, "error": "title is required"}),
            "{body}"
        );
    }
    assert_eq!(server.count("Ticket").await, 0);

    let reply = server
        .public(
            Method::POST,
            "/classes/Ticket",
            Some(json!({"title": "broken"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(
        keys(&reply.body),
        vec!["createdAt", "f", "objectId", "priority", "status"]
    );
    assert_eq!(reply.body["status"], "open");
    assert_eq!(reply.body["f"], "d");
    assert_eq!(reply.body["priority"], json!(3));
    let id = reply.body["objectId"].as_str().unwrap().to_owned();
    let object = server.get("Ticket", &id).await;
    assert_eq!(object["status"], "open");
    assert_eq!(object["f"], "d");
    assert_eq!(object["priority"], json!(3));

    // Given values win, and nothing extra is echoed.
    let reply = server
        .public(
            Method::POST,
            "/classes/Ticket",
            Some(json!({"title": "t", "status": "closed", "f": "mine", "priority": 1})),
        )
        .await;
    assert_eq!(keys(&reply.body), vec!["createdAt", "objectId"]);
    let other = reply.body["objectId"].as_str().unwrap();
    assert_eq!(server.get("Ticket", other).await["status"], "closed");

    // An update may not clear a required field.
    let path = format!("/classes/Ticket/{id}");
    for body in [
        json!({"title": null}),
        json!({"title": ""}),
        json!({"title": {"__op": "Delete"}}),
    ] {
        let reply = server.public(Method::PUT, &path, Some(body.clone())).await;
        assert_parse_error(&reply, 400, 142, Some("title is required"));
    }
    assert_eq!(server.get("Ticket", &id).await["title"], "broken");
    let ok = server
        .public(Method::PUT, &path, Some(json!({"status": "done"})))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

/// Template defaults: a `Message` created by master gets `role:"user"` and
/// `status:"complete"` in the 201 body; a `ChatSession` without participants → 142.
#[tokio::test]
async fn template_defaults_and_required_fields() {
    let server = TestServer::new().await;
    let missing = server
        .master(
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"title": "t"})),
        )
        .await;
    assert_parse_error(&missing, 400, 142, Some("participants is required"));
    let session = server
        .master(
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "title": "t"})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{:?}", session.body);
    assert_eq!(session.body["policy"], "all");
    assert_eq!(session.body["archived"], json!(false));
    let session_id = session.body["objectId"].as_str().unwrap();

    let message = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": "hi", "session": pointer("ChatSession", session_id)})),
        )
        .await;
    assert_eq!(message.status, StatusCode::CREATED, "{:?}", message.body);
    assert_eq!(message.body["role"], "user");
    assert_eq!(message.body["status"], "complete");
    let no_session = server
        .master(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": "hi"})),
        )
        .await;
    assert_parse_error(&no_session, 400, 142, Some("session is required"));
}

/// Class names that differ only in letter case cannot live side by side in SQL (identifiers
/// ignore case), so Parlor refuses the second one with a clear `103` instead of mixing data;
/// the first class keeps working. (A deliberate deviation: Parse on MongoDB allows both.)
#[tokio::test]
async fn class_names_differing_only_in_case_are_refused() {
    let server = TestServer::new().await;
    let upper = server
        .master(Method::POST, "/classes/Item", Some(json!({"a": 1})))
        .await;
    assert_eq!(upper.status, StatusCode::CREATED, "{:?}", upper.body);
    for class_name in ["item", "ITEM"] {
        let reply = server
            .master(
                Method::POST,
                &format!("/classes/{class_name}"),
                Some(json!({"a": "text"})),
            )
            .await;
        assert_parse_error(
            &reply,
            400,
            103,
            Some(&format!(
                "Class {class_name} conflicts with class Item: class names must differ in more than letter case."
            )),
        );
        let schema = server
            .master(
                Method::POST,
                &format!("/schemas/{class_name}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(schema.body["code"], 103, "{:?}", schema.body);
    }
    assert_eq!(server.count("Item").await, 1);
    assert_eq!(server.find("Item", &[]).await[0]["a"], json!(1));
    let schema = server.master(Method::GET, "/schemas/Item", None).await.body;
    assert_eq!(schema["fields"]["a"], json!({"type": "Number"}));
    assert_parse_error(
        &server.master(Method::GET, "/schemas/item", None).await,
        400,
        103,
        None,
    );
}

/// Field names that differ only in letter case are refused the same way (`255`), on update,
/// on create and through the schemas API, and nothing is written.
#[tokio::test]
async fn field_names_differing_only_in_case_are_refused() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "lower"})).await;
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"Title": 5})),
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        255,
        Some(
            "Field Title conflicts with field title: field names must differ in more than letter case.",
        ),
    );
    let created = server
        .master(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x", "TITLE": false})),
        )
        .await;
    assert_eq!(created.body["code"], 255, "{:?}", created.body);
    let schema = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"fields": {"TiTlE": {"type": "String"}}})),
        )
        .await;
    assert_eq!(schema.body["code"], 255, "{:?}", schema.body);
    assert_eq!(server.count("Item").await, 1);
    let object = server.get("Item", &id).await;
    assert_eq!(object["title"], "lower");
    assert!(object.get("Title").is_none());
}

/// §2.2 and §16: a `null` value is stored as null (on create and on update), reads back as
/// `null`, and counts as existing for `$exists` (Mongo's rule, which Parlor follows).
#[tokio::test]
async fn null_is_stored_as_null() {
    let server = TestServer::new().await;
    let defined = server
        .master(
            Method::POST,
            "/schemas/Item",
            Some(json!({"fields": {"v": {"type": "String"}, "w": {"type": "Number"}}})),
        )
        .await;
    assert_eq!(defined.status, StatusCode::OK, "{:?}", defined.body);
    let created = server.create("Item", json!({"v": null, "w": 1})).await;
    let object = server.get("Item", &created).await;
    assert_eq!(object.get("v"), Some(&Value::Null), "{object}");

    let updated = server.create("Item", json!({"v": "x", "w": 2})).await;
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{updated}"),
            Some(json!({"v": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let object = server.get("Item", &updated).await;
    assert_eq!(object.get("v"), Some(&Value::Null), "{object}");

    server.create("Item", json!({"w": 3})).await;
    let existing = server
        .find(
            "Item",
            &[
                ("where", json!({"v": {"$exists": true}})),
                ("order", json!("w")),
            ],
        )
        .await;
    assert_eq!(values(&existing, "w"), vec![json!(1), json!(2)]);
    let missing = server
        .find("Item", &[("where", json!({"v": {"$exists": false}}))])
        .await;
    assert_eq!(values(&missing, "w"), vec![json!(3)]);

    // A null for a field no schema knows says nothing about its type: it adds no field, but
    // it is stored (as MongoDB stores it), reads back, and `$exists` finds it (issue 10).
    let untyped = server.create("Item", json!({"u": null, "w": 4})).await;
    assert_eq!(
        server.get("Item", &untyped).await.get("u"),
        Some(&Value::Null)
    );
    let schema = server.master(Method::GET, "/schemas/Item", None).await.body;
    assert!(schema["fields"].get("u").is_none(), "{schema}");
    let exists = |value: bool| json!({"u": {"$exists": value}});
    let found = server.find("Item", &[("where", exists(true))]).await;
    assert_eq!(values(&found, "w"), vec![json!(4)]);
    let others = server
        .find("Item", &[("where", exists(false)), ("order", json!("w"))])
        .await;
    assert_eq!(values(&others, "w"), vec![json!(1), json!(2), json!(3)]);
    // On update too; a Delete takes it away again.
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{updated}"),
            Some(json!({"u": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let found = server
        .find("Item", &[("where", exists(true)), ("order", json!("w"))])
        .await;
    assert_eq!(values(&found, "w"), vec![json!(2), json!(4)]);
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{untyped}"),
            Some(json!({"u": {"__op": "Delete"}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(server.get("Item", &untyped).await.get("u").is_none());
    let found = server.find("Item", &[("where", exists(true))]).await;
    assert_eq!(values(&found, "w"), vec![json!(2)]);
    // `keys` names it like any field.
    let picked = server
        .find("Item", &[("where", exists(true)), ("keys", json!("u"))])
        .await;
    assert_eq!(picked[0].get("u"), Some(&Value::Null), "{picked:?}");
    // Once the field has a type, the stored null is still that object's value.
    server.create("Item", json!({"u": "typed", "w": 5})).await;
    let found = server
        .find("Item", &[("where", exists(true)), ("order", json!("w"))])
        .await;
    assert_eq!(values(&found, "w"), vec![json!(2), json!(5)]);
    assert_eq!(
        server.get("Item", &updated).await.get("u"),
        Some(&Value::Null)
    );
}

/// The probe: `{"nul": null}` on a new class, then `$exists: true` on it.
#[tokio::test]
async fn exists_finds_a_null_on_a_new_class() {
    let server = TestServer::new().await;
    let id = server.create("Fresh", json!({"nul": null})).await;
    let found = server
        .find("Fresh", &[("where", json!({"nul": {"$exists": true}}))])
        .await;
    assert_eq!(ids(&found), vec![id]);
    assert_eq!(found[0].get("nul"), Some(&Value::Null));
}

/// §2.7: a `Batch` of relation ops adds and removes members in one write; writing the
/// read-only Relation marker back changes nothing.
#[tokio::test]
async fn relation_batch_op_and_marker() {
    let server = TestServer::new().await;
    let a = server.create("Player", json!({"name": "a"})).await;
    let b = server.create("Player", json!({"name": "b"})).await;
    let team = server
        .create(
            "Team",
            json!({"members": {"__op": "AddRelation", "objects": [pointer("Player", &a)]}}),
        )
        .await;
    let reply = server
        .public(
            Method::PUT,
            &format!("/classes/Team/{team}"),
            Some(json!({"members": {"__op": "Batch", "ops": [
                {"__op": "AddRelation", "objects": [pointer("Player", &b)]},
                {"__op": "RemoveRelation", "objects": [pointer("Player", &a)]},
            ]}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let related = json!({"$relatedTo": {"object": pointer("Team", &team), "key": "members"}});
    assert_eq!(
        ids(&server.find("Player", &[("where", related.clone())]).await),
        vec![b.clone()]
    );

    let marker = server
        .public(
            Method::PUT,
            &format!("/classes/Team/{team}"),
            Some(json!({"members": {"__type": "Relation", "className": "Player"}})),
        )
        .await;
    assert_eq!(marker.status, StatusCode::OK, "{:?}", marker.body);
    assert_eq!(
        ids(&server.find("Player", &[("where", related)]).await),
        vec![b]
    );
    assert_eq!(
        server.get("Team", &team).await["members"],
        json!({"__type": "Relation", "className": "Player"})
    );
}

/// §2.6: `_Installation` find and delete without the master key → 119; master may.
#[tokio::test]
async fn installation_find_and_delete_need_master() {
    let server = TestServer::new().await;
    let id = server
        .create("_Installation", json!({"installationId": "3f0d1c2e-0000-4000-8000-000000000000", "deviceType": "android"}))
        .await;
    let find = server
        .public(Method::GET, "/classes/_Installation", None)
        .await;
    assert_parse_error(&find, 400, 119, None);
    let delete = server
        .public(
            Method::DELETE,
            &format!("/classes/_Installation/{id}"),
            None,
        )
        .await;
    assert_parse_error(&delete, 400, 119, None);
    assert_eq!(server.count("_Installation").await, 1);
    assert_eq!(server.find("_Installation", &[]).await.len(), 1);
    let master = server
        .master(
            Method::DELETE,
            &format!("/classes/_Installation/{id}"),
            None,
        )
        .await;
    assert_eq!(master.status, StatusCode::OK);
}

/// §13: `POST /installations` registers a device (201); registering the same
/// `installationId` again updates it (200) instead of adding a second one; listing
/// installations needs the master key.
#[tokio::test]
async fn installations_are_upserted_by_installation_id() {
    let server = TestServer::new().await;
    let body = json!({"installationId": "3f0d1c2e-5b1a-4c7e-9d2a-8e6f4b3c2a10", "deviceType": "android", "appVersion": "1.0"});
    let first = server
        .public(Method::POST, "/installations", Some(body.clone()))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let id = first.body["objectId"].as_str().unwrap().to_owned();
    let mut again = body.clone();
    again["appVersion"] = json!("1.1");
    let second = server
        .public(Method::POST, "/installations", Some(again))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert!(second.body["updatedAt"].is_string());
    let listed = server.public(Method::GET, "/installations", None).await;
    assert_parse_error(&listed, 400, 119, None);
    let all = server.master(Method::GET, "/installations", None).await;
    let results = all.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{:?}", all.body);
    assert_eq!(results[0]["objectId"], id.as_str());
    assert_eq!(results[0]["appVersion"], "1.1");
}
