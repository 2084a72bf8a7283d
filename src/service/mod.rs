//! The use cases, shared by the API, the CLI and the harness: the custom-database flows of
//! SPEC §4 in both modes (`login`, `signup`, `password` with its tickets, `users`), the
//! Management operations of SPEC §5 (`users`, `connections`) and the live `bus`. Each runs the
//! scripts the matrix names through the worker pool, normalizes and caches what they return,
//! and enforces the cache rules (blocked users, one email per user, stable user ids). Store
//! calls block and run on the blocking pool.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::events::LiveEvent;
use crate::domain::profile::{ProfileOptions, Violation};
use crate::isolation::{Pool, PoolError};
use crate::outcome::{Execution, Outcome, ScriptError};
use crate::script::{Action, Internal, Invocation, Limits, Policy};
use crate::store::{AsyncStore, ConnectionRecord, RootAttributes, Store, StoreError};

mod bus;
mod connections;
mod login;
mod password;
mod protection;
mod signup;
mod tenants;
mod users;

pub use bus::{as_caller, note_caller};
pub use connections::{
    ENCRYPTED, connection_dir, connection_from_api, export_connection, patch_connection, sources,
};
pub use password::{DEFAULT_TTL_SECS, MAX_TTL_SECS, Redeemed, TicketRequest};
pub use protection::Blocked;
pub use users::{CachedUser, UserPage};

/// bcrypt cost of the hashes the store keeps (Auth0 uses 10).
pub const BCRYPT_COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("no connection named '{0}'")]
    UnknownConnection(String),
    #[error("a blocking task failed: {0}")]
    Task(String),
    /// A data folder could not be made, or a stored value would have put it outside the
    /// data root.
    #[error("data folder: {0}")]
    DataFolder(String),
}

impl ServiceError {
    /// The store is out of disk space: the request changed nothing and may be retried.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, ServiceError::Store(e) if e.is_disk_full())
    }
}

/// Why a flow did not do what was asked, through no fault of customdb's: the client's
/// request, the user's state, or the tenant's scripts and database. Expected, logged, and
/// answered in Auth0's words (`api/error.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Wrong email or password (Auth0: 403 invalid_grant).
    WrongCredentials,
    /// The user is blocked (Auth0: 401 unauthorized, "user is blocked").
    Blocked,
    /// The script's `UnauthorizedError`: its message reaches the client.
    Unauthorized(String),
    /// A signup or change that conflicts: `user_exists`, or a script's `ValidationError`.
    Conflict { code: String, message: String },
    /// No such user.
    NotFound,
    /// The script answered `false` (verify, change_password, change_email).
    Refused,
    /// The returned profile breaks normalization rules.
    InvalidProfile(Vec<Violation>),
    /// The script failed: an error, a limit, or the tenant's database is down.
    ScriptFailed {
        outcome: Outcome,
        error: Option<Box<ScriptError>>,
    },
    /// The connection lacks the script this flow needs (`change_email script does not exist`).
    MissingScript(Action),
    /// The connection's password policy refuses the new password (Auth0: 400
    /// invalid_password / PasswordStrengthError, and its siblings).
    WeakPassword(crate::domain::password_policy::Rejection),
    /// Brute-force protection refuses this identifier from this address (Auth0: 429
    /// too_many_attempts).
    TooManyAttempts,
    /// Suspicious IP throttling refuses this address (Auth0: 429 too_many_attempts).
    SuspiciousIp,
    /// The request itself is wrong (a 400): each refused or invalid field and why.
    BadRequest(Vec<Violation>),
}

/// Why a use case ended without its result: refused (`Refusal`), or customdb itself failed
/// (`ServiceError`). `?` carries both.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("refused: {0:?}")]
    Refused(Refusal),
    #[error(transparent)]
    Internal(#[from] ServiceError),
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Refused(r)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Internal(e.into())
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        Failure::Internal(e.into())
    }
}

impl Failure {
    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Failure::Refused(r) => Some(r),
            Failure::Internal(_) => None,
        }
    }
}

/// How a use case ends: its result, or why not.
pub type Answer<T> = Result<T, Failure>;

/// A use case's answer that it was refused.
fn refuse<T>(refusal: Refusal) -> Answer<T> {
    Err(Failure::Refused(refusal))
}

/// The service layer: every use case of SPEC §4 and §5 (login, signup, password, users,
/// connections, the live bus), over the store, the worker pool and the connections' data
/// folders. The API, the CLI and the harness call it; it knows neither HTTP nor SQL.
pub struct Service {
    pub store: AsyncStore,
    pub pool: Arc<Pool>,
    /// Each connection gets `<data_root>/<connection id>` as its `sqlite3` data folder.
    pub data_root: Option<PathBuf>,
    /// The internal addresses the operator lets scripts reach (`serve --egress-allow-internal`).
    internal_egress: Vec<String>,
    /// Every run's limits (`serve` sets the bcrypt and PBKDF2 ceilings).
    limits: Limits,
    /// Every run and log event as it happens, for live watchers (`GET /api/v2/logs/stream`).
    live: tokio::sync::broadcast::Sender<Arc<LiveEvent>>,
}

/// A connection's settings as the flows read them.
struct Settings<'a> {
    record: &'a ConnectionRecord,
    import_mode: bool,
    roots: RootAttributes,
    profile: ProfileOptions,
    /// `allowed_hosts`: the hosts its scripts may reach.
    egress: Vec<String>,
    /// `enable_script_context`: scripts get `context` before the callback.
    script_context: bool,
}

impl<'a> Settings<'a> {
    fn of(record: &'a ConnectionRecord) -> Self {
        let options = &record.options;
        Settings {
            record,
            import_mode: options.import_mode(),
            roots: options.set_user_root_attributes.unwrap_or_default(),
            profile: ProfileOptions::of(&record.name, options),
            egress: options.allowed_hosts.clone().unwrap_or_default(),
            script_context: options.script_context(),
        }
    }
}

impl Service {
    pub fn new(store: Arc<Store>, pool: Arc<Pool>, data_root: Option<PathBuf>) -> Self {
        Service {
            store: AsyncStore::new(store),
            pool,
            data_root,
            internal_egress: Vec::new(),
            limits: Limits::default(),
            live: tokio::sync::broadcast::channel(bus::LIVE_BACKLOG).0,
        }
    }

    /// Runs every script under `limits`.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets scripts reach these internal addresses, hosts or CIDR blocks (when their
    /// allow-list names them too); by default they reach none.
    pub fn with_internal_egress(mut self, entries: Vec<String>) -> Self {
        self.internal_egress = entries;
        self
    }

    async fn connection(&self, tenant: &str, name: &str) -> Result<ConnectionRecord, ServiceError> {
        self.store
            .current_connection(tenant, name)
            .await?
            .map(|record| (*record).clone())
            .ok_or_else(|| ServiceError::UnknownConnection(name.to_string()))
    }

    /// Runs one script of the connection and records the run.
    async fn run(
        &self,
        settings: &Settings<'_>,
        action: Action,
        args: Vec<Value>,
    ) -> Result<Option<Execution>, ServiceError> {
        let record = settings.record;
        let Some(source) = record.scripts.get(&action) else {
            return Ok(None);
        };
        let data_dirs = match &self.data_root {
            Some(root) => vec![connection_dir(root, record)?],
            None => Vec::new(),
        };
        let invocation = Invocation {
            tenant: record.tenant.clone(),
            connection: record.name.clone(),
            action,
            source: source.clone(),
            args,
            // Auth0 inserts `context` only with `enable_script_context` (no organizations here,
            // so it is `{}`; delete always gets `{}` anyway).
            context: settings.script_context.then(|| json!({})),
            configuration: record.configuration.clone(),
            limits: self.limits.clone(),
            policy: Policy {
                data_dirs,
                egress: settings.egress.clone(),
                internal: Internal::Operator(self.internal_egress.clone()),
            },
        };
        let execution = self.pool.run(&invocation).await?;
        // A run record is a diagnostic: the request does not wait for it. Appends commit in
        // order, so the next append the request awaits (its log event, its cached user) makes
        // the record durable too; one that cannot be written is reported to the operator.
        let recorded = self
            .store
            .record_run(&record.tenant, &record.name, action, &execution);
        tokio::spawn(async move {
            if let Err(e) = recorded.await {
                tracing::error!(error = %e, "a script run was not recorded");
            }
        });
        self.publish(|| LiveEvent::Run {
            tenant: record.tenant.clone(),
            run: json!({
                "connection": record.name,
                "action": action,
                "outcome": execution.outcome,
                "error": execution.error,
                "console": execution.console,
                "timings": execution.timings,
            }),
        });
        Ok(Some(execution))
    }

    async fn boolean_script(
        &self,
        settings: &Settings<'_>,
        action: Action,
        args: Vec<Value>,
    ) -> Answer<()> {
        let Some(e) = self.run(settings, action, args).await? else {
            return refuse(Refusal::MissingScript(action));
        };
        match e.outcome {
            Outcome::Success => Ok(()),
            Outcome::False => refuse(Refusal::Refused),
            outcome => refuse(Refusal::ScriptFailed {
                outcome,
                error: e.error.map(Box::new),
            }),
        }
    }
}

/// A bcrypt hash (cost 10) of `password`, computed on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))?
        .map_err(|e| ServiceError::Task(e.to_string()))
}

/// A new user id for users created locally (import mode), 24 hex digits as Auth0's.
fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
