//! The GraphQL API (issue 11, parse-protocol.md §12) over real HTTP: the endpoint and its
//! errors, generated types with get and find connections, mutations with nested pointer and
//! relation operations, ACLs, relay ids, users, class management, schema regeneration, and
//! hostile queries.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// Sends a GraphQL request with these headers (the app id is always sent).
pub async fn gql_with(
    server: &TestServer,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> Reply {
    let mut request = server
        .client
        .post(format!("{}/graphql", server.base))
        .header("x-parse-application-id", APP_ID)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = json!({"query": query, "variables": variables});
    let response = request
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        body,
        headers,
        text,
    }
}

/// As the public (app id only).
pub async fn gql(server: &TestServer, query: &str) -> Reply {
    gql_with(server, &[], query, json!({})).await
}

/// As the master key.
pub async fn gql_master(server: &TestServer, query: &str, variables: Value) -> Reply {
    gql_with(
        server,
        &[("x-parse-master-key", MASTER_KEY)],
        query,
        variables,
    )
    .await
}

/// As a user.
pub async fn gql_as(server: &TestServer, user: &User, query: &str, variables: Value) -> Reply {
    gql_with(
        server,
        &[("x-parse-session-token", &user.token)],
        query,
        variables,
    )
    .await
}

#[track_caller]
fn ok_data(reply: &Reply) -> &Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.body.get("errors").is_none(),
        "unexpected errors: {}",
        reply.text
    );
    &reply.body["data"]
}

#[track_caller]
fn error_code(reply: &Reply) -> Value {
    reply.body["errors"][0]["extensions"]["code"].clone()
}

/// `{ health }` answers `true`; GET works for queries.
#[tokio::test]
async fn health_over_post_and_get() {
    let server = TestServer::new().await;
    let reply = gql(&server, "{ health }").await;
    assert_eq!(ok_data(&reply), &json!({"health": true}));
    let reply = server
        .client
        .get(format!("{}/graphql?query=%7Bhealth%7D", server.base))
        .header("x-parse-application-id", APP_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"data": {"health": true}})
    );
}

/// Queries that cannot run answer 400 with a string code and no data; credentials are
/// checked first, like REST's.
#[tokio::test]
async fn requests_that_cannot_run_are_400_with_graphql_codes() {
    let server = TestServer::new().await;
    let reply = gql(&server, "{ health ").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(error_code(&reply), "GRAPHQL_PARSE_FAILED");
    assert!(reply.body.get("data").is_none());

    let reply = gql(&server, "{ nope }").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), "GRAPHQL_VALIDATION_FAILED");

    let reply = gql_with(
        &server,
        &[],
        "query($id: ID!) { user(id: $id) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(error_code(&reply), "BAD_USER_INPUT");

    let reply = gql_with(
        &server,
        &[],
        "query($n: Int) { users(first: $n) { count } }",
        json!({"n": "ten"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);

    let reply = server
        .client
        .post(format!("{}/graphql", server.base))
        .header("x-parse-application-id", APP_ID)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // No app id: REST's 403; a bad session token: REST's 209, before anything runs.
    let reply = server
        .client
        .post(format!("{}/graphql", server.base))
        .body(json!({"query": "{ health }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let reply = gql_with(
        &server,
        &[("x-parse-session-token", "r:nope")],
        "{ health }",
        json!({}),
    )
    .await;
    assert_parse_error(&reply, 400, 209, Some("Invalid session token"));

    // A mutation over GET is refused.
    let reply = server
        .client
        .get(format!(
            "{}/graphql?query=mutation%7BlogOut(input:%7B%7D)%7Bok%7D%7D",
            server.base
        ))
        .header("x-parse-application-id", APP_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Introspection needs the master key (403 otherwise).
#[tokio::test]
async fn introspection_needs_the_master_key() {
    let server = TestServer::new().await;
    let query = "{ __schema { queryType { name } } }";
    let reply = gql(&server, query).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(
        reply.body["errors"][0]["message"],
        "Introspection is not allowed"
    );
    let reply = gql(&server, "{ __type(name: \"User\") { name } }").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = gql_master(&server, query, json!({})).await;
    assert_eq!(ok_data(&reply)["__schema"]["queryType"]["name"], "Query");
    // `__typename` is not introspection.
    let reply = gql(&server, "{ __typename }").await;
    assert_eq!(ok_data(&reply)["__typename"], "Query");
}

/// Sign-up and log-in give a viewer whose token works for REST and GraphQL; log-out ends it.
#[tokio::test]
async fn users_sign_up_log_in_and_out() {
    let server = TestServer::new().await;
    let reply = gql(
        &server,
        r#"mutation { signUp(input: {clientMutationId: "s", fields: {username: "alice", password: "pw", email: "a@example.test"}}) { clientMutationId viewer { sessionToken user { id objectId username email } } } }"#,
    )
    .await;
    let sign_up = &ok_data(&reply)["signUp"];
    assert_eq!(sign_up["clientMutationId"], "s");
    let user_id = sign_up["viewer"]["user"]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sign_up["viewer"]["user"]["username"], "alice");
    assert_eq!(sign_up["viewer"]["user"]["email"], "a@example.test");
    assert_eq!(
        sign_up["viewer"]["user"]["id"],
        parlor_server::graphql::names::global_id("_User", &user_id)
    );

    let reply = gql(&server, r#"mutation { logIn(input: {username: "alice", password: "pw"}) { viewer { sessionToken user { objectId } } } }"#).await;
    let token = ok_data(&reply)["logIn"]["viewer"]["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = User {
        id: user_id.clone(),
        token: token.clone(),
    };
    let me = server.as_user(&user, Method::GET, "/users/me", None).await;
    assert_eq!(me.body["objectId"], user_id.as_str());
    let reply = gql_as(
        &server,
        &user,
        "{ viewer { sessionToken user { username } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        ok_data(&reply)["viewer"],
        json!({"sessionToken": token, "user": {"username": "alice"}})
    );

    let reply = gql(&server, r#"mutation { logIn(input: {username: "alice", password: "wrong"}) { viewer { sessionToken } } }"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(error_code(&reply), 101);
    assert_eq!(reply.body["data"], json!({"logIn": null}));

    let reply = gql_as(
        &server,
        &user,
        "mutation { logOut(input: {}) { ok } }",
        json!({}),
    )
    .await;
    assert_eq!(ok_data(&reply)["logOut"]["ok"], true);
    let reply = gql_as(&server, &user, "{ health }", json!({})).await;
    assert_parse_error(&reply, 400, 209, None);
    // Without a session: `ok` all the same; `viewer` is 209.
    let reply = gql(&server, "mutation { logOut(input: {}) { ok } }").await;
    assert_eq!(ok_data(&reply)["logOut"]["ok"], true);
    let reply = gql(&server, "{ viewer { sessionToken } }").await;
    assert_eq!(error_code(&reply), 209);
    assert_eq!(reply.body["data"], Value::Null);
}

async fn book_class(server: &TestServer) {
    server
        .create_class(
            "Book",
            json!({"fields": {
                "title": {"type": "String"},
                "pages": {"type": "Number"},
                "tags": {"type": "Array"},
                "meta": {"type": "Object"},
                "published": {"type": "Date"},
                "author": {"type": "Pointer", "targetClass": "_User"},
                "shelf": {"type": "Pointer", "targetClass": "Shelf"},
                "readers": {"type": "Relation", "targetClass": "_User"},
                "spot": {"type": "GeoPoint"},
            }}),
        )
        .await;
    server
        .create_class("Shelf", json!({"fields": {"name": {"type": "String"}}}))
        .await;
}

/// Create, get, find, update, delete, with global and bare ids, typed fields, ACL in and out.
#[tokio::test]
async fn objects_round_trip_through_mutations_and_queries() {
    let server = TestServer::new().await;
    book_class(&server).await;
    let alice = server.sign_up("alice").await;
    let reply = gql_as(
        &server,
        &alice,
        r#"mutation($acl: ACLInput) { createBook(input: {fields: {
            title: "Dune", pages: 412, tags: ["a", 1, {x: 1}], meta: {k: 1},
            published: "2020-01-02T03:04:05.000Z", spot: {latitude: 1.5, longitude: 2},
            author: {link: "ALICE"}, ACL: $acl}}) {
          book { id objectId createdAt updatedAt title pages tags { ... on Element { value } } meta
                 published spot { latitude longitude } author { objectId username }
                 ACL { public { read write } users { userId read write } roles { roleName } } } } }"#
            .replace("ALICE", &alice.id)
            .as_str(),
        json!({"acl": {"public": {"read": true, "write": false}, "users": [{"userId": alice.id, "read": true, "write": true}]}}),
    )
    .await;
    let book = ok_data(&reply)["createBook"]["book"].clone();
    let id = book["objectId"].as_str().unwrap().to_owned();
    assert!(is_object_id(&id));
    assert_eq!(
        book["id"],
        parlor_server::graphql::names::global_id("Book", &id)
    );
    assert!(is_parse_date(book["createdAt"].as_str().unwrap()));
    assert_eq!(book["title"], "Dune");
    assert_eq!(book["pages"], 412);
    assert_eq!(
        book["tags"],
        json!([{"value": "a"}, {"value": 1}, {"value": {"x": 1}}])
    );
    assert_eq!(book["meta"], json!({"k": 1}));
    assert_eq!(book["published"], "2020-01-02T03:04:05.000Z");
    assert_eq!(book["spot"], json!({"latitude": 1.5, "longitude": 2.0}));
    assert_eq!(
        book["author"],
        json!({"objectId": alice.id, "username": "alice"})
    );
    assert_eq!(
        book["ACL"],
        json!({"public": {"read": true, "write": false},
               "users": [{"userId": parlor_server::graphql::names::global_id("_User", &alice.id), "read": true, "write": true}],
               "roles": null})
    );
    // REST sees what GraphQL wrote, in Parse's encodings.
    let stored = server.get("Book", &id).await;
    assert_eq!(
        stored["published"],
        json!({"__type": "Date", "iso": "2020-01-02T03:04:05.000Z"})
    );
    assert_eq!(stored["author"], pointer("_User", &alice.id));
    assert_eq!(
        stored["ACL"],
        json!({"*": {"read": true}, (alice.id.clone()): {"read": true, "write": true}})
    );

    // Get by global id and by bare objectId.
    for given in [book["id"].as_str().unwrap(), id.as_str()] {
        let reply = gql_with(
            &server,
            &[],
            "query($id: ID!) { book(id: $id) { objectId title } }",
            json!({"id": given}),
        )
        .await;
        assert_eq!(
            ok_data(&reply)["book"],
            json!({"objectId": id, "title": "Dune"})
        );
    }

    // Update (bare id), unset with null; the public cannot write (ACL) → 101 at HTTP 200.
    let reply = gql_as(&server, &alice, r#"mutation($id: ID!) { updateBook(input: {id: $id, fields: {title: "Dune II", meta: null}}) { book { title meta updatedAt } } }"#, json!({"id": id})).await;
    assert_eq!(ok_data(&reply)["updateBook"]["book"]["title"], "Dune II");
    assert_eq!(ok_data(&reply)["updateBook"]["book"]["meta"], Value::Null);
    assert!(server.get("Book", &id).await.get("meta").is_none());
    let reply = gql_with(&server, &[], r#"mutation($id: ID!) { updateBook(input: {id: $id, fields: {title: "x"}}) { book { title } } }"#, json!({"id": id})).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(error_code(&reply), 101);
    assert_eq!(reply.body["data"], json!({"updateBook": null}));

    // Delete (global id) answers the object as it was.
    let reply = gql_as(
        &server,
        &alice,
        "mutation($id: ID!) { deleteBook(input: {id: $id}) { book { objectId title } } }",
        json!({"id": book["id"]}),
    )
    .await;
    assert_eq!(
        ok_data(&reply)["deleteBook"]["book"],
        json!({"objectId": id, "title": "Dune II"})
    );
    let reply = gql_with(
        &server,
        &[],
        "query($id: ID!) { book(id: $id) { objectId } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(error_code(&reply), 101);
    assert_eq!(reply.body["errors"][0]["message"], "Object not found.");
    assert_eq!(reply.body["data"], Value::Null);
}

/// A connection: `count` only when asked, edges in `order`, cursors that page with `after`,
/// `last`/`before`, where inputs with AND/OR and pointer `have`.
#[tokio::test]
async fn connections_page_filter_and_count() {
    let server = TestServer::new().await;
    book_class(&server).await;
    let shelf = server.create("Shelf", json!({"name": "sci-fi"})).await;
    let other = server.create("Shelf", json!({"name": "poetry"})).await;
    for n in 0..7 {
        let shelf = if n % 2 == 0 { &shelf } else { &other };
        server
            .create(
                "Book",
                json!({"title": format!("b{n}"), "pages": n, "shelf": pointer("Shelf", shelf)}),
            )
            .await;
    }
    let query = r#"query($after: String) { books(order: [pages_DESC], first: 3, after: $after) {
        count pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { title } } } }"#;
    let mut titles = Vec::new();
    let mut after = Value::Null;
    loop {
        let reply = gql_with(&server, &[], query, json!({"after": after})).await;
        let page = ok_data(&reply)["books"].clone();
        assert_eq!(page["count"], 7);
        for edge in page["edges"].as_array().unwrap() {
            titles.push(edge["node"]["title"].as_str().unwrap().to_owned());
        }
        assert_eq!(page["pageInfo"]["hasPreviousPage"], !after.is_null());
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(titles, ["b6", "b5", "b4", "b3", "b2", "b1", "b0"]);

    // Without `count` selected, paging still knows whether a next page exists.
    let reply = gql(&server, "{ books(order: [pages_ASC], first: 6) { pageInfo { hasNextPage } edges { node { pages } } } }").await;
    assert_eq!(ok_data(&reply)["books"]["pageInfo"]["hasNextPage"], true);
    let reply = gql(
        &server,
        "{ books(order: [pages_ASC], first: 7) { pageInfo { hasNextPage } } }",
    )
    .await;
    assert_eq!(ok_data(&reply)["books"]["pageInfo"]["hasNextPage"], false);

    // `last` alone: the end of the result.
    let reply = gql(
        &server,
        "{ books(order: [pages_ASC], last: 2) { edges { node { pages } } } }",
    )
    .await;
    assert_eq!(
        ok_data(&reply)["books"]["edges"],
        json!([{"node": {"pages": 5}}, {"node": {"pages": 6}}])
    );

    let reply = gql(
        &server,
        r#"{ books(where: {shelf: {have: {name: {equalTo: "sci-fi"}}}, OR: [{pages: {lessThan: 1}}, {pages: {greaterThanOrEqualTo: 6}}]}, order: [pages_ASC]) {
            count edges { node { title shelf { name } } } } }"#,
    )
    .await;
    let books = &ok_data(&reply)["books"];
    assert_eq!(books["count"], 2);
    assert_eq!(
        books["edges"],
        json!([{"node": {"title": "b0", "shelf": {"name": "sci-fi"}}}, {"node": {"title": "b6", "shelf": {"name": "sci-fi"}}}])
    );
    let reply = gql(
        &server,
        r#"{ books(where: {title: {in: ["b1", "b2"]}, shelf: {exists: true}}) { count } }"#,
    )
    .await;
    assert_eq!(ok_data(&reply)["books"]["count"], 2);
    let reply = gql(&server, "{ books(first: -1) { count } }").await;
    assert_eq!(error_code(&reply), 102);
    let reply = gql(&server, r#"{ books(after: "garbage") { count } }"#).await;
    assert_eq!(error_code(&reply), 102);
}

/// Pointer `createAndLink`, relation `add`/`remove`/`createAndAdd`, relation fields read as
/// connections; everything of one mutation commits together.
#[tokio::test]
async fn nested_pointer_and_relation_operations() {
    let server = TestServer::new().await;
    book_class(&server).await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let reply = gql_master(
        &server,
        r#"mutation($alice: ID!, $bob: ID!) { createBook(input: {fields: {title: "T",
              shelf: {createAndLink: {name: "new shelf"}},
              readers: {add: [$alice, $bob]}}}) {
            book { objectId shelf { objectId name } readers(order: [username_ASC]) { count edges { node { username } } } } } }"#,
        json!({"alice": parlor_server::graphql::names::global_id("_User", &alice.id), "bob": bob.id}),
    )
    .await;
    let book = ok_data(&reply)["createBook"]["book"].clone();
    assert_eq!(book["shelf"]["name"], "new shelf");
    assert_eq!(book["readers"]["count"], 2);
    assert_eq!(
        book["readers"]["edges"],
        json!([{"node": {"username": "alice"}}, {"node": {"username": "bob"}}])
    );
    let id = book["objectId"].as_str().unwrap();
    let reply = gql_master(
        &server,
        r#"mutation($id: ID!, $alice: ID!) { updateBook(input: {id: $id, fields: {readers: {remove: [$alice], createAndAdd: [{username: "carol", password: "pw"}]}}}) {
            book { readers(order: [username_ASC]) { edges { node { username } } } } } }"#,
        json!({"id": id, "alice": alice.id}),
    )
    .await;
    assert_eq!(
        ok_data(&reply)["updateBook"]["book"]["readers"]["edges"],
        json!([{"node": {"username": "bob"}}, {"node": {"username": "carol"}}])
    );
    // link and createAndLink together is refused, and nothing is created.
    let shelves = server.count("Shelf").await;
    let reply = gql_master(&server, r#"mutation { createBook(input: {fields: {shelf: {link: "x", createAndLink: {name: "n"}}}}) { book { objectId } } }"#, json!({})).await;
    assert_eq!(error_code(&reply), 106);
    assert_eq!(server.count("Shelf").await, shelves);
    // A nested create whose parent fails leaves nothing behind.
    let reply = gql_master(&server, r#"mutation { createBook(input: {fields: {title: 5, shelf: {createAndLink: {name: "orphan"}}}}) { book { objectId } } }"#, json!({})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(server.count("Shelf").await, shelves);
}

/// `node(id)` resolves global ids of any class; class management needs the master key.
#[tokio::test]
async fn node_and_class_management() {
    let server = TestServer::new().await;
    book_class(&server).await;
    let id = server.create("Book", json!({"title": "Dune"})).await;
    let global = parlor_server::graphql::names::global_id("Book", &id);
    let reply = gql_with(
        &server,
        &[],
        "query($id: ID!) { node(id: $id) { id ... on Book { title } } }",
        json!({"id": global}),
    )
    .await;
    assert_eq!(
        ok_data(&reply)["node"],
        json!({"id": global, "title": "Dune"})
    );

    let create = r#"mutation { createClass(input: {name: "Note", schemaFields: {addStrings: [{name: "text"}], addPointers: [{name: "book", targetClassName: "Book"}]}}) {
        class { name schemaFields { name __typename ... on SchemaPointerField { targetClassName } } } } }"#;
    let reply = gql(&server, create).await;
    assert_eq!(error_code(&reply), 119);
    assert_eq!(reply.body["errors"][0]["message"], "Permission denied");
    let reply = gql_master(&server, create, json!({})).await;
    let fields = ok_data(&reply)["createClass"]["class"]["schemaFields"].clone();
    assert!(fields.as_array().unwrap().contains(
        &json!({"name": "book", "__typename": "SchemaPointerField", "targetClassName": "Book"})
    ));
    // The class is usable at once.
    let reply = gql_master(
        &server,
        r#"mutation { createNote(input: {fields: {text: "hi"}}) { note { text } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(ok_data(&reply)["createNote"]["note"]["text"], "hi");
    let reply = gql_master(
        &server,
        r#"mutation { deleteClass(input: {name: "Note"}) { class { name } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(error_code(&reply), 255);
    let reply = gql_master(
        &server,
        r#"{ class(name: "Book") { name } classes { name } }"#,
        json!({}),
    )
    .await;
    assert_eq!(ok_data(&reply)["class"]["name"], "Book");
}

/// A field added through REST is in the GraphQL schema for the very next request.
#[tokio::test]
async fn a_field_added_by_rest_is_queryable_at_once() {
    let server = TestServer::new().await;
    book_class(&server).await;
    let reply = gql(&server, "{ books { edges { node { rating } } } }").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = server
        .master(
            Method::PUT,
            "/schemas/Book",
            Some(json!({"fields": {"rating": {"type": "Number"}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    server.create("Book", json!({"rating": 4})).await;
    let reply = gql(&server, "{ books { edges { node { rating } } } }").await;
    assert_eq!(
        ok_data(&reply)["books"]["edges"],
        json!([{"node": {"rating": 4}}])
    );
    // Schema-on-write too.
    server.create("Book", json!({"colour": "red"})).await;
    let reply = gql(
        &server,
        r#"{ books(where: {colour: {equalTo: "red"}}) { count } }"#,
    )
    .await;
    assert_eq!(ok_data(&reply)["books"]["count"], 1);
}

/// Hostile queries: deep nesting, 10,000 aliases, huge `first`, fragment cycles — refused or
/// answered, never a 500.
#[tokio::test]
async fn hostile_queries_are_refused_cleanly() {
    let server = TestServer::new().await;
    let deep = format!(
        "{{ {}health{} }}",
        "viewer { user { ".repeat(5000),
        " } }".repeat(5000)
    );
    let reply = gql(&server, &deep).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{}",
        &reply.text[..200.min(reply.text.len())]
    );

    // Within the depth limit (20) a nested query runs; past it, it is refused unrun.
    server
        .create_class(
            "Link",
            json!({"fields": {"next": {"type": "Pointer", "targetClass": "Link"}}}),
        )
        .await;
    let nested = |levels: usize| {
        format!(
            "{{ links {{ edges {{ node {{ {} objectId {} }} }} }} }}",
            "next { ".repeat(levels),
            "}".repeat(levels)
        )
    };
    let reply = gql(&server, &nested(2)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = gql(&server, &nested(22)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(
        reply.text.contains("exceeds maximum allowed depth"),
        "{}",
        reply.text
    );

    let aliases: String = (0..10_000).map(|n| format!("a{n}: health ")).collect();
    let reply = gql(&server, &format!("{{ {aliases} }}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), "GRAPHQL_VALIDATION_FAILED");

    let reply = gql(
        &server,
        "{ users(first: 2147483647) { count edges { node { objectId } } } }",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Beyond 32 bits: a 64-bit limit is still just a limit.
    let reply = gql(&server, "{ users(first: 99999999999) { count } }").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = gql(&server, "{ users(first: 1e300) { count } }").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);

    let cycle =
        "{ users { ...A } } fragment A on UserConnection { edges { node { objectId } } ...A }";
    let reply = gql(&server, cycle).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);

    // The master key is exempt from the selection limits but not from the parser's guard.
    let reply = gql_master(&server, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = gql_master(&server, &deep, json!({})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let reply = gql_master(&server, "{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }", json!({})).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// `callCloudCode` lists the server's functions in its enum and runs them with the caller's
/// rights (an unknown one cannot even be named); the playground and its assets are served by
/// the binary.
#[tokio::test]
async fn cloud_functions_and_the_playground() {
    let server = TestServer::new().await;
    let reply = gql_master(
        &server,
        r#"{ __type(name: "CloudCodeFunction") { enumValues { name } } }"#,
        json!({}),
    )
    .await;
    let names: Vec<Value> = ok_data(&reply)["__type"]["enumValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value["name"].clone())
        .collect();
    for name in parlor_server::ai::functions::NAMES {
        assert!(
            names.contains(&json!(name)),
            "{name} missing from {names:?}"
        );
    }
    let reply = gql(
        &server,
        "mutation { callCloudCode(input: {functionName: nope}) { result } }",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // As REST's POST /functions/searchContext: outsiders hear 101 (here the anonymous 209).
    let rest = server
        .public(
            Method::POST,
            "/functions/searchContext",
            Some(json!({"sessionId": "x", "query": "q"})),
        )
        .await;
    let reply = gql(
        &server,
        r#"mutation { callCloudCode(input: {functionName: searchContext, params: {sessionId: "x", query: "q"}}) { result } }"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        error_code(&reply),
        rest.body["code"],
        "{} vs {:?}",
        reply.text,
        rest.body
    );

    let page = server
        .client
        .get(format!("{}/graphql/playground", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphql/playground/graphiql.min.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external URL: {html}"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        let response = server
            .client
            .get(format!("{}/graphql/playground/{asset}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
    }
}
