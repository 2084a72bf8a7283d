//! `pg` (node-postgres) on tokio-postgres: connect, query and release as natives the glue in
//! `js/pg.js` shapes into `pg.connect`, `Client` and `Pool`. Parameters travel as text with an
//! unspecified type, as node-postgres sends them, so the server infers their types; results are
//! decoded from the binary format into node-postgres's JavaScript types.

use boa_engine::{Context, JsResult, JsValue};
use bytes::BytesMut;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls};

use super::egress::{AllowList, denied};
use super::{Failure, Native, arg_string, json, resource, spawn_io, with_resource};
use crate::sandbox::run_state;

pub const NATIVES: &[Native] = &[
    ("connect", 2, connect),
    ("query", 3, query),
    ("release", 2, release),
];

const CLOSED: &str = "Client was closed and is not queryable";

/// Idle connections per connection settings, kept by this worker between runs. The worker
/// serves one tenant, so pooled connections are never handed to another tenant's script.
/// Each list holds the most recently released last, with when it was released.
static IDLE: Mutex<Option<HashMap<String, Vec<Idle>>>> = Mutex::new(None);

/// A pooled connection and when it was released.
type Idle = (Client, Instant);

/// Idle connections kept per settings; more are closed when released. As many as the runs a
/// worker interleaves by default, so that a steady load of concurrent runs reuses its
/// connections instead of opening (and authenticating) one per run.
const MAX_IDLE: usize = 64;
/// An idle connection unused this long is closed (node-postgres' `idleTimeoutMillis`
/// default), so a burst does not hold the database's connections for the worker's life.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// A connection a script holds: `pool_key` is set when it returns to `IDLE` on release.
struct Held {
    client: Arc<Client>,
    pool_key: Option<String>,
}

fn connect(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let settings = args.first().cloned().unwrap_or_default().to_json(ctx)?;
    let pooled = args.get(1).is_some_and(JsValue::to_boolean);
    let allow = AllowList::of(&run_state::state(ctx).policy);
    spawn_io(
        ctx,
        async move {
            let mut config = config(settings.as_ref())?;
            permit(&mut config, &allow).await?;
            let key = pool_key(&config);
            let idle = pooled.then(|| take_idle(&key)).flatten();
            let client = match idle {
                Some(client) => client,
                None => open(&config).await?,
            };
            Ok(Held {
                client: Arc::new(client),
                pool_key: pooled.then_some(key),
            })
        },
        |held: Held, _| Ok(resource(held)),
    )
}

/// Connections are pooled per complete settings. `Config`'s Debug form hides the password, so
/// its digest is added: a script with a wrong password must never get a pooled connection.
fn pool_key(config: &Config) -> String {
    use sha2::Digest;
    let password = sha2::Sha256::digest(config.get_password().unwrap_or_default());
    format!("{config:?} {}", hex::encode(password))
}

/// Applies the egress allow-list: every host must be listed, and the connection goes to the
/// addresses the list permits (pinned with `hostaddr`, so the driver cannot resolve the name
/// again to somewhere else). Unix sockets are files, which scripts never reach.
async fn permit(config: &mut Config, allow: &AllowList) -> Result<(), Failure> {
    let ports = config.get_ports().to_vec();
    let hosts = config.get_hosts().to_vec();
    for (i, host) in hosts.iter().enumerate() {
        let tokio_postgres::config::Host::Tcp(name) = host else {
            return Err(Failure::new(
                "pg: Unix socket connections are not allowed; connect over TCP",
            )
            .with("code", "EGRESS_DENIED"));
        };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        allow.check_host(name, Some(port)).map_err(denied)?;
        let addrs = allow.resolve(name, port).await.map_err(denied)?;
        config.hostaddr(addrs[0].ip());
    }
    Ok(())
}

fn take_idle(key: &str) -> Option<Client> {
    let mut idle = IDLE.lock().ok()?;
    let list = idle.get_or_insert_with(HashMap::new).get_mut(key)?;
    list.retain(|(client, at)| !client.is_closed() && at.elapsed() < IDLE_FOR);
    list.pop().map(|(client, _)| client)
}

async fn open(config: &Config) -> Result<Client, Failure> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| failure(&e, Some(config)))?;
    // The connection future does the socket I/O; it ends when the client is dropped.
    tokio::spawn(connection);
    Ok(client)
}

/// node-postgres settings: a connection string, or an object with `connectionString` or
/// `host`, `port`, `user`, `password`, `database`, `connectionTimeoutMillis`.
fn config(settings: Option<&Value>) -> Result<Config, Failure> {
    let text = |v: &Value, k: &str| -> Option<String> {
        match v.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut config = match settings {
        Some(Value::String(s)) => parse(s)?,
        Some(obj @ Value::Object(_)) => match text(obj, "connectionString") {
            Some(s) => parse(&s)?,
            None => Config::new(),
        },
        None | Some(Value::Null) => Config::new(),
        Some(_) => {
            return Err(Failure::new(
                "pg: settings must be a connection string or an object",
            ));
        }
    };
    if let Some(obj @ Value::Object(_)) = settings {
        if let Some(host) = text(obj, "host") {
            config.host(&host);
        }
        if let Some(port) = text(obj, "port") {
            let port = port
                .parse()
                .map_err(|_| Failure::new(format!("pg: invalid port '{port}'")))?;
            config.port(port);
        }
        if let Some(user) = text(obj, "user") {
            config.user(&user);
        }
        if let Some(password) = text(obj, "password") {
            config.password(password);
        }
        if let Some(db) = text(obj, "database") {
            config.dbname(&db);
        }
        if let Some(ms) = obj.get("connectionTimeoutMillis").and_then(Value::as_u64) {
            config.connect_timeout(Duration::from_millis(ms));
        }
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_user().is_none() {
        config.user("postgres");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("customdb");
    Ok(config)
}

fn parse(s: &str) -> Result<Config, Failure> {
    // node-postgres also accepts the `postgresql://` and `pg://`-less forms tokio-postgres
    // knows; only the scheme spelling differs.
    Config::from_str(s).map_err(|e| Failure::new(format!("pg: invalid connection string: {e}")))
}

fn held(args: &[JsValue]) -> JsResult<Arc<Client>> {
    with_resource(args, 0, CLOSED, |h: &mut Option<Held>| {
        h.as_ref().expect("checked open").client.clone()
    })
}

fn query(_: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let client = held(args)?;
    let text = arg_string(args, 1, ctx)?;
    let values: Vec<Option<String>> = match args.get(2).cloned().unwrap_or_default().to_json(ctx)? {
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    };
    spawn_io(
        ctx,
        async move {
            let unspecified = Type::new("unknown".into(), 0, Kind::Simple, "pg_catalog".into());
            let types = vec![unspecified; values.len()];
            let params = values.into_iter().zip(types.iter().cloned());
            let params = params.map(|(v, t)| (TextParam(v), t));
            let stream = client
                .query_typed_raw(&text, params)
                .await
                .map_err(|e| failure(&e, None))?;
            futures::pin_mut!(stream);
            let mut rows = Vec::new();
            let mut fields = Value::Null;
            use futures::StreamExt;
            while let Some(row) = stream.next().await {
                let row = row.map_err(|e| failure(&e, None))?;
                if fields.is_null() {
                    fields = fields_json(row.columns());
                }
                let cells: Result<Vec<Value>, _> = (0..row.len())
                    .map(|i| row.try_get::<_, Cell>(i).map(|c| c.0))
                    .collect();
                rows.push(Value::Array(cells.map_err(|e| failure(&e, None))?));
            }
            let count = stream.rows_affected().unwrap_or(rows.len() as u64);
            if fields.is_null() {
                // No row carried the columns: describe the statement (one more round trip,
                // only for empty results) so `fields` is right, as node-postgres's is.
                let described = client
                    .prepare_typed(&text, &types)
                    .await
                    .map_err(|e| failure(&e, None))?;
                fields = fields_json(described.columns());
            }
            Ok(json!({
                "command": command(&text),
                "rowCount": count,
                "rows": rows,
                "fields": fields,
            }))
        },
        json,
    )
}

fn release(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let destroy = args.get(1).is_some_and(JsValue::to_boolean);
    let held = with_resource(args, 0, CLOSED, |h: &mut Option<Held>| {
        h.take().expect("checked open")
    })?;
    // A connection still shared with a query in flight cannot go back to the pool.
    if let (Some(key), false, Ok(client)) = (held.pool_key, destroy, Arc::try_unwrap(held.client))
        && !client.is_closed()
        && let Ok(mut idle) = IDLE.lock()
    {
        let list = idle
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_default();
        list.retain(|(client, at)| !client.is_closed() && at.elapsed() < IDLE_FOR);
        if list.len() < MAX_IDLE {
            list.push((client, Instant::now()));
        }
    }
    Ok(JsValue::undefined())
}

fn fields_json(columns: &[tokio_postgres::Column]) -> Value {
    columns
        .iter()
        .map(|c| json!({"name": c.name(), "dataTypeID": c.type_().oid()}))
        .collect()
}

/// node-postgres's `command`: the statement's first keyword.
fn command(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('(')
        .to_uppercase()
}

/// A parameter sent in text format with an unspecified type.
#[derive(Debug)]
struct TextParam(Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// One result cell as JSON in node-postgres's conventions. Dates travel as epoch
/// milliseconds and bytea as hex; the glue makes them `Date` and `Buffer` by the field's type.
struct Cell(Value);

const EPOCH_2000_MS: i64 = 946_684_800_000;

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let be = |n: usize| -> Result<&[u8], String> {
            raw.get(..n)
                .ok_or_else(|| format!("short {} value", ty.name()))
        };
        let value = match *ty {
            Type::BOOL => json!(raw.first() == Some(&1)),
            Type::INT2 => json!(i16::from_be_bytes(be(2)?.try_into()?)),
            Type::INT4 => json!(i32::from_be_bytes(be(4)?.try_into()?)),
            Type::OID => json!(u32::from_be_bytes(be(4)?.try_into()?)),
            Type::INT8 => json!(i64::from_be_bytes(be(8)?.try_into()?).to_string()),
            Type::FLOAT4 => json!(f32::from_be_bytes(be(4)?.try_into()?)),
            Type::FLOAT8 => json!(f64::from_be_bytes(be(8)?.try_into()?)),
            Type::NUMERIC => json!(numeric(raw).ok_or("malformed numeric value")?),
            Type::JSON => serde_json::from_slice(raw)?,
            Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                let micros = i64::from_be_bytes(be(8)?.try_into()?);
                json!(EPOCH_2000_MS + micros.div_euclid(1000))
            }
            Type::DATE => {
                let days = i32::from_be_bytes(be(4)?.try_into()?);
                json!(EPOCH_2000_MS + i64::from(days) * 86_400_000)
            }
            Type::BYTEA => json!(hex::encode(raw)),
            Type::UUID => json!(uuid::Uuid::from_slice(raw)?.to_string()),
            // Text-like types, enums and everything else whose binary form is its text.
            _ => match std::str::from_utf8(raw) {
                Ok(s) => json!(s),
                Err(_) => json!(hex::encode(raw)),
            },
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC as the decimal text node-postgres returns.
fn numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digit = |j: i64| {
        usize::try_from(j)
            .ok()
            .and_then(|j| digits.get(j))
            .copied()
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for j in 1..=weight {
            out.push_str(&format!("{:04}", digit(j)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut j = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(j)));
            j += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

/// node-postgres's error shapes: a server error keeps its SQLSTATE `code`, `detail`,
/// `constraint` and the other fields; a socket error looks like Node's (`ECONNREFUSED`).
fn failure(e: &tokio_postgres::Error, config: Option<&Config>) -> Failure {
    if let Some(db) = e.as_db_error() {
        let mut f = Failure::new(db.message())
            .with("severity", db.severity())
            .with("code", db.code().code());
        let optional = [
            ("detail", db.detail()),
            ("hint", db.hint()),
            ("schema", db.schema()),
            ("table", db.table()),
            ("column", db.column()),
            ("dataType", db.datatype()),
            ("constraint", db.constraint()),
            ("routine", db.routine()),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                f = f.with(k, v);
            }
        }
        return f;
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    let address = config.map(|c| {
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        (host, port)
    });
    if let Some(io) = io {
        let code = match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "ECONNREFUSED",
            std::io::ErrorKind::ConnectionReset => "ECONNRESET",
            std::io::ErrorKind::TimedOut => "ETIMEDOUT",
            _ if io.to_string().contains("failed to lookup") => "ENOTFOUND",
            _ => "EIO",
        };
        let (host, port) = address.unwrap_or(("localhost".into(), 5432));
        let message = if code == "ENOTFOUND" {
            format!("getaddrinfo ENOTFOUND {host}")
        } else {
            format!("connect {code} {host}:{port}")
        };
        return Failure::new(message)
            .with("code", code)
            .with("syscall", "connect")
            .with("address", host)
            .with("port", port);
    }
    if e.is_closed() {
        return Failure::new("Connection terminated unexpectedly");
    }
    Failure::new(e.to_string())
}
