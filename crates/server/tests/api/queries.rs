//! Queries: parameters and `where` operators (§3; checklist items 24–37).

use std::time::Duration;

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// The `name`s of the objects a master find returns, sorted.
async fn names(server: &TestServer, class_name: &str, where_json: Value) -> Vec<String> {
    let reply = server
        .find_as(
            true,
            class_name,
            &[("where", where_json.clone()), ("limit", json!(1000))],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "where {where_json}: {:?}",
        reply.body
    );
    let mut names: Vec<String> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// A where that must be refused with `code` (and the message, when given).
async fn refused(
    server: &TestServer,
    class_name: &str,
    where_json: Value,
    code: i64,
    message: Option<&str>,
) {
    let reply = server
        .find_as(true, class_name, &[("where", where_json.clone())])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "where {where_json}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.body["code"], code,
        "where {where_json}: {:?}",
        reply.body
    );
    if let Some(message) = message {
        assert_eq!(reply.body["error"], message, "where {where_json}");
    }
}

/// The fixture most operator tests share.
async fn fixture(server: &TestServer) {
    server
        .create("Q", json!({"name": "alpha", "score": 1, "tags": ["a", "b"], "meta": {"model": "gpt", "n": 1}, "flag": true}))
        .await;
    server
        .create("Q", json!({"name": "beta", "score": 2, "tags": ["b", "c"], "meta": {"model": "claude", "n": 2}, "flag": false}))
        .await;
    server
        .create("Q", json!({"name": "Gamma.x", "score": 3, "tags": ["a", "b", "c"], "meta": {"model": "gpt", "n": 3}}))
        .await;
    server
        .create("Q", json!({"name": "delta", "tags": []}))
        .await;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Item 24: no `limit` → at most 100 results; `limit=1000` returns all 120; `skip` pages;
/// the default order is creation order.
#[tokio::test]
async fn default_limit_is_100_and_limit_1000_returns_all() {
    let server = TestServer::new().await;
    let bodies: Vec<Value> = (0..120).map(|i| json!({"i": i})).collect();
    let created = server.create_many("Many", bodies).await;
    assert_eq!(created.len(), 120);

    let default = server.find_as(false, "Many", &[]).await;
    assert_eq!(default.body["results"].as_array().unwrap().len(), 100);
    let all = server
        .find_as(false, "Many", &[("limit", json!(1000))])
        .await;
    let all = all.body["results"].as_array().unwrap().clone();
    assert_eq!(all.len(), 120);
    let skipped = server
        .find_as(
            false,
            "Many",
            &[
                ("limit", json!(1000)),
                ("skip", json!(110)),
                ("order", json!("i")),
            ],
        )
        .await;
    assert_eq!(
        values(skipped.body["results"].as_array().unwrap(), "i"),
        (110..120).map(|i| json!(i)).collect::<Vec<_>>()
    );
    let page = server
        .find_as(
            false,
            "Many",
            &[
                ("limit", json!(5)),
                ("skip", json!(10)),
                ("order", json!("-i")),
            ],
        )
        .await;
    assert_eq!(
        values(page.body["results"].as_array().unwrap(), "i"),
        (105..110).rev().map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(server.count("Many").await, 120);
}

/// Item 24: with `max_limit`, a bigger `limit` is silently clamped, and so is the default.
#[tokio::test]
async fn max_limit_clamps_silently() {
    let server = TestServer::with(ServeOptions {
        max_limit: Some(30),
        ..ServeOptions::default()
    })
    .await;
    server
        .create_many("Many", (0..40).map(|i| json!({"i": i})).collect())
        .await;
    let big = server
        .find_as(false, "Many", &[("limit", json!(1000))])
        .await;
    assert_eq!(big.status, StatusCode::OK);
    assert_eq!(big.body["results"].as_array().unwrap().len(), 30);
    let default = server.find_as(false, "Many", &[]).await;
    assert_eq!(default.body["results"].as_array().unwrap().len(), 30);
    let small = server.find_as(false, "Many", &[("limit", json!(7))]).await;
    assert_eq!(small.body["results"].as_array().unwrap().len(), 7);
    let counted = server
        .find_as(
            false,
            "Many",
            &[("limit", json!(1000)), ("count", json!(1))],
        )
        .await;
    assert_eq!(counted.body["count"], json!(40));
}

/// Item 25: `count=1&limit=0` → exactly `{"results":[],"count":N}`; `count` ignores `skip`
/// and `limit` and follows `where`.
#[tokio::test]
async fn count_with_limit_zero() {
    let server = TestServer::new().await;
    fixture(&server).await;
    let reply = server
        .find_as(false, "Q", &[("count", json!(1)), ("limit", json!(0))])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"results": [], "count": 4}));
    let reply = server
        .find_as(
            false,
            "Q",
            &[
                ("count", json!(1)),
                ("limit", json!(1)),
                ("skip", json!(1)),
                ("where", json!({"score": {"$exists": true}})),
            ],
        )
        .await;
    assert_eq!(reply.body["count"], json!(3));
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
    // Without count, no count key.
    let reply = server.find_as(false, "Q", &[("limit", json!(0))]).await;
    assert_eq!(reply.body, json!({"results": []}));
    // A class that does not exist counts 0.
    let reply = server
        .find_as(
            false,
            "Nothing",
            &[("count", json!(1)), ("limit", json!(0))],
        )
        .await;
    assert_eq!(reply.body, json!({"results": [], "count": 0}));
}

/// Item 26: `order=-score,name` sorts by score descending, then name ascending; an order
/// on an unknown field is ignored; an invalid name → `105 "Invalid field name: x."`.
#[tokio::test]
async fn order_on_several_keys() {
    let server = TestServer::new().await;
    for (name, score) in [("c", 1), ("a", 2), ("b", 2), ("d", 3), ("e", 1)] {
        server
            .create("O", json!({"name": name, "score": score}))
            .await;
        // Distinct creation instants, so that the createdAt order is defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let order = |results: &Value| -> Vec<String> {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = server
        .find_as(false, "O", &[("order", json!("-score,name"))])
        .await;
    assert_eq!(order(&reply.body), strings(&["d", "a", "b", "c", "e"]));
    let reply = server
        .find_as(false, "O", &[("order", json!("score,-name"))])
        .await;
    assert_eq!(order(&reply.body), strings(&["e", "c", "b", "a", "d"]));
    let reply = server
        .find_as(false, "O", &[("order", json!("nope,-name"))])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(order(&reply.body), strings(&["e", "d", "c", "b", "a"]));
    let reply = server
        .find_as(false, "O", &[("order", json!("-createdAt"))])
        .await;
    assert_eq!(order(&reply.body), strings(&["e", "d", "b", "a", "c"]));
    let reply = server.find_as(false, "O", &[]).await;
    assert_eq!(order(&reply.body), strings(&["c", "a", "b", "d", "e"]));

    let reply = server.find_as(false, "O", &[("order", json!("a-b"))]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 105, "error": "Invalid field name: a-b."})
    );
}

/// Ordering by a dotted key inside an Object field and by a Date field.
#[tokio::test]
async fn order_by_dotted_keys_and_dates() {
    let server = TestServer::new().await;
    for (name, rank, day) in [("x", 2, "02"), ("y", 3, "01"), ("z", 1, "03")] {
        server
            .create("O", json!({"name": name, "meta": {"rank": rank}, "when": {"__type": "Date", "iso": format!("2024-01-{day}T00:00:00.000Z")}}))
            .await;
    }
    let by_rank = server.find("O", &[("order", json!("meta.rank"))]).await;
    assert_eq!(
        values(&by_rank, "name"),
        vec![json!("z"), json!("x"), json!("y")]
    );
    let by_date = server.find("O", &[("order", json!("-when"))]).await;
    assert_eq!(
        values(&by_date, "name"),
        vec![json!("z"), json!("x"), json!("y")]
    );
}

/// Item 27: `keys=title` returns only `title` plus `objectId, createdAt, updatedAt` (and
/// `ACL` when set); `excludeKeys` leaves fields out.
#[tokio::test]
async fn keys_and_exclude_keys() {
    let server = TestServer::new().await;
    let id = server
        .create("K", json!({"title": "t", "body": "b", "score": 1}))
        .await;
    server
        .create(
            "K",
            json!({"title": "u", "body": "c", "score": 2, "ACL": {"*": {"read": true}}}),
        )
        .await;

    let reply = server
        .find_as(
            false,
            "K",
            &[("keys", json!("title")), ("order", json!("score"))],
        )
        .await;
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(
        keys(&results[0]),
        vec!["createdAt", "objectId", "title", "updatedAt"]
    );
    assert_eq!(
        keys(&results[1]),
        vec!["ACL", "createdAt", "objectId", "title", "updatedAt"]
    );

    let reply = server
        .find_as(
            false,
            "K",
            &[("keys", json!("title,score")), ("order", json!("score"))],
        )
        .await;
    assert_eq!(
        keys(&reply.body["results"][0]),
        vec!["createdAt", "objectId", "score", "title", "updatedAt"]
    );

    let reply = server
        .find_as(
            false,
            "K",
            &[
                ("excludeKeys", json!("body,score")),
                ("order", json!("score")),
            ],
        )
        .await;
    assert_eq!(
        keys(&reply.body["results"][0]),
        vec!["createdAt", "objectId", "title", "updatedAt"]
    );

    let get = server
        .public(Method::GET, &format!("/classes/K/{id}?keys=body"), None)
        .await;
    assert_eq!(
        keys(&get.body),
        vec!["body", "createdAt", "objectId", "updatedAt"]
    );
    let get = server
        .public(
            Method::GET,
            &format!("/classes/K/{id}?excludeKeys=body"),
            None,
        )
        .await;
    assert_eq!(
        keys(&get.body),
        vec!["createdAt", "objectId", "score", "title", "updatedAt"]
    );
}

/// Item 28: `include=author` expands a pointer into `{"__type":"Object","className":…}`;
/// `include=author.org` expands both levels; `include=*` expands every pointer one level;
/// arrays of pointers are expanded; `keys=author.name` selects inside the include.
#[tokio::test]
async fn include_expands_pointers() {
    let server = TestServer::new().await;
    let org = server.create("Org", json!({"name": "acme"})).await;
    let ann = server
        .create(
            "Author",
            json!({"name": "Ann", "age": 30, "org": pointer("Org", &org)}),
        )
        .await;
    let bob = server
        .create("Author", json!({"name": "Bob", "age": 40}))
        .await;
    let post = server
        .create(
            "Post",
            json!({"title": "p", "author": pointer("Author", &ann), "editor": pointer("Author", &bob), "contributors": [pointer("Author", &bob), pointer("Author", &ann)]}),
        )
        .await;

    let one = server.find("Post", &[("include", json!("author"))]).await;
    let author = &one[0]["author"];
    assert_eq!(author["__type"], "Object");
    assert_eq!(author["className"], "Author");
    assert_eq!(author["objectId"], ann.as_str());
    assert_eq!(author["name"], "Ann");
    assert!(is_parse_date(author["createdAt"].as_str().unwrap()));
    assert_eq!(author["org"], pointer("Org", &org));
    assert_eq!(one[0]["editor"], pointer("Author", &bob));

    let two = server
        .find("Post", &[("include", json!("author.org"))])
        .await;
    assert_eq!(two[0]["author"]["org"]["__type"], "Object");
    assert_eq!(two[0]["author"]["org"]["name"], "acme");

    let all = server.find("Post", &[("include", json!("*"))]).await;
    assert_eq!(all[0]["author"]["name"], "Ann");
    assert_eq!(all[0]["editor"]["name"], "Bob");
    assert_eq!(all[0]["author"]["org"], pointer("Org", &org));

    let array = server
        .public(
            Method::GET,
            &format!("/classes/Post/{post}?include=contributors"),
            None,
        )
        .await;
    let contributors = array.body["contributors"].as_array().unwrap();
    assert_eq!(
        values(contributors, "name"),
        vec![json!("Bob"), json!("Ann")]
    );
    assert_eq!(
        values(contributors, "__type"),
        vec![json!("Object"), json!("Object")]
    );

    let selected = server
        .find("Post", &[("keys", json!("title,author.name"))])
        .await;
    assert_eq!(
        keys(&selected[0]),
        vec!["author", "createdAt", "objectId", "title", "updatedAt"]
    );
    assert_eq!(selected[0]["author"]["name"], "Ann");
    assert!(
        selected[0]["author"].get("age").is_none(),
        "{}",
        selected[0]
    );

    // A pointer to a deleted object is dropped from the result.
    server
        .master(Method::DELETE, &format!("/classes/Author/{bob}"), None)
        .await;
    let after = server
        .find("Post", &[("include", json!("editor,contributors"))])
        .await;
    assert!(after[0].get("editor").is_none(), "{}", after[0]);
    assert_eq!(
        values(after[0]["contributors"].as_array().unwrap(), "name"),
        vec![json!("Ann")]
    );
}

/// Item 30: equality on an Array field matches arrays containing the value; a whole-array
/// value matches that exact array; `$all`, `$in` on arrays, `$nin`, `$containedBy`, and
/// `$ne` ("does not contain") on arrays.
#[tokio::test]
async fn array_field_operators() {
    let server = TestServer::new().await;
    fixture(&server).await;
    assert_eq!(
        names(&server, "Q", json!({"tags": "c"})).await,
        strings(&["Gamma.x", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$eq": "a"}})).await,
        strings(&["Gamma.x", "alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": ["a", "b"]})).await,
        strings(&["alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$all": ["a", "b"]}})).await,
        strings(&["Gamma.x", "alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$all": ["c", "a"]}})).await,
        strings(&["Gamma.x"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$in": ["c", "zz"]}})).await,
        strings(&["Gamma.x", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$nin": ["a"]}})).await,
        strings(&["beta", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$containedBy": ["a", "b"]}})).await,
        strings(&["alpha", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"tags": {"$ne": "a"}})).await,
        strings(&["beta", "delta"])
    );
    // `$all` with regex items only (the JS SDK's containsAllStartingWith).
    let starts = json!({"tags": {"$all": [{"$regex": "^\\Qa\\E"}, {"$regex": "^\\Qc\\E"}]}});
    assert_eq!(names(&server, "Q", starts).await, strings(&["Gamma.x"]));
    let mixed = json!({"tags": {"$all": ["a", {"$regex": "^\\Qc\\E"}]}});
    refused(&server, "Q", mixed, 107, None).await;
    refused(
        &server,
        "Q",
        json!({"tags": {"$in": "a"}}),
        107,
        Some("bad $in value"),
    )
    .await;
    refused(
        &server,
        "Q",
        json!({"tags": {"$nin": 1}}),
        107,
        Some("bad $nin value"),
    )
    .await;
    // `$in: []` matches nothing (§16).
    assert!(
        names(&server, "Q", json!({"name": {"$in": []}}))
            .await
            .is_empty()
    );
}

/// `$eq $ne $lt $lte $gt $gte $in $nin` on numbers and strings; `$ne` matches objects
/// where the field is missing (item 32).
#[tokio::test]
async fn comparison_operators() {
    let server = TestServer::new().await;
    fixture(&server).await;
    assert_eq!(
        names(&server, "Q", json!({"score": 2})).await,
        strings(&["beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$eq": 2}})).await,
        strings(&["beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$ne": 2}})).await,
        strings(&["Gamma.x", "alpha", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$lt": 2}})).await,
        strings(&["alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$lte": 2}})).await,
        strings(&["alpha", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$gt": 2}})).await,
        strings(&["Gamma.x"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$gte": 2, "$lt": 3}})).await,
        strings(&["beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$gt": 1.5}})).await,
        strings(&["Gamma.x", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"name": {"$gt": "b"}})).await,
        strings(&["beta", "delta"])
    );
    assert_eq!(
        names(
            &server,
            "Q",
            json!({"name": {"$in": ["alpha", "delta", "nope"]}})
        )
        .await,
        strings(&["alpha", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"name": {"$nin": ["alpha", "delta"]}})).await,
        strings(&["Gamma.x", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"flag": true})).await,
        strings(&["alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"flag": {"$ne": true}})).await,
        strings(&["Gamma.x", "beta", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"name": "alpha", "score": 1})).await,
        strings(&["alpha"])
    );
    assert!(
        names(&server, "Q", json!({"name": "alpha", "score": 2}))
            .await
            .is_empty()
    );
    assert!(
        names(&server, "Q", json!({"nosuchfield": 1}))
            .await
            .is_empty()
    );
    // A number never equals its string form.
    assert!(names(&server, "Q", json!({"score": "2"})).await.is_empty());
    // `objectId` and the timestamps are queryable like other fields.
    let two = server
        .find(
            "Q",
            &[("where", json!({"name": {"$in": ["alpha", "beta"]}}))],
        )
        .await;
    let two_ids: Vec<Value> = two
        .iter()
        .map(|object| object["objectId"].clone())
        .collect();
    assert_eq!(two_ids.len(), 2);
    assert_eq!(
        names(&server, "Q", json!({"objectId": {"$in": two_ids}})).await,
        strings(&["alpha", "beta"])
    );
    let one_id = two_ids[0].clone();
    assert_eq!(
        names(&server, "Q", json!({"objectId": {"$ne": one_id}}))
            .await
            .len(),
        3
    );
}

/// Item 32: `$exists:true/false` (an explicit `null` counts as existing).
#[tokio::test]
async fn exists_operator() {
    let server = TestServer::new().await;
    fixture(&server).await;
    assert_eq!(
        names(&server, "Q", json!({"score": {"$exists": true}})).await,
        strings(&["Gamma.x", "alpha", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"score": {"$exists": false}})).await,
        strings(&["delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"flag": {"$exists": false}})).await,
        strings(&["Gamma.x", "delta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"meta.model": {"$exists": true}})).await,
        strings(&["Gamma.x", "alpha", "beta"])
    );
    refused(
        &server,
        "Q",
        json!({"score": {"$exists": "yes"}}),
        107,
        None,
    )
    .await;
}

/// Item 31: `$regex` with `\Q…\E` matches literally (metacharacters included); `$options:"i"`
/// is case-insensitive; a bad option → `102 "Bad $options value for query: …"`.
#[tokio::test]
async fn regex_with_literal_quoting_and_options() {
    let server = TestServer::new().await;
    for name in [
        "a.b",
        "axb",
        "A.Bc",
        "1+1=2 (yes)?",
        "[x]*",
        "cost $5^2|3",
        "back\\slash",
        "50%_off",
    ] {
        server.create("R", json!({"name": name})).await;
    }
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "^\\Qa.b\\E"}})).await,
        strings(&["a.b"])
    );
    assert_eq!(
        names(
            &server,
            "R",
            json!({"name": {"$regex": "^\\Qa.b\\E", "$options": "i"}})
        )
        .await,
        strings(&["A.Bc", "a.b"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "^a.b"}})).await,
        strings(&["a.b", "axb"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "\\Q(yes)?\\E$"}})).await,
        strings(&["1+1=2 (yes)?"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "^\\Q[x]*\\E$"}})).await,
        strings(&["[x]*"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "\\Q$5^2|3\\E"}})).await,
        strings(&["cost $5^2|3"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "\\Qk\\s\\E"}})).await,
        strings(&["back\\slash"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "^\\Q50%_\\E"}})).await,
        strings(&["50%_off"])
    );
    assert!(
        names(&server, "R", json!({"name": {"$regex": "^\\Q50%x\\E"}}))
            .await
            .is_empty()
    );
    // `contains` and `endsWith` as the JS SDK sends them.
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "\\Q.B\\E"}})).await,
        strings(&["A.Bc"])
    );
    assert_eq!(
        names(&server, "R", json!({"name": {"$regex": "\\Qoff\\E$"}})).await,
        strings(&["50%_off"])
    );
    assert_eq!(
        names(
            &server,
            "R",
            json!({"name": {"$regex": "^A", "$options": "im"}})
        )
        .await,
        strings(&["A.Bc", "a.b", "axb"])
    );

    let reply = server
        .find_as(
            true,
            "R",
            &[("where", json!({"name": {"$regex": "a", "$options": "z"}}))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["code"], 102);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Bad $options value for query: "),
        "{:?}",
        reply.body
    );
    // An invalid pattern is a clean 102 as well.
    refused(
        &server,
        "R",
        json!({"name": {"$regex": "(unclosed"}}),
        102,
        None,
    )
    .await;
}

/// Item 33: `$inQuery`/`$notInQuery` on a pointer field; `$select`/`$dontSelect` on value
/// fields; malformed ones → 102 "improper usage of …".
#[tokio::test]
async fn subquery_operators() {
    let server = TestServer::new().await;
    let ann = server
        .create(
            "Author",
            json!({"name": "Ann", "active": true, "city": "Paris"}),
        )
        .await;
    let bob = server
        .create(
            "Author",
            json!({"name": "Bob", "active": false, "city": "Rome"}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p1", "author": pointer("Author", &ann), "city": "Paris"}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p2", "author": pointer("Author", &bob), "city": "Rome"}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p3", "author": pointer("Author", &ann), "city": "Oslo"}),
        )
        .await;

    let active = json!({"className": "Author", "where": {"active": true}});
    assert_eq!(
        names(&server, "Post", json!({"author": {"$inQuery": active}})).await,
        strings(&["p1", "p3"])
    );
    assert_eq!(
        names(&server, "Post", json!({"author": {"$notInQuery": active}})).await,
        strings(&["p2"])
    );
    let nobody = json!({"className": "Author", "where": {"name": "Zed"}});
    assert!(
        names(&server, "Post", json!({"author": {"$inQuery": nobody}}))
            .await
            .is_empty()
    );

    let cities =
        json!({"query": {"className": "Author", "where": {"active": true}}, "key": "city"});
    assert_eq!(
        names(&server, "Post", json!({"city": {"$select": cities}})).await,
        strings(&["p1"])
    );
    assert_eq!(
        names(&server, "Post", json!({"city": {"$dontSelect": cities}})).await,
        strings(&["p2", "p3"])
    );
    let all_cities = json!({"query": {"className": "Author", "where": {}}, "key": "city"});
    assert_eq!(
        names(&server, "Post", json!({"city": {"$select": all_cities}})).await,
        strings(&["p1", "p2"])
    );

    refused(
        &server,
        "Post",
        json!({"author": {"$inQuery": {"className": "Author"}}}),
        102,
        Some("improper usage of $inQuery"),
    )
    .await;
    refused(
        &server,
        "Post",
        json!({"author": {"$inQuery": {"where": {}}}}),
        102,
        Some("improper usage of $inQuery"),
    )
    .await;
    refused(
        &server,
        "Post",
        json!({"author": {"$notInQuery": "Author"}}),
        102,
        Some("improper usage of $notInQuery"),
    )
    .await;
    let extra = json!({"query": {"className": "Author", "where": {}}, "key": "city", "other": 1});
    refused(
        &server,
        "Post",
        json!({"city": {"$select": extra}}),
        102,
        Some("improper usage of $select"),
    )
    .await;
    let no_key = json!({"query": {"className": "Author", "where": {}}});
    refused(
        &server,
        "Post",
        json!({"city": {"$dontSelect": no_key}}),
        102,
        Some("improper usage of $dontSelect"),
    )
    .await;
    refused(
        &server,
        "Post",
        json!({"city": {"$select": []}}),
        102,
        Some("improper usage of $select"),
    )
    .await;
}

/// Subqueries run with the caller's rights: a `$inQuery` cannot match through objects the
/// caller cannot read.
#[tokio::test]
async fn subqueries_respect_acls() {
    let server = TestServer::new().await;
    let hidden = server
        .create(
            "Author",
            json!({"name": "Hidden", "active": true, "ACL": {}}),
        )
        .await;
    let shown = server
        .create("Author", json!({"name": "Shown", "active": true}))
        .await;
    server
        .create(
            "Post",
            json!({"name": "p1", "author": pointer("Author", &hidden)}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p2", "author": pointer("Author", &shown)}),
        )
        .await;
    let where_json =
        json!({"author": {"$inQuery": {"className": "Author", "where": {"active": true}}}});
    let public = server
        .find_as(false, "Post", &[("where", where_json.clone())])
        .await;
    assert_eq!(
        values(public.body["results"].as_array().unwrap(), "name"),
        vec![json!("p2")]
    );
    assert_eq!(
        names(&server, "Post", where_json).await,
        strings(&["p1", "p2"])
    );
}

/// Item 34: `$or` returns the union, `$and` the intersection, `$nor` the complement; a
/// non-array → `102 "Bad $or format - use an array value."`.
#[tokio::test]
async fn logical_operators() {
    let server = TestServer::new().await;
    fixture(&server).await;
    let or = json!({"$or": [{"score": 1}, {"name": "delta"}]});
    assert_eq!(names(&server, "Q", or).await, strings(&["alpha", "delta"]));
    let and = json!({"$and": [{"tags": "b"}, {"score": {"$gt": 1}}]});
    assert_eq!(
        names(&server, "Q", and).await,
        strings(&["Gamma.x", "beta"])
    );
    let nor = json!({"$nor": [{"score": 1}, {"tags": "c"}]});
    assert_eq!(names(&server, "Q", nor).await, strings(&["delta"]));
    let nested = json!({"meta.model": "gpt", "$or": [{"score": 1}, {"$and": [{"score": 3}, {"tags": "c"}]}]});
    assert_eq!(
        names(&server, "Q", nested).await,
        strings(&["Gamma.x", "alpha"])
    );

    refused(
        &server,
        "Q",
        json!({"$or": {"score": 1}}),
        102,
        Some("Bad $or format - use an array value."),
    )
    .await;
    refused(
        &server,
        "Q",
        json!({"$and": "x"}),
        102,
        Some("Bad $and format - use an array value."),
    )
    .await;
    refused(
        &server,
        "Q",
        json!({"$nor": 1}),
        102,
        Some("Bad $nor format - use an array value."),
    )
    .await;
    refused(&server, "Q", json!({"$nor": []}), 102, None).await;
}

/// Item 37: dotted keys reach into Object fields.
#[tokio::test]
async fn dotted_keys_query_object_fields() {
    let server = TestServer::new().await;
    fixture(&server).await;
    assert_eq!(
        names(&server, "Q", json!({"meta.model": "gpt"})).await,
        strings(&["Gamma.x", "alpha"])
    );
    assert_eq!(
        names(&server, "Q", json!({"meta.n": {"$gt": 1}})).await,
        strings(&["Gamma.x", "beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"meta.model": {"$in": ["claude"]}})).await,
        strings(&["beta"])
    );
    assert_eq!(
        names(&server, "Q", json!({"meta.model": {"$ne": "gpt"}})).await,
        strings(&["beta", "delta"])
    );
    assert!(
        names(&server, "Q", json!({"meta.nope.deeper": 1}))
            .await
            .is_empty()
    );
    assert_eq!(
        names(&server, "Q", json!({"meta": {"model": "claude", "n": 2}})).await,
        strings(&["beta"])
    );
}

/// Item 36: a pointer constraint matches by class and id; the same id with another class
/// does not match, and a bare objectId string does not match either.
#[tokio::test]
async fn pointer_equality_needs_class_and_id() {
    let server = TestServer::new().await;
    let ann = server.create("Author", json!({"name": "Ann"})).await;
    let bob = server.create("Author", json!({"name": "Bob"})).await;
    server
        .create(
            "Post",
            json!({"name": "p1", "author": pointer("Author", &ann)}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p2", "author": pointer("Author", &bob)}),
        )
        .await;
    server
        .create(
            "Post",
            json!({"name": "p3", "author": pointer("Author", &ann)}),
        )
        .await;

    assert_eq!(
        names(&server, "Post", json!({"author": pointer("Author", &ann)})).await,
        strings(&["p1", "p3"])
    );
    assert!(
        names(&server, "Post", json!({"author": pointer("Other", &ann)}))
            .await
            .is_empty()
    );
    assert!(
        names(&server, "Post", json!({"author": ann.clone()}))
            .await
            .is_empty()
    );
    assert_eq!(
        names(
            &server,
            "Post",
            json!({"author": {"$ne": pointer("Author", &ann)}})
        )
        .await,
        strings(&["p2"])
    );
    let both = json!({"author": {"$in": [pointer("Author", &ann), pointer("Author", &bob)]}});
    assert_eq!(
        names(&server, "Post", both).await,
        strings(&["p1", "p2", "p3"])
    );
    // An included-object form (`__type: Object`) compares like a pointer.
    let object_form = json!({"author": {"__type": "Object", "className": "Author", "objectId": bob, "name": "Bob"}});
    assert_eq!(names(&server, "Post", object_form).await, strings(&["p2"]));
}

/// Item 37: Date comparisons with `{"__type":"Date"}` on `createdAt` and on Date fields;
/// `$relativeTime` on Date fields.
#[tokio::test]
async fn date_comparisons_and_relative_time() {
    let server = TestServer::new().await;
    let now = chrono::Utc::now();
    let iso = |offset_hours: i64| json!({"__type": "Date", "iso": (now + chrono::Duration::hours(offset_hours)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()});
    server
        .create("D", json!({"name": "past", "when": iso(-48)}))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle_id = server
        .create("D", json!({"name": "recent", "when": iso(-1)}))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    server
        .create("D", json!({"name": "future", "when": iso(72)}))
        .await;

    let middle = server.get("D", &middle_id).await;
    let middle_at = json!({"__type": "Date", "iso": middle["createdAt"]});
    assert_eq!(
        names(&server, "D", json!({"createdAt": {"$gte": middle_at}})).await,
        strings(&["future", "recent"])
    );
    assert_eq!(
        names(&server, "D", json!({"createdAt": {"$lt": middle_at}})).await,
        strings(&["past"])
    );
    assert_eq!(
        names(&server, "D", json!({"createdAt": middle_at})).await,
        strings(&["recent"])
    );
    assert_eq!(
        names(&server, "D", json!({"updatedAt": {"$lte": middle_at}})).await,
        strings(&["past", "recent"])
    );

    assert_eq!(
        names(&server, "D", json!({"when": {"$lt": iso(0)}})).await,
        strings(&["past", "recent"])
    );
    assert_eq!(
        names(
            &server,
            "D",
            json!({"when": {"$gt": iso(-24), "$lt": iso(24)}})
        )
        .await,
        strings(&["recent"])
    );

    let relative = |text: &str| json!({"$relativeTime": text});
    assert_eq!(
        names(&server, "D", json!({"when": {"$lt": relative("now")}})).await,
        strings(&["past", "recent"])
    );
    assert_eq!(
        names(&server, "D", json!({"when": {"$gt": relative("in 1 day")}})).await,
        strings(&["future"])
    );
    assert_eq!(
        names(
            &server,
            "D",
            json!({"when": {"$lt": relative("1 day ago")}})
        )
        .await,
        strings(&["past"])
    );
    assert_eq!(
        names(
            &server,
            "D",
            json!({"createdAt": {"$gte": relative("1 hour ago")}})
        )
        .await,
        strings(&["future", "past", "recent"])
    );
    refused(
        &server,
        "D",
        json!({"when": {"$lt": relative("whenever")}}),
        102,
        None,
    )
    .await;
    refused(
        &server,
        "D",
        json!({"when": {"$eq": relative("now")}}),
        102,
        None,
    )
    .await;
    refused(
        &server,
        "D",
        json!({"name": {"$lt": relative("now")}}),
        102,
        None,
    )
    .await;
}

/// Item 35 (first half): a query on `ACL` → `102 "Cannot query on ACL."`. An invalid key →
/// `105 "Invalid key name: x"`, a top-level `$foo` too (Parse Server's key-name check); an
/// unknown `$operator` on a field → 102.
#[tokio::test]
async fn refused_constraints() {
    let server = TestServer::new().await;
    fixture(&server).await;
    let reply = server
        .find_as(
            false,
            "Q",
            &[("where", json!({"ACL": {"*": {"read": true}}}))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 102, "error": "Cannot query on ACL."})
    );
    refused(
        &server,
        "Q",
        json!({"bad-key": 1}),
        105,
        Some("Invalid key name: bad-key"),
    )
    .await;
    refused(
        &server,
        "Q",
        json!({"1abc": 1}),
        105,
        Some("Invalid key name: 1abc"),
    )
    .await;
    refused(&server, "Q", json!({"score": {"$foo": 1}}), 102, None).await;
    refused(
        &server,
        "Q",
        json!({"$foo": 1}),
        105,
        Some("Invalid key name: $foo"),
    )
    .await;
    // A class that does not exist yet still has its where checked (the SDK's suite expects
    // the error, not an empty result).
    refused(
        &server,
        "NoSuchClassYet",
        json!({"$foo": "bar"}),
        105,
        Some("Invalid key name: $foo"),
    )
    .await;
    refused(
        &server,
        "NoSuchClassYet",
        json!({"myString": {"$regex": "football", "$options": "some invalid thing"}}),
        102,
        Some("Bad $options value for query: some invalid thing"),
    )
    .await;
    refused(
        &server,
        "Q",
        json!({"score": {"$where": "1 == 1"}}),
        102,
        None,
    )
    .await;
    // A where that is not an object.
    let reply = server
        .public(Method::GET, "/classes/Q?where=%5B1%5D", None)
        .await;
    assert_parse_error(&reply, 400, 102, None);
}

/// Geo operators answer (the point is within each shape; `$geoIntersects` on a field that is
/// not a Polygon holds nothing); equality on a GeoPoint is an ordinary constraint.
#[tokio::test]
async fn geo_operators_answer() {
    let server = TestServer::new().await;
    server.create("G", json!({"name": "here", "loc": {"__type": "GeoPoint", "latitude": 1.0, "longitude": 2.0}})).await;
    let point = json!({"__type": "GeoPoint", "latitude": 1.0, "longitude": 2.0});
    let corner = |latitude: f64, longitude: f64| json!({"__type": "GeoPoint", "latitude": latitude, "longitude": longitude});
    for (where_json, expected) in [
        (
            json!({"loc": {"$nearSphere": point, "$maxDistanceInKilometers": 5}}),
            vec!["here"],
        ),
        (
            json!({"loc": {"$within": {"$box": [corner(0.0, 1.0), corner(2.0, 3.0)]}}}),
            vec!["here"],
        ),
        (
            json!({"loc": {"$geoWithin": {"$polygon": [corner(0.0, 0.0), corner(0.0, 5.0), corner(5.0, 0.0)]}}}),
            vec!["here"],
        ),
        (
            json!({"loc": {"$geoWithin": {"$centerSphere": [[2.0, 1.0], 0.1]}}}),
            vec!["here"],
        ),
        (
            json!({"area": {"$geoIntersects": {"$point": point}}}),
            vec![],
        ),
    ] {
        assert_eq!(
            names(&server, "G", where_json.clone()).await,
            strings(&expected),
            "{where_json}"
        );
    }
    assert_eq!(
        names(&server, "G", json!({"loc": point})).await,
        strings(&["here"])
    );
}

/// `$text`: whole words, case-insensitive, every term required; bad shapes → 107.
#[tokio::test]
async fn full_text_search() {
    let server = TestServer::new().await;
    for (name, body) in [
        ("one", "Rust async runtime"),
        ("two", "rusty nails and trusty tools"),
        ("three", "ASYNC RUST guide"),
        ("four", "python async"),
        ("five", "rust, async; and more."),
    ] {
        server
            .create("T", json!({"name": name, "body": body}))
            .await;
    }
    let search = |term: &str| json!({"body": {"$text": {"$search": {"$term": term}}}});
    assert_eq!(
        names(&server, "T", search("rust async")).await,
        strings(&["five", "one", "three"])
    );
    assert_eq!(
        names(&server, "T", search("rust")).await,
        strings(&["five", "one", "three"])
    );
    assert_eq!(
        names(&server, "T", search("ASYNC")).await,
        strings(&["five", "four", "one", "three"])
    );
    assert!(names(&server, "T", search("rus")).await.is_empty());
    assert!(names(&server, "T", search("rust java")).await.is_empty());
    let with_options = json!({"body": {"$text": {"$search": {"$term": "python", "$language": "en", "$caseSensitive": false, "$diacriticSensitive": false}}}});
    assert_eq!(names(&server, "T", with_options).await, strings(&["four"]));
    // Metacharacters in a term are literal.
    assert!(names(&server, "T", search("r.st")).await.is_empty());
    refused(
        &server,
        "T",
        json!({"body": {"$text": {"$search": "rust"}}}),
        107,
        Some("bad $text: $search, should be object"),
    )
    .await;
    refused(
        &server,
        "T",
        json!({"body": {"$text": {"$search": {"$term": 5}}}}),
        107,
        Some("bad $text: $term, should be string"),
    )
    .await;
}

/// `$text` options — `$caseSensitive`, `$diacriticSensitive: false` (accents folded) — and
/// relevance: `keys=$score` gives each result a `score` (MongoDB's text score: 1 for a text
/// that is exactly the term, less the longer the text), `order=$score` sorts by it.
#[tokio::test]
async fn full_text_options_and_score() {
    let server = TestServer::new().await;
    for subject in [
        "coffee",
        "Coffee Shopping",
        "Baking a cake",
        "baking",
        "Café Con Leche",
        "Сырники",
        "coffee and cream",
        "Cafe con Leche",
    ] {
        server
            .create("T", json!({"subject": subject, "name": subject}))
            .await;
    }
    let text = |search: Value| json!({"subject": {"$text": {"$search": search}}});
    assert_eq!(
        names(&server, "T", text(json!({"$term": "coffee"}))).await,
        strings(&["Coffee Shopping", "coffee", "coffee and cream"])
    );
    assert_eq!(
        names(
            &server,
            "T",
            text(json!({"$term": "Coffee", "$caseSensitive": true}))
        )
        .await,
        strings(&["Coffee Shopping"])
    );
    assert_eq!(
        names(&server, "T", text(json!({"$term": "cafe"}))).await,
        strings(&["Cafe con Leche"])
    );
    assert_eq!(
        names(
            &server,
            "T",
            text(json!({"$term": "cafe", "$diacriticSensitive": false}))
        )
        .await,
        strings(&["Cafe con Leche", "Café Con Leche"])
    );
    assert_eq!(
        names(
            &server,
            "T",
            text(json!({"$term": "CAFE", "$diacriticSensitive": false, "$caseSensitive": true}))
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &server,
            "T",
            text(json!({"$term": "Cafe", "$diacriticSensitive": false, "$caseSensitive": true}))
        )
        .await,
        strings(&["Cafe con Leche", "Café Con Leche"])
    );
    for order in ["$score", "-$score"] {
        let reply = server
            .find_as(
                true,
                "T",
                &[
                    ("where", text(json!({"$term": "coffee"}))),
                    ("order", json!(order)),
                    ("keys", json!("$score,name")),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let results = reply.body["results"].as_array().unwrap();
        let scored: Vec<(String, f64)> = results
            .iter()
            .map(|object| {
                assert!(object.get("subject").is_none());
                (
                    object["name"].as_str().unwrap().to_owned(),
                    object["score"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(scored.len(), 3);
        assert_eq!(scored[0], ("coffee".to_owned(), 1.0));
        // "and" is a stop word: two words each, as MongoDB counts them.
        let mut rest = scored[1..].to_vec();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            rest,
            [
                ("Coffee Shopping".to_owned(), 0.75),
                ("coffee and cream".to_owned(), 0.75)
            ]
        );
    }
    // Without `keys=$score` the order applies and no score is added.
    let reply = server
        .find_as(
            true,
            "T",
            &[
                ("where", text(json!({"$term": "coffee cream"}))),
                ("order", json!("$score")),
            ],
        )
        .await;
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
    assert!(reply.body["results"][0].get("score").is_none());
    let reply = server
        .find_as(
            true,
            "T",
            &[
                ("where", json!({"name": "coffee"})),
                ("keys", json!("$score")),
            ],
        )
        .await;
    assert_parse_error(
        &reply,
        400,
        102,
        Some("$score needs a $text search in where"),
    );
    refused(
        &server,
        "T",
        text(json!({"$term": "coffee", "$stemming": true})),
        107,
        Some("bad $text: $stemming not supported"),
    )
    .await;
}

/// `includeAll=true` expands every pointer one level, like `include=*` (§3.1); a malformed
/// `$relatedTo` → `102 "improper usage of $relatedTo"`.
#[tokio::test]
async fn include_all_and_bad_related_to() {
    let server = TestServer::new().await;
    let ann = server.create("Author", json!({"name": "Ann"})).await;
    server
        .create(
            "Post",
            json!({"title": "p", "author": pointer("Author", &ann)}),
        )
        .await;
    let all = server.find("Post", &[("includeAll", json!(true))]).await;
    assert_eq!(all[0]["author"]["name"], "Ann");
    assert_eq!(all[0]["author"]["__type"], "Object");
    refused(
        &server,
        "Post",
        json!({"$relatedTo": {"key": "members"}}),
        102,
        Some("improper usage of $relatedTo"),
    )
    .await;
    refused(
        &server,
        "Post",
        json!({"$relatedTo": "x"}),
        102,
        Some("improper usage of $relatedTo"),
    )
    .await;
}
