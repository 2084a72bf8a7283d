//! One connection's context and the event loop that serves every run of it in flight at once,
//! as Node serves concurrent requests: runs interleave while they wait on timers, I/O or the
//! blocking pool, and share the context's `global`. Each piece of script code executes in a
//! *slice* attributed to one run (its instructions, its console, its answer); a run's limits
//! stay its own. A run that breaks the context itself (its fuel, an engine panic) ends its
//! siblings with the `interrupted` outcome, never with a limit they did not reach.

use boa_engine::{Context, JsError, JsObject, JsValue};
use futures::StreamExt;
use futures::future::{AbortHandle, Abortable, Aborted};
use futures::stream::FuturesUnordered;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use super::engine::{End, Executor};
use super::run_state::{RunState, Runs};
use super::{bindings, compile, finish, ms, watch_promise};
use crate::outcome::{Execution, Outcome, ScriptError, Timings};
use crate::script::{Action, Invocation};

/// Most microtasks a run may still execute once it has its answer (see `Loop::micro`).
const DRAIN_JOBS: usize = 10_000;

/// What a run sends to its context's loop.
pub struct Submission {
    pub id: u64,
    pub invocation: Rc<Invocation>,
    /// The context had served runs before this one.
    pub warm: bool,
    pub reply: oneshot::Sender<Ran>,
}

/// A run's end as the worker answers it.
pub struct Ran {
    pub execution: Execution,
    /// Its jobs on the blocking pool still running when it ended.
    pub native_jobs_left: usize,
}

/// What the runtime knows of a context's loop without reaching into it.
#[derive(Default)]
pub struct Shared {
    /// Fuel the context has left after its last slice.
    pub fuel_left: Cell<u64>,
    /// Takes no new runs: a run on it hit a limit, or it broke.
    pub retired: Cell<bool>,
}

/// The run whose code the JavaScript thread is executing, and since when (µs after the
/// process's first slice): read by the worker's watchdog, on another thread.
static SLICE_RUN: AtomicU64 = AtomicU64::new(0);
static SLICE_SINCE_US: AtomicU64 = AtomicU64::new(0);
/// Since when the loop has been running promise jobs without a pause (0: it is not): a flood
/// of jobs, each a short slice, holds the thread as long as one long slice would.
static DRAIN_SINCE_US: AtomicU64 = AtomicU64::new(0);

/// Where each slice's run is written as it begins (8 bytes, little-endian, at offset 0; 0
/// when no slice runs): a file the supervisor reads after the worker died, to know which run
/// was executing when it did. The page cache keeps the last write whatever kills the process.
static LEDGER: OnceLock<std::fs::File> = OnceLock::new();

/// Records every slice's run in `file` from now on (see `LEDGER`).
pub fn record_slices_in(file: std::fs::File) {
    let _ = LEDGER.set(file);
}

fn record(run: u64) {
    if let Some(file) = LEDGER.get() {
        use std::os::unix::fs::FileExt;
        let _ = file.write_at(&run.to_le_bytes(), 0);
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The run executing script code right now and how long the thread has been held: since its
/// slice began, or since the drain of promise jobs it is part of began (the run of the job in
/// progress answers for a drain; in a flood it is almost always the flooding run).
pub fn executing() -> Option<(u64, Duration)> {
    let run = SLICE_RUN.load(Ordering::Acquire);
    if run == 0 {
        return None;
    }
    let slice = SLICE_SINCE_US.load(Ordering::Acquire);
    let since = match DRAIN_SINCE_US.load(Ordering::Acquire) {
        0 => slice,
        drain => drain.min(slice),
    };
    let now = epoch().elapsed().as_micros() as u64;
    Some((run, Duration::from_micros(now.saturating_sub(since))))
}

/// How one slice ended.
enum Slice {
    Done,
    Thrown(JsError),
    Panicked(String),
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Makes `run` the run of the code about to execute.
fn enter(ctx: &mut Context, run: u64) -> usize {
    SLICE_SINCE_US.store(epoch().elapsed().as_micros() as u64, Ordering::Release);
    SLICE_RUN.store(run, Ordering::Release);
    record(run);
    if let Some(runs) = ctx.host_defined_mut().get_mut::<Runs>() {
        runs.current = run;
    }
    ctx.instructions_remaining()
}

/// Charges the instructions executed since `enter` to the run of the slice.
fn leave(ctx: &mut Context, fuel_at_enter: usize) {
    let used = fuel_at_enter.saturating_sub(ctx.instructions_remaining()) as u64;
    if let Some(runs) = ctx.host_defined_mut().get_mut::<Runs>() {
        let run = std::mem::take(&mut runs.current);
        if let Some(st) = runs.states.get_mut(&run) {
            st.instructions_used += used;
        }
    }
    SLICE_RUN.store(0, Ordering::Release);
    record(0);
}

/// Runs `f` as a slice of `run`.
fn slice(
    ctx: &mut Context,
    run: u64,
    f: impl FnOnce(&mut Context) -> Result<(), JsError>,
) -> Slice {
    let fuel = enter(ctx, run);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx)));
    leave(ctx, fuel);
    match result {
        Ok(Ok(())) => Slice::Done,
        Ok(Err(e)) => Slice::Thrown(e),
        Err(panic) => Slice::Panicked(panic_text(panic)),
    }
}

/// An asynchronous job (a timer, native I/O) of one run: every poll is a slice of that run,
/// and the run's end aborts it.
struct Tagged<'a, 'b, F> {
    run: u64,
    future: Abortable<F>,
    cell: &'a RefCell<&'b mut Context>,
}

impl<F> Future for Tagged<'_, '_, F>
where
    F: Future<Output = Result<JsValue, JsError>> + Unpin,
{
    type Output = (u64, Option<Slice>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let run = self.run;
        let fuel = enter(&mut self.cell.borrow_mut(), run);
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut self.future).poll(cx)
        }));
        leave(&mut self.cell.borrow_mut(), fuel);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Err(Aborted))) => Poll::Ready((run, None)),
            Ok(Poll::Ready(Ok(Ok(_)))) => Poll::Ready((run, Some(Slice::Done))),
            Ok(Poll::Ready(Ok(Err(e)))) => Poll::Ready((run, Some(Slice::Thrown(e)))),
            Err(panic) => Poll::Ready((run, Some(Slice::Panicked(panic_text(panic))))),
        }
    }
}

/// A run in flight on the loop.
struct Live {
    reply: oneshot::Sender<Ran>,
    action: Action,
    budget: u64,
    deadline: Instant,
    compile_ms: f64,
    run_started: Instant,
    warm: bool,
    aborts: Vec<AbortHandle>,
    /// Set once the run is over; it is answered at the end of the loop's turn.
    end: Option<End>,
    /// Microtasks it executed after it had its answer.
    drained: usize,
}

/// Serves the runs sent on `rx` on `ctx` until the sender is gone and no run is left, or the
/// context breaks.
pub async fn serve(
    ctx: Context,
    executor: Rc<Executor>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    shared: Rc<Shared>,
) {
    let mut ctx = ctx;
    let cell: RefCell<&mut Context> = RefCell::new(&mut ctx);
    let mut pending = FuturesUnordered::new();
    let mut lp = Loop {
        executor,
        shared,
        live: HashMap::new(),
        functions: HashMap::new(),
        broken: None,
    };
    let mut open = true;
    loop {
        while open {
            match rx.try_recv() {
                Ok(s) => lp.begin(&mut cell.borrow_mut(), s),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        lp.micro(&mut cell.borrow_mut());
        for (run, job) in lp.executor.take_asynchronous() {
            match lp.live.get_mut(&run) {
                Some(live) if live.end.is_none() && lp.broken.is_none() => {
                    let (abort, registration) = AbortHandle::new_pair();
                    live.aborts.push(abort);
                    pending.push(Tagged {
                        run,
                        future: Abortable::new(job.call(&cell), registration),
                        cell: &cell,
                    });
                }
                _ => lp.executor.done(run),
            }
        }
        lp.answer_ended(&mut cell.borrow_mut());
        if lp.broken.is_some() || (!open && lp.live.is_empty()) {
            break;
        }
        let deadline = lp.live.values().map(|l| l.deadline).min();
        tokio::select! {
            s = rx.recv(), if open => match s {
                Some(s) => lp.begin(&mut cell.borrow_mut(), s),
                None => open = false,
            },
            Some((run, slice)) = pending.next(), if !pending.is_empty() => {
                lp.executor.done(run);
                if let Some(slice) = slice {
                    lp.after(&mut cell.borrow_mut(), run, slice);
                }
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => {
                lp.expire(Instant::now());
            },
        }
    }
    // Jobs hold the cell: they go first, then the context with every run's state.
    lp.shared.retired.set(true);
    for live in lp.live.values() {
        for a in &live.aborts {
            a.abort();
        }
    }
    drop(pending);
    lp.answer_ended(&mut cell.borrow_mut());
}

struct Loop {
    executor: Rc<Executor>,
    shared: Rc<Shared>,
    live: HashMap<u64, Live>,
    /// Compiled scripts by their source's hash.
    functions: HashMap<u64, JsObject>,
    /// Set when the context broke: which run broke it and how.
    broken: Option<(u64, String)>,
}

impl Loop {
    /// Starts a run: compiles its script (once per context) and calls it.
    fn begin(&mut self, ctx: &mut Context, s: Submission) {
        let Submission {
            id,
            invocation: inv,
            warm,
            reply,
        } = s;
        let compile_started = Instant::now();
        let runs = ctx
            .host_defined_mut()
            .get_mut::<Runs>()
            .expect("Runs is inserted when the context is built");
        runs.states.insert(
            id,
            RunState::new(id, inv.limits.clone(), inv.policy.clone()),
        );
        let mut live = Live {
            reply,
            action: inv.action,
            budget: inv.limits.instructions,
            deadline: compile_started + Duration::from_millis(inv.limits.timeout_ms),
            compile_ms: 0.0,
            run_started: compile_started,
            warm,
            aborts: Vec::new(),
            end: None,
            drained: 0,
        };
        let source_key = {
            let mut h = DefaultHasher::new();
            inv.source.hash(&mut h);
            h.finish()
        };
        let function = match self.functions.get(&source_key) {
            Some(f) => Ok(f.clone()),
            None => self.compile(ctx, id, &inv, source_key),
        };
        live.compile_ms = ms(compile_started.elapsed());
        live.run_started = Instant::now();
        live.deadline = live.run_started + Duration::from_millis(inv.limits.timeout_ms);
        let function = match function {
            Ok(f) => f,
            Err(end) => {
                live.end = Some(end);
                self.live.insert(id, live);
                return;
            }
        };
        self.live.insert(id, live);
        let mut returned = JsValue::undefined();
        let ended = slice(ctx, id, |ctx| {
            let args = arguments(&inv, id, ctx)?;
            returned = function.call(&JsValue::undefined(), &args, ctx)?;
            watch_promise(&returned, ctx);
            Ok(())
        });
        self.after(ctx, id, ended);
    }

    /// Compiles run `id`'s script as a slice of it, and keeps the function for later runs.
    fn compile(
        &mut self,
        ctx: &mut Context,
        id: u64,
        inv: &Invocation,
        source_key: u64,
    ) -> Result<JsObject, End> {
        let mut compiled = None;
        let ended = slice(ctx, id, |ctx| {
            compiled = Some(compile(&inv.source, &format!("{}.js", inv.action), ctx));
            Ok(())
        });
        match (ended, compiled) {
            (Slice::Done, Some(Ok(f))) => {
                self.functions.insert(source_key, f.clone());
                Ok(f)
            }
            (Slice::Done, Some(Err(failure))) => {
                // A script that does not compile leaves the context to runs that do.
                self.shared.retired.set(true);
                Err(End::Failed(failure))
            }
            (Slice::Panicked(p), _) => {
                self.break_context(id, format!("the script engine panicked: {p}"));
                Err(End::Thrown(panic_error(&p)))
            }
            _ => Err(End::Thrown(panic_error("compiling gave no function"))),
        }
    }

    /// Looks at a run after one of its slices: an error ends it, a panic or spent fuel breaks
    /// the context.
    fn after(&mut self, ctx: &mut Context, run: u64, ended: Slice) {
        match ended {
            Slice::Done => {}
            Slice::Panicked(p) => {
                self.break_context(run, format!("the script engine panicked: {p}"));
                self.end(run, End::Thrown(panic_error(&p)));
                return;
            }
            Slice::Thrown(e) => {
                if ctx.instructions_remaining() == 0 {
                    self.break_context(run, "used up the instruction budget of its context".into());
                }
                self.end(run, End::Thrown(e));
                return;
            }
        }
        let Some(st) = ctx.get_data::<Runs>().and_then(|r| r.states.get(&run)) else {
            return;
        };
        let over = self
            .live
            .get(&run)
            .is_some_and(|l| st.instructions_used > l.budget);
        // A run past its budget is over too: `finish` charges it as a CPU limit.
        if st.settled() || over {
            self.end(run, End::Settled);
        }
    }

    fn end(&mut self, run: u64, end: End) {
        if let Some(live) = self.live.get_mut(&run)
            && live.end.is_none()
        {
            live.end = Some(end);
        }
    }

    fn break_context(&mut self, culprit: u64, what: String) {
        self.shared.retired.set(true);
        if self.broken.is_none() {
            self.broken = Some((culprit, what));
        }
    }

    /// Runs queued microtasks, each as a slice of its run, until none is left. A run that has
    /// its answer still executes up to `DRAIN_JOBS` of them, as Node keeps running after a
    /// callback: scripts release connections after calling back (`client.end()`, `done()`).
    fn micro(&mut self, ctx: &mut Context) {
        let mut jobs = 0u64;
        DRAIN_SINCE_US.store(
            (epoch().elapsed().as_micros() as u64).max(1),
            Ordering::Release,
        );
        while let Some((run, job)) = self.executor.pop_micro() {
            self.executor.done(run);
            let Some(live) = self.live.get_mut(&run) else {
                continue;
            };
            if self.broken.is_some() {
                continue;
            }
            match &live.end {
                None => {}
                Some(End::Settled) if live.drained < DRAIN_JOBS => live.drained += 1,
                Some(_) => continue,
            }
            jobs += 1;
            // Checking the clock on every job would cost more than the jobs themselves.
            if jobs.is_multiple_of(64) {
                self.expire(Instant::now());
            }
            let ended = slice(ctx, run, |ctx| job.call(ctx).map(|_| ()));
            let settled_before = matches!(self.live.get(&run).map(|l| &l.end), Some(Some(_)));
            if settled_before {
                // Errors after the answer are ignored, as in the drain of a single run; a
                // broken context is not.
                match ended {
                    Slice::Panicked(p) => {
                        self.break_context(run, format!("the script engine panicked: {p}"))
                    }
                    Slice::Thrown(_) if ctx.instructions_remaining() == 0 => self
                        .break_context(run, "used up the instruction budget of its context".into()),
                    _ => {}
                }
            } else {
                self.after(ctx, run, ended);
            }
        }
        DRAIN_SINCE_US.store(0, Ordering::Release);
    }

    /// Ends every run whose wall clock has run out.
    fn expire(&mut self, now: Instant) {
        for live in self.live.values_mut() {
            if live.end.is_none() && now >= live.deadline {
                live.end = Some(End::Deadline);
            }
        }
    }

    /// Answers every run that has ended (all of them once the context broke), and notices
    /// runs left with nothing to do.
    fn answer_ended(&mut self, ctx: &mut Context) {
        let fuel = ctx.instructions_remaining() as u64;
        self.shared.fuel_left.set(fuel);
        let broken = self.broken.clone();
        let ended: Vec<u64> = self
            .live
            .iter()
            .filter(|(id, l)| {
                broken.is_some() || l.end.is_some() || self.executor.outstanding(**id) == 0
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            let mut live = self.live.remove(&id).expect("listed above");
            for a in &live.aborts {
                a.abort();
            }
            let end = match (&broken, live.end.take()) {
                (Some((culprit, _)), Some(end)) if *culprit == id => end,
                (Some((_, what)), _) => End::Collateral(format!(
                    "another run of this connection in the same worker {what}"
                )),
                (None, Some(end)) => end,
                (None, None) => End::Idle,
            };
            let st = ctx
                .host_defined_mut()
                .get_mut::<Runs>()
                .and_then(|r| r.states.remove(&id))
                .expect("a live run has its state");
            let native_ns = st.native_cpu_ns.load(Ordering::Relaxed);
            let native_jobs_left = st.native_jobs.load(Ordering::SeqCst);
            let used = st.instructions_used;
            let mut execution = finish(live.action, end, st, used, live.budget, ctx);
            execution.timings = Timings {
                compile_ms: live.compile_ms,
                run_ms: ms(live.run_started.elapsed()),
                native_cpu_ms: native_ns as f64 / 1e6,
                warm: live.warm,
                ..Timings::default()
            };
            if execution.outcome.is_limit() {
                // A context that hit a limit may hold half-finished state: it takes no new
                // runs, and goes once its runs in flight are answered.
                self.shared.retired.set(true);
            }
            let _ = live.reply.send(Ran {
                execution,
                native_jobs_left,
            });
        }
    }
}

/// The arguments of the run's function: the action's own, the context where the action has
/// one, and a fresh callback.
fn arguments(inv: &Invocation, run: u64, ctx: &mut Context) -> Result<Vec<JsValue>, JsError> {
    let mut args = Vec::with_capacity(inv.args.len() + 2);
    for a in &inv.args {
        args.push(JsValue::from_json(a, ctx)?);
    }
    // With contexts enabled, `delete` is always passed an empty context
    // (notes/auth0-custom-db.md §1).
    if let Some(c) = &inv.context {
        let c = if inv.action == Action::Delete {
            serde_json::json!({})
        } else {
            c.clone()
        };
        args.push(JsValue::from_json(&c, ctx)?);
    }
    args.push(bindings::callback(run, ctx).into());
    Ok(args)
}

/// An engine panic as the error `finish` maps to `crashed`.
fn panic_error(what: &str) -> JsError {
    boa_engine::error::PanicError::new(what).into()
}

/// The failed Execution of a run whose context could not be built.
pub fn unbuildable(e: &JsError) -> Execution {
    Execution::failed(
        Outcome::Crashed,
        ScriptError::system(
            "CrashedError",
            format!("could not build the script context: {e}"),
        ),
    )
}
