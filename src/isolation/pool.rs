//! The supervisor side: a pool of worker processes with tenant affinity. It sends each run to a
//! worker of the run's tenant, kills a worker that passes its deadline plus grace, maps a dead
//! worker to an outcome, and starts replacements on demand. It never runs JavaScript itself.
//! One tenant holds at most `max_busy_per_tenant` workers at once, so a tenant whose scripts
//! hang waits for its own runs and leaves the rest of the pool to the others.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;

use super::protocol::{self, Request, Response};
use crate::outcome::{Execution, Outcome, ScriptError};
use crate::script::Invocation;

/// How the pool starts workers and how many it keeps.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `customdb` executable; workers are `program worker --memory N`.
    pub program: PathBuf,
    pub max_workers: usize,
    /// Workers one tenant may keep busy at once (at least 1).
    pub max_busy_per_tenant: usize,
    /// Time a worker gets past a run's own timeout before it is killed.
    pub grace: Duration,
}

impl PoolConfig {
    pub fn new(program: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolConfig {
            program,
            max_workers: cores * 4,
            max_busy_per_tenant: cores * 2,
            grace: Duration::from_millis(500),
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
    tenant: String,
    memory_bytes: u64,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    next_id: u64,
}

#[derive(Default)]
struct Slots {
    idle: Vec<Worker>,
    /// Workers alive, idle or busy.
    total: usize,
    /// Busy workers per tenant.
    busy: HashMap<String, usize>,
}

pub struct Pool {
    config: PoolConfig,
    slots: Mutex<Slots>,
    freed: Notify,
}

/// Bytes of a worker's stderr kept to explain its death.
const STDERR_TAIL: usize = 8 * 1024;

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool {
            config,
            slots: Mutex::new(Slots::default()),
            freed: Notify::new(),
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

    /// Takes an idle worker of the invocation's tenant (and memory ceiling), or starts one,
    /// once the tenant is below its share of busy workers. A worker never serves two tenants:
    /// an idle worker of another tenant is stopped to make room.
    async fn acquire(&self, inv: &Invocation) -> Result<(Lease<'_>, f64), PoolError> {
        enum Next {
            Reuse(Worker),
            Spawn(Option<Worker>),
            Wait,
        }
        loop {
            // Registered before the check, so a release between the check and the wait wakes it.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let next = {
                let mut slots = self.slots.lock().expect("pool lock");
                let memory = inv.limits.memory_bytes;
                let busy = slots.busy.get(&inv.tenant).copied().unwrap_or(0);
                let next = if busy >= self.config.max_busy_per_tenant.max(1) {
                    Next::Wait
                } else if let Some(i) = slots
                    .idle
                    .iter()
                    .rposition(|w| w.tenant == inv.tenant && w.memory_bytes == memory)
                {
                    Next::Reuse(slots.idle.swap_remove(i))
                } else if slots.total < self.config.max_workers {
                    slots.total += 1;
                    Next::Spawn(None)
                } else if !slots.idle.is_empty() {
                    Next::Spawn(Some(slots.idle.remove(0)))
                } else {
                    Next::Wait
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
                Next::Reuse(mut w) => {
                    // A worker that died while idle (the kernel or an operator killed it) is
                    // replaced before a run is handed to it: the run must not take the blame.
                    if matches!(w.child.try_wait(), Ok(None)) {
                        lease.worker = Some(w);
                        return Ok((lease, 0.0));
                    }
                    tracing::info!(tenant = %inv.tenant, "an idle worker had died; starting another");
                    let _ = w.child.kill().await;
                }
                Next::Spawn(Some(mut old)) => {
                    let _ = old.child.kill().await;
                }
                Next::Spawn(None) | Next::Wait => {}
            }
            let spawn_started = Instant::now();
            lease.worker = Some(self.spawn(inv).await?);
            return Ok((lease, spawn_started.elapsed().as_secs_f64() * 1e3));
        }
    }

    async fn spawn(&self, inv: &Invocation) -> Result<Worker, PoolError> {
        let program = &self.config.program;
        // The worker's environment is empty: nothing of the supervisor's (database passwords,
        // keys) is there for a sandbox escape to find. One allocator arena per thread would
        // reserve 64 MB of address space each and eat into the memory ceiling.
        let mut child = Command::new(program)
            .arg("worker")
            .arg("--memory-bytes")
            .arg(inv.limits.memory_bytes.to_string())
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
            tenant: inv.tenant.clone(),
            memory_bytes: inv.limits.memory_bytes,
            stderr_tail,
            next_id: 1,
        })
    }

    /// Ends a run's hold on a worker: back to the idle list, or gone (`dead`).
    fn settle(&self, tenant: &str, idle: Option<Worker>, dead: bool) {
        {
            let mut slots = self.slots.lock().expect("pool lock");
            if let Some(n) = slots.busy.get_mut(tenant) {
                *n -= 1;
                if *n == 0 {
                    slots.busy.remove(tenant);
                }
            }
            if dead {
                slots.total -= 1;
            }
            if let Some(w) = idle {
                slots.idle.push(w);
            }
        }
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
        self.pool.settle(&self.tenant, worker, false);
    }

    /// Stops a worker that hit a limit or passed its deadline.
    async fn discard(mut self) {
        self.settled = true;
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.child.kill().await;
        }
        self.pool.settle(&self.tenant, None, true);
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
        self.pool.settle(&self.tenant, None, true);
        death(status, &stderr, worker.memory_bytes)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Not settled: the run was abandoned (or its worker never started). `kill_on_drop`
        // ends the process, if any; the slot and the tenant's share are returned here.
        if !self.settled {
            self.worker.take();
            self.pool.settle(&self.tenant, None, true);
        }
    }
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
