//! Login and get user (SPEC §4): the login script, or a local check for migrated users in
//! import mode; get_user; and caching what either returns.

use serde_json::{Value, json};

use super::{Answer, Service, ServiceError, Settings, hash_password};
use crate::domain::events::LogType;
use crate::domain::profile::{self, Profile};
use crate::outcome::{Execution, Outcome};
use crate::script::Action;
use crate::store::{RootAttributes, StoreError, User};

impl Service {
    /// Login (SPEC §4): the login script, or a local check for migrated users in import mode.
    pub async fn login(
        &self,
        tenant: &str,
        connection: &str,
        identifier: &str,
        password: &str,
    ) -> Result<Answer<User>, ServiceError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
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
            return Ok(Answer::MissingScript(Action::Login));
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
                return Ok(Answer::WrongCredentials);
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
                return Ok(Answer::InvalidProfile(v));
            }
        };
        if let Some(existing) = self.store.get_user(tenant, &profile.user_id).await?
            && existing.blocked
        {
            self.log(
                tenant,
                LogType::FailedLogin,
                connection,
                Some(&existing.user_id),
                Some("user is blocked"),
            )
            .await?;
            return Ok(Answer::Blocked);
        }
        // Import mode: the first successful login stores the user and a hash of the password
        // together, in the same transaction as the profile.
        let hash = if settings.import_mode {
            let pw = password.to_string();
            Some(hash_password(pw).await?)
        } else {
            None
        };
        match self
            .cache(tenant, connection, profile, settings.roots, true, hash)
            .await?
        {
            Ok(user) => {
                self.log(
                    tenant,
                    LogType::SuccessLogin,
                    connection,
                    Some(&user.user_id),
                    None,
                )
                .await?;
                Ok(Answer::Done(user))
            }
            Err(conflict) => Ok(conflict),
        }
    }

    pub(super) async fn cache<E>(
        &self,
        tenant: &str,
        connection: &str,
        profile: Profile,
        roots: RootAttributes,
        login: bool,
        hash: Option<String>,
    ) -> Result<Result<User, Answer<E>>, ServiceError> {
        let cached = self
            .store
            .cache_profile(tenant, connection, profile, roots, login, hash)
            .await;
        match cached {
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
                Ok(Err(Answer::Conflict {
                    code: "user_id_conflict".into(),
                    message,
                }))
            }
            other => Ok(Ok(other?)),
        }
    }

    pub(super) async fn local_login(
        &self,
        user: User,
        password: &str,
    ) -> Result<Answer<User>, ServiceError> {
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
            return Ok(Answer::WrongCredentials);
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
            return Ok(Answer::Blocked);
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
        Ok(self
            .store
            .get_user(&tenant, &user.user_id)
            .await?
            .map_or(Answer::NotFound, Answer::Done))
    }

    pub(super) async fn login_failed(
        &self,
        tenant: &str,
        connection: &str,
        execution: Execution,
    ) -> Result<Answer<User>, ServiceError> {
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
                Ok(Answer::WrongCredentials)
            }
            "UnauthorizedError" => {
                let text = error
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or(message);
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                Ok(Answer::Unauthorized(text))
            }
            _ => {
                let text = match &error {
                    Some(e) => format!("{} ({})", e, execution.outcome),
                    None => execution.outcome.to_string(),
                };
                self.log(tenant, LogType::FailedLogin, connection, None, Some(&text))
                    .await?;
                Ok(Answer::ScriptFailed {
                    outcome: execution.outcome,
                    error,
                })
            }
        }
    }

    /// Get user: runs get_user and caches what it returns; `NotFound` when it finds nobody.
    pub async fn get_user(
        &self,
        tenant: &str,
        connection: &str,
        email: &str,
    ) -> Result<Answer<User>, ServiceError> {
        let record = self.connection(tenant, connection).await?;
        let settings = Settings::of(&record);
        self.get_user_with(&settings, email).await
    }

    pub(super) async fn get_user_with(
        &self,
        settings: &Settings<'_>,
        email: &str,
    ) -> Result<Answer<User>, ServiceError> {
        let (tenant, connection) = (settings.record.tenant.clone(), settings.record.name.clone());
        let Some(execution) = self
            .run(settings, Action::GetUser, vec![json!(email)])
            .await?
        else {
            return Ok(Answer::MissingScript(Action::GetUser));
        };
        match execution.outcome {
            Outcome::Success => {}
            Outcome::NotFound => return Ok(Answer::NotFound),
            outcome => {
                return Ok(Answer::ScriptFailed {
                    outcome,
                    error: execution.error,
                });
            }
        }
        let profile = match profile::normalize(
            execution.result.as_ref().unwrap_or(&Value::Null),
            &settings.profile,
        ) {
            Ok(p) => p,
            Err(v) => return Ok(Answer::InvalidProfile(v)),
        };
        Ok(
            match self
                .cache(&tenant, &connection, profile, settings.roots, false, None)
                .await?
            {
                Ok(user) => Answer::Done(user),
                Err(conflict) => conflict,
            },
        )
    }
}
