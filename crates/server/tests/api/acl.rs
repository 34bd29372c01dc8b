//! Object ACLs as the public and the master key see them (§7; checklist items 25, 51, 52,
//! 54, 55). There are no users yet, so "someone else" is a made-up user id or a role.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

/// Item 51: an object readable only by another user is invisible to the public: GET →
/// `404 101 "Object not found."`, a find leaves it out, `count` does not count it (item 25),
/// a query cannot reveal it; the master key sees it, ACL included.
#[tokio::test]
async fn objects_readable_by_others_are_invisible_to_the_public() {
    let server = TestServer::new().await;
    let open = server
        .create("Item", json!({"title": "open", "n": 1}))
        .await;
    let hidden = server
        .create(
            "Item",
            json!({"title": "hidden", "n": 2, "ACL": {"someUser": {"read": true, "write": true}}}),
        )
        .await;
    let role = server
        .create(
            "Item",
            json!({"title": "mods", "n": 3, "ACL": {"role:Mods": {"read": true}}}),
        )
        .await;

    for id in [&hidden, &role] {
        let get = server
            .public(Method::GET, &format!("/classes/Item/{id}"), None)
            .await;
        assert_eq!(get.status, StatusCode::NOT_FOUND);
        assert_eq!(get.body, json!({"code": 101, "error": "Object not found."}));
    }
    let find = server.find_as(false, "Item", &[]).await;
    assert_eq!(
        ids(find.body["results"].as_array().unwrap()),
        vec![open.clone()]
    );
    let count = server
        .find_as(false, "Item", &[("count", json!(1)), ("limit", json!(0))])
        .await;
    assert_eq!(count.body, json!({"results": [], "count": 1}));
    let by_id = server
        .find_as(false, "Item", &[("where", json!({"objectId": hidden}))])
        .await;
    assert_eq!(by_id.body, json!({"results": []}));
    let by_value = server
        .find_as(
            false,
            "Item",
            &[("where", json!({"n": {"$gte": 2}})), ("count", json!(1))],
        )
        .await;
    assert_eq!(by_value.body, json!({"results": [], "count": 0}));

    let master = server.get("Item", &hidden).await;
    assert_eq!(
        master["ACL"],
        json!({"someUser": {"read": true, "write": true}})
    );
    assert_eq!(
        server.get("Item", &role).await["ACL"],
        json!({"role:Mods": {"read": true}})
    );
    assert_eq!(server.find("Item", &[]).await.len(), 3);
    assert_eq!(server.count("Item").await, 3);
    // An object without ACL has no `ACL` key.
    assert!(server.get("Item", &open).await.get("ACL").is_none());
}

/// Item 52: an object publicly readable but not writable can be read by the public, but
/// its PUT and DELETE → `404 101`, and it does not change.
#[tokio::test]
async fn readable_but_not_writable_objects_refuse_writes() {
    let server = TestServer::new().await;
    let acl = json!({"*": {"read": true}, "someUser": {"read": true, "write": true}});
    let id = server
        .create("Item", json!({"title": "keep", "ACL": acl}))
        .await;
    let path = format!("/classes/Item/{id}");

    let get = server.public(Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body["title"], "keep");
    assert_eq!(get.body["ACL"], acl);

    let put = server
        .public(Method::PUT, &path, Some(json!({"title": "changed"})))
        .await;
    assert_parse_error(&put, 404, 101, Some("Object not found."));
    let increment = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"n": {"__op": "Increment", "amount": 1}})),
        )
        .await;
    assert_parse_error(&increment, 404, 101, None);
    let take_acl = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"ACL": {"*": {"read": true, "write": true}}})),
        )
        .await;
    assert_parse_error(&take_acl, 404, 101, None);
    let delete = server.public(Method::DELETE, &path, None).await;
    assert_parse_error(&delete, 404, 101, None);

    let object = server.get("Item", &id).await;
    assert_eq!(object["title"], "keep");
    assert!(object.get("n").is_none());
    assert_eq!(object["ACL"], acl);
    assert_eq!(object["updatedAt"], object["createdAt"]);
}

/// Item 54: an empty ACL `{}` is master-only: the public can neither read nor write it.
/// Item 55: the master key reads, updates and deletes it whatever its ACL.
#[tokio::test]
async fn empty_acl_is_master_only_and_master_does_everything() {
    let server = TestServer::new().await;
    let id = server
        .create("Item", json!({"title": "locked", "ACL": {}}))
        .await;
    let path = format!("/classes/Item/{id}");

    assert_parse_error(
        &server.public(Method::GET, &path, None).await,
        404,
        101,
        None,
    );
    assert_parse_error(
        &server
            .public(Method::PUT, &path, Some(json!({"title": "x"})))
            .await,
        404,
        101,
        None,
    );
    assert_parse_error(
        &server.public(Method::DELETE, &path, None).await,
        404,
        101,
        None,
    );
    assert_eq!(
        server.find_as(false, "Item", &[]).await.body,
        json!({"results": []})
    );

    let read = server.get("Item", &id).await;
    assert_eq!(read["ACL"], json!({}));
    let update = server
        .master(
            Method::PUT,
            &path,
            Some(json!({"title": "changed", "n": {"__op": "Increment", "amount": 1}})),
        )
        .await;
    assert_eq!(update.status, StatusCode::OK, "{:?}", update.body);
    assert_eq!(update.body["n"], json!(1));
    assert_eq!(server.get("Item", &id).await["title"], "changed");

    // The master key can open it up; then the public can read it.
    let open = server
        .master(
            Method::PUT,
            &path,
            Some(json!({"ACL": {"*": {"read": true}}})),
        )
        .await;
    assert_eq!(open.status, StatusCode::OK);
    let get = server.public(Method::GET, &path, None).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body["ACL"], json!({"*": {"read": true}}));

    let delete = server.master(Method::DELETE, &path, None).await;
    assert_eq!(delete.status, StatusCode::OK);
    assert_eq!(delete.body, json!({}));
    assert_eq!(server.count("Item").await, 0);
}

/// Objects without an ACL are public read and write; an ACL with public write lets the
/// public write and replace the ACL; removing the ACL (`null`) makes it public again.
#[tokio::test]
async fn public_acls_allow_public_writes() {
    let server = TestServer::new().await;
    let no_acl = server.create("Item", json!({"title": "a"})).await;
    let put = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{no_acl}"),
            Some(json!({"title": "b"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);

    let writable = server
        .create(
            "Item",
            json!({"title": "w", "ACL": {"*": {"read": true, "write": true}}}),
        )
        .await;
    let path = format!("/classes/Item/{writable}");
    let put = server
        .public(
            Method::PUT,
            &path,
            Some(json!({"title": "w2", "ACL": {"*": {"read": true}}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let object = server.public(Method::GET, &path, None).await;
    assert_eq!(object.body["title"], "w2");
    assert_eq!(object.body["ACL"], json!({"*": {"read": true}}));
    // Now read-only for the public.
    assert_parse_error(
        &server
            .public(Method::PUT, &path, Some(json!({"title": "w3"})))
            .await,
        404,
        101,
        None,
    );

    // Removing the ACL with the master key makes the object public again.
    let cleared = server
        .master(Method::PUT, &path, Some(json!({"ACL": null})))
        .await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert!(server.get("Item", &writable).await.get("ACL").is_none());
    let put = server
        .public(Method::PUT, &path, Some(json!({"title": "w4"})))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);

    // A write-only ACL (no read) hides the object but lets it be written blind.
    let blind = server
        .create(
            "Item",
            json!({"title": "blind", "ACL": {"*": {"write": true}}}),
        )
        .await;
    assert_parse_error(
        &server
            .public(Method::GET, &format!("/classes/Item/{blind}"), None)
            .await,
        404,
        101,
        None,
    );
    let write = server
        .public(
            Method::PUT,
            &format!("/classes/Item/{blind}"),
            Some(json!({"title": "seen"})),
        )
        .await;
    assert_eq!(write.status, StatusCode::OK, "{:?}", write.body);
    assert_eq!(server.get("Item", &blind).await["title"], "seen");
}

/// A malformed ACL (not an object, entries that are not objects, non-boolean values) →
/// `123` and nothing is stored (§7.1, §16).
#[tokio::test]
async fn malformed_acls_are_123() {
    let server = TestServer::new().await;
    let id = server.create("Item", json!({"title": "a"})).await;
    for acl in [
        json!("nope"),
        json!(["*"]),
        json!({"*": true}),
        json!({"*": {"read": "yes"}}),
        json!(5),
    ] {
        let reply = server
            .master(
                Method::POST,
                "/classes/Item",
                Some(json!({"title": "b", "ACL": acl})),
            )
            .await;
        assert_parse_error(&reply, 400, 123, None);
        let reply = server
            .public(
                Method::PUT,
                &format!("/classes/Item/{id}"),
                Some(json!({"ACL": acl})),
            )
            .await;
        assert_parse_error(&reply, 400, 123, None);
    }
    assert_eq!(server.count("Item").await, 1);
    assert!(server.get("Item", &id).await.get("ACL").is_none());
}

/// `include` of a pointer whose target the public cannot read drops the key (item 29),
/// while master gets it expanded.
#[tokio::test]
async fn includes_respect_the_targets_acl() {
    let server = TestServer::new().await;
    let secret = server
        .create(
            "Author",
            json!({"name": "secret", "ACL": {"someUser": {"read": true}}}),
        )
        .await;
    let public = server.create("Author", json!({"name": "public"})).await;
    let post = server
        .create(
            "Post",
            json!({"title": "p", "author": pointer("Author", &secret), "editors": [pointer("Author", &secret), pointer("Author", &public)]}),
        )
        .await;

    let reply = server
        .public(
            Method::GET,
            &format!("/classes/Post/{post}?include=author,editors"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.body.get("author").is_none(), "{}", reply.body);
    let editors = reply.body["editors"].as_array().unwrap();
    assert_eq!(editors.len(), 1);
    assert_eq!(editors[0]["name"], "public");
    assert_eq!(editors[0]["__type"], "Object");

    let master = server
        .master(
            Method::GET,
            &format!("/classes/Post/{post}?include=author,editors"),
            None,
        )
        .await;
    assert_eq!(master.body["author"]["name"], "secret");
    assert_eq!(master.body["author"]["__type"], "Object");
    assert_eq!(master.body["author"]["className"], "Author");
    assert_eq!(master.body["editors"].as_array().unwrap().len(), 2);

    // Without include, the pointer stays a pointer even for the public.
    let plain = server
        .public(Method::GET, &format!("/classes/Post/{post}"), None)
        .await;
    assert_eq!(plain.body["author"], pointer("Author", &secret));
}
