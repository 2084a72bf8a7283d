//! The state of the run in progress, in the context's host data: what the callback answered,
//! the console, warnings, a fatal condition, timers, and the run's limits and policy. Both the
//! bindings and the native modules read it from here (neither reaches into the other).

use boa_engine::Context;
use std::collections::HashMap;
use std::time::Instant;

use crate::outcome::{ConsoleLine, Outcome, ScriptError};
use crate::script::{Limits, Policy};

/// What the callback answered.
#[derive(Debug)]
pub enum Answer {
    Error(ScriptError),
    Value(Option<serde_json::Value>),
}

/// The state of the run in progress, kept in the context's host data so native functions reach
/// it. Replaced at the start of every run.
pub struct RunState {
    pub run_id: u64,
    pub started: Instant,
    pub limits: Limits,
    /// The files and hosts the modules may reach during this run.
    pub policy: Policy,
    pub console: Vec<ConsoleLine>,
    pub(super) console_bytes: usize,
    pub warnings: Vec<String>,
    pub answer: Option<Answer>,
    /// A condition that ends the run whatever the script does next (output limit, an exception
    /// thrown from an asynchronous callback).
    pub fatal: Option<(Outcome, ScriptError)>,
    pub(super) next_timer: u32,
    pub(super) timers: HashMap<u32, tokio::sync::oneshot::Sender<()>>,
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
            answer: None,
            fatal: None,
            next_timer: 0,
            timers: HashMap::new(),
        }
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

pub fn state(ctx: &mut Context) -> &mut RunState {
    ctx.host_defined_mut()
        .get_mut::<RunState>()
        .expect("RunState is inserted before any script code runs")
}
