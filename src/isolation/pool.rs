//! The supervisor side: a pool of worker processes with tenant affinity. It sends each run to a
//! worker of the run's tenant, kills a worker that passes a run's deadline plus grace, maps a
//! dead worker to an outcome for each of its runs, and starts replacements. It never runs
//! JavaScript itself.
//!
//! A worker serves many runs of its tenant at once (up to `runs_per_worker`): they interleave
//! on its event loop while they wait on I/O. A tenant's runs spread over up to its share of
//! workers first (its CPU-bound runs use every core it may), then stack on the least loaded.
//! Capacity is shared among the tenants with runs in flight: each may keep
//! `max_workers / active tenants` workers busy (at least one, at most `max_busy_per_tenant`),
//! and a tenant below its share is served at once even when others still hold more than
//! theirs. Idle workers are kept warm for their tenants under a memory budget (their own
//! resident memory, least recently used stopped first), and a few spare workers, started ahead
//! and given to no tenant yet, take a tenant's first run so that it does not wait for a
//! process to start.
//!
//! Each worker has one reader task: it hands each answer to its run and gives the run's place
//! back; when the worker dies it tells every run in flight what happened to it — the run that
//! caused the death gets its limit, the others `interrupted`.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, oneshot};

use super::protocol::{self, KEPT_SCRIPTS, Request, Response, Script, ScriptDigest};
use super::worker::{EXIT_STALLED, MAX_SLICE_WHILE_SHARED, STALLED_NOTE};
use crate::outcome::{Execution, Outcome, ScriptError};
use crate::script::{Invocation, Limits};

/// How the pool starts workers and how many it keeps.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `customdb` executable; workers are `program worker --memory N`.
    pub program: PathBuf,
    /// Workers running runs at once, shared among the active tenants (passed only while the
    /// shares shrink, and by one per tenant when more tenants than this are active).
    pub max_workers: usize,
    /// Workers one tenant may keep busy at once (at least 1).
    pub max_busy_per_tenant: usize,
    /// Runs one worker serves at once, interleaved on its event loop (at least 1).
    pub runs_per_worker: usize,
    /// Time a worker gets past a run's own timeout before it is killed.
    pub grace: Duration,
    /// Resident memory the idle workers kept warm may use together.
    pub idle_memory_bytes: u64,
    /// Idle workers kept at most, whatever their memory (each holds three pipes).
    pub max_idle: usize,
    /// Workers started ahead of need, for no tenant yet, with the default memory ceiling.
    pub spares: usize,
}

impl PoolConfig {
    pub fn new(program: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            program,
            max_workers: cores * 4,
            max_busy_per_tenant: cores * 2,
            runs_per_worker: 64,
            grace: Duration::from_millis(500),
            idle_memory_bytes: 1 << 30,
            max_idle: 512,
            spares: 0,
        }
    }
}

/// Why the pool could not run a script at all (as opposed to the script failing).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("could not start worker process {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// What a run hears back from its worker.
enum Reply {
    Done(Box<Response>),
    Died(Arc<Death>),
}

/// A worker process, shared by the runs in flight on it and the pool's lists.
struct Worker {
    /// The tenant it serves; unset while it is a spare.
    tenant: OnceLock<String>,
    memory_bytes: u64,
    pid: Option<u32>,
    /// Its stdin, and the scripts it holds (least recently used first): both change only
    /// together, in the order requests are written.
    writer: tokio::sync::Mutex<(ChildStdin, VecDeque<ScriptDigest>)>,
    child: Mutex<Option<Child>>,
    /// Runs sent and not answered, by request id. `None` once the worker is dead.
    waiting: Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>,
    next_id: AtomicU64,
    /// Its own resident memory when it last went idle.
    resident_bytes: AtomicU64,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    /// Takes no new runs; stopped once its last run is answered.
    retired: std::sync::atomic::AtomicBool,
    /// The run whose timeout made the pool kill it.
    killed_for: Mutex<Option<u64>>,
    /// Where the worker records the run of each slice (removed with the worker).
    ledger: tempfile::NamedTempFile,
}

impl Worker {
    fn tenant(&self) -> &str {
        self.tenant.get().map_or("", String::as_str)
    }

    fn dead(&self) -> bool {
        self.waiting.lock().expect("waiting lock").is_none()
    }

    fn accepts(&self, memory_bytes: u64) -> bool {
        self.memory_bytes == memory_bytes && !self.retired.load(Ordering::SeqCst) && !self.dead()
    }

    fn stop(&self) {
        self.retired.store(true, Ordering::SeqCst);
        if let Some(child) = self.child.lock().expect("child lock").as_mut() {
            let _ = child.start_kill();
        }
    }

    /// Registers run `id` to hear its answer; `None` if the worker died meanwhile.
    fn register(&self, id: u64) -> Option<oneshot::Receiver<Reply>> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting lock")
            .as_mut()?
            .insert(id, tx);
        Some(rx)
    }
}

/// One busy worker of a tenant and how many runs it has in flight.
struct Busy {
    worker: Arc<Worker>,
    runs: usize,
}

#[derive(Default)]
struct Slots {
    /// Least recently used first.
    idle: VecDeque<Arc<Worker>>,
    idle_bytes: u64,
    spares: Vec<Arc<Worker>>,
    /// Spares being started.
    starting: usize,
    /// Busy workers per tenant; a tenant is active while it is here.
    busy: HashMap<String, Vec<Busy>>,
}

struct Inner {
    config: PoolConfig,
    slots: Mutex<Slots>,
    freed: Notify,
}

pub struct Pool {
    inner: Arc<Inner>,
}

/// What a worker costs in memory now: its resident pages that are its own (resident minus
/// file-backed, which all workers share with the executable), from `/proc`; 0 if unreadable.
fn resident_bytes(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let mut fields = statm.split_whitespace().skip(1).map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(resident)), Some(Ok(shared))) => resident.saturating_sub(shared) * 4096,
        _ => 0,
    }
}

/// A new slice ledger: in memory (`/dev/shm`) where the system has it, since the worker
/// rewrites it at every slice and a disk file system would journal each write's new mtime;
/// else in the temporary directory.
fn ledger_file() -> std::io::Result<tempfile::NamedTempFile> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(file) = tempfile::Builder::new()
            .prefix("customdb-ledger-")
            .tempfile_in(shm)
    {
        return Ok(file);
    }
    tempfile::NamedTempFile::new()
}

/// How long after a spare is taken its replacement starts.
const SPARE_REFILL_DELAY: Duration = Duration::from_millis(50);

/// Bytes of a worker's stderr kept to explain its death.
const STDERR_TAIL: usize = 8 * 1024;

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            inner: Arc::new(Inner {
                config,
                slots: Mutex::default(),
                freed: Notify::new(),
            }),
        }
    }

    /// Starts spares, in the background, until `config.spares` are ready or starting (a
    /// server calls it once at start; every run asks again, so a taken spare is replaced).
    pub fn refill(&self) {
        self.inner.refill();
    }

    /// Runs one invocation in a worker of its tenant and returns what happened. Script
    /// failures, limits and worker deaths are all outcomes; only a worker that cannot be
    /// started at all is an error.
    pub async fn run(&self, inv: &Invocation) -> Result<Execution, PoolError> {
        let started = Instant::now();
        let (worker, id, answer, spawn_ms) = loop {
            let (worker, spawn_ms) = self.inner.acquire(inv).await?;
            let id = worker.next_id.fetch_add(1, Ordering::SeqCst);
            match worker.register(id) {
                Some(answer) => break (worker, id, answer, spawn_ms),
                // It died between the choice and the registration; nothing was sent, so
                // choosing again cannot run the script twice.
                None => self.inner.release(&worker),
            }
        };
        let wait = Duration::from_millis(inv.limits.timeout_ms) + self.inner.config.grace;
        // The write is its own task: a run abandoned halfway through writing its request
        // (its client went away) must not leave half a frame in front of its siblings'.
        let writing = worker.clone();
        let owned = inv.clone();
        tokio::spawn(async move {
            let mut writer = writing.writer.lock().await;
            let (stdin, kept) = &mut *writer;
            let request = request(id, owned, kept);
            // A failed write means the worker died: its reader answers the run.
            let _ = protocol::write(stdin, &request).await;
        });
        let exchange = answer;
        let mut execution = match tokio::time::timeout(wait, exchange).await {
            Ok(Ok(Reply::Done(response))) => {
                let Response {
                    mut execution,
                    native_jobs_left,
                    ..
                } = *response;
                if native_jobs_left > 0 {
                    execution.warnings.push(format!(
                        "the run ended with {} bcrypt, pbkdf2 or sqlite call(s) still running; its worker takes no new runs and is stopped once its other runs end, so that they do not outlive it",
                        native_jobs_left
                    ));
                }
                execution
            }
            Ok(Ok(Reply::Died(death))) => {
                let (outcome, error) = death.outcome_for(id);
                let mut failed = Execution::failed(outcome, error);
                // The worker's last stderr line explains the death and may quote what the
                // script held.
                failed.redact(&inv.redactor());
                failed
            }
            Ok(Err(_)) => Execution::failed(
                Outcome::Crashed,
                ScriptError::system("CrashedError", "the worker running the script was lost"),
            ),
            Err(_) => {
                *worker.killed_for.lock().expect("killed_for lock") = Some(id);
                worker.stop();
                Execution::failed(
                    Outcome::Timeout,
                    ScriptError::system(
                        "TimeoutError",
                        format!(
                            "the script did not finish within {} ms and its worker was stopped",
                            inv.limits.timeout_ms
                        ),
                    ),
                )
            }
        };
        execution.timings.spawn_ms = spawn_ms;
        execution.timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(execution)
    }
}

/// The request for run `id`, naming its script instead of sending it when the worker holds it
/// (`kept`, updated as the worker will update its own).
fn request(id: u64, inv: Invocation, kept: &mut VecDeque<ScriptDigest>) -> Request {
    let digest = protocol::digest(&inv);
    if let Some(i) = kept.iter().position(|d| *d == digest) {
        kept.remove(i);
        kept.push_back(digest);
        return Request {
            id,
            invocation: Invocation {
                source: String::new(),
                configuration: Default::default(),
                ..inv
            },
            script: Script::Known(digest),
            forget: Vec::new(),
        };
    }
    kept.push_back(digest);
    let excess = kept.len().saturating_sub(KEPT_SCRIPTS);
    Request {
        id,
        invocation: inv,
        script: Script::Sent(digest),
        forget: kept.drain(..excess).collect(),
    }
}

impl Inner {
    fn refill(self: &Arc<Self>) {
        let wanted = {
            let mut slots = self.slots.lock().expect("pool lock");
            let wanted = self
                .config
                .spares
                .saturating_sub(slots.spares.len() + slots.starting);
            slots.starting += wanted;
            wanted
        };
        for _ in 0..wanted {
            let inner = self.clone();
            tokio::spawn(async move {
                let spare = inner.start_worker(Limits::default().memory_bytes, None);
                let mut s = inner.slots.lock().expect("pool lock");
                s.starting -= 1;
                match spare {
                    Ok(w) => s.spares.push(w),
                    Err(e) => tracing::warn!("could not start a spare worker: {e}"),
                }
                drop(s);
                inner.freed.notify_waiters();
            });
        }
    }

    /// Chooses the worker for a run and counts the run on it: a new worker for the tenant
    /// (its idle one, a spare, or a fresh process) while it is below its share of workers,
    /// else the least loaded of its workers with room, else it waits. A worker never serves
    /// two tenants.
    async fn acquire(self: &Arc<Self>, inv: &Invocation) -> Result<(Arc<Worker>, f64), PoolError> {
        self.refill();
        loop {
            // Registered before the check, so a release between the check and the wait wakes it.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let mut took_spare = false;
            let chosen = {
                let mut slots = self.slots.lock().expect("pool lock");
                let memory = inv.limits.memory_bytes;
                let held = slots.busy.get(&inv.tenant).map_or(0, Vec::len);
                let active = slots.busy.len() + usize::from(held == 0);
                let share = (self.config.max_workers / active)
                    .clamp(1, self.config.max_busy_per_tenant.max(1));
                // A tenant waits only for its own runs: below its share it is served even when
                // tenants that held more before it came still keep every worker busy.
                let mut chosen = None;
                if held < share {
                    let idle = slots
                        .idle
                        .iter()
                        .rposition(|w| w.tenant() == inv.tenant && w.accepts(memory));
                    let worker = if let Some(i) = idle {
                        let w = slots.idle.remove(i).expect("found above");
                        slots.idle_bytes -= w.resident_bytes.load(Ordering::SeqCst);
                        Some((w, 0.0))
                    } else if let Some(i) = slots.spares.iter().position(|w| w.accepts(memory)) {
                        let w = slots.spares.swap_remove(i);
                        let _ = w.tenant.set(inv.tenant.clone());
                        took_spare = true;
                        Some((w, 0.0))
                    } else {
                        None
                    };
                    let (worker, spawn_ms) = match worker {
                        Some(w) => w,
                        None => {
                            let spawn_started = Instant::now();
                            let w = self.start_worker(memory, Some(inv.tenant.clone()))?;
                            (w, spawn_started.elapsed().as_secs_f64() * 1e3)
                        }
                    };
                    slots
                        .busy
                        .entry(inv.tenant.clone())
                        .or_default()
                        .push(Busy {
                            worker: worker.clone(),
                            runs: 1,
                        });
                    chosen = Some((worker, spawn_ms));
                } else if let Some(b) = slots
                    .busy
                    .get_mut(&inv.tenant)
                    .into_iter()
                    .flatten()
                    .filter(|b| {
                        b.runs < self.config.runs_per_worker.max(1) && b.worker.accepts(memory)
                    })
                    .min_by_key(|b| b.runs)
                {
                    b.runs += 1;
                    chosen = Some((b.worker.clone(), 0.0));
                }
                chosen
            };
            if took_spare {
                // Replaced a little later: starting a process takes CPU the run that took
                // the spare needs now, on a machine with few cores.
                let inner = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(SPARE_REFILL_DELAY).await;
                    inner.refill();
                });
            }
            match chosen {
                Some(c) => return Ok(c),
                None => freed.await,
            }
        }
    }

    /// Gives back a run's place on its worker. A worker with no runs left goes back to the idle
    /// list (or is stopped, if retired); idle workers beyond the memory budget or the count are
    /// stopped, least recently used first.
    fn release(&self, worker: &Arc<Worker>) {
        let evicted = {
            let mut slots = self.slots.lock().expect("pool lock");
            let tenant = worker.tenant().to_string();
            let mut emptied = false;
            if let Some(list) = slots.busy.get_mut(&tenant)
                && let Some(i) = list.iter().position(|b| Arc::ptr_eq(&b.worker, worker))
            {
                list[i].runs -= 1;
                if list[i].runs == 0 {
                    list.swap_remove(i);
                    emptied = true;
                }
                if list.is_empty() {
                    slots.busy.remove(&tenant);
                }
            }
            let mut evicted = Vec::new();
            if emptied {
                if worker.retired.load(Ordering::SeqCst) || worker.dead() {
                    evicted.push(worker.clone());
                } else {
                    let bytes = resident_bytes(worker.pid);
                    worker.resident_bytes.store(bytes, Ordering::SeqCst);
                    slots.idle_bytes += bytes;
                    slots.idle.push_back(worker.clone());
                    while slots.idle.len() > self.config.max_idle
                        || (slots.idle_bytes > self.config.idle_memory_bytes
                            && slots.idle.len() > 1)
                    {
                        let Some(old) = slots.idle.pop_front() else {
                            break;
                        };
                        slots.idle_bytes -= old.resident_bytes.load(Ordering::SeqCst);
                        evicted.push(old);
                    }
                }
            }
            evicted
        };
        for w in evicted {
            w.stop();
        }
        // Every waiter looks again: the one woken may be a tenant still at its share.
        self.freed.notify_waiters();
    }

    /// Takes a dead worker out of the idle and spare lists.
    fn forget(&self, worker: &Arc<Worker>) {
        let mut slots = self.slots.lock().expect("pool lock");
        if let Some(i) = slots.idle.iter().position(|w| Arc::ptr_eq(w, worker)) {
            slots.idle.remove(i);
            slots.idle_bytes -= worker.resident_bytes.load(Ordering::SeqCst);
        }
        slots.spares.retain(|w| !Arc::ptr_eq(w, worker));
    }

    /// Starts a worker process for `tenant` (none: a spare) with memory ceiling
    /// `memory_bytes`, and its reader task.
    fn start_worker(
        self: &Arc<Self>,
        memory_bytes: u64,
        tenant: Option<String>,
    ) -> Result<Arc<Worker>, PoolError> {
        let program: &Path = &self.config.program;
        let ledger = ledger_file().map_err(|source| PoolError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        // The worker's environment is empty: nothing of the supervisor's (database passwords,
        // keys) is there for a sandbox escape to find. One allocator arena per thread would
        // reserve 64 MB of address space each and eat into the memory ceiling.
        let mut child = Command::new(program)
            .arg("worker")
            .arg("--memory-bytes")
            .arg(memory_bytes.to_string())
            .arg("--slice-ledger")
            .arg(ledger.path())
            .env_clear()
            .env("MALLOC_ARENA_MAX", "2")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PoolError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let tail = stderr_tail.clone();
        let stderr_done = Arc::new(Notify::new());
        let stderr_closed = stderr_done.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().expect("stderr tail lock");
                t.extend(&buf[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
            stderr_closed.notify_one();
        });
        let worker = Arc::new(Worker {
            tenant: tenant.map(OnceLock::from).unwrap_or_default(),
            memory_bytes,
            pid: child.id(),
            writer: tokio::sync::Mutex::new((stdin, VecDeque::new())),
            child: Mutex::new(Some(child)),
            waiting: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            resident_bytes: AtomicU64::new(0),
            stderr_tail,
            retired: false.into(),
            killed_for: Mutex::new(None),
            ledger,
        });
        tokio::spawn(read_answers(
            Arc::downgrade(self),
            Arc::downgrade(&worker),
            stdout,
            stderr_done,
        ));
        Ok(worker)
    }
}

/// The reader task of one worker: hands each answer to its run and gives the run's place
/// back, until the worker's stdout closes; then tells each run still in flight why the worker
/// died. It holds the worker weakly: a worker nobody holds is dropped, which kills it.
async fn read_answers(
    pool: Weak<Inner>,
    worker: Weak<Worker>,
    mut stdout: BufReader<ChildStdout>,
    stderr_done: Arc<Notify>,
) {
    while let Ok(Some(response)) = protocol::read::<_, Response>(&mut stdout).await {
        let (Some(pool), Some(worker)) = (pool.upgrade(), worker.upgrade()) else {
            return;
        };
        let waiter = worker
            .waiting
            .lock()
            .expect("waiting lock")
            .as_mut()
            .and_then(|w| w.remove(&response.id));
        let Some(waiter) = waiter else {
            // An answer to no run: the worker is broken.
            break;
        };
        if response.native_jobs_left > 0 {
            worker.retired.store(true, Ordering::SeqCst);
        }
        pool.release(&worker);
        // The run may have been abandoned (its client went away): then nobody listens.
        let _ = waiter.send(Reply::Done(Box::new(response)));
    }
    let (Some(pool), Some(worker)) = (pool.upgrade(), worker.upgrade()) else {
        return;
    };
    let waiting = worker
        .waiting
        .lock()
        .expect("waiting lock")
        .take()
        .unwrap_or_default();
    pool.forget(&worker);
    let child = worker.child.lock().expect("child lock").take();
    let status = match child {
        Some(mut child) => match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = child.kill().await;
                None
            }
        },
        None => None,
    };
    // Let the stderr reader take the last bytes the worker wrote.
    let _ = tokio::time::timeout(Duration::from_millis(200), stderr_done.notified()).await;
    let stderr = {
        let t = worker.stderr_tail.lock().expect("stderr tail lock");
        String::from_utf8_lossy(&t.iter().copied().collect::<Vec<_>>()).into_owned()
    };
    let executing = {
        use std::os::unix::fs::FileExt;
        let mut run = [0u8; 8];
        match worker.ledger.as_file().read_at(&mut run, 0) {
            Ok(8) => Some(u64::from_le_bytes(run)).filter(|&r| r != 0),
            _ => None,
        }
    };
    let death = Arc::new(Death {
        executing,
        status,
        stderr,
        memory_bytes: worker.memory_bytes,
        killed_for: *worker.killed_for.lock().expect("killed_for lock"),
        in_flight: waiting.keys().copied().collect(),
    });
    for (_, waiter) in waiting {
        pool.release(&worker);
        let _ = waiter.send(Reply::Died(death.clone()));
    }
}

/// What is known of a worker's death: enough to tell each of its runs what happened to it.
struct Death {
    /// The run whose slice was executing when the worker died, as its ledger says.
    executing: Option<u64>,
    status: Option<ExitStatus>,
    stderr: String,
    memory_bytes: u64,
    /// The run whose timeout made the pool kill the worker.
    killed_for: Option<u64>,
    /// The runs in flight when it died.
    in_flight: Vec<u64>,
}

impl Death {
    /// The run named after `note` on the last stderr line that has it, if it was in flight.
    fn named(&self, note: &str) -> Option<u64> {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| l.split_once(note))
            .and_then(|(_, rest)| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .filter(|id| self.in_flight.contains(id))
    }

    /// The run that caused the death, when it is known: the one whose slice was executing,
    /// or the only run in flight.
    fn culprit(&self) -> Option<u64> {
        self.executing.filter(|id| self.in_flight.contains(id)).or(
            match self.in_flight.as_slice() {
                [only] => Some(*only),
                _ => None,
            },
        )
    }

    /// The outcome of run `id`: the cause's own for the run that caused the death,
    /// `interrupted` for the others it took with it.
    fn outcome_for(&self, id: u64) -> (Outcome, ScriptError) {
        let interrupted = |what: String| {
            (
                Outcome::Interrupted,
                ScriptError::system(
                    "InterruptedError",
                    format!("the run was stopped because {what}; its own script did nothing wrong"),
                ),
            )
        };
        if self.killed_for.is_some_and(|k| k != id) {
            return interrupted(
                "another run of this tenant in the same worker passed its timeout while holding the JavaScript thread, and the worker was stopped".into(),
            );
        }
        use std::os::unix::process::ExitStatusExt;
        if self.status.and_then(|s| s.code()) == Some(EXIT_STALLED)
            && let Some(culprit) = self.named(STALLED_NOTE)
        {
            if culprit == id {
                return (
                    Outcome::CpuLimit,
                    ScriptError::system(
                        "CpuLimitError",
                        format!(
                            "the script held the JavaScript thread (synchronous code, or promise jobs without a pause) for more than {} ms while other runs of this tenant waited on the same worker",
                            MAX_SLICE_WHILE_SHARED.as_millis()
                        ),
                    ),
                );
            }
            return interrupted(
                "another run of this tenant in the same worker held its JavaScript thread too long"
                    .into(),
            );
        }
        let (own, what) = death(self.status, &self.stderr, self.memory_bytes);
        // A death the kernel or an operator caused is nobody's run's doing: every run hears it.
        let from_outside = self.status.and_then(|s| s.signal()) == Some(9);
        if (own.0 == Outcome::Crashed && from_outside) || self.in_flight.len() <= 1 {
            return own;
        }
        match self.culprit() {
            Some(c) if c == id => own,
            Some(_) => interrupted(format!(
                "another run of this tenant in the same worker {what}"
            )),
            None => interrupted(format!(
                "one of the {} runs in flight on the same worker {what}, and which one is not known",
                self.in_flight.len()
            )),
        }
    }
}

/// Names the outcome of a worker's death from its exit status and last words, and says in a
/// few words what happened to the worker (for the runs it took with it).
fn death(
    status: Option<ExitStatus>,
    stderr: &str,
    memory_bytes: u64,
) -> ((Outcome, ScriptError), String) {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return (
            (
                Outcome::MemoryLimit,
                ScriptError::system(
                    "MemoryLimitError",
                    format!(
                        "the script passed the memory limit of {} MiB",
                        memory_bytes >> 20
                    ),
                ),
            ),
            "reached the worker's memory ceiling".into(),
        );
    }
    if stderr.contains("has overflowed its stack") {
        return (
            (
                Outcome::Crashed,
                ScriptError::system(
                    "CrashedError",
                    "the script nested too deeply and overflowed the engine's native stack",
                ),
            ),
            "overflowed the engine's native stack".into(),
        );
    }
    let how = match status {
        // The worker's own limit shows on its stderr (above). A SIGKILL the supervisor did not
        // send came from outside — the kernel's out-of-memory killer or an operator — and is
        // not blamed on the script's memory limit, which it did not necessarily reach.
        Some(s) if s.signal() == Some(9) => {
            "was killed from outside the server (SIGKILL: the kernel's out-of-memory killer or an operator)".to_string()
        }
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (_, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "ended".to_string(),
        },
        None => "stopped answering".to_string(),
    };
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("customdb-worker:"))
        .unwrap_or("")
        .trim();
    let detail = if last.is_empty() {
        String::new()
    } else {
        format!(": {last}")
    };
    (
        (
            Outcome::Crashed,
            ScriptError::system(
                "CrashedError",
                format!("the worker running the script {how}{detail}"),
            ),
        ),
        format!("crashed the worker ({how})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Action;

    fn inv(source: &str, config: &str) -> Invocation {
        Invocation {
            tenant: "t".into(),
            connection: "c".into(),
            action: Action::Login,
            source: source.into(),
            args: Vec::new(),
            context: None,
            configuration: [("K".to_string(), config.to_string())].into(),
            limits: Limits::default(),
            policy: Default::default(),
        }
    }

    #[test]
    fn a_script_is_sent_once_then_named_and_forgotten_past_the_kept_number() {
        let mut kept = VecDeque::new();
        let first = request(1, inv("function a() {}", "x"), &mut kept);
        assert!(matches!(first.script, Script::Sent(_)));
        assert_eq!(first.invocation.source, "function a() {}");
        let again = request(2, inv("function a() {}", "x"), &mut kept);
        assert_eq!(
            again.script,
            Script::Known(protocol::digest(&inv("function a() {}", "x")))
        );
        assert!(again.invocation.source.is_empty() && again.invocation.configuration.is_empty());
        // Another configuration is another script.
        let changed = request(3, inv("function a() {}", "y"), &mut kept);
        assert!(matches!(changed.script, Script::Sent(_)));
        // Past KEPT_SCRIPTS the least recently used is forgotten, and sent again when used.
        let oldest = protocol::digest(&inv("function a() {}", "x"));
        request(4, inv("function a() {}", "y"), &mut kept);
        let mut forgotten = Vec::new();
        for n in 0..KEPT_SCRIPTS - 1 {
            forgotten
                .extend(request(5, inv(&format!("function f{n}() {{}}"), "x"), &mut kept).forget);
        }
        assert_eq!(forgotten, vec![oldest]);
        assert_eq!(kept.len(), KEPT_SCRIPTS);
        let resent = request(6, inv("function a() {}", "x"), &mut kept);
        assert!(matches!(resent.script, Script::Sent(_)));
    }
}
