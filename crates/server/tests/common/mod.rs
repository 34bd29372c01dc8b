//! Test support: a real server on `127.0.0.1:0` with a fresh database, and a small HTTP
//! client that speaks Parse's headers.
//!
//! The database is a SQLite file in a temporary folder, or, with `PARLOR_TEST_BACKEND=postgres`,
//! a fresh schema of the PostgreSQL database at `PARLOR_TEST_POSTGRES_URL` (dropped with the
//! server), so the same suite checks both stores.

#![allow(dead_code)]

pub mod fake_llm;
pub mod live;

use std::time::Duration;

use parlor_server::config::ServeOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const APP_ID: &str = "test-app";
pub const MASTER_KEY: &str = "test-master";

/// A running server; it stops when dropped.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The PostgreSQL schema this server made for itself, dropped when it goes away.
    pg_schema: Option<String>,
}

/// Whether the suite runs against PostgreSQL (`PARLOR_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("PARLOR_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// Prints why a test does not run on this backend; `true` when it should return early.
pub fn skip_on_postgres(reason: &str) -> bool {
    if on_postgres() {
        println!("skipped on PostgreSQL: {reason}");
    }
    on_postgres()
}

/// The test PostgreSQL URL (`PARLOR_TEST_POSTGRES_URL`), if one is set.
pub fn postgres_url() -> Option<String> {
    match std::env::var("PARLOR_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => None,
    }
}

/// A new schema name, unique across the test processes sharing a database.
pub fn fresh_pg_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.as_nanos())
        .unwrap_or(0);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{prefix}_{}_{}_{count}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// `url` with `?schema=name` (or `&schema=name`) appended.
pub fn with_pg_schema(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}schema={schema}")
}

/// Drops a test schema with `psql`. `wait: false` leaves the command running on its own: a
/// dropped server may still hold connections for a moment, and blocking the test's runtime
/// thread on their locks could stall the server that must release them.
pub fn drop_pg_schema(schema: &str, wait: bool) {
    let Some(url) = postgres_url() else { return };
    let (url, _) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let mut command = std::process::Command::new("psql");
    command
        .arg(url)
        .args([
            "-q",
            "-c",
            "SET lock_timeout = '10s'",
            "-c",
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if wait {
        let _ = command.status();
    } else {
        let _ = command.spawn();
    }
}

/// A response's status and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    /// The body as the server sent it, for assertions on the raw text.
    pub text: String,
}

impl TestServer {
    /// A server with default settings.
    pub async fn new() -> TestServer {
        TestServer::with(ServeOptions::default()).await
    }

    /// A server with some options set (database, port, keys are filled in).
    pub async fn with(options: ServeOptions) -> TestServer {
        TestServer::with_tools(options, None).await
    }

    /// A server with some options set and personas' tools run by `tools`.
    pub async fn with_tools(
        options: ServeOptions,
        tools: Option<std::sync::Arc<dyn parlor_server::ai::tools::ToolRunner>>,
    ) -> TestServer {
        parlor_server::ai::provider::install_crypto_provider();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut pg_schema = None;
        let database = match options.database.clone() {
            Some(database) => database,
            None if on_postgres() => {
                let url = postgres_url()
                    .expect("PARLOR_TEST_BACKEND=postgres needs PARLOR_TEST_POSTGRES_URL");
                let schema = fresh_pg_schema("t");
                let database = with_pg_schema(&url, &schema);
                pg_schema = Some(schema);
                database
            }
            None => format!("sqlite://{}/parlor.db", data_dir.path().display()),
        };
        let options = ServeOptions {
            database: Some(database),
            app_id: Some(options.app_id.unwrap_or_else(|| APP_ID.to_owned())),
            master_key: Some(options.master_key.unwrap_or_else(|| MASTER_KEY.to_owned())),
            port: Some(0),
            ..options
        };
        let mut config = options.resolve().expect("config");
        config.tools = tools;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(parlor_server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let base = format!("http://{address}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut server = TestServer {
            base,
            client,
            data_dir,
            stop: Some(stop),
            task: Some(task),
            pg_schema,
        };
        // Generous: a fresh PostgreSQL schema takes seconds to set up on a loaded machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(response) = server
                .client
                .get(format!("{}/parse/health", server.base))
                .send()
                .await
                && response.status() == StatusCode::OK
            {
                return server;
            }
            if let Some(task) = server.task.take_if(|task| task.is_finished()) {
                panic!("the server stopped while starting: {:?}", task.await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not start within 30 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/parse{path}", self.base)
    }

    /// Sends a request with the app id and the given extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        match body {
            Some(body) => {
                self.send_raw(
                    method,
                    path,
                    Some(body.to_string().into_bytes()),
                    Some("application/json"),
                    headers,
                )
                .await
            }
            None => self.send_raw(method, path, None, None, headers).await,
        }
    }

    /// As the master key.
    pub async fn master(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(
            method,
            path,
            body,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-master-key", MASTER_KEY),
            ],
        )
        .await
    }

    /// As an anonymous client (app id only).
    pub async fn public(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, body, &[("x-parse-application-id", APP_ID)])
            .await
    }

    /// Stops the server and waits for it to finish (the database closes cleanly).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
        // The server has closed its pool: nothing holds the schema any more.
        if let Some(schema) = self.pg_schema.take() {
            drop_pg_schema(&schema, true);
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(schema) = self.pg_schema.take() {
            drop_pg_schema(&schema, false);
        }
    }
}

/// Asserts a Parse error reply: status, code and (optionally) message.
#[track_caller]
pub fn assert_parse_error(reply: &Reply, status: u16, code: i64, message: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "status of {:?}", reply.body);
    assert_eq!(reply.body["code"], code, "code of {:?}", reply.body);
    assert!(
        reply.body["error"].is_string(),
        "error message of {:?}",
        reply.body
    );
    if let Some(message) = message {
        assert_eq!(reply.body["error"], message);
    }
}

// ---------------------------------------------------------------------------------------
// Additions for the `api` test binary (the API above is unchanged).

/// Percent-encodes a query-string component (everything but RFC 3986 unreserved bytes).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `?a=1&b=…`: string values are sent as they are, anything else as its JSON text.
pub fn query_string(params: &[(&str, Value)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let items: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            format!("{}={}", encode(name), encode(&text))
        })
        .collect();
    format!("?{}", items.join("&"))
}

/// The headers of a master-key request.
pub const MASTER_HEADERS: [(&str, &str); 2] = [
    ("x-parse-application-id", APP_ID),
    ("x-parse-master-key", MASTER_KEY),
];

/// The headers of an anonymous request (app id only).
pub const PUBLIC_HEADERS: [(&str, &str); 1] = [("x-parse-application-id", APP_ID)];

impl TestServer {
    /// Sends raw bytes as the body, with the given `Content-Type` (if any) and headers.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
            text,
        }
    }

    /// The JS SDK's way: `POST` with a `text/plain` JSON body and no `X-Parse-*` headers.
    pub async fn js_sdk(&self, path: &str, body: Value) -> Reply {
        self.send_raw(
            Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            Some("text/plain"),
            &[],
        )
        .await
    }

    /// Creates an object with the master key; panics unless the answer is `201`.
    pub async fn create(&self, class_name: &str, body: Value) -> String {
        let reply = self
            .master(Method::POST, &format!("/classes/{class_name}"), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create in {class_name}: {:?}",
            reply.body
        );
        reply.body["objectId"]
            .as_str()
            .expect("objectId")
            .to_owned()
    }

    /// Creates many objects through `/batch` (in chunks of 50) with the master key.
    pub async fn create_many(&self, class_name: &str, bodies: Vec<Value>) -> Vec<String> {
        let mut ids = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(50) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|body| serde_json::json!({"method": "POST", "path": format!("/parse/classes/{class_name}"), "body": body}))
                .collect();
            let reply = self
                .master(
                    Method::POST,
                    "/batch",
                    Some(serde_json::json!({ "requests": requests })),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "batch create: {:?}",
                reply.body
            );
            for item in reply.body.as_array().expect("batch results") {
                ids.push(
                    item["success"]["objectId"]
                        .as_str()
                        .expect("created id")
                        .to_owned(),
                );
            }
        }
        ids
    }

    /// `GET /classes/:className` with query parameters, as master or as the public.
    pub async fn find_as(&self, master: bool, class_name: &str, params: &[(&str, Value)]) -> Reply {
        let path = format!("/classes/{class_name}{}", query_string(params));
        if master {
            self.master(Method::GET, &path, None).await
        } else {
            self.public(Method::GET, &path, None).await
        }
    }

    /// The results of a master-key find; panics unless it succeeds.
    pub async fn find(&self, class_name: &str, params: &[(&str, Value)]) -> Vec<Value> {
        let reply = self.find_as(true, class_name, params).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "find in {class_name}: {:?}",
            reply.body
        );
        reply.body["results"].as_array().expect("results").clone()
    }

    /// How many objects a class holds (master key, so every object counts).
    pub async fn count(&self, class_name: &str) -> u64 {
        let reply = self
            .find_as(
                true,
                class_name,
                &[("count", Value::from(1)), ("limit", Value::from(0))],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "count of {class_name}: {:?}",
            reply.body
        );
        reply.body["count"].as_u64().expect("count")
    }

    /// One object, read with the master key; panics unless it exists.
    pub async fn get(&self, class_name: &str, object_id: &str) -> Value {
        let reply = self
            .master(
                Method::GET,
                &format!("/classes/{class_name}/{object_id}"),
                None,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "get {class_name}/{object_id}: {:?}",
            reply.body
        );
        reply.body
    }

    /// Creates a class through the schemas API; panics unless it succeeds.
    pub async fn create_class(&self, class_name: &str, body: Value) -> Value {
        let reply = self
            .master(Method::POST, &format!("/schemas/{class_name}"), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "create class {class_name}: {:?}",
            reply.body
        );
        reply.body
    }

    /// Replaces a class's CLP through the schemas API; panics unless it succeeds.
    pub async fn set_clp(&self, class_name: &str, clp: Value) {
        let reply = self
            .master(
                Method::PUT,
                &format!("/schemas/{class_name}"),
                Some(serde_json::json!({"classLevelPermissions": clp})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "set CLP of {class_name}: {:?}",
            reply.body
        );
    }
}

/// The `objectId`s of a list of objects, in order.
pub fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|object| object["objectId"].as_str().expect("objectId").to_owned())
        .collect()
}

/// The values of `field` in a list of objects, in order.
pub fn values(results: &[Value], field: &str) -> Vec<Value> {
    results.iter().map(|object| object[field].clone()).collect()
}

/// The sorted keys of a JSON object.
pub fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// A pointer value.
pub fn pointer(class_name: &str, object_id: &str) -> Value {
    serde_json::json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

/// Parse's date text: `2024-05-01T12:34:56.789Z`.
pub fn is_parse_date(text: &str) -> bool {
    regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        .expect("regex")
        .is_match(text)
}

/// Parse's objectId: 10 characters of `[A-Za-z0-9]`.
pub fn is_object_id(text: &str) -> bool {
    regex::Regex::new(r"^[A-Za-z0-9]{10}$")
        .expect("regex")
        .is_match(text)
}

/// A signed-up user: its `objectId` and session token.
pub struct User {
    pub id: String,
    pub token: String,
}

/// What carries a session token: a [`User`] or the token itself.
pub trait SessionToken {
    fn session_token(&self) -> &str;
}

impl SessionToken for User {
    fn session_token(&self) -> &str {
        &self.token
    }
}

impl SessionToken for str {
    fn session_token(&self) -> &str {
        self
    }
}

impl SessionToken for String {
    fn session_token(&self) -> &str {
        self
    }
}

impl TestServer {
    /// `POST /users` with `{"username": name, "password": "pw"}`; panics unless `201`.
    pub async fn sign_up(&self, name: &str) -> User {
        self.sign_up_with(serde_json::json!({"username": name, "password": "pw"}))
            .await
    }

    /// `POST /users` with this body and the app id only; panics unless it answers `201`.
    pub async fn sign_up_with(&self, body: Value) -> User {
        let reply = self.public(Method::POST, "/users", Some(body)).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "sign-up: {:?}",
            reply.body
        );
        User {
            id: reply.body["objectId"]
                .as_str()
                .expect("objectId")
                .to_owned(),
            token: reply.body["sessionToken"]
                .as_str()
                .expect("sessionToken")
                .to_owned(),
        }
    }

    /// A user and a session for it written directly with the master key (no sign-up), the
    /// session ending `expires_in_hours` from now.
    pub async fn user_with_session(&self, name: &str, expires_in_hours: i64) -> User {
        let id = self
            .create(
                "_User",
                serde_json::json!({"username": name, "password": "pw", "ACL": {}}),
            )
            .await;
        let hex: String = name.bytes().map(|byte| format!("{byte:02x}")).collect();
        let token = format!("r:{hex:0>32}");
        let expires = chrono::Utc::now() + chrono::Duration::hours(expires_in_hours);
        self.create(
            "_Session",
            serde_json::json!({
                "user": pointer("_User", &id),
                "sessionToken": token,
                "createdWith": {"action": "login", "authProvider": "password"},
                "expiresAt": {"__type": "Date", "iso": expires.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()},
            }),
        )
        .await;
        User { id, token }
    }

    /// A request with the app id and a user's session token.
    pub async fn as_user(
        &self,
        user: &(impl SessionToken + ?Sized),
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send(
            method,
            path,
            body,
            &[
                ("x-parse-application-id", APP_ID),
                ("x-parse-session-token", user.session_token()),
            ],
        )
        .await
    }

    /// `owner`'s session with `others` as participants, created by `owner`; its objectId.
    pub async fn session_with(&self, owner: &User, others: &[&User]) -> String {
        let participants: Vec<Value> = others.iter().map(|u| pointer("_User", &u.id)).collect();
        let reply = self
            .as_user(
                owner,
                Method::POST,
                "/classes/ChatSession",
                Some(json!({"participants": participants})),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        reply.body["objectId"].as_str().unwrap().to_owned()
    }

    /// `owner` applies `op` (`Remove`, `AddUnique`, …) with `user` to the `participants` of
    /// session `session_id`.
    pub async fn change_participants(
        &self,
        owner: &User,
        session_id: &str,
        op: &str,
        user: &User,
    ) -> Reply {
        let body = json!({"participants": {"__op": op, "objects": [pointer("_User", &user.id)]}});
        self.as_user(
            owner,
            Method::PUT,
            &format!("/classes/ChatSession/{session_id}"),
            Some(body),
        )
        .await
    }

    /// Calls the cloud function `name` as `user`.
    pub async fn call_as(
        &self,
        user: &(impl SessionToken + ?Sized),
        name: &str,
        params: Value,
    ) -> Reply {
        self.as_user(
            user,
            Method::POST,
            &format!("/functions/{name}"),
            Some(params),
        )
        .await
    }
}

/// The callers of the chat template's access matrices, from the least to the most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caller {
    Anonymous,
    Stranger,
    Participant,
    Owner,
    RoleMember,
    Master,
}

/// Every [`Caller`], in order.
pub const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Stranger,
    Caller::Participant,
    Caller::Owner,
    Caller::RoleMember,
    Caller::Master,
];
