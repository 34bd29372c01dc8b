//! What every request handler shares.

use std::sync::Arc;

use regex::Regex;

use crate::operation::Operations;

/// Settings the HTTP edge needs on every request.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub app_id: String,
    pub master_key: String,
    /// Addresses (or `addr/prefix` ranges) allowed to use the master key.
    pub master_key_ips: Vec<String>,
    /// Configured client keys (REST, JavaScript, client); empty: none needed.
    pub client_keys: Vec<String>,
    /// The JavaScript key the web app's page hands to the browser (see `http/web.rs`).
    pub javascript_key: Option<String>,
    /// `/parse`, or empty for a root mount.
    pub mount_path: String,
    pub max_body_bytes: usize,
    /// Paths (below the mount, without the leading slash) where `X-Parse-Request-Id` is enforced.
    pub idempotency_paths: Vec<Regex>,
    pub idempotency_ttl_seconds: u64,
    /// Where the GraphQL API answers (`/graphql`); `None`: it is off.
    pub graphql_path: Option<String>,
    /// Whether `GET /metrics` is served on this port (`--metrics`).
    pub metrics_route: bool,
}

/// The one state object handlers receive. axum clones it for every request, so it is a
/// single `Arc` (cloning the operations' dozen `Arc`s per request cost ~3% of a read's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Served>);

impl AppState {
    pub fn new(served: Served) -> AppState {
        AppState(Arc::new(served))
    }
}

impl std::ops::Deref for AppState {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

/// What the server serves with: the operations, the HTTP settings, LiveQuery, GraphQL.
pub struct Served {
    pub operations: Operations,
    pub config: Arc<HttpConfig>,
    /// Live-query settings and the connections open per user.
    pub live: Arc<crate::live::Hub>,
    /// The GraphQL API, when it is on.
    pub graphql: Option<Arc<crate::graphql::GraphQl>>,
}
