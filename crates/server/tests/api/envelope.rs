//! The request envelope and authentication (§1, §9, §13; checklist items 1–10, 79).

use base64::Engine;
use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn unauthorized() -> Value {
    json!({"error": "unauthorized"})
}

/// Item 1: without an application id (header or body), and with a wrong one, every API
/// route answers `403 {"error":"unauthorized"}`, a body with no `code`.
#[tokio::test]
async fn requests_without_a_valid_app_id_are_unauthorized() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "a"})).await;

    let none = server.send(Method::GET, "/classes/Item", None, &[]).await;
    assert_eq!(none.status, StatusCode::FORBIDDEN);
    assert_eq!(none.body, unauthorized());

    let wrong = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[("x-parse-application-id", "other-app")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.body, unauthorized());

    // The master key does not stand in for the app id.
    let master_only = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[("x-parse-master-key", MASTER_KEY)],
        )
        .await;
    assert_eq!(master_only.status, StatusCode::FORBIDDEN);
    assert_eq!(master_only.body, unauthorized());

    // The same with the JS SDK's body envelope.
    let body_wrong = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": "other-app"}),
        )
        .await;
    assert_eq!(body_wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(body_wrong.body, unauthorized());
    let body_none = server
        .js_sdk("/classes/Item", json!({"_method": "GET"}))
        .await;
    assert_eq!(body_none.status, StatusCode::FORBIDDEN);
    assert_eq!(body_none.body, unauthorized());

    // A refused write changes nothing.
    let write = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "b"})),
            &[],
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(server.count("Item").await, 1);

    // With the right app id alone (no client key configured) the read works.
    let ok = server.public(Method::GET, "/classes/Item", None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["results"].as_array().unwrap().len(), 1);
}

/// Item 2: when a client key is configured, the app id alone is refused with 403, any
/// configured key (REST header, JS body field, JS key in `Authorization: Basic`) is
/// accepted, and the master key needs no client key.
#[tokio::test]
async fn a_configured_client_key_is_required() {
    let server = TestServer::with(ServeOptions {
        rest_api_key: Some("rest-key".into()),
        javascript_key: Some("js-key".into()),
        ..ServeOptions::default()
    })
    .await;
    server.create("Item", json!({"title": "a"})).await;

    let alone = server.public(Method::GET, "/classes/Item", None).await;
    assert_eq!(alone.status, StatusCode::FORBIDDEN);
    assert_eq!(alone.body, unauthorized());

    let wrong = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-rest-api-key", "nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.body, unauthorized());

    let rest = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-rest-api-key", "rest-key"),
            ],
        )
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{:?}", rest.body);
    assert_eq!(rest.body["results"].as_array().unwrap().len(), 1);

    let js_header = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-javascript-key", "js-key"),
            ],
        )
        .await;
    assert_eq!(js_header.status, StatusCode::OK, "{:?}", js_header.body);

    let js_body = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_JavaScriptKey": "js-key"}),
        )
        .await;
    assert_eq!(js_body.status, StatusCode::OK, "{:?}", js_body.body);
    assert_eq!(js_body.body["results"].as_array().unwrap().len(), 1);

    let js_body_wrong = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_JavaScriptKey": "nope"}),
        )
        .await;
    assert_eq!(js_body_wrong.status, StatusCode::FORBIDDEN);

    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{APP_ID}:javascript-key=js-key"));
    let basic = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[("authorization", &format!("Basic {basic}"))],
        )
        .await;
    assert_eq!(basic.status, StatusCode::OK, "{:?}", basic.body);

    let master = server.master(Method::GET, "/classes/Item", None).await;
    assert_eq!(master.status, StatusCode::OK, "{:?}", master.body);
}

/// Item 3: a JS SDK `POST` with `Content-Type: text/plain`, `_method:"GET"` and the
/// credentials in the body answers exactly what the same `GET` with headers answers.
#[tokio::test]
async fn the_js_sdk_envelope_reads_like_a_get_with_headers() {
    let server = TestServer::new().await;
    for (title, score) in [("a", 3), ("b", 1), ("c", 2), ("d", 5)] {
        server
            .create("Item", json!({"title": title, "score": score}))
            .await;
    }
    let where_json = json!({"score": {"$gte": 2}});
    let with_headers = server
        .find_as(
            false,
            "Item",
            &[
                ("where", where_json.clone()),
                ("order", json!("-score")),
                ("limit", json!(2)),
                ("count", json!(1)),
            ],
        )
        .await;
    assert_eq!(
        with_headers.status,
        StatusCode::OK,
        "{:?}",
        with_headers.body
    );
    assert_eq!(
        values(with_headers.body["results"].as_array().unwrap(), "title"),
        vec![json!("d"), json!("a")]
    );
    assert_eq!(with_headers.body["count"], json!(3));

    let envelope = server
        .js_sdk(
            "/classes/Item",
            json!({
                "where": where_json, "order": "-score", "limit": 2, "count": 1,
                "_method": "GET", "_ApplicationId": APP_ID, "_ClientVersion": "js5.3.0",
                "_InstallationId": "3f0d1c2e-0000-4000-8000-000000000000",
            }),
        )
        .await;
    assert_eq!(envelope.status, StatusCode::OK, "{:?}", envelope.body);
    assert_eq!(envelope.body, with_headers.body);
}

/// Item 3: envelope fields of a JS SDK create (`_ApplicationId`, `_MasterKey`,
/// `_ClientVersion`, `_InstallationId`, `_RevocableSession`, `_context`, …) never become
/// object fields nor schema fields; `_MasterKey` in the body gives master rights (item 4).
#[tokio::test]
async fn envelope_fields_never_become_object_fields() {
    let server = TestServer::new().await;
    // `Fresh` does not exist: only the master key (sent in the body) may create it.
    let created = server
        .js_sdk(
            "/classes/Fresh",
            json!({
                "title": "hello",
                "_ApplicationId": APP_ID, "_MasterKey": MASTER_KEY, "_ClientVersion": "js5.3.0",
                "_InstallationId": "3f0d1c2e-0000-4000-8000-000000000000", "_RevocableSession": "1",
                "_context": {"a": 1}, "_noBody": true,
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["objectId"].as_str().unwrap();
    let object = server.get("Fresh", id).await;
    assert_eq!(
        keys(&object),
        vec!["createdAt", "objectId", "title", "updatedAt"]
    );
    assert_eq!(object["title"], "hello");

    let schema = server.master(Method::GET, "/schemas/Fresh", None).await;
    assert_eq!(schema.status, StatusCode::OK);
    assert_eq!(
        keys(&schema.body["fields"]),
        vec!["ACL", "createdAt", "objectId", "title", "updatedAt"]
    );

    // An update through the envelope (`_method:"PUT"`) keeps them out too.
    let updated = server
        .js_sdk(
            &format!("/classes/Fresh/{id}"),
            json!({"_method": "PUT", "title": "bye", "_ApplicationId": APP_ID, "_ClientVersion": "js5.3.0"}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    let object = server.get("Fresh", id).await;
    assert_eq!(
        keys(&object),
        vec!["createdAt", "objectId", "title", "updatedAt"]
    );
    assert_eq!(object["title"], "bye");
}

/// Item 4: `_MasterKey` in the body works like the master-key header: it reads a
/// master-only object and reaches the master-only schemas API.
#[tokio::test]
async fn master_key_in_the_body_works_like_the_header() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"title": "secret", "ACL": {}}))
        .await;

    let public = server
        .js_sdk(
            &format!("/classes/Item/{id}"),
            json!({"_method": "GET", "_ApplicationId": APP_ID}),
        )
        .await;
    assert_parse_error(&public, 404, 101, Some("Object not found."));

    let master = server
        .js_sdk(
            &format!("/classes/Item/{id}"),
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_MasterKey": MASTER_KEY}),
        )
        .await;
    assert_eq!(master.status, StatusCode::OK, "{:?}", master.body);
    assert_eq!(master.body["title"], "secret");
    assert_eq!(master.body["ACL"], json!({}));

    let schemas = server
        .js_sdk(
            "/schemas/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_MasterKey": MASTER_KEY}),
        )
        .await;
    assert_eq!(schemas.status, StatusCode::OK, "{:?}", schemas.body);
    assert_eq!(schemas.body["className"], "Item");

    let wrong = server
        .js_sdk(
            "/schemas/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_MasterKey": "nope"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(
        wrong.body,
        json!({"error": "unauthorized: master key is required"})
    );
}

/// Item 5: a `where` sent as a JSON string in a `_method:GET` body and one sent as an
/// object give the same results.
#[tokio::test]
async fn where_as_a_json_string_or_an_object_gives_the_same_results() {
    let server = TestServer::new().await;
    for n in 0..6 {
        server
            .create("Item", json!({"n": n, "even": n % 2 == 0}))
            .await;
    }
    let where_json = json!({"even": true, "n": {"$gt": 0}});
    let as_object = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "where": where_json, "order": "n"}),
        )
        .await;
    let as_string = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "where": where_json.to_string(), "order": "n"}),
        )
        .await;
    assert_eq!(as_object.status, StatusCode::OK, "{:?}", as_object.body);
    assert_eq!(
        values(as_object.body["results"].as_array().unwrap(), "n"),
        vec![json!(2), json!(4)]
    );
    assert_eq!(as_string.body, as_object.body);
    // And the query string (URL-encoded JSON) agrees.
    let query = server
        .find_as(
            false,
            "Item",
            &[("where", where_json), ("order", json!("n"))],
        )
        .await;
    assert_eq!(query.body, as_object.body);
}

/// Items 6 and 4: an unknown session token, in the header or as `_SessionToken` in the
/// body, is `400 {"code":209,"error":"Invalid session token"}`, even on a public class.
#[tokio::test]
async fn an_unknown_session_token_is_209_everywhere() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "a"})).await;
    let expected = json!({"code": 209, "error": "Invalid session token"});

    let header = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                (
                    "x-parse-session-token",
                    "r:0123456789abcdef0123456789abcdef",
                ),
            ],
        )
        .await;
    assert_eq!(header.status, StatusCode::BAD_REQUEST);
    assert_eq!(header.body, expected);

    let body = server
        .js_sdk(
            "/classes/Item",
            json!({"_method": "GET", "_ApplicationId": APP_ID, "_SessionToken": "r:nope"}),
        )
        .await;
    assert_eq!(body.status, StatusCode::BAD_REQUEST);
    assert_eq!(body.body, expected);

    let write = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "b"})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", "r:nope"),
            ],
        )
        .await;
    assert_eq!(write.body, expected);
    assert_eq!(server.count("Item").await, 1);
}

/// `Authorization: Basic base64(appId:masterKey)` authenticates as master.
#[tokio::test]
async fn basic_authorization_carries_app_id_and_master_key() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"title": "hidden", "ACL": {}}))
        .await;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{APP_ID}:{MASTER_KEY}"));
    let auth = format!("Basic {encoded}");

    let object = server
        .send(
            Method::GET,
            &format!("/classes/Item/{id}"),
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(object.status, StatusCode::OK, "{:?}", object.body);
    assert_eq!(object.body["title"], "hidden");
    let schemas = server
        .send(Method::GET, "/schemas", None, &[("authorization", &auth)])
        .await;
    assert_eq!(schemas.status, StatusCode::OK, "{:?}", schemas.body);

    // A wrong key in it is not master, and a wrong app id is unauthorized.
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{APP_ID}:wrong"));
    let not_master = server
        .send(
            Method::GET,
            &format!("/classes/Item/{id}"),
            None,
            &[("authorization", &format!("Basic {encoded}"))],
        )
        .await;
    assert_parse_error(&not_master, 404, 101, Some("Object not found."));
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("other:{MASTER_KEY}"));
    let wrong_app = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[("authorization", &format!("Basic {encoded}"))],
        )
        .await;
    assert_eq!(wrong_app.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong_app.body, unauthorized());
}

/// Item 8: `OPTIONS` preflights answer 200 without any credentials, with the CORS
/// headers of §1.5; ordinary answers allow any origin and expose Parse's headers.
#[tokio::test]
async fn options_preflight_needs_no_auth_and_carries_cors_headers() {
    let server = TestServer::new().await;
    let preflight = server
        .send_raw(
            Method::OPTIONS,
            "/classes/Item",
            None,
            None,
            &[
                ("origin", "http://example.com"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "x-parse-application-id,x-parse-session-token,content-type",
                ),
            ],
        )
        .await;
    assert_eq!(preflight.status, StatusCode::OK);
    let header = |reply: &Reply, name: &str| -> String {
        reply
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header(&preflight, "access-control-allow-origin"), "*");
    let methods = header(&preflight, "access-control-allow-methods").to_ascii_uppercase();
    for method in ["GET", "PUT", "POST", "DELETE", "OPTIONS"] {
        assert!(
            methods.split(',').any(|m| m.trim() == method),
            "{method} missing from {methods}"
        );
    }
    let allowed = header(&preflight, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "x-parse-master-key",
        "x-parse-rest-api-key",
        "x-parse-javascript-key",
        "x-parse-application-id",
        "x-parse-client-version",
        "x-parse-session-token",
        "x-requested-with",
        "x-parse-revocable-session",
        "x-parse-request-id",
        "content-type",
        "pragma",
        "cache-control",
        "x-parse-client-key",
        "x-parse-installation-id",
        "x-parse-cloud-context",
    ] {
        assert!(
            allowed.split(',').any(|h| h.trim() == name),
            "{name} missing from {allowed}"
        );
    }

    // A bare OPTIONS (no preflight headers) on any path: 200 with an empty body.
    let bare = server
        .send_raw(Method::OPTIONS, "/classes/Item/abc", None, None, &[])
        .await;
    assert_eq!(bare.status, StatusCode::OK);
    assert_eq!(bare.body, Value::Null);

    // Ordinary answers carry the origin and exposed headers, errors included.
    let get = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("origin", "http://example.com"),
            ],
        )
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(header(&get, "access-control-allow-origin"), "*");
    let exposed = header(&get, "access-control-expose-headers").to_ascii_lowercase();
    assert!(
        exposed.contains("x-parse-job-status-id") && exposed.contains("x-parse-push-status-id"),
        "{exposed}"
    );
    let refused = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[("origin", "http://example.com")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "access-control-allow-origin"), "*");
}

/// Item 9: error statuses follow the code (101 → 404, others → 400), the body holds an
/// integer `code` and a string `error`, and answers are `application/json; charset=utf-8`.
#[tokio::test]
async fn error_statuses_follow_the_code_and_bodies_are_json() {
    let server = TestServer::new().await;
    let missing = server
        .public(Method::GET, "/classes/Item/abcdefghij", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body,
        json!({"code": 101, "error": "Object not found."})
    );

    let forbidden = server
        .public(Method::POST, "/classes/Item", Some(json!({"a": 1})))
        .await;
    assert_parse_error(&forbidden, 400, 119, None);
    assert!(forbidden.body["code"].is_i64());

    let created = server
        .master(Method::POST, "/classes/Item", Some(json!({"a": 1})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.headers.get("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    let found = server.public(Method::GET, "/classes/Item", None).await;
    assert_eq!(
        found.headers.get("content-type").unwrap(),
        "application/json; charset=utf-8"
    );
    let content_type = missing
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

/// A `POST` whose body holds `_method` is routed as that method: `PUT` updates, `DELETE`
/// deletes (§1.3); trailing slashes are tolerated (§1.1).
#[tokio::test]
async fn method_override_and_trailing_slashes() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    let put = server
        .public(
            Method::POST,
            &format!("/classes/Item/{id}"),
            Some(json!({"_method": "PUT", "title": "b"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(keys(&put.body), vec!["updatedAt"]);
    assert_eq!(server.get("Item", id.as_str()).await["title"], "b");

    let slash = server
        .public(Method::GET, &format!("/classes/Item/{id}/"), None)
        .await;
    assert_eq!(slash.status, StatusCode::OK, "{:?}", slash.body);
    assert_eq!(slash.body["title"], "b");
    let list = server.public(Method::GET, "/classes/Item/", None).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body["results"].as_array().unwrap().len(), 1);

    let delete = server
        .public(
            Method::POST,
            &format!("/classes/Item/{id}"),
            Some(json!({"_method": "DELETE"})),
        )
        .await;
    assert_eq!(delete.status, StatusCode::OK, "{:?}", delete.body);
    assert_eq!(delete.body, json!({}));
    assert_eq!(server.count("Item").await, 0);
}

/// §1.1: an unknown route is `404 {"code":107,"error":"cannot route GET /x"}` (path below
/// the mount), also for paths outside the mount path.
#[tokio::test]
async fn unknown_routes_are_404_with_code_107() {
    let server = TestServer::new().await;
    let reply = server.public(Method::GET, "/x", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"code": 107, "error": "cannot route GET /x"})
    );

    let reply = server.public(Method::PATCH, "/classes/Item", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"code": 107, "error": "cannot route PATCH /classes/Item"})
    );

    let outside = server
        .client
        .get(format!("{}/elsewhere", server.base))
        .header("x-parse-application-id", APP_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);
    let body: Value = outside.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 107, "error": "cannot route GET /elsewhere"})
    );
}

/// §1.2 step 2: the master key from an address outside `master_key_ips` is refused with
/// `403 {"error":"unauthorized"}`; the same request without the master key still works.
#[tokio::test]
async fn master_key_from_a_disallowed_address_is_refused() {
    let server = TestServer::with(ServeOptions {
        master_key_ips: Some(vec!["10.9.9.9".into()]),
        ..ServeOptions::default()
    })
    .await;
    let reply = server.master(Method::GET, "/classes/Item", None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body, unauthorized());
    let write = server
        .master(Method::POST, "/classes/Item", Some(json!({"a": 1})))
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    let schemas = server.master(Method::GET, "/schemas", None).await;
    assert_eq!(schemas.status, StatusCode::FORBIDDEN);
    assert_eq!(schemas.body, unauthorized());

    let public = server.public(Method::GET, "/classes/Item", None).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.body, json!({"results": []}));
}

/// A range in `master_key_ips` that covers loopback lets the master key in.
#[tokio::test]
async fn master_key_from_an_allowed_range_works() {
    let server = TestServer::with(ServeOptions {
        master_key_ips: Some(vec!["127.0.0.0/8".into()]),
        ..ServeOptions::default()
    })
    .await;
    let reply = server.master(Method::GET, "/schemas/Message", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

/// §1.2: `X-Parse-Cloud-Context` that is not a JSON object → `400 {"code":107,"error":"Invalid
/// object for context."}`; an object is accepted.
#[tokio::test]
async fn cloud_context_header_must_be_an_object() {
    let server = TestServer::new().await;
    for bad in ["[1,2]", "\"text\"", "not json", "42"] {
        let reply = server
            .send(
                Method::GET,
                "/classes/Item",
                None,
                &[
                    ("x-parse-application-id", APP_ID),
                    ("x-parse-cloud-context", bad),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            reply.body,
            json!({"code": 107, "error": "Invalid object for context."}),
            "{bad}"
        );
    }
    let good = server
        .send(
            Method::GET,
            "/classes/Item",
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-cloud-context", "{\"a\":1}"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{:?}", good.body);
}

/// Item 10: with idempotency on for `classes/.*`, a second `POST` with the same
/// `X-Parse-Request-Id` → `159 "Duplicate request"` and only one object exists; a new id
/// works; a repeated `PUT` id is refused too; reads are not checked.
#[tokio::test]
async fn idempotency_refuses_a_repeated_request_id() {
    let server = TestServer::with(ServeOptions {
        idempotency_paths: Some(vec!["classes/.*".into()]),
        ..ServeOptions::default()
    })
    .await;
    server.create("Item", json!({"title": "seed"})).await;
    let headers = |id: &'static str| {
        [
            ("x-parse-application-id", APP_ID),
            ("x-parse-request-id", id),
        ]
    };

    let first = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x"})),
            &headers("req-1"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let second = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x"})),
            &headers("req-1"),
        )
        .await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        second.body,
        json!({"code": 159, "error": "Duplicate request"})
    );
    // The claims are the server's own: a client can neither list nor delete them.
    let claims = server
        .public(Method::GET, "/classes/_Idempotency", None)
        .await;
    assert_parse_error(&claims, 400, 119, None);
    let forget = server
        .public(Method::DELETE, "/classes/_Idempotency/req-1", None)
        .await;
    assert_parse_error(&forget, 400, 119, None);
    assert_eq!(
        server
            .find("Item", &[("where", json!({"title": "x"}))])
            .await
            .len(),
        1
    );

    let other = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"title": "x"})),
            &headers("req-2"),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_eq!(server.count("Item").await, 3);

    let id = first.body["objectId"].as_str().unwrap();
    let path = format!("/classes/Item/{id}");
    let increment = json!({"n": {"__op": "Increment", "amount": 1}});
    let put = server
        .send(
            Method::PUT,
            &path,
            Some(increment.clone()),
            &headers("req-3"),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let again = server
        .send(Method::PUT, &path, Some(increment), &headers("req-3"))
        .await;
    assert_parse_error(&again, 400, 159, Some("Duplicate request"));
    assert_eq!(server.get("Item", id).await["n"], json!(1));

    for _ in 0..2 {
        let read = server
            .send(Method::GET, "/classes/Item", None, &headers("req-4"))
            .await;
        assert_eq!(read.status, StatusCode::OK);
    }
}

/// Idempotency is off by default: the same request id twice creates two objects.
#[tokio::test]
async fn idempotency_is_off_by_default() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "seed"})).await;
    for _ in 0..2 {
        let reply = server
            .send(
                Method::POST,
                "/classes/Item",
                Some(json!({"title": "x"})),
                &[
                    ("x-parse-application-id", APP_ID),
                    ("x-parse-request-id", "same"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    assert_eq!(server.count("Item").await, 3);
}

/// Item 79: `GET /health` with no header at all → `200 {"status":"ok"}`, below the mount
/// path and at the root.
#[tokio::test]
async fn health_needs_no_headers() {
    let server = TestServer::new().await;
    for url in [server.url("/health"), format!("{}/health", server.base)] {
        let response = server.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ok"}), "{url}");
    }
}

/// §13: `/serverInfo` needs the master key (`403 unauthorized: master key is required`) and
/// reports a 7.x Parse Server version and the schema features.
#[tokio::test]
async fn server_info_needs_the_master_key() {
    let server = TestServer::new().await;
    let public = server.public(Method::GET, "/serverInfo", None).await;
    assert_eq!(public.status, StatusCode::FORBIDDEN);
    assert_eq!(
        public.body,
        json!({"error": "unauthorized: master key is required"})
    );

    let master = server.master(Method::GET, "/serverInfo", None).await;
    assert_eq!(master.status, StatusCode::OK);
    let version = master.body["parseServerVersion"].as_str().unwrap();
    assert!(version.starts_with("7."), "{version}");
    assert_eq!(master.body["features"]["schemas"]["addClass"], json!(true));
    assert_eq!(
        master.body["features"]["schemas"]["removeField"],
        json!(true)
    );
}

/// `/serverInfo` tells Parse Dashboard what Parlor really serves. Global config (create,
/// read, update, delete: the Dashboard's Config page), the schema features and the job
/// pages are on, and each works as announced; hooks, logs and push are off, and Parlor has
/// no route for them.
#[tokio::test]
async fn server_info_reports_the_features_that_work() {
    let server = TestServer::new().await;
    let info = server.master(Method::GET, "/serverInfo", None).await;
    let features = &info.body["features"];
    assert_eq!(
        features["globalConfig"],
        json!({"create": true, "read": true, "update": true, "delete": true})
    );
    assert_eq!(
        features["schemas"],
        json!({
            "addField": true, "removeField": true, "addClass": true, "removeClass": true,
            "clearAllDataFromClass": true, "exportClass": false,
            "editClassLevelPermissions": true, "editPointerPermissions": true
        })
    );
    assert_eq!(features["cloudCode"], json!({"jobs": true}));
    let jobs = server
        .master(Method::GET, "/cloud_code/jobs/data", None)
        .await;
    assert_eq!(jobs.body, json!({"in_use": [], "jobs": []}));
    for (group, flags) in [
        ("hooks", features["hooks"].clone()),
        ("logs", features["logs"].clone()),
        ("push", features["push"].clone()),
    ] {
        assert!(
            flags
                .as_object()
                .unwrap()
                .values()
                .all(|flag| flag == false),
            "{group}: {flags}"
        );
    }

    // globalConfig: create, read, update and delete a parameter, as the Dashboard does.
    let config = |params: Value| json!({"params": params});
    for (body, expected) in [
        (config(json!({"motd": "hello"})), json!({"motd": "hello"})),
        (config(json!({"motd": "bye"})), json!({"motd": "bye"})),
        (config(json!({"motd": {"__op": "Delete"}})), json!({})),
    ] {
        let written = server.master(Method::PUT, "/config", Some(body)).await;
        assert_eq!(written.body, json!({"result": true}));
        let read = server.master(Method::GET, "/config", None).await;
        assert_eq!(read.body["params"], expected);
    }

    // schemas: add a class and a field, edit its CLP, clear its data, remove the field and
    // the class.
    let created = server
        .master(
            Method::POST,
            "/schemas/Board",
            Some(json!({"className": "Board", "fields": {"title": {"type": "String"}}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let changed = server
        .master(
            Method::PUT,
            "/schemas/Board",
            Some(json!({
                "fields": {"owner": {"type": "Pointer", "targetClass": "_User"}},
                "classLevelPermissions": {"find": {"*": true}, "get": {"*": true}, "readUserFields": ["owner"]}
            })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        changed.body["classLevelPermissions"]["readUserFields"],
        json!(["owner"])
    );
    server.create("Board", json!({"title": "x"})).await;
    let purged = server.master(Method::DELETE, "/purge/Board", None).await;
    assert_eq!(purged.status, StatusCode::OK, "{:?}", purged.body);
    assert_eq!(server.count("Board").await, 0);
    let removed = server
        .master(
            Method::PUT,
            "/schemas/Board",
            Some(json!({"fields": {"title": {"__op": "Delete"}}})),
        )
        .await;
    assert!(
        removed.body["fields"].get("title").is_none(),
        "{:?}",
        removed.body
    );
    let dropped = server.master(Method::DELETE, "/schemas/Board", None).await;
    assert_eq!(dropped.status, StatusCode::OK, "{:?}", dropped.body);
    let gone = server.master(Method::GET, "/schemas/Board", None).await;
    assert_parse_error(&gone, 400, 103, Some("Class Board does not exist."));

    // Jobs run through Cloud Code: without one defined, a job is unknown (Parse's answer).
    let job = server
        .master(Method::POST, "/jobs/nightly", Some(json!({})))
        .await;
    assert_parse_error(&job, 400, 141, Some("Invalid job."));
    // Off: the routes behind these features do not exist.
    for (method, path) in [
        (Method::GET, "/hooks/functions"),
        (Method::GET, "/scriptlog"),
        // `POST /push` exists (it records a `_PushStatus`) but delivers nothing, so the push
        // features stay off; audiences do not exist.
        (Method::GET, "/push_audiences"),
    ] {
        let reply = server.master(method.clone(), path, Some(json!({}))).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {:?}",
            reply.body
        );
    }
}

/// `POST /events/:name` (analytics) is accepted and ignored: `200 {}`.
#[tokio::test]
async fn analytics_events_are_accepted() {
    let server = TestServer::new().await;
    let reply = server
        .public(
            Method::POST,
            "/events/AppOpened",
            Some(json!({"dimensions": {}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({}));
}

/// §1.2: the `Content-Type` is ignored: a JSON body sent as form data or with no type at all
/// is still read as JSON.
#[tokio::test]
async fn content_type_is_ignored() {
    let server = TestServer::new().await;
    server.create("Item", json!({"title": "seed"})).await;
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("application/octet-stream"),
        None,
    ] {
        let reply = server
            .send_raw(
                Method::POST,
                "/classes/Item",
                Some(br#"{"title":"typed"}"#.to_vec()),
                content_type,
                &PUBLIC_HEADERS,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{content_type:?}: {:?}",
            reply.body
        );
    }
    assert_eq!(
        server
            .find("Item", &[("where", json!({"title": "typed"}))])
            .await
            .len(),
        3
    );
}
