//! Prompt assembly: one [`ChatRequest`] for a persona's next reply in a session, within the
//! model's window; and the background summary that keeps long sessions coherent.
//!
//! The system prompt is, in order: the persona's `systemPrompt`, who the persona is (name,
//! description), the session's Context (`data` as compact JSON, then the running `summary`),
//! and — only when the history does not fit — excerpts of older turns found by full-text
//! search for the latest user message, marked as earlier excerpts. Then come the newest
//! messages that fit in `context_window - max_output_tokens - system`, counted with
//! [`tokens::count_tokens`] plus [`tokens::TOKENS_PER_MESSAGE`] each.
//!
//! Turns are attributed by name: a user's message is a `User` turn named after the sender
//! (`displayName`, else `username`); this persona's own replies are `Assistant` turns;
//! other personas' replies are `User` turns named after that persona, so the model sees
//! them as other speakers rather than as its own words.
//!
//! Messages are read by the server (no ACL applies: the persona answers for the whole
//! session), newest first and at most [`HISTORY_LIMIT`] of them, so a huge history costs
//! one bounded index range scan.
//!
//! When turns newer than the summary's watermark had to be left out, a summary is started
//! in the background ([`summarize_session`]); the request is built without waiting for it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use futures::StreamExt;
use parlor_core::object::Object;
use parlor_core::query::{Cond, FieldRef, Filter, FindQuery, Operand, SortKey};
use parlor_core::schema::FieldType;
use parlor_core::{Code, Error};
use serde_json::{Map, Value, json};

use crate::ai::provider::{ChatMessage, ChatRequest, ChatRole, StreamEvent};
use crate::ai::search::{first_match, in_session, search_messages};
use crate::ai::tokens;
use crate::operation::{Auth, OpError, OpResult, Operations};

/// The most recent messages read for one prompt; older turns reach the prompt through the
/// summary and retrieval.
pub const HISTORY_LIMIT: u64 = 200;
/// The share of the history budget set aside for retrieved excerpts when the history does
/// not fit (one fifth).
const RETRIEVAL_SHARE: usize = 5;
/// The most excerpts retrieved for one prompt.
const RETRIEVED_EXCERPTS: usize = 5;
/// Messages the summary leaves to the prompt: the newest turns are always sent verbatim.
const SUMMARY_KEEPS: usize = 6;
/// Fewer new turns than this are not worth a summary call.
const SUMMARY_MIN_TURNS: usize = 4;
/// The most turns one summary call reads (the next call continues from the watermark).
const SUMMARY_BATCH: u64 = 400;
/// The output budget of a summary.
const SUMMARY_MAX_TOKENS: u32 = 512;

/// Sessions being summarised on this instance: a second request for the same session
/// while one runs is dropped, not queued.
static SUMMARIZING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// One part of the system prompt, with what it holds (`persona`: the persona's own
/// `systemPrompt`; `identity`: its name and description; `context`: the Context's data;
/// `summary`: the running summary; `excerpts`: retrieved older turns).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSection {
    pub kind: &'static str,
    pub text: String,
}

/// A prompt before it becomes a request: what [`build_request`] sends, and what the
/// `previewContext` cloud function shows.
#[derive(Debug, Clone)]
pub struct Assembly {
    /// The system prompt's non-empty parts, in order (joined by blank lines).
    pub sections: Vec<PromptSection>,
    /// The history that fits, oldest first, with the objectId of the message of each turn.
    pub turns: Vec<(String, ChatMessage)>,
    /// Turns read but left out for lack of room, plus whether older unread ones exist.
    pub left_out: usize,
    pub older_unread: bool,
    /// Left-out turns the Context's summary does not cover yet.
    needs_summary: bool,
}

impl Assembly {
    /// The system prompt as sent.
    pub fn system(&self) -> String {
        let mut system = String::new();
        for section in &self.sections {
            push_section(&mut system, &section.text);
        }
        system
    }
}

/// Builds the request for `persona`'s next reply in `session` (see the module docs), and
/// starts a background summary when turns the summary does not cover had to be left out.
/// With `history_before`, the history ends just before that message: a regenerated answer
/// sees the conversation as the answer it replaces saw it, not that answer nor what came after.
pub async fn build_request(
    operations: &Operations,
    session: &Object,
    persona: &Object,
    model: &str,
    max_output_tokens: u32,
    context_window: u32,
    history_before: Option<&Object>,
) -> OpResult<ChatRequest> {
    let assembly = assemble(
        operations,
        session,
        persona,
        model,
        max_output_tokens,
        context_window,
        history_before,
    )
    .await?;
    if assembly.needs_summary {
        spawn_summary(operations, &session.object_id);
    }
    let system = assembly.system();
    Ok(ChatRequest {
        model: model.to_owned(),
        system: (!system.is_empty()).then_some(system),
        messages: assembly.turns.into_iter().map(|(_, turn)| turn).collect(),
        temperature: persona.fields.get("temperature").and_then(Value::as_f64),
        max_tokens: Some(max_output_tokens),
        tools: Vec::new(),
    })
}

/// The parts of `persona`'s next prompt in `session`, within `context_window` minus
/// `max_output_tokens` (and the history before `history_before`, see [`build_request`]);
/// reads only, changes nothing.
pub async fn assemble(
    operations: &Operations,
    session: &Object,
    persona: &Object,
    model: &str,
    max_output_tokens: u32,
    context_window: u32,
    history_before: Option<&Object>,
) -> OpResult<Assembly> {
    let session_id = session.object_id.as_str();
    let context = load_context(operations, session).await?;
    let mut sections = persona_sections(persona);
    if let Some(context) = &context {
        sections.extend(context_sections(context));
    }
    let mut assembly = Assembly {
        sections,
        turns: Vec::new(),
        left_out: 0,
        older_unread: false,
        needs_summary: false,
    };
    let count = |text: &str| tokens::count_tokens(model, text);
    let budget = (context_window as usize)
        .saturating_sub(max_output_tokens as usize)
        .saturating_sub(count(&assembly.system()) + tokens::TOKENS_PER_MESSAGE);

    let newest_first = recent_messages(operations, session_id, history_before).await?;
    // A full read means older messages exist beyond it, whether or not the ones read fit.
    let read_all = (newest_first.len() as u64) < HISTORY_LIMIT;
    let oldest_read = newest_first.last().cloned();
    let names = Names::load(operations, &newest_first).await?;
    let turns: Vec<(Object, ChatMessage)> = newest_first
        .into_iter()
        .filter_map(|message| {
            let turn = to_turn(&message, persona, &names)?;
            Some((message, turn))
        })
        .collect();
    let cost = |turn: &ChatMessage| {
        count(&turn.content) + turn.name.as_deref().map_or(0, count) + tokens::TOKENS_PER_MESSAGE
    };
    let mut fitting = fit(&turns, budget, cost);
    let overflowed = fitting < turns.len() || !read_all;
    if overflowed {
        // Older turns come back as excerpts: keep room for them, then look them up.
        let retrieval_budget = budget / RETRIEVAL_SHARE;
        fitting = fit(&turns, budget - retrieval_budget, cost);
        let oldest_kept = fitting
            .checked_sub(1)
            .and_then(|index| turns.get(index))
            .map(|(message, _)| message.created_at.clone());
        // The latest human message: other personas' replies are `User` turns too.
        let latest_user = turns
            .iter()
            .find(|(message, turn)| {
                turn.role == ChatRole::User
                    && message.fields.get("role").and_then(Value::as_str) != Some("assistant")
            })
            .map(|(_, turn)| turn.content.clone());
        if let (Some(before), Some(query)) = (oldest_kept, latest_user) {
            let excerpts = retrieve(
                operations,
                session_id,
                &before,
                &query,
                retrieval_budget,
                &count,
            )
            .await?;
            if !excerpts.is_empty() {
                assembly.sections.push(PromptSection {
                    kind: "excerpts",
                    text: excerpts,
                });
            }
        }
        // The newest message left out: the first turn that did not fit, else (everything
        // read fits) the oldest one read stands for the unread ones before it.
        let newest_left_out = turns
            .get(fitting)
            .map(|(message, _)| message)
            .or(oldest_read.as_ref());
        assembly.needs_summary = matches!(
            (newest_left_out, &context),
            (Some(message), Some(context)) if !summary_covers(context, message)
        );
    }
    assembly.left_out = turns.len() - fitting;
    assembly.older_unread = !read_all;
    assembly.turns = turns
        .into_iter()
        .take(fitting)
        .map(|(message, turn)| (message.object_id, turn))
        .collect();
    assembly.turns.reverse();
    Ok(assembly)
}

/// How many of `turns` (newest first) fit in `budget`, taking them in order.
fn fit(
    turns: &[(Object, ChatMessage)],
    budget: usize,
    cost: impl Fn(&ChatMessage) -> usize,
) -> usize {
    let mut used = 0;
    for (index, (_, turn)) in turns.iter().enumerate() {
        used += cost(turn);
        if used > budget {
            return index;
        }
    }
    turns.len()
}

/// Appends a paragraph to the system prompt.
fn push_section(system: &mut String, section: &str) {
    if section.is_empty() {
        return;
    }
    if !system.is_empty() {
        system.push_str("\n\n");
    }
    system.push_str(section);
}

fn text_field<'a>(object: &'a Object, field: &str) -> Option<&'a str> {
    object
        .fields
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// The persona's own prompt, then who it is.
fn persona_sections(persona: &Object) -> Vec<PromptSection> {
    let identity = match (
        text_field(persona, "name"),
        text_field(persona, "description"),
    ) {
        (Some(name), Some(description)) => format!("You are {name}: {description}"),
        (Some(name), None) => format!("You are {name}."),
        (None, Some(description)) => format!("You are: {description}"),
        (None, None) => String::new(),
    };
    let system_prompt = text_field(persona, "systemPrompt").unwrap_or_default();
    [
        ("persona", system_prompt.to_owned()),
        ("identity", identity),
    ]
    .into_iter()
    .filter(|(_, text)| !text.is_empty())
    .map(|(kind, text)| PromptSection { kind, text })
    .collect()
}

/// The Context as the prompt shows it: its data as compact JSON, then its summary.
fn context_sections(context: &Object) -> Vec<PromptSection> {
    let mut sections = Vec::new();
    if let Some(data) = context
        .fields
        .get("data")
        .filter(|data| data.as_object().is_some_and(|data| !data.is_empty()))
    {
        sections.push(PromptSection {
            kind: "context",
            text: format!("Session context (JSON): {data}"),
        });
    }
    if let Some(summary) = text_field(context, "summary") {
        sections.push(PromptSection {
            kind: "summary",
            text: format!("Summary of the earlier conversation:\n{summary}"),
        });
    }
    sections
}

/// The session's Context: the one its `context` pointer names, else the one whose
/// `session` is this session.
async fn load_context(operations: &Operations, session: &Object) -> OpResult<Option<Object>> {
    let Some(schema) = operations.schemas.get("Context") else {
        return Ok(None);
    };
    let pointed = session
        .fields
        .get("context")
        .filter(|value| value.get("className").and_then(Value::as_str) == Some("Context"))
        .and_then(|value| value.get("objectId"))
        .and_then(Value::as_str);
    if let Some(context_id) = pointed
        && let Some(context) = operations.load_object("Context", context_id).await?
    {
        return Ok(Some(context));
    }
    let filter = in_session(operations, "Context", &session.object_id);
    first_match(operations, &schema, filter).await
}

fn sort_key(field: &str, field_type: FieldType, descending: bool) -> SortKey {
    SortKey {
        field: FieldRef {
            field: field.to_owned(),
            path: Vec::new(),
            field_type: Some(field_type),
        },
        descending,
        near: None,
    }
}

fn created_at(cond: Cond) -> Filter {
    Filter::Cond {
        field: FieldRef {
            field: "createdAt".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::Date),
        },
        cond,
    }
}

/// The session's newest messages (older than `before`, in `(createdAt, objectId)` order,
/// when given), newest first, at most [`HISTORY_LIMIT`].
async fn recent_messages(
    operations: &Operations,
    session_id: &str,
    before: Option<&Object>,
) -> OpResult<Vec<Object>> {
    let Some(schema) = operations.schemas.get("Message") else {
        return Ok(Vec::new());
    };
    let mut filter = in_session(operations, "Message", session_id);
    if let Some(before) = before {
        let created = Operand::Date(before.created_at.clone());
        let object_id = || FieldRef {
            field: "objectId".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::String),
        };
        filter = filter.and(Filter::Or(vec![
            created_at(Cond::Lt(created.clone())),
            Filter::And(vec![
                created_at(Cond::Eq(created)),
                Filter::Cond {
                    field: object_id(),
                    cond: Cond::Lt(Operand::String(before.object_id.clone())),
                },
            ]),
        ]));
    }
    let query = FindQuery {
        order: vec![
            sort_key("createdAt", FieldType::Date, true),
            sort_key("objectId", FieldType::String, true),
        ],
        limit: Some(HISTORY_LIMIT),
        ..FindQuery::filter(filter)
    };
    Ok(operations.store.find(&schema, &query).await?)
}

/// The display names of the senders and personas of `messages`.
#[derive(Default)]
struct Names {
    users: HashMap<String, String>,
    personas: HashMap<String, String>,
}

impl Names {
    async fn load(operations: &Operations, messages: &[Object]) -> OpResult<Names> {
        let ids = |field: &str, class_name: &str| -> BTreeSet<String> {
            messages
                .iter()
                .filter_map(|message| message.fields.get(field))
                .filter(|value| value.get("className").and_then(Value::as_str) == Some(class_name))
                .filter_map(|value| value.get("objectId").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        };
        Ok(Names {
            users: names_of(
                operations,
                "_User",
                ids("sender", "_User"),
                &["displayName", "username"],
            )
            .await?,
            personas: names_of(operations, "Persona", ids("persona", "Persona"), &["name"]).await?,
        })
    }
}

/// `objectId → name` for these objects, the name being the first non-empty of `fields`.
async fn names_of(
    operations: &Operations,
    class_name: &str,
    ids: BTreeSet<String>,
    fields: &[&str],
) -> OpResult<HashMap<String, String>> {
    let Some(schema) = operations.schemas.get(class_name) else {
        return Ok(HashMap::new());
    };
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let filter = Filter::Cond {
        field: FieldRef {
            field: "objectId".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::String),
        },
        cond: Cond::In(ids.into_iter().map(Operand::String).collect()),
    };
    let objects = operations
        .store
        .find(&schema, &FindQuery::filter(filter))
        .await?;
    Ok(objects
        .iter()
        .filter_map(|object| {
            let name = fields.iter().find_map(|field| text_field(object, field))?;
            Some((object.object_id.clone(), name.to_owned()))
        })
        .collect())
}

fn pointer_id<'a>(message: &'a Object, field: &str) -> Option<&'a str> {
    message
        .fields
        .get(field)
        .and_then(|value| value.get("objectId"))
        .and_then(Value::as_str)
}

/// A stored message as a turn of `persona`'s conversation; `None` for what the model should
/// not see: replies still streaming (including the one being generated), empty ones,
/// `system` notices, and the `tool` records of earlier replies' tool calls.
fn to_turn(message: &Object, persona: &Object, names: &Names) -> Option<ChatMessage> {
    let status = message.fields.get("status").and_then(Value::as_str);
    if status == Some("streaming") {
        return None;
    }
    let content = text_field(message, "content")?;
    let role = message.fields.get("role").and_then(Value::as_str);
    match role {
        Some("assistant") => {
            let speaker = pointer_id(message, "persona");
            if speaker == Some(persona.object_id.as_str()) {
                Some(ChatMessage::assistant(content))
            } else {
                let name = speaker
                    .and_then(|id| names.personas.get(id))
                    .map_or("assistant", String::as_str);
                Some(ChatMessage::user(content).with_name(name))
            }
        }
        // Tool calls of earlier replies stay out: the reply that made them says what it
        // learnt, and a provider refuses tool turns whose tools are not offered again.
        Some("system" | "tool") => None,
        _ => {
            let turn = ChatMessage::user(content);
            match pointer_id(message, "sender").and_then(|id| names.users.get(id)) {
                Some(name) => Some(turn.with_name(name)),
                None => Some(turn),
            }
        }
    }
}

/// Excerpts of messages older than `before` that match `query`, within `budget` tokens, as
/// a system-prompt section; empty when none is found.
async fn retrieve(
    operations: &Operations,
    session_id: &str,
    before: &str,
    query: &str,
    budget: usize,
    count: &impl Fn(&str) -> usize,
) -> OpResult<String> {
    // Tool records are not turns of the conversation (see `to_turn`).
    let not_tool = Filter::Cond {
        field: FieldRef {
            field: "role".to_owned(),
            path: Vec::new(),
            field_type: Some(FieldType::String),
        },
        cond: Cond::Ne(Operand::String("tool".to_owned())),
    };
    let older = created_at(Cond::Lt(Operand::Date(before.to_owned()))).and(not_tool);
    let hits = search_messages(operations, session_id, older, query, RETRIEVED_EXCERPTS).await?;
    let heading = "Earlier excerpts from this conversation (retrieved; they may be out of date):";
    let mut used = count(heading);
    let mut lines = Vec::new();
    for hit in hits {
        let line = format!("- [{}] {}", hit.object.created_at, hit.snippet);
        used += count(&line);
        if used > budget {
            break;
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(format!("{heading}\n{}", lines.join("\n")))
}

/// The summary's watermark: the `objectId` and `createdAt` of the last message it covers.
fn watermark(context: &Object) -> Option<(String, String)> {
    let through = context.fields.get("summaryThrough")?;
    let object_id = through.get("objectId")?.as_str()?.to_owned();
    let created_at = match through.get("createdAt")? {
        Value::String(iso) => iso.clone(),
        date => date.get("iso")?.as_str()?.to_owned(),
    };
    Some((object_id, created_at))
}

/// Whether the Context's summary already covers `message`.
fn summary_covers(context: &Object, message: &Object) -> bool {
    watermark(context).is_some_and(|(object_id, created_at)| {
        (message.created_at.as_str(), message.object_id.as_str())
            <= (created_at.as_str(), object_id.as_str())
    })
}

/// Starts [`summarize_session`] in the background unless one runs for this session.
fn spawn_summary(operations: &Operations, session_id: &str) {
    let Ok(mut running) = SUMMARIZING.lock() else {
        return;
    };
    if !running.insert(session_id.to_owned()) {
        return;
    }
    drop(running);
    let operations = operations.clone();
    let session_id = session_id.to_owned();
    let task = async move {
        match summarize_session(&operations, &session_id).await {
            Err(error) => {
                tracing::warn!(session = %session_id, %error, "summarising the session failed");
            }
            Ok(Summarized::Skipped(reason)) => {
                tracing::debug!(session = %session_id, reason, "no summary written");
            }
            Ok(Summarized::Written(_)) => {}
        }
        if let Ok(mut running) = SUMMARIZING.lock() {
            running.remove(&session_id);
        }
    };
    // In the span of the request that asked for it, so its log lines name that request.
    tokio::spawn(tracing::Instrument::in_current_span(task));
}

fn summary_error(message: impl Into<std::borrow::Cow<'static, str>>) -> OpError {
    Error::new(Code::ScriptFailed, message).into()
}

/// Folds the session's turns since the summary's watermark (all but the newest
/// [`SUMMARY_KEEPS`]) into its Context's `summary`, and moves the watermark
/// (`summaryThrough: {objectId, createdAt}`) to the last turn summarised. Uses the provider
/// and model of the session's first persona, else the default provider. Returns the new
/// summary, or `None` when there was too little new to summarise.
///
/// The server calls it in the background when a prompt had to leave turns out; the
/// `summarizeSession` cloud function calls it on demand (after checking membership).
pub async fn summarize_session(operations: &Operations, session_id: &str) -> OpResult<Summarized> {
    let session = operations
        .load_object("ChatSession", session_id)
        .await?
        .ok_or_else(|| OpError::from(Error::new(Code::ObjectNotFound, "Object not found.")))?;
    let Some(context) = load_context(operations, &session).await? else {
        return Ok(Summarized::Skipped(
            "this session has no Context to keep a summary in".to_owned(),
        ));
    };
    let Some(schema) = operations.schemas.get("Message") else {
        return Ok(Summarized::Skipped("there are no messages".to_owned()));
    };
    let mut filter = vec![in_session(operations, "Message", session_id)];
    if let Some((_, created_at)) = watermark(&context) {
        filter.push(created_at_after(&created_at));
    }
    let query = FindQuery {
        order: vec![
            sort_key("createdAt", FieldType::Date, false),
            sort_key("objectId", FieldType::String, false),
        ],
        limit: Some(SUMMARY_BATCH),
        ..FindQuery::filter(Filter::And(filter))
    };
    let mut messages = operations.store.find(&schema, &query).await?;
    // Equal timestamps: drop what the watermark already covers.
    messages.retain(|message| !summary_covers(&context, message));
    // What a prompt would show: no streaming replies, no empty ones, no system notices, no
    // tool records.
    messages.retain(|message| {
        let role = message.fields.get("role").and_then(Value::as_str);
        message.fields.get("status").and_then(Value::as_str) != Some("streaming")
            && !matches!(role, Some("system" | "tool"))
            && text_field(message, "content").is_some()
    });
    let take = messages.len().saturating_sub(SUMMARY_KEEPS);
    if take < SUMMARY_MIN_TURNS {
        return Ok(Summarized::Skipped(format!(
            "too little to summarise: {} turns since the last summary; the newest \
             {SUMMARY_KEEPS} are always kept as they are, and at least {SUMMARY_MIN_TURNS} \
             older ones are needed",
            messages.len()
        )));
    }
    messages.truncate(take);

    let personas = crate::ai::generation::session_personas(operations, &session).await?;
    let persona = personas.first();
    let generator = crate::ai::generation::generator(operations)
        .ok_or_else(|| summary_error("no LLM provider is configured"))?;
    let provider_name = persona.and_then(|persona| text_field(persona, "provider"));
    let provider = generator
        .providers()
        .get(provider_name)
        .map_err(|error| summary_error(error.to_string()))?;
    let model = persona
        .and_then(|persona| text_field(persona, "model"))
        .or_else(|| provider.default_model())
        .unwrap_or_default()
        .to_owned();

    let names = Names::load(operations, &messages).await?;
    let window = provider.context_window(&model) as usize;
    let input_budget = window.saturating_sub(SUMMARY_MAX_TOKENS as usize + 200) / 2;
    let previous = text_field(&context, "summary").unwrap_or_default();
    let mut transcript = String::new();
    let mut used = tokens::count_tokens(&model, previous);
    let mut last = None;
    for message in &messages {
        let speaker = speaker_name(message, &names);
        let content = text_field(message, "content").unwrap_or_default();
        let line = format!("{speaker}: {content}\n");
        used += tokens::count_tokens(&model, &line);
        if used > input_budget && last.is_some() {
            break;
        }
        transcript.push_str(&line);
        last = Some(message);
    }
    let Some(last) = last else {
        return Ok(Summarized::Skipped(
            "the turns to summarise do not fit the model's window".to_owned(),
        ));
    };
    let mut prompt = String::new();
    if !previous.is_empty() {
        prompt.push_str(&format!("Summary so far:\n{previous}\n\n"));
    }
    prompt.push_str(&format!("New turns:\n{transcript}"));
    let request = ChatRequest {
        model,
        system: Some(
            "You keep the running summary of a chat. Rewrite the summary so far together \
             with the new turns into one concise summary (at most a few paragraphs): who \
             said what that matters, decisions, facts, open questions. Reply with the \
             summary only."
                .to_owned(),
        ),
        messages: vec![ChatMessage::user(prompt)],
        temperature: Some(0.2),
        max_tokens: Some(SUMMARY_MAX_TOKENS),
        tools: Vec::new(),
    };
    let mut stream = provider
        .stream(request)
        .await
        .map_err(|error| summary_error(error.to_string()))?;
    let mut summary = String::new();
    while let Some(event) = stream.next().await {
        match event.map_err(|error| summary_error(error.to_string()))? {
            StreamEvent::Delta(text) => summary.push_str(&text),
            StreamEvent::Finished { .. } => break,
            _ => {}
        }
    }
    let summary = summary.trim().to_owned();
    if summary.is_empty() {
        return Err(summary_error("the provider returned an empty summary"));
    }
    let mut body = Map::new();
    body.insert("summary".into(), Value::from(summary.clone()));
    body.insert(
        "summaryThrough".into(),
        json!({"objectId": last.object_id, "createdAt": last.created_at}),
    );
    let plan = operations
        .plan_update(&Auth::master(), "Context", &context.object_id, &body)
        .await?;
    operations.commit_one(plan).await?;
    Ok(Summarized::Written(summary))
}

/// What a summary run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summarized {
    /// The new summary, stored in the Context.
    Written(String),
    /// Why nothing was summarised.
    Skipped(String),
}

fn created_at_after(iso: &str) -> Filter {
    created_at(Cond::Gte(Operand::Date(iso.to_owned())))
}

/// Who said a message, for the summary's transcript.
fn speaker_name(message: &Object, names: &Names) -> String {
    let (field, map, fallback) = match message.fields.get("role").and_then(Value::as_str) {
        Some("assistant") => ("persona", &names.personas, "assistant"),
        _ => ("sender", &names.users, "user"),
    };
    pointer_id(message, field)
        .and_then(|id| map.get(id))
        .map_or_else(|| fallback.to_owned(), Clone::clone)
}
