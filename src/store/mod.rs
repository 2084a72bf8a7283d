//! The product's own store: one SQLite file (bundled SQLite, WAL, `synchronous=FULL`) holding
//! tenants, connections (configuration sealed at rest), cached and migrated users, tenant log
//! events and script runs. Numbered migrations under `PRAGMA user_version`; one transaction per
//! logical change. Only this module runs SQL against the store. Every method blocks: call it
//! from a blocking thread (`tokio::task::spawn_blocking`), never on an async worker — except
//! the appends (log events, run records, cached logins), which hand their write to the store's
//! writer thread and return a `Pending` that async code awaits and other code `wait`s for.

mod connections;
mod facade;
mod history;
mod logs;
mod memo;
mod protection;
mod retention;
pub mod seal;
mod tenants;
mod tickets;
mod users;

pub use crate::domain::client::Client;
pub use connections::ConnectionRecord;
pub use facade::AsyncStore;
pub use logs::{LogEvent, LogWindow};
pub use memo::ProfileCopy;
pub use protection::{BRUTE_FORCE, Block, LoginGuard, SUSPICIOUS_IP};
pub use retention::{Pruned, Retention};
pub use tickets::{Issuer, TICKETS_PER_EMAIL, Ticket};
pub use users::{Cached, ROOT_ATTRIBUTES, RootAttributes, User, UserChange};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll};
use tokio::sync::oneshot;

use crate::domain::time::{self, Clock};
use seal::{SealError, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("the store was written by a newer customdb (schema {found}, this one knows {known})")]
    TooNew { found: i64, known: i64 },
    #[error("{0}")]
    Corrupt(String),
    /// The tenant already has a connection of this name.
    #[error("a connection named {0} already exists")]
    NameTaken(String),
    /// Another user of the connection already has this email (SPEC: an error, never a merge).
    #[error("the email {email} already belongs to {owner} in this connection")]
    EmailTaken { email: String, owner: String },
    /// A login returned this blocked user: nothing was written.
    #[error("the user {0} is blocked")]
    Blocked(String),
    /// The blocking task that ran the store call failed (it panicked).
    #[error("a store task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// The store could not write because its disk is full (or failing): nothing was changed,
    /// and the same write succeeds once space returns.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
        )
    }
}

/// Schema changes, in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        options TEXT NOT NULL,
        scripts TEXT NOT NULL,
        configuration BLOB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE users (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        connection TEXT NOT NULL,
        user_id TEXT NOT NULL,
        email TEXT,
        email_key TEXT,
        username TEXT,
        profile TEXT NOT NULL,
        app_metadata TEXT NOT NULL DEFAULT '{}',
        app_metadata_managed INTEGER NOT NULL DEFAULT 0,
        user_metadata TEXT NOT NULL DEFAULT '{}',
        user_metadata_managed INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        cached_at TEXT NOT NULL,
        last_login TEXT,
        logins_count INTEGER NOT NULL DEFAULT 0,
        migrated INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT,
        PRIMARY KEY (tenant, user_id)
    );
    CREATE UNIQUE INDEX users_email ON users (tenant, connection, email_key)
        WHERE email_key IS NOT NULL;
    CREATE INDEX users_username ON users (tenant, connection, username);
    CREATE TABLE log_events (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        date TEXT NOT NULL,
        type TEXT NOT NULL,
        connection TEXT,
        user_id TEXT,
        description TEXT
    );
    CREATE INDEX log_events_tenant ON log_events (tenant, id);
    CREATE TABLE script_runs (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        connection TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        console TEXT NOT NULL,
        timings TEXT NOT NULL,
        date TEXT NOT NULL
    );",
    // 2: serving — host names, API clients, token signing keys.
    "ALTER TABLE tenants ADD COLUMN is_default INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE tenant_domains (
        domain TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE
    );
    CREATE TABLE clients (
        client_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        private_key BLOB NOT NULL,
        created_at TEXT NOT NULL
    );",
    // 3: password-change tickets, kept as SHA-256 digests of the ticket ids.
    "CREATE TABLE tickets (
        digest TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        connection TEXT NOT NULL,
        email TEXT NOT NULL,
        result_url TEXT,
        mark_email_verified INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER NOT NULL,
        claimed INTEGER NOT NULL DEFAULT 0
    );",
    // 4: Auth0's client model. Clients made before it were management clients: they keep
    // client_credentials only (a password grant now needs a client that allows it).
    "ALTER TABLE clients ADD COLUMN app_type TEXT NOT NULL DEFAULT 'non_interactive';
    ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_post';
    ALTER TABLE clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT 'client_credentials';",
    // 5: who issued a ticket (anonymous requests have a quota of their own).
    "ALTER TABLE tickets ADD COLUMN issuer TEXT NOT NULL DEFAULT 'anonymous';",
    // 6: a connection's top-level attributes (display_name, metadata, enabled_clients, ...).
    "ALTER TABLE connections ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';",
    // 7: who caused a log event (client, address, user agent, domain, identifier typed) and
    // the connection's id, as Auth0's log events carry them.
    "ALTER TABLE log_events ADD COLUMN connection_id TEXT;
    ALTER TABLE log_events ADD COLUMN client_id TEXT;
    ALTER TABLE log_events ADD COLUMN client_name TEXT;
    ALTER TABLE log_events ADD COLUMN ip TEXT;
    ALTER TABLE log_events ADD COLUMN user_agent TEXT;
    ALTER TABLE log_events ADD COLUMN hostname TEXT;
    ALTER TABLE log_events ADD COLUMN user_name TEXT;",
    // 8: attack protection — failed logins per identifier and address, tenant settings.
    "CREATE TABLE login_failures (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        connection TEXT NOT NULL,
        identifier TEXT NOT NULL,
        ip TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_failed_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, connection, identifier, ip)
    );
    CREATE INDEX login_failures_identifier ON login_failures (tenant, identifier);
    CREATE TABLE tenant_settings (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (tenant, name)
    );",
    // 9: retention — log events and script runs are pruned by age and by count per tenant.
    "CREATE INDEX log_events_date ON log_events (date);
    CREATE INDEX script_runs_date ON script_runs (date);
    CREATE INDEX script_runs_tenant ON script_runs (tenant, id);",
    // 10: suspicious IP throttling — what is left of each address's budgets, when it was
    // counted and when it is whole again (milliseconds).
    "CREATE TABLE ip_buckets (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        ip TEXT NOT NULL,
        stage TEXT NOT NULL,
        tokens REAL NOT NULL,
        at INTEGER NOT NULL,
        full_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, ip, stage)
    );
    CREATE INDEX ip_buckets_full_at ON ip_buckets (full_at);",
    // 11: password history — bcrypt hashes of users' previous passwords, by lower-cased email.
    "CREATE TABLE password_history (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        connection TEXT NOT NULL,
        email TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX password_history_user ON password_history (tenant, connection, email, id);",
];

/// The store. One writer connection behind a mutex (SQLite serializes writers anyway, and
/// every logical change is one short transaction) and a few reader connections, which WAL lets
/// read committed data while a write is in progress.
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// The thread that commits appends in groups (see `append`).
    writer: Writer,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    sealer: Sealer,
    /// Copies of what cached-profile reads need (see `memo`).
    memo: Arc<memo::Memo>,
    /// Where every date the store writes comes from.
    clock: Arc<dyn Clock>,
}

/// Reader connections per store.
const READERS: usize = 4;

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        // WAL for concurrent readers; FULL so an acknowledged commit survives power loss too.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path)?;
                reader.pragma_update(None, "query_only", "ON")?;
                reader.busy_timeout(std::time::Duration::from_secs(10))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Store {
            writer: Writer::start(conn.clone())?,
            conn,
            readers,
            next_reader: Default::default(),
            sealer,
            memo: Default::default(),
            clock: time::system(),
        })
    }

    /// The store with its dates taken from `clock` (tests move time with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current time as Auth0 writes dates.
    pub fn now(&self) -> String {
        time::format(self.clock.now())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back
        // on drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader connection: a free one if any, else the next in turn.
    fn read(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return guard;
            }
        }
        let i = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `f` to the writer thread, which runs it in a transaction committed together with
    /// every other append waiting at the same time: one fsync for all of them, so that
    /// concurrent logins neither queue one `synchronous=FULL` commit each for their log events,
    /// run records and cached users, nor take a blocking thread to wait for it. Each append is
    /// its own savepoint: one that fails leaves the others. `committed` runs once the group's
    /// transaction has ended, before the append is answered; the answer comes only once the
    /// commit is durable. Appends commit in the order they were submitted: once one is
    /// answered, every append submitted before it is durable too, or has failed.
    fn append<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        committed: Option<Box<dyn FnOnce() + Send>>,
    ) -> Pending<T> {
        let (answer, answered) = oneshot::channel();
        let job = Append {
            run: Box::new(move |tx| f(tx).map(|v| Box::new(v) as Box<dyn Any + Send>)),
            committed,
            answer,
        };
        // A closed channel drops the job and its answer: the caller hears the writer stopped.
        self.writer.send(job);
        Pending {
            answered,
            value: PhantomData,
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub fn ensure_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![tenant, self.now()],
            )?;
            Ok(())
        })
    }
}

/// A write waiting for a group commit, its value type erased.
struct Append {
    run: Box<dyn FnOnce(&Transaction<'_>) -> Answer + Send>,
    committed: Option<Box<dyn FnOnce() + Send>>,
    answer: oneshot::Sender<Answer>,
}

type Answer = Result<Box<dyn Any + Send>, StoreError>;

/// Appends a group commit takes at most.
const GROUP: usize = 256;

/// The store's writer thread: takes appends from a channel and commits what is queued
/// together. It ends when the store is dropped (the channel closes), after the last group.
struct Writer {
    jobs: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(conn: Arc<Mutex<Connection>>) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Append>();
        let thread = std::thread::Builder::new()
            .name("customdb-store-writer".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    group.extend(queue.try_iter().take(GROUP - 1));
                    let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                    commit_appends(&mut conn, group);
                }
            })
            .map_err(|e| StoreError::Task(format!("cannot start the store's writer: {e}")))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn send(&self, job: Append) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An append on its way to a commit: `.await` it from async code, `wait` for it elsewhere.
/// Dropping it does not cancel the write.
#[must_use = "an append is durable only once its answer has come"]
pub struct Pending<T> {
    answered: oneshot::Receiver<Answer>,
    value: PhantomData<fn() -> T>,
}

impl<T: 'static> Pending<T> {
    /// Blocks the calling thread until the append's group is committed.
    pub fn wait(self) -> Result<T, StoreError> {
        futures::executor::block_on(self)
    }

    fn answer(answer: Result<Answer, oneshot::error::RecvError>) -> Result<T, StoreError> {
        match answer {
            Ok(done) => done.map(|v| *v.downcast::<T>().expect("an append answers its own type")),
            Err(_) => Err(StoreError::Task("the store's writer stopped".into())),
        }
    }
}

impl<T: 'static> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answered).poll(cx).map(Self::answer)
    }
}

/// Runs a group of appends in one transaction, each in a savepoint, and answers each.
fn commit_appends(conn: &mut Connection, group: Vec<Append>) {
    let mut answers = Vec::with_capacity(group.len());
    match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Err(e) => answers.extend(group.into_iter().map(|job| {
            let Append {
                committed, answer, ..
            } = job;
            (committed, answer, Err(same_error(&e)))
        })),
        Ok(tx) => {
            for Append {
                run,
                committed,
                answer,
            } in group
            {
                let result = tx
                    .execute_batch("SAVEPOINT append")
                    .map_err(StoreError::from)
                    .and_then(|()| run(&tx));
                let closed = match &result {
                    Ok(_) => tx.execute_batch("RELEASE append"),
                    Err(_) => tx.execute_batch("ROLLBACK TO append; RELEASE append"),
                };
                answers.push((
                    committed,
                    answer,
                    closed.map_err(StoreError::from).and(result),
                ));
            }
            // Nothing of the group is kept if the commit fails: every append hears why (a
            // full disk, say).
            if let Err(e) = tx.commit() {
                for (_, _, result) in &mut answers {
                    *result = Err(same_error(&e));
                }
            }
        }
    }
    for (committed, answer, result) in answers {
        if let Some(committed) = committed {
            committed();
        }
        // The caller may have stopped waiting (an abandoned request): the write stands.
        let _ = answer.send(result);
    }
}

/// A copy of a SQLite error for each caller it failed (`rusqlite::Error` is not `Clone`).
fn same_error(e: &rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        other => StoreError::Corrupt(format!("store database error: {other}")),
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Runs one statement through the connection's statement cache: hot writes skip SQL parsing.
fn execute(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// One row or none, through the connection's statement cache: hot reads skip SQL parsing.
fn query_one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params, row)
        .optional()?)
}
