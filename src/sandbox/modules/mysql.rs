//! `mysql` (mysqljs) on mysql_async: connect, query and release as natives the glue in
//! `js/mysql.js` shapes into `createConnection`/`createPool`. The glue formats `?`, `??` and
//! `SET ?` with mysqljs's escaping and sends finished SQL text, as mysqljs does; rows come back
//! as text with their column types, and the glue applies mysqljs's type casts.

use boa_engine::{Context, JsResult, JsValue};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::egress::{AllowList, denied};
use super::{Failure, Native, arg_string, json, resource, spawn_io, with_resource};
use crate::sandbox::run_state;

pub const NATIVES: &[Native] = &[
    ("connect", 1, connect),
    ("query", 2, query),
    ("release", 2, release),
];

const CLOSED: &str = "Cannot enqueue Query after invoking quit.";

/// One pool per worker and per settings (password included in the key). `createConnection`
/// borrows from it too and `end()` returns the connection: a script that connects on every run
/// pays the handshake once per worker, not once per run.
static POOLS: Mutex<Option<HashMap<String, Pool>>> = Mutex::new(None);

type Held = Arc<tokio::sync::Mutex<Option<Conn>>>;

fn connect(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let settings = args.first().cloned().unwrap_or_default().to_json(ctx)?;
    let allow = AllowList::of(&run_state::state(ctx).policy);
    spawn_io(
        ctx,
        async move {
            let (opts, address) = opts(settings.as_ref())?;
            let opts = permit(opts, &allow).await?;
            let pool = pool(&settings.unwrap_or_default(), opts)?;
            let conn = pool.get_conn().await.map_err(|e| failure(e, &address))?;
            Ok(Arc::new(tokio::sync::Mutex::new(Some(conn))))
        },
        |held: Held, _| Ok(resource(held)),
    )
}

/// Applies the egress allow-list: the host must be listed, and the connection goes to an
/// address the list permits (so the driver cannot resolve the name again to somewhere else).
/// Unix sockets are files, which scripts never reach.
async fn permit(opts: Opts, allow: &AllowList) -> Result<Opts, Failure> {
    if opts.socket().is_some() {
        return Err(Failure::new(
            "mysql: Unix socket connections are not allowed; connect over TCP",
        )
        .with("code", "EGRESS_DENIED"));
    }
    let (host, port) = (opts.ip_or_hostname().to_string(), opts.tcp_port());
    allow.check_host(&host, Some(port)).map_err(denied)?;
    let addrs = allow.resolve(&host, port).await.map_err(denied)?;
    Ok(OptsBuilder::from_opts(opts)
        .ip_or_hostname(addrs[0].ip().to_string())
        .into())
}

fn pool(settings: &Value, opts: Opts) -> Result<Pool, Failure> {
    use sha2::Digest;
    let key = hex::encode(sha2::Sha256::digest(settings.to_string()));
    let mut pools = POOLS
        .lock()
        .map_err(|_| Failure::new("mysql: pool registry poisoned"))?;
    Ok(pools
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Pool::new(opts))
        .clone())
}

/// mysqljs settings: a URL, or an object with `host`, `port`, `user`, `password`,
/// `database`, `connectTimeout`. Returns the options and `host:port` for error messages.
fn opts(settings: Option<&Value>) -> Result<(Opts, String), Failure> {
    let text = |k: &str| -> Option<String> {
        match settings?.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let url = match settings {
        Some(Value::String(s)) => Some(s.clone()),
        _ => text("url"),
    };
    let mut builder = match url {
        Some(url) => OptsBuilder::from_opts(
            Opts::from_url(&url).map_err(|e| Failure::new(format!("mysql: invalid URL: {e}")))?,
        ),
        None => OptsBuilder::default(),
    };
    if let Some(host) = text("host") {
        builder = builder.ip_or_hostname(host);
    }
    if let Some(port) = text("port") {
        let port = port
            .parse()
            .map_err(|_| Failure::new(format!("mysql: invalid port '{port}'")))?;
        builder = builder.tcp_port(port);
    }
    if let Some(user) = text("user") {
        builder = builder.user(Some(user));
    }
    if let Some(password) = text("password") {
        builder = builder.pass(Some(password));
    }
    if let Some(db) = text("database") {
        builder = builder.db_name(Some(db));
    }
    let constraints = PoolConstraints::new(0, 20).expect("0 <= 20");
    let pool = PoolOpts::default()
        .with_constraints(constraints)
        .with_inactive_connection_ttl(Duration::from_secs(60));
    // Connect over TCP as configured, never through a local socket the script did not name.
    // mysqljs sets CLIENT_FOUND_ROWS: `affectedRows` counts matched rows, `changedRows` the
    // ones whose values changed — the difference Auth0's MySQL templates get wrong.
    let opts: Opts = builder
        .pool_opts(pool)
        .prefer_socket(false)
        .client_found_rows(true)
        .into();
    let address = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    Ok((opts, address))
}

fn held(args: &[JsValue]) -> JsResult<Held> {
    with_resource(args, 0, CLOSED, |h: &mut Option<Held>| {
        h.clone().expect("checked open")
    })
}

fn query(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let held = held(args)?;
    let sql = arg_string(args, 1, ctx)?;
    spawn_io(
        ctx,
        async move {
            let mut guard = held.lock().await;
            let conn = guard.as_mut().ok_or_else(|| Failure::new(CLOSED))?;
            let mut result = conn
                .query_iter(sql.as_str())
                .await
                .map_err(|e| failure(e, ""))?;
            let mut sets = Vec::new();
            loop {
                let columns = result.columns();
                let Some(columns) = columns.filter(|c| !c.is_empty()) else {
                    // A statement without a result set answers with an OkPacket.
                    let info = result.info().into_owned();
                    sets.push(json!({
                        "ok": {
                            "fieldCount": 0,
                            "affectedRows": result.affected_rows(),
                            "insertId": result.last_insert_id().unwrap_or(0),
                            "warningCount": result.warnings(),
                            "message": info,
                            "changedRows": changed_rows(&info),
                            "protocol41": true,
                        }
                    }));
                    result.drop_result().await.map_err(|e| failure(e, ""))?;
                    break;
                };
                let fields: Vec<Value> = columns.iter().map(field).collect();
                let binary: Vec<bool> = columns.iter().map(is_binary).collect();
                let rows: Vec<mysql_async::Row> =
                    result.collect().await.map_err(|e| failure(e, ""))?;
                let rows: Vec<Value> = rows
                    .into_iter()
                    .map(|row| {
                        row.unwrap()
                            .into_iter()
                            .zip(&binary)
                            .map(|(v, bin)| cell(v, *bin))
                            .collect()
                    })
                    .collect();
                sets.push(json!({ "rows": rows, "fields": fields, "binary": binary }));
                if result.is_empty() {
                    break;
                }
            }
            Ok(Value::Array(sets))
        },
        json,
    )
}

fn release(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let destroy = args.get(1).is_some_and(JsValue::to_boolean);
    let held = with_resource(args, 0, CLOSED, |h: &mut Option<Held>| {
        h.take().expect("checked open")
    })?;
    // Started now, not when the script awaits it: the connection goes back to the pool even
    // if the run ends right after `end()`.
    super::io_runtime().spawn(async move {
        let conn = held.lock().await.take();
        if let (Some(conn), true) = (conn, destroy) {
            // Dropping a pooled connection returns it; `destroy()` closes it instead.
            let _ = conn.disconnect().await;
        }
    });
    Ok(JsValue::undefined())
}

/// mysqljs's field packet, as much of it as scripts read.
fn field(c: &mysql_async::Column) -> Value {
    json!({
        "db": c.schema_str(),
        "table": c.table_str(),
        "orgTable": c.org_table_str(),
        "name": c.name_str(),
        "orgName": c.org_name_str(),
        "charsetNr": c.character_set(),
        "length": c.column_length(),
        "type": c.column_type() as u8,
        "flags": c.flags().bits(),
        "decimals": c.decimals(),
    })
}

/// Character set 63 is `binary`: such columns are Buffers in mysqljs, others strings.
fn is_binary(c: &mysql_async::Column) -> bool {
    use mysql_async::consts::ColumnType::*;
    c.character_set() == 63
        && matches!(
            c.column_type(),
            MYSQL_TYPE_BIT
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_GEOMETRY
        )
}

/// A text-protocol cell: binary columns as hex, everything else as its text; the glue casts.
fn cell(v: mysql_async::Value, binary: bool) -> Value {
    use mysql_async::Value as V;
    match v {
        V::NULL => Value::Null,
        V::Bytes(b) if binary => Value::String(hex::encode(b)),
        V::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        V::Int(i) => Value::String(i.to_string()),
        V::UInt(u) => Value::String(u.to_string()),
        V::Float(f) => Value::String(f.to_string()),
        V::Double(f) => Value::String(f.to_string()),
        other => Value::String(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// mysqljs reads `changedRows` from the server's info text ("Rows matched: 1  Changed: 1").
fn changed_rows(info: &str) -> u64 {
    info.split("Changed:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// mysqljs's error shapes: server errors as `ER_DUP_ENTRY: Duplicate entry ...` with `code`,
/// `errno`, `sqlMessage` and `sqlState`; socket errors as Node's (`ECONNREFUSED`).
fn failure(e: mysql_async::Error, address: &str) -> Failure {
    match e {
        mysql_async::Error::Server(s) => {
            let code = code_name(s.code);
            Failure::new(format!("{code}: {}", s.message))
                .with("code", code)
                .with("errno", s.code)
                .with("sqlMessage", s.message)
                .with("sqlState", s.state)
                .with("fatal", false)
        }
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            let code = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "ECONNREFUSED",
                std::io::ErrorKind::ConnectionReset => "ECONNRESET",
                std::io::ErrorKind::TimedOut => "ETIMEDOUT",
                _ if io.to_string().contains("lookup") => "ENOTFOUND",
                _ => "EIO",
            };
            let mut f = Failure::new(format!("connect {code} {address}"))
                .with("code", code)
                .with("syscall", "connect")
                .with("fatal", true);
            if let Some((host, port)) = address.rsplit_once(':') {
                f = f
                    .with("address", host)
                    .with("port", port.parse::<u16>().unwrap_or(0));
            }
            f
        }
        other => Failure::new(other.to_string())
            .with("code", "PROTOCOL_CONNECTION_LOST")
            .with("fatal", true),
    }
}

/// mysqljs's names for the server error numbers scripts meet.
fn code_name(errno: u16) -> String {
    let name = match errno {
        1040 => "ER_CON_COUNT_ERROR",
        1044 => "ER_DBACCESS_DENIED_ERROR",
        1045 => "ER_ACCESS_DENIED_ERROR",
        1046 => "ER_NO_DB_ERROR",
        1048 => "ER_BAD_NULL_ERROR",
        1049 => "ER_BAD_DB_ERROR",
        1050 => "ER_TABLE_EXISTS_ERROR",
        1051 => "ER_BAD_TABLE_ERROR",
        1052 => "ER_NON_UNIQ_ERROR",
        1054 => "ER_BAD_FIELD_ERROR",
        1060 => "ER_DUP_FIELDNAME",
        1061 => "ER_DUP_KEYNAME",
        1062 => "ER_DUP_ENTRY",
        1064 => "ER_PARSE_ERROR",
        1065 => "ER_EMPTY_QUERY",
        1136 => "ER_WRONG_VALUE_COUNT_ON_ROW",
        1142 => "ER_TABLEACCESS_DENIED_ERROR",
        1146 => "ER_NO_SUCH_TABLE",
        1205 => "ER_LOCK_WAIT_TIMEOUT",
        1213 => "ER_LOCK_DEADLOCK",
        1264 => "ER_WARN_DATA_OUT_OF_RANGE",
        1292 => "ER_TRUNCATED_WRONG_VALUE",
        1364 => "ER_NO_DEFAULT_FOR_FIELD",
        1366 => "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
        1406 => "ER_DATA_TOO_LONG",
        1451 => "ER_ROW_IS_REFERENCED_2",
        1452 => "ER_NO_REFERENCED_ROW_2",
        3024 => "ER_QUERY_TIMEOUT",
        _ => return format!("UNKNOWN_CODE_PLEASE_REPORT_{errno}"),
    };
    name.to_string()
}
