//! One cloud-code runtime on its own thread: a QuickJS runtime with the Parse shim and the
//! user's code loaded, and the event loop that feeds it calls and the results of the
//! operations its calls started.
//!
//! A worker takes calls from the pool's shared queue whenever it is not running JavaScript,
//! so a call that awaits an operation (a query, a save) leaves the runtime free for other
//! calls — the triggers its own save fires among them — exactly as Node would. JavaScript
//! never runs on a tokio thread: operations are spawned onto the tokio runtime and their
//! results come back over this worker's own channel.
//!
//! A call that runs past its deadline is interrupted (QuickJS's interrupt handler), and one
//! that exhausts the runtime's memory fails; in both cases the runtime is thrown away and
//! rebuilt from the code snapshot, failing the calls it was holding, so that whatever state
//! the script left behind cannot leak into later calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Module, Object, Runtime};
use serde_json::Value;

use super::modules::{self, CodeSnapshot};
use tracing::Instrument;

use super::{CallContext, CloudFailure, Shared};

/// The Parse SDK shim, evaluated in every runtime before the user's code.
const SHIM: &str = include_str!("parse.js");

/// A unit of work for a runtime.
pub struct Call {
    /// What `__parlor.dispatch` runs: `function`, `trigger`, `job`, …
    pub kind: &'static str,
    pub name: String,
    /// The request object, as JSON the shim turns into its Parse objects.
    pub request: Value,
    pub context: CallContext,
    pub deadline: Instant,
    pub reply: tokio::sync::oneshot::Sender<Result<Value, CloudFailure>>,
    /// The span of the request behind the call (its `request_id`): the call's logs, and the
    /// operations it runs, are recorded inside it although they run on this thread.
    pub span: tracing::Span,
}

/// An operation a call started, finished on the tokio side.
pub struct OpDone {
    call_id: u64,
    op_id: f64,
    result: Result<Value, CloudFailure>,
}

/// A call the runtime is holding: started and not finished.
struct ActiveCall {
    context: CallContext,
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<Value, CloudFailure>>,
    span: tracing::Span,
}

/// State the native functions share with the event loop (single-threaded: the worker's).
struct EngineState {
    calls: RefCell<HashMap<u64, ActiveCall>>,
    /// The deadline the interrupt handler enforces while JavaScript runs.
    deadline: Cell<Option<Instant>>,
    /// Set by the interrupt handler when it stopped a script.
    interrupted: Cell<bool>,
    /// Set when a call ran out of memory: the runtime is rebuilt.
    poisoned: Cell<bool>,
    done_tx: flume::Sender<OpDone>,
    shared: Arc<Shared>,
}

/// A loaded runtime.
pub struct Engine {
    // Field order matters: the context must go before its runtime, which is only held to
    // outlive it.
    context: Context,
    _runtime: Runtime,
    state: Rc<EngineState>,
    generation: u64,
}

/// What loading the code defined, for the pool's registry.
pub type Definitions = Value;

impl Engine {
    /// Builds a runtime and loads `code` into it; the error names the file, line and message.
    pub fn load(
        shared: &Arc<Shared>,
        code: &Arc<CodeSnapshot>,
        generation: u64,
        done_tx: flume::Sender<OpDone>,
    ) -> Result<(Engine, Definitions), String> {
        let runtime = Runtime::new().map_err(|error| error.to_string())?;
        runtime.set_memory_limit(shared.settings.memory_limit);
        runtime.set_max_stack_size(1024 * 1024);
        runtime.set_loader(
            FileModules {
                code: Arc::clone(code),
            },
            FileModules {
                code: Arc::clone(code),
            },
        );
        let state = Rc::new(EngineState {
            calls: RefCell::default(),
            deadline: Cell::new(None),
            interrupted: Cell::new(false),
            poisoned: Cell::new(false),
            done_tx,
            shared: Arc::clone(shared),
        });
        let handler_state = Rc::clone(&state);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let late = handler_state
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline);
            if late {
                handler_state.interrupted.set(true);
            }
            late
        })));
        let context = Context::full(&runtime).map_err(|error| error.to_string())?;
        // Loading the code counts against the same time limit as a call.
        state
            .deadline
            .set(Some(Instant::now() + shared.settings.timeout));
        let definitions = context.with(|ctx| -> Result<Value, String> {
            install_natives(&ctx, &state, code).map_err(|error| error.to_string())?;
            let mut options = rquickjs::context::EvalOptions::default();
            options.filename = Some("parlor:parse.js".to_owned());
            ctx.eval_with_options::<(), _>(SHIM, options)
                .catch(&ctx)
                .map_err(|error| describe(&error))?;
            let entry = code.entry.clone();
            let source = code.source(&entry)?;
            if modules::is_es_module(&entry, &source) {
                let module = Module::declare(ctx.clone(), entry.display().to_string(), &*source)
                    .catch(&ctx)
                    .map_err(|error| describe(&error))?;
                let (_, promise) = module
                    .eval()
                    .catch(&ctx)
                    .map_err(|error| describe(&error))?;
                while ctx.execute_pending_job() {}
                promise
                    .finish::<()>()
                    .catch(&ctx)
                    .map_err(|error| describe(&error))?;
            } else {
                let parlor: Object = ctx.globals().get("__parlor").map_err(|e| e.to_string())?;
                let require: Function = parlor.get("requireMain").map_err(|e| e.to_string())?;
                require
                    .call::<_, ()>((entry.display().to_string(),))
                    .catch(&ctx)
                    .map_err(|error| describe(&error))?;
                while ctx.execute_pending_job() {}
            }
            let parlor: Object = ctx.globals().get("__parlor").map_err(|e| e.to_string())?;
            let definitions: Function = parlor.get("definitions").map_err(|e| e.to_string())?;
            let json: String = definitions
                .call(())
                .catch(&ctx)
                .map_err(|error| describe(&error))?;
            serde_json::from_str(&json).map_err(|error| error.to_string())
        });
        state.deadline.set(None);
        if state.interrupted.get() {
            return Err(format!(
                "loading {} took longer than the {}s time limit",
                code.entry.display(),
                shared.settings.timeout.as_secs()
            ));
        }
        let definitions = definitions?;
        Ok((
            Engine {
                context,
                _runtime: runtime,
                state,
                generation,
            },
            definitions,
        ))
    }

    fn idle(&self) -> bool {
        self.state.calls.borrow().is_empty()
    }

    /// Starts `call`: registers it and hands it to the shim.
    fn start(&self, call: Call, call_id: u64) {
        let Call {
            kind,
            name,
            request,
            context,
            deadline,
            reply,
            span,
        } = call;
        let _entered = span.clone().entered();
        self.state.calls.borrow_mut().insert(
            call_id,
            ActiveCall {
                context,
                deadline,
                reply,
                span,
            },
        );
        let request = request.to_string();
        self.enter(|ctx| {
            let parlor: Object = ctx.globals().get("__parlor")?;
            let dispatch: Function = parlor.get("dispatch")?;
            dispatch.call::<_, ()>((call_id as f64, kind, name, request))
        });
    }

    /// Hands an operation's result back to the call that awaits it.
    fn settle(&self, done: OpDone) {
        let (ok, json) = match done.result {
            Ok(value) => (true, value.to_string()),
            Err(failure) => (false, failure.to_json().to_string()),
        };
        let span = self
            .state
            .calls
            .borrow()
            .get(&done.call_id)
            .map_or_else(tracing::Span::none, |call| call.span.clone());
        let _entered = span.entered();
        self.enter(|ctx| {
            let parlor: Object = ctx.globals().get("__parlor")?;
            let settle: Function = parlor.get("settle")?;
            settle.call::<_, ()>((done.op_id, ok, json))
        });
    }

    /// Runs JavaScript (and the promise jobs it queues) under the earliest deadline of the
    /// calls held.
    fn enter(&self, run: impl for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<()>) {
        let deadline = self
            .state
            .calls
            .borrow()
            .values()
            .map(|call| call.deadline)
            .min();
        self.state.deadline.set(deadline);
        self.context.with(|ctx| {
            if let Err(error) = run(&ctx).catch(&ctx) {
                tracing::error!("Cloud Code: {}", describe(&error));
            }
            // A job that throws (the interrupt's uncatchable error among them) has its error
            // drained by rquickjs; the flags say whether to stop.
            while !self.state.interrupted.get()
                && !self.state.poisoned.get()
                && ctx.execute_pending_job()
            {}
        });
        self.state.deadline.set(None);
    }

    /// Fails every call held past its deadline; says whether the runtime must be rebuilt.
    fn expire(&self) -> bool {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .state
            .calls
            .borrow()
            .iter()
            .filter(|(_, call)| call.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(call) = self.state.calls.borrow_mut().remove(&id) {
                let _ = call.reply.send(Err(timeout_failure(&self.state.shared)));
            }
        }
        self.state.interrupted.get() || self.state.poisoned.get()
    }

    /// Fails every call still held (the runtime is going away).
    fn abandon(&self) {
        let interrupted = self.state.interrupted.get();
        let calls: Vec<ActiveCall> = self
            .state
            .calls
            .borrow_mut()
            .drain()
            .map(|(_, c)| c)
            .collect();
        for call in calls {
            let failure = if interrupted {
                timeout_failure(&self.state.shared)
            } else {
                CloudFailure::script("Cloud Code ran out of memory (its runtime was restarted)")
            };
            let _ = call.reply.send(Err(failure));
        }
    }
}

fn timeout_failure(shared: &Shared) -> CloudFailure {
    CloudFailure::script(format!(
        "Cloud Code timed out: the script ran longer than {}s (--cloud-timeout)",
        shared.settings.timeout.as_secs_f64()
    ))
}

/// A caught JavaScript error as `file:line: message`.
pub fn describe(error: &CaughtError<'_>) -> String {
    match error {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let object = exception.as_object();
            let name: String = object
                .get::<_, Option<String>>("name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Error".to_owned());
            let file: Option<String> = object.get("fileName").ok().flatten();
            let line: Option<i64> = object.get("lineNumber").ok().flatten();
            let location = match (file, line) {
                (Some(file), Some(line)) => Some(format!("{file}:{line}")),
                _ => exception.stack().and_then(|stack| {
                    stack
                        .lines()
                        .map(str::trim)
                        .find(|line| line.starts_with("at ") && !line.contains("parlor:"))
                        .and_then(|line| {
                            line.rsplit_once(' ')
                                .map(|(_, at)| at.trim_matches(['(', ')']).to_owned())
                        })
                }),
            };
            match location {
                Some(location) => format!("{location}: {name}: {message}"),
                None => format!("{name}: {message}"),
            }
        }
        CaughtError::Value(value) => format!("uncaught {value:?}"),
        CaughtError::Error(error) => error.to_string(),
    }
}

/// The native half of the bridge, as `__parlor_native` in the global scope.
fn install_natives<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<EngineState>,
    code: &Arc<CodeSnapshot>,
) -> rquickjs::Result<()> {
    let native = Object::new(ctx.clone())?;
    let finish_state = Rc::clone(state);
    native.set(
        "finish",
        Function::new(ctx.clone(), move |call_id: f64, ok: bool, json: String| {
            let call = finish_state.calls.borrow_mut().remove(&(call_id as u64));
            let Some(call) = call else { return };
            let value: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
            let result = if ok {
                Ok(value)
            } else {
                if value.get("oom").and_then(Value::as_bool) == Some(true) {
                    finish_state.poisoned.set(true);
                }
                Err(CloudFailure::from_json(&value))
            };
            let _ = call.reply.send(result);
        })?,
    )?;
    native.set(
        "log",
        Function::new(
            ctx.clone(),
            |level: String, label: String, text: String| match level.as_str() {
                "error" => tracing::error!(function = %label, "{text}"),
                "warn" => tracing::warn!(function = %label, "{text}"),
                _ => tracing::info!(function = %label, "{text}"),
            },
        )?,
    )?;
    let op_state = Rc::clone(state);
    native.set(
        "op",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, call_id: f64, op_id: f64, name: String, args: String| {
                let call_id = call_id as u64;
                let held = op_state
                    .calls
                    .borrow()
                    .get(&call_id)
                    .map(|call| (call.context.clone(), call.span.clone()));
                let Some((context, span)) = held else {
                    return Err(rquickjs::Exception::throw_message(
                        &ctx,
                        "this cloud call has already finished",
                    ));
                };
                let args: Value = serde_json::from_str(&args).unwrap_or(Value::Null);
                let done_tx = op_state.done_tx.clone();
                op_state.shared.handle.spawn(
                    async move {
                        let result = super::bridge::run(&context, &name, args).await;
                        let _ = done_tx.send(OpDone {
                            call_id,
                            op_id,
                            result,
                        });
                    }
                    .instrument(span),
                );
                Ok(())
            },
        )?,
    )?;
    native.set(
        "resolve",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, from: String, specifier: String| {
                modules::resolve(Path::new(&from), &specifier)
                    .map(|path| path.display().to_string())
                    .map_err(|message| rquickjs::Exception::throw_message(&ctx, &message))
            },
        )?,
    )?;
    let source_code = Arc::clone(code);
    native.set(
        "source",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, path: String| {
            let path = PathBuf::from(path);
            let source = source_code
                .source(&path)
                .map_err(|message| rquickjs::Exception::throw_message(&ctx, &message))?;
            let kind = if modules::is_es_module(&path, &source) {
                "esm"
            } else {
                "cjs"
            };
            Ok::<_, rquickjs::Error>(vec![source.to_string(), kind.to_owned()])
        })?,
    )?;
    native.set(
        "compile",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, source: String| -> rquickjs::Result<Function<'js>> {
                // The wrapper opens on the source's first line, so line numbers stay true.
                let wrapped = format!(
                    "(function (exports, require, module, __filename, __dirname) {{{source}\n}})"
                );
                let mut options = rquickjs::context::EvalOptions::default();
                options.filename = Some(path);
                options.strict = false;
                ctx.eval_with_options(wrapped, options)
            },
        )?,
    )?;
    ctx.globals().set("__parlor_native", native)?;
    Ok(())
}

/// ES module resolution and loading from the code snapshot; a CommonJS file imported from a
/// module is wrapped so that its `module.exports` is the default export.
struct FileModules {
    code: Arc<CodeSnapshot>,
}

impl Resolver for FileModules {
    fn resolve<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        modules::resolve(Path::new(base), name)
            .map(|path| path.display().to_string())
            .map_err(|message| rquickjs::Exception::throw_message(ctx, &message))
    }
}

impl Loader for FileModules {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
        let path = Path::new(name);
        let source = self
            .code
            .source(path)
            .map_err(|message| rquickjs::Exception::throw_message(ctx, &message))?;
        if path.extension().is_some_and(|ext| ext == "json") {
            return Module::declare(ctx.clone(), name, format!("export default {source};"));
        }
        if modules::is_es_module(path, &source) {
            Module::declare(ctx.clone(), name, &*source)
        } else {
            let quoted = Value::String(name.to_owned()).to_string();
            Module::declare(
                ctx.clone(),
                name,
                format!("export default globalThis.__parlor.requireMain({quoted});"),
            )
        }
    }
}

/// The worker thread's loop.
pub fn run(shared: Arc<Shared>, index: usize) {
    let (done_tx, done_rx) = flume::unbounded::<OpDone>();
    let mut engine: Option<Engine> = None;
    let mut next_call: u64 = 0;
    loop {
        // Newer code, or a runtime thrown away: (re)build when no call is held.
        let generation = shared.generation();
        let stale = engine
            .as_ref()
            .is_none_or(|engine| engine.generation != generation && engine.idle());
        if stale {
            let code = shared.code();
            match Engine::load(&shared, &code, generation, done_tx.clone()) {
                Ok((loaded, _)) => engine = Some(loaded),
                Err(error) => {
                    // The same code loaded in the probe: only a time or memory limit can
                    // differ. Keep trying on the next call rather than spinning.
                    tracing::error!(worker = index, "Cloud Code: {error}");
                    engine = None;
                }
            }
        }
        enum Event {
            Call(Box<Call>),
            Done(OpDone),
            Closed,
            Tick,
        }
        let holding = engine.as_ref().is_some_and(|engine| !engine.idle());
        let selector = flume::Selector::new()
            .recv(&shared.calls_rx, |call| {
                call.map_or(Event::Closed, |call| Event::Call(Box::new(call)))
            })
            .recv(&done_rx, |done| done.map_or(Event::Tick, Event::Done));
        // While calls are held, wake up now and then to expire the ones past their deadline.
        let event = if holding {
            selector
                .wait_timeout(Duration::from_millis(250))
                .unwrap_or(Event::Tick)
        } else {
            selector.wait()
        };
        match event {
            Event::Closed => return,
            Event::Call(call) => match &engine {
                Some(engine) => {
                    next_call += 1;
                    engine.start(*call, next_call);
                }
                None => {
                    let _ = call.reply.send(Err(CloudFailure::script(
                        "Cloud Code is not available: its runtime failed to start (see the server log)",
                    )));
                }
            },
            Event::Done(done) => {
                if let Some(engine) = &engine {
                    engine.settle(done);
                }
            }
            Event::Tick => {}
        }
        if let Some(current) = &engine
            && current.expire()
        {
            current.abandon();
            tracing::warn!(
                worker = index,
                "Cloud Code runtime restarted after a timeout or running out of memory"
            );
            engine = None;
        }
    }
}
