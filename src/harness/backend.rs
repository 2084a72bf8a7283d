//! Throwaway databases for test cases: every case gets a fresh database on the server its
//! connection's configuration names (PostgreSQL, MySQL/MariaDB) or a fresh SQLite file, the
//! case's fixtures run in it, and it is dropped afterwards. Cases therefore run in parallel
//! and in any order, and a tenant's real data is never touched.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

/// Why a case's database could not be made, reached, filled or read. URLs in it never carry
/// their password.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot create a test database on {url}: {reason}")]
    Create { url: String, reason: String },
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error(
        "the SQLite database '{0}' must be a plain file name: the harness gives each case its own data folder"
    )]
    SqlitePath(String),
    /// The database refused the SQL (its own message).
    #[error("{0}")]
    Sql(String),
}

fn sql(e: impl std::fmt::Display) -> BackendError {
    BackendError::Sql(e.to_string())
}

/// Where a case's database lives, for fixtures and for dropping it.
pub enum Database {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, name: String },
    Mysql { admin: String, name: String },
}

/// Creates the case's database from the configuration value `value` (a `postgres://` or
/// `mysql://` URL, or an SQLite file name inside `data_dir`). Returns the value the script
/// must see instead, pointing at the fresh database.
pub async fn create(value: &str, data_dir: &Path) -> Result<(String, Database), BackendError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "customdb_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        let admin = pg_connect(value).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| BackendError::Create {
                url: redact(value),
                reason: e.to_string(),
            })?;
        let url = with_database(value, &name)?;
        Ok((
            url,
            Database::Postgres {
                admin: value.to_string(),
                name,
            },
        ))
    } else if value.starts_with("mysql://") {
        let mut admin = mysql_connect(value).await?;
        admin
            .query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .map_err(|e| BackendError::Create {
                url: redact(value),
                reason: e.to_string(),
            })?;
        let _ = admin.disconnect().await;
        let url = with_database(value, &name)?;
        Ok((
            url,
            Database::Mysql {
                admin: value.to_string(),
                name,
            },
        ))
    } else {
        let file = Path::new(value);
        if file.is_absolute() || file.components().count() != 1 {
            return Err(BackendError::SqlitePath(value.to_string()));
        }
        Ok((value.to_string(), Database::Sqlite(data_dir.join(file))))
    }
}

impl Database {
    /// The configuration value the script sees, to run fixtures against.
    pub async fn run_sql(&self, url: &str, sql: &str) -> Result<(), BackendError> {
        match self {
            Database::Sqlite(path) => {
                let (path, sql) = (path.clone(), sql.to_string());
                // rusqlite blocks: run it on the blocking pool, not on the async threads.
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(&path).map_err(self::sql)?;
                    conn.execute_batch(&sql).map_err(self::sql)
                })
                .await
                .map_err(self::sql)?
            }
            Database::Postgres { .. } => {
                pg_connect(url)
                    .await?
                    .batch_execute(sql)
                    .await
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => self::sql(db.message()),
                        None => self::sql(e),
                    })
            }
            Database::Mysql { .. } => {
                let mut conn = mysql_connect(url).await?;
                let result = conn.query_drop(sql).await.map_err(self::sql);
                let _ = conn.disconnect().await;
                result
            }
        }
    }

    /// Runs a query after the script and returns its rows with every value as text (or
    /// null), the same for every backend, so cases can check what a script wrote.
    pub async fn query_text(&self, url: &str, sql: &str) -> Result<Vec<Value>, BackendError> {
        match self {
            Database::Sqlite(path) => {
                let (path, sql) = (path.clone(), sql.to_string());
                // rusqlite blocks: run it on the blocking pool, not on the async threads.
                tokio::task::spawn_blocking(move || sqlite_rows(&path, &sql))
                    .await
                    .map_err(self::sql)?
            }
            Database::Postgres { .. } => {
                let client = pg_connect(url).await?;
                let messages = client.simple_query(sql).await.map_err(self::sql)?;
                Ok(messages
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            row.columns()
                                .iter()
                                .enumerate()
                                .map(|(i, c)| (c.name().to_string(), json!(row.get(i))))
                                .collect::<serde_json::Map<_, _>>()
                                .into(),
                        ),
                        _ => None,
                    })
                    .collect())
            }
            Database::Mysql { .. } => {
                let mut conn = mysql_connect(url).await?;
                let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(self::sql)?;
                let _ = conn.disconnect().await;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let names: Vec<String> = row
                            .columns_ref()
                            .iter()
                            .map(|c| c.name_str().into_owned())
                            .collect();
                        names
                            .into_iter()
                            .zip(row.unwrap())
                            .map(|(n, v)| {
                                let text = match v {
                                    mysql_async::Value::NULL => Value::Null,
                                    mysql_async::Value::Bytes(b) => {
                                        json!(String::from_utf8_lossy(&b))
                                    }
                                    other => {
                                        json!(other.as_sql(true).trim_matches('\'').to_string())
                                    }
                                };
                                (n, text)
                            })
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect())
            }
        }
    }

    /// Drops the database (the SQLite file goes with the case's data folder).
    pub async fn drop(self) {
        match self {
            Database::Sqlite(_) => {}
            Database::Postgres { admin, name } => {
                if let Ok(c) = pg_connect(&admin).await {
                    // FORCE: pooled connections of the worker may still be open on it.
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            }
            Database::Mysql { admin, name } => {
                if let Ok(mut c) = mysql_connect(&admin).await {
                    let _ = c
                        .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .await;
                    let _ = c.disconnect().await;
                }
            }
        }
    }
}

fn sqlite_rows(path: &Path, query: &str) -> Result<Vec<Value>, BackendError> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open(path).map_err(sql)?;
    let mut stmt = conn.prepare(query).map_err(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql)? {
        let mut obj = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let text = match row.get_ref(i).map_err(sql)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n.to_string()),
                ValueRef::Real(f) => json!(f.to_string()),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => json!(hex::encode(b)),
            };
            obj.insert(name.clone(), text);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, BackendError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| BackendError::Connect {
            url: redact(url),
            reason: e.to_string(),
        })?;
    tokio::spawn(connection);
    Ok(client)
}

async fn mysql_connect(url: &str) -> Result<mysql_async::Conn, BackendError> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| BackendError::Url(e.to_string()))?;
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| BackendError::Connect {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// `host:port` of a database URL (None for SQLite files), for the case's allow-list.
pub fn address(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    let default = match url.scheme() {
        "mysql" => 3306,
        _ => 5432,
    };
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port().unwrap_or(default)
    ))
}

/// The URL with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String, BackendError> {
    let mut parsed = url::Url::parse(url).map_err(|e| BackendError::Url(e.to_string()))?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// A URL as it may appear in messages: without its password.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
