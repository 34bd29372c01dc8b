//! Request metrics at the edge: every answered request is counted by route template, method
//! and status, and timed, and `GET /metrics` serves the exposition.
//!
//! The route is a template (`/classes/:className/:objectId`) so the number of series stays
//! bounded whatever the paths clients send. A request the JS SDK tunnels (`POST` with
//! `_method: "GET"`) is counted under the route it really runs: the API entry point puts
//! that route on the response ([`EffectiveRoute`]), and this layer prefers it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::ip_allowed;
use super::state::AppState;
use crate::metrics::Metrics;

/// The route a request ran as, when it differs from what its URL and method say.
#[derive(Debug, Clone, Copy)]
pub struct EffectiveRoute {
    pub route: &'static str,
    pub method: &'static str,
}

/// A method as a label: the methods the API knows, every other one as `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// The template of a path below the mount path (`/classes/Message/abc` →
/// `/classes/:className/:objectId`).
pub fn api_template(path: &str) -> &'static str {
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let first = segments.next().unwrap_or_default();
    let rest: Vec<&str> = segments.collect();
    match (first, rest.as_slice()) {
        ("", _) => "/",
        ("classes", [_]) => "/classes/:className",
        ("classes", [_, _]) => "/classes/:className/:objectId",
        ("users", ["me"]) => "/users/me",
        ("sessions", ["me"]) => "/sessions/me",
        ("users" | "roles" | "sessions" | "installations", []) => match first {
            "users" => "/users",
            "roles" => "/roles",
            "sessions" => "/sessions",
            _ => "/installations",
        },
        ("users", [_]) => "/users/:objectId",
        ("roles", [_]) => "/roles/:objectId",
        ("sessions", [_]) => "/sessions/:objectId",
        ("installations", [_]) => "/installations/:objectId",
        ("functions", [_]) => "/functions/:name",
        ("jobs", [_]) => "/jobs/:name",
        ("schemas", []) => "/schemas",
        ("schemas", [_]) => "/schemas/:className",
        ("purge", [_]) => "/purge/:className",
        ("aggregate", [_]) => "/aggregate/:className",
        ("events", [_]) => "/events/:name",
        ("files", [_]) => "/files/:name",
        ("files", [_, _]) => "/files/:appId/:name",
        ("messages", [_, "stream"]) => "/messages/:objectId/stream",
        ("apps", _) => "/apps/…",
        ("login", []) => "/login",
        ("logout", []) => "/logout",
        ("batch", []) => "/batch",
        ("health", []) => "/health",
        ("serverInfo", []) => "/serverInfo",
        ("config", []) => "/config",
        ("openapi.json", []) => "/openapi.json",
        ("serverStatus", []) => "/serverStatus",
        ("generations", []) => "/generations",
        ("requestPasswordReset", []) => "/requestPasswordReset",
        ("verificationEmailRequest", []) => "/verificationEmailRequest",
        ("verifyPassword", []) => "/verifyPassword",
        ("loginAs", []) => "/loginAs",
        ("upgradeToRevocableSession", []) => "/upgradeToRevocableSession",
        _ => "other",
    }
}

/// The template of any path the server answers: below the mount, or one of the routes
/// beside it.
fn template(mount_path: &str, path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix(mount_path)
        && (rest.is_empty() || rest.starts_with('/'))
        && !mount_path.is_empty()
    {
        return api_template(rest);
    }
    match path.trim_end_matches('/') {
        "/health" => "/health",
        "/metrics" => "/metrics",
        // The web app (`http/web.rs`): its page and its versioned files.
        "" | "/index.html" => "/",
        "/console" => "/console",
        assets if assets.starts_with("/assets/") => "/assets/…",
        _ if mount_path.is_empty() => api_template(path),
        _ => "other",
    }
}

/// Decrements the in-flight gauge however the request ends (answered, or dropped when the
/// client went away).
struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests_in_flight.dec();
    }
}

/// The middleware: counts and times every request when metrics are on.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(metrics) = state.operations.metrics.clone() else {
        return next.run(request).await;
    };
    let method = method_label(request.method());
    let route = template(&state.config.mount_path, request.uri().path());
    metrics.requests_in_flight.inc();
    let guard = InFlight(Arc::clone(&metrics));
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    drop(guard);
    let (route, method) = match response.extensions().get::<EffectiveRoute>() {
        Some(effective) => (effective.route, effective.method),
        None => (route, method),
    };
    metrics.record_request(route, method, response.status().as_u16(), elapsed);
    response
}

/// `GET /metrics` on the main port, when it serves them: for the addresses allowed the
/// master key (loopback by default), so the figures do not leak to the internet.
pub fn serve_metrics(state: &AppState, peer: SocketAddr) -> Response {
    let Some(metrics) = &state.operations.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !ip_allowed(&state.config.master_key_ips, peer.ip()) {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to the addresses of --master-key-ips only\n",
        )
            .into_response();
    }
    exposition(state, metrics)
}

/// Connections the metrics listener holds at once: scrapers need one or two.
const METRICS_MAX_CONNECTIONS: usize = 64;

/// Serves `GET /metrics` on a listener of its own (`--metrics-addr`), with the API's connection
/// timeouts and a small cap of its own, so a flood there cannot take the API's descriptors; the
/// task ends when aborted.
pub async fn serve_on(
    address: &str,
    state: AppState,
    limits: super::serve::ConnectionLimits,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                match &state.operations.metrics {
                    Some(metrics) => exposition(&state, metrics),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }),
    );
    println!("Metrics on http://{}/metrics", listener.local_addr()?);
    Ok(tokio::spawn(super::serve::serve(
        listener,
        app,
        limits,
        METRICS_MAX_CONNECTIONS,
        std::future::pending(),
    )))
}

/// The exposition as an HTTP answer, with the store's load read now.
pub fn exposition(state: &AppState, metrics: &Metrics) -> Response {
    let mut response = metrics
        .encode(state.operations.store.stats())
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

/// Whether a request asks for the metrics on the main port.
pub fn is_metrics_request(request: &Request) -> bool {
    request.method() == Method::GET && request.uri().path() == "/metrics"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_bounded_templates() {
        assert_eq!(
            template("/parse", "/parse/classes/Message/abc"),
            "/classes/:className/:objectId"
        );
        assert_eq!(
            template("/parse", "/parse/classes/Message"),
            "/classes/:className"
        );
        assert_eq!(template("/parse", "/parse/users/me"), "/users/me");
        assert_eq!(template("/parse", "/parse/users/xyz"), "/users/:objectId");
        assert_eq!(
            template("/parse", "/parse/functions/generate"),
            "/functions/:name"
        );
        assert_eq!(template("/parse", "/parse/no/such/thing/here"), "other");
        assert_eq!(template("/parse", "/health"), "/health");
        assert_eq!(template("/parse", "/some/page"), "other");
        assert_eq!(template("/parse", "/"), "/");
        assert_eq!(
            template("/parse", "/assets/0123abcd/views/chat.js"),
            "/assets/…"
        );
        assert_eq!(template("", "/classes/X"), "/classes/:className");
    }
}
