//! Password-change tickets: what a ticket lets its bearer do (set a new password for one email
//! of one connection, before it expires, once). Only a SHA-256 digest of the ticket id is kept,
//! so the store never holds a usable ticket.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// Unused tickets kept per email; a new one replaces the oldest beyond this.
pub const TICKETS_PER_EMAIL: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub tenant: String,
    pub connection: String,
    pub email: String,
    /// Where the browser goes once the password is changed.
    pub result_url: Option<String>,
    pub mark_email_verified: bool,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Records a ticket under the digest of its id, and forgets tickets that have expired and
    /// all but the newest few of the same email (anyone may ask for tickets: they must not pile up).
    pub fn put_ticket(&self, digest: &str, ticket: &Ticket, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM tickets WHERE expires_at <= ?1", [now])?;
            tx.execute(
                "DELETE FROM tickets WHERE tenant = ?1 AND connection = ?2 AND email = ?3 AND claimed = 0
                 AND digest NOT IN (SELECT digest FROM tickets WHERE tenant = ?1 AND connection = ?2 AND email = ?3
                                    ORDER BY rowid DESC LIMIT ?4)",
                params![ticket.tenant, ticket.connection, ticket.email, (TICKETS_PER_EMAIL - 1) as i64],
            )?;
            tx.execute(
                "INSERT INTO tickets (digest, tenant, connection, email, result_url, mark_email_verified, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    digest,
                    ticket.tenant,
                    ticket.connection,
                    ticket.email,
                    ticket.result_url,
                    ticket.mark_email_verified,
                    ticket.expires_at
                ],
            )?;
            Ok(())
        })
    }

    /// The tenant's unexpired, unused ticket with this digest, marked as in use so that a
    /// second redemption cannot run at the same time. `finish_ticket` settles it.
    pub fn claim_ticket(
        &self,
        tenant: &str,
        digest: &str,
        now: i64,
    ) -> Result<Option<Ticket>, StoreError> {
        self.write(|tx| {
            Ok(tx
                .query_row(
                    "UPDATE tickets SET claimed = 1 WHERE digest = ?1 AND tenant = ?2 AND claimed = 0 AND expires_at > ?3
                     RETURNING tenant, connection, email, result_url, mark_email_verified, expires_at",
                    params![digest, tenant, now],
                    |r| {
                        Ok(Ticket {
                            tenant: r.get(0)?,
                            connection: r.get(1)?,
                            email: r.get(2)?,
                            result_url: r.get(3)?,
                            mark_email_verified: r.get(4)?,
                            expires_at: r.get(5)?,
                        })
                    },
                )
                .optional()?)
        })
    }

    /// Settles a claimed ticket: used up when the password changed, usable again when not.
    pub fn finish_ticket(&self, digest: &str, used: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            if used {
                tx.execute("DELETE FROM tickets WHERE digest = ?1", [digest])?;
            } else {
                tx.execute("UPDATE tickets SET claimed = 0 WHERE digest = ?1", [digest])?;
            }
            Ok(())
        })
    }
}
