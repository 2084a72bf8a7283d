//! Retention: what the store forgets so that it does not grow forever — log events and
//! recorded script runs past their age or beyond a count per tenant, lapsed brute-force
//! counts and expired tickets. Deleted in small batches, each its own short transaction, so a
//! prune never holds the writer for long: requests interleave with it.

use rusqlite::params;

use super::{Store, StoreError};
use crate::domain::time;

/// How long and how many of each the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Log events older than this are forgotten (Auth0 keeps 30 days at most).
    pub log_days: u32,
    /// Log events kept per tenant, newest first.
    pub log_events_per_tenant: u32,
    /// Recorded script runs (console and timings) older than this are forgotten.
    pub run_days: u32,
    pub runs_per_tenant: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            log_days: 30,
            log_events_per_tenant: 100_000,
            run_days: 7,
            runs_per_tenant: 10_000,
        }
    }
}

/// What one prune forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub log_events: usize,
    pub runs: usize,
    pub failures: usize,
    pub tickets: usize,
}

/// Rows deleted per transaction.
const BATCH: i64 = 2_000;

impl Store {
    /// Forgets what `retention` no longer keeps.
    pub fn prune(&self, retention: Retention) -> Result<Pruned, StoreError> {
        let now = self.clock.now();
        let before =
            |days: u32| time::format(now - jiff::SignedDuration::from_hours(i64::from(days) * 24));
        let log_cutoff = before(retention.log_days);
        let run_cutoff = before(retention.run_days);
        let mut pruned = Pruned {
            log_events: self.in_batches(
                "DELETE FROM log_events WHERE id IN (SELECT id FROM log_events WHERE date < ?1 LIMIT ?2)",
                &log_cutoff,
            )?,
            runs: self.in_batches(
                "DELETE FROM script_runs WHERE id IN (SELECT id FROM script_runs WHERE date < ?1 LIMIT ?2)",
                &run_cutoff,
            )?,
            failures: self.prune_failures(now.as_second())?,
            tickets: self.write(|tx| {
                Ok(tx.execute("DELETE FROM tickets WHERE expires_at <= ?1", [now.as_second()])?)
            })?,
        };
        let tenants: Vec<String> = {
            let conn = self.read();
            let mut statement = conn.prepare_cached("SELECT id FROM tenants")?;
            statement
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for tenant in &tenants {
            pruned.log_events +=
                self.keep_newest("log_events", tenant, retention.log_events_per_tenant)?;
            pruned.runs += self.keep_newest("script_runs", tenant, retention.runs_per_tenant)?;
        }
        Ok(pruned)
    }

    /// Runs a batched DELETE (`?1` the cutoff, `?2` the batch size) until it deletes nothing.
    fn in_batches(&self, sql: &str, cutoff: &str) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n =
                self.write(|tx| Ok(tx.prepare_cached(sql)?.execute(params![cutoff, BATCH])?))?;
            total += n;
            if n < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Deletes a tenant's oldest rows of `table` beyond the newest `keep`.
    fn keep_newest(&self, table: &str, tenant: &str, keep: u32) -> Result<usize, StoreError> {
        let newest_dropped: Option<i64> = super::query_one(
            &self.read(),
            &format!("SELECT id FROM {table} WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2"),
            params![tenant, keep],
            |r| r.get(0),
        )?;
        let Some(last) = newest_dropped else {
            return Ok(0);
        };
        let sql = format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE tenant = ?1 AND id <= ?2 LIMIT ?3)"
        );
        let mut total = 0;
        loop {
            let n = self.write(|tx| {
                Ok(tx
                    .prepare_cached(&sql)?
                    .execute(params![tenant, last, BATCH])?)
            })?;
            total += n;
            if n < BATCH as usize {
                return Ok(total);
            }
        }
    }
}
