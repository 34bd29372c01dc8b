//! Replies that outlive their server: with several instances (or after a crash), a reply's
//! generation runs on one server only, and everything else learns of it through the message.
//!
//! - While a reply streams, its server writes `heartbeatAt` every third of
//!   `--reply-stale-after` (besides the text it flushes). Every write of a streaming reply is a compare-and-set on
//!   `status = "streaming"`: when it fails, another server ended the reply (a
//!   `cancelGeneration` that reached another instance, or the sweeper below), and the
//!   generation stops, closing its upstream request.
//! - Every server sweeps every sixth of `--reply-stale-after`: a reply still `streaming` whose
//!   message has not moved for that long and that does not run here lost its server; it is
//!   marked `failed` (again a compare-and-set, on its `updatedAt` too, so a live server's
//!   write wins the race). A reply therefore never stays `streaming` for much longer than
//!   `--reply-stale-after` (30 s by default) after its server died.

use std::sync::Arc;
use std::time::Duration;

use super::{Generator, Running};
use crate::operation::{Auth, OpError, OpResult, Operations};
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand};
use parlor_core::schema::FieldType;
use parlor_core::value::now_iso;
use serde_json::{Map, Value, json};

/// The error a reply gets when its server died.
pub const ORPHANED: &str = "The server generating this reply stopped before it finished.";

fn condition(field: &str, field_type: FieldType, cond: Cond) -> Filter {
    Filter::Cond {
        field: FieldRef {
            field: field.to_owned(),
            path: Vec::new(),
            field_type: Some(field_type),
        },
        cond,
    }
}

fn still_streaming() -> Filter {
    condition(
        "status",
        FieldType::String,
        Cond::Eq(Operand::String("streaming".into())),
    )
}

/// Updates a reply as the master key if it is still `streaming`; `Ok(false)` when it is not
/// (another server ended it).
pub async fn update_while_streaming(
    operations: &Operations,
    message_id: &str,
    body: Map<String, Value>,
) -> OpResult<bool> {
    update_if(operations, message_id, body, still_streaming()).await
}

async fn update_if(
    operations: &Operations,
    message_id: &str,
    body: Map<String, Value>,
    condition: Filter,
) -> OpResult<bool> {
    let plan = operations
        .plan_update(&Auth::master(), "Message", message_id, &body)
        .await?
        .only_if(condition);
    match operations.commit_one(plan).await {
        Ok(_) => Ok(true),
        Err(OpError::Store(parlor_store::StoreError::ObjectNotFound)) => Ok(false),
        Err(OpError::Parse(error)) if error.code == parlor_core::Code::ObjectNotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes `heartbeatAt` every `stale_after / 3` until the reply ends; if another server ended it,
/// asks the generation to stop. Runs as its own task, aborted with the generation.
pub async fn keep_alive(
    operations: Operations,
    message_id: String,
    running: Arc<Running>,
    stale_after: Duration,
) {
    let mut tick = tokio::time::interval(stale_after / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let mut body = Map::new();
        body.insert(
            "heartbeatAt".into(),
            json!({"__type": "Date", "iso": now_iso()}),
        );
        match update_while_streaming(&operations, &message_id, body).await {
            Ok(true) => {}
            Ok(false) => {
                running.cancel.send_replace(true);
                return;
            }
            Err(error) => tracing::warn!(%error, message_id, "a reply's heartbeat failed"),
        }
    }
}

/// Marks the replies whose server died as failed, every sixth of `stale_after`, for as long
/// as the generator lives.
pub async fn sweep_forever(operations: Operations, generator: std::sync::Weak<Generator>) {
    let Some(every) = generator
        .upgrade()
        .map(|generator| generator.stale_after() / 6)
    else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(generator) = generator.upgrade() else {
            return;
        };
        if let Err(error) = sweep(&operations, &generator).await {
            tracing::warn!(%error, "looking for orphaned replies failed");
        }
    }
}

/// One sweep; returns how many replies it marked failed. The template's `streaming_replies`
/// index (`status`, `updatedAt`) keeps it a range read however many messages there are.
pub async fn sweep(operations: &Operations, generator: &Arc<Generator>) -> OpResult<usize> {
    let Some(schema) = operations.schemas.get("Message") else {
        return Ok(0);
    };
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(generator.stale_after())
            .unwrap_or_else(|_| chrono::Duration::zero());
    let cutoff = cutoff.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let stale = still_streaming().and(condition(
        "updatedAt",
        FieldType::Date,
        Cond::Lt(Operand::Date(cutoff)),
    ));
    let mut query = FindQuery::filter(stale);
    query.limit = Some(100);
    let orphans = operations.store.find(&schema, &query).await?;
    let mut marked = 0;
    for orphan in orphans {
        if generator.running(&orphan.object_id).is_some() {
            continue;
        }
        let mut body = Map::new();
        body.insert("status".into(), json!("failed"));
        body.insert("error".into(), json!(ORPHANED));
        let unchanged = still_streaming().and(condition(
            "updatedAt",
            FieldType::Date,
            Cond::Eq(Operand::Date(orphan.updated_at.clone())),
        ));
        if update_if(operations, &orphan.object_id, body, unchanged).await? {
            marked += 1;
        }
    }
    Ok(marked)
}
