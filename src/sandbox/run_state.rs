//! The state of each run in flight on a context, in the context's host data: what the callback
//! answered, the console, warnings, a fatal condition, timers, the instructions it used, and
//! its limits and policy. Several runs of one connection share a context; `Runs` keeps one
//! state per run and knows which run the code executing now belongs to. Both the bindings and
//! the native modules read it from here (neither reaches into the other).

use boa_engine::Context;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Instant;

use crate::outcome::{ConsoleLine, Outcome, ScriptError};
use crate::script::{Limits, Policy};

/// Distinct warnings one run keeps, and the length each is cut at.
const MAX_WARNINGS: usize = 32;
const MAX_WARNING_CHARS: usize = 1024;

/// What the callback answered.
#[derive(Debug)]
pub enum Answer {
    Error(ScriptError),
    Value(Option<serde_json::Value>),
}

/// The state of one run, kept in the context's host data (in `Runs`) so native functions reach
/// it.
pub struct RunState {
    pub run_id: u64,
    pub started: Instant,
    pub limits: Limits,
    /// The files and hosts the modules may reach during this run.
    pub policy: Policy,
    pub console: Vec<ConsoleLine>,
    pub(super) console_bytes: usize,
    /// Distinct warnings with how often each was raised (see `warn`).
    warnings: Vec<(String, u64)>,
    dropped_warnings: u64,
    pub answer: Option<Answer>,
    /// A condition that ends the run whatever the script does next (output limit, an exception
    /// thrown from an asynchronous callback).
    pub fatal: Option<(Outcome, ScriptError)>,
    pub(super) next_timer: u32,
    pub(super) timers: HashMap<u32, tokio::sync::oneshot::Sender<()>>,
    /// CPU time the run's jobs on the blocking pool (bcrypt, pbkdf2, SQLite) spent, in
    /// nanoseconds: each job adds its own thread's time when it ends.
    pub native_cpu_ns: Arc<AtomicU64>,
    /// Its jobs on the blocking pool that have not ended yet.
    pub native_jobs: Arc<AtomicUsize>,
    /// Engine instructions its code has executed, summed over its slices.
    pub instructions_used: u64,
}

impl RunState {
    pub fn new(run_id: u64, limits: Limits, policy: Policy) -> Self {
        RunState {
            run_id,
            started: Instant::now(),
            limits,
            policy,
            console: Vec::new(),
            console_bytes: 0,
            warnings: Vec::new(),
            dropped_warnings: 0,
            answer: None,
            fatal: None,
            next_timer: 0,
            timers: HashMap::new(),
            native_cpu_ns: Arc::default(),
            native_jobs: Arc::default(),
            instructions_used: 0,
        }
    }

    /// Records a warning. A repeated one is counted, not kept again, and a run keeps at most
    /// `MAX_WARNINGS` distinct ones of at most `MAX_WARNING_CHARS` each: a script calling back
    /// a million times costs a counter, not a million lines.
    pub fn warn(&mut self, text: impl Into<String>) {
        let mut text: String = text.into();
        if let Some((cut, _)) = text.char_indices().nth(MAX_WARNING_CHARS) {
            text.truncate(cut);
            text.push('…');
        }
        if let Some((_, n)) = self.warnings.iter_mut().find(|(t, _)| *t == text) {
            *n += 1;
        } else if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push((text, 1));
        } else {
            self.dropped_warnings += 1;
        }
    }

    /// The warnings as the Execution carries them.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut out: Vec<String> = std::mem::take(&mut self.warnings)
            .into_iter()
            .map(|(text, n)| match n {
                1 => text,
                n => format!("{text} ({n} times)"),
            })
            .collect();
        if self.dropped_warnings > 0 {
            out.push(format!(
                "{} more warning(s) were not kept (a run keeps {MAX_WARNINGS} distinct ones)",
                self.dropped_warnings
            ));
        }
        out
    }

    pub fn settled(&self) -> bool {
        self.answer.is_some() || self.fatal.is_some()
    }

    /// Records a fatal condition unless the run already has its answer.
    pub fn fail(&mut self, outcome: Outcome, error: ScriptError) {
        if !self.settled() {
            self.fatal = Some((outcome, error));
        }
    }
}

/// Every run in flight on one context, and the one whose code is executing (`current`).
#[derive(Default)]
pub struct Runs {
    pub current: u64,
    pub states: HashMap<u64, RunState>,
}

/// The state of the run whose code is executing now.
pub fn state(ctx: &mut Context) -> &mut RunState {
    try_state(ctx).expect("code runs only inside a run's slice, whose state is kept until it ends")
}

pub fn try_state(ctx: &mut Context) -> Option<&mut RunState> {
    let runs = ctx.host_defined_mut().get_mut::<Runs>()?;
    let current = runs.current;
    runs.states.get_mut(&current)
}

/// The id of the run whose code is executing now (0 outside any run).
pub fn current(ctx: &Context) -> u64 {
    ctx.get_data::<Runs>().map_or(0, |r| r.current)
}
