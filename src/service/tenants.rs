//! Tenants and their clients as the front doors look them up: the tenant a host answers for,
//! and a client of a tenant.

use super::{Service, ServiceError};
use crate::store::Client;

impl Service {
    /// The tenant that answers for `host`, and whether the host is its own (not the default
    /// tenant's answer for any host).
    pub async fn tenant_for_host(
        &self,
        host: &str,
    ) -> Result<Option<(String, bool)>, ServiceError> {
        Ok(self.store.tenant_for_host(host).await?)
    }

    /// The tenant's client `client_id` (a client of another tenant is no client here).
    pub async fn client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Client>, ServiceError> {
        Ok(self
            .store
            .current_client(client_id)
            .await?
            .filter(|c| c.tenant == tenant)
            .map(|c| (*c).clone()))
    }
}
