//! Change events between instances sharing one database.
//!
//! Each instance hands the changes it commits (in commit order, from the store's change sink)
//! and the names of the classes whose schema it changes to a publisher task, which sends them
//! on a channel every instance listens to: PostgreSQL's LISTEN/NOTIFY by default, or Redis
//! pub/sub (`redis`). A listener task receives the other instances'
//! messages: changes go to this instance's live-query bus exactly as its own do, a `_Role`
//! change drops the role cache, and a schema change reloads that class's schema. Messages an
//! instance sent itself are recognised by its id and skipped.
//!
//! Order: one instance's changes reach the others in its commit order. If the listening
//! connection drops, it reconnects; messages sent meanwhile are lost (logged).
//!
//! Batches: the publisher sends what has queued up meanwhile as one message (a schema change
//! first, then the changes in commit order). One message per change was one round trip per
//! commit: a burst of writes (a bulk import, a busy minute) queued faster than it was sent,
//! and the backlog kept the database and this process busy, and held memory, long after.
//! Each message starts with its sender's id, so an instance skips its own unparsed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parlor_core::object::Object;
use parlor_store::postgres::channel::PgChannel;
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::operation::Operations;

mod redis;

/// The channel between instances.
#[derive(Clone)]
enum Channel {
    Postgres(PgChannel),
    Redis(redis::RedisChannel),
}

impl Channel {
    async fn connect(url: &str) -> anyhow::Result<Channel> {
        if url.starts_with("redis://") {
            let channel = redis::RedisChannel::new(url)?;
            channel.check().await?;
            return Ok(Channel::Redis(channel));
        }
        let channel = PgChannel::connect(url)
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(Channel::Postgres(channel))
    }

    async fn publish(&self, payload: &str) -> anyhow::Result<()> {
        match self {
            Channel::Postgres(channel) => channel
                .publish(payload)
                .await
                .map_err(|error| anyhow::anyhow!("{error}")),
            Channel::Redis(channel) => Ok(channel.publish(payload).await?),
        }
    }

    /// The messages from now on; those starting with `own_head` may be left out (PostgreSQL
    /// then does not read a stored one back).
    async fn subscribe(
        &self,
        own_head: &str,
    ) -> anyhow::Result<futures::stream::BoxStream<'static, String>> {
        match self {
            Channel::Postgres(channel) => channel
                .subscribe(Some(own_head.to_owned()))
                .await
                .map_err(|error| anyhow::anyhow!("{error}")),
            Channel::Redis(channel) => Ok(channel.subscribe().await?),
        }
    }
}
use crate::operation::events::ChangeEvent;

/// Connects the channel and starts the publisher and the listener.
pub async fn start(operations: &Operations, url: &str) -> anyhow::Result<()> {
    let channel = Channel::connect(url).await?;
    let instance: String = {
        let bytes: [u8; 8] = rand::rng().random();
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    };
    let (changes, mut committed) = mpsc::unbounded_channel::<Arc<ChangeEvent>>();
    let (schema_changes, mut changed_classes) = mpsc::unbounded_channel::<String>();
    operations.events.set_outlet(changes);
    operations.schemas.set_watcher(schema_changes);

    let publisher = channel.clone();
    let me = instance.clone();
    tokio::spawn(async move {
        let mut batch = Batch::new(&me);
        loop {
            tokio::select! {
                Some(event) = committed.recv() => batch.push_change(&event),
                Some(class_name) = changed_classes.recv() => batch.push_schema(&class_name),
                else => break,
            };
            // What queued up while the last message was being sent goes out with this one.
            while !batch.is_full() {
                if let Ok(class_name) = changed_classes.try_recv() {
                    batch.push_schema(&class_name);
                } else if let Ok(event) = committed.try_recv() {
                    batch.push_change(&event);
                } else {
                    break;
                }
            }
            if let Err(error) = publisher.publish(&batch.take()).await {
                tracing::warn!(%error, "could not publish changes to the other instances");
            }
        }
    });

    // Listen before answering requests, so nothing sent from now on is missed.
    let own_head = message_head(&instance);
    let mut messages = channel.subscribe(&own_head).await?;
    let operations = operations.clone();
    tokio::spawn(async move {
        loop {
            while let Some(text) = messages.next().await {
                receive(&operations, &own_head, &text).await;
            }
            tracing::warn!("lost the pub/sub connection; reconnecting");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match channel.subscribe(&own_head).await {
                    Ok(stream) => {
                        messages = stream;
                        break;
                    }
                    Err(error) => tracing::warn!(%error, "pub/sub reconnect failed"),
                }
            }
        }
    });
    Ok(())
}

/// At most this many items, or about this many bytes, go in one message.
const BATCH_ITEMS: usize = 1000;
const BATCH_BYTES: usize = 256 * 1024;

/// One message being put together: `{"i":"<sender>","e":[<item>,…]}`, where an item is
/// `{"s":"<class>"}` (its schema changed) or `{"c":"<class>","b":<before>,"a":<after>}`.
struct Batch {
    /// `{"i":"<sender>","e":[`: what every message of this instance starts with.
    head: String,
    /// Schema changes, sent first: the changes after them may use the new fields.
    schemas: Vec<String>,
    changes: Vec<String>,
    bytes: usize,
}

impl Batch {
    fn new(instance: &str) -> Batch {
        Batch {
            head: message_head(instance),
            schemas: Vec::new(),
            changes: Vec::new(),
            bytes: 0,
        }
    }

    fn push_schema(&mut self, class_name: &str) {
        let item = json!({ "s": class_name }).to_string();
        self.bytes += item.len();
        self.schemas.push(item);
    }

    fn push_change(&mut self, event: &ChangeEvent) {
        let state = |object: &Option<Object>| {
            object
                .clone()
                .map_or(Value::Null, |object| Value::Object(object.into_json()))
        };
        let item =
            json!({"c": event.class_name, "b": state(&event.before), "a": state(&event.after)})
                .to_string();
        self.bytes += item.len();
        self.changes.push(item);
    }

    fn is_full(&self) -> bool {
        self.schemas.len() + self.changes.len() >= BATCH_ITEMS || self.bytes >= BATCH_BYTES
    }

    /// The message, leaving the batch empty.
    fn take(&mut self) -> String {
        let items: Vec<String> = self
            .schemas
            .drain(..)
            .chain(self.changes.drain(..))
            .collect();
        self.bytes = 0;
        format!("{}{}]}}", self.head, items.join(","))
    }
}

/// How every message `instance` sends starts.
fn message_head(instance: &str) -> String {
    format!("{{\"i\":{},\"e\":[", Value::from(instance))
}

/// Another instance's message; `own_head` is how this instance's own start.
async fn receive(operations: &Operations, own_head: &str, text: &str) {
    if text.starts_with(own_head) {
        return;
    }
    let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(Value::Array(items)) = message.remove("e") else {
        return;
    };
    for item in items {
        if let Value::Object(item) = item {
            receive_item(operations, item).await;
        }
    }
}

/// One item of another instance's message.
async fn receive_item(operations: &Operations, mut message: serde_json::Map<String, Value>) {
    if let Some(class_name) = message.get("s").and_then(Value::as_str) {
        match operations.store.load_schemas().await {
            Ok(schemas) => {
                let schema = schemas
                    .into_iter()
                    .find(|schema| schema.class_name == class_name);
                operations.schemas.adopt(class_name, schema);
            }
            Err(error) => {
                tracing::warn!(%error, "could not reload a schema another instance changed")
            }
        }
        return;
    }
    let Some(Value::String(class_name)) = message.remove("c") else {
        return;
    };
    let state = |value: Option<Value>| match value {
        Some(Value::Object(map)) => Object::from_json(map).ok(),
        _ => None,
    };
    let before = state(message.remove("b"));
    let after = state(message.remove("a"));
    match class_name.as_str() {
        "_Role" => operations.invalidate_roles(),
        "_Session" => operations.invalidate_sessions(),
        crate::ai::generation::PERSONA_CLASS => operations.personas.clear(),
        "ChatSession" => operations.chat_sessions.clear(),
        _ => {}
    }
    operations
        .events
        .publish_remote(ChangeEvent::new(class_name, before, after));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(class_name: &str, id: &str) -> ChangeEvent {
        let object = Object::from_json(
            json!({"objectId": id, "createdAt": "2026-01-01T00:00:00.000Z",
                   "updatedAt": "2026-01-01T00:00:00.000Z"})
            .as_object()
            .cloned()
            .unwrap(),
        )
        .unwrap();
        ChangeEvent::new(class_name.to_owned(), None, Some(object))
    }

    #[test]
    fn a_batch_is_one_message_schema_changes_first_then_changes_in_order() {
        let mut batch = Batch::new("me\"1");
        batch.push_change(&change("Counter", "a"));
        batch.push_schema("Counter");
        batch.push_change(&change("Counter", "b"));
        let text = batch.take();
        assert!(text.starts_with(&message_head("me\"1")));
        assert!(!text.starts_with(&message_head("me")));
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["i"], "me\"1");
        let items = message["e"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], json!({"s": "Counter"}));
        assert_eq!(items[1]["a"]["objectId"], "a");
        assert_eq!(items[2]["a"]["objectId"], "b");
        assert_eq!(items[1]["c"], "Counter");
        assert!(items[1]["b"].is_null());
        // Taken: the next message starts empty.
        let empty: Value = serde_json::from_str(&batch.take()).unwrap();
        assert_eq!(empty["e"], json!([]));
    }

    #[test]
    fn a_batch_is_full_at_its_item_or_byte_limit() {
        let mut batch = Batch::new("me");
        for index in 0..BATCH_ITEMS - 1 {
            batch.push_change(&change("Counter", &index.to_string()));
        }
        assert!(!batch.is_full());
        batch.push_schema("Counter");
        assert!(batch.is_full());
        batch.take();
        assert!(!batch.is_full());
        let mut big = change("Counter", "big");
        if let Some(after) = &mut big.after {
            after
                .fields
                .insert("blob".into(), json!("x".repeat(BATCH_BYTES)));
        }
        batch.push_change(&big);
        assert!(batch.is_full());
    }
}
