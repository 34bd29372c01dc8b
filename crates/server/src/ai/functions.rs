//! The cloud functions of the AI chat template (`POST {mount}/functions/<name>`):
//! `generate`, `cancelGeneration`, `regenerate`, `searchContext`, `summarizeSession`,
//! `previewContext` (the prompt a persona would see next, without sending it) and
//! `leaveSession` (a participant leaves; the session's update CLP is the owner's alone).
//!
//! Each one first reads the session (and the message) with the caller's own rights, through
//! the read path, and checks membership ([`member_session`]): only the session's owner and
//! participants (or the master key) get past it, and everyone else hears the same `101`
//! before anything changes. Limits are checked before a message is created,
//! so a refused `generate` leaves nothing behind.

use std::sync::Arc;

use parlor_core::object::Object;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use crate::ai::context::Summarized;
use crate::ai::generation::{self, Generator, Job, pointer_id};
use crate::ai::provider::ChatRole;
use crate::ai::{context, search, tokens};
use crate::operation::template_rules::is_session_member;
use crate::operation::{Auth, GetRequest, OpError, OpResult, Operations};

/// The functions [`call`] runs (GraphQL's `CloudCodeFunction` enum lists them).
pub const NAMES: [&str; 5] = [
    "generate",
    "cancelGeneration",
    "regenerate",
    "searchContext",
    "summarizeSession",
];

/// Whether `name` is one of the functions [`call`] runs (an app's Cloud Code cannot replace
/// them).
pub fn is_built_in(name: &str) -> bool {
    NAMES.contains(&name) || matches!(name, "previewContext" | "leaveSession")
}

/// Runs the cloud function `name`; its `result`.
pub async fn call(
    operations: &Operations,
    auth: &Auth,
    name: &str,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    match name {
        "generate" => generate(operations, auth, params).await,
        "cancelGeneration" => cancel_generation(operations, auth, params).await,
        "regenerate" => regenerate(operations, auth, params).await,
        "searchContext" => search_context(operations, auth, params).await,
        "summarizeSession" => summarize_session(operations, auth, params).await,
        "previewContext" => preview_context(operations, auth, params).await,
        "leaveSession" => leave_session(operations, auth, params).await,
        // Parse Server's own answer to an unknown function.
        _ => Err(failed(format!("Invalid function: \"{name}\""))),
    }
}

fn failed(message: impl Into<std::borrow::Cow<'static, str>>) -> OpError {
    OpError::parse(Code::ScriptFailed, message)
}

fn text_param<'a>(params: &'a Map<String, Value>, name: &str) -> OpResult<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| failed(format!("{name} is required")))
}

fn generator(operations: &Operations) -> OpResult<Arc<Generator>> {
    generation::generator(operations)
        .ok_or_else(|| failed("AI generation is not enabled on this server"))
}

/// The session as stored, once the caller has shown it is a member (owner or participant)
/// or the master key. Every function answers anyone else alike — "not found" (`101`), as a
/// GET of the session does — whether the session exists or not.
async fn member_session(
    operations: &Operations,
    auth: &Auth,
    session_id: &str,
) -> OpResult<Object> {
    if !auth.master && auth.user_id.is_none() {
        return Err(Error::new(
            Code::InvalidSessionToken,
            "A logged-in session participant is required.",
        )
        .into());
    }
    operations
        .get(auth, "ChatSession", session_id, GetRequest::default())
        .await?;
    let session = operations
        .load_object("ChatSession", session_id)
        .await?
        .ok_or_else(Error::object_not_found)?;
    let member = auth.master
        || auth
            .user_id
            .as_deref()
            .is_some_and(|user_id| is_session_member(&session, user_id));
    if member {
        Ok(session)
    } else {
        Err(Error::object_not_found().into())
    }
}

/// The message's JSON as the caller reads it, and the session it belongs to.
async fn readable_message(
    operations: &Operations,
    auth: &Auth,
    message_id: &str,
) -> OpResult<(Value, Object)> {
    let message = operations
        .get(auth, "Message", message_id, GetRequest::default())
        .await?;
    let session_id = pointer_id(message.get("session"), "ChatSession")
        .ok_or_else(Error::object_not_found)?
        .to_owned();
    let session = member_session(operations, auth, &session_id).await?;
    Ok((message, session))
}

/// Takes a slot and checks the quota, as Parse errors: the caller asked directly.
async fn admit(
    generator: &Arc<Generator>,
    operations: &Operations,
    user: Option<&str>,
) -> OpResult<generation::Slot> {
    let slot = generator.try_slot(user).map_err(failed)?;
    if let Some(user) = user {
        generator
            .check_quota(operations, user)
            .await
            .map_err(failed)?;
    }
    Ok(slot)
}

/// `generate {sessionId, personaId?}` → `{messageId}`: one reply now, by the named persona
/// or, without one, the persona whose turn it is (round_robin) or the first one.
async fn generate(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let generator = generator(operations)?;
    let session_id = text_param(params, "sessionId")?;
    let session = member_session(operations, auth, session_id).await?;
    let persona = chosen_persona(operations, &generator, &session, params).await?;
    let user = auth.user_id.clone();
    let slot = admit(&generator, operations, user.as_deref()).await?;
    let job = Job {
        session,
        persona,
        user,
        parent: None,
        message_id: None,
    };
    let (message_id, _) = generator.launch(operations, job, Ok(slot)).await?;
    Ok(json!({"messageId": message_id}))
}

/// The persona `params.personaId` names (one of the session's), or without one the persona
/// whose turn it is (round_robin) or the first one.
async fn chosen_persona(
    operations: &Operations,
    generator: &Generator,
    session: &Object,
    params: &Map<String, Value>,
) -> OpResult<Object> {
    let personas = generation::session_personas(operations, session).await?;
    match params.get("personaId").and_then(Value::as_str) {
        Some(persona_id) => personas
            .into_iter()
            .find(|persona| persona.object_id == persona_id)
            .ok_or_else(|| failed("personaId is not a persona of this session")),
        None => {
            let round_robin =
                session.fields.get("policy").and_then(Value::as_str) == Some("round_robin");
            let chosen = if round_robin {
                generation::policy::next_in_turn(
                    operations,
                    session,
                    personas,
                    generator.chosen_last(&session.object_id),
                )
                .await?
            } else {
                personas.into_iter().next()
            };
            chosen.ok_or_else(|| failed("this session has no personas"))
        }
    }
}

/// `previewContext {sessionId, personaId?}` → what the persona (chosen as `generate` would)
/// will see when it answers next: the system prompt's parts and the history that fits, with
/// token counts, the model and its window. The same rights as `generate`; it sends nothing
/// to a provider and changes nothing.
async fn preview_context(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let generator = generator(operations)?;
    let session_id = text_param(params, "sessionId")?;
    let session = member_session(operations, auth, session_id).await?;
    let persona = chosen_persona(operations, &generator, &session, params).await?;
    let plan = generator
        .plan(&persona)
        .map_err(|error| failed(error.to_string()))?;
    let assembly = context::assemble(
        operations,
        &session,
        &persona,
        &plan.model,
        plan.max_output,
        plan.window,
        None,
    )
    .await?;
    let offered = crate::ai::tools::offered(generator.tools(), &persona).await;
    let tools: Vec<Value> = offered
        .iter()
        .map(|tool| json!({"name": tool.name, "description": tool.description}))
        .collect();
    let count = |text: &str| tokens::count_tokens(&plan.model, text);
    let system = assembly.system();
    let system_tokens = if system.is_empty() {
        0
    } else {
        count(&system) + tokens::TOKENS_PER_MESSAGE
    };
    let parts: Vec<Value> = assembly
        .sections
        .iter()
        .map(|section| json!({"kind": section.kind, "text": section.text, "tokens": count(&section.text)}))
        .collect();
    let mut history_tokens = 0;
    let messages: Vec<Value> = assembly
        .turns
        .iter()
        .map(|(object_id, turn)| {
            let tokens = count(&turn.content)
                + turn.name.as_deref().map_or(0, count)
                + tokens::TOKENS_PER_MESSAGE;
            history_tokens += tokens;
            let role = match turn.role {
                ChatRole::User => "user",
                ChatRole::Assistant => "assistant",
            };
            json!({
                "objectId": object_id,
                "role": role,
                "name": turn.name,
                "content": turn.content,
                "tokens": tokens,
            })
        })
        .collect();
    Ok(json!({
        "persona": {
            "objectId": persona.object_id,
            "name": persona.fields.get("name").cloned().unwrap_or(Value::Null),
        },
        "model": plan.model,
        "contextWindow": plan.window,
        "maxOutputTokens": plan.max_output,
        "system": {"text": system, "tokens": system_tokens, "parts": parts},
        "messages": messages,
        "historyTokens": history_tokens,
        "totalTokens": system_tokens + history_tokens,
        "leftOut": assembly.left_out,
        "olderUnread": assembly.older_unread,
        "tools": tools,
    }))
}

/// `leaveSession {sessionId}` → `{left: true}`: the caller stops being a participant (the
/// session's ACL and its messages' follow, as for any change of participants). The owner
/// cannot leave: they archive or delete the session instead.
async fn leave_session(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let session_id = text_param(params, "sessionId")?;
    let session = member_session(operations, auth, session_id).await?;
    let user_id = auth
        .user_id
        .as_deref()
        .ok_or_else(|| failed("only a participant can leave a session"))?;
    if pointer_id(session.fields.get("owner"), "_User") == Some(user_id) {
        return Err(failed(
            "The owner cannot leave the session; archive or delete it instead.",
        ));
    }
    let participants = generation::pointer_ids(session.fields.get("participants"), "_User");
    if !participants.iter().any(|id| id == user_id) {
        return Err(failed("You are not a participant of this session."));
    }
    // The session's update CLP is its owner's: the change is made with the owner's rights,
    // so the template's rules recompute the session's ACL and its messages' and Context's
    // in the same transaction, exactly as when the owner removes a participant. It removes
    // the caller and nothing else.
    let owner_id = pointer_id(session.fields.get("owner"), "_User")
        .ok_or_else(|| failed("this session has no owner"))?
        .to_owned();
    let owner = Auth {
        roles: operations.roles_of(&owner_id).await?,
        user_id: Some(owner_id),
        ..Auth::default()
    };
    let mut body = Map::new();
    body.insert(
        "participants".into(),
        json!({"__op": "Remove", "objects": [generation::pointer("_User", user_id)]}),
    );
    let plan = operations
        .plan_update(&owner, "ChatSession", session_id, &body)
        .await?;
    operations.commit_one(plan).await?;
    Ok(json!({"left": true}))
}

/// `summarizeSession {sessionId}` → `{summary}`: folds the session's older turns into its
/// Context's `summary` now (it also happens in the background when history outgrows the
/// window); `{summary: null, reason}` says why nothing was summarised.
async fn summarize_session(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let session_id = text_param(params, "sessionId")?;
    member_session(operations, auth, session_id).await?;
    Ok(
        match crate::ai::context::summarize_session(operations, session_id).await? {
            Summarized::Written(summary) => json!({"summary": summary}),
            Summarized::Skipped(reason) => json!({"summary": null, "reason": reason}),
        },
    )
}

/// `cancelGeneration {messageId}` → the message: stops the reply (and its upstream request).
async fn cancel_generation(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let generator = generator(operations)?;
    let message_id = text_param(params, "messageId")?;
    let (message, _) = readable_message(operations, auth, message_id).await?;
    if message.get("role").and_then(Value::as_str) != Some("assistant") {
        return Err(failed("only a persona's reply can be cancelled"));
    }
    let stopped = generator.cancel(message_id).await;
    if !stopped && message.get("status").and_then(Value::as_str) == Some("streaming") {
        // It runs on another server (which sees the status change at its next write and
        // stops), or on none any more (this one restarted mid-reply).
        let mut body = Map::new();
        body.insert("status".into(), json!("cancelled"));
        generation::recovery::update_while_streaming(operations, message_id, body).await?;
    }
    operations
        .get(auth, "Message", message_id, GetRequest::default())
        .await
}

/// `regenerate {messageId}` → `{messageId}`: a new reply by the same persona, linked to the
/// old one by `parent`; the old one is kept.
async fn regenerate(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let generator = generator(operations)?;
    let message_id = text_param(params, "messageId")?;
    let (message, session) = readable_message(operations, auth, message_id).await?;
    let persona_id = pointer_id(message.get("persona"), "Persona")
        .ok_or_else(|| failed("only a persona's reply can be regenerated"))?;
    let persona = generation::load_persona(operations, persona_id)
        .await?
        .ok_or_else(|| failed("the persona of this message no longer exists"))?;
    let user = auth.user_id.clone();
    let slot = admit(&generator, operations, user.as_deref()).await?;
    let job = Job {
        session,
        persona,
        user,
        parent: Some(message_id.to_owned()),
        message_id: None,
    };
    let (new_id, _) = generator.launch(operations, job, Ok(slot)).await?;
    Ok(json!({"messageId": new_id}))
}

/// `searchContext {sessionId, query, limit?}` → hits `{objectId, className, snippet, createdAt}`.
async fn search_context(
    operations: &Operations,
    auth: &Auth,
    params: &Map<String, Value>,
) -> OpResult<Value> {
    let session_id = text_param(params, "sessionId")?;
    let query = text_param(params, "query")?;
    let limit = params
        .get("limit")
        .and_then(Value::as_u64)
        .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
    let session = member_session(operations, auth, session_id).await?;
    let hits = search::search_context(operations, auth, &session, query, limit).await?;
    Ok(Value::Array(hits))
}
