//! Roles (§6): `role:<name>` entries of ACLs and CLPs follow membership and the role
//! hierarchy, a change to `_Role` takes effect on the next request, cycles terminate, and a
//! duplicate role name is `137`. Users and sessions are written with the master key (as in
//! `sessions.rs`); roles through `/classes/_Role`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

/// `{"__op": op, "objects": [pointers]}` for a relation field.
fn relation_op(op: &str, class_name: &str, ids: &[&str]) -> Value {
    let objects: Vec<Value> = ids.iter().map(|id| pointer(class_name, id)).collect();
    json!({"__op": op, "objects": objects})
}

/// Creates a role readable by everyone with these members; returns its id.
async fn create_role(server: &TestServer, name: &str, users: &[&str], roles: &[&str]) -> String {
    let mut body = json!({"name": name, "ACL": {"*": {"read": true}}});
    if !users.is_empty() {
        body["users"] = relation_op("AddRelation", "_User", users);
    }
    if !roles.is_empty() {
        body["roles"] = relation_op("AddRelation", "_Role", roles);
    }
    server.create("_Role", body).await
}

async fn update_role(server: &TestServer, role_id: &str, body: Value) {
    let reply = server
        .master(
            Method::PUT,
            &format!("/classes/_Role/{role_id}"),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

/// Whether the user of `token` can get `Note/<id>`: 200, or 404 `101` (never anything else).
async fn can_read(server: &TestServer, token: &str, note_id: &str) -> bool {
    let reply = server
        .as_user(
            token,
            Method::GET,
            &format!("/classes/Note/{note_id}"),
            None,
        )
        .await;
    if reply.status == StatusCode::OK {
        return true;
    }
    assert_parse_error(&reply, 404, 101, Some("Object not found."));
    false
}

/// An object readable by `role:Mods` is readable by a member of Mods, by a member of a role
/// inside `Mods.roles` (Admins ∈ Mods.roles ⇒ admins are mods), and not by anyone else —
/// nor does the hierarchy run the other way (mods are not admins). Finds and counts agree.
#[tokio::test]
async fn role_acls_follow_membership_and_hierarchy() {
    let server = TestServer::new().await;
    let User {
        id: mia,
        token: mia_token,
    } = server.user_with_session("mia", 24).await;
    let User {
        id: ada,
        token: ada_token,
    } = server.user_with_session("ada", 24).await;
    let User {
        token: bob_token, ..
    } = server.user_with_session("bob", 24).await;
    let admins = create_role(&server, "Admins", &[&ada], &[]).await;
    create_role(&server, "Mods", &[&mia], &[&admins]).await;
    let for_mods = server
        .create(
            "Note",
            json!({"text": "mods", "ACL": {"role:Mods": {"read": true}}}),
        )
        .await;
    let for_admins = server
        .create(
            "Note",
            json!({"text": "admins", "ACL": {"role:Admins": {"read": true}}}),
        )
        .await;
    server.create("Note", json!({"text": "public"})).await;

    assert!(can_read(&server, &mia_token, &for_mods).await);
    assert!(can_read(&server, &ada_token, &for_mods).await);
    assert!(!can_read(&server, &bob_token, &for_mods).await);
    assert!(can_read(&server, &ada_token, &for_admins).await);
    assert!(!can_read(&server, &mia_token, &for_admins).await);

    for (token, expected) in [(&mia_token, 2), (&ada_token, 3), (&bob_token, 1)] {
        let reply = server
            .as_user(token, Method::GET, "/classes/Note?count=1", None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["count"], expected, "{:?}", reply.body);
        assert_eq!(
            reply.body["results"].as_array().unwrap().len(),
            expected as usize
        );
    }
    // No session, no roles.
    let reply = server
        .public(Method::GET, &format!("/classes/Note/{for_mods}"), None)
        .await;
    assert_parse_error(&reply, 404, 101, Some("Object not found."));
}

/// A CLP that lets only `role:Mods` find: members (direct or through the hierarchy) find,
/// others are refused with `119`.
#[tokio::test]
async fn role_clps_follow_membership() {
    let server = TestServer::new().await;
    let User {
        id: mia,
        token: mia_token,
    } = server.user_with_session("mia", 24).await;
    let User {
        id: ada,
        token: ada_token,
    } = server.user_with_session("ada", 24).await;
    let User {
        token: bob_token, ..
    } = server.user_with_session("bob", 24).await;
    let admins = create_role(&server, "Admins", &[&ada], &[]).await;
    create_role(&server, "Mods", &[&mia], &[&admins]).await;
    server.create("Report", json!({"title": "r"})).await;
    server
        .set_clp(
            "Report",
            json!({"find": {"role:Mods": true}, "get": {}, "count": {}, "create": {},
                   "update": {}, "delete": {}, "addField": {}}),
        )
        .await;
    for token in [&mia_token, &ada_token] {
        let reply = server
            .as_user(token, Method::GET, "/classes/Report", None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["results"].as_array().unwrap().len(), 1);
    }
    let reply = server
        .as_user(&bob_token, Method::GET, "/classes/Report", None)
        .await;
    assert_parse_error(&reply, 400, 119, None);
}

/// Membership changes are seen by the very next request (no waiting for the cache to
/// expire): removing the user from `users`, adding it back, removing the role that linked it
/// through the hierarchy, deleting the role.
#[tokio::test]
async fn role_changes_take_effect_at_once() {
    let server = TestServer::new().await;
    let User {
        id: mia,
        token: mia_token,
    } = server.user_with_session("mia", 24).await;
    let User {
        id: ada,
        token: ada_token,
    } = server.user_with_session("ada", 24).await;
    let admins = create_role(&server, "Admins", &[&ada], &[]).await;
    let mods = create_role(&server, "Mods", &[&mia], &[&admins]).await;
    let note = server
        .create("Note", json!({"ACL": {"role:Mods": {"read": true}}}))
        .await;
    assert!(can_read(&server, &mia_token, &note).await);
    assert!(can_read(&server, &ada_token, &note).await);

    update_role(
        &server,
        &mods,
        json!({"users": relation_op("RemoveRelation", "_User", &[&mia])}),
    )
    .await;
    assert!(!can_read(&server, &mia_token, &note).await);
    assert!(can_read(&server, &ada_token, &note).await);

    update_role(
        &server,
        &mods,
        json!({"users": relation_op("AddRelation", "_User", &[&mia])}),
    )
    .await;
    assert!(can_read(&server, &mia_token, &note).await);

    update_role(
        &server,
        &mods,
        json!({"roles": relation_op("RemoveRelation", "_Role", &[&admins])}),
    )
    .await;
    assert!(!can_read(&server, &ada_token, &note).await);

    // Through /batch too, and a delete.
    let reply = server
        .master(
            Method::POST,
            "/batch",
            Some(json!({"requests": [
                {"method": "DELETE", "path": format!("/parse/classes/_Role/{mods}")}
            ]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(!can_read(&server, &mia_token, &note).await);
}

/// Roles that contain each other (A ∈ B.roles, B ∈ A.roles, C ∈ C.roles) resolve to a
/// finite set: a member of A holds A and B, and the request answers.
#[tokio::test]
async fn role_cycles_terminate() {
    let server = TestServer::new().await;
    let User {
        id: mia,
        token: mia_token,
    } = server.user_with_session("mia", 24).await;
    let User {
        token: bob_token, ..
    } = server.user_with_session("bob", 24).await;
    let a = create_role(&server, "A", &[&mia], &[]).await;
    let b = create_role(&server, "B", &[], &[&a]).await;
    update_role(
        &server,
        &a,
        json!({"roles": relation_op("AddRelation", "_Role", &[&b])}),
    )
    .await;
    let c = create_role(&server, "C", &[], &[]).await;
    update_role(
        &server,
        &c,
        json!({"roles": relation_op("AddRelation", "_Role", &[&c, &a])}),
    )
    .await;
    let for_b = server
        .create("Note", json!({"ACL": {"role:B": {"read": true}}}))
        .await;
    let for_c = server
        .create("Note", json!({"ACL": {"role:C": {"read": true}}}))
        .await;
    let for_d = server
        .create("Note", json!({"ACL": {"role:D": {"read": true}}}))
        .await;
    assert!(can_read(&server, &mia_token, &for_b).await);
    assert!(can_read(&server, &mia_token, &for_c).await);
    assert!(!can_read(&server, &mia_token, &for_d).await);
    assert!(!can_read(&server, &bob_token, &for_b).await);
}

/// Role names are unique (`137`), case-sensitively.
#[tokio::test]
async fn duplicate_role_names_are_137() {
    let server = TestServer::new().await;
    create_role(&server, "Mods", &[], &[]).await;
    let reply = server
        .master(
            Method::POST,
            "/classes/_Role",
            Some(json!({"name": "Mods", "ACL": {}})),
        )
        .await;
    assert_parse_error(&reply, 400, 137, None);
    create_role(&server, "mods", &[], &[]).await;
}
