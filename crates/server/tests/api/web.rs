//! The web app's files as the binary serves them: the page at `/` (never cached, a CSP that
//! allows no inline script and no other origin, the client's settings in a `<meta>` tag),
//! its assets below `/assets/<version>/` (cached for good, gzip when accepted), and the API
//! unchanged beside it, with the default mount path and with the API at the root.

use parlor_server::config::ServeOptions;
use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::common::{APP_ID, TestServer};

/// The asset URLs the page names (`src`/`href` below `/assets/`).
fn asset_urls(page: &str) -> Vec<String> {
    page.split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

/// The page at `/`, as text.
async fn page(server: &TestServer) -> String {
    let response = server.client.get(&server.base).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets() {
    let server = TestServer::new().await;
    let page = server.client.get(&server.base).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            r#"content="{{&quot;appId&quot;:&quot;{APP_ID}&quot;,&quot;mountPath&quot;:&quot;/parse&quot;}}""#
        )),
        "{html}"
    );
    assert!(!html.contains("__ASSETS__") && !html.contains("__SETTINGS__"));
    // Scripts are files, never inline.
    for (index, _) in html.match_indices("<script") {
        let tag = &html[index..html[index..].find('>').unwrap() + index];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    let urls = asset_urls(&html);
    assert!(urls.iter().any(|url| url.ends_with("/main.js")), "{urls:?}");
    assert!(urls.iter().any(|url| url.ends_with("/app.css")), "{urls:?}");

    let main = urls.iter().find(|url| url.ends_with("/main.js")).unwrap();
    let gzip = server
        .client
        .get(format!("{}{main}", server.base))
        .header(ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzip.status(), StatusCode::OK);
    assert_eq!(
        gzip.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(gzip.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(gzip.headers()["vary"], "Accept-Encoding");
    let compressed = gzip.bytes().await.unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b]);
    let plain = server
        .client
        .get(format!("{}{main}", server.base))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(
        plain.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let source = plain.text().await.unwrap();
    assert!(source.contains("import "), "{source}");
    assert!(compressed.len() < source.len());

    // Another version's URL, an unknown file, and the page template itself: not found.
    let version = main.split('/').nth(2).unwrap();
    for path in [
        main.replace(version, "000000000000"),
        format!("/assets/{version}/no-such-file.js"),
        format!("/assets/{version}/index.html"),
    ] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // HEAD answers the headers without the body.
    let head = server
        .client
        .head(format!("{}{main}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
    // The API and /health are as before.
    let health = server
        .client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
    let api = server
        .send(
            Method::GET,
            "/classes/Nothing",
            None,
            &[("X-Parse-Application-Id", APP_ID)],
        )
        .await;
    assert_eq!(api.body["results"], serde_json::json!([]), "{:?}", api.body);
    // Writes to `/` are not the app's.
    let post = server.client.post(&server.base).send().await.unwrap();
    assert_ne!(post.status(), StatusCode::OK);
}

/// With the API mounted at the root, the page and the assets are still served, and every
/// API route still answers.
#[tokio::test]
async fn the_app_beside_an_api_at_the_root() {
    parlor_server::ai::provider::install_crypto_provider();
    let data_dir = tempfile::tempdir().unwrap();
    let config = ServeOptions {
        database: Some(format!("sqlite://{}/parlor.db", data_dir.path().display())),
        app_id: Some(APP_ID.to_owned()),
        master_key: Some("master".to_owned()),
        mount_path: Some("/".to_owned()),
        port: Some(0),
        ..ServeOptions::default()
    }
    .resolve()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(parlor_server::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let mut html = String::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(&base).send().await
            && response.status() == StatusCode::OK
        {
            html = response.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        html.contains("&quot;mountPath&quot;:&quot;/&quot;"),
        "{html}"
    );
    let urls = asset_urls(&html);
    let css = urls.iter().find(|url| url.ends_with("/app.css")).unwrap();
    let response = client.get(format!("{base}{css}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    let found = client
        .get(format!("{base}/classes/Nothing"))
        .header("X-Parse-Application-Id", APP_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(found.text().await.unwrap(), r#"{"results":[]}"#);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// When client keys are required, the page hands the browser the JavaScript key (public, as
/// in any Parse web app), which is enough to call the API; without one, no key is shown.
#[tokio::test]
async fn the_page_carries_the_javascript_key_when_one_is_set() {
    let server = TestServer::with(ServeOptions {
        javascript_key: Some("js-key".to_owned()),
        rest_api_key: Some("secret-rest-key".to_owned()),
        ..ServeOptions::default()
    })
    .await;
    let html = page(&server).await;
    assert!(
        html.contains("&quot;javascriptKey&quot;:&quot;js-key&quot;"),
        "{html}"
    );
    assert!(!html.contains("secret-rest-key"), "{html}");
    let with_key = server
        .send(
            Method::GET,
            "/classes/Nothing",
            None,
            &[
                ("X-Parse-Application-Id", APP_ID),
                ("X-Parse-Javascript-Key", "js-key"),
            ],
        )
        .await;
    assert_eq!(with_key.status, StatusCode::OK, "{:?}", with_key.body);
    let plain = TestServer::new().await;
    let html = page(&plain).await;
    assert!(!html.contains("javascriptKey"), "{html}");
}
