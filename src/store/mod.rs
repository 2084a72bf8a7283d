//! The product's own store: one SQLite file (bundled SQLite, WAL, `synchronous=FULL`) holding
//! tenants, connections (configuration sealed at rest), cached and migrated users, tenant log
//! events and script runs. Numbered migrations under `PRAGMA user_version`; one transaction per
//! logical change. Only this module runs SQL against the store. Every method blocks: call it
//! from a blocking thread (`tokio::task::spawn_blocking`), never on an async worker.

mod memo;
pub use memo::ProfileCopy;
pub mod seal;
mod tickets;

pub use tickets::{Issuer, TICKETS_PER_EMAIL, Ticket};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::events::LogType;
use crate::domain::options::ConnectionOptions;
use crate::domain::time::{self, Clock};
use crate::profile::Profile;
use crate::script::Action;
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
];

/// The store. One writer connection behind a mutex (SQLite serializes writers anyway, and
/// every logical change is one short transaction) and a few reader connections, which WAL lets
/// read committed data while a write is in progress.
pub struct Store {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    sealer: Sealer,
    /// Copies of what cached-profile reads need (see `memo`).
    memo: memo::Memo,
    /// Where every date the store writes comes from.
    clock: Arc<dyn Clock>,
}

/// Reader connections per store.
const READERS: usize = 4;

/// A connection as stored: options (without `configuration` and `customScripts`, which live
/// apart), scripts, and the configuration (sealed on disk, clear only in memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// `display_name`, `metadata`, `enabled_clients`, ... (Auth0's top-level fields).
    #[serde(default)]
    pub attributes: crate::domain::connection::ConnectionAttributes,
    pub options: ConnectionOptions,
    pub scripts: BTreeMap<Action, String>,
    pub configuration: BTreeMap<String, String>,
}

/// A user in the store: the cached (or migrated) profile and what the store manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub tenant: String,
    pub connection: String,
    pub user_id: String,
    pub profile: Map<String, Value>,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub blocked: bool,
    pub created_at: String,
    pub updated_at: String,
    /// When a script last returned this profile.
    pub cached_at: String,
    pub last_login: Option<String>,
    pub logins_count: i64,
    /// Import mode: the user lives here now; logins check `password_hash` locally.
    pub migrated: bool,
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
}

impl UserChange {
    /// Sets the email and whether it is verified.
    pub fn set_email(&mut self, email: String, verified: bool) {
        self.fields.insert("email".into(), Value::String(email));
        self.fields
            .insert("email_verified".into(), Value::Bool(verified));
    }
}

impl User {
    /// The user as Auth0's Management API shows it.
    pub fn to_json(&self) -> Value {
        let mut out = self.profile.clone();
        out.insert(
            "app_metadata".into(),
            Value::Object(self.app_metadata.clone()),
        );
        out.insert(
            "user_metadata".into(),
            Value::Object(self.user_metadata.clone()),
        );
        out.insert("blocked".into(), json!(self.blocked));
        out.insert("created_at".into(), json!(self.created_at));
        out.insert("updated_at".into(), json!(self.updated_at));
        if let Some(l) = &self.last_login {
            out.insert("last_login".into(), json!(l));
        }
        out.insert("logins_count".into(), json!(self.logins_count));
        Value::Object(out)
    }

    pub fn email(&self) -> Option<&str> {
        self.profile.get("email").and_then(Value::as_str)
    }
}

pub use crate::domain::options::RootAttributes;

/// Attributes `set_user_root_attributes` governs.
pub const ROOT_ATTRIBUTES: &[&str] = &["name", "nickname", "given_name", "family_name", "picture"];

/// Which log events to read (see `Store::log_window`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogWindow {
    Page { page: usize, per_page: usize },
    After { id: i64, take: usize },
}

/// A tenant log event (its type one of Auth0's, `LogType`). Its id goes out
/// as Auth0's string `log_id` (and `_id`), which `from=<log_id>` checkpoints read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEvent {
    #[serde(rename = "log_id", serialize_with = "log_id")]
    pub id: i64,
    pub date: String,
    #[serde(rename = "type")]
    pub kind: LogType,
    pub connection: Option<String>,
    pub user_id: Option<String>,
    pub description: Option<String>,
}

fn log_id<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// The email as the uniqueness index compares it.
fn email_key(email: Option<&str>) -> Option<String> {
    email.map(str::to_lowercase)
}

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
        Ok(Store {
            conn: Mutex::new(conn),
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

    /// Creates or replaces a connection (options are replaced whole, as Auth0's PATCH does).
    pub fn put_connection(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let configuration = serde_json::to_vec(&record.configuration)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self.sealer.seal(&configuration, &record.id);
        let scripts = serde_json::to_string(&record.scripts).unwrap_or_default();
        let options = Value::Object(record.options.to_json()).to_string();
        let attributes = serde_json::to_string(&record.attributes).unwrap_or_else(|_| "{}".into());
        let written = self.write(|tx| {
            tx.execute(
                "INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![record.tenant, self.now()],
            )?;
            tx.execute(
                "INSERT INTO connections (id, tenant, name, options, scripts, configuration, created_at, updated_at, attributes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET name = ?3, options = ?4, scripts = ?5,
                     configuration = ?6, updated_at = ?7, attributes = ?8",
                params![record.id, record.tenant, record.name, options, scripts, sealed, self.now(), attributes],
            )
            .map_err(|e| match e {
                // The (tenant, name) pair is unique: a second connection of that name, however
                // many clients ask at once, is a conflict to report, not a failure.
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    StoreError::NameTaken(record.name.clone())
                }
                other => other.into(),
            })?;
            Ok(())
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_connection(&record.tenant, &record.name);
        written
    }

    pub fn get_connection(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let conn = self.read();
        let row = query_one(
            &conn,
            "SELECT id, name, options, scripts, configuration, attributes FROM connections WHERE tenant = ?1 AND (name = ?2 OR id = ?2)",
            params![tenant, name],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        let Some((id, name, options, scripts, sealed, attributes)) = row else {
            return Ok(None);
        };
        let configuration = match sealed {
            Some(s) => serde_json::from_slice(&self.sealer.open(&s, &id)?)
                .map_err(|e| StoreError::Corrupt(format!("configuration of {id}: {e}")))?,
            None => BTreeMap::new(),
        };
        Ok(Some(ConnectionRecord {
            attributes: serde_json::from_str(&attributes)
                .map_err(|e| StoreError::Corrupt(format!("attributes of {id}: {e}")))?,
            options: serde_json::from_str(&options)
                .map_err(|e| StoreError::Corrupt(format!("options of {id}: {e}")))?,
            id,
            tenant: tenant.to_string(),
            name,
            scripts: serde_json::from_str(&scripts)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            configuration,
        }))
    }

    /// A connection's options alone (no scripts, no configuration to open): what per-request
    /// policies read.
    pub fn connection_options(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ConnectionOptions>, StoreError> {
        let conn = self.read();
        let text: Option<String> = query_one(
            &conn,
            "SELECT options FROM connections WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
            |r| r.get(0),
        )?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// The tenant's connections, by name.
    pub fn list_connections(&self, tenant: &str) -> Result<Vec<ConnectionRecord>, StoreError> {
        let names: Vec<String> = {
            let conn = self.read();
            let mut stmt =
                conn.prepare("SELECT name FROM connections WHERE tenant = ?1 ORDER BY name")?;
            stmt.query_map(params![tenant], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for name in names {
            if let Some(record) = self.get_connection(tenant, &name)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Deletes a connection and every user it holds.
    pub fn delete_connection(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self.write(|tx| {
            let name: Option<String> = tx
                .query_row(
                    "SELECT name FROM connections WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(name) = name else { return Ok(None) };
            tx.execute(
                "DELETE FROM users WHERE tenant = ?1 AND connection = ?2",
                params![tenant, name],
            )?;
            tx.execute(
                "DELETE FROM connections WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
            )?;
            Ok(Some(name))
        })?;
        if let Some(name) = &deleted {
            self.memo.forget_connection(tenant, name);
        }
        Ok(deleted.is_some())
    }

    pub fn get_user(&self, tenant: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        let conn = self.read();
        read_user(
            &conn,
            "tenant = ?1 AND user_id = ?2",
            params![tenant, user_id],
        )
    }

    /// A cached profile and its connection's options, for reads that only show them: from
    /// memory when this process has them, else from SQLite (and then kept in memory).
    pub fn profile(&self, tenant: &str, user_id: &str) -> Result<Option<ProfileCopy>, StoreError> {
        if let Some(hit) = self.memo.profile(tenant, user_id) {
            return Ok(Some(hit));
        }
        let generation = self.memo.generation();
        let Some(user) = self.get_user(tenant, user_id)? else {
            return Ok(None);
        };
        let options = Arc::new(
            self.connection_options(tenant, &user.connection)?
                .unwrap_or_default(),
        );
        let user = Arc::new(user);
        self.memo.keep(generation, user.clone(), options.clone());
        Ok(Some((user, options)))
    }

    /// The profile and options if memory has them: no SQLite, so callable from async code.
    pub fn remembered_profile(&self, tenant: &str, user_id: &str) -> Option<ProfileCopy> {
        self.memo.profile(tenant, user_id)
    }

    /// The user of `connection` with this email (compared without case) or username.
    pub fn find_user(
        &self,
        tenant: &str,
        connection: &str,
        identifier: &str,
    ) -> Result<Option<User>, StoreError> {
        let conn = self.read();
        read_user(
            &conn,
            "tenant = ?1 AND connection = ?2 AND (email_key = lower(?3) OR username = lower(?3))",
            params![tenant, connection, identifier],
        )
    }

    /// Caches what a login (or get_user, with `login == false`) script returned, in one
    /// transaction: creates the user or refreshes the cached profile. Metadata the Management
    /// API wrote is kept; root attributes follow `roots`. A profile whose email belongs to a
    /// different user of the connection is refused, never merged.
    pub fn cache_profile(
        &self,
        tenant: &str,
        connection: &str,
        profile: &Profile,
        roots: RootAttributes,
        login: bool,
        migrated_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        let at = self.now();
        let mut fresh = profile.value.clone();
        let app = take_object(&mut fresh, "app_metadata");
        let user_meta = take_object(&mut fresh, "user_metadata");
        let written = self.write(|tx| {
            let existing = read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, profile.user_id])?;
            if let Some(owner) = email_owner(tx, tenant, connection, profile.email.as_deref())?
                && owner != profile.user_id
            {
                return Err(StoreError::EmailTaken {
                    email: profile.email.clone().unwrap_or_default(),
                    owner,
                });
            }
            let logins = i64::from(login);
            match existing {
                None => {
                    tx.execute(
                        "INSERT INTO users (tenant, connection, user_id, email, email_key, username, profile,
                             app_metadata, user_metadata, created_at, updated_at, cached_at, last_login,
                             logins_count, migrated, password_hash)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?12, ?13, ?14)
                         ON CONFLICT (tenant, user_id) DO NOTHING",
                        params![
                            tenant,
                            connection,
                            profile.user_id,
                            profile.email,
                            email_key(profile.email.as_deref()),
                            profile.username,
                            Value::Object(fresh.clone()).to_string(),
                            Value::Object(app.clone()).to_string(),
                            Value::Object(user_meta.clone()).to_string(),
                            at,
                            login.then_some(&at),
                            logins,
                            migrated_hash.is_some(),
                            migrated_hash,
                        ],
                    )?;
                }
                Some(old) => {
                    let mut merged = fresh.clone();
                    let keep_roots = match roots {
                        RootAttributes::OnEachLogin => false,
                        RootAttributes::OnFirstLogin | RootAttributes::NeverOnLogin => true,
                    };
                    if keep_roots {
                        for attr in ROOT_ATTRIBUTES {
                            match old.profile.get(*attr) {
                                Some(v) => merged.insert((*attr).to_string(), v.clone()),
                                None => merged.remove(*attr),
                            };
                        }
                    }
                    tx.execute(
                        "UPDATE users SET email = ?3, email_key = ?4, username = ?5, profile = ?6,
                             app_metadata = CASE WHEN app_metadata_managed THEN app_metadata ELSE ?7 END,
                             user_metadata = CASE WHEN user_metadata_managed THEN user_metadata ELSE ?8 END,
                             updated_at = ?9, cached_at = ?9,
                             last_login = CASE WHEN ?10 THEN ?9 ELSE last_login END,
                             logins_count = logins_count + ?10,
                             migrated = migrated OR ?11,
                             password_hash = COALESCE(?12, password_hash)
                         WHERE tenant = ?1 AND user_id = ?2",
                        params![
                            tenant,
                            profile.user_id,
                            profile.email,
                            email_key(profile.email.as_deref()),
                            profile.username,
                            Value::Object(merged).to_string(),
                            Value::Object(app.clone()).to_string(),
                            Value::Object(user_meta.clone()).to_string(),
                            at,
                            logins,
                            migrated_hash.is_some(),
                            migrated_hash,
                        ],
                    )?;
                }
            }
            read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, profile.user_id])?
                .ok_or_else(|| StoreError::Corrupt("the user vanished inside its transaction".into()))
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_user(tenant, &profile.user_id);
        written
    }

    /// A local login of a migrated user: counts it.
    pub fn record_local_login(&self, tenant: &str, user_id: &str) -> Result<(), StoreError> {
        let written = self.write(|tx| {
            let at = self.now();
            tx.execute(
                "UPDATE users SET last_login = ?3, logins_count = logins_count + 1, updated_at = ?3 WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id, at],
            )?;
            Ok(())
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_user(tenant, user_id);
        written
    }

    pub fn set_password_hash(
        &self,
        tenant: &str,
        user_id: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let written = self.write(|tx| {
            Ok(tx.execute(
                "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id, hash, self.now()],
            )? > 0)
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_user(tenant, user_id);
        written
    }

    /// Applies a Management API change in one transaction: `fields` are profile attributes
    /// (a null removes one), metadata patches are merged into the row read in this same
    /// transaction (so concurrent patches of different keys all survive) and become managed
    /// (kept across logins), `blocked` is set when given.
    pub fn update_user(
        &self,
        tenant: &str,
        user_id: &str,
        change: &UserChange,
    ) -> Result<Option<User>, StoreError> {
        let written = self.write(|tx| {
            let Some(mut user) = read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, user_id])? else {
                return Ok(None);
            };
            for (k, v) in &change.fields {
                if v.is_null() {
                    user.profile.remove(k);
                } else {
                    user.profile.insert(k.clone(), v.clone());
                }
            }
            let email = user.email().map(str::to_string);
            if let Some(owner) = email_owner(tx, tenant, &user.connection, email.as_deref())?
                && owner != user.user_id
            {
                return Err(StoreError::EmailTaken { email: email.unwrap_or_default(), owner });
            }
            let username = user.profile.get("username").and_then(Value::as_str).map(str::to_string);
            let merged = |current: &Map<String, Value>, patch: &Option<Map<String, Value>>| {
                patch.as_ref().map(|p| Value::Object(crate::profile::merge_metadata(current, p)).to_string())
            };
            tx.execute(
                "UPDATE users SET profile = ?3, email = ?4, email_key = ?5, username = ?6, updated_at = ?7,
                     app_metadata = COALESCE(?8, app_metadata),
                     app_metadata_managed = app_metadata_managed OR ?8 IS NOT NULL,
                     user_metadata = COALESCE(?9, user_metadata),
                     user_metadata_managed = user_metadata_managed OR ?9 IS NOT NULL,
                     blocked = COALESCE(?10, blocked),
                     password_hash = COALESCE(?11, password_hash)
                 WHERE tenant = ?1 AND user_id = ?2",
                params![
                    tenant,
                    user_id,
                    Value::Object(user.profile.clone()).to_string(),
                    email,
                    email_key(email.as_deref()),
                    username,
                    self.now(),
                    merged(&user.app_metadata, &change.app_metadata),
                    merged(&user.user_metadata, &change.user_metadata),
                    change.blocked,
                    change.password_hash,
                ],
            )?;
            read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, user_id])
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_user(tenant, user_id);
        written
    }

    pub fn delete_user(&self, tenant: &str, user_id: &str) -> Result<bool, StoreError> {
        let written = self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM users WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id],
            )? > 0)
        });
        // Once committed: a copy read before this write must not outlive it.
        self.memo.forget_user(tenant, user_id);
        written
    }

    /// Users of the tenant (optionally of one connection) matching `search` in the user id,
    /// email, username or name, ordered by creation; with the total before paging.
    pub fn list_users(
        &self,
        tenant: &str,
        connection: Option<&str>,
        search: Option<&str>,
        page: usize,
        per_page: usize,
    ) -> Result<(Vec<User>, usize), StoreError> {
        let conn = self.read();
        let pattern = search.map(|s| {
            format!(
                "%{}%",
                s.to_lowercase().replace('%', "\\%").replace('_', "\\_")
            )
        });
        let filter = "tenant = ?1 AND (?2 IS NULL OR connection = ?2)
            AND (?3 IS NULL OR lower(user_id) LIKE ?3 ESCAPE '\\' OR email_key LIKE ?3 ESCAPE '\\'
                 OR username LIKE ?3 ESCAPE '\\' OR lower(json_extract(profile, '$.name')) LIKE ?3 ESCAPE '\\')";
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM users WHERE {filter}"),
            params![tenant, connection, pattern],
            |r| r.get(0),
        )?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY created_at, user_id LIMIT ?4 OFFSET ?5"
        ))?;
        let users = stmt
            .query_map(
                params![
                    tenant,
                    connection,
                    pattern,
                    per_page as i64,
                    (page * per_page) as i64
                ],
                user_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((users, total as usize))
    }

    pub fn log(
        &self,
        tenant: &str,
        kind: LogType,
        connection: Option<&str>,
        user_id: Option<&str>,
        description: Option<&str>,
    ) -> Result<LogEvent, StoreError> {
        let date = self.now();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO log_events (tenant, date, type, connection, user_id, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![tenant, date, kind.code(), connection, user_id, description],
            )?;
            Ok(LogEvent {
                id: tx.last_insert_rowid(),
                date: date.clone(),
                kind,
                connection: connection.map(str::to_string),
                user_id: user_id.map(str::to_string),
                description: description.map(str::to_string),
            })
        })
    }

    /// One log event of the tenant.
    pub fn log_event(&self, tenant: &str, id: i64) -> Result<Option<LogEvent>, StoreError> {
        query_one(
            &self.read(),
            "SELECT id, date, type, connection, user_id, description FROM log_events WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
            log_from_row,
        )
    }

    /// The tenant's log events, newest first.
    pub fn events(&self, tenant: &str, limit: usize) -> Result<Vec<LogEvent>, StoreError> {
        Ok(self
            .log_window(
                tenant,
                LogWindow::Page {
                    page: 0,
                    per_page: limit,
                },
            )?
            .0)
    }

    /// A window of the tenant's log events and the tenant's total: a page, newest first, or
    /// the events after a checkpoint id, oldest first (Auth0's `from`/`take`).
    pub fn log_window(
        &self,
        tenant: &str,
        window: LogWindow,
    ) -> Result<(Vec<LogEvent>, usize), StoreError> {
        let conn = self.read();
        let total: i64 = conn.query_row(
            "SELECT count(*) FROM log_events WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        let columns = "id, date, type, connection, user_id, description";
        let (sql, a, b) = match window {
            LogWindow::Page { page, per_page } => (
                format!(
                    "SELECT {columns} FROM log_events WHERE tenant = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
                ),
                per_page as i64,
                (page * per_page) as i64,
            ),
            LogWindow::After { id, take } => (
                format!(
                    "SELECT {columns} FROM log_events WHERE tenant = ?1 AND id > ?3 ORDER BY id LIMIT ?2"
                ),
                take as i64,
                id,
            ),
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let events = stmt
            .query_map(params![tenant, a, b], log_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((events, total as usize))
    }

    /// Records one script run (console lines already redacted by the worker).
    pub fn record_run(
        &self,
        tenant: &str,
        connection: &str,
        action: Action,
        execution: &crate::outcome::Execution,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO script_runs (tenant, connection, action, outcome, console, timings, date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    tenant,
                    connection,
                    action.key(),
                    execution.outcome.as_str(),
                    serde_json::to_string(&execution.console).unwrap_or_default(),
                    serde_json::to_string(&execution.timings).unwrap_or_default(),
                    self.now()
                ],
            )?;
            Ok(())
        })
    }
}

pub use crate::domain::client::Client;

impl Store {
    /// Makes `tenant` answer for `domain` (a Host header value, port included when not 80/443).
    pub fn add_domain(&self, tenant: &str, domain: &str, default: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![tenant, self.now()])?;
            tx.execute(
                "INSERT INTO tenant_domains (domain, tenant) VALUES (lower(?1), ?2) ON CONFLICT (domain) DO UPDATE SET tenant = ?2",
                params![domain, tenant],
            )?;
            if default {
                tx.execute("UPDATE tenants SET is_default = (id = ?1)", params![tenant])?;
            }
            Ok(())
        })
    }

    /// The tenant a request's Host belongs to, and whether the host is one of its domains
    /// (`false`: the default tenant answers for an unknown host).
    pub fn tenant_for_host(&self, host: &str) -> Result<Option<(String, bool)>, StoreError> {
        let conn = self.read();
        let by_host: Option<String> = query_one(
            &conn,
            "SELECT tenant FROM tenant_domains WHERE domain = lower(?1)",
            params![host],
            |r| r.get(0),
        )?;
        if let Some(t) = by_host {
            return Ok(Some((t, true)));
        }
        Ok(query_one(
            &conn,
            "SELECT id FROM tenants WHERE is_default = 1",
            [],
            |r| r.get(0),
        )?
        .map(|t| (t, false)))
    }

    pub fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        self.write(|tx| {
            tx.execute("INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![client.tenant, self.now()])?;
            tx.execute(
                "INSERT INTO clients (client_id, tenant, name, secret_hash, scopes, created_at, app_type, token_endpoint_auth_method, grant_types)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (client_id) DO UPDATE SET name = ?3, secret_hash = ?4, scopes = ?5, app_type = ?7,
                    token_endpoint_auth_method = ?8, grant_types = ?9",
                params![
                    client.client_id, client.tenant, client.name,
                    client.secret_digest.as_deref().unwrap_or_default(),
                    client.scopes.join(" "), self.now(), client.app_type.as_str(),
                    client.auth_method.as_str(), grants.join(" ")
                ],
            )?;
            Ok(())
        })
    }

    pub fn get_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        use crate::domain::client::{AppType, AuthMethod, Grant};
        query_one(
            &self.read(),
            "SELECT client_id, tenant, name, secret_hash, scopes, app_type, token_endpoint_auth_method, grant_types
             FROM clients WHERE client_id = ?1",
            params![client_id],
            |r| {
                let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
                let corrupt = |i: usize, what: String| {
                    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
                };
                let (app_type, method) = (text(5)?, text(6)?);
                let auth_method = AuthMethod::parse(&method)
                    .ok_or_else(|| corrupt(6, format!("unknown token_endpoint_auth_method {method}")))?;
                let secret: String = text(3)?;
                Ok(Client {
                    client_id: text(0)?,
                    tenant: text(1)?,
                    name: text(2)?,
                    app_type: AppType::parse(&app_type)
                        .ok_or_else(|| corrupt(5, format!("unknown app_type {app_type}")))?,
                    auth_method,
                    grant_types: text(7)?.split_whitespace().filter_map(Grant::parse).collect(),
                    // A public client has no secret, whatever the column holds.
                    secret_digest: (auth_method != AuthMethod::None && !secret.is_empty())
                        .then_some(secret),
                    scopes: text(4)?.split_whitespace().map(str::to_string).collect(),
                })
            },
        )
    }

    /// The token signing key (kid, PKCS#8 PEM), made by `generate` on first use and kept
    /// sealed.
    pub fn signing_key(
        &self,
        generate: impl FnOnce() -> (String, String),
    ) -> Result<(String, String), StoreError> {
        let existing: Option<(String, Vec<u8>)> = {
            let conn = self.read();
            conn.query_row(
                "SELECT kid, private_key FROM signing_keys ORDER BY created_at LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
        };
        if let Some((kid, sealed)) = existing {
            let pem = String::from_utf8(self.sealer.open(&sealed, &kid)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            return Ok((kid, pem));
        }
        let (kid, pem) = generate();
        let sealed = self.sealer.seal(pem.as_bytes(), &kid);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?1, ?2, ?3)",
                params![kid, sealed, self.now()],
            )?;
            Ok(())
        })?;
        Ok((kid, pem))
    }
}

/// A Management API change to one user (see `Store::update_user`).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub fields: Map<String, Value>,
    /// Patches merged as Auth0 merges metadata (`profile::merge_metadata`), inside the write.
    pub app_metadata: Option<Map<String, Value>>,
    pub user_metadata: Option<Map<String, Value>>,
    pub blocked: Option<bool>,
    pub password_hash: Option<String>,
}

fn log_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogEvent> {
    Ok(LogEvent {
        id: r.get(0)?,
        date: r.get(1)?,
        kind: r.get::<_, String>(2)?.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        connection: r.get(3)?,
        user_id: r.get(4)?,
        description: r.get(5)?,
    })
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

const USER_COLUMNS: &str =
    "tenant, connection, user_id, profile, app_metadata, user_metadata, blocked,
    created_at, updated_at, cached_at, last_login, logins_count, migrated, password_hash";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let object = |i: usize| -> rusqlite::Result<Map<String, Value>> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(User {
        tenant: r.get(0)?,
        connection: r.get(1)?,
        user_id: r.get(2)?,
        profile: object(3)?,
        app_metadata: object(4)?,
        user_metadata: object(5)?,
        blocked: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        cached_at: r.get(9)?,
        last_login: r.get(10)?,
        logins_count: r.get(11)?,
        migrated: r.get(12)?,
        password_hash: r.get(13)?,
    })
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

fn read_user(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Option<User>, StoreError> {
    query_one(
        conn,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE {filter}"),
        params,
        user_from_row,
    )
}

fn email_owner(
    conn: &Connection,
    tenant: &str,
    connection: &str,
    email: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(key) = email_key(email) else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT user_id FROM users WHERE tenant = ?1 AND connection = ?2 AND email_key = ?3",
            params![tenant, connection, key],
            |r| r.get(0),
        )
        .optional()?)
}

fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.remove(key) {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    }
}
