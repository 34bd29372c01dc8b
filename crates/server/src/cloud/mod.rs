//! Cloud Code: a Parse Server `cloud/main.js` running in embedded QuickJS runtimes.
//!
//! - [`Cloud`]: the pool — one runtime per worker thread ([`worker`]), a shared queue of
//!   calls, the registry of what the code defines, and hot reload.
//! - [`modules`]: the files of the code (CommonJS `require`, ES `import`, `node_modules`).
//! - [`bridge`]: what the shim's `Parse.Object`/`Parse.Query`/… call natively: operations
//!   of the operation layer with the calling request's rights (or the master key's with
//!   `useMasterKey`), never HTTP to the server itself.
//! - [`tools`]: functions marked `{tool: …}` as the tools personas may call.
//! - `parse.js`: the JavaScript half (`Parse.Cloud.define`, validators, `Parse.Object`, …).
//! - [`tools`]: the functions marked `{tool: …}`, offered to personas' models as tools.
//!
//! JavaScript runs only on the workers' threads, never on tokio's; a call that runs too long
//! is interrupted and one that exhausts its runtime's memory fails, each with code 141.

pub mod bridge;
pub mod modules;
pub mod tools;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use parlor_core::{Code, Error};
use serde_json::{Map, Value};

use crate::operation::hooks::{CloudHooks, RequestMeta, Trigger};
use crate::operation::{Auth, OpError, OpResult, Operations};
use modules::CodeSnapshot;

/// How cloud code is run (`--cloud*` settings).
#[derive(Debug, Clone)]
pub struct CloudSettings {
    /// The entry file (`cloud/main.js`).
    pub entry: PathBuf,
    /// Runtimes (and threads) in the pool.
    pub runtimes: usize,
    /// Time one call may take, its awaited operations included.
    pub timeout: Duration,
    /// Bytes one runtime may allocate.
    pub memory_limit: usize,
    /// Reload the code when a file of it changes.
    pub watch: bool,
    /// Hosts `Parse.Cloud.httpRequest` may reach (`*` for any); empty: none.
    pub http_allow: Vec<String>,
    /// `authData` providers validated by a module of the app (Parse Server's `auth`
    /// adapters): provider name → the module exporting `validateAuthData`.
    pub auth_adapters: Vec<(String, PathBuf)>,
}

/// A failed call, as cloud code reports it: a Parse code and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudFailure {
    pub code: i32,
    pub message: String,
}

impl CloudFailure {
    /// `141 SCRIPT_FAILED` with `message`.
    pub fn script(message: impl Into<String>) -> CloudFailure {
        CloudFailure {
            code: Code::ScriptFailed.as_i32(),
            message: message.into(),
        }
    }

    fn from_json(value: &Value) -> CloudFailure {
        CloudFailure {
            code: value
                .get("code")
                .and_then(Value::as_i64)
                .and_then(|code| i32::try_from(code).ok())
                .unwrap_or(Code::ScriptFailed.as_i32()),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("Script failed.")
                .to_owned(),
        }
    }

    fn to_json(&self) -> Value {
        serde_json::json!({"code": self.code, "message": self.message})
    }

    pub fn from_op_error(error: &OpError) -> CloudFailure {
        match error.to_parse_error() {
            Some(error) => CloudFailure {
                code: error.code.as_i32(),
                message: error.message.into_owned(),
            },
            None => CloudFailure {
                code: Code::OperationForbidden.as_i32(),
                message: "unauthorized: master key is required".to_owned(),
            },
        }
    }
}

impl From<CloudFailure> for OpError {
    fn from(failure: CloudFailure) -> OpError {
        OpError::Parse(Error::new(Code::from_i32(failure.code), failure.message))
    }
}

/// Who a call runs for, and the operations its `Parse.*` calls go through.
#[derive(Clone)]
pub struct CallContext {
    pub operations: Operations,
    pub auth: Auth,
    /// Hosts `Parse.Cloud.httpRequest` may reach (`--cloud-http-allow`).
    pub http_allow: Arc<[String]>,
}

/// What the loaded code defines.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    pub functions: BTreeSet<String>,
    pub jobs: BTreeSet<String>,
    /// `(trigger, className)` pairs, e.g. `("beforeSave", "Message")`.
    pub triggers: BTreeSet<(String, String)>,
    /// Functions marked as tools: name → `{description, parameters}`.
    pub tools: BTreeMap<String, Value>,
}

impl Definitions {
    fn from_json(value: &Value) -> Definitions {
        let names = |key: &str| -> BTreeSet<String> {
            value
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let triggers = value
            .get("triggers")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some((
                            item.get(0)?.as_str()?.to_owned(),
                            item.get(1)?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tools = value
            .get("tools")
            .and_then(Value::as_object)
            .map(|tools| tools.clone().into_iter().collect())
            .unwrap_or_default();
        Definitions {
            functions: names("functions"),
            jobs: names("jobs"),
            triggers,
            tools,
        }
    }
}

/// What every worker shares.
pub struct Shared {
    pub settings: CloudSettings,
    /// Where the operations a call starts run.
    pub handle: tokio::runtime::Handle,
    calls_rx: flume::Receiver<worker::Call>,
    /// The current code, its generation and what it defines.
    current: RwLock<Current>,
}

struct Current {
    generation: u64,
    code: Arc<CodeSnapshot>,
    definitions: Arc<Definitions>,
}

impl Shared {
    fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .generation
    }

    fn code(&self) -> Arc<CodeSnapshot> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .code,
        )
    }
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("entry", &self.shared.settings.entry)
            .finish_non_exhaustive()
    }
}

/// The pool of cloud-code runtimes.
pub struct Cloud {
    http_allow: Arc<[String]>,
    /// `request.user` of each caller, kept until `_User` changes (every trigger and function
    /// call hands it over; reading it each time was a store read per call).
    users: bridge::UserCache,
    /// This pool itself, for the calls it hands out (`Parse.Cloud.run` reaches it again).
    me: std::sync::Weak<Cloud>,
    shared: Arc<Shared>,
    calls_tx: Mutex<Option<flume::Sender<worker::Call>>>,
}

impl Cloud {
    /// Loads the code (failing with the file, line and message of a syntax or load error)
    /// and starts the workers.
    pub async fn start(settings: CloudSettings) -> anyhow::Result<Arc<Cloud>> {
        let entry = std::path::absolute(&settings.entry)
            .map_err(|error| anyhow::anyhow!("{}: {error}", settings.entry.display()))?;
        if !entry.is_file() {
            anyhow::bail!("Cloud Code: {} is not a file", entry.display());
        }
        let mut auth_adapters = Vec::new();
        for (provider, module) in &settings.auth_adapters {
            let path = std::path::absolute(module)
                .map_err(|error| anyhow::anyhow!("{}: {error}", module.display()))?;
            if !path.is_file() {
                anyhow::bail!("auth adapter {provider}: {} is not a file", path.display());
            }
            auth_adapters.push((provider.clone(), path));
        }
        let settings = CloudSettings {
            entry: entry.clone(),
            runtimes: settings.runtimes.max(1),
            auth_adapters,
            ..settings
        };
        let (calls_tx, calls_rx) = flume::unbounded();
        let probe = Shared {
            settings: settings.clone(),
            handle: tokio::runtime::Handle::current(),
            calls_rx: calls_rx.clone(),
            current: RwLock::new(Current {
                generation: 0,
                code: Arc::new(CodeSnapshot::new(entry.clone())),
                definitions: Arc::default(),
            }),
        };
        let shared = Arc::new(probe);
        let (code, definitions) = probe_load(&shared, entry.clone())
            .await
            .map_err(|error| anyhow::anyhow!("Cloud Code failed to load: {error}"))?;
        {
            let mut current = shared
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            current.code = code;
            current.definitions = Arc::new(definitions);
            current.generation = 1;
        }
        for index in 0..settings.runtimes {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("parlor-cloud-{index}"))
                .stack_size(8 * 1024 * 1024)
                .spawn(move || worker::run(shared, index))?;
        }
        let cloud = Arc::new_cyclic(|me| Cloud {
            http_allow: settings.http_allow.clone().into(),
            users: bridge::user_cache(),
            me: me.clone(),
            shared,
            calls_tx: Mutex::new(Some(calls_tx)),
        });
        if settings.watch {
            let weak = Arc::downgrade(&cloud);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let Some(cloud) = weak.upgrade() else { return };
                    cloud.reload_if_changed().await;
                }
            });
        }
        let defined = cloud.definitions();
        tracing::info!(
            "Cloud Code loaded from {}: {} functions, {} triggers, {} jobs, {} runtimes",
            entry.display(),
            defined.functions.len(),
            defined.triggers.len(),
            defined.jobs.len(),
            settings.runtimes
        );
        Ok(cloud)
    }

    /// Stops the workers (they finish when the queue closes).
    pub fn shutdown(&self) {
        self.calls_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// What the loaded code defines.
    pub fn definitions(&self) -> Arc<Definitions> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .definitions,
        )
    }

    pub fn has_function(&self, name: &str) -> bool {
        self.definitions().functions.contains(name)
    }

    pub fn has_trigger(&self, trigger: &str, class_name: &str) -> bool {
        self.definitions()
            .triggers
            .contains(&(trigger.to_owned(), class_name.to_owned()))
    }

    pub fn has_job(&self, name: &str) -> bool {
        self.definitions().jobs.contains(name)
    }

    /// What a call made for `auth` through `operations` runs with.
    fn context(&self, operations: &Operations, auth: &Auth) -> CallContext {
        CallContext {
            operations: operations.clone(),
            auth: auth.clone(),
            http_allow: Arc::clone(&self.http_allow),
        }
    }

    /// The module validating `provider`'s `authData`, when the app has one.
    fn auth_adapter(&self, provider: &str) -> Option<&Path> {
        self.shared
            .settings
            .auth_adapters
            .iter()
            .find(|(name, _)| name == provider)
            .map(|(_, module)| module.as_path())
    }

    /// Reloads the code when one of its files changed; a broken edit keeps the last good
    /// code running, and the log says why.
    async fn reload_if_changed(&self) {
        let code = self.shared.code();
        if !code.changed_on_disk() {
            return;
        }
        match probe_load(&self.shared, code.entry.clone()).await {
            Ok((code, definitions)) => {
                let mut current = self
                    .shared
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                current.code = code;
                current.definitions = Arc::new(definitions);
                current.generation += 1;
                tracing::info!("Cloud Code reloaded from {}", current.code.entry.display());
            }
            Err(error) => {
                // Keep the last good code, and do not report the same broken edit again
                // until the files change once more.
                code.mark_seen();
                tracing::error!("Cloud Code reload failed, keeping the last good code: {error}");
            }
        }
    }

    /// Runs one call of the code: `kind` (`function`, `trigger`, `job`, …) `name`, with the
    /// request as the shim expects it.
    pub async fn call(
        &self,
        kind: &'static str,
        name: &str,
        request: Value,
        context: CallContext,
    ) -> Result<Value, CloudFailure> {
        let timeout = self.shared.settings.timeout;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let metrics = context.operations.metrics.clone();
        let call = worker::Call {
            kind,
            name: name.to_owned(),
            request,
            context,
            deadline: Instant::now() + timeout,
            reply,
            span: tracing::Span::current(),
        };
        let sender = self
            .calls_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(sender) = sender else {
            return Err(CloudFailure::script("Cloud Code is shutting down"));
        };
        if sender.send(call).is_err() {
            return Err(CloudFailure::script("Cloud Code is shutting down"));
        }
        // The worker enforces the deadline; this bound only covers a worker that is itself
        // stuck (a call waiting in the queue behind a long one counts from its start).
        let result = match tokio::time::timeout(timeout * 2 + Duration::from_secs(1), answer).await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CloudFailure::script("Cloud Code stopped before answering")),
            Err(_) => Err(CloudFailure::script(format!(
                "Cloud Code timed out: no answer within {}s (--cloud-timeout)",
                timeout.as_secs_f64()
            ))),
        };
        if let Some(metrics) = metrics {
            let labels = crate::metrics::CloudLabels {
                kind,
                name: name.to_owned(),
            };
            metrics.cloud_calls.get_or_create(&labels).inc();
            if result.is_err() {
                metrics.cloud_failures.get_or_create(&labels).inc();
            }
        }
        result
    }

    /// `POST /functions/:name` for a function the code defines: its `result` (`None` when it
    /// returned nothing).
    pub async fn run_function(
        self: &Arc<Self>,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        meta: RequestMeta,
    ) -> Result<Option<Value>, OpError> {
        let user = bridge::user_json(operations, auth, &self.users).await?;
        let request = serde_json::json!({
            "params": params,
            "user": user,
            "master": auth.master,
            "installationId": auth.installation_id,
            "headers": meta.headers,
            "ip": meta.ip,
            "functionName": name,
            "context": meta.context,
            "roles": auth.roles,
        });
        let context = self.context(operations, auth);
        let answer = self.call("function", name, request, context).await?;
        Ok(match answer {
            Value::Object(mut answer) => answer.remove("value"),
            _ => None,
        })
    }
}

#[async_trait::async_trait]
impl CloudHooks for Cloud {
    fn has_trigger(&self, trigger: Trigger, class_name: &str) -> bool {
        Cloud::has_trigger(self, trigger.name(), class_name)
    }

    async fn run_trigger(
        &self,
        operations: &Operations,
        auth: &Auth,
        trigger: Trigger,
        class_name: &str,
        payload: Value,
    ) -> OpResult<Value> {
        let mut request = match payload {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        request.insert(
            "user".into(),
            bridge::user_json(operations, auth, &self.users).await?,
        );
        request.insert("master".into(), auth.master.into());
        request.insert("installationId".into(), auth.installation_id.clone().into());
        request.insert("roles".into(), auth.roles.clone().into());
        if let Some(meta) = &auth.request {
            request.insert("headers".into(), Value::Object(meta.headers.clone()));
            request.insert("ip".into(), meta.ip.clone().into());
            // A write's own context (as a beforeSave left it, for its afterSave) goes first.
            request
                .entry("context")
                .or_insert_with(|| Value::Object(meta.context.clone()));
        }
        let context = self.context(operations, auth);
        let name = format!("{}:{class_name}", trigger.name());
        Ok(self
            .call("trigger", &name, Value::Object(request), context)
            .await?)
    }

    fn function_names(&self) -> Vec<String> {
        self.definitions().functions.iter().cloned().collect()
    }

    fn has_job(&self, name: &str) -> bool {
        Cloud::has_job(self, name)
    }

    fn job_names(&self) -> Vec<String> {
        self.definitions().jobs.iter().cloned().collect()
    }

    fn code_version(&self) -> u64 {
        self.shared.generation()
    }

    fn has_auth_adapter(&self, provider: &str) -> bool {
        self.auth_adapter(provider).is_some()
    }

    /// Runs the adapter module's `validateAuthData(authData, options, request)` (and
    /// `validateAppId` when its options name `appIds`), with the caller's rights.
    async fn validate_auth_data(
        &self,
        operations: &Operations,
        auth: &Auth,
        provider: &str,
        auth_data: &Value,
    ) -> OpResult<()> {
        let Some(module) = self.auth_adapter(provider) else {
            return Err(OpError::parse(
                parlor_core::Code::UnsupportedService,
                "This authentication method is unsupported.",
            ));
        };
        let request = serde_json::json!({
            "authData": auth_data,
            "module": module.to_string_lossy(),
            "options": {},
            "user": bridge::user_json(operations, auth, &self.users).await?,
            "master": auth.master,
            "installationId": auth.installation_id,
        });
        let context = self.context(operations, auth);
        self.call("auth", provider, request, context).await?;
        Ok(())
    }

    fn start_job(
        &self,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        job_id: &str,
    ) -> OpResult<()> {
        let cloud = self
            .me
            .upgrade()
            .ok_or_else(|| OpError::from(CloudFailure::script("Cloud Code is shutting down")))?;
        let request = serde_json::json!({
            "params": params,
            "master": auth.master,
            "jobId": job_id,
            "user": null,
        });
        let context = self.context(operations, auth);
        let operations = operations.clone();
        let name = name.to_owned();
        let job_id = job_id.to_owned();
        // The job outlives the request; its end is written to its _JobStatus.
        tokio::spawn(async move {
            let outcome = cloud.call("job", &name, request, context).await;
            let finished =
                serde_json::json!({"__type": "Date", "iso": parlor_core::value::now_iso()});
            let fields = match outcome {
                Ok(result) => {
                    let message = match result {
                        Value::String(text) => text,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    serde_json::json!({"status": "succeeded", "message": message, "finishedAt": finished})
                }
                Err(failure) => {
                    tracing::warn!(job = %name, "Cloud Code job failed: {}", failure.message);
                    serde_json::json!({"status": "failed", "message": failure.message, "finishedAt": finished})
                }
            };
            if let Err(error) = operations.update_job_status(&job_id, fields).await {
                tracing::warn!(job = %name, "could not record the end of a job: {error}");
            }
        });
        Ok(())
    }

    async fn call_function(
        &self,
        operations: &Operations,
        auth: &Auth,
        name: &str,
        params: &Map<String, Value>,
        meta: &RequestMeta,
    ) -> OpResult<Option<Value>> {
        let cloud = self
            .me
            .upgrade()
            .ok_or_else(|| OpError::from(CloudFailure::script("Cloud Code is shutting down")))?;
        cloud
            .run_function(operations, auth, name, params, meta.clone())
            .await
    }
}

/// Runs the cloud function `name` — `POST /functions/:name`, GraphQL's `callCloudCode` and
/// `Parse.Cloud.run` alike: the AI template's built-in functions first (they stay built in),
/// then the app's own. `meta` is the request's (`auth.request`) unless given. `None`: the
/// function returned nothing (`undefined`), which Parse answers as `{}`.
pub async fn call_function(
    operations: &Operations,
    auth: &Auth,
    name: &str,
    params: &Map<String, Value>,
    meta: Option<&RequestMeta>,
) -> OpResult<Option<Value>> {
    match &operations.cloud {
        Some(cloud)
            if !crate::ai::functions::is_built_in(name) && operations.has_cloud_function(name) =>
        {
            let meta = meta
                .or(auth.request.as_deref())
                .cloned()
                .unwrap_or_default();
            cloud
                .call_function(operations, auth, name, params, &meta)
                .await
        }
        _ => crate::ai::functions::call(operations, auth, name, params)
            .await
            .map(Some),
    }
}

/// Loads the code from disk into a throwaway runtime: the new snapshot and its definitions,
/// or the load error.
async fn probe_load(
    shared: &Arc<Shared>,
    entry: PathBuf,
) -> Result<(Arc<CodeSnapshot>, Definitions), String> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let code = Arc::new(CodeSnapshot::new(entry));
        let (done_tx, _done_rx) = flume::unbounded();
        let (_engine, definitions) = worker::Engine::load(&shared, &code, 0, done_tx)?;
        Ok((code, Definitions::from_json(&definitions)))
    })
    .await
    .map_err(|error| error.to_string())?
}
