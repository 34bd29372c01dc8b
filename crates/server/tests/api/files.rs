//! `/files` (§13, checklist item 80): uploads by raw body and by the JS SDK's base64
//! envelope, downloads (with ranges), and who may upload or delete.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{APP_ID, MASTER_KEY, TestServer, User, assert_parse_error};

/// A logged-in user uploads raw bytes: `201`, `Location` = url, a unique name ending in the
/// given one; the url serves the same bytes with the content type, and a Range request gets
/// `206` with just those bytes. The JS SDK's base64 envelope stores the same way.
#[tokio::test]
async fn uploads_and_downloads() {
    let server = TestServer::new().await;
    let User { token, .. } = server.sign_up("uploader").await;
    let bytes: Vec<u8> = (0u8..=255).collect();
    let uploaded = server
        .client
        .post(server.url("/files/avatar.png"))
        .header("X-Parse-Application-Id", APP_ID)
        .header("X-Parse-Session-Token", &token)
        .header("Content-Type", "image/png")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let location = uploaded.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = uploaded.json().await.unwrap();
    let name = body["name"].as_str().unwrap();
    assert!(
        name.ends_with("_avatar.png") && name.len() == 32 + 1 + "avatar.png".len(),
        "{name}"
    );
    assert_eq!(body["url"], location.as_str());
    assert_eq!(
        location,
        format!("{}/parse/files/{APP_ID}/{name}", server.base)
    );

    let download = server.client.get(&location).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "image/png");
    assert_eq!(download.bytes().await.unwrap().to_vec(), bytes);
    let range = server
        .client
        .get(&location)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(range.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.headers()["content-range"], "bytes 10-19/256");
    assert_eq!(
        range.bytes().await.unwrap().to_vec(),
        bytes[10..20].to_vec()
    );

    // The JS SDK: text/plain JSON with the credentials in the body.
    let envelope = json!({
        "base64": base64::engine::general_purpose::STANDARD.encode(b"hello file"),
        "_ContentType": "text/plain",
        "_ApplicationId": APP_ID,
        "_SessionToken": token,
        "fileData": {"metadata": {}, "tags": {}},
    });
    let uploaded = server
        .client
        .post(server.url("/files/note.txt"))
        .header("Content-Type", "text/plain")
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let body: Value = uploaded.json().await.unwrap();
    let text = server
        .client
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(text.bytes().await.unwrap().as_ref(), b"hello file");

    // A File field pointing at it round-trips.
    let file = json!({"__type": "File", "name": body["name"], "url": body["url"]});
    let created = server
        .master(
            Method::POST,
            "/classes/Doc",
            Some(json!({"attachment": file})),
        )
        .await;
    let id = created.body["objectId"].as_str().unwrap();
    let read = server
        .master(Method::GET, &format!("/classes/Doc/{id}"), None)
        .await;
    assert_eq!(read.body["attachment"], file);
}

/// Uploads by the public are refused (`130`), bad names are `122`, html-like extensions `130`;
/// deleting needs the master key; a deleted file is gone.
#[tokio::test]
async fn upload_and_delete_rules() {
    let server = TestServer::new().await;
    let User { token, .. } = server.sign_up("uploader").await;
    let post = |name: &str, token: Option<&str>| {
        let mut request = server
            .client
            .post(server.url(&format!("/files/{name}")))
            .header("X-Parse-Application-Id", APP_ID)
            .body("data");
        if let Some(token) = token {
            request = request.header("X-Parse-Session-Token", token.to_owned());
        }
        request.send()
    };
    let public = post("a.txt", None).await.unwrap();
    assert_eq!(public.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        public.json::<Value>().await.unwrap(),
        json!({"code": 130, "error": "File upload by public is disabled."})
    );
    let bad_name = post("%24bad", Some(&token)).await.unwrap();
    assert_eq!(bad_name.json::<Value>().await.unwrap()["code"], 122);
    let page = post("evil.html", Some(&token)).await.unwrap();
    assert_eq!(page.json::<Value>().await.unwrap()["code"], 130);

    let stored: Value = post("keep.txt", Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = stored["name"].as_str().unwrap();
    let by_user = server
        .send(
            Method::DELETE,
            &format!("/files/{name}"),
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", &token),
            ],
        )
        .await;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN);
    let by_master = server
        .send(
            Method::DELETE,
            &format!("/files/{name}"),
            None,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-master-key", MASTER_KEY),
            ],
        )
        .await;
    assert_eq!(by_master.status, StatusCode::OK, "{:?}", by_master.body);
    let gone = server
        .client
        .get(stored["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let missing = server
        .send(Method::GET, &format!("/files/wrong-app/{name}"), None, &[])
        .await;
    assert_parse_error(&missing, 404, 107, None);
}
