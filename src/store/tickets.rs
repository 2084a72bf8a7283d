//! Password-change tickets: what a ticket lets its bearer do (set a new password for one email
//! of one connection, before it expires, once). Only a SHA-256 digest of the ticket id is kept,
//! so the store never holds a usable ticket.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// Unused tickets kept per email and issuer; a new one replaces the oldest of the same
/// issuer beyond this.
pub const TICKETS_PER_EMAIL: usize = 5;

/// Who asked for a ticket. Anonymous requests (`/dbconnections/change_password`) have a quota
/// of their own, so they can never evict a ticket an administrator issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    Anonymous,
    /// Through the Management API (`POST /api/v2/tickets/password-change`).
    Administrator,
}

impl Issuer {
    fn as_str(self) -> &'static str {
        match self {
            Issuer::Anonymous => "anonymous",
            Issuer::Administrator => "administrator",
        }
    }
}

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
    pub issuer: Issuer,
}

impl Store {
    /// Records a ticket under the digest of its id, and forgets tickets that have expired and
    /// all but the newest few of the same email and issuer (anyone may ask for tickets: they
    /// must not pile up, nor push out the ones an administrator issued).
    pub fn put_ticket(&self, digest: &str, ticket: &Ticket, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM tickets WHERE expires_at <= ?1", [now])?;
            tx.execute(
                "DELETE FROM tickets WHERE tenant = ?1 AND connection = ?2 AND email = ?3 AND issuer = ?5 AND claimed = 0
                 AND digest NOT IN (SELECT digest FROM tickets WHERE tenant = ?1 AND connection = ?2 AND email = ?3
                                    AND issuer = ?5 ORDER BY rowid DESC LIMIT ?4)",
                params![ticket.tenant, ticket.connection, ticket.email, (TICKETS_PER_EMAIL - 1) as i64, ticket.issuer.as_str()],
            )?;
            tx.execute(
                "INSERT INTO tickets (digest, tenant, connection, email, result_url, mark_email_verified, expires_at, issuer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    digest,
                    ticket.tenant,
                    ticket.connection,
                    ticket.email,
                    ticket.result_url,
                    ticket.mark_email_verified,
                    ticket.expires_at,
                    ticket.issuer.as_str()
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
                     RETURNING tenant, connection, email, result_url, mark_email_verified, expires_at, issuer",
                    params![digest, tenant, now],
                    |r| {
                        Ok(Ticket {
                            tenant: r.get(0)?,
                            connection: r.get(1)?,
                            email: r.get(2)?,
                            result_url: r.get(3)?,
                            mark_email_verified: r.get(4)?,
                            expires_at: r.get(5)?,
                            issuer: if r.get::<_, String>(6)? == "administrator" {
                                Issuer::Administrator
                            } else {
                                Issuer::Anonymous
                            },
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
