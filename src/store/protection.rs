//! What attack protection remembers: failed logins per (connection, identifier, address) with
//! when the last one happened, and the tenant's attack-protection settings. A count is a block
//! once it reaches the tenant's threshold; it lapses `BLOCK_SECS` after its last failure.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, query_one};
use crate::domain::protection::{Attempt, BLOCK_SECS, BruteForce};

/// A counted identifier, as `/api/v2/user-blocks` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    pub identifier: String,
    /// Missing when counting per identifier only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub connection: String,
}

impl Store {
    /// Counts one failed login and returns the count: a count whose last failure is older
    /// than a block lasts starts again at one. One statement: concurrent failures all count.
    pub fn count_failure(
        &self,
        tenant: &str,
        connection: &str,
        attempt: &Attempt,
        now: i64,
    ) -> Result<u32, StoreError> {
        self.write(|tx| {
            Ok(tx.query_row(
                "INSERT INTO login_failures (tenant, connection, identifier, ip, count, last_failed_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT (tenant, connection, identifier, ip) DO UPDATE SET
                   count = CASE WHEN last_failed_at <= ?5 - ?6 THEN 1 ELSE count + 1 END,
                   last_failed_at = ?5
                 RETURNING count",
                params![tenant, connection, attempt.identifier, attempt.ip, now, BLOCK_SECS],
                |r| r.get(0),
            )?)
        })
    }

    /// The failed logins counted for `attempt` that have not lapsed (0 for none).
    pub fn failures(
        &self,
        tenant: &str,
        connection: &str,
        attempt: &Attempt,
        now: i64,
    ) -> Result<u32, StoreError> {
        let count = query_one(
            &self.read(),
            "SELECT count FROM login_failures WHERE tenant = ?1 AND connection = ?2 AND identifier = ?3
             AND ip = ?4 AND last_failed_at > ?5 - ?6",
            params![tenant, connection, attempt.identifier, attempt.ip, now, BLOCK_SECS],
            |r| r.get(0),
        )?;
        Ok(count.unwrap_or(0))
    }

    /// Forgets the counts of `identifiers` (lower-cased keys) in `connection` (any, for
    /// `None`) from every address, or from `ip` only. Returns how many were forgotten.
    pub fn clear_failures(
        &self,
        tenant: &str,
        connection: Option<&str>,
        identifiers: &[String],
        ip: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut cleared = 0;
            for identifier in identifiers {
                cleared += tx.execute(
                    "DELETE FROM login_failures WHERE tenant = ?1 AND identifier = ?2
                     AND (?3 IS NULL OR connection = ?3) AND (?4 IS NULL OR ip = ?4)",
                    params![tenant, identifier, connection, ip],
                )?;
            }
            Ok(cleared)
        })
    }

    /// The blocks of `identifiers` (lower-cased keys) in `connection` (any, for `None`): the
    /// counts at or above `max_attempts` that have not lapsed, oldest first.
    pub fn blocks(
        &self,
        tenant: &str,
        connection: Option<&str>,
        identifiers: &[String],
        max_attempts: u32,
        now: i64,
    ) -> Result<Vec<Block>, StoreError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT identifier, ip, connection FROM login_failures WHERE tenant = ?1 AND identifier = ?2
             AND (?3 IS NULL OR connection = ?3) AND count >= ?4 AND last_failed_at > ?5 - ?6
             ORDER BY last_failed_at",
        )?;
        let mut out = Vec::new();
        for identifier in identifiers {
            let rows = statement.query_map(
                params![
                    tenant,
                    identifier,
                    connection,
                    max_attempts,
                    now,
                    BLOCK_SECS
                ],
                |r| {
                    let ip: String = r.get(1)?;
                    Ok(Block {
                        identifier: r.get(0)?,
                        ip: Some(ip).filter(|ip| !ip.is_empty()),
                        connection: r.get(2)?,
                    })
                },
            )?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// Forgets counts whose last failure is older than a block lasts.
    pub fn prune_failures(&self, now: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM login_failures WHERE last_failed_at <= ?1 - ?2",
                params![now, BLOCK_SECS],
            )?)
        })
    }

    /// The tenant's brute-force protection settings (Auth0's defaults until changed).
    pub fn brute_force(&self, tenant: &str) -> Result<BruteForce, StoreError> {
        read_brute_force(&self.read(), tenant)
    }

    /// Changes the tenant's brute-force protection with `change` (given the current
    /// settings) in one transaction: concurrent changes of different fields all survive.
    /// `change`'s refusal is returned as it is, and nothing is written.
    pub fn update_brute_force<E>(
        &self,
        tenant: &str,
        change: impl FnOnce(BruteForce) -> Result<BruteForce, E>,
    ) -> Result<Result<BruteForce, E>, StoreError> {
        self.write(|tx| {
            let current = read_brute_force(tx, tenant)?;
            let next = match change(current) {
                Ok(next) => next,
                Err(why) => return Ok(Err(why)),
            };
            let text = serde_json::to_string(&next)
                .map_err(|e| StoreError::Corrupt(format!("brute_force_protection: {e}")))?;
            tx.execute(
                "INSERT INTO tenant_settings (tenant, name, value) VALUES (?1, 'brute_force_protection', ?2)
                 ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value",
                params![tenant, text],
            )?;
            Ok(Ok(next))
        })
    }
}

fn read_brute_force(conn: &rusqlite::Connection, tenant: &str) -> Result<BruteForce, StoreError> {
    let text: Option<String> = query_one(
        conn,
        "SELECT value FROM tenant_settings WHERE tenant = ?1 AND name = 'brute_force_protection'",
        [tenant],
        |r| r.get(0),
    )?;
    match text {
        None => Ok(BruteForce::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("brute_force_protection: {e}"))),
    }
}
