//! Users' previous passwords, for a connection's `password_history`: only bcrypt hashes,
//! newest first, at most as many per user as the connection refuses again. Users are keyed by
//! their lower-cased email, the key every password flow has (a change_password script knows
//! no user id).

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// The hashes of the last `keep` passwords set for `email` in `connection`, newest first.
    pub fn previous_passwords(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        keep: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut statement = conn.prepare_cached(
            "SELECT hash FROM password_history WHERE tenant = ?1 AND connection = ?2 AND email = ?3
             ORDER BY id DESC LIMIT ?4",
        )?;
        let hashes = statement
            .query_map(
                params![tenant, connection, email.to_lowercase(), keep as i64],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        Ok(hashes)
    }

    /// Records a password just set for `email` and forgets those beyond the newest `keep`, in
    /// one transaction.
    pub fn remember_password(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        hash: &str,
        keep: usize,
    ) -> Result<(), StoreError> {
        let email = email.to_lowercase();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO password_history (tenant, connection, email, hash) VALUES (?1, ?2, ?3, ?4)",
                params![tenant, connection, email, hash],
            )?;
            tx.execute(
                "DELETE FROM password_history WHERE tenant = ?1 AND connection = ?2 AND email = ?3
                 AND id NOT IN (SELECT id FROM password_history
                                WHERE tenant = ?1 AND connection = ?2 AND email = ?3
                                ORDER BY id DESC LIMIT ?4)",
                params![tenant, connection, email, keep as i64],
            )?;
            Ok(())
        })
    }
}
