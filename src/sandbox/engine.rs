//! Building a hardened engine context and driving its event loop. This is where boa's gaps
//! (no interrupt, no heap limit, a default module loader that reads files) are closed as far as
//! one process can close them; the worker process boundary does the rest.

use boa_engine::context::HostHooks;
use boa_engine::job::{GenericJob, Job, JobExecutor, NativeAsyncJob, PromiseJob};
use boa_engine::module::IdleModuleLoader;
use boa_engine::realm::Realm;
use boa_engine::{Context, JsError, JsResult, JsString, js_error, js_string};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

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

/// Microtasks run in order; asynchronous jobs (timers, native I/O) are polled by `drive`.
enum Micro {
    Promise(PromiseJob),
    Generic(GenericJob),
}

/// The job executor of one context. Jobs left over when a run ends are dropped with `clear`,
/// so nothing of one run executes during the next.
#[derive(Default)]
pub struct Executor {
    micro: RefCell<VecDeque<Micro>>,
    asynchronous: RefCell<Vec<NativeAsyncJob>>,
}

impl Executor {
    pub fn clear(&self) {
        self.micro.borrow_mut().clear();
        self.asynchronous.borrow_mut().clear();
    }
}

impl JobExecutor for Executor {
    fn enqueue_job(self: Rc<Self>, job: Job, _: &mut Context) {
        match job {
            Job::PromiseJob(j) => self.micro.borrow_mut().push_back(Micro::Promise(j)),
            Job::GenericJob(j) => self.micro.borrow_mut().push_back(Micro::Generic(j)),
            Job::AsyncJob(j) => self.asynchronous.borrow_mut().push(j),
            // Engine timers and finalization jobs are never created: their globals are ours
            // or removed.
            _ => {}
        }
    }

    fn run_jobs(self: Rc<Self>, ctx: &mut Context) -> JsResult<()> {
        loop {
            let next = self.micro.borrow_mut().pop_front();
            match next {
                Some(Micro::Promise(j)) => j.call(ctx)?,
                Some(Micro::Generic(j)) => j.call(ctx)?,
                None => return Ok(()),
            };
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

/// How the event loop stopped.
pub enum End {
    /// The run has its answer (callback called, or a fatal condition recorded).
    Settled,
    /// Nothing is left to run and the run has no answer: the callback was never called.
    Idle,
    /// The wall clock ran out while waiting or between jobs.
    Deadline,
    /// A job failed outside the script's reach (engine limit) or a timer callback threw.
    Thrown(JsError),
}

/// Most microtasks left when the callback has been called, run after it anyway.
const DRAIN_JOBS: usize = 10_000;

/// Runs the microtasks still queued once the run has its answer, as Node keeps running after a
/// callback: scripts release connections after calling back (`client.end()`, `done()`,
/// `db.close()`), and that cleanup must not wait for the context's next run. Errors are
/// ignored: the run already has its answer.
fn drain(cell: &RefCell<&mut Context>, executor: &Executor, deadline: Instant) {
    for _ in 0..DRAIN_JOBS {
        let next = executor.micro.borrow_mut().pop_front();
        let Some(job) = next else { return };
        let ctx = &mut cell.borrow_mut();
        let _ = match job {
            Micro::Promise(j) => j.call(ctx),
            Micro::Generic(j) => j.call(ctx),
        };
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Runs microtasks and asynchronous jobs until `settled` says the run has its answer, nothing
/// is left, or the deadline passes. Synchronous script code cannot be interrupted here; the
/// instruction budget and the supervisor's watchdog cover it.
pub async fn drive(
    cell: &RefCell<&mut Context>,
    executor: &Executor,
    deadline: Instant,
    settled: impl Fn(&Context) -> bool,
) -> End {
    let mut pending = FuturesUnordered::new();
    let mut jobs_run = 0u64;
    loop {
        loop {
            let next = executor.micro.borrow_mut().pop_front();
            let Some(job) = next else { break };
            jobs_run += 1;
            // Checking the clock on every job would cost more than the jobs themselves.
            if jobs_run.is_multiple_of(64) && Instant::now() >= deadline {
                return End::Deadline;
            }
            let result = {
                let ctx = &mut cell.borrow_mut();
                match job {
                    Micro::Promise(j) => j.call(ctx),
                    Micro::Generic(j) => j.call(ctx),
                }
            };
            if let Err(e) = result {
                return End::Thrown(e);
            }
            if settled(&cell.borrow()) {
                drain(cell, executor, deadline);
                return End::Settled;
            }
        }
        if settled(&cell.borrow()) {
            drain(cell, executor, deadline);
            return End::Settled;
        }
        let started: Vec<NativeAsyncJob> = std::mem::take(&mut *executor.asynchronous.borrow_mut());
        for job in started {
            pending.push(job.call(cell));
        }
        if pending.is_empty() {
            return End::Idle;
        }
        match tokio::time::timeout_at(deadline.into(), pending.next()).await {
            Err(_) => return End::Deadline,
            Ok(Some(Err(e))) => return End::Thrown(e),
            Ok(_) => {}
        }
        if Instant::now() >= deadline {
            return End::Deadline;
        }
    }
}
