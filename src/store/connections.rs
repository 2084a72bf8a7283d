//! Connections: options, scripts, the sealed configuration and the top-level attributes.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use std::sync::Arc;

use super::{Store, StoreError, memo, query_one};
use crate::domain::options::ConnectionOptions;
use crate::script::Action;

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

impl Store {
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
        self.memo
            .forget_connection(&record.tenant, &record.id, &record.name);
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

    /// The connection as of at most a few seconds ago (`memo`): what running a script reads,
    /// without a trip to SQLite or opening the sealed configuration when this process read it
    /// lately. Not for read-modify-write: that reads `get_connection`.
    pub fn current_connection(
        &self,
        tenant: &str,
        name_or_id: &str,
    ) -> Result<Option<Arc<ConnectionRecord>>, StoreError> {
        let copies = &self.memo.connections;
        if let Some(hit) = copies.get(&memo::key(tenant, name_or_id)) {
            return Ok(Some(hit));
        }
        let generation = copies.generation();
        let Some(record) = self.get_connection(tenant, name_or_id)? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        copies.keep(
            generation,
            [
                (memo::key(tenant, &record.name), record.clone()),
                (memo::key(tenant, &record.id), record.clone()),
            ],
        );
        Ok(Some(record))
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
            self.memo.forget_connection(tenant, id, name);
        }
        Ok(deleted.is_some())
    }
}
