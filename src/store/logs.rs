//! Tenant log events (Auth0's types, string `log_id`s, checkpoints) and recorded script runs.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, query_one};
use crate::domain::events::LogType;
use crate::script::Action;

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

impl Store {
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
