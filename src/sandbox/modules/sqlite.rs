//! `sqlite3` (node-sqlite3) on rusqlite: open, exec, run, all and close as natives the glue in
//! `js/sqlite3.js` shapes into the npm API. Files only inside the run's allowed data folders;
//! `ATTACH` and `VACUUM INTO` are disabled so SQL cannot reach any other file.

use boa_engine::{Context, JsResult, JsValue};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags, limits::Limit};
use serde_json::{Map, Value, json};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Failure, Native, arg_string, defer, json, resource, with_resource};
use crate::sandbox::run_state;
use crate::script::Policy;

pub const NATIVES: &[Native] = &[
    ("open", 2, open),
    ("exec", 2, exec),
    ("run", 3, run),
    ("all", 3, all),
    ("close", 1, close),
];

/// How blobs cross the boundary in JSON; the glue turns them into Buffers and back.
const BLOB_KEY: &str = "__customdb_blob";

type Db = Arc<Mutex<Connection>>;

const CLOSED: &str = "SQLITE_MISUSE: Database is closed";

/// node-sqlite3's mode bits.
const OPEN_READONLY: i32 = 1;
const OPEN_CREATE: i32 = 4;

fn open(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let path = arg_string(args, 0, ctx)?;
    let mode = args.get(1).map(|m| m.to_i32(ctx)).transpose()?.unwrap_or(6);
    let state = run_state::state(ctx);
    let target = resolve(&path, &state.policy);
    let (quota, folder) = (
        state.limits.data_folder_bytes,
        state.policy.data_dirs.first().cloned(),
    );
    defer(
        ctx,
        move || {
            // SQLite refuses a database file that is a symbolic link (checked again here: the
            // policy already refused one, but the file system may change in between).
            let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
            flags |= if mode & OPEN_READONLY != 0 {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } else {
                OpenFlags::SQLITE_OPEN_READ_WRITE
            };
            if mode & OPEN_CREATE != 0 && mode & OPEN_READONLY == 0 {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            let target = target?;
            let conn = match &target {
                None => Connection::open_in_memory_with_flags(flags),
                Some(file) => Connection::open_with_flags(file, flags),
            }
            .map_err(failure)?;
            // Sorts and temporary tables stay in memory, which the worker's limit bounds.
            conn.pragma_update(None, "temp_store", "MEMORY")
                .map_err(failure)?;
            if let (Some(file), Some(folder)) = (&target, &folder) {
                within_quota(&conn, file, folder, quota).map_err(failure)?;
            }
            // No second database can be attached, which also stops `VACUUM INTO 'file'`.
            conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
                .map_err(failure)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(failure)?;
            Ok::<_, Failure>(Arc::new(Mutex::new(conn)))
        },
        |db: Db, _| Ok(resource(db)),
    )
}

/// Lets the database grow only to what is left of the folder's quota besides it, so a script
/// cannot fill the disk the product store and the other tenants share: beyond it, writes fail
/// with `SQLITE_FULL`.
fn within_quota(
    conn: &Connection,
    file: &Path,
    folder: &Path,
    quota: u64,
) -> Result<(), rusqlite::Error> {
    let size = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        std::fs::symlink_metadata(name).map_or(0, |m| m.len())
    };
    let own = size("") + size("-wal") + size("-journal");
    let others = folder_bytes(folder).saturating_sub(own);
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let left = quota.saturating_sub(others);
    let pages = (left / page_size.max(512) as u64).max(1);
    conn.pragma_update(
        None,
        "max_page_count",
        i64::try_from(pages).unwrap_or(i64::MAX),
    )
}

/// Bytes of the files under `folder` (symbolic links not followed, at most a few levels and
/// entries deep: a folder the script fills with files counts what it holds near the top).
fn folder_bytes(folder: &Path) -> u64 {
    let mut total = 0;
    let mut entries = 0;
    let mut stack = vec![(folder.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            entries += 1;
            if entries > 10_000 {
                return total;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && depth < 4 {
                stack.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// Where `path` may be opened under `policy`: `None` for an in-memory database, the file
/// otherwise. Relative paths name files in the first data folder; `..` is refused outright,
/// folders are resolved before the containment check, and a symbolic link at the file (or at
/// its journal, WAL or shared-memory file) is refused: even a dangling one would let SQLite
/// create the file it points to, wherever that is.
pub fn resolve(path: &str, policy: &Policy) -> Result<Option<PathBuf>, Failure> {
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    let refuse = |why: &str| {
        Failure::new(format!(
            "SQLITE_CANTOPEN: unable to open database file '{path}': {why}"
        ))
        .with("code", "SQLITE_CANTOPEN")
        .with("errno", 14)
    };
    if path.starts_with("file:") {
        return Err(refuse("URI file names are not supported"));
    }
    let given = Path::new(path);
    if given.components().any(|c| c == Component::ParentDir) {
        return Err(refuse("'..' is not allowed in database paths"));
    }
    let Some(first) = policy.data_dirs.first() else {
        return Err(refuse(
            "no data folder is allowed for this connection (only ':memory:')",
        ));
    };
    let full = if given.is_absolute() {
        given.to_path_buf()
    } else {
        first.join(given)
    };
    let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
        return Err(refuse("not a file path"));
    };
    let parent = parent
        .canonicalize()
        .map_err(|_| refuse("its folder does not exist"))?;
    let file = parent.join(name);
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut sidecar = file.clone().into_os_string();
        sidecar.push(suffix);
        if std::fs::symlink_metadata(&sidecar).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refuse("symbolic links are not allowed in data folders"));
        }
    }
    let inside = policy.data_dirs.iter().any(|dir| {
        dir.canonicalize()
            .is_ok_and(|dir| file.starts_with(&dir) && file != dir)
    });
    if inside {
        Ok(Some(file))
    } else {
        Err(refuse("outside the connection's data folders"))
    }
}

fn db(args: &[JsValue]) -> JsResult<Db> {
    with_resource(args, 0, CLOSED, |db: &mut Option<Db>| {
        db.clone().expect("checked open")
    })
}

fn exec(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let db = db(args)?;
    let sql = arg_string(args, 1, ctx)?;
    defer(
        ctx,
        move || {
            lock(&db)?.execute_batch(&sql).map_err(failure)?;
            Ok::<_, Failure>(Value::Null)
        },
        json,
    )
}

fn run(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    with_statement(args, ctx, |conn, mut stmt| {
        let changes = stmt.raw_execute().map_err(failure)?;
        Ok(json!({
            "lastID": conn.last_insert_rowid(),
            "changes": changes,
        }))
    })
}

fn all(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    with_statement(args, ctx, |_, mut stmt| {
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(failure)? {
            let mut obj = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value: Sql = row.get(i).map_err(failure)?;
                obj.insert(name.clone(), to_json(value));
            }
            out.push(Value::Object(obj));
        }
        Ok(Value::Array(out))
    })
}

/// Prepares the SQL of argument 1 with the parameters of argument 2 on the blocking pool
/// (SQLite blocks) and hands the bound statement to `step`.
fn with_statement(
    args: &[JsValue],
    ctx: &mut Context,
    step: fn(&Connection, rusqlite::Statement<'_>) -> Result<Value, Failure>,
) -> JsResult<JsValue> {
    let db = db(args)?;
    let sql = arg_string(args, 1, ctx)?;
    let params = args.get(2).cloned().unwrap_or_default().to_json(ctx)?;
    defer(
        ctx,
        move || {
            let conn = lock(&db)?;
            let mut stmt = conn.prepare(&sql).map_err(failure)?;
            bind(&mut stmt, params)?;
            step(&conn, stmt)
        },
        json,
    )
}

fn close(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let db = with_resource(args, 0, CLOSED, |db: &mut Option<Db>| {
        db.take().expect("checked open")
    })?;
    defer(
        ctx,
        move || {
            drop(db);
            Ok::<_, Failure>(Value::Null)
        },
        json,
    )
}

fn lock(db: &Db) -> Result<std::sync::MutexGuard<'_, Connection>, Failure> {
    db.lock()
        .map_err(|_| Failure::new("SQLITE_MISUSE: a previous operation panicked"))
}

/// Binds node-sqlite3 parameters: an array binds `?` in order, an object binds names with
/// their prefix (`$id`, `:id`, `@id`).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: Option<Value>) -> Result<(), Failure> {
    let range = || {
        Failure::new("SQLITE_RANGE: column index out of range")
            .with("code", "SQLITE_RANGE")
            .with("errno", 25)
    };
    match params {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(values)) => {
            if values.len() > stmt.parameter_count() {
                return Err(range());
            }
            for (i, v) in values.into_iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, to_sql(v)).map_err(failure)?;
            }
            Ok(())
        }
        Some(Value::Object(named)) => {
            for (name, v) in named {
                let index = stmt
                    .parameter_index(&name)
                    .map_err(failure)?
                    .ok_or_else(range)?;
                stmt.raw_bind_parameter(index, to_sql(v)).map_err(failure)?;
            }
            Ok(())
        }
        Some(other) => stmt.raw_bind_parameter(1, to_sql(other)).map_err(failure),
    }
}

fn to_sql(v: Value) -> Sql {
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(b.into()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Sql::Text(s),
        Value::Object(ref o) => match o.get(BLOB_KEY).and_then(Value::as_str) {
            Some(h) => Sql::Blob(hex::decode(h).unwrap_or_default()),
            None => Sql::Text(v.to_string()),
        },
        Value::Array(_) => Sql::Text(v.to_string()),
    }
}

fn to_json(v: Sql) -> Value {
    match v {
        Sql::Null => Value::Null,
        Sql::Integer(i) => json!(i),
        Sql::Real(f) => json!(f),
        Sql::Text(s) => Value::String(s),
        Sql::Blob(b) => json!({ BLOB_KEY: hex::encode(b) }),
    }
}

/// node-sqlite3's error shape: `SQLITE_CONSTRAINT: UNIQUE constraint failed: users.email`
/// with `code` and `errno` (the primary result code).
fn failure(e: rusqlite::Error) -> Failure {
    let (errno, detail) = match &e {
        rusqlite::Error::SqliteFailure(err, msg) => (
            err.extended_code & 0xff,
            msg.clone().unwrap_or_else(|| err.to_string()),
        ),
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            (error.extended_code & 0xff, msg.clone())
        }
        other => (1, other.to_string()),
    };
    let code = format!("SQLITE_{}", code_name(errno));
    // SQLITE_FULL: the folder's quota (or the disk) is full; say which setting moves it.
    let hint = if errno == 13 {
        " (a connection's data folder holds at most its quota; the operator sets it with serve --data-folder-quota-mb)"
    } else {
        ""
    };
    Failure::new(format!("{code}: {detail}{hint}"))
        .with("code", code)
        .with("errno", errno)
}

fn code_name(errno: i32) -> &'static str {
    const NAMES: [&str; 27] = [
        "OK",
        "ERROR",
        "INTERNAL",
        "PERM",
        "ABORT",
        "BUSY",
        "LOCKED",
        "NOMEM",
        "READONLY",
        "INTERRUPT",
        "IOERR",
        "CORRUPT",
        "NOTFOUND",
        "FULL",
        "CANTOPEN",
        "PROTOCOL",
        "EMPTY",
        "SCHEMA",
        "TOOBIG",
        "CONSTRAINT",
        "MISMATCH",
        "MISUSE",
        "NOLFS",
        "AUTH",
        "FORMAT",
        "RANGE",
        "NOTADB",
    ];
    usize::try_from(errno)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("ERROR")
}
