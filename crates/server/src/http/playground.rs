//! `{graphql-path}/playground`: GraphiQL, served by the binary with no CDN (works offline).
//!
//! The assets are the npm builds pinned by `assets/playground/package-lock.json`, committed
//! as they are; `scripts/check-playground-assets` checks that they still match the lockfile.
//! The page sends the application id; a session token or the master key is typed into
//! GraphiQL's headers panel, never put in the page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::AppState;

/// The vendored files, by name, with their content types.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/playground/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/playground/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/playground/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/playground/react-dom.production.min.js"),
    ),
];

/// Text safe inside a `<script>` string: JSON, with `<` escaped.
fn script_string(text: &str) -> String {
    serde_json::Value::from(text)
        .to_string()
        .replace('<', "\\u003c")
}

/// The page: GraphiQL pointed at the GraphQL path with the application id header.
pub fn page(state: &AppState) -> Response {
    let path = state.config.graphql_path.clone().unwrap_or_default();
    let headers = serde_json::json!({"X-Parse-Application-Id": state.config.app_id}).to_string();
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Parlor GraphQL playground</title>
<link rel="stylesheet" href="{path}/playground/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading…</div>
<script src="{path}/playground/react.production.min.js"></script>
<script src="{path}/playground/react-dom.production.min.js"></script>
<script src="{path}/playground/graphiql.min.js"></script>
<script>
  const url = {url};
  const fetcher = GraphiQL.createFetcher({{ url }});
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {{
      fetcher,
      defaultHeaders: {headers},
      shouldPersistHeaders: true,
      defaultQuery: '{{ health }}\n',
    }}),
  );
</script>
</body>
</html>
"#,
        url = script_string(&path),
        headers = script_string(&headers),
    );
    let mut response = html.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// One vendored file.
pub fn asset(name: &str) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(file, _, _)| *file == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}
