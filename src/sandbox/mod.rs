//! The only module that knows boa. `Runtime::run` takes an `Invocation` (plain data) and
//! returns an `Execution` (plain data); no engine value crosses this boundary. A `Runtime` lives
//! on one thread of a worker process and keeps warm contexts, one per connection.

mod bindings;
mod convert;
mod engine;
mod event_loop;
mod modules;
mod run_state;

/// Checks an operator's `--egress-allow-internal` entry before the server starts.
pub use modules::egress::check_operator_entry;

use boa_engine::object::builtins::JsPromise;
use boa_engine::{Context, JsError, JsObject, JsValue, NativeFunction, Source};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::outcome::{Execution, Outcome, ScriptError, Timings};
use crate::script::{Action, Invocation, Policy, check_source};
use engine::End;
use event_loop::{Shared, Submission};
use run_state::{Answer, RunState, Runs, state};

pub use event_loop::{Ran, executing, record_slices_in};
pub use modules::module_name;

/// Warm contexts kept per runtime; the least recently used is dropped beyond this (its runs
/// in flight still end on it).
const MAX_WARM_CONTEXTS: usize = 64;

/// One connection's context, as the runtime sees it: the loop serving it takes runs on `runs`.
struct Warm {
    runs: mpsc::UnboundedSender<Submission>,
    shared: Rc<Shared>,
    configuration: BTreeMap<String, String>,
    last_used: Instant,
}

/// Runs scripts on the current thread, many at once: each connection's context has an event
/// loop (a local task) that interleaves its runs. Not `Send`: it owns engine contexts, so it
/// must be used inside a `tokio::task::LocalSet`.
#[derive(Default)]
pub struct Runtime {
    warm: RefCell<HashMap<(String, String), Warm>>,
    /// The context the next new connection takes.
    prepared: Rc<RefCell<Option<Blank>>>,
}

impl Runtime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one invocation to its end; `id` names the run (unique in this worker). Never
    /// panics on script input: an engine panic is answered as `crashed`, and the context it
    /// broke goes with it.
    pub async fn run(&self, id: u64, inv: Invocation) -> Ran {
        let started = Instant::now();
        let mut ran = self.run_inner(id, inv).await;
        ran.execution.timings.total_ms = ms(started.elapsed());
        ran
    }

    async fn run_inner(&self, id: u64, inv: Invocation) -> Ran {
        if let Err(e) = check_source(&inv.source) {
            return Ran {
                execution: Execution::failed(
                    Outcome::InvalidScript,
                    ScriptError::system("InvalidScriptError", e.to_string()),
                ),
                native_jobs_left: 0,
            };
        }
        let (reply, answer) = oneshot::channel();
        let budget = inv.limits.instructions;
        let key = (inv.tenant.clone(), inv.connection.clone());
        {
            let mut warm = self.warm.borrow_mut();
            let reusable = warm.get(&key).is_some_and(|w| {
                w.configuration == inv.configuration
                    && !w.shared.retired.get()
                    && w.shared.fuel_left.get() >= budget
                    && !w.runs.is_closed()
            });
            if !reusable {
                warm.remove(&key);
                if warm.len() >= MAX_WARM_CONTEXTS
                    && let Some(oldest) = warm
                        .iter()
                        .min_by_key(|(_, w)| w.last_used)
                        .map(|(k, _)| k.clone())
                {
                    warm.remove(&oldest);
                }
                match self.start_context(&inv, budget) {
                    Ok(w) => {
                        warm.insert(key.clone(), w);
                    }
                    Err(e) => {
                        return Ran {
                            execution: event_loop::unbuildable(&e),
                            native_jobs_left: 0,
                        };
                    }
                }
            }
            let w = warm.get_mut(&key).expect("inserted above");
            w.last_used = Instant::now();
            let submission = Submission {
                id,
                invocation: Rc::new(inv),
                warm: reusable,
                reply,
            };
            if w.runs.send(submission).is_err() {
                warm.remove(&key);
            }
        }
        answer.await.unwrap_or_else(|_| Ran {
            execution: Execution::failed(
                Outcome::Crashed,
                ScriptError::system(
                    "CrashedError",
                    "the script's context ended without answering the run",
                ),
            ),
            native_jobs_left: 0,
        })
    }
}

/// A context with every global but `configuration`, built ahead for the next new connection.
struct Blank {
    ctx: Context,
    executor: Rc<engine::Executor>,
    budget: u64,
}

/// How long after the prepared context is taken the next one is built: building takes the
/// JavaScript thread for a few milliseconds, better spent on the run that took it.
const PREPARE_DELAY: Duration = Duration::from_millis(20);

/// Builds a context with `budget` of fuel and every global but `configuration`.
fn blank(budget: u64, limits: &crate::script::Limits) -> Result<Blank, JsError> {
    // Twice the budget: a context takes a run only with at least `budget` left, and each run
    // is charged for what its own slices used, so every run gets the same budget (see
    // `finish`); a run that spins past its own budget runs the context dry and is the one
    // executing when it does.
    let (mut ctx, executor) = engine::new_context(budget.saturating_mul(2))?;
    let mut runs = Runs::default();
    runs.states
        .insert(0, RunState::new(0, limits.clone(), Policy::default()));
    ctx.insert_data(runs);
    bindings::install(&mut ctx)?;
    Ok(Blank {
        ctx,
        executor,
        budget,
    })
}

impl Runtime {
    /// Builds the context the next new connection will take, so that its first run does
    /// not wait for one (a worker calls it when it starts, before any request).
    pub fn prepare(&self) {
        prepare(&self.prepared);
    }

    /// Builds a connection's context (from the prepared one when its budget fits) and starts
    /// the loop that serves its runs.
    fn start_context(&self, inv: &Invocation, budget: u64) -> Result<Warm, JsError> {
        let taken = self.prepared.borrow_mut().take_if(|b| b.budget == budget);
        let Blank {
            mut ctx, executor, ..
        } = match taken {
            Some(b) => {
                let prepared = self.prepared.clone();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(PREPARE_DELAY).await;
                    prepare(&prepared);
                });
                b
            }
            None => blank(budget, &inv.limits)?,
        };
        bindings::configure(&mut ctx, &inv.configuration)?;
        if let Some(runs) = ctx.host_defined_mut().get_mut::<Runs>() {
            runs.states.clear();
        }
        let shared = Rc::new(Shared::default());
        shared.fuel_left.set(ctx.instructions_remaining() as u64);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::task::spawn_local(event_loop::serve(ctx, executor, rx, shared.clone()));
        Ok(Warm {
            runs: tx,
            shared,
            configuration: inv.configuration.clone(),
            last_used: Instant::now(),
        })
    }
}

/// Fills `slot` with a context of the default budget, if it is empty.
fn prepare(slot: &RefCell<Option<Blank>>) {
    if slot.borrow().is_some() {
        return;
    }
    let limits = crate::script::Limits::default();
    match blank(limits.instructions, &limits) {
        Ok(b) => *slot.borrow_mut() = Some(b),
        Err(e) => tracing::warn!("could not prepare a script context: {e}"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Compiles the source as one function expression, the way the platform stores scripts.
fn compile(
    source: &str,
    name: &str,
    ctx: &mut Context,
) -> Result<JsObject, Box<(Outcome, ScriptError)>> {
    // The parentheses make the source one expression; the opening one shares the first line,
    // so line numbers in errors and stacks are the author's own.
    let wrapped = format!("({source}\n)");
    let path = std::path::Path::new(name);
    let value = match ctx.eval(Source::from_bytes(wrapped.as_bytes()).with_path(path)) {
        Ok(v) => v,
        Err(e) => {
            if let Some(limit) = engine_limit(&e) {
                return Err(Box::new(limit));
            }
            let mut error = convert::js_error(&e, ctx);
            if error.name.as_deref() == Some("SyntaxError") {
                error.stack = None;
            }
            return Err(Box::new((Outcome::InvalidScript, error)));
        }
    };
    match value.as_object() {
        Some(f) if f.is_callable() => Ok(f.clone()),
        _ => Err(Box::new((
            Outcome::InvalidScript,
            ScriptError::system(
                "InvalidScriptError",
                "a script must be a single function expression, such as `function login(email, password, callback) { ... }`, with nothing else at the top level",
            ),
        ))),
    }
}

/// An `async` script's promise that rejects ends the run as an error.
fn watch_promise(returned: &JsValue, ctx: &mut Context) {
    let Some(obj) = returned.as_object() else {
        return;
    };
    let Ok(promise) = JsPromise::from_object(obj.clone()) else {
        return;
    };
    let on_rejected = NativeFunction::from_fn_ptr(|_, args, ctx| {
        let error = convert::script_error(args.first().unwrap_or(&JsValue::undefined()), ctx);
        state(ctx).fail(Outcome::Error, error);
        Ok(JsValue::undefined())
    })
    .to_js_function(ctx.realm());
    let _ = promise.catch(on_rejected, ctx);
}

/// Maps an engine error that JavaScript cannot catch to its outcome.
fn engine_limit(e: &JsError) -> Option<(Outcome, ScriptError)> {
    use boa_engine::error::{EngineError, RuntimeLimitError};
    match e.as_engine()? {
        EngineError::NoInstructionsRemain => Some((
            Outcome::CpuLimit,
            ScriptError::system("CpuLimitError", "the script used up its instruction budget"),
        )),
        EngineError::RuntimeLimit(RuntimeLimitError::Recursion | RuntimeLimitError::StackSize) => {
            Some((
                Outcome::Error,
                ScriptError::system("RangeError", "Maximum call stack size exceeded"),
            ))
        }
        EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration) => Some((
            Outcome::CpuLimit,
            ScriptError::system(
                "CpuLimitError",
                "the script passed the loop iteration limit",
            ),
        )),
        EngineError::Panic(p) => Some((
            Outcome::Crashed,
            ScriptError::system("CrashedError", format!("the script engine failed: {p}")),
        )),
    }
}

/// Turns the end of the event loop and the run's state into the Execution.
fn finish(
    action: Action,
    end: End,
    st: RunState,
    used: u64,
    budget: u64,
    ctx: &mut Context,
) -> Execution {
    let mut st = st;
    let fatal = st.fatal.take();
    let answer = st.answer.take();
    let (outcome, result, error) = if used > budget {
        (
            Outcome::CpuLimit,
            None,
            Some(ScriptError::system(
                "CpuLimitError",
                format!("the script used more than its budget of {budget} instructions"),
            )),
        )
    } else if let Some((outcome, error)) = fatal {
        (outcome, None, Some(error))
    } else if let Some(answer) = answer {
        if let End::Thrown(e) = &end {
            let thrown = convert::js_error(e, ctx);
            st.warn(format!("after calling back, the script threw: {thrown}"));
        }
        match answer {
            Answer::Error(e) => (Outcome::Error, None, Some(e)),
            Answer::Value(v) => (classify(action, v.as_ref()), v, None),
        }
    } else {
        match end {
            End::Thrown(e) => match engine_limit(&e) {
                Some((o, err)) => (o, None, Some(err)),
                None => (Outcome::Error, None, Some(convert::js_error(&e, ctx))),
            },
            End::Deadline => (
                Outcome::Timeout,
                None,
                Some(ScriptError::system(
                    "TimeoutError",
                    format!(
                        "the script did not call back within {} ms",
                        st.limits.timeout_ms
                    ),
                )),
            ),
            End::Idle => (
                Outcome::Timeout,
                None,
                Some(ScriptError::system(
                    "TimeoutError",
                    "the script finished without calling callback, and nothing it started is still pending",
                )),
            ),
            End::Failed(failure) => {
                let (outcome, error) = *failure;
                (outcome, None, Some(error))
            }
            End::Collateral(what) => (
                Outcome::Interrupted,
                None,
                Some(ScriptError::system("InterruptedError", what)),
            ),
            End::Settled => (
                Outcome::Crashed,
                None,
                Some(ScriptError::system(
                    "CrashedError",
                    "the run settled without an answer",
                )),
            ),
        }
    };
    // Secrets are taken out once, when the Execution leaves the worker (`Execution::redact`).
    Execution {
        outcome,
        result,
        error,
        warnings: st.take_warnings(),
        console: st.console,
        timings: Timings::default(),
    }
}

/// The outcome a successful callback value means for each action (SPEC §1).
fn classify(action: Action, value: Option<&serde_json::Value>) -> Outcome {
    use serde_json::Value;
    let present = value.is_some_and(|v| !v.is_null());
    match action {
        Action::Login | Action::GetUser if present => Outcome::Success,
        Action::Login | Action::GetUser => Outcome::NotFound,
        Action::Create | Action::Delete => Outcome::Success,
        Action::Verify | Action::ChangePassword | Action::ChangeEmail => match value {
            Some(Value::Bool(false)) | Some(Value::Null) | None => Outcome::False,
            Some(_) => Outcome::Success,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_values_map_to_outcomes() {
        use serde_json::json;
        let cases = [
            (Action::Login, Some(json!({"user_id": 1})), Outcome::Success),
            (Action::Login, None, Outcome::NotFound),
            (Action::GetUser, Some(json!(null)), Outcome::NotFound),
            (Action::Create, None, Outcome::Success),
            (Action::Verify, Some(json!(true)), Outcome::Success),
            (Action::Verify, Some(json!(false)), Outcome::False),
            (
                Action::ChangePassword,
                Some(json!({"last_password_reset": "2024-01-01"})),
                Outcome::Success,
            ),
            (Action::ChangeEmail, None, Outcome::False),
            (Action::Delete, None, Outcome::Success),
        ];
        for (action, value, expected) in cases {
            assert_eq!(
                classify(action, value.as_ref()),
                expected,
                "{action} {value:?}"
            );
        }
    }
}
