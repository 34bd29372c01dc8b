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

    async fn subscribe(&self) -> anyhow::Result<futures::stream::BoxStream<'static, String>> {
        match self {
            Channel::Postgres(channel) => channel
                .subscribe()
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
        loop {
            let message = tokio::select! {
                Some(event) = committed.recv() => change_message(&me, &event),
                Some(class_name) = changed_classes.recv() => json!({"i": me, "s": class_name}),
                else => break,
            };
            if let Err(error) = publisher.publish(&message.to_string()).await {
                tracing::warn!(%error, "could not publish a change to the other instances");
            }
        }
    });

    // Listen before answering requests, so nothing sent from now on is missed.
    let mut messages = channel.subscribe().await?;
    let operations = operations.clone();
    tokio::spawn(async move {
        loop {
            while let Some(text) = messages.next().await {
                receive(&operations, &instance, &text).await;
            }
            tracing::warn!("lost the pub/sub connection; reconnecting");
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match channel.subscribe().await {
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

fn change_message(instance: &str, event: &ChangeEvent) -> Value {
    let state = |object: &Option<Object>| {
        object
            .clone()
            .map_or(Value::Null, |object| Value::Object(object.into_json()))
    };
    json!({"i": instance, "c": event.class_name, "b": state(&event.before), "a": state(&event.after)})
}

async fn receive(operations: &Operations, instance: &str, text: &str) {
    let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if message.get("i").and_then(Value::as_str) == Some(instance) {
        return;
    }
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
        _ => {}
    }
    operations
        .events
        .publish_remote(ChangeEvent::new(class_name, before, after));
}
