//! The operator's views of a running server, for the console and for scripts (master key
//! only): `GET {mount}/serverStatus` (health, the store's load, the process, LiveQuery
//! clients and subscriptions per class, replies running) and `GET {mount}/generations`
//! (the persona replies being generated, which `cancelGeneration` stops).
//!
//! They show other users' activity (who is connected, which sessions are being answered),
//! so an admin user without the master key does not see them.

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::schema::require_master;
use super::{Auth, FindRequest, OpResult, Operations};

/// When this process started serving, for the uptime.
static STARTED: OnceLock<(Instant, String)> = OnceLock::new();

/// Notes the start of serving (the first call wins).
pub fn mark_started() {
    STARTED.get_or_init(|| (Instant::now(), parlor_core::value::now_iso()));
}

/// Most replies listed by `GET /generations`.
const MAX_LISTED: u64 = 500;

impl Operations {
    /// `GET /serverStatus`: what an operator checks first. `live` is the LiveQuery hub's
    /// register of open connections.
    pub fn server_status(&self, auth: &Auth, live: &crate::live::Hub) -> OpResult<Value> {
        require_master(auth)?;
        let store = self.store.stats();
        let (started, started_at) =
            STARTED.get_or_init(|| (Instant::now(), parlor_core::value::now_iso()));
        let process = crate::metrics::process_figures()
            .map(|(resident, cpu)| json!({"residentBytes": resident, "cpuSeconds": cpu}));
        let generations = match &self.generation {
            Some(generator) => generator.status(),
            None => Value::Null,
        };
        Ok(json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "parseServerVersion": crate::http::info::PARSE_SERVER_VERSION,
            "startedAt": started_at,
            "uptimeSeconds": started.elapsed().as_secs(),
            "database": store.backend,
            "store": {
                "writerQueue": store.writer_queue,
                "connections": store.connections,
                "connectionsInUse": store.connections_in_use,
            },
            "process": process,
            "classes": self.schemas.all_visible().len(),
            "liveQuery": live.status(100),
            "generations": generations,
        }))
    }

    /// `GET /generations`: the persona replies being generated. Those this instance runs
    /// come with their provider, model, user and progress; replies still `streaming` in the
    /// database that another instance runs (or ran, until the sweeper ends them) are listed
    /// from the database, marked `"here": false`.
    pub async fn running_generations(&self, auth: &Auth) -> OpResult<Value> {
        require_master(auth)?;
        let mut results: Vec<Value> = self
            .generation
            .as_ref()
            .map(|generator| generator.running())
            .unwrap_or_default();
        for entry in &mut results {
            entry["here"] = Value::Bool(true);
        }
        let stored = self
            .find(
                auth,
                "Message",
                FindRequest {
                    where_json: json!({"status": "streaming"}),
                    order: Some("createdAt".to_owned()),
                    limit: Some(MAX_LISTED),
                    keys: Some(vec!["session".into(), "persona".into(), "content".into()]),
                    ..FindRequest::default()
                },
            )
            .await?;
        for message in stored.results {
            let Some(message_id) = message.get("objectId").and_then(Value::as_str) else {
                continue;
            };
            if results.iter().any(|entry| entry["messageId"] == message_id) {
                continue;
            }
            let pointer = |field: &str| message.get(field).and_then(|p| p.get("objectId")).cloned();
            let mut entry = Map::new();
            entry.insert("messageId".into(), message_id.into());
            entry.insert(
                "sessionId".into(),
                pointer("session").unwrap_or(Value::Null),
            );
            entry.insert(
                "personaId".into(),
                pointer("persona").unwrap_or(Value::Null),
            );
            entry.insert(
                "startedAt".into(),
                message.get("createdAt").cloned().unwrap_or(Value::Null),
            );
            entry.insert(
                "characters".into(),
                message
                    .get("content")
                    .and_then(Value::as_str)
                    .map_or(0, |text| text.chars().count())
                    .into(),
            );
            entry.insert("here".into(), false.into());
            results.push(Value::Object(entry));
        }
        Ok(super::read::results_body(results))
    }
}
