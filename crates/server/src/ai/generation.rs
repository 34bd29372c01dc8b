//! Persona replies: from a committed user message to a streamed, finished assistant message.
//!
//! The flow, for every reply:
//! 1. [`Generator::after_commit`] hears of committed Messages and ChatSessions straight from
//!    [`Operations::commit`] (not through the lossy live-query bus) and spawns a task, so the
//!    user's request never waits for a model.
//! 2. [`policy`] decides which personas answer: the ones `@mentioned`, else the session's
//!    `policy` (`all`, `round_robin`, `first`, `manual`).
//! 3. [`Generator::launch`] creates the assistant Message at once (`status: "streaming"`,
//!    written as the master key: the server, not the caller, speaks for the persona) and
//!    registers the reply in the in-memory [`StreamView`] table that the SSE route reads.
//! 4. The reply task checks the limits (concurrency overall and per user, the daily token
//!    quota) before calling the provider, streams, writes the growing text at most every
//!    [`FLUSH_EVERY`] so LiveQuery subscribers see it grow, and ends the message `complete`,
//!    `failed` (text so far kept, with `error`) or `cancelled`, with `model`, `firstTokenMs`
//!    and `usage`. Usage also goes into the master-only [`USAGE_CLASS`].
//! 5. When the persona lists tools and the model calls some, each call is run ([`tools`]),
//!    stored as a `role: "tool"` Message, and its result sent back; the model's next answer
//!    streams into the same reply, up to `tool_rounds` rounds (then the reply ends `failed`).
//!
//! A reply belongs to the server: nothing that happens to a client connection stops it, only
//! `cancelGeneration` (which drops the provider stream, closing the upstream connection).

pub mod policy;
pub mod recovery;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use parlor_core::object::Object;
use parlor_core::value::{as_pointer, now_iso};
use parlor_core::{Code, Error};
use parlor_store::WriteOutcome;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::ai::provider::{
    ChatMessage, ChatRequest, ProviderError, Providers, StreamEvent, ToolCallRequest, Usage,
};
use crate::ai::tools::{self, ToolRunner};
use crate::ai::{context, tokens};
use crate::config::GenerationLimits;
use crate::operation::hooks::Committed;
use crate::operation::{Auth, FindRequest, OpError, OpResult, Operations};

/// How often the growing text is written to the Message: often enough that a LiveQuery
/// subscriber sees it grow smoothly, rarely enough that a fast model costs a few writes a
/// second rather than one per token.
pub const FLUSH_EVERY: Duration = Duration::from_millis(75);

/// The most text writes per second all streaming replies together make: past ~150 replies
/// each one writes less often than [`FLUSH_EVERY`], so that a thousand streams cost the
/// database what a hundred and fifty do (and leave it room for the users' own writes).
/// Token-level clients (SSE) are not slowed; LiveQuery subscribers see the text grow in
/// larger steps.
pub const MAX_FLUSHES_PER_SECOND: u32 = 2_000;

/// The output budget of a persona that sets no `maxTokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1024;

/// What a persona's reply runs with: its provider, its model (the persona's, else the
/// provider's default), its output budget and the model's context window.
pub struct ReplyPlan {
    pub provider: Arc<crate::ai::provider::Provider>,
    pub model: String,
    pub max_output: u32,
    pub window: u32,
}

/// The master-only class where each reply's token usage is recorded, per user and persona.
pub const USAGE_CLASS: &str = "AiUsage";

/// How [`USAGE_CLASS`] is created on start: no CLP entry, so only the master key reaches it.
pub fn usage_class_schema() -> Value {
    let nobody = json!({});
    json!({"results": [{
        "className": USAGE_CLASS,
        "fields": {
            "user": {"type": "Pointer", "targetClass": "_User"},
            "persona": {"type": "Pointer", "targetClass": "Persona"},
            "session": {"type": "Pointer", "targetClass": "ChatSession"},
            "message": {"type": "Pointer", "targetClass": "Message"},
            "model": {"type": "String"},
            "day": {"type": "String"},
            "promptTokens": {"type": "Number"},
            "completionTokens": {"type": "Number"},
            "totalTokens": {"type": "Number"},
            "estimated": {"type": "Boolean"}
        },
        "classLevelPermissions": {
            "get": nobody, "find": nobody, "count": nobody, "create": nobody,
            "update": nobody, "delete": nobody, "addField": nobody,
            "protectedFields": {}
        }
    }]})
}

/// Whether [`Generator::after_commit`] wants to hear about commits to `class_name`.
pub fn watches(class_name: &str) -> bool {
    matches!(class_name, "Message" | "ChatSession")
}

/// The generator behind `operations` (the hook it installed on the operation layer's
/// commit), if any.
pub fn generator(operations: &Operations) -> Option<Arc<Generator>> {
    operations
        .generation
        .clone()
        .and_then(|hook| hook.into_any().downcast::<Generator>().ok())
}

impl crate::operation::hooks::CommitHook for Generator {
    fn watches(&self, class_name: &str) -> bool {
        watches(class_name)
    }

    fn after_commit<'a>(
        self: Arc<Self>,
        operations: &'a Operations,
        committed: Vec<Committed>,
    ) -> futures::future::BoxFuture<'a, Vec<Vec<String>>> {
        Box::pin(async move { Generator::after_commit(&self, operations, committed).await })
    }

    fn status(&self) -> Value {
        let limits = self.limits();
        serde_json::json!({
            "running": self.running_list().len(),
            "maxConcurrent": limits.max_concurrent,
            "maxPerUser": limits.max_per_user,
            "dailyTokenQuota": limits.daily_token_quota,
        })
    }

    fn running(&self) -> Vec<Value> {
        self.running_list()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// How a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Complete,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The end of a reply, as the SSE `done` event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub status: Status,
    pub error: Option<String>,
}

/// A running reply's text so far, for SSE clients that want every delta.
#[derive(Debug, Clone, Default)]
pub struct StreamView {
    pub text: String,
    /// Set once the final state is written to the Message.
    pub end: Option<End>,
}

/// One reply in progress.
#[derive(Debug)]
pub struct Running {
    /// The text as it grows; SSE connections subscribe and read from their offset.
    pub view: watch::Sender<StreamView>,
    /// Set to `true` by `cancelGeneration`; the reply task drops its provider stream.
    cancel: watch::Sender<bool>,
    /// What it answers, for the operator's list of running replies.
    about: ReplyAbout,
}

/// Who and what a running reply is for.
#[derive(Debug, Clone)]
struct ReplyAbout {
    session_id: String,
    persona_id: String,
    persona_name: Option<String>,
    user_id: Option<String>,
    provider: String,
    model: String,
    started_at: String,
    started: Instant,
}

/// What the reply task has when the stream is over.
#[derive(Debug)]
struct Answer {
    text: String,
    status: Status,
    error: Option<String>,
    model: String,
    first_token_ms: Option<u64>,
    usage: Option<Value>,
    /// The kind of provider failure that ended it, for the metrics.
    provider_failure: Option<&'static str>,
}

impl Answer {
    fn failed(error: impl Into<String>) -> Answer {
        Answer {
            text: String::new(),
            status: Status::Failed,
            error: Some(error.into()),
            model: String::new(),
            first_token_ms: None,
            usage: None,
            provider_failure: None,
        }
    }
}

/// What one reply is about.
#[derive(Debug, Clone)]
pub struct Job {
    pub session: Object,
    pub persona: Object,
    /// The user whose message (or `generate` call) asked for it: limits and quota count here.
    pub user: Option<String>,
    /// The message this one regenerates.
    pub parent: Option<String>,
    /// The objectId the reply gets (chosen in advance when a create's answer names it).
    pub message_id: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    running: HashMap<String, Arc<Running>>,
    total: usize,
    per_user: HashMap<String, usize>,
}

/// A place among the concurrent replies, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    generator: Arc<Generator>,
    user: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counters = self.generator.counters();
        counters.total = counters.total.saturating_sub(1);
        if let Some(user) = &self.user
            && let Some(count) = counters.per_user.get_mut(user)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counters.per_user.remove(user);
            }
        }
    }
}

/// An answer's place in its session's queue.
struct Turn {
    session_id: String,
    number: u64,
    done: watch::Sender<bool>,
    previous: Option<watch::Receiver<bool>>,
}

/// A turn whose wait is over.
struct FinishedTurn {
    session_id: String,
    number: u64,
    done: watch::Sender<bool>,
}

impl Turn {
    /// Waits until the answer before it is done (or was dropped).
    async fn wait(self) -> FinishedTurn {
        if let Some(mut previous) = self.previous {
            let _ = previous.wait_for(|done| *done).await;
        }
        FinishedTurn {
            session_id: self.session_id,
            number: self.number,
            done: self.done,
        }
    }
}

/// The providers, the limits and the replies running on this instance.
#[derive(Debug)]
pub struct Generator {
    providers: Providers,
    limits: GenerationLimits,
    /// A std mutex: held for a few map operations, never across an await.
    counters: Mutex<Counters>,
    /// Per session, the answer queued last: its number and a flag set when it is done. The
    /// next message's answer waits for it, so a session's messages are answered one after
    /// another, in commit order, each seeing the replies before it.
    turns: Mutex<HashMap<String, (u64, watch::Receiver<bool>)>>,
    next_turn: std::sync::atomic::AtomicU64,
    /// Per session with answers queued, the persona chosen last: a `round_robin` choice made
    /// at commit time must count the replies still waiting for their turn, which the
    /// database does not hold yet. Dropped when the session's queue empties.
    chosen_last: Mutex<HashMap<String, String>>,
    /// What runs the tools personas call, registered once at start-up ([`Generator::set_tools`]);
    /// unset, personas have no tools.
    tools: std::sync::OnceLock<Arc<dyn ToolRunner>>,
}

/// The replies a user's message starts: chosen when the message commits (so the create's
/// answer can name them), each created when its turn comes.
#[derive(Debug, Clone)]
struct AnswerPlan {
    sender: String,
    session_id: String,
    /// Each persona that answers, in order, with the objectId its reply will have.
    replies: Vec<(Object, String)>,
}

impl Generator {
    pub fn new(providers: Providers, limits: GenerationLimits) -> Generator {
        Generator {
            providers,
            limits,
            counters: Mutex::default(),
            turns: Mutex::default(),
            next_turn: std::sync::atomic::AtomicU64::new(0),
            chosen_last: Mutex::default(),
            tools: std::sync::OnceLock::new(),
        }
    }

    /// Registers what runs the tools personas call (see [`crate::ai::tools`]). Once per
    /// server, at start-up: a second registration is refused and handed back. It may come
    /// after the generator is built, for a runner that needs the [`Operations`] which hold it.
    pub fn set_tools(&self, runner: Arc<dyn ToolRunner>) -> Result<(), Arc<dyn ToolRunner>> {
        self.tools.set(runner)
    }

    /// The registered tool runner, if any.
    pub fn tools(&self) -> Option<&Arc<dyn ToolRunner>> {
        self.tools.get()
    }

    /// Queues an answer in its session: it runs after the one queued before it.
    fn take_turn(&self, session_id: &str) -> Turn {
        let number = self
            .next_turn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, finished) = watch::channel(false);
        let previous = self
            .turns
            .lock()
            .ok()
            .and_then(|mut turns| turns.insert(session_id.to_owned(), (number, finished)))
            .map(|(_, previous)| previous);
        Turn {
            session_id: session_id.to_owned(),
            number,
            done,
            previous,
        }
    }

    /// Marks an answer done, letting the session's next one start.
    fn end_turn(&self, turn: FinishedTurn) {
        turn.done.send_replace(true);
        if let Ok(mut turns) = self.turns.lock()
            && turns
                .get(&turn.session_id)
                .is_some_and(|(number, _)| *number == turn.number)
        {
            turns.remove(&turn.session_id);
            // Nothing queued any more: every chosen reply is in the database now.
            if let Ok(mut chosen) = self.chosen_last.lock() {
                chosen.remove(&turn.session_id);
            }
        }
    }

    /// The persona chosen last for a session whose answers are still queued.
    pub fn chosen_last(&self, session_id: &str) -> Option<String> {
        self.chosen_last.lock().ok()?.get(session_id).cloned()
    }

    /// How long a streaming reply may stand still before it counts as orphaned.
    pub fn stale_after(&self) -> Duration {
        self.limits.stale_after
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The reply being generated for a message on this instance, if any.
    pub fn running(&self, message_id: &str) -> Option<Arc<Running>> {
        self.counters().running.get(message_id).cloned()
    }

    /// The replies running on this instance, oldest first: `messageId`, `sessionId`,
    /// `personaId`, `persona` (its name), `userId`, `provider`, `model`, `startedAt`,
    /// `seconds` running and `characters` streamed so far.
    /// How long a streaming reply waits between two writes of its text: [`FLUSH_EVERY`],
    /// longer when so many replies stream that together they would pass
    /// [`MAX_FLUSHES_PER_SECOND`].
    fn flush_period(&self) -> Duration {
        let streaming = u32::try_from(self.counters().total).unwrap_or(u32::MAX);
        FLUSH_EVERY.max(Duration::from_secs(1) * streaming / MAX_FLUSHES_PER_SECOND)
    }

    pub fn running_list(&self) -> Vec<Value> {
        let running: Vec<(String, Arc<Running>)> = self
            .counters()
            .running
            .iter()
            .map(|(id, running)| (id.clone(), Arc::clone(running)))
            .collect();
        let mut list: Vec<(Instant, Value)> = running
            .into_iter()
            .map(|(message_id, running)| {
                let about = &running.about;
                let characters = running.view.borrow().text.chars().count();
                let entry = json!({
                    "messageId": message_id,
                    "sessionId": about.session_id,
                    "personaId": about.persona_id,
                    "persona": about.persona_name,
                    "userId": about.user_id,
                    "provider": about.provider,
                    "model": about.model,
                    "startedAt": about.started_at,
                    "seconds": about.started.elapsed().as_secs_f64(),
                    "characters": characters,
                });
                (about.started, entry)
            })
            .collect();
        list.sort_by_key(|(started, _)| *started);
        list.into_iter().map(|(_, entry)| entry).collect()
    }

    /// The limits replies run under.
    pub fn limits(&self) -> &GenerationLimits {
        &self.limits
    }

    /// Takes a place among the concurrent replies, or says which limit is reached.
    pub fn try_slot(self: &Arc<Self>, user: Option<&str>) -> Result<Slot, String> {
        let mut counters = self.counters();
        if counters.total >= self.limits.max_concurrent {
            return Err(format!(
                "too many replies are being generated right now (the server's limit is {}); \
                 try again in a moment",
                self.limits.max_concurrent
            ));
        }
        if let Some(user) = user {
            let count = counters.per_user.get(user).copied().unwrap_or(0);
            if count >= self.limits.max_per_user {
                return Err(format!(
                    "this user already has {count} replies being generated (the limit is {}); \
                     wait for one to finish",
                    self.limits.max_per_user
                ));
            }
            *counters.per_user.entry(user.to_owned()).or_insert(0) += 1;
        }
        counters.total += 1;
        Ok(Slot {
            generator: self.clone(),
            user: user.map(str::to_owned),
        })
    }

    /// Refuses when `user` has spent the daily token quota (UTC day).
    pub async fn check_quota(&self, operations: &Operations, user: &str) -> Result<(), String> {
        let Some(quota) = self.limits.daily_token_quota else {
            return Ok(());
        };
        let used = tokens_used_today(operations, user)
            .await
            .map_err(|error| format!("could not check the daily token quota: {error}"))?;
        if used >= quota {
            return Err(format!(
                "daily token quota exhausted: {used} of {quota} tokens used today (UTC); it \
                 resets at midnight UTC"
            ));
        }
        Ok(())
    }

    /// Hears of committed writes to [`watches`] classes and answers in spawned tasks. For
    /// each committed write, in order, the objectIds of the persona replies it starts (a
    /// user's message: chosen now, each created when its turn comes; the create's answer
    /// names them).
    ///
    /// Boxed with an explicit `Send`: a reply's own create commits through here again, and
    /// the compiler cannot see through that cycle on its own.
    pub fn after_commit<'a>(
        self: &'a Arc<Self>,
        operations: &'a Operations,
        committed: Vec<Committed>,
    ) -> futures::future::BoxFuture<'a, Vec<Vec<String>>> {
        Box::pin(self.start_answers(operations, committed))
    }

    async fn start_answers(
        self: &Arc<Self>,
        operations: &Operations,
        mut committed: Vec<Committed>,
    ) -> Vec<Vec<String>> {
        // Turns are taken first, in the order of the commits, before anything awaits.
        let turns: Vec<Option<Turn>> = committed
            .iter()
            .map(|write| match (&*write.class_name, &write.outcome) {
                ("Message", WriteOutcome::Created(message)) => {
                    pointer_id(message.fields.get("session"), "ChatSession")
                        .map(|session_id| self.take_turn(session_id))
                }
                _ => None,
            })
            .collect();
        // A message's session as the template's rules read it to allow the message, just
        // before the commit, or as the commit left it (a batch that also updated it): no
        // need to read it again.
        let mut sessions: HashMap<String, Object> = HashMap::new();
        for write in &mut committed {
            if write.class_name == "Message"
                && let Some(session) = write.read.take()
            {
                sessions.insert(session.object_id.clone(), session);
            }
        }
        for write in &committed {
            if let ("ChatSession", WriteOutcome::Updated { after, .. }) =
                (&*write.class_name, &write.outcome)
            {
                sessions.insert(after.object_id.clone(), after.clone());
            }
        }
        let mut started = Vec::with_capacity(committed.len());
        for (
            Committed {
                class_name,
                outcome,
                ..
            },
            turn,
        ) in committed.into_iter().zip(turns)
        {
            let plan = match (&*class_name, &outcome) {
                ("Message", WriteOutcome::Created(message)) => {
                    match self.plan_answer(operations, message, &sessions).await {
                        Ok(plan) => plan,
                        Err(error) => {
                            tracing::warn!(%error, "choosing the personas that answer failed");
                            None
                        }
                    }
                }
                _ => None,
            };
            started.push(plan.as_ref().map_or_else(Vec::new, |plan| {
                plan.replies.iter().map(|(_, id)| id.clone()).collect()
            }));
            let generator = self.clone();
            let operations = operations.clone();
            // In the span of the request whose commit this is: the reply's log lines name it.
            let task = async move {
                let done = match turn {
                    Some(turn) => Some(turn.wait().await),
                    None => None,
                };
                let result = match plan {
                    Some(plan) => generator.run_answer(&operations, plan).await,
                    None => generator.react(&operations, &class_name, outcome).await,
                };
                if let Err(error) = result {
                    tracing::warn!(%error, class_name, "starting a persona reply failed");
                }
                if let Some(done) = done {
                    generator.end_turn(done);
                }
            };
            tokio::spawn(task.in_current_span());
        }
        started
    }

    async fn react(
        self: &Arc<Self>,
        operations: &Operations,
        class_name: &str,
        outcome: WriteOutcome,
    ) -> OpResult<()> {
        match (class_name, outcome) {
            ("ChatSession", WriteOutcome::Created(session)) => {
                let added = pointer_ids(session.fields.get("personas"), "Persona");
                greet(operations, &session, &added).await
            }
            ("ChatSession", WriteOutcome::Updated { before, after }) => {
                let old = pointer_ids(before.fields.get("personas"), "Persona");
                let added: Vec<String> = pointer_ids(after.fields.get("personas"), "Persona")
                    .into_iter()
                    .filter(|id| !old.contains(id))
                    .collect();
                greet(operations, &after, &added).await
            }
            _ => Ok(()),
        }
    }

    /// The personas that answer a user's message, each with the objectId its reply will
    /// have, and the sender; `None` when nobody answers.
    async fn plan_answer(
        &self,
        operations: &Operations,
        message: &Object,
        committed_sessions: &HashMap<String, Object>,
    ) -> OpResult<Option<AnswerPlan>> {
        let role = message.fields.get("role").and_then(Value::as_str);
        if role.is_some_and(|role| role != "user") {
            return Ok(None);
        }
        let Some(sender) = pointer_id(message.fields.get("sender"), "_User") else {
            return Ok(None);
        };
        let Some(session_id) = pointer_id(message.fields.get("session"), "ChatSession") else {
            return Ok(None);
        };
        let session = match committed_sessions.get(session_id) {
            Some(session) => session.clone(),
            None => match operations.load_object("ChatSession", session_id).await? {
                Some(session) => session,
                None => return Ok(None),
            },
        };
        let personas = session_personas(operations, &session).await?;
        if personas.is_empty() {
            return Ok(None);
        }
        let content = message
            .fields
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let chosen_last = self.chosen_last(session_id);
        let chosen = policy::choose(operations, &session, personas, content, chosen_last).await?;
        if let Some(last) = chosen.last()
            && let Ok(mut memory) = self.chosen_last.lock()
        {
            memory.insert(session_id.to_owned(), last.object_id.clone());
        }
        let replies: Vec<(Object, String)> = chosen
            .into_iter()
            .map(|persona| (persona, crate::operation::write::new_object_id()))
            .collect();
        Ok((!replies.is_empty()).then(|| AnswerPlan {
            sender: sender.to_owned(),
            session_id: session_id.to_owned(),
            replies,
        }))
    }

    /// A user's message's replies, one after another, each seeing the replies before it.
    async fn run_answer(
        self: &Arc<Self>,
        operations: &Operations,
        plan: AnswerPlan,
    ) -> OpResult<()> {
        for (persona, message_id) in plan.replies {
            // Reloaded for each reply: `lastMessageAt` and the history moved meanwhile, and a
            // session deleted meanwhile gets no more replies.
            let Some(session) = operations
                .load_object("ChatSession", &plan.session_id)
                .await?
            else {
                return Ok(());
            };
            let job = Job {
                session,
                persona,
                user: Some(plan.sender.clone()),
                parent: None,
                message_id: Some(message_id),
            };
            let slot = self.try_slot(Some(&plan.sender));
            let (_, handle) = self.launch(operations, job, slot).await?;
            // Sequential on purpose: the next persona's prompt includes this reply.
            let _ = handle.await;
        }
        Ok(())
    }

    /// Creates the assistant message and starts its reply task; `slot` is the place taken
    /// among the concurrent replies, or why none was free (the message then ends `failed`).
    pub async fn launch(
        self: &Arc<Self>,
        operations: &Operations,
        job: Job,
        slot: Result<Slot, String>,
    ) -> OpResult<(String, JoinHandle<()>)> {
        let mut body = Map::new();
        body.insert(
            "session".into(),
            pointer("ChatSession", &job.session.object_id),
        );
        body.insert("persona".into(), pointer("Persona", &job.persona.object_id));
        body.insert("role".into(), json!("assistant"));
        body.insert("status".into(), json!("streaming"));
        if let Some(parent) = &job.parent {
            body.insert("parent".into(), pointer("Message", parent));
        }
        let fields = &job.persona.fields;
        let running = Arc::new(Running {
            view: watch::Sender::new(StreamView::default()),
            cancel: watch::Sender::new(false),
            about: ReplyAbout {
                session_id: job.session.object_id.clone(),
                persona_id: job.persona.object_id.clone(),
                persona_name: fields
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                user_id: job.user.clone(),
                provider: fields
                    .get("provider")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned(),
                model: self
                    .plan(&job.persona)
                    .map(|plan| plan.model)
                    .unwrap_or_default(),
                started_at: now_iso(),
                started: Instant::now(),
            },
        });
        let message_id = self
            .create_reply(operations, body, job.message_id.clone(), &running)
            .await?;
        let generator = self.clone();
        let operations = operations.clone();
        let id = message_id.clone();
        let span = tracing::info_span!("reply", message_id = %id);
        let handle = tokio::spawn(
            async move {
                generator.run(operations, job, id, running, slot).await;
            }
            .instrument(span),
        );
        Ok((message_id, handle))
    }

    /// Creates a reply with empty `content`, which the field's `required` rule refuses from
    /// clients: a reply that has not started has no text yet, and subscribers should see that.
    ///
    /// The reply is registered as running before the commit: the commit tells LiveQuery
    /// subscribers at once, and one that opens the SSE stream on that `create` event must
    /// find the reply running, not a stored `streaming` message that the stream would end
    /// at once with no text.
    async fn create_reply(
        &self,
        operations: &Operations,
        mut body: Map<String, Value>,
        message_id: Option<String>,
        running: &Arc<Running>,
    ) -> OpResult<String> {
        body.insert("content".into(), json!("…"));
        let mut plan = operations
            .plan_create(&Auth::master(), "Message", &body)
            .await?;
        let object = plan
            .created_object_mut()
            .ok_or_else(|| OpError::Parse(Error::new(Code::InternalServerError, "no object")))?;
        object.fields.insert("content".into(), json!(""));
        if let Some(message_id) = message_id {
            object.object_id = message_id;
        }
        let message_id = object.object_id.clone();
        self.counters()
            .running
            .insert(message_id.clone(), running.clone());
        if let Err(error) = operations.commit_one(plan).await {
            self.counters().running.remove(&message_id);
            return Err(error);
        }
        Ok(message_id)
    }

    /// Asks a running reply to stop and waits (briefly) until its final state is written.
    /// False when no reply runs for the message here.
    pub async fn cancel(&self, message_id: &str) -> bool {
        let Some(running) = self.running(message_id) else {
            return false;
        };
        let mut view = running.view.subscribe();
        running.cancel.send_replace(true);
        let ended = async move {
            let _ = view.wait_for(|view| view.end.is_some()).await.is_ok();
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), ended).await;
        true
    }

    async fn run(
        self: Arc<Self>,
        operations: Operations,
        job: Job,
        message_id: String,
        running: Arc<Running>,
        slot: Result<Slot, String>,
    ) {
        // Proves to other servers that this reply is alive, and notices when one ends it.
        let heartbeat = tokio::spawn(
            recovery::keep_alive(
                operations.clone(),
                message_id.clone(),
                Arc::clone(&running),
                self.limits.stale_after,
            )
            .in_current_span(),
        );
        // Writes the text into the message as it grows, off the token path: a busy database
        // slows the message's updates down, never the tokens.
        let writer = tokio::spawn(
            write_text_while_streaming(
                operations.clone(),
                message_id.clone(),
                Arc::clone(&running),
                Arc::clone(&self),
            )
            .in_current_span(),
        );
        let gauge = operations
            .metrics
            .clone()
            .map(crate::metrics::RunningReply::start);
        let answer = self
            .produce(&operations, &job, &message_id, &running, slot)
            .await;
        drop(gauge);
        let count = |key: &str| {
            answer
                .usage
                .as_ref()
                .and_then(|usage| usage.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let (prompt_tokens, completion_tokens) =
            (count("prompt_tokens"), count("completion_tokens"));
        let (model, first_token, failure) = (
            answer.model.clone(),
            answer.first_token_ms.map(Duration::from_millis),
            answer.provider_failure,
        );
        heartbeat.abort();
        writer.abort();
        let end = End {
            status: answer.status,
            error: answer.error.clone(),
        };
        tracing::info!(
            status = answer.status.as_str(),
            model = %answer.model,
            error = answer.error.as_deref().unwrap_or_default(),
            "persona reply ended"
        );
        if let Err(error) = finish(&operations, &job, &message_id, answer).await {
            tracing::error!(%error, message_id, "writing a persona reply's final state failed");
        }
        // After the final write, so whoever sees the reply counted finds it finished.
        if let Some(metrics) = &operations.metrics {
            let provider = job
                .persona
                .fields
                .get("provider")
                .and_then(Value::as_str)
                .unwrap_or("default");
            metrics.record_reply(&crate::metrics::ReplyFigures {
                provider,
                model: &model,
                prompt_tokens,
                completion_tokens,
                first_token,
                failure,
            });
        }
        // After the final write, so a client that sees `done` reads the finished message.
        running.view.send_modify(|view| view.end = Some(end));
        self.counters().running.remove(&message_id);
    }

    /// The provider, model and budgets `persona`'s replies run with.
    pub fn plan(&self, persona: &Object) -> Result<ReplyPlan, ProviderError> {
        let fields = &persona.fields;
        let provider = self
            .providers
            .get(fields.get("provider").and_then(Value::as_str))?;
        let model = fields
            .get("model")
            .and_then(Value::as_str)
            .filter(|model| !model.trim().is_empty())
            .or_else(|| provider.default_model())
            .unwrap_or_default()
            .to_owned();
        let max_output = fields
            .get("maxTokens")
            .and_then(Value::as_u64)
            .filter(|tokens| *tokens > 0)
            .map_or(DEFAULT_MAX_OUTPUT_TOKENS, |tokens| {
                u32::try_from(tokens).unwrap_or(u32::MAX)
            });
        let window = provider.context_window(&model);
        Ok(ReplyPlan {
            provider,
            model,
            max_output,
            window,
        })
    }

    /// Checks the limits, then streams the persona's answer: round after round while the
    /// model calls tools (each call run and its result sent back), up to the round limit.
    async fn produce(
        &self,
        operations: &Operations,
        job: &Job,
        message_id: &str,
        running: &Running,
        slot: Result<Slot, String>,
    ) -> Answer {
        // Held until the stream is over: the slot counts this reply as running.
        let _slot = match slot {
            Ok(slot) => slot,
            Err(error) => return Answer::failed(error),
        };
        if let Some(user) = &job.user
            && let Err(error) = self.check_quota(operations, user).await
        {
            return Answer::failed(error);
        }
        let ReplyPlan {
            provider,
            model,
            max_output,
            window,
        } = match self.plan(&job.persona) {
            Ok(plan) => plan,
            Err(error) => return Answer::failed(error.to_string()),
        };
        let mut window = window;
        let temperature = job
            .persona
            .fields
            .get("temperature")
            .and_then(Value::as_f64);
        let mut cancel = running.cancel.subscribe();
        let started = Instant::now();
        let mut answer = Answer {
            model: model.clone(),
            ..Answer::failed("")
        };
        answer.error = None;
        let mut retried = false;
        let history_end = match &job.parent {
            Some(parent) => regeneration_root(operations, parent).await,
            None => None,
        };
        let runner = self.tools.get();
        let offered = tools::offered(runner, &job.persona).await;
        // Resolved at the first call: most replies call no tool.
        let mut caller: Option<Auth> = None;
        let mut usage = UsageSum::default();
        'prompt: loop {
            let mut request = match context::build_request(
                operations,
                &job.session,
                &job.persona,
                &model,
                max_output,
                window,
                history_end.as_ref(),
            )
            .await
            {
                Ok(request) => request,
                Err(error) => {
                    answer.status = Status::Failed;
                    answer.error = Some(format!("could not assemble the prompt: {error}"));
                    return answer;
                }
            };
            if request.temperature.is_none() {
                request.temperature = temperature;
            }
            if request.max_tokens.is_none() {
                request.max_tokens = Some(max_output);
            }
            request.tools = offered.clone();
            let mut round: u32 = 0;
            loop {
                let prompt_tokens = estimate_prompt(&model, &request);
                let opened = tokio::select! {
                    () = cancelled(&mut cancel) => {
                        answer.status = Status::Cancelled;
                        return answer.with_usage(usage);
                    }
                    opened = provider.stream(request.clone()) => opened,
                };
                let mut stream = match opened {
                    Ok(stream) => stream,
                    Err(ProviderError::ContextOverflow(_)) if !retried && round == 0 => {
                        retried = true;
                        window /= 2;
                        continue 'prompt;
                    }
                    Err(error) => {
                        answer.status = Status::Failed;
                        answer.error = Some(error.to_string());
                        answer.provider_failure = Some(error.kind());
                        return answer.with_usage(usage);
                    }
                };
                let mut reported: Option<Usage> = None;
                let mut calls: Vec<ToolCallRequest> = Vec::new();
                // This round's own text, for the history of the next round.
                let mut round_text = String::new();
                let outcome: Result<(), ProviderError> = loop {
                    tokio::select! {
                        biased;
                        () = cancelled(&mut cancel) => {
                            answer.status = Status::Cancelled;
                            break Ok(());
                        }
                        event = stream.next() => match event {
                            Some(Ok(StreamEvent::Delta(mut text))) => {
                                if answer.first_token_ms.is_none() {
                                    let elapsed = started.elapsed().as_millis();
                                    answer.first_token_ms = Some(u64::try_from(elapsed).unwrap_or(u64::MAX));
                                }
                                round_text.push_str(&text);
                                // A later round's text starts a new paragraph of the reply.
                                if round > 0 && round_text.len() == text.len() && !answer.text.is_empty() {
                                    text.insert_str(0, "\n\n");
                                }
                                answer.text.push_str(&text);
                                // SSE clients see it now; the message follows (`write_text_while_streaming`).
                                running.view.send_modify(|view| view.text.push_str(&text));
                            }
                            Some(Ok(StreamEvent::ToolCalls(requested))) => calls = requested,
                            Some(Ok(StreamEvent::Usage(counted))) => reported = Some(counted),
                            Some(Ok(StreamEvent::Finished { .. })) | None => {
                                answer.status = Status::Complete;
                                break Ok(());
                            }
                            Some(Err(error)) => break Err(error),
                        },
                    }
                };
                // Dropping the stream closes the upstream connection (a cancel stops the cost).
                drop(stream);
                match outcome {
                    Err(ProviderError::ContextOverflow(_))
                        if !retried && round == 0 && answer.text.is_empty() =>
                    {
                        retried = true;
                        window /= 2;
                        continue 'prompt;
                    }
                    Err(error) => {
                        answer.status = Status::Failed;
                        answer.error = Some(error.to_string());
                        answer.provider_failure = Some(error.kind());
                    }
                    Ok(()) => {}
                }
                usage.add(reported, || {
                    let arguments: String =
                        calls.iter().map(|call| call.arguments.as_str()).collect();
                    let completion = tokens::count_tokens(&model, &round_text)
                        + tokens::count_tokens(&model, &arguments);
                    (prompt_tokens, completion as u64)
                });
                if answer.status != Status::Complete || calls.is_empty() {
                    return answer.with_usage(usage);
                }
                if round >= self.limits.tool_rounds {
                    answer.status = Status::Failed;
                    answer.error = Some(format!(
                        "the persona was still calling tools after {round} rounds of tool \
                         results, the server's limit (--ai-tool-rounds); the text so far is kept"
                    ));
                    return answer.with_usage(usage);
                }
                round += 1;
                let caller = match &caller {
                    Some(caller) => caller,
                    None => {
                        caller.insert(tools::caller_auth(operations, job.user.as_deref()).await)
                    }
                };
                let tool_context = tools::ToolContext {
                    operations,
                    runner,
                    offered: &offered,
                    caller,
                    session_id: &job.session.object_id,
                    persona_id: &job.persona.object_id,
                    reply_id: message_id,
                    timeout: self.limits.tool_timeout,
                };
                let mut results = Vec::with_capacity(calls.len());
                for call in &calls {
                    let outcome = tokio::select! {
                        () = cancelled(&mut cancel) => {
                            answer.status = Status::Cancelled;
                            return answer.with_usage(usage);
                        }
                        outcome = tools::run_call(&tool_context, call.clone()) => outcome,
                    };
                    tools::record(&tool_context, &outcome, round).await;
                    results.push(outcome.to_result());
                }
                request
                    .messages
                    .push(ChatMessage::tool_calls(round_text, calls));
                request.messages.push(ChatMessage::tool_results(results));
            }
        }
    }
}

/// Token usage summed over a reply's rounds.
#[derive(Debug, Default)]
struct UsageSum {
    prompt: u64,
    completion: u64,
    total: u64,
    /// Whether any round was counted by Parlor rather than reported by the provider.
    estimated: bool,
    rounds: u32,
}

impl UsageSum {
    /// Adds one round: what the provider reported, else Parlor's `(prompt, completion)`.
    fn add(&mut self, reported: Option<Usage>, estimate: impl FnOnce() -> (u64, u64)) {
        self.rounds += 1;
        match reported {
            Some(usage) => {
                self.prompt += usage.prompt_tokens;
                self.completion += usage.completion_tokens;
                self.total += usage.total_tokens;
            }
            None => {
                let (prompt, completion) = estimate();
                self.prompt += prompt;
                self.completion += completion;
                self.total += prompt + completion;
                self.estimated = true;
            }
        }
    }
}

impl Answer {
    /// The answer with its usage (none when no round reached the provider).
    fn with_usage(mut self, usage: UsageSum) -> Answer {
        if usage.rounds == 0 {
            return self;
        }
        let mut value = json!({
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "total_tokens": usage.total,
        });
        if usage.estimated {
            value["estimated"] = json!(true);
        }
        self.usage = Some(value);
        self
    }
}

/// Resolves once the reply is asked to stop.
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        // The sender lives as long as the reply; without it nobody can cancel any more.
        std::future::pending::<()>().await;
    }
}

/// The prompt's size as Parlor counts it, for usage the provider did not report.
fn estimate_prompt(model: &str, request: &ChatRequest) -> u64 {
    let mut total = tokens::TOKENS_PER_REPLY;
    if let Some(system) = &request.system {
        total += tokens::TOKENS_PER_MESSAGE + tokens::count_tokens(model, system);
    }
    for message in &request.messages {
        total += tokens::TOKENS_PER_MESSAGE + tokens::count_tokens(model, &message.content);
        for call in &message.tool_calls {
            total += tokens::count_tokens(model, &call.name)
                + tokens::count_tokens(model, &call.arguments);
        }
        for result in &message.tool_results {
            total += tokens::TOKENS_PER_MESSAGE + tokens::count_tokens(model, &result.content);
        }
    }
    for tool in &request.tools {
        total += tokens::count_tokens(model, &tool.name)
            + tokens::count_tokens(model, &tool.description)
            + tokens::count_tokens(model, &tool.parameters.to_string());
    }
    total as u64
}

/// Writes the reply's text into its message at most every [`FLUSH_EVERY`] (and no faster
/// than the database takes the writes) until the reply ends; if another server ended it,
/// asks the generation to stop. The final write (`finish`) carries the whole text.
async fn write_text_while_streaming(
    operations: Operations,
    message_id: String,
    running: Arc<Running>,
    generator: Arc<Generator>,
) {
    let mut view = running.view.subscribe();
    let mut written = 0;
    loop {
        if view.changed().await.is_err() {
            return;
        }
        let text = {
            let current = view.borrow_and_update();
            if current.end.is_some() {
                return;
            }
            current.text.clone()
        };
        if text.len() != written {
            if !flush(&operations, &message_id, &text).await {
                running.cancel.send_replace(true);
                return;
            }
            written = text.len();
        }
        tokio::time::sleep(generator.flush_period()).await;
    }
}

/// Writes the text so far; a failure is logged, not fatal: the final write carries it all.
/// `false` when the reply is no longer `streaming`: another server ended it.
async fn flush(operations: &Operations, message_id: &str, text: &str) -> bool {
    let mut body = Map::new();
    body.insert("content".into(), json!(text));
    match recovery::update_while_streaming(operations, message_id, body).await {
        Ok(streaming) => streaming,
        Err(error) => {
            tracing::warn!(%error, message_id, "writing a persona reply's text failed");
            true
        }
    }
}

/// Writes the final state of a reply, the session's `lastMessageAt` and the usage record.
async fn finish(
    operations: &Operations,
    job: &Job,
    message_id: &str,
    answer: Answer,
) -> OpResult<()> {
    let mut body = Map::new();
    // `content` is required, so an empty one cannot be written: it stays as created.
    if !answer.text.is_empty() {
        body.insert("content".into(), json!(answer.text));
    }
    body.insert("status".into(), json!(answer.status.as_str()));
    if let Some(error) = &answer.error {
        body.insert("error".into(), json!(error));
    }
    if !answer.model.is_empty() {
        body.insert("model".into(), json!(answer.model));
    }
    if let Some(ms) = answer.first_token_ms {
        body.insert("firstTokenMs".into(), json!(ms));
    }
    if let Some(usage) = &answer.usage {
        body.insert("usage".into(), usage.clone());
    }
    // The usage record and the session first: a client that sees the reply end finds them.
    touch_session(operations, &job.session.object_id).await?;
    if let Some(usage) = &answer.usage {
        let number = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
        let mut record = Map::new();
        if let Some(user) = &job.user {
            record.insert("user".into(), pointer("_User", user));
        }
        record.insert("persona".into(), pointer("Persona", &job.persona.object_id));
        record.insert(
            "session".into(),
            pointer("ChatSession", &job.session.object_id),
        );
        record.insert("message".into(), pointer("Message", message_id));
        record.insert("model".into(), json!(answer.model));
        record.insert("day".into(), json!(today()));
        record.insert("promptTokens".into(), json!(number("prompt_tokens")));
        record.insert(
            "completionTokens".into(),
            json!(number("completion_tokens")),
        );
        record.insert("totalTokens".into(), json!(number("total_tokens")));
        record.insert("estimated".into(), json!(usage.get("estimated").is_some()));
        // An empty ACL: nobody but the master key reads usage records.
        record.insert("ACL".into(), json!({}));
        create_as_master(operations, USAGE_CLASS, record).await?;
    }
    // Not over a state another server wrote (a cancel that reached it, or the sweeper).
    recovery::update_while_streaming(operations, message_id, body).await?;
    Ok(())
}

/// Sets the session's `lastMessageAt` to now.
async fn touch_session(operations: &Operations, session_id: &str) -> OpResult<()> {
    let mut body = Map::new();
    body.insert(
        "lastMessageAt".into(),
        json!({"__type": "Date", "iso": now_iso()}),
    );
    update_as_master(operations, "ChatSession", session_id, body).await
}

/// Posts the greeting of each of `persona_ids` that has one, as a finished assistant message.
async fn greet(operations: &Operations, session: &Object, persona_ids: &[String]) -> OpResult<()> {
    for persona_id in persona_ids {
        let Some(persona) = load_persona(operations, persona_id).await? else {
            continue;
        };
        let Some(greeting) = persona
            .fields
            .get("greeting")
            .and_then(Value::as_str)
            .filter(|greeting| !greeting.trim().is_empty())
        else {
            continue;
        };
        let mut body = Map::new();
        body.insert("session".into(), pointer("ChatSession", &session.object_id));
        body.insert("persona".into(), pointer("Persona", persona_id));
        body.insert("role".into(), json!("assistant"));
        body.insert("status".into(), json!("complete"));
        body.insert("content".into(), json!(greeting));
        create_as_master(operations, "Message", body).await?;
        touch_session(operations, &session.object_id).await?;
    }
    Ok(())
}

/// The first answer of a chain of regenerations ending at `message_id`: each `parent` link
/// leads to the answer it replaced, and the first one's history is what every sibling
/// answers. Bounded, so a `parent` cycle written by the master key cannot loop.
async fn regeneration_root(operations: &Operations, message_id: &str) -> Option<Object> {
    let mut current = operations.load_object("Message", message_id).await.ok()??;
    for _ in 0..64 {
        let Some(parent) = pointer_id(current.fields.get("parent"), "Message") else {
            break;
        };
        match operations.load_object("Message", parent).await {
            Ok(Some(older)) => current = older,
            _ => break,
        }
    }
    Some(current)
}

/// The personas a session lists, in its order, skipping those that no longer exist.
pub async fn session_personas(operations: &Operations, session: &Object) -> OpResult<Vec<Object>> {
    let mut personas = Vec::new();
    for id in pointer_ids(session.fields.get("personas"), PERSONA_CLASS) {
        if let Some(persona) = load_persona(operations, &id).await? {
            personas.push(persona);
        }
    }
    Ok(personas)
}

/// The tokens `user`'s replies spent today (UTC), from the usage records.
async fn tokens_used_today(operations: &Operations, user: &str) -> OpResult<u64> {
    if operations.schemas.get(USAGE_CLASS).is_none() {
        return Ok(0);
    }
    let request = FindRequest {
        where_json: json!({"user": pointer("_User", user), "day": today()}),
        keys: Some(vec!["totalTokens".to_owned()]),
        limit: Some(u64::from(u32::MAX)),
        ..FindRequest::default()
    };
    let found = operations
        .find(&Auth::master(), USAGE_CLASS, request)
        .await?;
    Ok(found
        .results
        .iter()
        .filter_map(|record| record.get("totalTokens").and_then(Value::as_u64))
        .sum())
}

/// Today's UTC date, `YYYY-MM-DD`: the key of the daily quota.
fn today() -> String {
    now_iso().chars().take(10).collect()
}

/// `{"__type":"Pointer",…}`.
pub fn pointer(class_name: &str, object_id: &str) -> Value {
    json!({"__type": "Pointer", "className": class_name, "objectId": object_id})
}

/// The objectId of a pointer to `class_name`.
pub fn pointer_id<'a>(value: Option<&'a Value>, class_name: &str) -> Option<&'a str> {
    let (target, object_id) = as_pointer(value?)?;
    (target == class_name).then_some(object_id)
}

/// The objectIds of an array of pointers to `class_name`, each once, in order.
pub fn pointer_ids(value: Option<&Value>, class_name: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    if let Some(Value::Array(items)) = value {
        for item in items {
            if let Some(id) = pointer_id(Some(item), class_name)
                && !ids.iter().any(|known| known == id)
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// The class of the personas that answer.
pub const PERSONA_CLASS: &str = "Persona";

/// Persona `persona_id` as the server reads it to answer, from `operations.personas` while
/// nothing has been written to the class since it was read.
pub async fn load_persona(operations: &Operations, persona_id: &str) -> OpResult<Option<Object>> {
    operations
        .load_cached(&operations.personas, PERSONA_CLASS, persona_id)
        .await
}

/// Creates an object as the master key (the server speaking for a persona); its objectId.
pub async fn create_as_master(
    operations: &Operations,
    class_name: &str,
    body: Map<String, Value>,
) -> OpResult<String> {
    let plan = operations
        .plan_create(&Auth::master(), class_name, &body)
        .await?;
    let response = operations.commit_one(plan).await?;
    response
        .body
        .get("objectId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| OpError::Parse(Error::new(Code::InternalServerError, "no objectId")))
}

/// Updates an object as the master key.
pub async fn update_as_master(
    operations: &Operations,
    class_name: &str,
    object_id: &str,
    body: Map<String, Value>,
) -> OpResult<()> {
    let plan = operations
        .plan_update(&Auth::master(), class_name, object_id, &body)
        .await?;
    operations.commit_one(plan).await?;
    Ok(())
}
