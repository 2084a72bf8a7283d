//! Tenants: the hosts they answer on, their clients, and their signing keys (sealed).

use rusqlite::{OptionalExtension, params};

use std::sync::Arc;

use super::{Client, Store, StoreError, query_one};

impl Store {
    /// Makes `tenant` answer for `domain` (a Host header value, port included when not 80/443).
    pub fn add_domain(&self, tenant: &str, domain: &str, default: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![tenant, self.now()])?;
            tx.execute(
                "INSERT INTO tenant_domains (domain, tenant) VALUES (lower(?1), ?2) ON CONFLICT (domain) DO UPDATE SET tenant = ?2",
                params![domain, tenant],
            )?;
            if default {
                tx.execute("UPDATE tenants SET is_default = (id = ?1)", params![tenant])?;
            }
            Ok(())
        })?;
        // Any host may have answered with the default tenant.
        self.memo.hosts.forget(|_, _| true);
        Ok(())
    }

    /// The tenant a request's Host belongs to, and whether the host is one of its domains
    /// (`false`: the default tenant answers for an unknown host). As of at most a few seconds
    /// ago (`memo`).
    pub fn tenant_for_host(&self, host: &str) -> Result<Option<(String, bool)>, StoreError> {
        let host = host.to_lowercase();
        let copies = &self.memo.hosts;
        if let Some(hit) = copies.get(&host) {
            return Ok(hit);
        }
        let generation = copies.generation();
        let answer = self.read_tenant_for_host(&host)?;
        copies.keep(generation, [(host, answer.clone())]);
        Ok(answer)
    }

    fn read_tenant_for_host(&self, host: &str) -> Result<Option<(String, bool)>, StoreError> {
        let conn = self.read();
        let by_host: Option<String> = query_one(
            &conn,
            "SELECT tenant FROM tenant_domains WHERE domain = lower(?1)",
            params![host],
            |r| r.get(0),
        )?;
        if let Some(t) = by_host {
            return Ok(Some((t, true)));
        }
        Ok(query_one(
            &conn,
            "SELECT id FROM tenants WHERE is_default = 1",
            [],
            |r| r.get(0),
        )?
        .map(|t| (t, false)))
    }

    pub fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        self.write(|tx| {
            tx.execute("INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", params![client.tenant, self.now()])?;
            tx.execute(
                "INSERT INTO clients (client_id, tenant, name, secret_hash, scopes, created_at, app_type, token_endpoint_auth_method, grant_types)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (client_id) DO UPDATE SET name = ?3, secret_hash = ?4, scopes = ?5, app_type = ?7,
                    token_endpoint_auth_method = ?8, grant_types = ?9",
                params![
                    client.client_id, client.tenant, client.name,
                    client.secret_digest.as_deref().unwrap_or_default(),
                    client.scopes.join(" "), self.now(), client.app_type.as_str(),
                    client.auth_method.as_str(), grants.join(" ")
                ],
            )?;
            Ok(())
        })?;
        self.memo.clients.forget(|id, _| id == &client.client_id);
        Ok(())
    }

    /// The client as of at most a few seconds ago (`memo`).
    pub fn current_client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let copies = &self.memo.clients;
        if let Some(hit) = copies.get(&client_id.to_owned()) {
            return Ok(Some(hit));
        }
        let generation = copies.generation();
        let Some(client) = self.get_client(client_id)? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        copies.keep(generation, [(client_id.to_owned(), client.clone())]);
        Ok(Some(client))
    }

    pub fn get_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        use crate::domain::client::{AppType, AuthMethod, Grant};
        query_one(
            &self.read(),
            "SELECT client_id, tenant, name, secret_hash, scopes, app_type, token_endpoint_auth_method, grant_types
             FROM clients WHERE client_id = ?1",
            params![client_id],
            |r| {
                let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
                let corrupt = |i: usize, what: String| {
                    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
                };
                let (app_type, method) = (text(5)?, text(6)?);
                let auth_method = AuthMethod::parse(&method)
                    .ok_or_else(|| corrupt(6, format!("unknown token_endpoint_auth_method {method}")))?;
                let secret: String = text(3)?;
                Ok(Client {
                    client_id: text(0)?,
                    tenant: text(1)?,
                    name: text(2)?,
                    app_type: AppType::parse(&app_type)
                        .ok_or_else(|| corrupt(5, format!("unknown app_type {app_type}")))?,
                    auth_method,
                    grant_types: text(7)?.split_whitespace().filter_map(Grant::parse).collect(),
                    // A public client has no secret, whatever the column holds.
                    secret_digest: (auth_method != AuthMethod::None && !secret.is_empty())
                        .then_some(secret),
                    scopes: text(4)?.split_whitespace().map(str::to_string).collect(),
                })
            },
        )
    }

    /// The token signing key (kid, PKCS#8 PEM), made by `generate` on first use and kept
    /// sealed.
    pub fn signing_key(
        &self,
        generate: impl FnOnce() -> (String, String),
    ) -> Result<(String, String), StoreError> {
        let existing: Option<(String, Vec<u8>)> = {
            let conn = self.read();
            conn.query_row(
                "SELECT kid, private_key FROM signing_keys ORDER BY created_at LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
        };
        if let Some((kid, sealed)) = existing {
            let pem = String::from_utf8(self.sealer.open(&sealed, &kid)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            return Ok((kid, pem));
        }
        let (kid, pem) = generate();
        let sealed = self.sealer.seal(pem.as_bytes(), &kid);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO signing_keys (kid, private_key, created_at) VALUES (?1, ?2, ?3)",
                params![kid, sealed, self.now()],
            )?;
            Ok(())
        })?;
        Ok((kid, pem))
    }
}
