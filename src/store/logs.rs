//! Tenant log events (Auth0's types, string `log_id`s, checkpoints) and recorded script runs.

use rusqlite::params;
use serde::Serialize;

use super::{Pending, Store, StoreError, execute, query_one};
use crate::domain::events::{Caller, LogFilter, LogType};
use crate::script::Action;

/// Which log events to read (see `Store::log_window`).
#[derive(Debug, Clone, PartialEq)]
pub enum LogWindow {
    /// A page of the events that match `filter`, newest first unless `oldest_first`.
    Page {
        page: usize,
        per_page: usize,
        oldest_first: bool,
        filter: LogFilter,
    },
    /// The `take` events after the checkpoint `id`, oldest first.
    After { id: i64, take: usize },
}

/// A tenant log event (its type one of Auth0's, `LogType`), in Auth0's shape: its id goes out
/// as the string `log_id`, which `from=<log_id>` checkpoints read back; fields nobody knows
/// are left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEvent {
    #[serde(rename = "log_id", serialize_with = "log_id")]
    pub id: i64,
    pub date: String,
    #[serde(rename = "type")]
    pub kind: LogType,
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Every connection customdb serves is a database connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub caller: Caller,
}

fn log_id<S: serde::Serializer>(id: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

/// A log event to write, owned so that it can travel to the writer thread.
pub(super) struct Entry {
    pub tenant: String,
    pub date: String,
    pub kind: LogType,
    pub connection: Option<String>,
    pub user_id: Option<String>,
    pub description: Option<String>,
    pub caller: Caller,
}

impl Entry {
    /// Writes the event in `tx` and reads it back as the API shows it.
    pub(super) fn insert(self, tx: &rusqlite::Transaction<'_>) -> Result<LogEvent, StoreError> {
        let Entry {
            tenant,
            date,
            kind,
            connection,
            user_id,
            description,
            caller,
        } = self;
        // The connection's id as it is now: a log event outlives its connection.
        let connection_id: Option<String> = match connection {
            Some(ref name) => query_one(
                tx,
                "SELECT id FROM connections WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
                |r| r.get(0),
            )?,
            None => None,
        };
        execute(
            tx,
            "INSERT INTO log_events (tenant, date, type, connection, user_id, description, connection_id, client_id, client_name, ip, user_agent, hostname, user_name) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                tenant,
                date,
                kind.code(),
                connection,
                user_id,
                description,
                connection_id,
                caller.client_id,
                caller.client_name,
                caller.ip,
                caller.user_agent,
                caller.hostname,
                caller.user_name
            ],
        )?;
        let id = tx.last_insert_rowid();
        let event = query_one(
            tx,
            &format!("SELECT {LOG_COLUMNS} FROM log_events WHERE id = ?1"),
            params![id],
            log_from_row,
        )?;
        event.ok_or(StoreError::Corrupt(format!("log event {id} vanished")))
    }
}

impl Store {
    pub fn log(
        &self,
        tenant: &str,
        kind: LogType,
        connection: Option<&str>,
        user_id: Option<&str>,
        description: Option<&str>,
        caller: Caller,
    ) -> Pending<LogEvent> {
        let entry = Entry {
            tenant: tenant.to_owned(),
            date: self.now(),
            kind,
            connection: connection.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            description: description.map(str::to_owned),
            caller,
        };
        self.append(move |tx| entry.insert(tx), None)
    }

    /// One log event of the tenant.
    pub fn log_event(&self, tenant: &str, id: i64) -> Result<Option<LogEvent>, StoreError> {
        query_one(
            &self.read(),
            &format!("SELECT {LOG_COLUMNS} FROM log_events WHERE tenant = ?1 AND id = ?2"),
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
                    oldest_first: false,
                    filter: LogFilter::default(),
                },
            )?
            .0)
    }

    /// A window of the tenant's log events and how many there are in all (that match the
    /// page's filter): a page, or the events after a checkpoint id (Auth0's `from`/`take`,
    /// which ignores every other parameter).
    pub fn log_window(
        &self,
        tenant: &str,
        window: LogWindow,
    ) -> Result<(Vec<LogEvent>, usize), StoreError> {
        let conn = self.read();
        let mut values: Vec<rusqlite::types::Value> = vec![tenant.to_string().into()];
        let mut condition = String::from("tenant = ?1");
        let (order, limit, offset) = match window {
            LogWindow::Page {
                page,
                per_page,
                oldest_first,
                filter,
            } => {
                // The column names are the fields' own (`LogField::name`), never the caller's.
                for (field, value) in filter.0 {
                    values.push(value.into());
                    condition += &format!(" AND {} = ?{}", field.name(), values.len());
                }
                let order = if oldest_first { "ASC" } else { "DESC" };
                (order, per_page, page * per_page)
            }
            LogWindow::After { id, take } => {
                values.push(id.into());
                condition += &format!(" AND id > ?{}", values.len());
                ("ASC", take, 0)
            }
        };
        let total: i64 = conn.query_row(
            &format!("SELECT count(*) FROM log_events WHERE {condition}"),
            rusqlite::params_from_iter(&values),
            |r| r.get(0),
        )?;
        let n = values.len();
        values.extend([(limit as i64).into(), (offset as i64).into()]);
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM log_events WHERE {condition} ORDER BY id {order} LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let events = stmt
            .query_map(rusqlite::params_from_iter(&values), log_from_row)?
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
    ) -> Pending<()> {
        let (tenant, connection) = (tenant.to_owned(), connection.to_owned());
        let (outcome, console, timings, date) = (
            execution.outcome.as_str(),
            serde_json::to_string(&execution.console).unwrap_or_default(),
            serde_json::to_string(&execution.timings).unwrap_or_default(),
            self.now(),
        );
        self.append(move |tx| {
            execute(
                tx,
                "INSERT INTO script_runs (tenant, connection, action, outcome, console, timings, date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    tenant,
                    connection,
                    action.key(),
                    outcome,
                    console,
                    timings,
                    date
                ],
            )?;
            Ok(())
        }, None)
    }
}

/// The columns `log_from_row` reads, in its order.
const LOG_COLUMNS: &str = "id, date, type, description, connection, connection_id, user_id, client_id, client_name, ip, user_agent, hostname, user_name";

fn log_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogEvent> {
    let kind = r.get::<_, String>(2)?.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
    })?;
    let caller = Caller {
        client_id: r.get(7)?,
        client_name: r.get(8)?,
        ip: r.get(9)?,
        user_agent: r.get(10)?,
        hostname: r.get(11)?,
        user_name: r.get(12)?,
    };
    let connection: Option<String> = r.get(4)?;
    let database = connection.is_some();
    Ok(LogEvent {
        id: r.get(0)?,
        date: r.get(1)?,
        kind,
        description: r.get(3)?,
        connection,
        connection_id: r.get(5)?,
        strategy: database.then_some("auth0"),
        strategy_type: database.then_some("database"),
        user_id: r.get(6)?,
        caller,
    })
}
