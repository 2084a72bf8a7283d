//! The worker process (`customdb worker`): sets its own memory ceiling, then runs requests from
//! stdin one at a time on a big-stack JavaScript thread and answers on stdout. It holds no
//! secrets of the supervisor and its environment is empty.

use std::io::{BufReader, BufWriter};

use super::protocol::{self, Request, Response};
use crate::sandbox::Runtime;

/// Stack of the JavaScript thread. boa's parser and some builtins recurse natively; a large
/// virtual reservation costs nothing until used (notes/boa-0.22.md §3).
pub const JS_STACK_BYTES: usize = 256 << 20;

/// Address space the worker needs besides the script's heap: the JavaScript stack, the
/// binary, thread stacks and allocator arenas.
pub const ADDRESS_SPACE_OVERHEAD: u64 = JS_STACK_BYTES as u64 + (384 << 20);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("could not set the worker's memory limit: {0}")]
    Limit(std::io::Error),
    #[error("worker I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not start the JavaScript thread: {0}")]
    Thread(String),
}

/// Runs the worker loop until stdin closes.
pub fn run(memory_bytes: Option<u64>) -> Result<(), WorkerError> {
    if let Some(bytes) = memory_bytes {
        let ceiling = bytes.saturating_add(ADDRESS_SPACE_OVERHEAD);
        let limit = rustix::process::Rlimit {
            current: Some(ceiling),
            maximum: Some(ceiling),
        };
        rustix::process::setrlimit(rustix::process::Resource::As, limit)
            .map_err(|e| WorkerError::Limit(e.into()))?;
    }
    let js = std::thread::Builder::new()
        .name("customdb-js".into())
        .stack_size(JS_STACK_BYTES)
        .spawn(serve_stdio)
        .map_err(|e| WorkerError::Thread(e.to_string()))?;
    js.join()
        .map_err(|_| WorkerError::Thread("the JavaScript thread panicked".into()))?
}

fn serve_stdio() -> Result<(), WorkerError> {
    // Current-thread runtime: engine contexts are !Send and stay on this thread; blocking work
    // (bcrypt, pbkdf2) goes to the runtime's blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let mut runtime = Runtime::new();
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    while let Some(Request { id, invocation }) = protocol::read_blocking(&mut input)? {
        let mut execution = local.block_on(&rt, runtime.run(&invocation));
        // The one exit of every run: no secret leaves the worker in any string it carries.
        execution.redact(&invocation.redactor());
        let native_jobs_left = crate::sandbox::native_jobs_in_flight();
        let response = Response {
            id,
            execution,
            native_jobs_left,
        };
        protocol::write_blocking(&mut output, &response)?;
    }
    Ok(())
}
