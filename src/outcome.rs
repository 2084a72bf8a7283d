//! What one run of a script produced: the outcome as a value (never an `Err`), the callback's
//! value or error, the console transcript, warnings and timings. Plain data shared by the
//! sandbox, the worker protocol and every front door.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a run ended. Every way a script can end has a name here; callers match exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The callback answered positively (a profile, `true`, or plain `callback(null)` where that
    /// is the success form).
    Success,
    /// `login`/`get_user` answered with no profile: no such user, or wrong credentials.
    NotFound,
    /// `verify`/`change_password`/`change_email` answered `false`.
    False,
    /// The script passed an error to the callback, threw, or its promise rejected.
    Error,
    /// The source is not one loadable function (syntax error, too large, too deep).
    InvalidScript,
    /// The wall clock ran out, or the script ended without ever calling back.
    Timeout,
    /// The instruction budget ran out.
    CpuLimit,
    /// The worker's memory ceiling was reached.
    MemoryLimit,
    /// Console output passed its line or byte limit.
    OutputLimit,
    /// The engine panicked or the worker died for another reason.
    Crashed,
    /// The run was stopped because another run of its tenant, in flight in the same worker or
    /// on the same context, broke a limit or crashed it. It says nothing about this run's
    /// script; it is not retried, since scripts are not idempotent.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NotFound => "not_found",
            Outcome::False => "false",
            Outcome::Error => "error",
            Outcome::InvalidScript => "invalid_script",
            Outcome::Timeout => "timeout",
            Outcome::CpuLimit => "cpu_limit",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::OutputLimit => "output_limit",
            Outcome::Crashed => "crashed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Limits and crashes end a run from outside the script; the runtime that ran it is
    /// recycled.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            Outcome::Timeout
                | Outcome::CpuLimit
                | Outcome::MemoryLimit
                | Outcome::OutputLimit
                | Outcome::Crashed
                | Outcome::Interrupted
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it crosses the sandbox boundary: the whitelist Auth0's sandbox copies, each field
/// present only when the script set it. Limits and crashes use the same shape with a name of
/// our own (`TimeoutError`, `CpuLimitError`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

impl ScriptError {
    /// An error raised by customdb itself (a limit, a crash, a bad script), not by the script.
    pub fn system(name: &str, message: impl Into<String>) -> Self {
        ScriptError {
            name: Some(name.to_string()),
            message: Some(message.into()),
            ..ScriptError::default()
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.message) {
            (Some(n), Some(m)) if !m.is_empty() => write!(f, "{n}: {m}"),
            (Some(n), _) => f.write_str(n),
            (None, Some(m)) => f.write_str(m),
            (None, None) => f.write_str("(empty error)"),
        }
    }
}

/// Takes the password out of every string (and key) of a result.
fn redact_json(v: &mut serde_json::Value, redactor: &crate::secret::Redactor) {
    match v {
        serde_json::Value::String(s) => redactor.password(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| redact_json(i, redactor)),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut value) in entries {
                redactor.password(&mut key);
                redact_json(&mut value, redactor);
                map.insert(key, value);
            }
        }
        _ => {}
    }
}

/// Console method a line was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Log,
    Info,
    Warn,
    Error,
    Debug,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Log => "log",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Debug => "debug",
        })
    }
}

/// One captured console line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleLine {
    pub level: Level,
    pub message: String,
    /// Milliseconds since the run started.
    pub at_ms: f64,
}

/// Where the time of a run went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// From the request leaving the caller to the answer arriving, worker start included.
    pub total_ms: f64,
    /// Time spent starting a worker process for this run (0 when one was ready).
    pub spawn_ms: f64,
    /// Building the engine context and compiling the script (0 when warm).
    pub compile_ms: f64,
    /// From calling the script's function to the run's end.
    pub run_ms: f64,
    /// CPU time the run's native work (bcrypt, pbkdf2, SQLite, on the blocking pool) spent,
    /// beside the JavaScript thread's: work `run_ms` waited for, or ran alongside.
    #[serde(default)]
    pub native_cpu_ms: f64,
    /// Whether the script's compiled function and `global` were reused from an earlier run.
    pub warm: bool,
}

/// The full record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub outcome: Outcome,
    /// The callback's value, bounded and converted as `JSON.stringify` would.
    pub result: Option<serde_json::Value>,
    pub error: Option<ScriptError>,
    pub console: Vec<ConsoleLine>,
    pub warnings: Vec<String>,
    pub timings: Timings,
}

impl Execution {
    /// Takes every secret out of every string the run carries: each error field, the
    /// warnings and console lines, and the password out of the result. The one pass that
    /// runs before an Execution leaves the worker.
    pub fn redact(&mut self, redactor: &crate::secret::Redactor) {
        if let Some(e) = &mut self.error {
            let fields = [
                &mut e.name,
                &mut e.message,
                &mut e.code,
                &mut e.description,
                &mut e.user_id,
                &mut e.stack,
            ];
            for text in fields.into_iter().flatten() {
                redactor.text(text);
            }
        }
        for line in &mut self.console {
            redactor.text(&mut line.message);
        }
        for warning in &mut self.warnings {
            redactor.text(warning);
        }
        if let Some(result) = &mut self.result {
            redact_json(result, redactor);
        }
    }

    /// A run that ended without the script's help (limit, crash, refused source).
    pub fn failed(outcome: Outcome, error: ScriptError) -> Self {
        Execution {
            outcome,
            result: None,
            error: Some(error),
            console: Vec::new(),
            warnings: Vec::new(),
            timings: Timings::default(),
        }
    }
}
