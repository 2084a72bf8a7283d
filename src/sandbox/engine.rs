//! Building a hardened engine context and its job executor. This is where boa's gaps
//! (no interrupt, no heap limit, a default module loader that reads files) are closed as far as
//! one process can close them; the worker process boundary does the rest.

use boa_engine::context::HostHooks;
use boa_engine::job::{GenericJob, Job, JobExecutor, NativeAsyncJob, PromiseJob};
use boa_engine::module::IdleModuleLoader;
use boa_engine::realm::Realm;
use boa_engine::{Context, JsError, JsResult, JsString, JsValue, js_error, js_string};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::run_state::current;
use crate::outcome::{Outcome, ScriptError};

/// The largest ArrayBuffer/typed array a script may allocate.
pub const MAX_BUFFER_BYTES: u64 = 64 << 20;

/// Recursion depth of script functions. boa's default (512) is below what Node allows for
/// ordinary code; the JS thread's big stack makes 2 000 safe.
const RECURSION_LIMIT: usize = 2_000;

/// Globals removed from every context: code generation from strings, shared memory, and
/// GC-observable references.
const REMOVED_GLOBALS: &[&str] = &[
    "eval",
    "SharedArrayBuffer",
    "Atomics",
    "WeakRef",
    "FinalizationRegistry",
];

struct SandboxHooks;

impl HostHooks for SandboxHooks {
    fn ensure_can_compile_strings(
        &self,
        _: Realm,
        _: &[JsString],
        _: &JsString,
        _: bool,
        _: &mut Context,
    ) -> JsResult<()> {
        Err(js_error!(EvalError: "code generation from strings is disabled in customdb scripts"))
    }

    fn max_buffer_size(&self, _: &mut Context) -> u64 {
        MAX_BUFFER_BYTES
    }
}

/// A microtask: promise reactions and generic jobs, run in order.
pub enum Micro {
    Promise(PromiseJob),
    Generic(GenericJob),
}

impl Micro {
    pub fn call(self, ctx: &mut Context) -> JsResult<JsValue> {
        match self {
            Micro::Promise(j) => j.call(ctx),
            Micro::Generic(j) => j.call(ctx),
        }
    }
}

/// The job executor of one context. Every job is tagged with the run whose code enqueued it
/// (the `current` of `Runs`), as Node's async context follows a request: the event loop runs
/// each job as part of its own run, and drops the jobs of a run that has ended, so nothing of
/// one run executes as part of another.
#[derive(Default)]
pub struct Executor {
    micro: RefCell<VecDeque<(u64, Micro)>>,
    asynchronous: RefCell<Vec<(u64, NativeAsyncJob)>>,
    /// Jobs queued or in flight per run: a run with none left and no answer is idle.
    outstanding: RefCell<HashMap<u64, usize>>,
}

impl Executor {
    pub fn pop_micro(&self) -> Option<(u64, Micro)> {
        self.micro.borrow_mut().pop_front()
    }

    pub fn take_asynchronous(&self) -> Vec<(u64, NativeAsyncJob)> {
        std::mem::take(&mut *self.asynchronous.borrow_mut())
    }

    /// One of `run`'s jobs ran, finished or was dropped.
    pub fn done(&self, run: u64) {
        let mut counts = self.outstanding.borrow_mut();
        if let Some(n) = counts.get_mut(&run) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&run);
            }
        }
    }

    pub fn outstanding(&self, run: u64) -> usize {
        self.outstanding.borrow().get(&run).copied().unwrap_or(0)
    }

    fn push(&self, run: u64) {
        *self.outstanding.borrow_mut().entry(run).or_default() += 1;
    }
}

impl JobExecutor for Executor {
    fn enqueue_job(self: Rc<Self>, job: Job, ctx: &mut Context) {
        let run = current(ctx);
        match job {
            Job::PromiseJob(j) => self.micro.borrow_mut().push_back((run, Micro::Promise(j))),
            Job::GenericJob(j) => self.micro.borrow_mut().push_back((run, Micro::Generic(j))),
            Job::AsyncJob(j) => self.asynchronous.borrow_mut().push((run, j)),
            // Engine timers and finalization jobs are never created: their globals are ours
            // or removed.
            _ => return,
        }
        self.push(run);
    }

    fn run_jobs(self: Rc<Self>, ctx: &mut Context) -> JsResult<()> {
        loop {
            let next = self.micro.borrow_mut().pop_front();
            let Some((run, job)) = next else {
                return Ok(());
            };
            self.done(run);
            job.call(ctx)?;
        }
    }
}

/// A context with the hardening every script runs under and `instructions` of fuel.
pub fn new_context(instructions: u64) -> JsResult<(Context, Rc<Executor>)> {
    let executor = Rc::new(Executor::default());
    let mut ctx = Context::builder()
        .job_executor(executor.clone())
        .module_loader(Rc::new(IdleModuleLoader))
        .host_hooks(Rc::new(SandboxHooks))
        .instructions_remaining(usize::try_from(instructions).unwrap_or(usize::MAX))
        .build()?;
    ctx.runtime_limits_mut()
        .set_recursion_limit(RECURSION_LIMIT);
    let global = ctx.global_object();
    for name in REMOVED_GLOBALS {
        global.delete_property_or_throw(js_string!(*name), &mut ctx)?;
    }
    Ok((ctx, executor))
}

/// How a run's part of the event loop stopped.
pub enum End {
    /// The run has its answer (callback called, or a fatal condition recorded).
    Settled,
    /// Nothing of the run is left to run and it has no answer: the callback was never called.
    Idle,
    /// The wall clock ran out while waiting or between jobs.
    Deadline,
    /// A job failed outside the script's reach (engine limit) or a timer callback threw.
    Thrown(JsError),
    /// The run could not start: its script did not compile, say.
    Failed(Box<(Outcome, ScriptError)>),
    /// Another run on the same context broke it (used up its fuel, crashed the engine): this
    /// run's code cannot run again. The text says what happened.
    Collateral(String),
}
