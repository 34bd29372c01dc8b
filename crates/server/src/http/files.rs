//! `/files` (§13): raw-body uploads (and the JS SDK's base64 JSON envelope), downloads with
//! Range support, and deletes. Files do not fit the JSON envelope of the other routes, so
//! they get their own entry here; the rules are in `operation::files`.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parlor_core::Error;
use serde_json::Value;

use super::auth::authenticate;
use super::envelope;
use super::error::ApiError;
use super::routes::percent_decode;
use super::state::AppState;

/// Answers a request below `{mount}/files/`.
pub async fn handle(
    state: &AppState,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: Bytes,
    peer: IpAddr,
) -> Response {
    match route(state, method, rest, headers, body, peer).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(
    state: &AppState,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: Bytes,
    peer: IpAddr,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let not_routed = || ApiError::NotRouted {
        method: method.to_string(),
        path: format!("/files/{rest}"),
    };
    match (method.as_str(), segments.as_slice()) {
        ("GET", [app_id, name]) if *app_id == state.config.app_id => {
            download(state, &percent_decode(name), headers).await
        }
        ("POST", [name]) => upload(state, &percent_decode(name), headers, body, peer).await,
        ("DELETE", [name]) => {
            let (_, credentials) = envelope::open(
                Method::DELETE,
                String::new(),
                None,
                headers,
                Value::Null,
                peer,
            )?;
            let auth = authenticate(state, &credentials, peer).await?;
            let answer = state
                .operations
                .delete_file(&auth, &percent_decode(name))
                .await?;
            Ok((StatusCode::OK, axum::Json(answer)).into_response())
        }
        _ => Err(not_routed()),
    }
}

async fn upload(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Bytes,
    peer: IpAddr,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    // The JS SDK sends `{"base64":…,"_ContentType":…,"_ApplicationId":…}` as text/plain when it
    // cannot set headers (browsers): recognised by the missing app-id header.
    let envelope_json = headers
        .get("x-parse-application-id")
        .is_none()
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .filter(|json| json.get("base64").is_some_and(Value::is_string));
    let (credentials, data, content_type) = match envelope_json {
        Some(json) => {
            let content_type = json
                .get("_ContentType")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let encoded = json
                .get("base64")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A data URL (`data:image/png;base64,…`) is accepted too.
            let encoded = encoded
                .split_once(";base64,")
                .map_or(encoded, |(_, data)| data);
            let data = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    ApiError::Parse(Error::new(
                        parlor_core::Code::FileSaveError,
                        "Invalid base64 file data.",
                    ))
                })?;
            let (_, credentials) =
                envelope::open(Method::POST, String::new(), None, headers, json, peer)?;
            (credentials, data, content_type)
        }
        None => {
            let (_, credentials) = envelope::open(
                Method::POST,
                String::new(),
                None,
                headers,
                Value::Null,
                peer,
            )?;
            (credentials, body.to_vec(), content_type)
        }
    };
    let auth = authenticate(state, &credentials, peer).await?;
    let answer = state
        .operations
        .upload_file(&auth, name, content_type.as_deref(), data)
        .await?;
    let mut response = (StatusCode::CREATED, axum::Json(answer.clone())).into_response();
    if let Some(location) = answer
        .get("url")
        .and_then(Value::as_str)
        .and_then(|url| HeaderValue::from_str(url).ok())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn download(state: &AppState, name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let Some((content_type, data)) = state.operations.read_file(name).await? else {
        return Err(ApiError::Parse(Error::new(
            parlor_core::Code::ObjectNotFound,
            "File not found.",
        )));
    };
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let total = data.len();
    if let Some((start, end)) = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|range| parse_range(range, total))
    {
        let mut response =
            (StatusCode::PARTIAL_CONTENT, data[start..=end].to_vec()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type);
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        return Ok(response);
    }
    let mut response = (StatusCode::OK, data).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(response)
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `total` bytes.
fn parse_range(range: &str, total: usize) -> Option<(usize, usize)> {
    let spec = range.strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let length: usize = suffix.parse().ok()?;
            (total.saturating_sub(length), total - 1)
        }
        (start, "") => (start.parse().ok()?, total - 1),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<usize>().ok()?.min(total - 1),
        ),
    };
    (start <= end && end < total).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-4", 10), Some((6, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=9-3", 10), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }
}
