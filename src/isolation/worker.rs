//! The worker process (`customdb worker`): sets its own memory ceiling, then runs the requests
//! it reads from stdin on a big-stack JavaScript thread, many at once (each connection's runs
//! interleave on its context's event loop), and answers each on stdout as it ends. It holds no
//! secrets of the supervisor and its environment is empty.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::BufWriter;
use std::os::fd::AsFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use tokio::net::unix::pipe;

use super::protocol::{self, Request, Response, Script, ScriptDigest};
use crate::sandbox::{self, Ran, Runtime};

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

/// Runs the worker loop until stdin closes. `slice_ledger` is the file where each slice's run
/// is recorded for the supervisor (see `sandbox::record_slices_in`).
pub fn run(memory_bytes: Option<u64>, slice_ledger: Option<&Path>) -> Result<(), WorkerError> {
    if let Some(path) = slice_ledger {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        sandbox::record_slices_in(file);
    }
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

/// Longest a slice of one run may hold the JavaScript thread while other runs of the worker
/// wait. Script code cannot be interrupted inside a slice, so past this the worker reports the
/// run and exits; the supervisor ends it with a CPU limit and its siblings as interrupted. A
/// run alone in its worker is bounded by its instruction budget and its timeout instead.
pub const MAX_SLICE_WHILE_SHARED: Duration = Duration::from_millis(500);

/// The exit status of a worker whose watchdog stopped it.
pub const EXIT_STALLED: i32 = 75;

/// Runs taken from stdin and not yet answered; read by the watchdog.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn serve_stdio() -> Result<(), WorkerError> {
    // Current-thread runtime: engine contexts are !Send and stay on this thread; blocking work
    // (bcrypt, pbkdf2) goes to the runtime's blocking pool. Requests are read and answers
    // written on this thread's event loop, between slices: no thread in between to wake for
    // every run. A request that arrives while a slice holds the thread waits in the pipe,
    // where the watchdog sees it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A frame is bounded and the supervisor reads its end of the pipe all the time, so the
    // answer's write does not hold the thread.
    let output = Rc::new(RefCell::new(BufWriter::new(std::io::stdout().lock())));
    let watchdog = std::thread::Builder::new()
        .name("customdb-watchdog".into())
        .spawn(watchdog)?
        .thread()
        .clone();
    let local = tokio::task::LocalSet::new();
    let runtime = Rc::new(Runtime::new());
    local.block_on(&rt, async move {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let mut input = tokio::io::BufReader::new(pipe::Receiver::from_owned_fd(stdin)?);
        runtime.prepare();
        // The scripts the supervisor sent, by digest: exactly those it names as kept.
        let mut scripts: HashMap<ScriptDigest, (String, BTreeMap<String, String>)> = HashMap::new();
        while let Some(request) = protocol::read::<_, Request>(&mut input).await? {
            if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) == 0 {
                watchdog.unpark();
            }
            let Request {
                id,
                mut invocation,
                script,
                forget,
            } = request;
            for d in &forget {
                scripts.remove(d);
            }
            match script {
                Script::Sent(d) => {
                    scripts.insert(
                        d,
                        (invocation.source.clone(), invocation.configuration.clone()),
                    );
                }
                Script::Known(d) => match scripts.get(&d) {
                    Some((source, configuration)) => {
                        invocation.source = source.clone();
                        invocation.configuration = configuration.clone();
                    }
                    // A supervisor that names a script it never sent is broken: the worker
                    // ends rather than run something else.
                    None => break,
                },
            }
            let runtime = runtime.clone();
            let output = output.clone();
            tokio::task::spawn_local(async move {
                let redactor = invocation.redactor();
                let Ran {
                    mut execution,
                    native_jobs_left,
                } = runtime.run(id, invocation).await;
                // The one exit of every run: no secret leaves the worker in any string it
                // carries.
                execution.redact(&redactor);
                // A failed write means the supervisor is gone; its closed stdin ends the loop.
                let response = Response {
                    id,
                    execution,
                    native_jobs_left,
                };
                let _ = protocol::write_blocking(&mut *output.borrow_mut(), &response);
                IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Stdin closed: the supervisor is gone or done with this worker.
        Ok(())
    })
}

/// Stops the worker when one run's slice has held the JavaScript thread past
/// `MAX_SLICE_WHILE_SHARED` while other runs wait (taken, or still in the pipe), naming that
/// run on stderr. It sleeps while no run is in flight (unparked by the first request), so an
/// idle warm worker costs no wake-ups.
fn watchdog() {
    let tick = Duration::from_millis(25);
    loop {
        while IN_FLIGHT.load(Ordering::SeqCst) == 0 {
            std::thread::park();
        }
        std::thread::sleep(tick);
        let Some((run, held)) = sandbox::executing() else {
            continue;
        };
        if held <= MAX_SLICE_WHILE_SHARED {
            continue;
        }
        let waiting =
            IN_FLIGHT.load(Ordering::SeqCst).saturating_sub(1) + usize::from(request_waiting());
        if waiting > 0 {
            eprintln!(
                "{STALLED_NOTE}{run}: it held the JavaScript thread for {} ms while {waiting} other run(s) waited",
                held.as_millis()
            );
            std::process::exit(EXIT_STALLED);
        }
    }
}

/// Whether stdin holds a request the JavaScript thread has not read yet (or the supervisor
/// closed it): a run waiting for the slice in progress to end.
fn request_waiting() -> bool {
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// The stderr line of a worker its watchdog stopped: this text, the run's id, then why.
pub const STALLED_NOTE: &str = "customdb-worker: stopped for run ";
