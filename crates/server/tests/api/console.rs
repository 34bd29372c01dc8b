//! What the console (`/console`) relies on from the server: who may read the schema (the
//! master key, or a user whose `_User.role` is `admin`), and the master key's views of a
//! running server (`/serverStatus`, `/generations`). Tested from the attacker's side first:
//! every way a non-admin might reach them is refused.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::fake_llm::{FakeLlm, Script};
use crate::common::live::{connected, subscribe_all};
use crate::common::{TestServer, User, assert_parse_error, pointer};

const MASTER_ONLY: &str = "unauthorized: master key is required";

/// A refusal of a master-only route: `403 {"error": "unauthorized: master key is required"}`.
fn assert_master_only(reply: &crate::common::Reply, what: &str) {
    assert_eq!(reply.status.as_u16(), 403, "{what}: {:?}", reply.body);
    assert_eq!(reply.body, json!({"error": MASTER_ONLY}), "{what}");
}

const SCHEMA_READS: [&str; 3] = ["/schemas", "/schemas/Message", "/openapi.json"];

/// Anonymous callers and ordinary users cannot read the schema, not even by making
/// themselves admins at sign-up, by an update of their own user, or inside a batch.
#[tokio::test]
async fn only_admins_and_the_master_key_read_the_schema() {
    let server = TestServer::new().await;
    for path in SCHEMA_READS {
        let anonymous = server.public(Method::GET, path, None).await;
        assert_master_only(&anonymous, path);
    }
    // A sign-up that asks for the admin role is refused, or gets a participant.
    let claimed = server
        .public(
            Method::POST,
            "/users",
            Some(json!({"username": "mallory", "password": "pw", "role": "admin"})),
        )
        .await;
    let mallory = if claimed.status.is_success() {
        User {
            id: claimed.body["objectId"].as_str().unwrap().to_owned(),
            token: claimed.body["sessionToken"].as_str().unwrap().to_owned(),
        }
    } else {
        server.sign_up("mallory").await
    };
    assert_ne!(server.get("_User", &mallory.id).await["role"], "admin");
    let promote = server
        .as_user(
            &mallory,
            Method::PUT,
            &format!("/users/{}", mallory.id),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_parse_error(&promote, 400, 119, None);
    let batched = server
        .as_user(
            &mallory,
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "PUT", "path": format!("/parse/users/{}", mallory.id), "body": {"role": "admin"}},
                {"method": "GET", "path": "/parse/schemas"},
            ]})),
        )
        .await;
    assert_eq!(batched.status.as_u16(), 200, "{:?}", batched.body);
    assert_eq!(batched.body[0]["error"]["code"], 119, "{:?}", batched.body);
    assert!(batched.body[1]["success"].is_null(), "{:?}", batched.body);
    for path in SCHEMA_READS {
        let refused = server.as_user(&mallory, Method::GET, path, None).await;
        assert_master_only(&refused, path);
    }
    // A role named "admin" (Parse's `_Role`) is not the admin field: it grants nothing here.
    server
        .create(
            "_Role",
            json!({"name": "admin", "ACL": {"*": {"read": true}},
                   "users": {"__op": "AddRelation", "objects": [pointer("_User", &mallory.id)]}}),
        )
        .await;
    let refused = server
        .as_user(&mallory, Method::GET, "/schemas", None)
        .await;
    assert_master_only(&refused, "a member of the role named admin");
}

/// An admin reads the schema and the OpenAPI document, and nothing more than that: schema
/// changes, master-only classes, other users' private objects and the operator's views stay
/// out of reach; a demotion takes effect on the next request.
#[tokio::test]
async fn an_admin_reads_the_schema_and_nothing_more() {
    let server = TestServer::new().await;
    let admin = server.sign_up("ada").await;
    let other = server.sign_up("bob").await;
    let promoted = server
        .master(
            Method::PUT,
            &format!("/users/{}", admin.id),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.status.as_u16(), 200, "{:?}", promoted.body);
    let all = server.as_user(&admin, Method::GET, "/schemas", None).await;
    assert_eq!(all.status.as_u16(), 200, "{:?}", all.body);
    let names: Vec<&str> = all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|class| class["className"].as_str())
        .collect();
    for name in ["_User", "ChatSession", "Message", "Context", "Persona"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(
        all.body,
        server.master(Method::GET, "/schemas", None).await.body
    );
    let one = server
        .as_user(&admin, Method::GET, "/schemas/Message", None)
        .await;
    assert_eq!(one.body["fields"]["session"]["targetClass"], "ChatSession");
    let openapi = server
        .as_user(&admin, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(openapi.status.as_u16(), 200);
    assert!(openapi.body["paths"]["/classes/Message"].is_object());

    // GraphQL's class queries follow the same rule; its class mutations stay the master key's.
    let classes = crate::graphql::gql_as(&server, &admin, "{ classes { name } }", json!({})).await;
    assert!(
        classes.body["data"]["classes"]
            .as_array()
            .is_some_and(|list| list.iter().any(|class| class["name"] == "Message")),
        "{:?}",
        classes.body
    );
    let dropped = crate::graphql::gql_as(
        &server,
        &admin,
        "mutation { deleteClass(input: {name: \"Persona\"}) { class { name } } }",
        json!({}),
    )
    .await;
    assert!(dropped.body["errors"].is_array(), "{:?}", dropped.body);
    let outsider = crate::graphql::gql_as(&server, &other, "{ classes { name } }", json!({})).await;
    assert!(outsider.body["errors"].is_array(), "{:?}", outsider.body);

    // Changing the schema stays the master key's.
    for (method, path, body) in [
        (
            Method::POST,
            "/schemas/Spy",
            Some(json!({"fields": {"x": {"type": "String"}}})),
        ),
        (
            Method::PUT,
            "/schemas/Message",
            Some(json!({"fields": {"x": {"type": "String"}}})),
        ),
        (Method::DELETE, "/schemas/Persona", None),
        (Method::DELETE, "/purge/Message", None),
        (Method::GET, "/serverInfo", None),
        (Method::GET, "/serverStatus", None),
        (Method::GET, "/generations", None),
    ] {
        let refused = server.as_user(&admin, method.clone(), path, body).await;
        assert_master_only(&refused, &format!("{method} {path}"));
    }
    assert!(
        server
            .master(Method::GET, "/schemas/Spy", None)
            .await
            .status
            .as_u16()
            == 400,
        "no class was created"
    );
    // Data: the admin's ACL and CLP rights, nothing else.
    let usage = server
        .as_user(&admin, Method::GET, "/classes/AiUsage", None)
        .await;
    assert_parse_error(&usage, 400, 119, None);
    let private = server
        .as_user(
            &other,
            Method::POST,
            "/classes/Note",
            Some(json!({"text": "mine", "ACL": {other.id.clone(): {"read": true, "write": true}}})),
        )
        .await;
    let private = if private.status.as_u16() == 201 {
        private.body["objectId"].as_str().unwrap().to_owned()
    } else {
        server
            .create(
                "Note",
                json!({"text": "mine", "ACL": {other.id.clone(): {"read": true, "write": true}}}),
            )
            .await
    };
    let read = server
        .as_user(
            &admin,
            Method::GET,
            &format!("/classes/Note/{private}"),
            None,
        )
        .await;
    assert_parse_error(&read, 404, 101, None);

    // Demoted: refused at once.
    server
        .master(
            Method::PUT,
            &format!("/users/{}", admin.id),
            Some(json!({"role": "participant"})),
        )
        .await;
    let refused = server.as_user(&admin, Method::GET, "/schemas", None).await;
    assert_master_only(&refused, "a demoted admin");
}

/// `GET /serverStatus` (master key): health, the store, the process, and the LiveQuery
/// clients with their subscriptions per class.
#[tokio::test]
async fn server_status_shows_live_clients() {
    let server = TestServer::new().await;
    let ada = server.sign_up("ada").await;
    let refused = server
        .as_user(&ada, Method::GET, "/serverStatus", None)
        .await;
    assert_master_only(&refused, "a user");
    assert_master_only(
        &server.public(Method::GET, "/serverStatus", None).await,
        "anonymous",
    );

    let mut socket = connected(&server, Some(&ada.token)).await;
    subscribe_all(&mut socket, 1, "Message").await;
    subscribe_all(&mut socket, 2, "Message").await;
    subscribe_all(&mut socket, 3, "Persona").await;
    let mut anonymous = connected(&server, None).await;
    subscribe_all(&mut anonymous, 1, "Persona").await;

    let status = server.master(Method::GET, "/serverStatus", None).await;
    assert_eq!(status.status.as_u16(), 200, "{:?}", status.body);
    let body = &status.body;
    assert_eq!(body["status"], "ok");
    assert!(
        ["sqlite", "postgresql"].contains(&body["database"].as_str().unwrap()),
        "{body}"
    );
    assert!(body["store"]["connections"].as_u64().unwrap() >= 1);
    assert!(body["uptimeSeconds"].is_u64());
    let live = &body["liveQuery"];
    assert_eq!(live["connections"], 2, "{live}");
    assert_eq!(live["users"], 1, "{live}");
    assert_eq!(live["subscriptions"], 4, "{live}");
    assert_eq!(
        live["subscriptionsByClass"],
        json!({"Message": 2, "Persona": 2})
    );
    let clients = live["clients"].as_array().unwrap();
    let ada_client = clients
        .iter()
        .find(|client| client["userId"] == ada.id.as_str())
        .unwrap_or_else(|| panic!("{live}"));
    assert_eq!(
        ada_client["subscriptions"],
        json!({"Message": 2, "Persona": 1})
    );
    assert_eq!(ada_client["address"], "127.0.0.1");
    drop(socket);
    for _ in 0..100 {
        let status = server.master(Method::GET, "/serverStatus", None).await;
        if status.body["liveQuery"]["connections"] == 1 {
            assert_eq!(
                status.body["liveQuery"]["subscriptionsByClass"],
                json!({"Persona": 1})
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the closed connection stayed in the status");
}

/// `GET /generations` (master key) lists the replies running, with their session, persona,
/// user and progress; the master key cancels one with `cancelGeneration`, after which it is
/// gone. A reply `streaming` in the database that this instance does not run (another
/// instance's) is listed from the database.
#[tokio::test]
async fn running_generations_are_listed_and_cancelled() {
    let fake = FakeLlm::start().await;
    let server = TestServer::with(parlor_server::config::ServeOptions {
        llm_base_url: Some(fake.base_url.clone()),
        llm_model: Some("fake-model".to_owned()),
        ..Default::default()
    })
    .await;
    let ada = server.sign_up("ada").await;
    let bot = server.create("Persona", json!({"name": "Bot"})).await;
    let session = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [], "personas": [pointer("Persona", &bot)]})),
        )
        .await;
    let session_id = session.body["objectId"].as_str().unwrap().to_owned();
    fake.push(Script::reply(&["one", " two", " three"]).hang_after(2));
    let posted = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": pointer("ChatSession", &session_id), "content": "hi"})),
        )
        .await;
    let reply_id = posted.body["replies"][0].as_str().unwrap().to_owned();

    assert_master_only(
        &server
            .as_user(&ada, Method::GET, "/generations", None)
            .await,
        "the user whose reply it is",
    );
    let mut listed = Value::Null;
    for _ in 0..200 {
        let answer = server.master(Method::GET, "/generations", None).await;
        assert_eq!(answer.status.as_u16(), 200, "{:?}", answer.body);
        listed = answer.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["messageId"] == reply_id.as_str())
            .cloned()
            .unwrap_or(Value::Null);
        if listed["characters"].as_u64().unwrap_or(0) >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(listed["sessionId"], session_id.as_str(), "{listed}");
    assert_eq!(listed["personaId"], bot.as_str());
    assert_eq!(listed["persona"], "Bot");
    assert_eq!(listed["userId"], ada.id.as_str());
    assert_eq!(listed["model"], "fake-model");
    assert_eq!(listed["here"], true);
    assert_eq!(listed["characters"], 7, "{listed}");

    // Another instance's reply, as the database holds it.
    let elsewhere = server
        .create(
            "Message",
            json!({"session": pointer("ChatSession", &session_id), "role": "assistant",
                   "persona": pointer("Persona", &bot), "status": "streaming", "content": "abc"}),
        )
        .await;
    let answer = server.master(Method::GET, "/generations", None).await;
    let other = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["messageId"] == elsewhere.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{:?}", answer.body));
    assert_eq!(other["here"], false);
    assert_eq!(other["sessionId"], session_id.as_str());
    assert_eq!(other["characters"], 3);

    let cancelled = server
        .master(
            Method::POST,
            "/functions/cancelGeneration",
            Some(json!({"messageId": reply_id})),
        )
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{:?}", cancelled.body);
    assert_eq!(
        server.get("Message", &reply_id).await["status"],
        "cancelled"
    );
    let answer = server.master(Method::GET, "/generations", None).await;
    assert!(
        answer.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["messageId"] != reply_id.as_str()),
        "{:?}",
        answer.body
    );
}
