//! The user directory (issue 10): logged-in users list and search other users by username
//! and displayName and see only their public profile; nothing else about them can be read,
//! tested or sorted by, and listing is paged and rate-limited.

use parlor_server::config::ServeOptions;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, User, assert_parse_error, pointer, query_string};

async fn sign_up(server: &TestServer, name: &str, display_name: &str) -> User {
    server
        .sign_up_with(json!({
            "username": name,
            "password": "pw",
            "email": format!("{name}@example.test"),
            "displayName": display_name,
        }))
        .await
}

async fn users_as(
    server: &TestServer,
    user: &User,
    params: &[(&str, Value)],
) -> crate::common::Reply {
    let path = format!("/users{}", query_string(params));
    server.as_user(user, Method::GET, &path, None).await
}

fn usernames(reply: &crate::common::Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", reply.body))
        .iter()
        .map(|user| user["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A name search finds other users, each as `{objectId, username, displayName}` (and
/// `avatar` when set): no email, role, dates, ACL or authData; the caller's own row stays
/// whole.
#[tokio::test]
async fn the_directory_shows_public_profiles_only() {
    let server = TestServer::new().await;
    let ada = sign_up(&server, "ada", "Ada Lovelace").await;
    let alan = sign_up(&server, "alan", "Alan Turing").await;
    sign_up(&server, "grace", "Grace Hopper").await;

    let found = users_as(
        &server,
        &ada,
        &[
            (
                "where",
                json!({"username": {"$regex": "^a", "$options": "i"}}),
            ),
            ("order", json!("username")),
        ],
    )
    .await;
    assert_eq!(usernames(&found), ["ada", "alan"]);
    assert_eq!(
        found.body["results"][1],
        json!({"objectId": alan.id.clone(), "username": "alan", "displayName": "Alan Turing"})
    );
    assert_eq!(found.body["results"][0]["email"], "ada@example.test");
    assert!(!found.text.contains("alan@example.test"), "{}", found.text);

    let by_display_name = users_as(
        &server,
        &ada,
        &[(
            "where",
            json!({"displayName": {"$regex": "hopper", "$options": "i"}}),
        )],
    )
    .await;
    assert_eq!(usernames(&by_display_name), ["grace"]);
    let get = server
        .as_user(&ada, Method::GET, &format!("/users/{}", alan.id), None)
        .await;
    assert_eq!(
        get.body,
        json!({"objectId": alan.id.clone(), "username": "alan", "displayName": "Alan Turing"})
    );

    // Everything but the searchable fields stays out of reach: a query that tests or sorts
    // by another field sees only what the ACL allows (the caller itself) or is refused.
    let probe = users_as(
        &server,
        &ada,
        &[("where", json!({"email": "alan@example.test"}))],
    )
    .await;
    assert_parse_error(&probe, 400, 119, None);
    let by_role = users_as(&server, &ada, &[("where", json!({"role": "participant"}))]).await;
    assert_eq!(usernames(&by_role), ["ada"]);
    let sorted = users_as(&server, &ada, &[("order", json!("-createdAt"))]).await;
    assert_eq!(usernames(&sorted), ["ada"]);
    let mixed = users_as(
        &server,
        &ada,
        &[(
            "where",
            json!({"$or": [{"username": "alan"}, {"role": "participant"}]}),
        )],
    )
    .await;
    assert_eq!(usernames(&mixed), ["ada"]);
    let keyed = users_as(
        &server,
        &ada,
        &[
            ("where", json!({"username": "alan"})),
            ("keys", json!("email,role")),
        ],
    )
    .await;
    assert_eq!(
        keyed.body["results"],
        json!([{"objectId": alan.id.clone()}])
    );

    // The public sees nobody.
    let public = server.public(Method::GET, "/users", None).await;
    assert_eq!(public.body["results"], json!([]));
    let public = server
        .public(Method::GET, &format!("/users/{}", alan.id), None)
        .await;
    assert_parse_error(&public, 404, 101, None);
    // Nor can a user write another through the directory.
    let edit = server
        .as_user(
            &ada,
            Method::PUT,
            &format!("/users/{}", alan.id),
            Some(json!({"displayName": "hacked"})),
        )
        .await;
    assert!(!edit.status.is_success(), "{:?}", edit.body);
}

/// Members see who wrote a message (`include=sender` gives the sender's public profile).
#[tokio::test]
async fn members_see_senders_public_profiles() {
    let server = TestServer::new().await;
    let ada = sign_up(&server, "ada", "Ada").await;
    let bob = sign_up(&server, "bob", "Bob").await;
    let session = server
        .as_user(
            &ada,
            Method::POST,
            "/classes/ChatSession",
            Some(json!({"participants": [pointer("_User", &bob.id)]})),
        )
        .await;
    let session = pointer("ChatSession", session.body["objectId"].as_str().unwrap());
    let posted = server
        .as_user(
            &bob,
            Method::POST,
            "/classes/Message",
            Some(json!({"session": session, "content": "hi"})),
        )
        .await;
    assert_eq!(posted.status.as_u16(), 201, "{:?}", posted.body);
    let path = format!(
        "/classes/Message{}",
        query_string(&[("include", json!("sender"))])
    );
    let history = server.as_user(&ada, Method::GET, &path, None).await;
    assert_eq!(
        history.body["results"][0]["sender"],
        json!({"__type": "Object", "className": "_User", "objectId": bob.id.clone(), "username": "bob", "displayName": "Bob"})
    );
}

/// Listing pages hold at most 100 profiles; each user may list a limited number of pages a
/// minute (`429`, code `100`, past it), while gets of single profiles are not counted.
#[tokio::test]
async fn listing_is_paged_and_rate_limited() {
    let server = TestServer::with(ServeOptions {
        user_directory_rate_limit: Some(3),
        ..ServeOptions::default()
    })
    .await;
    let ada = sign_up(&server, "ada", "Ada").await;
    // Each user costs a password hash: three batches, so that no request nears the test
    // client's time limit on a busy machine.
    for batch in (0..105).collect::<Vec<_>>().chunks(35) {
        let requests: Vec<Value> = batch
            .iter()
            .map(|n| {
                json!({"method": "POST", "path": "/parse/classes/_User",
                       "body": {"username": format!("user{n:03}"), "password": "pw"}})
            })
            .collect();
        let created = server
            .master(Method::POST, "/batch", Some(json!({"requests": requests})))
            .await;
        assert_eq!(created.status.as_u16(), 200, "{:?}", created.body);
    }

    let page = users_as(
        &server,
        &ada,
        &[("limit", json!(1000)), ("count", json!(1))],
    )
    .await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 100);
    assert_eq!(page.body["count"], 106);
    let next = users_as(
        &server,
        &ada,
        &[("limit", json!(1000)), ("skip", json!(100))],
    )
    .await;
    assert_eq!(next.body["results"].as_array().unwrap().len(), 6);
    users_as(&server, &ada, &[]).await;
    let refused = users_as(&server, &ada, &[]).await;
    assert_parse_error(&refused, 429, 100, None);
    let own = server.as_user(&ada, Method::GET, "/users/me", None).await;
    assert_eq!(own.status.as_u16(), 200);
    let other = page.body["results"][0]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile = server
        .as_user(&ada, Method::GET, &format!("/users/{other}"), None)
        .await;
    assert_eq!(profile.status.as_u16(), 200, "{:?}", profile.body);
}

/// `--user-directory false` keeps users wholly private, as before.
#[tokio::test]
async fn the_directory_can_be_turned_off() {
    let server = TestServer::with(ServeOptions {
        user_directory: Some(false),
        ..ServeOptions::default()
    })
    .await;
    let ada = sign_up(&server, "ada", "Ada").await;
    let bob = sign_up(&server, "bob", "Bob").await;
    assert_eq!(usernames(&users_as(&server, &ada, &[]).await), ["ada"]);
    let get = server
        .as_user(&ada, Method::GET, &format!("/users/{}", bob.id), None)
        .await;
    assert_parse_error(&get, 404, 101, None);
}
