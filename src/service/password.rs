//! Password changes (SPEC §4) and password-change tickets (SPEC §5):
//! `POST /dbconnections/change_password` and `POST /api/v2/tickets/password-change` issue a
//! ticket; redeeming it with a new password runs the password-change flow. customdb sends no
//! mail: the Management API hands the ticket URL to whoever delivers it.

use serde_json::json;

use super::{Answer, Failure, Refusal, Service, ServiceError, Settings, hash_password, refuse};
use crate::domain::events::LogType;
use crate::domain::password_policy::{Person, Rejection};
use crate::script::Action;
use crate::store::{ConnectionRecord, Issuer, Ticket};

/// How long a ticket lives unless the request says otherwise (Auth0: five days).
pub const DEFAULT_TTL_SECS: i64 = 5 * 86_400;
/// The longest lifetime a request may ask for.
pub const MAX_TTL_SECS: i64 = 30 * 86_400;

/// What a new ticket is for.
#[derive(Debug, Clone)]
pub struct TicketRequest {
    pub connection: String,
    pub email: String,
    pub result_url: Option<String>,
    pub ttl_secs: i64,
    pub mark_email_verified: bool,
    pub issuer: Issuer,
}

/// How redeeming a ticket ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// The password changed; the ticket is used up.
    Changed { result_url: Option<String> },
    /// Unknown, expired, already used, or being redeemed right now.
    InvalidTicket,
    /// The flow refused or failed; the ticket stays usable.
    Failed(Refusal),
}

fn digest(ticket_id: &str) -> String {
    crate::secret::digest(ticket_id)
}

impl Service {
    /// Password change: the change_password script; with import, migrated users change locally
    /// and others are fetched with get_user and created locally with the new password.
    pub async fn change_password(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
        new_password: &str,
    ) -> Answer<()> {
        let record = self.connection(tenant, connection).await?;
        self.set_password(&record, email, new_password).await?;
        self.remember_password(&record, email, new_password).await?;
        // A changed password ends the user's brute-force blocks (Auth0 §4.4).
        self.password_changed(tenant, connection, email).await?;
        Ok(())
    }

    async fn set_password(
        &self,
        record: &ConnectionRecord,
        email: &str,
        new_password: &str,
    ) -> Answer<()> {
        let (tenant, connection) = (record.tenant.as_str(), record.name.as_str());
        let cached = self.store.find_user(tenant, connection, email).await?;
        let (profile, metadata) = match &cached {
            Some(user) => (user.profile.clone(), Some(&user.user_metadata)),
            None => (
                serde_json::Map::from_iter([("email".into(), json!(email))]),
                None,
            ),
        };
        self.allow_password(
            record,
            new_password,
            Person::of(&profile, metadata),
            LogType::FailedChangePassword,
        )
        .await?;
        let settings = Settings::of(record);
        if settings.import_mode {
            let pw = new_password.to_string();
            let hash = hash_password(pw).await?;
            if let Some(user) = self
                .store
                .find_user(tenant, connection, email)
                .await?
                .filter(|u| u.migrated)
            {
                self.store
                    .set_password_hash(tenant, &user.user_id, hash)
                    .await?;
                self.log(
                    tenant,
                    LogType::SuccessChangePassword,
                    connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                return Ok(());
            }
            // Not migrated yet: the legacy database's profile, stored with the new password.
            let user = self.get_user_with(&settings, email, Some(hash)).await?;
            return self
                .log(
                    tenant,
                    LogType::SuccessChangePassword,
                    connection,
                    Some(&user.user_id),
                    None,
                )
                .await
                .map_err(Into::into);
        }
        let answer = self
            .boolean_script(
                &settings,
                Action::ChangePassword,
                vec![json!(email), json!(new_password)],
            )
            .await;
        self.log_result(
            tenant,
            connection,
            &answer,
            LogType::SuccessChangePassword,
            LogType::FailedChangePassword,
        )
        .await?;
        answer
    }

    /// Refuses a new password the connection's policy does not allow, with a `failure` log
    /// event, before any script runs.
    pub(super) async fn allow_password(
        &self,
        record: &ConnectionRecord,
        password: &str,
        person: Person<'_>,
        failure: LogType,
    ) -> Answer<()> {
        let rejection = match record.options.password_policy.check(password, &person) {
            Err(rejection) => rejection,
            Ok(()) if self.used_before(record, password, person.email).await? => Rejection::Reused,
            Ok(()) => return Ok(()),
        };
        let (_, message) = rejection.name_and_message();
        self.log(&record.tenant, failure, &record.name, None, Some(message))
            .await?;
        refuse(Refusal::WeakPassword(rejection))
    }

    /// Whether `password` is one of the last passwords the connection's `password_history`
    /// keeps for `email` (bcrypt comparisons, on the blocking pool).
    async fn used_before(
        &self,
        record: &ConnectionRecord,
        password: &str,
        email: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let keep = record.options.password_policy.history;
        let Some(email) = email.filter(|_| keep > 0) else {
            return Ok(false);
        };
        let previous = self
            .store
            .previous_passwords(&record.tenant, &record.name, email, keep)
            .await?;
        if previous.is_empty() {
            return Ok(false);
        }
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            previous
                .iter()
                .any(|hash| bcrypt::verify(&password, hash).unwrap_or(false))
        })
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))
    }

    /// Keeps a password just set for `email` when the connection has a `password_history`
    /// (a bcrypt hash of it, never the password).
    pub(super) async fn remember_password(
        &self,
        record: &ConnectionRecord,
        email: &str,
        password: &str,
    ) -> Result<(), ServiceError> {
        let keep = record.options.password_policy.history;
        if keep == 0 || email.is_empty() {
            return Ok(());
        }
        let hash = hash_password(password.to_string()).await?;
        self.store
            .remember_password(&record.tenant, &record.name, email, hash, keep)
            .await?;
        Ok(())
    }

    /// Auth0's "forgot password" (`/dbconnections/change_password`): a ticket for the user
    /// with `email` when the connection has one (in the store, or found by get_user), and
    /// nothing stored for an email nobody has. The caller answers the same either way.
    pub async fn request_password_change(
        &self,
        tenant: &str,
        record: &ConnectionRecord,
        email: &str,
    ) -> Result<(), ServiceError> {
        let connection = record.name.as_str();
        let known = match self.store.find_user(tenant, connection, email).await? {
            Some(_) => true,
            None => match self.get_user_with(&Settings::of(record), email, None).await {
                Ok(_) => true,
                Err(Failure::Refused(_)) => false,
                Err(Failure::Internal(e)) => return Err(e),
            },
        };
        if !known {
            return self
                .log(
                    tenant,
                    LogType::FailedChangePasswordRequest,
                    connection,
                    None,
                    Some("no user has this email: no ticket was made"),
                )
                .await;
        }
        let ticket = TicketRequest {
            connection: connection.to_string(),
            email: email.to_string(),
            result_url: None,
            ttl_secs: DEFAULT_TTL_SECS,
            mark_email_verified: false,
            issuer: Issuer::Anonymous,
        };
        self.issue_ticket(tenant, ticket).await?;
        self.log(
            tenant,
            LogType::SuccessChangePasswordRequest,
            connection,
            None,
            None,
        )
        .await
    }

    /// Records a ticket and returns its id (the secret part of the URL).
    pub async fn issue_ticket(
        &self,
        tenant: &str,
        request: TicketRequest,
    ) -> Result<String, ServiceError> {
        let id = crate::secret::random_hex(24);
        let now = self.store.clock().now().as_second();
        let ticket = Ticket {
            tenant: tenant.to_string(),
            connection: request.connection,
            email: request.email,
            result_url: request.result_url,
            mark_email_verified: request.mark_email_verified,
            expires_at: now + request.ttl_secs.clamp(1, MAX_TTL_SECS),
            issuer: request.issuer,
        };
        self.store.put_ticket(&digest(&id), ticket, now).await?;
        Ok(id)
    }

    /// Sets `new_password` for the ticket's user through the password-change flow.
    pub async fn redeem_ticket(
        &self,
        tenant: &str,
        ticket_id: &str,
        new_password: &str,
    ) -> Result<Redeemed, ServiceError> {
        let d = digest(ticket_id);
        let Some(ticket) = self.store.claim_ticket(tenant, &d).await? else {
            return Ok(Redeemed::InvalidTicket);
        };
        let answer = self
            .change_password(tenant, &ticket.connection, &ticket.email, new_password)
            .await;
        self.store.finish_ticket(&d, answer.is_ok()).await?;
        match answer {
            Ok(()) => {}
            Err(Failure::Refused(refusal)) => return Ok(Redeemed::Failed(refusal)),
            Err(Failure::Internal(e)) => return Err(e),
        }
        if ticket.mark_email_verified {
            self.store
                .mark_email_verified(tenant, &ticket.connection, &ticket.email)
                .await?;
        }
        Ok(Redeemed::Changed {
            result_url: ticket.result_url,
        })
    }
}
