//! Tools: functions a persona's model may call in the middle of a reply.
//!
//! Parlor does not define tools itself. A [`ToolRunner`] registered at start-up
//! ([`crate::ai::generation::Generator::set_tools`]) lists the tools that exist and runs
//! them: cloud code's functions defined with `Parse.Cloud.define(name, handler, {tool:
//! {description, parameters}})` ([`crate::cloud::tools::CloudTools`], registered when the
//! server runs cloud code), or [`ToolSet`] (Rust closures), for tests and embedders.
//! A persona names the tools it may use in its `tools` field; a reply offers the model the
//! tools that are both listed there and defined by the runner.
//!
//! During a reply ([`crate::ai::generation`]), each call the model makes is checked and run
//! here ([`run_call`]):
//! - a tool the persona was not offered, arguments that are not JSON, a call that fails,
//!   panics, or outlives the per-call limit, and a refusal of the caller's rights all become
//!   the tool's *result*, marked as an error, which the model reads and answers from; the
//!   reply goes on;
//! - the call runs with the rights of the user whose message started the reply (see
//!   [`ToolCall::caller`]), never with the master key's;
//! - each call and its result is stored as a `Message` with `role: "tool"` in the session
//!   ([`record`]), created by the server with the session's read ACL, so participants (and
//!   their LiveQuery subscriptions) see what the persona did.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parlor_core::object::Object;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::ai::generation::{create_as_master, pointer};
use crate::ai::provider::{ToolCallRequest, ToolResult, ToolSpec};
use crate::operation::template_rules::is_valid_tool_name;
use crate::operation::{Auth, Operations};

/// The longest result handed to the model and stored, in characters of its JSON text; a
/// longer one is refused (an error result) rather than cut into invalid JSON.
pub const MAX_RESULT_CHARS: usize = 32_000;

/// One call for a [`ToolRunner`] to run.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The tool's name, one the runner listed.
    pub name: String,
    /// The arguments the model gave, already parsed as JSON (usually an object, as the tool's
    /// `parameters` schema asks; Parlor does not check them against the schema: the tool
    /// does, as a cloud function checks its `params`).
    pub arguments: Value,
    /// The rights the call runs with: those of the user whose message (or `generate` /
    /// `regenerate` call) started the reply, with the user's roles resolved, and never the
    /// master key. A reply the master key started with no user runs its tools as an
    /// anonymous caller. A runner must do every read and write of the call with these
    /// rights, through the operation layer, so ACLs, CLPs and the template's rules apply
    /// exactly as they would to that user's own requests.
    pub caller: Auth,
    /// Where the call happens: the session, the persona answering, and its reply Message.
    pub session_id: String,
    pub persona_id: String,
    pub reply_id: String,
    /// When Parlor stops waiting for the answer (the per-call limit,
    /// `--ai-tool-timeout`). Parlor then drops the call's future and tells the model the tool
    /// timed out; a runner whose work cannot be dropped (a JavaScript engine) should
    /// interrupt it by then.
    pub deadline: Instant,
}

/// What runs the tools personas call. See the module docs for how replies use it.
///
/// The contract, for an implementation (cloud code's among them):
/// - [`ToolRunner::tools`] lists every tool defined now, each with a `name` matching
///   `[a-zA-Z0-9_-]{1,64}` (what both providers' wire formats accept; others are never
///   offered), a `description` the model reads to decide when to call it, and `parameters`,
///   a JSON Schema of an `object` (`{"type": "object", "properties": {…}, "required": […]}`).
///   It is asked once per reply, so definitions may change at run time (a reload).
/// - [`ToolRunner::run`] runs one call and answers its result as JSON (any value; it is sent
///   to the model as JSON text), or an error sentence the model can read (a thrown error's
///   message; a validator's refusal; `"Object not found."` when the caller may not read what
///   it asked for). It is only called for tools the persona lists and the runner listed.
/// - Everything the call reads or writes goes through the operation layer with
///   [`ToolCall::caller`]'s rights, so what the call may do is exactly what that user may do.
/// - A call may be dropped at [`ToolCall::deadline`] (and when the reply is cancelled);
///   panics are caught and reported to the model as a failure.
#[async_trait::async_trait]
pub trait ToolRunner: Send + Sync + fmt::Debug {
    /// Every tool defined now.
    async fn tools(&self) -> Vec<ToolSpec>;

    /// Runs `call`; its result as JSON, or why it failed.
    async fn run(&self, operations: &Operations, call: ToolCall) -> Result<Value, String>;
}

/// The future a [`ToolSet`] handler returns.
pub type ToolFuture = BoxFuture<'static, Result<Value, String>>;

type Handler = Arc<dyn Fn(Operations, ToolCall) -> ToolFuture + Send + Sync>;

/// A [`ToolRunner`] made of Rust closures: tools registered without cloud code (the tests
/// use it; an embedder can too).
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: Vec<(ToolSpec, Handler)>,
}

impl ToolSet {
    pub fn new() -> ToolSet {
        ToolSet::default()
    }

    /// Adds a tool (replacing one of the same name). The handler gets the operations and the
    /// call, and must act with `call.caller`'s rights.
    pub fn with<F, Fut>(
        mut self,
        name: &str,
        description: &str,
        parameters: Value,
        handler: F,
    ) -> ToolSet
    where
        F: Fn(Operations, ToolCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        self.tools.retain(|(spec, _)| spec.name != name);
        let spec = ToolSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters,
        };
        let handler: Handler =
            Arc::new(move |operations, call| Box::pin(handler(operations, call)));
        self.tools.push((spec, handler));
        self
    }
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.tools.iter().map(|(spec, _)| &spec.name))
            .finish()
    }
}

#[async_trait::async_trait]
impl ToolRunner for ToolSet {
    async fn tools(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|(spec, _)| spec.clone()).collect()
    }

    async fn run(&self, operations: &Operations, call: ToolCall) -> Result<Value, String> {
        let handler = self
            .tools
            .iter()
            .find(|(spec, _)| spec.name == call.name)
            .map(|(_, handler)| Arc::clone(handler))
            .ok_or_else(|| format!("there is no tool named \"{}\"", call.name))?;
        handler(operations.clone(), call).await
    }
}

/// The names a persona lists in `tools`, each once, in order (invalid items skipped).
pub fn persona_tool_names(persona: &Object) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(Value::Array(items)) = persona.fields.get("tools") {
        for name in items.iter().filter_map(Value::as_str) {
            if is_valid_tool_name(name) && !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The tools offered to `persona`'s model: those it lists that the runner defines, in the
/// persona's order.
pub async fn offered(runner: Option<&Arc<dyn ToolRunner>>, persona: &Object) -> Vec<ToolSpec> {
    let names = persona_tool_names(persona);
    let Some(runner) = runner.filter(|_| !names.is_empty()) else {
        return Vec::new();
    };
    let defined = runner.tools().await;
    names
        .iter()
        .filter_map(|name| defined.iter().find(|spec| &spec.name == name).cloned())
        .filter(|spec| is_valid_tool_name(&spec.name))
        .collect()
}

/// Where calls of one reply run: the runner, what was offered and who asked.
pub struct ToolContext<'a> {
    pub operations: &'a Operations,
    pub runner: Option<&'a Arc<dyn ToolRunner>>,
    pub offered: &'a [ToolSpec],
    pub caller: &'a Auth,
    pub session_id: &'a str,
    pub persona_id: &'a str,
    pub reply_id: &'a str,
    pub timeout: Duration,
}

/// How one call went: what the model is told, and what is stored.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub request: ToolCallRequest,
    /// The parsed arguments (`null` when they were not JSON).
    pub arguments: Value,
    pub result: Result<Value, String>,
    pub duration: Duration,
}

impl CallOutcome {
    /// The result as the model reads it.
    pub fn to_result(&self) -> ToolResult {
        match &self.result {
            Ok(value) => ToolResult {
                call_id: self.request.id.clone(),
                content: value.to_string(),
                is_error: false,
            },
            Err(error) => ToolResult {
                call_id: self.request.id.clone(),
                content: error.clone(),
                is_error: true,
            },
        }
    }
}

/// Runs one call the model made (see the module docs): never fails, every problem is the
/// call's error result.
pub async fn run_call(context: &ToolContext<'_>, request: ToolCallRequest) -> CallOutcome {
    let started = Instant::now();
    let arguments = request.parsed_arguments();
    let result = match (&arguments, context.runner) {
        _ if !context.offered.iter().any(|spec| spec.name == request.name) => Err(format!(
            "the tool \"{}\" is not available to this persona; use only the tools offered",
            request.name
        )),
        (Err(error), _) => Err(error.clone()),
        (_, None) => Err("no tools are defined on this server".to_owned()),
        (Ok(arguments), Some(runner)) => {
            let call = ToolCall {
                name: request.name.clone(),
                arguments: arguments.clone(),
                caller: context.caller.clone(),
                session_id: context.session_id.to_owned(),
                persona_id: context.persona_id.to_owned(),
                reply_id: context.reply_id.to_owned(),
                deadline: started + context.timeout,
            };
            run_guarded(context.operations, runner, call, context.timeout).await
        }
    };
    let result = result.and_then(|value| {
        let size = value.to_string().chars().count();
        if size > MAX_RESULT_CHARS {
            Err(format!(
                "the tool's result is too large ({size} characters of JSON; the limit is \
                 {MAX_RESULT_CHARS})"
            ))
        } else {
            Ok(value)
        }
    });
    CallOutcome {
        request,
        arguments: arguments.unwrap_or(Value::Null),
        result,
        duration: started.elapsed(),
    }
}

/// Runs the call in its own task, so that a panic in the runner is an error result and the
/// call is dropped (aborted) at the time limit.
async fn run_guarded(
    operations: &Operations,
    runner: &Arc<dyn ToolRunner>,
    call: ToolCall,
    limit: Duration,
) -> Result<Value, String> {
    let runner = Arc::clone(runner);
    let operations = operations.clone();
    let name = call.name.clone();
    let mut task = tokio::spawn(tracing::Instrument::in_current_span(async move {
        runner.run(&operations, call).await
    }));
    match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => {
            tracing::warn!(tool = %name, error = %join_error, "a tool call panicked");
            Err(format!("the tool \"{name}\" failed unexpectedly"))
        }
        Err(_elapsed) => {
            task.abort();
            Err(format!(
                "the tool \"{name}\" did not answer within {} s and was stopped",
                limit.as_secs_f64()
            ))
        }
    }
}

/// Stores a call and its result in the session: a Message with `role: "tool"`, `persona`,
/// `reply` (the assistant Message that made the call), `content` (the result's JSON text or
/// the error) and `toolCall: {id, name, arguments, result | error, round, durationMs}`.
/// Created as the server, it gets the read ACL of the session's members. A failure is logged:
/// the reply does not depend on the record.
pub async fn record(context: &ToolContext<'_>, outcome: &CallOutcome, round: u32) {
    let mut tool_call = Map::new();
    tool_call.insert("id".into(), json!(outcome.request.id));
    tool_call.insert("name".into(), json!(outcome.request.name));
    tool_call.insert("arguments".into(), outcome.arguments.clone());
    match &outcome.result {
        Ok(value) => tool_call.insert("result".into(), value.clone()),
        Err(error) => tool_call.insert("error".into(), json!(error)),
    };
    tool_call.insert("round".into(), json!(round));
    tool_call.insert(
        "durationMs".into(),
        json!(u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX)),
    );
    let content = match &outcome.result {
        Ok(value) => value.to_string(),
        Err(error) => error.clone(),
    };
    let mut body = Map::new();
    body.insert("session".into(), pointer("ChatSession", context.session_id));
    body.insert("persona".into(), pointer("Persona", context.persona_id));
    body.insert("reply".into(), pointer("Message", context.reply_id));
    body.insert("role".into(), json!("tool"));
    body.insert("status".into(), json!("complete"));
    // `content` is required and must not be empty.
    body.insert(
        "content".into(),
        json!(if content.is_empty() {
            "null".to_owned()
        } else {
            content
        }),
    );
    body.insert("toolCall".into(), Value::Object(tool_call));
    if let Err(error) = create_as_master(context.operations, "Message", body).await {
        tracing::warn!(%error, tool = %outcome.request.name, "storing a tool call failed");
    }
}

/// The rights a reply's tools run with: the user's (roles resolved), or an anonymous
/// caller's when no user started the reply.
pub async fn caller_auth(operations: &Operations, user: Option<&str>) -> Auth {
    let Some(user_id) = user else {
        return Auth::default();
    };
    let roles = match operations.roles_of(user_id).await {
        Ok(roles) => roles,
        Err(error) => {
            // Fewer rights, never more: the call runs as the user without roles.
            tracing::warn!(%error, user_id, "reading the caller's roles for tool calls failed");
            Vec::new()
        }
    };
    Auth {
        user_id: Some(user_id.to_owned()),
        roles,
        ..Auth::default()
    }
}
