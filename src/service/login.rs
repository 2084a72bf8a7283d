//! Login and get user (SPEC §4): the login script, or a local check for migrated users in
//! import mode; get_user; and caching what either returns.

use serde_json::{Value, json};

use super::{Answer, Refusal, Service, ServiceError, Settings, bus, hash_password, refuse};
use crate::domain::events::LogType;
use crate::domain::profile::{self, Profile};
use crate::outcome::{Execution, Outcome};
use crate::script::Action;
use crate::store::{Cached, ConnectionRecord, RootAttributes, StoreError, User};

impl Service {
    /// Login (SPEC §4): the login script, or a local check for migrated users in import mode.
    pub async fn login(
        &self,
        tenant: &str,
        connection: &str,
        identifier: &str,
        password: &str,
    ) -> Answer<User> {
        let record = self.connection(tenant, connection).await?;
        self.guarded(
            &record,
            identifier,
            self.check_login(&record, identifier, password),
        )
        .await
    }

    /// A login without brute-force protection.
    async fn check_login(
        &self,
        record: &ConnectionRecord,
        identifier: &str,
        password: &str,
    ) -> Answer<User> {
        let (tenant, connection) = (record.tenant.as_str(), record.name.as_str());
        let settings = Settings::of(record);
        if settings.import_mode {
            let local = self.store.find_user(tenant, connection, identifier).await?;
            if let Some(user) = local.filter(|u| u.migrated) {
                return self.local_login(user, password).await;
            }
        }
        let Some(execution) = self
            .run(
                &settings,
                Action::Login,
                vec![json!(identifier), json!(password)],
            )
            .await?
        else {
            return refuse(Refusal::MissingScript(Action::Login));
        };
        match execution.outcome {
            Outcome::Success => {}
            Outcome::NotFound => {
                self.log(
                    tenant,
                    LogType::UnknownUser,
                    connection,
                    None,
                    Some("Wrong email or password."),
                )
                .await?;
                return refuse(Refusal::WrongCredentials);
            }
            _ => return self.login_failed(tenant, connection, execution).await,
        }
        let profile = match profile::normalize(
            execution.result.as_ref().unwrap_or(&Value::Null),
            &settings.profile,
        ) {
            Ok(p) => p,
            Err(v) => {
                let why = v
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                self.log(
                    tenant,
                    LogType::FailedLogin,
                    connection,
                    None,
                    Some(&format!("invalid profile: {why}")),
                )
                .await?;
                return refuse(Refusal::InvalidProfile(v));
            }
        };
        // Import mode: the first successful login stores the user and a hash of the password
        // together, in the same transaction as the profile.
        let hash = if settings.import_mode {
            let pw = password.to_string();
            Some(hash_password(pw).await?)
        } else {
            None
        };
        // The success log event is written with the cached user.
        self.cache(tenant, connection, profile, settings.roots, true, hash)
            .await
    }

    /// Caches a profile; an email that belongs to another user of the connection is a
    /// logged `user_id_conflict`, never a merge.
    pub(super) async fn cache(
        &self,
        tenant: &str,
        connection: &str,
        profile: Profile,
        roots: RootAttributes,
        login: bool,
        hash: Option<String>,
    ) -> Answer<User> {
        let cached = if login {
            Cached::Login(bus::caller())
        } else {
            Cached::Refresh
        };
        let cached = self
            .store
            .cache_profile(tenant, connection, profile, roots, cached, hash)
            .await;
        match cached {
            Err(StoreError::Blocked(user_id)) => {
                self.log(
                    tenant,
                    LogType::FailedLogin,
                    connection,
                    Some(&user_id),
                    Some("user is blocked"),
                )
                .await?;
                refuse(Refusal::Blocked)
            }
            Err(StoreError::EmailTaken { email, owner }) => {
                let message = format!(
                    "the email {email} already belongs to {owner}; a script returned it for another user_id"
                );
                self.log(
                    tenant,
                    LogType::FailedLogin,
                    connection,
                    None,
                    Some(&message),
                )
                .await?;
                refuse(Refusal::Conflict {
                    code: "user_id_conflict".into(),
                    message,
                })
            }
            other => {
                let (user, event) = other?;
                if let Some(event) = event {
                    self.published(tenant, &event);
                }
                Ok(user)
            }
        }
    }

    pub(super) async fn local_login(&self, user: User, password: &str) -> Answer<User> {
        let hash = user.password_hash.clone().unwrap_or_default();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .map_err(|e| ServiceError::Task(e.to_string()))?;
        let (tenant, connection) = (user.tenant.clone(), user.connection.clone());
        if !ok {
            self.log(
                &tenant,
                LogType::WrongPassword,
                &connection,
                Some(&user.user_id),
                Some("Wrong email or password."),
            )
            .await?;
            return refuse(Refusal::WrongCredentials);
        }
        if user.blocked {
            self.log(
                &tenant,
                LogType::FailedLogin,
                &connection,
                Some(&user.user_id),
                Some("user is blocked"),
            )
            .await?;
            return refuse(Refusal::Blocked);
        }
        self.store
            .record_local_login(&tenant, &user.user_id)
            .await?;
        self.log(
            &tenant,
            LogType::SuccessLogin,
            &connection,
            Some(&user.user_id),
            None,
        )
        .await?;
        match self.store.get_user(&tenant, &user.user_id).await? {
            Some(user) => Ok(user),
            None => refuse(Refusal::NotFound),
        }
    }

    pub(super) async fn login_failed(
        &self,
        tenant: &str,
        connection: &str,
        execution: Execution,
    ) -> Answer<User> {
        let error = execution.error.clone();
        let name = error
            .as_ref()
            .and_then(|e| e.name.as_deref())
            .unwrap_or("Error");
        let message = error
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        match name {
            "WrongUsernameOrPasswordError" => {
                let user = error
                    .as_ref()
                    .and_then(|e| e.user_id.clone())
                    .filter(|u| !u.is_empty());
                let (kind, uid) = match user {
                    Some(u) => (
                        LogType::WrongPassword,
                        Some(crate::domain::names::user_id(&u)),
                    ),
                    None => (LogType::UnknownUser, None),
                };
                let description = if message.is_empty() {
                    "Wrong email or password.".to_string()
                } else {
                    message
                };
                self.log(tenant, kind, connection, uid.as_deref(), Some(&description))
                    .await?;
                refuse(Refusal::WrongCredentials)
            }
            "UnauthorizedError" => {
                let text = error
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or(message);
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                refuse(Refusal::Unauthorized(text))
            }
            _ => {
                let text = match &error {
                    Some(e) => format!("{} ({})", e, execution.outcome),
                    None => execution.outcome.to_string(),
                };
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                refuse(Refusal::ScriptFailed {
                    outcome: execution.outcome,
                    error: error.map(Box::new),
                })
            }
        }
    }

    /// Get user: runs get_user and caches what it returns; `NotFound` when it finds nobody.
    pub async fn get_user(&self, tenant: &str, connection: &str, email: &str) -> Answer<User> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        self.get_user_with(&settings, email, None).await
    }

    /// The one run → check → normalize → cache sequence of get_user; with `hash`, the user is
    /// stored migrated with that password (import mode's password change).
    pub(super) async fn get_user_with(
        &self,
        settings: &Settings<'_>,
        email: &str,
        hash: Option<String>,
    ) -> Answer<User> {
        let (tenant, connection) = (settings.record.tenant.clone(), settings.record.name.clone());
        let Some(execution) = self
            .run(settings, Action::GetUser, vec![json!(email)])
            .await?
        else {
            return refuse(Refusal::MissingScript(Action::GetUser));
        };
        match execution.outcome {
            Outcome::Success => {}
            Outcome::NotFound => return refuse(Refusal::NotFound),
            outcome => {
                return refuse(Refusal::ScriptFailed {
                    outcome,
                    error: execution.error.map(Box::new),
                });
            }
        }
        let profile = match profile::normalize(
            execution.result.as_ref().unwrap_or(&Value::Null),
            &settings.profile,
        ) {
            Ok(p) => p,
            Err(v) => return refuse(Refusal::InvalidProfile(v)),
        };
        self.cache(&tenant, &connection, profile, settings.roots, false, hash)
            .await
    }
}
