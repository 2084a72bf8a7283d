//! The custom-database flows of SPEC §4, in both modes: login, get user, signup, password
//! change, verify, email change, delete. Each runs the scripts the matrix names through the
//! worker pool, normalizes and caches what they return, enforces the cache rules (blocked
//! users, one email per user, stable user ids) and, in import mode, migrates users into the
//! store in one transaction. Store calls block and run on the blocking pool.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::events::{LiveEvent, LogType};
use crate::isolation::{Pool, PoolError};
use crate::outcome::{Execution, Outcome, ScriptError};
use crate::profile::{self, Profile, ProfileOptions, Violation};
use crate::script::{Action, Internal, Invocation, Limits, Policy, complete_create_user};
use crate::store::{ConnectionRecord, RootAttributes, Store, StoreError, User, UserChange};

/// bcrypt cost of the hashes the store keeps (Auth0 uses 10).
pub const BCRYPT_COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
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

/// The data folder of a connection under `root` (`<root>/<connection id>`), created when
/// missing. The id is checked again here, and the result must lie under the root: a stored
/// value never becomes a path elsewhere. A folder of an older customdb, keyed by tenant and
/// connection name, is moved to its new place the first time.
pub fn connection_dir(
    root: &std::path::Path,
    record: &ConnectionRecord,
) -> Result<PathBuf, FlowError> {
    use crate::domain::names;
    let failed = |what: String| FlowError::DataFolder(what);
    let id = names::connection_id(&record.id).map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(root)
        .map_err(|e| failed(format!("cannot create {}: {e}", root.display())))?;
    let root = root
        .canonicalize()
        .map_err(|e| failed(format!("cannot resolve {}: {e}", root.display())))?;
    let dir = root.join(id);
    if std::fs::symlink_metadata(&dir).is_err()
        && names::tenant(&record.tenant).is_ok()
        && names::connection_name(&record.name).is_ok()
    {
        let old = root.join(&record.tenant).join(&record.name);
        if std::fs::symlink_metadata(&old).is_ok_and(|m| m.is_dir()) {
            std::fs::rename(&old, &dir).map_err(|e| {
                failed(format!(
                    "cannot move {} to {}: {e}",
                    old.display(),
                    dir.display()
                ))
            })?;
        }
    }
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(failed(format!("{} is not a folder", dir.display()))),
        Err(_) => std::fs::create_dir(&dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?,
    }
    if dir.parent() != Some(root.as_path()) {
        return Err(failed(format!(
            "{} is outside {}",
            dir.display(),
            root.display()
        )));
    }
    Ok(dir)
}

/// How a flow ended, as the API will answer it. Failures of the tenant's scripts or database
/// are values here, not `Err`: they are expected, logged, and shown to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Done(T),
    /// Wrong email or password (Auth0: 403 invalid_grant).
    WrongCredentials,
    /// The user is blocked (Auth0: 401 unauthorized, "user is blocked").
    Blocked,
    /// The script's `UnauthorizedError`: its message reaches the client.
    Unauthorized(String),
    /// A signup or change that conflicts: `user_exists`, or a script's `ValidationError`.
    Conflict {
        code: String,
        message: String,
    },
    /// No such user.
    NotFound,
    /// The script answered `false` (verify, change_password, change_email).
    Refused,
    /// The returned profile breaks normalization rules.
    InvalidProfile(Vec<Violation>),
    /// The script failed: an error, a limit, or the tenant's database is down.
    ScriptFailed {
        outcome: Outcome,
        error: Option<ScriptError>,
    },
    /// The connection lacks the script this flow needs (`change_email script does not exist`).
    MissingScript(Action),
    /// The request itself is wrong (a 400): each refused or invalid field and why.
    BadRequest(Vec<Violation>),
}

impl<T> Answer<T> {
    /// `Done`'s payload, or the answer itself — which then carries no payload, so it can
    /// stand as an answer of any type.
    // The Err side is an Answer by design (what the flow returns next); it moves once per
    // request, so boxing it would buy nothing.
    #[allow(clippy::result_large_err)]
    pub fn into_done<U>(self) -> Result<T, Answer<U>> {
        Err(match self {
            Answer::Done(v) => return Ok(v),
            Answer::WrongCredentials => Answer::WrongCredentials,
            Answer::Blocked => Answer::Blocked,
            Answer::Unauthorized(m) => Answer::Unauthorized(m),
            Answer::Conflict { code, message } => Answer::Conflict { code, message },
            Answer::NotFound => Answer::NotFound,
            Answer::Refused => Answer::Refused,
            Answer::InvalidProfile(v) => Answer::InvalidProfile(v),
            Answer::ScriptFailed { outcome, error } => Answer::ScriptFailed { outcome, error },
            Answer::MissingScript(a) => Answer::MissingScript(a),
            Answer::BadRequest(v) => Answer::BadRequest(v),
        })
    }
}

/// The core: the store, the worker pool, and where connections' data folders live.
pub struct Core {
    pub store: Arc<Store>,
    pub pool: Arc<Pool>,
    /// Each connection gets `<data_root>/<connection id>` as its `sqlite3` data folder.
    pub data_root: Option<PathBuf>,
    /// The internal addresses the operator lets scripts reach (`serve --egress-allow-internal`).
    internal_egress: Vec<String>,
    /// Every run and log event as it happens, for live watchers (`GET /api/v2/logs/stream`).
    live: tokio::sync::broadcast::Sender<Arc<LiveEvent>>,
}

/// Events a live watcher may miss before it is told it fell behind.
const LIVE_BACKLOG: usize = 1024;

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

/// A list-of-strings option (other entries are ignored), empty when absent.
fn string_list(options: &serde_json::Map<String, Value>, key: &str) -> Vec<String> {
    options
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> Settings<'a> {
    fn of(record: &'a ConnectionRecord) -> Self {
        let options = &record.options;
        let import_mode = options
            .get("import_mode")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let roots = options
            .get("set_user_root_attributes")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let non_persistent_attrs = string_list(options, "non_persistent_attrs");
        Settings {
            record,
            import_mode,
            roots,
            profile: ProfileOptions {
                connection: record.name.clone(),
                import_mode,
                non_persistent_attrs,
                ..ProfileOptions::default()
            },
            egress: string_list(options, "allowed_hosts"),
            script_context: options
                .get("enable_script_context")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

impl Core {
    pub fn new(store: Arc<Store>, pool: Arc<Pool>, data_root: Option<PathBuf>) -> Self {
        Core {
            store,
            pool,
            data_root,
            internal_egress: Vec::new(),
            live: tokio::sync::broadcast::channel(LIVE_BACKLOG).0,
        }
    }

    /// Lets scripts reach these internal addresses, hosts or CIDR blocks (when their
    /// allow-list names them too); by default they reach none.
    pub fn with_internal_egress(mut self, entries: Vec<String>) -> Self {
        self.internal_egress = entries;
        self
    }

    /// A receiver of every live event from now on (all tenants: the caller filters).
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Shows an event to live watchers; it is built only when someone watches.
    fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        if self.live.receiver_count() > 0 {
            // Watchers that left between the check and the send are not an error.
            let _ = self.live.send(Arc::new(event()));
        }
    }

    /// Runs store work on the blocking pool (rusqlite blocks; the async threads must not).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, FlowError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| FlowError::Task(e.to_string()))?
            .map_err(FlowError::from)
    }

    async fn connection(&self, tenant: &str, name: &str) -> Result<ConnectionRecord, FlowError> {
        let (t, n) = (tenant.to_string(), name.to_string());
        self.blocking(move |s| s.get_connection(&t, &n))
            .await?
            .ok_or_else(|| FlowError::UnknownConnection(name.to_string()))
    }

    /// Records a log event and shows it to live watchers; without a description, the
    /// type's own.
    pub(crate) async fn log(
        &self,
        tenant: &str,
        kind: LogType,
        connection: &str,
        user_id: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), FlowError> {
        let (t, c, u, d) = (
            tenant.to_string(),
            connection.to_string(),
            user_id.map(str::to_string),
            description.unwrap_or(kind.description()).to_string(),
        );
        let event = self
            .blocking(move |s| s.log(&t, kind, Some(&c), u.as_deref(), Some(&d)))
            .await?;
        self.publish(|| LiveEvent::Log {
            tenant: tenant.to_string(),
            event: serde_json::to_value(&event).unwrap_or_default(),
        });
        Ok(())
    }

    /// Runs one script of the connection and records the run.
    async fn run(
        &self,
        settings: &Settings<'_>,
        action: Action,
        args: Vec<Value>,
    ) -> Result<Option<Execution>, FlowError> {
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
            limits: Limits::default(),
            policy: Policy {
                data_dirs,
                egress: settings.egress.clone(),
                internal: Internal::Operator(self.internal_egress.clone()),
            },
        };
        let execution = self.pool.run(&invocation).await?;
        let (t, c, e) = (
            record.tenant.clone(),
            record.name.clone(),
            execution.clone(),
        );
        self.blocking(move |s| s.record_run(&t, &c, action, &e))
            .await?;
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

    /// The dashboard's "Try": runs the connection's script for `action` (or `source` in its
    /// place) with `args`, records the run, and returns the Execution with the normalized
    /// profile (or its violations) for login and get_user. Nothing is cached.
    pub async fn try_script(
        &self,
        tenant: &str,
        connection: &str,
        action: Action,
        args: Vec<Value>,
        source: Option<String>,
    ) -> Result<Answer<Value>, FlowError> {
        let mut record = self.connection(tenant, connection).await?;
        if let Some(source) = source {
            record.scripts.insert(action, source);
        }
        let params = action.params();
        if args.len() != params.len() {
            return Ok(Answer::BadRequest(vec![Violation {
                field: "args".into(),
                rule: format!(
                    "{action} takes {} argument(s): {}",
                    params.len(),
                    params.join(", ")
                ),
            }]));
        }
        let settings = Settings::of(&record);
        let Some(execution) = self.run(&settings, action, args).await? else {
            return Ok(Answer::MissingScript(action));
        };
        let mut report = serde_json::to_value(&execution).unwrap_or_default();
        if matches!(action, Action::Login | Action::GetUser)
            && execution.outcome == Outcome::Success
        {
            match profile::normalize(
                execution.result.as_ref().unwrap_or(&Value::Null),
                &settings.profile,
            ) {
                Ok(p) => report["profile"] = Value::Object(p.value),
                Err(v) => report["profile_errors"] = json!(v),
            }
        }
        Ok(Answer::Done(report))
    }

    /// Login (SPEC §4): the login script, or a local check for migrated users in import mode.
    pub async fn login(
        &self,
        tenant: &str,
        connection: &str,
        identifier: &str,
        password: &str,
    ) -> Result<Answer<User>, FlowError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        if settings.import_mode {
            let (t, c, i) = (
                tenant.to_string(),
                connection.to_string(),
                identifier.to_string(),
            );
            let local = self.blocking(move |s| s.find_user(&t, &c, &i)).await?;
            if let Some(user) = local.filter(|u| u.migrated) {
                return self.local_login(user, password).await;
            }
        }
        let Some(execution) = self
            .run(
                &settings,
                Action::Login,
                vec![json!(identifier), json!(password)],
            )
            .await?
        else {
            return Ok(Answer::MissingScript(Action::Login));
        };
        match execution.outcome {
            Outcome::Success => {}
            Outcome::NotFound => {
                self.log(
                    tenant,
                    LogType::UnknownUser,
                    connection,
                    None,
                    Some("Wrong email or password."),
                )
                .await?;
                return Ok(Answer::WrongCredentials);
            }
            _ => return self.login_failed(tenant, connection, execution).await,
        }
        let profile = match profile::normalize(
            execution.result.as_ref().unwrap_or(&Value::Null),
            &settings.profile,
        ) {
            Ok(p) => p,
            Err(v) => {
                let why = v
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.log(
                    tenant,
                    LogType::FailedLogin,
                    connection,
                    None,
                    Some(&format!("invalid profile: {why}")),
                )
                .await?;
                return Ok(Answer::InvalidProfile(v));
            }
        };
        let (t, uid) = (tenant.to_string(), profile.user_id.clone());
        if let Some(existing) = self.blocking(move |s| s.get_user(&t, &uid)).await?
            && existing.blocked
        {
            self.log(
                tenant,
                LogType::FailedLogin,
                connection,
                Some(&existing.user_id),
                Some("user is blocked"),
            )
            .await?;
            return Ok(Answer::Blocked);
        }
        // Import mode: the first successful login stores the user and a hash of the password
        // together, in the same transaction as the profile.
        let hash = if settings.import_mode {
            let pw = password.to_string();
            Some(hash_password(pw).await?)
        } else {
            None
        };
        match self
            .cache(tenant, connection, profile, settings.roots, true, hash)
            .await?
        {
            Ok(user) => {
                self.log(
                    tenant,
                    LogType::SuccessLogin,
                    connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                Ok(Answer::Done(user))
            }
            Err(conflict) => Ok(conflict),
        }
    }

    async fn cache<E>(
        &self,
        tenant: &str,
        connection: &str,
        profile: Profile,
        roots: RootAttributes,
        login: bool,
        hash: Option<String>,
    ) -> Result<Result<User, Answer<E>>, FlowError> {
        let (t, c) = (tenant.to_string(), connection.to_string());
        let result = self
            .blocking(move |s| {
                match s.cache_profile(&t, &c, &profile, roots, login, hash.as_deref()) {
                    Err(StoreError::EmailTaken { email, owner }) => Ok(Err((email, owner))),
                    other => other.map(Ok),
                }
            })
            .await?;
        match result {
            Ok(user) => Ok(Ok(user)),
            Err((email, owner)) => {
                let message = format!(
                    "the email {email} already belongs to {owner}; a script returned it for another user_id"
                );
                self.log(
                    tenant,
                    LogType::FailedLogin,
                    connection,
                    None,
                    Some(&message),
                )
                .await?;
                Ok(Err(Answer::Conflict {
                    code: "user_id_conflict".into(),
                    message,
                }))
            }
        }
    }

    async fn local_login(&self, user: User, password: &str) -> Result<Answer<User>, FlowError> {
        let hash = user.password_hash.clone().unwrap_or_default();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .map_err(|e| FlowError::Task(e.to_string()))?;
        let (tenant, connection) = (user.tenant.clone(), user.connection.clone());
        if !ok {
            self.log(
                &tenant,
                LogType::WrongPassword,
                &connection,
                Some(&user.user_id),
                Some("Wrong email or password."),
            )
            .await?;
            return Ok(Answer::WrongCredentials);
        }
        if user.blocked {
            self.log(
                &tenant,
                LogType::FailedLogin,
                &connection,
                Some(&user.user_id),
                Some("user is blocked"),
            )
            .await?;
            return Ok(Answer::Blocked);
        }
        let (t, uid) = (tenant.clone(), user.user_id.clone());
        self.blocking(move |s| s.record_local_login(&t, &uid))
            .await?;
        self.log(
            &tenant,
            LogType::SuccessLogin,
            &connection,
            Some(&user.user_id),
            None,
        )
        .await?;
        let (t, uid) = (tenant, user.user_id);
        Ok(self
            .blocking(move |s| s.get_user(&t, &uid))
            .await?
            .map_or(Answer::NotFound, Answer::Done))
    }

    async fn login_failed(
        &self,
        tenant: &str,
        connection: &str,
        execution: Execution,
    ) -> Result<Answer<User>, FlowError> {
        let error = execution.error.clone();
        let name = error
            .as_ref()
            .and_then(|e| e.name.as_deref())
            .unwrap_or("Error");
        let message = error
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        match name {
            "WrongUsernameOrPasswordError" => {
                let user = error
                    .as_ref()
                    .and_then(|e| e.user_id.clone())
                    .filter(|u| !u.is_empty());
                let (kind, uid) = match user {
                    Some(u) => (LogType::WrongPassword, Some(format!("auth0|{u}"))),
                    None => (LogType::UnknownUser, None),
                };
                let description = if message.is_empty() {
                    "Wrong email or password.".to_string()
                } else {
                    message
                };
                self.log(tenant, kind, connection, uid.as_deref(), Some(&description))
                    .await?;
                Ok(Answer::WrongCredentials)
            }
            "UnauthorizedError" => {
                let text = error
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or(message);
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                Ok(Answer::Unauthorized(text))
            }
            _ => {
                let text = match &error {
                    Some(e) => format!("{} ({})", e, execution.outcome),
                    None => execution.outcome.to_string(),
                };
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                Ok(Answer::ScriptFailed {
                    outcome: execution.outcome,
                    error,
                })
            }
        }
    }

    /// Get user: runs get_user and caches what it returns; `NotFound` when it finds nobody.
    pub async fn get_user(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
    ) -> Result<Answer<User>, FlowError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        self.get_user_with(&settings, email).await
    }

    async fn get_user_with(
        &self,
        settings: &Settings<'_>,
        email: &str,
    ) -> Result<Answer<User>, FlowError> {
        let (tenant, connection) = (settings.record.tenant.clone(), settings.record.name.clone());
        let Some(execution) = self
            .run(settings, Action::GetUser, vec![json!(email)])
            .await?
        else {
            return Ok(Answer::MissingScript(Action::GetUser));
        };
        match execution.outcome {
            Outcome::Success => {}
            Outcome::NotFound => return Ok(Answer::NotFound),
            outcome => {
                return Ok(Answer::ScriptFailed {
                    outcome,
                    error: execution.error,
                });
            }
        }
        let profile = match profile::normalize(
            execution.result.as_ref().unwrap_or(&Value::Null),
            &settings.profile,
        ) {
            Ok(p) => p,
            Err(v) => return Ok(Answer::InvalidProfile(v)),
        };
        Ok(
            match self
                .cache(&tenant, &connection, profile, settings.roots, false, None)
                .await?
            {
                Ok(user) => Answer::Done(user),
                Err(conflict) => conflict,
            },
        )
    }

    /// Signup: get_user → create → login without import; with import, get_user checks the
    /// legacy database and the user is created locally.
    pub async fn signup(
        &self,
        tenant: &str,
        connection: &str,
        user: Value,
    ) -> Result<Answer<User>, FlowError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        let email = user
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let password = user
            .get("password")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let exists = || Answer::Conflict {
            code: "user_exists".into(),
            message: "The user already exists.".into(),
        };
        if settings.import_mode {
            let (t, c, e) = (tenant.to_string(), connection.to_string(), email.clone());
            if self
                .blocking(move |s| s.find_user(&t, &c, &e))
                .await?
                .is_some()
            {
                self.log(
                    tenant,
                    LogType::FailedSignup,
                    connection,
                    None,
                    Some("The user already exists."),
                )
                .await?;
                return Ok(exists());
            }
        }
        match self.get_user_with(&settings, &email).await? {
            Answer::NotFound | Answer::MissingScript(_) => {}
            Answer::Done(_) | Answer::Conflict { .. } => {
                self.log(
                    tenant,
                    LogType::FailedSignup,
                    connection,
                    None,
                    Some("The user already exists."),
                )
                .await?;
                return Ok(exists());
            }
            other => return Ok(other),
        }
        if settings.import_mode {
            let mut fields = user.clone();
            if let Some(obj) = fields.as_object_mut() {
                obj.remove("password");
                obj.insert("user_id".into(), json!(new_id()));
            }
            let profile = match profile::normalize(&fields, &settings.profile) {
                Ok(p) => p,
                Err(v) => return Ok(Answer::InvalidProfile(v)),
            };
            let hash = hash_password(password).await?;
            return Ok(
                match self
                    .cache(
                        tenant,
                        connection,
                        profile,
                        settings.roots,
                        false,
                        Some(hash),
                    )
                    .await?
                {
                    Ok(u) => {
                        self.log(
                            tenant,
                            LogType::SuccessSignup,
                            connection,
                            Some(&u.user_id),
                            None,
                        )
                        .await?;
                        Answer::Done(u)
                    }
                    Err(conflict) => conflict,
                },
            );
        }
        let mut arg = user.clone();
        complete_create_user(&mut arg, tenant, connection);
        let Some(created) = self.run(&settings, Action::Create, vec![arg]).await? else {
            return Ok(Answer::MissingScript(Action::Create));
        };
        if created.outcome != Outcome::Success {
            let error = created.error.clone();
            let message = error
                .as_ref()
                .and_then(|e| e.description.clone().or(e.message.clone()))
                .unwrap_or_default();
            self.log(
                tenant,
                LogType::FailedSignup,
                connection,
                None,
                Some(&message),
            )
            .await?;
            if let Some(e) = error
                .as_ref()
                .filter(|e| e.name.as_deref() == Some("ValidationError"))
            {
                return Ok(Answer::Conflict {
                    code: e.code.clone().unwrap_or_else(|| "invalid_signup".into()),
                    message,
                });
            }
            return Ok(Answer::ScriptFailed {
                outcome: created.outcome,
                error,
            });
        }
        // Auth0 runs login right after create to check the user exists.
        let answer = self.login(tenant, connection, &email, &password).await?;
        if let Answer::Done(u) = &answer {
            self.log(
                tenant,
                LogType::SuccessSignup,
                connection,
                Some(&u.user_id),
                None,
            )
            .await?;
        }
        Ok(answer)
    }

    /// Password change: the change_password script; with import, migrated users change locally
    /// and others are fetched with get_user and created locally with the new password.
    pub async fn change_password(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        new_password: &str,
    ) -> Result<Answer<()>, FlowError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        if settings.import_mode {
            let pw = new_password.to_string();
            let hash = hash_password(pw).await?;
            let (t, c, e) = (
                tenant.to_string(),
                connection.to_string(),
                email.to_string(),
            );
            if let Some(user) = self
                .blocking(move |s| s.find_user(&t, &c, &e))
                .await?
                .filter(|u| u.migrated)
            {
                let (t, uid, h) = (tenant.to_string(), user.user_id.clone(), hash);
                self.blocking(move |s| s.set_password_hash(&t, &uid, &h))
                    .await?;
                self.log(
                    tenant,
                    LogType::SuccessChangePassword,
                    connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                return Ok(Answer::Done(()));
            }
            return Ok(
                match self
                    .run(&settings, Action::GetUser, vec![json!(email)])
                    .await?
                {
                    None => Answer::MissingScript(Action::GetUser),
                    Some(e) if e.outcome == Outcome::NotFound => Answer::NotFound,
                    Some(e) if e.outcome != Outcome::Success => Answer::ScriptFailed {
                        outcome: e.outcome,
                        error: e.error,
                    },
                    Some(e) => match profile::normalize(
                        e.result.as_ref().unwrap_or(&Value::Null),
                        &settings.profile,
                    ) {
                        Err(v) => Answer::InvalidProfile(v),
                        Ok(p) => match self
                            .cache(tenant, connection, p, settings.roots, false, Some(hash))
                            .await?
                        {
                            Ok(u) => {
                                self.log(
                                    tenant,
                                    LogType::SuccessChangePassword,
                                    connection,
                                    Some(&u.user_id),
                                    None,
                                )
                                .await?;
                                Answer::Done(())
                            }
                            Err(conflict) => conflict,
                        },
                    },
                },
            );
        }
        let answer = self
            .boolean_script(
                &settings,
                Action::ChangePassword,
                vec![json!(email), json!(new_password)],
            )
            .await?;
        self.log_result(
            tenant,
            connection,
            &answer,
            LogType::SuccessChangePassword,
            LogType::FailedChangePassword,
        )
        .await?;
        Ok(answer)
    }

    /// Verify (import off): the verify script.
    pub async fn verify(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
    ) -> Result<Answer<()>, FlowError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        let answer = self
            .boolean_script(&settings, Action::Verify, vec![json!(email)])
            .await?;
        self.log_result(
            tenant,
            connection,
            &answer,
            LogType::SuccessVerificationEmail,
            LogType::FailedVerificationEmail,
        )
        .await?;
        Ok(answer)
    }

    /// Email change: the tenant's database first (see `email_in_database`), then the cached
    /// profile follows.
    pub async fn change_email(
        &self,
        tenant: &str,
        user_id: &str,
        new_email: &str,
        verified: bool,
    ) -> Result<Answer<User>, FlowError> {
        let (t, uid) = (tenant.to_string(), user_id.to_string());
        let Some(user) = self.blocking(move |s| s.get_user(&t, &uid)).await? else {
            return Ok(Answer::NotFound);
        };
        let email = match self
            .email_in_database(&user, new_email, verified)
            .await?
            .into_done()
        {
            Ok(email) => email,
            Err(failed) => return Ok(failed),
        };
        let mut change = UserChange::default();
        change.set_email(email, verified);
        let (t, uid) = (tenant.to_string(), user_id.to_string());
        let updated = self
            .blocking(move |s| match s.update_user(&t, &uid, &change) {
                Err(StoreError::EmailTaken { .. }) => Ok(Err(())),
                other => other.map(Ok),
            })
            .await?;
        match updated {
            Ok(Some(u)) => {
                self.email_changed(&u).await?;
                Ok(Answer::Done(u))
            }
            Ok(None) => Ok(Answer::NotFound),
            Err(()) => Ok(Answer::Conflict {
                code: "email_exists".into(),
                message: "The email is already used by another user.".into(),
            }),
        }
    }

    /// The part of an email change the tenant's database makes: for a user it holds, get_user
    /// (the user must still be there) then the change_email script; nothing for a migrated
    /// user. Answers the email as the store is to keep it (lowercased in import mode); the
    /// caller writes it, together with whatever else changes.
    pub(crate) async fn email_in_database(
        &self,
        user: &User,
        new_email: &str,
        verified: bool,
    ) -> Result<Answer<String>, FlowError> {
        if let Err(rule) = profile::check_email(new_email) {
            return Ok(Answer::InvalidProfile(vec![Violation {
                field: "email".into(),
                rule,
            }]));
        }
        let record = self.connection(&user.tenant, &user.connection).await?;
        let settings = Settings::of(&record);
        if !user.migrated {
            if !record.scripts.contains_key(&Action::ChangeEmail) {
                return Ok(Answer::MissingScript(Action::ChangeEmail));
            }
            let old = user.email().unwrap_or_default().to_string();
            if let Answer::NotFound = self.get_user_with(&settings, &old).await? {
                return Ok(Answer::NotFound);
            }
            let answer = self
                .boolean_script(
                    &settings,
                    Action::ChangeEmail,
                    vec![json!(old), json!(new_email), json!(verified)],
                )
                .await?;
            if let Err(failed) = answer.into_done() {
                self.log(
                    &user.tenant,
                    LogType::FailedChangeEmail,
                    &user.connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                return Ok(failed);
            }
        }
        Ok(Answer::Done(if settings.import_mode {
            new_email.to_lowercase()
        } else {
            new_email.to_string()
        }))
    }

    /// Logs a committed email change.
    pub(crate) async fn email_changed(&self, user: &User) -> Result<(), FlowError> {
        self.log(
            &user.tenant,
            LogType::SuccessChangeEmail,
            &user.connection,
            Some(&user.user_id),
            None,
        )
        .await
    }

    /// Delete: the delete script (with the identity's id) for users the tenant's database
    /// holds, then the cached profile; migrated users only locally.
    pub async fn delete(&self, tenant: &str, user_id: &str) -> Result<Answer<()>, FlowError> {
        let (t, uid) = (tenant.to_string(), user_id.to_string());
        let Some(user) = self.blocking(move |s| s.get_user(&t, &uid)).await? else {
            return Ok(Answer::NotFound);
        };
        let record = self.connection(tenant, &user.connection).await?;
        let settings = Settings::of(&record);
        if !settings.import_mode {
            let id = user
                .user_id
                .strip_prefix("auth0|")
                .unwrap_or(&user.user_id)
                .to_string();
            match self.run(&settings, Action::Delete, vec![json!(id)]).await? {
                None => return Ok(Answer::MissingScript(Action::Delete)),
                Some(e) if e.outcome != Outcome::Success => {
                    self.log(
                        tenant,
                        LogType::FailedUserDeletion,
                        &user.connection,
                        Some(user_id),
                        None,
                    )
                    .await?;
                    return Ok(Answer::ScriptFailed {
                        outcome: e.outcome,
                        error: e.error,
                    });
                }
                Some(_) => {}
            }
        }
        let (t, uid) = (tenant.to_string(), user_id.to_string());
        self.blocking(move |s| s.delete_user(&t, &uid)).await?;
        self.log(
            tenant,
            LogType::SuccessUserDeletion,
            &user.connection,
            Some(user_id),
            None,
        )
        .await?;
        Ok(Answer::Done(()))
    }

    /// Logs `success` or `failure` by how `answer` ended.
    async fn log_result(
        &self,
        tenant: &str,
        connection: &str,
        answer: &Answer<()>,
        success: LogType,
        failure: LogType,
    ) -> Result<(), FlowError> {
        let kind = if *answer == Answer::Done(()) {
            success
        } else {
            failure
        };
        self.log(tenant, kind, connection, None, None).await
    }

    async fn boolean_script(
        &self,
        settings: &Settings<'_>,
        action: Action,
        args: Vec<Value>,
    ) -> Result<Answer<()>, FlowError> {
        Ok(match self.run(settings, action, args).await? {
            None => Answer::MissingScript(action),
            Some(e) => match e.outcome {
                Outcome::Success => Answer::Done(()),
                Outcome::False => Answer::Refused,
                outcome => Answer::ScriptFailed {
                    outcome,
                    error: e.error,
                },
            },
        })
    }
}

/// A bcrypt hash (cost 10) of `password`, computed on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, FlowError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| FlowError::Task(e.to_string()))?
        .map_err(|e| FlowError::Task(e.to_string()))
}

/// A new user id for users created locally (import mode), 24 hex digits as Auth0's.
fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
