//! Small behaviours the Parse JS SDK's own integration suite expects as Parse Server does
//! them (issue 15): push records, `--template none`, `--file-upload-public`, CLP and index
//! shapes of the schemas API, dropping an empty built-in class, unlinking `authData`,
//! `_created_at` ordering.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{APP_ID, TestServer, assert_parse_error, ids};

/// `POST /push` (master key) answers `{"result": true}` with `X-Parse-Push-Status-Id`; the
/// `_PushStatus` it names is readable by the master key only; without `where` or `channels`
/// → 115; without the master key → refused.
#[tokio::test]
async fn pushes_are_recorded_in_push_status() {
    let server = TestServer::new().await;
    let payload =
        json!({"data": {"alert": "We return status!"}, "where": {"deviceType": {"$eq": "random"}}});
    let reply = server
        .master(Method::POST, "/push", Some(payload.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"result": true}));
    let id = reply.headers["x-parse-push-status-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = server
        .master(Method::GET, &format!("/classes/_PushStatus/{id}"), None)
        .await;
    assert_eq!(status.status, StatusCode::OK, "{:?}", status.body);
    assert_eq!(status.body["objectId"], id);
    assert_eq!(status.body["source"], "rest");
    assert_eq!(status.body["numSent"], 0);
    let query: Value = serde_json::from_str(status.body["query"].as_str().unwrap()).unwrap();
    assert_eq!(query, payload["where"]);

    let public = server
        .public(Method::GET, &format!("/classes/_PushStatus/{id}"), None)
        .await;
    assert_ne!(public.status, StatusCode::OK, "{:?}", public.body);
    let public = server
        .public(Method::POST, "/push", Some(payload.clone()))
        .await;
    assert_ne!(public.status, StatusCode::OK, "{:?}", public.body);
    let neither = server
        .master(Method::POST, "/push", Some(json!({"data": {"alert": "x"}})))
        .await;
    assert_parse_error(&neither, 400, 115, None);
    let both = server
        .master(
            Method::POST,
            "/push",
            Some(json!({"data": {}, "where": {}, "channels": ["a"]})),
        )
        .await;
    assert_parse_error(&both, 400, 115, None);
}

/// `--template none`: no template classes, and a class named `Message` is a plain Parse
/// class (a client saves one without any session).
#[tokio::test]
async fn template_none_gives_plain_parse_classes() {
    let server = TestServer::with(parlor_server::config::ServeOptions {
        template: Some("none".into()),
        allow_client_class_creation: Some(true),
        ..Default::default()
    })
    .await;
    let schemas = server.master(Method::GET, "/schemas", None).await;
    let names: Vec<&str> = schemas.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|schema| schema["className"].as_str().unwrap())
        .collect();
    for template_class in ["ChatSession", "Message", "Context", "Persona", "AiUsage"] {
        assert!(!names.contains(&template_class), "{names:?}");
    }
    let created = server
        .public(
            Method::POST,
            "/classes/Message",
            Some(json!({"text": "hello", "session": 3})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let user = server.sign_up("plain").await;
    let updated = server
        .as_user(
            &user.token,
            Method::PUT,
            &format!("/users/{}", user.id),
            Some(json!({"nickname": "p"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);

    // The default stays the chat template, whose rules refuse the same Message.
    let chat = TestServer::new().await;
    let refused = chat
        .public(
            Method::POST,
            "/classes/Message",
            Some(json!({"text": "hello"})),
        )
        .await;
    assert_ne!(refused.status, StatusCode::CREATED, "{:?}", refused.body);
}

/// Uploads without a user are refused by default (130) and accepted with
/// `--file-upload-public` (Parse's `fileUpload.enableForPublic`).
#[tokio::test]
async fn public_file_uploads_follow_the_switch() {
    for (public, expected) in [
        (None, StatusCode::BAD_REQUEST),
        (Some(true), StatusCode::CREATED),
    ] {
        let server = TestServer::with(parlor_server::config::ServeOptions {
            file_upload_public: public,
            ..Default::default()
        })
        .await;
        let reply = server
            .client
            .post(server.url("/files/a.txt"))
            .header("X-Parse-Application-Id", APP_ID)
            .body("data")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), expected, "file_upload_public {public:?}");
    }
}

/// A CLP that is not an object counts as `{}` (every operation closed, all listed), and a
/// schema lists `indexes` even when it has none, as Parse Server's PostgreSQL adapter.
#[tokio::test]
async fn schema_shapes_follow_parse_server() {
    let server = TestServer::new().await;
    let created = server
        .master(Method::POST, "/schemas/SchemaTest", Some(json!({})))
        .await;
    assert_eq!(created.body["indexes"], json!({}), "{:?}", created.body);
    let empty = json!({
        "find": {}, "count": {}, "get": {}, "create": {}, "update": {}, "delete": {},
        "addField": {}, "protectedFields": {},
    });
    for clp in [json!(1234), json!({})] {
        let updated = server
            .master(
                Method::PUT,
                "/schemas/SchemaTest",
                Some(json!({"classLevelPermissions": clp})),
            )
            .await;
        assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
        assert_eq!(updated.body["classLevelPermissions"], empty);
    }
    // Closed for the public, as the CLP says.
    let find = server
        .public(Method::GET, "/classes/SchemaTest", None)
        .await;
    assert_ne!(find.status, StatusCode::OK, "{:?}", find.body);
    let with_index = server
        .master(
            Method::PUT,
            "/schemas/SchemaTest",
            Some(json!({"fields": {"name": {"type": "String"}}, "indexes": {"test_index": {"name": 1}}})),
        )
        .await;
    assert_eq!(with_index.body["indexes"]["test_index"], json!({"name": 1}));
    let without = server
        .master(
            Method::PUT,
            "/schemas/SchemaTest",
            Some(json!({"indexes": {"test_index": {"__op": "Delete"}}})),
        )
        .await;
    assert_eq!(without.body["indexes"], json!({}), "{:?}", without.body);
}

/// `DELETE /schemas/_User` on an empty `_User` answers 200 and leaves the class as the
/// server made it; with users in it, 255 as for any class.
#[tokio::test]
async fn deleting_an_empty_built_in_class_answers_200() {
    let server = TestServer::with(parlor_server::config::ServeOptions {
        template: Some("none".into()),
        ..Default::default()
    })
    .await;
    server
        .master(
            Method::PUT,
            "/schemas/_User",
            Some(json!({"fields": {"nickname": {"type": "String"}}})),
        )
        .await;
    let reply = server.master(Method::DELETE, "/schemas/_User", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let user = server.master(Method::GET, "/schemas/_User", None).await;
    assert!(
        user.body["fields"].get("nickname").is_none(),
        "{:?}",
        user.body
    );
    server.sign_up("someone").await;
    let reply = server.master(Method::DELETE, "/schemas/_User", None).await;
    assert_parse_error(&reply, 400, 255, None);
}

/// An anonymous user that signs up (the SDK saves `username`, `password` and `authData:
/// {"anonymous": null}`) loses its anonymous link and keeps its data; a sign-up whose
/// `authData` links nothing is a plain sign-up.
#[tokio::test]
async fn null_auth_data_unlinks_the_provider() {
    // Plain Parse: the chat template closes `addField` on `_User`.
    let server = TestServer::with(parlor_server::config::ServeOptions {
        template: Some("none".into()),
        ..Default::default()
    })
    .await;
    let anonymous = server
        .public(
            Method::POST,
            "/users",
            Some(
                json!({"authData": {"anonymous": {"id": "8f3e1a52-1f7c-4d0e-9d1e-3c1e2b3a4d5e"}}}),
            ),
        )
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::CREATED,
        "{:?}",
        anonymous.body
    );
    let id = anonymous.body["objectId"].as_str().unwrap().to_owned();
    let token = anonymous.body["sessionToken"].as_str().unwrap().to_owned();
    let saved = server
        .as_user(
            &token,
            Method::PUT,
            &format!("/users/{id}"),
            Some(json!({"field": "hello world", "username": "foo", "password": "baz", "authData": {"anonymous": null}})),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    let me = server.as_user(&token, Method::GET, "/users/me", None).await;
    assert_eq!(me.body["username"], "foo");
    assert_eq!(me.body["field"], "hello world");
    assert!(me.body.get("authData").is_none(), "{:?}", me.body);

    let plain = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "bar", "password": "baz", "authData": {"anonymous": null}})),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{:?}", plain.body);
}

/// `order=_created_at` / `-_updated_at` are Parse Server's aliases of the timestamps.
#[tokio::test]
async fn timestamps_sort_by_their_storage_names() {
    let server = TestServer::new().await;
    let first = server.create("Item", json!({"n": 1})).await;
    // Distinct timestamps (they have millisecond precision).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = server.create("Item", json!({"n": 2})).await;
    let ascending = server
        .find("Item", &[("order", json!("_created_at"))])
        .await;
    assert_eq!(ids(&ascending), vec![first.clone(), second.clone()]);
    let descending = server
        .find("Item", &[("order", json!("-_updated_at"))])
        .await;
    assert_eq!(ids(&descending), vec![second, first]);
}

/// Geo queries over REST: `$nearSphere` sorts by distance (unless `order` says otherwise)
/// and `$maxDistanceInKilometers` limits it; `$within $box`, `$geoWithin $centerSphere`;
/// bad geo operands → 107.
#[tokio::test]
async fn geo_queries_over_rest() {
    let server = TestServer::new().await;
    let geo = |latitude: f64, longitude: f64| json!({"__type": "GeoPoint", "latitude": latitude, "longitude": longitude});
    let sf = server
        .create(
            "Place",
            json!({"name": "sf", "at": geo(37.7749, -122.4194)}),
        )
        .await;
    let la = server
        .create(
            "Place",
            json!({"name": "la", "at": geo(34.0522, -118.2437)}),
        )
        .await;
    let oak = server
        .create(
            "Place",
            json!({"name": "oak", "at": geo(37.8044, -122.2712)}),
        )
        .await;
    let near = |extra: Value| {
        let mut constraint = json!({"$nearSphere": geo(34.0, -118.0)});
        for (key, value) in extra.as_object().unwrap() {
            constraint[key] = value.clone();
        }
        json!({"at": constraint})
    };
    let found = server.find("Place", &[("where", near(json!({})))]).await;
    assert_eq!(ids(&found), vec![la.clone(), oak.clone(), sf.clone()]);
    let found = server
        .find(
            "Place",
            &[("where", near(json!({"$maxDistanceInKilometers": 100.0})))],
        )
        .await;
    assert_eq!(ids(&found), vec![la.clone()]);
    let found = server
        .find(
            "Place",
            &[
                ("where", near(json!({"$maxDistanceInMiles": 400.0}))),
                ("order", json!("-name")),
            ],
        )
        .await;
    assert_eq!(ids(&found), vec![sf.clone(), oak.clone(), la.clone()]);
    let boxed = json!({"at": {"$within": {"$box": [geo(37.0, -123.0), geo(38.0, -122.0)]}}});
    // Without `order` (and without `$nearSphere`) the order is unspecified, as in Parse.
    let sorted = |found: &[Value]| {
        let mut ids = ids(found);
        ids.sort();
        ids
    };
    let mut inside = vec![sf.clone(), oak.clone()];
    inside.sort();
    let found = server.find("Place", &[("where", boxed)]).await;
    assert_eq!(sorted(&found), inside);
    let sphere = json!({"at": {"$geoWithin": {"$centerSphere": [[-122.4194, 37.7749], 0.003]}}});
    let found = server.find("Place", &[("where", sphere)]).await;
    assert_eq!(sorted(&found), inside);
    let reply = server
        .find_as(
            false,
            "Place",
            &[("where", json!({"at": {"$nearSphere": geo(95.0, 0.0)}}))],
        )
        .await;
    assert_parse_error(&reply, 400, 107, None);
}

/// A typed default is stored as a written value would be — a polygon closed — while the
/// schema keeps it as given (Parse Server's answers, the SDK suite's
/// "set multiple required and default values").
#[tokio::test]
async fn typed_defaults_are_stored_like_written_values() {
    let server = TestServer::new().await;
    let square = json!({"__type": "Polygon", "coordinates": [[0, 0], [0, 1], [1, 1], [1, 0]]});
    let made = server
        .master(
            Method::POST,
            "/schemas/Zone",
            Some(json!({"className": "Zone", "fields": {
                "area": {"type": "Polygon", "required": true, "defaultValue": square}
            }})),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
    assert_eq!(made.body["fields"]["area"]["defaultValue"], square);
    let created = server
        .master(Method::POST, "/classes/Zone", Some(json!({})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let closed = json!({"__type": "Polygon", "coordinates": [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]});
    assert_eq!(created.body["area"], closed);
    let id = created.body["objectId"].as_str().unwrap();
    assert_eq!(server.get("Zone", id).await["area"], closed);
}
