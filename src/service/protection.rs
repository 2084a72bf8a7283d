//! Brute-force protection (Auth0's, notes §4): failed logins of one identifier from one
//! address are counted; at the tenant's threshold, further logins of it from there are refused
//! (`too_many_attempts`, 429) even with the right password, and a `limit_wc` event is written.
//! A success from the address resets the count; a password change, an administrator
//! (`/api/v2/user-blocks`) or 30 days without failures end a block. Suspicious IP throttling
//! (§4.8) gives each address budgets of failed logins and of signups that refill over time;
//! a spent budget refuses that address (429) and writes a `limit_mu` event.

use super::{Answer, Failure, Refusal, Service, ServiceError, bus, refuse};
use crate::domain::events::LogType;
use crate::domain::protection::{BruteForce, Stage, SuspiciousIp, canonical, identifier_key};
use crate::store::{Block, ConnectionRecord, User};

/// Whose blocks an administrator reads or lifts.
#[derive(Debug, Clone, Copy)]
pub enum Blocked<'a> {
    /// A user's, by user_id: every identifier it logs in with, in its connection.
    User(&'a str),
    /// An identifier's (an email or username), in every connection.
    Identifier(&'a str),
}

impl Service {
    /// Runs `login` (a login of `identifier` on `record`) under brute-force protection.
    pub(super) async fn guarded(
        &self,
        record: &ConnectionRecord,
        identifier: &str,
        login: impl std::future::Future<Output = Answer<User>>,
    ) -> Answer<User> {
        let (tenant, connection) = (record.tenant.as_str(), record.name.as_str());
        let ip = bus::caller().ip;
        let guard = self
            .store
            .login_guard(
                tenant,
                connection,
                record.options.brute_force_protection(),
                identifier,
                ip.as_deref(),
            )
            .await?;
        if let Some((_, left)) = &guard.address
            && guard.suspicious.blocks(*left)
        {
            return refuse(Refusal::SuspiciousIp);
        }
        if let Some((_, failures)) = &guard.counted
            && guard.brute_force.blocks(*failures)
        {
            return refuse(Refusal::TooManyAttempts);
        }
        let answer = login.await;
        let failed = matches!(answer, Err(Failure::Refused(Refusal::WrongCredentials)));
        if failed && let Some((address, _)) = &guard.address {
            self.spend(tenant, connection, &guard.suspicious, address, Stage::Login)
                .await?;
        }
        let (settings, Some((attempt, failures))) = (guard.brute_force, guard.counted) else {
            return answer;
        };
        match &answer {
            Err(Failure::Refused(Refusal::WrongCredentials)) => {
                let count = self
                    .store
                    .count_failure(tenant, connection, &attempt)
                    .await?;
                if count >= settings.max_attempts && failures < settings.max_attempts {
                    let description = format!(
                        "{count} failed logins of {} from {}",
                        attempt.identifier,
                        ip.as_deref().unwrap_or("an unknown address")
                    );
                    self.log(
                        tenant,
                        LogType::BlockedAccount,
                        connection,
                        None,
                        Some(&description),
                    )
                    .await?;
                }
            }
            Ok(_) if failures > 0 => {
                self.store
                    .clear_failures(
                        tenant,
                        Some(connection),
                        vec![attempt.identifier],
                        Some(&attempt.ip),
                    )
                    .await?;
            }
            _ => {}
        }
        answer
    }

    /// Suspicious IP throttling of a signup (`/dbconnections/signup`, not the Management
    /// API's) on `connection`: refused while the caller's signup budget is spent; every signup
    /// it lets through spends one attempt.
    pub async fn throttle_signup(&self, tenant: &str, connection: &str) -> Answer<()> {
        let settings = self.store.suspicious_ip(tenant).await?;
        let Some(address) = settings.counted(bus::caller().ip.as_deref()) else {
            return Ok(());
        };
        let budget = settings.budget(Stage::Signup);
        let left = self
            .store
            .ip_tokens(tenant, &address, Stage::Signup, budget)
            .await?;
        if settings.blocks(left) {
            return refuse(Refusal::SuspiciousIp);
        }
        self.spend(tenant, connection, &settings, &address, Stage::Signup)
            .await?;
        Ok(())
    }

    /// Spends one attempt of `address`'s budget in `stage`; the one that empties it writes a
    /// `limit_mu` event.
    async fn spend(
        &self,
        tenant: &str,
        connection: &str,
        settings: &SuspiciousIp,
        address: &str,
        stage: Stage,
    ) -> Result<(), ServiceError> {
        let budget = settings.budget(stage);
        let (before, after) = self
            .store
            .take_ip_token(tenant, address, stage, budget)
            .await?;
        if before >= 1.0 && after < 1.0 {
            let what = match stage {
                Stage::Login => "failed logins",
                Stage::Signup => "signups",
            };
            let description = format!(
                "{address} reached its limit of {} {what} (suspicious IP throttling)",
                budget.max_attempts
            );
            self.log(
                tenant,
                LogType::BlockedIp,
                connection,
                None,
                Some(&description),
            )
            .await?;
        }
        Ok(())
    }

    /// Whether an address is throttled now, in either stage
    /// (`GET /api/v2/anomaly/blocks/ips/{ip}`).
    pub async fn ip_blocked(&self, tenant: &str, ip: &str) -> Result<bool, ServiceError> {
        let settings = self.store.suspicious_ip(tenant).await?;
        let ip = canonical_text(ip);
        for stage in [Stage::Login, Stage::Signup] {
            let left = self
                .store
                .ip_tokens(tenant, &ip, stage, settings.budget(stage))
                .await?;
            if left < 1.0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Lifts an address's throttling (`DELETE /api/v2/anomaly/blocks/ips/{ip}`).
    pub async fn unblock_ip(&self, tenant: &str, ip: &str) -> Result<(), ServiceError> {
        self.store.clear_ip(tenant, &canonical_text(ip)).await?;
        Ok(())
    }

    /// The tenant's suspicious IP throttling settings.
    pub async fn suspicious_ip(&self, tenant: &str) -> Result<SuspiciousIp, ServiceError> {
        Ok(self.store.suspicious_ip(tenant).await?)
    }

    /// Changes the tenant's suspicious IP throttling; a wrong field is a 400 naming it.
    pub async fn patch_suspicious_ip(
        &self,
        tenant: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Answer<SuspiciousIp> {
        match self.store.patch_suspicious_ip(tenant, patch).await? {
            Ok(settings) => Ok(settings),
            Err(why) => refuse(Refusal::BadRequest(vec![why])),
        }
    }

    /// Ends the blocks of the user with `email` in `connection` (its password changed).
    pub(super) async fn password_changed(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
    ) -> Result<(), ServiceError> {
        let mut identifiers = vec![identifier_key(email)];
        if let Some(user) = self.store.find_user(tenant, connection, email).await? {
            identifiers.extend(identifiers_of(&user));
        }
        identifiers.dedup();
        self.store
            .clear_failures(tenant, Some(connection), identifiers, None)
            .await?;
        Ok(())
    }

    /// The blocks of a user or an identifier; with `enforced_only`
    /// (`consider_brute_force_enablement`), only those the current settings enforce.
    pub async fn user_blocks(
        &self,
        tenant: &str,
        whose: Blocked<'_>,
        enforced_only: bool,
    ) -> Answer<Vec<Block>> {
        let settings = self.store.brute_force(tenant).await?;
        let (connection, identifiers) = self.identifiers(tenant, whose).await?;
        let blocks = self
            .store
            .blocks(
                tenant,
                connection.as_deref(),
                identifiers,
                settings.max_attempts,
            )
            .await?;
        if !enforced_only {
            return Ok(blocks);
        }
        Ok(blocks
            .into_iter()
            .filter(|b| enforced(&settings, b))
            .collect())
    }

    /// Lifts the blocks of a user or an identifier (`DELETE /api/v2/user-blocks`).
    pub async fn unblock(&self, tenant: &str, whose: Blocked<'_>) -> Answer<()> {
        let (connection, identifiers) = self.identifiers(tenant, whose).await?;
        self.store
            .clear_failures(tenant, connection.as_deref(), identifiers, None)
            .await?;
        Ok(())
    }

    /// The tenant's brute-force protection settings.
    pub async fn brute_force(&self, tenant: &str) -> Result<BruteForce, ServiceError> {
        Ok(self.store.brute_force(tenant).await?)
    }

    /// Changes the tenant's brute-force protection settings; a wrong field is a 400 naming it.
    pub async fn patch_brute_force(
        &self,
        tenant: &str,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Answer<BruteForce> {
        match self.store.patch_brute_force(tenant, patch).await? {
            Ok(settings) => Ok(settings),
            Err(why) => refuse(Refusal::BadRequest(vec![why])),
        }
    }

    async fn identifiers(
        &self,
        tenant: &str,
        whose: Blocked<'_>,
    ) -> Answer<(Option<String>, Vec<String>)> {
        match whose {
            Blocked::Identifier(identifier) => Ok((None, vec![identifier_key(identifier)])),
            Blocked::User(user_id) => match self.store.get_user(tenant, user_id).await? {
                None => refuse(Refusal::NotFound),
                Some(user) => Ok((Some(user.connection.clone()), identifiers_of(&user))),
            },
        }
    }
}

/// An address as the store keys it (IPv4-mapped IPv6 as IPv4); anything else as given.
fn canonical_text(ip: &str) -> String {
    ip.parse()
        .map_or_else(|_| ip.to_string(), |ip| canonical(ip).to_string())
}

/// The identifiers a user logs in with: its email and username.
fn identifiers_of(user: &User) -> Vec<String> {
    ["email", "username"]
        .iter()
        .filter_map(|k| user.profile.get(*k).and_then(serde_json::Value::as_str))
        .map(identifier_key)
        .collect()
}

/// Whether the settings refuse logins for this block now.
fn enforced(settings: &BruteForce, block: &Block) -> bool {
    let allowed = block
        .ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .is_some_and(|ip| settings.allowlist.iter().any(|a| a.contains(ip)));
    settings.enabled && settings.blocks(settings.max_attempts) && !allowed
}
