//! The HTTP edge: the only part of Parlor that knows about HTTP and Parse's wire format.
//!
//! One entry handler takes every request below the mount path apart ([`envelope`]),
//! authenticates it ([`auth`]), and hands it to the route table ([`routes`]), whose
//! handlers call the operation layer. `/batch` goes through the same route table.
//!
//! The GraphQL API (`graphql`, `graphql_ws`, `playground`) has its own path beside the
//! mount; its requests are authenticated by the same `auth` code.
//!
//! Layer order (outermost first): CORS answers preflights before anything else runs; the
//! request id ([`request_id`]) opens the span everything below logs in; the metrics count
//! what the panic catcher answers, which turns a bug into a Parse code-1 answer instead of a
//! dropped connection.

pub mod auth;
pub mod batch;
pub mod body;
pub mod classes;
pub mod envelope;
pub mod error;
pub mod files;
pub mod functions;
pub mod graphql;
pub mod graphql_ws;
pub mod info;
pub mod observe;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod playground;
pub mod request_id;
pub mod routes;
pub mod schemas;
pub mod serve;
pub mod state;
pub mod stream;
pub mod users;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody, to_bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use self::error::ApiError;
use self::routes::{ApiResponse, Route};
pub use self::state::{AppState, HttpConfig, Served};

const ALLOWED_HEADERS: [&str; 16] = [
    "x-parse-master-key",
    "x-parse-rest-api-key",
    "x-parse-javascript-key",
    "x-parse-application-id",
    "x-parse-client-version",
    "x-parse-session-token",
    "x-requested-with",
    "x-parse-revocable-session",
    "x-parse-request-id",
    "content-type",
    "pragma",
    "cache-control",
    "x-parse-client-key",
    "x-parse-installation-id",
    "x-parse-cloud-context",
    "x-request-id",
];

/// The application: every route below the mount path, `/health` at the root, and the web
/// app (`/` and `/assets/…`, see [`web`]).
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(86_400));
    Router::new()
        .fallback(handle_request)
        .with_state(state.clone())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        // Outside the panic catcher, so that a panic is counted as the 500 it becomes.
        .layer(axum::middleware::from_fn_with_state(state, observe::record))
        .layer(axum::middleware::from_fn(request_id::tag))
        .layer(axum::middleware::map_response(expose_headers))
        .layer(cors)
}

/// Written by hand rather than by the CORS layer: the JS SDK splits this list on `", "`
/// and rejects the comma-only form.
async fn expose_headers(mut response: Response) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static("X-Parse-Job-Status-Id, X-Parse-Push-Status-Id, X-Request-Id"),
    );
    response
}

/// The one entry point for API requests.
async fn handle_request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if state.config.metrics_route && observe::is_metrics_request(&request) {
        return observe::serve_metrics(&state, peer);
    }
    // GraphQL (and its WebSocket) first: its path is beside the mount, not below it.
    if let Some(target) = graphql::target(&state, &request) {
        return graphql::handle(&state, peer, request, target).await;
    }
    // LiveQuery: the SDKs open their WebSocket on the server URL (any path is accepted, as
    // Parse Server does).
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok());
    if upgrade.is_some_and(|value| value.eq_ignore_ascii_case("websocket")) {
        let (mut parts, _) = request.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => {
                let live_state = state.clone();
                // tungstenite's default 128 KiB read buffer stays resident (and is zeroed on
                // every read) per connection; clients send small frames (a larger one is
                // read in several steps), so 1 KiB is plenty and 10,000 subscribers fit in a
                // small heap.
                upgrade
                    .read_buffer_size(1024)
                    .write_buffer_size(crate::live::WRITE_BUFFER)
                    .on_upgrade(move |socket| async move {
                        let connection =
                            crate::live::serve_socket(socket, live_state.clone(), peer.ip());
                        crate::live::spawn(&live_state, connection);
                    })
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    if let Some(response) = web::answer(
        &state.config,
        request.method(),
        request.uri().path(),
        request.headers(),
    ) {
        return response;
    }
    if let Some(rest) = path_below(&state, &request, "files") {
        let (parts, body) = match read_request(request, state.config.max_body_bytes).await {
            Ok(read) => read,
            Err(error) => return error.into_response(),
        };
        return files::handle(
            &state,
            &parts.method,
            &rest,
            &parts.headers,
            body,
            peer.ip(),
        )
        .await;
    }
    if let Some(rest) = path_below(&state, &request, "apps") {
        // The pages behind account mail links: HTML for browsers, not the JSON dispatch.
        let (parts, body) = match read_request(request, state.config.max_body_bytes).await {
            Ok(read) => read,
            Err(error) => return error.into_response(),
        };
        let page_request = pages::PageRequest {
            method: &parts.method,
            rest: &rest,
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        return pages::handle(&state, page_request).await;
    }
    if let Some(object_id) = stream::message_id(&state, &request) {
        // A stream of events rather than one JSON answer (`{mount}/messages/:id/stream`).
        return stream::handle(&state, peer, request, object_id).await;
    }
    let mut effective = None;
    let mut response = match answer(&state, peer, request, &mut effective).await {
        Ok(response) => into_http(response),
        Err(error) => error.into_response(),
    };
    if let Some(effective) = effective {
        response.extensions_mut().insert(effective);
    }
    response
}

/// Answers an API request; `effective` learns the route it runs as (the JS SDK tunnels
/// reads through `POST`), for the metrics.
async fn answer(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    effective: &mut Option<observe::EffectiveRoute>,
) -> Result<ApiResponse, ApiError> {
    let (parts, body) = request.into_parts();
    let mount = state.config.mount_path.as_str();
    let full_path = parts.uri.path();
    let path = match full_path.strip_prefix(mount) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            rest.trim_end_matches('/').to_owned()
        }
        _ if full_path.trim_end_matches('/') == "/health" => "/health".to_owned(),
        _ => {
            return Err(ApiError::NotRouted {
                method: parts.method.to_string(),
                path: full_path.to_owned(),
            });
        }
    };
    if parts.method == Method::OPTIONS {
        return Ok(ApiResponse::ok(serde_json::Value::Null));
    }
    if parts.method == Method::GET && path == "/health" {
        return Ok(info::health());
    }
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let json_body = envelope::parse_body(&bytes)?;
    let (mut request, credentials) = envelope::open(
        parts.method.clone(),
        path,
        parts.uri.query(),
        &parts.headers,
        json_body,
        peer.ip(),
    )?;
    if request.path.starts_with("/aggregate/") {
        // A pipeline's stages and `$sort` keys are in the order they are written.
        request.raw_json = envelope::raw_json_texts(parts.uri.query(), &bytes);
    }
    *effective = Some(observe::EffectiveRoute {
        route: observe::api_template(&request.path),
        method: observe::method_label(&request.method),
    });
    let mut credentials = credentials;
    if matches!(
        Route::resolve(&request.method, &request.path),
        Some(Route::LogIn)
    ) {
        // A stale token must not stop a log-in (§1.2 step 5).
        credentials.session_token = None;
    }
    let mut auth = auth::authenticate(state, &credentials, peer.ip()).await?;
    let has_cloud = state.operations.cloud.is_some();
    let meta = auth::request_meta(
        &parts.headers,
        credentials.context.take(),
        peer.ip(),
        has_cloud,
    )?;
    if has_cloud {
        auth.request = Some(std::sync::Arc::new(meta));
    }
    if let Some(request_id) = &credentials.request_id {
        check_idempotency(state, &request, request_id).await?;
    }
    routes::dispatch(state, &auth, request).await
}

/// The path of a request below `{mount}/<folder>/`, unless it is a CORS preflight (which the
/// common path answers).
fn path_below(state: &AppState, request: &Request, folder: &str) -> Option<String> {
    if request.method() == Method::OPTIONS {
        return None;
    }
    let prefix = format!("{}/{folder}/", state.config.mount_path);
    request
        .uri()
        .path()
        .strip_prefix(prefix.as_str())
        .map(str::to_owned)
}

async fn read_request(
    request: Request,
    limit: usize,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    Ok((parts, read_body(body, limit).await?))
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    // A `Content-Length` over the limit is refused before a byte is read, rather than after
    // waiting for a body that may never come.
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ApiError::TooLarge { limit });
    }
    to_bytes(body, limit)
        .await
        .map_err(|error| match serve::BodyTimeout::find(&error) {
            Some(timeout) => ApiError::BodyTimeout {
                seconds: timeout.after.as_secs(),
            },
            None => ApiError::TooLarge { limit },
        })
}

async fn check_idempotency(
    state: &AppState,
    request: &envelope::ApiRequest,
    request_id: &str,
) -> Result<(), ApiError> {
    let config = &state.config;
    if config.idempotency_paths.is_empty() {
        return Ok(());
    }
    let is_write = Route::resolve(&request.method, &request.path)
        .is_some_and(|route| route.is_idempotent_write());
    let relative = request.path.trim_start_matches('/');
    if !is_write
        || !config
            .idempotency_paths
            .iter()
            .any(|pattern| pattern.is_match(relative))
    {
        return Ok(());
    }
    state
        .operations
        .claim_request_id(request_id, config.idempotency_ttl_seconds)
        .await?;
    Ok(())
}

pub(super) fn into_http(response: ApiResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let bytes = match response.body {
        body::Body::Value(serde_json::Value::Null) => return status.into_response(),
        body::Body::Value(body) => {
            // Sized for a page of results up front: growing the buffer from axum's default
            // 128 bytes copied a 50-object history page several times over.
            let mut bytes = Vec::with_capacity(16 * 1024);
            if serde_json::to_writer(&mut bytes, &body).is_err() {
                return ApiError::Internal("response serialisation failed".into()).into_response();
            }
            Body::from(bytes)
        }
        body::Body::Text(parts) => Body::new(body::TextParts::new(parts)),
    };
    let mut http = (status, bytes).into_response();
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(location) = response
        .location
        .and_then(|location| HeaderValue::from_str(&location).ok())
    {
        http.headers_mut().insert(header::LOCATION, location);
    }
    for (name, value) in response.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            http.headers_mut()
                .insert(header::HeaderName::from_static(name), value);
        }
    }
    http
}
