//! `GET /aggregate/:className`: pipelines and `distinct`, master key only, translated to SQL
//! on both backends, answered as Parse Server answers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// A master-key aggregate with these query parameters.
async fn aggregate(server: &TestServer, class_name: &str, params: &[(&str, Value)]) -> Reply {
    server
        .send(
            Method::GET,
            &format!("/aggregate/{class_name}{}", query_string(params)),
            None,
            &MASTER_HEADERS,
        )
        .await
}

/// The results of a pipeline that must succeed.
async fn results(server: &TestServer, class_name: &str, pipeline: Value) -> Vec<Value> {
    let reply = aggregate(server, class_name, &[("pipeline", pipeline.clone())]).await;
    assert_eq!(reply.status, StatusCode::OK, "{pipeline}: {:?}", reply.body);
    reply.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Sorts results by their JSON text, for comparisons that do not depend on order.
fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_key(|value| value.to_string());
    values
}

/// Parse Server's aggregate test data: four objects.
async fn load(server: &TestServer) {
    for (score, name, group, views, size) in [
        (10, "foo", "A", 900, json!(["S", "M"])),
        (10, "foo", "A", 800, json!(["M", "L"])),
        (10, "bar", "B", 700, json!(["S"])),
        (20, "dpl", "B", 700, json!(["S"])),
    ] {
        server
            .create(
                "T",
                json!({"score": score, "name": name, "sender": {"group": group},
                       "views": views, "size": size}),
            )
            .await;
    }
}

/// Only the master key aggregates: anyone else gets Parse Server's 403 and no rows.
#[tokio::test]
async fn aggregate_needs_the_master_key() {
    let server = TestServer::new().await;
    load(&server).await;
    let user = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "u", "password": "p"})),
        )
        .await;
    let token = user.body["sessionToken"].as_str().unwrap().to_owned();
    let pipeline = query_string(&[("pipeline", json!([{"$group": {"_id": "$name"}}]))]);
    for headers in [
        vec![("x-parse-application-id", APP_ID)],
        vec![
            ("x-parse-application-id", APP_ID),
            ("x-parse-session-token", token.as_str()),
        ],
    ] {
        for query in [pipeline.clone(), "?distinct=name".to_owned()] {
            let reply = server
                .send(Method::GET, &format!("/aggregate/T{query}"), None, &headers)
                .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
            assert_eq!(
                reply.body,
                json!({"error": "unauthorized: master key is required"})
            );
        }
    }
}

/// `$group`: keys (`$field`, objects of them, null), accumulators, date parts; `_id`
/// becomes `objectId`.
#[tokio::test]
async fn group_stages() {
    let server = TestServer::new().await;
    load(&server).await;
    let groups = results(
        &server,
        "T",
        json!([{"$group": {"_id": "$name", "n": {"$sum": 1}}}]),
    )
    .await;
    assert_eq!(
        sorted(groups),
        sorted(vec![
            json!({"objectId": "bar", "n": 1}),
            json!({"objectId": "dpl", "n": 1}),
            json!({"objectId": "foo", "n": 2}),
        ])
    );
    let totals = results(
        &server,
        "T",
        json!([{"$group": {"_id": null, "total": {"$sum": "$score"}, "avg": {"$avg": "$score"},
                 "min": {"$min": "$score"}, "max": {"$max": "$score"}, "count": {"$count": {}},
                 "names": {"$max": "$name"}}}]),
    )
    .await;
    assert_eq!(
        totals,
        vec![
            json!({"objectId": null, "total": 50, "avg": 12.5, "min": 10, "max": 20,
                    "count": 4, "names": "foo"})
        ]
    );
    // Two keys: the group id is an object of them.
    let pairs = results(
        &server,
        "T",
        json!([{"$group": {"_id": {"score": "$score", "views": "$views"}, "n": {"$sum": 1}}}]),
    )
    .await;
    assert_eq!(
        sorted(pairs),
        sorted(vec![
            json!({"objectId": {"score": 10, "views": 900}, "n": 1}),
            json!({"objectId": {"score": 10, "views": 800}, "n": 1}),
            json!({"objectId": {"score": 10, "views": 700}, "n": 1}),
            json!({"objectId": {"score": 20, "views": 700}, "n": 1}),
        ])
    );
    // A key of a grouped `_id` is `_id.<key>` to later stages.
    let top = results(
        &server,
        "T",
        json!([{"$group": {"_id": {"score": "$score", "views": "$views"}}},
               {"$sort": {"_id.views": -1}}, {"$limit": 1},
               {"$match": {"_id.score": 10}}]),
    )
    .await;
    assert_eq!(top, vec![json!({"objectId": {"score": 10, "views": 900}})]);
    let by_number = results(&server, "T", json!({"$group": {"_id": "$score"}})).await;
    assert_eq!(
        sorted(by_number),
        vec![json!({"objectId": 10}), json!({"objectId": 20})]
    );
    // Date parts of createdAt, in UTC, as the object's own date says.
    let created = server
        .master(Method::GET, "/classes/T?limit=1", None)
        .await
        .body["results"][0]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let days = results(
        &server,
        "T",
        json!([{"$group": {"_id": {"day": {"$dayOfMonth": "$_created_at"},
                                    "month": {"$month": "$createdAt"},
                                    "year": {"$year": "$createdAt"}},
                            "count": {"$sum": 1}}}]),
    )
    .await;
    let year: i64 = created[0..4].parse().unwrap();
    let month: i64 = created[5..7].parse().unwrap();
    let day: i64 = created[8..10].parse().unwrap();
    assert_eq!(
        days,
        vec![json!({"objectId": {"day": day, "month": month, "year": year}, "count": 4})]
    );
    // An empty class gives no group at all (not a group of nothing).
    server.create("Empty", json!({"x": 1})).await;
    let none = results(
        &server,
        "Empty",
        json!([{"$match": {"x": 2}}, {"$group": {"_id": null, "n": {"$sum": 1}}}]),
    )
    .await;
    assert!(none.is_empty());
    // A constant key and accumulators of missing fields: one group, of nulls.
    let constants = results(
        &server,
        "T",
        json!([{"$group": {"_id": "all", "m": {"$max": "$nothing"}}}]),
    )
    .await;
    assert_eq!(constants, vec![json!({"objectId": null})]);
    // A later `$match` compares those nulls as numbers (nothing is greater than 3).
    let none = results(
        &server,
        "T",
        json!([{"$group": {"_id": "$name", "m": {"$max": "$nothing"}}}, {"$match": {"m": {"$gt": 3}}}]),
    )
    .await;
    assert!(none.is_empty());
    // A class that does not exist answers empty.
    assert!(
        results(&server, "Nothing", json!([{"$group": {"_id": null}}]))
            .await
            .is_empty()
    );
}

/// Grouping by a pointer gives the target ids (and null for objects without one), as Parse
/// Server answers; a `$match` on a pointer may give the bare id.
#[tokio::test]
async fn pointers_in_pipelines() {
    let server = TestServer::new().await;
    let a = server.create("P", json!({"v": 1})).await;
    let b = server.create("P", json!({"v": 2})).await;
    let pointer = |id: &str| json!({"__type": "Pointer", "className": "P", "objectId": id});
    server.create("T", json!({"p": pointer(&a)})).await;
    server.create("T", json!({"p": pointer(&b)})).await;
    server.create("T", json!({"p": pointer(&a)})).await;
    server.create("T", json!({"other": 1})).await;
    let groups = results(
        &server,
        "T",
        json!([{"$group": {"_id": "$p", "n": {"$sum": 1}}}]),
    )
    .await;
    assert_eq!(
        sorted(groups),
        sorted(vec![
            json!({"objectId": a, "n": 2}),
            json!({"objectId": b, "n": 1}),
            json!({"objectId": null, "n": 1}),
        ])
    );
    let matched = results(
        &server,
        "T",
        json!([{"$match": {"_p_p": a}}, {"$project": {"p": 1}}]),
    )
    .await;
    assert_eq!(matched.len(), 2);
    for object in matched {
        assert_eq!(object["p"], pointer(&a));
        assert!(object["objectId"].is_string());
        assert!(object.get("other").is_none());
    }
}

/// `$match` (the query language of a find, before and after other stages), `$sort`,
/// `$skip`, `$limit`, `$project`, `$count`, `$unwind`.
#[tokio::test]
async fn row_stages() {
    let server = TestServer::new().await;
    load(&server).await;
    let names = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|row| row["name"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    // `$sort` keys apply in the order written (`views` before `name` here; the JSON text is
    // written by hand, as serializing a map would sort its keys).
    let written = r#"[{"$sort":{"views":1,"name":-1}}]"#;
    let reply = server
        .send(
            Method::GET,
            &format!("/aggregate/T?pipeline={}", encode(written)),
            None,
            &MASTER_HEADERS,
        )
        .await;
    let rows = reply.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(names(&rows), ["dpl", "bar", "foo", "foo"]);
    let rows = results(&server, "T", json!([{"$sort": {"name": 1, "views": -1}}])).await;
    assert_eq!(names(&rows), ["bar", "dpl", "foo", "foo"]);
    assert_eq!(rows[2]["views"], 900);
    assert_eq!(rows[0]["sender"], json!({"group": "B"}));
    assert!(rows[0]["createdAt"].is_string() && rows[0]["objectId"].is_string());
    assert!(rows[0].get("_rperm").is_none() && rows[0].get("ACL").is_none());
    let rows = results(
        &server,
        "T",
        json!([{"$sort": {"views": 1, "name": 1}}, {"$skip": 1}, {"$limit": 2}]),
    )
    .await;
    assert_eq!(names(&rows), ["dpl", "foo"]);
    // `$match` with Parse's operators, `$or`, the `_id` spelling, dotted keys.
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"$or": [{"score": {"$gt": 15, "$lt": 25}}, {"views": {"$gt": 750, "$lt": 850}}]}},
               {"$sort": {"score": 1}}]),
    )
    .await;
    assert_eq!(names(&rows), ["foo", "dpl"]);
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"sender.group": "B", "size": "S"}}]),
    )
    .await;
    assert_eq!(rows.len(), 2);
    let first = rows[0]["objectId"].as_str().unwrap().to_owned();
    let rows = results(&server, "T", json!([{"$match": {"_id": first}}])).await;
    assert_eq!(rows.len(), 1);
    // A `$match` after a `$limit` filters the limited rows.
    let rows = results(
        &server,
        "T",
        json!([{"$sort": {"views": -1}}, {"$limit": 2}, {"$match": {"name": "bar"}}]),
    )
    .await;
    assert!(rows.is_empty());
    // `$match` after `$group` compares the computed fields.
    let rows = results(
        &server,
        "T",
        json!([{"$group": {"_id": "$name", "total": {"$sum": "$views"}}},
               {"$match": {"total": {"$gte": 1000}}}]),
    )
    .await;
    assert_eq!(rows, vec![json!({"objectId": "foo", "total": 1700})]);
    let rows = results(
        &server,
        "T",
        json!([{"$group": {"_id": "$name"}}, {"$match": {"_id": {"$in": ["bar", "dpl"]}}},
               {"$sort": {"_id": -1}}]),
    )
    .await;
    assert_eq!(
        rows,
        vec![json!({"objectId": "dpl"}), json!({"objectId": "bar"})]
    );
    // `$project`: kept fields (objectId too), renamed ones, dropped ones.
    let rows = results(
        &server,
        "T",
        json!([{"$sort": {"views": -1}}, {"$limit": 1},
               {"$project": {"name": 1, "g": "$sender", "_id": 0}}]),
    )
    .await;
    assert_eq!(
        rows,
        vec![json!({"name": "foo", "g": {"group": "A"}, "objectId": null})]
    );
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"name": "dpl"}}, {"$project": {"size": 0, "sender": 0, "views": 0}}]),
    )
    .await;
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["createdAt", "name", "objectId", "score", "updatedAt"]
    );
    // `$count`.
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"score": 10}}, {"$count": "tens"}]),
    )
    .await;
    assert_eq!(rows, vec![json!({"tens": 3, "objectId": null})]);
    // `$unwind` alone: one row per item, the item in the field's place.
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"name": "bar"}}, {"$unwind": "$size"}]),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["size"], "S");
    assert_eq!(rows[0]["views"], 700);
    assert!(rows[0].get("_nulls").is_none());
    // `preserveNullAndEmptyArrays` keeps objects without items, the field then absent.
    server
        .create("T", json!({"name": "empty", "size": []}))
        .await;
    server.create("T", json!({"name": "none"})).await;
    for (preserve, expected) in [(false, 0), (true, 2)] {
        let rows = results(
            &server,
            "T",
            json!([{"$match": {"name": {"$in": ["empty", "none"]}}},
                   {"$unwind": {"path": "$size", "preserveNullAndEmptyArrays": preserve}}]),
        )
        .await;
        assert_eq!(rows.len(), expected, "{rows:?}");
        assert!(rows.iter().all(|row| row.get("size").is_none()), "{rows:?}");
    }
    // `$unwind`, then grouping the items.
    let rows = results(
        &server,
        "T",
        json!([{"$unwind": "$size"}, {"$group": {"_id": "$size", "n": {"$sum": 1}}},
               {"$sort": {"n": -1}}]),
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!({"objectId": "S", "n": 3}),
            json!({"objectId": "M", "n": 2}),
            json!({"objectId": "L", "n": 1}),
        ]
    );
    let rows = results(
        &server,
        "T",
        json!([{"$match": {"name": "foo"}}, {"$sort": {"views": -1}},
               {"$unwind": {"path": "$size", "includeArrayIndex": "i"}},
               {"$project": {"size": 1, "i": 1, "_id": 0}}]),
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!({"size": "S", "i": 0, "objectId": null}),
            json!({"size": "M", "i": 1, "objectId": null}),
            json!({"size": "M", "i": 0, "objectId": null}),
            json!({"size": "L", "i": 1, "objectId": null}),
        ]
    );
}

/// The forms Parse Server accepts: stages as parameters, `pipeline` as an object or an
/// array, in the query string or in a `_method: GET` body as the SDKs send it; `where` with
/// them.
#[tokio::test]
async fn pipeline_forms() {
    let server = TestServer::new().await;
    load(&server).await;
    let group = json!({"_id": "$name"});
    for params in [
        vec![("$group", group.clone())],
        vec![("pipeline", json!({"$group": group}))],
        vec![("pipeline", json!([{"$group": group}]))],
    ] {
        let reply = aggregate(&server, "T", &params).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["results"].as_array().unwrap().len(), 3);
    }
    let reply = aggregate(
        &server,
        "T",
        &[
            ("pipeline", json!([{"$group": group}])),
            ("where", json!({"score": 20})),
        ],
    )
    .await;
    assert_eq!(reply.body["results"], json!([{"objectId": "dpl"}]));
    let reply = server
        .send(
            Method::POST,
            "/aggregate/T",
            Some(json!({"_method": "GET", "pipeline": [{"$group": group}],
                        "where": {"name": "foo"}})),
            &MASTER_HEADERS,
        )
        .await;
    assert_eq!(reply.body["results"], json!([{"objectId": "foo"}]));
    // An object pipeline runs its stages in the order written: a `$limit` before a `$sort`
    // limits first (JSON text written by hand, as key order is the point).
    let body = r#"{"_method":"GET","pipeline":{"$sort":{"views":-1},"$limit":1,"$project":{"views":1,"_id":0}}}"#;
    let reply = server
        .send_raw(
            Method::POST,
            "/aggregate/T",
            Some(body.as_bytes().to_vec()),
            Some("text/plain"),
            &MASTER_HEADERS,
        )
        .await;
    assert_eq!(
        reply.body["results"],
        json!([{"views": 900, "objectId": null}])
    );
    // `$project` before `$match`: the match sees no `name` (the run order would match first).
    let body = r#"{"_method":"GET","pipeline":{"$project":{"views":1},"$match":{"name":"foo"}}}"#;
    let reply = server
        .send_raw(
            Method::POST,
            "/aggregate/T",
            Some(body.as_bytes().to_vec()),
            Some("text/plain"),
            &MASTER_HEADERS,
        )
        .await;
    assert_eq!(reply.body["results"], json!([]));
    // Stages as query parameters, in the order given.
    let reply = aggregate(
        &server,
        "T",
        &[
            ("$sort", json!({"views": -1})),
            ("$limit", json!(1)),
            ("$project", json!({"views": 1})),
        ],
    )
    .await;
    assert_eq!(reply.body["results"][0]["views"], 900);
    for (params, found) in [
        (
            [
                ("$project", json!({"views": 1})),
                ("$match", json!({"name": "foo"})),
            ],
            0,
        ),
        (
            [
                ("$match", json!({"name": "foo"})),
                ("$project", json!({"views": 1})),
            ],
            2,
        ),
    ] {
        let reply = aggregate(&server, "T", &params).await;
        assert_eq!(reply.body["results"].as_array().map(Vec::len), Some(found));
    }
}

/// What is outside the supported subset, or malformed, is a 102 naming it — never a 500.
#[tokio::test]
async fn bad_pipelines_are_refused() {
    let server = TestServer::new().await;
    load(&server).await;
    for (pipeline, message) in [
        (
            json!([{"$lookup": {"from": "U"}}]),
            "aggregate stage $lookup is not supported",
        ),
        (
            json!([{"$group": {}}]),
            "Invalid parameter for query: group. Missing key _id",
        ),
        (
            json!([{"$group": {"_id": "$name", "all": {"$push": "$score"}}}]),
            "accumulator $push is not supported",
        ),
        (
            json!([{"$project": {"x": {"$substr": ["$_p_pointer", 11, -1]}}}]),
            "$project expression {\"$substr\":[\"$_p_pointer\",11,-1]} is not supported",
        ),
        (
            json!([{"$limit": 1, "$skip": 1}]),
            "Pipeline stages should only have one key but found $limit, $skip.",
        ),
        (
            json!([{"$group": {"_id": null, "m": {"$min": "$sender"}}}]),
            "$min of the field sender (of this type) is not supported",
        ),
        (
            json!([{"$unwind": "$name"}]),
            "$unwind of the non-Array field name is not supported",
        ),
        (
            json!([{"$group": {"_id": "$name"}}, {"$match": {"objectId": {"$regex": "f"}}}]),
            "$regex in $match after $group is not supported",
        ),
        (json!(1234), "Invalid pipeline: 1234"),
        (
            json!([{"$match": {"score": {"$foo": 1}}}]),
            "Invalid query operator: $foo",
        ),
    ] {
        let reply = aggregate(&server, "T", &[("pipeline", pipeline.clone())]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{pipeline}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["code"], 102, "{pipeline}: {:?}", reply.body);
        assert_eq!(reply.body["error"], message, "{pipeline}");
    }
    let reply = aggregate(&server, "T", &[("group", json!({"_id": null}))]).await;
    assert_parse_error(&reply, 400, 102, Some("Invalid aggregate stage 'group'."));
    let reply = server
        .send(
            Method::GET,
            "/aggregate/T?pipeline=%5B%7B",
            None,
            &MASTER_HEADERS,
        )
        .await;
    assert_parse_error(&reply, 400, 102, None);
}

/// `distinct`: values of a field (pointers typed, dates as ISO strings), of an Array's items, of a
/// dotted path; with `where`; nothing for missing classes and fields.
#[tokio::test]
async fn distinct_values() {
    let server = TestServer::new().await;
    load(&server).await;
    let distinct = |params: Vec<(&'static str, Value)>| {
        let server = &server;
        async move {
            let reply = aggregate(server, "T", &params).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            sorted(
                reply.body["results"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )
        }
    };
    assert_eq!(
        distinct(vec![("distinct", json!("score"))]).await,
        vec![json!(10), json!(20)]
    );
    assert_eq!(
        distinct(vec![
            ("distinct", json!("score")),
            ("where", json!({"name": "dpl"}))
        ])
        .await,
        vec![json!(20)]
    );
    assert_eq!(
        distinct(vec![("distinct", json!("sender.group"))]).await,
        vec![json!("A"), json!("B")]
    );
    assert_eq!(
        distinct(vec![("distinct", json!("size"))]).await,
        vec![json!("L"), json!("M"), json!("S")]
    );
    assert!(
        distinct(vec![("distinct", json!("nothing"))])
            .await
            .is_empty()
    );
    assert_eq!(
        distinct(vec![("distinct", json!("objectId"))]).await.len(),
        4
    );
    let dates = distinct(vec![("distinct", json!("createdAt"))]).await;
    assert!(!dates.is_empty());
    // ISO strings, as Parse Server answers a distinct of dates.
    assert!(
        dates
            .iter()
            .all(|date| date.as_str().is_some_and(|iso| iso.ends_with('Z')))
    );
    let target = server.create("P", json!({})).await;
    server
        .create(
            "T",
            json!({"p": {"__type": "Pointer", "className": "P", "objectId": target}}),
        )
        .await;
    assert_eq!(
        distinct(vec![("distinct", json!("p"))]).await,
        vec![json!({"__type": "Pointer", "className": "P", "objectId": target})]
    );
    let reply = aggregate(&server, "Nothing", &[("distinct", json!("x"))]).await;
    assert_eq!(reply.body, json!({"results": []}));
}

/// `_User` rows carry no password hash or other internal field, and a pipeline cannot
/// reach one.
#[tokio::test]
async fn hidden_fields_never_leak() {
    let server = TestServer::new().await;
    server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "leaky", "password": "secret", "score": 10})),
        )
        .await;
    let rows = results(&server, "_User", json!([{"$match": {"score": {"$gt": 5}}}])).await;
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_object().unwrap();
    assert_eq!(row["username"], "leaky");
    assert!(row.keys().all(|key| !key.starts_with('_')), "{row:?}");
    assert!(!rows[0].to_string().contains("secret"));
    let reply = aggregate(&server, "_User", &[("distinct", json!("_hashed_password"))]).await;
    assert_eq!(reply.body, json!({"results": []}));
    let grouped = results(
        &server,
        "_User",
        json!([{"$group": {"_id": "$_hashed_password", "n": {"$sum": 1}}}]),
    )
    .await;
    assert_eq!(grouped, vec![json!({"objectId": null, "n": 1})]);
}

/// `explain=true` answers the database's plan instead of objects, to the master key only
/// (Parse Server 9's default); `hint` is accepted and left to the planner.
#[tokio::test]
async fn explain_shows_the_plan() {
    let server = TestServer::new().await;
    load(&server).await;
    let find = |headers: &'static [(&'static str, &'static str)],
                params: Vec<(&'static str, Value)>| {
        let server = &server;
        async move {
            server
                .send(
                    Method::GET,
                    &format!("/classes/T{}", query_string(&params)),
                    None,
                    headers,
                )
                .await
        }
    };
    let refused = find(&PUBLIC_HEADERS, vec![("explain", json!(true))]).await;
    assert_parse_error(
        &refused,
        400,
        102,
        Some("Using the explain query parameter requires the master key"),
    );
    assert!(refused.body.get("results").is_none());
    for params in [
        vec![("explain", json!(true)), ("where", json!({"name": "foo"}))],
        vec![
            ("explain", json!(true)),
            ("hint", json!("nosuch_index")),
            ("order", json!("-views")),
        ],
    ] {
        let reply = find(&MASTER_HEADERS, params).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let results = reply.body["results"].as_array().unwrap();
        assert_eq!(results.len(), 1, "{:?}", reply.body);
        let plan = &results[0]["QUERY PLAN"];
        if on_postgres() {
            assert!(plan[0]["Plan"]["Node Type"].is_string(), "{plan}");
        } else {
            let steps = plan.as_array().unwrap();
            assert!(!steps.is_empty());
            assert!(
                steps.iter().all(|step| step["detail"].is_string()),
                "{plan}"
            );
        }
        // A plan, not the objects.
        assert!(!reply.text.contains("\"foo\""));
    }
    // A pipeline's plan, the same way.
    let reply = aggregate(
        &server,
        "T",
        &[
            ("pipeline", json!([{"$group": {"_id": "$name"}}])),
            ("explain", json!(true)),
        ],
    )
    .await;
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{:?}", reply.body);
    assert!(!results[0]["QUERY PLAN"].is_null(), "{:?}", reply.body);
    assert!(!reply.text.contains("\"foo\""));
    // A lookup by id uses the primary key, and the plan says so.
    let reply = find(
        &MASTER_HEADERS,
        vec![
            ("explain", json!(true)),
            ("where", json!({"objectId": "x"})),
        ],
    )
    .await;
    let plan = reply.body["results"][0]["QUERY PLAN"].to_string();
    assert!(
        plan.contains("INDEX") || plan.contains("Index") || plan.contains("PRIMARY KEY"),
        "{plan}"
    );
}

/// Cloud Code's `Parse.Query#aggregate` and `#distinct` run the same operation, with the
/// master key unless told otherwise (as the SDK), keeping the written order of `$sort` keys.
#[tokio::test]
async fn cloud_code_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.js"),
        "Parse.Cloud.define('totals', async () => {\n\
           const rows = await new Parse.Query('T').greaterThan('score', 5).aggregate([\n\
             { $group: { _id: '$name', views: { $sum: '$views' }, n: { $sum: 1 } } },\n\
             { $sort: { n: -1, _id: 1 } },\n\
           ]);\n\
           const scores = await new Parse.Query('T').distinct('score');\n\
           return { rows, scores: scores.sort((a, b) => a - b) };\n\
         });\n\
         Parse.Cloud.define('asUser', async () => new Parse.Query('T').aggregate([{ $count: 'n' }], { useMasterKey: false }));\n",
    )
    .unwrap();
    let server = TestServer::with(parlor_server::config::ServeOptions {
        cloud: Some(dir.path().join("main.js")),
        ..parlor_server::config::ServeOptions::default()
    })
    .await;
    load(&server).await;
    let reply = server
        .send(
            Method::POST,
            "/functions/totals",
            Some(json!({})),
            &PUBLIC_HEADERS,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.body["result"],
        json!({
            "rows": [
                {"objectId": "foo", "views": 1700, "n": 2},
                {"objectId": "bar", "views": 700, "n": 1},
                {"objectId": "dpl", "views": 700, "n": 1},
            ],
            "scores": [10, 20],
        })
    );
    // Without the master key, the server's refusal reaches the script.
    let reply = server
        .send(
            Method::POST,
            "/functions/asUser",
            Some(json!({})),
            &PUBLIC_HEADERS,
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        119,
        Some("unauthorized: master key is required"),
    );
}
