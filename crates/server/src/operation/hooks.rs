//! The hook seam: what the operation layer asks of code that is not its own — an app's
//! Cloud Code (`cloud/`) — without knowing how that code runs.
//!
//! Every entry point (REST, batch, GraphQL, LiveQuery, the web app, cloud code itself)
//! reaches functions and triggers through [`Operations`] and this trait, so a rule written in
//! cloud code holds whichever way a request comes in.

use std::sync::Arc;

use parlor_core::object::Object;
use parlor_core::ops::FieldUpdate;
use parlor_core::schema::ClassSchema;
use parlor_store::Write;
use serde_json::{Map, Value};

use super::{Auth, OpResult, Operations};

/// Work the server starts itself once writes commit — the AI template's persona replies
/// (`ai::generation::Generator`) — told directly by [`Operations::commit`] rather than
/// through the live-query bus, which may drop events under load.
pub trait CommitHook: Send + Sync + 'static {
    /// Whether commits to `class_name` concern it.
    fn watches(&self, class_name: &str) -> bool;

    /// Hears of committed writes to watched classes; for each, in order, the objectIds of
    /// what it started (the create's answer names them as `replies`).
    fn after_commit<'a>(
        self: Arc<Self>,
        operations: &'a Operations,
        committed: Vec<Committed>,
    ) -> futures::future::BoxFuture<'a, Vec<Vec<String>>>;

    /// Its figures for `/serverStatus`.
    fn status(&self) -> Value;

    /// What it runs now, for `GET /generations`.
    fn running(&self) -> Vec<Value>;

    /// Itself, for the module that owns it to find its own type again.
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// A committed write, as a [`CommitHook`] hears of it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub class_name: String,
    pub outcome: parlor_store::WriteOutcome,
    /// The object the [`WriteRules`] read to allow the write (a Message's ChatSession), as
    /// it stood just before the commit: a hook may take it rather than read it again.
    pub read: Option<Object>,
}

/// What the [`WriteRules`] made of a create.
#[derive(Debug, Default)]
pub struct CheckedCreate {
    /// The values they filled, which the response carries.
    pub filled: Map<String, Value>,
    /// The object they read to allow it (see [`Committed::read`]).
    pub read: Option<Object>,
}

impl From<Map<String, Value>> for CheckedCreate {
    fn from(filled: Map<String, Value>) -> CheckedCreate {
        CheckedCreate { filled, read: None }
    }
}

/// Rules the server applies to writes of its own classes — the chat template's
/// (`template_rules::TemplateRules`) — on the same seam as the app's triggers: after the
/// app's `beforeSave` and the body's validation, before the commit.
#[async_trait::async_trait]
pub trait WriteRules: Send + Sync {
    /// Checks a create and fills what the server owns on `object`.
    async fn on_create(
        &self,
        operations: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        body: &Map<String, Value>,
        object: &mut Object,
    ) -> OpResult<CheckedCreate>;

    /// Checks an update; it may rewrite the planned field updates.
    async fn on_update(
        &self,
        operations: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        object_id: &str,
        updates: &mut Vec<FieldUpdate>,
    ) -> OpResult<()>;

    /// Checks a delete.
    async fn on_delete(
        &self,
        operations: &Operations,
        auth: &Auth,
        schema: &ClassSchema,
        object_id: &str,
    ) -> OpResult<()>;

    /// `writes` and what must follow them in the same transaction.
    async fn follow_ups(&self, operations: &Operations, writes: Vec<Write>)
    -> OpResult<Vec<Write>>;
}

/// What a request carries besides its credentials: `request.headers`, `ip`, `context`.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub headers: Map<String, Value>,
    pub ip: Option<String>,
    /// `X-Parse-Cloud-Context` (or the body's `_context`).
    pub context: Map<String, Value>,
}

/// What a `beforeSave` made of a write.
#[derive(Debug, Clone)]
pub struct BeforeSaveAnswer {
    /// The body to write.
    pub body: Map<String, Value>,
    /// The fields the trigger changed, which the response echoes.
    pub echo: Vec<String>,
    /// The request's `context` as the trigger left it.
    pub context: Option<Value>,
}

/// What an `afterSave`/`afterDelete` of a planned write needs after the commit.
#[derive(Debug, Clone)]
pub struct AfterTrigger {
    /// The caller.
    pub auth: Auth,
    /// The request's `context` as the write's beforeSave left it (`None`: the request's own).
    pub context: Option<Value>,
    /// The body written (after beforeSave): the response leaves out what the client sent.
    pub sent: Map<String, Value>,
}

/// What an `afterSave` makes of a write's response.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterSaveAnswer {
    /// The trigger returned a plain object: it is the response.
    Replace(Value),
    /// Fields the trigger changed on the object: they join the response.
    Changed(Map<String, Value>),
}

impl AfterSaveAnswer {
    /// Reads the shim's answer: `{json}` when the trigger returned a plain object, `{object}`
    /// (the object as the trigger left it) otherwise. A field joins the response when it
    /// is set, not a pointer, and differs both from what was sent and from the stored
    /// original — Parse Server's rule, so an untouched object changes nothing.
    fn read(
        answer: Value,
        class_name: &str,
        sent: &Map<String, Value>,
        outcome: &parlor_store::WriteOutcome,
    ) -> Option<AfterSaveAnswer> {
        let Value::Object(mut answer) = answer else {
            return None;
        };
        if let Some(json) = answer.remove("json") {
            return Some(AfterSaveAnswer::Replace(json));
        }
        let Some(Value::Object(object)) = answer.remove("object") else {
            return None;
        };
        let original = match outcome {
            parlor_store::WriteOutcome::Updated { before, .. } => Some(before.to_json()),
            _ => None,
        };
        let mut changed = Map::new();
        for (key, value) in object {
            let own = matches!(
                key.as_str(),
                "objectId" | "createdAt" | "updatedAt" | "className" | "__type"
            ) || key.starts_with('_')
                || (class_name == "_User"
                    && matches!(key.as_str(), "password" | "sessionToken" | "authData"));
            let is_pointer = value.get("__type").and_then(Value::as_str) == Some("Pointer");
            if own
                || value.is_null()
                || is_pointer
                || sent.get(&key) == Some(&value)
                || original.as_ref().and_then(|original| original.get(&key)) == Some(&value)
            {
                continue;
            }
            changed.insert(key, value);
        }
        (!changed.is_empty()).then_some(AfterSaveAnswer::Changed(changed))
    }
}

/// The class name `beforeConnect` is registered under.
const CONNECT: &str = "@Connect";

/// The triggers an app's code may define (§10.3, §11.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    BeforeSave,
    AfterSave,
    BeforeDelete,
    AfterDelete,
    BeforeFind,
    AfterFind,
    BeforeLogin,
    AfterLogin,
    AfterLogout,
    BeforeSubscribe,
    AfterLiveQueryEvent,
    /// A LiveQuery client's `connect` (on the pseudo-class `@Connect`, as Parse Server names it).
    BeforeConnect,
}

impl Trigger {
    /// The name `Parse.Cloud.<name>` registers it under.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::BeforeSave => "beforeSave",
            Trigger::AfterSave => "afterSave",
            Trigger::BeforeDelete => "beforeDelete",
            Trigger::AfterDelete => "afterDelete",
            Trigger::BeforeFind => "beforeFind",
            Trigger::AfterFind => "afterFind",
            Trigger::BeforeLogin => "beforeLogin",
            Trigger::AfterLogin => "afterLogin",
            Trigger::AfterLogout => "afterLogout",
            Trigger::BeforeSubscribe => "beforeSubscribe",
            Trigger::AfterLiveQueryEvent => "afterLiveQueryEvent",
            Trigger::BeforeConnect => "beforeConnect",
        }
    }
}

/// An app's code, as the operation layer sees it.
#[async_trait::async_trait]
pub trait CloudHooks: Send + Sync {
    /// Whether the code defines `trigger` for `class_name` (cheap: asked on every write).
    fn has_trigger(&self, trigger: Trigger, class_name: &str) -> bool;

    /// Runs `trigger` on `class_name` with `payload` (the trigger's own request fields; the
    /// caller's user, master flag and installation are added from `auth`); the trigger's
    /// answer, whose shape depends on the trigger (see the callers in this module).
    async fn run_trigger(
        &self,
        operations: &Operations,
        auth: &Auth,
        trigger: Trigger,
        class_name: &str,
        payload: Value,
    ) -> OpResult<Value>;

    /// The functions `POST /functions/:name` runs (GraphQL's `callCloudCode` lists them).
    fn function_names(&self) -> Vec<String>;

    /// Moves when the code is reloaded (what it defines may have changed).
    fn code_version(&self) -> u64;

    /// Whether the app validates `provider`'s `authData` with a module of its own.
    fn has_auth_adapter(&self, provider: &str) -> bool;

    /// Validates `auth_data` with the app's module for `provider`; its refusal (a Parse
    /// error it throws) is the answer.
    async fn validate_auth_data(
        &self,
        operations: &Operations,
        auth: &Auth,
        provider: &str,
        auth_data: &Value,
    ) -> OpResult<()>;

    /// Starts the job `name` in the background, its progress recorded in `_JobStatus`
    /// object `job_id`.
    fn start_job(
        &self,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        job_id: &str,
    ) -> OpResult<()>;

    /// Whether the code defines the job `name`.
    fn has_job(&self, name: &str) -> bool;

    /// The jobs the code defines.
    fn job_names(&self) -> Vec<String>;

    /// Runs the function `name`; its `result` (`None`: it returned nothing).
    async fn call_function(
        &self,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> OpResult<Option<Value>>;
}

impl Operations {
    /// Whether the app's code defines `trigger` on `class_name`.
    pub fn has_trigger(&self, trigger: Trigger, class_name: &str) -> bool {
        self.cloud
            .as_ref()
            .is_some_and(|cloud| cloud.has_trigger(trigger, class_name))
    }

    /// Runs `trigger` if the app defines it: `None` when it does not.
    pub async fn run_trigger(
        &self,
        auth: &Auth,
        trigger: Trigger,
        class_name: &str,
        payload: Value,
    ) -> OpResult<Option<Value>> {
        match &self.cloud {
            Some(cloud) if cloud.has_trigger(trigger, class_name) => cloud
                .run_trigger(self, auth, trigger, class_name, payload)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// `beforeSave`: the write's body as the trigger left it, the fields whose value the
    /// trigger changed (the response echoes them) and the request's `context` as the trigger
    /// left it (its afterSave sees that); `None` without a trigger. `original` is the stored
    /// object of an update.
    pub(super) async fn before_save(
        &self,
        auth: &Auth,
        class_name: &str,
        original: Option<Map<String, Value>>,
        body: &Map<String, Value>,
    ) -> OpResult<Option<BeforeSaveAnswer>> {
        // The payload copies the whole body: not built for a class without the trigger.
        if !self.has_trigger(Trigger::BeforeSave, class_name) {
            return Ok(None);
        }
        let payload = serde_json::json!({"original": original, "body": body});
        let Some(answer) = self
            .run_trigger(auth, Trigger::BeforeSave, class_name, payload)
            .await?
        else {
            return Ok(None);
        };
        let body = answer
            .get("body")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let echo = answer
            .get("echo")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let context = answer.get("context").filter(|context| context.is_object());
        Ok(Some(BeforeSaveAnswer {
            body,
            echo,
            context: context.cloned(),
        }))
    }

    /// `afterSave` / `afterDelete` of a committed write: awaited; a failure is only logged
    /// — the write stands and the client hears of its success (§10.3). What an afterSave
    /// makes of the response, as Parse Server does: a plain object it returns becomes the
    /// response; otherwise the fields the trigger changed on the object (or on the object it
    /// returns) join it.
    pub(super) async fn after_write(
        &self,
        after: &AfterTrigger,
        class_name: &str,
        outcome: &parlor_store::WriteOutcome,
    ) -> Option<AfterSaveAnswer> {
        use parlor_store::WriteOutcome;
        let (trigger, mut payload) = match outcome {
            WriteOutcome::Created(object) => (
                Trigger::AfterSave,
                serde_json::json!({"object": object.to_json(), "original": null}),
            ),
            WriteOutcome::Updated { before, after } => (
                Trigger::AfterSave,
                serde_json::json!({"object": after.to_json(), "original": before.to_json()}),
            ),
            WriteOutcome::Deleted(object) => (
                Trigger::AfterDelete,
                serde_json::json!({"object": object.to_json()}),
            ),
        };
        if let Some(context) = &after.context {
            payload["context"] = context.clone();
        }
        match self
            .run_trigger(&after.auth, trigger, class_name, payload)
            .await
        {
            Ok(Some(answer)) if trigger == Trigger::AfterSave => {
                AfterSaveAnswer::read(answer, class_name, &after.sent, outcome)
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(
                    trigger = trigger.name(),
                    class = class_name,
                    "Cloud Code trigger failed after the write committed: {error}"
                );
                None
            }
        }
    }

    /// `beforeSubscribe` (LiveQuery and GraphQL subscriptions): the app may change the
    /// subscription's `where` and `keys`, or refuse it by throwing.
    pub async fn before_subscribe(
        &self,
        auth: &Auth,
        class_name: &str,
        query: &mut Value,
        request_id: i64,
    ) -> OpResult<()> {
        if !self.has_trigger(Trigger::BeforeSubscribe, class_name) {
            return Ok(());
        }
        let mut sent = Map::new();
        sent.insert(
            "where".into(),
            query
                .get("where")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
        );
        if let Some(keys) = query.get("keys").or_else(|| query.get("fields")) {
            let keys = match keys {
                Value::Array(keys) => keys
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.as_str().unwrap_or_default().to_owned(),
            };
            sent.insert("keys".into(), keys.into());
        }
        let payload = serde_json::json!({
            "query": sent,
            "requestId": request_id,
            "sessionToken": auth.session_token,
        });
        let Some(answer) = self
            .run_trigger(auth, Trigger::BeforeSubscribe, class_name, payload)
            .await?
        else {
            return Ok(());
        };
        if let Value::Object(query) = query {
            if let Some(where_json) = answer.get("where") {
                query.insert("where".into(), where_json.clone());
            }
            query.remove("fields");
            match answer.get("keys").and_then(Value::as_str) {
                Some(keys) => {
                    let keys: Vec<Value> = keys
                        .split(',')
                        .filter(|key| !key.is_empty())
                        .map(|key| Value::String(key.to_owned()))
                        .collect();
                    query.insert("keys".into(), Value::Array(keys));
                }
                None => {
                    query.remove("keys");
                }
            }
        }
        Ok(())
    }

    /// `beforeConnect`: the app may refuse a LiveQuery client's `connect` by throwing.
    /// `auth` is the connection's (its user when its session token resolved); `session_token`
    /// the token the client sent, resolved or not.
    pub async fn before_connect(
        &self,
        auth: &Auth,
        session_token: Option<&str>,
        clients: usize,
    ) -> OpResult<()> {
        if !self.has_trigger(Trigger::BeforeConnect, CONNECT) {
            return Ok(());
        }
        let payload = serde_json::json!({
            "sessionToken": session_token,
            "clients": clients,
        });
        self.run_trigger(auth, Trigger::BeforeConnect, CONNECT, payload)
            .await?;
        Ok(())
    }

    /// `afterLiveQueryEvent`, once per subscriber and event: the object and original the
    /// subscriber gets (the app may change them), or `None` when the app holds the event
    /// back (`request.sendEvent = false`). A failing trigger holds the event back too.
    pub async fn after_live_event(
        &self,
        auth: &Auth,
        class_name: &str,
        event: &str,
        object: Value,
        original: Option<Value>,
    ) -> Option<(Value, Option<Value>)> {
        let payload = serde_json::json!({"event": event, "object": object, "original": original});
        match self
            .run_trigger(auth, Trigger::AfterLiveQueryEvent, class_name, payload)
            .await
        {
            Ok(Some(answer)) => {
                if answer.get("sendEvent") == Some(&Value::Bool(false)) {
                    return None;
                }
                let object = answer.get("object").cloned().unwrap_or(object);
                let original = match answer.get("original") {
                    Some(Value::Null) | None => original,
                    Some(changed) => Some(changed.clone()),
                };
                Some((object, original))
            }
            Ok(None) => Some((object, original)),
            Err(error) => {
                tracing::warn!(
                    class = class_name,
                    "Cloud Code afterLiveQueryEvent failed: {error}"
                );
                None
            }
        }
    }

    /// `beforeFind`: the app may change or replace the query (§10.3).
    pub(super) async fn before_find(
        &self,
        auth: &Auth,
        class_name: &str,
        request: &mut super::FindRequest,
        is_get: bool,
    ) -> OpResult<()> {
        if !self.has_trigger(Trigger::BeforeFind, class_name) {
            return Ok(());
        }
        let mut query = Map::new();
        query.insert("where".into(), request.where_json.clone());
        if let Some(limit) = request.limit {
            query.insert("limit".into(), limit.into());
        }
        if request.skip > 0 {
            query.insert("skip".into(), request.skip.into());
        }
        if let Some(order) = &request.order {
            query.insert("order".into(), order.clone().into());
        }
        if let Some(keys) = &request.keys {
            query.insert("keys".into(), keys.join(",").into());
        }
        if !request.include.is_empty() {
            query.insert("include".into(), request.include.join(",").into());
        }
        let payload = serde_json::json!({"query": query, "count": request.count, "isGet": is_get});
        let Some(answer) = self
            .run_trigger(auth, Trigger::BeforeFind, class_name, payload)
            .await?
        else {
            return Ok(());
        };
        let list = |value: Option<&Value>| -> Option<Vec<String>> {
            value.and_then(Value::as_str).map(|text| {
                text.split(',')
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        };
        if let Some(where_json) = answer.get("where") {
            request.where_json = where_json.clone();
        }
        request.limit = answer
            .get("limit")
            .and_then(Value::as_u64)
            .or(request.limit);
        request.skip = answer.get("skip").and_then(Value::as_u64).unwrap_or(0);
        request.order = answer
            .get("order")
            .and_then(Value::as_str)
            .map(str::to_owned);
        request.keys = list(answer.get("keys"));
        request.include = list(answer.get("include")).unwrap_or_default();
        if let Some(exclude) = list(answer.get("excludeKeys")) {
            request.exclude_keys = exclude;
        }
        Ok(())
    }

    /// `afterFind`: the app may change, filter or replace the results; each then carries
    /// its `className`, as Parse Server answers when an afterFind exists.
    pub(super) async fn after_find(
        &self,
        auth: &Auth,
        class_name: &str,
        results: Vec<Value>,
    ) -> OpResult<Vec<Value>> {
        if !self.has_trigger(Trigger::AfterFind, class_name) {
            return Ok(results);
        }
        let objects: Vec<Value> = results
            .into_iter()
            .map(|mut object| {
                if let Value::Object(fields) = &mut object {
                    fields.insert("__type".into(), "Object".into());
                    fields.insert("className".into(), class_name.into());
                }
                object
            })
            .collect();
        let payload = serde_json::json!({"objects": objects});
        let answer = self
            .run_trigger(auth, Trigger::AfterFind, class_name, payload)
            .await?;
        let objects = match answer {
            Some(Value::Array(objects)) => objects,
            _ => objects,
        };
        Ok(objects
            .into_iter()
            .map(|mut object| {
                if let Value::Object(fields) = &mut object {
                    fields.remove("__type");
                }
                object
            })
            .collect())
    }

    /// Applies `rules` to every write (the chat template's, when it is on).
    pub fn with_rules(mut self, rules: Arc<dyn WriteRules>) -> Operations {
        self.rules = Some(rules);
        self
    }

    /// Runs `app code` hooks through `hooks`.
    pub fn with_cloud(mut self, hooks: Arc<dyn CloudHooks>) -> Operations {
        self.cloud = Some(hooks);
        self
    }

    /// Whether the app's code defines the function `name`.
    pub fn has_cloud_function(&self, name: &str) -> bool {
        self.cloud
            .as_ref()
            .is_some_and(|cloud| cloud.function_names().iter().any(|known| known == name))
    }
}
