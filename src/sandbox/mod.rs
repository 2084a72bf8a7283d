//! The only module that knows boa. `Runtime::run` takes an `Invocation` (plain data) and
//! returns an `Execution` (plain data); no engine value crosses this boundary. A `Runtime` lives
//! on one thread of a worker process and keeps warm contexts, one per connection.

mod bindings;
mod convert;
mod engine;
mod modules;
mod run_state;

/// Checks an operator's `--egress-allow-internal` entry before the server starts.
pub use modules::egress::check_operator_entry;

use boa_engine::object::builtins::JsPromise;
use boa_engine::{Context, JsError, JsObject, JsValue, NativeFunction, Source};
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::outcome::{Execution, Outcome, ScriptError, Timings};
use crate::script::{Action, Invocation, Policy, check_source};
use engine::{End, Executor};
use run_state::{Answer, RunState, state};

pub use modules::{module_name, native_jobs_in_flight};

/// Warm contexts kept per runtime; the least recently used is dropped beyond this.
const MAX_WARM_CONTEXTS: usize = 64;

/// One connection's context: its `global`, its compiled functions, its fuel.
struct Warm {
    ctx: Context,
    executor: Rc<Executor>,
    configuration: BTreeMap<String, String>,
    functions: HashMap<u64, JsObject>,
    last_used: Instant,
}

/// Runs scripts on the current thread. Not `Send`: it owns engine contexts.
#[derive(Default)]
pub struct Runtime {
    warm: HashMap<(String, String), Warm>,
    runs: u64,
}

impl Runtime {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one invocation to its end. Never panics on script input; an engine panic is caught
    /// and answered as `crashed`, and all warm state is dropped with it.
    pub async fn run(&mut self, inv: &Invocation) -> Execution {
        let started = Instant::now();
        let result =
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(self.run_inner(inv)))
                .await;
        let mut exec = result.unwrap_or_else(|panic| {
            self.warm.clear();
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            Execution::failed(
                Outcome::Crashed,
                ScriptError::system(
                    "CrashedError",
                    format!("the script engine panicked: {what}"),
                ),
            )
        });
        exec.timings.total_ms = ms(started.elapsed());
        exec
    }

    async fn run_inner(&mut self, inv: &Invocation) -> Execution {
        if let Err(e) = check_source(&inv.source) {
            return Execution::failed(
                Outcome::InvalidScript,
                ScriptError::system("InvalidScriptError", e.to_string()),
            );
        }
        self.runs += 1;
        let run_id = self.runs;
        let compile_started = Instant::now();
        let budget = inv.limits.instructions;
        let key = (inv.tenant.clone(), inv.connection.clone());
        let reusable = self.warm.get(&key).is_some_and(|w| {
            w.configuration == inv.configuration
                && (w.ctx.instructions_remaining() as u64) >= budget
        });
        if !reusable {
            self.warm.remove(&key);
            if self.warm.len() >= MAX_WARM_CONTEXTS
                && let Some(oldest) = self
                    .warm
                    .iter()
                    .min_by_key(|(_, w)| w.last_used)
                    .map(|(k, _)| k.clone())
            {
                self.warm.remove(&oldest);
            }
            // Twice the budget: a run starts only with at least `budget` left and is charged
            // for what it used, so every run gets the same budget (see `finish`).
            let built =
                engine::new_context(budget.saturating_mul(2)).and_then(|(mut ctx, executor)| {
                    ctx.insert_data(RunState::new(run_id, inv.limits.clone(), Policy::default()));
                    bindings::install(&mut ctx, &inv.configuration)?;
                    Ok(Warm {
                        ctx,
                        executor,
                        configuration: inv.configuration.clone(),
                        functions: HashMap::new(),
                        last_used: Instant::now(),
                    })
                });
            match built {
                Ok(w) => {
                    self.warm.insert(key.clone(), w);
                }
                Err(e) => {
                    return Execution::failed(
                        Outcome::Crashed,
                        ScriptError::system(
                            "CrashedError",
                            format!("could not build the script context: {e}"),
                        ),
                    );
                }
            }
        }
        let warm = self.warm.get_mut(&key).expect("inserted above");
        warm.last_used = Instant::now();
        let was_warm = reusable;
        let fuel_at_start = warm.ctx.instructions_remaining() as u64;
        warm.ctx.insert_data(RunState::new(
            run_id,
            inv.limits.clone(),
            inv.policy.clone(),
        ));

        let source_key = {
            let mut h = DefaultHasher::new();
            inv.source.hash(&mut h);
            h.finish()
        };
        let function = match warm.functions.get(&source_key) {
            Some(f) => f.clone(),
            None => match compile(&inv.source, &format!("{}.js", inv.action), &mut warm.ctx) {
                Ok(f) => {
                    warm.functions.insert(source_key, f.clone());
                    f
                }
                Err(failure) => {
                    let (outcome, error) = *failure;
                    let mut exec = Execution::failed(outcome, error);
                    exec.timings.compile_ms = ms(compile_started.elapsed());
                    self.warm.remove(&key);
                    return exec;
                }
            },
        };
        let compile_ms = ms(compile_started.elapsed());

        let run_started = Instant::now();
        let deadline = run_started + Duration::from_millis(inv.limits.timeout_ms);
        let end = invoke(
            inv,
            &function,
            run_id,
            &mut warm.ctx,
            &warm.executor,
            deadline,
        )
        .await;
        warm.executor.clear();
        let used = fuel_at_start.saturating_sub(warm.ctx.instructions_remaining() as u64);
        let run_state = warm
            .ctx
            .remove_data::<RunState>()
            .expect("inserted at the start of the run");
        let native_ns = run_state
            .native_cpu_ns
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut exec = finish(inv.action, end, *run_state, used, budget, &mut warm.ctx);
        exec.timings = Timings {
            compile_ms,
            run_ms: ms(run_started.elapsed()),
            native_cpu_ms: native_ns as f64 / 1e6,
            warm: was_warm,
            ..Timings::default()
        };
        if exec.outcome.is_limit() {
            // A context that hit a limit may hold half-finished state; it is not reused.
            self.warm.remove(&key);
        }
        exec
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

/// Calls the script's function with the action's arguments and drives its event loop.
async fn invoke(
    inv: &Invocation,
    function: &JsObject,
    run_id: u64,
    ctx: &mut Context,
    executor: &Executor,
    deadline: Instant,
) -> End {
    let mut args = Vec::with_capacity(inv.args.len() + 2);
    for a in &inv.args {
        match JsValue::from_json(a, ctx) {
            Ok(v) => args.push(v),
            Err(e) => return End::Thrown(e),
        }
    }
    // With contexts enabled, `delete` is always passed an empty context
    // (notes/auth0-custom-db.md §1).
    if let Some(c) = &inv.context {
        let c = if inv.action == Action::Delete {
            serde_json::json!({})
        } else {
            c.clone()
        };
        match JsValue::from_json(&c, ctx) {
            Ok(v) => args.push(v),
            Err(e) => return End::Thrown(e),
        }
    }
    args.push(bindings::callback(run_id, ctx).into());
    match function.call(&JsValue::undefined(), &args, ctx) {
        Err(e) => return End::Thrown(e),
        Ok(returned) => watch_promise(&returned, ctx),
    }
    let cell = RefCell::new(ctx);
    engine::drive(&cell, executor, deadline, |ctx| {
        ctx.get_data::<RunState>().is_some_and(RunState::settled)
    })
    .await
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
