//! The schemas API, CLPs and protectedFields (§8; checklist items 35, 56, 59–62), and the
//! chat template's classes (§14).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

fn default_clp() -> Value {
    json!({
        "get": {"*": true}, "find": {"*": true}, "count": {"*": true}, "create": {"*": true},
        "update": {"*": true}, "delete": {"*": true}, "addField": {"*": true},
        "protectedFields": {"*": []},
    })
}

fn open_clp_with(overrides: Value) -> Value {
    let mut clp = default_clp();
    for (key, value) in overrides.as_object().unwrap() {
        clp[key] = value.clone();
    }
    clp
}

/// The chat template's classes and the built-in ones exist on first start, with their
/// fields, defaults and CLPs (`GET /schemas/Message`, `GET /schemas`).
#[tokio::test]
async fn template_classes_exist_on_first_start() {
    let server = TestServer::new().await;
    let message = server.master(Method::GET, "/schemas/Message", None).await;
    assert_eq!(message.status, StatusCode::OK, "{:?}", message.body);
    assert_eq!(message.body["className"], "Message");
    let fields = &message.body["fields"];
    assert_eq!(fields["objectId"], json!({"type": "String"}));
    assert_eq!(fields["createdAt"], json!({"type": "Date"}));
    assert_eq!(fields["updatedAt"], json!({"type": "Date"}));
    assert_eq!(fields["ACL"], json!({"type": "ACL"}));
    assert_eq!(
        fields["session"],
        json!({"type": "Pointer", "targetClass": "ChatSession", "required": true})
    );
    assert_eq!(
        fields["sender"],
        json!({"type": "Pointer", "targetClass": "_User"})
    );
    assert_eq!(
        fields["content"],
        json!({"type": "String", "required": true})
    );
    assert_eq!(fields["timestamp"], json!({"type": "Date"}));
    assert_eq!(
        fields["persona"],
        json!({"type": "Pointer", "targetClass": "Persona"})
    );
    assert_eq!(
        fields["role"],
        json!({"type": "String", "defaultValue": "user"})
    );
    assert_eq!(
        fields["status"],
        json!({"type": "String", "defaultValue": "complete"})
    );
    assert_eq!(fields["usage"], json!({"type": "Object"}));
    assert_eq!(
        message.body["classLevelPermissions"]["find"],
        json!({"requiresAuthentication": true})
    );

    let all = server.master(Method::GET, "/schemas", None).await;
    assert_eq!(all.status, StatusCode::OK);
    let names: Vec<&str> = all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["className"].as_str().unwrap())
        .collect();
    for class_name in ["_User", "ChatSession", "Message", "Context", "Persona"] {
        assert!(
            names.contains(&class_name),
            "{class_name} missing from {names:?}"
        );
    }
    // As in Parse Server, a built-in class nothing has used yet is not listed…
    for class_name in ["_Role", "_Session", "_Installation"] {
        assert!(!names.contains(&class_name), "{class_name} in {names:?}");
    }
    // …and is once it holds an object.
    server
        .master(
            Method::POST,
            "/roles",
            Some(json!({"name": "Editors", "ACL": {"*": {"read": true}}})),
        )
        .await;
    let all = server.master(Method::GET, "/schemas", None).await;
    assert!(
        all.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|schema| schema["className"] == "_Role"),
        "{:?}",
        all.body
    );
    for schema in all.body["results"].as_array().unwrap() {
        assert!(
            schema["fields"].is_object() && schema["classLevelPermissions"].is_object(),
            "{schema}"
        );
    }

    let user = server
        .master(Method::GET, "/schemas/_User", None)
        .await
        .body;
    for field in [
        "username",
        "password",
        "email",
        "emailVerified",
        "authData",
        "displayName",
    ] {
        assert!(
            user["fields"][field].is_object(),
            "_User.{field} missing: {user}"
        );
    }
    assert_eq!(
        user["fields"]["role"],
        json!({"type": "String", "defaultValue": "participant"})
    );
    assert_eq!(user["fields"]["avatar"], json!({"type": "File"}));
    assert_eq!(
        user["classLevelPermissions"]["protectedFields"],
        json!({"*": ["email"]})
    );

    let session = server
        .master(Method::GET, "/schemas/ChatSession", None)
        .await
        .body;
    assert_eq!(
        session["fields"]["participants"],
        json!({"type": "Array", "required": true})
    );
    assert_eq!(
        session["fields"]["context"],
        json!({"type": "Pointer", "targetClass": "Context"})
    );
    let context = server
        .master(Method::GET, "/schemas/Context", None)
        .await
        .body;
    assert_eq!(
        context["fields"]["data"],
        json!({"type": "Object", "required": true})
    );
    let persona = server
        .master(Method::GET, "/schemas/Persona", None)
        .await
        .body;
    assert_eq!(
        persona["classLevelPermissions"]["protectedFields"],
        json!({"*": ["systemPrompt"], "userField:owner": []})
    );
    let role = server
        .master(Method::GET, "/schemas/_Role", None)
        .await
        .body;
    assert_eq!(
        role["fields"]["users"],
        json!({"type": "Relation", "targetClass": "_User"})
    );
    let sessions = server
        .master(Method::GET, "/schemas/_Session", None)
        .await
        .body;
    assert_eq!(
        sessions["fields"]["user"],
        json!({"type": "Pointer", "targetClass": "_User"})
    );
    let installation = server
        .master(Method::GET, "/schemas/_Installation", None)
        .await
        .body;
    assert_eq!(installation["fields"]["channels"], json!({"type": "Array"}));
}

/// The template's CLPs take effect for the public: `Message` needs authentication (101),
/// `Persona` is readable but hides `systemPrompt`, and querying it → 119.
#[tokio::test]
async fn template_clps_apply_to_the_public() {
    let server = TestServer::new().await;
    let find = server.public(Method::GET, "/classes/Message", None).await;
    assert_eq!(find.status, StatusCode::NOT_FOUND);
    assert_eq!(
        find.body,
        json!({"code": 101, "error": "Permission denied, user needs to be authenticated."})
    );
    let create = server
        .public(
            Method::POST,
            "/classes/Message",
            Some(json!({"content": "x"})),
        )
        .await;
    assert_parse_error(
        &create,
        404,
        101,
        Some("Permission denied, user needs to be authenticated."),
    );

    let id = server
        .create(
            "Persona",
            json!({"name": "Helper", "systemPrompt": "be nice", "model": "m"}),
        )
        .await;
    let get = server
        .public(Method::GET, &format!("/classes/Persona/{id}"), None)
        .await;
    assert_eq!(get.status, StatusCode::OK, "{:?}", get.body);
    assert_eq!(get.body["name"], "Helper");
    assert!(get.body.get("systemPrompt").is_none(), "{:?}", get.body);
    assert_eq!(server.get("Persona", &id).await["systemPrompt"], "be nice");
    let query = server
        .find_as(
            false,
            "Persona",
            &[("where", json!({"systemPrompt": "be nice"}))],
        )
        .await;
    assert_parse_error(
        &query,
        400,
        119,
        Some("This user is not allowed to query systemPrompt on class Persona"),
    );
}

/// §8.2: every schemas route without the master key → `403 {"error":"unauthorized: master
/// key is required"}`, and changes nothing.
#[tokio::test]
async fn schemas_api_needs_the_master_key() {
    let server = TestServer::new().await;
    server.create("Item", json!({"a": 1})).await;
    let expected = json!({"error": "unauthorized: master key is required"});
    let body = Some(json!({"className": "Item", "fields": {"b": {"type": "String"}}}));
    for (method, path, body) in [
        (Method::GET, "/schemas", None),
        (Method::GET, "/schemas/Item", None),
        (Method::POST, "/schemas/Other", body.clone()),
        (
            Method::POST,
            "/schemas",
            Some(json!({"className": "Other"})),
        ),
        (Method::PUT, "/schemas/Item", body),
        (Method::DELETE, "/schemas/Item", None),
        (Method::DELETE, "/purge/Item", None),
    ] {
        let reply = server.public(method.clone(), path, body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(reply.body, expected, "{method} {path}");
    }
    assert_eq!(server.count("Item").await, 1);
    let schema = server.master(Method::GET, "/schemas/Item", None).await.body;
    assert!(schema["fields"].get("b").is_none());
    assert_parse_error(
        &server.master(Method::GET, "/schemas/Other", None).await,
        400,
        103,
        None,
    );
}

/// `POST /schemas/:c` answers the created schema: default fields, the new fields, the
/// default CLP; `GET` answers the same; the class is usable right away.
#[tokio::test]
async fn create_schema_answers_the_schema() {
    let server = TestServer::new().await;
    let created = server
        .create_class(
            "Foo",
            json!({"className": "Foo", "fields": {
                "name": {"type": "String"},
                "owner": {"type": "Pointer", "targetClass": "_User"},
                "fans": {"type": "Relation", "targetClass": "_User"},
                "n": {"type": "Number", "defaultValue": 0},
                "must": {"type": "Boolean", "required": true},
            }}),
        )
        .await;
    let expected = json!({
        "className": "Foo",
        "fields": {
            "objectId": {"type": "String"}, "createdAt": {"type": "Date"}, "updatedAt": {"type": "Date"}, "ACL": {"type": "ACL"},
            "name": {"type": "String"},
            "owner": {"type": "Pointer", "targetClass": "_User"},
            "fans": {"type": "Relation", "targetClass": "_User"},
            "n": {"type": "Number", "defaultValue": 0},
            "must": {"type": "Boolean", "required": true},
        },
        "classLevelPermissions": default_clp(),
        "indexes": {},
    });
    assert_eq!(created, expected);
    let fetched = server.master(Method::GET, "/schemas/Foo", None).await;
    assert_eq!(fetched.body, expected);

    // `POST /schemas` with the name in the body works too.
    let bar = server
        .master(Method::POST, "/schemas", Some(json!({"className": "Bar"})))
        .await;
    assert_eq!(bar.status, StatusCode::OK, "{:?}", bar.body);
    assert_eq!(bar.body["className"], "Bar");
    assert_eq!(
        keys(&bar.body["fields"]),
        vec!["ACL", "createdAt", "objectId", "updatedAt"]
    );

    // With a CLP in the body, the CLP is stored.
    let clp = open_clp_with(json!({"delete": {}}));
    let baz = server
        .master(
            Method::POST,
            "/schemas/Baz",
            Some(json!({"classLevelPermissions": clp})),
        )
        .await;
    assert_eq!(baz.body["classLevelPermissions"], clp);

    let public = server
        .public(Method::POST, "/classes/Foo", Some(json!({"must": true})))
        .await;
    assert_eq!(public.status, StatusCode::CREATED, "{:?}", public.body);
}

/// Schema creation errors: an existing class → `103 "Class X already exists."`; a name
/// mismatch → `103 "Class name mismatch between B and A."`; no name → 135; an invalid class
/// name → 103; an unknown type → `111 "invalid field type: X"`; a Pointer without target
/// → `135 "type Pointer needs a class name"`; a bad field name → `105 "invalid field name:
/// x"`; a reserved field → 136; a default of the wrong type → 111.
#[tokio::test]
async fn create_schema_errors() {
    let server = TestServer::new().await;
    server.create_class("Foo", json!({})).await;
    let server = &server;
    let post = move |path: &'static str, body: Value| async move {
        server.master(Method::POST, path, Some(body)).await
    };
    assert_parse_error(
        &post("/schemas/Foo", json!({})).await,
        400,
        103,
        Some("Class Foo already exists."),
    );
    assert_parse_error(
        &post("/schemas/Message", json!({})).await,
        400,
        103,
        Some("Class Message already exists."),
    );
    assert_parse_error(
        &post("/schemas/A", json!({"className": "B"})).await,
        400,
        103,
        Some("Class name mismatch between B and A."),
    );
    assert_parse_error(
        &post("/schemas", json!({"fields": {}})).await,
        400,
        135,
        None,
    );
    assert_parse_error(&post("/schemas/1bad", json!({})).await, 400, 103, None);
    assert_parse_error(
        &post("/schemas", json!({"className": "bad-name"})).await,
        400,
        103,
        None,
    );
    assert_parse_error(&post("/schemas/_Secret", json!({})).await, 400, 103, None);
    assert_parse_error(
        &post("/schemas/C1", json!({"fields": {"a": {"type": "Nope"}}})).await,
        400,
        111,
        Some("invalid field type: Nope"),
    );
    assert_parse_error(
        &post("/schemas/C2", json!({"fields": {"p": {"type": "Pointer"}}})).await,
        400,
        135,
        Some("type Pointer needs a class name"),
    );
    assert_parse_error(
        &post(
            "/schemas/C3",
            json!({"fields": {"bad-name": {"type": "String"}}}),
        )
        .await,
        400,
        105,
        Some("invalid field name: bad-name"),
    );
    assert_parse_error(
        &post(
            "/schemas/C4",
            json!({"fields": {"objectId": {"type": "String"}}}),
        )
        .await,
        400,
        136,
        Some("field objectId cannot be added"),
    );
    assert_parse_error(
        &post(
            "/schemas/C5",
            json!({"fields": {"f": {"type": "String", "defaultValue": 1}}}),
        )
        .await,
        400,
        111,
        Some("schema mismatch for C5.f default value; expected String but got Number"),
    );
    assert_parse_error(
        &post(
            "/schemas/C6",
            json!({"fields": {"r": {"type": "Relation", "targetClass": "Foo", "required": true}}}),
        )
        .await,
        400,
        111,
        None,
    );
    assert_parse_error(
        &post(
            "/schemas/C7",
            json!({"fields": {"a": {"type": "GeoPoint"}, "b": {"type": "GeoPoint"}}}),
        )
        .await,
        400,
        111,
        None,
    );
    assert_parse_error(
        &post(
            "/schemas/C8",
            json!({"classLevelPermissions": {"find": {"*": false}}}),
        )
        .await,
        400,
        107,
        None,
    );
    assert_parse_error(
        &post(
            "/schemas/C9",
            json!({"classLevelPermissions": {"bogus": {}}}),
        )
        .await,
        400,
        107,
        None,
    );
    for class_name in ["A", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"] {
        let reply = server
            .master(Method::GET, &format!("/schemas/{class_name}"), None)
            .await;
        assert_parse_error(
            &reply,
            400,
            103,
            Some(&format!("Class {class_name} does not exist.")),
        );
    }
}

/// Item 62 and §8.2: `PUT /schemas` adds and deletes fields; adding an existing field →
/// `255 "Field x exists, cannot update."`; deleting a missing one → `255 "Field x does not
/// exist, cannot delete."`; a default field → `136`; a missing class → 103. A deleted field
/// disappears from every object.
#[tokio::test]
async fn update_schema_fields() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"a": "x", "b": "y"})).await;
    let server = &server;
    let put = move |body: Value| async move {
        server
            .master(Method::PUT, "/schemas/Item", Some(body))
            .await
    };
    let reply = put(json!({"fields": {"a": {"type": "String"}}})).await;
    assert_parse_error(&reply, 400, 255, Some("Field a exists, cannot update."));
    let reply = put(json!({"fields": {"zz": {"__op": "Delete"}}})).await;
    assert_parse_error(
        &reply,
        400,
        255,
        Some("Field zz does not exist, cannot delete."),
    );
    let reply = put(json!({"fields": {"createdAt": {"__op": "Delete"}}})).await;
    assert_parse_error(&reply, 400, 136, Some("field createdAt cannot be changed"));
    let reply = server
        .master(Method::PUT, "/schemas/Missing", Some(json!({"fields": {}})))
        .await;
    assert_parse_error(&reply, 400, 103, Some("Class Missing does not exist."));

    let reply = put(json!({"fields": {"b": {"__op": "Delete"}, "c": {"type": "Number"}}})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.body["fields"].get("b").is_none());
    assert_eq!(reply.body["fields"]["c"], json!({"type": "Number"}));
    let object = server.get("Item", &id).await;
    assert!(object.get("b").is_none(), "{object}");
    assert_eq!(object["a"], "x");
    assert!(
        server
            .find("Item", &[("where", json!({"b": "y"}))])
            .await
            .is_empty()
    );

    // Re-adding it with another type starts empty, and takes the new type.
    let reply = put(json!({"fields": {"b": {"type": "Number"}}})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(server.get("Item", &id).await.get("b").is_none());
    let ok = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"b": 5})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let bad = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{id}"),
            Some(json!({"b": "text"})),
        )
        .await;
    assert_parse_error(
        &bad,
        400,
        111,
        Some("schema mismatch for Item.b; expected Number but got String"),
    );

    // Deleting a relation field drops its members.
    let team = server
        .create(
            "Team",
            json!({"members": {"__op": "AddRelation", "objects": [pointer("Item", &id)]}}),
        )
        .await;
    let reply = server
        .master(
            Method::PUT,
            "/schemas/Team",
            Some(json!({"fields": {"members": {"__op": "Delete"}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(server.get("Team", &team).await.get("members").is_none());
}

/// Item 60: `DELETE /schemas/X` while X has objects → `255 "Class X is not empty, contains N
/// objects, cannot drop schema."`; `DELETE /purge/X` empties it and keeps the schema; then
/// the drop works and the class is gone.
#[tokio::test]
async fn delete_schema_and_purge() {
    let server = TestServer::new().await;
    server.create("Item", json!({"a": 1})).await;
    server.create("Item", json!({"a": 2, "ACL": {}})).await;
    let reply = server.master(Method::DELETE, "/schemas/Item", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"code": 255, "error": "Class Item is not empty, contains 2 objects, cannot drop schema."})
    );
    assert_eq!(server.count("Item").await, 2);

    let purge = server.master(Method::DELETE, "/purge/Item", None).await;
    assert_eq!(purge.status, StatusCode::OK);
    assert_eq!(purge.body, json!({}));
    assert_eq!(server.count("Item").await, 0);
    let schema = server.master(Method::GET, "/schemas/Item", None).await;
    assert_eq!(schema.status, StatusCode::OK);
    assert_eq!(schema.body["fields"]["a"], json!({"type": "Number"}));

    let drop = server.master(Method::DELETE, "/schemas/Item", None).await;
    assert_eq!(drop.status, StatusCode::OK, "{:?}", drop.body);
    assert_eq!(drop.body, json!({}));
    assert_parse_error(
        &server.master(Method::GET, "/schemas/Item", None).await,
        400,
        103,
        Some("Class Item does not exist."),
    );
    let find = server.master(Method::GET, "/classes/Item", None).await;
    assert_eq!(find.body, json!({"results": []}));
    // Re-creating it starts from scratch (the old field type is gone).
    let again = server
        .master(Method::POST, "/classes/Item", Some(json!({"a": "text"})))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
}

/// Item 56: CLP `find:{}` → a public find is `119 "Permission denied for action find on
/// class X."`; the master key still finds; `get` stays allowed, including the SDK's
/// `where={"objectId":…}` form; `count` follows the `count` operation.
#[tokio::test]
async fn clp_find_denied() {
    let server = TestServer::new().await;
    let id = server.create("Locked", json!({"title": "t"})).await;
    server
        .set_clp("Locked", open_clp_with(json!({"find": {}, "count": {}})))
        .await;

    let find = server.public(Method::GET, "/classes/Locked", None).await;
    assert_eq!(find.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        find.body,
        json!({"code": 119, "error": "Permission denied for action find on class Locked."})
    );
    let count = server
        .find_as(false, "Locked", &[("count", json!(1)), ("limit", json!(0))])
        .await;
    assert_parse_error(
        &count,
        400,
        119,
        Some("Permission denied for action count on class Locked."),
    );
    let by_other_key = server
        .find_as(false, "Locked", &[("where", json!({"title": "t"}))])
        .await;
    assert_parse_error(
        &by_other_key,
        400,
        119,
        Some("Permission denied for action find on class Locked."),
    );

    let get = server
        .public(Method::GET, &format!("/classes/Locked/{id}"), None)
        .await;
    assert_eq!(get.status, StatusCode::OK);
    let sdk_get = server
        .find_as(false, "Locked", &[("where", json!({"objectId": id}))])
        .await;
    assert_eq!(sdk_get.status, StatusCode::OK, "{:?}", sdk_get.body);
    assert_eq!(
        ids(sdk_get.body["results"].as_array().unwrap()),
        vec![id.clone()]
    );

    assert_eq!(server.find("Locked", &[]).await.len(), 1);
    assert_eq!(server.count("Locked").await, 1);
}

/// CLP `create`, `update`, `delete`, `get` and `addField` set to `{}` refuse the public
/// with `119 "Permission denied for action <op> on class X."` and change nothing; the master
/// key is not affected.
#[tokio::test]
async fn clp_write_operations_denied() {
    let server = TestServer::new().await;
    let id = server.create("Locked", json!({"title": "t"})).await;
    server
        .set_clp(
            "Locked",
            open_clp_with(
                json!({"create": {}, "update": {}, "delete": {}, "get": {}, "addField": {}}),
            ),
        )
        .await;
    let path = format!("/classes/Locked/{id}");
    let create = server
        .public(Method::POST, "/classes/Locked", Some(json!({"title": "x"})))
        .await;
    assert_parse_error(
        &create,
        400,
        119,
        Some("Permission denied for action create on class Locked."),
    );
    let update = server
        .public(Method::PUT, &path, Some(json!({"title": "x"})))
        .await;
    assert_parse_error(
        &update,
        400,
        119,
        Some("Permission denied for action update on class Locked."),
    );
    let delete = server.public(Method::DELETE, &path, None).await;
    assert_parse_error(
        &delete,
        400,
        119,
        Some("Permission denied for action delete on class Locked."),
    );
    let get = server.public(Method::GET, &path, None).await;
    assert_parse_error(
        &get,
        400,
        119,
        Some("Permission denied for action get on class Locked."),
    );
    let find = server.public(Method::GET, "/classes/Locked", None).await;
    assert_eq!(find.status, StatusCode::OK);
    assert_eq!(server.count("Locked").await, 1);
    assert_eq!(server.get("Locked", &id).await["title"], "t");

    // addField: existing fields may be written, new ones not.
    server
        .set_clp("Locked", open_clp_with(json!({"addField": {}})))
        .await;
    let existing = server
        .public(Method::PUT, &path, Some(json!({"title": "ok"})))
        .await;
    assert_eq!(existing.status, StatusCode::OK, "{:?}", existing.body);
    let new_field = server
        .public(Method::PUT, &path, Some(json!({"brandNew": 1})))
        .await;
    assert_parse_error(
        &new_field,
        400,
        119,
        Some("Permission denied for action addField on class Locked."),
    );
    let new_on_create = server
        .public(
            Method::POST,
            "/classes/Locked",
            Some(json!({"brandNew": 1})),
        )
        .await;
    assert_parse_error(
        &new_on_create,
        400,
        119,
        Some("Permission denied for action addField on class Locked."),
    );
    assert!(
        server
            .master(Method::GET, "/schemas/Locked", None)
            .await
            .body["fields"]
            .get("brandNew")
            .is_none()
    );
    let master = server
        .master(Method::PUT, &path, Some(json!({"brandNew": 1})))
        .await;
    assert_eq!(master.status, StatusCode::OK);
}

/// CLP `requiresAuthentication` refuses anonymous callers with `404 {"code":101,"error":
/// "Permission denied, user needs to be authenticated."}` (PS quirk).
#[tokio::test]
async fn clp_requires_authentication() {
    let server = TestServer::new().await;
    let id = server.create("Members", json!({"title": "t"})).await;
    let auth = json!({"requiresAuthentication": true});
    server
        .set_clp(
            "Members",
            open_clp_with(json!({"find": auth, "get": auth, "create": auth, "update": auth})),
        )
        .await;
    let expected =
        json!({"code": 101, "error": "Permission denied, user needs to be authenticated."});
    for reply in [
        server.public(Method::GET, "/classes/Members", None).await,
        server
            .public(Method::GET, &format!("/classes/Members/{id}"), None)
            .await,
        server
            .public(
                Method::POST,
                "/classes/Members",
                Some(json!({"title": "x"})),
            )
            .await,
        server
            .public(
                Method::PUT,
                &format!("/classes/Members/{id}"),
                Some(json!({"title": "x"})),
            )
            .await,
    ] {
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.body, expected);
    }
    assert_eq!(server.count("Members").await, 1);
    assert_eq!(server.find("Members", &[]).await.len(), 1);
}

/// A CLP reserved to a user id or a role refuses the public (who holds neither) with 119.
#[tokio::test]
async fn clp_for_users_and_roles_refuses_the_public() {
    let server = TestServer::new().await;
    server.create("Staff", json!({"title": "t"})).await;
    server
        .set_clp(
            "Staff",
            open_clp_with(json!({"find": {"someUser": true, "role:Admin": true}})),
        )
        .await;
    let reply = server.public(Method::GET, "/classes/Staff", None).await;
    assert_parse_error(
        &reply,
        400,
        119,
        Some("Permission denied for action find on class Staff."),
    );
    let schema = server
        .master(Method::GET, "/schemas/Staff", None)
        .await
        .body;
    assert_eq!(
        schema["classLevelPermissions"]["find"],
        json!({"someUser": true, "role:Admin": true})
    );
}

/// Invalid CLPs → 107, and the stored CLP is unchanged.
#[tokio::test]
async fn invalid_clps_are_refused() {
    let server = TestServer::new().await;
    server.create("Item", json!({})).await;
    for clp in [
        json!({"find": {"*": false}}),
        json!({"find": {"*": 1}}),
        json!({"nope": {"*": true}}),
        json!({"find": {"bad key!": true}}),
        json!({"find": "yes"}),
        json!({"protectedFields": {"*": "secret"}}),
        json!({"readUserFields": "owner"}),
    ] {
        let reply = server
            .master(
                Method::PUT,
                "/schemas/Item",
                Some(json!({"classLevelPermissions": clp})),
            )
            .await;
        assert_parse_error(&reply, 400, 107, None);
    }
    let schema = server.master(Method::GET, "/schemas/Item", None).await.body;
    assert_eq!(schema["classLevelPermissions"], default_clp());
}

/// Items 59 and 35: protectedFields hide fields from the public in get, find and include,
/// the master key sees them, and a public query on a protected field → `119 "This user is
/// not allowed to query secret on class X"`.
#[tokio::test]
async fn protected_fields_are_hidden_from_the_public() {
    let server = TestServer::new().await;
    let id = server
        .create(
            "Profile",
            json!({"name": "n", "secret": "s3", "meta": {"x": 1}}),
        )
        .await;
    server
        .create("Profile", json!({"name": "m", "secret": "other"}))
        .await;
    let holder = server
        .create("Holder", json!({"profile": pointer("Profile", &id)}))
        .await;
    server
        .set_clp(
            "Profile",
            open_clp_with(json!({"protectedFields": {"*": ["secret", "meta"], "role:Admin": []}})),
        )
        .await;

    let get = server
        .public(Method::GET, &format!("/classes/Profile/{id}"), None)
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(
        keys(&get.body),
        vec!["createdAt", "name", "objectId", "updatedAt"]
    );
    let find = server.find_as(false, "Profile", &[]).await;
    for object in find.body["results"].as_array().unwrap() {
        assert!(
            object.get("secret").is_none() && object.get("meta").is_none(),
            "{object}"
        );
    }
    let asked = server
        .public(
            Method::GET,
            &format!("/classes/Profile/{id}?keys=secret"),
            None,
        )
        .await;
    assert!(asked.body.get("secret").is_none(), "{:?}", asked.body);
    let included = server
        .public(
            Method::GET,
            &format!("/classes/Holder/{holder}?include=profile"),
            None,
        )
        .await;
    assert_eq!(included.body["profile"]["name"], "n");
    assert!(
        included.body["profile"].get("secret").is_none(),
        "{:?}",
        included.body
    );

    let master = server.get("Profile", &id).await;
    assert_eq!(master["secret"], "s3");

    let query = server
        .find_as(false, "Profile", &[("where", json!({"secret": "s3"}))])
        .await;
    assert_eq!(query.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        query.body,
        json!({"code": 119, "error": "This user is not allowed to query secret on class Profile"})
    );
    let dotted = server
        .find_as(false, "Profile", &[("where", json!({"meta.x": 1}))])
        .await;
    assert_parse_error(
        &dotted,
        400,
        119,
        Some("This user is not allowed to query meta on class Profile"),
    );
    let inside_or = server
        .find_as(
            false,
            "Profile",
            &[("where", json!({"$or": [{"name": "n"}, {"secret": "s3"}]}))],
        )
        .await;
    assert_parse_error(
        &inside_or,
        400,
        119,
        Some("This user is not allowed to query secret on class Profile"),
    );
    let unprotected = server
        .find_as(false, "Profile", &[("where", json!({"name": "n"}))])
        .await;
    assert_eq!(unprotected.status, StatusCode::OK);
    assert_eq!(unprotected.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .find("Profile", &[("where", json!({"secret": "s3"}))])
            .await
            .len(),
        1
    );
}

/// protectedFields that hide a field only in some objects (`userField:owner`: from the user
/// the object points to) or only from one user hold in find and get alike; a reader from whom
/// nothing is hidden gets every field. (A read whose rendering changes nothing is answered
/// with the store's rows as written; these are the cases where rendering does change them.)
#[tokio::test]
async fn protected_fields_for_pointed_users_and_named_users_hold_in_find_and_get() {
    let server = TestServer::new().await;
    let alice = server.sign_up("alice").await;
    let bob = server.sign_up("bob").await;
    let cards = [
        server
            .create(
                "Card",
                json!({"owner": pointer("_User", &alice.id), "secret": "a"}),
            )
            .await,
        server
            .create(
                "Card",
                json!({"owner": pointer("_User", &bob.id), "secret": "b"}),
            )
            .await,
    ];
    // Which cards show `secret` to `user`, by find and by get.
    let shown = async |user: &User| {
        let found = server
            .as_user(user, Method::GET, "/classes/Card", None)
            .await;
        assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
        let mut by_find = Vec::new();
        for card in found.body["results"].as_array().unwrap() {
            if card.get("secret").is_some() {
                by_find.push(card["objectId"].as_str().unwrap().to_owned());
            }
        }
        by_find.sort();
        let mut by_get = Vec::new();
        for id in &cards {
            let got = server
                .as_user(user, Method::GET, &format!("/classes/Card/{id}"), None)
                .await;
            assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
            assert_eq!(got.body["owner"]["__type"], "Pointer");
            if got.body.get("secret").is_some() {
                by_get.push(id.clone());
            }
        }
        by_get.sort();
        assert_eq!(by_find, by_get, "find and get disagree");
        by_find
    };
    let mut all = cards.to_vec();
    all.sort();

    server
        .set_clp(
            "Card",
            open_clp_with(json!({"protectedFields": {"userField:owner": ["secret"]}})),
        )
        .await;
    assert_eq!(shown(&alice).await, vec![cards[1].clone()]);
    assert_eq!(shown(&bob).await, vec![cards[0].clone()]);

    server
        .set_clp(
            "Card",
            open_clp_with(json!({"protectedFields": {alice.id.clone(): ["secret"]}})),
        )
        .await;
    assert_eq!(shown(&alice).await, Vec::<String>::new());
    assert_eq!(shown(&bob).await, all);

    // Lists that apply intersect: `*` hiding nothing leaves nothing hidden.
    server
        .set_clp(
            "Card",
            open_clp_with(json!({"protectedFields": {"*": [], alice.id.clone(): ["secret"]}})),
        )
        .await;
    assert_eq!(shown(&alice).await, all);
}

/// `PUT /schemas` adds and deletes indexes; the schema lists them; adding an existing one
/// or deleting a missing one → 255; an index on a missing field is refused.
#[tokio::test]
async fn schema_indexes() {
    let server = TestServer::new().await;
    server.create("Item", json!({"a": 1, "b": "x"})).await;
    let reply = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"indexes": {"by_a": {"a": 1}, "by_ab": {"a": -1, "b": 1}}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["indexes"]["by_a"], json!({"a": 1}));
    assert_eq!(reply.body["indexes"]["by_ab"], json!({"a": -1, "b": 1}));
    let again = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"indexes": {"by_a": {"a": 1}}})),
        )
        .await;
    assert_parse_error(&again, 400, 255, None);
    let missing = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"indexes": {"gone": {"__op": "Delete"}}})),
        )
        .await;
    assert_parse_error(&missing, 400, 255, None);
    let no_field = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"indexes": {"by_z": {"z": 1}}})),
        )
        .await;
    assert!(
        no_field.status == StatusCode::BAD_REQUEST && no_field.body["code"].is_i64(),
        "{:?}",
        no_field.body
    );
    let deleted = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"indexes": {"by_a": {"__op": "Delete"}}})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert!(
        deleted.body["indexes"].get("by_a").is_none(),
        "{:?}",
        deleted.body
    );
    // Queries still work with the remaining index, and a field in an index can be deleted.
    assert_eq!(
        server
            .find("Item", &[("where", json!({"a": 1}))])
            .await
            .len(),
        1
    );
    let drop_field = server
        .master(
            Method::PUT,
            "/schemas/Item",
            Some(json!({"fields": {"b": {"__op": "Delete"}}})),
        )
        .await;
    assert_eq!(drop_field.status, StatusCode::OK, "{:?}", drop_field.body);
}

/// §13 `/config`: anyone reads the parameters, only the master key writes them; a
/// `masterKeyOnly` parameter is hidden from other callers; `{"__op":"Delete"}` removes one.
#[tokio::test]
async fn global_config() {
    let server = TestServer::new().await;
    let empty = server.public(Method::GET, "/config", None).await;
    assert_eq!(empty.body, json!({"params": {}}));
    let refused = server
        .public(
            Method::PUT,
            "/config",
            Some(json!({"params": {"welcome": "hi"}})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!({"error": "unauthorized: master key is required"})
    );
    let written = server
        .master(
            Method::PUT,
            "/config",
            Some(json!({"params": {"welcome": "hi", "model": "gpt", "secret": 42}, "masterKeyOnly": {"secret": true}})),
        )
        .await;
    assert_eq!(written.body, json!({"result": true}));
    let public = server.public(Method::GET, "/config", None).await;
    assert_eq!(
        public.body,
        json!({"params": {"welcome": "hi", "model": "gpt"}})
    );
    let master = server.master(Method::GET, "/config", None).await;
    assert_eq!(master.body["params"]["secret"], 42);
    assert_eq!(master.body["masterKeyOnly"], json!({"secret": true}));
    server
        .master(
            Method::PUT,
            "/config",
            Some(json!({"params": {"model": {"__op": "Delete"}}})),
        )
        .await;
    let after = server.public(Method::GET, "/config", None).await;
    assert_eq!(after.body, json!({"params": {"welcome": "hi"}}));
    // The class behind it is the server's: clients cannot read or change it directly.
    let direct = server
        .public(Method::GET, "/classes/_GlobalConfig", None)
        .await;
    assert_parse_error(&direct, 400, 119, None);
    let direct = server
        .public(
            Method::PUT,
            "/classes/_GlobalConfig/1",
            Some(json!({"params": {}})),
        )
        .await;
    assert_parse_error(&direct, 400, 119, None);
}

/// The names of the classes `GET /schemas` lists.
async fn listed_classes(server: &TestServer) -> Vec<String> {
    let all = server.master(Method::GET, "/schemas", None).await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|schema| schema["className"].as_str().unwrap().to_owned())
        .collect()
}

/// The server's bookkeeping classes (`/config`'s `_GlobalConfig`, the request-id claims'
/// `_Idempotency`) are not in the schemas API, as in Parse Server, so Parse Dashboard does not
/// list them: `GET /schemas` leaves them out, `GET`/`PUT /schemas/:name` answer `103 "Class …
/// does not exist."`, `POST /schemas` refuses the name (`103`), and neither `DELETE
/// /schemas/:name` nor `DELETE /purge/:name` touches them (`/config` and idempotency keep
/// working). The user-facing master-only `AiUsage` stays listed.
#[tokio::test]
async fn bookkeeping_classes_are_not_in_the_schemas_api() {
    let server = TestServer::with(parlor_server::config::ServeOptions {
        idempotency_paths: Some(vec!["classes/.*".into()]),
        ..Default::default()
    })
    .await;
    let written = server
        .master(
            Method::PUT,
            "/config",
            Some(json!({"params": {"welcome": "hi"}})),
        )
        .await;
    assert_eq!(written.body, json!({"result": true}));
    server.create("Item", json!({"n": 0})).await;
    let claimed = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"n": 1})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-request-id", "claim-1"),
            ],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{:?}", claimed.body);
    let classes = listed_classes(&server).await;
    for internal in ["_GlobalConfig", "_Idempotency"] {
        assert!(!classes.contains(&internal.to_owned()), "{classes:?}");
    }
    for visible in ["_User", "Item", "AiUsage"] {
        assert!(
            classes.contains(&visible.to_owned()),
            "{visible}: {classes:?}"
        );
    }

    for internal in ["_GlobalConfig", "_Idempotency"] {
        let missing = Some(format!("Class {internal} does not exist."));
        let path = format!("/schemas/{internal}");
        let one = server.master(Method::GET, &path, None).await;
        assert_parse_error(&one, 400, 103, missing.as_deref());
        let changed = server
            .master(
                Method::PUT,
                &path,
                Some(json!({"fields": {"extra": {"type": "String"}}})),
            )
            .await;
        assert_parse_error(&changed, 400, 103, missing.as_deref());
        let created = server
            .master(
                Method::POST,
                "/schemas",
                Some(json!({"className": internal})),
            )
            .await;
        assert_parse_error(&created, 400, 103, None);
        let dropped = server.master(Method::DELETE, &path, None).await;
        assert_eq!(dropped.status, StatusCode::OK, "{:?}", dropped.body);
        let purged = server
            .master(Method::DELETE, &format!("/purge/{internal}"), None)
            .await;
        assert_eq!(purged.status, StatusCode::OK, "{:?}", purged.body);
    }

    // Nothing above reached them: the parameter and the claim are still there.
    let config = server.public(Method::GET, "/config", None).await;
    assert_eq!(config.body, json!({"params": {"welcome": "hi"}}));
    let repeated = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"n": 2})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-request-id", "claim-1"),
            ],
        )
        .await;
    assert_parse_error(&repeated, 400, 159, Some("Duplicate request"));
}

/// The object API refuses the bookkeeping classes to every caller, the master key included,
/// before and after they exist: `119 "Clients aren't allowed to perform the <op> operation on
/// the <class> collection."` (Parse Server's words) for find, get, create, update and delete,
/// directly and in a batch; a subquery naming one is an invalid class name. No row is read,
/// forged or removed: `/config` and idempotency behave as before.
#[tokio::test]
async fn bookkeeping_classes_refuse_the_object_api_to_everyone() {
    let server = TestServer::with(parlor_server::config::ServeOptions {
        idempotency_paths: Some(vec!["classes/.*".into()]),
        ..Default::default()
    })
    .await;
    let user = server.sign_up("mallory").await;
    let refused = |reply: &Reply, operation: &str, class_name: &str| {
        assert_parse_error(
            reply,
            400,
            119,
            Some(&format!(
                "Clients aren't allowed to perform the {operation} operation on the {class_name} collection."
            )),
        );
    };
    // Before the classes exist, the answer is the same as after.
    for class_name in ["_GlobalConfig", "_Idempotency"] {
        let found = server
            .master(Method::GET, &format!("/classes/{class_name}"), None)
            .await;
        refused(&found, "find", class_name);
    }
    server
        .master(
            Method::PUT,
            "/config",
            Some(json!({"params": {"welcome": "hi", "secret": 1}, "masterKeyOnly": {"secret": true}})),
        )
        .await;
    server.create("Item", json!({"n": 0})).await;
    let claimed = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"n": 1})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-request-id", "claim-1"),
            ],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{:?}", claimed.body);

    let as_master = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-master-key", MASTER_KEY),
    ];
    let as_user = [
        ("x-parse-application-id", APP_ID),
        ("x-parse-session-token", user.token.as_str()),
    ];
    let as_public = [("x-parse-application-id", APP_ID)];
    for headers in [&as_master[..], &as_user[..], &as_public[..]] {
        for (class_name, object_id) in [("_GlobalConfig", "1"), ("_Idempotency", "claim-1")] {
            let collection = format!("/classes/{class_name}");
            let object = format!("{collection}/{object_id}");
            let found = server.send(Method::GET, &collection, None, headers).await;
            refused(&found, "find", class_name);
            let got = server.send(Method::GET, &object, None, headers).await;
            refused(&got, "get", class_name);
            let forged = server
                .send(
                    Method::POST,
                    &collection,
                    Some(json!({"objectId": "forged", "params": {"welcome": "pwned"}})),
                    headers,
                )
                .await;
            refused(&forged, "create", class_name);
            let changed = server
                .send(
                    Method::PUT,
                    &object,
                    Some(json!({"params": {"welcome": "pwned"}, "expire": null})),
                    headers,
                )
                .await;
            refused(&changed, "update", class_name);
            let deleted = server.send(Method::DELETE, &object, None, headers).await;
            refused(&deleted, "delete", class_name);
            let batch = server
                .send(
                    Method::POST,
                    "/batch",
                    Some(json!({"requests": [
                        {"method": "DELETE", "path": format!("/parse{object}")},
                        {"method": "GET", "path": format!("/parse{collection}")},
                    ]})),
                    headers,
                )
                .await;
            assert_eq!(batch.status, StatusCode::OK, "{:?}", batch.body);
            for item in batch.body.as_array().unwrap() {
                assert_eq!(item["error"]["code"], 119, "{:?}", batch.body);
            }
            let subqueries = [
                (
                    "$inQuery",
                    json!({"n": {"$inQuery": {"className": class_name, "where": {}}}}),
                ),
                (
                    "$select",
                    json!({"n": {"$select": {"query": {"className": class_name}, "key": "expire"}}}),
                ),
            ];
            for (operator, subquery) in subqueries {
                let found = server
                    .send(
                        Method::GET,
                        &format!("/classes/Item?where={}", encode(&subquery.to_string())),
                        None,
                        headers,
                    )
                    .await;
                let message = format!("improper usage of {operator}");
                assert_parse_error(&found, 400, 102, Some(&message));
            }
        }
    }

    let config = server.master(Method::GET, "/config", None).await;
    assert_eq!(
        config.body,
        json!({"params": {"welcome": "hi", "secret": 1}, "masterKeyOnly": {"secret": true}})
    );
    let repeated = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"n": 2})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-request-id", "claim-1"),
            ],
        )
        .await;
    assert_parse_error(&repeated, 400, 159, Some("Duplicate request"));
    let fresh = server
        .send(
            Method::POST,
            "/classes/Item",
            Some(json!({"n": 3})),
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-request-id", "forged"),
            ],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
}
