//! The request envelope (§1): the JSON body, `_method` override, credentials from headers
//! or from the JS SDK's body fields, and query-string parameters.
//!
//! The output is an [`ApiRequest`] that no longer carries any envelope field, so nothing
//! like `_ApplicationId` can ever become an object field.

use axum::http::{HeaderMap, Method};
use base64::Engine;
use parlor_core::Error;
use serde_json::{Map, Value};

use super::error::ApiError;

/// A request after the envelope is taken apart.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// The path below the mount path, without a trailing slash (`/classes/Message`).
    pub path: String,
    /// Query parameters (each value parsed as JSON when it can be), plus the body's fields
    /// for a `_method: GET` request.
    pub params: Map<String, Value>,
    /// The JSON body (`Null` when there is none).
    pub body: Value,
    /// The client's address (log-in limits count per address).
    pub client_ip: std::net::IpAddr,
    /// The JSON texts the parameters were read from (query values, a `_method: GET` body),
    /// kept where key order matters (`/aggregate`: [`raw_json_texts`]); empty elsewhere.
    pub raw_json: Vec<String>,
}

/// Credentials a request presents.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub app_id: Option<String>,
    pub master_key: Option<String>,
    /// Client keys sent (REST, JavaScript, client, Windows), any of which may match.
    pub client_keys: Vec<String>,
    pub session_token: Option<String>,
    pub installation_id: Option<String>,
    /// The `X-Parse-Request-Id` idempotency key.
    pub request_id: Option<String>,
    /// The body's `_context` (the JS SDK's `save(…, {context})`), as sent.
    pub context: Option<Value>,
}

const ENVELOPE_FIELDS: [&str; 12] = [
    "_method",
    "_ApplicationId",
    "_JavaScriptKey",
    "_ClientKey",
    "_MasterKey",
    "_ClientVersion",
    "_InstallationId",
    "_SessionToken",
    "_RevocableSession",
    "_context",
    "_ContentType",
    "_noBody",
];

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::to_owned)
        .filter(|value| !value.is_empty())
}

/// Parses the body bytes as JSON whatever the `Content-Type` (Parse does the same).
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|_| ApiError::Parse(Error::invalid_json("Invalid JSON")))
}

/// Takes the envelope apart: method override, credentials, parameters.
pub fn open(
    method: Method,
    path: String,
    query: Option<&str>,
    headers: &HeaderMap,
    mut body: Value,
    client_ip: std::net::IpAddr,
) -> Result<(ApiRequest, Credentials), ApiError> {
    let mut credentials = Credentials {
        app_id: header(headers, "x-parse-application-id"),
        master_key: header(headers, "x-parse-master-key"),
        client_keys: [
            "x-parse-rest-api-key",
            "x-parse-javascript-key",
            "x-parse-client-key",
            "x-parse-windows-key",
        ]
        .iter()
        .filter_map(|name| header(headers, name))
        .collect(),
        session_token: header(headers, "x-parse-session-token"),
        installation_id: header(headers, "x-parse-installation-id"),
        request_id: header(headers, "x-parse-request-id"),
        context: None,
    };
    if credentials.app_id.is_none() {
        read_basic_authorization(headers, &mut credentials);
    }
    let mut method = method;
    if let Value::Object(map) = &mut body {
        let envelope: Map<String, Value> = ENVELOPE_FIELDS
            .iter()
            .filter_map(|field| map.remove(*field).map(|value| ((*field).to_owned(), value)))
            .collect();
        if method == Method::POST
            && let Some(overridden) = envelope.get("_method").and_then(Value::as_str)
        {
            method = Method::from_bytes(overridden.to_ascii_uppercase().as_bytes())
                .unwrap_or(Method::POST);
        }
        let text = |field: &str| {
            envelope
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        // Body credentials count only when no application id came in the headers (§1.4).
        if credentials.app_id.is_none() {
            credentials.app_id = text("_ApplicationId");
            credentials.master_key = text("_MasterKey");
            credentials.client_keys.extend(text("_JavaScriptKey"));
            credentials.client_keys.extend(text("_ClientKey"));
            credentials.session_token = text("_SessionToken").or(credentials.session_token);
            credentials.installation_id = text("_InstallationId").or(credentials.installation_id);
        }
        credentials.context = envelope.get("_context").cloned();
    }
    let mut params = parse_query(query.unwrap_or_default());
    if (method == Method::GET || method == Method::DELETE)
        && let Value::Object(map) = std::mem::take(&mut body)
    {
        params.extend(map);
    }
    Ok((
        ApiRequest {
            method,
            path,
            params,
            body,
            client_ip,
            raw_json: Vec::new(),
        },
        credentials,
    ))
}

/// `Authorization: Basic base64(appId:masterKey)` or `base64(appId:javascript-key=KEY)`.
fn read_basic_authorization(headers: &HeaderMap, credentials: &mut Credentials) {
    let Some(value) = header(headers, "authorization") else {
        return;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return;
    };
    let Some((app_id, key)) = decoded.split_once(':') else {
        return;
    };
    credentials.app_id = Some(app_id.to_owned());
    match key.strip_prefix("javascript-key=") {
        Some(js_key) => credentials.client_keys.push(js_key.to_owned()),
        None => credentials.master_key = Some(key.to_owned()),
    }
}

/// The JSON texts of a request's parameters — their names in order, each query-string value,
/// and the body — whose key order a parsed [`Value`] does not keep.
pub fn raw_json_texts(query: Option<&str>, body: &[u8]) -> Vec<String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    // The parameters' own order, as an object of their names (`?$match=…&$group=…`).
    let names: Vec<String> = pairs
        .iter()
        .map(|(key, _)| format!("{}:0", Value::from(key.as_str())))
        .collect();
    let mut texts = vec![format!("{{{}}}", names.join(","))];
    texts.extend(pairs.into_iter().map(|(_, value)| value));
    if !body.is_empty() {
        texts.push(String::from_utf8_lossy(body).into_owned());
    }
    texts
}

/// Query-string parameters; each value is parsed as JSON when it can be (§3.1).
fn parse_query(query: &str) -> Map<String, Value> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| {
            let parsed =
                serde_json::from_str(&value).unwrap_or_else(|_| Value::String(value.into_owned()));
            (key.into_owned(), parsed)
        })
        .collect()
}
