//! Users: cached and migrated profiles, metadata, the migrated flag and password hash, and
//! every write of a user (each drops the in-memory copy once committed).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::logs::Entry;
use super::{LogEvent, Pending, ProfileCopy, Store, StoreError, execute, query_one};
use crate::domain::events::{Caller, LogType};
use crate::domain::profile::Profile;

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

impl UserChange {
    /// Sets the email and whether it is verified.
    pub fn set_email(&mut self, email: String, verified: bool) {
        self.fields.insert("email".into(), Value::String(email));
        self.fields
            .insert("email_verified".into(), Value::Bool(verified));
    }
}

impl User {
    pub fn email(&self) -> Option<&str> {
        self.profile.get("email").and_then(Value::as_str)
    }
}

pub use crate::domain::options::RootAttributes;

/// Attributes `set_user_root_attributes` governs.
pub const ROOT_ATTRIBUTES: &[&str] = &["name", "nickname", "given_name", "family_name", "picture"];

/// Why a profile is cached (`Store::cache_profile`).
#[derive(Debug, Clone)]
pub enum Cached {
    /// A login by this caller: counted, refused for a blocked user, logged as a success.
    Login(Caller),
    /// What get_user or a signup returned: refreshed, not counted.
    Refresh,
}

/// The email as the uniqueness index compares it.
fn email_key(email: Option<&str>) -> Option<String> {
    email.map(str::to_lowercase)
}

impl Store {
    /// The one way a user is written: `f` in one transaction, then the in-memory copy of the
    /// user is dropped (once committed, a copy read before this write must not outlive it).
    fn write_user<T>(
        &self,
        tenant: &str,
        user_id: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let written = self.write(f);
        self.memo.forget_user(tenant, user_id);
        written
    }

    /// `write_user` through the group commit (`Store::append`), for a closure that owns what
    /// it needs.
    fn append_user<T: Send + 'static>(
        &self,
        tenant: &str,
        user_id: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Pending<T> {
        let (memo, tenant, user_id) = (self.memo.clone(), tenant.to_owned(), user_id.to_owned());
        self.append(
            f,
            Some(Box::new(move || memo.forget_user(&tenant, &user_id))),
        )
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

    /// Caches what a login, get_user or signup returned, in one transaction: creates the user
    /// or refreshes the cached profile. Metadata the Management API wrote is kept; root
    /// attributes follow `roots`. A profile whose email belongs to a different user of the
    /// connection is refused, never merged. A login of a blocked user writes nothing; any
    /// other login is counted and its success log event written in the same commit (one
    /// durable wait per login), and returned. Shares its commit with concurrent appends
    /// (`Store::append`).
    pub fn cache_profile(
        &self,
        tenant: &str,
        connection: &str,
        profile: Profile,
        roots: RootAttributes,
        cached: Cached,
        migrated_hash: Option<String>,
    ) -> Pending<(User, Option<LogEvent>)> {
        let at = self.now();
        let login = matches!(cached, Cached::Login(_));
        let mut fresh = profile.value.clone();
        let app = take_object(&mut fresh, "app_metadata");
        let user_meta = take_object(&mut fresh, "user_metadata");
        let user_id = profile.user_id.clone();
        let (t, connection) = (tenant.to_owned(), connection.to_owned());
        self.append_user(tenant, &user_id, move |tx| {
            let tenant = t;
            let migrated_hash = migrated_hash.as_deref();
            let existing = read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, profile.user_id])?;
            if login && let Some(user) = &existing && user.blocked {
                return Err(StoreError::Blocked(user.user_id.clone()));
            }
            if let Some(owner) = email_owner(tx, &tenant, &connection, profile.email.as_deref())?
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
                    execute(
                        tx,
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
                    execute(
                        tx,
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
            let user = read_user(tx, "tenant = ?1 AND user_id = ?2", params![tenant, profile.user_id])?
                .ok_or_else(|| StoreError::Corrupt("the user vanished inside its transaction".into()))?;
            let event = match cached {
                Cached::Refresh => None,
                Cached::Login(caller) => Some(
                    Entry {
                        date: at,
                        kind: LogType::SuccessLogin,
                        connection: Some(connection),
                        user_id: Some(user.user_id.clone()),
                        description: Some(LogType::SuccessLogin.description().to_owned()),
                        caller,
                        tenant,
                    }
                    .insert(tx)?,
                ),
            };
            Ok((user, event))
        })
    }

    /// A local login of a migrated user: counts it.
    pub fn record_local_login(&self, tenant: &str, user_id: &str) -> Result<(), StoreError> {
        self.write_user(tenant, user_id, |tx| {
            let at = self.now();
            tx.execute(
                "UPDATE users SET last_login = ?3, logins_count = logins_count + 1, updated_at = ?3 WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id, at],
            )?;
            Ok(())
        })
    }

    pub fn set_password_hash(
        &self,
        tenant: &str,
        user_id: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        self.write_user(tenant, user_id, |tx| {
            Ok(tx.execute(
                "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id, hash, self.now()],
            )? > 0)
        })
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
        self.write_user(tenant, user_id, |tx| {
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
                patch.as_ref().map(|p| Value::Object(crate::domain::profile::merge_metadata(current, p)).to_string())
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
        })
    }

    pub fn delete_user(&self, tenant: &str, user_id: &str) -> Result<bool, StoreError> {
        self.write_user(tenant, user_id, |tx| {
            Ok(tx.execute(
                "DELETE FROM users WHERE tenant = ?1 AND user_id = ?2",
                params![tenant, user_id],
            )? > 0)
        })
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
