//! `{graphql-path}` (default `/graphql`, beside the REST mount): the GraphQL API's HTTP and
//! WebSocket edge (§12.1), and the playground at `{graphql-path}/playground`.
//!
//! Requests are authenticated by the same code and headers as REST (a bad session token is
//! answered before the query runs, in REST's shape, as Parse Server does). Errors are mapped
//! here, once: a Parse error raised while the query runs → HTTP 200 with
//! `errors[].extensions.code` = its Parse code; a query that cannot run → HTTP 400 with a
//! string `GRAPHQL_*` code and no `data`.

use std::net::SocketAddr;

use async_graphql::{Response as GqlResponse, ServerError};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parlor_core::Code;
use serde_json::{Value, json};

use super::auth;
use super::envelope;
use super::error::ApiError;
use super::state::AppState;
use crate::graphql::Caller;
use crate::operation::OpError;

/// What a request below the GraphQL path asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Endpoint,
    Playground,
    /// A playground asset, by file name.
    Asset(String),
}

/// The GraphQL target of a request, if its path is the GraphQL path's.
pub fn target(state: &AppState, request: &Request) -> Option<Target> {
    let base = state.config.graphql_path.as_deref()?;
    state.graphql.as_ref()?;
    let rest = request.uri().path().strip_prefix(base)?;
    match rest.trim_end_matches('/') {
        "" => Some(Target::Endpoint),
        "/playground" => Some(Target::Playground),
        other => other
            .strip_prefix("/playground/")
            .filter(|name| !name.contains('/'))
            .map(|name| Target::Asset(name.to_owned())),
    }
}

/// Answers a request below the GraphQL path.
pub async fn handle(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    target: Target,
) -> Response {
    match target {
        Target::Endpoint => {
            let upgrade = request
                .headers()
                .get(header::UPGRADE)
                .and_then(|value| value.to_str().ok());
            if upgrade.is_some_and(|value| value.eq_ignore_ascii_case("websocket")) {
                let (mut parts, _) = request.into_parts();
                return match WebSocketUpgrade::from_request_parts(&mut parts, state).await {
                    Ok(upgrade) => subscriptions(state.clone(), peer, upgrade),
                    Err(rejection) => rejection.into_response(),
                };
            }
            match request.method() {
                &Method::GET | &Method::POST => endpoint(state, peer, request).await,
                _ => graphql_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "GraphQL accepts GET and POST requests.",
                    "BAD_REQUEST",
                ),
            }
        }
        Target::Playground | Target::Asset(_) if request.method() != Method::GET => {
            StatusCode::METHOD_NOT_ALLOWED.into_response()
        }
        Target::Playground => super::playground::page(state),
        Target::Asset(name) => super::playground::asset(&name),
    }
}

/// A request-level error in Apollo's shape: `{"errors":[{"message","extensions":{"code"}}]}`.
fn graphql_error(status: StatusCode, message: &str, code: &str) -> Response {
    json_response(
        status,
        &json!({"errors": [{"message": message, "extensions": {"code": code}}]}),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    text_response(status, body.to_string())
}

fn text_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

const NO_QUERY: &str = "POST body missing, invalid Content-Type, or JSON object has no keys.";

/// The GraphQL request of an HTTP request, or the 400 that says why there is none.
async fn graphql_request(
    state: &AppState,
    request: Request,
) -> Result<async_graphql::Request, Response> {
    let bad_request =
        |message: &str| graphql_error(StatusCode::BAD_REQUEST, message, "BAD_REQUEST");
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET {
        let query = parts.uri.query().unwrap_or_default();
        return match async_graphql::http::parse_query_string(query) {
            Ok(request) if !request.query.trim().is_empty() => Ok(request),
            _ => Err(bad_request("GET query missing.")),
        };
    }
    let limit = state.config.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return Err(ApiError::TooLarge { limit }.into_response()),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if content_type
        .as_deref()
        .is_some_and(|content_type| content_type.starts_with("multipart/form-data"))
    {
        // The GraphQL multipart request spec: `operations`, `map`, then the files.
        let options = async_graphql::http::MultipartOptions::default().max_file_size(limit);
        return async_graphql::http::receive_body(
            content_type.as_deref(),
            futures::io::Cursor::new(bytes.to_vec()),
            options,
        )
        .await
        .map_err(|error| bad_request(&format!("Invalid multipart request: {error}")));
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(bad_request(NO_QUERY));
    };
    let has_query = body
        .get("query")
        .and_then(Value::as_str)
        .is_some_and(|query| !query.trim().is_empty());
    if !has_query {
        return Err(bad_request(NO_QUERY));
    }
    match body.get("variables") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(_)) => {
            return Err(bad_request(
                "`variables` in a POST body should be provided as an object, not a recursively JSON-encoded string.",
            ));
        }
        Some(_) => return Err(bad_request("`variables` in a POST body must be an object.")),
    }
    if body
        .get("operationName")
        .is_some_and(|name| !(name.is_string() || name.is_null()))
    {
        return Err(bad_request(
            "`operationName` in a POST body must be a string.",
        ));
    }
    if body.get("variables").is_some_and(Value::is_null) {
        body.remove("variables");
    }
    serde_json::from_value(Value::Object(body)).map_err(|_| bad_request(NO_QUERY))
}

/// `GET`/`POST {graphql-path}`.
async fn endpoint(state: &AppState, peer: SocketAddr, request: Request) -> Response {
    let Some(graphql) = state.graphql.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let read_only = request.method() == Method::GET;
    let credentials = match envelope::open(
        Method::POST,
        request.uri().path().to_owned(),
        None,
        request.headers(),
        Value::Null,
        peer.ip(),
    ) {
        Ok((_, credentials)) => credentials,
        Err(error) => return error.into_response(),
    };
    let mut auth = match auth::authenticate(state, &credentials, peer.ip()).await {
        Ok(auth) => auth,
        Err(error) => return error.into_response(),
    };
    // Cloud Code triggers and functions see the request's headers and context, as over REST.
    let has_cloud = state.operations.cloud.is_some();
    match auth::request_meta(request.headers(), None, peer.ip(), has_cloud) {
        Ok(meta) if has_cloud => auth.request = Some(std::sync::Arc::new(meta)),
        Ok(_) => {}
        Err(error) => return error.into_response(),
    }
    let request = match graphql_request(state, request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let built = match graphql.schema().await {
        Ok(built) => built,
        Err(error) => return ApiError::Internal(error.to_string()).into_response(),
    };
    let caller = Caller::new(auth, peer.ip(), read_only);
    let response = built.schema.execute(request.data(caller.clone())).await;
    let (status, body) = answer(response, Some(&caller));
    text_response(status, body)
}

/// The HTTP status and body of an executed request. Written straight from the response so
/// fields keep the order the query selected them in.
pub fn answer(mut response: GqlResponse, caller: Option<&Caller>) -> (StatusCode, String) {
    let mut status = None;
    for error in &mut response.errors {
        if let Some(code) = map_error(error) {
            status = Some(status.unwrap_or(code));
        }
    }
    if status.is_none() {
        null_failed_roots(&mut response, caller);
    }
    let errors = serde_json::to_string(&response.errors).unwrap_or_else(|_| "[]".to_owned());
    if let Some(status) = status {
        // The request never ran: no `data`.
        return (status, format!("{{\"errors\":{errors}}}"));
    }
    let mut body = String::with_capacity(16 * 1024);
    body.push_str("{\"data\":");
    body.push_str(&serde_json::to_string(&response.data).unwrap_or_else(|_| "null".to_owned()));
    if !response.errors.is_empty() {
        body.push_str(",\"errors\":");
        body.push_str(&errors);
    }
    body.push('}');
    (StatusCode::OK, body)
}

/// A failed root field reads `null` when it may (mutation payloads, `node`); any other
/// failed root field makes all of `data` null, as GraphQL's null propagation has it (the
/// executor itself leaves the field out).
fn null_failed_roots(response: &mut GqlResponse, caller: Option<&Caller>) {
    use async_graphql::{PathSegment, Value as GqlValue};
    let failed: Vec<String> = response
        .errors
        .iter()
        .filter_map(|error| match error.path.first() {
            Some(PathSegment::Field(key)) => Some(key.clone()),
            _ => None,
        })
        .collect();
    for key in failed {
        let nullable = caller.is_some_and(|caller| caller.root_is_nullable(&key));
        if !nullable {
            response.data = GqlValue::Null;
            return;
        }
        match &mut response.data {
            GqlValue::Object(map) => {
                map.entry(async_graphql::Name::new(&key))
                    .or_insert(GqlValue::Null);
            }
            data => {
                let mut map = async_graphql::indexmap::IndexMap::new();
                map.insert(async_graphql::Name::new(&key), GqlValue::Null);
                *data = GqlValue::Object(map);
            }
        }
    }
}

/// Gives an error its wire shape; the HTTP status when the error stops the whole request.
pub fn map_error(error: &mut ServerError) -> Option<StatusCode> {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if let Some(async_graphql::Value::String(_)) = extensions.get("code") {
        let status = match extensions.get("httpStatus") {
            Some(async_graphql::Value::Number(status)) => status
                .as_u64()
                .and_then(|status| StatusCode::from_u16(status as u16).ok()),
            _ => None,
        };
        extensions.unset("httpStatus");
        return Some(status.unwrap_or(StatusCode::BAD_REQUEST));
    }
    let parse_error = error
        .source
        .as_ref()
        .and_then(|source| source.downcast_ref::<OpError>())
        .map(|op_error| match op_error {
            OpError::MasterKeyRequired => {
                parlor_core::Error::new(Code::OperationForbidden, "Permission denied")
            }
            other => match other.to_parse_error() {
                Some(parse_error) if parse_error.code != Code::InternalServerError => parse_error,
                _ => {
                    tracing::error!(error = %other, "GraphQL resolver failed");
                    parlor_core::Error::internal()
                }
            },
        });
    let (code, message) = match parse_error {
        Some(parse_error) => {
            let message = match parse_error.code {
                // Parse Server gives no detail on these (§12.1).
                Code::OperationForbidden | Code::InvalidSessionToken => {
                    "Permission denied".to_owned()
                }
                Code::InternalServerError => "Internal server error".to_owned(),
                _ => parse_error.message.to_string(),
            };
            (parse_error.code.as_i32(), message)
        }
        None => {
            // Not an operation's refusal: the executor's own failure, which a valid query
            // never reaches.
            tracing::error!(error = %error.message, "GraphQL execution failed");
            (
                Code::InternalServerError.as_i32(),
                "Internal server error".to_owned(),
            )
        }
    };
    error.message = message;
    extensions.set("code", code);
    None
}

/// `{graphql-path}` over WebSocket: subscriptions with the `graphql-transport-ws` protocol.
fn subscriptions(state: AppState, peer: SocketAddr, upgrade: WebSocketUpgrade) -> Response {
    super::graphql_ws::serve(state, peer, upgrade)
}
