//! The chat web app at `/`: its files are embedded in the binary by `build.rs` (from
//! `web/app/`), gzip-compressed at compile time, and served below `/assets/<version>/`
//! where `<version>` is a hash of them all, so browsers keep them for a year without ever
//! mixing two versions. The page itself (`/`) is never cached and names the current
//! version; it carries the app id, mount path (and JavaScript key, when one is set) in a
//! `<meta>` tag, since the Content-Security-Policy sent with it forbids inline scripts.
//!
//! The app talks to the server only through the public API, with the user's own session
//! token: nothing here reads data or applies a rule.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::HttpConfig;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// One embedded file.
pub struct Asset {
    /// Relative to `web/app/`, with `/` separators.
    pub path: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    /// The same bytes gzip-compressed, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

/// Scripts, styles, images and connections from this origin only; nothing inline, no
/// frames, no plugins. `data:`/`blob:` images are the avatars a user picks before upload.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The web app's answer to `method path`, or `None` when the path is not the app's (the
/// API, `/health`, or a path below the mount path, which always belongs to the API).
pub fn answer(
    config: &HttpConfig,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let mount = config.mount_path.as_str();
    if !mount.is_empty()
        && path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        return None;
    }
    let response = if path == "/" || path == "/index.html" {
        index(config)
    } else if let Some(rest) = path.strip_prefix("/assets/") {
        let (version, file) = rest.split_once('/')?;
        match ASSETS.iter().find(|asset| asset.path == file) {
            Some(asset) if version == ASSET_VERSION && asset.path != "index.html" => {
                asset_response(asset, accepts_gzip(headers))
            }
            // Another version's file (a page loaded before an upgrade): not this one's
            // bytes under that name, which the browser would keep for a year.
            _ => not_found(),
        }
    } else if path == "/favicon.ico" {
        let icon = ASSETS.iter().find(|asset| asset.path == "icon.svg")?;
        asset_response(icon, accepts_gzip(headers))
    } else {
        return None;
    };
    Some(if method == Method::HEAD {
        let (parts, _) = response.into_parts();
        Response::from_parts(parts, Body::empty())
    } else {
        response
    })
}

/// The page: `index.html` with the version's asset URLs and the client's settings filled in.
fn index(config: &HttpConfig) -> Response {
    let Some(template) = ASSETS.iter().find(|asset| asset.path == "index.html") else {
        return not_found();
    };
    let assets = format!("/assets/{ASSET_VERSION}");
    // Fetched at once rather than discovered import by import.
    let preload: String = ASSETS
        .iter()
        .filter(|asset| asset.path.ends_with(".js") && asset.path != "main.js")
        .map(|asset| {
            format!(
                "<link rel=\"modulepreload\" href=\"{assets}/{}\">\n",
                asset.path
            )
        })
        .collect();
    let mut settings = serde_json::json!({
        "appId": config.app_id,
        "mountPath": if config.mount_path.is_empty() { "/" } else { config.mount_path.as_str() },
    });
    if let Some(key) = &config.javascript_key {
        // Public by design, as in every Parse web app: it only says which app is calling.
        settings["javascriptKey"] = serde_json::Value::from(key.as_str());
    }
    let html = String::from_utf8_lossy(template.raw)
        .replace("__ASSETS__", &assets)
        .replace("__PRELOAD__", &preload)
        .replace("__SETTINGS__", &escape_attribute(&settings.to_string()));
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(template.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn asset_response(asset: &'static Asset, gzip: bool) -> Response {
    let (body, encoded) = match asset.gzip {
        Some(compressed) if gzip => (compressed, true),
        _ => (asset.raw, false),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if encoded {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "Not found").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Whether the client takes gzip (`Accept-Encoding`, without `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&headers));
    }

    #[test]
    fn settings_cannot_leave_their_attribute() {
        assert_eq!(
            escape_attribute(r#"{"appId":"a\"><script>"}"#),
            "{&quot;appId&quot;:&quot;a\\&quot;&gt;&lt;script&gt;&quot;}"
        );
    }
}
