//! Subscriptions (beyond Parse Server, which has none): for each class, the events of the
//! objects matching a where input, computed by the live-query machinery with the
//! subscriber's own rights; and `messageStream(id)`, a persona reply's text as it grows.
//!
//! A class subscription is a [`crate::live::Subscription`] — the same filter, rights and
//! event rules as a LiveQuery client's — fed by the same change bus. Objects are rendered
//! through the operation layer for the subscriber, so an event never carries a field the
//! subscriber could not read by REST.

use async_graphql::Value as GqlValue;
use async_graphql::dynamic::{
    Enum, Field, FieldValue, InputValue, Object, SchemaBuilder, Subscription, SubscriptionField,
    SubscriptionFieldFuture, TypeRef,
};
use futures::StreamExt;
use parlor_core::object::Object as StoredObject;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::classes::ClassNames;
use super::read::{Plan, get_planned, where_arg};
use super::values::{Caller, ParseObject, failure, ready};
use crate::ai::reply_stream::{ReplyEvent, reply_events};
use crate::live::Subscription as LiveSubscription;
use crate::operation::events::ChangeEvent;
use crate::operation::{Auth, OpError, Operations};

/// One event of a class subscription.
#[derive(Debug, Clone)]
struct ObjectEvent {
    kind: &'static str,
    node: ParseObject,
    original: Option<ParseObject>,
}

/// The `<Type>Event` type and the class's subscription field.
pub fn class_subscription(names: &ClassNames) -> (Object, SubscriptionField) {
    let type_name = &names.type_name;
    let event = Object::new(format!("{type_name}Event"))
        .field(Field::new("event", TypeRef::named_nn("LiveEvent"), |ctx| {
            let kind = ctx
                .parent_value
                .downcast_ref::<ObjectEvent>()
                .map(|event| event.kind);
            ready(kind.map(|kind| {
                FieldValue::value(GqlValue::Enum(async_graphql::Name::new(
                    kind.to_uppercase(),
                )))
            }))
        }))
        .field(Field::new("node", TypeRef::named_nn(type_name), |ctx| {
            let node = ctx
                .parent_value
                .downcast_ref::<ObjectEvent>()
                .map(|event| event.node.clone());
            ready(node.map(FieldValue::owned_any))
        }))
        .field(Field::new("original", TypeRef::named(type_name), |ctx| {
            let original = ctx
                .parent_value
                .downcast_ref::<ObjectEvent>()
                .and_then(|event| event.original.clone());
            ready(original.map(FieldValue::owned_any))
        }));
    let class_name = names.class_name.clone();
    let field = SubscriptionField::new(
        &names.single,
        TypeRef::named_nn(format!("{type_name}Event")),
        move |ctx| {
            let class_name = class_name.clone();
            SubscriptionFieldFuture::new(async move {
                let operations = ctx.data::<Operations>()?.clone();
                let caller = ctx.data::<Caller>()?.clone();
                let hub = ctx.data::<std::sync::Arc<crate::live::Hub>>().ok().cloned();
                if hub.as_ref().is_some_and(|hub| !hub.serves(&class_name)) {
                    return Err(failure(OpError::parse(
                        parlor_core::Code::OperationForbidden,
                        format!("Live queries are not enabled for class {class_name}"),
                    )));
                }
                let where_json = where_arg(&operations, &class_name, ctx.args.get("where"));
                let mut query = json!({"className": class_name, "where": where_json});
                operations
                    .before_subscribe(&caller.auth, &class_name, &mut query, 0)
                    .await
                    .map_err(failure)?;
                let expires_at = match &caller.auth.session_token {
                    Some(token) => {
                        operations
                            .session_info(token)
                            .await
                            .map_err(failure)?
                            .expires_at
                    }
                    None => None,
                };
                let subscription =
                    LiveSubscription::new(&operations, 0, &query, caller.auth.clone(), expires_at)
                        .map_err(failure)?;
                let plan = match operations.schemas.get(&class_name) {
                    Some(schema) => {
                        let node: Vec<_> = ctx
                            .field()
                            .selection_set()
                            .filter(|field| matches!(field.name(), "node" | "original"))
                            .flat_map(|field| field.selection_set().collect::<Vec<_>>())
                            .collect();
                        Plan::of(&operations, &schema, node.into_iter())
                    }
                    None => Plan::default(),
                };
                let events = operations.events.subscribe();
                let state = Following {
                    operations,
                    caller,
                    subscription,
                    plan,
                    events,
                    done: false,
                };
                Ok(futures::stream::unfold(state, next_event)
                    .map(|event| event.map(FieldValue::owned_any)))
            })
        },
    )
    .argument(InputValue::new(
        "where",
        TypeRef::named(format!("{type_name}WhereInput")),
    ));
    (event, field)
}

/// A subscriber's state between events.
struct Following {
    operations: Operations,
    caller: Caller,
    subscription: LiveSubscription,
    /// What the selection shows: pointed objects need a read, a rendering alone lacks them.
    plan: Plan,
    events: tokio::sync::broadcast::Receiver<std::sync::Arc<ChangeEvent>>,
    done: bool,
}

/// The next event for the subscriber, or the end of the stream (with an error when its
/// session ended or it fell behind).
async fn next_event(
    mut state: Following,
) -> Option<(async_graphql::Result<ObjectEvent>, Following)> {
    if state.done {
        return None;
    }
    loop {
        let event = match state.events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => {
                state.done = true;
                let error = OpError::parse(
                    parlor_core::Code::InternalServerError,
                    "The subscriber fell behind the event stream; subscribe again.",
                );
                return Some((Err(failure(error)), state));
            }
            Err(RecvError::Closed) => return None,
        };
        if let Err(error) = keep_current(&mut state, &event).await {
            state.done = true;
            return Some((Err(failure(error)), state));
        }
        if event.class_name != state.subscription.schema.class_name {
            continue;
        }
        let Some(kind) = state
            .subscription
            .event_for(event.before.as_ref(), event.after.as_ref())
        else {
            continue;
        };
        let (current, original) = match kind {
            crate::live::EventKind::Delete => (event.before.clone(), None),
            crate::live::EventKind::Create => (event.after.clone(), None),
            _ => (event.after.clone(), event.before.clone()),
        };
        let Some(current) = current else {
            continue;
        };
        // A leave because the subscriber lost the right to read the object: its new state
        // is none of its business.
        let node =
            if kind == crate::live::EventKind::Leave && !state.subscription.may_read(&current) {
                let mut json = serde_json::Map::new();
                json.insert("objectId".into(), Value::String(current.object_id.clone()));
                json.insert(
                    "createdAt".into(),
                    Value::String(current.created_at.clone()),
                );
                json.insert(
                    "updatedAt".into(),
                    Value::String(current.updated_at.clone()),
                );
                ParseObject {
                    class_name: event.class_name.clone(),
                    json,
                }
            } else {
                match render(&state, current, kind != crate::live::EventKind::Delete).await {
                    Some(node) => node,
                    None => continue,
                }
            };
        let original = match original {
            Some(before) => render(&state, before, false).await,
            None => None,
        };
        let event = ObjectEvent {
            kind: kind.op(),
            node,
            original,
        };
        return Some((Ok(event), state));
    }
}

/// An object as the subscriber reads it; with pointed objects included (one read of the
/// object as it is now) when the selection shows them.
async fn render(state: &Following, object: StoredObject, current: bool) -> Option<ParseObject> {
    let class_name = state.subscription.schema.class_name.clone();
    if current && !state.plan.include.is_empty() {
        // The object as it is now, with the pointed objects the subscriber may read.
        return get_planned(
            &state.operations,
            &state.caller,
            &class_name,
            &object.object_id,
            &state.plan,
        )
        .await
        .ok();
    }
    let json = state
        .operations
        .render_one(&state.subscription.auth, &state.subscription.schema, object)
        .await
        .ok()?;
    Some(ParseObject { class_name, json })
}

/// Ends the subscription when its session ends; rebuilds it when the subscriber's roles or
/// the class's schema change (its rights may have).
async fn keep_current(state: &mut Following, event: &ChangeEvent) -> Result<(), OpError> {
    let auth = &state.subscription.auth;
    if let Some(token) = &auth.session_token {
        let revoked = event.class_name == "_Session"
            && event.after.is_none()
            && event
                .before
                .as_ref()
                .and_then(|before| before.fields.get("sessionToken"))
                .and_then(Value::as_str)
                == Some(token.as_str());
        let expired = state
            .subscription
            .expires_at
            .as_ref()
            .is_some_and(|expiry| *expiry <= event.at);
        if revoked || expired {
            return Err(OpError::parse(
                parlor_core::Code::InvalidSessionToken,
                "Invalid session token",
            ));
        }
    }
    let schema_changed = state.subscription.schema_version != state.operations.schemas.version();
    let roles_changed = event.class_name == "_Role" && auth.user_id.is_some();
    if schema_changed || roles_changed {
        let mut auth: Auth = auth.clone();
        if let Some(user_id) = &auth.user_id {
            auth.roles = state.operations.roles_of(user_id).await?;
        }
        state.caller.auth = auth.clone();
        state.subscription = state.subscription.rebuild(&state.operations, auth)?;
    }
    Ok(())
}

/// A reply's growth, as `messageStream` sends it.
#[derive(Debug, Clone)]
struct Delta {
    offset: usize,
    text: String,
    done: bool,
    status: Option<String>,
    error: Option<String>,
}

/// The live types and `messageStream`.
pub fn register(
    builder: SchemaBuilder,
    subscription: Subscription,
    known: &dyn Fn(&str) -> Option<String>,
) -> (SchemaBuilder, Subscription) {
    let builder = builder
        .register(Enum::new("LiveEvent").items(["CREATE", "UPDATE", "ENTER", "LEAVE", "DELETE"]));
    if known("Message").is_none() {
        return (builder, subscription);
    }
    let delta_field =
        |name: &'static str, type_ref: TypeRef, read: fn(&Delta) -> Option<GqlValue>| {
            Field::new(name, type_ref, move |ctx| {
                let value = ctx.parent_value.downcast_ref::<Delta>().and_then(read);
                ready(value.map(FieldValue::value))
            })
        };
    let builder = builder.register(
        Object::new("MessageDelta")
            .field(delta_field(
                "offset",
                TypeRef::named_nn(TypeRef::INT),
                |delta| Some(GqlValue::from(delta.offset as u64)),
            ))
            .field(delta_field(
                "text",
                TypeRef::named_nn(TypeRef::STRING),
                |delta| Some(GqlValue::String(delta.text.clone())),
            ))
            .field(delta_field(
                "done",
                TypeRef::named_nn(TypeRef::BOOLEAN),
                |delta| Some(GqlValue::Boolean(delta.done)),
            ))
            .field(delta_field(
                "status",
                TypeRef::named(TypeRef::STRING),
                |delta| delta.status.clone().map(GqlValue::String),
            ))
            .field(delta_field(
                "error",
                TypeRef::named(TypeRef::STRING),
                |delta| delta.error.clone().map(GqlValue::String),
            )),
    );
    let field = SubscriptionField::new("messageStream", TypeRef::named_nn("MessageDelta"), |ctx| {
        SubscriptionFieldFuture::new(async move {
            let operations = ctx.data::<Operations>()?.clone();
            let caller = ctx.data::<Caller>()?.clone();
            let id = super::names::object_id_of("Message", ctx.args.try_get("id")?.string()?);
            let offset = match ctx.args.get("offset") {
                Some(offset) if !offset.is_null() => usize::try_from(offset.i64()?).unwrap_or(0),
                _ => 0,
            };
            let events = reply_events(&operations, &caller.auth, &id, offset)
                .await
                .map_err(failure)?;
            Ok(events.map(|event| {
                Ok(FieldValue::owned_any(match event {
                    ReplyEvent::Delta { offset, text } => Delta {
                        offset,
                        text,
                        done: false,
                        status: None,
                        error: None,
                    },
                    ReplyEvent::Done { status, error } => Delta {
                        offset: 0,
                        text: String::new(),
                        done: true,
                        status: Some(status),
                        error,
                    },
                }))
            }))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)));
    (builder, subscription.field(field))
}
