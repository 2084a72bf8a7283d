//! What attack protection remembers: failed logins per (connection, identifier, address) with
//! when the last one happened, and the tenant's attack-protection settings. A count is a block
//! once it reaches the tenant's threshold; it lapses `BLOCK_SECS` after its last failure.

use rusqlite::params;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError, query_one};
use crate::domain::protection::{Attempt, BLOCK_SECS, Budget, Stage};

/// The names of the tenant settings attack protection keeps.
pub const BRUTE_FORCE: &str = "brute_force_protection";
pub const SUSPICIOUS_IP: &str = "suspicious_ip_throttling";

/// What a login is checked against before it runs (`AsyncStore::login_guard`).
#[derive(Debug, Clone)]
pub struct LoginGuard {
    pub brute_force: crate::domain::protection::BruteForce,
    /// The attempt's brute-force keys and the failures counted under them.
    pub counted: Option<(Attempt, u32)>,
    pub suspicious: crate::domain::protection::SuspiciousIp,
    /// The counted address and what is left of its login budget.
    pub address: Option<(String, f64)>,
}

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

    /// Forgets counts whose last failure is older than a block lasts, and address budgets
    /// that have refilled.
    pub fn prune_failures(&self, now: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let failures = tx.execute(
                "DELETE FROM login_failures WHERE last_failed_at <= ?1 - ?2",
                params![now, BLOCK_SECS],
            )?;
            let budgets = tx.execute("DELETE FROM ip_buckets WHERE full_at <= ?1 * 1000", [now])?;
            Ok(failures + budgets)
        })
    }

    /// A tenant's attack-protection setting `name` (Auth0's defaults until changed).
    pub fn setting<T: DeserializeOwned + Default>(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<T, StoreError> {
        read_setting(&self.read(), tenant, name)
    }

    /// Changes a tenant's setting `name` with `change` (given the current value) in one
    /// transaction: concurrent changes of different fields all survive. `change`'s refusal is
    /// returned as it is, and nothing is written.
    pub fn update_setting<T: Serialize + DeserializeOwned + Default, E>(
        &self,
        tenant: &str,
        name: &str,
        change: impl FnOnce(T) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        self.write(|tx| {
            let current = read_setting(tx, tenant, name)?;
            let next = match change(current) {
                Ok(next) => next,
                Err(why) => return Ok(Err(why)),
            };
            let text = serde_json::to_string(&next)
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
            tx.execute(
                "INSERT INTO tenant_settings (tenant, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value",
                params![tenant, name, text],
            )?;
            Ok(Ok(next))
        })
    }

    /// What is left of an address's budget in `stage` at `now_ms` (all of it when unused).
    pub fn ip_tokens(
        &self,
        tenant: &str,
        ip: &str,
        stage: Stage,
        budget: Budget,
        now_ms: i64,
    ) -> Result<f64, StoreError> {
        tokens_left(&self.read(), tenant, ip, stage, budget, now_ms)
    }

    /// Takes one attempt from an address's budget in `stage`; returns what was left before
    /// and after, in one transaction.
    pub fn take_ip_token(
        &self,
        tenant: &str,
        ip: &str,
        stage: Stage,
        budget: Budget,
        now_ms: i64,
    ) -> Result<(f64, f64), StoreError> {
        self.write(|tx| {
            let before = tokens_left(tx, tenant, ip, stage, budget, now_ms)?;
            let after = (before - 1.0).max(0.0);
            tx.execute(
                "INSERT INTO ip_buckets (tenant, ip, stage, tokens, at, full_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, ip, stage) DO UPDATE
                 SET tokens = excluded.tokens, at = excluded.at, full_at = excluded.full_at",
                params![tenant, ip, stage.as_str(), after, now_ms, budget.full_at(after, now_ms)],
            )?;
            Ok((before, after))
        })
    }

    /// Forgets an address's budgets (`DELETE /api/v2/anomaly/blocks/ips/{ip}`).
    pub fn clear_ip(&self, tenant: &str, ip: &str) -> Result<usize, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM ip_buckets WHERE tenant = ?1 AND ip = ?2",
                params![tenant, ip],
            )?)
        })
    }
}

/// What is left of an address's budget in `stage` at `now_ms` (all of it when unused).
fn tokens_left(
    conn: &rusqlite::Connection,
    tenant: &str,
    ip: &str,
    stage: Stage,
    budget: Budget,
    now_ms: i64,
) -> Result<f64, StoreError> {
    let row: Option<(f64, i64)> = query_one(
        conn,
        "SELECT tokens, at FROM ip_buckets WHERE tenant = ?1 AND ip = ?2 AND stage = ?3",
        params![tenant, ip, stage.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(row.map_or(f64::from(budget.max_attempts), |(t, at)| {
        budget.refilled(t, at, now_ms)
    }))
}

fn read_setting<T: DeserializeOwned + Default>(
    conn: &rusqlite::Connection,
    tenant: &str,
    name: &str,
) -> Result<T, StoreError> {
    let text: Option<String> = query_one(
        conn,
        "SELECT value FROM tenant_settings WHERE tenant = ?1 AND name = ?2",
        params![tenant, name],
        |r| r.get(0),
    )?;
    match text {
        None => Ok(T::default()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
        }
    }
}
