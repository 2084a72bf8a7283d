//! The supervisor side: a pool of worker processes with tenant affinity. It sends each run to a
//! worker of the run's tenant, kills a worker that passes its deadline plus grace, maps a dead
//! worker to an outcome, and starts replacements. It never runs JavaScript itself.
//!
//! Busy workers are bounded (`max_workers`); idle ones are kept warm for their tenants under a
//! memory budget (their resident memory, least recently used stopped first), and a few spare
//! workers, started ahead and given to no tenant yet, take a tenant's first run so that it does
//! not wait for a process to start. Capacity is shared among the tenants with runs in flight:
//! each may keep `max_workers / active tenants` busy (at least one, at most
//! `max_busy_per_tenant`), and a tenant below its share is served at once even when others
//! still hold more than theirs. Tenants whose scripts hang wait for their own runs only,
//! however many of them hang; busy workers stay below `max_workers` plus the larger of
//! `max_workers` and the number of active tenants.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;

use super::protocol::{self, Request, Response};
use crate::outcome::{Execution, Outcome, ScriptError};
use crate::script::{Invocation, Limits};

/// How the pool starts workers and how many it keeps.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `customdb` executable; workers are `program worker --memory N`.
    pub program: PathBuf,
    /// Workers running a run at once, shared among the active tenants (passed only while the
    /// shares shrink, and by one per tenant when more tenants than this are active).
    pub max_workers: usize,
    /// Workers one tenant may keep busy at once (at least 1).
    pub max_busy_per_tenant: usize,
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

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The tenant it serves; empty for a spare.
    tenant: String,
    memory_bytes: u64,
    /// Its own resident memory when it last went idle.
    resident_bytes: u64,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    next_id: u64,
}

#[derive(Default)]
struct Slots {
    /// Least recently used first.
    idle: VecDeque<Worker>,
    idle_bytes: u64,
    spares: Vec<Worker>,
    /// Spares being started.
    starting: usize,
    /// Busy workers per tenant; a tenant is active while it is here.
    busy: HashMap<String, usize>,
}

pub struct Pool {
    config: PoolConfig,
    slots: Arc<Mutex<Slots>>,
    freed: Arc<Notify>,
}

/// What a worker costs in memory now: its resident pages that are its own (resident minus
/// file-backed, which all workers share with the executable), from `/proc`; 0 if unreadable.
fn resident_bytes(child: &Child) -> u64 {
    let Some(pid) = child.id() else { return 0 };
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let mut fields = statm.split_whitespace().skip(1).map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(resident)), Some(Ok(shared))) => resident.saturating_sub(shared) * 4096,
        _ => 0,
    }
}

/// Bytes of a worker's stderr kept to explain its death.
const STDERR_TAIL: usize = 8 * 1024;

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            slots: Arc::default(),
            freed: Arc::default(),
        }
    }

    /// Starts spares, in the background, until `config.spares` are ready or starting (a
    /// server calls it once at start; every run that takes a spare calls it again).
    pub fn refill(&self) {
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
            let (slots, freed) = (self.slots.clone(), self.freed.clone());
            let program = self.config.program.clone();
            tokio::spawn(async move {
                let spare = start_worker(&program, Limits::default().memory_bytes, String::new());
                let mut s = slots.lock().expect("pool lock");
                s.starting -= 1;
                match spare {
                    Ok(w) => s.spares.push(w),
                    Err(e) => tracing::warn!("could not start a spare worker: {e}"),
                }
                drop(s);
                freed.notify_waiters();
            });
        }
    }

    /// Runs one invocation in a worker of its tenant and returns what happened. Script
    /// failures, limits and worker deaths are all outcomes; only a worker that cannot be
    /// started at all is an error.
    pub async fn run(&self, inv: &Invocation) -> Result<Execution, PoolError> {
        let started = Instant::now();
        let (mut lease, spawn_ms) = self.acquire(inv).await?;
        let worker = lease.worker.as_mut().expect("a new lease holds its worker");
        let id = worker.next_id;
        worker.next_id += 1;
        let wait = Duration::from_millis(inv.limits.timeout_ms) + self.config.grace;
        let request = Request {
            id,
            invocation: inv.clone(),
        };
        let exchange = async {
            protocol::write(&mut worker.stdin, &request).await?;
            protocol::read::<_, Response>(&mut worker.stdout).await
        };
        let mut execution = match tokio::time::timeout(wait, exchange).await {
            Ok(Ok(Some(response))) if response.id == id => {
                let mut execution = response.execution;
                if response.native_jobs_left > 0 {
                    execution.warnings.push(format!(
                        "the run ended with {} bcrypt, pbkdf2 or sqlite call(s) still running; its worker was stopped so that they do not outlive it",
                        response.native_jobs_left
                    ));
                }
                if execution.outcome.is_limit() || response.native_jobs_left > 0 {
                    lease.discard().await;
                } else {
                    lease.release();
                }
                execution
            }
            Err(_) => {
                lease.discard().await;
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
            Ok(_) => {
                // The worker closed its pipe or answered out of turn: it died or is broken.
                // Its last stderr line explains the death and may quote what the script held.
                let (outcome, error) = lease.bury().await;
                let mut failed = Execution::failed(outcome, error);
                failed.redact(&inv.redactor());
                failed
            }
        };
        execution.timings.spawn_ms = spawn_ms;
        execution.timings.total_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(execution)
    }

    /// Takes an idle worker of the invocation's tenant (and memory ceiling), else a spare,
    /// else starts one, once the tenant is below its share. A worker never serves two tenants.
    async fn acquire(&self, inv: &Invocation) -> Result<(Lease<'_>, f64), PoolError> {
        enum Next {
            Reuse(Worker),
            Spare(Worker),
            Spawn,
            Wait,
        }
        self.refill();
        loop {
            // Registered before the check, so a release between the check and the wait wakes it.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let next = {
                let mut slots = self.slots.lock().expect("pool lock");
                let memory = inv.limits.memory_bytes;
                let busy = slots.busy.get(&inv.tenant).copied().unwrap_or(0);
                let active = slots.busy.len() + usize::from(busy == 0);
                let share = (self.config.max_workers / active)
                    .clamp(1, self.config.max_busy_per_tenant.max(1));
                // A tenant waits only for its own runs: below its share it is served even when
                // tenants that held more before it came still keep every worker busy (their
                // runs go back to the pool, not to them, while they are above their shares).
                let next = if busy >= share {
                    Next::Wait
                } else if let Some(i) = slots
                    .idle
                    .iter()
                    .rposition(|w| w.tenant == inv.tenant && w.memory_bytes == memory)
                {
                    let w = slots.idle.remove(i).expect("found above");
                    slots.idle_bytes -= w.resident_bytes;
                    Next::Reuse(w)
                } else if let Some(i) = slots.spares.iter().position(|w| w.memory_bytes == memory) {
                    Next::Spare(slots.spares.swap_remove(i))
                } else {
                    Next::Spawn
                };
                if !matches!(next, Next::Wait) {
                    *slots.busy.entry(inv.tenant.clone()).or_default() += 1;
                }
                next
            };
            if let Next::Wait = next {
                freed.await;
                continue;
            }
            // The slot is taken from here on: if this future is dropped or the spawn fails,
            // the lease gives it back.
            let mut lease = Lease {
                pool: self,
                tenant: inv.tenant.clone(),
                worker: None,
                settled: false,
            };
            match next {
                Next::Reuse(mut w) | Next::Spare(mut w) => {
                    // A worker that died while idle (the kernel or an operator killed it) is
                    // replaced before a run is handed to it: the run must not take the blame.
                    if matches!(w.child.try_wait(), Ok(None)) {
                        w.tenant = inv.tenant.clone();
                        lease.worker = Some(w);
                        self.refill();
                        return Ok((lease, 0.0));
                    }
                    tracing::info!(tenant = %inv.tenant, "an idle worker had died; starting another");
                    let _ = w.child.kill().await;
                }
                Next::Spawn | Next::Wait => {}
            }
            let spawn_started = Instant::now();
            lease.worker = Some(self.spawn(inv)?);
            return Ok((lease, spawn_started.elapsed().as_secs_f64() * 1e3));
        }
    }

    fn spawn(&self, inv: &Invocation) -> Result<Worker, PoolError> {
        start_worker(
            &self.config.program,
            inv.limits.memory_bytes,
            inv.tenant.clone(),
        )
    }

    /// Ends a run's hold on a worker: back to the idle list (`idle`), or gone. Idle workers
    /// beyond the memory budget or the count are stopped, least recently used first
    /// (dropping one kills it; the runtime reaps it).
    fn settle(&self, tenant: &str, idle: Option<Worker>) {
        let idle = idle.map(|mut w| {
            w.resident_bytes = resident_bytes(&w.child);
            w
        });
        let evicted = {
            let mut slots = self.slots.lock().expect("pool lock");
            if let Some(n) = slots.busy.get_mut(tenant) {
                *n -= 1;
                if *n == 0 {
                    slots.busy.remove(tenant);
                }
            }
            let mut evicted = Vec::new();
            if let Some(w) = idle {
                slots.idle_bytes += w.resident_bytes;
                slots.idle.push_back(w);
                while slots.idle.len() > self.config.max_idle
                    || (slots.idle_bytes > self.config.idle_memory_bytes && slots.idle.len() > 1)
                {
                    let Some(old) = slots.idle.pop_front() else {
                        break;
                    };
                    slots.idle_bytes -= old.resident_bytes;
                    evicted.push(old);
                }
            }
            evicted
        };
        drop(evicted);
        // Every waiter looks again: the one woken may be a tenant still at its share.
        self.freed.notify_waiters();
    }
}

/// One run's hold on a worker slot. Dropped without being settled (the request was
/// cancelled, say, because its client went away), it kills the worker and gives the slot back.
struct Lease<'a> {
    pool: &'a Pool,
    tenant: String,
    worker: Option<Worker>,
    settled: bool,
}

impl Lease<'_> {
    /// The worker is healthy: keep it for the tenant's next run.
    fn release(mut self) {
        self.settled = true;
        let worker = self.worker.take();
        self.pool.settle(&self.tenant, worker);
    }

    /// Stops a worker that hit a limit or passed its deadline.
    async fn discard(mut self) {
        self.settled = true;
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.child.kill().await;
        }
        self.pool.settle(&self.tenant, None);
    }

    /// Collects a worker that died by itself and says why.
    async fn bury(mut self) -> (Outcome, ScriptError) {
        self.settled = true;
        let mut worker = self
            .worker
            .take()
            .expect("a lease holds its worker until settled");
        let status = match tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = worker.child.kill().await;
                None
            }
        };
        // Let the stderr reader take the last bytes the worker wrote.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stderr = {
            let t = worker.stderr_tail.lock().expect("stderr tail lock");
            String::from_utf8_lossy(&t.iter().copied().collect::<Vec<_>>()).into_owned()
        };
        self.pool.settle(&self.tenant, None);
        death(status, &stderr, worker.memory_bytes)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Not settled: the run was abandoned (or its worker never started). `kill_on_drop`
        // ends the process, if any; the slot and the tenant's share are returned here.
        if !self.settled {
            self.worker.take();
            self.pool.settle(&self.tenant, None);
        }
    }
}

/// Starts a worker process for `tenant` (empty: a spare) with memory ceiling `memory_bytes`.
fn start_worker(program: &Path, memory_bytes: u64, tenant: String) -> Result<Worker, PoolError> {
    // The worker's environment is empty: nothing of the supervisor's (database passwords,
    // keys) is there for a sandbox escape to find. One allocator arena per thread would
    // reserve 64 MB of address space each and eat into the memory ceiling.
    let mut child = Command::new(program)
        .arg("worker")
        .arg("--memory-bytes")
        .arg(memory_bytes.to_string())
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
    });
    Ok(Worker {
        child,
        stdin,
        stdout,
        tenant,
        memory_bytes,
        resident_bytes: 0,
        stderr_tail,
        next_id: 1,
    })
}

/// Names the outcome of a worker's death from its exit status and last words.
fn death(status: Option<ExitStatus>, stderr: &str, memory_bytes: u64) -> (Outcome, ScriptError) {
    use std::os::unix::process::ExitStatusExt;
    let memory = || {
        (
            Outcome::MemoryLimit,
            ScriptError::system(
                "MemoryLimitError",
                format!(
                    "the script passed the memory limit of {} MiB",
                    memory_bytes >> 20
                ),
            ),
        )
    };
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return memory();
    }
    if stderr.contains("has overflowed its stack") {
        return (
            Outcome::Crashed,
            ScriptError::system(
                "CrashedError",
                "the script nested too deeply and overflowed the engine's native stack",
            ),
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
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let detail = if last.is_empty() {
        String::new()
    } else {
        format!(": {last}")
    };
    (
        Outcome::Crashed,
        ScriptError::system(
            "CrashedError",
            format!("the worker running the script {how}{detail}"),
        ),
    )
}
